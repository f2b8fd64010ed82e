//! `attune bench scale --items N --events M`: how the engine grows with a shop's size. It writes a synthetic
//! shop of that size ([`crate::scale_shop`]), then, each as a measured stage in this process:
//! imports the catalog and the events through the normal import path (files on disk, as `attune import`
//! reads them), trains the recommendation model, builds the search index (lexical; no embedding model), loads
//! the stored model as a restarted server would, and serves recommendations and searches in process.
//!
//! Each stage reports its wall time and the process's peak resident memory during it (`VmHWM` in
//! `/proc/self/status`, reset before the stage through `/proc/self/clear_refs`; Linux only). The report adds
//! the sizes of the store, the stored model and the input files, the resident memory once serving, and
//! recommendation and search latency (p50 and p99 of one call at a time, in process, no HTTP).

use crate::bench::percentile;
use crate::import::{self, NoProgress};
use crate::scale_shop::{Catalog, ShopSpec, write_events, zipf};
use anyhow::Context;
use attune_core::{SplitMix64, TenantId, Timestamp};
use attune_engine::keys::create_tenant;
use attune_engine::recs::request::{Basis, ListRequest, Rules, Shopper};
use attune_engine::recs::training::{self, TrainOptions};
use attune_engine::{Engine, EngineConfig};
use attune_store::{SqliteOptions, SqliteStore, Store};
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleBenchArgs {
    /// Products in the synthetic catalog.
    #[arg(long, default_value_t = 100_000)]
    pub items: usize,
    /// Events in the synthetic year of behaviour.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Calls per scenario for the latency measurement.
    #[arg(long, default_value_t = 1_000)]
    pub requests: usize,
    /// Where the generated files and the store go (default: a temporary directory, deleted afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only the serving stages, on the store an earlier run with the same sizes and seed left in `--dir`: the
    /// memory of a process that serves without having trained.
    #[arg(long, requires = "dir")]
    pub serve_only: bool,
    #[command(flatten)]
    pub log: crate::config::LogArgs,
}

/// One measured stage.
struct Stage {
    name: String,
    elapsed: Duration,
    /// Peak resident memory of the process during the stage, in bytes.
    peak: Option<u64>,
}

/// Runs `work` as stage `name`, printing it as it ends.
fn stage<T>(stages: &mut Vec<Stage>, name: &str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    reset_peak();
    let clock = Instant::now();
    let value = work().with_context(|| format!("stage `{name}`"))?;
    let measured = Stage { name: name.to_string(), elapsed: clock.elapsed(), peak: status_bytes("VmHWM") };
    eprintln!("{:<22} {:>9.1} s {:>10}", measured.name, measured.elapsed.as_secs_f64(), megabytes(measured.peak));
    stages.push(measured);
    Ok(value)
}

/// One part of training as its progress reports named it, with the time until the next part began and the
/// process's resident memory then.
struct TrainingPart {
    name: String,
    elapsed: Duration,
    resident: Option<u64>,
    /// Of `resident`, what is not the store's file pages mapped for reading.
    anonymous: Option<u64>,
    peak: Option<u64>,
}

/// Follows training's progress reports: each new stage name ends the part before it.
#[derive(Default)]
struct TrainingParts {
    current: RefCell<Option<(String, Instant)>>,
    done: RefCell<Vec<TrainingPart>>,
}

impl TrainingParts {
    fn begin(&self, name: &str) {
        if self.current.borrow().as_ref().is_some_and(|(current, _)| current == name) {
            return;
        }
        self.end_current();
        *self.current.borrow_mut() = Some((name.to_string(), Instant::now()));
    }

    fn end_current(&self) {
        let Some((name, started)) = self.current.borrow_mut().take() else { return };
        let part = TrainingPart {
            name,
            elapsed: started.elapsed(),
            resident: status_bytes("VmRSS"),
            anonymous: status_bytes("RssAnon"),
            peak: status_bytes("VmHWM"),
        };
        eprintln!(
            "  {:<32} {:>7.1} s {:>10} {:>10} {:>10}",
            part.name,
            part.elapsed.as_secs_f64(),
            megabytes(part.resident),
            megabytes(part.anonymous),
            megabytes(part.peak)
        );
        self.done.borrow_mut().push(part);
    }

