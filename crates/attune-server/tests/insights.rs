//! Predictive analytics against a real server on a loopback port with a temporary store: a year of
//! simulated purchases by 200 customers, the customer model's predictions, segments, customers at risk,
//! demand forecasts, reorder suggestions and the console pages that show them.

mod harness;

use attune_core::input::{AmountInput, TimeInput};
use attune_core::{ApiKeyKind, Event, EventInput, Item, ItemInput, OrderLineInput, SplitMix64, TenantId, Timestamp};
use attune_engine::EngineConfig;
use attune_server::ServerOptions;
use attune_store::Store;
use harness::Server;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

const CUSTOMERS: u32 = 200;
const DAYS: u32 = 365;
const ITEMS: [(&str, &str); 5] =
    [("85123A", "2.55"), ("71053", "3.39"), ("22423", "12.75"), ("47566", "4.95"), ("20725", "1.65")];

struct TestServer {
    server: Server,
    secret: String,
    public: String,
}

impl std::ops::Deref for TestServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

fn order(id: String, user: &str, day: u32, lines: Vec<(&str, i64, &str)>) -> Event {
    let date = chrono::NaiveDate::from_ymd_opt(2011, 1, 1).unwrap() + chrono::Duration::days(i64::from(day));
    order_at(id, user, &format!("{date}T10:00:00Z"), lines)
}

