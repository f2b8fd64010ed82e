//! Privacy endpoints: a customer's consent ledger, their export (the right of access) and token revocation; an
//! anonymous visitor's consent ledger; and the tenant's privacy settings (the consent anonymous visitors have
//! until they choose, and how long events are kept).

use crate::api::insights::{CustomerInsights, insights_of};
use crate::api::recommendations::RecommendedItem;
use crate::api::users::{TimelineEntry, parse_path_user};
use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::ApiResult;
use crate::extract::Path;
use crate::state::{AppState, blocking};
use attune_core::{
    AnonymousId, ApiKeyKind, Consent, ConsentChangeInput, ConsentSource, ConsentStatement, DeclaredPurpose, EventKind,
    Purpose, TenantId, TenantSettings, Timestamp, User, UserId,
};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
#[utoipa::path(post, path = "/v1/users/{id}/consents", tag = "privacy", request_body = ConsentChangeInput,
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
    let statements = ConsentStatement::parse_change(&input, consent_source(&caller, &input)?, Timestamp::now())?;
    let ledger = state
        .run(move |engine| {
            engine.record_consent(&caller.tenant, &id, &statements)?;
            user_ledger(engine, &caller.tenant, &id)
        })
        .await?;
    Ok(Json(ledger))
}

fn user_ledger(
    engine: &attune_engine::Engine,
    tenant: &TenantId,
    user: &UserId,
) -> attune_engine::EngineResult<ConsentLedger> {
    let consent = engine.consents().user(tenant, user)?;
    let history = engine.store().consent_history(tenant, user)?;
    Ok(ConsentLedger { user_id: user.to_string(), consent, history })
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
#[utoipa::path(get, path = "/v1/users/{id}/export", tag = "privacy", params(("id" = String, Path, description = "User id")),
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
    let consent = gathered.consent.clone();
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
    if !consent.allows(&Purpose::Analytics) {
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
#[utoipa::path(delete, path = "/v1/users/{id}/tokens", tag = "privacy", params(("id" = String, Path, description = "User id")),
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
#[utoipa::path(get, path = "/v1/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = ConsentLedger), (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key_with_user_token" = [])))]
pub async fn get_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentLedger>> {
    let id = parse_path_user(id)?;
    caller.require_user(&id)?;
    Ok(Json(state.run(move |engine| user_ledger(engine, &caller.tenant, &id)).await?))
}

/// An anonymous visitor's consent now and every statement they made.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitorConsentLedger {
    pub anonymous_id: String,
    /// The consent in force: the shop's default for anonymous visitors with the visitor's own statements applied.
    pub consent: Consent,
    /// Whether the visitor has made a statement; until then they follow the shop's default.
    pub chosen: bool,
    /// Every statement, oldest first.
    pub history: Vec<ConsentStatement>,
}

fn parse_path_visitor(id: String) -> ApiResult<AnonymousId> {
    Ok(AnonymousId::parse_field("id", id)?)
}

/// Grant or withdraw an anonymous visitor's consent to purposes (`personalization`, `marketing`, `analytics`);
/// the purposes not named stay as they are. Recorded in the visitor's consent ledger; applies from the next
/// request on. Until a visitor chooses, the shop's default for anonymous visitors applies (`GET /v1/settings`).
/// A public key may do this (source `storefront`): the anonymous id is the visitor's own.
#[utoipa::path(post, path = "/v1/visitors/{id}/consents", tag = "privacy", request_body = ConsentChangeInput,
    params(("id" = String, Path, description = "Anonymous id")),
    responses((status = 200, body = VisitorConsentLedger), (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = [])))]
pub async fn post_visitor_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<VisitorConsentLedger>> {
    let visitor = parse_path_visitor(id)?;
    let input: ConsentChangeInput = parse_json(&body)?;
    let statements = ConsentStatement::parse_change(&input, consent_source(&caller, &input)?, Timestamp::now())?;
    let ledger = state
        .run(move |engine| {
            engine.record_visitor_consent(&caller.tenant, &visitor, &statements)?;
            visitor_ledger(engine, &caller.tenant, &visitor)
        })
        .await?;
    Ok(Json(ledger))
}

/// An anonymous visitor's consent and its history.
#[utoipa::path(get, path = "/v1/visitors/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "Anonymous id")),
    responses((status = 200, body = VisitorConsentLedger)), security(("secret_key" = []), ("public_key" = [])))]
pub async fn get_visitor_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<VisitorConsentLedger>> {
    let visitor = parse_path_visitor(id)?;
    Ok(Json(state.run(move |engine| visitor_ledger(engine, &caller.tenant, &visitor)).await?))
}

