//! Attune's domain model.
//!
//! Everything that enters Attune — catalog items, users, behavioural events — is parsed here from its
//! loosely typed input form (`*Input`, what arrives as JSON, CSV or a feed row) into a validated domain
//! type. Code past the boundary never re-checks: an [`Event`] always has a valid id, a subject, a known kind
//! with the fields that kind needs, and non-negative quantities.
//!
//! This crate does no I/O: no files, no network, no SQL, no async.

pub mod error;
pub mod event;
pub mod filter;
pub mod ids;
pub mod input;
pub mod item;
pub mod money;
pub mod random;
pub mod tenant;
pub mod time;
pub mod user;

pub use error::ValidationError;
pub use event::{Channel, Event, EventKind, EventType, OrderLine, Subject};
pub use filter::{Expr as FilterExpr, FilterError};
pub use ids::{
    AnonymousId, EventId, ItemId, OrderId, PUBLIC_EVENT_ID_PREFIX, RecommendationId, SessionId, StoreId, TenantId,
    UserId,
};
pub use input::{ConsentChangeInput, ConsentInput, EventInput, ItemInput, OrderLineInput, UserInput};
pub use item::{Availability, Item};
pub use money::{Currency, Money};
pub use random::SplitMix64;
pub use tenant::{ApiKeyKind, DeclaredPurpose, Tenant, TenantSettings};
pub use time::{EventTimeWindow, Timestamp};
pub use user::{Consent, ConsentSource, ConsentStatement, Purpose, User};
