//! Customer endpoints: upsert, read, list, delete, a customer's event timeline, their consent ledger, and the
//! export of everything held about them.

use crate::api::insights::{CustomerInsights, insights_of};
use crate::api::recommendations::RecommendedItem;
use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Path, Query};
use crate::state::{AppState, blocking};
use attune_core::{
    ApiKeyKind, Consent, ConsentChangeInput, ConsentInput, ConsentSource, ConsentStatement, EventInput, EventKind,
    Purpose, TenantId, Timestamp, User, UserId, UserInput,
};
use attune_store::{TimelineQuery, UserQuery};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDeleted {
    pub profile_deleted: bool,
    pub events_deleted: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Case-insensitive substring of the user id.
    pub q: Option<String>,
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 50).
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

fn parse_path_user(id: String) -> ApiResult<UserId> {
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

/// A customer's consent now and every statement that set it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentLedger {
    pub user_id: String,
    /// The consent in force (the defaults for a customer without a profile).
    pub consent: Consent,
    /// Every statement, oldest first.
    pub history: Vec<ConsentStatement>,
}

/// Grant or withdraw consent to purposes (`personalization`, `marketing`, `analytics`); the purposes not named
/// stay as they are. Each is recorded in the customer's consent ledger with its source and policy version, and
/// applies from the next request on. A public key may do this for the user of its user token (source
/// `storefront`).
#[utoipa::path(post, path = "/v1/users/{id}/consents", tag = "users", request_body = ConsentChangeInput,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = ConsentLedger), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key_with_user_token" = [])))]
pub async fn post_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<ConsentLedger>> {
    let id = parse_path_user(id)?;
    caller.require_user(&id)?;
    let input: ConsentChangeInput = parse_json(&body)?;
    let source = match (caller.kind, input.source.as_deref()) {
        (ApiKeyKind::Public, _) => ConsentSource::Storefront,
        (ApiKeyKind::Secret, None) => ConsentSource::Api,
        (ApiKeyKind::Secret, Some(source)) => ConsentSource::parse(source)?,
    };
    let statements = ConsentStatement::parse_change(&input, source, Timestamp::now())?;
    let ledger = state
        .run(move |engine| {
            let stored = engine.record_consent(&caller.tenant, &id, &statements)?;
            let history = engine.store().consent_history(&caller.tenant, &id)?;
            Ok(ConsentLedger { user_id: id.to_string(), consent: stored.consent, history })
        })
        .await?;
    Ok(Json(ledger))
}

/// A search the customer made.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchedQuery {
    pub at: Timestamp,
    pub query: String,
}

/// A list the customer would be shown now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedList {
    pub scenario: &'static str,
    pub model_version: i64,
    pub items: Vec<RecommendedItem>,
}

/// A stored model version and whether the customer's events went into its training.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelUseView {
    pub kind: String,
    pub version: i64,
    /// The last event sequence number it was trained on.
    pub trained_through_seq: i64,
    pub used_their_data: bool,
}

/// Everything Attune holds about one customer (the right of access).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserExport {
    pub user_id: String,
    pub exported_at: Timestamp,
    pub profile: Option<User>,
    /// The consent in force (the defaults without a profile) and every statement that set it.
    pub consent: Consent,
    pub consent_history: Vec<ConsentStatement>,
    /// Every event recorded under the customer's id, newest first.
    pub events: Vec<TimelineEntry>,
    pub search_history: Vec<SearchedQuery>,
    /// Their predicted value and segment, when customer analytics include them.
    pub insights: Option<CustomerInsights>,
    /// Why there are no insights, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insights_note: Option<String>,
    /// The `for_you` list they would be shown now, with the explanations.
    pub recommendations: Option<ExportedList>,
    /// Which stored recommendation models were trained on their data.
    pub models: Vec<ModelUseView>,
    /// Customer analytics (lifetime value, segments) are refitted from the event log and cached for at most a
    /// minute; they used the customer's data when `insights` is present.
    pub analytics_note: &'static str,
}

