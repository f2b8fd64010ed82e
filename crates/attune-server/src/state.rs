//! Shared server state: the store, metrics, options, the API-key cache and the per-tenant analytics.

use crate::insights::TenantAnalytics;
use crate::metrics::Metrics;
use crate::recommendations::RecsModel;
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_batch_events: 10_000,
            storefront_tenant: None,
            demo_console_key: None,
            secure_cookies: false,
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
    /// Per-tenant recommendation models, see [`crate::recommendations`].
    recs: Mutex<HashMap<TenantId, Arc<RecsModel>>>,
    /// Held while a recommendation model is built, so concurrent requests share one build.
    pub(crate) recs_build: Mutex<()>,
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
            store,
            metrics: Metrics::new(),
            options,
            key_cache: Mutex::new(HashMap::new()),
            analytics: Mutex::new(HashMap::new()),
            analytics_build: Mutex::new(()),
            recs: Mutex::new(HashMap::new()),
            recs_build: Mutex::new(()),
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

    pub(crate) fn cached_recs(&self, tenant: &TenantId) -> Option<Arc<RecsModel>> {
        self.recs.lock().expect("recommendation cache poisoned").get(tenant).cloned()
    }

    pub(crate) fn cache_recs(&self, tenant: TenantId, model: Arc<RecsModel>) {
        self.recs.lock().expect("recommendation cache poisoned").insert(tenant, model);
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
