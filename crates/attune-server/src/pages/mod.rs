//! Server-rendered pages: the operator console and the storefront demo.

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
}
