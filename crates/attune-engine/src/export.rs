//! The right of access: everything the engine holds about one customer, gathered for `GET
//! /v1/users/{id}/export` and the console's export button — their profile and consent ledger, every event
//! recorded under their id, the lists they would be shown now, and which stored models were trained on their
//! data. Customer analytics (segment, predicted value) are read by the caller from the tenant's analytics.

use crate::engine::Engine;
use crate::error::EngineResult;
use crate::recs::request::{Basis, ListRequest, Recommended, Rules, Shopper};
use attune_core::{AnonymousId, Consent, ConsentStatement, Event, TenantId, User, UserId};
use attune_store::{ShopperRef, StoredEvent, TimelineQuery};
use std::collections::HashSet;

/// Events read per page.
const EXPORT_PAGE: usize = 1_000;
/// An anonymous visitor's actions in a download at most.
const VISITOR_ACTIVITY: usize = 10_000;
/// Items of the current `for_you` list in an export.
const EXPORT_PICKS: usize = 10;

/// What an export holds, before rendering.
pub struct UserExport {
    pub profile: Option<User>,
    /// The consent in force (with the declared defaults of the shop's own purposes).
    pub consent: Consent,
    pub consent_history: Vec<ConsentStatement>,
    /// Every event under the user's id, newest first.
    pub events: Vec<StoredEvent>,
    /// The `for_you` list they would get now (with their consent as it stands), and the model version it came
    /// from; `None` while the tenant has no model.
    pub for_you: Option<(i64, Vec<Recommended>)>,
    /// Every stored recommendation model version, and whether its training read the user's events.
    pub models: Vec<ModelUse>,
}

/// A stored model version and whether the customer's data went into it.
pub struct ModelUse {
    pub kind: String,
    pub version: i64,
    pub trained_through_seq: i64,
    pub used_their_data: bool,
}

/// Gathers `user`'s export. Blocking.
pub fn export_user(engine: &Engine, tenant: &TenantId, user: &UserId) -> EngineResult<UserExport> {
    let store = engine.store();
    let events = all_events(engine, tenant, user)?;
    let oldest = events.iter().map(|e| e.seq).min();
    let models = engine
        .recs()
        .versions(tenant)?
        .into_iter()
        .map(|info| ModelUse {
            used_their_data: oldest.is_some_and(|seq| seq <= info.events_through_seq),
            kind: info.kind,
            version: info.version,
            trained_through_seq: info.events_through_seq,
        })
        .collect();
    let for_you = match engine.recs().active(tenant) {
        Some(model) => {
            let request = ListRequest {
                basis: Basis::ForYou(Some(user.clone())),
                count: EXPORT_PICKS,
                exclude: HashSet::new(),
                in_stock_only: true,
            };
            let rules = Rules { shopper: Shopper { user: Some(user.clone()), anonymous: None }, ..Default::default() };
            Some((model.version, engine.recs().recommend(tenant, &model, &request, &rules)?))
        }
        None => None,
    };
    Ok(UserExport {
        profile: store.user(tenant, user)?,
        consent: engine.consents().user(tenant, user)?,
        consent_history: store.consent_history(tenant, user)?,
        events,
        for_you,
        models,
    })
}

fn all_events(engine: &Engine, tenant: &TenantId, user: &UserId) -> EngineResult<Vec<StoredEvent>> {
    let mut events = Vec::new();
    let mut query = TimelineQuery { before_seq: None, limit: EXPORT_PAGE };
    loop {
        let page = engine.store().user_timeline(tenant, user, &query)?;
        events.extend(page.events);
        match page.next_before_seq {
            Some(before) => query.before_seq = Some(before),
            None => return Ok(events),
        }
    }
}

/// An anonymous visitor's own actions (views, basket changes, orders; not what the shop showed them), newest
/// first, at most [`VISITOR_ACTIVITY`]: what the storefront's "Download my data" gives them. Blocking.
pub fn visitor_activity(engine: &Engine, tenant: &TenantId, visitor: &AnonymousId) -> EngineResult<Vec<Event>> {
    Ok(engine.store().shopper_activity(tenant, ShopperRef::Anonymous(visitor), VISITOR_ACTIVITY)?.to_vec())
}
