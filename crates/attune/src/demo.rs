//! The bundled demo store: a year of a real UK online gift shop (UCI Online Retail I, Daqing Chen,
//! <https://doi.org/10.24432/C5BW33>, CC BY 4.0), compiled into the binary and turned into Attune items,
//! users and events on demand.
//!
//! The compact file `data/demo/online_retail.attune.gz` is produced by `scripts/build_demo_data.py`, whose
//! header documents the format and which source rows were dropped (non-merchandise codes, zero prices).
//! Everything here goes through the core crate's input types and `parse` functions, so the demo data is
//! validated exactly like data sent to the API.
//!
//! How the source becomes Attune data:
//! - items: id = StockCode; title = the most common description in a readable capitalisation (see
//!   [`readable_title`]: a shouting "WHITE HANGING HEART T-LIGHT HOLDER" becomes "White hanging heart
//!   t-light holder", descriptions already in mixed case are kept); price = the modal unit price in GBP;
//!   no category (the source has none and none is made up); no description (the source's only text is
//!   the title); `created_at` = the first sale (the first cancellation for the few items only ever
//!   returned); `stock_quantity` simulated (the source has no inventory; see `RawDataset::simulated_stock`:
//!   2 to 59 days of recent sales, so the reorder list has real work to do), availability from it.
//! - users: id = CustomerID, trait `country`, default consent, `created_at` = the first invoice.
//! - events: each invoice is one `purchase`, each cancellation invoice (`C…`) one `return` with positive
//!   quantities; `event_id` and `session_id` are `or1-<InvoiceNo>`, guests get the anonymous id
//!   `guest-<InvoiceNo>`, context `country`. The one invoice with more order lines than an event allows
//!   ([`MAX_LIST_LEN`]) is split into parts `or1-<InvoiceNo>`, `or1-<InvoiceNo>/2`, … of the same order.
//!
//! The source's dates run from December 2010 to December 2011. So that the demo behaves like a live shop
//! (analytics as of today, new clicks next to recent orders), `attune serve --demo` loads it shifted by a
//! whole number of days ([`DemoDataset::shift_to_end_before`]): the last invoice falls on the day before
//! loading. Every event carries the shift in its context (`demo_shift_days`); the original time is the
//! event's time minus that many days. Items' and customers' dates move with them.

use anyhow::{Context, anyhow, bail, ensure};
use attune_core::event::MAX_LIST_LEN;
use attune_core::input::{AmountInput, ScalarValue, TimeInput};
use attune_core::time::MILLIS_PER_DAY;
use attune_core::{Event, EventInput, Item, ItemInput, OrderLineInput, TenantId, Timestamp, User, UserInput};
use flate2::read::GzDecoder;
use std::collections::BTreeMap;
use std::io::Read;

/// The compressed demo data, built by `scripts/build_demo_data.py`.
const DEMO_DATA_GZ: &[u8] = include_bytes!("../../../data/demo/online_retail.attune.gz");
const FORMAT_MAGIC: &str = "#attune-demo";
const FORMAT_VERSION: &str = "1";
const CURRENCY: &str = "GBP";
/// Days of recent sales the simulated stock is sized from.
const STOCK_RATE_DAYS: i64 = 90;
/// Prefix of event and session ids, so demo events are recognisable and re-loading them is idempotent.
const ID_PREFIX: &str = "or1-";

/// The demo shop as Attune data, ready to be stored in [`demo_tenant_id`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemoDataset {
    pub items: Vec<Item>,
    pub users: Vec<User>,
    /// Purchases and returns, oldest first.
    pub events: Vec<Event>,
}

/// The context key of each demo event that holds the days its time was shifted by.
pub const SHIFT_CONTEXT_KEY: &str = "demo_shift_days";

impl DemoDataset {
    /// Moves every date by whole days so that the last event falls on the day (UTC) before `today`; returns
    /// the shift in days and records it in each event's context under [`SHIFT_CONTEXT_KEY`].
    pub fn shift_to_end_before(&mut self, today: Timestamp) -> anyhow::Result<i64> {
        let last = self.events.iter().map(|e| e.timestamp.millis()).max().context("the demo has no events")?;
        let days = (today.millis().div_euclid(MILLIS_PER_DAY) - 1) - last.div_euclid(MILLIS_PER_DAY);
        self.shift_by_days(days)?;
        Ok(days)
    }

