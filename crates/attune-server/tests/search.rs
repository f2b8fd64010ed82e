//! Search against a real server on a loopback port with a temporary store: typo tolerance, price phrases
//! understood as filters, personalisation for a shopper with a clear brand affinity (and none for an anonymous
//! one), lexical mode with a warning when no model can be loaded, 400s for malformed requests, `search` events
//! and autocomplete from past queries; hybrid mode after the `embed_items` task when the model is present, with
//! item vectors tuned to the catalog when enough items have a category path.

mod harness;

use attune_core::UserId;
use attune_core::input::{AmountInput, ScalarValue, TimeInput};
use attune_core::{ApiKeyKind, Event, EventInput, EventKind, Item, ItemInput, OrderLineInput, TenantId, Timestamp};
use attune_engine::EngineConfig;
use attune_search::TuningConfig;
use attune_server::ServerOptions;
use attune_store::{Store, TimelineQuery};
use harness::Server;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// (id, title, description, brand, category, price, colour).
type ItemRow = (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str, &'static str);
const ITEMS: [ItemRow; 8] = [
    ("J1", "Knitted wool jumper", "", "Acme", "Clothing > Knitwear", "35.00", "navy"),
    ("J2", "Knitted wool jumper", "", "Zed", "Clothing > Knitwear", "38.00", "navy"),
    ("J3", "Cashmere jumper", "Luxurious and soft", "Zed", "Clothing > Knitwear", "80.00", "grey"),
    ("J4", "Cotton jumper", "Light for spring", "Acme", "Clothing > Knitwear", "30.00", "red"),
    ("B1", "Leather boots", "Waterproof winter boots", "Zed", "Footwear > Boots", "60.00", "brown"),
    ("B2", "Suede boots", "", "Zed", "Footwear > Boots", "55.00", "brown"),
    ("R1", "Rain jacket", "Packable shell", "Acme", "Outerwear > Jackets", "45.00", "yellow"),
    ("T1", "Ceramic teapot", "Holds six cups", "Homely", "Home > Kitchen", "20.00", "white"),
];

fn order(id: &str, user: &str, items: &[&str]) -> Event {
    Event::parse(
        EventInput {
            event_type: "purchase".into(),
            event_id: Some(format!("order-{id}")),
            user_id: Some(user.into()),
            order_id: Some(id.to_string()),
            currency: Some("GBP".into()),
            timestamp: Some(TimeInput::Text("2024-03-01T10:00:00Z".to_string())),
            lines: Some(
                items
                    .iter()
                    .map(|item| OrderLineInput {
                        item_id: item.to_string(),
                        quantity: 1,
                        unit_price: AmountInput::Text("10.00".to_string()),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

fn seed(store: &dyn Store, tenant: &TenantId) {
    let items: Vec<Item> = ITEMS
        .iter()
        .map(|(id, title, description, brand, category, price, colour)| {
            let input = ItemInput {
                id: Some(id.to_string()),
                title: Some(title.to_string()),
                description: Some(description.to_string()),
                price: Some(AmountInput::Text(price.to_string())),
                currency: Some("GBP".into()),
                category: Some(category.to_string()),
                brand: Some(brand.to_string()),
                attributes: Some(BTreeMap::from([("colour".to_string(), ScalarValue::Text(colour.to_string()))])),
                ..Default::default()
            };
            Item::parse(input, Timestamp::now()).unwrap()
        })
        .collect();
    store.upsert_items(tenant, &items).unwrap();
    // `fan` buys Zed again and again.
    let events =
        vec![order("fan-1", "fan", &["B1"]), order("fan-2", "fan", &["B2"]), order("fan-3", "fan", &["B1", "B2"])];
    store.append_events(tenant, &events).unwrap();
}

struct TestServer {
    server: Server,
    secret: String,
    public: String,
    tenant: TenantId,
}

impl std::ops::Deref for TestServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl TestServer {
    fn start(model_dir: Option<PathBuf>) -> Self {
        Self::start_with(model_dir, false)
    }

    fn start_with(model_dir: Option<PathBuf>, storefront: bool) -> Self {
        Self::start_with_options(EngineConfig { model_dir, ..EngineConfig::default() }, storefront)
    }

    fn start_with_options(engine: EngineConfig, storefront: bool) -> Self {
        let (directory, store) = harness::store(false);
        let tenant = harness::tenant(store.as_ref(), "shop", "Clothes Shop");
        let secret = harness::key(store.as_ref(), &tenant, ApiKeyKind::Secret, "test");
        let public = harness::key(store.as_ref(), &tenant, ApiKeyKind::Public, "web");
        seed(store.as_ref(), &tenant);
        let options = ServerOptions { storefront_tenant: storefront.then(|| tenant.clone()), ..Default::default() };
        let server = Server::launch(directory, store, options, engine);
        Self { server, secret, public, tenant }
    }

    /// The same store behind a new server (nothing kept in memory); the old one is stopped first.
    fn restart_with_options(self, engine: EngineConfig) -> Self {
        let TestServer { server, secret, public, tenant } = self;
        let server = server.restart(ServerOptions::default(), engine);
        TestServer { server, secret, public, tenant }
    }

    /// Waits up to 300 s for the `embed_items` task to succeed.
    fn wait_for_the_embed_task(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let tasks =
                expect(self.client.get(format!("{}/v1/tasks", self.base)).bearer_auth(&self.secret), StatusCode::OK);
            let embed = tasks["tasks"].as_array().unwrap().iter().find(|t| t["kind"] == "embed_items").cloned();
            if let Some(task) = embed {
                assert_ne!(task["status"], "failed", "{task}");
                if task["status"] == "succeeded" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the embed task did not finish: {tasks}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn get(&self, path_and_query: &[(&str, &str)]) -> RequestBuilder {
        self.client.get(format!("{}/v1/search", self.base)).bearer_auth(&self.secret).query(path_and_query)
    }

    fn post(&self, body: &Value) -> RequestBuilder {
        self.client.post(format!("{}/v1/search", self.base)).bearer_auth(&self.secret).json(body)
    }

    fn autocomplete(&self, query: &[(&str, &str)]) -> Value {
        let request =
            self.client.get(format!("{}/v1/search/autocomplete", self.base)).bearer_auth(&self.secret).query(query);
        expect(request, StatusCode::OK)
    }

    /// The newest stored `search` event, of the query `typed` when given, waiting up to 10 s for the batched
    /// writer.
    fn logged_search(&self, typed: Option<&str>) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.store.recent_events(&self.tenant, 100).unwrap().into_iter().map(|s| s.event).find(
                |e| matches!(&e.kind, EventKind::Search { query, .. } if typed.is_none_or(|typed| typed == query)),
            );
            if let Some(event) = found {
                return event;
            }
            assert!(Instant::now() < deadline, "no search event stored for {typed:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn expect(request: RequestBuilder, status: StatusCode) -> Value {
    let response = request.send().expect("request sent");
    let actual = response.status();
    let text = response.text().unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn expect_error(request: RequestBuilder, code: &str) -> Value {
    let body = expect(request, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], code, "unexpected error body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {body}");
    body
}

fn ids(results: &Value) -> Vec<String> {
    results["hits"].as_array().unwrap().iter().map(|h| h["item_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_typo_query_finds_the_item() {
    let server = TestServer::start(None);
    let results = expect(server.get(&[("q", "ceramic teapto")]), StatusCode::OK);
    assert_eq!(ids(&results).first().map(String::as_str), Some("T1"), "{results}");
    // The misspelt word is read as the catalog's word, and the response says so.
    assert_eq!(results["corrected_query"], "ceramic teapot", "{results}");
    assert_eq!(results["understood"]["text"], "ceramic teapot", "{results}");
    // As typed, fuzzy matching still finds it; nothing is corrected.
    let as_typed = expect(server.get(&[("q", "ceramic teapto"), ("correct_spelling", "false")]), StatusCode::OK);
    assert_eq!(ids(&as_typed).first().map(String::as_str), Some("T1"), "{as_typed}");
    assert!(as_typed["corrected_query"].is_null(), "{as_typed}");
    let results = expect(server.post(&json!({"q": "leathr bots"})), StatusCode::OK);
    assert_eq!(ids(&results).first().map(String::as_str), Some("B1"), "{results}");
    assert_eq!(results["corrected_query"], "leather boots", "{results}");
    let spelled_right = expect(server.post(&json!({"q": "leather boots", "correct_spelling": true})), StatusCode::OK);
    assert!(spelled_right["corrected_query"].is_null(), "{spelled_right}");
    let hit = &results["hits"][0];
    assert_eq!(hit["title"], "Leather boots");
    assert_eq!(hit["brand"], "Zed");
    assert_eq!(hit["category"], "Footwear > Boots");
    assert!(hit["score"]["lexical"].as_f64().unwrap() > 0.0, "{hit}");
    assert_eq!(hit["score"]["words_held"].as_f64(), Some(1.0), "both words, corrected: {hit}");
    assert!(hit["score"]["total"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(results["search_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(results["facets"]["brand"].is_array(), "{results}");
}

#[test]
fn a_price_phrase_becomes_a_filter() {
    let server = TestServer::start(None);
    let results = expect(server.get(&[("q", "jumper under 40")]), StatusCode::OK);
    assert_eq!(results["understood"]["price_max"], 40.0, "{results}");
    let got = ids(&results);
    assert!(!got.is_empty(), "{results}");
    assert!(!got.contains(&"J3".to_string()), "an 80 pound jumper is returned: {results}");
    for hit in results["hits"].as_array().unwrap() {
        let price: f64 = hit["price"]["amount"].as_str().unwrap().parse().unwrap();
        assert!(price <= 40.0, "{hit}");
    }
    // Structured price bounds and sorting.
    let results = expect(server.post(&json!({"q": "jumper", "price_min": 31, "sort": "price_desc"})), StatusCode::OK);
    assert_eq!(ids(&results), vec!["J3", "J2", "J1"], "{results}");
}

#[test]
fn a_shopper_with_a_brand_affinity_gets_their_own_order() {
    let server = TestServer::start(None);
    let plain = ids(&expect(server.get(&[("q", "knitted wool jumper")]), StatusCode::OK));
    let anonymous =
        ids(&expect(server.get(&[("q", "knitted wool jumper"), ("anonymous_id", "visitor-1")]), StatusCode::OK));
    let fan = expect(server.get(&[("q", "knitted wool jumper"), ("user_id", "fan")]), StatusCode::OK);
    assert_eq!(anonymous, plain, "an anonymous shopper without history changes the order");
    assert_ne!(ids(&fan), plain, "the Zed fan gets the anonymous order: {fan}");
    assert_eq!(fan["hits"][0]["brand"], "Zed", "{fan}");
    assert!(fan["hits"][0]["score"]["personal"].as_f64().unwrap() > 0.0, "{fan}");
}

#[test]
fn withdrawn_consent_to_personalization_gives_the_anonymous_order() {
    let server = TestServer::start(None);
    let plain = ids(&expect(server.get(&[("q", "knitted wool jumper")]), StatusCode::OK));
    let fan = expect(server.get(&[("q", "knitted wool jumper"), ("user_id", "fan")]), StatusCode::OK);
    assert_eq!(fan["personalized"], true, "{fan}");
    let withdraw = json!({"personalization": false});
    let consents = format!("{}/v1/users/fan/consents", server.base);
    expect(server.client.post(&consents).bearer_auth(&server.secret).json(&withdraw), StatusCode::OK);
    let after = expect(server.get(&[("q", "knitted wool jumper"), ("user_id", "fan")]), StatusCode::OK);
    assert_eq!(ids(&after), plain, "{after}");
    assert_eq!(
        (&after["personalized"], &after["not_personalized_reason"]),
        (&json!(false), &json!("consent_withdrawn"))
    );
    for hit in after["hits"].as_array().unwrap() {
        assert_eq!(hit["score"]["personal"].as_f64(), Some(0.0), "{hit}");
    }
}

#[test]
fn one_shoppers_words_are_never_suggested_to_others() {
    let server = TestServer::start(None);
    let private = "jane doe 42 baker street gift";
    for _ in 0..20 {
        expect(server.get(&[("q", private), ("user_id", "jane")]), StatusCode::OK);
    }
    let public_key = |path: &str| server.client.get(format!("{}{path}", server.base)).bearer_auth(&server.public);
    let suggestions = expect(public_key("/v1/search/autocomplete?q=jane"), StatusCode::OK);
    assert!(!suggestions.to_string().contains("baker"), "{suggestions}");
    // Five shoppers make a query public; erasing one of them takes their search back out.
    for shopper in ["a", "b", "c", "d", "jane"] {
        expect(server.get(&[("q", "blue teapot"), ("user_id", shopper)]), StatusCode::OK);
    }
    let suggestions = expect(public_key("/v1/search/autocomplete?q=blue%20tea"), StatusCode::OK);
    assert_eq!(suggestions["suggestions"][0]["text"], "blue teapot", "{suggestions}");
    let erase = server.client.delete(format!("{}/v1/users/jane", server.base)).bearer_auth(&server.secret);
    expect(erase, StatusCode::OK);
    let suggestions = expect(public_key("/v1/search/autocomplete?q=blue%20tea"), StatusCode::OK);
    assert!(!suggestions["suggestions"].as_array().unwrap().iter().any(|s| s["source"] == "query"), "{suggestions}");
}

#[test]
fn a_missing_model_directory_means_lexical_search_with_a_warning() {
    let server = TestServer::start(Some(PathBuf::from("/nonexistent/attune-model")));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = expect(server.get(&[("q", "rain jacket")]), StatusCode::OK);
        assert_eq!(results["mode"], "lexical", "{results}");
        assert_eq!(ids(&results).first().map(String::as_str), Some("R1"), "{results}");
        let warnings = results["warnings"].as_array().unwrap();
        assert!(!warnings.is_empty(), "{results}");
        if warnings.iter().any(|w| w.as_str().unwrap().contains("semantic search is off")) {
            break;
        }
        assert!(Instant::now() < deadline, "no warning about the missing model: {results}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let tasks = expect(
        server
            .client
            .post(format!("{}/v1/tasks", server.base))
            .bearer_auth(&server.secret)
            .json(&json!({"kind": "embed_items"})),
        StatusCode::ACCEPTED,
    );
    assert_eq!(tasks["task"]["kind"], "embed_items");
}

#[test]
fn malformed_requests_get_400s() {
    let server = TestServer::start(None);
    expect_error(server.get(&[("q", "")]), "missing_field");
    expect_error(server.get(&[("q", &"x".repeat(501))]), "too_long");
    let body = expect_error(server.get(&[("q", "jumper"), ("filter", "price < ")]), "invalid_filter");
    assert!(body["position"].is_u64(), "{body}");
    expect_error(server.get(&[("q", "jumper"), ("sort", "cheapest")]), "invalid_value");
    expect_error(server.get(&[("q", "jumper"), ("page", "0")]), "out_of_range");
    expect_error(server.get(&[("q", "jumper"), ("per_page", "101")]), "out_of_range");
    expect_error(server.get(&[("q", "jumper"), ("per_page", "ten")]), "invalid_number");
    expect_error(server.get(&[("q", "jumper"), ("correct_spelling", "maybe")]), "invalid_value");
    expect_error(server.post(&json!({"q": "jumper", "correct_spelling": "yes"})), "invalid_body");
    expect_error(server.get(&[("q", "jumper"), ("price_min", "50"), ("price_max", "10")]), "out_of_range");
    expect_error(server.post(&json!({"q": "jumper", "colour_of_the_day": "red"})), "invalid_body");
    // A public key searches for anonymous visitors, and for a user only with their user token.
    let public = |query: &[(&str, &str)]| {
        server.client.get(format!("{}/v1/search", server.base)).bearer_auth(&server.public).query(query)
    };
    expect(public(&[("q", "jumper"), ("anonymous_id", "visitor-9")]), StatusCode::OK);
    let refused = expect(public(&[("q", "jumper"), ("user_id", "fan")]), StatusCode::FORBIDDEN);
    assert_eq!(refused["code"], "forbidden", "{refused}");
    // Filters alone are a search.
    let results = expect(server.get(&[("filter", "brand = \"Zed\""), ("category", "Footwear")]), StatusCode::OK);
    let mut got = ids(&results);
    got.sort();
    assert_eq!(got, vec!["B1", "B2"], "{results}");
}

#[test]
fn a_search_is_logged_and_autocomplete_suggests_it() {
    let server = TestServer::start(None);
    let results = expect(server.get(&[("q", "waterproof boots"), ("user_id", "fan")]), StatusCode::OK);
    assert!(ids(&results).contains(&"B1".to_string()), "{results}");
    let logged = server.logged_search(None);
    assert!(
        matches!(&logged.kind, EventKind::Search { query, result_ids }
            if query == "waterproof boots" && result_ids.iter().any(|id| id.as_str() == "B1")),
        "{logged:?}"
    );
    // Suggested once five shoppers searched it.
    let from_queries = |suggestions: &Value| {
        suggestions["suggestions"].as_array().unwrap().iter().filter(|s| s["source"] == "query").count()
    };
    let suggestions = server.autocomplete(&[("q", "waterp"), ("limit", "5")]);
    assert_eq!(from_queries(&suggestions), 0, "one shopper's query is not suggested: {suggestions}");
    for shopper in ["s1", "s2", "s3", "s4"] {
        expect(server.get(&[("q", "waterproof boots"), ("anonymous_id", shopper)]), StatusCode::OK);
    }
    let suggestions = server.autocomplete(&[("q", "waterp"), ("limit", "5")]);
    let first = &suggestions["suggestions"][0];
    assert_eq!(first["text"], "waterproof boots", "{suggestions}");
    assert_eq!(first["source"], "query", "{suggestions}");
    assert_eq!(first["count"], 5, "{suggestions}");
    // A misspelt search is logged as typed, with what was searched in its context; autocomplete counts what was
    // searched, so the misspelling is not suggested.
    let results = expect(server.get(&[("q", "waterprof boots"), ("user_id", "late")]), StatusCode::OK);
    assert_eq!(results["corrected_query"], "waterproof boots", "{results}");
    let logged = server.logged_search(Some("waterprof boots"));
    assert_eq!(logged.context.get("corrected_query"), Some(&ScalarValue::Text("waterproof boots".into())));
    let suggestions = server.autocomplete(&[("q", "waterp"), ("limit", "5")]);
    assert_eq!(suggestions["suggestions"][0]["text"], "waterproof boots", "{suggestions}");
    assert_eq!(suggestions["suggestions"][0]["count"], 6, "{suggestions}");
    assert!(!suggestions.to_string().contains("waterprof"), "{suggestions}");
    let titles = server.autocomplete(&[("q", "cerami")]);
    assert_eq!(titles["suggestions"][0]["text"], "Ceramic teapot", "{titles}");
}

#[test]
fn dry_runs_and_the_console_playground_store_nothing() {
    let server = TestServer::start(None);
    let fan = UserId::parse("fan").unwrap();
    let timeline = || {
        let query = TimelineQuery { before_seq: None, limit: 1_000 };
        let events = server.store.user_timeline(&server.tenant, &fan, &query).unwrap().events;
        events.into_iter().map(|stored| stored.seq).collect::<Vec<_>>()
    };
    let before = timeline();
    let events_before = server.store.stats(&server.tenant).unwrap().events;
    let query = [("q", "waterproof boots"), ("user_id", "fan"), ("dry_run", "true")];
    let results = expect(server.get(&query), StatusCode::OK);
    assert!(ids(&results).contains(&"B1".to_string()), "{results}");
    let body = json!({"q": "waterproof boots", "user_id": "fan", "dry_run": true});
    expect(server.post(&body), StatusCode::OK);
    let cookie = server.console_cookie(&server.secret);
    let console = html(
        server
            .client
            .get(format!("{}/console/search", server.base))
            .query(&[("q", "waterproof boots"), ("user_id", "fan")])
            .header("cookie", &cookie),
    );
    assert!(console.contains("id=\"search-hits\""), "{console}");
    expect_error(server.get(&[("q", "boots"), ("dry_run", "maybe")]), "invalid_value");
    // A logged search after them: the batched writer is first in, first out, so once it is stored anything
    // queued before it would be too.
    expect(server.get(&[("q", "ceramic teapot"), ("user_id", "fan")]), StatusCode::OK);
    server.logged_search(Some("ceramic teapot"));
    let after = timeline();
    assert_eq!(after.len(), before.len() + 1, "only the logged search joined the timeline");
    assert_eq!(server.store.stats(&server.tenant).unwrap().events, events_before + 1);
    let suggestions = server.autocomplete(&[("q", "waterp")]);
    assert!(suggestions["suggestions"].as_array().unwrap().iter().all(|s| s["source"] != "query"), "{suggestions}");
}

#[test]
fn hybrid_search_after_the_embed_task_when_the_model_is_present() {
    let Some(model_dir) = attune_text::default_model_dir().filter(|dir| dir.is_dir()) else {
        eprintln!("no model directory; skipping the hybrid search test");
        return;
    };
    let server = TestServer::start(Some(model_dir));
    server.wait_for_the_embed_task();
    let results = expect(server.get(&[("q", "warm sweater for winter")]), StatusCode::OK);
    assert_eq!(results["mode"], "hybrid", "{results}");
    // Eight items are too few to tune the vectors to (the default asks for 200 with a category path).
    assert_eq!(results["catalog_tuned"], false, "{results}");
    assert!(results["warnings"].as_array().unwrap().is_empty(), "{results}");
    assert!(results["hits"][0]["score"]["semantic"].as_f64().is_some(), "{results}");
    let got = ids(&results);
    assert!(got.iter().take(4).any(|id| id.starts_with('J')), "no jumper near the top: {results}");
    // The items of the shopper's latest order (boots) are their session: an item sharing no brand, category or
    // attribute with them still gains a personal score from its similarity to them.
    let results = expect(server.get(&[("q", "rain jacket"), ("user_id", "fan")]), StatusCode::OK);
    let jacket = results["hits"].as_array().unwrap().iter().find(|h| h["item_id"] == "R1").expect("R1 is found");
    assert!(jacket["score"]["personal"].as_f64().unwrap() > 0.0, "{results}");
}

#[test]
fn item_vectors_are_tuned_to_a_catalog_with_categories() {
    let Some(model_dir) = attune_text::default_model_dir().filter(|dir| dir.is_dir()) else {
        eprintln!("no model directory; skipping the catalog tuning test");
        return;
    };
    // Every seeded item has a category path (six distinct descriptions); tuning is allowed on eight.
    let tuning = TuningConfig { min_examples: 8, min_word_examples: 1, min_descriptions: 2, ..TuningConfig::default() };
    let options = EngineConfig { model_dir: Some(model_dir), catalog_tuning: Some(tuning), ..EngineConfig::default() };
    let server = TestServer::start_with_options(options, false);
    server.wait_for_the_embed_task();
    let results = expect(server.get(&[("q", "warm sweater for winter")]), StatusCode::OK);
    assert_eq!((&results["mode"], &results["catalog_tuned"]), (&json!("hybrid"), &json!(true)), "{results}");
    let got = ids(&results);
    assert!(got.iter().take(4).any(|id| id.starts_with('J')), "no jumper near the top: {results}");
    // Turned off, the same catalog is searched with the vectors as embedded.
    let options =
        EngineConfig { model_dir: attune_text::default_model_dir(), catalog_tuning: None, ..EngineConfig::default() };
    let untuned = TestServer::start_with_options(options, false);
    untuned.wait_for_the_embed_task();
    // Tuned vectors lie nearer the descriptions they were fitted toward: B1's is "brown boots".
    let similarity = |server: &TestServer| {
        let results = expect(server.get(&[("q", "brown boots")]), StatusCode::OK);
        let hit = results["hits"].as_array().unwrap().iter().find(|h| h["item_id"] == "B1").cloned();
        hit.and_then(|hit| hit["score"]["semantic"].as_f64()).unwrap_or_else(|| panic!("no B1 similarity: {results}"))
    };
    let (tuned_similarity, untuned_similarity) = (similarity(&server), similarity(&untuned));
    assert!(tuned_similarity > untuned_similarity + 0.05, "{tuned_similarity} against {untuned_similarity}");
    // A new price rebuilds the index; no described text changed, so the same map tunes it again.
    let boots = json!({"title": "Leather boots", "description": "Waterproof winter boots", "price": "49.00",
        "currency": "GBP", "brand": "Zed", "category": "Footwear > Boots", "attributes": {"colour": "brown"}});
    expect(
        server.client.put(format!("{}/v1/items/B1", server.base)).bearer_auth(&server.secret).json(&boots),
        StatusCode::OK,
    );
    let repriced = expect(server.get(&[("q", "leather boots")]), StatusCode::OK);
    assert_eq!(repriced["hits"][0]["price"]["amount"], "49.00", "the index was rebuilt: {repriced}");
    assert_eq!(repriced["catalog_tuned"], true, "{repriced}");
    assert!((similarity(&server) - tuned_similarity).abs() < 1e-6, "the same map tunes the rebuilt index");
    // The map is stored once; a restarted server reads it back instead of fitting (and storing) another.
    let stored = |server: &TestServer| server.store.model_snapshots(&server.tenant, "catalog_tuning").unwrap();
    assert_eq!(stored(&server).len(), 1, "the repriced build did not refit");
    assert!(stored(&server)[0].metrics.contains("\"fingerprint\""), "{:?}", stored(&server)[0]);
    let options = EngineConfig {
        model_dir: attune_text::default_model_dir(),
        catalog_tuning: Some(tuning),
        ..EngineConfig::default()
    };
    let server = server.restart_with_options(options);
    let deadline = Instant::now() + Duration::from_secs(120);
    while expect(server.get(&[("q", "brown boots")]), StatusCode::OK)["catalog_tuned"] != true {
        assert!(Instant::now() < deadline, "the restarted server never searched tuned vectors");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!((similarity(&server) - tuned_similarity).abs() < 1e-6, "the stored map tunes the restarted index");
    assert_eq!(stored(&server).len(), 1, "the restarted server read the stored map instead of fitting");
    let results = expect(untuned.get(&[("q", "warm sweater for winter")]), StatusCode::OK);
    assert_eq!((&results["mode"], &results["catalog_tuned"]), (&json!("hybrid"), &json!(false)), "{results}");
}

fn html(request: RequestBuilder) -> String {
    let response = request.send().expect("request sent");
    let status = response.status();
    let text = response.text().unwrap();
    assert_eq!(status, StatusCode::OK, "unexpected status; body: {text}");
    text
}

#[test]
fn the_storefront_and_the_console_playground_show_search_results() {
    let server = TestServer::start_with(None, true);
    let page = html(server.client.get(format!("{}/shop/search", server.base)).query(&[("q", "knitted jumper")]));
    assert!(page.contains("id=\"search-grid\""), "{page}");
    assert!(page.contains("data-item-id=\"J1\""), "{page}");
    // A jumper that is not knitted holds half the query's words, and its breakdown says so.
    assert!(page.contains("(50% of the query)"), "{page}");
    assert!(page.contains("id=\"search-facets\""), "{page}");
    assert!(page.contains("brand=Zed"), "no facet link: {page}");
    assert!(page.contains("action=\"/shop/search\""), "{page}");
    let refined =
        html(server.client.get(format!("{}/shop/search", server.base)).query(&[("q", "jumper"), ("brand", "Zed")]));
    assert!(refined.contains("data-item-id=\"J2\"") && !refined.contains("data-item-id=\"J1\""), "{refined}");
    // On a results page the search box also offers titles for the query.
    let typed = html(server.client.get(format!("{}/shop/search", server.base)).query(&[("q", "cashm")]));
    assert!(typed.contains("<option value=\"Cashmere jumper\">"), "{typed}");
    assert!(!typed.contains("id=\"spelling-note\""), "a word being typed is no typo: {typed}");
    // A misspelt query shows what was searched instead, with a link to the words as typed.
    let misspelt = html(server.client.get(format!("{}/shop/search", server.base)).query(&[("q", "cashmere jumpr")]));
    assert!(misspelt.contains("id=\"spelling-note\""), "{misspelt}");
    assert!(misspelt.contains("<strong>cashmere jumper</strong>"), "{misspelt}");
    assert!(misspelt.contains("q=cashmere%20jumpr&amp;as_typed=true"), "{misspelt}");
    assert!(misspelt.contains("data-item-id=\"J3\""), "{misspelt}");
    let as_typed = html(
        server
            .client
            .get(format!("{}/shop/search", server.base))
            .query(&[("q", "cashmere jumpr"), ("as_typed", "true")]),
    );
    assert!(!as_typed.contains("id=\"spelling-note\""), "{as_typed}");
    assert!(as_typed.contains("Results for “cashmere jumpr”"), "{as_typed}");
    assert!(as_typed.contains("brand=Zed&amp;as_typed=true"), "facet links keep the words as typed: {as_typed}");
    // The search box offers past queries that five shoppers searched.
    for shopper in ["v1", "v2", "v3", "v4", "v5"] {
        expect(server.get(&[("q", "knitted jumper"), ("anonymous_id", shopper)]), StatusCode::OK);
    }
    let home = html(server.client.get(format!("{}/shop", server.base)));
    assert!(home.contains("<datalist id=\"search-suggestions\">"), "{home}");
    assert!(home.contains("<option value=\"knitted jumper\">"), "{home}");

    let cookie = server.console_cookie(&server.secret);
    let console = html(
        server
            .client
            .get(format!("{}/console/search", server.base))
            .query(&[("q", "knitted wool jumper"), ("user_id", "fan")])
            .header("cookie", &cookie),
    );
    assert!(console.contains("id=\"search-hits\""), "{console}");
    assert!(console.contains("Personal") && console.contains("Lexical"), "{console}");
    assert!(console.contains("Words held") && console.contains("100%"), "{console}");
    assert!(console.contains("id=\"search-mode\""), "{console}");
    let bad = html(
        server
            .client
            .get(format!("{}/console/search", server.base))
            .query(&[("q", "jumper"), ("filter", "price <")])
            .header("cookie", &cookie),
    );
    assert!(bad.contains("id=\"search-error\""), "{bad}");
}

fn view(anonymous: &str, session: &str, item: &str, n: usize) -> Event {
    Event::parse(
        EventInput {
            event_type: "view".into(),
            event_id: Some(format!("view-{anonymous}-{item}-{n}")),
            anonymous_id: Some(anonymous.into()),
            session_id: Some(session.into()),
            item_id: Some(item.into()),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

#[test]
fn a_session_personalises_and_is_logged_with_the_search() {
    let server = TestServer::start(None);
    let views = [view("v-2", "s-2", "B1", 1), view("v-2", "s-2", "B2", 2), view("v-2", "s-2", "B1", 3)];
    server.store.append_events(&server.tenant, &views).unwrap();
    let plain = ids(&expect(server.get(&[("q", "knitted wool jumper")]), StatusCode::OK));
    // The session alone is the shopper: its Zed views lift the Zed jumper.
    let by_session = expect(server.get(&[("q", "knitted wool jumper"), ("session_id", "s-2")]), StatusCode::OK);
    assert_ne!(ids(&by_session), plain, "{by_session}");
    assert_eq!(by_session["hits"][0]["brand"], "Zed", "{by_session}");
    expect_error(server.get(&[("q", "jumper"), ("session_id", &"s".repeat(300))]), "id_too_long");
    let results =
        expect(server.post(&json!({"q": "rain jacket", "anonymous_id": "v-2", "session_id": "s-2"})), StatusCode::OK);
    let search_id = results["search_id"].as_str().unwrap().to_string();
    let event = server.logged_search(None);
    assert_eq!(event.session_id.as_ref().map(|s| s.as_str()), Some("s-2"));
    assert_eq!(event.context.get("search_id"), Some(&ScalarValue::Text(search_id)));
}

#[test]
fn a_click_on_a_storefront_result_is_attributed_to_its_search() {
    let server = TestServer::start_with(None, true);
    let response =
        server.client.get(format!("{}/shop/search", server.base)).query(&[("q", "ceramic teapot")]).send().unwrap();
    // The visitor's cookies, sent back with the click.
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(String::from))
        .collect();
    assert!(!cookies.is_empty(), "no visitor cookies");
    let page = response.text().unwrap();
    // Each hit shows its score breakdown.
    assert!(page.contains("words ") && page.contains("score "), "no breakdown: {page}");
    let start = page.find("href=\"/shop/products/T1?search_id=").expect("a result links with its search id") + 6;
    let href = page[start..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(href.ends_with("&position=0"), "{href}");
    let search_id = href.split("search_id=").nth(1).unwrap().split('&').next().unwrap().to_string();
    html(server.client.get(format!("{}{href}", server.base)).header("cookie", cookies.join("; ")));
    let events = server.store.recent_events(&server.tenant, 100).unwrap();
    let click = events
        .iter()
        .find(|s| matches!(s.event.kind, EventKind::Click { .. }))
        .unwrap_or_else(|| panic!("no click stored: {events:?}"));
    assert_eq!(click.event.context.get("search_id"), Some(&ScalarValue::Text(search_id.clone())));
    assert!(
        matches!(&click.event.kind, EventKind::Click { item_id, position: Some(0), .. } if item_id.as_str() == "T1")
    );
    // The search event it refers to is stored too, by the same visitor.
    let search = server.logged_search(None);
    assert_eq!(search.context.get("search_id"), Some(&ScalarValue::Text(search_id)));
    assert_eq!(search.subject, click.event.subject);
    assert_eq!(search.session_id, click.event.session_id);
}

#[test]
fn an_item_written_through_the_api_is_found_at_once() {
    let server = TestServer::start(None);
    let before = expect(server.get(&[("q", "linen shirt")]), StatusCode::OK);
    assert!(!ids(&before).contains(&"N1".to_string()), "{before}");
    let item = json!({"title": "Linen shirt", "price": "25.00", "currency": "GBP", "brand": "Acme",
        "category": "Clothing > Shirts"});
    expect(
        server.client.put(format!("{}/v1/items/N1", server.base)).bearer_auth(&server.secret).json(&item),
        StatusCode::OK,
    );
    let after = expect(server.get(&[("q", "linen shirt")]), StatusCode::OK);
    assert_eq!(ids(&after).first().map(String::as_str), Some("N1"), "{after}");
}

/// A query that matches nothing answers zero hits, and separately labelled alternatives: the shop's best sellers
/// (and, when spelling correction was turned off, the catalog's reading of the words).
#[test]
fn a_query_without_matches_gets_zero_hits_and_labelled_popular_items() {
    let server = TestServer::start(None);
    let results = expect(server.get(&[("q", "xyzzy")]), StatusCode::OK);
    assert_eq!(results["total"], 0, "{results}");
    assert!(results["hits"].as_array().unwrap().is_empty(), "{results}");
    let popular = results["no_match"]["popular"].as_array().expect("popular items are offered");
    assert!(!popular.is_empty() && popular.iter().all(|p| p["item_id"].is_string()), "{results}");
    let matched = expect(server.get(&[("q", "jumper")]), StatusCode::OK);
    assert!(matched["no_match"].is_null(), "{matched}");
    assert!(matched["hits"][0]["score"]["popularity"].as_f64().is_some(), "{matched}");
}

/// Found by the API fuzz run: a query with control characters (or of more than 1,000 bytes) was logged as a
/// `search` event the log could not read back, and every later scan of the log (training, analytics, erasure)
/// failed with a 500.
#[test]
fn any_query_is_logged_as_an_event_the_log_can_read_back() {
    let server = TestServer::start(None);
    let hostile = format!("mug\u{0c}\u{7}{}", "é".repeat(480));
    expect(server.get(&[("q", &hostile), ("user_id", "fuzzer")]), StatusCode::OK);
    let logged = (0..200)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let events = server.store.events_after(&server.tenant, 0, 10_000).expect("the log reads back");
            events.into_iter().find(|e| matches!(e.event.kind, attune_core::EventKind::Search { .. }))
        })
        .expect("the search was logged");
    let attune_core::EventKind::Search { query, .. } = logged.event.kind else { unreachable!() };
    assert!(query.starts_with("mug") && query.len() <= 1_000 && !query.chars().any(char::is_control), "{query}");
    let insights = server.client.get(format!("{}/v1/customers/segments", server.base)).bearer_auth(&server.secret);
    assert_ne!(insights.send().unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
}
