//! What every page shares: the signed-in console [`Session`] (kept on the server; the cookie holds a random token)
//! with its form token and sign-in redirects, the error page of
//! a failed request ([`PageError`]), the query-string and path extractors whose rejections are that error page
//! ([`PageQuery`], [`PagePath`]), and links to console pages.

use super::cookies;
use super::format::{encode, with_query};
use super::layout::{ConsoleSection, ConsoleShell, error_page};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::{AppState, ResolvedKey};
use attune_core::TenantId;
use attune_engine::EngineError;
use attune_engine::keys::{CONSOLE_SESSION_TTL_MS, hash_api_key, start_console_session};
use axum::extract::FromRequestParts;
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A signed-in console visitor: the server-side session whose token is in the `attune_console` cookie.
pub struct Session {
    pub tenant: TenantId,
    pub tenant_name: String,
    pub has_storefront: bool,
    pub session_id: String,
    /// The token every form of this session carries.
    pub form_token: String,
}

/// The token field of every console form.
#[derive(Debug, Default, Deserialize)]
pub struct FormToken {
    #[serde(default)]
    pub form_token: String,
}

impl Session {
    pub fn shell(&self, section: ConsoleSection) -> ConsoleShell<'_> {
        ConsoleShell {
            tenant_id: self.tenant.as_str(),
            tenant_name: &self.tenant_name,
            has_storefront: self.has_storefront,
            section,
            form_token: &self.form_token,
        }
    }

    /// Refuses a form that does not carry this session's token (a forged cross-site post).
    pub fn check_form(&self, form: &FormToken) -> Result<(), PageError> {
        let (presented, expected) = (form.form_token.as_bytes(), self.form_token.as_bytes());
        let same = presented.len() == expected.len()
            && presented.iter().zip(expected).fold(0_u8, |differ, (a, b)| differ | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err(PageError {
                status: StatusCode::FORBIDDEN,
                message: "This form has expired or did not come from this console. Reload the page and try again."
                    .into(),
            })
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map(|pq| pq.as_str().to_string());
        let Some(token) = cookies::get(&parts.headers, cookies::CONSOLE).filter(|k| cookies::is_cookie_safe(k)) else {
            return Err(to_login(next.as_deref(), false));
        };
        let token_hash = hash_api_key(token);
        let found = state
            .run(move |engine| {
                let store = engine.store();
                let Some(session) = store.console_session(&token_hash)? else { return Ok(None) };
                let tenant = store.tenant(&session.tenant_id)?;
                Ok(Some((session, tenant)))
            })
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        let Some((session, tenant)) = found else { return Err(to_login(next.as_deref(), true)) };
        let id = session.tenant_id;
        Ok(Self {
            tenant_name: tenant.map(|t| t.name).filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string()),
            has_storefront: state.options.storefront_tenant.as_ref() == Some(&id),
            tenant: id,
            session_id: session.session_id,
            form_token: session.form_token,
        })
    }
}

fn console_cookie(token: &str) -> HeaderValue {
    let lifetime = (CONSOLE_SESSION_TTL_MS / 1_000) as u64;
    cookies::set(cookies::CONSOLE, token, "/console", "Strict", Some(lifetime))
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

/// Signs a browser in with a secret key: a new server-side session, whose token the cookie holds (never the key).
pub async fn signed_in(state: &AppState, key: &ResolvedKey, headers: &HeaderMap, next: Option<&str>) -> Response {
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (tenant, key_id) = (key.record.tenant_id.clone(), key.record.key_id.clone());
    let started = state
        .run(move |engine| Ok(start_console_session(engine.store().as_ref(), &tenant, &key_id, &user_agent)?))
        .await;
    match started {
        Ok((token, _)) => {
            let mut response = Redirect::to(safe_next(next)).into_response();
            response.headers_mut().append(SET_COOKIE, console_cookie(&token));
            response
        }
        Err(error) => PageError::from(error).into_response(),
    }
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
