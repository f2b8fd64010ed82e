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
/// legitimate interest); marketing defaults to not granted, as opt-in law requires in most markets. A shop's own
/// purposes (declared in its settings) are in `other`, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub personalization: bool,
    pub marketing: bool,
    pub analytics: bool,
    /// The shop's own purposes that have a statement or a declared default, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, bool>,
}

impl Default for Consent {
    fn default() -> Self {
        Self { personalization: true, marketing: false, analytics: true, other: BTreeMap::new() }
    }
}

impl Consent {
    /// Whether the customer's data may be used for `purpose` (a shop's own purpose without a statement or a
    /// declared default: no).
    pub fn allows(&self, purpose: &Purpose) -> bool {
        match purpose {
            Purpose::Personalization => self.personalization,
            Purpose::Marketing => self.marketing,
            Purpose::Analytics => self.analytics,
            Purpose::Other(name) => self.other.get(name).copied().unwrap_or(false),
        }
    }

    /// The consent after `statement`.
    pub fn apply(&mut self, statement: &ConsentStatement) {
        let flag = match &statement.purpose {
            Purpose::Personalization => &mut self.personalization,
            Purpose::Marketing => &mut self.marketing,
            Purpose::Analytics => &mut self.analytics,
            Purpose::Other(name) => self.other.entry(name.clone()).or_default(),
        };
        *flag = statement.granted;
    }

    /// The consent with the declared defaults of a shop's own purposes filled in where nothing was stated.
    pub fn with_defaults<'a>(mut self, declared: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        for (name, granted) in declared {
            self.other.entry(name.to_string()).or_insert(granted);
        }
        self
    }
}

/// What a customer's data may be used for, each with its own consent; written as its name (`personalization`,
/// `marketing`, `analytics`, or the name of a purpose the shop declared).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Recommendations and search ranked by the customer's own history.
    Personalization,
    /// Offers, promotions and reminders sent or shown to the customer.
    Marketing,
    /// The customer counted in customer analytics: lifetime value, segments, churn risk.
    Analytics,
    /// A purpose the shop declared for its own use (its settings' `purposes`): recorded and reported by
    /// Attune, applied by the shop.
    Other(String),
}

/// Longest name of a shop's own purpose.
const MAX_PURPOSE_NAME_LEN: usize = 48;

impl Purpose {
    /// The purpose's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Personalization => "personalization",
            Self::Marketing => "marketing",
            Self::Analytics => "analytics",
            Self::Other(name) => name,
        }
    }

    /// The purpose a name stands for (any name that is not built in is a shop's own).
    pub fn from_name(name: &str) -> Self {
        match name {
            "personalization" => Self::Personalization,
            "marketing" => Self::Marketing,
            "analytics" => Self::Analytics,
            other => Self::Other(other.to_string()),
        }
    }

    /// A shop's own purpose: a name of lowercase letters, digits and `_` (starting with a letter, at most 48)
    /// that is not one of the built-in purposes.
    pub fn parse_own(field: &str, name: &str) -> Result<Self, ValidationError> {
        let well_formed = name.len() <= MAX_PURPOSE_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match Self::from_name(name) {
            own @ Self::Other(_) if well_formed => Ok(own),
            Self::Other(_) => Err(ValidationError::new(
                field,
                "invalid_purpose",
                format!(
                    "`{name}` is not a purpose name: lowercase letters, digits and `_`, starting with a letter, \
                     at most {MAX_PURPOSE_NAME_LEN}"
                ),
            )),
            _ => Err(ValidationError::new(field, "invalid_purpose", format!("`{name}` is a built-in purpose"))),
        }
    }
}

impl Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_name(&String::deserialize(deserializer)?))
    }
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
    /// `personalization`, `marketing`, `analytics`, or a purpose the shop declared.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
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
        let mut given = vec![
            (Purpose::Personalization, input.personalization),
            (Purpose::Marketing, input.marketing),
            (Purpose::Analytics, input.analytics),
        ];
        for (name, granted) in &input.purposes {
            given.push((Purpose::parse_own("purposes", name)?, Some(*granted)));
        }
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
                "name at least one purpose: `personalization`, `marketing`, `analytics` or one in `purposes`",
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
                other: BTreeMap::new(),
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
