//! `POST /v1/recommendations`: every scenario (similar, for you, trending, recently viewed, bought together,
//! complete the cart, buy again, next in session) under business rules (a filter expression, boosts,
//! diversity, exclusions, stock), each item with an explanation. Every served list is logged as an
//! `impression` event of its shopper.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::recommendations::{
    Basis, Boost, BoostEffect, ListRequest, Recommended, RecsModel, Rules, Shopper, cached_or_warm_up,
    recommend_with_rules, tenant_recs,
};
use crate::state::{AppState, blocking};
use attune_core::input::ScalarValue;
use attune_core::{
    AnonymousId, Channel, Event, EventId, EventKind, FilterExpr, ItemId, Money, RecommendationId, Subject, TenantId,
    Timestamp, UserId, ValidationError,
};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use utoipa::ToSchema;

/// Most items in one list.
pub const MAX_COUNT: i64 = 100;
/// Most ids in `exclude_item_ids`.
pub const MAX_EXCLUDED: usize = 1_000;
/// Most items in `cart_item_ids`.
pub const MAX_CART: usize = 200;
/// Most boosts in one request.
pub const MAX_BOOSTS: usize = 20;

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

/// One recommended item.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedItem {
    pub item_id: String,
    pub title: String,
    #[schema(value_type = Option<attune_core::money::MoneyText>)]
    pub price: Option<Money>,
    /// Higher is better; comparable within one list only.
    pub score: f32,
    pub explanation: ExplanationView,
}

/// A served recommendation list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationList {
    /// Attributes impressions, clicks and purchases to this list (send it back with `click` events).
    pub recommendation_id: String,
    pub scenario: Scenario,
    /// The stored model version the list was computed with (see `GET /v1/models/recs`).
    pub model_version: i64,
    pub items: Vec<RecommendedItem>,
}

impl From<Recommended> for RecommendedItem {
    fn from(r: Recommended) -> Self {
        Self {
            item_id: r.item.id.to_string(),
            title: r.item.title.clone(),
            price: r.item.price,
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
/// event of the shopper.
#[utoipa::path(post, path = "/v1/recommendations", tag = "recommendations", request_body = RecommendationRequest,
    responses((status = 200, body = RecommendationList), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = []), ("public_key_with_user_token" = [])))]
