//! `attune bench cluster`: several `attune serve` replicas on one PostgreSQL database under a bounded mixed load
//! (single events, event batches, recommendations, search), while one replica is killed with SIGKILL and later
//! restarted, and every PostgreSQL connection of the cluster is terminated once (`pg_terminate_backend`).
//!
//! The load goes round-robin over the replicas, directly or (with `--haproxy`) through an HAProxy that
//! health-checks `/readyz` (the configuration of docs/DEPLOYMENT.md). Directly, the driver acts as such a load
//! balancer: a refused connection marks the replica down and the request goes to the next one (nothing reached
//! the refused replica, so nothing is sent twice), and a down replica is probed on `/readyz` every 250 ms.
//!
//! It checks and reports:
//! - every acknowledged event is stored exactly once;
//! - every failed request was in flight to the killed replica when it died, or was sent while the database
//!   connections were being re-established (within [`RECONNECT_WINDOW`] of the termination);
//! - recommendation training ran exactly once per tenant per interval slot across the cluster;
//! - throughput and p50/p99 latency per kind of request.

use crate::config::LogArgs;
use anyhow::{Context, bail, ensure};
use attune_core::{ApiKeyKind, TenantId};
use attune_engine::keys::create_api_key;
use attune_store::{PostgresStore, Store};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the connections were terminated a failure counts as part of the reconnect.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterBenchArgs {
    /// The PostgreSQL database (the benchmark works in a scratch schema and drops it afterwards).
    #[arg(long, env = "ATTUNE_DATABASE_URL")]
    pub database_url: String,
    /// Replicas to run.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Length of the load in seconds (the kill, restart and termination happen at 25 %, 45 % and 65 %).
    #[arg(long, default_value_t = 150)]
    pub seconds: u64,
    /// The replicas' recommendation training interval in minutes.
    #[arg(long, default_value_t = 1)]
    pub train_interval_minutes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Requests per second, all clients together (the load is bounded, not saturating).
    #[arg(long, default_value_t = 150)]
    pub rate: u64,
    /// Send the load through an HAProxy (`haproxy` on the PATH) configured as in docs/DEPLOYMENT.md.
    #[arg(long)]
    pub haproxy: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What one request was, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Event,
    Batch,
    Recommend,
    Search,
}

impl Op {
    fn of(n: usize) -> Op {
        match n % 20 {
            0..=7 => Op::Event,
            8 => Op::Batch,
            9..=14 => Op::Recommend,
            _ => Op::Search,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Event => "POST /v1/events",
            Op::Batch => "POST /v1/events/batch (200)",
            Op::Recommend => "POST /v1/recommendations",
            Op::Search => "GET /v1/search",
        }
    }
}

/// A failed request: when (since the start), where, what.
#[derive(Debug, Clone)]
struct Failure {
    at: Duration,
    replica: usize,
    op: Op,
    what: String,
}

/// Everything the clients saw.
#[derive(Default)]
struct Observed {
    acknowledged: Vec<String>,
    latencies: HashMap<Op, Vec<Duration>>,
    failures: Vec<Failure>,
    rerouted: usize,
}

/// One replica process on a fixed port, so a restart comes back where the load balancer expects it.
struct Replica {
    port: u16,
    child: Option<Child>,
}

/// The timeline of the faults, since the start of the load.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    killed_at: Option<Duration>,
    restarted_at: Option<Duration>,
    ready_again_at: Option<Duration>,
    terminated_at: Option<Duration>,
}

