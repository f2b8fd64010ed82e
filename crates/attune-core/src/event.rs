//! Behavioural events: what shoppers do, on which channel, when. [`Event::parse`] turns an
//! [`EventInput`] into a validated [`Event`]; [`Event::to_input`] writes it back in the same wire form,
//! so parsing what was written gives the same event.

use crate::error::ValidationError;
use crate::ids::{AnonymousId, EventId, ItemId, OrderId, RecommendationId, SessionId, StoreId, UserId};
use crate::input::{AmountInput, EventInput, OrderLineInput, ScalarValue, TimeInput};
use crate::item::parse_time;
use crate::money::{Currency, Money};
use crate::time::Timestamp;
use crate::user::validate_scalar_map;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most lines in one order, items in one impression, results in one search.
pub const MAX_LIST_LEN: usize = 1_000;
const MAX_QUANTITY: i64 = 1_000_000;
const MAX_QUERY_LEN: usize = 1_000;

/// A shopper's query as a `search` event can hold it: control characters dropped, cut to at most
/// [`MAX_QUERY_LEN`] bytes at a character boundary.
pub fn loggable_query(query: &str) -> String {
    let mut kept = String::with_capacity(query.len().min(MAX_QUERY_LEN));
    for c in query.chars().filter(|c| !c.is_control()) {
        if kept.len() + c.len_utf8() > MAX_QUERY_LEN {
            break;
        }
        kept.push(c);
    }
    kept
}
const MAX_DWELL_MS: i64 = 24 * 3_600_000;
const MAX_CONTEXT_ENTRIES: usize = 50;

/// Where the event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Channel {
    Web,
    App,
    Store,
    Kiosk,
    CallCenter,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Self::Web, Self::App, Self::Store, Self::Kiosk, Self::CallCenter];

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|c| c.as_str() == text).ok_or_else(|| {
            ValidationError::new(
                "channel",
                "invalid_channel",
                format!("`{text}` is not one of web, app, store, kiosk, call_center"),
            )
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::App => "app",
            Self::Store => "store",
            Self::Kiosk => "kiosk",
            Self::CallCenter => "call_center",
        }
    }
}

/// The event type names of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    View,
    AddToCart,
    RemoveFromCart,
    Purchase,
    Return,
    Search,
    Impression,
    Click,
    Rating,
    Wishlist,
    NotInterested,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        Self::View,
        Self::AddToCart,
        Self::RemoveFromCart,
        Self::Purchase,
        Self::Return,
        Self::Search,
        Self::Impression,
        Self::Click,
        Self::Rating,
        Self::Wishlist,
        Self::NotInterested,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::View => "view",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Purchase => "purchase",
            Self::Return => "return",
            Self::Search => "search",
            Self::Impression => "impression",
            Self::Click => "click",
            Self::Rating => "rating",
            Self::Wishlist => "wishlist",
            Self::NotInterested => "not_interested",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|t| t.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(EventType::as_str).collect();
            ValidationError::new(
                "type",
                "unknown_event_type",
                format!("`{text}` is not an event type; known types: {}", known.join(", ")),
            )
        })
    }

    /// The type-specific fields an event of this type may carry (the common fields are always allowed).
    fn allowed_fields(&self) -> &'static [&'static str] {
        match self {
            Self::View => &["item_id", "dwell_ms"],
            Self::AddToCart | Self::RemoveFromCart => &["item_id", "quantity"],
            Self::Purchase | Self::Return => &["order_id", "currency", "lines"],
            Self::Search => &["query", "result_ids"],
            Self::Impression => &["recommendation_id", "item_ids", "positions"],
            Self::Click => &["item_id", "recommendation_id", "position"],
            Self::Rating => &["item_id", "rating"],
            Self::Wishlist | Self::NotInterested => &["item_id"],
        }
    }
}

/// Who did it: a known customer, an anonymous visitor, or both (the moment a visitor logs in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub user_id: Option<UserId>,
    pub anonymous_id: Option<AnonymousId>,
}

