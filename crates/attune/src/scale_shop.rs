//! A synthetic shop of any size, for `attune bench scale`: a product catalog and a year of shopper behaviour,
//! written as the import formats (a Merchant Center JSON-lines feed, JSON-lines events) so that it loads
//! through the normal import path.
//!
//! The generator, stated:
//! - **Catalog.** Eight departments modelled on the fashion catalog (apparel, footwear, accessories, personal
//!   care) and Online Retail I (home, gifts, kitchen, stationery), ten product types each; 400 brands whose
//!   sizes follow a Zipf law; items come in variant groups of one to five (colours) sharing a title stem and
//!   a price; prices are log-normal around each type's median (GBP). Item popularity is Zipf within a type.
//! - **Shoppers.** Each prefers one or two departments (80 % of their sessions) and has an activity level
//!   drawn from a Zipf law, so a few shoppers make most of the events. Their sessions are spread over the year
//!   before the generator's end time, in time order.
//! - **Sessions.** One in three opens with a search (two words of a product type and a colour); then one to
//!   ten views of popular-first items of one product type; 20 % of views add to the basket; half the sessions
//!   with a basket end in an order of its items; 6 % of ordered lines are returned two to twenty days later.
//!   Shoppers of consumables (personal care, kitchen) buy a bought item again one to two months later.
//!
//! Everything is drawn from one [`SplitMix64`] seed: the same sizes and seed give the same files.

use attune_core::SplitMix64;
use serde_json::{Value, json};
use std::io::Write;

/// Departments and their product types, each with a median price in GBP.
const DEPARTMENTS: [(&str, [(&str, f64); 10]); 8] = [
    (
        "Apparel",
        [
            ("T-shirt", 15.0),
            ("Shirt", 30.0),
            ("Jeans", 45.0),
            ("Dress", 50.0),
            ("Jacket", 80.0),
            ("Sweater", 40.0),
            ("Shorts", 25.0),
            ("Skirt", 35.0),
            ("Hoodie", 45.0),
            ("Socks", 8.0),
        ],
    ),
    (
        "Footwear",
        [
            ("Sneakers", 70.0),
            ("Boots", 95.0),
            ("Sandals", 35.0),
            ("Heels", 60.0),
            ("Loafers", 65.0),
            ("Slippers", 20.0),
            ("Flip flops", 12.0),
            ("Trainers", 75.0),
            ("Brogues", 85.0),
            ("Espadrilles", 30.0),
        ],
    ),
    (
        "Accessories",
        [
            ("Watch", 120.0),
            ("Handbag", 60.0),
            ("Belt", 25.0),
            ("Wallet", 30.0),
            ("Sunglasses", 45.0),
            ("Scarf", 20.0),
            ("Cap", 18.0),
            ("Backpack", 55.0),
            ("Earrings", 22.0),
            ("Necklace", 35.0),
        ],
    ),
    (
        "Personal care",
        [
            ("Shampoo", 6.0),
            ("Conditioner", 6.0),
            ("Deodorant", 4.0),
            ("Face cream", 18.0),
            ("Perfume", 45.0),
            ("Lip balm", 3.0),
            ("Body lotion", 9.0),
            ("Toothpaste", 3.0),
            ("Nail polish", 7.0),
            ("Sunscreen", 12.0),
        ],
    ),
    (
        "Home",
        [
            ("T-light holder", 3.0),
            ("Cushion cover", 8.0),
            ("Photo frame", 6.0),
            ("Candle", 5.0),
            ("Vase", 12.0),
            ("Clock", 15.0),
            ("Doormat", 10.0),
            ("Lantern", 9.0),
            ("Storage tin", 4.0),
            ("Wall sign", 5.0),
        ],
    ),
    (
        "Gifts",
        [
            ("Gift bag", 2.0),
            ("Wrapping paper", 1.5),
            ("Party bunting", 4.0),
            ("Gift box", 3.0),
            ("Card", 2.0),
            ("Keyring", 2.5),
            ("Mug", 6.0),
            ("Ornament", 3.5),
            ("Jigsaw", 9.0),
            ("Toy", 8.0),
        ],
    ),
    (
        "Kitchen",
        [
            ("Tea towel", 3.0),
            ("Lunch box", 5.0),
            ("Cake tin", 7.0),
            ("Baking cases", 2.0),
            ("Teapot", 15.0),
            ("Coffee mug", 5.0),
            ("Jam jar", 2.5),
            ("Bottle", 6.0),
            ("Apron", 8.0),
            ("Cutlery set", 12.0),
        ],
    ),
    (
        "Stationery",
        [
            ("Notebook", 4.0),
            ("Pencil case", 5.0),
            ("Sticker sheet", 1.5),
            ("Pen set", 6.0),
            ("Calendar", 8.0),
            ("Planner", 10.0),
            ("Postcard", 1.0),
            ("Envelope set", 3.0),
            ("Bookmark", 1.5),
            ("Crayons", 3.0),
        ],
    ),
];

