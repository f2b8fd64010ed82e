//! From behaviour to a matrix: per-event-type weights ([`InteractionWeights`]), the mapping from
//! [`attune_core::Event`]s to weighted [`Interaction`]s, dense id maps (external string ids ↔ `u32`) and
//! the user × item [`InteractionMatrix`] the models train on.

use std::collections::HashMap;

use attune_core::{Event, EventKind};
use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};
use crate::sparse::CsrMatrix;

/// How much each kind of event says about a shopper liking an item. Weights of the same (user, item)
/// are summed; a pair whose sum is not positive is left out of the matrix, so a `not_interested`
/// (strongly negative) cancels earlier views and carts.
///
/// Defaults: purchase 5 per order line (quantity ignored: ten socks are not ten times the preference),
/// add-to-cart 3, wishlist 2, view or click 1 plus up to `dwell_bonus` (1) growing linearly with dwell
/// time until `dwell_saturation_ms` (60 s), remove-from-cart −1.5, return −4 per line (a bought-then-returned
/// item keeps a weak positive), rating `(rating − rating_neutral) × rating_scale` (neutral 2.5, scale 1),
/// not-interested −20. Searches and impressions carry no item preference.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionWeights {
    pub purchase: f32,
    pub add_to_cart: f32,
    pub wishlist: f32,
    pub view: f32,
    pub click: f32,
    pub dwell_bonus: f32,
    pub dwell_saturation_ms: u32,
    pub remove_from_cart: f32,
    pub return_line: f32,
    pub rating_neutral: f32,
    pub rating_scale: f32,
    pub not_interested: f32,
}

impl Default for InteractionWeights {
    fn default() -> Self {
        Self {
            purchase: 5.0,
            add_to_cart: 3.0,
            wishlist: 2.0,
            view: 1.0,
            click: 1.0,
            dwell_bonus: 1.0,
            dwell_saturation_ms: 60_000,
            remove_from_cart: -1.5,
            return_line: -4.0,
            rating_neutral: 2.5,
            rating_scale: 1.0,
            not_interested: -20.0,
        }
    }
}

impl InteractionWeights {
    /// Checks the ordering the engine relies on: purchase > add-to-cart > view > 0 > not-interested.
    pub fn validate(&self) -> Result<(), RecsError> {
        let all = [self.purchase, self.add_to_cart, self.wishlist, self.view, self.click, self.dwell_bonus];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(invalid("weights", "positive-signal weights must be finite and non-negative"));
        }
        if !(self.purchase > self.add_to_cart && self.add_to_cart > self.view && self.view > 0.0) {
            return Err(invalid("weights", "expected purchase > add_to_cart > view > 0"));
        }
        if self.not_interested.is_nan() || self.not_interested >= 0.0 || self.dwell_saturation_ms == 0 {
            return Err(invalid("weights", "not_interested must be negative and dwell_saturation_ms positive"));
        }
        Ok(())
    }

    /// The weight of a view that lasted `dwell_ms` (unknown dwell: the plain view weight).
    pub fn view_weight(&self, dwell_ms: Option<u32>) -> f32 {
        let bonus = dwell_ms.map_or(0.0, |d| (d as f32 / self.dwell_saturation_ms as f32).min(1.0) * self.dwell_bonus);
        self.view + bonus
    }
}

/// One weighted (user, item) signal with its time, in external ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub user: String,
    pub item: String,
    pub weight: f32,
    pub timestamp_ms: i64,
}

/// Maps events to weighted interactions. The user key is the `user_id`, else `anon:` + the anonymous id;
/// events without an item preference (search, impression) give nothing.
pub fn interactions_from_events<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    weights: &InteractionWeights,
) -> Vec<Interaction> {
    let mut out = Vec::new();
    for event in events {
        let user = match (&event.subject.user_id, &event.subject.anonymous_id) {
            (Some(u), _) => u.as_str().to_string(),
            (None, Some(a)) => format!("anon:{}", a.as_str()),
            (None, None) => continue,
        };
        let timestamp_ms = event.timestamp.millis();
        out.extend(item_weights(&event.kind, weights).into_iter().map(|(item, weight)| Interaction {
            user: user.clone(),
            item: item.to_string(),
            weight,
            timestamp_ms,
        }));
    }
    out
}

