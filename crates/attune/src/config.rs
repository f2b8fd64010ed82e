//! Configuration: one [`Options`] struct filled from command-line flags, then `ATTUNE_*` environment
//! variables (clap reads both), then an optional TOML file, then defaults. Unknown TOML keys are an error.

use anyhow::{Context, bail};
use attune_core::EventTimeWindow;
use attune_store::Synchronous;
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting a command may take, as given on the command line or in the environment (`None`: not
/// given). Each command's arguments fill the settings it uses ([`crate::cli`]); the rest come from the TOML
/// file or the defaults.
#[derive(Debug, Clone, Default)]
pub struct OptionArgs {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_schema: Option<String>,
    pub listen: Option<SocketAddr>,
    pub synchronous: Option<Synchronous>,
    pub max_body_bytes: Option<usize>,
    pub log: Option<String>,
    pub secure_cookies: Option<bool>,
    pub shutdown_timeout_seconds: Option<u64>,
    pub header_read_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub public_key_rate_per_second: Option<u32>,
    pub public_key_burst: Option<u32>,
    pub forecast_interval_minutes: Option<u64>,
    pub model_dir: Option<PathBuf>,
    pub catalog_tuning: Option<bool>,
    pub suggest_min_shoppers: Option<usize>,
    pub retention_days: Option<u32>,
    pub anonymous_retention_days: Option<u32>,
    pub retrain_after_erasure_hours: Option<u32>,
    pub train_interval_minutes: Option<u64>,
    pub train_seed: Option<u64>,
    pub event_max_age_days: Option<u32>,
    pub event_max_ahead_days: Option<u32>,
}

/// The event times ingest accepts, for `serve` and `import`.
#[derive(Debug, Clone, Default, Args)]
pub struct EventWindowArgs {
    /// Reject events older than this many days before the server clock (default 3650).
    #[arg(long, env = "ATTUNE_EVENT_MAX_AGE_DAYS")]
    pub event_max_age_days: Option<u32>,
    /// Reject events more than this many days after the server clock (default 1).
    #[arg(long, env = "ATTUNE_EVENT_MAX_AHEAD_DAYS")]
    pub event_max_ahead_days: Option<u32>,
}

/// The log filter, which every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `attune_engine=debug`.
    #[arg(long, env = "ATTUNE_LOG", global = true)]
    pub log: Option<String>,
}

/// Where the store is, for every command that opens it.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// TOML configuration file (any setting of this command; flags and the environment win over it).
    #[arg(long, env = "ATTUNE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store.
    #[arg(long, env = "ATTUNE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL database (`postgres://user:password@host:5432/database`) instead of the embedded store;
    /// any number of `attune serve` processes may share one.
    #[arg(long, env = "ATTUNE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema of the PostgreSQL database holding Attune's tables (default `public`).
    #[arg(long, env = "ATTUNE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// `full` (fsync every commit, default) or `normal`.
    #[arg(long, env = "ATTUNE_SYNCHRONOUS", value_parser = parse_synchronous)]
    pub synchronous: Option<Synchronous>,
    #[command(flatten)]
    pub log: LogArgs,
}

impl StoreArgs {
    pub fn options(&self) -> OptionArgs {
        OptionArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            database_schema: self.database_schema.clone(),
            synchronous: self.synchronous,
            log: self.log.log.clone(),
            ..Default::default()
        }
    }
}