/// Departments whose items shoppers buy again.
const CONSUMABLES: [usize; 2] = [3, 6];
const COLOURS: [&str; 12] =
    ["black", "white", "red", "blue", "green", "pink", "grey", "navy", "cream", "yellow", "brown", "purple"];
const STEMS: [&str; 16] = [
    "classic", "vintage", "retro", "modern", "floral", "striped", "spotty", "heart", "star", "woodland", "nordic",
    "summer", "winter", "party", "garden", "travel",
];
const BRANDS: usize = 400;
const DAY_MS: i64 = 86_400_000;

/// The size and seed of a synthetic shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShopSpec {
    pub items: usize,
    pub events: usize,
    pub seed: u64,
    /// The time of the last event (ms since the epoch); the year before it holds the events.
    pub end_ms: i64,
}

/// One product of the synthetic catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticItem {
    pub id: String,
    pub department: usize,
    pub product_type: usize,
    pub title: String,
    pub brand: String,
    pub group: String,
    pub colour: &'static str,
    pub price: f64,
}

impl SyntheticItem {
    /// As a line of a Merchant Center JSON-lines feed.
    pub fn feed_line(&self) -> Value {
        let (department, types) = &DEPARTMENTS[self.department];
        json!({
            "id": self.id,
            "title": self.title,
            "price": format!("{:.2} GBP", self.price),
            "brand": self.brand,
            "product_type": format!("{department} > {}", types[self.product_type].0),
            "item_group_id": self.group,
            "color": self.colour,
            "availability": "in_stock",
        })
    }
}

/// The catalog: `spec.items` items in variant groups, and each product type's items in popularity order.
pub struct Catalog {
    pub items: Vec<SyntheticItem>,
    /// Per department and product type, indices into `items`, most popular first.
    by_type: Vec<Vec<Vec<usize>>>,
}

