//! Attune's hybrid product search core: shoppers type what they mean ("warm jumper for winter under 40
//! pounds"); the engine finds it, ranks it for that shopper and says why.
//!
//! - [`query`]: query understanding (price phrases, colour/size/gender words learned from the catalog);
//! - [`lexical`]: BM25 over title, brand, category, attributes and description (tantivy, in RAM) with field
//!   boosts, typo tolerance and search-as-you-type;
//! - [`vector`]: cosine nearest neighbours over item vectors the caller computed (e.g. with `attune-text`);
//! - [`engine`]: fusion, personal rerank ([`profile`]), filters, facets ([`facets`]), sorting, paging and
//!   per-hit score breakdowns; lexical-only when there are no vectors, semantic fallback on zero results;
//! - [`autocomplete`]: suggestions from past queries and titles, by popularity, typo tolerant.
//!
//! Pure: no HTTP, async, SQL or file I/O. The caller owns the model and the catalog's source.

pub mod autocomplete;
pub mod catalog_tuning;
mod catalog_words;
pub mod engine;
pub mod error;
pub mod facets;
pub mod lexical;
mod numbering;
pub mod profile;
pub mod query;
pub mod text;
pub mod vector;

pub use autocomplete::{Autocomplete, Suggestion, SuggestionSource};
pub use catalog_tuning::{CatalogTuning, TuningConfig, TuningExample, TuningParts, description_text};
pub use engine::{
    AttributeMode, Filters, Fusion, Retrieval, SEMANTIC_MIN_SIMILARITY, SEMANTIC_MIN_SIMILARITY_TUNED, ScoreBreakdown,
    SearchConfig, SearchEngine, SearchHit, SearchMode, SearchRequest, SearchResponse, SortOrder, is_in_stock,
    popularity_signal,
};
pub use error::SearchError;
pub use facets::{FacetCount, Facets, PriceRangeCount};
pub use lexical::FieldBoosts;
pub use profile::ShopperProfile;
pub use query::{AttributeKind, ParsedQuery, QueryVocabulary, Understood, is_price_word, parse_query};
pub use vector::{AnnConfig, VectorIndex};
