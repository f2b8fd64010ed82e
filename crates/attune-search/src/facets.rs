//! Facet counts over a filtered result set: brand, category (top level and second level), colour, size and
//! price ranges. Values are counted as the catalog spells them; lists are sorted by count, then name. Each
//! item's values are numbered once ([`FacetIndex`]), so a count is array increments.

use attune_core::Item;

use crate::numbering::Numbering;

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

/// The facets counted by value, in the order of [`FacetIndex::values`]: brand, category, subcategory,
/// colour, size.
const VALUE_FACETS: usize = 5;

/// Each item's facet values as numbers into per-facet value lists, worked out once when the engine is built, so
/// counting a result set (thousands of items for a broad query) touches no strings.
pub struct FacetIndex {
    /// Per facet, its distinct values as the catalog spells them.
    values: [Numbering; VALUE_FACETS],
    /// Per item, per facet, the number of its value (if it has one), and its price bucket.
    per_item: Vec<([Option<u32>; VALUE_FACETS], Option<u8>)>,
}

impl FacetIndex {
    pub fn build(items: &[Item]) -> Self {
        let mut values: [Numbering; VALUE_FACETS] = Default::default();
        let per_item = items
            .iter()
            .map(|item| {
                let texts: [Option<String>; VALUE_FACETS] = [
                    item.brand.clone(),
                    item.category_path.first().cloned(),
                    (item.category_path.len() >= 2).then(|| item.category_path[..2].join(" > ")),
                    attribute_display(item, AttributeKind::Colour),
                    attribute_display(item, AttributeKind::Size),
                ];
                let mut item_values = [None; VALUE_FACETS];
                for (facet, text) in texts.into_iter().enumerate() {
                    item_values[facet] = text.map(|text| values[facet].number(text));
                }
                let bucket = item.price.as_ref().map(|money| {
                    let amount = money.as_major_f64();
                    PRICE_BOUNDS.iter().position(|bound| amount < *bound).unwrap_or(PRICE_BOUNDS.len()) as u8
                });
                (item_values, bucket)
            })
            .collect();
        Self { values, per_item }
    }

    /// Counts facets over the items at `positions`, keeping at most `limit` values per facet (most frequent
    /// first, then by name).
    pub fn count(&self, positions: impl IntoIterator<Item = usize>, limit: usize) -> Facets {
        let mut counts: [Vec<usize>; VALUE_FACETS] = std::array::from_fn(|facet| vec![0; self.values[facet].len()]);
        let mut price = [0usize; PRICE_BOUNDS.len() + 1];
        for position in positions {
            let (item_values, bucket) = &self.per_item[position];
            for (facet, value) in item_values.iter().enumerate() {
                if let Some(value) = value {
                    counts[facet][*value as usize] += 1;
                }
            }
            if let Some(bucket) = bucket {
                price[usize::from(*bucket)] += 1;
            }
        }
        let [brand, category, subcategory, colour, size] =
            std::array::from_fn(|facet| self.sorted(facet, &counts[facet], limit));
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
        Facets { brand, category, subcategory, colour, size, price }
    }

    fn sorted(&self, facet: usize, counts: &[usize], limit: usize) -> Vec<FacetCount> {
        let names = &self.values[facet];
        let mut list: Vec<(usize, usize)> =
            counts.iter().enumerate().filter(|(_, count)| **count > 0).map(|(value, count)| (value, *count)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| names.text(a.0 as u32).cmp(names.text(b.0 as u32))));
        list.truncate(limit);
        list.into_iter()
            .map(|(value, count)| FacetCount { value: names.text(value as u32).to_string(), count })
            .collect()
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
