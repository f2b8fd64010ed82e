//! Shared server state: the engine, metrics, options and the API-key cache.

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rate_limit::{PublicKeyLimits, PublicKeyRate};
use attune_core::{EventTimeWindow, TenantId};
use attune_engine::{Engine, EngineError};
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
    /// At shutdown, how long in-flight requests may take to finish, and then how long the engine's tasks may
    /// take to reach a checkpoint.
    pub shutdown_timeout: Duration,
    /// Event times ingest accepts, around the server clock.
    pub event_time_window: EventTimeWindow,
    /// How long a client may take to send a request's headers, counted from when its connection opened or its
    /// previous response was sent; then the connection is closed.
    pub header_read_timeout: Duration,
    /// Most connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// How fast each public key may send requests.
    pub public_key_rate: PublicKeyRate,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_batch_events: 10_000,
            storefront_tenant: None,
            demo_console_key: None,
            secure_cookies: false,
            shutdown_timeout: Duration::from_secs(30),
            event_time_window: EventTimeWindow::default(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            public_key_rate: PublicKeyRate::default(),
        }
    }
}

/// How long a resolved API key is trusted before the store is asked again. Revocations through this server,
/// and through any process sharing a PostgreSQL store (its change feed bumps [`Engine::key_generation`]), take
/// effect at once; this bounds only a revocation by another process on the same SQLite file (`attune keys`).
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ResolvedKey {
    pub record: ApiKeyRecord,
    pub user_token_secret: Vec<u8>,
}

/// A resolved key, when it was resolved, and the engine's key generation before it was read.
struct CachedKey {
    key: ResolvedKey,
    at: Instant,
    generation: u64,
}

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub engine: Engine,
    pub metrics: Metrics,
    pub options: ServerOptions,
    key_cache: Mutex<HashMap<String, CachedKey>>,
    pub(crate) public_key_limits: PublicKeyLimits,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AppState {
    pub fn new(engine: Engine, options: ServerOptions) -> Self {
        Self(Arc::new(AppStateInner {
            engine,
            metrics: Metrics::new(),
            public_key_limits: PublicKeyLimits::new(options.public_key_rate),
            options,
            key_cache: Mutex::new(HashMap::new()),
        }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    pub(crate) fn cached_key(&self, secret_hash: &str) -> Option<ResolvedKey> {
        let generation = self.engine.key_generation();
        let cache = self.key_cache.lock().expect("key cache poisoned");
        cache
            .get(secret_hash)
            .filter(|cached| cached.generation == generation && cached.at.elapsed() < KEY_CACHE_TTL)
            .map(|cached| cached.key.clone())
    }

    /// Keeps `key`, read from the store after the engine's key generation was `generation`.
    pub(crate) fn cache_key(&self, secret_hash: String, key: ResolvedKey, generation: u64) {
        let mut cache = self.key_cache.lock().expect("key cache poisoned");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(secret_hash, CachedKey { key, at: Instant::now(), generation });
    }

    pub(crate) fn forget_key(&self, tenant: &TenantId, key_id: &str) {
        let mut cache = self.key_cache.lock().expect("key cache poisoned");
        cache.retain(|_, cached| !(cached.key.record.tenant_id == *tenant && cached.key.record.key_id == key_id));
    }

    /// Runs `work` with the engine on a blocking thread: store access, computing, parsing big bodies.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let engine = self.engine.clone();
        blocking(move || Ok(work(&engine)?)).await
    }
}

/// Run blocking work (store access, parsing big bodies) off the async worker threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}
