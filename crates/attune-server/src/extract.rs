//! The query-string and path extractors every route takes: axum's `Query` and `Path`, with their rejections
//! (a `limit=abc`, a path id that is not UTF-8 once percent-decoded) answered through the one error table as
//! `400 invalid_parameter` JSON instead of axum's plain-text 400. Pages wrap these to show an error page.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The query string deserialized into `T`; a malformed one is `400 invalid_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

/// The path parameters deserialized into `T`; an undecodable one is `400 invalid_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::invalid_parameter(format!("the query string is invalid: {}", detail(rejection.body_text())))
}

/// A path that does not fit its parameters is the caller's error; one the route cannot give (a missing
/// parameter) is a bug of the route.
fn path_error(rejection: PathRejection) -> ApiError {
    if rejection.status().is_server_error() {
        return ApiError::internal(rejection.body_text());
    }
    ApiError::invalid_parameter(format!("the path is invalid: {}", detail(rejection.body_text())))
}

/// axum's text without its own prefix (`Invalid URL: `, `Failed to deserialize query string: `).
fn detail(text: String) -> String {
    match text.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("Invalid URL") || prefix.starts_with("Failed to deserialize") => {
            rest.to_string()
        }
        _ => text,
    }
}
