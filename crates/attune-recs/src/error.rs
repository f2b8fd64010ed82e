//! Typed errors of the recommendation core.

use thiserror::Error;

/// What can go wrong when building matrices, fitting models or evaluating them.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RecsError {
    /// A configuration value is out of its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// An index points outside the matrix or catalog.
    #[error("{what} index {index} is out of range (size {size})")]
    OutOfRange { what: &'static str, index: usize, size: usize },
    /// Two inputs disagree on a dimension.
    #[error("dimension mismatch: {0}")]
    DimensionMismatch(String),
    /// A model was asked to score before `fit`.
    #[error("model `{0}` has not been fitted")]
    NotFitted(&'static str),
    /// The training data has nothing to learn from.
    #[error("empty training data: {0}")]
    EmptyData(String),
    /// A numerical routine failed (e.g. a matrix that should be positive definite is not).
    #[error("numerical failure: {0}")]
    Numerical(String),
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> RecsError {
    RecsError::InvalidParameter { name, reason: reason.into() }
}
