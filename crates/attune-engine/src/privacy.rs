//! Consent, as the engine applies it: whether a shopper's own history may personalize what they are shown, read
//! from their profile at request time (so a withdrawal counts from the next request on), and consent changes,
//! which go to the store's ledger and drop every in-memory copy that depended on the old consent.
//!
//! Erasure: the store deletes the user's data and keeps a tombstone, which refuses their later events (an
//! impression still queued when the erasure commits included); the engine drops what it derived from them.

use crate::engine::Engine;
use crate::error::EngineResult;
use attune_core::{AnonymousId, ConsentStatement, Purpose, TenantId, User, UserId};
use attune_store::{DeletedUser, Store, StoreResult, UserQuery};
use std::collections::HashSet;

/// Whether a list or search used the shopper's own history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personalization {
    Personalized,
    NotPersonalized(NotPersonalized),
}

/// Why a list or search is not personalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPersonalized {
    /// The request named no user or anonymous visitor.
    NoShopper,
    /// The user withdrew their consent to personalization.
    ConsentWithdrawn,
}

impl NotPersonalized {
    /// The stable code an API response carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoShopper => "no_shopper",
            Self::ConsentWithdrawn => "consent_withdrawn",
        }
    }
}

impl Personalization {
    pub fn is_personalized(self) -> bool {
        self == Self::Personalized
    }

    /// The reason it is not personalized.
    pub fn reason(self) -> Option<NotPersonalized> {
        match self {
            Self::Personalized => None,
            Self::NotPersonalized(reason) => Some(reason),
        }
    }
}

/// Whose history a request may use, and whether it may: a user's only with their consent to personalization
/// (a user without a profile has the default consent); an anonymous visitor's always.
pub fn personalization(
    store: &dyn Store,
    tenant: &TenantId,
    user: Option<&UserId>,
    anonymous: Option<&AnonymousId>,
) -> StoreResult<Personalization> {
    match (user, anonymous) {
        (Some(user), _) => Ok(match store.user(tenant, user)? {
            Some(profile) if !profile.consent.allows(Purpose::Personalization) => {
                Personalization::NotPersonalized(NotPersonalized::ConsentWithdrawn)
            }
            _ => Personalization::Personalized,
        }),
        (None, Some(_)) => Ok(Personalization::Personalized),
        (None, None) => Ok(Personalization::NotPersonalized(NotPersonalized::NoShopper)),
    }
}

/// The users of `tenant` whose profile withholds consent to `purpose`, read page by page.
pub fn users_withholding(store: &dyn Store, tenant: &TenantId, purpose: Purpose) -> StoreResult<HashSet<UserId>> {
    let mut withholding = HashSet::new();
    let mut query = UserQuery { search: None, after: None, limit: USER_PAGE };
    loop {
        let page = store.list_users(tenant, &query)?;
        withholding.extend(page.users.into_iter().filter(|u| !u.consent.allows(purpose)).map(|u| u.id));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => return Ok(withholding),
        }
    }
}

/// How long an erasure waits for this process's queued events to be written.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Profiles read per page when looking for withheld consent.
const USER_PAGE: usize = 1_000;

impl Engine {
    /// Records consent `statements` of `user` (see [`Store::record_consent`]) and forgets the tenant's customer
    /// analytics, which must leave out customers who withdrew consent to analytics. Blocking.
    pub fn record_consent(
        &self,
        tenant: &TenantId,
        user: &UserId,
        statements: &[ConsentStatement],
    ) -> EngineResult<User> {
        let stored = self.store().record_consent(tenant, user, statements)?;
        self.insights().forget(tenant);
        Ok(stored)
    }

    /// Erases `user` (see [`Store::delete_user`]) and forgets what was derived from them: the tenant's customer
    /// analytics and their searches in autocomplete. Blocking.
    pub fn erase_user(&self, tenant: &TenantId, user: &UserId) -> EngineResult<DeletedUser> {
        // What this process still queues of theirs is written first, so that the erasure takes it too.
        if !self.event_log().flush(FLUSH_WAIT) {
            tracing::warn!(tenant = %tenant, "queued events not written before an erasure; the tombstone drops them");
        }
        let deleted = self.store().delete_user(tenant, user)?;
        self.insights().forget(tenant);
        self.search().forget_user(tenant, user);
        tracing::info!(tenant = %tenant, events = deleted.events, "user erased");
        Ok(deleted)
    }

    /// Stores `user`'s profile, registering an erased user again. Blocking.
    pub fn register_user(&self, tenant: &TenantId, user: &User) -> EngineResult<User> {
        if self.store().lift_erasure(tenant, &user.id)? {
            tracing::info!(tenant = %tenant, "erased user registered again");
        }
        Ok(self.store().upsert_user(tenant, user)?)
    }
}
