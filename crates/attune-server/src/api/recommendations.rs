//! `POST /v1/recommendations`: items similar to an item, personalised picks for a shopper, or trending
//! items, each with an explanation. Every served list is logged as an `impression` event of its shopper.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::recommendations::{Basis, ListRequest, Recommended, recommend, tenant_recs};
use crate::state::{AppState, blocking};
use attune_core::input::ScalarValue;
use attune_core::{
    AnonymousId, Channel, Event, EventId, EventKind, ItemId, Money, RecommendationId, Subject, Timestamp, UserId,
    ValidationError,
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
    /// The anchor item; required for `similar`.
    pub item_id: Option<String>,
    /// How many items, 1 to 100 (default 10).
    pub count: Option<i64>,
    /// Items never to return.
    pub exclude_item_ids: Option<Vec<String>>,
    /// Only items in stock (default true).
    pub in_stock_only: Option<bool>,
}

/// Why an item is recommended.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationView {
    /// `similar_items`, `your_history`, `trending` or `popular`.
    pub signal: &'static str,
    /// The items that caused the recommendation (for `similar_items` and `your_history`).
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
    pub items: Vec<RecommendedItem>,
}

impl From<Recommended> for RecommendedItem {
    fn from(r: Recommended) -> Self {
        Self {
            item_id: r.item.id.to_string(),
            title: r.item.title,
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

/// Get recommendations: `similar` (needs `item_id`), `for_you` (needs `user_id` or `anonymous_id`) or
/// `trending`. Never returns the anchor item, the shopper's recent items (`for_you`), excluded ids,
/// duplicates, or (by default) out-of-stock items. The list is logged as an `impression` event of the shopper.
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
    let scenario = input.scenario;
    let user = input.user_id.map(|u| UserId::parse_field("user_id", u)).transpose()?;
    let anonymous = input.anonymous_id.map(|a| AnonymousId::parse_field("anonymous_id", a)).transpose()?;
    if let Some(user) = &user {
        caller.require_user(user)?;
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
    let basis = match scenario {
        Scenario::Similar => Basis::Similar(vec![anchor.clone().ok_or_else(|| ValidationError::missing("item_id"))?]),
        Scenario::ForYou => {
            if user.is_none() && anonymous.is_none() {
                return Err(ValidationError::missing("user_id").into());
            }
            Basis::ForYou(user.clone())
        }
        Scenario::Trending => Basis::Trending,
    };
    let request =
        ListRequest { basis, count: count as usize, exclude, in_stock_only: input.in_stock_only.unwrap_or(true) };
    let model = tenant_recs(&state, &caller.tenant).await?;
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let recommendation_id = RecommendationId::generate();
    let logged_id = recommendation_id.clone();
    let picked = blocking(move || {
        if let Some(anchor) = &anchor
            && store.item(&tenant, anchor)?.is_none()
        {
            return Err(ApiError::not_found(format!("item `{anchor}`")));
        }
        let picked = recommend(store.as_ref(), &tenant, &model, &request)?;
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
                    recommendation_id: logged_id,
                    item_ids: picked.iter().map(|r| r.item.id.clone()).collect(),
                    positions: (0..picked.len() as u32).collect(),
                },
            };
            store.append_events(&tenant, &[impression])?;
        }
        Ok(picked)
    })
    .await?;
    Ok(Json(RecommendationList {
        recommendation_id: recommendation_id.to_string(),
        scenario,
        items: picked.into_iter().map(RecommendedItem::from).collect(),
    }))
}

fn scenario_name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Similar => "similar",
        Scenario::ForYou => "for_you",
        Scenario::Trending => "trending",
    }
}
