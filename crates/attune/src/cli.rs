//! The command line: parsing with clap and running each command.

use crate::config::{EventWindowArgs, LogArgs, OptionArgs, Options, StoreArgs};
use crate::{bench, cluster_bench, demo, eval, import, recs_bench, scale_bench, search_bench};
use anyhow::{Context, bail};
use attune_core::{ApiKeyKind, TenantId, Timestamp};
use attune_engine::keys::{create_api_key, ensure_tenant};
use attune_engine::recs::training::{self, TrainOptions};
use attune_engine::{Engine, EngineConfig};
use attune_server::{AppState, ServerOptions};
use attune_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "attune", version, about = "Self-hosted AI personalization engine for retailers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, console and storefront.
    Serve(ServeArgs),
    /// Import a product feed or an event file into a tenant.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Load the bundled demo data into tenant `demo` without serving.
    Demo(StoreArgs),
    /// Train a tenant's recommendation model against the store, save it as a new version and print its metrics
    /// (a running server swaps it in at its next restart, or with `POST /v1/models/recs/{version}/activate`).
    Train(TrainArgs),
    /// Evaluate models on public data sets and print their figures beside published or peer figures.
    Eval(EvalArgs),
    /// Copy every tenant of an embedded (SQLite) store into a PostgreSQL database: idempotent and resumable,
    /// verifying the counts at the end.
    Migrate(MigrateArgs),
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `attune migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The data directory of the SQLite store to copy.
    #[arg(long)]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into (`postgres://user:password@host:5432/database`).
    #[arg(long)]
    pub to: String,
    /// Schema of the target database holding Attune's tables (default `public`).
    #[arg(long, env = "ATTUNE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `attune serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Load the bundled demo store (UCI Online Retail I) into tenant `demo` and show it in the storefront.
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "ATTUNE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "ATTUNE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Mark page cookies `Secure` (when users reach Attune over HTTPS).
    #[arg(long, env = "ATTUNE_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// On SIGTERM or SIGINT: seconds in-flight requests may take to finish, then background tasks to reach a
    /// checkpoint (default 30); queued impressions and search events are always written.
    #[arg(long, env = "ATTUNE_SHUTDOWN_TIMEOUT_SECONDS")]
    pub shutdown_timeout_seconds: Option<u64>,
    /// Seconds a client may take to send a request's headers, counted from when its connection opened or its
    /// previous response was sent; then the connection is closed (default 10).
    #[arg(long, env = "ATTUNE_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Most connections open at once; more are closed as they arrive (default 10000).
    #[arg(long, env = "ATTUNE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Requests per second each public key (`pk_…`, used by browsers) may send, sustained; beyond it requests
    /// get `429 rate_limited` with `Retry-After` (default 50).
    #[arg(long, env = "ATTUNE_PUBLIC_KEY_RATE_PER_SECOND")]
    pub public_key_rate_per_second: Option<u32>,
    /// Requests a public key may send at once before its rate applies (default 200).
    #[arg(long, env = "ATTUNE_PUBLIC_KEY_BURST")]
    pub public_key_burst: Option<u32>,
    #[command(flatten)]
    pub event_window: EventWindowArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// How the engine runs, for `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Minutes between scheduled `forecast` tasks (analytics, demand forecasts, reorder list) for every
    /// tenant; 0 turns the schedule off (default 60).
    #[arg(long, env = "ATTUNE_FORECAST_INTERVAL_MINUTES")]
    pub forecast_interval_minutes: Option<u64>,
    /// The sentence-transformers model directory for semantic search (safetensors + tokenizer.json; default:
    /// `../shared/models/all-MiniLM-L6-v2` when present); without a loadable model search is lexical-only.
    #[arg(long, env = "ATTUNE_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Tune item vectors to the catalog for semantic search when at least 200 items have a category path
    /// (a map fitted from their gender, colour and category to their titles; default true).
    #[arg(long, env = "ATTUNE_CATALOG_TUNING")]
    pub catalog_tuning: Option<bool>,
    /// Distinct shoppers (users, anonymous visitors or sessions) a past search query needs before autocomplete
    /// and the storefront suggest it to anyone (default 5; at least 1).
    #[arg(long, env = "ATTUNE_SUGGEST_MIN_SHOPPERS")]
    pub suggest_min_shoppers: Option<usize>,
    /// Days every event is kept; a daily `retention` task deletes older ones (default 0: kept for ever).
    #[arg(long, env = "ATTUNE_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Days an anonymous visitor's events (without a user id) are kept (default 0: kept for ever).
    #[arg(long, env = "ATTUNE_ANONYMOUS_RETENTION_DAYS")]
    pub anonymous_retention_days: Option<u32>,
    /// Hours after an erasure by which a full training replaces the recommendation model's ALS and EASE parts
    /// (its count-based parts forget the erased data at once; default 24).
    #[arg(long, env = "ATTUNE_RETRAIN_AFTER_ERASURE_HOURS")]
    pub retrain_after_erasure_hours: Option<u32>,
    /// Minutes between scheduled `train_recs` tasks (recommendation model training) for every tenant with new
    /// events; 0 turns the schedule off (default 60).
    #[arg(long, env = "ATTUNE_TRAIN_INTERVAL_MINUTES")]
    pub train_interval_minutes: Option<u64>,
    /// Seed of recommendation training (the holdout sample); the same events and seed give the same model.
    #[arg(long, env = "ATTUNE_TRAIN_SEED")]
    pub train_seed: Option<u64>,
}

