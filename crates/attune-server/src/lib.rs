//! Attune's HTTP server: the `/v1` JSON API, authentication, the OpenAPI document, health and metrics,
//! and the server-rendered operator console and storefront demo.
//!
//! This is the only crate that knows HTTP and JSON-over-HTTP. Handlers validate input into domain types
//! (`attune-core`), run store work and anything CPU-heavy on blocking threads, and map every failure
//! through the one error table in [`error`].

pub mod api;
mod auth;
mod body;
pub mod catalog;
pub mod error;
pub mod impressions;
mod insights;
pub mod keys;
pub mod metrics;
pub mod pages;
mod recommendations;
pub mod search;
mod snapshot_payload;
mod state;
mod stored_tuning;
pub mod tasks;
pub mod training;

pub use state::{AppState, ServerOptions};

use axum::Router;
use axum::http::{HeaderName, Request};
use axum::response::IntoResponse;
use axum::routing::get;
use error::{ApiError, ErrorKind};
use std::future::Future;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: API, pages, health, metrics, with request ids, tracing and metrics layers.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router(&state))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track_requests))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

/// Serve `app(state)` on `listener` until `shutdown` completes, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(interval) = state.options.forecast_interval {
        // The first round soon after start-up, so a restarted server has fresh forecasts without waiting.
        let first = interval.min(std::time::Duration::from_secs(10));
        tasks::spawn_scheduler(state.clone(), tasks::TaskKind::Forecast, first, interval);
    }
    if let Some(interval) = state.options.train_interval {
        tasks::spawn_scheduler(state.clone(), tasks::TaskKind::TrainRecs, interval, interval);
    }
    tokio::spawn(training::load_at_startup(state.clone()));
    let starting = state.clone();
    tokio::spawn(async move { search::start(starting).await });
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    let store = state.store.clone();
    match state::blocking(move || Ok(store.tenants()?.len())).await {
        Ok(tenants) => axum::Json(serde_json::json!({"status": "ok", "tenants": tenants})).into_response(),
        Err(error) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(error.body())).into_response(),
    }
}

async fn metrics_text(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such page or endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::MethodNotAllowed, "this endpoint does not support that HTTP method")
}
