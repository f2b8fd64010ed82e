//! The PostgreSQL backend, for running several `attune serve` processes on one database.
//!
//! Connections come from an r2d2 pool; each keeps its prepared statements, so a request costs one round trip
//! per query. A commit returns once PostgreSQL reports it durable (with the server's default
//! `synchronous_commit = on`); concurrent event appends share one commit, as on SQLite.
//!
//! Event sequence numbers come from one database sequence. An append first takes a transaction advisory lock
//! per tenant, so within a tenant numbers are given out and committed in the same order: a reader that sees
//! number `n` sees every smaller one of that tenant, which scans after a sequence number rely on.
//! That makes one backend's CPU per row the pace of a tenant's ingest, so each event is written to as few
//! indexes as the reads need: the tenant-led primary key, its id, its time, and one of the shopper indexes
//! (behaviour, or impressions and searches: disjoint, so timelines and erasure read both and merge).
//!
//! Writes that others must follow (items, keys, users, model versions) send a `NOTIFY` in their transaction,
//! so every process's [`ChangeFeed`] hears of them when they commit. Task leases are session advisory locks
//! on connections of their own: a process that dies loses its connection and, with it, the lease.
//!
//! All tables live in one schema (`public` unless [`PostgresOptions::schema`] names another); advisory lock
//! keys and the notification channel include the schema, so stores in different schemas never interact.

mod migrations;

use crate::group_commit::{GroupCommit, PendingAppend};
use crate::local_lease::{LocalLease, LocalLeases};
use crate::rows::*;
use crate::types::*;
use crate::{Store, StoreError, StoreResult};
use attune_core::{
    AnonymousId, ConsentStatement, Event, EventType, Item, ItemId, Purpose, Tenant, TenantId, TenantSettings,
    Timestamp, User, UserId,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Schema holding the tables (created if missing); `None`: `public`.
    pub schema: Option<String>,
    /// Most pooled connections (task leases and the change feed use connections of their own).
    pub max_connections: u32,
    /// How long a request waits for a connection before the store reports the database unreachable.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { schema: None, max_connections: 16, connect_timeout: Duration::from_secs(3) }
    }
}

pub struct PostgresStore {
    pool: r2d2::Pool<Manager>,
    config: postgres::Config,
    schema: String,
    channel: String,
    /// Drop the schema with the store (scratch stores for tests and benchmarks).
    drop_schema: bool,
    appends: GroupCommit,
    committer: Mutex<()>,
    local_leases: LocalLeases,
}

/// A pooled connection and its prepared statements.
pub struct PgConnection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl PgConnection {
    /// The prepared form of `sql`, prepared on first use.
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<postgres::Row>> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    fn query_opt(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<postgres::Row>> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }

    fn query_one(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<postgres::Row> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }
}

