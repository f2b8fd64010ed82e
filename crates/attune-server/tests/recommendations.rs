//! Recommendations against a real server on a loopback port with a temporary store: a small shop where
//! two items are always bought together, similar items, personalised picks with truthful explanations,
//! stock and exclusion rules, impression logging, request validation and public-key permissions.

use attune_core::input::{AmountInput, TimeInput};
use attune_core::{ApiKeyKind, Event, EventInput, EventKind, Item, ItemInput, OrderLineInput, TenantId, Timestamp};
use attune_core::{RecommendationId, UserId};
use attune_server::keys::{create_api_key, create_tenant};
use attune_server::{AppState, ServerOptions};
use attune_store::{SqliteOptions, SqliteStore, Store, Synchronous, TimelineQuery};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use std::sync::Arc;

/// (id, title, stock): `O` is out of stock.
const ITEMS: [(&str, &str, Option<i64>); 7] = [
    ("A", "Alpha mug", None),
    ("B", "Beta saucer", None),
    ("O", "Omega teapot", Some(0)),
    ("X", "Extra spoon", None),
    ("C", "Cedar box", None),
    ("D", "Dune candle", None),
    ("E", "Ember lamp", None),
];

struct TestServer {
    base: String,
    client: Client,
    secret: String,
    public: String,
    store: Arc<dyn Store>,
    tenant: TenantId,
    _directory: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
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

/// A and B are always bought together (12 customers); 9 of them also took the out-of-stock O and 5 the
/// spoon X; C, D and E are another cluster. `buyer` bought only A.
fn seed(store: &dyn Store, tenant: &TenantId) {
    let items: Vec<Item> = ITEMS
        .iter()
        .map(|(id, title, stock)| {
            let input = ItemInput {
                id: Some(id.to_string()),
                title: Some(title.to_string()),
                price: Some(AmountInput::Text("4.50".to_string())),
                currency: Some("GBP".into()),
                stock_quantity: *stock,
                ..Default::default()
            };
            Item::parse(input, Timestamp::now()).unwrap()
        })
        .collect();
    store.upsert_items(tenant, &items).unwrap();
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
    store.append_events(tenant, &events).unwrap();
}

impl TestServer {
    fn start() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let sqlite = SqliteOptions { synchronous: Synchronous::Normal, ..Default::default() };
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(directory.path().join("attune.sqlite3"), sqlite).unwrap());
        let tenant = TenantId::parse_slug("shop").unwrap();
        create_tenant(store.as_ref(), &tenant, "Gift Shop").unwrap();
        let secret = create_api_key(store.as_ref(), &tenant, ApiKeyKind::Secret, "test").unwrap().key;
        let public = create_api_key(store.as_ref(), &tenant, ApiKeyKind::Public, "web").unwrap().key;
        seed(store.as_ref(), &tenant);
        let state = AppState::new(store.clone(), ServerOptions::default());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_sender.send(listener.local_addr().unwrap()).unwrap();
                attune_server::serve(listener, state, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let address = address_receiver.recv().unwrap();
        Self {
            base: format!("http://{address}"),
            client: Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            secret,
            public,
            store,
            tenant,
            _directory: directory,
            _shutdown: shutdown,
        }
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

    // The served list is stored as an impression of the shopper.
    let user = UserId::parse("buyer").unwrap();
    let timeline = server.store.user_timeline(&server.tenant, &user, &TimelineQuery { before_seq: None, limit: 10 });
    let recommendation_id = RecommendationId::parse(list["recommendation_id"].as_str().unwrap()).unwrap();
    let impression = timeline
        .unwrap()
        .events
        .into_iter()
        .find_map(|stored| match stored.event.kind {
            EventKind::Impression { recommendation_id: id, item_ids, positions } if id == recommendation_id => {
                Some((item_ids, positions))
            }
            _ => None,
        })
        .expect("an impression with the recommendation id");
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
