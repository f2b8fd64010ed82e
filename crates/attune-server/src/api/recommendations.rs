//! `POST /v1/recommendations`: every scenario (similar, for you, trending, recently viewed, bought together,
//! complete the cart, buy again, next in session) under business rules (a filter expression, boosts,
//! diversity, exclusions, stock), each item with what a widget shows (title, image, link, availability, the
//! price and its display text) and an explanation; `fields` trims the items to what the caller reads. A served
//! list is logged as an `impression` event of its shopper unless the request says `log_impression: false`.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use attune_core::{Availability, Money, TenantId, ValidationError};
use attune_engine::recs::model::RecsModel;
use attune_engine::recs::query::{self, BoostQuery, ListQuery, ValidList};
use attune_engine::recs::request::Recommended;
use attune_engine::{Engine, EngineResult};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// What kind of list to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Items similar to `item_id` (shoppers who liked it also liked these).
    Similar,
    /// Personalised from the shopper's recent history; trending and popular items for shoppers without one.
    ForYou,
    /// What is trending this week (time-decayed activity), then all-time popular items.
    Trending,
    /// The shopper's latest viewed items, newest first, each once.
    RecentlyViewed,
    /// Items significantly often bought with `item_id` (lift with a significance test), then similar items.
    BoughtTogether,
    /// Items significantly often bought with the `cart_item_ids`, then similar items.
    CompleteCart,
    /// Items the shopper (`user_id`) buys repeatedly and is due to buy again.
    BuyAgain,
    /// What comes next in the shopper's current session (session kNN on their latest events), then items
    /// like the session's, then trending items.
    Next,
}

/// How a boost changes a matching item's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoostMode {
    /// score × weight (the default; a weight below 1 buries).
    Multiply,
    /// score + weight.
    Add,
}

/// A soft rule: items matching `filter` move within their part of the list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoostInput {
    /// A filter expression, e.g. `brand = "Acme"`.
    pub filter: String,
    /// The factor (multiply, ≥ 0) or amount (add).
    pub weight: f32,
    pub mode: Option<BoostMode>,
}

/// The body of `POST /v1/recommendations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationRequest {
    pub scenario: Scenario,
    /// The shopper (a public key needs a user token for this user).
    pub user_id: Option<String>,
    /// An anonymous visitor, when there is no `user_id`.
    pub anonymous_id: Option<String>,
    /// The anchor item; required for `similar` and `bought_together`.
    pub item_id: Option<String>,
    /// How many items, 1 to 100 (default 10).
    pub count: Option<i64>,
    /// Items never to return.
    pub exclude_item_ids: Option<Vec<String>>,
    /// Only items in stock (default true).
    pub in_stock_only: Option<bool>,
    /// The cart's items; required for `complete_cart`, never returned.
    pub cart_item_ids: Option<Vec<String>>,
    /// Only items matching this filter expression, e.g.
    /// `price < 40 and category = "Home > Kitchen" and brand in ("Acme", "Zed") and not colour = "red"`.
    pub filter: Option<String>,
    /// Score changes for items matching filters.
    pub boosts: Option<Vec<BoostInput>>,
    /// At most this many items of one category (full category path).
    pub max_per_category: Option<u32>,
    /// Diversify with maximal marginal relevance: 1 = relevance only, 0 = most diverse (0 to 1).
    pub mmr_lambda: Option<f32>,
    /// Leave out items the shopper bought (default true for `for_you`, false otherwise).
    pub exclude_purchased: Option<bool>,
    /// Store the served list as an `impression` event of the shopper (default true). Send `false` for lists
    /// no shopper sees: server-side prefetches, load tests.
    pub log_impression: Option<bool>,
    /// Only these fields of each item (`item_id` is always included), e.g.
    /// `["title", "image_url", "link", "price_text"]`; all fields by default. One of `item_id`, `title`,
    /// `price`, `price_text`, `image_url`, `link`, `availability`, `score`, `explanation`.
    pub fields: Option<Vec<String>>,
}

/// Why an item is recommended.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationView {
    /// `similar_items`, `your_history`, `trending`, `popular`, `recently_viewed`, `bought_together`,
    /// `buy_again` or `session`.
    pub signal: &'static str,
    /// The items that caused the recommendation: the anchor item, the cart's or the shopper's own items
    /// (empty for `trending` and `popular`).
    pub because_item_ids: Vec<String>,
    /// A sentence to show the shopper.
    pub text: String,
}

