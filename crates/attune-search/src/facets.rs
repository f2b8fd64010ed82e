//! Facet counts over a filtered result set: brand, category (top level and second level), colour, size and
//! price ranges. Values are counted as the catalog spells them; lists are sorted by count, then name.

use std::collections::HashMap;

use attune_core::Item;

use crate::query::{AttributeKind, item_attribute};

/// One facet value and how many results have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

/// A price bucket in major units: `min <= price < max` (`max` None = no upper bound).
#[derive(Debug, Clone, PartialEq)]
pub struct PriceRangeCount {
    pub min: f64,
    pub max: Option<f64>,
    pub count: usize,
}

/// Facet counts of one result set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    pub brand: Vec<FacetCount>,
    /// First level of the category path.
    pub category: Vec<FacetCount>,
    /// First two levels, joined by " > ".
    pub subcategory: Vec<FacetCount>,
    pub colour: Vec<FacetCount>,
    pub size: Vec<FacetCount>,
    /// Only buckets with at least one result.
    pub price: Vec<PriceRangeCount>,
}

/// Upper bounds of the price buckets in major units.
pub const PRICE_BOUNDS: &[f64] = &[10.0, 25.0, 50.0, 100.0, 200.0, 500.0];

fn sorted(counts: HashMap<String, usize>, limit: usize) -> Vec<FacetCount> {
    let mut list: Vec<FacetCount> = counts.into_iter().map(|(value, count)| FacetCount { value, count }).collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    list.truncate(limit);
    list
}

/// Counts facets over `items`, keeping at most `limit` values per facet.
pub fn count_facets<'a>(items: impl IntoIterator<Item = &'a Item>, limit: usize) -> Facets {
    let mut brand = HashMap::new();
    let mut category = HashMap::new();
    let mut subcategory = HashMap::new();
    let mut colour = HashMap::new();
    let mut size = HashMap::new();
    let mut price = vec![0usize; PRICE_BOUNDS.len() + 1];
    for item in items {
        if let Some(name) = &item.brand {
            *brand.entry(name.clone()).or_default() += 1;
        }
        if let Some(top) = item.category_path.first() {
            *category.entry(top.clone()).or_default() += 1;
        }
        if item.category_path.len() >= 2 {
            *subcategory.entry(item.category_path[..2].join(" > ")).or_default() += 1;
        }
        if let Some(value) = attribute_display(item, AttributeKind::Colour) {
            *colour.entry(value).or_default() += 1;
        }
        if let Some(value) = attribute_display(item, AttributeKind::Size) {
            *size.entry(value).or_default() += 1;
        }
        if let Some(money) = &item.price {
            let amount = money.as_major_f64();
            let bucket = PRICE_BOUNDS.iter().position(|bound| amount < *bound).unwrap_or(PRICE_BOUNDS.len());
            price[bucket] += 1;
        }
    }
    let price = price
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0)
        .map(|(bucket, count)| PriceRangeCount {
            min: if bucket == 0 { 0.0 } else { PRICE_BOUNDS[bucket - 1] },
            max: PRICE_BOUNDS.get(bucket).copied(),
            count,
        })
        .collect();
    Facets {
        brand: sorted(brand, limit),
        category: sorted(category, limit),
        subcategory: sorted(subcategory, limit),
        colour: sorted(colour, limit),
        size: sorted(size, limit),
        price,
    }
}

/// The attribute value as the catalog spells it (not lower-cased), for display.
fn attribute_display(item: &Item, kind: AttributeKind) -> Option<String> {
    item_attribute(item, kind)?;
    item.attributes
        .iter()
        .find(|(key, _)| kind.keys().contains(&key.to_lowercase().as_str()))
        .map(|(_, value)| value.to_text())
}
