//! Attune's recommendation core, pure and deterministic: an interaction matrix built from weighted
//! events, the classic strong baselines (popularity and trending, cosine item-kNN, EASE, implicit ALS),
//! one [`Recommender`] trait they all implement, and the offline evaluation (metrics and split
//! protocols) that production and benchmarks share. Scenario models with their own inputs sit beside
//! them: frequently bought together ([`basket`]), buy it again ([`repurchase`]), real-time session
//! kNN ([`session_knn`]), the order-aware next-item model ([`sequential`]) and content similarity for cold
//! start ([`content`]); each of their suggestions names the anchor items that caused it.
//!
//! Everything works on dense `u32` user and item indices; [`interactions::IdMap`] maps them to and from
//! external ids. No I/O, no async: callers load data and pass slices in.

pub mod als;
pub mod basket;
pub mod blend;
pub mod content;
pub mod ease;
pub mod error;
pub mod evaluation;
pub mod interactions;
pub mod item_knn;
mod kernels;
pub mod popularity;
pub mod recommender;
pub mod repurchase;
pub mod sequential;
pub mod session_knn;
pub mod sparse;
pub mod sparse_ease;
pub mod split;

pub use als::{Als, AlsConfig, InitialFactors};
pub use basket::{BasketDelta, BasketRanking, BasketSuggestion, BoughtTogether, BoughtTogetherConfig, Companion};
pub use blend::{BlendedItem, blend, tune_weights};
pub use content::{ContentConfig, ContentFields, ContentIndex, ContentMatch, ItemContent, describe_feature};
pub use ease::{Ease, EaseConfig};
pub use error::RecsError;
pub use evaluation::{EvalReport, Metrics, evaluate};
pub use interactions::{
    IdMap, Interaction, InteractionMatrix, InteractionWeights, interactions_from_events, item_weights,
};
pub use item_knn::{ItemKnn, ItemKnnConfig};
pub use popularity::{Popularity, TimedInteraction, Trending};
pub use recommender::{Recommender, keep_best, top_n_excluding};
pub use repurchase::{BuyAgain, BuyAgainConfig, BuyAgainSuggestion, RepurchaseProfile};
pub use sequential::{SequentialConfig, SequentialModel, SequentialSuggestion, top_k_similarity};
pub use session_knn::{PastSession, SessionKnn, SessionKnnConfig, SessionSuggestion};
pub use sparse::{CsrMatrix, Row};
pub use sparse_ease::{SparseEase, SparseEaseConfig};
pub use split::{LastBasketSplit, LeaveOneOutSplit, Purchase, last_basket_split, leave_one_out};
