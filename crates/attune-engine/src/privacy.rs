//! Consent, as the engine applies it: whether a shopper's own history may personalize what they are shown, read
//! at request time (so a withdrawal counts from the next request on) from a user's profile, or for an anonymous
//! visitor from the tenant's default ([`TenantSettings::anonymous_consent`]) with the visitor's own ledger
//! applied; and consent changes, which go to the store's ledger and drop every in-memory copy that depended on
//! the old consent.
//!
//! Consent changes and erasure are `Engine` methods (`engine.rs`): the store records them, and the engine drops
//! what it derived from the data.

use attune_core::{AnonymousId, Consent, ConsentStatement, Purpose, TenantId, TenantSettings, UserId};
use attune_store::{Store, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The user or visitor withdrew their consent to personalization.
    ConsentWithdrawn,
    /// An anonymous visitor who has not chosen, in a shop whose default for them is no personalization.
    NotGranted,
}

impl NotPersonalized {
    /// The stable code an API response carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoShopper => "no_shopper",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::NotGranted => "consent_not_granted",
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

/// How long a tenant's settings are reused before they are read again (a change made through this engine, or
/// announced by the store's change feed, drops them at once).
const SETTINGS_TTL: Duration = Duration::from_secs(30);

/// Consent as requests read it: the tenants' settings (kept in memory) and the shoppers' ledgers (in the store).
pub struct Consents {
    store: Arc<dyn Store>,
    settings: Mutex<HashMap<TenantId, (Instant, TenantSettings)>>,
}

/// An anonymous visitor's consent: the tenant's default with their own statements applied.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorConsent {
    pub consent: Consent,
    /// Their statements, oldest first; empty while they follow the shop's default.
    pub history: Vec<ConsentStatement>,
}

impl Consents {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, settings: Mutex::default() }
    }

    /// `tenant`'s settings. Blocking on a miss.
    pub fn settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings> {
        if let Some((at, settings)) = self.settings.lock().expect("settings cache poisoned").get(tenant)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(settings.clone());
        }
        let settings = self.store.tenant_settings(tenant)?;
        self.settings
            .lock()
            .expect("settings cache poisoned")
            .insert(tenant.clone(), (Instant::now(), settings.clone()));
        Ok(settings)
    }

    /// After `tenant`'s settings changed, here or in another process.
    pub fn settings_changed(&self, tenant: &TenantId) {
        self.settings.lock().expect("settings cache poisoned").remove(tenant);
    }

    /// Anonymous visitor `visitor`'s consent. Blocking.
    pub fn visitor(&self, tenant: &TenantId, visitor: &AnonymousId) -> StoreResult<VisitorConsent> {
        let mut consent = self.settings(tenant)?.anonymous_default();
        let history = self.store.visitor_consent_history(tenant, visitor)?;
        for statement in &history {
            consent.apply(statement);
        }
        Ok(VisitorConsent { consent, history })
    }

    /// Whose history a request may use, and whether it may: a user's only with their consent to
    /// personalization (a user without a profile has the default consent); an anonymous visitor's with theirs
    /// (the tenant's default until they choose). Blocking.
    pub fn personalization(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        anonymous: Option<&AnonymousId>,
    ) -> StoreResult<Personalization> {
        let withdrawn = Personalization::NotPersonalized(NotPersonalized::ConsentWithdrawn);
        match (user, anonymous) {
            (Some(user), _) => Ok(match self.store.user(tenant, user)? {
                Some(profile) if !profile.consent.allows(&Purpose::Personalization) => withdrawn,
                _ => Personalization::Personalized,
            }),
            (None, Some(visitor)) => {
                let visitor = self.visitor(tenant, visitor)?;
                Ok(match visitor.consent.allows(&Purpose::Personalization) {
                    true => Personalization::Personalized,
                    false if visitor.history.iter().any(|s| s.purpose == Purpose::Personalization) => withdrawn,
                    false => Personalization::NotPersonalized(NotPersonalized::NotGranted),
                })
            }
            (None, None) => Ok(Personalization::NotPersonalized(NotPersonalized::NoShopper)),
        }
    }

    /// A user's consent in force: their profile's (the defaults without one), with the declared defaults of the
    /// shop's own purposes where they stated nothing. Blocking.
    pub fn user(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Consent> {
        let stated = self.store.user(tenant, user)?.map_or_else(Consent::default, |profile| profile.consent);
        Ok(stated.with_defaults(self.settings(tenant)?.declared_defaults()))
    }

    /// The first purpose in `statements` that is neither built in nor declared by the tenant, if any. Blocking.
    pub fn undeclared(&self, tenant: &TenantId, statements: &[ConsentStatement]) -> StoreResult<Option<String>> {
        let settings = self.settings(tenant)?;
        Ok(statements.iter().find_map(|statement| match &statement.purpose {
            Purpose::Other(name) if !settings.declares(name) => Some(name.clone()),
            _ => None,
        }))
    }

    /// Whether a session alone (no user or visitor id) may personalize: as the tenant's anonymous default says.
    pub fn session_personalization(&self, tenant: &TenantId) -> StoreResult<Personalization> {
        Ok(match self.settings(tenant)?.anonymous_consent.allows(&Purpose::Personalization) {
            true => Personalization::Personalized,
            false => Personalization::NotPersonalized(NotPersonalized::NotGranted),
        })
    }
}
