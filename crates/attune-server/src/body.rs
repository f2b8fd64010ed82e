//! Request bodies: read with a size limit, parsed as JSON with errors that say where and what.

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// The raw body, at most `max_body_bytes` long.
pub struct LimitedBody(pub Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.options.max_body_bytes;
        let too_large = || {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| too_large())?;
        Ok(Self(bytes))
    }
}

/// Parse a JSON body into `T`, mapping syntax errors to `invalid_json` and shape errors to `invalid_body`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_object(bytes)?;
    serde_json::from_slice(bytes).map_err(json_error)
}

/// Every request body is a JSON object: an array is refused even where its items could fill a struct's fields
/// in order (which serde would otherwise accept).
fn check_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.trim_ascii_start().first() {
        None => Err(ApiError::new(ErrorKind::InvalidJson, "the request body is empty; a JSON document was expected")),
        Some(b'[') => Err(ApiError::new(ErrorKind::InvalidBody, "the body must be a JSON object, not an array")),
        Some(_) => Ok(()),
    }
}

pub fn json_error(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => ApiError::new(ErrorKind::InvalidBody, error.to_string()),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(ErrorKind::InvalidJson, format!("the body is not valid JSON: {error}"))
        }
    }
}

/// Like [`parse_json`], for types that borrow from the body (e.g. raw JSON values of a batch).
pub fn parse_json_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    check_object(bytes)?;
    serde_json::from_slice(bytes).map_err(json_error)
}

/// Deserializes an optional whole number given as any JSON number without a fraction (`30` or `30.0`, both
/// whole numbers to JSON Schema); a fraction, a negative number or one beyond `u32` is an error.
pub fn optional_whole_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    use serde::Deserialize;
    let Some(number) = Option::<f64>::deserialize(deserializer)? else { return Ok(None) };
    if number.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&number) {
        return Err(serde::de::Error::custom(format!("expected a whole number from 0 to {}, not {number}", u32::MAX)));
    }
    Ok(Some(number as u32))
}
