//! The console and the storefront in a real browser: `attune serve --demo` runs as a child process and
//! headless Chromium, driven through chromedriver, signs in with one click, reads the overview, a
//! customer's timeline and a product page, and puts the product in the basket; opens "Why am I seeing this?" on a
//! recommendation, turns personalization off in the privacy panel and downloads the visitor's data; then checks that the
//! analytics of the used demo still make sense. Expected values come from the bundled demo data itself. Screenshots of every page land in `target/screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`); without
//! them the test fails, unless `ATTUNE_SKIP_BROWSER_TESTS=1` is set. `CHROMEDRIVER` and `CHROMIUM`
//! override the binaries' paths.

mod process;

use attune_core::{EventKind, Item};
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, passing or failing.
struct Process {
    name: &'static str,
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            eprintln!("could not stop {}: {error}", self.name);
        }
        let _ = self.child.wait();
    }
}

fn binary(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start chromedriver on a free port and wait until it answers.
fn start_chromedriver(chromedriver: &Path) -> (Process, String) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let process = Process { name: "chromedriver", child };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && reqwest::blocking::get(format!("{url}/status")).is_ok_and(|r| r.status().is_success())
        {
            return (process, url);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not answer on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn capabilities(chromium: &Path, profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--disable-quic".to_string(),
        "--no-first-run".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-component-update".to_string(),
        "--disable-sync".to_string(),
        "--hide-scrollbars".to_string(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900".to_string(),
    ];
    let value = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium.to_str().unwrap(), "args": args},
    });
    value.as_object().unwrap().clone()
}

/// What the pages must show, from the bundled demo data.
struct Expected {
    items: usize,
    customer: String,
    /// Titles of items on the customer's newest order.
    customer_titles: Vec<String>,
    product: Item,
    /// The demo's first day as loaded (shifted to end yesterday), `YYYY-MM-DD`.
    first_day: String,
}

fn expected() -> Expected {
    let mut dataset = attune::demo::load_demo_dataset().expect("the bundled demo data loads");
    dataset.shift_to_end_before(attune_core::Timestamp::now()).expect("the demo shifts");
    let first_day = dataset.events[0].timestamp.day();
    let customer = "17850".to_string();
    let newest_order = dataset
        .events
        .iter()
        .filter(|e| e.subject.user_id.as_ref().is_some_and(|u| u.as_str() == customer))
        .filter_map(|e| match &e.kind {
            EventKind::Purchase { lines, .. } => Some((e.timestamp, lines)),
            _ => None,
        })
        .max_by_key(|(timestamp, _)| *timestamp)
        .expect("customer 17850 has orders in the demo data")
        .1;
    let customer_titles = newest_order
        .iter()
        .take(3)
        .map(|line| dataset.items.iter().find(|i| i.id == line.item_id).expect("ordered items exist").title.clone())
        .collect();
    let product = dataset.items.iter().find(|i| i.id.as_str() == "85123A").expect("85123A is in the demo").clone();
    Expected { items: dataset.items.len(), customer, customer_titles, product, first_day }
}

/// The price as the storefront writes it (`£2.95`).
fn pounds(item: &Item) -> String {
    let price = item.price.expect("85123A has a price");
    assert_eq!(price.currency.as_str(), "GBP");
    format!("£{}", price.amount_string())
}