/// One recommended item: what a widget shows, from the catalog, and why it is recommended. With `fields` in the
/// request, only the fields asked for (and `item_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedItem {
    pub item_id: String,
    pub title: String,
    #[schema(value_type = Option<attune_core::money::MoneyText>)]
    pub price: Option<Money>,
    /// The price for display: the currency's symbol where one is well known (`£4.50`), else `12.00 CHF`.
    pub price_text: Option<String>,
    /// The product image, as the catalog gives it.
    pub image_url: Option<String>,
    /// The product page, as the catalog gives it.
    pub link: Option<String>,
    pub availability: Availability,
    /// Higher is better; comparable within one list only.
    pub score: f32,
    pub explanation: ExplanationView,
}

/// The fields of [`RecommendedItem`] that `fields` may name.
pub const ITEM_FIELDS: [&str; 9] =
    ["item_id", "title", "price", "price_text", "image_url", "link", "availability", "score", "explanation"];

/// A served recommendation list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationList {
    /// Attributes impressions, clicks and purchases to this list (send it back with `click` events).
    pub recommendation_id: String,
    pub scenario: Scenario,
    /// The stored model version the list was computed with (see `GET /v1/models/recs`).
    pub model_version: i64,
    pub items: Vec<RecommendedItem>,
    /// Whether the shopper's own history shaped the list.
    pub personalized: bool,
    /// Why it did not: `no_shopper` (no user or anonymous id given) or `consent_withdrawn` (the user withdrew
    /// consent to personalization: the list is what anyone would get here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_personalized_reason: Option<&'static str>,
}

impl From<Recommended> for RecommendedItem {
    fn from(r: Recommended) -> Self {
        Self {
            item_id: r.item.id.to_string(),
            title: r.item.title.clone(),
            price: r.item.price,
            price_text: r.item.price.as_ref().map(Money::formatted),
            image_url: r.item.image_url.clone(),
            link: r.item.link.clone(),
            availability: r.item.availability,
            score: r.score,
            explanation: ExplanationView {
                signal: r.explanation.signal.as_str(),
                because_item_ids: r.explanation.because_item_ids.into_iter().map(|id| id.to_string()).collect(),
                text: r.explanation.text,
            },
        }
    }
}

/// Get recommendations: `similar` and `bought_together` (need `item_id`), `complete_cart` (needs
/// `cart_item_ids`), `for_you`, `recently_viewed` and `next` (need `user_id` or `anonymous_id`), `buy_again`
/// (needs `user_id`) or `trending`. Never returns the anchor or cart items, excluded ids, items the shopper
/// marked not interested, duplicates, items failing `filter`, or (by default) out-of-stock items. A filter
/// that does not parse is a 400 `invalid_filter` with its `position`. The list is logged as an `impression`
/// event of the shopper unless `log_impression` is false. `fields` trims each item to the fields named.
#[utoipa::path(post, path = "/v1/recommendations", tag = "recommendations", request_body = RecommendationRequest,
    responses((status = 200, body = RecommendationList), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = []), ("public_key_with_user_token" = [])))]
pub async fn post_recommendations(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let mut input: RecommendationRequest = parse_json(&body)?;
    let fields = ItemFields::parse(input.fields.take())?;
    let scenario = input.scenario;
    let valid = query(input).validate(|user| caller.require_user(user))?;
    let model = serving_model(&state, &caller.tenant).await?;
    let list = state.run(move |engine| serve_valid(engine, &caller.tenant, &model, scenario, valid)).await?;
    Ok(match fields {
        None => Json(list).into_response(),
        Some(fields) => Json(fields.trim(&list)?).into_response(),
    })
}

