//! Values the store takes and returns besides the domain types.

use attune_core::{ApiKeyKind, Event, EventType, Item, TenantId, Timestamp, User};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Short public identifier shown in listings and used to revoke.
    pub key_id: String,
    pub tenant_id: TenantId,
    pub kind: ApiKeyKind,
    pub label: String,
    /// Hex SHA-256 of the full key; the key itself is never stored.
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A console sign-in, kept on the server: the browser holds only a random token, whose SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRecord {
    /// Short public identifier shown in the sessions list and used to end the session.
    pub session_id: String,
    /// Hex SHA-256 of the token in the browser's cookie.
    pub token_hash: String,
    pub tenant_id: TenantId,
    /// The secret key that signed in: revoking it ends the session.
    pub key_id: String,
    /// The token every console form of the session carries (against cross-site request forgery).
    pub form_token: String,
    /// The browser's `User-Agent`, to tell sessions apart in the list.
    pub user_agent: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub accepted: u64,
    pub duplicates: u64,
    /// Events of an erased user (see [`crate::Store::delete_user`]), not stored.
    pub erased: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Case-insensitive substring of the item id or title.
    pub search: Option<String>,
    /// Only items whose category path contains this level.
    pub category: Option<String>,
    /// Return items whose id sorts after this (keyset paging).
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Items matching the query in total.
    pub total: u64,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub search: Option<String>,
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: u64,
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletedUser {
    pub profile: bool,
    pub events: u64,
}

/// Whose events: a signed-in user, or an anonymous visitor (their events without a user id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopperRef<'a> {
    User(&'a attune_core::UserId),
    Anonymous(&'a attune_core::AnonymousId),
}

#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    /// Return events stored before this sequence number (paging, newest first).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the tenant's event log; increases with every stored event.
    pub seq: i64,
    pub received_at: Timestamp,
    pub event: Event,
}

#[derive(Debug, Clone)]
pub struct TimelinePage {
    pub events: Vec<StoredEvent>,
    pub next_before_seq: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantStats {
    pub items: u64,
    pub users: u64,
    pub events: u64,
    pub events_by_type: Vec<(EventType, u64)>,
    pub first_event_at: Option<Timestamp>,
    pub last_event_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub events: u64,
}

/// An item's text embedded by a model, with the hash of the text it was computed from (so a changed item is
/// embedded again and an unchanged one is not).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemEmbedding {
    pub item_id: attune_core::ItemId,
    pub content_hash: u64,
    pub vector: Vec<f32>,
}

/// A stored model version, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSnapshotInfo {
    pub kind: String,
    /// 1, 2, 3, ... per tenant and kind.
    pub version: i64,
    pub created_at: Timestamp,
    /// The last event sequence number the model was trained on.
    pub events_through_seq: i64,
    /// Offline metrics and settings, as JSON text chosen by the trainer.
    pub metrics: String,
    pub payload_bytes: u64,
}

/// A change that copies kept in memory must follow, announced by the backend when it commits (PostgreSQL
/// `NOTIFY`) so that every process sharing the database sees it, whichever process made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Items were added, replaced or deleted.
    Items { tenant: attune_core::TenantId },
    /// An API key was created or revoked.
    Keys { tenant: attune_core::TenantId },
    /// A user's profile (and with it their consent) changed or was erased; `None`: many users at once.
    Users { tenant: attune_core::TenantId, user: Option<attune_core::UserId> },
    /// A tenant's settings changed.
    Settings { tenant: attune_core::TenantId },
    /// A new model version was stored.
    Model { tenant: attune_core::TenantId, kind: String, version: i64 },
    /// A stored version was chosen to serve (a roll-back, or forward again).
    ModelPinned { tenant: attune_core::TenantId, kind: String, version: i64 },
    /// Changes may have been missed (the feed was disconnected): everything must be read again.
    Resync,
}

/// Changes made by any process sharing the database, in commit order.
pub trait ChangeFeed: Send {
    /// The next change, waiting at most `timeout`; `None` when none came. After a disconnection the feed
    /// reconnects by itself and first yields [`Change::Resync`].
    fn next_change(&mut self, timeout: std::time::Duration) -> crate::StoreResult<Option<Change>>;
}

/// The right to run one task of one tenant, held by one process of all that share the database until dropped
/// (or until the process dies: the database then frees it, and another process can take the task over).
pub trait TaskLease: Send {
    /// Whether the lease is still held (its connection to the database is alive).
    fn still_held(&mut self) -> bool;
}
