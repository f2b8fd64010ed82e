//! Customer endpoints: upsert, read, list, delete (erasure) and a customer's event timeline; their consent,
//! export and tokens are in [`crate::api::privacy`].

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Path, Query};
use crate::state::{AppState, blocking};
use attune_core::{
    ConsentChangeInput, ConsentInput, ConsentSource, ConsentStatement, EventInput, Timestamp, User, UserId, UserInput,
};
use attune_engine::recs::Unlearning;
use attune_store::{TimelineQuery, UserQuery};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDeleted {
    pub profile_deleted: bool,
    pub events_deleted: u64,
    /// What the erasure did to the served recommendation model.
    pub recommendation_model: ModelUnlearning,
}

/// The served recommendation model after an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelUnlearning {
    /// `unlearned`: its count-based parts (popularity, trending, item-kNN, bought-together, buy-again, sessions,
    /// next item) no longer hold the customer's data; `pending`: a training held the model, or the refit took
    /// longer than 30 s, and it finishes in the background (the models list shows the new version); `no_model`:
    /// nothing is stored; `not_needed`: the customer had no events.
    pub state: String,
    /// The version now serving, after `unlearned`.
    pub version: Option<i64>,
    /// Until when the factor models (ALS, EASE) fitted before the erasure may still reflect the customer's data:
    /// a full training replaces them by then.
    pub factor_models_retrained_by: Option<Timestamp>,
}

impl From<Unlearning> for ModelUnlearning {
    fn from(unlearning: Unlearning) -> Self {
        let (state, version, by) = match unlearning {
            Unlearning::NotNeeded => ("not_needed", None, None),
            Unlearning::NoModel => ("no_model", None, None),
            Unlearning::Pending => ("pending", None, None),
            Unlearning::Done { version, factors_retrained_by } => ("unlearned", Some(version), factors_retrained_by),
        };
        Self { state: state.to_string(), version, factor_models_retrained_by: by }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Case-insensitive substring of the user id.
    pub q: Option<String>,
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
    pub total: u64,
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// Position in the tenant's event log.
    pub seq: i64,
    pub received_at: Timestamp,
    pub event: EventInput,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub user_id: String,
    pub events: Vec<TimelineEntry>,
    pub next_before: Option<i64>,
}

pub(crate) fn parse_path_user(id: String) -> ApiResult<UserId> {
    Ok(UserId::parse_field("id", id)?)
}

/// Create or replace a customer profile; an erased customer is registered again.
#[utoipa::path(put, path = "/v1/users/{id}", tag = "users", request_body = UserInput,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 400, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<User>> {
    caller.require_secret()?;
    let id = parse_path_user(id)?;
    let mut input: UserInput = parse_json(&body)?;
    match &input.id {
        Some(body_id) if body_id != id.as_str() => {
            return Err(ApiError::new(ErrorKind::Validation("id_mismatch"), "the body's `id` differs from the path's"));
        }
        _ => input.id = Some(id.to_string()),
    }
    let now = Timestamp::now();
    // Consent given here is recorded in the ledger like any other consent statement.
    let statements = match &input.consent {
        Some(consent) => ConsentStatement::parse_change(&change_of(consent), ConsentSource::Api, now).ok(),
        None => None,
    };
    let user = User::parse(input, now)?;
    let stored = state
        .run(move |engine| {
            let stored = engine.register_user(&caller.tenant, &user)?;
            match statements {
                Some(statements) => engine.record_consent(&caller.tenant, &user.id, &statements),
                None => Ok(stored),
            }
        })
        .await?;
    Ok(Json(stored))
}

/// The consent part of a profile as a change of the purposes it names.
fn change_of(consent: &ConsentInput) -> ConsentChangeInput {
    ConsentChangeInput {
        personalization: consent.personalization,
        marketing: consent.marketing,
        analytics: consent.analytics,
        ..Default::default()
    }
}

/// Read a customer profile.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<User>> {
    caller.require_secret()?;
    let id = parse_path_user(id)?;
    let store = state.store().clone();
    let found = blocking(move || Ok(store.user(&caller.tenant, &id)?)).await?;
    found.map(Json).ok_or_else(|| ApiError::not_found("user"))
}

/// List customer profiles in id order.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = UserList)), security(("secret_key" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<UserListParams>,
) -> ApiResult<Json<UserList>> {
    caller.require_secret()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid_parameter("`limit` must be between 1 and 1000"));
    }
    let store = state.store().clone();
    let query = UserQuery { search: params.q, after: params.after, limit };
    let page = blocking(move || Ok(store.list_users(&caller.tenant, &query)?)).await?;
    Ok(Json(UserList { users: page.users, total: page.total, next_after: page.next_after }))
}

/// Erase a customer: their profile, consent ledger and every event attributed to their user id. Their user
/// tokens stop working, and later events naming them are refused (`409 user_erased`), an impression still queued
/// included, until `PUT /v1/users/{id}` registers them again.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserDeleted), (status = 404, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserDeleted>> {
    caller.require_secret()?;
    let id = parse_path_user(id)?;
    let erasure = state.run(move |engine| engine.erase_user(&caller.tenant, &id)).await?;
    let deleted = erasure.deleted;
    if !deleted.profile && deleted.events == 0 {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(UserDeleted {
        profile_deleted: deleted.profile,
        events_deleted: deleted.events,
        recommendation_model: erasure.recommendations.into(),
    }))
}

/// A customer's events across all channels, newest first. A public key may read only the timeline of
/// the user of its user token.
#[utoipa::path(get, path = "/v1/users/{id}/timeline", tag = "users",
    params(("id" = String, Path, description = "User id"), TimelineParams),
    responses((status = 200, body = Timeline), (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key_with_user_token" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> ApiResult<Json<Timeline>> {
    let id = parse_path_user(id)?;
    caller.require_user(&id)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid_parameter("`limit` must be between 1 and 1000"));
    }
    let store = state.store().clone();
    let user = id.clone();
    let page = blocking(move || {
        Ok(store.user_timeline(&caller.tenant, &user, &TimelineQuery { before_seq: params.before, limit })?)
    })
    .await?;
    Ok(Json(Timeline {
        user_id: id.to_string(),
        events: page
            .events
            .into_iter()
            .map(|e| TimelineEntry { seq: e.seq, received_at: e.received_at, event: e.event.to_input() })
            .collect(),
        next_before: page.next_before_seq,
    }))
}
