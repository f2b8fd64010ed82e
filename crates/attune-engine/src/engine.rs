//! The [`Engine`]: one value composing every service over one store, and its lifecycle.
//!
//! [`Engine::new`] builds the services (each registers its tasks) and starts the event writer;
//! [`Engine::start`] starts the schedulers and the start-up work (loading stored models and the sentence
//! embedder) and returns the [`EngineHandle`] that owns them; [`EngineHandle::shutdown`] stops the schedulers,
//! lets running tasks reach a checkpoint (or leaves them at the deadline), and writes every queued event.

use crate::background::Background;
use crate::catalog::CatalogCache;
use crate::changes;
use crate::error::{EngineError, EngineResult};
use crate::event_log::{EventLog, EventLogReport};
use crate::insights::{FORECAST_TASK, InsightsService};
use crate::popular::{PopularItems, Popularity};
use crate::privacy::Consents;
use crate::recs::training::TrainOptions;
use crate::recs::{RecsService, RecsSettings, TRAIN_TASK, Unlearning};
use crate::retention::{self, RETENTION_TASK, RetentionPolicy};
use crate::search::{SearchService, SearchSettings};
use crate::tasks::TaskRegistry;
use attune_core::{
    AnonymousId, ConsentStatement, Item, ItemId, TenantId, TenantSettings, User, UserId, ValidationError,
};
use attune_search::TuningConfig;
use attune_store::{DeletedUser, Store, StoreResult, UpsertCounts};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How the engine runs: schedules, training, search models.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often the `forecast` task runs for every tenant with events; `None`: only on demand.
    pub forecast_interval: Option<Duration>,
    /// How often the `train_recs` task runs for every tenant with new events (and served models are checked
    /// for staleness); `None`: only on demand and at start-up for a tenant without a stored model.
    pub train_interval: Option<Duration>,
    /// Seed and evaluation size of recommendation training.
    pub training: TrainOptions,
    /// The sentence-transformers model directory for semantic search; `None` or unloadable: lexical-only.
    pub model_dir: Option<PathBuf>,
    /// How search tunes item vectors to the catalog when enough items have a category path; `None`: never.
    pub catalog_tuning: Option<TuningConfig>,
    /// Distinct shoppers a past query needs before autocomplete suggests it to anyone.
    pub suggestion_min_shoppers: usize,
    /// How long events are kept; when set, the `retention` task applies it daily.
    pub retention: RetentionPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            forecast_interval: None,
            train_interval: None,
            training: TrainOptions::default(),
            model_dir: None,
            catalog_tuning: Some(TuningConfig::default()),
            suggestion_min_shoppers: crate::search::queries::DEFAULT_MIN_SHOPPERS,
            retention: RetentionPolicy::default(),
        }
    }
}

/// Every service over one store; cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Engine {
    parts: Arc<Parts>,
}

struct Parts {
    store: Arc<dyn Store>,
    config: EngineConfig,
    background: Background,
    tasks: Arc<TaskRegistry>,
    events: Arc<EventLog>,
    catalog: CatalogCache,
    recs: Arc<RecsService>,
    search: Arc<SearchService>,
    insights: Arc<InsightsService>,
    popular: Arc<PopularItems>,
    consents: Arc<Consents>,
    /// Bumped whenever an API key of any tenant changes, here or in another process.
    key_generation: AtomicU64,
    /// Set once start-up has loaded (or started training) every tenant's stored model.
    models_loaded: Arc<AtomicBool>,
}

