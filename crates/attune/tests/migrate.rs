//! `attune migrate` moves the demo shop from SQLite to PostgreSQL: run twice (the second run copies nothing and
//! still verifies), after which a server on each store shows the same console counts, the same storefront and
//! the same recommendations and search results, and the key created before the move works on both; a consent
//! ledger and an erasure move too.
//!
//! Needs the PostgreSQL of `ATTUNE_TEST_DATABASE_URL` (default: the local server); the test works in a schema of
//! its own and drops it.

mod process;

use attune_core::{ConsentSource, ConsentStatement, Purpose, TenantId, Timestamp, UserId};
use attune_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store, test_database_url};
use process::Served;
use std::process::Command;

fn attune(args: &[&str]) -> String {
    let output = Command::new(process::BINARY).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "attune {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// `path` answered by `server` as text, with `key` as the bearer and signed in to the console with it.
fn get(server: &Served, path: &str, key: &str) -> String {
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.post(format!("{}/console/login", server.base)).form(&[("key", key)]).send().unwrap();
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with("attune_console=")))
        .expect("a console session")
        .to_string();
    let response =
        http.get(format!("{}{path}", server.base)).bearer_auth(key).header("cookie", session).send().unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.text().unwrap()
}

fn recommend(server: &Served, key: &str, body: serde_json::Value) -> Vec<String> {
    let http = reqwest::blocking::Client::new();
    let response =
        http.post(format!("{}/v1/recommendations", server.base)).bearer_auth(key).json(&body).send().unwrap();
    assert!(response.status().is_success(), "{body}: {}", response.status());
    let list: serde_json::Value = response.json().unwrap();
    list["items"].as_array().unwrap().iter().map(|i| i["item_id"].as_str().unwrap().to_string()).collect()
}

/// The `data-value` of each stat card of the console overview.
fn stat_values(overview: &str) -> Vec<(String, String)> {
    overview
        .match_indices("id=\"stat-")
        .map(|(at, _)| {
            let rest = &overview[at + 4..];
            let id = rest[..rest.find('"').unwrap()].to_string();
            let value = rest.split("data-value=\"").nth(1).unwrap();
            (id, value[..value.find('"').unwrap()].to_string())
        })
        .collect()
}

/// Links to product pages, in page order.
fn product_links(page: &str) -> Vec<&str> {
    page.match_indices("href=\"/shop/products/")
        .map(|(at, _)| &page[at + 6..][..page[at + 6..].find('"').unwrap()])
        .collect()
}

