//! Server-rendered pages: the operator console (`/console`) and the storefront demo (`/shop`).
//!
//! Pages are rendered with maud (which escapes every interpolated value) around one shared layout and
//! one stylesheet embedded in the binary; no JavaScript is needed. Store access runs on blocking threads
//! like the API's. The console signs in with a tenant's secret API key held in an HttpOnly,
//! SameSite=Strict cookie; the storefront is public and records what its visitors do as real events.

mod chart;
mod console;
mod context;
mod cookies;
mod format;
mod insights;
mod layout;
mod models;
mod search;
mod shop;
mod shop_privacy;

use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use context::PageError;

pub fn router(state: &AppState) -> Router<AppState> {
    let router = Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/assets/attune.css", get(stylesheet))
        .route("/assets/favicon.svg", get(favicon))
        .merge(console::router())
        .merge(insights::router())
        .merge(models::router())
        .merge(search::router())
        .merge(shop::router())
        .merge(shop_privacy::router())
        .layer(axum::middleware::from_fn(refuse_cross_site_posts))
        .layer(axum::middleware::map_response(security_headers));
    if state.options.secure_cookies {
        router.layer(axum::middleware::map_response(mark_cookies_secure))
    } else {
        router
    }
}

/// Add `Secure` to every cookie the pages set, for deployments served over HTTPS.
async fn mark_cookies_secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let secured: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|cookie| {
            let text = cookie.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or_else(|_| cookie.clone())
        })
        .collect();
    headers.remove(header::SET_COOKIE);
    for cookie in secured {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// Forms are only accepted from the pages themselves: SameSite cookies already keep other sites from
/// acting with a signed-in console, and this also stops them (a sibling subdomain included) from signing a
/// browser in with their own key or filling a visitor's basket. Console forms carry a token of their session
/// too ([`context::Session::check_form`]), for browsers that send neither header.
async fn refuse_cross_site_posts(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !is_same_origin(request.headers()) {
        return PageError { status: StatusCode::FORBIDDEN, message: "Forms are only accepted from this site.".into() }
            .into_response();
    }
    next.run(request).await
}

/// Whether a form post comes from this site, by what the browser says: `Sec-Fetch-Site` (every current browser)
/// must be `same-origin` or `none` (typed by the user), and an `Origin` must name the host the request was sent
/// to (the `Host`, or the `X-Forwarded-Host` a reverse proxy sets). A request with neither header is not from a
/// current browser and is left to the session's form token.
fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    let Some(origin) = text("origin") else { return true };
    let Some(origin_host) = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/')) else {
        return false;
    };
    [text("x-forwarded-host"), text("host")]
        .into_iter()
        .flatten()
        .any(|host| host.split(',').any(|h| h.trim().eq_ignore_ascii_case(origin_host)))
}

/// Whether the request was sent to this machine by a loopback name (`localhost`, `127.0.0.1`, `[::1]`): the
/// demo's one-click sign-in is offered only then, so neither a reverse proxy nor a DNS-rebinding page reaches it.
pub(crate) fn is_loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    if headers.contains_key("x-forwarded-host") || headers.contains_key("forwarded") {
        return false;
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "::1"
}

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", layout::STYLESHEET)
}

async fn favicon() -> impl IntoResponse {
    asset("image/svg+xml", layout::FAVICON)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    // URLs carry a content hash (`?v=`), so a day of caching never serves a stale stylesheet for long.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], body)
}

/// Pages run no scripts and embed no foreign frames; images may come from the catalog's own hosts.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src * data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}