impl Engine {
    /// Builds the services over `store` and starts the event writer. Nothing else runs until
    /// [`Engine::start`].
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        let background = Background::default();
        let tasks = Arc::new(TaskRegistry::new(background.clone(), store.clone()));
        let events = Arc::new(EventLog::start(store.clone()));
        let catalog = CatalogCache::new(store.clone(), background.clone());
        let consents = Arc::new(Consents::new(store.clone()));
        let settings = RecsSettings { train_interval: config.train_interval, training: config.training.clone() };
        let recs = RecsService::new(
            store.clone(),
            consents.clone(),
            catalog.clone(),
            events.clone(),
            tasks.clone(),
            background.clone(),
            settings,
        );
        let settings = SearchSettings {
            model_dir: config.model_dir.clone(),
            catalog_tuning: config.catalog_tuning,
            suggestion_min_shoppers: config.suggestion_min_shoppers,
        };
        let popular = Arc::new(PopularItems::default());
        let search = SearchService::new(
            store.clone(),
            catalog.clone(),
            events.clone(),
            tasks.clone(),
            popular.clone(),
            consents.clone(),
            settings,
        );
        let insights = InsightsService::new(store.clone(), &tasks);
        retention::register(&tasks, store.clone(), insights.clone(), recs.clone(), config.retention);
        let key_generation = AtomicU64::new(0);
        let parts = Parts {
            store,
            config,
            background,
            tasks,
            events,
            catalog,
            recs,
            search,
            insights,
            popular,
            consents,
            key_generation,
            models_loaded: Arc::default(),
        };
        Self { parts: Arc::new(parts) }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.parts.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.parts.config
    }

    /// The threads the engine owns.
    pub(crate) fn background(&self) -> &Background {
        &self.parts.background
    }

    /// Changes whenever an API key changed (created, revoked), in this process or another sharing the store:
    /// a copy of a resolved key is good while this number stays what it was when the copy was made.
    pub fn key_generation(&self) -> u64 {
        self.parts.key_generation.load(Ordering::Acquire)
    }

    /// After an API key changed.
    pub fn keys_changed(&self) {
        self.parts.key_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether start-up has loaded the stored models (readiness).
    pub fn models_loaded(&self) -> bool {
        self.parts.models_loaded.load(Ordering::Acquire)
    }

    /// Background tasks: their kinds, runs and progress.
    pub fn tasks(&self) -> &TaskRegistry {
        &self.parts.tasks
    }

    /// The in-memory copies of the tenants' catalogs.
    pub fn catalog(&self) -> &CatalogCache {
        &self.parts.catalog
    }

    pub fn recs(&self) -> &RecsService {
        &self.parts.recs
    }

    pub fn search(&self) -> &SearchService {
        &self.parts.search
    }

    /// The queue of the engine's own events (impressions, searches).
    pub fn event_log(&self) -> &EventLog {
        &self.parts.events
    }

    pub fn insights(&self) -> &InsightsService {
        &self.parts.insights
    }

    /// Consent as requests read it: tenants' settings and shoppers' ledgers.
    pub fn consents(&self) -> &Consents {
        &self.parts.consents
    }

    /// The tenant's most ordered items of late, at most `keep`. Blocking.
    pub fn popular(&self, tenant: &TenantId, keep: usize) -> StoreResult<Popularity> {
        let all = self.parts.popular.get(self.parts.store.as_ref(), tenant)?;
        Ok(Popularity { items: all.items.iter().take(keep).cloned().collect(), orders: all.orders })
    }

    /// Stores items (all or none) and lets every service see them: the catalog copy is dropped and new
    /// texts are embedded in the background. Blocking.
    pub fn upsert_items(&self, tenant: &TenantId, items: &[Item]) -> EngineResult<UpsertCounts> {
        let counts = self.parts.store.upsert_items(tenant, items)?;
        self.items_changed(tenant);
        Ok(counts)
    }

    /// Deletes an item; false when there was none. Blocking.
    pub fn delete_item(&self, tenant: &TenantId, id: &ItemId) -> EngineResult<bool> {
        let deleted = self.parts.store.delete_item(tenant, id)?;
        self.parts.catalog.invalidate(tenant);
        Ok(deleted)
    }

    /// After items of `tenant` changed in the store through this engine.
    pub fn items_changed(&self, tenant: &TenantId) {
        self.parts.catalog.invalidate(tenant);
        self.parts.search.items_changed(tenant);
    }

    /// Starts the schedulers and the start-up work; the handle stops them.
    pub fn start(&self) -> EngineHandle {
        let config = &self.parts.config;
        if let Some(interval) = config.forecast_interval {
            self.schedule(FORECAST_TASK, interval);
        }
        if let Some(interval) = config.train_interval {
            self.schedule(TRAIN_TASK, interval);
        }
        let installation = config.retention;
        self.schedule_for(RETENTION_TASK, RETENTION_INTERVAL, move |store, tenant| {
            retention::applies(store, tenant, installation)
        });
        if let Some(feed) = self.open_change_feed() {
            let engine = self.clone();
            self.parts.background.spawn("follow-changes", move || changes::follow(&engine, feed));
        }
        let engine = self.clone();
        self.parts.background.spawn("recs-start-up", move || {
            // Until the store answers, nothing can be loaded; a replica started while its database is away
            // keeps trying, and reports not ready meanwhile.
            loop {
                match tenants(engine.store().as_ref(), true) {
                    Ok(tenants) => {
                        engine.parts.recs.load_at_startup(&tenants);
                        engine.parts.models_loaded.store(true, Ordering::Release);
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "cannot list tenants to load their recommendation models"),
                }
                if !engine.parts.background.sleep(Duration::from_secs(1)) {
                    return;
                }
            }
        });
        let engine = self.clone();
        self.parts.background.spawn("search-start-up", move || match tenants(engine.store().as_ref(), false) {
            Ok(tenants) => engine.parts.search.start(&tenants),
            Err(error) => tracing::warn!(%error, "cannot list tenants to embed their items"),
        });
        EngineHandle { engine: self.clone() }
    }

    /// Runs `kind` once per `interval` slot (`now / interval`) for every tenant with events, until the engine
    /// stops. Every process sharing the store runs the same schedule; the store's task leases and slot records
    /// let one of them run each slot. The current slot is tried at start-up and then every [`SLOT_RETRY`], so a
    /// slot whose runner died is taken over.
    fn schedule(&self, kind: &'static str, interval: Duration) {
        self.schedule_for(kind, interval, |_, _| true);
    }

    /// [`Engine::schedule`] for the tenants with events that `wants` picks.
    fn schedule_for(
        &self,
        kind: &'static str,
        interval: Duration,
        wants: impl Fn(&dyn Store, &TenantId) -> bool + Send + 'static,
    ) {
        self.parts.tasks.set_interval(kind, interval);
        let (background, store, tasks) =
            (self.parts.background.clone(), self.parts.store.clone(), self.parts.tasks.clone());
        self.parts.background.spawn(&format!("schedule-{kind}"), move || {
            // The first round a little after start-up, once stored models are loaded.
            let mut wait = interval.min(Duration::from_secs(10));
            // Tenants are listed once per slot; the retries within it go through the same list.
            let mut listed: Option<(Option<i64>, Vec<TenantId>)> = None;
            while background.sleep(wait) {
                let slot = tasks.slot_now(kind);
                if listed.as_ref().is_none_or(|(listed_slot, _)| *listed_slot != slot) {
                    listed = tenants(store.as_ref(), true)
                        .inspect_err(|error| tracing::warn!(kind, %error, "scheduler cannot list tenants"))
                        .ok()
                        .map(|tenants| (slot, tenants.into_iter().filter(|t| wants(store.as_ref(), t)).collect()));
                }
                for tenant in listed.iter().flat_map(|(_, tenants)| tenants) {
                    tasks.start_in_background(tenant, kind);
                }
                wait = until_next_slot(interval).min(SLOT_RETRY);
            }
        });
    }

    /// The store's change feed, when other processes share the store.
    fn open_change_feed(&self) -> Option<Box<dyn attune_store::ChangeFeed>> {
        match self.parts.store.change_feed() {
            Ok(feed) => feed,
            Err(error) => {
                tracing::warn!(%error, "cannot follow the store's changes; in-memory copies expire by age instead");
                None
            }
        }
    }
}

