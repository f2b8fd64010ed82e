//! The shopper side of a recommendation: whose events a list reads, how a shopper touched each item, their
//! sessions and their weighted recent history. Training reads the same definitions, so a model is fitted on
//! what serving will ask of it.
//!
//! A shopper's own events are read from the store at request time (their newest [`SHOPPER_EVENTS`] events of
//! their own doing, through the store's per-shopper index; impressions and searches are left out so the lists
//! a shopper is shown never push their history out of reach), so `recently_viewed`, `next`, `for_you` and the
//! exclusions see an event accepted a moment ago without waiting for a retraining.

use super::request::Shopper;
use attune_core::{Event, EventKind, ItemId, TenantId, UserId};
use attune_recs::{IdMap, InteractionWeights, interactions_from_events};
use attune_store::{ShopperRef, Store, StoreResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How many of a shopper's latest events make up their history for `for_you`.
pub const HISTORY_EVENTS: usize = 50;
/// How many of a shopper's latest events are read for exclusions, recently viewed and buy-it-again.
pub const SHOPPER_EVENTS: usize = 200;
/// A pause longer than this between a shopper's events starts a new session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// The key of an event's shopper: the user id, else `anon:` + the anonymous id.
pub fn subject_key(event: &Event) -> Option<String> {
    match (&event.subject.user_id, &event.subject.anonymous_id) {
        (Some(user), _) => Some(user.to_string()),
        (None, Some(anonymous)) => Some(format!("anon:{anonymous}")),
        (None, None) => None,
    }
}

/// Items a shopper acted on in an event (not impressions or searches, which the shop chose).
pub fn acted_on(kind: &EventKind) -> Vec<&ItemId> {
    match kind {
        EventKind::View { item_id, .. }
        | EventKind::Click { item_id, .. }
        | EventKind::AddToCart { item_id, .. }
        | EventKind::Wishlist { item_id } => vec![item_id],
        EventKind::Purchase { lines, .. } => lines.iter().map(|l| &l.item_id).collect(),
        _ => Vec::new(),
    }
}

/// Splits one shopper's `(time, session, item)` events (in log order) into sessions: a new session id, or a
/// pause longer than [`SESSION_GAP_MS`] where either has none, starts one.
pub fn split_sessions<S: PartialEq, I>(mut touches: Vec<(i64, Option<S>, I)>, out: &mut Vec<(i64, Vec<I>)>) {
    touches.sort_by_key(|(time, _, _)| *time);
    let mut current: Vec<I> = Vec::new();
    let mut previous: Option<(i64, Option<S>)> = None;
    let mut started = 0;
    for (time, session, item) in touches {
        let new_session = match &previous {
            None => true,
            Some((last_time, last_session)) => match (last_session, &session) {
                (Some(a), Some(b)) => a != b,
                _ => time - last_time > SESSION_GAP_MS,
            },
        };
        if new_session && !current.is_empty() {
            out.push((started, std::mem::take(&mut current)));
        }
        if new_session {
            started = time;
        }
        current.push(item);
        previous = Some((time, session));
    }
    if !current.is_empty() {
        out.push((started, current));
    }
}

/// How a shopper touched an item, strongest first (for the explanation's verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touch {
    Bought,
    AddedToBasket,
    Wishlisted,
    Viewed,
    Other,
}

impl Touch {
    pub fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Purchase { .. } => Self::Bought,
            EventKind::AddToCart { .. } => Self::AddedToBasket,
            EventKind::Wishlist { .. } => Self::Wishlisted,
            EventKind::View { .. } | EventKind::Click { .. } => Self::Viewed,
            _ => Self::Other,
        }
    }

    pub fn text(self, title: &str) -> String {
        match self {
            Self::Bought => format!("Because you bought {title}"),
            Self::AddedToBasket => format!("Because you added {title} to your basket"),
            Self::Wishlisted => format!("Because you saved {title} to your wishlist"),
            Self::Viewed => format!("Because you viewed {title}"),
            Self::Other => format!("Because of your interest in {title}"),
        }
    }
}

/// A shopper's recent history as weights.
pub struct WeightedHistory {
    /// Positive weight per model item, by index.
    pub model_items: Vec<(u32, f32)>,
    /// Positive weight per item id (items the model has not seen included), heaviest first.
    pub items: Vec<(ItemId, f32)>,
    /// How each item was touched.
    pub touch: HashMap<ItemId, Touch>,
}

/// A shopper's latest events (newest first), read from the store at request time.
pub struct ShopperEvents {
    pub events: Arc<[Event]>,
}