impl Catalog {
    pub fn generate(spec: &ShopSpec) -> Self {
        let mut rng = SplitMix64::new(spec.seed);
        let mut items = Vec::with_capacity(spec.items);
        let mut by_type = vec![vec![Vec::new(); 10]; DEPARTMENTS.len()];
        let mut group = 0usize;
        while items.len() < spec.items {
            let (department, product_type) = (rng.below(DEPARTMENTS.len()), rng.below(10));
            let (name, median) = DEPARTMENTS[department].1[product_type];
            let brand = format!("Brand {:03}", zipf(&mut rng, BRANDS));
            let stem = STEMS[rng.below(STEMS.len())];
            // Log-normal around the median: exp(N(0, 0.5)) from the sum of uniforms.
            let normal: f64 = (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0;
            let price = (median * (0.5 * normal).exp()).max(0.5);
            let variants = 1 + rng.below(5);
            for _ in 0..variants.min(spec.items - items.len()) {
                let colour = COLOURS[rng.below(COLOURS.len())];
                by_type[department][product_type].push(items.len());
                items.push(SyntheticItem {
                    id: format!("P{:07}", items.len()),
                    department,
                    product_type,
                    title: format!("{brand} {stem} {colour} {}", name.to_lowercase()),
                    brand: brand.clone(),
                    group: format!("G{group:07}"),
                    colour,
                    price,
                });
            }
            group += 1;
        }
        Self { items, by_type }
    }

    /// A popular-first item of a product type of `department` (the type itself Zipf-chosen), if it has any.
    fn pick(&self, rng: &mut SplitMix64, department: usize) -> Option<usize> {
        let types = &self.by_type[department];
        let product_type = zipf(rng, types.len());
        let candidates =
            if types[product_type].is_empty() { types.iter().find(|t| !t.is_empty())? } else { &types[product_type] };
        Some(candidates[zipf(rng, candidates.len())])
    }
}

/// Zipf-like rank in `0..n`: rank r with weight about 1/(r+1).
pub fn zipf(rng: &mut SplitMix64, n: usize) -> usize {
    let x = ((n as f64 + 1.0).ln() * rng.next_f64()).exp() - 1.0;
    (x as usize).min(n.saturating_sub(1))
}

/// Writes the shop's events, as JSON lines in the API's wire format, shopper after shopper (each in time
/// order) until `spec.events` are written; returns how many shoppers acted.
pub fn write_events(spec: &ShopSpec, catalog: &Catalog, out: &mut dyn Write) -> std::io::Result<usize> {
    let mut rng = SplitMix64::new(spec.seed ^ 0x5eed_5eed);
    let mut written = 0usize;
    let mut shopper = 0usize;
    while written < spec.events {
        let events = shopper_events(&mut rng, catalog, shopper, spec.end_ms);
        for event in events.iter().take(spec.events - written) {
            serde_json::to_writer(&mut *out, event)?;
            out.write_all(b"\n")?;
        }
        written += events.len().min(spec.events - written);
        shopper += 1;
    }
    Ok(shopper)
}

/// One shopper's year: their sessions in time order, as wire-format events.
fn shopper_events(rng: &mut SplitMix64, catalog: &Catalog, shopper: usize, end_ms: i64) -> Vec<Value> {
    let user = format!("u{shopper}");
    let favourites = [rng.below(DEPARTMENTS.len()), rng.below(DEPARTMENTS.len())];
    // A few shoppers make most of the sessions.
    let sessions = 1 + zipf(rng, 60);
    let mut starts: Vec<i64> =
        (0..sessions).map(|_| end_ms - (rng.next_f64() * 365.0 * DAY_MS as f64) as i64).collect();
    starts.sort_unstable();
    let mut events = Vec::new();
    let mut bought: Vec<usize> = Vec::new();
    for (n, start) in starts.into_iter().enumerate() {
        let department = if rng.next_f64() < 0.8 { favourites[rng.below(2)] } else { rng.below(DEPARTMENTS.len()) };
        let mut session =
            Session { user: &user, id: format!("{user}-s{n}"), at: start, events: &mut events, seq: n * 100 };
        let ordered = session.browse(rng, catalog, department);
        if CONSUMABLES.contains(&department) && !bought.is_empty() && rng.next_f64() < 0.3 {
            let again = bought[rng.below(bought.len())];
            session.order(rng, catalog, &[again]);
        }
        bought.extend(ordered);
    }
    // Returns (and a session's last minutes) near the end stay within it.
    for event in &mut events {
        if event["timestamp"].as_i64().is_some_and(|at| at > end_ms) {
            event["timestamp"] = json!(end_ms);
        }
    }
    events.sort_by_key(|e| e["timestamp"].as_i64());
    events
}

/// The events of one session as it is being written.
struct Session<'a> {
    user: &'a str,
    id: String,
    at: i64,
    events: &'a mut Vec<Value>,
    seq: usize,
}

