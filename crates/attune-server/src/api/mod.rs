//! The versioned JSON API under `/v1`, its router and its OpenAPI document.

pub mod events;
pub mod insights;
pub mod items;
pub mod models;
pub mod privacy;
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
        privacy::get_consents, privacy::post_consents, privacy::revoke_tokens, privacy::export,
        privacy::get_visitor_consents, privacy::post_visitor_consents, privacy::get_settings, privacy::patch_settings,
        events::post_event, events::post_event_batch,
        tenant::stats, tenant::create_user_token, tenant::list_keys, tenant::create_key, tenant::revoke_key,
        insights::customer, insights::segments, insights::at_risk, insights::forecast, insights::reorder,
        recommendations::post_recommendations,
        search::get_search, search::post_search, search::autocomplete,
        tasks::post_task, tasks::list_tasks, tasks::get_task,
        models::list_recs_models, models::activate_recs_model,
    ),
    components(schemas(ErrorBody, attune_core::EventInput, attune_core::OrderLineInput)),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags((name = "catalog"), (name = "users"), (name = "events"), (name = "tenant"), (name = "insights"),
        (name = "recommendations"), (name = "search"), (name = "tasks"), (name = "models"), (name = "privacy"))
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

/// The errors any operation can answer (see [`crate::error`]), documented on every operation that does not
/// document them itself: the body is always an `ErrorBody`.
struct CommonErrors;

const COMMON_ERRORS: [(&str, &str); 10] = [
    ("400", "The request's parameters or body are invalid (`code` says which rule; nothing was written)."),
    ("401", "No API key, or one that is unknown or revoked."),
    ("403", "The key may not do this (a public key, or another user than its user token's)."),
    ("404", "No such resource, or no such path."),
    ("409", "The request conflicts with the state (an erased user, a model version that cannot serve)."),
    ("413", "The body is larger than the server accepts."),
    ("415", "The body is not `application/json`."),
    ("422", "The tenant's data is too little for this answer yet (`insufficient_data`)."),
    ("429", "A public key sent more than its rate; `Retry-After` says when to try again."),
    ("503", "Not ready yet (models loading) or shutting down; try again."),
];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, description) in COMMON_ERRORS {
                    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                    let response = ResponseBuilder::new().description(description).content("application/json", body);
                    operation.responses.responses.entry(status.to_string()).or_insert_with(|| response.build().into());
                }
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/items", post(items::post_items).get(items::list_items))
        .route("/v1/items/{id}", put(items::put_item).get(items::get_item).delete(items::delete_item))
        .route("/v1/users", get(users::list_users))
        .route("/v1/users/{id}", put(users::put_user).get(users::get_user).delete(users::delete_user))
        .route("/v1/users/{id}/timeline", get(users::timeline))
        .route("/v1/users/{id}/consents", get(privacy::get_consents).post(privacy::post_consents))
        .route("/v1/users/{id}/tokens", delete(privacy::revoke_tokens))
        .route("/v1/users/{id}/export", get(privacy::export))
        .route("/v1/visitors/{id}/consents", get(privacy::get_visitor_consents).post(privacy::post_visitor_consents))
        .route("/v1/settings", get(privacy::get_settings).patch(privacy::patch_settings))
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