impl ShopperEvents {
    pub fn load(store: &dyn Store, tenant: &TenantId, user: Option<&UserId>, shopper: &Shopper) -> StoreResult<Self> {
        let whose = match (user.or(shopper.user.as_ref()), &shopper.anonymous) {
            (Some(user), _) => ShopperRef::User(user),
            (None, Some(anonymous)) => ShopperRef::Anonymous(anonymous),
            (None, None) => return Ok(Self::none()),
        };
        Ok(Self { events: store.shopper_activity(tenant, whose, SHOPPER_EVENTS)? })
    }

    /// No history: the shopper's own data may not be used.
    pub fn none() -> Self {
        Self { events: Arc::from(Vec::new()) }
    }

    pub fn not_interested(&self) -> impl Iterator<Item = &ItemId> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::NotInterested { item_id } => Some(item_id),
            _ => None,
        })
    }

    pub fn purchased(&self) -> impl Iterator<Item = &ItemId> {
        self.events.iter().flat_map(|e| match &e.kind {
            EventKind::Purchase { lines, .. } => lines.iter().map(|l| &l.item_id).collect(),
            _ => Vec::new(),
        })
    }

    /// Viewed (or clicked) items, newest first, each once.
    pub fn recently_viewed(&self) -> Vec<ItemId> {
        let mut seen = HashSet::new();
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::View { item_id, .. } | EventKind::Click { item_id, .. } => Some(item_id),
                _ => None,
            })
            .filter(|id| seen.insert((*id).clone()))
            .cloned()
            .collect()
    }

    /// The items acted on in the current session, oldest first: the latest item events that share the
    /// newest one's session id, or (without ids) follow each other within [`SESSION_GAP_MS`].
    pub fn current_session(&self) -> Vec<ItemId> {
        let mut items: Vec<ItemId> = Vec::new();
        let mut later: Option<&Event> = None;
        for event in self.events.iter() {
            let acted = acted_on(&event.kind);
            if acted.is_empty() {
                continue;
            }
            if let Some(later) = later {
                let same = match (&later.session_id, &event.session_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => later.timestamp.millis() - event.timestamp.millis() <= SESSION_GAP_MS,
                };
                if !same {
                    break;
                }
            }
            items.extend(acted.into_iter().rev().cloned());
            later = Some(event);
        }
        items.reverse();
        items
    }

    /// Purchases as `(item, time ms)`.
    pub fn purchase_times(&self) -> Vec<(ItemId, i64)> {
        self.events
            .iter()
            .flat_map(|e| match &e.kind {
                EventKind::Purchase { lines, .. } => {
                    lines.iter().map(|l| (l.item_id.clone(), e.timestamp.millis())).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// The newest [`HISTORY_EVENTS`] events' positive weight per model item, the same per item id (items the
    /// model has not seen included, heaviest first), and how each item was touched.
    pub fn weighted_history(&self, model_items: &IdMap) -> WeightedHistory {
        let recent = &self.events[..self.events.len().min(HISTORY_EVENTS)];
        let mut touch: HashMap<ItemId, Touch> = HashMap::new();
        for event in recent {
            let how = Touch::of(&event.kind);
            for id in acted_on(&event.kind) {
                let slot = touch.entry(id.clone()).or_insert(how);
                *slot = (*slot).min(how);
            }
        }
        let mut by_id: HashMap<String, f32> = HashMap::new();
        for interaction in interactions_from_events(recent.iter(), &InteractionWeights::default()) {
            *by_id.entry(interaction.item).or_default() += interaction.weight;
        }
        let mut weights: Vec<(u32, f32)> =
            by_id.iter().filter(|(_, w)| **w > 0.0).filter_map(|(id, w)| Some((model_items.index(id)?, *w))).collect();
        weights.sort_by_key(|(i, _)| *i);
        let mut by_item: Vec<(ItemId, f32)> = by_id
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .filter_map(|(id, w)| Some((ItemId::parse(id).ok()?, w)))
            .collect();
        by_item.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        WeightedHistory { model_items: weights, items: by_item, touch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_split_on_a_new_session_id_or_a_long_pause() {
        let touch = |t: i64, s: Option<&str>, i: &str| (t, s.map(str::to_string), i.to_string());
        let mut out = Vec::new();
        split_sessions(
            vec![
                touch(0, None, "a"),
                touch(60_000, None, "b"),
                touch(60_000 + SESSION_GAP_MS + 1, None, "c"),
                touch(SESSION_GAP_MS * 3, Some("s1"), "d"),
                touch(SESSION_GAP_MS * 3 + 1, Some("s2"), "e"),
            ],
            &mut out,
        );
        let items: Vec<Vec<String>> = out.into_iter().map(|(_, items)| items).collect();
        assert_eq!(items, vec![vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }
}
