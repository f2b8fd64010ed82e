//! Recommendations against a real server on a loopback port with a temporary store: a small shop where
//! two items are always bought together, similar items, personalised picks with truthful explanations,
//! stock and exclusion rules, impression logging, request validation and public-key permissions; the
//! filter expression (400 `invalid_filter` with the position), a property test that no filtered, excluded,
//! not-interested or out-of-stock item ever appears in any scenario, diversity caps, every scenario's
//! explanations citing only the shopper's or the request's items, and the real-time effect of a new event.
//! Model training and serving: the `train_recs` task stores versions with metrics, the same data and seed
//! give the same payload bytes, hot swaps under concurrent requests never fail one, a restarted server
//! serves the stored version without retraining (and retrains in the background when it is behind, never
//! for impressions alone), a stale model retrains in the background while requests are served, model
//! versions and activation through the API, and the console's models page. Cold start: an item added after
//! training and a shopper who only saw it get content matches (brand, category, title words).

mod harness;

use attune_core::FilterExpr;
use attune_core::input::{AmountInput, TimeInput};
use attune_core::{ApiKeyKind, Event, EventInput, EventKind, Item, ItemInput, OrderLineInput, TenantId, Timestamp};
use attune_core::{RecommendationId, UserId};
use attune_engine::EngineConfig;
use attune_engine::recs::training::{self, TrainOptions};
use attune_server::ServerOptions;
use attune_store::{Store, TimelineQuery};
use harness::Server;
use proptest::prelude::*;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// (id, title, stock, category, brand, price): `O` is out of stock.
type ItemRow = (&'static str, &'static str, Option<i64>, &'static str, &'static str, &'static str);
const ITEMS: [ItemRow; 7] = [
    ("A", "Alpha mug", None, "Home > Kitchen", "Acme", "4.50"),
    ("B", "Beta saucer", None, "Home > Kitchen", "Acme", "4.50"),
    ("O", "Omega teapot", Some(0), "Home > Kitchen", "Zed", "12.00"),
    ("X", "Extra spoon", None, "Home > Kitchen > Cutlery", "Zed", "1.50"),
    ("C", "Cedar box", None, "Home > Storage", "Acme", "9.00"),
    ("D", "Dune candle", None, "Home > Candles", "Zed", "6.00"),
    ("E", "Ember lamp", None, "Home > Lighting", "Acme", "30.00"),
];

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

fn order(id: &str, user: &str, day: u32, items: &[&str]) -> Event {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap() + chrono::Duration::days(i64::from(day));
    Event::parse(
        EventInput {
            event_type: "purchase".into(),
            event_id: Some(format!("order-{id}")),
            user_id: Some(user.into()),
            order_id: Some(id.to_string()),
            currency: Some("GBP".into()),
            timestamp: Some(TimeInput::Text(format!("{date}T10:00:00Z"))),
            lines: Some(
                items
                    .iter()
                    .map(|item| OrderLineInput {
                        item_id: item.to_string(),
                        quantity: 1,
                        unit_price: AmountInput::Text("4.50".to_string()),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

/// The catalog of [`ITEMS`].
fn seed_items(store: &dyn Store, tenant: &TenantId) {
    let items: Vec<Item> = ITEMS
        .iter()
        .map(|(id, title, stock, category, brand, price)| {
            let input = ItemInput {
                id: Some(id.to_string()),
                title: Some(title.to_string()),
                price: Some(AmountInput::Text(price.to_string())),
                currency: Some("GBP".into()),
                category: Some(category.to_string()),
                brand: Some(brand.to_string()),
                stock_quantity: *stock,
                ..Default::default()
            };
            Item::parse(input, Timestamp::now()).unwrap()
        })
        .collect();
    store.upsert_items(tenant, &items).unwrap();
}

/// A and B are always bought together (12 customers); 9 of them also took the out-of-stock O and 5 the
/// spoon X; C, D and E are another cluster. `buyer` bought only A; `regular` buys the candle D every 10 days.
fn seed(store: &dyn Store, tenant: &TenantId) {
    seed_items(store, tenant);
    let mut events = Vec::new();
    for c in 0..12u32 {
        let mut basket = vec!["A", "B"];
        if c < 9 {
            basket.push("O");
        }
        if c < 5 {
            basket.push("X");
        }
        events.push(order(&format!("ab-{c}"), &format!("c{c}"), c, &basket));
    }
    for c in 0..8u32 {
        events.push(order(&format!("cd-{c}"), &format!("d{c}"), c, &["C", "D", "E"]));
    }
    events.push(order("buyer-1", "buyer", 20, &["A"]));
    for (n, day) in [0u32, 10, 20, 30].into_iter().enumerate() {
        events.push(order(&format!("regular-{n}"), "regular", day, &["D"]));
    }
    events.push(order("regular-box", "regular", 5, &["C"]));
    store.append_events(tenant, &events).unwrap();
}

impl TestServer {
    fn start() -> Self {
        Self::start_with(EngineConfig::default())
    }

    fn start_with(engine: EngineConfig) -> Self {
        let (directory, store) = harness::store(false);
        let tenant = harness::tenant(store.as_ref(), "shop", "Gift Shop");
        seed(store.as_ref(), &tenant);
        Self::launch(directory, store, tenant, engine)
    }

    /// The same store behind a new server: the old one is stopped first.
    fn restart(self) -> Self {
        let TestServer { server, secret, public, tenant } = self;
        let server = server.restart(ServerOptions::default(), EngineConfig::default());
        TestServer { server, secret, public, tenant }
    }

    fn launch(directory: tempfile::TempDir, store: Arc<dyn Store>, tenant: TenantId, engine: EngineConfig) -> Self {
        let secret = harness::key(store.as_ref(), &tenant, ApiKeyKind::Secret, "test");
        let public = harness::key(store.as_ref(), &tenant, ApiKeyKind::Public, "web");
        let server = Server::launch(directory, store, ServerOptions::default(), engine);
        Self { server, secret, public, tenant }
    }

    fn recommend_as(&self, key: &str, body: &Value) -> RequestBuilder {
        self.client.post(format!("{}/v1/recommendations", self.base)).bearer_auth(key).json(body)
    }

    fn recommend(&self, body: &Value) -> RequestBuilder {
        self.recommend_as(&self.secret, body)
    }
}

fn expect(request: RequestBuilder, status: StatusCode) -> Value {
    let response = request.send().expect("request sent");
    let actual = response.status();
    let text = response.text().unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn expect_error(request: RequestBuilder, status: StatusCode, code: &str) {
    let body = expect(request, status);
    assert_eq!(body["code"], code, "unexpected error body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {body}");
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["item_id"].as_str().unwrap().to_string()).collect()
}

fn assert_no_duplicates(ids: &[String]) {
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in {ids:?}");
}

#[test]
fn similar_items_rank_the_bought_together_item_first() {
    let server = TestServer::start();
    let list = expect(server.recommend(&json!({"scenario": "similar", "item_id": "A"})), StatusCode::OK);
    assert_eq!(list["scenario"], "similar");
    assert!(list["recommendation_id"].as_str().is_some_and(|id| !id.is_empty()));
    let got = ids(&list);
    assert_eq!(got.first().map(String::as_str), Some("B"), "{list}");
    assert!(got.contains(&"X".to_string()), "{list}");
    assert!(!got.contains(&"A".to_string()), "the anchor is returned: {list}");
    assert!(!got.contains(&"O".to_string()), "an out-of-stock item is returned: {list}");
    assert_no_duplicates(&got);
    let first = &list["items"][0];
    assert_eq!(first["title"], "Beta saucer");
    assert_eq!(first["price"]["amount"], "4.50");
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert_eq!(first["explanation"]["signal"], "similar_items");
    assert_eq!(first["explanation"]["because_item_ids"], json!(["A"]));
    assert!(first["explanation"]["text"].as_str().unwrap().contains("Alpha mug"), "{list}");

    // Out-of-stock items come back only when asked for; excluded ids never.
    let all = expect(
        server.recommend(&json!({"scenario": "similar", "item_id": "A", "in_stock_only": false})),
        StatusCode::OK,
    );
    assert!(ids(&all).contains(&"O".to_string()), "{all}");
    let excluded = expect(
        server.recommend(&json!({"scenario": "similar", "item_id": "A", "exclude_item_ids": ["X", "B"]})),
        StatusCode::OK,
    );
    let got = ids(&excluded);
    assert!(!got.contains(&"X".to_string()) && !got.contains(&"B".to_string()), "{excluded}");
    let one = expect(server.recommend(&json!({"scenario": "similar", "item_id": "A", "count": 1})), StatusCode::OK);
    assert_eq!(ids(&one), vec!["B".to_string()]);
    // Without a shopper there is nobody to log an impression for; unknown anchors are 404.
    expect_error(
        server.recommend(&json!({"scenario": "similar", "item_id": "nope"})),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn for_you_explains_with_the_shoppers_own_history_and_logs_an_impression() {
    let server = TestServer::start();
    let list = expect(
        server.recommend(&json!({"scenario": "for_you", "user_id": "buyer", "exclude_item_ids": ["X"]})),
        StatusCode::OK,
    );
    let got = ids(&list);
    assert_eq!(got.first().map(String::as_str), Some("B"), "{list}");
    assert!(!got.contains(&"A".to_string()), "an item of the history is returned: {list}");
    assert!(!got.contains(&"O".to_string()) && !got.contains(&"X".to_string()), "{list}");
    assert_no_duplicates(&got);
    let first = &list["items"][0];
    assert_eq!(first["explanation"]["signal"], "your_history");
    assert_eq!(first["explanation"]["because_item_ids"], json!(["A"]));
    assert_eq!(first["explanation"]["text"], "Because you bought Alpha mug");
    // Every personal explanation cites an item the shopper really interacted with.
    for item in list["items"].as_array().unwrap() {
        if item["explanation"]["signal"] == "your_history" {
            assert_eq!(item["explanation"]["because_item_ids"], json!(["A"]), "{item}");
        }
    }

    // The served list is stored as an impression of the shopper (by the batched writer, within moments).
    let user = UserId::parse("buyer").unwrap();
    let recommendation_id = RecommendationId::parse(list["recommendation_id"].as_str().unwrap()).unwrap();
    let find = || {
        let timeline =
            server.store.user_timeline(&server.tenant, &user, &TimelineQuery { before_seq: None, limit: 10 }).unwrap();
        timeline.events.into_iter().find_map(|stored| match stored.event.kind {
            EventKind::Impression { recommendation_id: id, item_ids, positions } if id == recommendation_id => {
                Some((item_ids, positions))
            }
            _ => None,
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let impression = loop {
        match find() {
            Some(found) => break found,
            None if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            None => panic!("no impression with the recommendation id"),
        }
    };
    let stored_ids: Vec<String> = impression.0.iter().map(|id| id.to_string()).collect();
    assert_eq!(stored_ids, got);
    assert_eq!(impression.1, (0..got.len() as u32).collect::<Vec<_>>());

    // A shopper without history gets trending items, and the explanation says so.
    let newcomer =
        expect(server.recommend(&json!({"scenario": "for_you", "anonymous_id": "visitor-1"})), StatusCode::OK);
    assert!(!ids(&newcomer).is_empty());
    for item in newcomer["items"].as_array().unwrap() {
        let signal = item["explanation"]["signal"].as_str().unwrap();
        assert!(signal == "trending" || signal == "popular", "{item}");
        assert_eq!(item["explanation"]["because_item_ids"], json!([]));
        assert_ne!(item["item_id"], "O");
    }
    let trending = expect(server.recommend(&json!({"scenario": "trending", "count": 3})), StatusCode::OK);
    assert_eq!(ids(&trending).len(), 3);
    assert_eq!(trending["items"][0]["explanation"]["text"], "Trending this week");
}

impl TestServer {
    /// The impression events of `user` in the store, oldest first: (recommendation id, items).
    fn impressions_of(&self, user: &str) -> Vec<(String, Vec<String>)> {
        let user = UserId::parse(user).unwrap();
        let query = TimelineQuery { before_seq: None, limit: 100 };
        let timeline = self.store.user_timeline(&self.tenant, &user, &query).unwrap();
        let mut found: Vec<(String, Vec<String>)> = timeline
            .events
            .into_iter()
            .filter_map(|stored| match stored.event.kind {
                EventKind::Impression { recommendation_id, item_ids, .. } => {
                    Some((recommendation_id.to_string(), item_ids.iter().map(ToString::to_string).collect()))
                }
                _ => None,
            })
            .collect();
        found.reverse();
        found
    }
}

#[test]
fn log_impression_false_serves_the_list_without_storing_an_impression() {
    let server = TestServer::start();
    let body = json!({"scenario": "for_you", "user_id": "buyer", "log_impression": false});
    let silent = server.list(&body);
    assert!(!ids(&silent).is_empty(), "{silent}");
    // The default logs; the writer is first in, first out, so once this one is stored the one before would be.
    let logged = server.list(&json!({"scenario": "for_you", "user_id": "buyer"}));
    let logged_id = logged["recommendation_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let impressions = loop {
        let impressions = server.impressions_of("buyer");
        if impressions.iter().any(|(id, _)| *id == logged_id) || std::time::Instant::now() > deadline {
            break impressions;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stored: Vec<&String> = impressions.iter().map(|(id, _)| id).collect();
    assert_eq!(stored, vec![&logged_id], "only the default request stores an impression");
    assert_eq!(impressions[0].1, ids(&logged));
    expect_error(
        server.recommend(&json!({"scenario": "trending", "log_impression": "no"})),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
}

#[test]
fn items_carry_what_a_widget_shows_and_fields_trims_them() {
    let server = TestServer::start();
    expect(
        server.client.put(format!("{}/v1/items/A", server.base)).bearer_auth(&server.secret).json(&json!({
            "title": "Alpha mug", "price": "1234.50", "currency": "GBP", "category": "Home > Kitchen",
            "brand": "Acme", "image_url": "https://shop.example/a.jpg", "link": "https://shop.example/a",
            "availability": "preorder",
        })),
        StatusCode::OK,
    );
    let list = server.list(&json!({"scenario": "similar", "item_id": "B", "count": 7}));
    let mug = list["items"].as_array().unwrap().iter().find(|i| i["item_id"] == "A").expect("the mug").clone();
    assert_eq!(mug["title"], "Alpha mug");
    assert_eq!(mug["price"], json!({"amount": "1234.50", "currency": "GBP"}));
    assert_eq!(mug["price_text"], "£1,234.50");
    assert_eq!(mug["image_url"], "https://shop.example/a.jpg");
    assert_eq!(mug["link"], "https://shop.example/a");
    assert_eq!(mug["availability"], "preorder");
    let saucer = &list["items"].as_array().unwrap().iter().find(|i| i["item_id"] != "A").unwrap().clone();
    assert_eq!((saucer["image_url"].clone(), saucer["link"].clone()), (Value::Null, Value::Null), "{saucer}");
    assert_eq!(saucer["availability"], "in_stock", "{saucer}");

    let trimmed = server.list(&json!({"scenario": "similar", "item_id": "B", "fields": ["image_url", "price_text"]}));
    assert_eq!(ids(&trimmed), ids(&list), "the same list");
    for item in trimmed["items"].as_array().unwrap() {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["image_url", "item_id", "price_text"], "{item}");
    }
    assert!(trimmed["recommendation_id"].is_string() && trimmed["model_version"].is_i64(), "{trimmed}");
    let only_ids = server.list(&json!({"scenario": "trending", "count": 2, "fields": []}));
    assert_eq!(only_ids["items"][0].as_object().unwrap().len(), 1, "{only_ids}");
    expect_error(
        server.recommend(&json!({"scenario": "trending", "fields": ["title", "colour"]})),
        StatusCode::BAD_REQUEST,
        "invalid_value",
    );
    // The OpenAPI document describes the new fields and the options.
    let openapi = expect(server.client.get(format!("{}/v1/openapi.json", server.base)), StatusCode::OK);
    let schemas = &openapi["components"]["schemas"];
    for field in ["price_text", "image_url", "link", "availability"] {
        assert!(schemas["RecommendedItem"]["properties"][field].is_object(), "{field}: {}", schemas["RecommendedItem"]);
    }
    for field in ["fields", "log_impression"] {
        let properties = &schemas["RecommendationRequest"]["properties"];
        assert!(properties[field].is_object(), "{field}: {properties}");
    }
}

#[test]
fn bad_requests_and_permissions() {
    let server = TestServer::start();
    expect_error(server.recommend(&json!({"scenario": "similar"})), StatusCode::BAD_REQUEST, "missing_field");
    expect_error(
        server.recommend(&json!({"scenario": "similar", "item_id": "A", "count": 0})),
        StatusCode::BAD_REQUEST,
        "out_of_range",
    );
    expect_error(
        server.recommend(&json!({"scenario": "similar", "item_id": "A", "count": 101})),
        StatusCode::BAD_REQUEST,
        "out_of_range",
    );
    expect_error(
        server.recommend(&json!({"scenario": "similar", "item_id": "A", "colour": "red"})),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    expect_error(server.recommend(&json!({"scenario": "best_sellers"})), StatusCode::BAD_REQUEST, "invalid_body");
    expect_error(server.recommend(&json!({"scenario": "for_you"})), StatusCode::BAD_REQUEST, "missing_field");
    expect_error(
        server.client.post(format!("{}/v1/recommendations", server.base)).bearer_auth(&server.secret).body("{"),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );

    // A public key acts only for the user of its token, or for anonymous visitors.
    let public = server.public.clone();
    let for_buyer = json!({"scenario": "for_you", "user_id": "buyer"});
    expect_error(server.recommend_as(&public, &for_buyer), StatusCode::FORBIDDEN, "forbidden");
    let token = expect(
        server
            .client
            .post(format!("{}/v1/user-tokens", server.base))
            .bearer_auth(&server.secret)
            .json(&json!({"user_id": "someone-else", "ttl_seconds": 600})),
        StatusCode::OK,
    );
    let token = token["token"].as_str().unwrap().to_string();
    expect_error(
        server.recommend_as(&public, &for_buyer).header("x-attune-user-token", token.clone()),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let own = json!({"scenario": "for_you", "user_id": "someone-else"});
    expect(server.recommend_as(&public, &own).header("x-attune-user-token", token), StatusCode::OK);
    expect(
        server.recommend_as(&public, &json!({"scenario": "similar", "item_id": "A", "anonymous_id": "v9"})),
        StatusCode::OK,
    );
    expect_error(
        server.client.post(format!("{}/v1/recommendations", server.base)).json(&for_buyer),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[test]
fn openapi_documents_the_endpoint() {
    let server = TestServer::start();
    let openapi = expect(server.client.get(format!("{}/v1/openapi.json", server.base)), StatusCode::OK);
    let operation = &openapi["paths"]["/v1/recommendations"]["post"];
    assert_eq!(operation["tags"], json!(["recommendations"]), "{operation}");
    assert!(openapi["components"]["schemas"]["RecommendationRequest"].is_object());
}

impl TestServer {
    fn send_event(&self, event: &Value) {
        expect(
            self.client.post(format!("{}/v1/events", self.base)).bearer_auth(&self.secret).json(event),
            StatusCode::OK,
        );
    }

    fn list(&self, body: &Value) -> Value {
        expect(self.recommend(body), StatusCode::OK)
    }

    /// The catalog, by id, as the server stores it.
    fn catalog(&self) -> std::collections::HashMap<String, Item> {
        self.store.all_items(&self.tenant).unwrap().into_iter().map(|item| (item.id.to_string(), item)).collect()
    }
}

fn signals(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["explanation"]["signal"].as_str().unwrap().to_string()).collect()
}

#[test]
fn bad_filters_are_400_invalid_filter_with_the_position() {
    let server = TestServer::start();
    let cases = [
        (json!({"scenario": "trending", "filter": "price < "}), "filter", 8, 9),
        (json!({"scenario": "trending", "filter": "colr = \"red\""}), "filter", 0, 1),
        (json!({"scenario": "trending", "filter": "brand < \"Acme\""}), "filter", 6, 7),
        (json!({"scenario": "trending", "filter": "(in_stock"}), "filter", 9, 10),
        (
            json!({"scenario": "trending", "boosts": [{"filter": "in_stock", "weight": 2}, {"filter": "price >", "weight": 2}]}),
            "boosts[1].filter",
            7,
            8,
        ),
    ];
    for (body, field, position, column) in cases {
        let error = expect(server.recommend(&body), StatusCode::BAD_REQUEST);
        assert_eq!(error["code"], "invalid_filter", "{error}");
        assert_eq!(error["position"], position, "{error}");
        assert_eq!(error["column"], column, "{error}");
        assert_eq!(error["details"][0]["field"], field, "{error}");
        assert!(error["message"].as_str().unwrap().contains(&format!("at position {position}")), "{error}");
    }
    let error =
        expect(server.recommend(&json!({"scenario": "trending", "filter": "price < "})), StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("expected a value after `<`"), "{error}");
    expect_error(
        server.recommend(&json!({"scenario": "trending", "max_per_category": 0})),
        StatusCode::BAD_REQUEST,
        "out_of_range",
    );
    expect_error(
        server.recommend(&json!({"scenario": "trending", "mmr_lambda": 1.5})),
        StatusCode::BAD_REQUEST,
        "out_of_range",
    );
    expect_error(
        server.recommend(&json!({"scenario": "trending", "boosts": [{"filter": "in_stock", "weight": -1}]})),
        StatusCode::BAD_REQUEST,
        "out_of_range",
    );
    expect_error(server.recommend(&json!({"scenario": "complete_cart"})), StatusCode::BAD_REQUEST, "missing_field");
    expect_error(server.recommend(&json!({"scenario": "bought_together"})), StatusCode::BAD_REQUEST, "missing_field");
    expect_error(
        server.recommend(&json!({"scenario": "buy_again", "anonymous_id": "v1"})),
        StatusCode::BAD_REQUEST,
        "missing_field",
    );
    expect_error(server.recommend(&json!({"scenario": "next"})), StatusCode::BAD_REQUEST, "missing_field");
}

#[test]
fn filters_and_boosts_shape_the_list() {
    let server = TestServer::start();
    let acme = server.list(&json!({"scenario": "trending", "count": 10, "filter": "brand = \"acme\" and price < 10"}));
    let got = ids(&acme);
    assert!(!got.is_empty());
    let catalog = server.catalog();
    for id in &got {
        let item = &catalog[id];
        assert_eq!(item.brand.as_deref(), Some("Acme"), "{acme}");
        assert!(item.price.unwrap().minor_units < 1000, "{acme}");
    }
    // The cheap Zed spoon is boosted from the back of `similar` to the front.
    let plain = ids(&server.list(&json!({"scenario": "similar", "item_id": "A"})));
    assert_eq!(plain.first().map(String::as_str), Some("B"));
    let boosted = server.list(&json!({"scenario": "similar", "item_id": "A",
        "boosts": [{"filter": "category = \"Home > Kitchen > Cutlery\"", "weight": 100}]}));
    assert_eq!(ids(&boosted).first().map(String::as_str), Some("X"), "{boosted}");
    let added = server.list(&json!({"scenario": "similar", "item_id": "A",
        "boosts": [{"filter": "brand = \"Zed\"", "weight": 10, "mode": "add"}]}));
    assert_eq!(ids(&added).first().map(String::as_str), Some("X"), "{added}");
}

#[test]
fn diversity_caps_items_per_category() {
    let server = TestServer::start();
    let uncapped = server.list(&json!({"scenario": "trending", "count": 10}));
    let kitchen = |list: &Value| {
        let catalog = server.catalog();
        ids(list).iter().filter(|id| catalog[*id].category_path.join(" > ") == "Home > Kitchen").count()
    };
    assert!(kitchen(&uncapped) >= 2, "{uncapped}");
    for body in [
        json!({"scenario": "trending", "count": 10, "max_per_category": 1}),
        json!({"scenario": "trending", "count": 10, "max_per_category": 1, "mmr_lambda": 0.5}),
        json!({"scenario": "for_you", "anonymous_id": "v-div", "count": 10, "max_per_category": 1}),
    ] {
        let capped = server.list(&body);
        let catalog = server.catalog();
        let mut seen = HashSet::new();
        for id in ids(&capped) {
            assert!(seen.insert(catalog[&id].category_path.join(" > ")), "two items of one category: {capped}");
        }
        assert_eq!(kitchen(&capped), 1, "{capped}");
    }
    // MMR with λ = 0 prefers what is least like the picks so far: after B, not the near-duplicate A.
    let mmr = server.list(&json!({"scenario": "trending", "count": 3, "mmr_lambda": 0.0}));
    let got = ids(&mmr);
    assert!(!(got.contains(&"A".to_string()) && got.contains(&"B".to_string())), "{mmr}");
}

/// A category cap must not leave the list short while other categories have items: 60 best sellers of one
/// category fill the first candidates far beyond the list's pool, and 12 less popular items of 12 other
/// categories come after them.
#[test]
fn a_category_cap_fills_the_list_from_the_other_categories() {
    let (directory, store) = harness::store(false);
    let tenant = harness::tenant(store.as_ref(), "capped", "Dress Shop");
    let dresses: Vec<String> = (0..60).map(|i| format!("dress-{i}")).collect();
    let others: Vec<String> = (0..12).map(|i| format!("other-{i}")).collect();
    let item = |id: &str, category: String| {
        let input = ItemInput {
            id: Some(id.to_string()),
            title: Some(format!("Item {id}")),
            price: Some(AmountInput::Text("20.00".into())),
            currency: Some("GBP".into()),
            category: Some(category),
            ..Default::default()
        };
        Item::parse(input, Timestamp::now()).unwrap()
    };
    let mut items: Vec<Item> = dresses.iter().map(|id| item(id, "Women > Dresses".into())).collect();
    items.extend(others.iter().enumerate().map(|(i, id)| item(id, format!("Other > Kind {i}"))));
    store.upsert_items(&tenant, &items).unwrap();
    let mut events = Vec::new();
    for (i, dress) in dresses.iter().enumerate() {
        for buyer in 0..3 {
            events.push(order(&format!("{dress}-{buyer}"), &format!("buyer-{i}-{buyer}"), 1, &[dress.as_str()]));
        }
    }
    for (i, other) in others.iter().enumerate() {
        events.push(order(&format!("{other}-0"), &format!("other-buyer-{i}"), 1, &[other.as_str()]));
    }
    store.append_events(&tenant, &events).unwrap();
    let server = TestServer::launch(directory, store, tenant, EngineConfig::default());

    let uncapped = server.list(&json!({"scenario": "trending", "count": 10}));
    assert!(ids(&uncapped).iter().all(|id| id.starts_with("dress-")), "{uncapped}");
    for body in [
        json!({"scenario": "trending", "count": 10, "max_per_category": 1}),
        json!({"scenario": "trending", "count": 10, "max_per_category": 1, "filter": "price < 50"}),
        json!({"scenario": "for_you", "anonymous_id": "new-visitor", "count": 10, "max_per_category": 2}),
    ] {
        let capped = server.list(&body);
        let got = ids(&capped);
        assert_eq!(got.len(), 10, "{body}: {capped}");
        let cap = body["max_per_category"].as_u64().unwrap() as usize;
        assert_eq!(got.iter().filter(|id| id.starts_with("dress-")).count(), cap, "{body}: {capped}");
        assert_no_duplicates(&got);
    }
}

#[test]
fn every_scenario_explains_with_the_shoppers_or_the_requests_items() {
    let server = TestServer::start();
    server.send_event(&json!({"type": "view", "event_id": "v1", "user_id": "buyer", "item_id": "C"}));
    server.send_event(
        &json!({"type": "add_to_cart", "event_id": "v2", "user_id": "buyer", "item_id": "D", "quantity": 1}),
    );
    let history: HashSet<String> = ["A", "C", "D"].iter().map(|s| s.to_string()).collect();
    let regular_history: HashSet<String> = ["C", "D"].iter().map(|s| s.to_string()).collect();
    let cases = [
        (json!({"scenario": "for_you", "user_id": "buyer"}), history.clone()),
        (json!({"scenario": "recently_viewed", "user_id": "buyer"}), history.clone()),
        (json!({"scenario": "next", "user_id": "buyer"}), history.clone()),
        (json!({"scenario": "buy_again", "user_id": "regular"}), regular_history),
        (json!({"scenario": "similar", "item_id": "A", "user_id": "buyer"}), HashSet::from(["A".to_string()])),
        (json!({"scenario": "bought_together", "item_id": "A"}), HashSet::from(["A".to_string()])),
        (
            json!({"scenario": "complete_cart", "cart_item_ids": ["A", "C"]}),
            HashSet::from(["A".to_string(), "C".to_string()]),
        ),
    ];
    for (body, allowed) in cases {
        let list = server.list(&body);
        assert!(!ids(&list).is_empty(), "{body} gave nothing");
        for item in list["items"].as_array().unwrap() {
            let explanation = &item["explanation"];
            assert!(!explanation["text"].as_str().unwrap().is_empty());
            let because = explanation["because_item_ids"].as_array().unwrap();
            if !matches!(explanation["signal"].as_str().unwrap(), "trending" | "popular") {
                assert!(!because.is_empty(), "{body}: {item}");
            }
            for anchor in because {
                assert!(allowed.contains(anchor.as_str().unwrap()), "{body}: {anchor} is not the shopper's: {item}");
            }
        }
    }
    let together = server.list(&json!({"scenario": "bought_together", "item_id": "A"}));
    assert_eq!(ids(&together).first().map(String::as_str), Some("B"), "{together}");
    assert_eq!(together["items"][0]["explanation"]["signal"], "bought_together");
    assert_eq!(together["items"][0]["explanation"]["text"], "Often bought with Alpha mug");
    let again = server.list(&json!({"scenario": "buy_again", "user_id": "regular"}));
    assert_eq!(ids(&again), vec!["D".to_string()], "{again}");
    assert_eq!(again["items"][0]["explanation"]["text"], "You buy this about every 10 days");
    let cart = server.list(&json!({"scenario": "complete_cart", "cart_item_ids": ["A", "C"]}));
    let got = ids(&cart);
    assert!(!got.contains(&"A".to_string()) && !got.contains(&"C".to_string()), "{cart}");
    // Ranked by confidence P(j | cart item), the likeliest addition (chosen by `attune eval recs`), not by lift:
    // P(B | mug) ≈ 0.92 before P(D | cedar box) = P(E | cedar box) ≈ 0.89 (tie broken by id).
    assert_eq!(got[..3], ["B", "D", "E"], "{cart}");
    assert_eq!(cart["items"][0]["explanation"]["because_item_ids"], json!(["A"]), "{cart}");
    assert_eq!(cart["items"][1]["explanation"]["because_item_ids"], json!(["C"]), "{cart}");
}

#[test]
fn a_new_event_changes_the_next_answer_at_once() {
    let server = TestServer::start();
    // Build (and cache) the model first, so what follows can only come from reading the new events.
    server.list(&json!({"scenario": "trending"}));
    let empty = server.list(&json!({"scenario": "recently_viewed", "anonymous_id": "fresh"}));
    assert!(ids(&empty).is_empty(), "{empty}");
    server.send_event(&json!({"type": "view", "event_id": "f1", "anonymous_id": "fresh", "item_id": "C"}));
    let viewed = server.list(&json!({"scenario": "recently_viewed", "anonymous_id": "fresh"}));
    assert_eq!(ids(&viewed), vec!["C".to_string()]);
    assert_eq!(signals(&viewed), vec!["recently_viewed".to_string()]);
    let next = server.list(&json!({"scenario": "next", "anonymous_id": "fresh", "count": 2}));
    let got = ids(&next);
    assert!(got.iter().all(|id| id == "D" || id == "E"), "{next}");
    assert_eq!(next["items"][0]["explanation"]["because_item_ids"], json!(["C"]), "{next}");
    assert_eq!(next["items"][0]["explanation"]["text"], "Because you viewed Cedar box");

    server.send_event(&json!({"type": "view", "event_id": "f2", "anonymous_id": "fresh", "item_id": "A"}));
    server.send_event(&json!({"type": "view", "event_id": "f3", "anonymous_id": "fresh", "item_id": "C"}));
    server.send_event(&json!({"type": "view", "event_id": "f4", "anonymous_id": "fresh", "item_id": "A"}));
    let viewed = server.list(&json!({"scenario": "recently_viewed", "anonymous_id": "fresh"}));
    assert_eq!(ids(&viewed), vec!["A".to_string(), "C".to_string()], "newest first, each once: {viewed}");
    let next = server.list(&json!({"scenario": "next", "anonymous_id": "fresh", "count": 1}));
    assert_eq!(ids(&next), vec!["B".to_string()], "{next}");
    assert_eq!(next["items"][0]["explanation"]["because_item_ids"][0], "A", "{next}");

    // `not_interested` takes effect on the very next list.
    let before = ids(&server.list(&json!({"scenario": "for_you", "user_id": "buyer"})));
    assert_eq!(before.first().map(String::as_str), Some("B"));
    server.send_event(&json!({"type": "not_interested", "event_id": "n1", "user_id": "buyer", "item_id": "B"}));
    let after = ids(&server.list(&json!({"scenario": "for_you", "user_id": "buyer"})));
    assert!(!after.contains(&"B".to_string()), "{after:?}");
    let similar = ids(&server.list(&json!({"scenario": "similar", "item_id": "A", "user_id": "buyer"})));
    assert!(!similar.contains(&"B".to_string()), "{similar:?}");
}

#[test]
fn items_and_shoppers_the_model_has_not_seen_get_content_matches() {
    let server = TestServer::start();
    let first = server.list(&json!({"scenario": "trending"}));
    let version = first["model_version"].clone();
    // A new product after training: no purchases, so no item-kNN neighbours; its brand and category are known.
    expect(
        server.client.put(format!("{}/v1/items/N", server.base)).bearer_auth(&server.secret).json(&json!({
            "title": "Alpha mug large", "brand": "Acme", "category": "Home > Kitchen", "price": "5.50",
            "currency": "GBP",
        })),
        StatusCode::OK,
    );
    let similar = server.list(&json!({"scenario": "similar", "item_id": "N", "count": 3}));
    assert_eq!(similar["model_version"], version, "a new item must not need a new model: {similar}");
    let got = ids(&similar);
    // The mug shares the title word, brand and category; the saucer brand and category; the out-of-stock
    // teapot is never returned.
    assert_eq!(got.first().map(String::as_str), Some("A"), "{similar}");
    assert!(got.contains(&"B".to_string()) && !got.contains(&"O".to_string()), "{similar}");
    for item in similar["items"].as_array().unwrap() {
        assert_eq!(item["explanation"]["signal"], "similar_content", "{item}");
        assert_eq!(item["explanation"]["because_item_ids"], json!(["N"]), "{item}");
    }
    let text = similar["items"][0]["explanation"]["text"].as_str().unwrap();
    assert!(text.starts_with("Like Alpha mug large: ") && text.contains("\"mug\" in the title"), "{text}");

    // A shopper whose only event is on the new item: the collaborative model knows nothing of it.
    server.send_event(&json!({"type": "view", "event_id": "new-1", "user_id": "newcomer", "item_id": "N"}));
    let for_you = server.list(&json!({"scenario": "for_you", "user_id": "newcomer", "count": 2}));
    assert_eq!(ids(&for_you), vec!["A".to_string(), "B".to_string()], "{for_you}");
    assert_eq!(signals(&for_you), vec!["similar_content".to_string(); 2]);
    let text = for_you["items"][0]["explanation"]["text"].as_str().unwrap();
    assert!(text.starts_with("Because you viewed Alpha mug large ("), "{text}");
    // Their session continues from the new item the same way.
    let next = server.list(&json!({"scenario": "next", "user_id": "newcomer", "count": 1}));
    assert_eq!(ids(&next), vec!["A".to_string()], "{next}");
    assert_eq!(next["items"][0]["explanation"]["because_item_ids"], json!(["N"]), "{next}");
}

#[test]
fn a_new_item_bought_with_an_existing_one_becomes_its_companion_within_a_minute_without_training() {
    let server = TestServer::start();
    let before = server.list(&json!({"scenario": "bought_together", "item_id": "X", "count": 10}));
    let version = before["model_version"].clone();
    // A product added after training, sharing no title word, brand or category with the spoon.
    expect(
        server.client.put(format!("{}/v1/items/H", server.base)).bearer_auth(&server.secret).json(&json!({
            "title": "Garden hose", "brand": "Hoser", "category": "Outdoor > Watering", "price": "20.00",
            "currency": "GBP",
        })),
        StatusCode::OK,
    );
    assert!(!ids(&before).contains(&"H".to_string()), "{before}");
    for n in 0..5 {
        server.send_event(&json!({"type": "purchase", "event_id": format!("hose-{n}"), "user_id": format!("g{n}"),
            "order_id": format!("hose-{n}"), "currency": "GBP", "lines": [
                {"item_id": "X", "quantity": 1, "unit_price": "1.50"},
                {"item_id": "H", "quantity": 1, "unit_price": "20.00"}]}));
    }
    let clock = std::time::Instant::now();
    let together = loop {
        let list = server.list(&json!({"scenario": "bought_together", "item_id": "X", "count": 10}));
        if ids(&list).contains(&"H".to_string()) {
            break list;
        }
        assert!(clock.elapsed() < std::time::Duration::from_secs(60), "not a companion after a minute: {list}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(together["model_version"], version, "no training: {together}");
    let hose = together["items"].as_array().unwrap().iter().find(|i| i["item_id"] == "H").unwrap();
    assert_eq!(hose["explanation"]["signal"], "bought_together", "{hose}");
    assert_eq!(hose["explanation"]["because_item_ids"], json!(["X"]), "{hose}");
    assert_eq!(hose["explanation"]["text"], "Often bought with Extra spoon", "{hose}");
    let back = server.list(&json!({"scenario": "bought_together", "item_id": "H", "count": 3}));
    assert_eq!(ids(&back).first().map(String::as_str), Some("X"), "and the other way round: {back}");
    assert_eq!(server.versions().len(), 1, "still the one trained version");
    // Erased buyers' orders stop counting at once.
    for n in 0..5 {
        let erase = server.client.delete(format!("{}/v1/users/g{n}", server.base)).bearer_auth(&server.secret);
        expect(erase, StatusCode::OK);
    }
    let erased = server.list(&json!({"scenario": "bought_together", "item_id": "X", "count": 10}));
    assert!(!ids(&erased).contains(&"H".to_string()), "{erased}");
}

#[test]
fn a_response_with_rules() {
    let server = TestServer::start();
    let mut list = server.list(&json!({
        "scenario": "similar", "item_id": "A", "count": 3,
        "filter": "not brand = \"Zed\" or price < 2",
        "boosts": [{"filter": "price < 2", "weight": 0.5}],
        "max_per_category": 2,
        "in_stock_only": false,
    }));
    list["recommendation_id"] = json!("[recommendation_id]");
    for item in list["items"].as_array_mut().unwrap() {
        let score = item["score"].as_f64().unwrap();
        item["score"] = json!(format!("{score:.4}"));
    }
    insta::assert_json_snapshot!("similar_with_rules", list);
}

/// One random request: a scenario, a shopper, a filter, exclusions.
fn random_request() -> impl Strategy<Value = Value> {
    let scenario = prop::sample::select(vec![
        "similar",
        "for_you",
        "trending",
        "recently_viewed",
        "bought_together",
        "complete_cart",
        "buy_again",
        "next",
    ]);
    let predicate = prop::sample::select(vec![
        "price < 5",
        "price >= 6",
        "brand = \"Acme\"",
        "brand in (\"Zed\")",
        "category = \"Home > Kitchen\"",
        "category != \"Home > Candles\"",
        "in_stock",
        "not in_stock",
        "id = \"B\"",
        "price > 1.5",
    ]);
    let filter = prop::option::of(
        (predicate.clone(), prop::sample::select(vec![" and ", " or "]), prop::option::of(predicate)).prop_map(
            |(a, op, b)| match b {
                Some(b) => format!("{a}{op}not {b}"),
                None => a.to_string(),
            },
        ),
    );
    let item = prop::sample::select(vec!["A", "B", "C", "D", "E", "X", "O"]);
    let shopper = prop::sample::select(vec!["buyer", "regular", "c1", "d2", "viewer"]);
    (
        scenario,
        filter,
        prop::collection::vec(item.clone(), 0..3),
        item.clone(),
        prop::collection::vec(item, 1..3),
        shopper,
        prop::option::of(any::<bool>()),
        prop::option::of(1u32..3),
    )
        .prop_map(|(scenario, filter, exclude, anchor, cart, shopper, in_stock_only, cap)| {
            let mut body = json!({"scenario": scenario, "user_id": shopper, "count": 10, "exclude_item_ids": exclude,
                "item_id": anchor, "cart_item_ids": cart});
            if let Some(filter) = filter {
                body["filter"] = json!(filter);
            }
            if let Some(in_stock_only) = in_stock_only {
                body["in_stock_only"] = json!(in_stock_only);
            }
            if let Some(cap) = cap {
                body["max_per_category"] = json!(cap);
            }
            body
        })
}

#[test]
fn no_filtered_excluded_or_out_of_stock_item_ever_appears() {
    let server = TestServer::start();
    server.send_event(&json!({"type": "view", "event_id": "w1", "user_id": "viewer", "item_id": "O"}));
    server.send_event(&json!({"type": "view", "event_id": "w2", "user_id": "viewer", "item_id": "A"}));
    server.send_event(&json!({"type": "not_interested", "event_id": "w3", "user_id": "viewer", "item_id": "B"}));
    server.send_event(&json!({"type": "not_interested", "event_id": "w4", "user_id": "c1", "item_id": "X"}));
    let not_interested = |user: &str| match user {
        "viewer" => vec!["B"],
        "c1" => vec!["X"],
        _ => vec![],
    };
    let catalog = server.catalog();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(32));
    runner
        .run(&random_request(), |body| {
            let list = server.list(&body);
            let got = ids(&list);
            assert_no_duplicates(&got);
            let filter = body["filter"].as_str().map(|f| FilterExpr::parse(f).unwrap());
            let excluded: Vec<&str> =
                body["exclude_item_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let user = body["user_id"].as_str().unwrap();
            for id in &got {
                let item = &catalog[id];
                prop_assert!(filter.as_ref().is_none_or(|f| f.matches(item)), "{} fails the filter: {}", id, body);
                prop_assert!(!excluded.contains(&id.as_str()), "{} is excluded: {}", id, body);
                prop_assert!(!not_interested(user).contains(&id.as_str()), "{} is not interesting: {}", id, body);
                if body["in_stock_only"] != json!(false) {
                    prop_assert!(item.is_in_stock(), "{} is out of stock: {}", id, body);
                }
                match body["scenario"].as_str().unwrap() {
                    "similar" | "bought_together" => prop_assert_ne!(id, body["item_id"].as_str().unwrap()),
                    "complete_cart" => prop_assert!(!body["cart_item_ids"].as_array().unwrap().contains(&json!(id))),
                    _ => {}
                }
            }
            if let Some(cap) = body["max_per_category"].as_u64() {
                let mut per_category = std::collections::HashMap::new();
                for id in &got {
                    *per_category.entry(catalog[id].category_path.join(" > ")).or_insert(0u64) += 1;
                }
                prop_assert!(per_category.values().all(|n| *n <= cap), "{}: {:?}", body, got);
            }
            Ok(())
        })
        .unwrap();
}

impl TestServer {
    fn get(&self, path: &str) -> Value {
        expect(self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.secret), StatusCode::OK)
    }

    /// Waits until no `train_recs` task runs (the start-up one included).
    fn settle(&self) {
        let started = std::time::Instant::now();
        loop {
            let tasks = self.get("/v1/tasks");
            let running = tasks["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == "train_recs" && t["status"] == "running");
            if !running {
                return;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "training never finished: {tasks}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Runs a `train_recs` task to its end and returns its record.
    fn train(&self) -> Value {
        let started = expect(
            self.client
                .post(format!("{}/v1/tasks", self.base))
                .bearer_auth(&self.secret)
                .json(&json!({"kind": "train_recs"})),
            StatusCode::ACCEPTED,
        );
        let id = started["task"]["id"].as_str().unwrap().to_string();
        let clock = std::time::Instant::now();
        loop {
            let task = self.get(&format!("/v1/tasks/{id}"));
            if task["status"] != "running" {
                assert_eq!(task["status"], "succeeded", "{task}");
                return task;
            }
            assert!(clock.elapsed() < std::time::Duration::from_secs(60), "training never finished: {task}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn models(&self) -> Value {
        self.get("/v1/models/recs")
    }

    fn versions(&self) -> Vec<i64> {
        self.models()["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect()
    }
}

#[test]
fn training_stores_versions_with_metrics_and_the_same_seed_gives_the_same_bytes() {
    let server = TestServer::start();
    // The first request (or the start-up task) trains version 1; nothing else trains meanwhile.
    let list = server.list(&json!({"scenario": "trending"}));
    server.settle();
    assert_eq!(list["model_version"], 1, "{list}");
    assert_eq!(server.versions(), vec![1]);

    let task = server.train();
    assert!(task["summary"].as_str().unwrap().starts_with("version 2:"), "{task}");
    let models = server.models();
    assert_eq!(models["kind"], "recs");
    assert_eq!(models["active_version"], 2, "{models}");
    let versions = models["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{models}");
    let newest = &versions[0];
    assert_eq!((newest["version"].as_i64(), newest["active"].as_bool()), (Some(2), Some(true)), "{models}");
    assert_eq!(versions[1]["active"], false);
    assert!(newest["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{newest}");
    let last_seq = server.store.recent_events(&server.tenant, 1).unwrap()[0].seq;
    assert_eq!(newest["events_through_seq"].as_i64(), Some(last_seq));
    assert!(newest["payload_bytes"].as_u64().unwrap() > 100, "{newest}");
    let metrics = &newest["metrics"];
    assert_eq!(metrics["seed"], 42, "{metrics}");
    assert_eq!(metrics["items"], 7, "{metrics}");
    assert_eq!(metrics["k"], 10, "{metrics}");
    let (measured, tuned) = (metrics["eval_users"].as_u64().unwrap(), metrics["tune_users"].as_u64().unwrap());
    assert!(measured >= 5 && tuned >= measured, "half the held-out shoppers choose, half measure: {metrics}");
    for scorer in ["for_you", "for_you_als", "for_you_ease", "for_you_blend", "next", "popular"] {
        for name in ["hr", "ndcg", "coverage"] {
            let value = metrics[scorer][name].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{scorer} {name}: {metrics}");
        }
        assert!(metrics[scorer]["ndcg"].as_f64() <= metrics[scorer]["hr"].as_f64(), "{metrics}");
    }
    let tuning: Vec<(String, f64)> = serde_json::from_value(metrics["tuning_ndcg"].clone()).unwrap();
    let names: Vec<&str> = tuning.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["item_knn", "als", "ease", "blend"], "{metrics}");
    let best = tuning.iter().fold(&tuning[0], |best, candidate| if candidate.1 > best.1 { candidate } else { best });
    assert_eq!(metrics["for_you_serves"], best.0.as_str(), "the best NDCG on the tuning half serves: {metrics}");
    assert_eq!(metrics["blend_weights"].as_array().map(Vec::len), Some(3), "{metrics}");
    // The shoppers of the A–B cluster hold out one of the pair: item-kNN finds it.
    assert!(metrics["for_you"]["hr"].as_f64().unwrap() > 0.3, "{metrics}");
    let list = server.list(&json!({"scenario": "similar", "item_id": "A"}));
    assert_eq!(list["model_version"], 2, "{list}");

    // Same events, same seed: the same bytes, whoever trained.
    let v1 = server.store.model_snapshot_payload(&server.tenant, "recs", 1).unwrap().unwrap();
    let v2 = server.store.model_snapshot_payload(&server.tenant, "recs", 2).unwrap().unwrap();
    assert!(v1 == v2, "versions 1 and 2 differ ({} and {} bytes)", v1.len(), v2.len());
    let options = TrainOptions::default();
    let direct = training::train(server.store.as_ref(), &server.tenant, &options, &|_, _| {}).unwrap();
    assert_eq!(direct.info.version, 3);
    let v3 = server.store.model_snapshot_payload(&server.tenant, "recs", 3).unwrap().unwrap();
    assert!(v3 == v1, "a direct training differs");
    let other = TrainOptions { seed: 7, ..options };
    training::train(server.store.as_ref(), &server.tenant, &other, &|_, _| {}).unwrap();
    let v4 = server.store.model_snapshot_payload(&server.tenant, "recs", 4).unwrap().unwrap();
    assert!(v4 != v1, "the seed is part of the model");
}

#[test]
fn hot_swaps_under_concurrent_requests_never_fail_a_request() {
    let server = Arc::new(TestServer::start());
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bodies = [
        json!({"scenario": "similar", "item_id": "A"}),
        json!({"scenario": "for_you", "user_id": "buyer"}),
        json!({"scenario": "trending"}),
        json!({"scenario": "bought_together", "item_id": "C"}),
        json!({"scenario": "complete_cart", "cart_item_ids": ["A", "C"]}),
        json!({"scenario": "buy_again", "user_id": "regular"}),
        json!({"scenario": "next", "anonymous_id": "hammer"}),
        json!({"scenario": "recently_viewed", "user_id": "c1"}),
    ];
    let clients: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = Client::new();
                let mut outcomes: Vec<(u16, i64)> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || outcomes.len() < 20 {
                    let response = client
                        .post(format!("{}/v1/recommendations", server.base))
                        .bearer_auth(&server.secret)
                        .json(&body)
                        .send()
                        .expect("request sent");
                    let status = response.status().as_u16();
                    let list: Value = response.json().unwrap_or(Value::Null);
                    outcomes.push((status, list["model_version"].as_i64().unwrap_or(-1)));
                }
                outcomes
            })
        })
        .collect();
    for _ in 0..3 {
        server.train();
    }
    let activated = expect(
        server.client.post(format!("{}/v1/models/recs/2/activate", server.base)).bearer_auth(&server.secret),
        StatusCode::OK,
    );
    assert_eq!((activated["version"].as_i64(), activated["active"].as_bool()), (Some(2), Some(true)));
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    let mut seen_versions = HashSet::new();
    for client in clients {
        for (status, version) in client.join().unwrap() {
            assert_eq!(status, 200, "a request failed during a swap");
            seen_versions.insert(version);
            total += 1;
        }
    }
    assert!(total >= 8 * 20, "{total} requests");
    assert!(seen_versions.iter().all(|v| (1..=4).contains(v)), "{seen_versions:?}");
    assert!(seen_versions.len() >= 2, "no swap was seen: {seen_versions:?}");
    assert_eq!(server.models()["active_version"], 2);
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 2);
}

#[test]
fn a_restarted_server_serves_the_stored_version_and_retrains_only_when_behind() {
    let server = TestServer::start();
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    server.train();
    assert_eq!(server.versions(), vec![2, 1]);

    let server = server.restart();
    let list = server.list(&json!({"scenario": "similar", "item_id": "A", "anonymous_id": "browser"}));
    assert_eq!(list["model_version"], 2, "the first request after a restart: {list}");
    assert_eq!(ids(&list).first().map(String::as_str), Some("B"));
    server.settle();
    std::thread::sleep(std::time::Duration::from_millis(100));
    server.settle();
    assert_eq!(server.versions(), vec![2, 1], "nothing was retrained");
    let tasks = server.get("/v1/tasks");
    assert!(tasks["tasks"].as_array().unwrap().iter().all(|t| t["kind"] != "train_recs"), "{tasks}");
    assert_eq!(server.models()["active_version"], 2);

    // Served lists logged impressions after version 2's last event: they alone never make it stale.
    assert!(wait_for_impression_after(&server, 2), "no impression was logged");
    let server = server.restart();
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 2);
    server.settle();
    std::thread::sleep(std::time::Duration::from_millis(100));
    server.settle();
    assert_eq!(server.versions(), vec![2, 1], "impressions alone retrained the model");
    let tasks = server.get("/v1/tasks");
    assert!(tasks["tasks"].as_array().unwrap().iter().all(|t| t["kind"] != "train_recs"), "{tasks}");

    // New events while it was down: the stored version serves at once and a retrain runs in the background.
    server.store.append_events(&server.tenant, &[order("late-1", "late", 40, &["E", "D"])]).unwrap();
    let server = server.restart();
    let list = server.list(&json!({"scenario": "trending"}));
    assert!(matches!(list["model_version"].as_i64(), Some(2 | 3)), "{list}");
    let clock = std::time::Instant::now();
    while server.models()["active_version"] != 3 {
        assert!(clock.elapsed() < std::time::Duration::from_secs(60), "no retrain: {}", server.models());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.settle();
    assert_eq!(server.versions(), vec![3, 2, 1]);
    let tasks = server.get("/v1/tasks");
    let training: Vec<&Value> =
        tasks["tasks"].as_array().unwrap().iter().filter(|t| t["kind"] == "train_recs").collect();
    assert_eq!(training.len(), 1, "{tasks}");
    assert_eq!(training[0]["trigger"], "schedule");
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 3);
}

/// Waits (up to 5 s) until an impression event is stored after the last event that `version` was trained on.
fn wait_for_impression_after(server: &TestServer, version: i64) -> bool {
    let models = server.models();
    let through = models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .and_then(|v| v["events_through_seq"].as_i64())
        .unwrap();
    let clock = std::time::Instant::now();
    while clock.elapsed() < std::time::Duration::from_secs(5) {
        let after = server.store.events_after(&server.tenant, through, 1_000).unwrap();
        if after.iter().any(|e| matches!(e.event.kind, EventKind::Impression { .. })) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn a_stale_model_retrains_in_the_background_and_impressions_alone_never_make_it_stale() {
    // A short training interval: the scheduler and requests both check for staleness every 200 ms.
    let options =
        EngineConfig { train_interval: Some(std::time::Duration::from_millis(200)), ..EngineConfig::default() };
    let server = TestServer::start_with(options);
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 1);
    server.settle();
    // Serving traffic for several intervals logs impressions, which training does not use: no new version.
    let clock = std::time::Instant::now();
    while clock.elapsed() < std::time::Duration::from_millis(1_200) {
        let body = json!({"scenario": "similar", "item_id": "A", "anonymous_id": "browser"});
        assert_eq!(server.list(&body)["model_version"], 1);
    }
    assert!(wait_for_impression_after(&server, 1), "no impression was logged");
    std::thread::sleep(std::time::Duration::from_millis(400));
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    assert_eq!(server.versions(), vec![1], "impressions alone retrained the model");

    // A real event: the next check finds it and trains in the background; every request meanwhile is served.
    server.store.append_events(&server.tenant, &[order("late-1", "late", 40, &["E", "D"])]).unwrap();
    let clock = std::time::Instant::now();
    loop {
        let list = server.list(&json!({"scenario": "trending"}));
        if list["model_version"] == 2 {
            break;
        }
        assert_eq!(list["model_version"], 1, "{list}");
        assert!(clock.elapsed() < std::time::Duration::from_secs(30), "no retrain: {}", server.models());
    }
    server.settle();
    assert_eq!(server.versions(), vec![2, 1]);
    let last_event = server.store.events_after(&server.tenant, 0, 100_000).unwrap();
    let last_trained = last_event.iter().rev().find(|e| training::trains_on(&e.event.kind)).unwrap();
    let newest = &server.models()["versions"][0];
    assert!(newest["events_through_seq"].as_i64() >= Some(last_trained.seq), "{newest}");
}

#[test]
fn model_versions_and_activation_through_the_api() {
    let server = TestServer::start();
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    server.train();
    let activate = |version: &str| {
        server.client.post(format!("{}/v1/models/recs/{version}/activate", server.base)).bearer_auth(&server.secret)
    };
    expect_error(activate("99"), StatusCode::NOT_FOUND, "not_found");
    expect_error(activate("0"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(activate("latest"), StatusCode::BAD_REQUEST, "invalid_parameter");
    let public = server.client.get(format!("{}/v1/models/recs", server.base)).bearer_auth(&server.public);
    expect_error(public, StatusCode::FORBIDDEN, "forbidden");
    let public = server.client.post(format!("{}/v1/models/recs/1/activate", server.base)).bearer_auth(&server.public);
    expect_error(public, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.models()["active_version"], 2, "a failed activation changes nothing");

    let rolled_back = expect(activate("1"), StatusCode::OK);
    assert_eq!((rolled_back["version"].as_i64(), rolled_back["active"].as_bool()), (Some(1), Some(true)));
    assert_eq!(server.models()["active_version"], 1);
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 1);

    let openapi = server.get("/v1/openapi.json");
    assert!(openapi["paths"]["/v1/models/recs"]["get"].is_object());
    assert!(openapi["paths"]["/v1/models/recs/{version}/activate"]["post"].is_object());
}

#[test]
fn too_little_data_stores_no_model_and_serving_keeps_popularity_and_content() {
    let (directory, store) = harness::store(false);
    let tenant = harness::tenant(store.as_ref(), "thin", "Thin Shop");
    seed_items(store.as_ref(), &tenant);
    store.append_events(&tenant, &[order("only", "c0", 0, &["A", "B"])]).unwrap();
    let server = TestServer::launch(directory, store, tenant, EngineConfig::default());
    server.settle();
    // Start-up may have begun a training run that `settle` did not see yet: then the request joins it.
    let response = server
        .client
        .post(format!("{}/v1/tasks", server.base))
        .bearer_auth(&server.secret)
        .json(&json!({"kind": "train_recs"}))
        .send()
        .unwrap();
    assert!(matches!(response.status(), StatusCode::ACCEPTED | StatusCode::OK), "{}", response.status());
    let started: Value = response.json().unwrap();
    let id = started["task"]["id"].as_str().unwrap().to_string();
    let clock = std::time::Instant::now();
    let task = loop {
        let task = server.get(&format!("/v1/tasks/{id}"));
        if task["status"] != "running" {
            break task;
        }
        assert!(clock.elapsed() < std::time::Duration::from_secs(60), "training never finished: {task}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        (task["status"].as_str(), task["error_code"].as_str()),
        (Some("failed"), Some("insufficient_data")),
        "{task}"
    );
    let error = task["error"].as_str().unwrap();
    let expected = "not enough data to train: item interactions: 2 (training needs 50), shoppers with two or more \
                    items: 1 (training needs 10)";
    assert!(error.starts_with(expected), "{error}");
    assert_eq!(server.versions(), Vec::<i64>::new(), "nothing is stored");

    // Serving goes on from an unstored fit: popularity, and content matches for an item nobody bought.
    let trending = server.list(&json!({"scenario": "trending", "count": 3}));
    assert_eq!(trending["model_version"], 0, "{trending}");
    assert!(ids(&trending).contains(&"A".to_string()), "{trending}");
    let similar = server.list(&json!({"scenario": "similar", "item_id": "C", "count": 2}));
    assert_eq!(signals(&similar), vec!["similar_content".to_string(); 2], "{similar}");
    assert_eq!(server.models()["active_version"], 0);

    // The console's models page says why there is no model.
    let cookie = server.console_cookie(&server.secret);
    let response =
        server.client.get(format!("{}/console/models", server.base)).header("cookie", &cookie).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().unwrap();
    assert!(html.contains("id=\"not-enough-data\"") && html.contains("Not enough data to train a model yet"), "{html}");
    assert!(html.contains("item interactions: 2 (training needs 50)"), "{html}");
    assert!(html.contains("Serving an unstored model fitted on 1 events"), "{html}");
}

#[test]
fn the_console_models_page_lists_versions_trains_and_previews_every_scenario() {
    let server = TestServer::start();
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    let cookie = server.console_cookie(&server.secret);
    let page = |path: &str| {
        let response = server.client.get(format!("{}{path}", server.base)).header("cookie", &cookie).send().unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().unwrap()
    };
    let html = page("/console/models");
    assert!(html.contains("href=\"/console/models\""), "no nav link");
    assert!(html.contains("id=\"model-version-1\"") && html.contains("serving"), "{html}");
    assert!(html.contains("action=\"/console/models/train\""));

    // Console forms carry the session's token.
    let form = [("form_token", harness::form_token(&html))];
    let trained =
        server.client.post(format!("{}/console/models/train", server.base)).header("cookie", &cookie).send().unwrap();
    assert!(trained.status().is_client_error(), "without the form token: {}", trained.status());
    let trained = server
        .client
        .post(format!("{}/console/models/train", server.base))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(trained.status(), StatusCode::SEE_OTHER);
    server.settle();
    assert_eq!(server.versions(), vec![2, 1]);
    let activated = server
        .client
        .post(format!("{}/console/models/1/activate", server.base))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(activated.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.models()["active_version"], 1);

    let html = page("/console/models?customer=buyer");
    for scenario in
        ["for_you", "next", "buy_again", "recently_viewed", "trending", "similar", "bought_together", "complete_cart"]
    {
        assert!(html.contains(&format!("id=\"preview-{scenario}\"")), "no {scenario} preview");
    }
    assert!(html.contains("anchored on item A"), "the buyer's latest item is the anchor");
    assert!(html.contains("Because you bought Alpha mug"), "explanations are shown");
    assert!(html.contains("Often bought with Alpha mug"));
    let html = page("/console/models?customer=regular&item=C");
    assert!(html.contains("anchored on item C"));
    assert!(html.contains("You buy this about every 10 days"), "buy again for the regular customer");
}

#[test]
fn withdrawn_consent_to_personalization_makes_the_next_list_non_personal() {
    let server = TestServer::start();
    server.send_event(&json!({"type": "view", "event_id": "v1", "user_id": "buyer", "item_id": "C"}));
    server.send_event(&json!({"type": "not_interested", "event_id": "n1", "user_id": "buyer", "item_id": "D"}));
    let personal = server.list(&json!({"scenario": "for_you", "user_id": "buyer"}));
    assert_eq!((&personal["personalized"], personal.get("not_personalized_reason")), (&json!(true), None));
    assert_eq!(personal["items"][0]["explanation"]["signal"], "your_history", "{personal}");
    let anyone = server.list(&json!({"scenario": "for_you", "user_id": "newcomer"}));

    let consent = |granted: bool| {
        let body = json!({"personalization": granted, "policy_version": "2026-01"});
        server.client.post(format!("{}/v1/users/buyer/consents", server.base)).bearer_auth(&server.secret).json(&body)
    };
    let ledger = expect(consent(false), StatusCode::OK);
    assert_eq!(ledger["consent"]["personalization"], false, "{ledger}");
    // From the next request on: nothing of the shopper's history shapes, explains or filters a list.
    let cases = [
        json!({"scenario": "for_you", "user_id": "buyer"}),
        json!({"scenario": "next", "user_id": "buyer"}),
        json!({"scenario": "similar", "item_id": "A", "user_id": "buyer"}),
    ];
    for body in &cases {
        let list = server.list(body);
        assert_eq!(list["personalized"], false, "{body}: {list}");
        assert_eq!(list["not_personalized_reason"], "consent_withdrawn", "{body}: {list}");
        for item in list["items"].as_array().unwrap() {
            let because = item["explanation"]["because_item_ids"].as_array().unwrap();
            assert!(!because.iter().any(|id| id == "C"), "{body}: explained by the shopper's view: {item}");
        }
    }
    let for_you = server.list(&cases[0]);
    assert_eq!(ids(&for_you), ids(&anyone), "the list anyone without a history gets");
    let recent = server.list(&json!({"scenario": "recently_viewed", "user_id": "buyer"}));
    assert!(ids(&recent).is_empty(), "{recent}");

    // Granted again: personal again, and the ledger holds both statements.
    let ledger = expect(consent(true), StatusCode::OK);
    let history = ledger["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{ledger}");
    assert_eq!(
        (&history[0]["granted"], &history[0]["source"], &history[0]["policy_version"]),
        (&json!(false), &json!("api"), &json!("2026-01"))
    );
    let again = server.list(&json!({"scenario": "recently_viewed", "user_id": "buyer"}));
    assert_eq!(ids(&again), vec!["C".to_string()], "{again}");
    let trending = server.list(&json!({"scenario": "trending"}));
    assert_eq!(
        (&trending["personalized"], &trending["not_personalized_reason"]),
        (&json!(false), &json!("no_shopper"))
    );
}

#[test]
fn an_erased_shopper_stays_erased_whatever_was_in_flight() {
    let mut server = TestServer::start();
    server.list(&json!({"scenario": "trending"}));
    let url = |path: String| format!("{}{path}", server.base);
    for trial in 0..5 {
        let user = format!("erased-{trial}");
        server.send_event(&json!({"type": "view", "event_id": format!("ev-{trial}"), "user_id": user, "item_id": "A"}));
        // Served just before the erasure: its impression is still queued when the erasure commits.
        server.list(&json!({"scenario": "for_you", "user_id": user}));
        let deleted =
            expect(server.client.delete(url(format!("/v1/users/{user}"))).bearer_auth(&server.secret), StatusCode::OK);
        // The view, and the impression written first so that the erasure takes it too.
        assert_eq!(deleted["events_deleted"], 2, "{deleted}");
        // Later calls naming the id are served, and record nothing.
        let list = server.list(&json!({"scenario": "similar", "item_id": "A", "user_id": user}));
        assert!(!ids(&list).is_empty(), "{list}");
        let search = server.client.get(url(format!("/v1/search?q=mug&user_id={user}"))).bearer_auth(&server.secret);
        expect(search, StatusCode::OK);
    }
    server.server.stop();
    for trial in 0..5 {
        let user = UserId::parse(format!("erased-{trial}")).unwrap();
        let timeline =
            server.store.user_timeline(&server.tenant, &user, &TimelineQuery { before_seq: None, limit: 10 }).unwrap();
        let kinds: Vec<_> = timeline.events.iter().map(|e| e.event.kind.event_type().as_str()).collect();
        assert!(kinds.is_empty(), "trial {trial}: events written after the erasure: {kinds:?}");
    }
}

/// The popularity score of `item` in stored `version`.
fn popularity_in(server: &TestServer, version: i64, item: &str) -> f32 {
    let payload = server.store.model_snapshot_payload(&server.tenant, "recs", version).unwrap().unwrap();
    let model = attune_engine::recs::model::decode(&payload).unwrap();
    model.items.index(item).map_or(0.0, |i| model.popularity.scores()[i as usize])
}

#[test]
fn an_erasure_unlearns_the_served_model_at_once_and_says_until_when_its_factor_parts_stay() {
    let server = TestServer::start();
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    assert_eq!(server.versions(), vec![1]);
    let before = Timestamp::now().millis();
    // c0 bought A, B, O and X (X with four others).
    let deleted = expect(
        server.client.delete(format!("{}/v1/users/c0", server.base)).bearer_auth(&server.secret),
        StatusCode::OK,
    );
    let unlearning = &deleted["recommendation_model"];
    assert_eq!(
        (unlearning["state"].as_str(), unlearning["version"].as_i64()),
        (Some("unlearned"), Some(2)),
        "{deleted}"
    );
    let by = Timestamp::parse_rfc3339(unlearning["factor_models_retrained_by"].as_str().unwrap()).unwrap().millis();
    let hours = (by - before) as f64 / 3_600_000.0;
    assert!((23.99..=24.01).contains(&hours), "the default bound is 24 hours: {deleted}");

    // Version 2 serves at once, records the unlearning, and no longer counts c0.
    let models = server.models();
    assert_eq!(models["active_version"], 2, "{models}");
    let newest = &models["versions"][0];
    assert_eq!(newest["metrics"]["unlearned_from_version"], 1, "{newest}");
    assert_eq!(newest["metrics"]["unlearned"]["factors_retrained_by"], unlearning["factor_models_retrained_by"]);
    assert!(popularity_in(&server, 2, "X") < popularity_in(&server, 1, "X"), "X lost a buyer");
    assert_eq!(server.list(&json!({"scenario": "trending"}))["model_version"], 2);

    // The version trained on c0's data cannot serve again.
    let refused = server.client.post(format!("{}/v1/models/recs/1/activate", server.base)).bearer_auth(&server.secret);
    let refused = expect(refused, StatusCode::CONFLICT);
    assert!(refused["message"].as_str().unwrap().contains("erased"), "{refused}");
    // The console shows until when the factor parts stay.
    let page = server.client.get(server.url("/console/models")).header("cookie", server.console_cookie(&server.secret));
    let page = page.send().unwrap().text().unwrap();
    assert!(page.contains("unlearned · retrained by"), "the models page shows the deadline");

    // A full training replaces the factor parts: nothing left to retrain.
    server.train();
    let models = server.models();
    assert_eq!(models["active_version"], 3);
    assert!(models["versions"][0]["metrics"].get("unlearned").is_none(), "{models}");
    // A shopper without events: nothing to unlearn.
    expect(
        server.client.put(format!("{}/v1/users/newcomer", server.base)).bearer_auth(&server.secret).json(&json!({})),
        StatusCode::OK,
    );
    let deleted = server.client.delete(format!("{}/v1/users/newcomer", server.base)).bearer_auth(&server.secret);
    assert_eq!(expect(deleted, StatusCode::OK)["recommendation_model"]["state"], "not_needed");
}

#[test]
fn the_factor_parts_are_retrained_within_the_configured_bound_after_an_erasure() {
    let training = TrainOptions { retrain_after_erasure: std::time::Duration::from_secs(1), ..TrainOptions::default() };
    let server = TestServer::start_with(EngineConfig { training, ..EngineConfig::default() });
    server.list(&json!({"scenario": "trending"}));
    server.settle();
    let deleted = expect(
        server.client.delete(format!("{}/v1/users/d0", server.base)).bearer_auth(&server.secret),
        StatusCode::OK,
    );
    assert_eq!(deleted["recommendation_model"]["version"], 2, "{deleted}");
    // Without any new event, a training starts by the deadline and replaces version 2.
    let started = std::time::Instant::now();
    loop {
        let models = server.models();
        if models["active_version"] == 3 {
            assert!(models["versions"][0]["metrics"].get("unlearned").is_none(), "{models}");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no retraining after the bound: {models}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
