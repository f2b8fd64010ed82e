//! Tenant-level endpoints: statistics, user tokens for public keys, and API key management.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::Path;
use crate::state::{AppState, blocking};
use attune_core::{ApiKeyKind, EventType, Timestamp, UserId};
use attune_engine::keys::{create_api_key, sign_user_token};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeCount {
    pub event_type: EventType,
    pub events: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayEvents {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub events: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub tenant: String,
    pub items: u64,
    pub users: u64,
    pub events: u64,
    pub events_by_type: Vec<EventTypeCount>,
    pub first_event_at: Option<Timestamp>,
    pub last_event_at: Option<Timestamp>,
    pub events_per_day: Vec<DayEvents>,
}

/// Counts of the tenant's catalog, customers and events.
#[utoipa::path(get, path = "/v1/stats", tag = "tenant", responses((status = 200, body = Stats)), security(("secret_key" = [])))]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Stats>> {
    caller.require_secret()?;
    let store = state.store().clone();
    let tenant = caller.tenant.clone();
    let (stats, days) = blocking(move || Ok((store.stats(&tenant)?, store.events_per_day(&tenant)?))).await?;
    Ok(Json(Stats {
        tenant: caller.tenant.to_string(),
        items: stats.items,
        users: stats.users,
        events: stats.events,
        events_by_type: stats
            .events_by_type
            .into_iter()
            .map(|(event_type, events)| EventTypeCount { event_type, events })
            .collect(),
        first_event_at: stats.first_event_at,
        last_event_at: stats.last_event_at,
        events_per_day: days.into_iter().map(|d| DayEvents { day: d.day, events: d.events }).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserTokenRequest {
    pub user_id: String,
    /// Lifetime in seconds, 60 to 604800 (default 86400).
    #[schema(value_type = Option<i64>, minimum = 60, maximum = 604_800)]
    pub ttl_seconds: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserToken {
    /// Send as `X-Attune-User-Token` together with a public key.
    pub token: String,
    pub user_id: String,
    pub expires_at: Timestamp,
}

/// Issue a user token so a public key in the shopper's browser may act for that user.
#[utoipa::path(post, path = "/v1/user-tokens", tag = "tenant", request_body = UserTokenRequest,
    responses((status = 200, body = UserToken)), security(("secret_key" = [])))]
pub async fn create_user_token(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<UserToken>> {
    caller.require_secret()?;
    let request: UserTokenRequest = parse_json(&body)?;
    let user = UserId::parse_field("user_id", request.user_id)?;
    // A JSON number with no fraction is a whole number, `60.0` included.
    let ttl = request.ttl_seconds.unwrap_or(86_400.0);
    if !(60.0..=604_800.0).contains(&ttl) || ttl.fract() != 0.0 {
        return Err(ApiError::from(attune_core::ValidationError::new(
            "ttl_seconds",
            "out_of_range",
            "`ttl_seconds` must be between 60 and 604800",
        )));
    }
    let issued_at = Timestamp::now();
    let expires_at = Timestamp::from_millis(issued_at.millis() + ttl as i64 * 1_000)?;
    let store = state.store().clone();
    let (tenant, whose) = (caller.tenant.clone(), user.clone());
    let (secret, erased) =
        blocking(move || Ok((store.user_token_secret(&tenant)?, !store.erased_users(&tenant, &[&whose])?.is_empty())))
            .await?;
    if erased {
        return Err(ApiError::new(ErrorKind::UserErased, "this user was erased; register them again first"));
    }
    let secret = secret.ok_or_else(|| ApiError::internal("tenant without user token secret"))?;
    let token = sign_user_token(&secret, &user, issued_at, expires_at);
    Ok(Json(UserToken { token, user_id: user.to_string(), expires_at }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub key_id: String,
    pub kind: ApiKeyKind,
    pub label: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key itself. It is shown only now; Attune stores only its hash.
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    pub kind: ApiKeyKind,
    #[serde(default)]
    pub label: String,
}

fn key_info(record: attune_store::ApiKeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        key_id: record.key_id,
        kind: record.kind,
        label: record.label,
        created_at: record.created_at,
        revoked_at: record.revoked_at,
    }
}

/// The tenant's API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/keys", tag = "tenant", responses((status = 200, body = Vec<ApiKeyInfo>)), security(("secret_key" = [])))]
pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<ApiKeyInfo>>> {
    caller.require_secret()?;
    let store = state.store().clone();
    let keys = blocking(move || Ok(store.api_keys(&caller.tenant)?)).await?;
    Ok(Json(keys.into_iter().map(key_info).collect()))
}

/// Create an API key for the caller's tenant.
#[utoipa::path(post, path = "/v1/keys", tag = "tenant", request_body = ApiKeyRequest,
    responses((status = 201, body = ApiKeyCreated)), security(("secret_key" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    caller.require_secret()?;
    let request: ApiKeyRequest = parse_json(&body)?;
    let store = state.store().clone();
    let created =
        blocking(move || Ok(create_api_key(store.as_ref(), &caller.tenant, request.kind, &request.label)?)).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { info: key_info(created.record), key: created.key })))
}

/// Revoke an API key of the caller's tenant; it stops working at once on this server.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "tenant", params(("key_id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_secret()?;
    let store = state.store().clone();
    let tenant = caller.tenant.clone();
    let id = key_id.clone();
    let revoked = blocking(move || Ok(store.revoke_api_key(&tenant, &id)?)).await?;
    if !revoked {
        return Err(ApiError::not_found("api key"));
    }
    state.forget_key(&caller.tenant, &key_id);
    Ok(StatusCode::NO_CONTENT)
}
