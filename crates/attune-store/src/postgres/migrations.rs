//! PostgreSQL schema migrations, applied in order and recorded in `attune_migrations`. Every replica calls
//! [`apply`] at start-up; a session advisory lock makes the first one run them while the others wait, then
//! find nothing left to do. Never edit a shipped migration; append a new one.
//!
//! Identifier columns use the `C` collation so that ordering and keyset paging match the SQLite backend
//! byte for byte. Times are milliseconds since the epoch, as in SQLite.

use crate::StoreResult;
use postgres::Client;

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite backend has after its fifth migration, in one step.
    r#"CREATE TABLE tenants (
        tenant_id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        user_token_secret BYTEA NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id),
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
    CREATE TABLE items (
        tenant_id TEXT COLLATE "C" NOT NULL,
        item_id TEXT COLLATE "C" NOT NULL,
        title TEXT NOT NULL,
        category TEXT NOT NULL,
        price_minor BIGINT,
        currency TEXT,
        availability TEXT NOT NULL,
        stock_quantity BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant_id, item_id)
    );
    CREATE TABLE users (
        tenant_id TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE SEQUENCE event_seq;
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
        tenant_id TEXT COLLATE "C" NOT NULL,
        event_id TEXT COLLATE "C" NOT NULL,
        event_type TEXT NOT NULL,
        user_id TEXT COLLATE "C",
        anonymous_id TEXT COLLATE "C",
        session_id TEXT,
        ts BIGINT NOT NULL,
        channel TEXT NOT NULL,
        store_id TEXT,
        item_id TEXT,
        received_at BIGINT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (tenant_id, event_id)
    );
    ALTER SEQUENCE event_seq OWNED BY events.seq;
    CREATE INDEX events_by_tenant ON events (tenant_id, seq);
    CREATE INDEX events_by_user ON events (tenant_id, user_id, seq) WHERE user_id IS NOT NULL;
    CREATE INDEX events_by_time ON events (tenant_id, ts);
    CREATE INDEX events_activity_by_user ON events (tenant_id, user_id, seq)
        WHERE user_id IS NOT NULL AND event_type NOT IN ('impression', 'search');
    CREATE INDEX events_activity_by_anonymous ON events (tenant_id, anonymous_id, seq)
        WHERE anonymous_id IS NOT NULL AND user_id IS NULL AND event_type NOT IN ('impression', 'search');
    CREATE TABLE event_daily_counts (
        tenant_id TEXT COLLATE "C" NOT NULL,
        day BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        events BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, day, event_type)
    );
    CREATE TABLE event_deletions (
        tenant_id TEXT COLLATE "C" PRIMARY KEY,
        generation BIGINT NOT NULL
    );
    CREATE TABLE item_embeddings (
        tenant_id TEXT COLLATE "C" NOT NULL,
        model TEXT COLLATE "C" NOT NULL,
        item_id TEXT COLLATE "C" NOT NULL,
        content_hash BIGINT NOT NULL,
        vector BYTEA NOT NULL,
        PRIMARY KEY (tenant_id, model, item_id)
    );
    CREATE TABLE model_snapshots (
        tenant_id TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        events_through_seq BIGINT NOT NULL,
        metrics TEXT NOT NULL,
        payload BYTEA NOT NULL,
        PRIMARY KEY (tenant_id, kind, version)
    );
    CREATE TABLE task_slots (
        tenant_id TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        slot BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, kind, slot)
    );"#,
    // 2: a model version chosen to serve instead of the newest (a roll-back), until the next one is saved.
    r#"CREATE TABLE model_pins (
        tenant_id TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, kind)
    );"#,
    // 3: fewer index entries per appended event. Every read names its tenant, so the primary key leads with it
    // and replaces the separate tenant index; a shopper's events are indexed once, in one of two disjoint partial
    // indexes (behaviour, and impressions with searches), instead of once in all and again in the first.
    r#"ALTER TABLE events DROP CONSTRAINT events_pkey;
    DROP INDEX events_by_tenant;
    ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, seq);
    DROP INDEX events_by_user;
    CREATE INDEX events_signals_by_user ON events (tenant_id, user_id, seq)
        WHERE user_id IS NOT NULL AND event_type IN ('impression', 'search');"#,
    // 4: each customer's consent ledger, in the order the statements were made.
    r#"CREATE TABLE consent_statements (
        id BIGSERIAL PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX consent_statements_by_user ON consent_statements (tenant_id, user_id, id);"#,
    // 5: erased users, whose events are refused until the shop registers them again, and the moment before
    // which a user's tokens are refused.
    r#"CREATE TABLE erased_users (
        tenant_id TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        erased_at BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE TABLE user_token_revocations (
        tenant_id TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        revoked_before BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );"#,
    // 6: console sign-ins kept on the server.
    r#"CREATE TABLE console_sessions (
        session_id TEXT COLLATE "C" PRIMARY KEY,
        token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
        tenant_id TEXT COLLATE "C" NOT NULL,
        key_id TEXT COLLATE "C" NOT NULL,
        form_token TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX console_sessions_by_tenant ON console_sessions (tenant_id, created_at);"#,
    // 7: a tenant's own settings, and anonymous visitors' consent ledgers.
    r#"CREATE TABLE tenant_settings (
        tenant_id TEXT COLLATE "C" PRIMARY KEY,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE visitor_consents (
        id BIGSERIAL PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL,
        anonymous_id TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX visitor_consents_by_visitor ON visitor_consents (tenant_id, anonymous_id, id);"#,
    // 8: the users who withhold each built-in purpose, so analytics and marketing find them without reading
    // every profile.
    r#"CREATE INDEX users_withholding_personalization ON users (tenant_id)
        WHERE (doc::jsonb #>> '{consent,personalization}') = 'false';
    CREATE INDEX users_withholding_marketing ON users (tenant_id) WHERE (doc::jsonb #>> '{consent,marketing}') = 'false';
    CREATE INDEX users_withholding_analytics ON users (tenant_id) WHERE (doc::jsonb #>> '{consent,analytics}') = 'false';"#,
];

/// Brings the schema up to date; `lock_key` is the advisory lock that serializes replicas doing the same.
pub(super) fn apply(client: &mut Client, lock_key: i64) -> StoreResult<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&lock_key])?;
    let outcome = apply_locked(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&lock_key]);
    outcome?;
    unlocked?;
    Ok(())
}

fn apply_locked(client: &mut Client) -> StoreResult<()> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS attune_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let current: i32 = client.query_one("SELECT coalesce(max(version), 0) FROM attune_migrations", &[])?.get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i32 + 1;
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO attune_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &attune_core::Timestamp::now().millis()],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied postgresql store migration");
    }
    Ok(())
}
