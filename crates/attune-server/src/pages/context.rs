//! What every page shares: the signed-in console [`Session`] and its sign-in redirects, the error page of
//! a failed request ([`PageError`]), the query-string and path extractors whose rejections are that error page
//! ([`PageQuery`], [`PagePath`]), and links to console pages.

use super::cookies;
use super::format::{encode, with_query};
use super::layout::{ConsoleSection, ConsoleShell, error_page};
use crate::auth::resolve_key;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{Path, Query};
use crate::state::AppState;
use attune_core::{ApiKeyKind, TenantId};
use attune_engine::EngineError;
use axum::extract::FromRequestParts;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

/// A signed-in console visitor: the tenant of the secret key in the `attune_console` cookie.
pub struct Session {
    pub tenant: TenantId,
    pub tenant_name: String,
    pub has_storefront: bool,
}

impl Session {
    pub fn shell(&self, section: ConsoleSection) -> ConsoleShell<'_> {
        ConsoleShell {
            tenant_id: self.tenant.as_str(),
            tenant_name: &self.tenant_name,
            has_storefront: self.has_storefront,
            section,
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map(|pq| pq.as_str().to_string());
        let Some(key) = cookies::get(&parts.headers, cookies::CONSOLE).filter(|k| cookies::is_cookie_safe(k)) else {
            return Err(to_login(next.as_deref(), false));
        };
        let resolved = match resolve_key(state, key).await {
            Ok(resolved) => resolved,
            Err(error) if error.kind == ErrorKind::Unauthenticated => return Err(to_login(next.as_deref(), true)),
            Err(error) => return Err(PageError::from(error).into_response()),
        };
        if resolved.record.kind != ApiKeyKind::Secret {
            return Err(to_login(next.as_deref(), true));
        }
        let tenant = resolved.record.tenant_id;
        let lookup = tenant.clone();
        let found = state
            .run(move |engine| Ok(engine.store().tenant(&lookup)?))
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        Ok(Self {
            tenant_name: found.map(|t| t.name).filter(|n| !n.is_empty()).unwrap_or_else(|| tenant.to_string()),
            has_storefront: state.options.storefront_tenant.as_ref() == Some(&tenant),
            tenant,
        })
    }
}

fn console_cookie(key: &str) -> HeaderValue {
    cookies::set(cookies::CONSOLE, key, "/console", "Strict", None)
}

pub fn clear_console_cookie() -> HeaderValue {
    cookies::set(cookies::CONSOLE, "", "/console", "Strict", Some(0))
}

/// Only console paths are followed after sign-in, never another site.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with("/console")
                && !next.starts_with("/console/login")
                && !next.starts_with("/console/logout")
                && !next.contains("//")
                && !next.contains('\\') =>
        {
            next
        }
        _ => "/console",
    }
}

fn to_login(next: Option<&str>, clear_cookie: bool) -> Response {
    let next = Some(safe_next(next)).filter(|n| *n != "/console");
    let mut response = Redirect::to(&with_query("/console/login", &[("next", next)])).into_response();
    if clear_cookie {
        response.headers_mut().append(SET_COOKIE, clear_console_cookie());
    }
    response
}

pub fn signed_in(key: &str, next: Option<&str>) -> Response {
    let mut response = Redirect::to(safe_next(next)).into_response();
    response.headers_mut().append(SET_COOKIE, console_cookie(key));
    response
}

/// The console page of a catalog item.
pub fn item_href(id: &str) -> String {
    format!("/console/catalog/{}", encode(id))
}

/// The console page of a customer.
pub fn customer_href(id: &str) -> String {
    format!("/console/customers/{}", encode(id))
}

/// A failure while rendering a page, shown as an HTML error page rather than the API's JSON.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let (status, _) = error.kind.status_and_code();
        Self { status, message: error.message }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::BAD_REQUEST => "That request was not understood",
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "Not allowed",
            _ => "Something went wrong",
        };
        (self.status, error_page(self.status.as_u16(), heading, &self.message)).into_response()
    }
}

impl From<EngineError> for PageError {
    fn from(error: EngineError) -> Self {
        ApiError::from(error).into()
    }
}

pub type PageResult<T> = Result<T, PageError>;

/// A page's query string ([`crate::extract::Query`]); a malformed one is a 400 error page.
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A page's path parameters ([`crate::extract::Path`]); an undecodable one is a 400 error page.
pub struct PagePath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PagePath<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}
