//! `attune bench ingest`: events per second through the HTTP API with durability on (SQLite WAL,
//! `synchronous=FULL` unless configured otherwise; or PostgreSQL with `--database-url`, in a scratch schema
//! dropped afterwards, with the server's `synchronous_commit`), measured end to end from an HTTP client in the
//! same process against a real server on a loopback port with a temporary store, with the CPU time per event
//! of this process and of PostgreSQL.

use crate::config::{LogArgs, parse_synchronous};
use crate::cpu::CpuTimes;
use anyhow::{Context, ensure};
use attune_core::{ApiKeyKind, TenantId};
use attune_engine::keys::{create_api_key, create_tenant};
use attune_engine::{Engine, EngineConfig};
use attune_server::{AppState, ServerOptions};
use attune_store::{PostgresStore, SqliteOptions, SqliteStore, Store, Synchronous};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestBenchArgs {
    /// Requests for the single-event measurement.
    #[arg(long, default_value_t = 4_000)]
    pub single_events: usize,
    /// Concurrent clients for the single-event measurement.
    #[arg(long, default_value_t = 32)]
    pub single_concurrency: usize,
    /// Events for the batch measurement.
    #[arg(long, default_value_t = 300_000)]
    pub batch_events: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 5_000)]
    pub batch_size: usize,
    /// Concurrent clients for the batch measurement.
    #[arg(long, default_value_t = 2)]
    pub batch_concurrency: usize,
    /// `full` (fsync every commit, default) or `normal`.
    #[arg(long, env = "ATTUNE_SYNCHRONOUS", value_parser = parse_synchronous, default_value = "full")]
    pub synchronous: Synchronous,
    /// Measure on this PostgreSQL database (in a scratch schema) instead of a temporary SQLite store.
    #[arg(long)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The store a benchmark measures, with its name: a scratch PostgreSQL schema at `database_url` (dropped with
/// the store), or else a SQLite file with `options` in `directory` (which the caller keeps until the end).
pub(crate) fn bench_store(
    database_url: Option<&str>,
    directory: &std::path::Path,
    options: SqliteOptions,
) -> anyhow::Result<(Arc<dyn Store>, String)> {
    if let Some(url) = database_url {
        let store = PostgresStore::scratch(url)?;
        return Ok((Arc::new(store), "postgresql".into()));
    }
    let name = format!("sqlite, synchronous={:?}", options.synchronous);
    let store = SqliteStore::open(directory.join("bench.sqlite3"), options)?;
    Ok((Arc::new(store), name))
}

/// A realistic mix of event bodies: views with dwell time, cart adds and multi-line purchases.
fn event_json(index: usize) -> String {
    let user = index % 5_000;
    let item = (index * 7919) % 40_000;
    match index % 10 {
        0..=6 => format!(
            r#"{{"type":"view","event_id":"bench-{index}","user_id":"u{user}","session_id":"s{}","item_id":"i{item}","dwell_ms":{},"timestamp":"2024-05-01T12:00:00Z","channel":"web"}}"#,
            index / 20,
            index % 60_000
        ),
        7 | 8 => format!(
            r#"{{"type":"add_to_cart","event_id":"bench-{index}","user_id":"u{user}","session_id":"s{}","item_id":"i{item}","quantity":2,"timestamp":"2024-05-01T12:00:00Z"}}"#,
            index / 20
        ),
        _ => format!(
            r#"{{"type":"purchase","event_id":"bench-{index}","user_id":"u{user}","order_id":"o{index}","currency":"GBP","timestamp":"2024-05-01T12:00:00Z","lines":[{{"item_id":"i{item}","quantity":1,"unit_price":"12.50"}},{{"item_id":"i{}","quantity":3,"unit_price":"2.10"}}]}}"#,
            (item + 1) % 40_000
        ),
    }
}