fn order_at(id: String, user: &str, time: &str, lines: Vec<(&str, i64, &str)>) -> Event {
    Event::parse(
        EventInput {
            event_type: "purchase".into(),
            event_id: Some(format!("order-{id}")),
            user_id: Some(user.into()),
            order_id: Some(id),
            currency: Some("GBP".into()),
            channel: Some("web".into()),
            timestamp: Some(TimeInput::Text(time.to_string())),
            lines: Some(
                lines
                    .into_iter()
                    .map(|(item, quantity, price)| OrderLineInput {
                        item_id: item.to_string(),
                        quantity,
                        unit_price: AmountInput::Text(price.to_string()),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

/// 200 customers over a year: each arrives on some day, buys at their own rate and may drop out. Two
/// customers are fixed: `loyal` buys every week all year, `lapsed` bought weekly for two months and stopped.
fn seed(store: &dyn Store, tenant: &TenantId) {
    let items: Vec<Item> = ITEMS
        .iter()
        .map(|(id, price)| {
            let input = ItemInput {
                id: Some(id.to_string()),
                title: Some(format!("Item {id}")),
                price: Some(AmountInput::Text(price.to_string())),
                currency: Some("GBP".into()),
                stock_quantity: match *id {
                    "85123A" => Some(5),
                    "20725" => Some(1_000_000),
                    _ => None,
                },
                category: Some(if ["85123A", "71053"].contains(id) { "Home > Candles" } else { "Kitchen" }.into()),
                ..Default::default()
            };
            Item::parse(input, Timestamp::now()).unwrap()
        })
        .collect();
    store.upsert_items(tenant, &items).unwrap();
    let mut rng = SplitMix64::new(42);
    let mut events = Vec::new();
    for c in 0..CUSTOMERS {
        let user = format!("c{c:03}");
        let arrival = (rng.next_f64() * 300.0) as u32;
        let gap = 5.0 + rng.next_f64() * 60.0;
        let dropout_day = if rng.next_f64() < 0.4 { arrival + (rng.next_f64() * 120.0) as u32 } else { DAYS };
        let mut day = arrival;
        let mut n = 0;
        while day < DAYS.min(dropout_day + 1) {
            let (item, price) = ITEMS[(rng.next_f64() * ITEMS.len() as f64) as usize % ITEMS.len()];
            let quantity = 1 + (rng.next_f64() * 6.0) as i64;
            events.push(order(format!("{user}-{n}"), &user, day, vec![(item, quantity, price), ("85123A", 2, "2.55")]));
            n += 1;
            day += 1 + (gap * (0.5 + rng.next_f64())) as u32;
        }
    }
    for week in 0..52 {
        events.push(order(format!("loyal-{week}"), "loyal", week * 7, vec![("22423", 3, "12.75")]));
    }
    for week in 0..9 {
        events.push(order(format!("lapsed-{week}"), "lapsed", week * 7, vec![("22423", 3, "12.75")]));
    }
    events.push(order("once-0".into(), "once", 20, vec![("22423", 1, "12.75")]));
    events.sort_by_key(|e| e.timestamp.millis());
    for chunk in events.chunks(2_000) {
        store.append_events(tenant, chunk).unwrap();
    }
}

impl TestServer {
    fn start() -> Self {
        Self::start_with(seed)
    }

    /// A server whose tenant `shop` holds what `fill` stores.
    fn start_with(fill: impl FnOnce(&dyn Store, &TenantId)) -> Self {
        let (directory, store) = harness::store(false);
        let shop = harness::tenant(store.as_ref(), "shop", "Gift Shop");
        let secret = harness::key(store.as_ref(), &shop, ApiKeyKind::Secret, "test");
        let public = harness::key(store.as_ref(), &shop, ApiKeyKind::Public, "web");
        fill(store.as_ref(), &shop);
        let server = Server::launch(directory, store, ServerOptions::default(), EngineConfig::default());
        Self { server, secret, public }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.secret)
    }

    fn console(&self, path: &str) -> (StatusCode, String) {
        let response =
            self.client.get(format!("{}{path}", self.base)).header("cookie", self.console_cookie(&self.secret));
        let response = response.send().unwrap();
        (response.status(), response.text().unwrap())
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
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

fn amount(value: &Value) -> f64 {
    assert_eq!(value["currency"], "GBP");
    value["amount"].as_str().unwrap().parse().unwrap()
}

#[test]
fn customer_insights_segments_and_customers_at_risk() {
    let server = TestServer::start();
    let loyal = expect(server.get("/v1/customers/loyal/insights"), StatusCode::OK);
    let lapsed = expect(server.get("/v1/customers/lapsed/insights"), StatusCode::OK);
    for c in [&loyal, &lapsed] {
        let p = number(&c["p_alive"]);
        assert!((0.0..=1.0).contains(&p), "P(alive) out of range: {c}");
        assert!(number(&c["expected_purchases_90d"]) >= 0.0);
        assert!(amount(&c["expected_value_12m"]) >= 0.0);
        assert!(c["segment"].as_str().is_some_and(|s| !s.is_empty()));
        for score in ["recency", "frequency", "monetary"] {
            assert!((1..=5).contains(&c["rfm"][score].as_u64().unwrap()), "{c}");
        }
        let model = &c["model"];
        for parameter in ["r", "alpha", "a", "b", "p", "q", "gamma"] {
            assert!(number(&model[parameter]) > 0.0, "{model}");
        }
        assert_eq!(model["customers"], u64::from(CUSTOMERS) + 3);
        assert_eq!(model["models"], "MBG/NBD (P(alive), purchases) and Gamma-Gamma (spend)");
    }
    assert_eq!(loyal["frequency"], 51);
    assert_eq!(loyal["recency_days"], 357);
    assert_eq!(lapsed["frequency"], 8);
    assert!(number(&loyal["p_alive"]) > 0.9, "{loyal}");
    assert!(number(&loyal["p_alive"]) > number(&lapsed["p_alive"]) + 0.5, "loyal {loyal} lapsed {lapsed}");
    assert!(number(&loyal["expected_purchases_90d"]) > number(&lapsed["expected_purchases_90d"]));
    assert!(amount(&loyal["expected_value_12m"]) > amount(&lapsed["expected_value_12m"]));

    expect_error(server.get("/v1/customers/nobody/insights"), StatusCode::NOT_FOUND, "not_found");
    let public = server.client.get(format!("{}/v1/customers/loyal/insights", server.base)).bearer_auth(&server.public);
    expect_error(public, StatusCode::FORBIDDEN, "forbidden");

    let segments = expect(server.get("/v1/customers/segments"), StatusCode::OK);
    let list = segments["segments"].as_array().unwrap();
    assert!(list.len() >= 3, "{segments}");
    let total: u64 = list.iter().map(|s| s["customers"].as_u64().unwrap()).sum();
    assert_eq!(total, u64::from(CUSTOMERS) + 3);
    assert_eq!(segments["customers"], total);
    for s in list {
        assert!((0.0..=1.0).contains(&number(&s["mean_p_alive"])), "{s}");
    }

    let at_risk = expect(server.get("/v1/customers/at-risk?limit=10"), StatusCode::OK);
    let customers = at_risk["customers"].as_array().unwrap();
    assert!(!customers.is_empty() && customers.len() <= 10, "{at_risk}");
    let risks: Vec<f64> = customers.iter().map(|c| amount(&c["value_at_risk"])).collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "not sorted by value at risk: {risks:?}");
    assert!(customers.iter().all(|c| number(&c["p_alive"]) < 0.5 || number(&c["overdue"]) >= 3.0));
    assert!(customers.iter().all(|c| (0.0..=1.0).contains(&number(&c["churn_risk"]))));
    assert!(customers.iter().any(|c| c["user_id"] == "lapsed"), "{at_risk}");
    expect_error(server.get("/v1/customers/at-risk?limit=0"), StatusCode::BAD_REQUEST, "invalid_parameter");
}

#[test]
fn a_customer_who_withdraws_consent_to_analytics_leaves_the_customer_models() {
    let server = TestServer::start();
    expect(server.get("/v1/customers/lapsed/insights"), StatusCode::OK);
    let withdraw = json!({"analytics": false, "source": "console"});
    let consents = format!("{}/v1/users/lapsed/consents", server.base);
    let ledger = expect(server.client.post(&consents).bearer_auth(&server.secret).json(&withdraw), StatusCode::OK);
    assert_eq!(ledger["history"][0]["source"], "console", "{ledger}");
    // At once, not after the analytics cache expires.
    expect_error(server.get("/v1/customers/lapsed/insights"), StatusCode::NOT_FOUND, "not_found");
    let loyal = expect(server.get("/v1/customers/loyal/insights"), StatusCode::OK);
    assert_eq!(loyal["model"]["customers"], u64::from(CUSTOMERS) + 2, "fitted without them: {loyal}");
    let segments = expect(server.get("/v1/customers/segments"), StatusCode::OK);
    assert_eq!(segments["customers"], u64::from(CUSTOMERS) + 2, "{segments}");
    let at_risk = expect(server.get("/v1/customers/at-risk?limit=1000"), StatusCode::OK);
    assert!(!at_risk["customers"].as_array().unwrap().iter().any(|c| c["user_id"] == "lapsed"), "{at_risk}");
}

#[test]
fn an_erased_customer_leaves_the_insights_at_once() {
    let server = TestServer::start();
    expect(server.get("/v1/customers/lapsed/insights"), StatusCode::OK);
    let erase = server.client.delete(format!("{}/v1/users/lapsed", server.base)).bearer_auth(&server.secret);
    expect(erase, StatusCode::OK);
    expect_error(server.get("/v1/customers/lapsed/insights"), StatusCode::NOT_FOUND, "not_found");
    let at_risk = expect(server.get("/v1/customers/at-risk?limit=1000"), StatusCode::OK);
    assert!(!at_risk["customers"].as_array().unwrap().iter().any(|c| c["user_id"] == "lapsed"), "{at_risk}");
}

#[test]
fn forecasts_and_reorder_suggestions() {
    let server = TestServer::start();
    let total = expect(server.get("/v1/forecast?granularity=week&horizon=8"), StatusCode::OK);
    assert_eq!(total["forecast"].as_array().unwrap().len(), 8);
    assert!(total["history"].as_array().unwrap().len() >= 52, "{total}");
    assert!(total["model"].as_str().is_some_and(|m| !m.is_empty()));
    for point in total["forecast"].as_array().unwrap() {
        let (lower, mean, upper) = (number(&point["lower"]), number(&point["mean"]), number(&point["upper"]));
        assert!(lower <= mean && mean <= upper && lower >= 0.0, "{point}");
    }
    let item = expect(server.get("/v1/forecast?item_id=22423&granularity=month&horizon=3"), StatusCode::OK);
    assert_eq!(item["item_id"], "22423");
    let last_month = item["history"].as_array().unwrap().last().unwrap()["period"].as_str().unwrap().to_string();
    let next_month = item["forecast"][0]["period"].as_str().unwrap();
    assert!(next_month > last_month.as_str() && next_month.ends_with("-01"), "{last_month} then {next_month}");

    expect_error(server.get("/v1/forecast?horizon=0"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(server.get("/v1/forecast?horizon=366"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(server.get("/v1/forecast?granularity=hour"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(server.get("/v1/forecast?item_id=no-such-item"), StatusCode::BAD_REQUEST, "invalid_parameter");
    let backtest = &total["backtest"];
    assert_eq!(backtest["origins"], 3, "{total}");
    assert!(number(&backtest["mase"]) > 0.0 && number(&backtest["smape"]) >= 0.0, "{backtest}");

    let reorder = expect(server.get("/v1/inventory/reorder?lead_time_days=7&service_level=0.9"), StatusCode::OK);
    let items = reorder["items"].as_array().unwrap();
    let heart = items.iter().find(|i| i["item_id"] == "85123A").expect("the low-stock best seller is due");
    assert_eq!(heart["stock"], 5);
    assert_eq!(heart["reorder"], true);
    assert!(number(&heart["suggested_order"]) > 0.0);
    let unknown_stock = items.iter().find(|i| i["item_id"] == "22423").expect("items without stock are listed");
    assert!(unknown_stock["stock"].is_null() && unknown_stock["reorder"].is_null());
    assert!(number(&unknown_stock["reorder_point"]) >= number(&unknown_stock["safety_stock"]));
    expect_error(server.get("/v1/inventory/reorder?service_level=1"), StatusCode::BAD_REQUEST, "invalid_parameter");
}

#[test]
fn category_forecasts_sum_their_items() {
    let server = TestServer::start();
    let path = "granularity=month&horizon=2";
    let category = expect(server.get(&format!("/v1/forecast?category=home%20%3E%20candles&{path}")), StatusCode::OK);
    assert_eq!(category["category"], "home > candles");
    assert_eq!(category["items"], 2);
    let heart = expect(server.get(&format!("/v1/forecast?item_id=85123A&{path}")), StatusCode::OK);
    let bulb = expect(server.get(&format!("/v1/forecast?item_id=71053&{path}")), StatusCode::OK);
    let history = |v: &Value| -> Vec<(String, f64)> {
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["period"].as_str().unwrap().into(), number(&p["quantity"])))
            .collect()
    };
    // Every month of the category is the sum of its two items' months.
    let (heart, bulb) = (history(&heart), history(&bulb));
    for (period, quantity) in history(&category) {
        let of = |h: &[(String, f64)]| h.iter().find(|(p, _)| *p == period).map_or(0.0, |(_, q)| *q);
        assert_eq!(quantity, of(&heart) + of(&bulb), "{period}");
    }
    let top = expect(server.get(&format!("/v1/forecast?category=Home&{path}")), StatusCode::OK);
    assert_eq!(top["items"], 2);
    expect_error(server.get("/v1/forecast?category=Garden"), StatusCode::BAD_REQUEST, "invalid_parameter");
    expect_error(server.get("/v1/forecast?category=Home&item_id=85123A"), StatusCode::BAD_REQUEST, "invalid_parameter");
}

#[test]
fn forecast_task_runs_in_the_background_and_its_reorder_list_is_served() {
    let server = TestServer::start();
    let post = |body: &str| {
        server
            .client
            .post(format!("{}/v1/tasks", server.base))
            .bearer_auth(&server.secret)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    expect_error(post(r#"{"kind": "nap"}"#), StatusCode::BAD_REQUEST, "invalid_body");
    let forbidden = server.client.get(format!("{}/v1/tasks", server.base)).bearer_auth(&server.public);
    expect_error(forbidden, StatusCode::FORBIDDEN, "forbidden");
    let response = post(r#"{"kind": "forecast"}"#).send().unwrap();
    assert!(response.status() == StatusCode::ACCEPTED, "{}", response.status());
    let started: Value = response.json().unwrap();
    assert_eq!(started["started"], true);
    let id = started["task"]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let task = loop {
        let task = expect(server.get(&format!("/v1/tasks/{id}")), StatusCode::OK);
        if task["status"] != "running" {
            break task;
        }
        assert!(std::time::Instant::now() < deadline, "task still running: {task}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["trigger"], "request");
    assert_eq!(task["progress"], 1.0);
    let summary = task["summary"].as_str().unwrap();
    assert!(summary.contains("customers valued") && summary.contains("1 to reorder now"), "{summary}");
    // Ours is listed (not necessarily first: the server may have started its own tasks meanwhile, such as
    // embedding the catalog for search once the model has loaded).
    let listed = expect(server.get("/v1/tasks"), StatusCode::OK);
    let listed: Vec<&str> = listed["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(listed.contains(&id.as_str()), "{listed:?}");
    expect_error(server.get("/v1/tasks/no-such-task"), StatusCode::NOT_FOUND, "not_found");

    // The default policy is served from the task's result (same computation time), others are computed.
    let first = expect(server.get("/v1/inventory/reorder"), StatusCode::OK);
    let again = expect(server.get("/v1/inventory/reorder"), StatusCode::OK);
    assert_eq!(first["computed_at"], again["computed_at"]);
    assert_eq!(first["reorder_now"], 1);
    assert_eq!(first["items_with_stock"], 2);
    assert_eq!(first["items"][0]["item_id"], "85123A");
    assert_eq!(first["overstocked"], 1);
    assert_eq!(first["items"][1]["item_id"], "20725");
    assert_eq!(first["items"][1]["overstock"], true);
    assert_eq!(first["items"][1]["reorder"], false);
    let other = expect(server.get("/v1/inventory/reorder?lead_time_days=30"), StatusCode::OK);
    assert_ne!(other["computed_at"], first["computed_at"]);

    let (status, page) = server.console("/console/forecast");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"id="reorder""#) && page.contains("Item 85123A"), "{page}");
    assert!(page.contains(r#"id="tasks""#) && page.contains("succeeded"), "{page}");
}

#[test]
fn console_shows_predicted_value_insights_and_forecast() {
    let server = TestServer::start();
    let (status, page) = server.console("/console/customers/loyal");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"id="predicted-value""#), "{page}");
    assert!(page.contains(r#"id="p-alive""#) && page.contains("Value, next 12 months"), "{page}");
    assert!(page.contains(r#"href="/console/insights""#));

    let (status, page) = server.console("/console/insights");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"id="segments-table""#) && page.contains(r#"id="at-risk-table""#), "{page}");
    assert!(page.contains("/console/customers/lapsed"));

    let (status, page) = server.console("/console/forecast?item=22423&granularity=week");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"id="forecast-chart""#) && page.contains("forecast-band"), "{page}");
    let (status, _) = server.console("/console/forecast?item=no-such-item");
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A view of today: the kind of event a shop's live traffic adds to an old history.
fn view_now(n: usize) -> Event {
    Event::parse(
        EventInput {
            event_type: "view".into(),
            event_id: Some(format!("today-{n}")),
            anonymous_id: Some(format!("visitor-{n}")),
            item_id: Some("85123A".into()),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

#[test]
fn a_one_time_buyer_long_silent_is_not_certainly_alive() {
    let server = TestServer::start();
    let once = expect(server.get("/v1/customers/once/insights"), StatusCode::OK);
    assert_eq!(once["frequency"], 0);
    // BG/NBD says 1.0 for anyone who never bought twice; MBG/NBD lets them drop out.
    assert!(number(&once["p_alive"]) < 0.5, "{once}");
    let loyal = expect(server.get("/v1/customers/loyal/insights"), StatusCode::OK);
    assert!(number(&loyal["p_alive"]) > 0.9, "{loyal}");
}

#[test]
fn a_few_events_of_today_do_not_move_an_old_history_to_today() {
    let server = TestServer::start_with(|store, tenant| {
        seed(store, tenant);
        store.append_events(tenant, &(0..5).map(view_now).collect::<Vec<_>>()).unwrap();
    });
    let loyal = expect(server.get("/v1/customers/loyal/insights"), StatusCode::OK);
    assert!(loyal["model"]["calibration_end"].as_str().unwrap().starts_with("2011-12-"), "{loyal}");
    assert_eq!(loyal["model"]["events_left_out"], 5, "{loyal}");
    assert!(number(&loyal["p_alive"]) > 0.9, "{loyal}");
    let total = expect(server.get("/v1/forecast?granularity=week&horizon=4"), StatusCode::OK);
    let history = total["history"].as_array().unwrap();
    assert!(history.iter().rev().take(4).all(|p| number(&p["quantity"]) > 0.0), "{total}");
    assert!(history.last().unwrap()["period"].as_str().unwrap() < "2012-01-01", "{total}");
}

#[test]
fn stray_purchases_in_1990_and_2199_keep_forecasts_small_and_fast() {
    let server = TestServer::start_with(|store, tenant| {
        seed(store, tenant);
        let strays = vec![
            order_at("stray-old".into(), "c001", "1990-06-01T10:00:00Z", vec![("85123A", 1, "2.55")]),
            order_at("stray-future".into(), "c002", "2199-06-01T10:00:00Z", vec![("85123A", 1, "2.55")]),
        ];
        store.append_events(tenant, &strays).unwrap();
    });
    let started = std::time::Instant::now();
    let daily = expect(server.get("/v1/forecast?granularity=day&horizon=28"), StatusCode::OK);
    let history = daily["history"].as_array().unwrap();
    assert!(history.len() <= 366, "{} days of history", history.len());
    assert!(history[0]["period"].as_str().unwrap() >= "2011-01-01", "{}", history[0]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn a_handful_of_customers_gets_insufficient_data_not_absurd_figures() {
    let server = TestServer::start_with(|store, tenant| {
        let orders = vec![
            order("a-1".into(), "a", 1, vec![("85123A", 2, "2.55")]),
            order("a-2".into(), "a", 40, vec![("85123A", 2, "2.55")]),
            order("b-1".into(), "b", 3, vec![("20725", 5, "1.65")]),
            order("b-2".into(), "b", 9, vec![("71053", 2, "3.39")]),
            order("c-1".into(), "c", 5, vec![("22423", 1, "12.75")]),
        ];
        store.append_events(tenant, &orders).unwrap();
    });
    for path in ["/v1/customers/a/insights", "/v1/customers/segments", "/v1/customers/at-risk"] {
        let body = expect(server.get(path), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "insufficient_data", "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains("customer model"), "{path}: {body}");
    }
    let (status, page) = server.console("/console/insights");
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No customer model yet") && page.contains("needs at least 20"), "{page}");
}

#[test]
fn without_measurable_dropout_p_alive_is_not_served() {
    let server = TestServer::start_with(|store, tenant| {
        let mut events = Vec::new();
        for c in 0..40_u32 {
            let gap = 5 + c % 20;
            for (n, day) in (c % 7..DAYS).step_by(gap as usize).enumerate() {
                let quantity = 1 + ((n as i64 * 7 + i64::from(c)) % 5);
                events.push(order(format!("r{c}-{n}"), &format!("r{c:02}"), day, vec![("22423", quantity, "12.75")]));
            }
        }
        events.sort_by_key(|e| e.timestamp.millis());
        store.append_events(tenant, &events).unwrap();
    });
    // Everyone buys at a steady rhythm to the end: the fit finds no dropout (a/(a+b) at the boundary).
    let regular = expect(server.get("/v1/customers/r03/insights"), StatusCode::OK);
    assert_eq!(regular["model"]["p_alive_identified"], false, "{regular}");
    assert!(regular["p_alive"].is_null(), "{regular}");
    assert!(regular["model"]["p_alive_note"].as_str().unwrap().contains("no measurable dropout"), "{regular}");
    assert!(number(&regular["expected_purchases_90d"]) > 1.0, "{regular}");
    let segments = expect(server.get("/v1/customers/segments"), StatusCode::OK);
    assert!(segments["segments"].as_array().unwrap().iter().all(|s| s["mean_p_alive"].is_null()), "{segments}");
    let (_, page) = server.console("/console/insights");
    assert!(page.contains("id=\"p-alive-note\"") && !page.contains(">100 %<"), "{page}");
}