impl Session<'_> {
    /// A search (sometimes), views, basket additions and maybe an order; returns the items ordered.
    fn browse(&mut self, rng: &mut SplitMix64, catalog: &Catalog, department: usize) -> Vec<usize> {
        let Some(first) = catalog.pick(rng, department) else { return Vec::new() };
        if rng.next_f64() < 1.0 / 3.0 {
            let item = &catalog.items[first];
            let kind = DEPARTMENTS[item.department].1[item.product_type].0.to_lowercase();
            self.push(json!({"type": "search", "query": format!("{} {kind}", item.colour)}));
        }
        let mut basket = Vec::new();
        let views = 1 + rng.below(10);
        for view in 0..views {
            let item = if view == 0 { first } else { catalog.pick(rng, department).unwrap_or(first) };
            self.push(
                json!({"type": "view", "item_id": catalog.items[item].id, "dwell_ms": 2_000 + rng.below(60_000)}),
            );
            if rng.next_f64() < 0.2 {
                self.push(json!({"type": "add_to_cart", "item_id": catalog.items[item].id, "quantity": 1}));
                basket.push(item);
            }
        }
        if basket.is_empty() || rng.next_f64() < 0.5 {
            return Vec::new();
        }
        self.order(rng, catalog, &basket);
        basket
    }

    /// An order of `items` (one unit each), and the returns of some of its lines days later.
    fn order(&mut self, rng: &mut SplitMix64, catalog: &Catalog, items: &[usize]) {
        let order_id = format!("{}-o{}", self.id, self.seq);
        let line = |item: usize| json!({"item_id": catalog.items[item].id, "quantity": 1, "unit_price": format!("{:.2}", catalog.items[item].price)});
        let lines: Vec<Value> = items.iter().map(|&item| line(item)).collect();
        self.push(json!({"type": "purchase", "order_id": order_id, "currency": "GBP", "lines": lines}));
        let returned: Vec<Value> = items.iter().filter(|_| rng.next_f64() < 0.06).map(|&item| line(item)).collect();
        if !returned.is_empty() {
            let later = self.at + (2 + rng.below(19)) as i64 * DAY_MS;
            self.seq += 1;
            let id = format!("{}-e{}", self.id, self.seq);
            self.events.push(json!({"type": "return", "event_id": id, "user_id": self.user, "order_id": order_id,
                "currency": "GBP", "lines": returned, "timestamp": later}));
        }
    }

    /// Appends an event of the session, a few seconds to a minute after the previous one.
    fn push(&mut self, mut event: Value) {
        self.at += 3_000 + (self.seq as i64 * 7_919) % 60_000;
        self.seq += 1;
        let fields = event.as_object_mut().expect("an event is an object");
        fields.insert("event_id".into(), json!(format!("{}-e{}", self.id, self.seq)));
        fields.insert("user_id".into(), json!(self.user));
        fields.insert("session_id".into(), json!(self.id));
        fields.insert("timestamp".into(), json!(self.at));
        self.events.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{Event, EventInput, Item, ItemInput, Timestamp};

    fn spec(items: usize, events: usize) -> ShopSpec {
        ShopSpec { items, events, seed: 3, end_ms: Timestamp::now().millis() - DAY_MS }
    }

    fn generated(spec: &ShopSpec) -> (Catalog, Vec<u8>) {
        let catalog = Catalog::generate(spec);
        let mut out = Vec::new();
        write_events(spec, &catalog, &mut out).unwrap();
        (catalog, out)
    }

    #[test]
    fn the_same_spec_gives_the_same_files_and_the_sizes_asked_for() {
        let spec = spec(2_000, 20_000);
        let (catalog, events) = generated(&spec);
        assert_eq!(catalog.items.len(), 2_000);
        assert_eq!(events.iter().filter(|b| **b == b'\n').count(), 20_000);
        let (again, events_again) = generated(&spec);
        assert_eq!(catalog.items, again.items);
        assert!(events == events_again, "the same seed writes the same bytes");
        let (other, _) = generated(&ShopSpec { seed: 4, ..spec });
        assert_ne!(catalog.items, other.items);
    }

    #[test]
    fn every_line_is_accepted_by_the_api_parsers_and_behaviour_is_skewed() {
        let spec = spec(3_000, 30_000);
        let (catalog, events) = generated(&spec);
        for item in &catalog.items {
            let line = item.feed_line();
            let input = ItemInput {
                id: line["id"].as_str().map(String::from),
                title: line["title"].as_str().map(String::from),
                ..Default::default()
            };
            Item::parse(input, Timestamp::now()).unwrap();
        }
        let mut views = std::collections::HashMap::<String, usize>::new();
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        let mut ids = std::collections::HashSet::new();
        for line in events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let input: EventInput = serde_json::from_slice(line).unwrap();
            let event = Event::parse(input, Timestamp::now())
                .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(line)));
            assert!(ids.insert(event.id.to_string()), "event ids are unique");
            let kind = event.kind.event_type().as_str().to_string();
            if let attune_core::EventKind::View { item_id, .. } = &event.kind {
                *views.entry(item_id.to_string()).or_default() += 1;
            }
            *kinds.entry(kind).or_default() += 1;
        }
        for kind in ["view", "add_to_cart", "purchase", "return", "search"] {
            assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "{kind}: {kinds:?}");
        }
        // Zipf: the top 10 % of viewed items take far more than 10 % of the views.
        let mut counts: Vec<usize> = views.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = counts.iter().take(counts.len() / 10).sum();
        assert!(
            top * 10 > counts.iter().sum::<usize>() * 3,
            "top decile has {top} of {} views",
            counts.iter().sum::<usize>()
        );
    }
}