    /// Moves every date by `days` whole days, recording the shift in each event's context.
    pub fn shift_by_days(&mut self, days: i64) -> anyhow::Result<()> {
        let shift = |t: &mut Timestamp| -> anyhow::Result<()> {
            *t =
                Timestamp::from_millis(t.millis() + days * MILLIS_PER_DAY).map_err(|e| anyhow!("shifted time: {e}"))?;
            Ok(())
        };
        for event in &mut self.events {
            shift(&mut event.timestamp)?;
            event.context.insert(SHIFT_CONTEXT_KEY.to_string(), ScalarValue::Number(days as f64));
        }
        for item in &mut self.items {
            shift(&mut item.created_at)?;
            shift(&mut item.updated_at)?;
        }
        for user in &mut self.users {
            shift(&mut user.created_at)?;
            shift(&mut user.updated_at)?;
        }
        Ok(())
    }
}

/// The tenant the demo data is loaded into.
pub fn demo_tenant_id() -> TenantId {
    TenantId::parse_slug("demo").expect("`demo` is a valid tenant id")
}

/// Decompress and convert the bundled demo data.
pub fn load_demo_dataset() -> anyhow::Result<DemoDataset> {
    let started = std::time::Instant::now();
    let mut text = String::new();
    GzDecoder::new(DEMO_DATA_GZ).read_to_string(&mut text).context("the bundled demo data cannot be decompressed")?;
    let raw = RawDataset::parse(&text).context("the bundled demo data is malformed")?;
    let dataset = raw.into_dataset()?;
    tracing::debug!(
        items = dataset.items.len(),
        users = dataset.users.len(),
        events = dataset.events.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "demo data loaded"
    );
    Ok(dataset)
}

/// Make an all-caps description readable: when most of its letters are capitals, every word written
/// mostly in capitals is lowercased and the first letter of the title is capitalised; words already in
/// mixed or lower case ("125g", "No", "40x40cm") are kept. Descriptions that are not shouting are kept
/// as they are. Runs of whitespace become one space.
pub fn readable_title(description: &str) -> String {
    let words: Vec<&str> = description.split_whitespace().collect();
    let (upper, lower) = count_letter_cases(description);
    if upper <= lower {
        return words.join(" ");
    }
    let mut title = String::with_capacity(description.len());
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            title.push(' ');
        }
        let (upper, lower) = count_letter_cases(word);
        if upper > lower {
            title.push_str(&word.to_lowercase());
        } else {
            title.push_str(word);
        }
    }
    let mut characters = title.chars();
    match characters.next() {
        Some(first) if first.is_alphabetic() => first.to_uppercase().chain(characters).collect(),
        _ => title,
    }
}

fn count_letter_cases(text: &str) -> (usize, usize) {
    text.chars().fold((0, 0), |(upper, lower), c| {
        (upper + usize::from(c.is_uppercase()), lower + usize::from(c.is_lowercase()))
    })
}

/// An item record of the file.
#[derive(Debug)]
struct RawItem<'a> {
    stock_code: &'a str,
    price_pence: i64,
    description: &'a str,
}

/// A customer record of the file.
#[derive(Debug)]
struct RawCustomer<'a> {
    customer_id: &'a str,
    country: usize,
}

#[derive(Debug)]
struct RawLine {
    item: usize,
    quantity: i64,
    price_pence: i64,
}

/// An invoice record of the file; a cancellation when its number starts with `C`.
#[derive(Debug)]
struct RawInvoice<'a> {
    invoice_no: &'a str,
    minutes: i64,
    customer_id: Option<&'a str>,
    country: usize,
    lines: Vec<RawLine>,
}

impl RawInvoice<'_> {
    fn is_cancellation(&self) -> bool {
        self.invoice_no.starts_with('C')
    }
}

