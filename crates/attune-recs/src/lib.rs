//! Attune's recommendation core, pure and deterministic: an interaction matrix built from weighted
//! events, the classic strong baselines (popularity and trending, cosine item-kNN, EASE, implicit ALS),
//! one [`Recommender`] trait they all implement, and the offline evaluation (metrics and split
//! protocols) that production and benchmarks share.
//!
//! Everything works on dense `u32` user and item indices; [`interactions::IdMap`] maps them to and from
//! external ids. No I/O, no async: callers load data and pass slices in.

pub mod als;
pub mod ease;
pub mod error;
pub mod evaluation;
pub mod interactions;
pub mod item_knn;
mod kernels;
pub mod popularity;
pub mod recommender;
pub mod sparse;
pub mod split;

pub use als::{Als, AlsConfig};
pub use ease::{Ease, EaseConfig};
pub use error::RecsError;
pub use evaluation::{EvalReport, Metrics, evaluate};
pub use interactions::{IdMap, Interaction, InteractionMatrix, InteractionWeights, interactions_from_events};
pub use item_knn::{ItemKnn, ItemKnnConfig};
pub use popularity::{Popularity, TimedInteraction, Trending};
pub use recommender::{Recommender, top_n_excluding};
pub use sparse::{CsrMatrix, Row};
pub use split::{LastBasketSplit, LeaveOneOutSplit, Purchase, last_basket_split, leave_one_out};
