//! Shared server state: the store, metrics, options, the API-key cache and the per-tenant analytics.

use crate::catalog::CatalogCache;
use crate::impressions::ImpressionLog;
use crate::insights::{ForecastSnapshot, TenantAnalytics};
use crate::metrics::Metrics;
use crate::recommendations::RecsModel;
use crate::tasks::TaskRegistry;
use attune_core::TenantId;
use attune_store::{ApiKeyRecord, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits and settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most events in one `POST /v1/events/batch`.
    pub max_batch_events: usize,
    /// The tenant the storefront demo shows, if any.
    pub storefront_tenant: Option<TenantId>,
    /// A secret key of the storefront tenant the console signs in with in one click. Set only by
    /// `serve --demo` on a loopback address.
    pub demo_console_key: Option<String>,
    /// Mark the console's and storefront's cookies `Secure` (serve over HTTPS, e.g. behind a TLS proxy).
    pub secure_cookies: bool,
    /// How often the `forecast` task runs for every tenant with events; `None`: only on demand.
    pub forecast_interval: Option<Duration>,
    /// How often the `train_recs` task runs for every tenant with new events; `None`: only on demand (and at
    /// start-up when a tenant has no stored model).
    pub train_interval: Option<Duration>,
    /// Seed and evaluation size of recommendation training.
    pub training: crate::training::TrainOptions,
    /// The sentence-transformers model directory for semantic search; `None` or unloadable: lexical-only (the
    /// CLI defaults it to `attune_text::default_model_dir()`).
    pub model_dir: Option<std::path::PathBuf>,
    /// How search tunes item vectors to the catalog (`attune_search::CatalogTuning`) when enough items have a
    /// category path; `None`: never.
    pub catalog_tuning: Option<attune_search::TuningConfig>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_batch_events: 10_000,
            storefront_tenant: None,
            demo_console_key: None,
            secure_cookies: false,
            forecast_interval: None,
            train_interval: None,
            training: crate::training::TrainOptions::default(),
            model_dir: None,
            catalog_tuning: Some(attune_search::TuningConfig::default()),
        }
    }
}

/// How long a resolved API key is trusted before the store is asked again (bounds how long a key
/// revoked by another replica keeps working; revocations through this server take effect at once).
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ResolvedKey {
    pub record: ApiKeyRecord,
    pub user_token_secret: Vec<u8>,
}

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub options: ServerOptions,
    key_cache: Mutex<HashMap<String, (ResolvedKey, Instant)>>,
    /// Per-tenant analytics (customer model, demand history), see [`crate::insights`].
    analytics: Mutex<HashMap<TenantId, Arc<TenantAnalytics>>>,
    /// Held while analytics are built, so concurrent requests share one build.
    pub(crate) analytics_build: Mutex<()>,
    /// Per-tenant results of the latest `forecast` task.
    forecasts: Mutex<HashMap<TenantId, Arc<ForecastSnapshot>>>,
    /// Background tasks and their progress, see [`crate::tasks`].
    pub tasks: TaskRegistry,
    /// In-memory copies of the tenants' catalogs for the serving path, see [`crate::catalog`].
    pub catalog: CatalogCache,
    /// Impressions queued for the writer thread, see [`crate::impressions`].
    pub impressions: ImpressionLog,
    /// Per-tenant recommendation models, see [`crate::recommendations`].
    recs: Mutex<HashMap<TenantId, Arc<RecsModel>>>,
    /// Per-tenant locks held while a recommendation model is loaded or trained, so concurrent requests share
    /// one load and trainings of a tenant run one at a time.
    recs_locks: Mutex<HashMap<TenantId, Arc<Mutex<()>>>>,
    /// Search indexes, the sentence embedder and past queries, see [`crate::search`].
    pub search: crate::search::SearchService,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, options: ServerOptions) -> Self {
        Self(Arc::new(AppStateInner {
            impressions: ImpressionLog::start(store.clone()),
            store,
            metrics: Metrics::new(),
            options,
            key_cache: Mutex::new(HashMap::new()),
            analytics: Mutex::new(HashMap::new()),
            analytics_build: Mutex::new(()),
            forecasts: Mutex::new(HashMap::new()),
            tasks: TaskRegistry::default(),
            catalog: CatalogCache::default(),
            recs: Mutex::new(HashMap::new()),
            recs_locks: Mutex::new(HashMap::new()),
            search: crate::search::SearchService::default(),
        }))
    }

    pub(crate) fn cached_key(&self, secret_hash: &str) -> Option<ResolvedKey> {
        let cache = self.key_cache.lock().expect("key cache poisoned");
        cache.get(secret_hash).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(key, _)| key.clone())
    }

    pub(crate) fn cache_key(&self, secret_hash: String, key: ResolvedKey) {
        let mut cache = self.key_cache.lock().expect("key cache poisoned");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(secret_hash, (key, Instant::now()));
    }

    pub(crate) fn cached_analytics(&self, tenant: &TenantId) -> Option<Arc<TenantAnalytics>> {
        self.analytics.lock().expect("analytics cache poisoned").get(tenant).cloned()
    }

    pub(crate) fn cache_analytics(&self, tenant: TenantId, analytics: Arc<TenantAnalytics>) {
        self.analytics.lock().expect("analytics cache poisoned").insert(tenant, analytics);
    }

    pub(crate) fn cached_forecasts(&self, tenant: &TenantId) -> Option<Arc<ForecastSnapshot>> {
        self.forecasts.lock().expect("forecast cache poisoned").get(tenant).cloned()
    }

    pub(crate) fn cache_forecasts(&self, tenant: TenantId, snapshot: Arc<ForecastSnapshot>) {
        self.forecasts.lock().expect("forecast cache poisoned").insert(tenant, snapshot);
    }

    pub(crate) fn cached_recs(&self, tenant: &TenantId) -> Option<Arc<RecsModel>> {
        self.recs.lock().expect("recommendation cache poisoned").get(tenant).cloned()
    }

    /// Swaps in `tenant`'s served recommendation model; requests holding the previous one finish with it.
    pub(crate) fn cache_recs(&self, tenant: TenantId, model: Arc<RecsModel>) {
        self.recs.lock().expect("recommendation cache poisoned").insert(tenant, model);
    }

    /// The lock held while `tenant`'s recommendation model is loaded or trained.
    pub(crate) fn recs_lock(&self, tenant: &TenantId) -> Arc<Mutex<()>> {
        let mut locks = self.recs_locks.lock().expect("recommendation locks poisoned");
        locks.entry(tenant.clone()).or_default().clone()
    }

    pub(crate) fn forget_key(&self, tenant: &TenantId, key_id: &str) {
        let mut cache = self.key_cache.lock().expect("key cache poisoned");
        cache.retain(|_, (key, _)| !(key.record.tenant_id == *tenant && key.record.key_id == key_id));
    }
}

/// Run blocking work (store access, parsing big bodies) off the async worker threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::error::ApiError> + Send + 'static,
) -> Result<T, crate::error::ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(crate::error::ApiError::internal)?
}