/// A line of an order or return: a positive quantity at a non-negative unit price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub item_id: ItemId,
    pub quantity: u32,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn total_minor_units(&self) -> i64 {
        self.unit_price.minor_units * i64::from(self.quantity)
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    View { item_id: ItemId, dwell_ms: Option<u32> },
    AddToCart { item_id: ItemId, quantity: u32 },
    RemoveFromCart { item_id: ItemId, quantity: u32 },
    Purchase { order_id: OrderId, lines: Vec<OrderLine> },
    Return { order_id: Option<OrderId>, lines: Vec<OrderLine> },
    Search { query: String, result_ids: Vec<ItemId> },
    Impression { recommendation_id: RecommendationId, item_ids: Vec<ItemId>, positions: Vec<u32> },
    Click { item_id: ItemId, recommendation_id: Option<RecommendationId>, position: Option<u32> },
    Rating { item_id: ItemId, rating: f32 },
    Wishlist { item_id: ItemId },
    NotInterested { item_id: ItemId },
}

impl EventKind {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::View { .. } => EventType::View,
            Self::AddToCart { .. } => EventType::AddToCart,
            Self::RemoveFromCart { .. } => EventType::RemoveFromCart,
            Self::Purchase { .. } => EventType::Purchase,
            Self::Return { .. } => EventType::Return,
            Self::Search { .. } => EventType::Search,
            Self::Impression { .. } => EventType::Impression,
            Self::Click { .. } => EventType::Click,
            Self::Rating { .. } => EventType::Rating,
            Self::Wishlist { .. } => EventType::Wishlist,
            Self::NotInterested { .. } => EventType::NotInterested,
        }
    }

    /// The single item the event is about, for kinds that have one.
    pub fn primary_item(&self) -> Option<&ItemId> {
        match self {
            Self::View { item_id, .. }
            | Self::AddToCart { item_id, .. }
            | Self::RemoveFromCart { item_id, .. }
            | Self::Click { item_id, .. }
            | Self::Rating { item_id, .. }
            | Self::Wishlist { item_id }
            | Self::NotInterested { item_id } => Some(item_id),
            Self::Purchase { .. } | Self::Return { .. } | Self::Search { .. } | Self::Impression { .. } => None,
        }
    }

    /// Every item the event mentions.
    pub fn items(&self) -> Vec<&ItemId> {
        match self {
            Self::Purchase { lines, .. } | Self::Return { lines, .. } => lines.iter().map(|l| &l.item_id).collect(),
            Self::Search { result_ids, .. } => result_ids.iter().collect(),
            Self::Impression { item_ids, .. } => item_ids.iter().collect(),
            other => other.primary_item().into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub subject: Subject,
    pub session_id: Option<SessionId>,
    pub timestamp: Timestamp,
    pub channel: Channel,
    pub store_id: Option<StoreId>,
    pub context: BTreeMap<String, ScalarValue>,
    pub kind: EventKind,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.kind.event_type()
    }

    /// Validate an input. An event without `event_id` gets a generated one; without `timestamp` it is
    /// stamped `received_at`.
    pub fn parse(input: EventInput, received_at: Timestamp) -> Result<Self, ValidationError> {
        let event_type = EventType::parse(&input.event_type)?;
        reject_foreign_fields(event_type, &input)?;
        let id = match input.event_id {
            Some(id) => EventId::parse_field("event_id", id)?,
            None => EventId::generate(),
        };
        let user_id = input.user_id.map(|v| UserId::parse_field("user_id", v)).transpose()?;
        let anonymous_id = input.anonymous_id.map(|v| AnonymousId::parse_field("anonymous_id", v)).transpose()?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(ValidationError::new(
                "user_id",
                "missing_subject",
                "an event needs `user_id` or `anonymous_id` (or both)",
            ));
        }
        let session_id = input.session_id.map(|v| SessionId::parse_field("session_id", v)).transpose()?;
        let timestamp = match input.timestamp {
            None => received_at,
            Some(time) => parse_time("timestamp", time)?,
        };
        let channel = match input.channel {
            None => Channel::Web,
            Some(text) => Channel::parse(&text)?,
        };
        let store_id = input.store_id.map(|v| StoreId::parse_field("store_id", v)).transpose()?;
        let context = input.context.unwrap_or_default();
        validate_scalar_map("context", &context, MAX_CONTEXT_ENTRIES, 64, 2_000)?;

        let item_id = || -> Result<ItemId, ValidationError> {
            ItemId::parse_field("item_id", input.item_id.clone().ok_or_else(|| ValidationError::missing("item_id"))?)
        };
        let kind = match event_type {
            EventType::View => EventKind::View {
                item_id: item_id()?,
                dwell_ms: input
                    .dwell_ms
                    .map(|d| bounded("dwell_ms", d, 0, MAX_DWELL_MS, "a dwell time in milliseconds"))
                    .transpose()?,
            },
            EventType::AddToCart | EventType::RemoveFromCart => {
                let quantity = bounded("quantity", input.quantity.unwrap_or(1), 1, MAX_QUANTITY, "a quantity")?;
                let item_id = item_id()?;
                if event_type == EventType::AddToCart {
                    EventKind::AddToCart { item_id, quantity }
                } else {
                    EventKind::RemoveFromCart { item_id, quantity }
                }
            }
            EventType::Purchase | EventType::Return => {
                let currency = Currency::parse(&input.currency.ok_or_else(|| ValidationError::missing("currency"))?)?;
                let lines = input.lines.ok_or_else(|| ValidationError::missing("lines"))?;
                let lines = parse_lines(lines, currency)?;
                if event_type == EventType::Purchase {
                    let order_id = OrderId::parse_field(
                        "order_id",
                        input.order_id.ok_or_else(|| ValidationError::missing("order_id"))?,
                    )?;
                    EventKind::Purchase { order_id, lines }
                } else {
                    let order_id = input.order_id.map(|v| OrderId::parse_field("order_id", v)).transpose()?;
                    EventKind::Return { order_id, lines }
                }
            }
            EventType::Search => {
                let query = input.query.ok_or_else(|| ValidationError::missing("query"))?;
                if query.len() > MAX_QUERY_LEN || query.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        "query",
                        "invalid_query",
                        format!("a query is at most {MAX_QUERY_LEN} bytes without control characters"),
                    ));
                }
                let result_ids = parse_item_list("result_ids", input.result_ids.unwrap_or_default())?;
                EventKind::Search { query, result_ids }
            }
            EventType::Impression => {
                let recommendation_id = RecommendationId::parse_field(
                    "recommendation_id",
                    input.recommendation_id.ok_or_else(|| ValidationError::missing("recommendation_id"))?,
                )?;
                let item_ids =
                    parse_item_list("item_ids", input.item_ids.ok_or_else(|| ValidationError::missing("item_ids"))?)?;
                let positions = match input.positions {
                    None => (0..item_ids.len() as u32).collect(),
                    Some(positions) => {
                        if positions.len() != item_ids.len() {
                            return Err(ValidationError::new(
                                "positions",
                                "length_mismatch",
                                format!("{} positions for {} item_ids", positions.len(), item_ids.len()),
                            ));
                        }
                        positions
                            .into_iter()
                            .enumerate()
                            .map(|(i, p)| {
                                bounded(&format!("positions[{i}]"), p, 0, MAX_LIST_LEN as i64 * 100, "a position")
                            })
                            .collect::<Result<_, _>>()?
                    }
                };
                EventKind::Impression { recommendation_id, item_ids, positions }
            }
            EventType::Click => EventKind::Click {
                item_id: item_id()?,
                recommendation_id: input
                    .recommendation_id
                    .map(|v| RecommendationId::parse_field("recommendation_id", v))
                    .transpose()?,
                position: input
                    .position
                    .map(|p| bounded("position", p, 0, MAX_LIST_LEN as i64 * 100, "a position"))
                    .transpose()?,
            },
            EventType::Rating => {
                let rating = input.rating.ok_or_else(|| ValidationError::missing("rating"))?;
                if !(0.0..=5.0).contains(&rating) {
                    return Err(ValidationError::new("rating", "out_of_range", "a rating is between 0 and 5"));
                }
                EventKind::Rating { item_id: item_id()?, rating: rating as f32 }
            }
            EventType::Wishlist => EventKind::Wishlist { item_id: item_id()? },
            EventType::NotInterested => EventKind::NotInterested { item_id: item_id()? },
        };
        Ok(Self {
            id,
            subject: Subject { user_id, anonymous_id },
            session_id,
            timestamp,
            channel,
            store_id,
            context,
            kind,
        })
    }

    /// The event in its wire form, with every field explicit (`event_id`, `timestamp`, `channel`).
    pub fn to_input(&self) -> EventInput {
        let mut out = EventInput {
            event_type: self.event_type().as_str().to_string(),
            event_id: Some(self.id.to_string()),
            user_id: self.subject.user_id.as_ref().map(ToString::to_string),
            anonymous_id: self.subject.anonymous_id.as_ref().map(ToString::to_string),
            session_id: self.session_id.as_ref().map(ToString::to_string),
            timestamp: Some(TimeInput::Text(self.timestamp.to_string())),
            channel: Some(self.channel.as_str().to_string()),
            store_id: self.store_id.as_ref().map(ToString::to_string),
            context: if self.context.is_empty() { None } else { Some(self.context.clone()) },
            ..Default::default()
        };
        let write_lines = |lines: &[OrderLine]| -> (Option<String>, Option<Vec<OrderLineInput>>) {
            let currency = lines.first().map(|l| l.unit_price.currency.to_string());
            let lines = lines
                .iter()
                .map(|l| OrderLineInput {
                    item_id: l.item_id.to_string(),
                    quantity: i64::from(l.quantity),
                    unit_price: AmountInput::Text(l.unit_price.amount_string()),
                })
                .collect();
            (currency, Some(lines))
        };
        match &self.kind {
            EventKind::View { item_id, dwell_ms } => {
                out.item_id = Some(item_id.to_string());
                out.dwell_ms = dwell_ms.map(i64::from);
            }
            EventKind::AddToCart { item_id, quantity } | EventKind::RemoveFromCart { item_id, quantity } => {
                out.item_id = Some(item_id.to_string());
                out.quantity = Some(i64::from(*quantity));
            }
            EventKind::Purchase { order_id, lines } => {
                out.order_id = Some(order_id.to_string());
                (out.currency, out.lines) = write_lines(lines);
            }
            EventKind::Return { order_id, lines } => {
                out.order_id = order_id.as_ref().map(ToString::to_string);
                (out.currency, out.lines) = write_lines(lines);
            }
            EventKind::Search { query, result_ids } => {
                out.query = Some(query.clone());
                out.result_ids = Some(result_ids.iter().map(ToString::to_string).collect());
            }
            EventKind::Impression { recommendation_id, item_ids, positions } => {
                out.recommendation_id = Some(recommendation_id.to_string());
                out.item_ids = Some(item_ids.iter().map(ToString::to_string).collect());
                out.positions = Some(positions.iter().map(|&p| i64::from(p)).collect());
            }
            EventKind::Click { item_id, recommendation_id, position } => {
                out.item_id = Some(item_id.to_string());
                out.recommendation_id = recommendation_id.as_ref().map(ToString::to_string);
                out.position = position.map(i64::from);
            }
            EventKind::Rating { item_id, rating } => {
                out.item_id = Some(item_id.to_string());
                out.rating = Some(f64::from(*rating));
            }
            EventKind::Wishlist { item_id } | EventKind::NotInterested { item_id } => {
                out.item_id = Some(item_id.to_string());
            }
        }
        out
    }
}

