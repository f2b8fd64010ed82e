//! The loosely typed forms in which data arrives (JSON bodies, JSONL and CSV imports) and in which it is
//! written back out. Numbers that must not be negative are read as `i64` so that a wrong sign gets a
//! precise message from validation instead of a generic type error. Unknown fields are rejected.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A scalar JSON value in free-form maps (user traits, event context, item attributes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScalarValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl ScalarValue {
    /// The value as display text (numbers without a needless `.0`).
    pub fn to_text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Self::Number(n) => n.to_string(),
            Self::Text(t) => t.clone(),
        }
    }
}

/// A decimal amount given either as a JSON string (`"12.50"`, exact) or a JSON number (`12.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AmountInput {
    Text(String),
    Number(f64),
}

impl AmountInput {
    pub fn to_decimal_string(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Number(n) => format!("{n}"),
        }
    }
}

/// A time given as RFC 3339 text or integer milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TimeInput {
    Millis(i64),
    Text(String),
}

/// A catalog item as sent to `PUT /v1/items/{id}` or `POST /v1/items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Category path from general to specific, e.g. `["Home", "Kitchen", "Mugs"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_path: Option<Vec<String>>,
    /// Alternative to `category_path`: one string with levels separated by `>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<AmountInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Colour, size, material, gender and any other attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, ScalarValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_quantity: Option<i64>,
    /// `in_stock`, `out_of_stock`, `preorder` or `backorder`; derived from stock when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// Variants of one product share an item group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<TimeInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentInput {
    pub personalization: Option<bool>,
    pub marketing: Option<bool>,
    pub analytics: Option<bool>,
}

/// A consent change, as sent to `POST /v1/users/{id}/consents`: the purposes named are granted (`true`) or
/// withdrawn (`false`); the others stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentChangeInput {
    pub personalization: Option<bool>,
    pub marketing: Option<bool>,
    pub analytics: Option<bool>,
    /// `api` (default with a secret key), `console` or `import`; with a public key always `storefront`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(api|storefront|console|import)$"))]
    pub source: Option<String>,
    /// The shop's own purposes (declared in `PATCH /v1/settings`), by name: granted (`true`) or withdrawn.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub purposes: BTreeMap<String, bool>,
    /// The version of the privacy policy the customer was shown.
    pub policy_version: Option<String>,
}

/// A customer as sent to `PUT /v1/users/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traits: Option<BTreeMap<String, ScalarValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentInput>,
}

/// One line of an order or a return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLineInput {
    pub item_id: String,
    pub quantity: i64,
    pub unit_price: AmountInput,
}

/// A behavioural event in its wire form; which fields are required depends on `type`.
///
/// | type | required | optional |
/// |---|---|---|
/// | `view` | `item_id` | `dwell_ms` |
/// | `add_to_cart`, `remove_from_cart` | `item_id` | `quantity` (default 1) |
/// | `purchase` | `order_id`, `currency`, `lines` | |
/// | `return` | `currency`, `lines` | `order_id` |
/// | `search` | `query` | `result_ids` |
/// | `impression` | `recommendation_id`, `item_ids` | `positions` (default 0, 1, ...) |
/// | `click` | `item_id` | `recommendation_id`, `position` |
/// | `rating` | `item_id`, `rating` (0 to 5) | |
/// | `wishlist`, `not_interested` | `item_id` | |
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventInput {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// RFC 3339 text or integer milliseconds; the time of receipt when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeInput>,
    /// `web` (default), `app`, `store`, `kiosk` or `call_center`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, ScalarValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<OrderLineInput>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
}
