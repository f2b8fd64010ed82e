//! Tenants and the kinds of API key that act for them.

use crate::ids::TenantId;
use crate::time::Timestamp;
use crate::user::Consent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A tenant's own privacy settings; where a tenant sets nothing, the installation's configuration applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantSettings {
    /// The consent an anonymous visitor has until they choose (in the storefront's privacy panel or through
    /// `POST /v1/visitors/{id}/consents`): by default personalization and analytics granted, marketing not.
    #[serde(default)]
    pub anonymous_consent: Consent,
    /// Days every event is kept; `None`: as the installation is configured (`--retention-days`).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Days an anonymous visitor's events are kept; `None`: as the installation is configured.
    #[serde(default)]
    pub anonymous_retention_days: Option<u32>,
    /// The shop's own consent purposes, beside personalization, marketing and analytics: recorded in the
    /// ledgers, shown in the storefront's privacy panel and exports, applied by the shop.
    #[serde(default)]
    pub purposes: Vec<DeclaredPurpose>,
}

impl TenantSettings {
    /// Each declared purpose's name and whether a shopper who has not chosen grants it.
    pub fn declared_defaults(&self) -> impl Iterator<Item = (&str, bool)> {
        self.purposes.iter().map(|p| (p.name.as_str(), p.default_granted))
    }

    /// Whether the shop declared a purpose of this name.
    pub fn declares(&self, name: &str) -> bool {
        self.purposes.iter().any(|p| p.name == name)
    }
}

/// A consent purpose a shop declares for its own use (for example text-message reminders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeclaredPurpose {
    /// Its name in consent changes and ledgers: lowercase letters, digits and `_`, starting with a letter (not
    /// `personalization`, `marketing` or `analytics`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z][a-z0-9_]{0,47}$"))]
    pub name: String,
    /// What it means, in the words shown to shoppers (at most 300 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 300))]
    pub description: String,
    /// Whether a shopper who has not chosen grants it (opt-out); by default they must opt in.
    #[serde(default)]
    pub default_granted: bool,
}

/// What a key may do. A secret key (server to server) may do everything within its tenant; a public key
/// (embedded in a shop's pages and apps) may only send events and read recommendations and search results
/// for the visitor it speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApiKeyKind {
    Secret,
    Public,
}

impl ApiKeyKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "secret" => Some(Self::Secret),
            "public" => Some(Self::Public),
            _ => None,
        }
    }

    /// The prefix of keys of this kind, so a leaked key's kind is obvious at a glance.
    pub fn prefix(&self) -> &'static str {
        match self {
            Self::Secret => "sk_",
            Self::Public => "pk_",
        }
    }
}
