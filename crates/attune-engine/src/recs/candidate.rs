//! A candidate item of a recommendation list: the item (by model index where the model knows it), its score,
//! the signal that proposed it and the items that caused it.

use super::request::Signal;
use attune_recs::{IdMap, keep_best};
use smallvec::SmallVec;
use std::sync::Arc;

/// Most candidates looked at (catalog and stock checks) for one list, and most ranked in a fallback tier.
pub const MAX_CANDIDATES: usize = 5_000;

/// What an explanation needs beyond the signal and anchors.
#[derive(Debug, Clone)]
pub enum Detail {
    None,
    BuyAgain {
        interval_ms: f64,
        times_bought: u32,
        last_purchase_ms: i64,
    },
    /// A content match: its position in the catalog's content index and the weighted anchor positions it
    /// was found from (shared by the whole tier); what they share is named only in the explanations of
    /// picked items.
    ContentMatch {
        position: u32,
        anchors: Arc<[(u32, f32)]>,
    },
}

/// An item a candidate is or comes from: by its model index when the model knows it (no id is copied or
/// reference-counted for the thousands of candidates a list looks at), else by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemRef {
    Model(u32),
    Other(Arc<str>),
}

impl ItemRef {
    /// The item's id; `items` are the ids of the model that made the candidate.
    pub fn id<'a>(&'a self, items: &'a IdMap) -> &'a str {
        match self {
            Self::Model(index) => items.id(*index).unwrap_or_default(),
            Self::Other(id) => id,
        }
    }
}

/// The items a candidate comes from (one or two almost always, so they are kept inline).
pub type Because = SmallVec<[ItemRef; 2]>;

/// One candidate item with its score and the reason it is a candidate.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The item; a model index makes the catalog lookup an array index.
    pub item: ItemRef,
    pub score: f32,
    pub signal: Signal,
    pub because: Because,
    pub detail: Detail,
}

impl Candidate {
    /// A candidate the model does not know (content matches, recently viewed items), by id.
    pub fn new(id: impl Into<Arc<str>>, score: f32, signal: Signal, because: Because) -> Self {
        Self { item: ItemRef::Other(id.into()), score, signal, because, detail: Detail::None }
    }

    /// A candidate for `item`, by model index or by id.
    pub fn at(item: ItemRef, score: f32, signal: Signal, because: Because) -> Self {
        Self { item, score, signal, because, detail: Detail::None }
    }

    /// A candidate the model found, by its model index.
    pub fn of_model(index: u32, score: f32, signal: Signal, because: Because) -> Self {
        Self { item: ItemRef::Model(index), score, signal, because, detail: Detail::None }
    }

    pub fn id<'a>(&'a self, items: &'a IdMap) -> &'a str {
        self.item.id(items)
    }

    /// The item's index among `items`: carried by the model's candidates, looked up by id for the others.
    pub fn index_in(&self, items: &IdMap) -> Option<u32> {
        match &self.item {
            ItemRef::Model(index) if (*index as usize) < items.len() => Some(*index),
            ItemRef::Model(_) => None,
            ItemRef::Other(id) => items.index(id),
        }
    }

    /// The best [`MAX_CANDIDATES`] items by a dense score vector.
    pub fn ranked(scores: &[f32], signal: Signal) -> Vec<Candidate> {
        let mut order: Vec<(u32, f32)> =
            scores.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(i, s)| (i as u32, *s)).collect();
        keep_best(&mut order, MAX_CANDIDATES);
        order.into_iter().map(|(i, s)| Candidate::of_model(i, s, signal, Because::new())).collect()
    }
}