pub async fn post_recommendations(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<RecommendationList>> {
    let input: RecommendationRequest = parse_json(&body)?;
    let prepared = prepare(input, |user| caller.require_user(user))?;
    let model = tenant_recs(&state, &caller.tenant).await?;
    let tenant = caller.tenant.clone();
    let list = blocking(move || serve_prepared(&state, &tenant, &model, prepared)).await?;
    Ok(Json(list))
}

/// The whole of `POST /v1/recommendations` but the HTTP layer, for a secret key of `tenant`: parses and
/// validates the JSON body, computes the list with the tenant's current model, queues its impression and
/// returns the response body. The handler runs exactly these steps (authentication and the socket aside);
/// `attune bench recs` calls this to measure serving in process. Blocks on store reads: call it from a
/// blocking thread. A tenant whose model is not loaded yet gets a 503 `model_not_ready`.
pub fn recommend_in_process(state: &AppState, tenant: &TenantId, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: RecommendationRequest = parse_json(body)?;
    let prepared = prepare(input, |_| Ok(()))?;
    let model = cached_or_warm_up(state, tenant).ok_or_else(|| {
        ApiError::new(ErrorKind::ModelNotReady, "the recommendation model of this tenant is still loading")
    })?;
    let list = serve_prepared(state, tenant, &model, prepared)?;
    serde_json::to_vec(&list).map_err(|e| ApiError::internal(format!("serialise the list: {e}")))
}

/// A validated request: the list to compute, its rules and whom to log the impression for.
struct PreparedRequest {
    scenario: Scenario,
    user: Option<UserId>,
    anonymous: Option<AnonymousId>,
    anchor: Option<ItemId>,
    request: ListRequest,
    rules: Rules,
}

/// Validates a request body; `may_act_for` says whether the caller may ask for this user's list.
fn prepare(input: RecommendationRequest, may_act_for: impl Fn(&UserId) -> ApiResult<()>) -> ApiResult<PreparedRequest> {
    let scenario = input.scenario;
    let user = input.user_id.map(|u| UserId::parse_field("user_id", u)).transpose()?;
    let anonymous = input.anonymous_id.map(|a| AnonymousId::parse_field("anonymous_id", a)).transpose()?;
    if let Some(user) = &user {
        may_act_for(user)?;
    }
    let count = input.count.unwrap_or(10);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(ValidationError::new("count", "out_of_range", format!("count must be 1 to {MAX_COUNT}")).into());
    }
    let excluded = input.exclude_item_ids.unwrap_or_default();
    if excluded.len() > MAX_EXCLUDED {
        return Err(ValidationError::new(
            "exclude_item_ids",
            "too_many",
            format!("at most {MAX_EXCLUDED} ids may be excluded"),
        )
        .into());
    }
    let exclude: HashSet<ItemId> =
        excluded.into_iter().map(|id| ItemId::parse_field("exclude_item_ids", id)).collect::<Result<_, _>>()?;
    let anchor = input.item_id.map(|id| ItemId::parse_field("item_id", id)).transpose()?;
    let cart = input.cart_item_ids.unwrap_or_default();
    if cart.len() > MAX_CART {
        return Err(
            ValidationError::new("cart_item_ids", "too_many", format!("a cart has at most {MAX_CART} items")).into()
        );
    }
    let cart: Vec<ItemId> =
        cart.into_iter().map(|id| ItemId::parse_field("cart_item_ids", id)).collect::<Result<_, _>>()?;
    let need_anchor = || anchor.clone().ok_or_else(|| ValidationError::missing("item_id"));
    let need_shopper = || {
        if user.is_none() && anonymous.is_none() { Err(ValidationError::missing("user_id")) } else { Ok(()) }
    };
    let basis = match scenario {
        Scenario::Similar => Basis::Similar(vec![need_anchor()?]),
        Scenario::ForYou => {
            need_shopper()?;
            Basis::ForYou(user.clone())
        }
        Scenario::Trending => Basis::Trending,
        Scenario::RecentlyViewed => {
            need_shopper()?;
            Basis::RecentlyViewed
        }
        Scenario::BoughtTogether => Basis::BoughtTogether(need_anchor()?),
        Scenario::CompleteCart => {
            if cart.is_empty() {
                return Err(ValidationError::missing("cart_item_ids").into());
            }
            Basis::CompleteCart(cart)
        }
        Scenario::BuyAgain => {
            if user.is_none() {
                return Err(ValidationError::missing("user_id").into());
            }
            Basis::BuyAgain
        }
        Scenario::Next => {
            need_shopper()?;
            Basis::Next
        }
    };
    let rules = parse_rules(
        Shopper { user: user.clone(), anonymous: anonymous.clone() },
        input.filter,
        input.boosts.unwrap_or_default(),
        input.max_per_category,
        input.mmr_lambda,
        input.exclude_purchased,
    )?;
    let request =
        ListRequest { basis, count: count as usize, exclude, in_stock_only: input.in_stock_only.unwrap_or(true) };
    Ok(PreparedRequest { scenario, user, anonymous, anchor, request, rules })
}

