//! API errors. Every error a client can see is an [`ApiError`]; [`ErrorKind::status_and_code`] is the
//! one table that maps it to an HTTP status and a stable machine-readable code, and engine errors reach it
//! through [`ErrorKind::of_engine`]. The body is always
//! `{"code": "...", "message": "...", "details": [...]?, "request_id": "..."?}`.

use attune_core::ValidationError;
use attune_engine::EngineError;
use attune_store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not JSON, not UTF-8, or does not have the expected shape.
    InvalidJson,
    /// The body is JSON but has a wrong shape: unknown fields, wrong types.
    InvalidBody,
    /// A field failed validation; the code is the validation code (`negative_quantity`, ...).
    Validation(&'static str),
    /// One or more events of a batch are invalid; nothing of the batch was stored.
    InvalidBatch,
    /// A query-string parameter is invalid.
    InvalidParameter,
    /// A filter expression does not parse or type-check; the body says where (`position`, `column`).
    InvalidFilter,
    PayloadTooLarge,
    BatchTooLarge,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// The event names a user who was erased; the shop must register them again (`PUT /v1/users/{id}`) first.
    UserErased,
    /// The tenant's data is too thin for the requested model (too few customers or periods).
    NotEnoughData,
    /// A model the request needs is still being loaded or trained; retry shortly.
    ModelNotReady,
    /// The server is stopping.
    ShuttingDown,
    /// A public key sent more requests than its rate allows; retry after the `Retry-After` seconds.
    RateLimited,
    /// The database cannot be reached; nothing of the request was acknowledged, so it can be retried.
    StoreUnavailable,
    Internal,
}

impl ErrorKind {
    /// The table: HTTP status and stable code for every kind of error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::InvalidBody => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::Validation(code) => (StatusCode::BAD_REQUEST, code),
            Self::InvalidBatch => (StatusCode::BAD_REQUEST, "invalid_batch"),
            Self::InvalidParameter => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::InvalidFilter => (StatusCode::BAD_REQUEST, "invalid_filter"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BatchTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict => (StatusCode::CONFLICT, "conflict"),
            Self::UserErased => (StatusCode::CONFLICT, "user_erased"),
            Self::NotEnoughData => (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_data"),
            Self::ModelNotReady => (StatusCode::SERVICE_UNAVAILABLE, "model_not_ready"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The kind of an engine error (internal ones are logged where they are turned into an [`ApiError`]).
    pub fn of_engine(error: &EngineError) -> Self {
        match error {
            EngineError::Invalid(error) => Self::Validation(error.code),
            EngineError::InvalidFilter { .. } => Self::InvalidFilter,
            EngineError::NotFound(_) => Self::NotFound,
            EngineError::InvalidParameter(_) => Self::InvalidParameter,
            EngineError::Conflict(_) | EngineError::Store(StoreError::Conflict(_)) => Self::Conflict,
            EngineError::NotEnoughData(_) => Self::NotEnoughData,
            EngineError::ModelNotReady(_) => Self::ModelNotReady,
            EngineError::ShuttingDown => Self::ShuttingDown,
            EngineError::Store(StoreError::Unavailable(_)) => Self::StoreUnavailable,
            EngineError::Store(_) | EngineError::Internal(_) => Self::Internal,
        }
    }
}

/// One problem inside a request, e.g. one invalid event of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Position in the batch, for batch requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub code: String,
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
    /// For `invalid_filter`: the byte offset of the problem in the filter text (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// For `invalid_filter`: the same place as a 1-based character column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Vec<ErrorDetail>,
    /// Where in a filter text the problem is: (byte position, character column).
    pub location: Option<(usize, usize)>,
    /// Seconds after which a retry may succeed (`Retry-After`), for a rate-limited request.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), details: Vec::new(), location: None, retry_after: None }
    }

    /// A filter expression in request field `field` (`filter`, `boosts[0].filter`) was rejected.
    pub fn invalid_filter(field: &str, error: &attune_core::FilterError) -> Self {
        let message = format!("`{field}`: {} at position {} (column {})", error.message, error.position, error.column);
        let detail = ErrorDetail {
            index: None,
            field: field.to_string(),
            code: "invalid_filter".to_string(),
            message: message.clone(),
        };
        Self {
            kind: ErrorKind::InvalidFilter,
            message,
            details: vec![detail],
            location: Some((error.position, error.column)),
            retry_after: None,
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorKind::Internal, "internal error; see the server log")
    }

    /// The database is unreachable: logged once per request, answered 503 with `Retry-After`.
    pub fn store_unavailable(cause: &str) -> Self {
        tracing::warn!(%cause, "database unreachable");
        Self::new(ErrorKind::StoreUnavailable, "the database is unreachable; nothing was stored, retry shortly")
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.details = details;
        self
    }

    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.kind.status_and_code();
        ErrorBody {
            code: code.to_string(),
            message: self.message.clone(),
            details: self.details.clone(),
            position: self.location.map(|(position, _)| position),
            column: self.location.map(|(_, column)| column),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let detail = ErrorDetail {
            index: None,
            field: error.field.clone(),
            code: error.code.to_string(),
            message: error.message.clone(),
        };
        Self {
            kind: ErrorKind::Validation(error.code),
            message: error.message,
            details: vec![detail],
            location: None,
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::new(ErrorKind::Conflict, format!("{what} already exists")),
            StoreError::Unavailable(message) => Self::store_unavailable(&message),
            other => Self::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(error) => error.into(),
            EngineError::InvalidFilter { field, error } => Self::invalid_filter(&field, &error),
            EngineError::Store(StoreError::Unavailable(message)) => Self::store_unavailable(&message),
            error => match ErrorKind::of_engine(&error) {
                ErrorKind::Internal => Self::internal(error),
                kind => Self::new(kind, error.to_string()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.kind.status_and_code();
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary: a database coming back, a model loading, a replica stopping.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine errors keep their stable code on the way out.
    #[test]
    fn engine_errors_keep_their_codes() {
        let filter = attune_core::FilterExpr::parse("price <").unwrap_err();
        let errors = [
            EngineError::Invalid(ValidationError::new("count", "out_of_range", "count must be 1 to 100")),
            EngineError::InvalidFilter { field: "filter".into(), error: filter },
            EngineError::not_found("item `a`"),
            EngineError::InvalidParameter("x".into()),
            EngineError::Conflict("x".into()),
            EngineError::Store(StoreError::Conflict("tenant `a`".into())),
            EngineError::NotEnoughData("x".into()),
            EngineError::ModelNotReady("x".into()),
            EngineError::ShuttingDown,
            EngineError::Store(StoreError::Unavailable("refused".into())),
            EngineError::Internal("x".into()),
        ];
        for error in errors {
            let code = error.code();
            assert_eq!(ApiError::from(error).body().code, code);
        }
        let unavailable = ApiError::from(EngineError::Store(StoreError::Unavailable("refused".into()))).into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[axum::http::header::RETRY_AFTER], "1");
    }
}
