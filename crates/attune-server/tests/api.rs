//! The HTTP API against a real server on a loopback port with a temporary store: every endpoint, auth
//! and tenant isolation, idempotent retries, and bad input that must be refused without half-writes.

mod harness;

use attune_core::{ApiKeyKind, TenantId};
use attune_engine::EngineConfig;
use attune_server::ServerOptions;
use harness::Server;
use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

struct TestServer {
    server: Server,
    /// Tenant `alpha`: secret and public keys.
    alpha_secret: String,
    alpha_public: String,
    /// Tenant `beta`: a secret key.
    beta_secret: String,
}

impl std::ops::Deref for TestServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl TestServer {
    fn start() -> Self {
        Self::start_with(ServerOptions { max_body_bytes: 4 * 1024 * 1024, ..Default::default() })
    }

    fn start_with(options: ServerOptions) -> Self {
        let (directory, store) = harness::store(true);
        let alpha = harness::tenant(store.as_ref(), "alpha", "Alpha");
        let beta = harness::tenant(store.as_ref(), "beta", "Beta");
        let alpha_secret = harness::key(store.as_ref(), &alpha, ApiKeyKind::Secret, "test");
        let alpha_public = harness::key(store.as_ref(), &alpha, ApiKeyKind::Public, "web");
        let beta_secret = harness::key(store.as_ref(), &beta, ApiKeyKind::Secret, "test");
        let server = Server::launch(directory, store, options, EngineConfig::default());
        Self { server, alpha_secret, alpha_public, beta_secret }
    }

    fn get(&self, key: &str, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(key)
    }
    fn post(&self, key: &str, path: &str, body: &Value) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).bearer_auth(key).json(body)
    }
    fn put(&self, key: &str, path: &str, body: &Value) -> RequestBuilder {
        self.client.put(format!("{}{path}", self.base)).bearer_auth(key).json(body)
    }
    fn delete(&self, key: &str, path: &str) -> RequestBuilder {
        self.client.delete(format!("{}{path}", self.base)).bearer_auth(key)
    }
    fn raw_post(&self, key: &str, path: &str, body: Vec<u8>) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
    }

    fn alpha_events(&self) -> u64 {
        self.store.stats(&TenantId::parse_slug("alpha").unwrap()).unwrap().events
    }
}

/// Send, check the status, and return the JSON body.
fn expect(request: RequestBuilder, status: StatusCode) -> Value {
    let response: Response = request.send().expect("request sent");
    let actual = response.status();
    let text = response.text().unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }
}

