//! Attune's HTTP server: the `/v1` JSON API, authentication, the OpenAPI document, health and metrics,
//! and the server-rendered operator console and storefront demo, around an [`attune_engine::Engine`].
//!
//! This is the only crate that knows HTTP and JSON-over-HTTP, and it stays glue: a handler parses the request
//! into domain types (`attune-core`, the engine's request types), calls the engine on a blocking thread, and
//! renders a view. Every failure maps through the one error table in [`error`].

pub mod api;
mod auth;
mod body;
mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod pages;
mod rate_limit;
mod state;

pub use rate_limit::PublicKeyRate;
pub use state::{AppState, ServerOptions};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use connections::ConnectionLimits;
use error::{ApiError, ErrorKind};
use std::future::Future;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: API, pages, health, metrics, with request ids, tracing and metrics layers.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router(&state))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), track_requests))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

/// Starts the engine, serves `app(state)` on `listener` (with the connection limits of [`connections`]) until
/// `shutdown` completes, lets in-flight requests finish (for at most the shutdown timeout), then shuts the engine
/// down: its tasks stop at a checkpoint and every queued impression and search event is written.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine = state.engine.start();
    let timeout = state.options.shutdown_timeout;
    let limits = ConnectionLimits {
        header_read_timeout: state.options.header_read_timeout,
        max_connections: state.options.max_connections,
    };
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let refused_counter = state.metrics.connections_refused.clone();
    let refused = move || {
        refused_counter.inc();
    };
    let server = async move {
        connections::serve_connections(listener, app(state), limits, signal, refused).await;
        std::io::Result::Ok(())
    };
    let drain_deadline = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = server => served,
        () = drain_deadline => {
            tracing::warn!(timeout_s = timeout.as_secs(), "requests still running at the shutdown deadline; stopping them");
            Ok(())
        }
    };
    tracing::info!("no longer serving requests; stopping the engine");
    let report = tokio::task::spawn_blocking(move || engine.shutdown(timeout)).await;
    if let Err(error) = report {
        tracing::error!(%error, "the engine did not shut down cleanly");
    }
    served
}

/// Records every request's route, status and latency.
async fn track_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.observe_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// Liveness: the process answers. It touches nothing else, so a load balancer or orchestrator does not restart
/// a replica because its database is away.
async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: the store answers and the models stored at start-up are loaded; otherwise 503 with the reason,
/// so a load balancer sends requests elsewhere until the replica can serve them.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.run(|engine| Ok(engine.store().ping()?)).await;
    let models_loaded = state.engine.models_loaded();
    let ready = store.is_ok() && models_loaded;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": match &store { Ok(()) => "ok".to_string(), Err(error) => error.message.clone() },
        "models_loaded": models_loaded,
    });
    let status = if ready { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, axum::Json(body)).into_response();
    if !ready {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render())
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such page or endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::MethodNotAllowed, "this endpoint does not support that HTTP method")
}