/// Computes a prepared list with `model` and queues its impression. Blocks on store reads.
fn serve_prepared(
    state: &AppState,
    tenant: &TenantId,
    model: &RecsModel,
    prepared: PreparedRequest,
) -> ApiResult<RecommendationList> {
    let PreparedRequest { scenario, user, anonymous, anchor, request, rules } = prepared;
    let catalog = state.catalog.snapshot(&state.store, tenant)?;
    if let Some(anchor) = &anchor
        && catalog.get(anchor).is_none()
    {
        return Err(ApiError::not_found(format!("item `{anchor}`")));
    }
    let picked = recommend_with_rules(state.store.as_ref(), tenant, model, Some(&catalog), &request, &rules)?;
    let recommendation_id = RecommendationId::generate();
    if !picked.is_empty() && (user.is_some() || anonymous.is_some()) {
        let impression = Event {
            id: EventId::generate(),
            subject: Subject { user_id: user, anonymous_id: anonymous },
            session_id: None,
            timestamp: Timestamp::now(),
            channel: Channel::Web,
            store_id: None,
            context: BTreeMap::from([
                ("source".to_string(), ScalarValue::Text("recommendations".to_string())),
                ("scenario".to_string(), ScalarValue::Text(scenario_name(scenario).to_string())),
            ]),
            kind: EventKind::Impression {
                recommendation_id: recommendation_id.clone(),
                item_ids: picked.iter().map(|r| r.item.id.clone()).collect(),
                positions: (0..picked.len() as u32).collect(),
            },
        };
        // Queued for the batched writer: a request never waits for its impression's disk sync.
        state.impressions.record(tenant.clone(), impression);
    }
    Ok(RecommendationList {
        recommendation_id: recommendation_id.to_string(),
        scenario,
        model_version: model.version,
        items: picked.into_iter().map(RecommendedItem::from).collect(),
    })
}

/// Parses the filter texts and checks the numbers of the rules.
fn parse_rules(
    shopper: Shopper,
    filter: Option<String>,
    boosts: Vec<BoostInput>,
    max_per_category: Option<u32>,
    mmr_lambda: Option<f32>,
    exclude_purchased: Option<bool>,
) -> ApiResult<Rules> {
    let filter =
        filter.map(|text| FilterExpr::parse(&text).map_err(|e| ApiError::invalid_filter("filter", &e))).transpose()?;
    if boosts.len() > MAX_BOOSTS {
        return Err(ValidationError::new("boosts", "too_many", format!("at most {MAX_BOOSTS} boosts")).into());
    }
    let boosts = boosts
        .into_iter()
        .enumerate()
        .map(|(index, boost)| {
            let field = format!("boosts[{index}].filter");
            let filter = FilterExpr::parse(&boost.filter).map_err(|e| ApiError::invalid_filter(&field, &e))?;
            let weight_ok = boost.weight.is_finite()
                && (boost.mode == Some(BoostMode::Add) || boost.weight >= 0.0)
                && boost.weight.abs() <= 1e6;
            if !weight_ok {
                return Err(ValidationError::new(
                    format!("boosts[{index}].weight"),
                    "out_of_range",
                    "a boost weight is a finite number, at most 1e6 in size, and not negative when it multiplies",
                )
                .into());
            }
            let effect = match boost.mode.unwrap_or(BoostMode::Multiply) {
                BoostMode::Multiply => BoostEffect::Multiply(boost.weight),
                BoostMode::Add => BoostEffect::Add(boost.weight),
            };
            Ok(Boost { filter, effect })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if max_per_category == Some(0) {
        return Err(
            ValidationError::new("max_per_category", "out_of_range", "max_per_category must be at least 1").into()
        );
    }
    if let Some(lambda) = mmr_lambda
        && !(0.0..=1.0).contains(&lambda)
    {
        return Err(ValidationError::new("mmr_lambda", "out_of_range", "mmr_lambda must be 0 to 1").into());
    }
    Ok(Rules {
        shopper,
        filter,
        boosts,
        max_per_category: max_per_category.map(|n| n as usize),
        mmr_lambda,
        exclude_purchased,
    })
}

fn scenario_name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Similar => "similar",
        Scenario::ForYou => "for_you",
        Scenario::Trending => "trending",
        Scenario::RecentlyViewed => "recently_viewed",
        Scenario::BoughtTogether => "bought_together",
        Scenario::CompleteCart => "complete_cart",
        Scenario::BuyAgain => "buy_again",
        Scenario::Next => "next",
    }
}