fn expect_error(request: RequestBuilder, status: StatusCode, code: &str) -> Value {
    let body = expect(request, status);
    assert_eq!(body["code"], code, "unexpected error body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    body
}

fn view(event_id: &str, user: &str, item: &str) -> Value {
    json!({"type": "view", "event_id": event_id, "user_id": user, "item_id": item, "dwell_ms": 3000,
           "session_id": "s1", "timestamp": "2024-05-01T10:00:00Z", "channel": "web"})
}

fn purchase(event_id: &str, user: &str) -> Value {
    json!({"type": "purchase", "event_id": event_id, "user_id": user, "order_id": format!("o-{event_id}"),
           "currency": "GBP", "timestamp": "2024-05-02T10:00:00Z", "channel": "store", "store_id": "leeds-1",
           "lines": [{"item_id": "85123A", "quantity": 6, "unit_price": "2.55"}, {"item_id": "71053", "quantity": 1, "unit_price": 3.39}]})
}

#[test]
fn items_can_be_upserted_read_listed_and_deleted() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let item = json!({"title": "White hanging heart t-light holder", "price": "2.55", "currency": "GBP",
        "category_path": ["Home", "Candles"], "attributes": {"color": "white", "material": "metal"},
        "stock_quantity": 12, "brand": "Alpha Home"});
    let created = expect(server.put(key, "/v1/items/85123A", &item), StatusCode::OK);
    assert_eq!(created["created"], true);
    assert_eq!(created["item"]["price"], json!({"amount": "2.55", "currency": "GBP"}));
    let updated = expect(
        server.put(key, "/v1/items/85123A", &json!({"title": "Heart holder", "stock_quantity": 0})),
        StatusCode::OK,
    );
    assert_eq!(updated["created"], false);
    assert_eq!(updated["item"]["availability"], "out_of_stock");
    assert_eq!(updated["item"]["created_at"], created["item"]["created_at"], "created_at survives an update");

    let batch: Vec<Value> =
        (0..120).map(|i| json!({"id": format!("sku-{i:04}"), "title": format!("Mug {i}")})).collect();
    let counts = expect(server.post(key, "/v1/items", &json!({"items": batch})), StatusCode::OK);
    assert_eq!(counts, json!({"created": 120, "updated": 0}));

    let page = expect(server.get(key, "/v1/items?limit=50"), StatusCode::OK);
    assert_eq!(page["total"], 121);
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    let after = page["next_after"].as_str().unwrap().to_string();
    let next = expect(server.get(key, &format!("/v1/items?limit=50&after={after}")), StatusCode::OK);
    assert!(next["items"][0]["id"].as_str().unwrap() > after.as_str());
    let search = expect(server.get(key, "/v1/items?q=mug%2011"), StatusCode::OK);
    assert_eq!(search["total"], 11, "Mug 11 and Mug 110..=119");

    assert_eq!(expect(server.get(key, "/v1/items/85123A"), StatusCode::OK)["title"], "Heart holder");
    expect(server.delete(key, "/v1/items/85123A"), StatusCode::NO_CONTENT);
    expect_error(server.get(key, "/v1/items/85123A"), StatusCode::NOT_FOUND, "not_found");
    expect_error(server.delete(key, "/v1/items/85123A"), StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn users_can_be_upserted_read_listed_and_deleted_with_their_events() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let user = expect(
        server.put(
            key,
            "/v1/users/17850",
            &json!({"traits": {"country": "United Kingdom", "vip": true}, "consent": {"marketing": true}}),
        ),
        StatusCode::OK,
    );
    assert_eq!(user["consent"], json!({"personalization": true, "marketing": true, "analytics": true}));
    assert_eq!(expect(server.get(key, "/v1/users/17850"), StatusCode::OK)["traits"]["country"], "United Kingdom");
    assert_eq!(expect(server.get(key, "/v1/users?q=178"), StatusCode::OK)["total"], 1);
    expect(
        server.post(key, "/v1/events/batch", &json!({"events": [view("e1", "17850", "a"), purchase("p1", "17850")]})),
        StatusCode::OK,
    );
    let deleted = expect(server.delete(key, "/v1/users/17850"), StatusCode::OK);
    assert_eq!(
        deleted,
        json!({"profile_deleted": true, "events_deleted": 2,
               "recommendation_model": {"state": "no_model", "version": null, "factor_models_retrained_by": null}})
    );
    expect_error(server.get(key, "/v1/users/17850"), StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.alpha_events(), 0);
}

#[test]
fn events_are_accepted_and_shown_on_the_timeline_across_channels() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let accepted = expect(server.post(key, "/v1/events", &view("e1", "17850", "85123A")), StatusCode::OK);
    assert_eq!(accepted, json!({"event_id": "e1", "duplicate": false}));
    let generated = expect(
        server.post(
            key,
            "/v1/events",
            &json!({"type": "wishlist", "user_id": "17850", "item_id": "x", "channel": "app"}),
        ),
        StatusCode::OK,
    );
    assert!(generated["event_id"].as_str().unwrap().len() >= 32, "an id is generated when none is given");
    expect(server.post(key, "/v1/events", &purchase("p1", "17850")), StatusCode::OK);
    let others = json!({"events": [
        {"type": "search", "event_id": "s1", "anonymous_id": "anon-1", "query": "heart", "result_ids": ["85123A"]},
        {"type": "impression", "event_id": "i1", "user_id": "17850", "recommendation_id": "r1", "item_ids": ["a", "b"]},
        {"type": "click", "event_id": "c1", "user_id": "17850", "item_id": "a", "recommendation_id": "r1", "position": 0},
        {"type": "add_to_cart", "event_id": "ac1", "user_id": "17850", "item_id": "a", "quantity": 2, "channel": "kiosk"},
        {"type": "remove_from_cart", "event_id": "rc1", "user_id": "17850", "item_id": "a"},
        {"type": "return", "event_id": "rt1", "user_id": "17850", "currency": "GBP", "channel": "call_center",
         "lines": [{"item_id": "85123A", "quantity": 1, "unit_price": "2.55"}]},
        {"type": "rating", "event_id": "rt2", "user_id": "17850", "item_id": "a", "rating": 4.5},
        {"type": "not_interested", "event_id": "ni1", "user_id": "17850", "item_id": "b"}
    ]});
    let batch = expect(server.post(key, "/v1/events/batch", &others), StatusCode::OK);
    assert_eq!(batch["accepted"], 8);
    let timeline = expect(server.get(key, "/v1/users/17850/timeline?limit=5"), StatusCode::OK);
    let events = timeline["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["event"]["type"], "not_interested", "newest first");
    let rest = expect(
        server.get(key, &format!("/v1/users/17850/timeline?before={}", timeline["next_before"])),
        StatusCode::OK,
    );
    let channels: std::collections::BTreeSet<String> = events
        .iter()
        .chain(rest["events"].as_array().unwrap())
        .map(|e| e["event"]["channel"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(channels.into_iter().collect::<Vec<_>>(), ["app", "call_center", "kiosk", "store", "web"]);
    let purchase = rest["events"].as_array().unwrap().iter().find(|e| e["event"]["type"] == "purchase").unwrap();
    assert_eq!(purchase["event"]["store_id"], "leeds-1");
    assert_eq!(purchase["event"]["lines"][1]["unit_price"], "3.39");
    let stats = expect(server.get(key, "/v1/stats"), StatusCode::OK);
    assert_eq!(stats["events"], 11);
    assert!(stats["events_per_day"].as_array().unwrap().len() >= 2);
}

#[test]
fn retried_events_and_batches_are_stored_once() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let batch = json!({"events": (0..50).map(|i| view(&format!("e{i}"), "u1", "a")).collect::<Vec<_>>()});
    assert_eq!(expect(server.post(key, "/v1/events/batch", &batch), StatusCode::OK)["accepted"], 50);
    let retry = expect(server.post(key, "/v1/events/batch", &batch), StatusCode::OK);
    assert_eq!((retry["accepted"].clone(), retry["duplicates"].clone()), (json!(0), json!(50)));
    let single = expect(server.post(key, "/v1/events", &view("e7", "u1", "a")), StatusCode::OK);
    assert_eq!(single["duplicate"], true);
    assert_eq!(server.alpha_events(), 50);
}

#[test]
fn requests_without_a_valid_key_are_refused() {
    let server = TestServer::start();
    expect_error(server.client.get(format!("{}/v1/stats", server.base)), StatusCode::UNAUTHORIZED, "unauthenticated");
    expect_error(server.get("sk_nope_0000", "/v1/stats"), StatusCode::UNAUTHORIZED, "unauthenticated");
    expect_error(
        server.client.get(format!("{}/v1/stats", server.base)).header("authorization", "Basic abc"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // A key revoked through the API stops working at once.
    let created = expect(
        server.post(&server.alpha_secret, "/v1/keys", &json!({"kind": "secret", "label": "temp"})),
        StatusCode::CREATED,
    );
    let temp = created["key"].as_str().unwrap();
    expect(server.get(temp, "/v1/stats"), StatusCode::OK);
    let keys = expect(server.get(&server.alpha_secret, "/v1/keys"), StatusCode::OK);
    assert_eq!(keys.as_array().unwrap().len(), 3);
    assert!(keys.as_array().unwrap().iter().all(|k| k.get("key").is_none()), "listings never show keys");
    expect(
        server.delete(&server.alpha_secret, &format!("/v1/keys/{}", created["key_id"].as_str().unwrap())),
        StatusCode::NO_CONTENT,
    );
    expect_error(server.get(temp, "/v1/stats"), StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[test]
fn public_keys_only_send_events_and_read_their_own_user() {
    let server = TestServer::start();
    let public = &server.alpha_public;
    // Catalog, users, stats and key management need a secret key.
    expect_error(server.put(public, "/v1/items/a", &json!({"title": "A"})), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.post(public, "/v1/items", &json!({"items": []})), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.get(public, "/v1/items/a"), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.get(public, "/v1/stats"), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.put(public, "/v1/users/u1", &json!({})), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.post(public, "/v1/keys", &json!({"kind": "secret"})), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.post(public, "/v1/user-tokens", &json!({"user_id": "u1"})), StatusCode::FORBIDDEN, "forbidden");
    // Anonymous events are fine without a token; a user's events need that user's token.
    let anonymous = json!({"type": "view", "anonymous_id": "cookie-1", "item_id": "a"});
    expect(server.post(public, "/v1/events", &anonymous), StatusCode::OK);
    expect_error(server.post(public, "/v1/events", &view("v1", "u1", "a")), StatusCode::FORBIDDEN, "forbidden");
    let token = expect(
        server.post(&server.alpha_secret, "/v1/user-tokens", &json!({"user_id": "u1", "ttl_seconds": 600})),
        StatusCode::OK,
    );
    let token = token["token"].as_str().unwrap().to_string();
    let with_token = |request: RequestBuilder| request.header("x-attune-user-token", token.clone());
    expect(with_token(server.post(public, "/v1/events", &view("v1", "u1", "a"))), StatusCode::OK);
    expect_error(
        with_token(server.post(public, "/v1/events", &view("v2", "u2", "a"))),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let mixed = json!({"events": [view("v3", "u1", "a"), view("v4", "u2", "a")]});
    expect_error(with_token(server.post(public, "/v1/events/batch", &mixed)), StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.alpha_events(), 2, "the refused batch stored nothing");
    // Timelines: own user only.
    expect(server.post(&server.alpha_secret, "/v1/events", &view("v5", "u2", "secret-item")), StatusCode::OK);
    let own = expect(with_token(server.get(public, "/v1/users/u1/timeline")), StatusCode::OK);
    assert_eq!(own["events"].as_array().unwrap().len(), 1);
    expect_error(with_token(server.get(public, "/v1/users/u2/timeline")), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.get(public, "/v1/users/u1/timeline"), StatusCode::FORBIDDEN, "forbidden");
    // A forged token is refused.
    let forged = token.replacen(&hex_of("u1"), &hex_of("u2"), 1);
    expect_error(
        server.get(public, "/v1/users/u2/timeline").header("x-attune-user-token", forged),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[test]
fn a_public_key_cannot_claim_backend_event_ids_or_send_orders() {
    let server = TestServer::start();
    let (public, secret) = (&server.alpha_public, &server.alpha_secret);
    // A browser sends an event with the id the backend will give its purchase: it is stored in the public
    // namespace, and the backend's purchase with that id is stored, not dropped as a duplicate.
    let browser =
        json!({"type": "view", "event_id": "order-9001-purchase", "anonymous_id": "cookie-1", "item_id": "a"});
    let stored = expect(server.post(public, "/v1/events", &browser), StatusCode::OK);
    assert_eq!(stored["event_id"], "public:order-9001-purchase");
    let again = expect(server.post(public, "/v1/events", &browser), StatusCode::OK);
    assert_eq!(again["duplicate"], true, "a browser's retry is still a duplicate");
    let backend = expect(server.post(secret, "/v1/events", &purchase("order-9001-purchase", "u1")), StatusCode::OK);
    assert_eq!(backend, json!({"event_id": "order-9001-purchase", "duplicate": false}));
    // The backend may not use the public namespace.
    let claimed = json!({"type": "view", "event_id": "public:x", "anonymous_id": "cookie-1", "item_id": "a"});
    expect_error(server.post(secret, "/v1/events", &claimed), StatusCode::BAD_REQUEST, "reserved_event_id");
    // Orders and returns need a secret key, for anonymous visitors and for a token's own user alike.
    let token = expect(server.post(secret, "/v1/user-tokens", &json!({"user_id": "u1"})), StatusCode::OK);
    let token = token["token"].as_str().unwrap().to_string();
    let anonymous_order = json!({"type": "purchase", "anonymous_id": "cookie-1", "order_id": "o-1", "currency": "GBP",
                                  "lines": [{"item_id": "a", "quantity": 1000, "unit_price": "99999.00"}]});
    expect_error(server.post(public, "/v1/events", &anonymous_order), StatusCode::FORBIDDEN, "forbidden");
    let own_order = server.post(public, "/v1/events", &purchase("p-2", "u1")).header("x-attune-user-token", &token);
    expect_error(own_order, StatusCode::FORBIDDEN, "forbidden");
    let batch = json!({"events": [view("v9", "u1", "a"), purchase("p-3", "u1")]});
    let own_batch = server.post(public, "/v1/events/batch", &batch).header("x-attune-user-token", &token);
    expect_error(own_batch, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.alpha_events(), 2, "the browser's view and the backend's purchase");
}

#[test]
fn consent_changes_are_recorded_with_their_source_and_read_back() {
    let server = TestServer::start();
    let (public, secret) = (&server.alpha_public, &server.alpha_secret);
    // A profile's consent is a ledger statement too; replacing the profile without consent keeps it.
    expect(server.put(secret, "/v1/users/u1", &json!({"consent": {"marketing": true}})), StatusCode::OK);
    let kept = expect(server.put(secret, "/v1/users/u1", &json!({"traits": {"vip": true}})), StatusCode::OK);
    assert_eq!(kept["consent"], json!({"personalization": true, "marketing": true, "analytics": true}));
    // The shopper, in the storefront, with their user token: always recorded as `storefront`.
    let token = expect(server.post(secret, "/v1/user-tokens", &json!({"user_id": "u1"})), StatusCode::OK);
    let token = token["token"].as_str().unwrap().to_string();
    let change = json!({"personalization": false, "source": "api", "policy_version": "2026-01"});
    let ledger = expect(
        server.post(public, "/v1/users/u1/consents", &change).header("x-attune-user-token", &token),
        StatusCode::OK,
    );
    assert_eq!(ledger["consent"], json!({"personalization": false, "marketing": true, "analytics": true}));
    let history = ledger["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{ledger}");
    assert_eq!(
        (&history[0]["purpose"], &history[0]["granted"], &history[0]["source"]),
        (&json!("marketing"), &json!(true), &json!("api"))
    );
    assert_eq!((&history[1]["purpose"], &history[1]["source"]), (&json!("personalization"), &json!("storefront")));
    assert_eq!(history[1]["policy_version"], "2026-01");
    let read =
        expect(server.get(public, "/v1/users/u1/consents").header("x-attune-user-token", &token), StatusCode::OK);
    assert_eq!(read, ledger);
    // Not another shopper's, not without a token; bad changes are refused and change nothing.
    let other = server.post(public, "/v1/users/u2/consents", &change).header("x-attune-user-token", &token);
    expect_error(other, StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.get(public, "/v1/users/u1/consents"), StatusCode::FORBIDDEN, "forbidden");
    expect_error(server.post(secret, "/v1/users/u1/consents", &json!({})), StatusCode::BAD_REQUEST, "empty_change");
    let bad_source = json!({"analytics": false, "source": "rumour"});
    expect_error(server.post(secret, "/v1/users/u1/consents", &bad_source), StatusCode::BAD_REQUEST, "invalid_value");
    let unknown = json!({"analytics": false, "sms": true});
    expect_error(server.post(secret, "/v1/users/u1/consents", &unknown), StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(expect(server.get(secret, "/v1/users/u1/consents"), StatusCode::OK), ledger);
    // A customer without a profile has the defaults and an empty ledger.
    let nobody = expect(server.get(secret, "/v1/users/nobody/consents"), StatusCode::OK);
    assert_eq!(nobody["consent"], json!({"personalization": true, "marketing": false, "analytics": true}));
    assert_eq!(nobody["history"], json!([]));
}

#[test]
fn an_erased_user_stays_erased_until_registered_again() {
    let server = TestServer::start();
    let (public, secret) = (&server.alpha_public, &server.alpha_secret);
    expect(server.put(secret, "/v1/users/u1", &json!({"consent": {"marketing": true}})), StatusCode::OK);
    expect(server.post(secret, "/v1/events", &view("v1", "u1", "a")), StatusCode::OK);
    let token = expect(server.post(secret, "/v1/user-tokens", &json!({"user_id": "u1"})), StatusCode::OK);
    let token = token["token"].as_str().unwrap().to_string();
    expect(server.get(public, "/v1/users/u1/timeline").header("x-attune-user-token", &token), StatusCode::OK);

    let deleted = expect(server.delete(secret, "/v1/users/u1"), StatusCode::OK);
    assert_eq!(
        deleted,
        json!({"profile_deleted": true, "events_deleted": 1,
               "recommendation_model": {"state": "no_model", "version": null, "factor_models_retrained_by": null}})
    );
    // Tokens are revoked, and events naming the user refused, in a batch with the index; nothing is stored.
    let with_token = server.get(public, "/v1/users/u1/timeline").header("x-attune-user-token", &token);
    expect_error(with_token, StatusCode::UNAUTHORIZED, "unauthenticated");
    expect_error(server.post(secret, "/v1/events", &view("v2", "u1", "a")), StatusCode::CONFLICT, "user_erased");
    let batch = json!({"events": [view("v3", "u2", "a"), view("v4", "u1", "a")]});
    let refused = expect_error(server.post(secret, "/v1/events/batch", &batch), StatusCode::CONFLICT, "user_erased");
    assert_eq!(refused["details"][0]["index"], 1, "{refused}");
    assert_eq!(server.alpha_events(), 0);
    let ledger = expect(server.get(secret, "/v1/users/u1/consents"), StatusCode::OK);
    assert_eq!(ledger["history"], json!([]), "the consent ledger went with the profile");
    let while_erased = server.post(secret, "/v1/user-tokens", &json!({"user_id": "u1"}));
    expect_error(while_erased, StatusCode::CONFLICT, "user_erased");
    // The backend registers the user again: events are accepted; old tokens stay revoked, new ones work.
    expect(server.put(secret, "/v1/users/u1", &json!({})), StatusCode::OK);
    expect(server.post(secret, "/v1/events/batch", &batch), StatusCode::OK);
    assert_eq!(server.alpha_events(), 2);
    let old = server.get(public, "/v1/users/u1/timeline").header("x-attune-user-token", &token);
    expect_error(old, StatusCode::UNAUTHORIZED, "unauthenticated");
    std::thread::sleep(std::time::Duration::from_millis(2));
    let fresh = expect(server.post(secret, "/v1/user-tokens", &json!({"user_id": "u1"})), StatusCode::OK);
    let fresh = fresh["token"].as_str().unwrap().to_string();
    expect(server.get(public, "/v1/users/u1/timeline").header("x-attune-user-token", &fresh), StatusCode::OK);
    // Revoked on request (a lost phone): tokens issued until now stop working.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let revoked = expect(server.delete(secret, "/v1/users/u1/tokens"), StatusCode::OK);
    assert_eq!(revoked["user_id"], "u1");
    let after = server.get(public, "/v1/users/u1/timeline").header("x-attune-user-token", &fresh);
    expect_error(after, StatusCode::UNAUTHORIZED, "unauthenticated");
}

/// Whether the server closed `stream` (end of file, or an error such as a reset) within `wait`.
fn closed_within(stream: &mut std::net::TcpStream, wait: std::time::Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0_u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // A `408` or similar before closing: keep reading to the end.
            Ok(_) => continue,
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_and_their_number_is_capped() {
    use std::io::Write;
    use std::time::Duration;
    let server = TestServer::start_with(ServerOptions {
        header_read_timeout: Duration::from_millis(800),
        max_connections: 300,
        ..Default::default()
    });
    let address = server.base.trim_start_matches("http://").to_string();
    // Slowloris: 200 connections that start their headers and never finish them.
    let mut slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            stream
        })
        .collect();
    // Requests are served meanwhile.
    expect(server.get(&server.alpha_secret, "/v1/stats"), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(1_500));
    let open = slow.iter_mut().map(|s| !closed_within(s, Duration::from_millis(50))).filter(|open| *open).count();
    assert_eq!(open, 0, "connections left open past the header timeout");
    // An idle keep-alive connection is closed after the timeout too.
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(closed_within(&mut idle, Duration::from_millis(500)), "an idle keep-alive connection stays open");
    // Beyond the cap, a connection is closed as it arrives, and served again once others have gone.
    let held: Vec<std::net::TcpStream> = (0..300).map(|_| std::net::TcpStream::connect(&address).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(&address).unwrap();
    assert!(closed_within(&mut extra, Duration::from_millis(500)), "a connection beyond the cap was kept");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    expect(server.get(&server.alpha_secret, "/v1/stats"), StatusCode::OK);
    let metrics = server.client.get(format!("{}/metrics", server.base)).send().unwrap().text().unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("attune_connections_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn a_public_key_beyond_its_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with(ServerOptions {
        public_key_rate: attune_server::PublicKeyRate { per_second: 1, burst: 5 },
        ..Default::default()
    });
    let anonymous = json!({"type": "view", "anonymous_id": "cookie-1", "item_id": "a"});
    let statuses: Vec<StatusCode> =
        (0..12).map(|_| server.post(&server.alpha_public, "/v1/events", &anonymous).send().unwrap().status()).collect();
    let served = statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64;
    // The burst, and one more if a second passed while sending (a slow machine).
    assert!((5..=6).contains(&served), "{statuses:?}");
    let limited = server.post(&server.alpha_public, "/v1/events", &anonymous).send().unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry_after, 1);
    let body: Value = limited.json().unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(server.alpha_events(), served, "nothing beyond the rate was stored");
    // The backend's secret key is not limited; after the wait the public key is served again.
    for n in 0..20 {
        expect(server.post(&server.alpha_secret, "/v1/events", &view(&format!("s{n}"), "u1", "a")), StatusCode::OK);
    }
    std::thread::sleep(std::time::Duration::from_secs(retry_after));
    expect(server.post(&server.alpha_public, "/v1/events", &anonymous), StatusCode::OK);
}

#[test]
fn an_export_holds_everything_about_the_customer_and_is_empty_after_erasure() {
    let server = TestServer::start();
    let secret = &server.alpha_secret;
    expect(server.put(secret, "/v1/users/u1", &json!({"traits": {"country": "UK"}})), StatusCode::OK);
    let change = json!({"marketing": true, "policy_version": "2026-01"});
    expect(server.post(secret, "/v1/users/u1/consents", &change), StatusCode::OK);
    expect(server.post(secret, "/v1/events", &view("v1", "u1", "a")), StatusCode::OK);
    expect(server.post(secret, "/v1/events", &purchase("p1", "u1")), StatusCode::OK);
    let search = json!({"type": "search", "event_id": "q1", "user_id": "u1", "query": "blue mug"});
    expect(server.post(secret, "/v1/events", &search), StatusCode::OK);
    expect(server.post(secret, "/v1/events", &view("other", "u2", "a")), StatusCode::OK);

    let export = expect(server.get(secret, "/v1/users/u1/export"), StatusCode::OK);
    assert_eq!(export["user_id"], "u1");
    assert_eq!(export["profile"]["traits"]["country"], "UK", "{export}");
    assert_eq!(export["consent"]["marketing"], true);
    assert_eq!(export["consent_history"][0]["policy_version"], "2026-01");
    let ids: Vec<&str> =
        export["events"].as_array().unwrap().iter().map(|e| e["event"]["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["q1", "p1", "v1"], "every event of theirs, newest first, nobody else's");
    assert_eq!(export["search_history"][0]["query"], "blue mug");
    assert!(export["insights"].is_null() && export["insights_note"].is_string(), "two customers are too few: {export}");
    assert!(export.get("recommendations").is_some() && export["models"].is_array(), "{export}");
    // A public key may not export; after erasure the export holds nothing.
    expect_error(server.get(&server.alpha_public, "/v1/users/u1/export"), StatusCode::FORBIDDEN, "forbidden");
    expect(server.delete(secret, "/v1/users/u1"), StatusCode::OK);
    let empty = expect(server.get(secret, "/v1/users/u1/export"), StatusCode::OK);
    assert!(empty["profile"].is_null(), "{empty}");
    assert_eq!(
        (&empty["events"], &empty["consent_history"], &empty["search_history"]),
        (&json!([]), &json!([]), &json!([]))
    );
}

#[test]
fn the_retention_task_deletes_what_is_older_than_the_policy_keeps() {
    use attune_engine::retention::RetentionPolicy;
    let (directory, store) = harness::store(false);
    let shop = harness::tenant(store.as_ref(), "shop", "Shop");
    let secret = harness::key(store.as_ref(), &shop, ApiKeyKind::Secret, "test");
    let policy = RetentionPolicy { events_days: Some(30), anonymous_days: Some(7) };
    let server = Server::launch(
        directory,
        store,
        ServerOptions::default(),
        EngineConfig { retention: policy, ..Default::default() },
    );
    let days_ago = |days: i64| {
        let at = chrono::Utc::now() - chrono::Duration::days(days);
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let events = json!({"events": [
        {"type": "view", "event_id": "user-new", "user_id": "u1", "item_id": "a", "timestamp": days_ago(1)},
        {"type": "view", "event_id": "user-old", "user_id": "u1", "item_id": "a", "timestamp": days_ago(60)},
        {"type": "view", "event_id": "anon-new", "anonymous_id": "v", "item_id": "a", "timestamp": days_ago(1)},
        {"type": "view", "event_id": "anon-old", "anonymous_id": "v", "item_id": "a", "timestamp": days_ago(10)},
    ]});
    let post =
        |path: &str, body: &Value| server.client.post(format!("{}{path}", server.base)).bearer_auth(&secret).json(body);
    expect(post("/v1/events/batch", &events), StatusCode::OK);
    let started = expect(post("/v1/tasks", &json!({"kind": "retention"})), StatusCode::ACCEPTED);
    let id = started["task"]["id"].as_str().unwrap().to_string();
    let task = loop {
        let task =
            expect(server.client.get(format!("{}/v1/tasks/{id}", server.base)).bearer_auth(&secret), StatusCode::OK);
        if task["status"] != "running" {
            break task;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(task["status"], "succeeded", "{task}");
    let summary = task["summary"].as_str().unwrap();
    assert!(
        summary.contains("1 anonymous visitors' events older than 7 days")
            && summary.contains("1 events older than 30 days"),
        "{summary}"
    );
    let shop_events: Vec<String> =
        server.store.events_after(&shop, 0, 10).unwrap().into_iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(shop_events, ["user-new", "anon-new"]);
    let stats = expect(server.client.get(format!("{}/v1/stats", server.base)).bearer_auth(&secret), StatusCode::OK);
    assert_eq!(stats["events"], 2);
}

#[test]
fn currencies_must_be_iso_4217() {
    let server = TestServer::start();
    let secret = &server.alpha_secret;
    for code in ["XQZ", "ZZZ"] {
        let item = json!({"title": "Mug", "price": "4.50", "currency": code});
        let error =
            expect_error(server.put(secret, "/v1/items/mug", &item), StatusCode::BAD_REQUEST, "invalid_currency");
        assert!(error["message"].as_str().unwrap().contains("ISO 4217"), "{error}");
        let mut order = purchase("p-1", "u1");
        order["currency"] = json!(code);
        expect_error(server.post(secret, "/v1/events", &order), StatusCode::BAD_REQUEST, "invalid_currency");
    }
    expect(
        server.put(secret, "/v1/items/mug", &json!({"title": "Mug", "price": "450", "currency": "JPY"})),
        StatusCode::OK,
    );
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_tenant_never_sees_or_changes_another_tenants_data() {
    let server = TestServer::start();
    let (alpha, beta) = (&server.alpha_secret, &server.beta_secret);
    expect(server.put(alpha, "/v1/items/secret-sku", &json!({"title": "Alpha only"})), StatusCode::OK);
    expect(server.put(alpha, "/v1/users/u1", &json!({"traits": {"name": "Ada"}})), StatusCode::OK);
    expect(server.post(alpha, "/v1/events", &view("e1", "u1", "secret-sku")), StatusCode::OK);
    expect_error(server.get(beta, "/v1/items/secret-sku"), StatusCode::NOT_FOUND, "not_found");
    expect_error(server.delete(beta, "/v1/items/secret-sku"), StatusCode::NOT_FOUND, "not_found");
    expect_error(server.get(beta, "/v1/users/u1"), StatusCode::NOT_FOUND, "not_found");
    expect_error(server.delete(beta, "/v1/users/u1"), StatusCode::NOT_FOUND, "not_found");
    assert_eq!(expect(server.get(beta, "/v1/items"), StatusCode::OK)["total"], 0);
    assert_eq!(expect(server.get(beta, "/v1/users/u1/timeline"), StatusCode::OK)["events"], json!([]));
    assert_eq!(expect(server.get(beta, "/v1/stats"), StatusCode::OK)["events"], 0);
    // Beta writing the same ids creates beta's own rows, leaving alpha's untouched.
    expect(server.put(beta, "/v1/items/secret-sku", &json!({"title": "Beta's"})), StatusCode::OK);
    assert_eq!(expect(server.post(beta, "/v1/events", &view("e1", "u1", "x")), StatusCode::OK)["duplicate"], false);
    assert_eq!(expect(server.get(alpha, "/v1/items/secret-sku"), StatusCode::OK)["title"], "Alpha only");
    let alpha_keys = expect(server.get(alpha, "/v1/keys"), StatusCode::OK);
    let alpha_key_id = alpha_keys[0]["key_id"].as_str().unwrap();
    expect_error(server.delete(beta, &format!("/v1/keys/{alpha_key_id}")), StatusCode::NOT_FOUND, "not_found");
    expect(server.get(alpha, "/v1/stats"), StatusCode::OK);
}

#[test]
fn bad_input_gets_a_json_error_and_writes_nothing() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    expect(server.post(key, "/v1/events", &view("kept", "u1", "a")), StatusCode::OK);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"type\": \"view\",".to_vec(), "invalid_json"),
        (b"".to_vec(), "invalid_json"),
        (b"[1, 2]".to_vec(), "invalid_body"),
        (br#"{"type":"teleport","user_id":"u1"}"#.to_vec(), "unknown_event_type"),
        (br#"{"type":"view","user_id":"u1","item_id":42}"#.to_vec(), "invalid_body"),
        (br#"{"type":"view","user_id":"u1","item_id":"a","colour":"red"}"#.to_vec(), "invalid_body"),
        (br#"{"type":"add_to_cart","user_id":"u1","item_id":"a","quantity":-3}"#.to_vec(), "negative_quantity"),
        (
            br#"{"type":"purchase","user_id":"u1","order_id":"o","currency":"GBP","lines":[{"item_id":"a","quantity":-1,"unit_price":"1"}]}"#
                .to_vec(),
            "negative_quantity",
        ),
        (br#"{"type":"view","item_id":"a"}"#.to_vec(), "missing_subject"),
        (br#"{"type":"view","user_id":"u1","item_id":"a","timestamp":"last tuesday"}"#.to_vec(), "invalid_timestamp"),
        (b"{\"type\":\"view\",\"user_id\":\"u\xff\xfe\",\"item_id\":\"a\"}".to_vec(), "invalid_json"),
    ];
    for (body, code) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let response = server.raw_post(key, "/v1/events", body).send().unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "body {shown}");
        let error: Value = response.json().unwrap();
        assert_eq!(error["code"], code, "body {shown}: {error}");
    }
    let negative_item = json!({"title": "x", "price": "-1.00", "currency": "GBP"});
    expect_error(server.put(key, "/v1/items/a", &negative_item), StatusCode::BAD_REQUEST, "negative_price");
    expect_error(
        server.put(key, "/v1/items/a", &json!({"title": "x", "stock_quantity": -1})),
        StatusCode::BAD_REQUEST,
        "negative_quantity",
    );
    expect_error(
        server.put(key, "/v1/items/a", &json!({"id": "b", "title": "x"})),
        StatusCode::BAD_REQUEST,
        "id_mismatch",
    );
    expect_error(server.get(key, "/v1/items?limit=0"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(server.get(key, "/v1/nothing-here"), StatusCode::NOT_FOUND, "not_found");
    expect_error(
        server.client.patch(format!("{}/v1/stats", server.base)).bearer_auth(key),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // One bad event spoils the whole batch, and the error says which.
    let mut events: Vec<Value> = (0..20).map(|i| view(&format!("b{i}"), "u1", "a")).collect();
    events[13] = json!({"type": "add_to_cart", "event_id": "b13", "user_id": "u1", "item_id": "a", "quantity": -1});
    events[17] = json!({"type": "dance", "user_id": "u1"});
    let error = expect_error(
        server.post(key, "/v1/events/batch", &json!({"events": events})),
        StatusCode::BAD_REQUEST,
        "invalid_batch",
    );
    assert_eq!(error["details"][0]["index"], 13);
    assert_eq!(error["details"][0]["field"], "quantity");
    assert_eq!(error["details"][1]["index"], 17);
    assert_eq!(error["details"][1]["code"], "unknown_event_type");
    let bad_items = json!({"items": [{"id": "ok", "title": "fine"}, {"id": "bad", "title": "x", "price": "abc", "currency": "GBP"}]});
    expect_error(server.post(key, "/v1/items", &bad_items), StatusCode::BAD_REQUEST, "invalid_batch");
    expect_error(server.get(key, "/v1/items/ok"), StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.alpha_events(), 1, "only the first valid event was stored");
}

/// Send only the headers of a POST whose `Content-Length` is `length`, and read the response.
fn declare_oversized_body(server: &TestServer, key: &str, length: usize) -> (String, String) {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(
        socket,
        "POST /v1/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

#[test]
fn oversized_bodies_and_batches_are_refused() {
    let server = TestServer::start_with(ServerOptions {
        max_body_bytes: 64 * 1024,
        max_batch_events: 100,
        ..Default::default()
    });
    let key = &server.alpha_secret;
    // A body declared larger than the limit is refused before it is read. Sent over a raw socket: an
    // HTTP client still writing the 200 KiB body when the 413 arrives could see a broken pipe instead.
    let (status_line, body) = declare_oversized_body(&server, key, 200 * 1024);
    assert!(status_line.contains(" 413 "), "{status_line}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], "payload_too_large", "{body}");
    let events: Vec<Value> = (0..101).map(|i| view(&format!("e{i}"), "u1", "a")).collect();
    expect_error(
        server.post(key, "/v1/events/batch", &json!({"events": events})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
    );
    assert_eq!(server.alpha_events(), 0);
}

#[test]
fn health_metrics_and_openapi_are_served() {
    let server = TestServer::start();
    let health = expect(server.client.get(format!("{}/healthz", server.base)), StatusCode::OK);
    assert_eq!(health["status"], "ok");
    expect(server.post(&server.alpha_secret, "/v1/events", &view("e1", "u", "a")), StatusCode::OK);
    let response = server.client.get(format!("{}/metrics", server.base)).send().unwrap();
    assert!(response.headers().get("x-request-id").is_some(), "every response has a request id");
    // The encoder writes OpenMetrics text (`_total` counters, a closing `# EOF`): the content type says so.
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let metrics = response.text().unwrap();
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(
        metrics.contains(r#"attune_http_requests_total{method="POST",route="/v1/events",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("attune_events_accepted_total 1"), "{metrics}");
    let openapi = expect(server.client.get(format!("{}/v1/openapi.json", server.base)), StatusCode::OK);
    let paths: Vec<&String> = openapi["paths"].as_object().unwrap().keys().collect();
    for expected in [
        "/v1/items",
        "/v1/items/{id}",
        "/v1/users/{id}",
        "/v1/users/{id}/timeline",
        "/v1/events",
        "/v1/events/batch",
        "/v1/stats",
        "/v1/search",
        "/v1/search/autocomplete",
    ] {
        assert!(paths.iter().any(|p| p.as_str() == expected), "openapi lacks {expected}: {paths:?}");
    }
    assert!(openapi["components"]["schemas"]["EventInput"].is_object());
}

#[test]
fn error_and_stats_bodies_keep_their_shape() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let error = expect(
        server.post(key, "/v1/events", &json!({"type": "add_to_cart", "user_id": "u", "item_id": "a", "quantity": -2})),
        StatusCode::BAD_REQUEST,
    );
    insta::assert_json_snapshot!("negative_quantity_error", error);
    expect(
        server.post(key, "/v1/events/batch", &json!({"events": [view("e1", "u", "a"), purchase("p1", "u")]})),
        StatusCode::OK,
    );
    let stats = expect(server.get(key, "/v1/stats"), StatusCode::OK);
    insta::assert_json_snapshot!("stats_after_two_events", stats);
}

#[test]
fn events_outside_the_accepted_time_window_are_rejected_and_nothing_of_their_batch_is_stored() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let mut old = view("e-1990", "u1", "85123A");
    old["timestamp"] = json!("1990-06-01T10:00:00Z");
    let body = expect_error(server.post(key, "/v1/events", &old), StatusCode::BAD_REQUEST, "timestamp_out_of_range");
    assert!(body["message"].as_str().unwrap().contains("accepted window"), "{body}");
    let mut future = purchase("e-2199", "u1");
    future["timestamp"] = json!("2199-06-01T10:00:00Z");
    let batch = json!({"events": [view("e-ok", "u1", "85123A"), future]});
    let body = expect(server.post(key, "/v1/events/batch", &batch), StatusCode::BAD_REQUEST);
    assert_eq!(body["details"][0]["index"], 1, "{body}");
    assert_eq!(body["details"][0]["code"], "timestamp_out_of_range", "{body}");
    assert_eq!(server.alpha_events(), 0, "nothing of the rejected batch is stored");

    let narrow = TestServer::start_with(ServerOptions {
        event_time_window: attune_core::EventTimeWindow { max_age_days: 30, max_ahead_days: 0 },
        ..Default::default()
    });
    let recent = view("e-2024", "u1", "85123A");
    expect_error(
        narrow.post(&narrow.alpha_secret, "/v1/events", &recent),
        StatusCode::BAD_REQUEST,
        "timestamp_out_of_range",
    );
    let mut now = recent.clone();
    now.as_object_mut().unwrap().remove("timestamp");
    expect(narrow.post(&narrow.alpha_secret, "/v1/events", &now), StatusCode::OK);
}

/// A malformed query string or a path id that is not UTF-8 once percent-decoded is answered by the error table
/// (400 `invalid_parameter`, JSON) on every route that reads one, never by the framework's plain-text 400.
#[test]
fn bad_query_strings_and_path_ids_get_json_errors_on_every_route() {
    let server = TestServer::start();
    let key = &server.alpha_secret;
    let url = |path: &str| format!("{}{path}", server.base);
    let client = &server.client;
    let requests = [
        client.get(url("/v1/items?limit=abc")),
        client.get(url("/v1/items?limit=-1")),
        client.get(url("/v1/users?limit=1e3")),
        client.get(url("/v1/users/u1/timeline?before=yesterday")),
        client.get(url("/v1/customers/at-risk?limit=ten")),
        client.get(url("/v1/customers/at-risk?max_p_alive=high")),
        client.get(url("/v1/forecast?horizon=soon")),
        client.get(url("/v1/inventory/reorder?lead_time_days=abc")),
        client.get(url("/v1/items/%FF")),
        client.put(url("/v1/items/%FF")).json(&json!({"title": "x"})),
        client.delete(url("/v1/items/%C3%28")),
        client.get(url("/v1/users/%FF")),
        client.put(url("/v1/users/%FF")).json(&json!({})),
        client.delete(url("/v1/users/%FF")),
        client.get(url("/v1/users/%FF/timeline")),
        client.get(url("/v1/customers/%FF/insights")),
        client.get(url("/v1/tasks/%FF")),
        client.post(url("/v1/models/recs/%FF/activate")),
        client.delete(url("/v1/keys/%FF")),
    ];
    for request in requests {
        let request = request.bearer_auth(key).build().unwrap();
        let shown = format!("{} {}", request.method(), request.url());
        let response = client.execute(request).unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "application/json", "{shown}");
        let error: Value = response.json().unwrap();
        assert_eq!(error["code"], "invalid_parameter", "{shown}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{shown}: {error}");
    }
    // The message says what was wrong.
    let error = expect_error(server.get(key, "/v1/items?limit=abc"), StatusCode::BAD_REQUEST, "invalid_parameter");
    assert!(error["message"].as_str().unwrap().contains("limit"), "{error}");
    let error = expect_error(server.get(key, "/v1/items/%FF"), StatusCode::BAD_REQUEST, "invalid_parameter");
    assert!(error["message"].as_str().unwrap().contains("UTF-8"), "{error}");
}

#[test]
fn anonymous_visitors_follow_the_shops_default_until_they_choose() {
    let server = TestServer::start();
    let events: Vec<Value> = (0..6).map(|n| view(&format!("v{n}"), &format!("u{n}"), "85123A")).collect();
    expect(server.post(&server.alpha_secret, "/v1/events/batch", &json!({"events": events})), StatusCode::OK);
    let list = |visitor: &str| {
        let body = json!({"scenario": "trending", "anonymous_id": visitor});
        expect(server.post(&server.alpha_public, "/v1/recommendations", &body), StatusCode::OK)
    };
    let patch = |key: &str, body: &Value| {
        server.client.patch(format!("{}/v1/settings", server.base)).bearer_auth(key).json(body)
    };
    let settings = expect(server.get(&server.alpha_secret, "/v1/settings"), StatusCode::OK);
    let defaults = json!({"personalization": true, "marketing": false, "analytics": true});
    assert_eq!(settings["settings"]["anonymous_consent"], defaults, "{settings}");
    assert_eq!(list("v-1")["personalized"], true);

    // The shop asks anonymous visitors first: not personalized until they opt in.
    let changed =
        expect(patch(&server.alpha_secret, &json!({"anonymous_consent": {"personalization": false}})), StatusCode::OK);
    assert_eq!(changed["settings"]["anonymous_consent"]["personalization"], false, "{changed}");
    assert_eq!(changed["settings"]["anonymous_consent"]["analytics"], true, "what is not named stays: {changed}");
    let off = list("v-1");
    assert_eq!(
        (off["personalized"].as_bool(), off["not_personalized_reason"].as_str()),
        (Some(false), Some("consent_not_granted")),
        "{off}"
    );

    // The visitor opts in from the storefront (a public key).
    let ledger = expect(
        server.post(&server.alpha_public, "/v1/visitors/v-1/consents", &json!({"personalization": true})),
        StatusCode::OK,
    );
    assert_eq!(
        (ledger["chosen"].as_bool(), ledger["consent"]["personalization"].as_bool()),
        (Some(true), Some(true)),
        "{ledger}"
    );
    assert_eq!(ledger["history"][0]["source"], "storefront", "{ledger}");
    assert_eq!(list("v-1")["personalized"], true);
    assert_eq!(list("v-2")["personalized"], false, "another visitor still follows the default");
    // And withdraws again.
    expect(
        server.post(&server.alpha_public, "/v1/visitors/v-1/consents", &json!({"personalization": false})),
        StatusCode::OK,
    );
    assert_eq!(list("v-1")["not_personalized_reason"], "consent_withdrawn");
    let read = expect(server.get(&server.alpha_public, "/v1/visitors/v-1/consents"), StatusCode::OK);
    assert_eq!(read["history"].as_array().map(Vec::len), Some(2), "{read}");

    // Per tenant.
    let beta = expect(server.get(&server.beta_secret, "/v1/settings"), StatusCode::OK);
    assert_eq!(beta["settings"]["anonymous_consent"], defaults);
    let beta_visitor = expect(server.get(&server.beta_secret, "/v1/visitors/v-1/consents"), StatusCode::OK);
    assert_eq!(beta_visitor["chosen"], false);
    // A training window is a number of days, at most a century; 0 takes it away.
    let windowed = expect(patch(&server.alpha_secret, &json!({"training_window_days": 365})), StatusCode::OK);
    assert_eq!(windowed["settings"]["training_window_days"], 365, "{windowed}");
    let too_long =
        expect(patch(&server.alpha_secret, &json!({"training_window_days": 36_501})), StatusCode::BAD_REQUEST);
    assert!(too_long["message"].as_str().unwrap().contains("training_window_days"), "{too_long}");
    let whole = expect(patch(&server.alpha_secret, &json!({"training_window_days": 0})), StatusCode::OK);
    assert!(whole["settings"].get("training_window_days").is_none(), "{whole}");
    // Bad input loses nothing; settings need a secret key.
    expect_error(
        patch(&server.alpha_secret, &json!({"anonymous_consent": {"personalisation": true}})),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    expect_error(patch(&server.alpha_secret, &json!({"retention_days": -3})), StatusCode::BAD_REQUEST, "invalid_body");
    expect_error(patch(&server.alpha_public, &json!({"retention_days": 30})), StatusCode::FORBIDDEN, "forbidden");
    let kept = expect(server.get(&server.alpha_secret, "/v1/settings"), StatusCode::OK);
    assert_eq!(kept["settings"], changed["settings"]);
}

#[test]
fn a_tenants_own_retention_applies_where_the_installation_keeps_everything() {
    let server = TestServer::start();
    let days_ago = |days: i64| {
        let at = chrono::Utc::now() - chrono::Duration::days(days);
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let events = |prefix: &str| {
        json!({"events": [
            {"type": "view", "event_id": format!("{prefix}-new"), "user_id": "u1", "item_id": "a", "timestamp": days_ago(1)},
            {"type": "view", "event_id": format!("{prefix}-old"), "user_id": "u1", "item_id": "a", "timestamp": days_ago(60)},
            {"type": "view", "event_id": format!("{prefix}-anon-old"), "anonymous_id": "v", "item_id": "a", "timestamp": days_ago(10)},
        ]})
    };
    expect(server.post(&server.alpha_secret, "/v1/events/batch", &events("alpha")), StatusCode::OK);
    expect(server.post(&server.beta_secret, "/v1/events/batch", &events("beta")), StatusCode::OK);
    let patch = json!({"retention_days": 30, "anonymous_retention_days": 7});
    let settings = expect(
        server.client.patch(format!("{}/v1/settings", server.base)).bearer_auth(&server.alpha_secret).json(&patch),
        StatusCode::OK,
    );
    assert_eq!(
        (settings["retention_days_in_force"].as_u64(), settings["anonymous_retention_days_in_force"].as_u64()),
        (Some(30), Some(7)),
        "{settings}"
    );
    for key in [&server.alpha_secret, &server.beta_secret] {
        let started = expect(server.post(key, "/v1/tasks", &json!({"kind": "retention"})), StatusCode::ACCEPTED);
        let id = started["task"]["id"].as_str().unwrap().to_string();
        loop {
            let task = expect(server.get(key, &format!("/v1/tasks/{id}")), StatusCode::OK);
            if task["status"] != "running" {
                assert_eq!(task["status"], "succeeded", "{task}");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let ids = |tenant: &str| -> Vec<String> {
        let tenant = TenantId::parse_slug(tenant).unwrap();
        server.store.events_after(&tenant, 0, 10).unwrap().into_iter().map(|e| e.event.id.to_string()).collect()
    };
    assert_eq!(ids("alpha"), ["alpha-new"], "alpha's own policy applied");
    assert_eq!(ids("beta").len(), 3, "beta keeps everything, as the installation does");
}

#[test]
fn a_shop_declares_its_own_purposes_and_shoppers_consent_to_them() {
    let server = TestServer::start();
    let secret = &server.alpha_secret;
    let patch =
        |body: &Value| server.client.patch(format!("{}/v1/settings", server.base)).bearer_auth(secret).json(body);
    let grant = json!({"purposes": {"sms_reminders": true}});
    expect_error(server.post(secret, "/v1/users/u1/consents", &grant), StatusCode::BAD_REQUEST, "undeclared_purpose");
    for name in ["marketing", "SMS", "sms-reminders", ""] {
        let body = json!({"purposes": [{"name": name, "description": "Text messages"}]});
        expect_error(patch(&body), StatusCode::BAD_REQUEST, "invalid_purpose");
    }
    let twice = json!({"purposes": [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]});
    expect_error(patch(&twice), StatusCode::BAD_REQUEST, "duplicate_purpose");
    let declared = json!({"purposes": [
        {"name": "sms_reminders", "description": "Text messages about offers"},
        {"name": "loyalty_club", "description": "Points on every order", "default_granted": true},
    ]});
    let settings = expect(patch(&declared), StatusCode::OK);
    assert_eq!(settings["settings"]["purposes"].as_array().map(Vec::len), Some(2), "{settings}");

    // Declared defaults apply until the shopper states otherwise; statements go to the ledger by name.
    let ledger = expect(server.get(secret, "/v1/users/u1/consents"), StatusCode::OK);
    assert_eq!(ledger["consent"]["other"], json!({"loyalty_club": true, "sms_reminders": false}), "{ledger}");
    let ledger = expect(server.post(secret, "/v1/users/u1/consents", &grant), StatusCode::OK);
    assert_eq!(ledger["consent"]["other"]["sms_reminders"], true, "{ledger}");
    assert_eq!(ledger["history"][0]["purpose"], "sms_reminders", "{ledger}");
    let export = expect(server.get(secret, "/v1/users/u1/export"), StatusCode::OK);
    assert_eq!(export["consent"]["other"], json!({"loyalty_club": true, "sms_reminders": true}), "{export}");
    // An anonymous visitor, through a public key.
    let withdraw = json!({"purposes": {"loyalty_club": false}});
    let visitor = expect(server.post(&server.alpha_public, "/v1/visitors/v-9/consents", &withdraw), StatusCode::OK);
    assert_eq!(visitor["consent"]["other"], json!({"loyalty_club": false, "sms_reminders": false}), "{visitor}");
    // Another tenant has not declared them.
    expect_error(
        server.post(&server.beta_secret, "/v1/users/u1/consents", &grant),
        StatusCode::BAD_REQUEST,
        "undeclared_purpose",
    );
}
