//! `attune bench recs`: recommendation serving speed on a catalog of 44,446 products.
//!
//! The catalog is the real fashion catalog (`catalog/` in the datasets directory: titles, gender, category
//! levels, colour, season, usage; prices and stock are drawn from a seeded generator because the source has
//! none). Shopper behaviour is simulated with a seeded generator, because no public data set has 40k-item
//! catalogs with interactions: each shopper prefers one or two article types of one gender and views, adds
//! to cart and buys popular-first (Zipf) items of those, so the models have realistic structure and sparsity.
//!
//! Three measurements, all against a real server in this process with a temporary store (SQLite, or with
//! `--database-url` a scratch schema of that PostgreSQL database):
//! 1. latency per scenario in process: request bodies passed one at a time to
//!    `attune_server::api::recommendations::recommend_in_process`, the handler's own steps without the socket
//!    (JSON, validation, model, rules, explanations), p50/p99/max;
//! 2. the same over loopback HTTP through the server's whole stack (routing, authentication, tokio), and a
//!    personalized lexical search (`GET /v1/search`, two title words, a simulated shopper);
//! 3. throughput: `wrk` (when installed, e.g. `apt-get install wrk`) against the server's loopback port, per
//!    scenario, with a Lua script that rotates request bodies.
//!
//! Every request says `"log_impression": false`: a load test is not shoppers seeing lists, so it stores no
//! `impression` events.

use crate::bench::percentile;
use crate::cpu::CpuTimes;
use crate::scale_shop::zipf;
use anyhow::{Context, bail, ensure};
use attune_core::SplitMix64;
use attune_core::input::{AmountInput, ScalarValue, TimeInput};
use attune_core::{ApiKeyKind, Event, EventInput, Item, ItemInput, OrderLineInput, TenantId, Timestamp};
use attune_engine::keys::{create_api_key, create_tenant};
use attune_engine::{Engine, EngineConfig};
use attune_server::{AppState, ServerOptions};
use attune_store::{SqliteOptions, Synchronous};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct RecsBenchArgs {
    /// Directory of the data sets (see ../shared/data/README.md).
    #[arg(long, default_value = "../shared/data", env = "ATTUNE_DATASETS")]
    pub datasets: PathBuf,
    /// Simulated shoppers.
    #[arg(long, default_value_t = 20_000)]
    pub shoppers: usize,
    /// Requests per scenario for the latency measurement.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Seconds of `wrk` per scenario (0: skip the throughput measurement).
    #[arg(long, default_value_t = 10)]
    pub wrk_seconds: u64,
    /// Open connections of `wrk`.
    #[arg(long, default_value_t = 64)]
    pub wrk_connections: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Only these scenarios (comma-separated, e.g. `for_you_rules,next`); all by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Shopper events the store keeps decoded in memory between reads (0: read and decode every time).
    #[arg(long, default_value_t = SqliteOptions::default().activity_cache_events)]
    pub activity_cache_events: usize,
    /// Measure on this PostgreSQL database (in a scratch schema, dropped afterwards) instead of SQLite.
    #[arg(long)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub log: crate::config::LogArgs,
}

/// The fashion catalog as items: category path gender > master > sub > article type.
fn load_catalog(datasets: &Path, rng: &mut SplitMix64) -> anyhow::Result<Vec<Item>> {
    let dir = datasets.join("catalog");
    let styles = dir.join("fashion_product_images_styles.csv");
    let names = dir.join("fashion_product_images_styles_names.csv");
    let mut styles = csv::Reader::from_path(&styles).with_context(|| format!("cannot read {}", styles.display()))?;
    let mut names = csv::Reader::from_path(&names).with_context(|| format!("cannot read {}", names.display()))?;
    let now = Timestamp::now();
    let mut items = Vec::new();
    for (style, name) in styles.records().zip(names.records()) {
        let (style, name) = (style?, name?);
        let field = |i: usize| style.get(i).unwrap_or("").trim().to_string();
        let title = name.get(0).unwrap_or("").trim().to_string();
        if title.is_empty() {
            continue;
        }
        let path: Vec<String> = [1, 2, 3, 4].iter().map(|&i| field(i)).filter(|l| !l.is_empty()).collect();
        let mut attributes = BTreeMap::new();
        for (key, index) in [("colour", 5), ("season", 6), ("usage", 8)] {
            let value = field(index);
            if !value.is_empty() {
                attributes.insert(key.to_string(), ScalarValue::Text(value));
            }
        }
        let pence = 499 + rng.below(20_000);
        let stock = if rng.next_f64() < 0.05 { 0 } else { 1 + rng.below(200) as i64 };
        let input = ItemInput {
            id: Some(field(0)),
            title: Some(title),
            category_path: Some(path),
            attributes: Some(attributes),
            price: Some(AmountInput::Text(format!("{}.{:02}", pence / 100, pence % 100))),
            currency: Some("GBP".into()),
            stock_quantity: Some(stock),
            ..Default::default()
        };
        items.push(Item::parse(input, now).context("catalog item")?);
    }
    ensure!(items.len() >= 40_000, "the catalog has {} items, expected about 44k", items.len());
    Ok(items)
}

