//! Attune's storage.
//!
//! [`Store`] is the one interface the rest of Attune uses to keep tenants, API keys, catalog items,
//! users and events. It is synchronous on purpose: callers in async code run it on a blocking thread.
//! [`SqliteStore`] is the embedded default; [`PostgresStore`] lets several processes share one database.
//! [`conformance`] holds the behavioural tests every backend must pass; each backend's test binary
//! instantiates them with [`conformance_tests!`].
//!
//! Invariants every backend keeps:
//! - every read and write is scoped by tenant; no method can reach another tenant's rows;
//! - `append_events` returns only after the events are durable (committed and synced);
//! - event ids are unique per tenant: appending an already-stored id is a no-op counted as a duplicate;
//! - a batch is applied whole or not at all;
//! - within a tenant, a reader that sees event sequence number `n` sees every smaller one (scans after a
//!   sequence number miss nothing);
//! - a task lease is held by at most one holder at a time, across every process sharing the database.

pub mod conformance;
mod error;
mod group_commit;
mod local_lease;
mod postgres;
mod rows;
mod sqlite;
mod types;

pub use error::StoreError;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use types::*;

use attune_core::{
    AnonymousId, ConsentStatement, Event, Item, ItemId, Purpose, Tenant, TenantId, TenantSettings, Timestamp, User,
    UserId,
};
use std::collections::HashSet;

pub type StoreResult<T> = Result<T, StoreError>;

