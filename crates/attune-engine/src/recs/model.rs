//! The served recommendation model: everything a fit makes ([`FittedRecs`]), its snapshot payload format
//! ([`encode`], [`decode`]), and the decoded model as requests see it ([`RecsModel`]).
//!
//! Determinism: ids serialize as ordered lists and nothing depends on hash order, so the same fit gives the
//! same payload bytes.

use super::candidate::Candidate;
use super::live::LiveBaskets;
use super::request::Signal;
use attune_core::Timestamp;
use attune_recs::{
    Als, BoughtTogether, BuyAgain, IdMap, ItemKnn, Popularity, Recommender, SequentialModel, SessionKnn, SparseEase,
    Trending,
};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::sync::atomic::AtomicI64;

/// The `kind` of recommendation snapshots in the store.
pub const MODEL_KIND: &str = "recs";
/// The first bytes of every payload; the number is the payload format's version.
const MAGIC: &[u8; 8] = b"ATRECS03";

/// Why a model cannot be encoded or a payload cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot encode the model: {0}")]
    Encode(postcard::Error),
    #[error("the stored model is unreadable: {0}")]
    Corrupt(String),
}

/// Everything a served model is made of: what a snapshot's payload holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct FittedRecs {
    /// The seed it was trained with.
    pub seed: u64,
    /// Events scanned.
    pub events: u64,
    /// The last event sequence number scanned (0 without events).
    pub events_through_seq: i64,
    pub items: IdMap,
    pub knn: ItemKnn,
    pub popularity: Popularity,
    pub trending: Trending,
    pub bought_together: BoughtTogether,
    /// `None` while no customer has bought any item twice.
    pub buy_again: Option<BuyAgain>,
    pub sessions: SessionKnn,
    /// Next item after a shopper's ordered history: item-kNN similarity plus directed transitions.
    pub sequential: SequentialModel,
    /// Implicit ALS, item side only (shoppers are folded in from their live history); `None` without positive
    /// interactions.
    pub als: Option<Als>,
    /// EASE kept sparse (top weights per item); `None` without positive interactions.
    pub ease: Option<SparseEase>,
    /// Which model `for_you` serves: the one with the best NDCG on the tuning half of the training holdout.
    pub for_you_scorer: ForYouScorer,
}

/// The model behind `for_you`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum ForYouScorer {
    /// Item-kNN over the shopper's weighted history.
    #[default]
    ItemKnn,
    /// Implicit ALS, the shopper folded in from their weighted history.
    Als,
    /// Sparse EASE over the shopper's weighted history.
    Ease,
    /// Item-kNN, ALS and EASE candidate lists, each min–max normalised, summed with these weights (in that
    /// order; `attune_recs::blend`).
    Blend(BlendWeights),
}

/// The weights of a `for_you` blend: item-kNN, ALS, EASE.
pub type BlendWeights = [f32; 3];

impl ForYouScorer {
    pub fn name(self) -> &'static str {
        match self {
            Self::ItemKnn => "item_knn",
            Self::Als => "als",
            Self::Ease => "ease",
            Self::Blend(_) => "blend",
        }
    }

    /// Whether `model` has every part this scorer reads.
    pub fn is_backed_by(self, model: &FittedRecs) -> bool {
        match self {
            Self::ItemKnn => true,
            Self::Als => model.als.is_some(),
            Self::Ease => model.ease.is_some(),
            Self::Blend([_, als, ease]) => (als == 0.0 || model.als.is_some()) && (ease == 0.0 || model.ease.is_some()),
        }
    }
}

/// Encodes a fitted model as a snapshot payload: magic, SHA-256 of the body, postcard body.
pub fn encode(model: &FittedRecs) -> Result<Vec<u8>, ModelError> {
    let body = postcard::to_stdvec(model).map_err(ModelError::Encode)?;
    Ok(crate::snapshot::seal(MAGIC, &body))
}

/// Decodes and checks a snapshot payload: format, digest, structure and that every part has the same items.
pub fn decode(payload: &[u8]) -> Result<FittedRecs, ModelError> {
    let corrupt = |reason: &str| ModelError::Corrupt(reason.to_string());
    let body = crate::snapshot::unseal(MAGIC, payload).map_err(corrupt)?;
    let model: FittedRecs = postcard::from_bytes(body).map_err(|e| ModelError::Corrupt(e.to_string()))?;
    let n = model.items.len();
    let sizes = [
        model.knn.n_items(),
        model.popularity.scores().len(),
        model.trending.scores().len(),
        model.bought_together.n_items(),
        model.buy_again.as_ref().map_or(n, BuyAgain::n_items),
        model.sessions.n_items(),
        model.sequential.n_items(),
        model.als.as_ref().map_or(n, Recommender::n_items),
        model.ease.as_ref().map_or(n, Recommender::n_items),
    ];
    if sizes.iter().any(|&size| size != n) {
        return Err(corrupt("its parts disagree on the number of items"));
    }
    if !model.for_you_scorer.is_backed_by(&model) {
        return Err(corrupt("for_you is to serve a model part that the model lacks"));
    }
    Ok(model)
}

/// What the engine serves recommendations from, for one tenant: a decoded snapshot. Its parts are reached
/// through `Deref` (`model.knn`, `model.items`, ...).
pub struct RecsModel {
    /// The stored snapshot version it was decoded from.
    pub version: i64,
    /// When it was swapped in.
    pub loaded_at: Timestamp,
    pub fitted: FittedRecs,
    /// Set when erased data was taken out of the count-based parts after the factor parts were fitted: until
    /// when a full training replaces those.
    pub retrain_by: Option<Timestamp>,
    /// The log holds no event that training uses between `events_through_seq` and this sequence number
    /// (impressions and searches only), so a staleness check resumes here.
    pub(super) checked_through: AtomicI64,
    /// When a request next checks whether the model is stale (ms since the epoch; `i64::MAX`: never).
    pub(super) next_check_ms: AtomicI64,
    /// The trending and popular fallback tiers, ranked once per model on first use: every `for_you`,
    /// `trending` and `next` answer borrows them instead of ranking the whole catalog again.
    fallback_tiers: OnceLock<[Vec<Candidate>; 2]>,
    /// Order baskets logged since the fit, counted as they arrive.
    pub live: LiveBaskets,
}

impl RecsModel {
    /// Wraps a fitted model for serving.
    pub(super) fn new(
        version: i64,
        loaded_at: Timestamp,
        next_check_ms: i64,
        fitted: FittedRecs,
        retrain_by: Option<Timestamp>,
    ) -> Self {
        Self {
            version,
            loaded_at,
            retrain_by,
            checked_through: AtomicI64::new(fitted.events_through_seq),
            next_check_ms: AtomicI64::new(next_check_ms),
            fallback_tiers: OnceLock::new(),
            live: LiveBaskets::new(fitted.events_through_seq),
            fitted,
        }
    }

    /// The trending and popular tiers, ranked on first use.
    pub fn fallback_tiers(&self) -> &[Vec<Candidate>; 2] {
        self.fallback_tiers.get_or_init(|| {
            [
                Candidate::ranked(self.trending.scores(), Signal::Trending),
                Candidate::ranked(self.popularity.scores(), Signal::Popular),
            ]
        })
    }
}

impl std::ops::Deref for RecsModel {
    type Target = FittedRecs;
    fn deref(&self) -> &FittedRecs {
        &self.fitted
    }
}