pub fn ingest(args: &IngestBenchArgs) -> anyhow::Result<()> {
    ensure!(args.batch_size >= 1 && args.batch_size <= 10_000, "--batch-size must be between 1 and 10000");
    let directory = tempfile::tempdir().context("temporary directory")?;
    let options = SqliteOptions { synchronous: args.synchronous, ..Default::default() };
    let (store, backend) = bench_store(args.database_url.as_deref(), directory.path(), options)?;
    let tenant = TenantId::parse_slug("bench").expect("valid tenant id");
    create_tenant(store.as_ref(), &tenant, "bench")?;
    let key = create_api_key(store.as_ref(), &tenant, ApiKeyKind::Secret, "bench")?.key;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = AppState::new(Engine::new(store.clone(), EngineConfig::default()), ServerOptions::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(attune_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        println!(
            "attune bench ingest ({backend}, {} cores)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );

        // Single events, many concurrent clients.
        let single_url = format!("http://{address}/v1/events");
        let (started, cpu) = (Instant::now(), CpuTimes::now());
        let statuses: Vec<anyhow::Result<reqwest::StatusCode>> = futures::stream::iter(0..args.single_events)
            .map(|i| {
                let request = client
                    .post(&single_url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(event_json(i));
                async move { Ok(request.send().await?.status()) }
            })
            .buffer_unordered(args.single_concurrency)
            .collect()
            .await;
        let single_elapsed = started.elapsed();
        let failed = statuses.iter().filter(|s| !matches!(s, Ok(s) if s.is_success())).count();
        ensure!(failed == 0, "{failed} single-event requests failed");
        report("single event  POST /v1/events", args.single_events, single_elapsed, args.single_concurrency);
        println!("{:<42} {}", "", CpuTimes::now().since(&cpu).per_unit(args.single_events));

        // Batches.
        let batch_url = format!("http://{address}/v1/events/batch");
        let offset = args.single_events;
        let bodies: Vec<String> = (0..args.batch_events.div_ceil(args.batch_size))
            .map(|b| {
                let start = offset + b * args.batch_size;
                let end = (start + args.batch_size).min(offset + args.batch_events);
                let events: Vec<String> = (start..end).map(event_json).collect();
                format!(r#"{{"events":[{}]}}"#, events.join(","))
            })
            .collect();
        let (started, cpu) = (Instant::now(), CpuTimes::now());
        let results: Vec<anyhow::Result<serde_json::Value>> = futures::stream::iter(bodies)
            .map(|body| {
                let request =
                    client.post(&batch_url).bearer_auth(&key).header("content-type", "application/json").body(body);
                async move {
                    let response = request.send().await?;
                    let status = response.status();
                    let body: serde_json::Value = response.json().await?;
                    ensure!(status.is_success(), "batch failed: {status} {body}");
                    Ok(body)
                }
            })
            .buffer_unordered(args.batch_concurrency)
            .collect()
            .await;
        let batch_elapsed = started.elapsed();
        let mut accepted = 0;
        for result in results {
            accepted += result?["accepted"].as_u64().unwrap_or(0);
        }
        ensure!(accepted == args.batch_events as u64, "only {accepted} of {} batch events accepted", args.batch_events);
        report(
            &format!("batch of {:<5} POST /v1/events/batch", args.batch_size),
            args.batch_events,
            batch_elapsed,
            args.batch_concurrency,
        );
        println!("{:<42} {}", "", CpuTimes::now().since(&cpu).per_unit(args.batch_events));

        // The store is synchronous: off the runtime's worker threads.
        let (check_store, check_tenant) = (store.clone(), tenant.clone());
        let stored = tokio::task::spawn_blocking(move || check_store.stats(&check_tenant)).await??.events;
        ensure!(stored == (args.single_events + args.batch_events) as u64, "store holds {stored} events");
        println!("verified: all {stored} acknowledged events are in the store");
        let _ = stop.send(());
        server.await??;
        anyhow::Ok(())
    })
}

fn report(label: &str, events: usize, elapsed: Duration, concurrency: usize) {
    println!(
        "{label:<42} {events:>8} events in {:>7.2}s  = {:>9.0} events/s  (concurrency {concurrency})",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

/// The `p` quantile (0 to 1) of sorted durations, nearest rank; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
