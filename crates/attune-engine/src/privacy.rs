//! Consent, as the engine applies it: whether a shopper's own history may personalize what they are shown, read
//! from their profile at request time (so a withdrawal counts from the next request on), and consent changes,
//! which go to the store's ledger and drop every in-memory copy that depended on the old consent.
//!
//! Consent changes and erasure are `Engine` methods (`engine.rs`): the store records them, and the engine drops
//! what it derived from the data.

use attune_core::{AnonymousId, Purpose, TenantId, UserId};
use attune_store::{Store, StoreResult, UserQuery};
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

/// Profiles read per page when looking for withheld consent.
const USER_PAGE: usize = 1_000;
