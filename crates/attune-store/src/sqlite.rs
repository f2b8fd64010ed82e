//! The embedded SQLite backend: one file in WAL mode, one writer connection, a small pool of readers.
//! With `synchronous=FULL` (the default) a commit is fsynced before `append_events` returns, so an
//! acknowledged event survives a process or machine crash.

mod activity_cache;
mod migrations;

use self::activity_cache::{ActivityCache, ActivityKey, CachedActivity};
use crate::group_commit::{GroupCommit, PendingAppend};
use crate::local_lease::LocalLeases;
use crate::rows::*;
use crate::types::*;
use crate::{Store, StoreError, StoreResult};
use attune_core::{
    AnonymousId, ConsentStatement, Event, EventType, Item, ItemId, Purpose, Tenant, TenantId, TenantSettings,
    Timestamp, User, UserId,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// How hard SQLite syncs on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// fsync on every commit: acknowledged data survives power loss. The default.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last commits on power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Most reader connections open at once; a read that finds them all busy waits for one to come back
    /// instead of opening (and soon closing) another.
    pub max_readers: usize,
    /// Most shopper events kept decoded in memory for the next recent-activity read of their shopper
    /// (0: none). Each read still checks with the database that nothing changed.
    pub activity_cache_events: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { synchronous: Synchronous::Full, max_readers: 8, activity_cache_events: 200_000 }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Connection>,
    readers: Mutex<ReaderPool>,
    reader_returned: Condvar,
    appends: GroupCommit,
    leases: LocalLeases,
    activity: ActivityCache,
}

/// Read-only connections: the idle ones, and how many exist (idle or lent out).
#[derive(Default)]
struct ReaderPool {
    idle: Vec<Connection>,
    open: usize,
}

/// A reader lent out of the pool; dropping it (also when the work panics) gives the connection back.
struct LentReader<'store> {
    store: &'store SqliteStore,
    connection: Option<Connection>,
}

impl Drop for LentReader<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.readers.lock().expect("reader pool poisoned");
        match self.connection.take() {
            Some(connection) => pool.idle.push(connection),
            None => pool.open -= 1,
        }
        drop(pool);
        self.store.reader_returned.notify_one();
    }
}

/// Insert every queued append in one transaction; the outcome of each, in order.
fn commit_appends(
    connection: &mut Connection,
    group: &[PendingAppend],
    received_at: i64,
) -> StoreResult<Vec<AppendOutcome>> {
    let tx = connection.transaction()?;
    let outcomes = group
        .iter()
        .map(|pending| insert_event_rows(&tx, &pending.tenant, &pending.rows, received_at, None))
        .collect::<StoreResult<Vec<_>>>()?;
    tx.commit()?;
    Ok(outcomes)
}

/// Inserts one tenant's rows and counts them per day. `restored` gives each row's sequence number and receipt
/// time (a migration); otherwise the row takes the next sequence number and `received_at`.
fn insert_event_rows(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    rows: &[EventRow],
    received_at: i64,
    restored: Option<(&[i64], &[i64])>,
) -> StoreResult<AppendOutcome> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (tenant_id, event_id, event_type, user_id, anonymous_id, session_id, ts, channel,
                             store_id, item_id, received_at, payload, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (tenant_id, event_id) DO NOTHING",
    )?;
    let mut count = tx.prepare_cached(
        "INSERT INTO event_daily_counts (tenant_id, day, event_type, events) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, day, event_type) DO UPDATE SET events = events + excluded.events",
    )?;
    let mut outcome = AppendOutcome::default();
    let mut daily: BTreeMap<(i64, &'static str), i64> = BTreeMap::new();
    let erased = erased_among(tx, tenant, rows.iter().filter_map(|r| r.user_id.as_deref()))?;
    for (index, row) in rows.iter().enumerate() {
        if row.user_id.as_ref().is_some_and(|user| erased.contains(user)) {
            outcome.erased += 1;
            continue;
        }
        let (seq, received) = match restored {
            Some((seqs, received)) => (Some(seqs[index]), received[index]),
            None => (None, received_at),
        };
        let inserted = insert.execute(params![
            tenant.as_str(),
            row.event_id,
            row.event_type,
            row.user_id,
            row.anonymous_id,
            row.session_id,
            row.timestamp,
            row.channel,
            row.store_id,
            row.item_id,
            received,
            row.payload,
            seq,
        ])?;
        if inserted == 0 {
            outcome.duplicates += 1;
        } else {
            outcome.accepted += 1;
            *daily.entry((row.day(), row.event_type)).or_default() += 1;
        }
    }
    for ((day, event_type), events) in daily {
        count.execute(params![tenant.as_str(), day, event_type, events])?;
    }
    Ok(outcome)
}