/// The file's records, with indexes checked but nothing converted yet.
#[derive(Debug, Default)]
struct RawDataset<'a> {
    countries: Vec<&'a str>,
    items: Vec<RawItem<'a>>,
    customers: Vec<RawCustomer<'a>>,
    invoices: Vec<RawInvoice<'a>>,
    line_count: usize,
}

impl<'a> RawDataset<'a> {
    fn parse(text: &'a str) -> anyhow::Result<Self> {
        let mut lines = text.lines().enumerate().map(|(index, line)| (index + 1, line));
        let (_, header) = lines.next().ok_or_else(|| anyhow!("the file is empty"))?;
        let mut header_fields = header.split('\t');
        ensure!(header_fields.next() == Some(FORMAT_MAGIC), "line 1 is not an `{FORMAT_MAGIC}` header");
        let version = header_fields.next().unwrap_or_default();
        ensure!(version == FORMAT_VERSION, "format version `{version}` is not the supported version {FORMAT_VERSION}");

        let mut raw = RawDataset::default();
        let mut minutes = 0_i64;
        let mut totals_seen = false;
        for (line_number, line) in lines {
            ensure!(!totals_seen, "line {line_number}: records after the totals line");
            let mut fields = line.split('\t');
            let record = fields.next().unwrap_or_default();
            let mut field = |name: &str| -> anyhow::Result<&'a str> {
                fields.next().ok_or_else(|| anyhow!("line {line_number}: `{record}` record without {name}"))
            };
            match record {
                "K" => raw.countries.push(field("country")?),
                "I" => raw.items.push(RawItem {
                    stock_code: field("stock code")?,
                    price_pence: parse_number(field("price")?, line_number)?,
                    description: field("description")?,
                }),
                "U" => {
                    let customer_id = field("customer id")?;
                    let country = raw.country_index(field("country")?, line_number)?;
                    raw.customers.push(RawCustomer { customer_id, country });
                }
                "O" => {
                    minutes += parse_number::<i64>(field("minutes")?, line_number)?;
                    let invoice_no = field("invoice number")?;
                    let customer_id = Some(field("customer id")?).filter(|c| !c.is_empty());
                    let country = raw.country_index(field("country")?, line_number)?;
                    let lines = field("lines")?
                        .split(' ')
                        .map(|entry| raw.parse_line(entry, line_number))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    raw.line_count += lines.len();
                    raw.invoices.push(RawInvoice { invoice_no, minutes, customer_id, country, lines });
                }
                "T" => {
                    totals_seen = true;
                    let expected: [usize; 4] = [
                        parse_number(field("item total")?, line_number)?,
                        parse_number(field("customer total")?, line_number)?,
                        parse_number(field("invoice total")?, line_number)?,
                        parse_number(field("line total")?, line_number)?,
                    ];
                    let found = [raw.items.len(), raw.customers.len(), raw.invoices.len(), raw.line_count];
                    ensure!(expected == found, "totals {expected:?} do not match the records read {found:?}");
                }
                other => bail!("line {line_number}: unknown record type `{other}`"),
            }
        }
        ensure!(totals_seen, "the totals line is missing (truncated file?)");
        Ok(raw)
    }

    fn country_index(&self, text: &str, line_number: usize) -> anyhow::Result<usize> {
        let index: usize = parse_number(text, line_number)?;
        ensure!(index < self.countries.len(), "line {line_number}: no country {index}");
        Ok(index)
    }

    /// `ITEMxQUANTITY` or `ITEMxQUANTITY@PENCE`.
    fn parse_line(&self, entry: &str, line_number: usize) -> anyhow::Result<RawLine> {
        let (item, rest) =
            entry.split_once('x').ok_or_else(|| anyhow!("line {line_number}: order line `{entry}` has no quantity"))?;
        let item: usize = parse_number(item, line_number)?;
        let typical = self.items.get(item).ok_or_else(|| anyhow!("line {line_number}: no item {item}"))?;
        let (quantity, price_pence) = match rest.split_once('@') {
            Some((quantity, price)) => (parse_number(quantity, line_number)?, parse_number(price, line_number)?),
            None => (parse_number(rest, line_number)?, typical.price_pence),
        };
        Ok(RawLine { item, quantity, price_pence })
    }

    fn into_dataset(self) -> anyhow::Result<DemoDataset> {
        let mut first_sold: Vec<Option<i64>> = vec![None; self.items.len()];
        let mut first_seen: Vec<Option<i64>> = vec![None; self.items.len()];
        let mut first_invoice_of: BTreeMap<&str, i64> = BTreeMap::new();
        for invoice in &self.invoices {
            for line in &invoice.lines {
                first_seen[line.item] = Some(first_seen[line.item].map_or(invoice.minutes, |m| m.min(invoice.minutes)));
                if !invoice.is_cancellation() {
                    first_sold[line.item] =
                        Some(first_sold[line.item].map_or(invoice.minutes, |m| m.min(invoice.minutes)));
                }
            }
            if let Some(customer) = invoice.customer_id {
                let first = first_invoice_of.entry(customer).or_insert(invoice.minutes);
                *first = (*first).min(invoice.minutes);
            }
        }

        let stock = self.simulated_stock();
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                let minutes = first_sold[index]
                    .or(first_seen[index])
                    .ok_or_else(|| anyhow!("item {} is in no invoice", raw.stock_code))?;
                let created_at = timestamp_of_minutes(minutes)?;
                let input = ItemInput {
                    id: Some(raw.stock_code.to_string()),
                    title: Some(readable_title(raw.description)),
                    price: Some(AmountInput::Text(pence_to_decimal(raw.price_pence))),
                    currency: Some(CURRENCY.to_string()),
                    // Availability follows from the stock figure (none in stock: out of stock).
                    stock_quantity: Some(stock[index]),
                    created_at: Some(TimeInput::Millis(created_at.millis())),
                    ..Default::default()
                };
                Item::parse(input, created_at).with_context(|| format!("demo item {}", raw.stock_code))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let users = self
            .customers
            .iter()
            .map(|raw| {
                let minutes = first_invoice_of
                    .get(raw.customer_id)
                    .ok_or_else(|| anyhow!("customer {} has no invoice", raw.customer_id))?;
                let traits = BTreeMap::from([(
                    "country".to_string(),
                    ScalarValue::Text(self.countries[raw.country].to_string()),
                )]);
                let input = UserInput { id: Some(raw.customer_id.to_string()), traits: Some(traits), consent: None };
                User::parse(input, timestamp_of_minutes(*minutes)?)
                    .with_context(|| format!("demo customer {}", raw.customer_id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let mut events = self.convert_invoices()?;
        // The file is in time order already; a stable sort keeps it so even if it were not.
        events.sort_by_key(|event| event.timestamp);
        Ok(DemoDataset { items, users, events })
    }

    /// Simulated units on hand per item, as of the end of the data (the source has no inventory): the item's
    /// average daily sales over the last [`STOCK_RATE_DAYS`] days (over the whole year when it sold nothing
    /// then) times a cover of 2 to 59 days drawn from a hash of the stock code, rounded up. Items never sold
    /// have none. Deterministic, so reloading the demo gives the same stock.
    fn simulated_stock(&self) -> Vec<i64> {
        let end = self.invoices.iter().map(|i| i.minutes).max().unwrap_or(0);
        let first = self.invoices.iter().map(|i| i.minutes).min().unwrap_or(0);
        let recent_start = end - STOCK_RATE_DAYS * 24 * 60;
        let mut recent = vec![0_i64; self.items.len()];
        let mut year = vec![0_i64; self.items.len()];
        for invoice in self.invoices.iter().filter(|i| !i.is_cancellation()) {
            for line in &invoice.lines {
                year[line.item] += line.quantity;
                if invoice.minutes > recent_start {
                    recent[line.item] += line.quantity;
                }
            }
        }
        let year_days = ((end - first) as f64 / (24.0 * 60.0)).max(1.0);
        self.items
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                let daily = if recent[index] > 0 {
                    recent[index] as f64 / STOCK_RATE_DAYS as f64
                } else {
                    year[index].max(0) as f64 / year_days
                };
                // FNV-1a of the stock code: a stable, platform-independent draw.
                let hash = raw
                    .stock_code
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
                let cover_days = 2 + (hash % 58) as i64;
                (daily * cover_days as f64).ceil() as i64
            })
            .collect()
    }

    /// Invoices to events; the parsing is spread over the available cores (it is most of the load time).
    fn convert_invoices(&self) -> anyhow::Result<Vec<Event>> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let chunk_size = self.invoices.len().div_ceil(workers).max(1);
        let converted: Vec<anyhow::Result<Vec<Event>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .invoices
                .chunks(chunk_size)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut events = Vec::with_capacity(chunk.len());
                        for invoice in chunk {
                            self.convert_invoice(invoice, &mut events)?;
                        }
                        Ok(events)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("demo conversion thread panicked")).collect()
        });
        let mut events = Vec::with_capacity(self.invoices.len() + 1);
        for chunk in converted {
            events.extend(chunk?);
        }
        Ok(events)
    }

    fn convert_invoice(&self, invoice: &RawInvoice<'_>, events: &mut Vec<Event>) -> anyhow::Result<()> {
        let timestamp = timestamp_of_minutes(invoice.minutes)?;
        let event_type = if invoice.is_cancellation() { "return" } else { "purchase" };
        let context =
            BTreeMap::from([("country".to_string(), ScalarValue::Text(self.countries[invoice.country].to_string()))]);
        for (part, lines) in invoice.lines.chunks(MAX_LIST_LEN).enumerate() {
            let event_id = match part {
                0 => format!("{ID_PREFIX}{}", invoice.invoice_no),
                _ => format!("{ID_PREFIX}{}/{}", invoice.invoice_no, part + 1),
            };
            let lines = lines
                .iter()
                .map(|line| OrderLineInput {
                    item_id: self.items[line.item].stock_code.to_string(),
                    quantity: line.quantity,
                    unit_price: AmountInput::Text(pence_to_decimal(line.price_pence)),
                })
                .collect();
            let input = EventInput {
                event_type: event_type.to_string(),
                event_id: Some(event_id),
                user_id: invoice.customer_id.map(str::to_string),
                anonymous_id: match invoice.customer_id {
                    Some(_) => None,
                    None => Some(format!("guest-{}", invoice.invoice_no)),
                },
                session_id: Some(format!("{ID_PREFIX}{}", invoice.invoice_no)),
                timestamp: Some(TimeInput::Millis(timestamp.millis())),
                channel: Some("web".to_string()),
                context: Some(context.clone()),
                order_id: Some(invoice.invoice_no.to_string()),
                currency: Some(CURRENCY.to_string()),
                lines: Some(lines),
                ..Default::default()
            };
            let event =
                Event::parse(input, timestamp).with_context(|| format!("demo invoice {}", invoice.invoice_no))?;
            events.push(event);
        }
        Ok(())
    }
}

