//! Customers: their traits and the consent they gave.

use crate::error::ValidationError;
use crate::ids::UserId;
use crate::input::{ScalarValue, UserInput};
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