/// How often the retention policy is applied.
const RETENTION_INTERVAL: Duration = Duration::from_secs(86_400);

/// How often a scheduler looks again at a slot that has not run yet.
pub const SLOT_RETRY: Duration = Duration::from_secs(30);

/// Time until the next multiple of `interval` since the epoch (a little after, so the new slot has begun).
fn until_next_slot(interval: Duration) -> Duration {
    let interval_ms = interval.as_millis().max(1) as i64;
    let now = attune_core::Timestamp::now().millis();
    Duration::from_millis((interval_ms - now.rem_euclid(interval_ms)) as u64 + 5)
}

/// The tenants of `store`, only those with events when `with_events`.
fn tenants(store: &dyn Store, with_events: bool) -> StoreResult<Vec<TenantId>> {
    let mut out = Vec::new();
    for tenant in store.tenants()? {
        if !with_events || store.stats(&tenant.id)?.events > 0 {
            out.push(tenant.id);
        }
    }
    Ok(out)
}

/// A started engine; [`EngineHandle::shutdown`] stops it.
pub struct EngineHandle {
    engine: Engine,
}

/// What shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Background threads (tasks, start-up work) still running at the deadline, left to the process exit.
    pub unfinished: usize,
    /// The event log's counts since start-up: every queued event was written or counted as dropped.
    pub events: EventLogReport,
}