fn parse_number<T: std::str::FromStr>(text: &str, line_number: usize) -> anyhow::Result<T> {
    text.parse().map_err(|_| anyhow!("line {line_number}: `{text}` is not a number"))
}

fn timestamp_of_minutes(minutes: i64) -> anyhow::Result<Timestamp> {
    Timestamp::from_millis(minutes * 60_000).map_err(|e| anyhow!("invoice time: {e}"))
}

fn pence_to_decimal(pence: i64) -> String {
    format!("{}.{:02}", pence / 100, pence % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{Availability, EventKind};
    use std::sync::OnceLock;

    fn dataset() -> &'static DemoDataset {
        static DATASET: OnceLock<DemoDataset> = OnceLock::new();
        DATASET.get_or_init(|| load_demo_dataset().expect("the demo data loads"))
    }

    #[test]
    fn counts_are_in_the_expected_range() {
        let data = dataset();
        assert!((3_800..=4_000).contains(&data.items.len()), "{} items", data.items.len());
        assert!((4_300..=4_400).contains(&data.users.len()), "{} users", data.users.len());
        assert!((23_000..=23_300).contains(&data.events.len()), "{} events", data.events.len());
        let returns = data.events.iter().filter(|e| matches!(e.kind, EventKind::Return { .. })).count();
        assert!((3_000..=4_000).contains(&returns), "{returns} returns");
        let lines: usize = data
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Purchase { lines, .. } | EventKind::Return { lines, .. } => lines.len(),
                _ => 0,
            })
            .sum();
        assert!((500_000..=540_000).contains(&lines), "{lines} order lines");
    }

    #[test]
    fn known_customer_and_item_are_present() {
        let data = dataset();
        let customer = data.users.iter().find(|u| u.id.as_str() == "17850").expect("customer 17850");
        assert_eq!(customer.traits["country"], ScalarValue::Text("United Kingdom".into()));
        assert_eq!(customer.created_at.to_string(), "2010-12-01T08:26:00.000Z");
        let item = data.items.iter().find(|i| i.id.as_str() == "85123A").expect("item 85123A");
        assert_eq!(item.title, "White hanging heart t-light holder");
        assert_eq!(item.price.unwrap().currency.as_str(), "GBP");
        assert!(item.category_path.is_empty());
        assert_eq!(item.created_at.to_string(), "2010-12-01T08:26:00.000Z");
    }

    #[test]
    fn simulated_stock_covers_recent_sales_for_2_to_59_days() {
        let data = dataset();
        assert!(data.items.iter().all(|i| i.stock_quantity.is_some_and(|s| s >= 0)));
        let in_stock = data.items.iter().filter(|i| i.availability == Availability::InStock).count();
        assert!(in_stock * 100 >= data.items.len() * 95, "{in_stock} of {} in stock", data.items.len());
        let best = data.items.iter().find(|i| i.id.as_str() == "85123A").unwrap();
        // About 100 a day over the last 90 days: at least 2 days of cover, at most 59.
        let stock = best.stock_quantity.unwrap();
        assert!((150..=8_000).contains(&stock), "{stock}");
        let out_of_stock: Vec<_> = data.items.iter().filter(|i| i.stock_quantity == Some(0)).collect();
        assert!(out_of_stock.iter().all(|i| i.availability == Availability::OutOfStock));
    }

    #[test]
    fn first_invoice_is_a_purchase_with_seven_lines() {
        let first = &dataset().events[0];
        assert_eq!(first.id.as_str(), "or1-536365");
        assert_eq!(first.timestamp.to_string(), "2010-12-01T08:26:00.000Z");
        assert_eq!(first.subject.user_id.as_ref().map(|u| u.as_str()), Some("17850"));
        assert_eq!(first.session_id.as_ref().map(|s| s.as_str()), Some("or1-536365"));
        assert_eq!(first.context["country"], ScalarValue::Text("United Kingdom".into()));
        let EventKind::Purchase { order_id, lines } = &first.kind else { panic!("not a purchase: {first:?}") };
        assert_eq!(order_id.as_str(), "536365");
        assert_eq!(lines.len(), 7);
        assert_eq!((lines[0].item_id.as_str(), lines[0].quantity, lines[0].unit_price.minor_units), ("85123A", 6, 255));
    }

    #[test]
    fn returns_have_positive_quantities_and_guests_are_anonymous() {
        let data = dataset();
        let mut returns = 0;
        for event in &data.events {
            if let EventKind::Return { order_id, lines } = &event.kind {
                returns += 1;
                assert!(order_id.as_ref().is_some_and(|o| o.as_str().starts_with('C')));
                assert!(event.id.as_str().starts_with("or1-C"));
                assert!(lines.iter().all(|l| l.quantity > 0));
            }
            if event.subject.user_id.is_none() {
                let anonymous = event.subject.anonymous_id.as_ref().expect("guest has an anonymous id");
                assert!(anonymous.as_str().starts_with("guest-"));
            }
        }
        assert!(returns > 0);
        assert!(data.events.iter().any(|e| e.subject.user_id.is_none()));
    }

    #[test]
    fn events_are_sorted_and_unique_and_parse_again() {
        let data = dataset();
        assert!(data.events.windows(2).all(|pair| pair[0].timestamp <= pair[1].timestamp));
        let ids: std::collections::HashSet<&str> = data.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), data.events.len());
        for event in &data.events {
            let again = Event::parse(event.to_input(), Timestamp::now()).expect("written events parse");
            assert_eq!(&again, event);
        }
    }

    #[test]
    fn the_oversized_invoice_is_split_into_parts_of_one_order() {
        let parts: Vec<&Event> = dataset()
            .events
            .iter()
            .filter(|e| e.session_id.as_ref().is_some_and(|s| s.as_str() == "or1-573585"))
            .collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].id.as_str(), "or1-573585/2");
        for part in parts {
            let EventKind::Purchase { order_id, lines } = &part.kind else { panic!("not a purchase") };
            assert_eq!(order_id.as_str(), "573585");
            assert!(lines.len() <= MAX_LIST_LEN);
        }
    }

    #[test]
    fn shifting_ends_the_history_the_day_before_and_keeps_the_original_dates_recoverable() {
        let mut data = dataset().clone();
        let today = Timestamp::parse_rfc3339("2026-12-07T11:00:00Z").unwrap();
        let days = data.shift_to_end_before(today).unwrap();
        let last = data.events.iter().map(|e| e.timestamp).max().unwrap();
        assert_eq!(last.day(), "2026-12-06");
        let first = &data.events[0];
        assert_eq!(first.context.get(SHIFT_CONTEXT_KEY), Some(&ScalarValue::Number(days as f64)));
        let original = Timestamp::from_millis(first.timestamp.millis() - days * MILLIS_PER_DAY).unwrap();
        assert_eq!(original.to_string(), "2010-12-01T08:26:00.000Z");
        assert!(data.items.iter().all(|i| i.created_at <= last) && data.users.iter().all(|u| u.created_at <= last));
    }

    #[test]
    fn loading_is_deterministic() {
        let again = load_demo_dataset().unwrap();
        assert_eq!(&again, dataset());
    }

    #[test]
    fn titles_become_readable() {
        assert_eq!(readable_title("WHITE HANGING HEART T-LIGHT HOLDER"), "White hanging heart t-light holder");
        assert_eq!(readable_title("BAG 125g SWIRLY MARBLES"), "Bag 125g swirly marbles");
        assert_eq!(readable_title("3 TRADITIONAl BISCUIT CUTTERS  SET"), "3 traditional biscuit cutters set");
        assert_eq!(readable_title("FRENCH BLUE METAL DOOR SIGN No"), "French blue metal door sign No");
        assert_eq!(readable_title("*USB Office Mirror Ball"), "*USB Office Mirror Ball");
        assert_eq!(readable_title("Dr. Jam's Arouzer Stress Ball"), "Dr. Jam's Arouzer Stress Ball");
    }

    #[test]
    fn malformed_files_are_errors() {
        let valid = "#attune-demo\t1\nK\tUnited Kingdom\nI\t85123A\t255\tWHITE HEART\nU\t17850\t0\n\
                     O\t21519866\t536365\t17850\t0\t0x6 0x2@300\nT\t1\t1\t1\t2\n";
        let raw = RawDataset::parse(valid).unwrap();
        assert_eq!(raw.invoices[0].lines[1].price_pence, 300);
        let dataset = raw.into_dataset().unwrap();
        assert_eq!(dataset.events.len(), 1);
        assert_eq!(dataset.events[0].timestamp.to_string(), "2010-12-01T08:26:00.000Z");

        let truncated = valid.trim_end().rsplit_once('\n').unwrap().0;
        assert!(format!("{:#}", RawDataset::parse(truncated).unwrap_err()).contains("totals"));
        let wrong_version = valid.replacen("\t1\n", "\t2\n", 1);
        assert!(format!("{:#}", RawDataset::parse(&wrong_version).unwrap_err()).contains("version"));
        let bad_item = valid.replace("0x6 ", "9x6 ");
        assert!(format!("{:#}", RawDataset::parse(&bad_item).unwrap_err()).contains("no item 9"));
    }
}
