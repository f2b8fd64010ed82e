//! The SQLite backend against the store conformance suite, plus SQLite-specific checks.

use attune_store::{SqliteOptions, SqliteStore};

fn fresh_store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.keep().join("attune.sqlite3");
    SqliteStore::open(path, SqliteOptions::default()).expect("open store")
}

attune_store::conformance_tests!(fresh_store);

#[test]
fn reopening_keeps_data_and_schema() {
    use attune_core::{Tenant, TenantId, Timestamp};
    use attune_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attune.sqlite3");
    let id = TenantId::parse_slug("alpha").unwrap();
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store.create_tenant(&Tenant { id: id.clone(), name: "A".into(), created_at: Timestamp::now() }, b"s").unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(store.tenant(&id).unwrap().is_some());
}