pub fn cluster(args: &ClusterBenchArgs) -> anyhow::Result<()> {
    ensure!(args.replicas >= 2, "--replicas must be at least 2 (one is killed)");
    let store = PostgresStore::scratch(&args.database_url).context("cannot open a scratch schema")?;
    let tenant = crate::demo::demo_tenant_id();
    let summary = crate::cli::seed_demo_tenant(&store)?;
    println!("attune bench cluster: {} replicas on postgresql schema {}", args.replicas, store.schema());
    println!("seeded: {summary}");
    let key = create_api_key(&store, &tenant, ApiKeyKind::Secret, "cluster bench")?.key;
    let replicas: Vec<Replica> =
        (0..args.replicas).map(|_| Ok(Replica { port: free_port()?, child: None })).collect::<anyhow::Result<_>>()?;
    let replicas = Arc::new(Mutex::new(replicas));
    for index in 0..args.replicas {
        start_replica(args, store.schema(), &replicas, index)?;
    }
    let ports: Vec<u16> = replicas.lock().expect("replicas").iter().map(|r| r.port).collect();
    for port in &ports {
        wait_ready(*port, Duration::from_secs(300))?;
    }
    let _haproxy = if args.haproxy { Some(Haproxy::start(&ports)?) } else { None };
    let targets = match &_haproxy {
        Some(haproxy) => vec![haproxy.port],
        None => ports.clone(),
    };
    println!("replicas ready on ports {ports:?}{}", if args.haproxy { " behind haproxy" } else { "" });
    for port in &ports {
        warm_up(*port, &key)?;
    }
    let (observed, faults) = run_load(args, &store, &key, &replicas, &targets)?;
    stop_replicas(&replicas);
    report(args, &store, &tenant, &observed, &faults)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_replica(
    args: &ClusterBenchArgs,
    schema: &str,
    replicas: &Mutex<Vec<Replica>>,
    index: usize,
) -> anyhow::Result<()> {
    let port = replicas.lock().expect("replicas")[index].port;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--database-url", &args.database_url, "--database-schema", schema])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log", "warn"])
        .args(["--train-interval-minutes", &args.train_interval_minutes.to_string()])
        .args(["--forecast-interval-minutes", "0", "--model-dir", "/nonexistent"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start a replica")?;
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || BufReader::new(stdout).lines().for_each(drop));
    replicas.lock().expect("replicas")[index].child = Some(child);
    Ok(())
}

fn wait_ready(port: u16, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if http.get(format!("http://127.0.0.1:{port}/readyz")).send().is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("replica on port {port} not ready within {within:?}")
}

/// One recommendation from a replica, waiting as long as the first model of the tenant takes to train (one
/// replica trains it; the others wait for it and load it), so the load starts on a serving cluster.
fn warm_up(port: u16, key: &str) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let body = serde_json::json!({"scenario": "for_you", "user_id": "17850", "count": 10, "log_impression": false});
    let response =
        http.post(format!("http://127.0.0.1:{port}/v1/recommendations")).bearer_auth(key).json(&body).send()?;
    ensure!(response.status().is_success(), "warm-up on port {port}: {}", response.status());
    Ok(())
}

