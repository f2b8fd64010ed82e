//! Tenants and the kinds of API key that act for them.

use crate::error::ValidationError;
use crate::ids::TenantId;
use crate::time::Timestamp;
use crate::user::{Consent, Purpose};
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
    /// Days of events recommendation training reads, counted back from the newest event; `None`: the whole log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_window_days: Option<u32>,
    /// The shop's own consent purposes, beside personalization, marketing and analytics: recorded in the
    /// ledgers, shown in the storefront's privacy panel and exports, applied by the shop.
    #[serde(default)]
    pub purposes: Vec<DeclaredPurpose>,
}

/// Longest retention a tenant may set, in days (a century).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Most purposes a shop may declare.
pub const MAX_DECLARED_PURPOSES: usize = 20;
/// Longest description of a declared purpose, in characters.
pub const MAX_PURPOSE_DESCRIPTION: usize = 300;

impl TenantSettings {
    /// Checks the settings: well-formed, unique purpose names with a short description each, and retention
    /// periods and the training window of at most [`MAX_RETENTION_DAYS`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_purposes(&self.purposes)?;
        for (field, days) in [
            ("retention_days", self.retention_days),
            ("anonymous_retention_days", self.anonymous_retention_days),
            ("training_window_days", self.training_window_days),
        ] {
            if days.is_some_and(|days| days > MAX_RETENTION_DAYS) {
                return Err(ValidationError::new(
                    field,
                    "out_of_range",
                    format!("`{field}` is at most {MAX_RETENTION_DAYS} days"),
                ));
            }
        }
        Ok(())
    }

    /// The consent an anonymous visitor has before they choose: the tenant's default, with the declared
    /// defaults of its own purposes.
    pub fn anonymous_default(&self) -> Consent {
        self.anonymous_consent.clone().with_defaults(self.declared_defaults())
    }

    /// Each declared purpose's name and whether a shopper who has not chosen grants it.
    pub fn declared_defaults(&self) -> impl Iterator<Item = (&str, bool)> {
        self.purposes.iter().map(|p| (p.name.as_str(), p.default_granted))
    }

    /// Whether the shop declared a purpose of this name.
    pub fn declares(&self, name: &str) -> bool {
        self.purposes.iter().any(|p| p.name == name)
    }
}

/// Checks declared purposes: at most [`MAX_DECLARED_PURPOSES`], well-formed unique names, a short description
/// each.
fn check_purposes(purposes: &[DeclaredPurpose]) -> Result<(), ValidationError> {
    if purposes.len() > MAX_DECLARED_PURPOSES {
        return Err(ValidationError::new(
            "purposes",
            "too_many_entries",
            format!("at most {MAX_DECLARED_PURPOSES} purposes"),
        ));
    }
    for (n, purpose) in purposes.iter().enumerate() {
        Purpose::parse_own("purposes", &purpose.name)?;
        if purposes[..n].iter().any(|earlier| earlier.name == purpose.name) {
            return Err(ValidationError::new(
                "purposes",
                "duplicate_purpose",
                format!("`{}` is declared twice", purpose.name),
            ));
        }
        let length = purpose.description.trim().chars().count();
        if length == 0 || length > MAX_PURPOSE_DESCRIPTION || purpose.description.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "purposes",
                "invalid_description",
                format!(
                    "the description of `{}` must be 1 to {MAX_PURPOSE_DESCRIPTION} characters without control characters",
                    purpose.name
                ),
            ));
        }
    }
    Ok(())
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