/// Opens pool connections with the store's schema as the search path.
struct Manager {
    config: postgres::Config,
    schema: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConnection, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(&format!("SET search_path TO {}", quote_identifier(&self.schema)))?;
        Ok(PgConnection { client, statements: HashMap::new() })
    }

    fn is_valid(&self, connection: &mut PgConnection) -> Result<(), postgres::Error> {
        connection.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, connection: &mut PgConnection) -> bool {
        connection.client.is_closed()
    }
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A stable 64-bit key for an advisory lock on `parts` (FNV-1a); a collision only makes two unrelated holders
/// wait for each other.
fn lock_key(parts: &[&str]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash as i64
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`), creates the schema if needed and brings it up
    /// to date. Fails when the database cannot be reached within the connect timeout.
    pub fn connect(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let mut config: postgres::Config =
            url.parse().map_err(|e: postgres::Error| StoreError::Unavailable(format!("invalid database url: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        let schema = options.schema.clone().unwrap_or_else(|| "public".into());
        // Operators see which store a connection serves; tests find their own connections by it.
        config.application_name(&format!("attune/{schema}").chars().take(63).collect::<String>());
        let mut admin = config.connect(NoTls)?;
        admin.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}",
            schema = quote_identifier(&schema)
        ))?;
        migrations::apply(&mut admin, lock_key(&[&schema, "migrations"]))?;
        warn_if_not_durable(&mut admin);
        drop(admin);
        let manager = Manager { config: config.clone(), schema: schema.clone() };
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(Some(1))
            // A broken connection is noticed by `has_broken`; checking each one with a query on every checkout
            // would add a round trip to every call.
            .test_on_check_out(false)
            .connection_timeout(options.connect_timeout)
            .build(manager)?;
        tracing::info!(schema = %schema, "postgresql store opened");
        Ok(Self {
            pool,
            config,
            channel: format!("attune_changes.{schema}"),
            schema,
            drop_schema: false,
            appends: GroupCommit::default(),
            committer: Mutex::new(()),
            local_leases: LocalLeases::default(),
        })
    }

    /// A store in a new schema of its own, dropped with the store: for tests and benchmarks.
    pub fn scratch(url: &str) -> StoreResult<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let schema = format!(
            "attune_scratch_{}_{}_{}",
            std::process::id(),
            Timestamp::now().millis(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let options = PostgresOptions { schema: Some(schema), max_connections: 4, ..PostgresOptions::default() };
        let mut store = Self::connect(url, options)?;
        store.drop_schema = true;
        Ok(store)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Terminates every server connection of this schema's stores (all replicas) except the one asking: a fault
    /// for benchmarks and tests to inject. Returns how many were terminated.
    pub fn terminate_other_connections(&self) -> StoreResult<u64> {
        let mut client = self.config.connect(NoTls)?;
        let application = format!("attune/{}", self.schema).chars().take(63).collect::<String>();
        let rows = client.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()",
            &[&application],
        )?;
        Ok(rows.len() as u64)
    }

    fn with_connection<T>(&self, work: impl FnOnce(&mut PgConnection) -> StoreResult<T>) -> StoreResult<T> {
        let mut connection = self.pool.get()?;
        work(&mut connection)
    }

    /// Runs a read, again on another connection while the one it got turns out to have been dropped by the
    /// server (a restart, `pg_terminate_backend`): reads are safe to repeat. A dropped connection is discarded
    /// when it goes back to the pool, so this ends after at most one try per pooled connection; a database that
    /// cannot be reached at all fails at once (the pool's connect timeout).
    fn read<T>(&self, work: impl Fn(&mut PgConnection) -> StoreResult<T>) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            let mut connection = self.pool.get()?;
            match work(&mut connection) {
                Err(StoreError::Unavailable(message)) if tries < self.pool.max_size() => {
                    tracing::debug!(%message, "retrying a read on another connection");
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends `change` to every listener when the transaction commits.
    fn notify(&self, tx: &mut postgres::Transaction<'_>, change: &Change) -> StoreResult<()> {
        tx.execute("SELECT pg_notify($1, $2)", &[&self.channel, &to_json(change)?])?;
        Ok(())
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if !self.drop_schema {
            return;
        }
        // On a thread of its own: the synchronous client runs a runtime of its own, which cannot start on a
        // thread that drives async tasks (a store dropped inside a server's runtime).
        let (config, sql) = (&self.config, format!("DROP SCHEMA {} CASCADE", quote_identifier(&self.schema)));
        let dropped = std::thread::scope(|scope| {
            scope.spawn(|| config.connect(NoTls).and_then(|mut c| c.batch_execute(&sql))).join()
        });
        if let Ok(Err(error)) = dropped {
            tracing::warn!(schema = %self.schema, %error, "could not drop a scratch schema");
        }
    }
}

fn warn_if_not_durable(client: &mut Client) {
    for setting in ["fsync", "synchronous_commit"] {
        if let Ok(row) = client.query_one(&format!("SHOW {setting}"), &[]) {
            let value: String = row.get(0);
            if value == "off" {
                tracing::warn!(setting, "postgresql setting is off: acknowledged events may be lost in a crash");
            }
        }
    }
}

/// Events per (UTC day number, event type).
type DailyCounts = BTreeMap<(i64, String), i64>;

/// The statements of every event insert, prepared once per connection.
struct EventStatements {
    insert: Statement,
    daily: Statement,
}

impl EventStatements {
    fn prepare(connection: &mut PgConnection) -> StoreResult<Self> {
        Ok(Self {
            insert: connection.statement(INSERT_EVENTS_SQL)?,
            daily: connection.statement(ADD_DAILY_COUNTS_SQL)?,
        })
    }
}

/// Inserts `rows` of one tenant in one statement and counts them per day; returns the ids stored (a repeated id
/// is stored at its first occurrence). `restored` gives each row's sequence number and receipt time (a
/// migration); otherwise both are new.
fn insert_events(
    tx: &mut postgres::Transaction<'_>,
    statements: &EventStatements,
    tenant: &TenantId,
    rows: &[&EventRow],
    received_at: i64,
    restored: Option<(&[i64], &[i64])>,
) -> StoreResult<HashSet<String>> {
    let column = |f: fn(&EventRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let ids = column(|r| Some(&r.event_id));
    let types = column(|r| Some(r.event_type));
    let users = column(|r| r.user_id.as_deref());
    let anonymous = column(|r| r.anonymous_id.as_deref());
    let sessions = column(|r| r.session_id.as_deref());
    let channels = column(|r| Some(r.channel));
    let stores = column(|r| r.store_id.as_deref());
    let items = column(|r| r.item_id.as_deref());
    let payloads = column(|r| Some(&r.payload));
    let times: Vec<i64> = rows.iter().map(|r| r.timestamp).collect();
    let default_received = vec![received_at; rows.len()];
    let (seqs, received) = match restored {
        Some((seqs, received)) => (Some(seqs), received),
        None => (None, &default_received[..]),
    };
    let params: [&(dyn ToSql + Sync); 13] = [
        &tenant.as_str(),
        &ids,
        &types,
        &users,
        &anonymous,
        &sessions,
        &times,
        &channels,
        &stores,
        &items,
        &payloads,
        &received,
        &seqs,
    ];
    let stored = tx.query(&statements.insert, &params)?;
    add_daily_counts(tx, &statements.daily, tenant, &daily_counts(&stored, 1), 1)?;
    Ok(stored.iter().map(|row| row.get(0)).collect())
}

/// Takes deleted events (`rows` of `event_type, ts`) out of the daily counts and bumps the tenant's deletion
/// generation.
fn account_deleted_events(
    tx: &mut postgres::Transaction<'_>,
    daily: &Statement,
    tenant: &TenantId,
    rows: &[postgres::Row],
) -> StoreResult<()> {
    add_daily_counts(tx, daily, tenant, &daily_counts(rows, 0), -1)?;
    tx.execute(
        "INSERT INTO event_deletions (tenant_id, generation) VALUES ($1, 1)
         ON CONFLICT (tenant_id) DO UPDATE SET generation = event_deletions.generation + 1",
        &[&tenant.as_str()],
    )?;
    Ok(())
}

/// Events per day and type of `rows`, whose columns `type_column` and the one after it are type and time.
fn daily_counts(rows: &[postgres::Row], type_column: usize) -> DailyCounts {
    let mut daily = DailyCounts::new();
    for row in rows {
        let (event_type, ts): (String, i64) = (row.get(type_column), row.get(type_column + 1));
        *daily.entry((ts.div_euclid(DAY_MILLIS), event_type)).or_default() += 1;
    }
    daily
}

/// `(user id, time)` rows.
fn user_times(rows: &[postgres::Row]) -> StoreResult<Vec<(UserId, Timestamp)>> {
    rows.iter()
        .map(|row| Ok((UserId::parse(row.get::<_, String>(0)).map_err(corrupt)?, timestamp(row.get(1))?)))
        .collect()
}

/// The users of `rows` with a tombstone (one probe per user, and none while the tenant erased no one).
fn erased_among(
    tx: &mut postgres::Transaction<'_>,
    tenant: &TenantId,
    rows: &[&EventRow],
) -> StoreResult<HashSet<String>> {
    let any: bool =
        tx.query_one("SELECT EXISTS (SELECT 1 FROM erased_users WHERE tenant_id = $1)", &[&tenant.as_str()])?.get(0);
    if !any {
        return Ok(HashSet::new());
    }
    let users: Vec<&str> =
        rows.iter().filter_map(|r| r.user_id.as_deref()).collect::<HashSet<_>>().into_iter().collect();
    let found = tx.query(
        "SELECT user_id FROM erased_users WHERE tenant_id = $1 AND user_id = ANY($2)",
        &[&tenant.as_str(), &users],
    )?;
    Ok(found.iter().map(|row| row.get(0)).collect())
}

/// The outcome of `rows` of which `inserted` holds the ids stored; each stored id counts once, for its first row;
/// rows of `erased` users count as erased.
fn outcome_of<'a>(
    rows: impl IntoIterator<Item = &'a EventRow>,
    inserted: &mut HashSet<String>,
    erased: &HashSet<String>,
) -> AppendOutcome {
    let mut outcome = AppendOutcome::default();
    for row in rows {
        if row.user_id.as_ref().is_some_and(|user| erased.contains(user)) {
            outcome.erased += 1;
        } else if inserted.remove(&row.event_id) {
            outcome.accepted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    outcome
}

/// Rows from parallel arrays, in the order given; with `$13` (sequence numbers) null, each row takes the next
/// number of the sequence. An id the tenant has, or one given twice, is stored once, at its first occurrence.
const INSERT_EVENTS_SQL: &str = "INSERT INTO events (seq, tenant_id, event_id, event_type, user_id, anonymous_id,
        session_id, ts, channel, store_id, item_id, payload, received_at)
    SELECT coalesce(($13::int8[])[e.n], nextval('event_seq')), $1, e.event_id, e.event_type, e.user_id,
        e.anonymous_id, e.session_id, e.ts, e.channel, e.store_id, e.item_id, e.payload, e.received_at
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[],
                $10::text[], $11::text[], $12::int8[])
        WITH ORDINALITY AS e(event_id, event_type, user_id, anonymous_id, session_id, ts, channel, store_id,
                             item_id, payload, received_at, n)
    ORDER BY e.n
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING event_id, event_type, ts";

/// Refuses a user's tokens issued before `$3`, never moving an earlier refusal back.
const REVOKE_TOKENS_SQL: &str = "INSERT INTO user_token_revocations (tenant_id, user_id, revoked_before)
    VALUES ($1, $2, $3)
    ON CONFLICT (tenant_id, user_id)
    DO UPDATE SET revoked_before = greatest(user_token_revocations.revoked_before, excluded.revoked_before)";

/// Adds (or with negative counts, takes away) events per day and type.
const ADD_DAILY_COUNTS_SQL: &str = "INSERT INTO event_daily_counts (tenant_id, day, event_type, events)
    SELECT $1, d, t, n FROM unnest($2::int8[], $3::text[], $4::int8[]) AS x(d, t, n)
    ON CONFLICT (tenant_id, day, event_type) DO UPDATE SET events = event_daily_counts.events + excluded.events";

fn add_daily_counts(
    tx: &mut postgres::Transaction<'_>,
    statement: &Statement,
    tenant: &TenantId,
    daily: &DailyCounts,
    sign: i64,
) -> StoreResult<()> {
    if daily.is_empty() {
        return Ok(());
    }
    let days: Vec<i64> = daily.keys().map(|(day, _)| *day).collect();
    let types: Vec<&str> = daily.keys().map(|(_, t)| t.as_str()).collect();
    let counts: Vec<i64> = daily.values().map(|n| n * sign).collect();
    tx.execute(statement, &[&tenant.as_str(), &days, &types, &counts])?;
    Ok(())
}

/// Takes the per-tenant append locks of `tenants` (in order, so concurrent committers cannot deadlock).
fn lock_tenants_for_append<'a>(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    tenants: impl IntoIterator<Item = &'a TenantId>,
) -> StoreResult<()> {
    let ordered: BTreeSet<&TenantId> = tenants.into_iter().collect();
    for tenant in ordered {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(&[schema, "events", tenant.as_str()])])?;
    }
    Ok(())
}

impl PostgresStore {
    /// Inserts every queued append in one transaction, one statement per tenant; the outcome of each, in order
    /// (an id sent by two appends of the group is accepted for the first).
    fn commit_appends(&self, group: &[PendingAppend]) -> StoreResult<Vec<AppendOutcome>> {
        let mut tenants: Vec<&TenantId> = Vec::new();
        for pending in group {
            if !tenants.contains(&&pending.tenant) {
                tenants.push(&pending.tenant);
            }
        }
        self.with_connection(|c| {
            let statements = EventStatements::prepare(c)?;
            let mut tx = c.client.transaction()?;
            lock_tenants_for_append(&mut tx, &self.schema, tenants.iter().copied())?;
            let received_at = Timestamp::now().millis();
            let mut outcomes = vec![AppendOutcome::default(); group.len()];
            for tenant in &tenants {
                let members: Vec<usize> = (0..group.len()).filter(|&i| group[i].tenant == **tenant).collect();
                let mut rows: Vec<&EventRow> = members.iter().flat_map(|&i| &group[i].rows).collect();
                let erased = erased_among(&mut tx, tenant, &rows)?;
                rows.retain(|row| !row.user_id.as_ref().is_some_and(|user| erased.contains(user)));
                let mut inserted = insert_events(&mut tx, &statements, tenant, &rows, received_at, None)?;
                for &i in &members {
                    outcomes[i] = outcome_of(&group[i].rows, &mut inserted, &erased);
                }
            }
            tx.commit()?;
            Ok(outcomes)
        })
    }
}

fn event_from_row(row: &postgres::Row) -> StoreResult<StoredEvent> {
    read_event(row.get(0), row.get(1), row.get::<_, &str>(2))
}

fn events_from_rows(rows: &[postgres::Row]) -> StoreResult<Vec<StoredEvent>> {
    rows.iter().map(event_from_row).collect()
}

fn console_session_from_pg(row: &postgres::Row) -> StoreResult<ConsoleSessionRecord> {
    console_session_from_row((
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
    ))
}

fn api_key_from_pg(row: &postgres::Row) -> StoreResult<ApiKeyRecord> {
    api_key_from_row((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5), row.get(6)))
}

/// Upserts one user inside a transaction; returns the stored user and whether it was created.
fn upsert_user_in(tx: &mut postgres::Transaction<'_>, tenant: &TenantId, user: &User) -> StoreResult<(User, bool)> {
    let previous = stored_user_doc(tx, tenant, &user.id)?;
    let stored = user_over(user, previous.as_deref())?;
    write_user(tx, tenant, &stored)?;
    Ok((stored, previous.is_none()))
}

/// The stored document of user `id`, locked until the transaction ends.
fn stored_user_doc(tx: &mut postgres::Transaction<'_>, tenant: &TenantId, id: &UserId) -> StoreResult<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT doc FROM users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
            &[&tenant.as_str(), &id.as_str()],
        )?
        .map(|row| row.get(0)))
}

fn write_user(tx: &mut postgres::Transaction<'_>, tenant: &TenantId, stored: &User) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO users (tenant_id, user_id, created_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET updated_at = excluded.updated_at, doc = excluded.doc",
        &[
            &tenant.as_str(),
            &stored.id.as_str(),
            &stored.created_at.millis(),
            &stored.updated_at.millis(),
            &to_json(stored)?,
        ],
    )?;
    Ok(())
}

impl Store for PostgresStore {
    fn create_tenant(&self, tenant: &Tenant, user_token_secret: &[u8]) -> StoreResult<()> {
        self.with_connection(|c| {
            let inserted = c.execute(
                "INSERT INTO tenants (tenant_id, name, created_at, user_token_secret) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id) DO NOTHING",
                &[&tenant.id.as_str(), &tenant.name, &tenant.created_at.millis(), &user_token_secret],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("tenant `{}`", tenant.id)));
            }
            Ok(())
        })
    }

    fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.read(|c| {
            let row = c.query_opt("SELECT name, created_at FROM tenants WHERE tenant_id = $1", &[&id.as_str()])?;
            row.map(|r| Ok(Tenant { id: id.clone(), name: r.get(0), created_at: timestamp(r.get(1))? })).transpose()
        })
    }

    fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|c| {
            let rows = c.query("SELECT tenant_id, name, created_at FROM tenants ORDER BY tenant_id", &[])?;
            rows.iter()
                .map(|r| {
                    Ok(Tenant {
                        id: TenantId::parse(r.get::<_, String>(0)).map_err(corrupt)?,
                        name: r.get(1),
                        created_at: timestamp(r.get(2))?,
                    })
                })
                .collect()
        })
    }

    fn user_token_secret(&self, tenant: &TenantId) -> StoreResult<Option<Vec<u8>>> {
        self.read(|c| {
            let row = c.query_opt("SELECT user_token_secret FROM tenants WHERE tenant_id = $1", &[&tenant.as_str()])?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO api_keys (key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &key.key_id,
                    &key.tenant_id.as_str(),
                    &key.kind.as_str(),
                    &key.label,
                    &key.secret_hash,
                    &key.created_at.millis(),
                    &key.revoked_at.map(|t| t.millis()),
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("api key `{}`", key.key_id)));
            }
            self.notify(&mut tx, &Change::Keys { tenant: key.tenant_id.clone() })?;
            tx.commit()?;
            Ok(())
        })
    }

    fn api_key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at FROM api_keys
                 WHERE secret_hash = $1",
                &[&secret_hash],
            )?;
            row.as_ref().map(api_key_from_pg).transpose()
        })
    }

    fn api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at FROM api_keys
                 WHERE tenant_id = $1 ORDER BY created_at, key_id",
                &[&tenant.as_str()],
            )?;
            rows.iter().map(api_key_from_pg).collect()
        })
    }

    fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> StoreResult<bool> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            let changed = tx.execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
                &[&tenant.as_str(), &key_id, &Timestamp::now().millis()],
            )?;
            tx.execute(
                "DELETE FROM console_sessions WHERE tenant_id = $1 AND key_id = $2",
                &[&tenant.as_str(), &key_id],
            )?;
            if changed > 0 {
                self.notify(&mut tx, &Change::Keys { tenant: tenant.clone() })?;
            }
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    fn create_console_session(&self, session: &ConsoleSessionRecord) -> StoreResult<()> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "DELETE FROM console_sessions WHERE tenant_id = $1 AND expires_at <= $2",
                &[&session.tenant_id.as_str(), &Timestamp::now().millis()],
            )?;
            tx.execute(
                "INSERT INTO console_sessions (session_id, token_hash, tenant_id, key_id, form_token, user_agent,
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &session.session_id,
                    &session.token_hash,
                    &session.tenant_id.as_str(),
                    &session.key_id,
                    &session.form_token,
                    &session.user_agent,
                    &session.created_at.millis(),
                    &session.expires_at.millis(),
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn console_session(&self, token_hash: &str) -> StoreResult<Option<ConsoleSessionRecord>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT session_id, token_hash, tenant_id, key_id, form_token, user_agent, created_at, expires_at
                 FROM console_sessions WHERE token_hash = $1 AND expires_at > $2",
                &[&token_hash, &Timestamp::now().millis()],
            )?;
            row.as_ref().map(console_session_from_pg).transpose()
        })
    }

    fn console_sessions(&self, tenant: &TenantId) -> StoreResult<Vec<ConsoleSessionRecord>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT session_id, token_hash, tenant_id, key_id, form_token, user_agent, created_at, expires_at
                 FROM console_sessions WHERE tenant_id = $1 AND expires_at > $2 ORDER BY created_at DESC, session_id",
                &[&tenant.as_str(), &Timestamp::now().millis()],
            )?;
            rows.iter().map(console_session_from_pg).collect()
        })
    }

    fn end_console_session(&self, tenant: &TenantId, session_id: &str) -> StoreResult<bool> {
        self.with_connection(|c| {
            let ended = c.execute(
                "DELETE FROM console_sessions WHERE tenant_id = $1 AND session_id = $2",
                &[&tenant.as_str(), &session_id],
            )?;
            Ok(ended > 0)
        })
    }

    fn upsert_items(&self, tenant: &TenantId, items: &[Item]) -> StoreResult<UpsertCounts> {
        self.with_connection(|c| {
            let existing =
                c.statement("SELECT created_at FROM items WHERE tenant_id = $1 AND item_id = $2 FOR UPDATE")?;
            let upsert = c.statement(
                "INSERT INTO items (tenant_id, item_id, title, category, price_minor, currency, availability,
                                    stock_quantity, created_at, updated_at, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (tenant_id, item_id) DO UPDATE SET
                    title = excluded.title, category = excluded.category, price_minor = excluded.price_minor,
                    currency = excluded.currency, availability = excluded.availability,
                    stock_quantity = excluded.stock_quantity, updated_at = excluded.updated_at, doc = excluded.doc",
            )?;
            let mut tx = c.client.transaction()?;
            let mut counts = UpsertCounts::default();
            for item in items {
                let previous = tx.query_opt(&existing, &[&tenant.as_str(), &item.id.as_str()])?;
                let mut stored = item.clone();
                match previous {
                    Some(row) => {
                        stored.created_at = timestamp(row.get(0))?;
                        counts.updated += 1;
                    }
                    None => counts.created += 1,
                }
                tx.execute(
                    &upsert,
                    &[
                        &tenant.as_str(),
                        &stored.id.as_str(),
                        &stored.title,
                        &category_column(&stored),
                        &stored.price.map(|p| p.minor_units),
                        &stored.price.map(|p| p.currency.to_string()),
                        &stored.availability.as_str(),
                        &stored.stock_quantity,
                        &stored.created_at.millis(),
                        &stored.updated_at.millis(),
                        &to_json(&stored)?,
                    ],
                )?;
            }
            self.notify(&mut tx, &Change::Items { tenant: tenant.clone() })?;
            tx.commit()?;
            Ok(counts)
        })
    }

    fn item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<Option<Item>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT doc FROM items WHERE tenant_id = $1 AND item_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?;
            row.map(|r| read_item(r.get(0))).transpose()
        })
    }

    fn items(&self, tenant: &TenantId, ids: &[ItemId]) -> StoreResult<Vec<Item>> {
        let wanted: Vec<&str> = ids.iter().map(ItemId::as_str).collect();
        self.read(|c| {
            let rows = c.query(
                "SELECT i.doc FROM unnest($2::text[]) WITH ORDINALITY AS w(item_id, n)
                 JOIN items i ON i.tenant_id = $1 AND i.item_id = w.item_id ORDER BY w.n",
                &[&tenant.as_str(), &wanted],
            )?;
            rows.iter().map(|r| read_item(r.get(0))).collect()
        })
    }

    fn list_items(&self, tenant: &TenantId, query: &ItemQuery) -> StoreResult<ItemPage> {
        let search = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(like_pattern);
        let category = query.category.as_deref().filter(|s| !s.is_empty()).map(like_pattern);
        let limit = query.limit.clamp(1, 1_000);
        self.read(|c| {
            let total: i64 = c
                .query_one(
                    "SELECT count(*) FROM items WHERE tenant_id = $1
                       AND ($2::text IS NULL OR item_id ILIKE $2 ESCAPE '\\' OR title ILIKE $2 ESCAPE '\\')
                       AND ($3::text IS NULL OR category ILIKE $3 ESCAPE '\\')",
                    &[&tenant.as_str(), &search, &category],
                )?
                .get(0);
            let rows = c.query(
                "SELECT doc FROM items WHERE tenant_id = $1
                   AND ($2::text IS NULL OR item_id ILIKE $2 ESCAPE '\\' OR title ILIKE $2 ESCAPE '\\')
                   AND ($3::text IS NULL OR category ILIKE $3 ESCAPE '\\')
                   AND ($4::text IS NULL OR item_id > $4) ORDER BY item_id LIMIT $5",
                &[&tenant.as_str(), &search, &category, &query.after, &(limit as i64 + 1)],
            )?;
            let items = rows.iter().map(|r| read_item(r.get(0))).collect::<StoreResult<Vec<_>>>()?;
            let (items, next_after) = split_page(items, limit, |i| i.id.to_string());
            Ok(ItemPage { items, total: total as u64, next_after })
        })
    }

    fn all_items(&self, tenant: &TenantId) -> StoreResult<Vec<Item>> {
        self.read(|c| {
            let rows = c.query("SELECT doc FROM items WHERE tenant_id = $1 ORDER BY item_id", &[&tenant.as_str()])?;
            rows.iter().map(|r| read_item(r.get(0))).collect()
        })
    }

    fn delete_item(&self, tenant: &TenantId, id: &ItemId) -> StoreResult<bool> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM items WHERE tenant_id = $1 AND item_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )? > 0;
            tx.execute(
                "DELETE FROM item_embeddings WHERE tenant_id = $1 AND item_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?;
            self.notify(&mut tx, &Change::Items { tenant: tenant.clone() })?;
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn upsert_user(&self, tenant: &TenantId, user: &User) -> StoreResult<User> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            let stored = upsert_user_in(&mut tx, tenant, user)?.0;
            self.notify(&mut tx, &Change::Users { tenant: tenant.clone(), user: Some(user.id.clone()) })?;
            tx.commit()?;
            Ok(stored)
        })
    }

    fn upsert_users(&self, tenant: &TenantId, users: &[User]) -> StoreResult<UpsertCounts> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            let mut counts = UpsertCounts::default();
            for user in users {
                if upsert_user_in(&mut tx, tenant, user)?.1 {
                    counts.created += 1;
                } else {
                    counts.updated += 1;
                }
            }
            self.notify(&mut tx, &Change::Users { tenant: tenant.clone(), user: None })?;
            tx.commit()?;
            Ok(counts)
        })
    }

    fn purge_events(&self, tenant: &TenantId, before: Timestamp, anonymous_only: bool) -> StoreResult<u64> {
        self.with_connection(|c| {
            let daily_statement = c.statement(ADD_DAILY_COUNTS_SQL)?;
            let mut tx = c.client.transaction()?;
            lock_tenants_for_append(&mut tx, &self.schema, [tenant])?;
            let deleted = tx.query(
                "DELETE FROM events WHERE tenant_id = $1 AND ts < $2 AND (NOT $3 OR user_id IS NULL)
                 RETURNING event_type, ts",
                &[&tenant.as_str(), &before.millis(), &anonymous_only],
            )?;
            if !deleted.is_empty() {
                account_deleted_events(&mut tx, &daily_statement, tenant, &deleted)?;
            }
            tx.commit()?;
            Ok(deleted.len() as u64)
        })
    }

    fn erased_users(&self, tenant: &TenantId, ids: &[&UserId]) -> StoreResult<HashSet<UserId>> {
        let names: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        self.read(|c| {
            let rows = c.query(
                "SELECT user_id FROM erased_users WHERE tenant_id = $1 AND user_id = ANY($2)",
                &[&tenant.as_str(), &names],
            )?;
            rows.iter().map(|row| UserId::parse(row.get::<_, String>(0)).map_err(corrupt)).collect()
        })
    }

    fn lift_erasure(&self, tenant: &TenantId, user: &UserId) -> StoreResult<bool> {
        self.with_connection(|c| {
            let lifted = c.execute(
                "DELETE FROM erased_users WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.as_str(), &user.as_str()],
            )?;
            Ok(lifted > 0)
        })
    }

    fn erasures(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.read(|c| {
            let sql = "SELECT user_id, erased_at FROM erased_users WHERE tenant_id = $1 ORDER BY user_id";
            user_times(&c.query(sql, &[&tenant.as_str()])?)
        })
    }

    fn restore_erasure(&self, tenant: &TenantId, user: &UserId, erased_at: Timestamp) -> StoreResult<()> {
        self.with_connection(|c| {
            c.execute(
                "INSERT INTO erased_users (tenant_id, user_id, erased_at) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, user_id)
                 DO UPDATE SET erased_at = greatest(erased_users.erased_at, excluded.erased_at)",
                &[&tenant.as_str(), &user.as_str(), &erased_at.millis()],
            )?;
            Ok(())
        })
    }

    fn token_revocations(&self, tenant: &TenantId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.read(|c| {
            let sql =
                "SELECT user_id, revoked_before FROM user_token_revocations WHERE tenant_id = $1 ORDER BY user_id";
            user_times(&c.query(sql, &[&tenant.as_str()])?)
        })
    }

    fn revoke_user_tokens(&self, tenant: &TenantId, user: &UserId, before: Timestamp) -> StoreResult<()> {
        self.with_connection(|c| {
            c.execute(REVOKE_TOKENS_SQL, &[&tenant.as_str(), &user.as_str(), &before.millis()])?;
            Ok(())
        })
    }

    fn user_tokens_revoked_before(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Option<Timestamp>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT revoked_before FROM user_token_revocations WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.as_str(), &user.as_str()],
            )?;
            row.map(|row| timestamp(row.get(0))).transpose()
        })
    }

    fn record_consent(&self, tenant: &TenantId, user: &UserId, statements: &[ConsentStatement]) -> StoreResult<User> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            // A new customer's default profile first, so that concurrent statements queue on its row lock.
            let blank = user_with_consent(user, None, &[])?;
            tx.execute(
                "INSERT INTO users (tenant_id, user_id, created_at, updated_at, doc) VALUES ($1, $2, $3, $3, $4)
                 ON CONFLICT (tenant_id, user_id) DO NOTHING",
                &[&tenant.as_str(), &user.as_str(), &blank.created_at.millis(), &to_json(&blank)?],
            )?;
            let previous = stored_user_doc(&mut tx, tenant, user)?;
            let stored = user_with_consent(user, previous.as_deref(), statements)?;
            write_user(&mut tx, tenant, &stored)?;
            let docs = statements.iter().map(to_json).collect::<StoreResult<Vec<_>>>()?;
            tx.execute(
                "INSERT INTO consent_statements (tenant_id, user_id, doc)
                 SELECT $1, $2, doc FROM unnest($3::text[]) WITH ORDINALITY AS s(doc, n) ORDER BY n",
                &[&tenant.as_str(), &user.as_str(), &docs],
            )?;
            self.notify(&mut tx, &Change::Users { tenant: tenant.clone(), user: Some(user.clone()) })?;
            tx.commit()?;
            Ok(stored)
        })
    }

    fn consent_history(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<ConsentStatement>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM consent_statements WHERE tenant_id = $1 AND user_id = $2 ORDER BY id",
                &[&tenant.as_str(), &user.as_str()],
            )?;
            rows.iter().map(|row| read_consent_statement(row.get(0))).collect()
        })
    }

    fn record_visitor_consent(
        &self,
        tenant: &TenantId,
        visitor: &AnonymousId,
        statements: &[ConsentStatement],
    ) -> StoreResult<()> {
        let docs = statements.iter().map(to_json).collect::<StoreResult<Vec<_>>>()?;
        self.with_connection(|c| {
            c.client.execute(
                "INSERT INTO visitor_consents (tenant_id, anonymous_id, doc)
                 SELECT $1, $2, doc FROM unnest($3::text[]) WITH ORDINALITY AS s(doc, n) ORDER BY n",
                &[&tenant.as_str(), &visitor.as_str(), &docs],
            )?;
            Ok(())
        })
    }

    fn visitor_consent_history(&self, tenant: &TenantId, visitor: &AnonymousId) -> StoreResult<Vec<ConsentStatement>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM visitor_consents WHERE tenant_id = $1 AND anonymous_id = $2 ORDER BY id",
                &[&tenant.as_str(), &visitor.as_str()],
            )?;
            rows.iter().map(|row| read_consent_statement(row.get(0))).collect()
        })
    }

    fn visitor_consent_ledger(&self, tenant: &TenantId) -> StoreResult<Vec<(AnonymousId, ConsentStatement)>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT anonymous_id, doc FROM visitor_consents WHERE tenant_id = $1 ORDER BY id",
                &[&tenant.as_str()],
            )?;
            rows.iter().map(|row| Ok((read_anonymous_id(row.get(0))?, read_consent_statement(row.get(1))?))).collect()
        })
    }

    fn tenant_settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings> {
        self.read(|c| {
            let row = c.query_opt("SELECT doc FROM tenant_settings WHERE tenant_id = $1", &[&tenant.as_str()])?;
            row.map_or(Ok(TenantSettings::default()), |row| read_tenant_settings(row.get(0)))
        })
    }

    fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> StoreResult<()> {
        let doc = to_json(settings)?;
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "INSERT INTO tenant_settings (tenant_id, doc, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                &[&tenant.as_str(), &doc, &Timestamp::now().millis()],
            )?;
            self.notify(&mut tx, &Change::Settings { tenant: tenant.clone() })?;
            tx.commit()?;
            Ok(())
        })
    }

    fn users_withholding(&self, tenant: &TenantId, purpose: &Purpose) -> StoreResult<HashSet<UserId>> {
        // The same expression as the partial indexes of migration 8, so that they serve the query.
        let path = consent_path(purpose)?.replace('.', ",");
        let sql = format!("SELECT user_id FROM users WHERE tenant_id = $1 AND (doc::jsonb #>> '{{{path}}}') = 'false'");
        self.read(|c| {
            let rows = c.client.query(sql.as_str(), &[&tenant.as_str()])?;
            rows.iter().map(|row| UserId::parse(row.get::<_, String>(0)).map_err(corrupt)).collect()
        })
    }

    fn user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<Option<User>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT doc FROM users WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?;
            row.map(|r| read_user(r.get(0))).transpose()
        })
    }

    fn list_users(&self, tenant: &TenantId, query: &UserQuery) -> StoreResult<UserPage> {
        let search = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(like_pattern);
        let limit = query.limit.clamp(1, 1_000);
        self.read(|c| {
            let total: i64 = c
                .query_one(
                    "SELECT count(*) FROM users WHERE tenant_id = $1 AND ($2::text IS NULL OR user_id ILIKE $2 ESCAPE '\\')",
                    &[&tenant.as_str(), &search],
                )?
                .get(0);
            let rows = c.query(
                "SELECT doc FROM users WHERE tenant_id = $1 AND ($2::text IS NULL OR user_id ILIKE $2 ESCAPE '\\')
                   AND ($3::text IS NULL OR user_id > $3) ORDER BY user_id LIMIT $4",
                &[&tenant.as_str(), &search, &query.after, &(limit as i64 + 1)],
            )?;
            let users = rows.iter().map(|r| read_user(r.get(0))).collect::<StoreResult<Vec<_>>>()?;
            let (users, next_after) = split_page(users, limit, |u| u.id.to_string());
            Ok(UserPage { users, total: total as u64, next_after })
        })
    }

    fn delete_user(&self, tenant: &TenantId, id: &UserId) -> StoreResult<DeletedUser> {
        self.with_connection(|c| {
            let daily_statement = c.statement(ADD_DAILY_COUNTS_SQL)?;
            let mut tx = c.client.transaction()?;
            lock_tenants_for_append(&mut tx, &self.schema, [tenant])?;
            let profile = tx.execute(
                "DELETE FROM users WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )? > 0;
            tx.execute(
                "DELETE FROM consent_statements WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?;
            let deleted = tx.query(
                // Both arms, so that each of the shopper's two partial indexes serves one.
                "DELETE FROM events WHERE tenant_id = $1 AND user_id = $2
                   AND (event_type IN ('impression', 'search') OR event_type NOT IN ('impression', 'search'))
                 RETURNING event_type, ts",
                &[&tenant.as_str(), &id.as_str()],
            )?;
            account_deleted_events(&mut tx, &daily_statement, tenant, &deleted)?;
            // A tombstone only for a user who had data: asking to erase an unknown id changes nothing.
            if profile || !deleted.is_empty() {
                let now = Timestamp::now().millis();
                tx.execute(
                    "INSERT INTO erased_users (tenant_id, user_id, erased_at) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET erased_at = excluded.erased_at",
                    &[&tenant.as_str(), &id.as_str(), &now],
                )?;
                tx.execute(REVOKE_TOKENS_SQL, &[&tenant.as_str(), &id.as_str(), &now])?;
            }
            self.notify(&mut tx, &Change::Users { tenant: tenant.clone(), user: Some(id.clone()) })?;
            tx.commit()?;
            Ok(DeletedUser { profile, events: deleted.len() as u64 })
        })
    }

    fn append_events(&self, tenant: &TenantId, events: &[Event]) -> StoreResult<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let rows = events.iter().map(EventRow::new).collect::<StoreResult<Vec<_>>>()?;
        self.appends.append(
            tenant,
            rows,
            || self.committer.lock().expect("committer poisoned"),
            |_, group| self.commit_appends(group),
        )
    }

    fn user_timeline(&self, tenant: &TenantId, user: &UserId, query: &TimelineQuery) -> StoreResult<TimelinePage> {
        let limit = query.limit.clamp(1, 1_000);
        self.read(|c| {
            let rows = c.query(
                // The newest of each of the shopper's two partial indexes, merged.
                "SELECT seq, received_at, payload FROM (
                    (SELECT seq, received_at, payload FROM events
                     WHERE tenant_id = $1 AND user_id = $2 AND event_type NOT IN ('impression', 'search')
                       AND ($3::int8 IS NULL OR seq < $3)
                     ORDER BY seq DESC LIMIT $4)
                    UNION ALL
                    (SELECT seq, received_at, payload FROM events
                     WHERE tenant_id = $1 AND user_id = $2 AND event_type IN ('impression', 'search')
                       AND ($3::int8 IS NULL OR seq < $3)
                     ORDER BY seq DESC LIMIT $4)
                 ) AS page ORDER BY seq DESC LIMIT $4",
                &[&tenant.as_str(), &user.as_str(), &query.before_seq, &(limit as i64 + 1)],
            )?;
            let (events, next_before_seq) = split_page(events_from_rows(&rows)?, limit, |e| e.seq);
            Ok(TimelinePage { events, next_before_seq })
        })
    }

    fn events_after(&self, tenant: &TenantId, after_seq: i64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT seq, received_at, payload FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&tenant.as_str(), &after_seq, &(limit as i64)],
            )?;
            events_from_rows(&rows)
        })
    }

    fn shopper_activity(&self, tenant: &TenantId, shopper: ShopperRef<'_>, limit: usize) -> StoreResult<Arc<[Event]>> {
        let limit = limit as i64;
        let rows = self.read(|c| match shopper {
            ShopperRef::User(user) => c.query(
                "SELECT seq, received_at, payload FROM events
                 WHERE tenant_id = $1 AND user_id = $2 AND event_type NOT IN ('impression', 'search')
                 ORDER BY seq DESC LIMIT $3",
                &[&tenant.as_str(), &user.as_str(), &limit],
            ),
            ShopperRef::Anonymous(anonymous) => c.query(
                "SELECT seq, received_at, payload FROM events
                 WHERE tenant_id = $1 AND anonymous_id = $2 AND user_id IS NULL
                   AND event_type NOT IN ('impression', 'search')
                 ORDER BY seq DESC LIMIT $3",
                &[&tenant.as_str(), &anonymous.as_str(), &limit],
            ),
        })?;
        Ok(events_from_rows(&rows)?.into_iter().map(|e| e.event).collect())
    }

    fn recent_events(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT seq, received_at, payload FROM events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
                &[&tenant.as_str(), &(limit as i64)],
            )?;
            events_from_rows(&rows)
        })
    }

    fn event_by_id(&self, tenant: &TenantId, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT seq, received_at, payload FROM events WHERE tenant_id = $1 AND event_id = $2",
                &[&tenant.as_str(), &event_id],
            )?;
            row.as_ref().map(event_from_row).transpose()
        })
    }

    fn stats(&self, tenant: &TenantId) -> StoreResult<TenantStats> {
        self.read(|c| {
            let counts = c.query_one(
                "SELECT (SELECT count(*) FROM items WHERE tenant_id = $1), (SELECT count(*) FROM users WHERE tenant_id = $1),
                        (SELECT min(ts) FROM events WHERE tenant_id = $1), (SELECT max(ts) FROM events WHERE tenant_id = $1)",
                &[&tenant.as_str()],
            )?;
            let by_type = c.query(
                "SELECT event_type, sum(events)::int8 FROM event_daily_counts WHERE tenant_id = $1
                 GROUP BY event_type HAVING sum(events) > 0",
                &[&tenant.as_str()],
            )?;
            let mut events_by_type = Vec::with_capacity(by_type.len());
            for row in &by_type {
                let name: &str = row.get(0);
                events_by_type.push((EventType::parse(name).map_err(corrupt)?, row.get::<_, i64>(1) as u64));
            }
            events_by_type.sort();
            Ok(TenantStats {
                items: counts.get::<_, i64>(0) as u64,
                users: counts.get::<_, i64>(1) as u64,
                events: events_by_type.iter().map(|(_, n)| n).sum(),
                events_by_type,
                first_event_at: counts.get::<_, Option<i64>>(2).map(timestamp).transpose()?,
                last_event_at: counts.get::<_, Option<i64>>(3).map(timestamp).transpose()?,
            })
        })
    }

    fn events_per_day(&self, tenant: &TenantId) -> StoreResult<Vec<DayCount>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT day, sum(events)::int8 FROM event_daily_counts WHERE tenant_id = $1
                 GROUP BY day HAVING sum(events) > 0 ORDER BY day",
                &[&tenant.as_str()],
            )?;
            rows.iter()
                .map(|r| {
                    let day: i64 = r.get(0);
                    Ok(DayCount { day: timestamp(day * DAY_MILLIS)?.day(), events: r.get::<_, i64>(1) as u64 })
                })
                .collect()
        })
    }

    fn upsert_item_embeddings(&self, tenant: &TenantId, model: &str, embeddings: &[ItemEmbedding]) -> StoreResult<()> {
        let items: Vec<&str> = embeddings.iter().map(|e| e.item_id.as_str()).collect();
        let hashes: Vec<i64> = embeddings.iter().map(|e| e.content_hash as i64).collect();
        let vectors: Vec<Vec<u8>> = embeddings.iter().map(|e| vector_bytes(&e.vector)).collect();
        self.with_connection(|c| {
            c.execute(
                "INSERT INTO item_embeddings (tenant_id, model, item_id, content_hash, vector)
                 SELECT $1, $2, i, h, v FROM unnest($3::text[], $4::int8[], $5::bytea[]) AS x(i, h, v)
                 ON CONFLICT (tenant_id, model, item_id)
                 DO UPDATE SET content_hash = excluded.content_hash, vector = excluded.vector",
                &[&tenant.as_str(), &model, &items, &hashes, &vectors],
            )?;
            Ok(())
        })
    }

    fn item_embeddings(&self, tenant: &TenantId, model: &str) -> StoreResult<Vec<ItemEmbedding>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT item_id, content_hash, vector FROM item_embeddings
                 WHERE tenant_id = $1 AND model = $2 ORDER BY item_id",
                &[&tenant.as_str(), &model],
            )?;
            rows.iter()
                .map(|r| {
                    let item: &str = r.get(0);
                    Ok(ItemEmbedding {
                        vector: vector_from_bytes(item, r.get(2))?,
                        item_id: ItemId::parse(item).map_err(corrupt)?,
                        content_hash: r.get::<_, i64>(1) as u64,
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
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key(&[&self.schema, "models", tenant.as_str(), kind])],
            )?;
            let version: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) + 1 FROM model_snapshots WHERE tenant_id = $1 AND kind = $2",
                    &[&tenant.as_str(), &kind],
                )?
                .get(0);
            tx.execute(
                "INSERT INTO model_snapshots (tenant_id, kind, version, created_at, events_through_seq, metrics, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&tenant.as_str(), &kind, &version, &created_at.millis(), &events_through_seq, &metrics, &payload],
            )?;
            tx.execute(
                "DELETE FROM model_snapshots WHERE tenant_id = $1 AND kind = $2 AND version <= $3",
                &[&tenant.as_str(), &kind, &(version - crate::MODEL_VERSIONS_KEPT as i64)],
            )?;
            tx.execute("DELETE FROM model_pins WHERE tenant_id = $1 AND kind = $2", &[&tenant.as_str(), &kind])?;
            self.notify(&mut tx, &Change::Model { tenant: tenant.clone(), kind: kind.to_string(), version })?;
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
        self.read(|c| {
            let rows = c.query(
                "SELECT version, created_at, events_through_seq, metrics, octet_length(payload)::int8 FROM model_snapshots
                 WHERE tenant_id = $1 AND kind = $2 ORDER BY version DESC",
                &[&tenant.as_str(), &kind],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(ModelSnapshotInfo {
                        kind: kind.to_string(),
                        version: r.get(0),
                        created_at: timestamp(r.get(1))?,
                        events_through_seq: r.get(2),
                        metrics: r.get(3),
                        payload_bytes: r.get::<_, i64>(4) as u64,
                    })
                })
                .collect()
        })
    }

    fn model_snapshot_payload(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<Option<Vec<u8>>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT payload FROM model_snapshots WHERE tenant_id = $1 AND kind = $2 AND version = $3",
                &[&tenant.as_str(), &kind, &version],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn pin_model_version(&self, tenant: &TenantId, kind: &str, version: i64) -> StoreResult<()> {
        self.with_connection(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "INSERT INTO model_pins (tenant_id, kind, version) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, kind) DO UPDATE SET version = excluded.version",
                &[&tenant.as_str(), &kind, &version],
            )?;
            self.notify(&mut tx, &Change::ModelPinned { tenant: tenant.clone(), kind: kind.to_string(), version })?;
            tx.commit()?;
            Ok(())
        })
    }

    fn pinned_model_version(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<i64>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT version FROM model_pins WHERE tenant_id = $1 AND kind = $2",
                &[&tenant.as_str(), &kind],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.with_connection(|c| c.query_one("SELECT 1", &[]).map(|_| ()))
    }

    fn change_feed(&self) -> StoreResult<Option<Box<dyn ChangeFeed>>> {
        Ok(Some(Box::new(PgChangeFeed {
            config: self.config.clone(),
            channel: self.channel.clone(),
            client: None,
            missed: false,
        })))
    }

    fn lock_task(&self, tenant: &TenantId, kind: &str) -> StoreResult<Option<Box<dyn TaskLease>>> {
        let key = lock_key(&[&self.schema, "task", tenant.as_str(), kind]);
        // Session advisory locks are re-entrant within one session, so this process's own holders are
        // tracked here: a second lease on the same task must be refused like one from another process.
        let Some(local) = self.local_leases.try_take(tenant, kind) else {
            return Ok(None);
        };
        let mut client = self.config.connect(NoTls)?;
        let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?.get(0);
        Ok(locked.then(|| Box::new(PgTaskLease { client, _local: local }) as Box<dyn TaskLease>))
    }

    fn task_slot_done(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<bool> {
        self.read(|c| {
            Ok(c.query_opt(
                "SELECT 1 FROM task_slots WHERE tenant_id = $1 AND kind = $2 AND slot = $3",
                &[&tenant.as_str(), &kind, &slot],
            )?
            .is_some())
        })
    }

    fn finish_task_slot(&self, tenant: &TenantId, kind: &str, slot: i64) -> StoreResult<()> {
        self.with_connection(|c| {
            c.execute(
                "INSERT INTO task_slots (tenant_id, kind, slot, finished_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&tenant.as_str(), &kind, &slot, &Timestamp::now().millis()],
            )?;
            Ok(())
        })
    }

    fn restore_events(&self, tenant: &TenantId, events: &[StoredEvent]) -> StoreResult<AppendOutcome> {
        let rows = events.iter().map(|e| EventRow::new(&e.event)).collect::<StoreResult<Vec<_>>>()?;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let received: Vec<i64> = events.iter().map(|e| e.received_at.millis()).collect();
        let _committer = self.committer.lock().expect("committer poisoned");
        self.with_connection(|c| {
            let statements = EventStatements::prepare(c)?;
            let mut tx = c.client.transaction()?;
            lock_tenants_for_append(&mut tx, &self.schema, [tenant])?;
            let refs: Vec<&EventRow> = rows.iter().collect();
            let mut inserted = insert_events(&mut tx, &statements, tenant, &refs, 0, Some((&seqs, &received)))?;
            let outcome = outcome_of(&rows, &mut inserted, &HashSet::new());
            // New appends must number after everything restored.
            tx.execute(
                "SELECT setval('event_seq', m) FROM (SELECT max(seq) AS m FROM events WHERE tenant_id = $1) AS x
                 WHERE m > (SELECT last_value FROM event_seq)",
                &[&tenant.as_str()],
            )?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn model_kinds(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT DISTINCT kind FROM model_snapshots WHERE tenant_id = $1 ORDER BY kind",
                &[&tenant.as_str()],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn embedding_models(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT DISTINCT model FROM item_embeddings WHERE tenant_id = $1 ORDER BY model",
                &[&tenant.as_str()],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn restore_model_snapshot(&self, tenant: &TenantId, info: &ModelSnapshotInfo, payload: &[u8]) -> StoreResult<bool> {
        self.with_connection(|c| {
            let inserted = c.execute(
                "INSERT INTO model_snapshots (tenant_id, kind, version, created_at, events_through_seq, metrics, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &tenant.as_str(),
                    &info.kind,
                    &info.version,
                    &info.created_at.millis(),
                    &info.events_through_seq,
                    &info.metrics,
                    &payload,
                ],
            )?;
            Ok(inserted > 0)
        })
    }
}

/// A task lease: the session advisory lock lives as long as its connection.
struct PgTaskLease {
    client: Client,
    _local: LocalLease,
}

impl TaskLease for PgTaskLease {
    fn still_held(&mut self) -> bool {
        !self.client.is_closed() && self.client.simple_query("").is_ok()
    }
}

/// `LISTEN` on a connection of its own, reconnecting after a failure.
struct PgChangeFeed {
    config: postgres::Config,
    channel: String,
    client: Option<Client>,
    /// The connection was lost: notifications sent meanwhile were missed.
    missed: bool,
}

impl ChangeFeed for PgChangeFeed {
    fn next_change(&mut self, timeout: Duration) -> StoreResult<Option<Change>> {
        let Some(client) = self.client.as_mut().filter(|c| !c.is_closed()) else {
            let mut client = self.config.connect(NoTls)?;
            client.batch_execute(&format!("LISTEN {}", quote_identifier(&self.channel)))?;
            self.client = Some(client);
            return Ok(std::mem::take(&mut self.missed).then_some(Change::Resync));
        };
        let received = client.notifications().timeout_iter(timeout).next();
        match received {
            Ok(Some(notification)) => match serde_json::from_str(notification.payload()) {
                Ok(change) => Ok(Some(change)),
                Err(error) => {
                    tracing::warn!(%error, payload = notification.payload(), "unreadable change notification");
                    Ok(Some(Change::Resync))
                }
            },
            Ok(None) => Ok(None),
            Err(error) => {
                self.client = None;
                self.missed = true;
                Err(error.into())
            }
        }
    }
}