    fn finish(self) -> Vec<TrainingPart> {
        self.end_current();
        self.done.into_inner()
    }
}

/// Resets the peak resident memory the kernel reports (`VmHWM`) to the current resident memory.
fn reset_peak() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!(%error, "cannot reset the peak resident memory");
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("—".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

pub fn scale(args: &ScaleBenchArgs) -> anyhow::Result<()> {
    let temporary = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("temporary directory")?),
    };
    let dir = args.dir.clone().unwrap_or_else(|| temporary.as_ref().expect("a temporary directory").path().into());
    std::fs::create_dir_all(&dir)?;
    let spec = ShopSpec {
        items: args.items,
        events: args.events,
        seed: args.seed,
        end_ms: Timestamp::now().millis() - 86_400_000,
    };
    let mut stages = Vec::new();
    let mut training_parts = Vec::new();
    eprintln!("{:<22} {:>11} {:>10}", "stage", "time", "peak RSS");
    let (items_path, events_path) = (dir.join("items.jsonl"), dir.join("events.jsonl.gz"));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("attune.sqlite3"), SqliteOptions::default())?);
    let tenant = TenantId::parse_slug("scale").expect("a valid tenant id");
    let (catalog, shoppers) = if args.serve_only {
        // The catalog again, in memory only, to draw requests from; the events are counted, not kept.
        let catalog = Catalog::generate(&spec);
        let shoppers = write_events(&spec, &catalog, &mut std::io::sink())?;
        (catalog, shoppers)
    } else {
        let generated = stage(&mut stages, "generate", || generate(&spec, &items_path, &events_path))?;
        create_tenant(store.as_ref(), &tenant, "Scale benchmark")?;
        stage(&mut stages, "import items", || {
            Ok(import::import_items(store.as_ref(), &tenant, &items_path, None, &NoProgress)?.accepted)
        })?;
        stage(&mut stages, "import events", || {
            Ok(import::import_events(store.as_ref(), &tenant, &events_path, None, &NoProgress)?.accepted)
        })?;
        let parts = TrainingParts::default();
        stage(&mut stages, "train", || {
            Ok(training::train(store.as_ref(), &tenant, &TrainOptions::default(), &|name, _| parts.begin(name))?)
        })?;
        training_parts = parts.finish();
        generated
    };
    let stats = store.stats(&tenant)?;
    let stored_model = store.model_snapshots(&tenant, "recs")?.first().map(|info| info.payload_bytes);
    let config = EngineConfig { model_dir: None, catalog_tuning: None, ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), config);
    let index = stage(&mut stages, "build search index", || Ok(engine.search().index(&tenant)?))?;
    let model = stage(&mut stages, "load model", || Ok(engine.recs().model(&tenant)?))?;
    let serving_resident = status_bytes("VmRSS");

    let mut rng = SplitMix64::new(args.seed ^ 0xbe4c);
    let mut latencies = Vec::new();
    for scenario in ["similar", "bought_together", "for_you", "next", "trending"] {
        let times = stage(&mut stages, &format!("serve {scenario}"), || {
            recommendation_latency(&engine, &tenant, &model, scenario, &catalog, shoppers, args.requests, &mut rng)
        })?;
        latencies.push((scenario, times));
    }
    let search_times = stage(&mut stages, "serve search", || {
        search_latency(&engine, &tenant, &index, &catalog, args.requests, &mut rng)
    })?;
    latencies.push(("search", search_times));

    println!(
        "attune bench scale: {} items, {} events ({} shoppers), seed {}; the store holds {} items and {} events{}",
        args.items,
        args.events,
        shoppers,
        args.seed,
        stats.items,
        stats.events,
        if args.serve_only { "; serving stages only, in a process that did not train" } else { "" }
    );
    println!();
    println!("| stage | time | peak resident memory |");
    println!("|---|---|---|");
    for s in &stages {
        println!("| {} | {:.1} s | {} |", s.name, s.elapsed.as_secs_f64(), megabytes(s.peak));
    }
    if !training_parts.is_empty() {
        println!();
        println!("| training part | time | resident at its end | of which heap | peak so far |");
        println!("|---|---|---|---|---|");
        for part in &training_parts {
            println!(
                "| {} | {:.1} s | {} | {} | {} |",
                part.name,
                part.elapsed.as_secs_f64(),
                megabytes(part.resident),
                megabytes(part.anonymous),
                megabytes(part.peak)
            );
        }
    }
    println!();
    println!("| size | |");
    println!("|---|---|");
    println!("| items file | {} |", megabytes(Some(file_bytes(&items_path))));
    println!("| events file (gzip) | {} |", megabytes(Some(file_bytes(&events_path))));
    println!("| store (SQLite) | {} |", megabytes(Some(file_bytes(&dir.join("attune.sqlite3")))));
    println!("| stored model | {} |", megabytes(stored_model));
    println!("| resident once serving | {} |", megabytes(serving_resident));
    println!();
    println!("| in process, one call at a time | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (name, mut times) in latencies {
        times.sort_unstable();
        let ms = |d: Duration| if times.is_empty() { "—".into() } else { format!("{:.3} ms", d.as_secs_f64() * 1e3) };
        println!(
            "| {name} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&times, 1.0))
        );
    }
    Ok(())
}

