//! Schema migrations, applied in order and recorded in SQLite's `user_version`. Never edit a shipped
//! migration; append a new one.

use crate::StoreResult;
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: tenants, keys, catalog, users, events.
    "CREATE TABLE tenants (
        tenant_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        user_token_secret BLOB NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
    CREATE TABLE items (
        tenant_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        title TEXT NOT NULL,
        category TEXT NOT NULL,
        price_minor INTEGER,
        currency TEXT,
        availability TEXT NOT NULL,
        stock_quantity INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant_id, item_id)
    ) WITHOUT ROWID;
    CREATE TABLE users (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        user_id TEXT,
        anonymous_id TEXT,
        session_id TEXT,
        ts INTEGER NOT NULL,
        channel TEXT NOT NULL,
        store_id TEXT,
        item_id TEXT,
        received_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (tenant_id, event_id)
    );
    CREATE INDEX events_by_user ON events (tenant_id, user_id, seq) WHERE user_id IS NOT NULL;
    CREATE INDEX events_by_anonymous ON events (tenant_id, anonymous_id, seq) WHERE anonymous_id IS NOT NULL;
    CREATE INDEX events_by_time ON events (tenant_id, ts);
    CREATE TABLE event_daily_counts (
        tenant_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, day, event_type)
    ) WITHOUT ROWID;",
    // 2: item embeddings (semantic search, content-based recommendations) and model snapshots.
    "CREATE TABLE item_embeddings (
        tenant_id TEXT NOT NULL,
        model TEXT NOT NULL,
        item_id TEXT NOT NULL,
        content_hash INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (tenant_id, model, item_id)
    ) WITHOUT ROWID;
    CREATE TABLE model_snapshots (
        tenant_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        events_through_seq INTEGER NOT NULL,
        metrics TEXT NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (tenant_id, kind, version)
    );",
    // 3: a shopper's own activity without what the shop showed them: every served list and query adds an
    // impression or search event, so on the full per-shopper indexes a regular shopper's few dozen actions sit
    // among thousands of such rows, each of which a recent-activity read would have to fetch and skip. The
    // full anonymous index served only that read, so it goes (the full user index still serves timelines and
    // erasure).
    "CREATE INDEX events_activity_by_user ON events (tenant_id, user_id, seq)
        WHERE user_id IS NOT NULL AND event_type NOT IN ('impression', 'search');
    CREATE INDEX events_activity_by_anonymous ON events (tenant_id, anonymous_id, seq)
        WHERE anonymous_id IS NOT NULL AND user_id IS NULL AND event_type NOT IN ('impression', 'search');
    DROP INDEX events_by_anonymous;",
    // 4: a per-tenant generation that every deletion of events bumps in its own transaction. Events are
    // otherwise only appended (with sequence numbers never reused), so a shopper's newest sequence number and
    // this generation tell whether a copy of their recent activity read earlier is still exact.
    "CREATE TABLE event_deletions (
        tenant_id TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 5: which scheduled task intervals have run, so that of several processes sharing the work each interval
    // runs once per tenant and kind.
    "CREATE TABLE task_slots (
        tenant_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        slot INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, kind, slot)
    ) WITHOUT ROWID;",
    // 6: a model version chosen to serve instead of the newest (a roll-back), until the next one is saved.
    "CREATE TABLE model_pins (
        tenant_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, kind)
    ) WITHOUT ROWID;",
    // 7: each customer's consent ledger, in the order the statements were made.
    "CREATE TABLE consent_statements (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX consent_statements_by_user ON consent_statements (tenant_id, user_id, id);",
    // 8: erased users, whose events are refused until the shop registers them again, and the moment before
    // which a user's tokens are refused.
    "CREATE TABLE erased_users (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        erased_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE user_token_revocations (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        revoked_before INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;",
    // 9: console sign-ins kept on the server.
    "CREATE TABLE console_sessions (
        session_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        form_token TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX console_sessions_by_tenant ON console_sessions (tenant_id, created_at);",
    // 10: a tenant's own settings, and anonymous visitors' consent ledgers.
    "CREATE TABLE tenant_settings (
        tenant_id TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE visitor_consents (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        anonymous_id TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX visitor_consents_by_visitor ON visitor_consents (tenant_id, anonymous_id, id);",
    // 11: the users who withhold each built-in purpose, so analytics and marketing find them without reading
    // every profile.
    "CREATE INDEX users_withholding_personalization ON users (tenant_id)
        WHERE json_extract(doc, '$.consent.personalization') = 0;
    CREATE INDEX users_withholding_marketing ON users (tenant_id) WHERE json_extract(doc, '$.consent.marketing') = 0;
    CREATE INDEX users_withholding_analytics ON users (tenant_id) WHERE json_extract(doc, '$.consent.analytics') = 0;",
    // 12: a tenant's log in sequence order, so reading it in chunks (training, the change feed, live counts) and
    // its newest events walk an index instead of sorting every event of the tenant per chunk.
    "CREATE INDEX events_by_tenant ON events (tenant_id, seq);",
];

pub(super) fn apply(connection: &mut Connection) -> StoreResult<()> {
    let current: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied store migration");
    }
    Ok(())
}