/// `full` or `normal`, for clap.
pub fn parse_synchronous(text: &str) -> Result<Synchronous, String> {
    match text {
        "full" => Ok(Synchronous::Full),
        "normal" => Ok(Synchronous::Normal),
        _ => Err(format!("`{text}` is not `full` or `normal`")),
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_schema: Option<String>,
    listen: Option<SocketAddr>,
    synchronous: Option<Synchronous>,
    max_body_bytes: Option<usize>,
    log: Option<String>,
    secure_cookies: Option<bool>,
    shutdown_timeout_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    public_key_rate_per_second: Option<u32>,
    public_key_burst: Option<u32>,
    forecast_interval_minutes: Option<u64>,
    model_dir: Option<PathBuf>,
    catalog_tuning: Option<bool>,
    suggest_min_shoppers: Option<usize>,
    retention_days: Option<u32>,
    anonymous_retention_days: Option<u32>,
    retrain_after_erasure_hours: Option<u32>,
    train_interval_minutes: Option<u64>,
    train_seed: Option<u64>,
    event_max_age_days: Option<u32>,
    event_max_ahead_days: Option<u32>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub data_dir: PathBuf,
    /// The PostgreSQL database to use instead of the embedded store in `data_dir`.
    pub database_url: Option<String>,
    /// The schema of that database holding Attune's tables; `None`: `public`.
    pub database_schema: Option<String>,
    pub listen: SocketAddr,
    pub synchronous: Synchronous,
    pub max_body_bytes: usize,
    pub log: String,
    pub secure_cookies: bool,
    /// At shutdown, how long in-flight requests may take, and then background tasks.
    pub shutdown_timeout_seconds: u64,
    /// Seconds a client may take to send a request's headers (also the idle limit of a kept-alive connection).
    pub header_read_timeout_seconds: u64,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Requests per second each public key may send, sustained, and at once.
    pub public_key_rate: attune_server::PublicKeyRate,
    /// Minutes between scheduled forecast tasks; 0: off.
    pub forecast_interval_minutes: u64,
    /// The model directory for semantic search, if any.
    pub model_dir: Option<PathBuf>,
    /// Whether search tunes item vectors to the catalog.
    pub catalog_tuning: bool,
    /// Distinct shoppers a past query needs before autocomplete suggests it.
    pub suggest_min_shoppers: usize,
    /// Days events are kept, and anonymous visitors' events; `None`: for ever.
    pub retention: attune_engine::retention::RetentionPolicy,
    /// Hours after an erasure by which the recommendation model's factor parts are retrained.
    pub retrain_after_erasure_hours: u32,
    /// Minutes between scheduled recommendation trainings; 0: off.
    pub train_interval_minutes: u64,
    /// Seed of recommendation training.
    pub train_seed: u64,
    /// Event times ingest and import accept.
    pub event_time_window: EventTimeWindow,
}

impl Options {
    pub fn resolve(args: &OptionArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileOptions::default(),
        };
        let max_body_bytes = args.max_body_bytes.or(file.max_body_bytes).unwrap_or(16 * 1024 * 1024);
        if max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        Ok(Self {
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("attune-data")),
            database_url: args.database_url.clone().or(file.database_url).filter(|url| !url.is_empty()),
            database_schema: args.database_schema.clone().or(file.database_schema).filter(|s| !s.is_empty()),
            listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878))),
            synchronous: args.synchronous.or(file.synchronous).unwrap_or_default(),
            max_body_bytes,
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".into()),
            secure_cookies: args.secure_cookies.or(file.secure_cookies).unwrap_or(false),
            shutdown_timeout_seconds: args.shutdown_timeout_seconds.or(file.shutdown_timeout_seconds).unwrap_or(30),
            header_read_timeout_seconds: args
                .header_read_timeout_seconds
                .or(file.header_read_timeout_seconds)
                .unwrap_or(10)
                .max(1),
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(10_000).max(1),
            public_key_rate: attune_server::PublicKeyRate {
                per_second: args.public_key_rate_per_second.or(file.public_key_rate_per_second).unwrap_or(50).max(1),
                burst: args.public_key_burst.or(file.public_key_burst).unwrap_or(200).max(1),
            },
            forecast_interval_minutes: args.forecast_interval_minutes.or(file.forecast_interval_minutes).unwrap_or(60),
            model_dir: args.model_dir.clone().or(file.model_dir).or_else(attune_text::default_model_dir),
            catalog_tuning: args.catalog_tuning.or(file.catalog_tuning).unwrap_or(true),
            suggest_min_shoppers: args
                .suggest_min_shoppers
                .or(file.suggest_min_shoppers)
                .unwrap_or(attune_engine::search::queries::DEFAULT_MIN_SHOPPERS)
                .max(1),
            retention: attune_engine::retention::RetentionPolicy {
                events_days: args.retention_days.or(file.retention_days).filter(|days| *days > 0),
                anonymous_days: args
                    .anonymous_retention_days
                    .or(file.anonymous_retention_days)
                    .filter(|days| *days > 0),
            },
            retrain_after_erasure_hours: args
                .retrain_after_erasure_hours
                .or(file.retrain_after_erasure_hours)
                .unwrap_or(24)
                .max(1),
            train_interval_minutes: args.train_interval_minutes.or(file.train_interval_minutes).unwrap_or(60),
            train_seed: args.train_seed.or(file.train_seed).unwrap_or(attune_engine::recs::training::DEFAULT_SEED),
            event_time_window: EventTimeWindow {
                max_age_days: args
                    .event_max_age_days
                    .or(file.event_max_age_days)
                    .unwrap_or(EventTimeWindow::default().max_age_days),
                max_ahead_days: args
                    .event_max_ahead_days
                    .or(file.event_max_ahead_days)
                    .unwrap_or(EventTimeWindow::default().max_ahead_days),
            },
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("attune.sqlite3")
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileOptions> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attune.toml");
        std::fs::write(&path, "data_dir = \"/srv/attune\"\nlisten = \"0.0.0.0:9000\"\nsynchronous = \"normal\"\n")
            .unwrap();
        let args = OptionArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        };
        let options = Options::resolve(&args).unwrap();
        assert_eq!(options.data_dir, PathBuf::from("/srv/attune"));
        assert_eq!(options.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(options.synchronous, Synchronous::Normal);
        let with_model = OptionArgs { model_dir: Some(PathBuf::from("/models/minilm")), ..Default::default() };
        assert_eq!(Options::resolve(&with_model).unwrap().model_dir, Some(PathBuf::from("/models/minilm")));
        assert_eq!(
            (options.train_interval_minutes, options.train_seed),
            (60, attune_engine::recs::training::DEFAULT_SEED)
        );
        std::fs::write(&path, "train_interval_minutes = 0\ntrain_seed = 7\n").unwrap();
        let options = Options::resolve(&args).unwrap();
        assert_eq!((options.train_interval_minutes, options.train_seed), (0, 7));
        assert_eq!(options.database_url, None, "without a url: the embedded store");
        std::fs::write(&path, "database_url = \"postgres://a@db/attune\"\ndatabase_schema = \"shop\"\n").unwrap();
        let options = Options::resolve(&args).unwrap();
        assert_eq!(options.database_url.as_deref(), Some("postgres://a@db/attune"));
        assert_eq!(options.database_schema.as_deref(), Some("shop"));
        let flag = OptionArgs { database_url: Some("postgres://b@other/x".into()), ..args.clone() };
        assert_eq!(Options::resolve(&flag).unwrap().database_url.as_deref(), Some("postgres://b@other/x"));
        std::fs::write(&path, "data_dirr = \"x\"\n").unwrap();
        let error = Options::resolve(&args).unwrap_err();
        assert!(format!("{error:#}").contains("unknown field"), "{error:#}");
    }
}