fn visitor_ledger(
    engine: &attune_engine::Engine,
    tenant: &TenantId,
    visitor: &AnonymousId,
) -> attune_engine::EngineResult<VisitorConsentLedger> {
    let current = engine.consents().visitor(tenant, visitor)?;
    Ok(VisitorConsentLedger {
        anonymous_id: visitor.to_string(),
        consent: current.consent,
        chosen: !current.history.is_empty(),
        history: current.history,
    })
}

/// Where a consent statement comes from: a public key speaks for the shopper in the storefront; a secret key
/// for the shop's backend unless it names another source.
fn consent_source(caller: &Caller, input: &ConsentChangeInput) -> ApiResult<ConsentSource> {
    Ok(match (caller.kind, input.source.as_deref()) {
        (ApiKeyKind::Public, _) => ConsentSource::Storefront,
        (ApiKeyKind::Secret, None) => ConsentSource::Api,
        (ApiKeyKind::Secret, Some(source)) => ConsentSource::parse(source)?,
    })
}

/// The tenant's privacy settings, and the retention in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct Settings {
    /// What the tenant set.
    pub settings: TenantSettings,
    /// Days every event is kept now: the tenant's setting, else the installation's; `null`: for ever.
    pub retention_days_in_force: Option<u32>,
    /// Days an anonymous visitor's events are kept now; `null`: as every event.
    pub anonymous_retention_days_in_force: Option<u32>,
}

/// A change of the tenant's privacy settings; what is not named stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// The consent anonymous visitors have until they choose; purposes not named stay as they are.
    pub anonymous_consent: Option<attune_core::ConsentInput>,
    /// Days every event is kept (the daily `retention` task deletes older ones), at most 36500; 0: as the
    /// installation is configured.
    #[schema(maximum = 36_500)]
    #[serde(default, deserialize_with = "crate::body::optional_whole_u32")]
    pub retention_days: Option<u32>,
    /// Days an anonymous visitor's events are kept, at most 36500; 0: as the installation is configured.
    #[schema(maximum = 36_500)]
    #[serde(default, deserialize_with = "crate::body::optional_whole_u32")]
    pub anonymous_retention_days: Option<u32>,
    /// Days of events recommendation training reads, counted back from the newest event, at most 36500; 0: the
    /// whole log. Applies from the next training.
    #[schema(maximum = 36_500)]
    #[serde(default, deserialize_with = "crate::body::optional_whole_u32")]
    pub training_window_days: Option<u32>,
    /// The shop's own consent purposes (at most 20), replacing those declared before; statements about a
    /// purpose already recorded stay in the ledgers.
    pub purposes: Option<Vec<DeclaredPurpose>>,
}

/// The tenant's privacy settings: the consent anonymous visitors have until they choose, and how long events
/// are kept.
#[utoipa::path(get, path = "/v1/settings", tag = "privacy", responses((status = 200, body = Settings)),
    security(("secret_key" = [])))]
pub async fn get_settings(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Settings>> {
    caller.require_secret()?;
    Ok(Json(state.run(move |engine| settings_view(engine, &caller.tenant)).await?))
}

/// Change the tenant's privacy settings; what the body does not name stays as it is.
#[utoipa::path(patch, path = "/v1/settings", tag = "privacy", request_body = SettingsChange,
    responses((status = 200, body = Settings), (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn patch_settings(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Settings>> {
    caller.require_secret()?;
    let change: SettingsChange = parse_json(&body)?;
    let view = state
        .run(move |engine| {
            let mut settings = engine.consents().settings(&caller.tenant)?;
            apply_change(&mut settings, &change);
            engine.put_settings(&caller.tenant, &settings)?;
            settings_view(engine, &caller.tenant)
        })
        .await?;
    Ok(Json(view))
}

/// `settings` after `change`.
pub(crate) fn apply_change(settings: &mut TenantSettings, change: &SettingsChange) {
    if let Some(consent) = &change.anonymous_consent {
        let default = &mut settings.anonymous_consent;
        default.personalization = consent.personalization.unwrap_or(default.personalization);
        default.marketing = consent.marketing.unwrap_or(default.marketing);
        default.analytics = consent.analytics.unwrap_or(default.analytics);
    }
    let days = |given: Option<u32>, current: Option<u32>| given.map_or(current, |days| (days > 0).then_some(days));
    settings.retention_days = days(change.retention_days, settings.retention_days);
    settings.anonymous_retention_days = days(change.anonymous_retention_days, settings.anonymous_retention_days);
    settings.training_window_days = days(change.training_window_days, settings.training_window_days);
    if let Some(purposes) = &change.purposes {
        settings.purposes.clone_from(purposes);
    }
}

fn settings_view(engine: &attune_engine::Engine, tenant: &TenantId) -> attune_engine::EngineResult<Settings> {
    let settings = engine.consents().settings(tenant)?;
    let policy = engine.retention_policy(&settings);
    Ok(Settings {
        settings,
        retention_days_in_force: policy.events_days,
        anonymous_retention_days_in_force: policy.anonymous_days,
    })
}