/// SIGTERM, so each replica writes what it queued, then waits for it.
fn stop_replicas(replicas: &Mutex<Vec<Replica>>) {
    for replica in replicas.lock().expect("replicas").iter_mut() {
        if let Some(mut child) = replica.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

/// Runs the clients and the fault timeline; returns what the clients saw and when the faults happened.
fn run_load(
    args: &ClusterBenchArgs,
    store: &PostgresStore,
    key: &str,
    replicas: &Arc<Mutex<Vec<Replica>>>,
    targets: &[u16],
) -> anyhow::Result<(Observed, Faults)> {
    let started = Instant::now();
    let duration = Duration::from_secs(args.seconds);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let counter = Arc::new(AtomicUsize::new(0));
    let up: Arc<Vec<AtomicBool>> = Arc::new(targets.iter().map(|_| AtomicBool::new(true)).collect());
    let faults = std::thread::scope(|scope| -> anyhow::Result<Faults> {
        for client in 0..args.clients {
            let client = Client {
                key,
                targets,
                up: &up,
                counter: &counter,
                observed: &observed,
                started,
                interval: Duration::from_secs_f64(args.clients as f64 / args.rate.max(1) as f64),
                name: client,
            };
            scope.spawn(move || client.run(duration));
        }
        scope.spawn(|| probe_down_targets(targets, &up, started, duration));
        inject_faults(args, store, replicas, started, duration)
    })?;
    let observed = std::mem::take(&mut *observed.lock().expect("observed"));
    Ok((observed, faults))
}

/// Kills replica 1 at 25 %, restarts it at 45 %, terminates every database connection at 65 %.
fn inject_faults(
    args: &ClusterBenchArgs,
    store: &PostgresStore,
    replicas: &Mutex<Vec<Replica>>,
    started: Instant,
    duration: Duration,
) -> anyhow::Result<Faults> {
    let at = |fraction: f64| started + duration.mul_f64(fraction);
    let sleep_until = |moment: Instant| std::thread::sleep(moment.saturating_duration_since(Instant::now()));
    let mut faults = Faults::default();
    sleep_until(at(0.25));
    if let Some(mut child) = replicas.lock().expect("replicas")[1].child.take() {
        child.kill()?; // SIGKILL
        faults.killed_at = Some(started.elapsed());
        let _ = child.wait();
    }
    println!("{:>6.1}s replica 1 killed with SIGKILL", started.elapsed().as_secs_f64());
    sleep_until(at(0.45));
    start_replica(args, store.schema(), replicas, 1)?;
    faults.restarted_at = Some(started.elapsed());
    let port = replicas.lock().expect("replicas")[1].port;
    wait_ready(port, Duration::from_secs(120))?;
    faults.ready_again_at = Some(started.elapsed());
    println!("{:>6.1}s replica 1 restarted, ready again", started.elapsed().as_secs_f64());
    sleep_until(at(0.65));
    let terminated = store.terminate_other_connections()?;
    faults.terminated_at = Some(started.elapsed());
    println!("{:>6.1}s terminated {terminated} postgresql connections of the cluster", started.elapsed().as_secs_f64());
    sleep_until(at(1.0));
    Ok(faults)
}

/// Marks down targets up again once their `/readyz` answers 200.
fn probe_down_targets(targets: &[u16], up: &[AtomicBool], started: Instant, duration: Duration) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
    while started.elapsed() < duration {
        for (index, port) in targets.iter().enumerate() {
            if !up[index].load(Ordering::Acquire)
                && http.get(format!("http://127.0.0.1:{port}/readyz")).send().is_ok_and(|r| r.status().is_success())
            {
                up[index].store(true, Ordering::Release);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One load client: requests at a fixed pace, round-robin over the targets that are up.
struct Client<'a> {
    key: &'a str,
    targets: &'a [u16],
    up: &'a [AtomicBool],
    counter: &'a AtomicUsize,
    observed: &'a Mutex<Observed>,
    started: Instant,
    interval: Duration,
    name: usize,
}

impl Client<'_> {
    fn run(&self, duration: Duration) {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("client");
        let mut next = Instant::now();
        while self.started.elapsed() < duration {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += self.interval;
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            self.request(&http, n);
        }
    }

    /// Sends request `n` to the next target that is up, rerouting after a refused connection.
    fn request(&self, http: &reqwest::blocking::Client, n: usize) {
        let op = Op::of(n);
        let (event_ids, build) = self.build(n, op);
        for attempt in 0..self.targets.len() {
            let index = (n + attempt) % self.targets.len();
            if !self.up[index].load(Ordering::Acquire) {
                continue;
            }
            let sent = Instant::now();
            let result =
                build(http, self.targets[index]).header("authorization", format!("Bearer {}", self.key)).send();
            let mut observed = self.observed.lock().expect("observed");
            match result {
                Err(error) if error.is_connect() => {
                    self.up[index].store(false, Ordering::Release);
                    observed.rerouted += 1;
                    continue;
                }
                Err(error) => observed.failures.push(self.failure(index, op, format!("{error}"))),
                Ok(response) if response.status().is_success() => {
                    observed.latencies.entry(op).or_default().push(sent.elapsed());
                    observed.acknowledged.extend(event_ids);
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().unwrap_or_default();
                    observed.failures.push(self.failure(index, op, format!("{status} {body}")));
                }
            }
            return;
        }
        self.observed.lock().expect("observed").failures.push(self.failure(usize::MAX, op, "no replica up".into()));
    }

    fn failure(&self, replica: usize, op: Op, what: String) -> Failure {
        Failure { at: self.started.elapsed(), replica, op, what }
    }

    /// The event ids a request carries and how to build it against a port.
    #[allow(clippy::type_complexity)]
    fn build(
        &self,
        n: usize,
        op: Op,
    ) -> (Vec<String>, Box<dyn Fn(&reqwest::blocking::Client, u16) -> reqwest::blocking::RequestBuilder>) {
        let client = self.name;
        let shopper = format!("cb-shopper-{}", n % 500);
        match op {
            Op::Event => {
                let id = format!("cb-{client}-{n}");
                let body = view(&id, &shopper, n);
                (
                    vec![id],
                    Box::new(move |http, port| http.post(format!("http://127.0.0.1:{port}/v1/events")).json(&body)),
                )
            }
            Op::Batch => {
                let ids: Vec<String> = (0..200).map(|i| format!("cb-{client}-{n}-{i}")).collect();
                let events: Vec<_> = ids.iter().enumerate().map(|(i, id)| view(id, &shopper, n + i)).collect();
                let body = serde_json::json!({ "events": events });
                (
                    ids,
                    Box::new(move |http, port| {
                        http.post(format!("http://127.0.0.1:{port}/v1/events/batch")).json(&body)
                    }),
                )
            }
            Op::Recommend => {
                let body = serde_json::json!({"scenario": "for_you", "user_id": shopper, "count": 10});
                (
                    vec![],
                    Box::new(move |http, port| {
                        http.post(format!("http://127.0.0.1:{port}/v1/recommendations")).json(&body)
                    }),
                )
            }
            Op::Search => {
                let query = ["heart", "bag", "candle holder", "vintage", "christmas"][n % 5];
                (
                    vec![],
                    Box::new(move |http, port| {
                        http.get(format!("http://127.0.0.1:{port}/v1/search")).query(&[("q", query), ("limit", "10")])
                    }),
                )
            }
        }
    }
}

/// A view of one of the demo shop's items.
fn view(id: &str, shopper: &str, n: usize) -> serde_json::Value {
    const ITEMS: [&str; 8] = ["85123A", "22423", "85099B", "47566", "20725", "84879", "22720", "22197"];
    serde_json::json!({"type": "view", "event_id": id, "user_id": shopper, "item_id": ITEMS[n % ITEMS.len()],
                       "dwell_ms": 1000 + n % 5000})
}

/// Checks the outcome and prints the report; an error when a check fails.
fn report(
    args: &ClusterBenchArgs,
    store: &PostgresStore,
    tenant: &TenantId,
    observed: &Observed,
    faults: &Faults,
) -> anyhow::Result<()> {
    print_latencies(args, observed);
    let at = |moment: Option<Duration>| moment.map_or("-".to_string(), |m| format!("{:.1}s", m.as_secs_f64()));
    println!(
        "faults: replica 1 killed at {}, restarted at {}, ready at {}; connections terminated at {}",
        at(faults.killed_at),
        at(faults.restarted_at),
        at(faults.ready_again_at),
        at(faults.terminated_at)
    );
    let stored = stored_bench_events(store, tenant)?;
    let missing = observed.acknowledged.iter().filter(|id| stored.get(*id) != Some(&1)).count();
    println!(
        "events: {} acknowledged, {} stored with a bench id, {} acknowledged but not stored exactly once",
        observed.acknowledged.len(),
        stored.len(),
        missing
    );
    let unexplained = unexplained_failures(observed, faults);
    println!(
        "failures: {} in all, {} rerouted refused connections; {} not explained by the kill or the reconnect",
        observed.failures.len(),
        observed.rerouted,
        unexplained.len()
    );
    for failure in observed.failures.iter().take(20) {
        println!(
            "  {:>6.1}s replica {:>2} {:<28} {}",
            failure.at.as_secs_f64(),
            failure.replica,
            failure.op.name(),
            truncate(&failure.what)
        );
    }
    let trainings = trainings_per_slot(store, tenant, args.train_interval_minutes)?;
    println!("trainings per {}-minute slot: {trainings:?}", args.train_interval_minutes);
    ensure!(missing == 0, "{missing} acknowledged events are not stored exactly once");
    ensure!(
        unexplained.is_empty(),
        "{} failures outside the fault windows: {:?}",
        unexplained.len(),
        unexplained.first()
    );
    ensure!(trainings.iter().all(|(_, n)| *n == 1), "a slot trained more than once: {trainings:?}");
    println!("verified: acknowledged events stored exactly once; failures only at the faults; one training per slot");
    Ok(())
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

fn print_latencies(args: &ClusterBenchArgs, observed: &Observed) {
    let mut ops: Vec<_> = observed.latencies.keys().copied().collect();
    ops.sort();
    let total: usize = observed.latencies.values().map(Vec::len).sum();
    println!("{total} requests succeeded in {} s ({:.0}/s offered)", args.seconds, args.rate);
    for op in ops {
        let mut times = observed.latencies[&op].clone();
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        println!("  {:<28} {:>7} ok   p50 {:>7.2} ms   p99 {:>7.2} ms", op.name(), times.len(), at(0.5), at(0.99));
    }
}

/// How often each bench event id is stored.
fn stored_bench_events(store: &PostgresStore, tenant: &TenantId) -> anyhow::Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    let mut after = 0;
    loop {
        let chunk = store.events_after(tenant, after, 10_000)?;
        let Some(last) = chunk.last() else { return Ok(counts) };
        after = last.seq;
        for event in chunk.iter().filter(|e| e.event.id.as_str().starts_with("cb-")) {
            *counts.entry(event.event.id.to_string()).or_default() += 1;
        }
    }
}

/// Failures that are neither in flight to the killed replica at its death (up to one client timeout after it)
/// nor within the reconnect window after the termination.
fn unexplained_failures<'a>(observed: &'a Observed, faults: &Faults) -> Vec<&'a Failure> {
    let near = |at: Duration, moment: Option<Duration>, window: Duration| {
        moment.is_some_and(|m| at + Duration::from_millis(100) >= m && at <= m + window)
    };
    observed
        .failures
        .iter()
        .filter(|f| {
            !(near(f.at, faults.killed_at, Duration::from_secs(10)) && (f.replica == 1 || f.replica == usize::MAX))
                && !near(f.at, faults.terminated_at, RECONNECT_WINDOW)
        })
        .collect()
}

/// Stored recommendation model versions per training slot, oldest slot first.
fn trainings_per_slot(store: &PostgresStore, tenant: &TenantId, minutes: u64) -> anyhow::Result<Vec<(i64, usize)>> {
    let slot_ms = (minutes.max(1) * 60_000) as i64;
    let mut slots: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    for version in store.model_snapshots(tenant, attune_engine::recs::model::MODEL_KIND)? {
        *slots.entry(version.created_at.millis() / slot_ms).or_default() += 1;
    }
    Ok(slots.into_iter().collect())
}

/// An HAProxy in front of the replicas, with the configuration docs/DEPLOYMENT.md shows.
struct Haproxy {
    port: u16,
    child: Child,
    _directory: tempfile::TempDir,
}

impl Haproxy {
    fn start(replicas: &[u16]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let directory = tempfile::tempdir()?;
        let config = directory.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(port, replicas))?;
        let child = Command::new("haproxy")
            .args(["-f", config.to_str().expect("utf-8 path"), "-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start haproxy (Debian: apt-get install haproxy)")?;
        wait_ready(port, Duration::from_secs(30))?;
        Ok(Self { port, child, _directory: directory })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HAProxy configuration of docs/DEPLOYMENT.md for `replicas` on loopback ports.
pub fn haproxy_config(port: u16, replicas: &[u16]) -> String {
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server attune{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1\n"))
        .collect();
    format!(
        "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    \
         timeout server 30s\n    retries 2\n    option redispatch\n    retry-on conn-failure empty-response\n\n\
         frontend attune\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\n\
         backend replicas\n    balance roundrobin\n    option httpchk GET /readyz\n    http-check expect status 200\n{servers}"
    )
}