/// Writes the catalog feed and the gzipped events; returns the catalog and how many shoppers acted.
fn generate(spec: &ShopSpec, items_path: &Path, events_path: &Path) -> anyhow::Result<(Catalog, usize)> {
    let catalog = Catalog::generate(spec);
    let mut items = BufWriter::new(std::fs::File::create(items_path)?);
    for item in &catalog.items {
        serde_json::to_writer(&mut items, &item.feed_line())?;
        items.write_all(b"\n")?;
    }
    items.flush()?;
    let file = std::fs::File::create(events_path)?;
    let mut events = BufWriter::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    let shoppers = write_events(spec, &catalog, &mut events)?;
    events.into_inner().map_err(|e| e.into_error())?.finish()?;
    Ok((catalog, shoppers))
}

/// The time of each of `requests` lists of `scenario` for random shoppers and items.
#[allow(clippy::too_many_arguments)]
fn recommendation_latency(
    engine: &Engine,
    tenant: &TenantId,
    model: &attune_engine::recs::model::RecsModel,
    scenario: &str,
    catalog: &Catalog,
    shoppers: usize,
    requests: usize,
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let item = attune_core::ItemId::parse(catalog.items[zipf(rng, catalog.items.len())].id.clone())?;
        let user = attune_core::UserId::parse(format!("u{}", rng.below(shoppers.max(1))))?;
        let basis = match scenario {
            "similar" => Basis::Similar(vec![item]),
            "bought_together" => Basis::BoughtTogether(item),
            "for_you" => Basis::ForYou(Some(user.clone())),
            "next" => Basis::Next,
            _ => Basis::Trending,
        };
        let request = ListRequest { basis, count: 10, exclude: HashSet::new(), in_stock_only: true };
        let rules = Rules { shopper: Shopper { user: Some(user), anonymous: None }, ..Rules::default() };
        let started = Instant::now();
        std::hint::black_box(engine.recs().recommend(tenant, model, &request, &rules)?);
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The time of each of `requests` searches for two words of a random item's title (dry runs: nothing logged).
fn search_latency(
    engine: &Engine,
    tenant: &TenantId,
    index: &attune_engine::search::index::TenantIndex,
    catalog: &Catalog,
    requests: usize,
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let title = &catalog.items[zipf(rng, catalog.items.len())].title;
        let words: Vec<&str> = title.split_whitespace().skip(2).take(2).collect();
        let body: attune_server::api::search::SearchBody =
            serde_json::from_value(serde_json::json!({"q": words.join(" "), "dry_run": true}))?;
        let params = attune_server::api::search::validate(None, body).map_err(|e| anyhow::anyhow!(e.message))?;
        let started = Instant::now();
        std::hint::black_box(engine.search().search(tenant, index, &params)?);
        times.push(started.elapsed());
    }
    Ok(times)
}