impl EngineHandle {
    /// Stops the schedulers and start-up work, lets running tasks reach a checkpoint until `timeout` has
    /// passed, then writes every queued event and stops the writer. Blocking.
    pub fn shutdown(self, timeout: Duration) -> ShutdownReport {
        let parts = &self.engine.parts;
        let deadline = Instant::now() + timeout;
        parts.background.stop();
        let unfinished = parts.background.join(deadline);
        let events = parts.events.close();
        if unfinished > 0 {
            tracing::warn!(unfinished, "background work still running at the shutdown deadline");
        }
        tracing::info!(events_written = events.written, events_dropped = events.dropped, unfinished, "engine stopped");
        ShutdownReport { unfinished, events }
    }
}

/// What an erasure deleted, and what it did to the served recommendation model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    pub deleted: DeletedUser,
    pub recommendations: Unlearning,
}

/// How long an erasure waits for this process's queued events to be written.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Consent and erasure (see [`crate::privacy`]).
impl Engine {
    /// Records consent `statements` of `user` (see [`Store::record_consent`]) and forgets the tenant's customer
    /// analytics, which must leave out customers who withdrew consent to analytics. Blocking.
    pub fn record_consent(
        &self,
        tenant: &TenantId,
        user: &UserId,
        statements: &[ConsentStatement],
    ) -> EngineResult<User> {
        self.check_declared(tenant, statements)?;
        let stored = self.store().record_consent(tenant, user, statements)?;
        self.insights().forget(tenant);
        Ok(stored)
    }

    /// Records consent `statements` of anonymous visitor `visitor` in their ledger. Blocking.
    pub fn record_visitor_consent(
        &self,
        tenant: &TenantId,
        visitor: &AnonymousId,
        statements: &[ConsentStatement],
    ) -> EngineResult<()> {
        self.check_declared(tenant, statements)?;
        Ok(self.store().record_visitor_consent(tenant, visitor, statements)?)
    }

    /// Refuses statements about a purpose that is neither built in nor declared in the tenant's settings.
    fn check_declared(&self, tenant: &TenantId, statements: &[ConsentStatement]) -> EngineResult<()> {
        match self.consents().undeclared(tenant, statements)? {
            None => Ok(()),
            Some(name) => Err(EngineError::Invalid(ValidationError::new(
                "purposes",
                "undeclared_purpose",
                format!("`{name}` is not a purpose of this shop; declare it first (`purposes` in PATCH /v1/settings)"),
            ))),
        }
    }

    /// Erases `user` (see [`Store::delete_user`]: the store keeps a tombstone that refuses their later events)
    /// and forgets what was derived from them: the tenant's customer analytics, popularity, their searches in
    /// autocomplete, and their part of the served recommendation model ([`RecsService::unlearn`]). Blocking.
    pub fn erase_user(&self, tenant: &TenantId, user: &UserId) -> EngineResult<Erasure> {
        // What this process still queues of theirs is written first, so that the erasure takes it too.
        if !self.event_log().flush(FLUSH_WAIT) {
            tracing::warn!(tenant = %tenant, "queued events not written before an erasure; the tombstone drops them");
        }
        let deleted = self.store().delete_user(tenant, user)?;
        self.insights().forget(tenant);
        self.parts.popular.forget(tenant);
        self.search().forget_user(tenant, user);
        tracing::info!(tenant = %tenant, events = deleted.events, "user erased");
        let recommendations = match deleted.events {
            0 => Unlearning::NotNeeded,
            _ => self.recs().unlearn(tenant)?,
        };
        Ok(Erasure { deleted, recommendations })
    }

    /// Replaces `tenant`'s settings (refused unless valid, [`TenantSettings::validate`]); every process reads
    /// them again. Blocking.
    pub fn put_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> EngineResult<()> {
        settings.validate()?;
        self.store().put_tenant_settings(tenant, settings)?;
        self.consents().settings_changed(tenant);
        Ok(())
    }

    /// The retention policy in force for a tenant with `settings`.
    pub fn retention_policy(&self, settings: &TenantSettings) -> RetentionPolicy {
        self.parts.config.retention.for_tenant(settings)
    }

    /// Stores `user`'s profile, registering an erased user again. Blocking.
    pub fn register_user(&self, tenant: &TenantId, user: &User) -> EngineResult<User> {
        if self.store().lift_erasure(tenant, &user.id)? {
            tracing::info!(tenant = %tenant, "erased user registered again");
        }
        Ok(self.store().upsert_user(tenant, user)?)
    }
}
