//! Shopper profiles for personalised ranking: affinities to brands, categories and attribute values, built
//! from the items a shopper interacted with, plus the current session's items.
//!
//! [`ShopperProfile::from_interactions`] sums event weights per brand, per category prefix (every level of the
//! path, so "Men" and "Men > Shoes" both gain) and per attribute value, then scales each table so its largest
//! affinity is 1. [`ShopperProfile::personal_score`] of an item is a weighted mean of its brand, deepest
//! category and best attribute affinity, in [0, 1]. An empty profile scores every item 0.

use std::collections::{BTreeMap, HashMap};

use attune_core::{Item, ItemId};

/// What Attune knows about one shopper's tastes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShopperProfile {
    /// Lower-cased brand → affinity in [0, 1].
    pub brands: HashMap<String, f32>,
    /// Category path prefix joined by " > " → affinity in [0, 1].
    pub categories: HashMap<String, f32>,
    /// (attribute name lower-cased, value lower-cased) → affinity in [0, 1].
    pub attributes: HashMap<(String, String), f32>,
    /// Items of the current session; items close to them (by vector) gain.
    pub session_items: Vec<ItemId>,
}

/// How the parts of a profile weigh in [`ShopperProfile::personal_score`].
const BRAND_WEIGHT: f32 = 0.45;
const CATEGORY_WEIGHT: f32 = 0.35;
const ATTRIBUTE_WEIGHT: f32 = 0.2;

/// Category prefixes of an item, general to specific, joined by " > ".
pub fn category_prefixes(path: &[String]) -> Vec<String> {
    (1..=path.len()).map(|depth| path[..depth].join(" > ")).collect()
}

fn scale_to_unit<K>(table: &mut HashMap<K, f32>) {
    let max = table.values().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        table.values_mut().for_each(|v| *v /= max);
    }
    table.retain(|_, v| *v > 0.0);
}

impl ShopperProfile {
    /// The profile of an anonymous shopper: no personal term at all.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Whether the profile has no affinities and no session (ranking is then unpersonalised).
    pub fn is_empty(&self) -> bool {
        self.brands.is_empty()
            && self.categories.is_empty()
            && self.attributes.is_empty()
            && self.session_items.is_empty()
    }

    /// Builds affinities from (item, event weight) pairs, e.g. views 1, add-to-cart 3, purchases 5.
    /// Non-positive weights are ignored.
    pub fn from_interactions<'a>(interactions: impl IntoIterator<Item = (&'a Item, f32)>) -> Self {
        let mut profile = Self::default();
        for (item, weight) in interactions {
            if weight <= 0.0 || !weight.is_finite() {
                continue;
            }
            if let Some(brand) = &item.brand {
                *profile.brands.entry(brand.to_lowercase()).or_default() += weight;
            }
            for prefix in category_prefixes(&item.category_path) {
                *profile.categories.entry(prefix).or_default() += weight;
            }
            for (name, value) in &item.attributes {
                *profile.attributes.entry((name.to_lowercase(), value.to_text().to_lowercase())).or_default() += weight;
            }
        }
        scale_to_unit(&mut profile.brands);
        scale_to_unit(&mut profile.categories);
        scale_to_unit(&mut profile.attributes);
        profile
    }

    /// Adds the current session's items.
    pub fn with_session(mut self, items: impl IntoIterator<Item = ItemId>) -> Self {
        self.session_items.extend(items);
        self
    }

    /// The item's affinity in [0, 1] (session similarity is added by the engine, which has the vectors).
    pub fn personal_score(&self, item: &Item) -> f32 {
        let brand = item.brand.as_ref().and_then(|b| self.brands.get(&b.to_lowercase())).copied().unwrap_or(0.0);
        // The deepest category prefix the shopper has an affinity for.
        let mut category = 0.0;
        if !self.categories.is_empty() {
            let mut prefix = String::new();
            for (depth, level) in item.category_path.iter().enumerate() {
                if depth > 0 {
                    prefix.push_str(" > ");
                }
                prefix.push_str(level);
                if let Some(affinity) = self.categories.get(&prefix) {
                    category = *affinity;
                }
            }
        }
        if self.attributes.is_empty() {
            return BRAND_WEIGHT * brand + CATEGORY_WEIGHT * category;
        }
        let attribute = item
            .attributes
            .iter()
            .filter_map(|(name, value)| {
                self.attributes.get(&(name.to_lowercase(), value.to_text().to_lowercase())).copied()
            })
            .fold(0.0f32, f32::max);
        BRAND_WEIGHT * brand + CATEGORY_WEIGHT * category + ATTRIBUTE_WEIGHT * attribute
    }

    /// The strongest affinities, for explanations: (kind, name, affinity), best first.
    pub fn top_affinities(&self, n: usize) -> Vec<(&'static str, String, f32)> {
        let mut all: BTreeMap<(i64, &'static str, String), f32> = BTreeMap::new();
        let mut push = |kind: &'static str, name: String, value: f32| {
            all.insert((-(value * 1e6) as i64, kind, name), value);
        };
        self.brands.iter().for_each(|(k, v)| push("brand", k.clone(), *v));
        self.categories.iter().for_each(|(k, v)| push("category", k.clone(), *v));
        self.attributes.iter().for_each(|((k, val), v)| push("attribute", format!("{k}={val}"), *v));
        all.into_iter().take(n).map(|((_, kind, name), v)| (kind, name, v)).collect()
    }
}
