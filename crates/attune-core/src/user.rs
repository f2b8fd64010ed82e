//! Customers: their traits and the consent they gave, and the ledger of consent statements that set it.

use crate::error::ValidationError;
use crate::ids::UserId;
use crate::input::{ConsentChangeInput, ScalarValue, UserInput};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MAX_TRAITS: usize = 200;
const MAX_TRAIT_KEY_LEN: usize = 64;
const MAX_TRAIT_TEXT_LEN: usize = 2_000;

/// What the customer agreed to. Personalization and analytics default to granted (the shop's own
/// legitimate interest); marketing defaults to not granted, as opt-in law requires in most markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub personalization: bool,
    pub marketing: bool,
    pub analytics: bool,
}

impl Default for Consent {
    fn default() -> Self {
        Self { personalization: true, marketing: false, analytics: true }
    }
}

impl Consent {
    /// Whether the customer's data may be used for `purpose`.
    pub fn allows(&self, purpose: Purpose) -> bool {
        match purpose {
            Purpose::Personalization => self.personalization,
            Purpose::Marketing => self.marketing,
            Purpose::Analytics => self.analytics,
        }
    }

    /// The consent after `statement`.
    pub fn apply(&mut self, statement: &ConsentStatement) {
        let flag = match statement.purpose {
            Purpose::Personalization => &mut self.personalization,
            Purpose::Marketing => &mut self.marketing,
            Purpose::Analytics => &mut self.analytics,
        };
        *flag = statement.granted;
    }
}

/// What a customer's data may be used for, each with its own consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Purpose {
    /// Recommendations and search ranked by the customer's own history.
    Personalization,
    /// Offers, promotions and reminders sent or shown to the customer.
    Marketing,
    /// The customer counted in customer analytics: lifetime value, segments, churn risk.
    Analytics,
}

/// Where a consent statement was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConsentSource {
    /// The shop's backend, through the API.
    Api,
    /// The shopper, in the storefront (a public key with their user token).
    Storefront,
    /// Staff, in the console.
    Console,
    /// A file import.
    Import,
}

impl ConsentSource {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        match value {
            "api" => Ok(Self::Api),
            "storefront" => Ok(Self::Storefront),
            "console" => Ok(Self::Console),
            "import" => Ok(Self::Import),
            other => Err(ValidationError::new(
                "source",
                "invalid_value",
                format!("`{other}` is not a consent source (api, storefront, console or import)"),
            )),
        }
    }
}

/// One entry of a customer's consent ledger: a purpose granted or withdrawn, where, under which policy, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentStatement {
    pub purpose: Purpose,
    pub granted: bool,
    pub source: ConsentSource,
    /// The version of the shop's privacy policy the customer was shown, when the shop gives it.
    pub policy_version: Option<String>,
    pub recorded_at: Timestamp,
}

const MAX_POLICY_VERSION_LEN: usize = 64;

impl ConsentStatement {
    /// The statements of one change: one per purpose the input names, made through `source` at `now`.
    pub fn parse_change(
        input: &ConsentChangeInput,
        source: ConsentSource,
        now: Timestamp,
    ) -> Result<Vec<Self>, ValidationError> {
        let policy_version = input.policy_version.as_deref().map(str::trim).filter(|v| !v.is_empty());
        if let Some(version) = policy_version
            && (version.len() > MAX_POLICY_VERSION_LEN || version.chars().any(char::is_control))
        {
            return Err(ValidationError::new(
                "policy_version",
                "invalid_value",
                format!("`policy_version` must be at most {MAX_POLICY_VERSION_LEN} bytes without control characters"),
            ));
        }
        let given = [
            (Purpose::Personalization, input.personalization),
            (Purpose::Marketing, input.marketing),
            (Purpose::Analytics, input.analytics),
        ];
        let statements: Vec<Self> = given
            .into_iter()
            .filter_map(|(purpose, granted)| {
                granted.map(|granted| Self {
                    purpose,
                    granted,
                    source,
                    policy_version: policy_version.map(str::to_string),
                    recorded_at: now,
                })
            })
            .collect();
        if statements.is_empty() {
            return Err(ValidationError::new(
                "consent",
                "empty_change",
                "name at least one purpose: `personalization`, `marketing` or `analytics`",
            ));
        }
        Ok(statements)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub traits: BTreeMap<String, ScalarValue>,
    pub consent: Consent,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    /// Validate an input; `now` is used for `created_at` and `updated_at` (the store keeps the first
    /// `created_at` on later upserts).
    pub fn parse(input: UserInput, now: Timestamp) -> Result<Self, ValidationError> {
        let id = UserId::parse_field("id", input.id.ok_or_else(|| ValidationError::missing("id"))?)?;
        let traits = input.traits.unwrap_or_default();
        validate_scalar_map("traits", &traits, MAX_TRAITS, MAX_TRAIT_KEY_LEN, MAX_TRAIT_TEXT_LEN)?;
        let defaults = Consent::default();
        let consent = input.consent.unwrap_or_default();
        Ok(Self {
            id,
            traits,
            consent: Consent {
                personalization: consent.personalization.unwrap_or(defaults.personalization),
                marketing: consent.marketing.unwrap_or(defaults.marketing),
                analytics: consent.analytics.unwrap_or(defaults.analytics),
            },
            created_at: now,
            updated_at: now,
        })
    }
}

/// Shared limits on free-form key/value maps (traits, context, attributes).
pub(crate) fn validate_scalar_map(
    field: &str,
    map: &BTreeMap<String, ScalarValue>,
    max_entries: usize,
    max_key_len: usize,
    max_text_len: usize,
) -> Result<(), ValidationError> {
    if map.len() > max_entries {
        return Err(ValidationError::new(
            field,
            "too_many_entries",
            format!("`{field}` has more than {max_entries} entries"),
        ));
    }
    for (key, value) in map {
        if key.is_empty() || key.len() > max_key_len || key.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("{field}.{key}"),
                "invalid_key",
                format!("keys of `{field}` are 1-{max_key_len} bytes without control characters"),
            ));
        }
        match value {
            ScalarValue::Text(text) if text.len() > max_text_len => {
                return Err(ValidationError::new(
                    format!("{field}.{key}"),
                    "value_too_long",
                    format!("values of `{field}` are at most {max_text_len} bytes"),
                ));
            }
            ScalarValue::Number(n) if !n.is_finite() => {
                return Err(ValidationError::new(format!("{field}.{key}"), "invalid_number", "numbers must be finite"));
            }
            _ => {}
        }
    }
    Ok(())
}
