//! The versioned JSON API under `/v1`, its router and its OpenAPI document.

pub mod events;
pub mod insights;
pub mod items;
pub mod models;
pub mod recommendations;
pub mod search;
pub mod tasks;
pub mod tenant;
pub mod users;

use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::state::AppState;
use axum::Router;
use axum::routing::{delete, get, post, put};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Attune API", description = "Self-hosted personalization engine for retailers: catalog, customers, events, predictive insights, recommendations."),
    paths(
        items::put_item, items::post_items, items::get_item, items::list_items, items::delete_item,
        users::put_user, users::get_user, users::list_users, users::delete_user, users::timeline,
        users::get_consents, users::post_consents, users::revoke_tokens, users::export,
        events::post_event, events::post_event_batch,
        tenant::stats, tenant::create_user_token, tenant::list_keys, tenant::create_key, tenant::revoke_key,
        insights::customer, insights::segments, insights::at_risk, insights::forecast, insights::reorder,
        recommendations::post_recommendations,
        search::get_search, search::post_search, search::autocomplete,
        tasks::post_task, tasks::list_tasks, tasks::get_task,
        models::list_recs_models, models::activate_recs_model,
    ),
    components(schemas(ErrorBody, attune_core::EventInput, attune_core::OrderLineInput)),
    modifiers(&SecuritySchemes),
    tags((name = "catalog"), (name = "users"), (name = "events"), (name = "tenant"), (name = "insights"),
        (name = "recommendations"), (name = "search"), (name = "tasks"), (name = "models"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("secret_key", bearer());
        components.add_security_scheme("public_key", bearer());
        components.add_security_scheme(
            "public_key_with_user_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::auth::USER_TOKEN_HEADER))),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/items", post(items::post_items).get(items::list_items))
        .route("/v1/items/{id}", put(items::put_item).get(items::get_item).delete(items::delete_item))
        .route("/v1/users", get(users::list_users))
        .route("/v1/users/{id}", put(users::put_user).get(users::get_user).delete(users::delete_user))
        .route("/v1/users/{id}/timeline", get(users::timeline))
        .route("/v1/users/{id}/consents", get(users::get_consents).post(users::post_consents))
        .route("/v1/users/{id}/tokens", delete(users::revoke_tokens))
        .route("/v1/users/{id}/export", get(users::export))
        .route("/v1/events", post(events::post_event))
        .route("/v1/events/batch", post(events::post_event_batch))
        .route("/v1/customers/segments", get(insights::segments))
        .route("/v1/customers/at-risk", get(insights::at_risk))
        .route("/v1/customers/{id}/insights", get(insights::customer))
        .route("/v1/forecast", get(insights::forecast))
        .route("/v1/inventory/reorder", get(insights::reorder))
        .route("/v1/recommendations", post(recommendations::post_recommendations))
        .route("/v1/search", get(search::get_search).post(search::post_search))
        .route("/v1/search/autocomplete", get(search::autocomplete))
        .route("/v1/tasks", post(tasks::post_task).get(tasks::list_tasks))
        .route("/v1/tasks/{id}", get(tasks::get_task))
        .route("/v1/models/recs", get(models::list_recs_models))
        .route("/v1/models/recs/{version}/activate", post(models::activate_recs_model))
        .route("/v1/stats", get(tenant::stats))
        .route("/v1/user-tokens", post(tenant::create_user_token))
        .route("/v1/keys", get(tenant::list_keys).post(tenant::create_key))
        .route("/v1/keys/{key_id}", delete(tenant::revoke_key))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/{*rest}", axum::routing::any(unknown_endpoint))
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn unknown_endpoint() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such endpoint; see /v1/openapi.json")
}