/// Everything Attune holds about a customer: profile, consent ledger, every event, search history, predicted
/// value and segment, the recommendations they would get now with their explanations, and which models were
/// trained on their data. After an erasure it is empty.
#[utoipa::path(get, path = "/v1/users/{id}/export", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserExport)), security(("secret_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserExport>> {
    caller.require_secret()?;
    let id = parse_path_user(id)?;
    Ok(Json(user_export(&state, &caller.tenant, &id).await?))
}

/// Builds a customer's export (the API's and the console's).
pub(crate) async fn user_export(state: &AppState, tenant: &TenantId, id: &UserId) -> ApiResult<UserExport> {
    let (who, whose) = (tenant.clone(), id.clone());
    let gathered = state.run(move |engine| attune_engine::export::export_user(engine, &who, &whose)).await?;
    let consent = gathered.profile.as_ref().map_or_else(Consent::default, |user| user.consent);
    let (insights, insights_note) = export_insights(state, tenant, id, &consent).await;
    let search_history = gathered
        .events
        .iter()
        .filter_map(|stored| match &stored.event.kind {
            EventKind::Search { query, .. } => Some(SearchedQuery { at: stored.event.timestamp, query: query.clone() }),
            _ => None,
        })
        .collect();
    Ok(UserExport {
        user_id: id.to_string(),
        exported_at: Timestamp::now(),
        profile: gathered.profile,
        consent,
        consent_history: gathered.consent_history,
        events: gathered
            .events
            .into_iter()
            .map(|e| TimelineEntry { seq: e.seq, received_at: e.received_at, event: e.event.to_input() })
            .collect(),
        search_history,
        insights,
        insights_note,
        recommendations: gathered.for_you.map(|(model_version, items)| ExportedList {
            scenario: "for_you",
            model_version,
            items: items.into_iter().map(RecommendedItem::from).collect(),
        }),
        models: gathered
            .models
            .into_iter()
            .map(|m| ModelUseView {
                kind: m.kind,
                version: m.version,
                trained_through_seq: m.trained_through_seq,
                used_their_data: m.used_their_data,
            })
            .collect(),
        analytics_note: "customer analytics are refitted from the event log and kept in memory for at most a minute",
    })
}

/// The customer's insights for an export, or why there are none.
async fn export_insights(
    state: &AppState,
    tenant: &TenantId,
    id: &UserId,
    consent: &Consent,
) -> (Option<CustomerInsights>, Option<String>) {
    if !consent.allows(Purpose::Analytics) {
        return (None, Some("left out of customer analytics: no consent to analytics".into()));
    }
    match insights_of(state, tenant, id).await {
        Ok(insights) => (Some(insights), None),
        Err(error) => (None, Some(error.message)),
    }
}

/// The moment before which a customer's user tokens are refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensRevoked {
    pub user_id: String,
    pub revoked_before: Timestamp,
}

/// Revoke every user token issued so far for a customer (a lost device, a signed-out everywhere); tokens issued
/// later work. Erasure does this too.
#[utoipa::path(delete, path = "/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = TokensRevoked)), security(("secret_key" = [])))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokensRevoked>> {
    caller.require_secret()?;
    let id = parse_path_user(id)?;
    let now = Timestamp::now();
    let store = state.store().clone();
    let user = id.clone();
    blocking(move || Ok(store.revoke_user_tokens(&caller.tenant, &user, now)?)).await?;
    Ok(Json(TokensRevoked { user_id: id.to_string(), revoked_before: now }))
}

/// A customer's consent and its history. A public key may read only the user of its user token.
#[utoipa::path(get, path = "/v1/users/{id}/consents", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = ConsentLedger), (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key_with_user_token" = [])))]
pub async fn get_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentLedger>> {
    let id = parse_path_user(id)?;
    caller.require_user(&id)?;
    let store = state.store().clone();
    let ledger = blocking(move || {
        let consent = store.user(&caller.tenant, &id)?.map_or_else(Consent::default, |user| user.consent);
        let history = store.consent_history(&caller.tenant, &id)?;
        Ok(ConsentLedger { user_id: id.to_string(), consent, history })
    })
    .await?;
    Ok(Json(ledger))
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
    let deleted = state.run(move |engine| engine.erase_user(&caller.tenant, &id)).await?;
    if !deleted.profile && deleted.events == 0 {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(UserDeleted { profile_deleted: deleted.profile, events_deleted: deleted.events }))
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