/// Simulated shoppers' views, cart adds and purchases over 60 days, oldest first.
fn simulate_events(items: &[Item], shoppers: usize, rng: &mut SplitMix64) -> anyhow::Result<Vec<Event>> {
    // Items grouped by (gender, article type), each group in a fixed random popularity order.
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let gender = item.category_path.first().cloned().unwrap_or_default();
        let article = item.category_path.last().cloned().unwrap_or_default();
        groups.entry((gender, article)).or_default().push(index);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() >= 5).collect();
    for group in &mut groups {
        for i in (1..group.len()).rev() {
            group.swap(i, rng.below(i + 1));
        }
    }
    // Big groups are chosen more often (popular article types).
    let weights: Vec<f64> = groups.iter().map(|g| (g.len() as f64).sqrt()).collect();
    let total_weight: f64 = weights.iter().sum();
    let pick_group = |rng: &mut SplitMix64| {
        let mut x = rng.next_f64() * total_weight;
        for (index, w) in weights.iter().enumerate() {
            if x < *w {
                return index;
            }
            x -= w;
        }
        weights.len() - 1
    };
    let start = Timestamp::now().millis() - 60 * 86_400_000;
    let mut events = Vec::new();
    for shopper in 0..shoppers {
        let favourites: Vec<usize> = (0..1 + rng.below(2)).map(|_| pick_group(rng)).collect();
        let sessions = 1 + rng.below(4);
        for session in 0..sessions {
            let mut time = start + rng.below(59 * 86_400) as i64 * 1_000;
            let group = &groups[favourites[rng.below(favourites.len())]];
            let mut viewed = Vec::new();
            for _ in 0..2 + rng.below(8) {
                let item = group[zipf(rng, group.len())];
                viewed.push(item);
                time += 20_000 + rng.below(120_000) as i64;
                events.push(event_input(
                    "view",
                    shopper,
                    session,
                    time,
                    Some(&items[item]),
                    Some(5_000 + rng.below(60_000) as i64),
                ));
            }
            if rng.next_f64() < 0.4 {
                let item = viewed[rng.below(viewed.len())];
                time += 30_000;
                events.push(event_input("add_to_cart", shopper, session, time, Some(&items[item]), None));
                if rng.next_f64() < 0.6 {
                    time += 60_000;
                    let mut input = event_input("purchase", shopper, session, time, None, None);
                    input.order_id = Some(format!("o{shopper}-{session}"));
                    input.currency = Some("GBP".into());
                    let mut lines = vec![item];
                    if rng.next_f64() < 0.5 {
                        // A second line from another favourite group: baskets that cross article types.
                        let other = &groups[favourites[rng.below(favourites.len())]];
                        let second = other[zipf(rng, other.len())];
                        if second != item {
                            lines.push(second);
                        }
                    }
                    input.lines = Some(
                        lines
                            .iter()
                            .map(|&i| OrderLineInput {
                                item_id: items[i].id.to_string(),
                                quantity: 1,
                                unit_price: AmountInput::Text(
                                    items[i].price.map(|p| p.amount_string()).unwrap_or_default(),
                                ),
                            })
                            .collect(),
                    );
                    events.push(input);
                }
            }
        }
    }
    events.sort_by_key(|e| match &e.timestamp {
        Some(TimeInput::Millis(m)) => *m,
        _ => 0,
    });
    let now = Timestamp::now();
    events
        .into_iter()
        .enumerate()
        .map(|(index, mut input)| {
            input.event_id = Some(format!("sim-{index}"));
            Event::parse(input, now).map_err(|e| anyhow::anyhow!("simulated event {index}: {e:?}"))
        })
        .collect()
}