/// The model the tenant is served from; only a tenant without any model waits (on a blocking thread).
pub(crate) async fn serving_model(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<RecsModel>> {
    if let Some(model) = state.engine.recs().serving(tenant) {
        return Ok(model);
    }
    let tenant = tenant.clone();
    state.run(move |engine| engine.recs().model(&tenant)).await
}

/// The whole of `POST /v1/recommendations` but the HTTP layer, for a secret key of `tenant`: parses and
/// validates the JSON body, computes the list with the tenant's current model, queues its impression (unless
/// `log_impression` is false) and returns the response body, trimmed to `fields`. The handler runs exactly these steps (authentication and the socket aside);
/// `attune bench recs` calls this to measure serving in process. Blocks on store reads: call it from a
/// blocking thread. A tenant whose model is not loaded yet gets a 503 `model_not_ready`.
pub fn recommend_in_process(state: &AppState, tenant: &TenantId, body: &[u8]) -> ApiResult<Vec<u8>> {
    let mut input: RecommendationRequest = parse_json(body)?;
    let fields = ItemFields::parse(input.fields.take())?;
    let scenario = input.scenario;
    let valid = query(input).validate(|_| ApiResult::Ok(()))?;
    let model = state.engine.recs().active_or_warm_up(tenant).ok_or_else(|| {
        ApiError::new(ErrorKind::ModelNotReady, "the recommendation model of this tenant is still loading")
    })?;
    let list = serve_valid(&state.engine, tenant, &model, scenario, valid)?;
    let bytes = match fields {
        None => serde_json::to_vec(&list),
        Some(fields) => serde_json::to_vec(&fields.trim(&list)?),
    };
    bytes.map_err(|e| ApiError::internal(format!("serialise the list: {e}")))
}

/// The item fields a request asked for with `fields`: checked names, `item_id` always among them.
struct ItemFields(Vec<&'static str>);

impl ItemFields {
    /// `None` when the request names no fields (every field is returned).
    fn parse(names: Option<Vec<String>>) -> ApiResult<Option<Self>> {
        let Some(names) = names else { return Ok(None) };
        let mut kept = vec!["item_id"];
        for name in names {
            let Some(known) = ITEM_FIELDS.iter().find(|f| **f == name) else {
                let message =
                    format!("`{name}` is not a field of a recommended item (one of {})", ITEM_FIELDS.join(", "));
                return Err(ValidationError::new("fields", "invalid_value", message).into());
            };
            kept.push(*known);
        }
        Ok(Some(Self(kept)))
    }

    /// The list with each item holding only these fields.
    fn trim(&self, list: &RecommendationList) -> ApiResult<serde_json::Value> {
        let mut value = serde_json::to_value(list).map_err(ApiError::internal)?;
        if let Some(items) = value["items"].as_array_mut() {
            for item in items.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                item.retain(|key, _| self.0.contains(&key.as_str()));
            }
        }
        Ok(value)
    }
}

/// The body as the engine's query: the engine checks every field and what the scenario needs.
fn query(input: RecommendationRequest) -> ListQuery {
    let scenario = match input.scenario {
        Scenario::Similar => query::Scenario::Similar,
        Scenario::ForYou => query::Scenario::ForYou,
        Scenario::Trending => query::Scenario::Trending,
        Scenario::RecentlyViewed => query::Scenario::RecentlyViewed,
        Scenario::BoughtTogether => query::Scenario::BoughtTogether,
        Scenario::CompleteCart => query::Scenario::CompleteCart,
        Scenario::BuyAgain => query::Scenario::BuyAgain,
        Scenario::Next => query::Scenario::Next,
    };
    let boost = |b: BoostInput| BoostQuery { filter: b.filter, weight: b.weight, add: b.mode == Some(BoostMode::Add) };
    ListQuery {
        scenario,
        user_id: input.user_id,
        anonymous_id: input.anonymous_id,
        item_id: input.item_id,
        count: input.count,
        exclude_item_ids: input.exclude_item_ids.unwrap_or_default(),
        in_stock_only: input.in_stock_only,
        cart_item_ids: input.cart_item_ids.unwrap_or_default(),
        filter: input.filter,
        boosts: input.boosts.unwrap_or_default().into_iter().map(boost).collect(),
        max_per_category: input.max_per_category,
        mmr_lambda: input.mmr_lambda,
        exclude_purchased: input.exclude_purchased,
        log_impression: input.log_impression,
    }
}

/// Computes a validated list with `model` and queues its impression (unless the list says not to). Blocks on
/// store reads.
fn serve_valid(
    engine: &Engine,
    tenant: &TenantId,
    model: &RecsModel,
    scenario: Scenario,
    valid: ValidList,
) -> EngineResult<RecommendationList> {
    let served = engine.recs().serve(tenant, model, &valid)?;
    Ok(RecommendationList {
        recommendation_id: served.recommendation_id.to_string(),
        scenario,
        model_version: served.model_version,
        items: served.items.into_iter().map(RecommendedItem::from).collect(),
        personalized: served.personalization.is_personalized(),
        not_personalized_reason: served.personalization.reason().map(|r| r.code()),
    })
}
