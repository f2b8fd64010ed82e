//! The crate's error type.

use thiserror::Error;

/// Why an analytic could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InsightsError {
    /// The input is too short for the method.
    #[error("{what} needs at least {needed} observations, got {got}")]
    NotEnoughData {
        /// The method or quantity that needed the data.
        what: &'static str,
        /// The minimum number of observations.
        needed: usize,
        /// The number given.
        got: usize,
    },
    /// A model was fitted but its parameters cannot be trusted (too little data, no convergence, a degenerate
    /// or absurd fit); the message says why.
    #[error("the model is not identifiable from this data: {0}")]
    NotIdentifiable(String),
    /// A value is outside its domain (negative, not finite, inconsistent with another value).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A model's likelihood could not be evaluated at any admissible parameter value.
    #[error("{0} could not be fitted: the likelihood is not finite anywhere the optimizer looked")]
    FitFailed(&'static str),
    /// A series expansion did not converge within its iteration budget.
    #[error("{0} did not converge")]
    NoConvergence(&'static str),
}

impl InsightsError {
    /// Shorthand for [`InsightsError::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }
}
