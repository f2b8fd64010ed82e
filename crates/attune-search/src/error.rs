//! The search crate's error type.

use thiserror::Error;

/// Why building or querying a search engine failed.
#[derive(Debug, Error)]
pub enum SearchError {
    /// The lexical index (tantivy) reported an error.
    #[error("lexical index: {0}")]
    Lexical(#[from] tantivy::TantivyError),
    /// Item vectors were given, but not one per item.
    #[error("{vectors} item vectors for {items} items")]
    VectorCount { items: usize, vectors: usize },
    /// A vector does not have the index's dimension.
    #[error("vector of dimension {got}, expected {expected}")]
    VectorDimension { expected: usize, got: usize },
    /// Catalog tuning was asked for with too few described products.
    #[error("{got} described products; catalog tuning needs at least {needed}")]
    TuningExamples { got: usize, needed: usize },
    /// Catalog tuning was asked for with too few distinct descriptions.
    #[error("{got} distinct product descriptions; catalog tuning needs at least {needed}")]
    TuningDescriptions { got: usize, needed: usize },
    /// The tuning's normal equations could not be solved (a non-finite vector).
    #[error("catalog tuning: the normal equations are not positive definite (non-finite vectors?)")]
    TuningNotPositive,
    /// A stored tuning's parts do not fit together.
    #[error("catalog tuning parts: {0}")]
    TuningParts(String),
}