#[test]
fn the_demo_moved_to_postgresql_shows_the_same_counts_and_recommendations() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().to_str().unwrap();
    attune(&["demo", "--data-dir", data_dir, "--log", "warn"]);
    let key = process::create_key(directory.path(), "demo");
    attune(&["train", "--data-dir", data_dir, "--tenant", "demo", "--log", "warn"]);
    // A consent statement and an erasure, which must move too.
    {
        let source = SqliteStore::open(directory.path().join("attune.sqlite3"), SqliteOptions::default()).unwrap();
        let demo = TenantId::parse_slug("demo").unwrap();
        let statement = ConsentStatement {
            purpose: Purpose::Marketing,
            granted: true,
            source: ConsentSource::Import,
            policy_version: Some("v1".into()),
            recorded_at: Timestamp::now(),
        };
        source.record_consent(&demo, &UserId::parse("13047").unwrap(), std::slice::from_ref(&statement)).unwrap();
        let visitor = attune_core::AnonymousId::parse("browser-1").unwrap();
        source.record_visitor_consent(&demo, &visitor, &[statement]).unwrap();
        let settings = attune_core::TenantSettings { retention_days: Some(730), ..Default::default() };
        source.put_tenant_settings(&demo, &settings).unwrap();
        assert!(source.delete_user(&demo, &UserId::parse("12346").unwrap()).unwrap().events > 0);
    }

    let url = test_database_url();
    let target =
        PostgresStore::scratch(&url).unwrap_or_else(|e| panic!("PostgreSQL at {url} (ATTUNE_TEST_DATABASE_URL): {e}"));
    let schema = target.schema().to_string();
    let migrate = ["migrate", "--from", data_dir, "--to", &url, "--database-schema", &schema, "--log", "warn"];
    let first = attune(&migrate);
    assert!(first.starts_with("demo: "), "{first}");
    assert!(first.contains("1 model versions"), "the trained model moves too: {first}");
    let again = attune(&migrate);
    assert!(again.contains("(0 copied now)"), "a second run copies nothing: {again}");
    assert_eq!(first.replace(|c: char| c.is_ascii_digit(), ""), again.replace(|c: char| c.is_ascii_digit(), ""));

    let quiet = ["--train-interval-minutes", "0", "--forecast-interval-minutes", "0", "--model-dir", "/nonexistent"];
    let on_sqlite = Served::start(directory.path(), &[&["--demo"][..], &quiet].concat());
    let postgres_flags: Vec<&str> = ["--demo", "--database-url", url.as_str(), "--database-schema", schema.as_str()]
        .into_iter()
        .chain(quiet)
        .collect();
    let on_postgres = Served::start(directory.path(), &postgres_flags);

    let overview = (get(&on_sqlite, "/console", &key), get(&on_postgres, "/console", &key));
    let counts = stat_values(&overview.0);
    assert!(counts.len() >= 3 && counts.iter().any(|(id, n)| id == "stat-items" && n != "0"), "{counts:?}");
    assert_eq!(counts, stat_values(&overview.1), "the console shows the same counts");
    assert_eq!(get(&on_sqlite, "/v1/stats", &key), get(&on_postgres, "/v1/stats", &key));

    let shop = (get(&on_sqlite, "/shop", &key), get(&on_postgres, "/shop", &key));
    assert!(!product_links(&shop.0).is_empty());
    assert_eq!(product_links(&shop.0), product_links(&shop.1), "the storefront shows the same products");

    for user in ["17850", "13047", "12583"] {
        let body = serde_json::json!({"scenario": "for_you", "user_id": user, "count": 10, "log_impression": false});
        let picks = recommend(&on_sqlite, &key, body.clone());
        assert_eq!(picks.len(), 10, "user {user}");
        assert_eq!(picks, recommend(&on_postgres, &key, body), "the same picks for {user}");
    }
    let similar = serde_json::json!({"scenario": "similar", "item_id": "85123A", "count": 10, "log_impression": false});
    assert_eq!(recommend(&on_sqlite, &key, similar.clone()), recommend(&on_postgres, &key, similar));
    let search = "/v1/search?q=heart%20holder&limit=10&dry_run=true";
    let hits = |page: String| -> Vec<String> {
        let found: serde_json::Value = serde_json::from_str(&page).unwrap();
        found["hits"].as_array().unwrap().iter().map(|h| h["item_id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(hits(get(&on_sqlite, search, &key)), hits(get(&on_postgres, search, &key)));
    let ledger = "/v1/users/13047/consents";
    assert!(get(&on_sqlite, ledger, &key).contains("\"import\""));
    assert_eq!(get(&on_sqlite, ledger, &key), get(&on_postgres, ledger, &key), "the consent ledger moved");
    let erased = PostgresStore::connect(&url, PostgresOptions { schema: Some(schema.clone()), ..Default::default() })
        .unwrap()
        .erasures(&TenantId::parse_slug("demo").unwrap())
        .unwrap();
    assert_eq!(erased.len(), 1, "the erasure moved: {erased:?}");
    let visitors = "/v1/visitors/browser-1/consents";
    assert!(get(&on_sqlite, visitors, &key).contains("\"chosen\":true"));
    assert_eq!(get(&on_sqlite, visitors, &key), get(&on_postgres, visitors, &key), "the visitor's ledger moved");
    assert_eq!(get(&on_sqlite, "/v1/settings", &key), get(&on_postgres, "/v1/settings", &key), "the settings moved");
    assert!(get(&on_postgres, "/v1/settings", &key).contains("\"retention_days\":730"));
}
