//! Several servers on one PostgreSQL database, as replicas behind a load balancer: what one does the others see
//! within a second (a revoked key, a new item, a new model version, a roll-back), training runs in one of them
//! at a time, and a database outage answers `503 store_unavailable` with `Retry-After`, loses nothing
//! acknowledged, and heals by itself. Always on PostgreSQL (`ATTUNE_TEST_DATABASE_URL`), whatever `ATTUNE_TEST_BACKEND` says.

mod harness;

use attune_core::{ApiKeyKind, TenantId};
use attune_engine::EngineConfig;
use attune_server::ServerOptions;
use attune_store::{PostgresOptions, PostgresStore, Store, test_database_url};
use harness::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scratch schema and a second store on it, as a second replica opens it.
fn two_stores() -> (Arc<dyn Store>, Arc<dyn Store>, String) {
    let first = PostgresStore::scratch(&test_database_url()).expect("PostgreSQL at ATTUNE_TEST_DATABASE_URL");
    let schema = first.schema().to_string();
    let options = PostgresOptions { schema: Some(schema.clone()), ..PostgresOptions::default() };
    let second = PostgresStore::connect(&test_database_url(), options).unwrap();
    (Arc::new(first), Arc::new(second), schema)
}

fn replica(store: Arc<dyn Store>) -> Server {
    Server::launch(tempfile::tempdir().unwrap(), store, ServerOptions::default(), EngineConfig::default())
}

/// Views and purchases of 40 shoppers over 20 items: enough for training.
fn trainable_events(prefix: &str) -> Value {
    let events: Vec<Value> = (0..40)
        .flat_map(|shopper| {
            (0..4).map(move |k| {
                let item = format!("item-{}", (shopper + k * 3) % 20);
                json!({"type": "view", "event_id": format!("{prefix}-{shopper}-{k}"), "user_id": format!("s{shopper}"),
                       "item_id": item, "dwell_ms": 3000})
            })
        })
        .collect();
    json!({ "events": events })
}

fn items() -> Value {
    let items: Vec<Value> =
        (0..20).map(|i| json!({"id": format!("item-{i}"), "title": format!("Candle number {i}"), "price": "5.00", "currency": "GBP"})).collect();
    json!({ "items": items })
}

