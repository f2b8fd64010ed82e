//! Tenants and the kinds of API key that act for them.

use crate::ids::TenantId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
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