fn event_input(
    kind: &str,
    shopper: usize,
    session: usize,
    millis: i64,
    item: Option<&Item>,
    dwell_ms: Option<i64>,
) -> EventInput {
    EventInput {
        event_type: kind.into(),
        user_id: Some(format!("u{shopper}")),
        session_id: Some(format!("s{shopper}-{session}")),
        item_id: item.map(|i| i.id.to_string()),
        dwell_ms,
        quantity: (kind == "add_to_cart").then_some(1),
        timestamp: Some(TimeInput::Millis(millis)),
        channel: Some("web".into()),
        ..Default::default()
    }
}

/// What every benchmark request asks besides its scenario: ten items, and no `impression` event stored (a load
/// test is not shoppers seeing lists; before, one run stored tens of thousands of impressions).
const COMMON_FIELDS: &str = r#""count":10,"log_impression":false"#;

/// One request body per scenario and draw.
fn request_body(scenario: &str, rng: &mut SplitMix64, items: &[Item], shoppers: usize) -> String {
    let user = format!("u{}", rng.below(shoppers));
    let item = items[rng.below(items.len())].id.to_string();
    let fields = match scenario {
        "similar" | "bought_together" => format!(r#""scenario":"{scenario}","item_id":"{item}""#),
        "complete_cart" => {
            let second = items[rng.below(items.len())].id.to_string();
            format!(r#""scenario":"complete_cart","user_id":"{user}","cart_item_ids":["{item}","{second}"]"#)
        }
        "trending" => r#""scenario":"trending""#.to_string(),
        "for_you_rules" => {
            format!(r#""scenario":"for_you","user_id":"{user}","filter":"price < 150","max_per_category":3"#)
        }
        other => format!(r#""scenario":"{other}","user_id":"{user}""#),
    };
    format!("{{{fields},{COMMON_FIELDS}}}")
}

/// Search requests as a shop sends them: two words of a catalog title, a signed-in shopper (personalized), ten
/// hits; `(query, user)` pairs.
fn search_queries(rng: &mut SplitMix64, items: &[Item], shoppers: usize, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|_| {
            let title = &items[rng.below(items.len())].title;
            let words: Vec<&str> = title.split_whitespace().take(2).collect();
            (words.join(" "), format!("u{}", rng.below(shoppers)))
        })
        .collect()
}

/// `GET /v1/search` for each `(query, user)`.
fn search_requests(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    queries: &[(String, String)],
) -> Vec<reqwest::RequestBuilder> {
    queries
        .iter()
        .map(|(query, user)| {
            client.get(format!("{base}/v1/search")).bearer_auth(key).query(&[
                ("q", query.as_str()),
                ("user_id", user.as_str()),
                ("limit", "10"),
            ])
        })
        .collect()
}

/// Sends `requests` one at a time: the latencies and the items returned, or why one failed.
async fn one_at_a_time(
    requests: Vec<reqwest::RequestBuilder>,
) -> anyhow::Result<Result<(Vec<Duration>, usize), String>> {
    let mut times = Vec::with_capacity(requests.len());
    let mut returned = 0;
    for request in requests {
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        times.push(started.elapsed());
        if !status.is_success() {
            return Ok(Err(format!("{status}: {text}")));
        }
        returned += text.matches("\"item_id\"").count();
    }
    Ok(Ok((times, returned)))
}

const SCENARIOS: [&str; 9] = [
    "similar",
    "for_you",
    "for_you_rules",
    "trending",
    "bought_together",
    "complete_cart",
    "buy_again",
    "recently_viewed",
    "next",
];

fn print_latency_header() {
    println!("{:<18} {:>9} {:>9} {:>9} {:>8}", "scenario", "p50 ms", "p99 ms", "max ms", "items");
}

/// Prints one scenario's latency row from its request times and returned items, or why it was not measured;
/// returns whether it was measured.
fn print_latency_row(scenario: &str, outcome: Result<(Vec<Duration>, usize), String>) -> bool {
    match outcome {
        Ok((mut times, returned)) => {
            times.sort();
            println!(
                "{:<18} {:>9.3} {:>9.3} {:>9.3} {:>8.1}",
                scenario,
                milliseconds(percentile(&times, 0.5)),
                milliseconds(percentile(&times, 0.99)),
                milliseconds(*times.last().unwrap_or(&Duration::ZERO)),
                returned as f64 / times.len().max(1) as f64
            );
            true
        }
        Err(why) => {
            println!("{scenario:<18} not measured: {why}");
            false
        }
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn count_matches(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|window| *window == needle).count()
}

pub fn recs(args: &RecsBenchArgs) -> anyhow::Result<()> {
    for name in &args.only {
        ensure!(SCENARIOS.contains(&name.as_str()), "unknown scenario `{name}` (one of {})", SCENARIOS.join(", "));
    }
    let scenarios: Vec<&str> =
        SCENARIOS.into_iter().filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s)).collect();
    let mut rng = SplitMix64::new(args.seed);
    let clock = Instant::now();
    let items = load_catalog(&args.datasets, &mut rng)?;
    let events = simulate_events(&items, args.shoppers, &mut rng)?;
    eprintln!(
        "catalog {} items, {} simulated events ({:.1}s)",
        items.len(),
        events.len(),
        clock.elapsed().as_secs_f64()
    );

    let directory = tempfile::tempdir().context("temporary directory")?;
    // Durability as in production: every commit synced.
    let options = SqliteOptions {
        synchronous: Synchronous::Full,
        activity_cache_events: args.activity_cache_events,
        ..Default::default()
    };
    let (store, backend) = crate::bench::bench_store(args.database_url.as_deref(), directory.path(), options)?;
    eprintln!("store: {backend}");
    let tenant = TenantId::parse_slug("bench").expect("valid tenant id");
    create_tenant(store.as_ref(), &tenant, "Recommendation benchmark")?;
    let key = create_api_key(store.as_ref(), &tenant, ApiKeyKind::Secret, "bench")?.key;
    store.upsert_items(&tenant, &items)?;
    for chunk in events.chunks(10_000) {
        store.append_events(&tenant, chunk)?;
    }
    eprintln!("store loaded ({:.1}s)", clock.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let state = AppState::new(Engine::new(store, EngineConfig::default()), ServerOptions::default());
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(attune_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{address}");
    let client = reqwest::Client::new();

    // Warm up: the first request of a tenant builds its model.
    let warm = Instant::now();
    runtime.block_on(async {
        let body = request_body("similar", &mut rng, &items, args.shoppers);
        let response = client
            .post(format!("{base}/v1/recommendations"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        ensure!(response.status().is_success(), "warm-up request failed: {}", response.text().await?);
        anyhow::Ok(())
    })?;
    println!(
        "attune bench recs: {} items, {} shoppers, {} events; model built in {:.1}s",
        items.len(),
        args.shoppers,
        events.len(),
        warm.elapsed().as_secs_f64()
    );
    println!();
    println!(
        "Latency in process: `recommend_in_process`, everything the handler runs but the socket (JSON body in, \
         validation, model, rules, explanations, impression queued, JSON out), one request at a time ({} per \
         scenario, count 10)",
        args.requests
    );
    print_latency_header();
    {
        let _inside_runtime = runtime.enter();
        for scenario in scenarios.iter().copied() {
            let bodies: Vec<String> =
                (0..args.requests).map(|_| request_body(scenario, &mut rng, &items, args.shoppers)).collect();
            let mut times = Vec::with_capacity(bodies.len());
            let mut returned = 0usize;
            let mut failure = None;
            for body in &bodies {
                let started = Instant::now();
                let answer =
                    attune_server::api::recommendations::recommend_in_process(&state, &tenant, body.as_bytes());
                times.push(started.elapsed());
                match answer {
                    Ok(json) => returned += count_matches(&json, b"\"item_id\""),
                    Err(error) => {
                        failure = Some(error.message);
                        break;
                    }
                }
            }
            print_latency_row(scenario, failure.map_or(Ok((times, returned)), Err));
        }
    }
    println!();
    println!("Latency, one request at a time over loopback HTTP ({} requests per scenario, count 10)", args.requests);
    print_latency_header();
    let mut unsupported = Vec::new();
    for scenario in scenarios.iter().copied() {
        let bodies: Vec<String> =
            (0..args.requests).map(|_| request_body(scenario, &mut rng, &items, args.shoppers)).collect();
        let requests: Vec<reqwest::RequestBuilder> = bodies
            .into_iter()
            .map(|body| {
                client
                    .post(format!("{base}/v1/recommendations"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
            })
            .collect();
        let outcome = runtime.block_on(one_at_a_time(requests))?;
        if !print_latency_row(scenario, outcome) {
            unsupported.push(scenario);
        }
    }
    let queries = search_queries(&mut rng, &items, args.shoppers, args.requests);
    let outcome = runtime.block_on(one_at_a_time(search_requests(&client, &base, &key, &queries)))?;
    print_latency_row("search", outcome);

    if args.wrk_seconds > 0 {
        println!();
        match which("wrk") {
            None => println!("Throughput: `wrk` is not installed (apt-get install wrk); skipped"),
            Some(wrk) => {
                println!(
                    "Throughput with wrk: {} connections, 2 threads, {} s per scenario, server on the same 2 cores",
                    args.wrk_connections, args.wrk_seconds
                );
                println!(
                    "{:<18} {:>12} {:>10} {:>10} {:>16} {:>13}",
                    "scenario", "requests/s", "p50 ms", "p99 ms", "server CPU µs/req", "wrk CPU µs/req"
                );
                for scenario in scenarios.iter().filter(|s| !unsupported.contains(s)) {
                    let bodies: Vec<String> =
                        (0..500).map(|_| request_body(scenario, &mut rng, &items, args.shoppers)).collect();
                    let script = directory.path().join(format!("{scenario}.lua"));
                    std::fs::write(&script, wrk_script(&key, &bodies))?;
                    let cpu_before = CpuTimes::now();
                    let output = std::process::Command::new(&wrk)
                        .args(["-t2", &format!("-c{}", args.wrk_connections), &format!("-d{}s", args.wrk_seconds)])
                        .arg("--latency")
                        .arg("-s")
                        .arg(&script)
                        .arg(format!("{base}/v1/recommendations"))
                        .output()
                        .context("run wrk")?;
                    let cpu = CpuTimes::now().since(&cpu_before);
                    let text = String::from_utf8_lossy(&output.stdout);
                    let (rps, p50, p99) = parse_wrk(&text);
                    if text.contains("Non-2xx") {
                        bail!("wrk saw failed requests for {scenario}:\n{text}");
                    }
                    let per_request = |seconds: f64| match wrk_requests(&text) {
                        Some(n) if n > 0 => format!("{:.0}", seconds * 1e6 / n as f64),
                        _ => "?".to_string(),
                    };
                    println!(
                        "{:<18} {:>12} {:>10} {:>10} {:>16} {:>13}",
                        scenario,
                        rps,
                        p50,
                        p99,
                        per_request(cpu.own.as_secs_f64()),
                        per_request(cpu.children.as_secs_f64())
                    );
                }
            }
        }
    }
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

/// A wrk Lua script that sends POSTs with the given bodies in turn.
fn wrk_script(key: &str, bodies: &[String]) -> String {
    let mut script = String::from("wrk.method = \"POST\"\n");
    script.push_str(&format!(
        "wrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"
    ));
    script.push_str("local bodies = {\n");
    for body in bodies {
        script.push_str(&format!("  [[{body}]],\n"));
    }
    script.push_str("}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n");
    script
}

/// Requests/s and the 50th and 99th latency percentiles from wrk's `--latency` output.
/// Requests wrk completed ("48123 requests in 10.01s, ...").
fn wrk_requests(text: &str) -> Option<u64> {
    text.lines().map(str::trim).find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()
}

fn parse_wrk(text: &str) -> (String, String, String) {
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    (find("Requests/sec:"), find("50%"), find("99%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every body the benchmark sends (in process, over HTTP, through wrk) asks for no impression.
    #[test]
    fn every_request_body_opts_out_of_impressions() {
        let input = ItemInput { id: Some("a".into()), title: Some("A".into()), ..Default::default() };
        let items = vec![Item::parse(input, Timestamp::now()).unwrap()];
        let mut rng = SplitMix64::new(1);
        for scenario in SCENARIOS {
            let body: serde_json::Value = serde_json::from_str(&request_body(scenario, &mut rng, &items, 5)).unwrap();
            assert_eq!(body["log_impression"], false, "{scenario}: {body}");
            assert_eq!(body["count"], 10, "{scenario}: {body}");
            assert!(body["scenario"].is_string(), "{scenario}: {body}");
        }
    }
}
