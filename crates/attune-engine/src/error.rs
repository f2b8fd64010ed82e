//! The engine's one error type. Every failure a caller can see is an [`EngineError`] with a stable
//! machine-readable [`code`](EngineError::code); the HTTP server maps codes to statuses in its own table.

use attune_core::{FilterError, ValidationError};
use attune_store::StoreError;

/// What went wrong, by kind.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A request field is missing or out of its range; the code is the validation code (`out_of_range` ...).
    #[error("{}", .0.message)]
    Invalid(ValidationError),
    /// A filter expression in request field `field` does not parse or type-check.
    #[error("`{field}`: {} at position {} (column {})", error.message, error.position, error.column)]
    InvalidFilter { field: String, error: FilterError },
    /// The thing asked for does not exist (an item, a model version, a task).
    #[error("{0}")]
    NotFound(String),
    /// A parameter is well formed but names something the tenant does not have (an unknown item or category).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request conflicts with the current state (a name already taken, a model still loading).
    #[error("{0}")]
    Conflict(String),
    /// The tenant's data is too thin for the model asked for (too few customers or periods, a fit that cannot
    /// be trusted, a figure out of range); code `insufficient_data`.
    #[error("{0}")]
    NotEnoughData(String),
    /// A model the request needs is still being loaded or trained; retry shortly.
    #[error("{0}")]
    ModelNotReady(String),
    /// The engine is stopping: the work was cancelled at a checkpoint or refused.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A bug or an unexpected condition; the message is for the log, not for the caller.
    #[error("{0}")]
    Internal(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

impl EngineError {
    /// The stable code of this error, e.g. `not_found`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(error) => error.code,
            Self::InvalidFilter { .. } => "invalid_filter",
            Self::NotFound(_) => "not_found",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::Conflict(_) | Self::Store(StoreError::Conflict(_)) => "conflict",
            Self::NotEnoughData(_) => "insufficient_data",
            Self::ModelNotReady(_) => "model_not_ready",
            Self::ShuttingDown => "shutting_down",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(_) | Self::Internal(_) => "internal",
        }
    }

    /// `what` (an item, a task ...) does not exist.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<ValidationError> for EngineError {
    fn from(error: ValidationError) -> Self {
        Self::Invalid(error)
    }
}

impl From<attune_insights::InsightsError> for EngineError {
    fn from(error: attune_insights::InsightsError) -> Self {
        match error {
            attune_insights::InsightsError::NotEnoughData { .. }
            | attune_insights::InsightsError::NotIdentifiable(_) => Self::NotEnoughData(error.to_string()),
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(EngineError::not_found("item `a`").code(), "not_found");
        assert_eq!(EngineError::not_found("item `a`").to_string(), "item `a` not found");
        assert_eq!(EngineError::Store(StoreError::Conflict("tenant `a`".into())).code(), "conflict");
        assert_eq!(EngineError::Store(StoreError::Corrupt("x".into())).code(), "internal");
        assert_eq!(EngineError::ShuttingDown.code(), "shutting_down");
    }
}