/// Save what the window shows as `<name>.png`, and the whole page as `<name>-full.png` when it is taller.
async fn save_screenshot(client: &Client, name: &str) {
    let dir = screenshot_dir();
    let png = client.screenshot().await.expect("take a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    eprintln!("screenshot: {}", dir.join(format!("{name}.png")).display());
    let height = client
        .execute("return Math.ceil(document.documentElement.scrollHeight);", Vec::new())
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let (width, window_height) = client.get_window_size().await.expect("the window size");
    if height > 900 {
        // Grow the window to the page's height (within reason) for one whole-page picture.
        let height = height.min(5_000) as u32;
        client.set_window_size(width as u32, height + 160).await.ok();
        let png = client.screenshot().await.expect("take a whole-page screenshot");
        client.set_window_size(width as u32, window_height as u32).await.ok();
        std::fs::write(dir.join(format!("{name}-full.png")), png).expect("write the screenshot");
    }
}

/// The text of the element `css`. A page that is still being replaced (after a form submit) can make the
/// element found go stale before its text is read; it is then found again, a few times.
async fn text_of(client: &Client, css: &str) -> String {
    for _ in 0..20 {
        let element = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no element `{css}`: {e}"));
        match element.text().await {
            Ok(text) => return text,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the text of `{css}`: {e}"),
        }
    }
    panic!("`{css}` kept going stale")
}

/// The `data-render` number of the console page shown (a new number for every page the server renders).
async fn render_number(client: &Client) -> Option<u64> {
    let script = "return document.body ? document.body.getAttribute('data-render') : null;";
    client.execute(script, Vec::new()).await.ok()?.as_str()?.parse().ok()
}

/// Clicks `css` (a form button) and waits until the page it leads to has replaced the one shown: its
/// `data-render` number differs and the document is loaded. No lookup runs against the page being replaced.
async fn click_and_wait_for_new_page(client: &Client, css: &str) {
    let before = render_number(client).await.expect("a console page with a render number");
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no element `{css}`: {e}")).click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let loaded = client
            .execute("return document.readyState;", Vec::new())
            .await
            .ok()
            .is_some_and(|state| state == "complete");
        if loaded && render_number(client).await.is_some_and(|now| now != before) {
            return;
        }
        assert!(Instant::now() < deadline, "no new page after clicking `{css}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `data-value` of the element `css` as a number.
async fn value_of(client: &Client, css: &str) -> f64 {
    let element = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no element `{css}`: {e}"));
    let value = element.attr("data-value").await.unwrap().unwrap_or_else(|| panic!("`{css}` has no data-value"));
    value.parse().unwrap_or_else(|_| panic!("`{css}` data-value `{value}` is not a number"))
}

/// Each segment's mean P(alive) (`None` when not identified) and mean expected purchases in the next 90 days,
/// from the insights page, by segment name.
async fn segment_figures(client: &Client) -> std::collections::HashMap<String, (Option<f64>, f64)> {
    let mut segments = std::collections::HashMap::new();
    for row in client.find_all(Locator::Css("#segments-table tbody tr")).await.unwrap() {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        let name = cells[0].text().await.unwrap();
        let percent = cells[2].text().await.unwrap();
        let p_alive = percent.trim_end_matches('%').trim().parse::<f64>().ok().map(|p| p / 100.0);
        let purchases = cells[3].attr("data-value").await.unwrap().expect("purchases carry a data-value");
        segments.insert(name, (p_alive, purchases.parse().unwrap()));
    }
    segments
}

/// How many pixels of the table with id `id` are wider than its container (0 or less: it fits).
async fn clipped_by(client: &Client, id: &str) -> i64 {
    let script =
        format!("const t = document.getElementById('{id}'); return t.scrollWidth - t.parentElement.clientWidth;");
    client.execute(&script, Vec::new()).await.unwrap().as_i64().unwrap_or_else(|| panic!("no table `{id}`"))
}

/// After the demo has been used (events of today beside a history that ends yesterday), the analytics are
/// still those of a live shop: Champions well above Lost, a forecast of non-zero weeks, a reorder list that
/// fits a 1400 px wide window.
async fn check_analytics_after_use(client: &Client, base: &str) {
    client.goto(&format!("{base}/console/insights")).await.unwrap();
    let segments = segment_figures(client).await;
    let (champions, lost) = (segments["Champions"], segments["Lost"]);
    // Online Retail I shows no measurable dropout (MBG/NBD fits a/(a+b) ≈ 1e-4, as lifetimes does): the page must
    // say P(alive) is not identified rather than show 100 % for Lost customers.
    match (champions.0, lost.0) {
        (Some(champions), Some(lost)) => assert!(champions > lost + 0.3, "P(alive) {segments:?}"),
        (None, None) => {
            let note = text_of(client, "#p-alive-note").await;
            assert!(note.contains("no measurable dropout"), "{note}");
        }
        _ => panic!("P(alive) is identified for some segments only: {segments:?}"),
    }
    assert!(champions.1 > 5.0 * lost.1, "Champions buy far more than Lost in the next 90 days: {segments:?}");
    client.set_window_size(1400, 900).await.unwrap();
    client.goto(&format!("{base}/console/insights")).await.unwrap();
    for table in ["segments-table", "at-risk-table"] {
        assert!(clipped_by(client, table).await <= 0, "`{table}` is clipped at 1400 px");
    }
    save_screenshot(client, "console-insights-after-use").await;

    client.goto(&format!("{base}/console/forecast?granularity=week")).await.unwrap();
    let next_weeks = value_of(client, "#forecast-total").await;
    assert!(next_weeks > 100.0, "the weekly forecast has non-zero weeks: {next_weeks}");
    client.goto(&format!("{base}/console/forecast")).await.unwrap();
    let rows = client.find_all(Locator::Css("#reorder tbody tr")).await.unwrap().len();
    assert!(rows > 10, "the reorder list is not empty after use ({rows} rows)");
    let overflow = clipped_by(client, "reorder-table").await;
    assert!(overflow <= 0, "the reorder table is clipped by {overflow} px at 1400 px");
    save_screenshot(client, "console-forecast-after-use").await;
}

/// "Why am I seeing this?" on a recommendation, the privacy panel that turns personalization off, and the
/// visitor's data download.
async fn check_privacy_controls(client: &Client, base: &str) {
    let why = "#recommendations-recently-viewed details.why-this";
    // The slot stays hidden until the first recommendation model is trained (in the background at start-up).
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        client.goto(&format!("{base}/shop")).await.unwrap();
        if !client.find_all(Locator::Css(why)).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no recently viewed slot on the home page");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    client
        .find(Locator::Css(&format!("{why} summary")))
        .await
        .expect("a recommendation explains itself")
        .click()
        .await
        .unwrap();
    let explained = text_of(client, &format!("{why} .why-this-body")).await;
    assert!(
        explained.contains("Data used: The products you viewed in this shop")
            && explained.contains("Turn personalization off"),
        "the opened disclosure shows the explanation and the data used: {explained}"
    );
    save_screenshot(client, "shop-why-am-i-seeing-this").await;
    client.find(Locator::Css(&format!("{why} a.why-privacy"))).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#privacy-form"))
        .await
        .expect("the privacy panel");
    assert_eq!(client.current_url().await.unwrap().path(), "/shop/privacy");
    let checkbox = client.find(Locator::Css("#consent-personalization")).await.unwrap();
    assert_eq!(checkbox.prop("checked").await.unwrap().as_deref(), Some("true"), "the shop's default is on");
    checkbox.click().await.unwrap();
    client.find(Locator::Css("#save-privacy")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#privacy-saved"))
        .await
        .expect("the panel after saving");
    let history = text_of(client, "#privacy-history").await;
    assert!(history.contains("Personalization withdrawn"), "{history}");
    save_screenshot(client, "shop-privacy-panel").await;

    client.goto(&format!("{base}/shop")).await.unwrap();
    assert!(!client.find_all(Locator::Css("#personalization-off")).await.unwrap().is_empty());
    assert!(client.find_all(Locator::Css("#recommendations-recently-viewed")).await.unwrap().is_empty());
    let script = "return fetch('/shop/privacy/export').then(response => response.text())";
    let downloaded = client.execute(script, vec![]).await.unwrap();
    let data: serde_json::Value = serde_json::from_str(downloaded.as_str().unwrap()).unwrap();
    assert_eq!(data["consent"]["personalization"], false, "{data}");
    assert!(data["activity"].as_array().is_some_and(|a| a.iter().any(|e| e["item_id"] == "85123A")), "{data}");
}

async fn run(client: &Client, base: &str, expected: &Expected) {
    // Sign in with one click.
    client.goto(&format!("{base}/console/login")).await.unwrap();
    save_screenshot(client, "console-login").await;
    client.find(Locator::Css("#demo-sign-in")).await.expect("the one-click demo sign-in").click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#stat-items"))
        .await
        .expect("the overview after sign-in");
    assert_eq!(client.current_url().await.unwrap().path(), "/console");

    // The overview shows the real counts and a bar per day.
    let items: usize = text_of(client, "#stat-items").await.replace(',', "").parse().expect("a number of items");
    assert_eq!(items, expected.items, "the items count matches the demo data");
    assert!(items > 3_000);
    let bars = client.find_all(Locator::Css("svg#events-chart rect.bar")).await.unwrap().len();
    assert!(bars > 300, "the chart has a bar per day with events, got {bars}");
    let tooltip = client.find(Locator::Css("svg#events-chart g.col title")).await.unwrap().html(true).await.unwrap();
    assert!(tooltip.contains(&expected.first_day[..4]), "bars have tooltips with their (shifted) day: {tooltip}");
    save_screenshot(client, "console-overview").await;

    // The catalog finds the product by title.
    client.goto(&format!("{base}/console/catalog?q=hanging+heart")).await.unwrap();
    let table = text_of(client, "#catalog-table").await;
    assert!(table.contains("85123A"), "catalog search finds 85123A: {table}");
    save_screenshot(client, "console-catalog").await;

    client.goto(&format!("{base}/console/catalog/85123A")).await.unwrap();
    assert!(text_of(client, "h1").await.to_lowercase().contains("hanging heart"));
    save_screenshot(client, "console-item").await;

    client.goto(&format!("{base}/console/customers")).await.unwrap();
    assert!(!client.find_all(Locator::Css("#customers-table tbody tr")).await.unwrap().is_empty());
    save_screenshot(client, "console-customers").await;

    // A customer's timeline shows real product titles.
    client.goto(&format!("{base}/console/customers/{}", expected.customer)).await.unwrap();
    let timeline = text_of(client, "#timeline").await;
    for title in &expected.customer_titles {
        assert!(timeline.contains(title.as_str()), "the timeline shows `{title}`");
    }
    assert!(
        timeline.to_lowercase().contains("white hanging heart t-light holder"),
        "customer 17850's timeline shows the white hanging heart t-light holder"
    );
    let summary = text_of(client, "#customer-summary").await;
    assert!(summary.contains("Orders") && summary.contains('£'), "the summary has orders and revenue: {summary}");
    save_screenshot(client, "console-customer").await;

    // Demand forecast and reorder suggestions from the demo's daily demand: run the forecast task from the
    // console and wait for it (the scheduler may have run one already).
    client.goto(&format!("{base}/console/forecast")).await.unwrap();
    click_and_wait_for_new_page(client, "#tasks form button").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let tasks = text_of(client, "#tasks").await;
        if tasks.contains("succeeded") {
            break;
        }
        assert!(!tasks.contains("failed"), "the forecast task failed: {tasks}");
        assert!(std::time::Instant::now() < deadline, "the forecast task did not finish: {tasks}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        client.goto(&format!("{base}/console/forecast")).await.unwrap();
    }
    assert!(!client.find_all(Locator::Css("svg#forecast-chart")).await.unwrap().is_empty());
    let reorder = text_of(client, "#reorder").await;
    let rows = client.find_all(Locator::Css("#reorder tbody tr")).await.unwrap().len();
    assert!(rows > 10, "the demo has items to reorder ({rows} rows): {reorder}");
    assert!(reorder.contains("Reorder now"), "{reorder}");
    save_screenshot(client, "console-forecast").await;

    // The search playground shows why each hit ranks where it does.
    client.goto(&format!("{base}/console/search?q=hanging+hart&user_id={}", expected.customer)).await.unwrap();
    let hits = text_of(client, "#search-hits").await;
    assert!(
        hits.to_lowercase().contains("hanging heart") && hits.to_lowercase().contains("personal"),
        "the playground finds the hanging heart despite the typo: {hits}"
    );
    save_screenshot(client, "console-search").await;

    // The storefront's product page, and the basket.
    client.goto(&format!("{base}/shop")).await.unwrap();
    assert!(!client.find_all(Locator::Css("#popular-grid .product-card")).await.unwrap().is_empty());
    save_screenshot(client, "shop-home").await;

    client.goto(&format!("{base}/shop/browse?q=heart")).await.unwrap();
    assert!(text_of(client, "#result-count").await.ends_with("products"));
    save_screenshot(client, "shop-browse").await;

    // Storefront search: results with their breakdown and the search box's suggestions (the demo catalog has no
    // brands, categories or colours to facet on).
    client.goto(&format!("{base}/shop/search?q=hanging+heart")).await.unwrap();
    let grid = text_of(client, "#search-grid").await;
    assert!(grid.to_lowercase().contains("hanging heart") && grid.contains("score"), "{grid}");
    assert!(!client.find_all(Locator::Css("datalist#search-suggestions option")).await.unwrap().is_empty());
    save_screenshot(client, "shop-search").await;

    client.goto(&format!("{base}/shop/products/85123A")).await.unwrap();
    let title = text_of(client, "#product-title").await;
    assert_eq!(title.to_lowercase(), expected.product.title.to_lowercase());
    let price = pounds(&expected.product);
    assert_eq!(text_of(client, "#product-price").await, price);
    save_screenshot(client, "shop-product").await;

    client.find(Locator::Css("#add-to-basket")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#cart"))
        .await
        .expect("the basket after adding");
    assert_eq!(client.current_url().await.unwrap().path(), "/shop/cart");
    let cart = text_of(client, "#cart").await;
    assert!(
        cart.to_lowercase().contains(&expected.product.title.to_lowercase()),
        "the basket lists the product: {cart}"
    );
    assert_eq!(text_of(client, "#cart-total").await, price);
    assert_eq!(text_of(client, "#basket-count").await, "1");
    save_screenshot(client, "shop-basket").await;

    check_privacy_controls(client, base).await;

    // The visit was recorded: the console's event count went up by a view and an add to cart.
    client.goto(&format!("{base}/console")).await.unwrap();
    let types = text_of(client, "#event-types").await;
    assert!(types.contains("View") && types.contains("Add to cart"), "storefront events are recorded: {types}");
    save_screenshot(client, "console-overview-after-visit").await;

    check_analytics_after_use(client, base).await;
}

#[test]
fn console_and_storefront_work_in_a_browser() {
    if std::env::var("ATTUNE_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("skipped: ATTUNE_SKIP_BROWSER_TESTS=1");
        return;
    }
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    for (path, package) in [(&chromedriver, "chromium-driver"), (&chromium, "chromium")] {
        assert!(
            path.exists(),
            "{} is missing: install it (`apt-get install -y chromium chromium-driver`, package {package}) \
             or set ATTUNE_SKIP_BROWSER_TESTS=1 to skip the browser test",
            path.display()
        );
    }
    let expected = expected();
    let directory = tempfile::tempdir().unwrap();
    let server = process::Served::start(&directory.path().join("data"), &["--demo"]);
    let base = server.base.clone();
    let (_chromedriver, webdriver) = start_chromedriver(&chromedriver);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities(&chromium, &directory.path().join("chrome-profile")))
            .connect(&webdriver)
            .await
            .expect("start a Chromium session through chromedriver");
        // Run the flow in a task so a failed assertion still closes the browser session.
        let outcome = tokio::spawn({
            let client = client.clone();
            let base = base.clone();
            async move { run(&client, &base, &expected).await }
        })
        .await;
        client.close().await.ok();
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    });
}