pub trait Store: Send + Sync + 'static {
    /// Create a tenant; [`StoreError::Conflict`] if the id is taken. `user_token_secret` signs the
    /// user tokens that let public keys act for one user.
    fn create_tenant(&self, tenant: &Tenant, user_token_secret: &[u8]) -> StoreResult<()>;
    fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    fn tenants(&self) -> StoreResult<Vec<Tenant>>;
    fn user_token_secret(&self, tenant: &TenantId) -> StoreResult<Option<Vec<u8>>>;

    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// The key whose secret hashes to `secret_hash`, revoked or not, across all tenants.
    fn api_key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    fn api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revoke a key of `tenant`, ending its console sessions; false when it has no such (unrevoked) key.
    fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> StoreResult<bool>;

    fn create_console_session(&self, session: &ConsoleSessionRecord) -> StoreResult<()>;
    /// The unexpired session whose token hashes to `token_hash`.
    fn console_session(&self, token_hash: &str) -> StoreResult<Option<ConsoleSessionRecord>>;
    /// The unexpired sessions of `tenant`, newest first.
    fn console_sessions(&self, tenant: &TenantId) -> StoreResult<Vec<ConsoleSessionRecord>>;
    /// Ends a session of `tenant`; false when it has no such session.
    fn end_console_session(&self, tenant: &TenantId, session_id: &str) -> StoreResult<bool>;

    /// Insert or replace items; an existing item keeps its original `created_at`.
    fn upsert_items(&self, tenant: &TenantId, items: &[Item]) -> StoreResult<UpsertCounts>;
    fn item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<Option<Item>>;
    /// The items among `ids` that exist, in the order of `ids`.
    fn items(&self, tenant: &TenantId, ids: &[ItemId]) -> StoreResult<Vec<Item>>;
    fn list_items(&self, tenant: &TenantId, query: &ItemQuery) -> StoreResult<ItemPage>;
    /// Every item of the tenant, for model training and indexing.
    fn all_items(&self, tenant: &TenantId) -> StoreResult<Vec<Item>>;
    fn delete_item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<bool>;

    /// Insert or replace a user; returns it as stored. An existing profile keeps its first `created_at` and its
    /// consent, which changes only through [`Store::record_consent`].
    fn upsert_user(&self, tenant: &TenantId, user: &User) -> StoreResult<User>;
    /// Insert or replace many users in one transaction, as [`Store::upsert_user`] does each.
    fn upsert_users(&self, tenant: &TenantId, users: &[User]) -> StoreResult<UpsertCounts>;
    /// Applies `statements` to the consent of `user` (a profile with the default consent is created when there
    /// is none) and appends them to the user's consent ledger, in one transaction; returns the user as stored.
    fn record_consent(&self, tenant: &TenantId, user: &UserId, statements: &[ConsentStatement]) -> StoreResult<User>;
    /// The consent ledger of `user`, oldest first.
    fn consent_history(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<ConsentStatement>>;
    /// Appends `statements` to anonymous visitor `visitor`'s consent ledger.
    fn record_visitor_consent(
        &self,
        tenant: &TenantId,
        visitor: &AnonymousId,
        statements: &[ConsentStatement],
    ) -> StoreResult<()>;
    /// The consent ledger of anonymous visitor `visitor`, oldest first.
    fn visitor_consent_history(&self, tenant: &TenantId, visitor: &AnonymousId) -> StoreResult<Vec<ConsentStatement>>;
    /// Every anonymous visitor's consent statement of `tenant`, in the order they were recorded (for copying).
    fn visitor_consent_ledger(&self, tenant: &TenantId) -> StoreResult<Vec<(AnonymousId, ConsentStatement)>>;
    /// `tenant`'s own settings; the defaults when it has set none.
    fn tenant_settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings>;
    /// Replaces `tenant`'s settings.
    fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> StoreResult<()>;
    fn user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<Option<User>>;
    /// The users of `tenant` whose profile withholds consent to `purpose` (for the built-in purposes, read from
    /// an index that holds only them).
    fn users_withholding(&self, tenant: &TenantId, purpose: &Purpose) -> StoreResult<HashSet<UserId>>;
    fn list_users(&self, tenant: &TenantId, query: &UserQuery) -> StoreResult<UserPage>;
    /// Delete a user's profile, consent ledger and every event attributed to their user id, and (when there was a
    /// profile or events) leave a tombstone and revoke their tokens: from then on, events naming the user are not
    /// stored (counted as `erased`), until [`Store::lift_erasure`].
    fn delete_user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<DeletedUser>;
    /// Deletes the tenant's events that happened before `before` (only those without a user id when
    /// `anonymous_only`): the retention policy. Returns how many were deleted.
    fn purge_events(&self, tenant: &TenantId, before: Timestamp, anonymous_only: bool) -> StoreResult<u64>;
    /// The users among `ids` that were erased and not registered again.
    fn erased_users(&self, tenant: &TenantId, ids: &[&UserId]) -> StoreResult<HashSet<UserId>>;
    /// Removes `user`'s tombstone (the shop registered them again); false when there was none.
    fn lift_erasure(&self, tenant: &TenantId, user: &UserId) -> StoreResult<bool>;
    /// Refuses `user`'s tokens issued before `before` (erasure does this too); an earlier moment never replaces
    /// a later one.
    fn revoke_user_tokens(&self, tenant: &TenantId, user: &UserId, before: Timestamp) -> StoreResult<()>;
    /// The moment before which `user`'s tokens are refused, if any.
    fn user_tokens_revoked_before(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Option<Timestamp>>;

    /// Durably append events; ids already stored are skipped and counted as duplicates, events naming an
    /// erased user are skipped and counted as erased.
    fn append_events(&self, tenant: &TenantId, events: &[Event]) -> StoreResult<AppendOutcome>;
    /// A user's events, newest first.
    fn user_timeline(&self, tenant: &TenantId, user: &UserId, query: &TimelineQuery) -> StoreResult<TimelinePage>;
    /// Events in the order they were stored, after sequence number `after_seq`.
    fn events_after(&self, tenant: &TenantId, after_seq: i64, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    /// A shopper's newest `limit` events of their own doing, newest first: impressions and searches (what the
    /// shop showed them) are left out, so however many lists a shopper is shown, their history stays in reach.
    fn shopper_activity(
        &self,
        tenant: &TenantId,
        shopper: ShopperRef<'_>,
        limit: usize,
    ) -> StoreResult<std::sync::Arc<[Event]>>;
    /// The tenant's newest `limit` events, newest first.
    fn recent_events(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    fn event_by_id(&self, tenant: &TenantId, event_id: &str) -> StoreResult<Option<StoredEvent>>;
    fn stats(&self, tenant: &TenantId) -> StoreResult<TenantStats>;
    /// Number of events per UTC day, oldest first.
    fn events_per_day(&self, tenant: &TenantId) -> StoreResult<Vec<DayCount>>;

    /// Insert or replace item embeddings of `model` in one transaction (deleting an item deletes its
    /// embeddings).
    fn upsert_item_embeddings(&self, tenant: &TenantId, model: &str, embeddings: &[ItemEmbedding]) -> StoreResult<()>;
    /// Every stored embedding of `model`, by item id.
    fn item_embeddings(&self, tenant: &TenantId, model: &str) -> StoreResult<Vec<ItemEmbedding>>;

    /// Store a new version of a model; returns its version number (one more than the newest). Keeps the
    /// newest [`MODEL_VERSIONS_KEPT`] versions of the kind.
    fn save_model_snapshot(
        &self,
        tenant: &TenantId,
        kind: &str,
        events_through_seq: i64,
        metrics: &str,
        payload: &[u8],
    ) -> StoreResult<ModelSnapshotInfo>;
    /// The stored versions of a model kind, newest first.
    fn model_snapshots(&self, tenant: &TenantId, kind: &str) -> StoreResult<Vec<ModelSnapshotInfo>>;
    /// The payload of one version.
    fn model_snapshot_payload(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<Option<Vec<u8>>>;
    /// Records that stored `version` serves instead of the newest (a roll-back), for every process sharing the
    /// database and after restarts; the next saved version of the kind clears it.
    fn pin_model_version(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<()>;
    /// The pinned version of model `kind`, if any.
    fn pinned_model_version(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<i64>>;

    /// Succeeds when the database answers (readiness checks).
    fn ping(&self) -> StoreResult<()>;
    /// The changes every process sharing the database makes, for keeping copies in memory current; `None`
    /// when this store is the only writer (the embedded backend).
    fn change_feed(&self) -> StoreResult<Option<Box<dyn ChangeFeed>>> {
        Ok(None)
    }
    /// The lease to run task `kind` of `tenant`, or `None` while another holder has it.
    fn lock_task(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<Box<dyn TaskLease>>>;
    /// Whether scheduled interval `slot` of task `kind` already ran for `tenant`.
    fn task_slot_done(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<bool>;
    /// Records that interval `slot` of task `kind` ran for `tenant`.
    fn finish_task_slot(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<()>;

    /// Copies events from another store keeping their sequence numbers and receipt times (`attune migrate`);
    /// ids already stored are skipped and counted as duplicates.
    fn restore_events(&self, tenant: &TenantId, events: &[StoredEvent]) -> StoreResult<AppendOutcome>;
    /// The erased users of `tenant` and when (see [`Store::delete_user`]), for copying.
    fn erasures(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>>;
    /// Copies a tombstone from another store: `user` stays erased, as of `erased_at`; nothing is deleted.
    fn restore_erasure(&self, tenant: &TenantId, user: &UserId, erased_at: Timestamp) -> StoreResult<()>;
    /// The users whose tokens were revoked and the moment before which they are refused, for copying.
    fn token_revocations(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>>;
    /// The model kinds with stored versions.
    fn model_kinds(&self, tenant: &TenantId) -> StoreResult<Vec<String>>;
    /// The models with stored item embeddings.
    fn embedding_models(&self, tenant: &TenantId) -> StoreResult<Vec<String>>;
    /// Copies a model version from another store as it is; false when that version is already stored.
    fn restore_model_snapshot(&self, tenant: &TenantId, info: &ModelSnapshotInfo, payload: &[u8]) -> StoreResult<bool>;
}

/// The PostgreSQL database tests use: `ATTUNE_TEST_DATABASE_URL`, else the local server of the development and
/// CI machines.
pub fn test_database_url() -> String {
    std::env::var("ATTUNE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Model versions kept per tenant and kind; older ones are deleted when a new one is saved.
pub const MODEL_VERSIONS_KEPT: usize = 10;