/// `(user id, time)` rows of `sql`, which takes the tenant as `?1`.
fn user_times(c: &Connection, sql: &str, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>> {
    let rows: Vec<(String, i64)> = c
        .prepare_cached(sql)?
        .query_map([tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(|(user, at)| Ok((UserId::parse(user).map_err(corrupt)?, timestamp(at)?))).collect()
}

/// Deletes the tenant's events matching `condition` (SQL over the `events` columns, with `value` as `?2`) and
/// takes them out of the daily counts; returns how many went. The caller bumps the deletion generation.
fn delete_events_where(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> StoreResult<usize> {
    let per_day: Vec<(i64, String, i64)> = tx
        .prepare(&format!(
            "SELECT ts / ?3, event_type, count(*) FROM events WHERE tenant_id = ?1 AND {condition} GROUP BY 1, 2"
        ))?
        .query_map(params![tenant.as_str(), value, DAY_MILLIS], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (day, event_type, count) in &per_day {
        tx.execute(
            "UPDATE event_daily_counts SET events = events - ?4 WHERE tenant_id = ?1 AND day = ?2 AND event_type = ?3",
            params![tenant.as_str(), day, event_type, count],
        )?;
    }
    Ok(tx.execute(
        &format!("DELETE FROM events WHERE tenant_id = ?1 AND {condition}"),
        params![tenant.as_str(), value],
    )?)
}

fn revoke_tokens_in(tx: &rusqlite::Transaction<'_>, tenant: &TenantId, user: &UserId, before: i64) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO user_token_revocations (tenant_id, user_id, revoked_before) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET revoked_before = max(revoked_before, excluded.revoked_before)",
    )?
    .execute(params![tenant.as_str(), user.as_str(), before])?;
    Ok(())
}

/// The users among `users` with a tombstone.
fn erased_among<'a>(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    users: impl Iterator<Item = &'a str>,
) -> StoreResult<HashSet<String>> {
    let mut erased = HashSet::new();
    let any: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_users WHERE tenant_id = ?1)")?
        .query_row([tenant.as_str()], |r| r.get(0))?;
    if !any {
        return Ok(erased);
    }
    let mut probe = tx.prepare_cached("SELECT 1 FROM erased_users WHERE tenant_id = ?1 AND user_id = ?2")?;
    for user in users.collect::<HashSet<_>>() {
        if probe.exists(params![tenant.as_str(), user])? {
            erased.insert(user.to_string());
        }
    }
    Ok(erased)
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut writer = Connection::open(&path)?;
        configure(&writer, options.synchronous)?;
        migrations::apply(&mut writer)?;
        tracing::debug!(path = %path.display(), "sqlite store opened");
        Ok(Self {
            path,
            activity: ActivityCache::new(options.activity_cache_events),
            options,
            writer: Mutex::new(writer),
            readers: Mutex::new(ReaderPool::default()),
            reader_returned: Condvar::new(),
            appends: GroupCommit::default(),
            leases: LocalLeases::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `work` on a pooled read-only connection. At most `max_readers` exist: connections are costly to open
    /// (file map, schema parse, statement cache), so under a burst of requests reads queue for one instead.
    fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = {
            let mut pool = self.readers.lock().expect("reader pool poisoned");
            loop {
                if let Some(connection) = pool.idle.pop() {
                    break Some(connection);
                }
                if pool.open < self.options.max_readers.max(1) {
                    pool.open += 1;
                    break None;
                }
                pool = self.reader_returned.wait(pool).expect("reader pool poisoned");
            }
        };
        let mut lent = LentReader { store: self, connection: idle };
        if lent.connection.is_none() {
            lent.connection = Some(self.open_reader()?);
        }
        work(lent.connection.as_ref().expect("a lent reader holds a connection"))
    }

    fn open_reader(&self) -> StoreResult<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.set_prepared_statement_cache_capacity(64);
        configure_reads(&connection)?;
        Ok(connection)
    }

    fn with_writer<T>(&self, work: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut connection = self.writer.lock().expect("writer poisoned");
        work(&mut connection)
    }
}

fn configure(connection: &Connection, synchronous: Synchronous) -> StoreResult<()> {
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(
        None,
        "synchronous",
        match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(64);
    configure_reads(connection)?;
    Ok(())
}

/// Reads go through a memory map of the database file (no copy per page read) and keep a larger page cache;
/// the serving path reads a shopper's recent events on every request.
///
/// The query planner stability guarantee is on: without it SQLite marks a cached statement expired whenever a
/// parameter whose value could steer the plan (a `LIMIT ?`, a value compared with an indexed column once
/// statistics exist) is bound again, and compiles the statement anew on the next step — for the shopper
/// activity read that was every request.
fn configure_reads(connection: &Connection) -> StoreResult<()> {
    connection.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
    connection.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
    connection.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// `FROM … WHERE` of a signed-in shopper's activity (tenant ?1, user ?2): the partial index that holds only
/// activity (no impressions or searches), and the conditions that let SQLite use it. Shared by the read and
/// its version check, so the two cannot drift apart.
macro_rules! user_activity_rows {
    () => {
        "FROM events INDEXED BY events_activity_by_user
         WHERE tenant_id = ?1 AND user_id = ?2 AND user_id IS NOT NULL AND event_type NOT IN ('impression', 'search')"
    };
}

/// The same for an anonymous shopper (anonymous id ?2, no user id).
macro_rules! anonymous_activity_rows {
    () => {
        "FROM events INDEXED BY events_activity_by_anonymous
         WHERE tenant_id = ?1 AND anonymous_id = ?2
           AND anonymous_id IS NOT NULL AND user_id IS NULL AND event_type NOT IN ('impression', 'search')"
    };
}

/// A signed-in shopper's recent activity after sequence number ?4, newest first, walking the partial index
/// backwards: one table read per returned event, none skipped.
const USER_ACTIVITY_SQL: &str =
    concat!("SELECT seq, received_at, payload ", user_activity_rows!(), " AND seq > ?4 ORDER BY seq DESC LIMIT ?3");

/// An anonymous shopper's recent activity after ?4, newest first, likewise on its activity-only partial index.
const ANONYMOUS_ACTIVITY_SQL: &str = concat!(
    "SELECT seq, received_at, payload ",
    anonymous_activity_rows!(),
    " AND seq > ?4 ORDER BY seq DESC LIMIT ?3"
);

/// A signed-in shopper's newest activity sequence number and the tenant's event-deletion generation: what
/// a cached activity read must still match (the last entry of the partial index, and one primary-key read).
const USER_ACTIVITY_VERSION_SQL: &str = concat!(
    "SELECT (SELECT seq ",
    user_activity_rows!(),
    " ORDER BY seq DESC LIMIT 1), (SELECT generation FROM event_deletions WHERE tenant_id = ?1)"
);

/// The same for an anonymous shopper.
const ANONYMOUS_ACTIVITY_VERSION_SQL: &str = concat!(
    "SELECT (SELECT seq ",
    anonymous_activity_rows!(),
    " ORDER BY seq DESC LIMIT 1), (SELECT generation FROM event_deletions WHERE tenant_id = ?1)"
);

/// A tenant's events after a sequence number, in order: a range of the `events_by_tenant` index.
const EVENTS_AFTER_SQL: &str =
    "SELECT seq, received_at, payload FROM events WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
/// A tenant's newest events: the same index, backwards.
const RECENT_EVENTS_SQL: &str =
    "SELECT seq, received_at, payload FROM events WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2";

/// Bytes of the database file mapped into memory per connection (address space, not resident memory).
const READ_MMAP_BYTES: i64 = 1 << 30;
/// Page cache per connection, in KiB.
const READ_CACHE_KIB: i64 = 16 * 1024;

/// Records that events of `tenant` were deleted (see migration 4): every statement that deletes events calls
/// this in the same transaction, so cached activity reads see the change.
fn bump_event_deletions(tx: &rusqlite::Transaction<'_>, tenant: &TenantId) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO event_deletions (tenant_id, generation) VALUES (?1, 1)
         ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1",
        params![tenant.as_str()],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_tenant(&self, tenant: &Tenant, user_token_secret: &[u8]) -> StoreResult<()> {
        self.with_writer(|c| {
            let inserted = c.execute(
                "INSERT INTO tenants (tenant_id, name, created_at, user_token_secret) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id) DO NOTHING",
                params![tenant.id.as_str(), tenant.name, tenant.created_at.millis(), user_token_secret],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("tenant `{}`", tenant.id)));
            }
            Ok(())
        })
    }

    fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.with_reader(|c| {
            let row = c
                .prepare_cached("SELECT name, created_at FROM tenants WHERE tenant_id = ?1")?
                .query_row([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .optional()?;
            row.map(|(name, created)| Ok(Tenant { id: id.clone(), name, created_at: timestamp(created)? })).transpose()
        })
    }

    fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.with_reader(|c| {
            let mut statement =
                c.prepare_cached("SELECT tenant_id, name, created_at FROM tenants ORDER BY tenant_id")?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, name, created)| {
                    Ok(Tenant { id: TenantId::parse(id).map_err(corrupt)?, name, created_at: timestamp(created)? })
                })
                .collect()
        })
    }

    fn user_token_secret(&self, tenant: &TenantId) -> StoreResult<Option<Vec<u8>>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached("SELECT user_token_secret FROM tenants WHERE tenant_id = ?1")?
                .query_row([tenant.as_str()], |r| r.get(0))
                .optional()?)
        })
    }

    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.with_writer(|c| {
            let inserted = c.execute(
                "INSERT INTO api_keys (key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    key.key_id,
                    key.tenant_id.as_str(),
                    key.kind.as_str(),
                    key.label,
                    key.secret_hash,
                    key.created_at.millis(),
                    key.revoked_at.map(|t| t.millis())
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("api key `{}`", key.key_id)));
            }
            Ok(())
        })
    }

    fn api_key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(
                "SELECT key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at FROM api_keys WHERE secret_hash = ?1",
            )?;
            let row = statement.query_row([secret_hash], api_key_row).optional()?;
            row.map(api_key_from_row).transpose()
        })
    }

    fn api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(
                "SELECT key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at FROM api_keys
                 WHERE tenant_id = ?1 ORDER BY created_at, key_id",
            )?;
            let rows = statement.query_map([tenant.as_str()], api_key_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(api_key_from_row).collect()
        })
    }

    fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> StoreResult<bool> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE api_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND key_id = ?2 AND revoked_at IS NULL",
                params![tenant.as_str(), key_id, Timestamp::now().millis()],
            )?;
            tx.execute(
                "DELETE FROM console_sessions WHERE tenant_id = ?1 AND key_id = ?2",
                params![tenant.as_str(), key_id],
            )?;
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    fn create_console_session(&self, session: &ConsoleSessionRecord) -> StoreResult<()> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM console_sessions WHERE tenant_id = ?1 AND expires_at <= ?2",
                params![session.tenant_id.as_str(), Timestamp::now().millis()],
            )?;
            tx.execute(
                &format!(
                    "INSERT INTO console_sessions ({CONSOLE_SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    session.session_id,
                    session.token_hash,
                    session.tenant_id.as_str(),
                    session.key_id,
                    session.form_token,
                    session.user_agent,
                    session.created_at.millis(),
                    session.expires_at.millis()
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn console_session(&self, token_hash: &str) -> StoreResult<Option<ConsoleSessionRecord>> {
        self.with_reader(|c| {
            let sql = format!(
                "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions WHERE token_hash = ?1 AND expires_at > ?2"
            );
            let row = c
                .prepare_cached(&sql)?
                .query_row(params![token_hash, Timestamp::now().millis()], console_session_row)
                .optional()?;
            row.map(console_session_from_row).transpose()
        })
    }

    fn console_sessions(&self, tenant: &TenantId) -> StoreResult<Vec<ConsoleSessionRecord>> {
        self.with_reader(|c| {
            let sql = format!(
                "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions WHERE tenant_id = ?1 AND expires_at > ?2
                 ORDER BY created_at DESC, session_id"
            );
            let rows: Vec<ConsoleSessionRow> = c
                .prepare_cached(&sql)?
                .query_map(params![tenant.as_str(), Timestamp::now().millis()], console_session_row)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(console_session_from_row).collect()
        })
    }

    fn end_console_session(&self, tenant: &TenantId, session_id: &str) -> StoreResult<bool> {
        self.with_writer(|c| {
            let ended = c.execute(
                "DELETE FROM console_sessions WHERE tenant_id = ?1 AND session_id = ?2",
                params![tenant.as_str(), session_id],
            )?;
            Ok(ended > 0)
        })
    }

    fn upsert_items(&self, tenant: &TenantId, items: &[Item]) -> StoreResult<UpsertCounts> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let mut counts = UpsertCounts::default();
            {
                let mut existing_created =
                    tx.prepare_cached("SELECT created_at FROM items WHERE tenant_id = ?1 AND item_id = ?2")?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO items (tenant_id, item_id, title, category, price_minor, currency, availability,
                                        stock_quantity, created_at, updated_at, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (tenant_id, item_id) DO UPDATE SET
                        title = excluded.title, category = excluded.category, price_minor = excluded.price_minor,
                        currency = excluded.currency, availability = excluded.availability,
                        stock_quantity = excluded.stock_quantity, updated_at = excluded.updated_at, doc = excluded.doc",
                )?;
                for item in items {
                    let previous: Option<i64> = existing_created
                        .query_row(params![tenant.as_str(), item.id.as_str()], |r| r.get(0))
                        .optional()?;
                    let mut stored = item.clone();
                    match previous {
                        Some(created) => {
                            stored.created_at = timestamp(created)?;
                            counts.updated += 1;
                        }
                        None => counts.created += 1,
                    }
                    upsert.execute(params![
                        tenant.as_str(),
                        stored.id.as_str(),
                        stored.title,
                        category_column(&stored),
                        stored.price.map(|p| p.minor_units),
                        stored.price.map(|p| p.currency.to_string()),
                        stored.availability.as_str(),
                        stored.stock_quantity,
                        stored.created_at.millis(),
                        stored.updated_at.millis(),
                        to_json(&stored)?,
                    ])?;
                }
            }
            tx.commit()?;
            Ok(counts)
        })
    }

    fn item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<Option<Item>> {
        self.with_reader(|c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM items WHERE tenant_id = ?1 AND item_id = ?2")?
                .query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()?;
            doc.as_deref().map(read_item).transpose()
        })
    }

    fn items(&self, tenant: &TenantId, ids: &[ItemId]) -> StoreResult<Vec<Item>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached("SELECT doc FROM items WHERE tenant_id = ?1 AND item_id = ?2")?;
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                let doc: Option<String> =
                    statement.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0)).optional()?;
                if let Some(doc) = doc {
                    found.push(read_item(&doc)?);
                }
            }
            Ok(found)
        })
    }

    fn list_items(&self, tenant: &TenantId, query: &ItemQuery) -> StoreResult<ItemPage> {
        self.with_reader(|c| {
            let search = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(like_pattern);
            let category = query.category.as_deref().filter(|s| !s.is_empty()).map(like_pattern);
            let filter = "tenant_id = ?1
                 AND (?2 IS NULL OR item_id LIKE ?2 ESCAPE '\\' OR title LIKE ?2 ESCAPE '\\')
                 AND (?3 IS NULL OR category LIKE ?3 ESCAPE '\\')";
            let total: i64 = c
                .prepare_cached(&format!("SELECT count(*) FROM items WHERE {filter}"))?
                .query_row(params![tenant.as_str(), search, category], |r| r.get(0))?;
            let limit = query.limit.clamp(1, 1_000);
            let mut statement = c.prepare_cached(&format!(
                "SELECT doc FROM items WHERE {filter} AND (?4 IS NULL OR item_id > ?4) ORDER BY item_id LIMIT ?5"
            ))?;
            let docs = statement
                .query_map(params![tenant.as_str(), search, category, query.after, limit as i64 + 1], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let items = docs.iter().map(|d| read_item(d)).collect::<StoreResult<Vec<_>>>()?;
            let (items, next_after) = split_page(items, limit, |i| i.id.to_string());
            Ok(ItemPage { items, total: total as u64, next_after })
        })
    }

    fn all_items(&self, tenant: &TenantId) -> StoreResult<Vec<Item>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached("SELECT doc FROM items WHERE tenant_id = ?1 ORDER BY item_id")?;
            let docs =
                statement.query_map([tenant.as_str()], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            docs.iter().map(|d| read_item(d)).collect()
        })
    }

    fn delete_item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<bool> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM items WHERE tenant_id = ?1 AND item_id = ?2",
                params![tenant.as_str(), id.as_str()],
            )? > 0;
            tx.execute(
                "DELETE FROM item_embeddings WHERE tenant_id = ?1 AND item_id = ?2",
                params![tenant.as_str(), id.as_str()],
            )?;
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn upsert_user(&self, tenant: &TenantId, user: &User) -> StoreResult<User> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let stored = upsert_user_in(&tx, tenant, user)?.0;
            tx.commit()?;
            Ok(stored)
        })
    }

    fn upsert_users(&self, tenant: &TenantId, users: &[User]) -> StoreResult<UpsertCounts> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let mut counts = UpsertCounts::default();
            for user in users {
                if upsert_user_in(&tx, tenant, user)?.1 {
                    counts.created += 1;
                } else {
                    counts.updated += 1;
                }
            }
            tx.commit()?;
            Ok(counts)
        })
    }

    fn purge_events(&self, tenant: &TenantId, before: Timestamp, anonymous_only: bool) -> StoreResult<u64> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let whose = if anonymous_only { "ts < ?2 AND user_id IS NULL" } else { "ts < ?2" };
            let deleted = delete_events_where(&tx, tenant, whose, &before.millis())?;
            if deleted > 0 {
                bump_event_deletions(&tx, tenant)?;
            }
            tx.commit()?;
            Ok(deleted as u64)
        })
    }

    fn erased_users(&self, tenant: &TenantId, ids: &[&UserId]) -> StoreResult<HashSet<UserId>> {
        self.with_reader(|c| {
            let mut probe = c.prepare_cached("SELECT 1 FROM erased_users WHERE tenant_id = ?1 AND user_id = ?2")?;
            let mut erased = HashSet::new();
            for id in ids {
                if probe.exists(params![tenant.as_str(), id.as_str()])? {
                    erased.insert((*id).clone());
                }
            }
            Ok(erased)
        })
    }

    fn lift_erasure(&self, tenant: &TenantId, user: &UserId) -> StoreResult<bool> {
        self.with_writer(|c| {
            let lifted = c.execute(
                "DELETE FROM erased_users WHERE tenant_id = ?1 AND user_id = ?2",
                params![tenant.as_str(), user.as_str()],
            )?;
            Ok(lifted > 0)
        })
    }

    fn erasures(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.with_reader(|c| {
            user_times(c, "SELECT user_id, erased_at FROM erased_users WHERE tenant_id = ?1 ORDER BY user_id", tenant)
        })
    }

    fn restore_erasure(&self, tenant: &TenantId, user: &UserId, erased_at: Timestamp) -> StoreResult<()> {
        self.with_writer(|c| {
            c.execute(
                "INSERT INTO erased_users (tenant_id, user_id, erased_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET erased_at = max(erased_at, excluded.erased_at)",
                params![tenant.as_str(), user.as_str(), erased_at.millis()],
            )?;
            Ok(())
        })
    }

    fn token_revocations(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.with_reader(|c| {
            let sql =
                "SELECT user_id, revoked_before FROM user_token_revocations WHERE tenant_id = ?1 ORDER BY user_id";
            user_times(c, sql, tenant)
        })
    }

    fn revoke_user_tokens(&self, tenant: &TenantId, user: &UserId, before: Timestamp) -> StoreResult<()> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            revoke_tokens_in(&tx, tenant, user, before.millis())?;
            tx.commit()?;
            Ok(())
        })
    }

    fn user_tokens_revoked_before(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Option<Timestamp>> {
        self.with_reader(|c| {
            let before: Option<i64> = c
                .prepare_cached(
                    "SELECT revoked_before FROM user_token_revocations WHERE tenant_id = ?1 AND user_id = ?2",
                )?
                .query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))
                .optional()?;
            before.map(timestamp).transpose()
        })
    }

    fn record_consent(&self, tenant: &TenantId, user: &UserId, statements: &[ConsentStatement]) -> StoreResult<User> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let previous = stored_user_doc(&tx, tenant, user)?;
            let stored = user_with_consent(user, previous.as_deref(), statements)?;
            write_user(&tx, tenant, &stored)?;
            let mut insert =
                tx.prepare_cached("INSERT INTO consent_statements (tenant_id, user_id, doc) VALUES (?1, ?2, ?3)")?;
            for statement in statements {
                insert.execute(params![tenant.as_str(), user.as_str(), to_json(statement)?])?;
            }
            drop(insert);
            tx.commit()?;
            Ok(stored)
        })
    }

    fn consent_history(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<ConsentStatement>> {
        self.with_reader(|c| {
            let docs: Vec<String> = c
                .prepare_cached("SELECT doc FROM consent_statements WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY id")?
                .query_map(params![tenant.as_str(), user.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            docs.iter().map(|doc| read_consent_statement(doc)).collect()
        })
    }

    fn record_visitor_consent(
        &self,
        tenant: &TenantId,
        visitor: &AnonymousId,
        statements: &[ConsentStatement],
    ) -> StoreResult<()> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let mut insert =
                tx.prepare_cached("INSERT INTO visitor_consents (tenant_id, anonymous_id, doc) VALUES (?1, ?2, ?3)")?;
            for statement in statements {
                insert.execute(params![tenant.as_str(), visitor.as_str(), to_json(statement)?])?;
            }
            drop(insert);
            tx.commit()?;
            Ok(())
        })
    }

    fn visitor_consent_history(&self, tenant: &TenantId, visitor: &AnonymousId) -> StoreResult<Vec<ConsentStatement>> {
        self.with_reader(|c| {
            let docs: Vec<String> = c
                .prepare_cached(
                    "SELECT doc FROM visitor_consents WHERE tenant_id = ?1 AND anonymous_id = ?2 ORDER BY id",
                )?
                .query_map(params![tenant.as_str(), visitor.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            docs.iter().map(|doc| read_consent_statement(doc)).collect()
        })
    }

    fn visitor_consent_ledger(&self, tenant: &TenantId) -> StoreResult<Vec<(AnonymousId, ConsentStatement)>> {
        self.with_reader(|c| {
            let rows: Vec<(String, String)> = c
                .prepare_cached("SELECT anonymous_id, doc FROM visitor_consents WHERE tenant_id = ?1 ORDER BY id")?
                .query_map(params![tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(|(id, doc)| Ok((read_anonymous_id(id)?, read_consent_statement(&doc)?))).collect()
        })
    }

    fn tenant_settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings> {
        self.with_reader(|c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM tenant_settings WHERE tenant_id = ?1")?
                .query_row(params![tenant.as_str()], |r| r.get(0))
                .optional()?;
            doc.as_deref().map_or(Ok(TenantSettings::default()), read_tenant_settings)
        })
    }

    fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> StoreResult<()> {
        self.with_writer(|c| {
            c.prepare_cached(
                "INSERT INTO tenant_settings (tenant_id, doc, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
            )?
            .execute(params![tenant.as_str(), to_json(settings)?, Timestamp::now().millis()])?;
            Ok(())
        })
    }

    fn users_withholding(&self, tenant: &TenantId, purpose: &Purpose) -> StoreResult<HashSet<UserId>> {
        // The same expression as the partial indexes of migration 11, so that they serve the query.
        let sql = format!(
            "SELECT user_id FROM users WHERE tenant_id = ?1 AND json_extract(doc, '$.{}') = 0",
            consent_path(purpose)?
        );
        self.with_reader(|c| {
            let ids: Vec<String> =
                c.prepare_cached(&sql)?.query_map(params![tenant.as_str()], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids.into_iter().map(|id| UserId::parse(id).map_err(corrupt)).collect()
        })
    }

    fn user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<Option<User>> {
        self.with_reader(|c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM users WHERE tenant_id = ?1 AND user_id = ?2")?
                .query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()?;
            doc.as_deref().map(read_user).transpose()
        })
    }

    fn list_users(&self, tenant: &TenantId, query: &UserQuery) -> StoreResult<UserPage> {
        self.with_reader(|c| {
            let search = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(like_pattern);
            let filter = "tenant_id = ?1 AND (?2 IS NULL OR user_id LIKE ?2 ESCAPE '\\')";
            let total: i64 = c
                .prepare_cached(&format!("SELECT count(*) FROM users WHERE {filter}"))?
                .query_row(params![tenant.as_str(), search], |r| r.get(0))?;
            let limit = query.limit.clamp(1, 1_000);
            let mut statement = c.prepare_cached(&format!(
                "SELECT doc FROM users WHERE {filter} AND (?3 IS NULL OR user_id > ?3) ORDER BY user_id LIMIT ?4"
            ))?;
            let docs = statement
                .query_map(params![tenant.as_str(), search, query.after, limit as i64 + 1], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let users = docs.iter().map(|d| read_user(d)).collect::<StoreResult<Vec<_>>>()?;
            let (users, next_after) = split_page(users, limit, |u| u.id.to_string());
            Ok(UserPage { users, total: total as u64, next_after })
        })
    }

    fn delete_user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<DeletedUser> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let profile = tx.execute(
                "DELETE FROM users WHERE tenant_id = ?1 AND user_id = ?2",
                params![tenant.as_str(), id.as_str()],
            )? > 0;
            tx.execute(
                "DELETE FROM consent_statements WHERE tenant_id = ?1 AND user_id = ?2",
                params![tenant.as_str(), id.as_str()],
            )?;
            let events = delete_events_where(&tx, tenant, "user_id = ?2", &id.as_str())?;
            // A tombstone only for a user who had data: asking to erase an unknown id changes nothing.
            if profile || events > 0 {
                let now = Timestamp::now().millis();
                tx.execute(
                    "INSERT INTO erased_users (tenant_id, user_id, erased_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET erased_at = excluded.erased_at",
                    params![tenant.as_str(), id.as_str(), now],
                )?;
                revoke_tokens_in(&tx, tenant, id, now)?;
            }
            bump_event_deletions(&tx, tenant)?;
            tx.commit()?;
            Ok(DeletedUser { profile, events: events as u64 })
        })
    }

    fn append_events(&self, tenant: &TenantId, events: &[Event]) -> StoreResult<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        // Serialize outside the write lock: the writer is the one serial resource.
        let rows = events.iter().map(EventRow::new).collect::<StoreResult<Vec<_>>>()?;
        self.appends.append(
            tenant,
            rows,
            || self.writer.lock().expect("writer poisoned"),
            |writer, group| commit_appends(writer, group, Timestamp::now().millis()),
        )
    }

    fn user_timeline(&self, tenant: &TenantId, user: &UserId, query: &TimelineQuery) -> StoreResult<TimelinePage> {
        self.with_reader(|c| {
            let limit = query.limit.clamp(1, 1_000);
            let mut statement = c.prepare_cached(
                "SELECT seq, received_at, payload FROM events
                 WHERE tenant_id = ?1 AND user_id = ?2 AND (?3 IS NULL OR seq < ?3)
                 ORDER BY seq DESC LIMIT ?4",
            )?;
            let rows = statement
                .query_map(params![tenant.as_str(), user.as_str(), query.before_seq, limit as i64 + 1], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let events = rows
                .iter()
                .map(|(seq, received, payload)| read_event(*seq, *received, payload))
                .collect::<StoreResult<Vec<_>>>()?;
            let (events, next_before_seq) = split_page(events, limit, |e| e.seq);
            Ok(TimelinePage { events, next_before_seq })
        })
    }

    fn events_after(&self, tenant: &TenantId, after_seq: i64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(EVENTS_AFTER_SQL)?;
            let rows = statement
                .query_map(params![tenant.as_str(), after_seq, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|(seq, received, payload)| read_event(*seq, *received, payload)).collect()
        })
    }

    fn shopper_activity(&self, tenant: &TenantId, shopper: ShopperRef<'_>, limit: usize) -> StoreResult<Arc<[Event]>> {
        let (version_sql, activity_sql, key) = match shopper {
            ShopperRef::User(user) => (USER_ACTIVITY_VERSION_SQL, USER_ACTIVITY_SQL, user.as_str()),
            ShopperRef::Anonymous(anonymous) => {
                (ANONYMOUS_ACTIVITY_VERSION_SQL, ANONYMOUS_ACTIVITY_SQL, anonymous.as_str())
            }
        };
        self.with_reader(|c| {
            let read_after = |after_seq: i64, limit: usize| -> StoreResult<Vec<(i64, Event)>> {
                let mut statement = c.prepare_cached(activity_sql)?;
                let rows = statement
                    .query_map(params![tenant.as_str(), key, limit as i64, after_seq], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.iter()
                    .map(|(seq, received, payload)| Ok((*seq, read_event(*seq, *received, payload)?.event)))
                    .collect()
            };
            if !self.activity.enabled() {
                return Ok(read_after(i64::MIN, limit)?.into_iter().map(|(_, e)| e).collect());
            }
            // Each query walks its activity-only partial index (tenant, shopper, seq) backwards.
            let (newest_seq, deletions): (Option<i64>, Option<i64>) = c
                .prepare_cached(version_sql)?
                .query_row(params![tenant.as_str(), key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let deletions = deletions.unwrap_or(0);
            let cache_key = ActivityKey {
                tenant: tenant.as_str().to_string(),
                anonymous: matches!(shopper, ShopperRef::Anonymous(_)),
                shopper: key.to_string(),
            };
            let Some(newest_seq) = newest_seq else {
                self.activity.remove(&cache_key);
                return Ok(Arc::from(Vec::new()));
            };
            let usable = self.activity.get(&cache_key).filter(|cached| {
                cached.deletions == deletions
                    && cached.newest_seq <= newest_seq
                    && (cached.limit >= limit || cached.holds_all())
            });
            let entry = match usable {
                Some(cached) if cached.newest_seq == newest_seq => cached,
                Some(cached) => {
                    // Only events newer than the entry are read, put in front of it and cut to length.
                    let limit = limit.max(cached.limit);
                    let newer = read_after(cached.newest_seq, limit)?;
                    let newest = newer.first().map_or(cached.newest_seq, |(seq, _)| *seq);
                    let events: Vec<Event> =
                        newer.into_iter().map(|(_, e)| e).chain(cached.events.iter().cloned()).take(limit).collect();
                    CachedActivity { newest_seq: newest, deletions, limit, events: events.into() }
                }
                None => {
                    let read = read_after(i64::MIN, limit)?;
                    let newest = read.first().map_or(newest_seq, |(seq, _)| *seq);
                    CachedActivity {
                        newest_seq: newest,
                        deletions,
                        limit,
                        events: read.into_iter().map(|(_, e)| e).collect::<Vec<_>>().into(),
                    }
                }
            };
            let events =
                if entry.events.len() > limit { Arc::from(&entry.events[..limit]) } else { entry.events.clone() };
            self.activity.put(cache_key, entry);
            Ok(events)
        })
    }

    fn recent_events(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(RECENT_EVENTS_SQL)?;
            let rows = statement
                .query_map(params![tenant.as_str(), limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|(seq, received, payload)| read_event(*seq, *received, payload)).collect()
        })
    }

    fn event_by_id(&self, tenant: &TenantId, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        self.with_reader(|c| {
            let row = c
                .prepare_cached("SELECT seq, received_at, payload FROM events WHERE tenant_id = ?1 AND event_id = ?2")?
                .query_row(params![tenant.as_str(), event_id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            row.map(|(seq, received, payload)| read_event(seq, received, &payload)).transpose()
        })
    }

    fn stats(&self, tenant: &TenantId) -> StoreResult<TenantStats> {
        self.with_reader(|c| {
            let count = |sql: &str| -> StoreResult<u64> {
                Ok(c.prepare_cached(sql)?.query_row([tenant.as_str()], |r| r.get::<_, i64>(0))? as u64)
            };
            let items = count("SELECT count(*) FROM items WHERE tenant_id = ?1")?;
            let users = count("SELECT count(*) FROM users WHERE tenant_id = ?1")?;
            let mut statement = c.prepare_cached(
                "SELECT event_type, sum(events) FROM event_daily_counts WHERE tenant_id = ?1 GROUP BY event_type HAVING sum(events) > 0",
            )?;
            let by_type = statement
                .query_map([tenant.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut events_by_type = Vec::with_capacity(by_type.len());
            for (name, n) in by_type {
                events_by_type.push((EventType::parse(&name).map_err(corrupt)?, n as u64));
            }
            events_by_type.sort();
            let events = events_by_type.iter().map(|(_, n)| n).sum();
            let (first, last): (Option<i64>, Option<i64>) = c
                .prepare_cached("SELECT min(ts), max(ts) FROM events WHERE tenant_id = ?1")?
                .query_row([tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(TenantStats {
                items,
                users,
                events,
                events_by_type,
                first_event_at: first.map(timestamp).transpose()?,
                last_event_at: last.map(timestamp).transpose()?,
            })
        })
    }

    fn events_per_day(&self, tenant: &TenantId) -> StoreResult<Vec<DayCount>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(
                "SELECT day, sum(events) FROM event_daily_counts WHERE tenant_id = ?1 GROUP BY day HAVING sum(events) > 0 ORDER BY day",
            )?;
            let rows = statement
                .query_map([tenant.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(day, events)| Ok(DayCount { day: timestamp(day * DAY_MILLIS)?.day(), events: events as u64 }))
                .collect()
        })
    }

    fn upsert_item_embeddings(&self, tenant: &TenantId, model: &str, embeddings: &[ItemEmbedding]) -> StoreResult<()> {
        let rows: Vec<(&str, i64, Vec<u8>)> =
            embeddings.iter().map(|e| (e.item_id.as_str(), e.content_hash as i64, vector_bytes(&e.vector))).collect();
        self.with_writer(|c| {
            let tx = c.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT INTO item_embeddings (tenant_id, model, item_id, content_hash, vector)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant_id, model, item_id)
                     DO UPDATE SET content_hash = excluded.content_hash, vector = excluded.vector",
                )?;
                for (item, hash, vector) in &rows {
                    statement.execute(params![tenant.as_str(), model, item, hash, vector])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn item_embeddings(&self, tenant: &TenantId, model: &str) -> StoreResult<Vec<ItemEmbedding>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(
                "SELECT item_id, content_hash, vector FROM item_embeddings
                 WHERE tenant_id = ?1 AND model = ?2 ORDER BY item_id",
            )?;
            let rows = statement
                .query_map(params![tenant.as_str(), model], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(item, hash, bytes)| {
                    Ok(ItemEmbedding {
                        vector: vector_from_bytes(&item, &bytes)?,
                        item_id: ItemId::parse(item).map_err(corrupt)?,
                        content_hash: hash as u64,
                    })
                })
                .collect()
        })
    }

    fn save_model_snapshot(
        &self,
        tenant: &TenantId,
        kind: &str,
        events_through_seq: i64,
        metrics: &str,
        payload: &[u8],
    ) -> StoreResult<ModelSnapshotInfo> {
        let created_at = Timestamp::now();
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let version: i64 = tx.query_row(
                "SELECT coalesce(max(version), 0) + 1 FROM model_snapshots WHERE tenant_id = ?1 AND kind = ?2",
                params![tenant.as_str(), kind],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO model_snapshots
                 (tenant_id, kind, version, created_at, events_through_seq, metrics, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![tenant.as_str(), kind, version, created_at.millis(), events_through_seq, metrics, payload],
            )?;
            tx.execute(
                "DELETE FROM model_snapshots WHERE tenant_id = ?1 AND kind = ?2 AND version <= ?3",
                params![tenant.as_str(), kind, version - crate::MODEL_VERSIONS_KEPT as i64],
            )?;
            tx.execute("DELETE FROM model_pins WHERE tenant_id = ?1 AND kind = ?2", params![tenant.as_str(), kind])?;
            tx.commit()?;
            Ok(ModelSnapshotInfo {
                kind: kind.to_string(),
                version,
                created_at,
                events_through_seq,
                metrics: metrics.to_string(),
                payload_bytes: payload.len() as u64,
            })
        })
    }

    fn model_snapshots(&self, tenant: &TenantId, kind: &str) -> StoreResult<Vec<ModelSnapshotInfo>> {
        self.with_reader(|c| {
            let mut statement = c.prepare_cached(
                "SELECT version, created_at, events_through_seq, metrics, length(payload) FROM model_snapshots
                 WHERE tenant_id = ?1 AND kind = ?2 ORDER BY version DESC",
            )?;
            let rows = statement
                .query_map(params![tenant.as_str(), kind], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(version, created, seq, metrics, bytes)| {
                    Ok(ModelSnapshotInfo {
                        kind: kind.to_string(),
                        version,
                        created_at: timestamp(created)?,
                        events_through_seq: seq,
                        metrics,
                        payload_bytes: bytes as u64,
                    })
                })
                .collect()
        })
    }

    fn model_snapshot_payload(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<Option<Vec<u8>>> {
        self.with_reader(|c| {
            Ok(c.query_row(
                "SELECT payload FROM model_snapshots WHERE tenant_id = ?1 AND kind = ?2 AND version = ?3",
                params![tenant.as_str(), kind, version],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?)
        })
    }

    fn pin_model_version(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<()> {
        self.with_writer(|c| {
            c.execute(
                "INSERT INTO model_pins (tenant_id, kind, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, kind) DO UPDATE SET version = excluded.version",
                params![tenant.as_str(), kind, version],
            )?;
            Ok(())
        })
    }

    fn pinned_model_version(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<i64>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached("SELECT version FROM model_pins WHERE tenant_id = ?1 AND kind = ?2")?
                .query_row(params![tenant.as_str(), kind], |r| r.get(0))
                .optional()?)
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.with_reader(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn lock_task(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<Box<dyn TaskLease>>> {
        Ok(self.leases.try_take(tenant, kind).map(|lease| Box::new(lease) as Box<dyn TaskLease>))
    }

    fn task_slot_done(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<bool> {
        self.with_reader(|c| {
            Ok(c.prepare_cached("SELECT 1 FROM task_slots WHERE tenant_id = ?1 AND kind = ?2 AND slot = ?3")?
                .query_row(params![tenant.as_str(), kind, slot], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    fn finish_task_slot(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<()> {
        self.with_writer(|c| {
            c.execute(
                "INSERT INTO task_slots (tenant_id, kind, slot, finished_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![tenant.as_str(), kind, slot, Timestamp::now().millis()],
            )?;
            Ok(())
        })
    }

    fn restore_events(&self, tenant: &TenantId, events: &[StoredEvent]) -> StoreResult<AppendOutcome> {
        let rows = events.iter().map(|e| EventRow::new(&e.event)).collect::<StoreResult<Vec<_>>>()?;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let received: Vec<i64> = events.iter().map(|e| e.received_at.millis()).collect();
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let outcome = insert_event_rows(&tx, tenant, &rows, 0, Some((&seqs, &received)))?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn model_kinds(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        self.with_reader(|c| {
            let mut statement =
                c.prepare_cached("SELECT DISTINCT kind FROM model_snapshots WHERE tenant_id = ?1 ORDER BY kind")?;
            Ok(statement.query_map([tenant.as_str()], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn embedding_models(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        self.with_reader(|c| {
            let mut statement =
                c.prepare_cached("SELECT DISTINCT model FROM item_embeddings WHERE tenant_id = ?1 ORDER BY model")?;
            Ok(statement.query_map([tenant.as_str()], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn restore_model_snapshot(&self, tenant: &TenantId, info: &ModelSnapshotInfo, payload: &[u8]) -> StoreResult<bool> {
        self.with_writer(|c| {
            let inserted = c.execute(
                "INSERT INTO model_snapshots (tenant_id, kind, version, created_at, events_through_seq, metrics, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    tenant.as_str(),
                    info.kind,
                    info.version,
                    info.created_at.millis(),
                    info.events_through_seq,
                    info.metrics,
                    payload
                ],
            )?;
            Ok(inserted > 0)
        })
    }
}

fn console_session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsoleSessionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

/// Upsert one user inside a transaction; returns the stored user and whether it was created.
fn upsert_user_in(tx: &rusqlite::Transaction<'_>, tenant: &TenantId, user: &User) -> StoreResult<(User, bool)> {
    let previous = stored_user_doc(tx, tenant, &user.id)?;
    let stored = user_over(user, previous.as_deref())?;
    write_user(tx, tenant, &stored)?;
    Ok((stored, previous.is_none()))
}

fn stored_user_doc(tx: &rusqlite::Transaction<'_>, tenant: &TenantId, id: &UserId) -> StoreResult<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT doc FROM users WHERE tenant_id = ?1 AND user_id = ?2")?
        .query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
        .optional()?)
}

fn write_user(tx: &rusqlite::Transaction<'_>, tenant: &TenantId, stored: &User) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO users (tenant_id, user_id, created_at, updated_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET updated_at = excluded.updated_at, doc = excluded.doc",
    )?
    .execute(params![
        tenant.as_str(),
        stored.id.as_str(),
        stored.created_at.millis(),
        stored.updated_at.millis(),
        to_json(stored)?
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{AnonymousId, EventInput};
    use rusqlite::StatementStatus;

    /// A store in a temporary directory (kept alive by the returned guard) with tenant `alpha`.
    fn store_with_tenant(options: SqliteOptions) -> (tempfile::TempDir, SqliteStore, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("attune.sqlite3"), options).unwrap();
        let tenant = TenantId::parse_slug("alpha").unwrap();
        store
            .create_tenant(&Tenant { id: tenant.clone(), name: "A".into(), created_at: Timestamp::now() }, b"s")
            .unwrap();
        (dir, store, tenant)
    }

    /// Reading the log in chunks must cost the chunk, not the tenant's whole log: with only the time index to
    /// pick, SQLite sorted every event of the tenant after the start for each chunk, so a training's scan grew
    /// with the square of the events.
    #[test]
    fn reading_the_log_in_order_walks_an_index_without_sorting() {
        let (_dir, store, _tenant) = store_with_tenant(SqliteOptions::default());
        let (after, recent): (&[&dyn rusqlite::ToSql], &[&dyn rusqlite::ToSql]) =
            (&[&"alpha", &0, &10], &[&"alpha", &10]);
        for (sql, arguments) in [(EVENTS_AFTER_SQL, after), (RECENT_EVENTS_SQL, recent)] {
            let plan: Vec<String> = store
                .with_reader(|c| {
                    let mut statement = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = statement.query_map(arguments, |r| r.get::<_, String>(3))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains("USING INDEX events_by_tenant") && !plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }

    /// Reading the activity of one shopper after another reuses the compiled statement: the per-request read must
    /// not pay for a fresh query plan each time a new shopper id or limit is bound.
    #[test]
    fn shopper_activity_reads_reuse_their_compiled_statements() {
        // Without the in-memory copy every read runs the activity statement; with it, the version check.
        for activity_cache_events in [0, 1_000] {
            reads_reuse_their_compiled_statements(SqliteOptions { activity_cache_events, ..SqliteOptions::default() });
        }
    }

    fn reads_reuse_their_compiled_statements(options: SqliteOptions) {
        let (_dir, store, tenant) = store_with_tenant(options);
        let events: Vec<Event> = (0..40)
            .map(|i| {
                let shopper = if i % 2 == 0 {
                    format!(r#""user_id":"u{}""#, i % 8)
                } else {
                    format!(r#""anonymous_id":"a{}""#, i % 8)
                };
                let input: EventInput =
                    serde_json::from_str(&format!(r#"{{"type":"view","event_id":"e{i}",{shopper},"item_id":"i{i}"}}"#))
                        .unwrap();
                Event::parse(input, Timestamp::now()).unwrap()
            })
            .collect();
        store.append_events(&tenant, &events).unwrap();
        for round in 0..3 {
            for shopper in 0..8 {
                let user = UserId::parse(format!("u{shopper}")).unwrap();
                let anonymous = AnonymousId::parse(format!("a{shopper}")).unwrap();
                let limit = 5 + round;
                let read = store.shopper_activity(&tenant, ShopperRef::User(&user), limit).unwrap();
                assert_eq!(read.is_empty(), shopper % 2 == 1, "user u{shopper}");
                store.shopper_activity(&tenant, ShopperRef::Anonymous(&anonymous), limit).unwrap();
            }
        }
        let reprepares = |sql: &str| {
            store.with_reader(|c| Ok(c.prepare_cached(sql)?.get_status(StatementStatus::RePrepare))).unwrap()
        };
        assert_eq!(reprepares(USER_ACTIVITY_SQL), 0, "signed-in shopper read compiled again");
        assert_eq!(reprepares(ANONYMOUS_ACTIVITY_SQL), 0, "anonymous shopper read compiled again");
        assert_eq!(reprepares(USER_ACTIVITY_VERSION_SQL), 0, "signed-in shopper check compiled again");
        assert_eq!(reprepares(ANONYMOUS_ACTIVITY_VERSION_SQL), 0, "anonymous shopper check compiled again");
    }

    /// The in-memory copy of a shopper's activity also notices changes made through another connection to the
    /// same file (another process, such as a command-line erasure): appends and deletions alike.
    #[test]
    fn cached_activity_follows_changes_made_by_another_store() {
        let (dir, store, tenant) = store_with_tenant(SqliteOptions::default());
        let other = SqliteStore::open(dir.path().join("attune.sqlite3"), SqliteOptions::default()).unwrap();
        let view = |id: &str| {
            let input: EventInput =
                serde_json::from_str(&format!(r#"{{"type":"view","event_id":"{id}","user_id":"u","item_id":"i"}}"#))
                    .unwrap();
            Event::parse(input, Timestamp::now()).unwrap()
        };
        let user = UserId::parse("u").unwrap();
        let read = || -> Vec<String> {
            let events = store.shopper_activity(&tenant, ShopperRef::User(&user), 10).unwrap();
            events.iter().map(|e| e.id.to_string()).collect()
        };
        store.append_events(&tenant, &[view("a")]).unwrap();
        assert_eq!(read(), ["a"]);
        other.append_events(&tenant, &[view("b")]).unwrap();
        assert_eq!(read(), ["b", "a"]);
        assert_eq!(store.activity.held_events(), 2);
        other.delete_user(&tenant, &user).unwrap();
        assert!(read().is_empty(), "an erasure by another connection must not be served from memory");
        other.lift_erasure(&tenant, &user).unwrap();
        other.append_events(&tenant, &[view("c")]).unwrap();
        assert_eq!(read(), ["c"]);
    }

    /// Many threads reading at once share at most `max_readers` connections (waiting for one rather than
    /// opening more), and every connection is back in the pool afterwards.
    #[test]
    fn concurrent_reads_share_a_bounded_set_of_connections() {
        let (_dir, store, tenant) = store_with_tenant(SqliteOptions { max_readers: 2, ..SqliteOptions::default() });
        let user = UserId::parse("u").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        store.shopper_activity(&tenant, ShopperRef::User(&user), 10).unwrap();
                    }
                });
            }
        });
        let pool = store.readers.lock().unwrap();
        assert!(pool.open <= 2, "{} reader connections were opened", pool.open);
        assert_eq!(pool.idle.len(), pool.open, "every lent connection came back");
    }
}
