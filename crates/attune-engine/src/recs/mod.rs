//! Recommendations: the served model of each tenant and its lifecycle, and the one selection path that turns
//! it into lists for the API, the storefront's slots and the console's preview.
//!
//! Every model that serves is a decoded snapshot ([`model::decode`]) — a freshly trained one too — put in
//! front of requests by a pointer swap: a request holds the `Arc` it started with, so a swap never fails or
//! stalls one. At start-up (and on the first request of a tenant with no model in memory) the newest
//! readable stored snapshot is loaded; when the log has moved past its `events_through_seq` with events that
//! training uses, it serves at once and a `train_recs` task starts. Only a tenant with nothing stored waits
//! for a first training. A served model older than the training interval is checked for new events in the
//! background (at most once per interval) and retrained when it is behind. Any kept version can be
//! activated (a roll-back lasts until the next training or restart).
//!
//! A tenant with too little data to train ([`training::check_enough`]) stores nothing: its training ends with
//! `insufficient_data`, and while no stored version serves, an unstored fit of what there is
//! ([`training::fit_unstored`], version [`training::UNSTORED_VERSION`]) serves popularity, trending and content matches.
//!
//! Module order, top-down: [`request`] (what a list asks and answers) → [`serve`] (the selection path:
//! [`shopper`] → [`plan`] → [`select`] → [`explain`]) and [`training`] ([`fit`] → [`holdout`] → [`choice`] → [`model`]).

pub mod candidate;
pub mod choice;
pub mod explain;
pub mod fit;
pub mod holdout;
pub mod live;
pub mod model;
pub mod plan;
pub mod query;
pub mod request;
pub mod select;
pub mod serve;
pub mod shopper;
pub mod training;
pub mod unlearn;

use crate::background::Background;
use crate::catalog::CatalogCache;
use crate::error::{EngineError, EngineResult};
use crate::event_log::EventLog;
use crate::privacy::Consents;
use crate::tasks::{TaskProgress, TaskRegistry, TaskTrigger};
use attune_core::input::ScalarValue;
use attune_core::{Channel, Event, EventId, EventKind, ItemId, RecommendationId, Subject, TenantId, Timestamp, UserId};
use attune_store::{ModelSnapshotInfo, Store, TimelineQuery};
use model::{FittedRecs, MODEL_KIND, RecsModel, decode, encode};
use query::ValidList;
use request::{Basis, ListRequest, Recommended, Rules, ServedList, Shopper};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use training::{TrainError, TrainOptions, Trained, UNSTORED_VERSION, is_behind, summary, train_with_checkpoints};
use unlearn::{Unlearned, unlearn_erased, unlearned_now};

/// The task kind that trains a tenant's model: rescan the event log, fit every recommendation model, measure it
/// on a leave-one-out holdout, store it as a new snapshot version and swap it in.
pub const TRAIN_TASK: &str = "train_recs";
/// Items per scenario in the console's preview.
const PREVIEW_COUNT: usize = 5;

/// How the service trains and when it checks for staleness.
#[derive(Debug, Clone, Default)]
pub struct RecsSettings {
    /// How often served models are checked for new events (and retrained); `None`: only on demand.
    pub train_interval: Option<Duration>,
    pub training: TrainOptions,
}

/// The recommendation service of one engine.
pub struct RecsService {
    /// This service, for the background work it starts.
    this: Weak<RecsService>,
    store: Arc<dyn Store>,
    /// Whether a list may use the shopper's history.
    consents: Arc<Consents>,
    catalog: CatalogCache,
    events: Arc<EventLog>,
    tasks: Arc<TaskRegistry>,
    background: Background,
    settings: RecsSettings,
    /// The served model of each tenant.
    models: Mutex<HashMap<TenantId, Arc<RecsModel>>>,
    /// Per tenant, held while a model is loaded or trained, so concurrent requests share one load and
    /// trainings of a tenant run one at a time.
    locks: Mutex<HashMap<TenantId, Arc<Mutex<()>>>>,
    /// Per tenant, the earliest deadline a waiting thread will start a full training at (after an erasure).
    retrain_deadlines: Mutex<HashMap<TenantId, Timestamp>>,
    /// Per tenant, the callers of an unlearning still waiting for the model's lock: erasures meanwhile join it.
    unlearning_queued: Mutex<HashMap<TenantId, Vec<UnlearnWaiter>>>,
}

