//! Following the changes other processes make to the shared store, so every replica's in-memory copies stay
//! current: a background thread reads the store's [`ChangeFeed`] and tells each copy what changed.
//!
//! The copies and what moves them (the cache audit of running several replicas on one database):
//! - the catalog copy and the search index: item changes drop the tenant's copy and re-embed new texts;
//! - the served recommendation model: a newer stored version is swapped in, and so is a version activated
//!   (pinned) on another replica;
//! - API keys resolved by the server: any key change of any tenant drops every cached key
//!   ([`crate::Engine::key_generation`]);
//! - customer analytics: a user's change or erasure drops the tenant's analytics;
//! - autocomplete's past queries: an erasure takes the user's searches out of the counts;
//! - a shopper's recent activity: read from the store on every request (the SQLite backend's decoded copy is
//!   checked against the database on each read), so nothing to follow;
//! - popular items: an aggregate over many shoppers, refreshed by age.
//!
//! After the feed lost its connection it reports [`Change::Resync`]: every copy of every tenant is dropped.

use crate::Engine;
use attune_core::{TenantId, UserId};
use attune_store::{Change, ChangeFeed};
use std::time::Duration;

/// How long one wait on the feed lasts, so a stopping engine is noticed soon.
const POLL: Duration = Duration::from_millis(250);

/// Reads `feed` and applies each change until the engine stops.
pub(crate) fn follow(engine: &Engine, mut feed: Box<dyn ChangeFeed>) {
    let background = engine.background();
    let mut failing = false;
    while !background.is_stopping() {
        match feed.next_change(POLL) {
            Ok(Some(change)) => {
                failing = false;
                apply(engine, &change);
            }
            Ok(None) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "lost the store's change feed; reconnecting");
                }
                failing = true;
                if !background.sleep(Duration::from_secs(1)) {
                    break;
                }
            }
        }
    }
}

/// Tells every copy that `change` happened.
pub(crate) fn apply(engine: &Engine, change: &Change) {
    tracing::debug!(?change, "store change");
    match change {
        Change::Items { tenant } => engine.items_changed(tenant),
        Change::Keys { .. } => engine.keys_changed(),
        Change::Settings { tenant } => engine.consents().settings_changed(tenant),
        Change::Users { tenant, user } => {
            engine.insights().forget(tenant);
            if let Some(user) = user {
                forget_if_erased(engine, tenant, user);
            }
        }
        Change::Model { tenant, kind, version } => {
            // Decoding a model (and waiting for a training here to finish) must not hold up the feed.
            let (recs_engine, tenant, kind, version) = (engine.clone(), tenant.clone(), kind.clone(), *version);
            engine.background().spawn("recs-swap", move || {
                if let Err(error) = recs_engine.recs().stored_version_announced(&tenant, &kind, version) {
                    tracing::warn!(tenant = %tenant, version, %error, "cannot swap in a newly stored model");
                }
            });
        }
        Change::ModelPinned { tenant, kind, version } => {
            let (recs_engine, tenant, kind, version) = (engine.clone(), tenant.clone(), kind.clone(), *version);
            engine.background().spawn("recs-pin", move || {
                if let Err(error) = recs_engine.recs().pinned_version_announced(&tenant, &kind, version) {
                    tracing::warn!(tenant = %tenant, version, %error, "cannot swap in a pinned model");
                }
            });
        }
        Change::Resync => resync(engine),
    }
}

/// An erasure through another replica: this one's autocomplete counts forget the user's searches too.
fn forget_if_erased(engine: &Engine, tenant: &TenantId, user: &UserId) {
    match engine.store().erased_users(tenant, &[user]) {
        Ok(erased) if !erased.is_empty() => engine.search().forget_user(tenant, user),
        Ok(_) => {}
        Err(error) => tracing::warn!(tenant = %tenant, %error, "cannot tell whether a changed user was erased"),
    }
}

fn resync(engine: &Engine) {
    engine.keys_changed();
    let tenants = match engine.store().tenants() {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot list tenants to resynchronize");
            return;
        }
    };
    for tenant in &tenants {
        engine.items_changed(&tenant.id);
        engine.insights().forget(&tenant.id);
        engine.consents().settings_changed(&tenant.id);
    }
    let recs_engine = engine.clone();
    engine.background().spawn("recs-resync", move || {
        for tenant in tenants {
            if let Err(error) = recs_engine.recs().reload_newest(&tenant.id) {
                tracing::warn!(tenant = %tenant.id, %error, "cannot reload the stored model");
            }
        }
    });
}