impl ServeArgs {
    fn options(&self) -> OptionArgs {
        let engine = self.engine.clone();
        OptionArgs {
            listen: self.listen,
            max_body_bytes: self.max_body_bytes,
            secure_cookies: self.secure_cookies,
            shutdown_timeout_seconds: self.shutdown_timeout_seconds,
            header_read_timeout_seconds: self.header_read_timeout_seconds,
            max_connections: self.max_connections,
            public_key_rate_per_second: self.public_key_rate_per_second,
            public_key_burst: self.public_key_burst,
            forecast_interval_minutes: engine.forecast_interval_minutes,
            model_dir: engine.model_dir,
            catalog_tuning: engine.catalog_tuning,
            suggest_min_shoppers: engine.suggest_min_shoppers,
            retention_days: engine.retention_days,
            anonymous_retention_days: engine.anonymous_retention_days,
            retrain_after_erasure_hours: engine.retrain_after_erasure_hours,
            train_interval_minutes: engine.train_interval_minutes,
            train_seed: engine.train_seed,
            event_max_age_days: self.event_window.event_max_age_days,
            event_max_ahead_days: self.event_window.event_max_ahead_days,
            ..self.store.options()
        }
    }
}

/// `attune train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[arg(long)]
    pub tenant: String,
    /// Seed of the holdout sample; the same events and seed give the same model (default 42).
    #[arg(long, env = "ATTUNE_TRAIN_SEED")]
    pub train_seed: Option<u64>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `attune eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub what: EvalCommand,
    /// Directory of the data sets (see ../shared/data/README.md).
    #[arg(long, global = true, default_value = "../shared/data", env = "ATTUNE_DATASETS")]
    pub datasets: PathBuf,
    /// Also run the peer library (Python, installed with pip into target/bench-venv) on the same split.
    #[arg(long, global = true)]
    pub peer: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Items from a Merchant Center feed (CSV, TSV or JSONL).
    Items(ImportArgs),
    /// Events in the API wire format (JSONL or CSV).
    Events(ImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub tenant: String,
    /// Override the format otherwise chosen by file extension.
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    #[command(flatten)]
    pub event_window: EventWindowArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Csv,
    Tsv,
    Jsonl,
}

impl From<FileFormat> for import::Format {
    fn from(value: FileFormat) -> Self {
        match value {
            FileFormat::Csv => import::Format::Csv,
            FileFormat::Tsv => import::Format::Tsv,
            FileFormat::Jsonl => import::Format::Jsonl,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key (and the tenant, if it does not exist); prints the key on standard output.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value = "secret")]
        kind: KeyKindArg,
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a tenant's keys.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its id.
    Revoke {
        #[arg(long)]
        tenant: String,
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl KeysCommand {
    fn store(&self) -> &StoreArgs {
        match self {
            Self::Create { store, .. } | Self::List { store, .. } | Self::Revoke { store, .. } => store,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyKindArg {
    Secret,
    Public,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// BG/NBD and Gamma-Gamma on the CDNOW cohort (39-week calibration) beside Fader, Hardie & Lee.
    Clv,
    /// Automatic forecasting on aus_retail (152 monthly series, last 24 months held out).
    Forecast,
    /// Recommenders on Amazon Beauty (leave-one-out), Online Retail I and Instacart (last order held out), YOOCHOOSE.
    Recs(eval::recs::RecsEvalArgs),
    /// Hybrid product search on the fashion catalog with the Algolia fashion query log: NDCG@10, Recall@50.
    Search,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Events per second through `POST /v1/events` and `POST /v1/events/batch`, durability on.
    Ingest(bench::IngestBenchArgs),
    /// Per-query latency of the hybrid product search on the 44k fashion catalog (p50/p99).
    Search(search_bench::SearchBenchArgs),
    /// Recommendation serving on the 44k fashion catalog: latency per scenario and requests/s with `wrk`.
    Recs(recs_bench::RecsBenchArgs),
    /// Replicas on one PostgreSQL database under mixed load while one is killed and the database connections
    /// are terminated: every acknowledged event kept once, failures only at the faults, one training per slot.
    Cluster(cluster_bench::ClusterBenchArgs),
    /// A synthetic shop of `--items` products and `--events` events through import, training, the search index
    /// and serving: time and peak memory of each stage, sizes, latency.
    Scale(scale_bench::ScaleBenchArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&resolve(&args.options())?, args.demo),
        Command::Import { what } => run_import(what),
        Command::Keys { action } => run_keys(&resolve(&action.store().options())?, action),
        Command::Demo(store) => {
            let store = open_store(&resolve(&store.options())?)?;
            println!("{}", seed_demo_tenant(store.as_ref())?);
            Ok(())
        }
        Command::Train(args) => {
            let options = resolve(&OptionArgs { train_seed: args.train_seed, ..args.store.options() })?;
            train(&options, &args.tenant)
        }
        Command::Bench { what: BenchCommand::Ingest(args) } => {
            init_logging(args.log.log.as_deref().unwrap_or("info"));
            bench::ingest(&args)
        }
        Command::Bench { what: BenchCommand::Search(args) } => {
            init_logging(args.log.log.as_deref().unwrap_or("info"));
            search_bench::search(&args)
        }
        Command::Bench { what: BenchCommand::Recs(args) } => {
            init_logging(args.log.log.as_deref().unwrap_or("info"));
            recs_bench::recs(&args)
        }
        Command::Bench { what: BenchCommand::Cluster(args) } => {
            init_logging(args.log.log.as_deref().unwrap_or("info"));
            cluster_bench::cluster(&args)
        }
        Command::Bench { what: BenchCommand::Scale(args) } => {
            init_logging(args.log.log.as_deref().unwrap_or("warn"));
            scale_bench::scale(&args)
        }
        Command::Eval(args) => run_eval(args),
        Command::Migrate(args) => run_migrate(&args),
    }
}

/// The configuration of a command that reads settings, with logging started by it.
fn resolve(args: &OptionArgs) -> anyhow::Result<Options> {
    let options = Options::resolve(args)?;
    init_logging(&options.log);
    Ok(options)
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let LogArgs { log } = &args.log;
    init_logging(log.as_deref().unwrap_or("info"));
    let (datasets, peer) = (&args.datasets, args.peer);
    anyhow::ensure!(datasets.is_dir(), "no data sets at {} (use --datasets DIR)", datasets.display());
    let report = match args.what {
        EvalCommand::Clv => eval::run_clv_eval(datasets, peer)?,
        EvalCommand::Forecast => eval::run_forecast_eval(datasets, peer)?,
        EvalCommand::Recs(recs) => eval::run_recs_eval(datasets, peer, &recs)?,
        EvalCommand::Search => eval::run_search_eval(datasets)?,
    };
    println!("{report}");
    Ok(())
}

fn init_logging(filter: &str) {
    // tantivy logs every index commit at info; keep it to warnings unless the filter names it.
    let filter = if filter.contains("tantivy") { filter.to_string() } else { format!("{filter},tantivy=warn") };
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The store the options select: PostgreSQL with a database URL, else SQLite in the data directory.
pub fn open_store(options: &Options) -> anyhow::Result<Arc<dyn Store>> {
    match &options.database_url {
        Some(url) => Ok(Arc::new(open_postgres(url, options.database_schema.clone())?)),
        None => Ok(Arc::new(open_sqlite(options)?)),
    }
}

/// A PostgreSQL store; its schema is brought up to date.
pub fn open_postgres(url: &str, schema: Option<String>) -> anyhow::Result<PostgresStore> {
    PostgresStore::connect(url, PostgresOptions { schema, ..PostgresOptions::default() })
        .with_context(|| format!("cannot open the postgresql store at {}", redact_password(url)))
}

/// `attune migrate`: prints one line per tenant copied.
fn run_migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    init_logging(args.log.log.as_deref().unwrap_or("info"));
    let path = args.from.join("attune.sqlite3");
    anyhow::ensure!(path.is_file(), "no attune store at {} (give the data directory with --from)", path.display());
    let source = SqliteStore::open(&path, SqliteOptions::default())
        .with_context(|| format!("cannot open the store at {}", path.display()))?;
    let target = open_postgres(&args.to, args.database_schema.clone())?;
    for copy in crate::migrate::migrate(&source, &target, true)? {
        println!("{}", copy.render());
    }
    Ok(())
}

/// The embedded store in the data directory.
pub fn open_sqlite(options: &Options) -> anyhow::Result<SqliteStore> {
    let path = options.database_path();
    SqliteStore::open(&path, SqliteOptions { synchronous: options.synchronous, ..Default::default() })
        .with_context(|| format!("cannot open the store at {}", path.display()))
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_string() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn parse_tenant(text: &str) -> anyhow::Result<TenantId> {
    TenantId::parse_slug(text).map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Load the bundled demo data into tenant `demo` (idempotent: items and users are upserted, events are
/// keyed by invoice number), its dates shifted so that the last invoice falls on the day before loading.
/// Returns a one-line summary.
pub fn seed_demo_tenant(store: &dyn Store) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let tenant = demo::demo_tenant_id();
    ensure_tenant(store, &tenant, "Demo gift shop (UCI Online Retail I)")?;
    let mut dataset = demo::load_demo_dataset()?;
    let existing = store.stats(&tenant)?;
    if existing.events >= dataset.events.len() as u64 && existing.items >= dataset.items.len() as u64 {
        return Ok(format!(
            "demo tenant already loaded: {} items, {} customers, {} events",
            existing.items, existing.users, existing.events
        ));
    }
    let shift_days = dataset.shift_to_end_before(Timestamp::now())?;
    store.upsert_items(&tenant, &dataset.items)?;
    store.upsert_users(&tenant, &dataset.users)?;
    let mut accepted = 0;
    for chunk in dataset.events.chunks(5_000) {
        accepted += store.append_events(&tenant, chunk)?.accepted;
    }
    Ok(format!(
        "demo tenant loaded in {:.1}s: {} items, {} customers, {} events ({} new), dates shifted by {} days \
         (original = time - context.demo_shift_days)",
        started.elapsed().as_secs_f64(),
        dataset.items.len(),
        dataset.users.len(),
        dataset.events.len(),
        accepted,
        shift_days
    ))
}

fn serve(options: &Options, demo: bool) -> anyhow::Result<()> {
    let store = open_store(options)?;
    let mut server_options = ServerOptions {
        max_body_bytes: options.max_body_bytes,
        secure_cookies: options.secure_cookies,
        shutdown_timeout: Duration::from_secs(options.shutdown_timeout_seconds),
        event_time_window: options.event_time_window,
        header_read_timeout: Duration::from_secs(options.header_read_timeout_seconds),
        max_connections: options.max_connections,
        public_key_rate: options.public_key_rate,
        ..Default::default()
    };
    if demo {
        let summary = seed_demo_tenant(store.as_ref())?;
        tracing::info!(%summary, "demo data ready");
        let tenant = demo::demo_tenant_id();
        server_options.storefront_tenant = Some(tenant.clone());
        if options.listen.ip().is_loopback() {
            server_options.demo_console_key = Some(demo_console_key(store.as_ref(), &tenant)?);
        }
    }
    let engine = Engine::new(store, engine_config(options));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let address = listener.local_addr()?;
        // The first line on standard output is the address, for scripts and tests.
        println!("listening on http://{address}");
        tracing::info!(%address, console = %format!("http://{address}/console"), "attune is serving");
        let state = AppState::new(engine, server_options);
        attune_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The engine's part of the configuration.
fn engine_config(options: &Options) -> EngineConfig {
    let minutes = |n: u64| (n > 0).then(|| Duration::from_secs(n * 60));
    EngineConfig {
        forecast_interval: minutes(options.forecast_interval_minutes),
        train_interval: minutes(options.train_interval_minutes),
        training: TrainOptions {
            seed: options.train_seed,
            retrain_after_erasure: Duration::from_secs(u64::from(options.retrain_after_erasure_hours) * 3_600),
            ..Default::default()
        },
        model_dir: options.model_dir.clone(),
        catalog_tuning: options.catalog_tuning.then(attune_search::TuningConfig::default),
        suggestion_min_shoppers: options.suggest_min_shoppers,
        retention: options.retention,
    }
}

/// A fresh secret key of the demo tenant for the console's one-click sign-in; the previous ones are revoked.
fn demo_console_key(store: &dyn Store, tenant: &TenantId) -> anyhow::Result<String> {
    for key in store.api_keys(tenant)? {
        if key.label == DEMO_CONSOLE_KEY_LABEL && key.revoked_at.is_none() {
            store.revoke_api_key(tenant, &key.key_id)?;
        }
    }
    Ok(create_api_key(store, tenant, ApiKeyKind::Secret, DEMO_CONSOLE_KEY_LABEL)?.key)
}

/// `attune train`: the same training the `train_recs` task runs, against the store. Too little data is an
/// error that says how much there is and how much training needs.
fn train(options: &Options, tenant: &str) -> anyhow::Result<()> {
    let store = open_store(options)?;
    let tenant = parse_tenant(tenant)?;
    if store.tenant(&tenant)?.is_none() {
        bail!("no tenant `{tenant}`");
    }
    let train_options = TrainOptions { seed: options.train_seed, ..Default::default() };
    let report = |stage: &str, fraction: f64| tracing::debug!(stage, fraction, "training");
    let trained = match training::train(store.as_ref(), &tenant, &train_options, &report) {
        Ok(trained) => trained,
        Err(error @ training::TrainError::NotEnoughData(_)) => bail!("tenant `{tenant}`: {error}; nothing was stored"),
        Err(error) => return Err(error.into()),
    };
    println!("{}", training::summary(&trained.info, &trained.metrics));
    println!("{}", serde_json::to_string_pretty(&trained.metrics)?);
    Ok(())
}

const DEMO_CONSOLE_KEY_LABEL: &str = "console sign-in (serve --demo)";

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

fn run_keys(options: &Options, action: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(options)?;
    match action {
        KeysCommand::Create { tenant, kind, label, .. } => {
            let tenant = parse_tenant(&tenant)?;
            ensure_tenant(store.as_ref(), &tenant, tenant.as_str())?;
            let kind = match kind {
                KeyKindArg::Secret => ApiKeyKind::Secret,
                KeyKindArg::Public => ApiKeyKind::Public,
            };
            let created = create_api_key(store.as_ref(), &tenant, kind, &label)?;
            eprintln!(
                "created {} key {} for tenant {tenant}; store it now, it is not shown again",
                kind.as_str(),
                created.record.key_id
            );
            println!("{}", created.key);
        }
        KeysCommand::List { tenant, .. } => {
            let tenant = parse_tenant(&tenant)?;
            if store.tenant(&tenant)?.is_none() {
                bail!("no tenant `{tenant}`");
            }
            println!("{:<10} {:<7} {:<25} {:<25} label", "key id", "kind", "created", "revoked");
            for key in store.api_keys(&tenant)? {
                println!(
                    "{:<10} {:<7} {:<25} {:<25} {}",
                    key.key_id,
                    key.kind.as_str(),
                    key.created_at.to_string(),
                    key.revoked_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                    key.label
                );
            }
        }
        KeysCommand::Revoke { tenant, key_id, .. } => {
            let tenant = parse_tenant(&tenant)?;
            if !store.revoke_api_key(&tenant, &key_id)? {
                bail!("tenant `{tenant}` has no active key `{key_id}`");
            }
            eprintln!("revoked key {key_id}");
        }
    }
    Ok(())
}

fn run_import(what: ImportCommand) -> anyhow::Result<()> {
    let (ImportArgs { file, tenant, format, event_window, store }, items) = match what {
        ImportCommand::Items(args) => (args, true),
        ImportCommand::Events(args) => (args, false),
    };
    let options = resolve(&OptionArgs {
        event_max_age_days: event_window.event_max_age_days,
        event_max_ahead_days: event_window.event_max_ahead_days,
        ..store.options()
    })?;
    let store = open_store(&options)?;
    let tenant = parse_tenant(&tenant)?;
    ensure_tenant(store.as_ref(), &tenant, tenant.as_str())?;
    let progress = import::ProgressBarReporter::new();
    let format = format.map(import::Format::from);
    let summary = if items {
        import::import_items(store.as_ref(), &tenant, &file, format, &progress)?
    } else {
        import::import_events_within(store.as_ref(), &tenant, &file, format, &options.event_time_window, &progress)?
    };
    progress.finish();
    println!("{}", summary.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_their_password() {
        assert_eq!(redact_password("postgres://attune:s3cret@db:5432/attune"), "postgres://attune:***@db:5432/attune");
        assert_eq!(redact_password("postgres://attune@db/attune"), "postgres://attune@db/attune");
        assert_eq!(redact_password("not a url"), "not a url");
    }
}
