//! The console and storefront pages against a real server on a loopback port with a temporary store:
//! sign-in and its redirects, what every page shows, escaping, and the events the storefront records.

mod harness;

use attune_core::input::AmountInput;
use attune_core::{
    ApiKeyKind, Event, EventInput, EventType, Item, ItemInput, OrderLineInput, TenantId, Timestamp, User, UserInput,
};
use attune_engine::EngineConfig;
use attune_server::ServerOptions;
use attune_store::Store;
use harness::Server;
use reqwest::StatusCode;
use reqwest::blocking::Response;
use std::collections::BTreeMap;

struct TestServer {
    server: Server,
    shop: TenantId,
    shop_secret: String,
    shop_public: String,
    other_secret: String,
}

impl std::ops::Deref for TestServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

const DAYS: u32 = 20;
const VIEWS: u32 = 15;

fn item(id: &str, title: &str, price: &str) -> Item {
    Item::parse(
        ItemInput {
            id: Some(id.into()),
            title: Some(title.into()),
            price: Some(AmountInput::Text(price.into())),
            currency: Some("GBP".into()),
            ..Default::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

fn order(id: &str, user: &str, day: u32, channel: &str, lines: &[(&str, i64, &str)]) -> Event {
    Event::parse(
        EventInput {
            event_type: "purchase".into(),
            event_id: Some(format!("order-{id}")),
            user_id: Some(user.into()),
            order_id: Some(id.into()),
            currency: Some("GBP".into()),
            channel: Some(channel.into()),
            timestamp: Some(attune_core::input::TimeInput::Text(format!("2011-03-{day:02}T10:00:00Z"))),
            lines: Some(
                lines
                    .iter()
                    .map(|(item, quantity, price)| OrderLineInput {
                        item_id: item.to_string(),
                        quantity: *quantity,
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

fn seed(store: &dyn Store, tenant: &TenantId) {
    let mut items = vec![
        item("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55"),
        item("71053", "WHITE METAL LANTERN", "3.39"),
        item("xss", "<script>alert('x')</script> MUG", "1.00"),
    ];
    items.extend((0..60).map(|i| item(&format!("2{i:04}"), &format!("PAPER CHAIN KIT {i}"), "2.95")));
    let mut candle = ItemInput {
        id: Some("candle".into()),
        title: Some("Beeswax candle".into()),
        category: Some("Home > Candles".into()),
        price: Some(AmountInput::Text("4.50".into())),
        currency: Some("GBP".into()),
        ..Default::default()
    };
    items.push(Item::parse(candle.clone(), Timestamp::now()).unwrap());
    candle.id = Some("sold-out".into());
    candle.title = Some("Sold out candle".into());
    candle.stock_quantity = Some(0);
    items.push(Item::parse(candle, Timestamp::now()).unwrap());
    store.upsert_items(tenant, &items).unwrap();

    let traits =
        BTreeMap::from([("country".to_string(), attune_core::input::ScalarValue::Text("United Kingdom".into()))]);
    let user = UserInput { id: Some("17850".into()), traits: Some(traits), ..Default::default() };
    store.upsert_user(tenant, &User::parse(user, Timestamp::now()).unwrap()).unwrap();
    for i in 0..75 {
        let user = UserInput { id: Some(format!("c{i:03}")), ..Default::default() };
        store.upsert_user(tenant, &User::parse(user, Timestamp::now()).unwrap()).unwrap();
    }

    // Some product views first, then one order a day for DAYS days (85123A in every order, 71053 in every
    // other one) and a return.
    let mut events: Vec<Event> = (1..=VIEWS)
        .map(|day| {
            let input = EventInput {
                event_type: "view".into(),
                event_id: Some(format!("view-{day}")),
                user_id: Some("17850".into()),
                item_id: Some("20010".into()),
                channel: Some("app".into()),
                timestamp: Some(attune_core::input::TimeInput::Text(format!("2011-03-{day:02}T09:00:00Z"))),
                ..Default::default()
            };
            Event::parse(input, Timestamp::now()).unwrap()
        })
        .collect();
    for day in 1..=DAYS {
        let mut lines = vec![("85123A", 6, "2.55")];
        if day % 2 == 0 {
            lines.push(("71053", 1, "3.39"));
        }
        for extra in 0..8 {
            lines.push((["20001", "20002", "20003", "20004", "20005", "20006", "20007", "20008"][extra], 1, "2.95"));
        }
        let channel = if day % 3 == 0 { "store" } else { "web" };
        events.push(order(&format!("5363{day:02}"), "17850", day, channel, &lines));
    }
    let mut refund = order("C536399", "17850", DAYS, "web", &[("71053", 1, "3.39")]).to_input();
    refund.event_type = "return".into();
    refund.event_id = Some("return-1".into());
    events.push(Event::parse(refund, Timestamp::now()).unwrap());
    store.append_events(tenant, &events).unwrap();
}

impl TestServer {
    fn start() -> Self {
        Self::start_with(|shop, demo_key| ServerOptions {
            storefront_tenant: Some(shop.clone()),
            demo_console_key: Some(demo_key.to_string()),
            ..Default::default()
        })
    }

    fn start_with(options: impl FnOnce(&TenantId, &str) -> ServerOptions) -> Self {
        let (directory, store) = harness::store(false);
        let shop = harness::tenant(store.as_ref(), "shop", "Corner Gift Shop");
        let other = harness::tenant(store.as_ref(), "other", "Other Shop");
        let shop_secret = harness::key(store.as_ref(), &shop, ApiKeyKind::Secret, "test");
        let shop_public = harness::key(store.as_ref(), &shop, ApiKeyKind::Public, "web");
        let other_secret = harness::key(store.as_ref(), &other, ApiKeyKind::Secret, "test");
        seed(store.as_ref(), &shop);
        let options = options(&shop, &shop_secret);
        let server = Server::launch(directory, store, options, EngineConfig::default());
        Self { server, shop, shop_secret, shop_public, other_secret }
    }

    fn get(&self, path: &str, cookie: &str) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if !cookie.is_empty() {
            request = request.header("cookie", cookie);
        }
        request.send().unwrap()
    }

    fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if !cookie.is_empty() {
            request = request.header("cookie", cookie);
        }
        request.send().unwrap()
    }

    fn console(&self, path: &str) -> String {
        page(self.get(path, &self.console_cookie(&self.shop_secret)), StatusCode::OK)
    }

    fn events_of_type(&self, event_type: EventType) -> u64 {
        let stats = self.store.stats(&self.shop).unwrap();
        stats.events_by_type.iter().find(|(t, _)| *t == event_type).map_or(0, |(_, n)| *n)
    }
}

/// Check the status and that the body is HTML; return the body.
fn page(response: Response, status: StatusCode) -> String {
    let actual = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let body = response.text().unwrap();
    assert_eq!(actual, status, "unexpected status; body: {body}");
    assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert!(body.starts_with("<!DOCTYPE html>"), "not a page: {body}");
    body
}

fn location(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "expected a redirect");
    response.headers().get("location").unwrap().to_str().unwrap().to_string()
}

/// The `Set-Cookie` header for `name`, whole.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// `name=value` of a `Set-Cookie` header, to send back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[test]
fn the_root_and_console_pages_redirect_to_sign_in_without_a_key() {
    let server = TestServer::start();
    assert_eq!(location(&server.get("/", "")), "/console");
    assert_eq!(location(&server.get("/console", "")), "/console/login");
    assert_eq!(
        location(&server.get("/console/catalog?q=heart", "")),
        "/console/login?next=%2Fconsole%2Fcatalog%3Fq%3Dheart"
    );
    assert_eq!(
        location(&server.get("/console/customers/17850", "")),
        "/console/login?next=%2Fconsole%2Fcustomers%2F17850"
    );
    // A wrong or public key is no better, and its cookie is cleared.
    // A raw key in the cookie (as before sessions) is no session.
    for cookie in ["attune_console=sk_nope_0000".to_string(), format!("attune_console={}", server.shop_secret)] {
        let response = server.get("/console/customers", &cookie);
        assert_eq!(location(&response), "/console/login?next=%2Fconsole%2Fcustomers");
        assert!(set_cookie(&response, "attune_console").unwrap().contains("Max-Age=0"));
    }
}

#[test]
fn signing_in_sets_a_strict_http_only_cookie() {
    let server = TestServer::start();
    let login = page(server.get("/console/login", ""), StatusCode::OK);
    assert!(login.contains("name=\"key\""));
    assert!(login.contains("id=\"demo-sign-in\""), "one-click demo sign-in is offered");

    let refused = page(server.post("/console/login", "", &[("key", "sk_wrong_1234")]), StatusCode::UNAUTHORIZED);
    assert!(refused.contains("unknown or has been revoked"));
    let refused = page(server.post("/console/login", "", &[("key", &server.shop_public)]), StatusCode::UNAUTHORIZED);
    assert!(refused.contains("public key"));

    let response = server.post("/console/login", "", &[("key", &server.shop_secret), ("next", "/console/catalog")]);
    assert_eq!(location(&response), "/console/catalog");
    let cookie = set_cookie(&response, "attune_console").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-HTTP deployments get no Secure flag by default: {cookie}");
    assert!(page(server.get("/console", &cookie_pair(&cookie)), StatusCode::OK).contains("Corner Gift Shop"));

    // `next` never leads off the console.
    let response = server.post("/console/login", "", &[("key", &server.shop_secret), ("next", "//evil.example/")]);
    assert_eq!(location(&response), "/console");

    let demo = server.post("/console/login/demo", "", &[]);
    assert_eq!(location(&demo), "/console");
    let demo_cookie = cookie_pair(&set_cookie(&demo, "attune_console").unwrap());
    assert!(page(server.get("/console", &demo_cookie), StatusCode::OK).contains("Corner Gift Shop"));

    // The cookie holds a session token, never the key; signing out ends the session on the server.
    assert!(!cookie.contains(&server.shop_secret), "{cookie}");
    let overview = page(server.get("/console", &cookie_pair(&cookie)), StatusCode::OK);
    let without_token = server.post("/console/logout", &cookie_pair(&cookie), &[]);
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN, "a sign-out form without the session's token");
    let logout =
        server.post("/console/logout", &cookie_pair(&cookie), &[("form_token", &harness::form_token(&overview))]);
    assert_eq!(location(&logout), "/console/login");
    assert!(set_cookie(&logout, "attune_console").unwrap().contains("Max-Age=0"));
    assert_eq!(location(&server.get("/console", &cookie_pair(&cookie))), "/console/login", "the session ended");
}

#[test]
fn console_sessions_are_kept_on_the_server_listed_and_ended() {
    let server = TestServer::start();
    let first = server.console_cookie(&server.shop_secret);
    let second = server.console_cookie(&server.shop_secret);
    let list = page(server.get("/console/sessions", &first), StatusCode::OK);
    assert_eq!(list.matches("/end\"").count(), 2, "{list}");
    assert!(list.contains("this browser"), "{list}");
    // Ending the second session from the first signs the second browser out.
    let store_sessions = server.store.console_sessions(&server.shop).unwrap();
    let second_id = store_sessions
        .iter()
        .find(|s| s.token_hash == attune_engine::keys::hash_api_key(second.trim_start_matches("attune_console=")))
        .unwrap()
        .session_id
        .clone();
    let forged = server.post(&format!("/console/sessions/{second_id}/end"), &first, &[("form_token", "guess")]);
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let ended = server.post(
        &format!("/console/sessions/{second_id}/end"),
        &first,
        &[("form_token", &harness::form_token(&list))],
    );
    assert_eq!(location(&ended), "/console/sessions");
    assert_eq!(location(&server.get("/console", &second)), "/console/login");
    // Revoking the key that signed in ends its sessions.
    let key_id = server.shop_secret.split('_').nth(1).unwrap().to_string();
    assert!(server.store.revoke_api_key(&server.shop, &key_id).unwrap());
    assert_eq!(location(&server.get("/console", &first)), "/console/login");
}

#[test]
fn forms_from_a_sibling_subdomain_or_another_origin_are_refused_and_demo_sign_in_needs_localhost() {
    let server = TestServer::start();
    let post = |headers: &[(&str, &str)]| {
        let mut request = server.client.post(format!("{}/console/login", server.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.form(&[("key", server.shop_secret.as_str())]).send().unwrap()
    };
    let host = server.base.trim_start_matches("http://").to_string();
    assert_eq!(post(&[("sec-fetch-site", "same-site")]).status(), StatusCode::FORBIDDEN, "a sibling subdomain");
    assert_eq!(post(&[("origin", "http://shop.evil.example")]).status(), StatusCode::FORBIDDEN, "no fetch metadata");
    assert_eq!(post(&[("origin", "null")]).status(), StatusCode::FORBIDDEN);
    let own = post(&[("origin", &server.base), ("sec-fetch-site", "same-origin")]);
    assert_eq!(location(&own), "/console");
    let proxied = post(&[("origin", "https://console.shop.example"), ("x-forwarded-host", "console.shop.example")]);
    assert_eq!(location(&proxied), "/console", "behind a reverse proxy that says the original host");
    // The one-click demo sign-in: only reached as localhost (not through a proxy, not by a rebound DNS name).
    let demo = |host_header: &str| {
        let request = server.client.post(format!("{}/console/login/demo", server.base)).header("host", host_header);
        request.send().unwrap()
    };
    assert_eq!(location(&demo(&host)), "/console");
    assert_eq!(location(&demo(&host.replace("127.0.0.1", "localhost"))), "/console");
    assert_eq!(demo("attacker.example").status(), StatusCode::NOT_FOUND);
    let login = server.client.get(format!("{}/console/login", server.base)).header("host", "shop.example").send();
    assert!(!login.unwrap().text().unwrap().contains("demo-sign-in"));
}

#[test]
fn cookies_are_marked_secure_when_configured() {
    let server = TestServer::start_with(|shop, demo_key| ServerOptions {
        storefront_tenant: Some(shop.clone()),
        demo_console_key: Some(demo_key.to_string()),
        secure_cookies: true,
        ..Default::default()
    });
    let response = server.post("/console/login", "", &[("key", &server.shop_secret)]);
    let cookie = set_cookie(&response, "attune_console").unwrap();
    assert!(cookie.ends_with("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let shop = server.get("/shop", "");
    let visitor = set_cookie(&shop, "attune_visitor").unwrap();
    let session = set_cookie(&shop, "attune_session").unwrap();
    assert!(visitor.ends_with("; Secure") && session.ends_with("; Secure"), "{visitor} / {session}");
}

#[test]
fn without_a_demo_key_there_is_no_one_click_sign_in() {
    let server = TestServer::start_with(|_, _| ServerOptions::default());
    let login = page(server.get("/console/login", ""), StatusCode::OK);
    assert!(!login.contains("demo-sign-in"));
    assert_eq!(server.post("/console/login/demo", "", &[]).status(), StatusCode::NOT_FOUND);
    // Nor a storefront.
    let shop = page(server.get("/shop", ""), StatusCode::NOT_FOUND);
    assert!(shop.contains("no storefront"));
    page(server.get("/shop/products/85123A", ""), StatusCode::NOT_FOUND);
}

#[test]
fn the_overview_shows_counts_and_a_daily_chart() {
    let server = TestServer::start();
    let overview = server.console("/console");
    assert!(overview.contains("id=\"stat-items\" data-value=\"65\""), "items count");
    assert!(overview.contains("id=\"stat-users\" data-value=\"76\""), "customers count");
    assert!(overview.contains(&format!("id=\"stat-events\" data-value=\"{}\"", DAYS + 1 + VIEWS)), "events count");
    assert!(overview.contains(&format!("id=\"stat-orders\" data-value=\"{DAYS}\"")), "orders count");
    assert_eq!(overview.matches("class=\"bar\"").count(), DAYS as usize, "a bar per day with events");
    assert!(overview.contains("Tue 1 Mar 2011: 2 events"), "bars have tooltips");
    assert!(overview.contains("1 Mar 2011"), "first event date");
    assert!(overview.contains("Purchase") && overview.contains("Return"), "events by type");
}

#[test]
fn the_catalog_searches_pages_and_escapes() {
    let server = TestServer::start();
    let first = server.console("/console/catalog");
    assert_eq!(first.matches("<tr>").count(), 51, "header and 50 rows");
    assert!(first.contains("65 items"));
    assert!(first.contains("id=\"next-page\""));
    let next = first.split("id=\"next-page\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let second = server.console(&next);
    assert_eq!(second.matches("<tr>").count(), 16, "header and the last 15 rows");
    assert!(!second.contains("id=\"next-page\""));
    assert!(!second.contains("<script>alert"), "titles are escaped");
    assert!(second.contains("&lt;script&gt;alert"));

    let search = server.console("/console/catalog?q=hanging+heart");
    assert!(search.contains("1 item matches"));
    assert!(search.contains("WHITE HANGING HEART T-LIGHT HOLDER") && search.contains("£2.55"));
    let by_id = server.console("/console/catalog?q=85123");
    assert!(by_id.contains("/console/catalog/85123A"));

    let detail = server.console("/console/catalog/85123A");
    assert!(detail.contains("WHITE HANGING HEART T-LIGHT HOLDER") && detail.contains("In stock"));
    assert!(detail.contains("/shop/products/85123A"), "links to the storefront");
    let missing =
        page(server.get("/console/catalog/nope", &server.console_cookie(&server.shop_secret)), StatusCode::NOT_FOUND);
    assert!(missing.contains("No item with this id"));
    // A path id that is not UTF-8 is an error page too, not the framework's plain text.
    for path in ["/console/catalog/%FF", "/console/customers/%FF", "/shop/products/%FF"] {
        let bad = page(server.get(path, &server.console_cookie(&server.shop_secret)), StatusCode::BAD_REQUEST);
        assert!(bad.contains("UTF-8"), "{path}: {bad}");
    }
}

#[test]
fn customer_profiles_show_a_summary_and_a_timeline_with_titles() {
    let server = TestServer::start();
    let list = server.console("/console/customers");
    assert!(list.contains("76 customer profiles") && list.contains("/console/customers/17850"));
    assert!(list.contains("id=\"next-page\""));
    assert!(server.console("/console/customers?q=1785").contains("1 customer matches"));

    let profile = server.console("/console/customers/17850");
    assert!(profile.contains("href=\"/console/customers/17850/export\""), "an export button");
    let download = server.get("/console/customers/17850/export", &server.console_cookie(&server.shop_secret));
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_string();
    assert_eq!(disposition, "attachment; filename=\"customer-17850.json\"");
    let exported: serde_json::Value = serde_json::from_str(&download.text().unwrap()).unwrap();
    assert_eq!(exported["user_id"], "17850");
    assert!(!exported["events"].as_array().unwrap().is_empty(), "{exported}");
    assert!(profile.contains("United Kingdom"), "traits");
    assert!(profile.contains("Personalization"), "consent");
    assert!(profile.contains("WHITE HANGING HEART T-LIGHT HOLDER"), "titles from the catalog");
    assert!(profile.contains("Order <span class=\"mono\">536320</span>"), "newest first");
    // Orders: 20 × 6 × £2.55 + 10 × £3.39 + 160 × £2.95 = £306 + £33.90 + £472 = £811.90.
    assert!(profile.contains("£811.90"), "revenue");
    assert!(profile.contains("Web") && profile.contains("Store") && profile.contains("App"), "channels");
    assert!(profile.contains("Show 3 more lines"), "long orders fold");
    assert!(profile.contains("id=\"older-events\""), "the timeline pages");
    let older = profile.split("id=\"older-events\" href=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let older = server.console(&older.replace("&amp;", "&"));
    assert!(older.contains("Viewed") && !older.contains("536320"), "older events on the second page");

    // Another tenant's console never sees this customer.
    let other = server.get("/console/customers/17850", &server.console_cookie(&server.other_secret));
    assert!(page(other, StatusCode::NOT_FOUND).contains("No customer with this id"));
}

#[test]
fn the_storefront_shows_products_and_records_what_visitors_do() {
    let server = TestServer::start();
    let home = server.get("/shop", "");
    let visitor = cookie_pair(&set_cookie(&home, "attune_visitor").expect("a visitor id is set"));
    let session = cookie_pair(&set_cookie(&home, "attune_session").expect("a session id is set"));
    let home = page(home, StatusCode::OK);
    assert!(home.contains("Corner Gift Shop"));
    let popular = home.split("id=\"popular-grid\"").nth(1).unwrap();
    let first = popular.find("/shop/products/85123A").unwrap();
    let second = popular.find("/shop/products/71053").unwrap();
    assert!(first < second, "the most ordered item comes first");
    assert!(popular.contains("In 20 recent orders"));
    assert!(!popular.contains("/shop/products/sold-out"), "sold-out items are not promoted");

    let cookies = format!("{visitor}; {session}");
    let views = server.events_of_type(EventType::View);
    let product = page(server.get("/shop/products/85123A", &cookies), StatusCode::OK);
    assert!(product.contains("White Hanging Heart T-Light Holder") && product.contains("£2.55"));
    assert!(
        product.contains("id=\"recommendations-similar\"")
            && product.contains("id=\"recommendations-bought-together\"")
    );
    assert_eq!(server.events_of_type(EventType::View), views + 1, "the view is recorded");
    let similar = product.split("id=\"recommendations-similar\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(similar.contains("class=\"product-card\"") && similar.contains("/shop/products/20001"), "{similar}");
    assert!(!similar.contains("/shop/products/85123A\""), "the product itself is not recommended");
    assert_eq!(server.events_of_type(EventType::Impression), 1, "the shown recommendations are an impression");
    let stats = server.store.stats(&server.shop).unwrap();
    assert!(stats.users == 76, "visitors are anonymous, not customers");

    let added = server.post("/shop/cart/add", &cookies, &[("item_id", "85123A"), ("quantity", "3")]);
    assert_eq!(location(&added), "/shop/cart?added=85123A");
    let cart_cookie = cookie_pair(&set_cookie(&added, "attune_cart").unwrap());
    assert_eq!(server.events_of_type(EventType::AddToCart), 1);
    let cookies = format!("{cookies}; {cart_cookie}");
    let cart = page(server.get("/shop/cart?added=85123A", &cookies), StatusCode::OK);
    assert!(cart.contains("id=\"added-notice\""));
    assert!(cart.contains("White Hanging Heart T-Light Holder") && cart.contains("£7.65"), "line total");
    assert!(cart.contains("id=\"recommendations-complete-your-basket\""));
    let complete =
        cart.split("id=\"recommendations-complete-your-basket\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(complete.contains("/shop/products/20001"), "{complete}");
    assert!(!complete.contains("/shop/products/85123A\""), "basket items are not recommended");
    assert!(cart.contains("<span class=\"basket-count\" id=\"basket-count\">3</span>"));

    let updated = server.post("/shop/cart/update", &cookies, &[("item_id", "85123A"), ("quantity", "1")]);
    let cart_cookie = cookie_pair(&set_cookie(&updated, "attune_cart").unwrap());
    assert_eq!(server.events_of_type(EventType::RemoveFromCart), 1);
    let cookies = format!("{visitor}; {session}; {cart_cookie}");
    assert!(page(server.get("/shop/cart", &cookies), StatusCode::OK).contains("id=\"cart-total\">£2.55"));
    let removed = server.post("/shop/cart/remove", &cookies, &[("item_id", "85123A")]);
    assert!(set_cookie(&removed, "attune_cart").unwrap().contains("Max-Age=0"));
    assert_eq!(server.events_of_type(EventType::RemoveFromCart), 2);

    // Every recorded event is the visitor's, on the web channel.
    let events = server.store.events_after(&server.shop, 0, 1_000).unwrap();
    let anonymous_id = visitor.split_once('=').unwrap().1;
    let recorded: Vec<_> = events.iter().filter(|e| e.event.subject.anonymous_id.is_some()).collect();
    let impressions = recorded.iter().filter(|e| e.event.event_type() == EventType::Impression).count();
    assert_eq!((recorded.len() - impressions, impressions), (4, 3), "4 actions, 3 pages with recommendations");
    assert!(recorded.iter().all(|e| e.event.subject.anonymous_id.as_ref().unwrap().as_str() == anonymous_id));
    assert!(recorded.iter().all(|e| e.event.session_id.is_some() && e.event.channel == attune_core::Channel::Web));
}

#[test]
fn the_storefront_browses_searches_and_filters_by_category() {
    let server = TestServer::start();
    let browse = page(server.get("/shop/browse", ""), StatusCode::OK);
    assert!(browse.contains("65 products") && browse.contains("id=\"next-page\""));
    assert_eq!(browse.matches("class=\"product-card\"").count(), 24);

    let searches = server.events_of_type(EventType::Search);
    let search = page(server.get("/shop/browse?q=lantern", ""), StatusCode::OK);
    assert!(search.contains("1 product") && search.contains("White Metal Lantern"));
    assert_eq!(server.events_of_type(EventType::Search), searches + 1, "searches are recorded");

    let category = page(server.get("/shop/category/Candles", ""), StatusCode::OK);
    assert!(category.contains("Beeswax candle") && category.contains("2 products"));
    let sold_out = page(server.get("/shop/products/sold-out", ""), StatusCode::OK);
    assert!(sold_out.contains("Out of stock") && !sold_out.contains("id=\"add-to-basket\""));

    let missing = page(server.get("/shop/products/nope", ""), StatusCode::NOT_FOUND);
    assert!(missing.contains("no longer"));
    let xss = page(server.get("/shop/products/xss", ""), StatusCode::OK);
    assert!(!xss.contains("<script>alert") && xss.contains("&lt;script&gt;"));
}

#[test]
fn forms_from_other_sites_are_refused() {
    let server = TestServer::start();
    let login = server
        .client
        .post(format!("{}/console/login", server.base))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("key", server.shop_secret.as_str())])
        .send()
        .unwrap();
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&login, "attune_console").is_none());
    let cart = server
        .client
        .post(format!("{}/shop/cart/add", server.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("item_id", "85123A")])
        .send()
        .unwrap();
    assert_eq!(cart.status(), StatusCode::FORBIDDEN);
    // The same form from the site itself works.
    let own = server
        .client
        .post(format!("{}/shop/cart/add", server.base))
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("item_id", "85123A")])
        .send()
        .unwrap();
    assert_eq!(location(&own), "/shop/cart?added=85123A");
}

#[test]
fn pages_send_security_headers_and_the_stylesheet_is_served() {
    let server = TestServer::start();
    let response = server.get("/console/login", "");
    let csp = response.headers().get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'none'"));
    assert_eq!(response.headers().get("x-frame-options").unwrap(), "DENY");
    let css = server.get("/assets/attune.css", "");
    assert_eq!(css.headers().get("content-type").unwrap(), "text/css; charset=utf-8");
    assert!(css.text().unwrap().contains("--accent"));
}

#[test]
fn the_storefront_home_is_personalised_by_the_visitors_own_activity() {
    let server = TestServer::start();
    let home = server.get("/shop", "");
    let visitor = cookie_pair(&set_cookie(&home, "attune_visitor").unwrap());
    let session = cookie_pair(&set_cookie(&home, "attune_session").unwrap());
    let home = page(home, StatusCode::OK);
    assert!(!home.contains("id=\"recommendations-recently-viewed\""), "a new visitor has nothing to pick up");
    assert!(!home.contains("id=\"recommendations-for-you\""), "nor anything to personalise from");
    let cookies = format!("{visitor}; {session}");
    page(server.get("/shop/products/71053", &cookies), StatusCode::OK);
    let added = server.post("/shop/cart/add", &cookies, &[("item_id", "85123A"), ("quantity", "1")]);
    let cookies = format!("{cookies}; {}", cookie_pair(&set_cookie(&added, "attune_cart").unwrap()));

    let home = page(server.get("/shop", &cookies), StatusCode::OK);
    let slot = |id: &str| -> String {
        let marker = format!("id=\"{id}\"");
        assert!(home.contains(&marker), "the home page has `{id}`: {home}");
        home.split(&marker).nth(1).unwrap().split("</section>").next().unwrap().to_string()
    };
    assert!(slot("recommendations-recently-viewed").contains("/shop/products/71053"));
    assert!(slot("recommendations-for-you").contains("class=\"product-card\""));
    let complete = slot("recommendations-complete-your-basket");
    assert!(complete.contains("class=\"product-card\"") && !complete.contains("/shop/products/85123A\""), "{complete}");
    let personal = home.split("id=\"popular\"").next().unwrap();
    assert!(personal.contains("recommendations-recently-viewed"), "personal slots come before the popular ones");
}

#[test]
fn the_storefront_explains_each_recommendation_and_lets_visitors_control_and_download_their_data() {
    let server = TestServer::start();
    let sms = attune_core::DeclaredPurpose {
        name: "sms_reminders".into(),
        description: "Text messages about offers".into(),
        default_granted: false,
    };
    let settings = attune_core::TenantSettings { purposes: vec![sms], ..Default::default() };
    server.store.put_tenant_settings(&server.shop, &settings).unwrap();
    let home = server.get("/shop", "");
    let visitor = cookie_pair(&set_cookie(&home, "attune_visitor").unwrap());
    let session = cookie_pair(&set_cookie(&home, "attune_session").unwrap());
    let cookies = format!("{visitor}; {session}");
    page(server.get("/shop/products/71053", &cookies), StatusCode::OK);

    // Every recommended product says why, with the data used and the way to turn personalization off.
    let home = page(server.get("/shop", &cookies), StatusCode::OK);
    assert!(home.contains("id=\"privacy-link\""), "every page links to the privacy panel");
    let recent =
        home.split("id=\"recommendations-recently-viewed\"").nth(1).unwrap().split("</section>").next().unwrap();
    let cards = recent.matches("class=\"recommended-card\"").count();
    assert!(cards > 0 && recent.matches("Why am I seeing this?").count() == cards, "{recent}");
    assert!(recent.contains("Data used: ") && recent.contains("The products you viewed in this shop"), "{recent}");
    assert!(recent.contains("Turn personalization off") && recent.contains("href=\"/shop/privacy\""), "{recent}");

    // The panel shows the shop's default; the visitor turns personalization off.
    let panel = page(server.get("/shop/privacy", &cookies), StatusCode::OK);
    assert!(panel.contains("id=\"consent-personalization\"") && panel.contains("You have not chosen yet"), "{panel}");
    assert!(
        panel.contains("id=\"consent-sms_reminders\"") && panel.contains("Text messages about offers"),
        "the shop's own purpose"
    );
    let token_free = server.post("/shop/privacy", &cookies, &[("analytics", "on")]);
    assert_eq!(location(&token_free), "/shop/privacy?saved=1");
    let panel = page(server.get("/shop/privacy?saved=1", &cookies), StatusCode::OK);
    assert!(panel.contains("id=\"privacy-saved\""), "{panel}");
    assert!(panel.contains("Personalization withdrawn") && panel.contains("Marketing withdrawn"), "{panel}");
    let anonymous = attune_core::AnonymousId::parse(visitor.split('=').nth(1).unwrap().to_string()).unwrap();
    let ledger = server.store.visitor_consent_history(&server.shop, &anonymous).unwrap();
    assert_eq!(ledger.len(), 4, "a first choice records every purpose, the shop's own too: {ledger:?}");
    assert!(ledger.iter().all(|s| s.source == attune_core::ConsentSource::Storefront));

    // From the next page on, nothing of theirs shapes what they see.
    let home = page(server.get("/shop", &cookies), StatusCode::OK);
    assert!(home.contains("id=\"personalization-off\""), "{home}");
    assert!(!home.contains("id=\"recommendations-recently-viewed\""));
    // Saving the same choice again records nothing new.
    server.post("/shop/privacy", &cookies, &[("analytics", "on")]);
    assert_eq!(server.store.visitor_consent_history(&server.shop, &anonymous).unwrap().len(), 4);

    // "Download my data": their views and their choices, as JSON.
    let download = server.get("/shop/privacy/export", &cookies);
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/json");
    let data: serde_json::Value = serde_json::from_str(&download.text().unwrap()).unwrap();
    assert_eq!(data["anonymous_id"], anonymous.as_str());
    assert_eq!(data["consent"]["personalization"], false);
    assert_eq!(data["consent_history"].as_array().map(Vec::len), Some(4));
    let viewed: Vec<&str> = data["activity"].as_array().unwrap().iter().filter_map(|e| e["item_id"].as_str()).collect();
    assert_eq!(viewed, ["71053"], "{data}");
}