/// Where an unlearning sends its outcome.
type UnlearnWaiter = std::sync::mpsc::Sender<Result<Unlearning, String>>;

/// How long an erasure waits for the served model to unlearn before answering that it is pending.
pub const UNLEARN_WAIT: Duration = Duration::from_secs(30);

/// What an erasure did to the served recommendation model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlearning {
    /// The erased shopper had no events: no model held anything of theirs.
    NotNeeded,
    /// No model is stored for the tenant: there was nothing to unlearn.
    NoModel,
    /// The served model no longer holds the data in its count-based parts: the version now serving, and until
    /// when its factor parts may still reflect it (`None`: they do not).
    Done { version: i64, factors_retrained_by: Option<Timestamp> },
    /// A training or load held the model, or the refit took longer than [`UNLEARN_WAIT`]: it finishes in the
    /// background.
    Pending,
}

impl RecsService {
    pub fn new(
        store: Arc<dyn Store>,
        consents: Arc<Consents>,
        catalog: CatalogCache,
        events: Arc<EventLog>,
        tasks: Arc<TaskRegistry>,
        background: Background,
        settings: RecsSettings,
    ) -> Arc<Self> {
        let service = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            store,
            consents,
            catalog,
            events,
            tasks,
            background,
            settings,
            models: Mutex::default(),
            locks: Mutex::default(),
            retrain_deadlines: Mutex::default(),
            unlearning_queued: Mutex::default(),
        });
        let recs = service.this.clone();
        service.tasks.register(TRAIN_TASK, move |tenant, progress| match recs.upgrade() {
            Some(recs) => recs.run_train_task(tenant, progress),
            None => Err(EngineError::ShuttingDown),
        });
        service
    }

    /// The model `tenant` is served from now, without waiting; `None` before one is loaded.
    pub fn active(&self, tenant: &TenantId) -> Option<Arc<RecsModel>> {
        self.models.lock().expect("recommendation models poisoned").get(tenant).cloned()
    }

    /// The served model for a request, without waiting: `None` when none is loaded (then call
    /// [`RecsService::model`] on a blocking thread). A model older than the training interval is checked for
    /// new events in the background, and retrained there when it is behind.
    pub fn serving(&self, tenant: &TenantId) -> Option<Arc<RecsModel>> {
        let model = self.active(tenant)?;
        self.retrain_if_stale(tenant, &model);
        self.count_new_baskets_if_due(tenant, &model);
        Some(model)
    }

    /// The current model of `tenant` without waiting; a missing model is loaded (or trained) in the
    /// background. Pages use this so a page view never waits for a load or a fit.
    pub fn active_or_warm_up(&self, tenant: &TenantId) -> Option<Arc<RecsModel>> {
        let cached = self.active(tenant);
        if cached.is_none() {
            let lock = self.lock(tenant);
            let (recs, tenant) = (self.this.clone(), tenant.clone());
            self.background.spawn("recs-warm-up", move || {
                // A load or training already running holds the lock; it will install the model.
                if lock.try_lock().is_err() {
                    return;
                }
                if let Some(recs) = recs.upgrade()
                    && let Err(error) = recs.model(&tenant)
                {
                    tracing::warn!(tenant = %tenant, %error, "could not load the recommendation model");
                }
            });
        }
        cached
    }

    /// The model `tenant` is served from: the one in memory, else the newest stored version, else (the very
    /// first time) a freshly trained one. Blocking; only a tenant without any model ever waits long here.
    pub fn model(&self, tenant: &TenantId) -> EngineResult<Arc<RecsModel>> {
        if let Some(model) = self.serving(tenant) {
            return Ok(model);
        }
        if let Some(model) = self.load_stored(tenant)? {
            return Ok(model);
        }
        // Nothing stored: training is leased across every process sharing the store, before the in-process
        // lock (the order a `train_recs` task takes them in): another replica's first training is waited for,
        // not repeated. Only this path takes the lease, so a load never makes a task skip.
        let _lease = self.wait_for_training_lease(tenant)?;
        let lock = self.lock(tenant);
        let _loading = lock.lock().map_err(EngineError::internal)?;
        if let Some(model) = self.active(tenant) {
            return Ok(model);
        }
        if let Some(model) = self.load_newest(tenant)? {
            return Ok(model);
        }
        tracing::info!(tenant = %tenant, "no stored recommendation model; training the first one");
        match self.train_and_install(tenant, &|_, _| Ok(())) {
            Ok(_) | Err(EngineError::NotEnoughData(_)) => {}
            Err(error) => return Err(error),
        }
        self.active(tenant).ok_or_else(|| EngineError::internal("the trained model was not installed"))
    }

    /// The model in memory or else the newest stored one, loaded under the in-process lock; `None` when nothing
    /// is stored.
    fn load_stored(&self, tenant: &TenantId) -> EngineResult<Option<Arc<RecsModel>>> {
        let lock = self.lock(tenant);
        let _loading = lock.lock().map_err(EngineError::internal)?;
        match self.active(tenant) {
            Some(model) => Ok(Some(model)),
            None => self.load_newest(tenant),
        }
    }

    /// The training lease of `tenant`, waiting while another run (here or in another process) holds it.
    fn wait_for_training_lease(&self, tenant: &TenantId) -> EngineResult<Box<dyn attune_store::TaskLease>> {
        let deadline = std::time::Instant::now() + FIRST_MODEL_WAIT;
        loop {
            if let Some(lease) = self.store.lock_task(tenant, TRAIN_TASK)? {
                return Ok(lease);
            }
            if std::time::Instant::now() > deadline || !self.background.sleep(Duration::from_millis(100)) {
                return Err(EngineError::ModelNotReady("the recommendation model is being trained".into()));
            }
        }
    }

    /// Computes a list with `model` and, unless the list asks not to, queues its impression for the shopper.
    /// The list's `anchor` item, when it names one, must be in the catalog. Blocking.
    pub fn serve(&self, tenant: &TenantId, model: &RecsModel, list: &ValidList) -> EngineResult<ServedList> {
        let ValidList { request, rules, anchor, log_impression } = list;
        let catalog = self.catalog.snapshot(tenant)?;
        if let Some(anchor) = anchor
            && catalog.get(anchor).is_none()
        {
            return Err(EngineError::not_found(format!("item `{anchor}`")));
        }
        let (items, personalization) =
            serve::recommend(self.store.as_ref(), &self.consents, tenant, model, &catalog, request, rules)?;
        let recommendation_id = RecommendationId::generate();
        let shopper = rules.shopper.user.is_some() || rules.shopper.anonymous.is_some();
        if *log_impression && shopper && !items.is_empty() {
            let impression = impression(&rules.shopper, &recommendation_id, request.basis.scenario(), &items);
            // Queued for the batched writer: a request never waits for its impression's disk sync.
            self.events.record(tenant.clone(), impression);
        }
        Ok(ServedList { recommendation_id, model_version: model.version, items, personalization })
    }

    /// Computes a list with `model` without logging anything (the storefront logs its own impressions, the
    /// console's preview none). Blocking.
    pub fn recommend(
        &self,
        tenant: &TenantId,
        model: &RecsModel,
        request: &ListRequest,
        rules: &Rules,
    ) -> EngineResult<Vec<Recommended>> {
        let catalog = self.catalog.snapshot(tenant)?;
        Ok(serve::recommend(self.store.as_ref(), &self.consents, tenant, model, &catalog, request, rules)?.0)
    }

    /// Every scenario for `customer`, anchored on `item` or else on the customer's latest item: the anchor
    /// used and one list (or why there is none) per scenario. Blocking.
    pub fn preview(&self, tenant: &TenantId, customer: &UserId, item: Option<ItemId>) -> EngineResult<Preview> {
        let model = self.model(tenant)?;
        let anchor = match item {
            Some(item) => Some(item),
            None => {
                let timeline =
                    self.store.user_timeline(tenant, customer, &TimelineQuery { before_seq: None, limit: 50 })?;
                let latest = timeline.events.iter().find_map(|e| shopper::acted_on(&e.event.kind).first().copied());
                latest.cloned()
            }
        };
        let catalog = self.catalog.snapshot(tenant)?;
        let anchor_name = anchor.as_ref().map(|a| catalog.get(a).map_or(a.to_string(), |i| i.title.trim().to_string()));
        let rules = Rules { shopper: Shopper { user: Some(customer.clone()), anonymous: None }, ..Default::default() };
        let lists = preview_scenarios(customer, anchor.as_ref(), anchor_name.as_deref())
            .into_iter()
            .map(|(scenario, what, basis)| {
                let result = match basis {
                    None => Err("Give an item id, or pick a customer with item events.".to_string()),
                    Some(basis) => {
                        let request =
                            ListRequest { basis, count: PREVIEW_COUNT, exclude: HashSet::new(), in_stock_only: true };
                        serve::recommend(
                            self.store.as_ref(),
                            &self.consents,
                            tenant,
                            &model,
                            &catalog,
                            &request,
                            &rules,
                        )
                        .map(|(items, _)| items)
                        .map_err(|e| e.to_string())
                    }
                };
                PreviewList { scenario, what, result }
            })
            .collect();
        Ok(Preview { anchor, lists })
    }

    /// The stored versions of `tenant`'s model (the newest kept), newest first. Blocking.
    pub fn versions(&self, tenant: &TenantId) -> EngineResult<Vec<ModelSnapshotInfo>> {
        Ok(self.store.model_snapshots(tenant, MODEL_KIND)?)
    }

    /// Swaps in stored version `version` of `tenant`'s model (a roll-back, or forward again) and returns its
    /// snapshot. Blocking.
    pub fn activate(&self, tenant: &TenantId, version: i64) -> EngineResult<ModelSnapshotInfo> {
        tracing::info!(tenant = %tenant, version, "activating a stored recommendation model");
        let info = self.version_info(tenant, version)?;
        self.check_not_before_erasure(tenant, &info)?;
        self.install_stored(tenant, &info)?;
        // Every replica, and this one after a restart, serves the same version until the next training.
        self.store.pin_model_version(tenant, MODEL_KIND, version)?;
        Ok(info)
    }

    /// Stored version `version` of `tenant`'s model, without its payload.
    fn version_info(&self, tenant: &TenantId, version: i64) -> EngineResult<ModelSnapshotInfo> {
        let found = self.versions(tenant)?.into_iter().find(|info| info.version == version);
        found.ok_or_else(|| EngineError::not_found(format!("model version {version}")))
    }

    /// Decodes stored version `info` and swaps it in, without pinning it.
    fn install_stored(&self, tenant: &TenantId, info: &ModelSnapshotInfo) -> EngineResult<()> {
        let version = info.version;
        let not_found = || EngineError::not_found(format!("model version {version}"));
        let payload = self.store.model_snapshot_payload(tenant, MODEL_KIND, version)?.ok_or_else(not_found)?;
        // A version stored by an older release (another payload format) or damaged cannot be served.
        let fitted = decode(&payload)
            .map_err(|e| EngineError::Conflict(format!("model version {version} cannot be served: {e}")))?;
        self.install(tenant, version, fitted, unlearned_of(info));
        Ok(())
    }

    /// Refuses to serve stored `info` again when it was trained before a shopper was erased.
    fn check_not_before_erasure(&self, tenant: &TenantId, info: &ModelSnapshotInfo) -> EngineResult<()> {
        let last_erasure = self.store.erasures(tenant)?.into_iter().map(|(_, at)| at).max();
        match last_erasure {
            Some(erased) if info.created_at < erased => Err(EngineError::Conflict(format!(
                "model version {} was trained before a shopper was erased and cannot serve again",
                info.version
            ))),
            _ => Ok(()),
        }
    }

    /// Stored `version` was chosen to serve (here or in another process): swaps it in when `tenant`'s model is
    /// loaded here and another version serves. Blocking.
    pub fn pinned_version_announced(&self, tenant: &TenantId, kind: &str, version: i64) -> EngineResult<()> {
        if kind != MODEL_KIND || self.active(tenant).is_none_or(|model| model.version == version) {
            return Ok(());
        }
        let lock = self.lock(tenant);
        let _loading = lock.lock().map_err(EngineError::internal)?;
        self.install_stored(tenant, &self.version_info(tenant, version)?)
    }

    /// A version of model `kind` was stored (here or by another process): swaps it in when `tenant`'s model is
    /// loaded here and older. Blocking.
    pub fn stored_version_announced(&self, tenant: &TenantId, kind: &str, version: i64) -> EngineResult<()> {
        if kind != MODEL_KIND || self.active(tenant).is_none_or(|model| model.version >= version) {
            return Ok(());
        }
        let lock = self.lock(tenant);
        let _loading = lock.lock().map_err(EngineError::internal)?;
        // Only swapped in, not pinned: pinning here would race with the next save, which clears pins.
        if self.active(tenant).is_some_and(|model| model.version < version) {
            self.install_stored(tenant, &self.version_info(tenant, version)?)?;
        }
        Ok(())
    }

    /// Swaps in the pinned version, or else the newest stored one when it is newer, when `tenant`'s model is
    /// loaded here (after changes may have been missed). Blocking.
    pub fn reload_newest(&self, tenant: &TenantId) -> EngineResult<()> {
        if self.active(tenant).is_none() {
            return Ok(());
        }
        if let Some(pinned) = self.store.pinned_model_version(tenant, MODEL_KIND)? {
            return self.pinned_version_announced(tenant, MODEL_KIND, pinned);
        }
        match self.store.model_snapshots(tenant, MODEL_KIND)?.first() {
            Some(newest) => self.stored_version_announced(tenant, MODEL_KIND, newest.version),
            None => Ok(()),
        }
    }

    /// At start-up: for every tenant with events, loads its newest stored model (retraining in the background
    /// when it is behind) or, when none is stored, starts a `train_recs` task.
    pub fn load_at_startup(&self, tenants: &[TenantId]) {
        for tenant in tenants {
            if self.background.is_stopping() {
                return;
            }
            let lock = self.lock(tenant);
            let Ok(_loading) = lock.lock() else { continue };
            let loaded = match self.active(tenant) {
                Some(_) => Ok(true),
                None => self.load_newest(tenant).map(|model| model.is_some()),
            };
            match loaded {
                Ok(true) => {}
                Ok(false) => self.tasks.start_now(tenant, TRAIN_TASK),
                Err(error) => tracing::warn!(tenant = %tenant, %error, "cannot load a stored recommendation model"),
            }
        }
    }

    /// The lock held while `tenant`'s model is loaded or trained.
    fn lock(&self, tenant: &TenantId) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().expect("recommendation locks poisoned");
        locks.entry(tenant.clone()).or_default().clone()
    }

    /// Puts a decoded version of `tenant`'s model in front of requests; when erased data was unlearned from
    /// it, a full training is due by the recorded deadline.
    fn install(
        &self,
        tenant: &TenantId,
        version: i64,
        fitted: FittedRecs,
        unlearned: Option<Unlearned>,
    ) -> Arc<RecsModel> {
        let loaded_at = Timestamp::now();
        let next_check_ms = match self.settings.train_interval {
            Some(interval) => loaded_at.millis().saturating_add(millis(interval)),
            None => i64::MAX,
        };
        let retrain_by = unlearned.map(|u| u.factors_retrained_by);
        let model = Arc::new(RecsModel::new(version, loaded_at, next_check_ms, fitted, retrain_by));
        self.models.lock().expect("recommendation models poisoned").insert(tenant.clone(), model.clone());
        if let Some(deadline) = retrain_by {
            self.retrain_at(tenant, deadline);
        }
        tracing::info!(tenant = %tenant, version, events_through_seq = model.events_through_seq, "recommendation model swapped in");
        model
    }

    /// Loads the pinned or else the newest readable stored version of `tenant`'s model and swaps it in; `None` when none is
    /// stored. When the event log has moved past it, a `train_recs` task is started.
    fn load_newest(&self, tenant: &TenantId) -> EngineResult<Option<Arc<RecsModel>>> {
        let mut versions = self.store.model_snapshots(tenant, MODEL_KIND)?;
        // A pinned version (a roll-back) serves before the newest.
        if let Some(pinned) = self.store.pinned_model_version(tenant, MODEL_KIND)?
            && let Some(at) = versions.iter().position(|info| info.version == pinned)
        {
            let info = versions.remove(at);
            versions.insert(0, info);
        }
        for info in versions {
            let Some(payload) = self.store.model_snapshot_payload(tenant, MODEL_KIND, info.version)? else { continue };
            match decode(&payload) {
                Ok(fitted) => {
                    let model = self.install(tenant, info.version, fitted, unlearned_of(&info));
                    if is_behind(self.store.as_ref(), tenant, &model)? {
                        tracing::info!(tenant = %tenant, version = info.version,
                            events_through_seq = info.events_through_seq, "stored model is behind the events; retraining");
                        self.tasks.start_in_background(tenant, TRAIN_TASK);
                    }
                    return Ok(Some(model));
                }
                Err(error) => {
                    tracing::warn!(tenant = %tenant, version = info.version, %error, "skipping an unreadable model snapshot")
                }
            }
        }
        Ok(None)
    }

    /// Trains a new version and swaps it in; returns the summary. With too little data nothing is stored and
    /// the answer is `insufficient_data`; a tenant no stored version serves gets an unstored fit meanwhile.
    fn train_and_install(
        &self,
        tenant: &TenantId,
        report: &dyn Fn(&str, f64) -> training::StageResult,
    ) -> EngineResult<String> {
        match train_with_checkpoints(self.store.as_ref(), tenant, &self.settings.training, report) {
            Ok(Trained { info, metrics, model }) => {
                self.install(tenant, info.version, model, metrics.unlearned);
                Ok(summary(&info, &metrics))
            }
            Err(error @ TrainError::NotEnoughData(_)) => {
                if self.active(tenant).is_none_or(|model| model.version == UNSTORED_VERSION) {
                    let fitted = training::fit_unstored(self.store.as_ref(), tenant, &self.settings.training)?;
                    tracing::info!(tenant = %tenant, %error, "serving an unstored recommendation model");
                    self.install(tenant, UNSTORED_VERSION, fitted, None);
                }
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The `train_recs` task. A scheduled run skips a tenant whose served model has seen every event.
    fn run_train_task(&self, tenant: &TenantId, progress: &TaskProgress<'_>) -> EngineResult<String> {
        let lock = self.lock(tenant);
        let _training = lock.lock().map_err(EngineError::internal)?;
        if progress.trigger() == TaskTrigger::Schedule
            && let Some(current) = self.active(tenant)
            && current.retrain_by.is_none()
            && !is_behind(self.store.as_ref(), tenant, &current)?
        {
            return Ok(format!("version {} has seen every event training uses; nothing to train", current.version));
        }
        self.train_and_install(tenant, &|stage, fraction| {
            progress.report(stage, fraction);
            progress.checkpoint().map_err(|_| training::TrainError::Stopped)
        })
    }

    /// Called with the model a request is served from: once the model is older than the training interval
    /// (and then at most once per interval), a background check looks for new events that training uses and
    /// starts a `train_recs` task when there are some. The request never waits for either.
    fn retrain_if_stale(&self, tenant: &TenantId, model: &Arc<RecsModel>) {
        let Some(interval) = self.settings.train_interval else { return };
        if !live::claim_due(&model.next_check_ms, Timestamp::now().millis(), millis(interval)) {
            return;
        }
        let (store, tasks, tenant, model) = (self.store.clone(), self.tasks.clone(), tenant.clone(), model.clone());
        self.background.spawn("recs-stale-check", move || match is_behind(store.as_ref(), &tenant, &model) {
            Ok(true) => {
                tracing::info!(tenant = %tenant, version = model.version, "served model is stale; training in the background");
                tasks.start_in_background(&tenant, TRAIN_TASK);
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(tenant = %tenant, %error, "cannot check whether the model is stale"),
        });
    }
}

/// Between trainings (see [`live`]): the served model's live basket counts follow the log.
impl RecsService {
    /// Called with the model a request is served from: at most once per [`live::LIVE_REFRESH`], a background
    /// catch-up counts the baskets of the orders logged since. The request never waits for it.
    fn count_new_baskets_if_due(&self, tenant: &TenantId, model: &Arc<RecsModel>) {
        if !model.live.claim_refresh(Timestamp::now().millis()) {
            return;
        }
        let (store, tenant, model) = (self.store.clone(), tenant.clone(), model.clone());
        self.background.spawn("recs-live-baskets", move || {
            match model.live.catch_up(store.as_ref(), &tenant, &model.items) {
                Ok(0) => {}
                Ok(events) => {
                    tracing::debug!(tenant = %tenant, version = model.version, events, "live baskets counted")
                }
                Err(error) => tracing::warn!(tenant = %tenant, %error, "cannot count the new baskets"),
            }
        });
    }
}

/// Unlearning (see [`unlearn`]): after an erasure or a retention purge, the served model forgets the data.
impl RecsService {
    /// Takes data that left `tenant`'s log out of the served model: its count-based parts are fitted again
    /// from the log, the result is stored as a new version (so every process swaps it in) and served. Runs on a
    /// thread of its own, after any training or load holding the model, and waits for it at most
    /// [`UNLEARN_WAIT`]; past that (or while shutting down) the answer is [`Unlearning::Pending`] and it
    /// finishes in the background. The served model's live basket counts start again at once. Blocking.
    pub fn unlearn(&self, tenant: &TenantId) -> EngineResult<Unlearning> {
        if let Some(model) = self.active(tenant) {
            model.live.forget();
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        self.unlearn_in_background(tenant, sender);
        match receiver.recv_timeout(UNLEARN_WAIT) {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(error)) => Err(EngineError::internal(error)),
            Err(_) => Ok(Unlearning::Pending),
        }
    }

    /// Queues an unlearning of `tenant` that answers `waiter`. An unlearning still waiting for the model's lock
    /// takes the waiter and covers this change too (it scans the log once it has the lock); otherwise a new one
    /// starts.
    fn unlearn_in_background(&self, tenant: &TenantId, waiter: UnlearnWaiter) {
        {
            let mut queued = self.unlearning_queued.lock().expect("unlearning queue poisoned");
            if let Some(waiters) = queued.get_mut(tenant) {
                waiters.push(waiter);
                return;
            }
            queued.insert(tenant.clone(), vec![waiter]);
        }
        let (recs, queued_tenant, lock) = (self.this.clone(), tenant.clone(), self.lock(tenant));
        let spawned = self.background.spawn("recs-unlearn", move || {
            let tenant = queued_tenant;
            let Ok(_held) = lock.lock() else { return };
            let Some(recs) = recs.upgrade() else { return };
            let waiters = recs.unlearning_queued.lock().expect("unlearning queue poisoned").remove(&tenant);
            let outcome = recs.unlearn_held(&tenant).map_err(|error| error.to_string());
            if let Err(error) = &outcome {
                tracing::warn!(tenant = %tenant, %error, "cannot unlearn erased data");
            }
            for waiter in waiters.unwrap_or_default() {
                // A waiter that stopped waiting has dropped its receiver.
                let _ = waiter.send(outcome.clone());
            }
        });
        if !spawned {
            // Shutting down: the waiters' senders go, and they answer at once.
            self.unlearning_queued.lock().expect("unlearning queue poisoned").remove(tenant);
        }
    }

    /// [`RecsService::unlearn`] with the model's lock held.
    fn unlearn_held(&self, tenant: &TenantId) -> EngineResult<Unlearning> {
        let model = match self.active(tenant) {
            Some(model) => model,
            None => match self.load_newest(tenant)? {
                Some(model) => model,
                None => return Ok(Unlearning::NoModel),
            },
        };
        if model.version == UNSTORED_VERSION {
            // Nothing stored and nothing factored to keep: the whole unstored model is fitted again.
            let fitted = training::fit_unstored(self.store.as_ref(), tenant, &self.settings.training)?;
            self.install(tenant, UNSTORED_VERSION, fitted, None);
            return Ok(Unlearning::Done { version: UNSTORED_VERSION, factors_retrained_by: None });
        }
        let clock = std::time::Instant::now();
        let info = self.version_info(tenant, model.version).ok();
        let unlearned =
            unlearned_now(info.as_ref().and_then(unlearned_of), self.settings.training.retrain_after_erasure);
        let fitted = unlearn_erased(self.store.as_ref(), tenant, &model.fitted).map_err(EngineError::from)?;
        let payload = encode(&fitted).map_err(EngineError::internal)?;
        let metrics = unlearned_metrics(info.as_ref(), model.version, unlearned);
        let saved =
            self.store.save_model_snapshot(tenant, MODEL_KIND, fitted.events_through_seq, &metrics, &payload)?;
        let fitted = decode(&payload).map_err(EngineError::internal)?;
        self.install(tenant, saved.version, fitted, Some(unlearned));
        let duration_ms = clock.elapsed().as_millis() as u64;
        tracing::info!(tenant = %tenant, from = model.version, version = saved.version, duration_ms, "erased data unlearned");
        Ok(Unlearning::Done { version: saved.version, factors_retrained_by: Some(unlearned.factors_retrained_by) })
    }

    /// Starts a full training of `tenant` at `deadline` (after an erasure), unless the served model no longer
    /// needs it then. One waiting thread per tenant and deadline; an earlier deadline gets its own.
    fn retrain_at(&self, tenant: &TenantId, deadline: Timestamp) {
        {
            let mut deadlines = self.retrain_deadlines.lock().expect("retrain deadlines poisoned");
            if deadlines.get(tenant).is_some_and(|waiting| *waiting <= deadline) {
                return;
            }
            deadlines.insert(tenant.clone(), deadline);
        }
        let (recs, tenant, background) = (self.this.clone(), tenant.clone(), self.background.clone());
        self.background.spawn("recs-retrain-deadline", move || {
            let wait = (deadline.millis() - Timestamp::now().millis()).max(0) as u64;
            if !background.sleep(Duration::from_millis(wait)) {
                return;
            }
            let Some(recs) = recs.upgrade() else { return };
            {
                let mut deadlines = recs.retrain_deadlines.lock().expect("retrain deadlines poisoned");
                if deadlines.get(&tenant) == Some(&deadline) {
                    deadlines.remove(&tenant);
                }
            }
            let due = Timestamp::now().millis() + 1_000;
            if recs.active(&tenant).is_some_and(|model| model.retrain_by.is_some_and(|by| by.millis() <= due)) {
                tracing::info!(tenant = %tenant, "retraining: the factor parts held erased data until now");
                recs.tasks.start_now(&tenant, TRAIN_TASK);
            }
        });
    }
}

/// The unlearning record in a stored version's metrics.
fn unlearned_of(info: &ModelSnapshotInfo) -> Option<Unlearned> {
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(default)]
        unlearned: Option<Unlearned>,
    }
    serde_json::from_str::<Record>(&info.metrics).ok()?.unlearned
}

/// The metrics of an unlearned version: those of the version it was made from, with the unlearning recorded.
fn unlearned_metrics(from: Option<&ModelSnapshotInfo>, from_version: i64, unlearned: Unlearned) -> String {
    let mut metrics: serde_json::Map<String, serde_json::Value> =
        from.and_then(|info| serde_json::from_str(&info.metrics).ok()).unwrap_or_default();
    metrics.insert("unlearned".into(), serde_json::to_value(unlearned).unwrap_or_default());
    metrics.insert("unlearned_from_version".into(), from_version.into());
    serde_json::Value::Object(metrics).to_string()
}

/// How long a request for a tenant without any model waits for another run's first training.
const FIRST_MODEL_WAIT: Duration = Duration::from_secs(120);

fn millis(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

/// The impression event of a served list.
fn impression(shopper: &Shopper, id: &RecommendationId, scenario: &str, items: &[Recommended]) -> Event {
    Event {
        id: EventId::generate(),
        subject: Subject { user_id: shopper.user.clone(), anonymous_id: shopper.anonymous.clone() },
        session_id: None,
        timestamp: Timestamp::now(),
        channel: Channel::Web,
        store_id: None,
        context: BTreeMap::from([
            ("source".to_string(), ScalarValue::Text("recommendations".to_string())),
            ("scenario".to_string(), ScalarValue::Text(scenario.to_string())),
        ]),
        kind: EventKind::Impression {
            recommendation_id: id.clone(),
            item_ids: items.iter().map(|r| r.item.id.clone()).collect(),
            positions: (0..items.len() as u32).collect(),
        },
    }
}

/// Every scenario of the preview: (name, what it shows, its basis or `None` without an anchor).
fn preview_scenarios(
    customer: &UserId,
    anchor: Option<&ItemId>,
    anchor_name: Option<&str>,
) -> Vec<(&'static str, String, Option<Basis>)> {
    let about = |text: &dyn Fn(&str) -> String| anchor_name.map_or("Needs an item".to_string(), text);
    vec![
        ("for_you", "From the customer's recent history".into(), Some(Basis::ForYou(Some(customer.clone())))),
        ("next", "What comes next in the current session and after the ordered history".into(), Some(Basis::Next)),
        ("buy_again", "Items the customer is due to buy again".into(), Some(Basis::BuyAgain)),
        ("recently_viewed", "The customer's latest viewed items".into(), Some(Basis::RecentlyViewed)),
        ("trending", "Trending, then popular items".into(), Some(Basis::Trending)),
        ("similar", about(&|n| format!("Items similar to {n}")), anchor.map(|a| Basis::Similar(vec![a.clone()]))),
        ("bought_together", about(&|n| format!("Often bought with {n}")), anchor.cloned().map(Basis::BoughtTogether)),
        (
            "complete_cart",
            about(&|n| format!("A cart holding {n}")),
            anchor.map(|a| Basis::CompleteCart(vec![a.clone()])),
        ),
    ]
}

/// The console's preview of every scenario for one customer.
pub struct Preview {
    /// The item the item-based scenarios are anchored on.
    pub anchor: Option<ItemId>,
    pub lists: Vec<PreviewList>,
}

/// One scenario's preview list, or why there is none.
pub struct PreviewList {
    pub scenario: &'static str,
    pub what: String,
    pub result: Result<Vec<Recommended>, String>,
}
