//! Identifier newtypes. Each is a non-empty string of at most 256 bytes without control characters, so
//! ids supplied by a shop (SKUs, customer numbers, order numbers) are kept exactly as the shop knows them.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// Longest accepted identifier, in bytes.
pub const MAX_ID_LEN: usize = 256;

fn check_identifier(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "empty_id", format!("`{field}` must not be empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(field, "id_too_long", format!("`{field}` is longer than {MAX_ID_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "invalid_id", format!("`{field}` contains control characters")));
    }
    if value.trim() != value {
        return Err(ValidationError::new(field, "invalid_id", format!("`{field}` has leading or trailing whitespace")));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        pub struct $name(String);

        impl $name {
            /// Validate `value` as this identifier; `field` names it in the error.
            pub fn parse_field(field: &str, value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_identifier(field, &value)?;
                Ok(Self(value))
            }

            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                Self::parse_field(stringify!($name), value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Hashes and compares as its text, so maps keyed by the id can be searched with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// A tenant: one shop (or one environment of a shop) whose data is isolated from every other.
    TenantId
);
identifier!(
    /// A catalog item (SKU or variant) as the shop identifies it.
    ItemId
);
identifier!(
    /// A known customer.
    UserId
);
identifier!(
    /// A visitor not (yet) known as a customer: a cookie or device id.
    AnonymousId
);
identifier!(
    /// A browsing session.
    SessionId
);
identifier!(
    /// An event's id; the unit of idempotency.
    EventId
);
identifier!(
    /// An order (invoice) number.
    OrderId
);
identifier!(
    /// A physical store, for omnichannel events.
    StoreId
);
identifier!(
    /// A served recommendation list, to attribute impressions, clicks and purchases.
    RecommendationId
);

/// The start of the ids of events sent with a public key (by browsers and apps): they live in a namespace of
/// their own, so no browser can claim an id that the shop's backend will send.
pub const PUBLIC_EVENT_ID_PREFIX: &str = "public:";

impl EventId {
    /// A fresh, time-ordered event id for events that arrive without one.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// This id in the namespace of events sent with a public key.
    pub fn into_public(self) -> Result<Self, ValidationError> {
        Self::parse_field("event_id", format!("{PUBLIC_EVENT_ID_PREFIX}{}", self.0))
    }

    /// Whether the id is in the namespace of events sent with a public key.
    pub fn is_public(&self) -> bool {
        self.0.starts_with(PUBLIC_EVENT_ID_PREFIX)
    }
}

impl RecommendationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl TenantId {
    /// Tenant ids also name things in URLs and logs, so they are stricter: lowercase ASCII letters,
    /// digits, `-` and `_`, at most 64 bytes.
    pub fn parse_slug(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 64
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(ValidationError::new(
                "tenant",
                "invalid_tenant_id",
                "a tenant id is 1-64 characters of lowercase letters, digits, `-` and `_`",
            ));
        }
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control_ids() {
        assert_eq!(ItemId::parse("").unwrap_err().code, "empty_id");
        assert_eq!(ItemId::parse("x".repeat(257)).unwrap_err().code, "id_too_long");
        assert_eq!(ItemId::parse("a\nb").unwrap_err().code, "invalid_id");
        assert_eq!(ItemId::parse(" a").unwrap_err().code, "invalid_id");
        assert_eq!(ItemId::parse("85123A").unwrap().as_str(), "85123A");
    }

    #[test]
    fn tenant_slugs_are_strict() {
        assert!(TenantId::parse_slug("demo").is_ok());
        assert!(TenantId::parse_slug("Demo").is_err());
        assert!(TenantId::parse_slug("a/b").is_err());
    }
}