fn send(server: &Server, key: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = server.client.request(method, server.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

/// Polls `check` every 20 ms until it holds; how long that took, or a failure after `within`.
fn within(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not seen within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn replicas_see_each_others_keys_items_and_models_within_a_second() {
    let (store_a, store_b, _schema) = two_stores();
    let tenant = harness::tenant(store_a.as_ref(), "shop", "Shop");
    let key = harness::key(store_a.as_ref(), &tenant, ApiKeyKind::Secret, "backend");
    let doomed = harness::key(store_a.as_ref(), &tenant, ApiKeyKind::Secret, "doomed");
    let (a, b) = (replica(store_a), replica(store_b));
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    assert_eq!(send(&a, &key, post.clone(), "/v1/items", Some(&items())).0, StatusCode::OK);
    assert_eq!(send(&a, &key, post.clone(), "/v1/events/batch", Some(&trainable_events("e"))).0, StatusCode::OK);

    // A key used on B (and so cached there) and then revoked through A stops working on B within a second.
    assert_eq!(send(&b, &doomed, get.clone(), "/v1/stats", None).0, StatusCode::OK);
    let key_id = doomed.split('_').nth(1).unwrap().to_string();
    assert_eq!(send(&a, &key, reqwest::Method::DELETE, &format!("/v1/keys/{key_id}"), None).0, StatusCode::NO_CONTENT);
    let took = within(Duration::from_secs(1), "revocation on the other replica", || {
        send(&b, &doomed, get.clone(), "/v1/stats", None).0 == StatusCode::UNAUTHORIZED
    });
    eprintln!("revocation seen by the other replica after {took:?}");

    // Training on A: B serves the new version within a second of A storing it.
    let served_version = |server: &Server| -> i64 {
        let body = json!({"scenario": "for_you", "user_id": "s1", "count": 5, "log_impression": false});
        let (status, list) = send(server, &key, post.clone(), "/v1/recommendations", Some(&body));
        assert_eq!(status, StatusCode::OK, "{list}");
        list["model_version"].as_i64().unwrap()
    };
    let first = served_version(&b);
    assert!(first >= 1, "the first request trained and stored version {first}");
    assert_eq!(served_version(&a), first, "A loads the version B stored instead of training its own");
    let (status, started) = send(&a, &key, post.clone(), "/v1/tasks", Some(&json!({"kind": "train_recs"})));
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let task = started["task"]["id"].as_str().unwrap().to_string();
    within(Duration::from_secs(60), "the training on A", || {
        send(&a, &key, get.clone(), &format!("/v1/tasks/{task}"), None).1["status"] == "succeeded"
    });
    let took = within(Duration::from_secs(1), "the new version on B", || served_version(&b) == first + 1);
    eprintln!("new model version served by the other replica after {took:?} (from the end of the task)");

    // A roll-back on A: B serves the old version within a second too.
    let path = format!("/v1/models/recs/{first}/activate");
    assert_eq!(send(&a, &key, post.clone(), &path, None).0, StatusCode::OK);
    let took = within(Duration::from_secs(1), "the roll-back on B", || served_version(&b) == first);
    eprintln!("roll-back served by the other replica after {took:?}");

    // A new item added through A is found by B's search within a second.
    let item = json!({"title": "Zanzibar lantern", "price": "9.00", "currency": "GBP"});
    assert_eq!(send(&a, &key, reqwest::Method::PUT, "/v1/items/lantern", Some(&item)).0, StatusCode::OK);
    let took = within(Duration::from_secs(1), "the new item in the other replica's search", || {
        let (status, found) = send(&b, &key, get.clone(), "/v1/search?q=zanzibar&dry_run=true", None);
        status == StatusCode::OK
            && found["hits"].as_array().is_some_and(|hits| hits.iter().any(|h| h["item_id"] == "lantern"))
    });
    eprintln!("new item searchable on the other replica after {took:?}");
}

#[test]
fn an_erasure_through_one_replica_takes_the_users_searches_out_of_the_others_suggestions() {
    let (store_a, store_b, _schema) = two_stores();
    let tenant = harness::tenant(store_a.as_ref(), "shop", "Shop");
    let key = harness::key(store_a.as_ref(), &tenant, ApiKeyKind::Secret, "backend");
    let (a, b) = (replica(store_a), replica(store_b));
    let get = reqwest::Method::GET;
    assert_eq!(send(&a, &key, reqwest::Method::POST, "/v1/items", Some(&items())).0, StatusCode::OK);
    for shopper in ["s1", "s2", "s3", "s4", "s5"] {
        let (status, _) = send(&b, &key, get.clone(), &format!("/v1/search?q=candle%20number&user_id={shopper}"), None);
        assert_eq!(status, StatusCode::OK);
    }
    let suggested = |server: &Server| {
        let (_, found) = send(server, &key, get.clone(), "/v1/search/autocomplete?q=candle%20n", None);
        found["suggestions"].as_array().unwrap().iter().any(|s| s["source"] == "query")
    };
    assert!(suggested(&b), "five shoppers searched it on B");
    // s5's search must have been written before it can be erased with the rest of their data.
    within(Duration::from_secs(5), "the searches stored", || {
        a.store.stats(&tenant).unwrap().events_by_type.iter().any(|(_, n)| *n >= 5)
    });
    assert_eq!(send(&a, &key, reqwest::Method::DELETE, "/v1/users/s5", None).0, StatusCode::OK);
    let took = within(Duration::from_secs(1), "the erasure in the other replica's suggestions", || !suggested(&b));
    eprintln!("erased shopper's search left the other replica's suggestions after {took:?}");
}

#[test]
fn a_training_runs_in_one_replica_at_a_time() {
    let (store_a, store_b, _schema) = two_stores();
    let tenant = harness::tenant(store_a.as_ref(), "shop", "Shop");
    let key = harness::key(store_a.as_ref(), &tenant, ApiKeyKind::Secret, "backend");
    let lease = store_b.lock_task(&tenant, "train_recs").unwrap().expect("free");
    let a = replica(store_a.clone());
    assert_eq!(
        send(&a, &key, reqwest::Method::POST, "/v1/events/batch", Some(&trainable_events("t"))).0,
        StatusCode::OK
    );
    let (status, started) = send(&a, &key, reqwest::Method::POST, "/v1/tasks", Some(&json!({"kind": "train_recs"})));
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = started["task"]["id"].as_str().unwrap().to_string();
    let mut record = Value::Null;
    within(Duration::from_secs(10), "the task's end", || {
        record = send(&a, &key, reqwest::Method::GET, &format!("/v1/tasks/{task}"), None).1;
        record["status"] != "running"
    });
    assert_eq!(record["summary"], "skipped: another process is running this task", "{record}");
    assert!(store_a.model_snapshots(&tenant, "recs").unwrap().is_empty(), "nothing trained while B held the lease");
    drop(lease);
    let (_, again) = send(&a, &key, reqwest::Method::POST, "/v1/tasks", Some(&json!({"kind": "train_recs"})));
    let task = again["task"]["id"].as_str().unwrap().to_string();
    within(Duration::from_secs(60), "the training", || {
        send(&a, &key, reqwest::Method::GET, &format!("/v1/tasks/{task}"), None).1["status"] == "succeeded"
    });
    assert_eq!(store_a.model_snapshots(&tenant, "recs").unwrap().len(), 1);
}

/// A TCP forwarder to PostgreSQL that can be cut (every connection closed, new ones refused) and restored.
struct Outage {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Outage {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::<TcpStream>::new())));
        let (upstream, cut_flag, streams) = (upstream.to_string(), cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut_flag.load(Ordering::Acquire) {
                    continue; // dropped: the connection is refused
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let mut open = streams.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_database_outage_answers_503_loses_nothing_acknowledged_and_heals() {
    let direct = PostgresStore::scratch(&test_database_url()).unwrap();
    let url = test_database_url();
    let host_port = url.rsplit('@').next().unwrap().split('/').next().unwrap().to_string();
    let outage = Outage::start(&host_port);
    let proxied = url.replace(&host_port, &format!("127.0.0.1:{}", outage.port));
    let options = PostgresOptions {
        schema: Some(direct.schema().to_string()),
        connect_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&proxied, options).unwrap());
    let tenant: TenantId = harness::tenant(store.as_ref(), "shop", "Shop");
    let key = harness::key(store.as_ref(), &tenant, ApiKeyKind::Secret, "backend");
    let server = replica(store);
    let event = |id: &str| json!({"type": "view", "event_id": id, "user_id": "u", "item_id": "i"});
    let post_event =
        |id: &str| server.client.post(server.url("/v1/events")).bearer_auth(&key).json(&event(id)).send().unwrap();
    within(Duration::from_secs(10), "readiness", || {
        server.client.get(server.url("/readyz")).send().unwrap().status() == StatusCode::OK
    });
    assert_eq!(post_event("before").status(), StatusCode::OK);

    outage.cut();
    let refused = post_event("during");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().unwrap();
    assert_eq!(body["code"], "store_unavailable", "{body}");
    let ready = server.client.get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.client.get(server.url("/healthz")).send().unwrap().status(), StatusCode::OK, "still alive");

    outage.restore();
    let took = within(Duration::from_secs(10), "recovery", || post_event("after").status() == StatusCode::OK);
    eprintln!("served again {took:?} after the database came back");
    let stored: Vec<String> =
        direct.events_after(&tenant, 0, 100).unwrap().into_iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(stored, ["before", "after"], "what was acknowledged is kept; what was refused is not claimed");
}
