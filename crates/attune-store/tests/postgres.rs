//! The PostgreSQL backend against the store conformance suite, plus what only a shared database shows:
//! several stores on one schema see each other's changes and share task leases. Each check gets a schema of
//! its own, dropped afterwards.

use attune_core::{ApiKeyKind, Tenant, TenantId, Timestamp};
use attune_store::{ApiKeyRecord, Change, PostgresOptions, PostgresStore, Store, test_database_url};
use std::time::{Duration, Instant};

fn fresh_store() -> PostgresStore {
    PostgresStore::scratch(&test_database_url()).unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is needed for these tests: {error}. Start it, or set ATTUNE_TEST_DATABASE_URL to a database \
             the tests may create schemas in."
        )
    })
}

attune_store::conformance_tests!(fresh_store);

/// A second store on the schema of `first`, as another replica would open it.
fn replica_of(first: &PostgresStore) -> PostgresStore {
    let options = PostgresOptions { schema: Some(first.schema().to_string()), ..PostgresOptions::default() };
    PostgresStore::connect(&test_database_url(), options).unwrap()
}

#[test]
fn a_key_revoked_through_another_replica_is_announced_within_a_second() {
    let first = fresh_store();
    let second = replica_of(&first);
    let tenant = TenantId::parse_slug("shop").unwrap();
    first.create_tenant(&Tenant { id: tenant.clone(), name: "S".into(), created_at: Timestamp::now() }, b"s").unwrap();
    let mut feed = first.change_feed().unwrap().expect("postgresql has a change feed");
    assert_eq!(feed.next_change(Duration::from_millis(50)).unwrap(), None, "connecting announces nothing");
    let key = ApiKeyRecord {
        key_id: "k1".into(),
        tenant_id: tenant.clone(),
        kind: ApiKeyKind::Secret,
        label: "backend".into(),
        secret_hash: "h".into(),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    second.insert_api_key(&key).unwrap();
    assert_eq!(feed.next_change(Duration::from_secs(1)).unwrap(), Some(Change::Keys { tenant: tenant.clone() }));
    let revoked_at = Instant::now();
    assert!(second.revoke_api_key(&tenant, "k1").unwrap());
    assert_eq!(feed.next_change(Duration::from_secs(1)).unwrap(), Some(Change::Keys { tenant: tenant.clone() }));
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    let version = second.save_model_snapshot(&tenant, "recs", 0, "{}", b"m").unwrap().version;
    let expected = Change::Model { tenant: tenant.clone(), kind: "recs".into(), version };
    assert_eq!(feed.next_change(Duration::from_secs(1)).unwrap(), Some(expected));
}

#[test]
fn a_task_lease_is_exclusive_across_replicas_and_freed_when_its_holder_goes() {
    let first = fresh_store();
    let second = replica_of(&first);
    let tenant = TenantId::parse_slug("shop").unwrap();
    let lease = first.lock_task(&tenant, "train_recs").unwrap().expect("free");
    assert!(second.lock_task(&tenant, "train_recs").unwrap().is_none(), "held by the other replica");
    drop(lease);
    assert!(second.lock_task(&tenant, "train_recs").unwrap().is_some());
}

#[test]
fn the_change_feed_reconnects_and_asks_for_a_resync_after_its_connection_is_killed() {
    let store = fresh_store();
    let mut feed = store.change_feed().unwrap().unwrap();
    assert_eq!(feed.next_change(Duration::from_millis(10)).unwrap(), None);
    let killed = terminate_backends(&store, "LISTEN");
    assert!(killed >= 1, "the feed's connection was found and terminated");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut saw_resync = false;
    while Instant::now() < deadline && !saw_resync {
        saw_resync = matches!(feed.next_change(Duration::from_millis(100)), Ok(Some(Change::Resync)));
    }
    assert!(saw_resync, "a lost feed must tell its reader to read everything again");
}

#[test]
fn reads_survive_terminated_connections() {
    let store = fresh_store();
    let tenant = TenantId::parse_slug("shop").unwrap();
    store.create_tenant(&Tenant { id: tenant.clone(), name: "S".into(), created_at: Timestamp::now() }, b"s").unwrap();
    assert!(terminate_backends(&store, "") >= 1);
    // The pooled connections are gone; a read retries on a fresh one.
    assert!(store.tenant(&tenant).unwrap().is_some());
}

/// Terminates the connections of `store` whose last query contains `query_like`.
fn terminate_backends(store: &PostgresStore, query_like: &str) -> u64 {
    let mut client = postgres::Client::connect(&test_database_url(), postgres::NoTls).unwrap();
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'attune/' || $2
               AND query LIKE '%' || $1 || '%'",
            &[&query_like, &store.schema()],
        )
        .unwrap();
    rows.len() as u64
}