fn reject_foreign_fields(event_type: EventType, input: &EventInput) -> Result<(), ValidationError> {
    let present = [
        ("item_id", input.item_id.is_some()),
        ("quantity", input.quantity.is_some()),
        ("dwell_ms", input.dwell_ms.is_some()),
        ("order_id", input.order_id.is_some()),
        ("currency", input.currency.is_some()),
        ("lines", input.lines.is_some()),
        ("query", input.query.is_some()),
        ("result_ids", input.result_ids.is_some()),
        ("recommendation_id", input.recommendation_id.is_some()),
        ("item_ids", input.item_ids.is_some()),
        ("positions", input.positions.is_some()),
        ("position", input.position.is_some()),
        ("rating", input.rating.is_some()),
    ];
    let allowed = event_type.allowed_fields();
    for (field, is_present) in present {
        if is_present && !allowed.contains(&field) {
            return Err(ValidationError::new(
                field,
                "field_not_allowed",
                format!("`{field}` is not a field of `{}` events", event_type.as_str()),
            ));
        }
    }
    Ok(())
}

fn bounded(field: &str, value: i64, min: i64, max: i64, what: &str) -> Result<u32, ValidationError> {
    if value < min || value > max {
        let code = if value < 0 { "negative_quantity" } else { "out_of_range" };
        return Err(ValidationError::new(
            field,
            code,
            format!("`{field}` must be {what} between {min} and {max}, got {value}"),
        ));
    }
    Ok(value as u32)
}