/// The items an event says something about, each with its weight, in the event's order (one per order line).
pub fn item_weights<'a>(kind: &'a EventKind, weights: &InteractionWeights) -> Vec<(&'a str, f32)> {
    match kind {
        EventKind::View { item_id, dwell_ms } => vec![(item_id.as_str(), weights.view_weight(*dwell_ms))],
        EventKind::Click { item_id, .. } => vec![(item_id.as_str(), weights.click)],
        EventKind::AddToCart { item_id, .. } => vec![(item_id.as_str(), weights.add_to_cart)],
        EventKind::RemoveFromCart { item_id, .. } => vec![(item_id.as_str(), weights.remove_from_cart)],
        EventKind::Wishlist { item_id } => vec![(item_id.as_str(), weights.wishlist)],
        EventKind::NotInterested { item_id } => vec![(item_id.as_str(), weights.not_interested)],
        EventKind::Rating { item_id, rating } => {
            vec![(item_id.as_str(), (rating - weights.rating_neutral) * weights.rating_scale)]
        }
        EventKind::Purchase { lines, .. } => lines.iter().map(|l| (l.item_id.as_str(), weights.purchase)).collect(),
        EventKind::Return { lines, .. } => lines.iter().map(|l| (l.item_id.as_str(), weights.return_line)).collect(),
        EventKind::Search { .. } | EventKind::Impression { .. } => Vec::new(),
    }
}

/// A dense id map: external string id ↔ `u32` in first-seen order. It serializes as the id list alone
/// (so the bytes do not depend on hash order) and is rebuilt from it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct IdMap {
    to_index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl Serialize for IdMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.ids.serialize(serializer)
    }
}

impl TryFrom<Vec<String>> for IdMap {
    type Error = RecsError;

    fn try_from(ids: Vec<String>) -> Result<Self, RecsError> {
        let mut map = Self::new();
        for id in &ids {
            if map.index(id).is_some() {
                return Err(RecsError::DimensionMismatch(format!("serialized id map: `{id}` appears twice")));
            }
            map.intern(id);
        }
        Ok(map)
    }
}

impl IdMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `id`, assigning the next one when new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.to_index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.to_index.insert(id.to_string(), i);
        i
    }

    pub fn index(&self, id: &str) -> Option<u32> {
        self.to_index.get(id).copied()
    }

    pub fn id(&self, index: u32) -> Option<&str> {
        self.ids.get(index as usize).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The user × item matrix with its id maps. Users and items that only ever had non-positive signals
/// still get an index (so a later positive signal lands in the same place) but an empty row/column.
#[derive(Debug, Clone)]
pub struct InteractionMatrix {
    pub users: IdMap,
    pub items: IdMap,
    pub matrix: CsrMatrix,
}

impl InteractionMatrix {
    /// Builds the matrix from weighted interactions, summing repeated (user, item) pairs.
    pub fn build(interactions: &[Interaction]) -> Result<Self, RecsError> {
        let mut users = IdMap::new();
        let mut items = IdMap::new();
        let triplets: Vec<(u32, u32, f32)> =
            interactions.iter().map(|i| (users.intern(&i.user), items.intern(&i.item), i.weight)).collect();
        let matrix = CsrMatrix::from_triplets(users.len(), items.len(), &triplets)?;
        Ok(Self { users, items, matrix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ordered_and_dwell_raises_views() {
        let w = InteractionWeights::default();
        w.validate().unwrap();
        assert!(w.view_weight(Some(30_000)) > w.view_weight(None));
        assert_eq!(w.view_weight(Some(10_000_000)), w.view + w.dwell_bonus);
    }

    #[test]
    fn not_interested_cancels() {
        let mk = |user: &str, item: &str, weight| Interaction {
            user: user.into(),
            item: item.into(),
            weight,
            timestamp_ms: 0,
        };
        let w = InteractionWeights::default();
        let m = InteractionMatrix::build(&[mk("u", "a", w.view), mk("u", "a", w.not_interested), mk("u", "b", 3.0)])
            .unwrap();
        assert_eq!(m.items.len(), 2);
        assert_eq!(m.matrix.nnz(), 1);
        assert_eq!(m.matrix.get(0, m.items.index("b").unwrap()), 3.0);
    }
}
