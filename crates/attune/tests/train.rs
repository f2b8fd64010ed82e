//! `attune train` on a tenant with too little data: it says so, with the figures and the minimums, exits with
//! an error, and stores no model version.

mod process;

use attune_core::TenantId;
use attune_store::{SqliteOptions, SqliteStore, Store};
use std::process::Command;

#[test]
fn training_on_too_little_data_says_so_and_stores_nothing() {
    let directory = tempfile::tempdir().unwrap();
    process::create_key(directory.path(), "acme");
    let output = Command::new(process::BINARY)
        .args(["train", "--data-dir", directory.path().to_str().unwrap(), "--tenant", "acme"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("tenant `acme`: not enough data to train: item interactions: 0 (training needs 50)"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    let store = SqliteStore::open(directory.path().join("attune.sqlite3"), SqliteOptions::default()).unwrap();
    let tenant = TenantId::parse_slug("acme").unwrap();
    assert!(store.model_snapshots(&tenant, "recs").unwrap().is_empty());
}