fn parse_item_list(field: &str, ids: Vec<String>) -> Result<Vec<ItemId>, ValidationError> {
    if ids.len() > MAX_LIST_LEN {
        return Err(ValidationError::new(
            field,
            "too_many_entries",
            format!("`{field}` has more than {MAX_LIST_LEN} entries"),
        ));
    }
    ids.into_iter().enumerate().map(|(i, id)| ItemId::parse_field(&format!("{field}[{i}]"), id)).collect()
}

fn parse_lines(lines: Vec<OrderLineInput>, currency: Currency) -> Result<Vec<OrderLine>, ValidationError> {
    if lines.is_empty() {
        return Err(ValidationError::new("lines", "empty_order", "an order needs at least one line"));
    }
    if lines.len() > MAX_LIST_LEN {
        return Err(ValidationError::new(
            "lines",
            "too_many_entries",
            format!("an order has at most {MAX_LIST_LEN} lines"),
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let at = format!("lines[{i}]");
            let item_id = ItemId::parse_field("item_id", line.item_id).map_err(|e| e.within(&at))?;
            let quantity = bounded("quantity", line.quantity, 1, MAX_QUANTITY, "a positive quantity")
                .map_err(|e| e.within(&at))?;
            let unit_price = Money::parse_amount(&line.unit_price.to_decimal_string(), currency)
                .map_err(|e| e.within(&format!("{at}.unit_price")))?;
            if unit_price.minor_units < 0 {
                return Err(ValidationError::new(
                    format!("{at}.unit_price"),
                    "negative_price",
                    "a unit price must not be negative",
                ));
            }
            Ok(OrderLine { item_id, quantity, unit_price })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(json: &str) -> Result<Event, ValidationError> {
        let input: EventInput = serde_json::from_str(json).expect("valid wire json");
        Event::parse(input, Timestamp::now())
    }

    #[test]
    fn parses_a_purchase_and_writes_it_back() {
        let event = parse_json(
            r#"{"type":"purchase","event_id":"e1","user_id":"17850","order_id":"536365","currency":"GBP",
                "timestamp":"2010-12-01T08:26:00Z","lines":[{"item_id":"85123A","quantity":6,"unit_price":"2.55"}]}"#,
        )
        .unwrap();
        let EventKind::Purchase { lines, .. } = &event.kind else { panic!("not a purchase") };
        assert_eq!(lines[0].total_minor_units(), 1530);
        let again = Event::parse(event.to_input(), Timestamp::now()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn explains_what_is_wrong() {
        let err = parse_json(r#"{"type":"teleport","user_id":"u"}"#).unwrap_err();
        assert_eq!(err.code, "unknown_event_type");
        let err = parse_json(r#"{"type":"view","item_id":"a"}"#).unwrap_err();
        assert_eq!(err.code, "missing_subject");
        let err = parse_json(r#"{"type":"add_to_cart","user_id":"u","item_id":"a","quantity":-2}"#).unwrap_err();
        assert_eq!((err.code, err.field.as_str()), ("negative_quantity", "quantity"));
        let err = parse_json(
            r#"{"type":"purchase","user_id":"u","order_id":"o","currency":"GBP","lines":[{"item_id":"a","quantity":-1,"unit_price":1}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "lines[0].quantity");
        let err = parse_json(r#"{"type":"view","user_id":"u","item_id":"a","lines":[]}"#).unwrap_err();
        assert_eq!(err.code, "field_not_allowed");
    }
}
