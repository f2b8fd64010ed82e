//! Background tasks: long work that must never block a request (refreshing a tenant's analytics, embedding
//! items, training a model) runs on a thread of its own, started on demand or by a scheduler, with its stage,
//! progress and outcome kept in memory for the API and the console.
//!
//! A capability adds a task by registering it ([`TaskRegistry::register`]): a kind name and the work, a
//! closure over the capability's service. Starting a task looks the kind up; nothing here knows what a kind
//! does.
//!
//! Rules:
//! * at most one task of a kind runs per tenant; asking for a second one returns the running one;
//! * across every process sharing the store, too: a run first takes the store's task lease, and ends at once
//!   (`skipped`) when another process holds it;
//! * a scheduled run belongs to an interval slot, which runs once per tenant across all processes
//!   ([`TaskRegistry::start_scheduled`]);
//! * the registry keeps the latest [`KEPT_RECORDS`] records (all tenants), newest first;
//! * a task's outcome is also logged (`task finished` / `task failed` with its id, kind and tenant);
//! * once the engine stops, running tasks end at their next [`TaskProgress::checkpoint`] and no task starts.

use crate::background::Background;
use crate::error::{EngineError, EngineResult};
use attune_core::{TenantId, Timestamp};
use attune_store::{Store, TaskLease};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Records kept in memory, all tenants together.
pub const KEPT_RECORDS: usize = 200;

/// Who started a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTrigger {
    /// An API call or a console button.
    Request,
    /// A scheduler, start-up, or the engine noticing stale state.
    Schedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Succeeded,
    Failed,
}

/// One task run.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: String,
    /// The registered kind, e.g. `train_recs`.
    pub kind: &'static str,
    pub tenant: TenantId,
    pub trigger: TaskTrigger,
    pub status: TaskStatus,
    /// What the task is doing now (or did last).
    pub stage: String,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// A one-line account of the result, when it succeeded.
    pub summary: Option<String>,
    /// Why it failed, when it failed.
    pub error: Option<String>,
    /// The stable code of the failure (`insufficient_data`, `shutting_down`, ...), when it failed.
    pub error_code: Option<&'static str>,
}

/// The work of a task kind: runs on its own thread and returns a one-line summary.
pub type TaskWork = dyn Fn(&TenantId, &TaskProgress<'_>) -> EngineResult<String> + Send + Sync;

/// The task kinds of one engine and their runs.
pub struct TaskRegistry {
    background: Background,
    store: Arc<dyn Store>,
    definitions: RwLock<BTreeMap<&'static str, Arc<TaskWork>>>,
    /// Kinds that run once per interval; their slots are `now / interval`.
    intervals: RwLock<BTreeMap<String, Duration>>,
    records: Arc<Records>,
}

impl TaskRegistry {
    /// A registry whose runs take their leases from `store`.
    pub fn new(background: Background, store: Arc<dyn Store>) -> Self {
        Self {
            background,
            store,
            definitions: RwLock::default(),
            intervals: RwLock::default(),
            records: Arc::default(),
        }
    }

    /// Makes `kind` run at most once per `interval` per tenant (across processes sharing the store), besides runs
    /// asked for by a request or needed at start-up.
    pub fn set_interval(&self, kind: &str, interval: Duration) {
        self.intervals.write().expect("task intervals poisoned").insert(kind.to_string(), interval);
    }

    /// The interval slot `kind` is in now, when it has an interval.
    pub fn slot_now(&self, kind: &str) -> Option<i64> {
        let interval = *self.intervals.read().expect("task intervals poisoned").get(kind)?;
        Some(Timestamp::now().millis() / (interval.as_millis().max(1) as i64))
    }

    /// Adds a task kind: the work one run of it does.
    pub fn register(
        &self,
        kind: &'static str,
        work: impl Fn(&TenantId, &TaskProgress<'_>) -> EngineResult<String> + Send + Sync + 'static,
    ) {
        self.definitions.write().expect("task definitions poisoned").insert(kind, Arc::new(work));
    }

    /// The registered kinds, by name.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.definitions.read().expect("task definitions poisoned").keys().copied().collect()
    }

    /// Starts `kind` for `tenant` on a thread of its own and returns at once with its record; when one is
    /// running already, returns that one instead (and `false`). An unknown kind is `not_found`.
    pub fn start(&self, tenant: &TenantId, kind: &str, trigger: TaskTrigger) -> EngineResult<(TaskRecord, bool)> {
        self.start_with(tenant, kind, trigger, None)
    }

    /// Starts scheduled interval `slot` of `kind` for `tenant` unless it already ran there, in this process or
    /// another sharing the store, or another process is running the task now. A run that dies without
    /// finishing leaves its slot open, so the next call (a scheduler's retry) takes it over.
    pub fn start_scheduled(&self, tenant: &TenantId, kind: &str, slot: i64) -> EngineResult<()> {
        if self.store.task_slot_done(tenant, kind, slot)? {
            return Ok(());
        }
        let Some(lease) = self.store.lock_task(tenant, kind)? else { return Ok(()) };
        // The slot may have been finished between the check and the lease.
        if self.store.task_slot_done(tenant, kind, slot)? {
            return Ok(());
        }
        let (record, started) =
            self.start_with(tenant, kind, TaskTrigger::Schedule, Some(ScheduledLease { lease, slot }))?;
        if !started {
            tracing::debug!(task = %record.id, kind, tenant = %tenant, "a run of this task is still going");
        }
        Ok(())
    }

    fn start_with(
        &self,
        tenant: &TenantId,
        kind: &str,
        trigger: TaskTrigger,
        scheduled: Option<ScheduledLease>,
    ) -> EngineResult<(TaskRecord, bool)> {
        let (kind, work) = {
            let definitions = self.definitions.read().expect("task definitions poisoned");
            let (kind, work) =
                definitions.get_key_value(kind).ok_or_else(|| EngineError::not_found(format!("task kind `{kind}`")))?;
            (*kind, work.clone())
        };
        if self.background.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        let (record, started) = self.records.begin(tenant, kind, trigger);
        if !started {
            return Ok((record, false));
        }
        // Any successful run counts for the slot it ends in, so start-up work is not repeated by the schedule.
        let slot = scheduled.as_ref().map(|s| s.slot).or_else(|| self.slot_now(kind));
        let run = TaskRun {
            records: self.records.clone(),
            background: self.background.clone(),
            store: self.store.clone(),
            scheduled,
            slot,
            id: record.id.clone(),
            tenant: tenant.clone(),
            kind,
            trigger,
        };
        if !self.background.spawn(&format!("task-{kind}"), move || run.execute(work.as_ref())) {
            self.records.finish(&record.id, 0, Err(EngineError::ShuttingDown));
            return Err(EngineError::ShuttingDown);
        }
        Ok((record, true))
    }

    /// Starts `kind` for `tenant` from inside the engine (a schedule, stale state), logging a failure to start
    /// instead of returning it. A kind with an interval runs only if its current slot has not run yet.
    pub fn start_in_background(&self, tenant: &TenantId, kind: &str) {
        let started = match self.slot_now(kind) {
            Some(slot) => self.start_scheduled(tenant, kind, slot),
            None => self.start(tenant, kind, TaskTrigger::Schedule).map(|_| ()),
        };
        match started {
            Ok(()) | Err(EngineError::ShuttingDown) => {}
            Err(error) => tracing::warn!(tenant = %tenant, kind, %error, "task not started"),
        }
    }

    /// Starts `kind` for `tenant` from inside the engine whatever its interval (start-up work that cannot
    /// wait), logging a failure to start instead of returning it.
    pub fn start_now(&self, tenant: &TenantId, kind: &str) {
        match self.start(tenant, kind, TaskTrigger::Schedule) {
            Ok(_) | Err(EngineError::ShuttingDown) => {}
            Err(error) => tracing::warn!(tenant = %tenant, kind, %error, "task not started"),
        }
    }

    /// The tenant's tasks, newest first.
    pub fn list(&self, tenant: &TenantId) -> Vec<TaskRecord> {
        let records = self.records.records.lock().expect("task registry poisoned");
        records.iter().filter(|r| r.tenant == *tenant).cloned().collect()
    }

    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<TaskRecord> {
        let records = self.records.records.lock().expect("task registry poisoned");
        records.iter().find(|r| r.id == id && r.tenant == *tenant).cloned()
    }
}

/// The task records, shared with the threads that run the tasks.
#[derive(Default)]
struct Records {
    records: Mutex<VecDeque<TaskRecord>>,
}

impl Records {
    /// Registers a new running task, or returns the running task of the same kind and tenant (`false`).
    fn begin(&self, tenant: &TenantId, kind: &'static str, trigger: TaskTrigger) -> (TaskRecord, bool) {
        let mut records = self.records.lock().expect("task registry poisoned");
        if let Some(running) =
            records.iter().find(|r| r.kind == kind && r.status == TaskStatus::Running && r.tenant == *tenant)
        {
            return (running.clone(), false);
        }
        let record = TaskRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            tenant: tenant.clone(),
            trigger,
            status: TaskStatus::Running,
            stage: "starting".to_string(),
            progress: 0.0,
            started_at: Timestamp::now(),
            finished_at: None,
            duration_ms: None,
            summary: None,
            error: None,
            error_code: None,
        };
        records.push_front(record.clone());
        while records.len() > KEPT_RECORDS {
            // Drop the oldest finished record; running ones stay.
            match records.iter().rposition(|r| r.status != TaskStatus::Running) {
                Some(index) => {
                    records.remove(index);
                }
                None => break,
            }
        }
        (record, true)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut TaskRecord)) {
        let mut records = self.records.lock().expect("task registry poisoned");
        if let Some(record) = records.iter_mut().find(|r| r.id == id) {
            change(record);
        }
    }

    fn finish(&self, id: &str, duration_ms: u64, result: EngineResult<String>) {
        self.update(id, |r| {
            r.finished_at = Some(Timestamp::now());
            r.duration_ms = Some(duration_ms);
            match result {
                Ok(summary) => {
                    r.status = TaskStatus::Succeeded;
                    r.stage = "done".to_string();
                    r.progress = 1.0;
                    r.summary = Some(summary);
                }
                Err(error) => {
                    r.status = TaskStatus::Failed;
                    r.error_code = Some(error.code());
                    r.error = Some(error.to_string());
                }
            }
        });
    }
}

/// The lease a scheduler took for a run, and the interval slot the run belongs to.
struct ScheduledLease {
    lease: Box<dyn TaskLease>,
    slot: i64,
}

/// Why a run stopped: its lease went with its database connection, and another process may have taken it.
const LEASE_LOST: &str = "the task's lease was lost with its database connection; another process may run it now";

/// Why a run did nothing: another process sharing the store holds the task's lease.
const SKIPPED_ELSEWHERE: &str = "skipped: another process is running this task";

/// One started task, moved onto its thread.
struct TaskRun {
    records: Arc<Records>,
    background: Background,
    store: Arc<dyn Store>,
    scheduled: Option<ScheduledLease>,
    /// The interval slot a success closes.
    slot: Option<i64>,
    id: String,
    tenant: TenantId,
    kind: &'static str,
    trigger: TaskTrigger,
}

impl TaskRun {
    fn execute(mut self, work: &TaskWork) {
        let clock = Instant::now();
        let lease = match self.scheduled.take() {
            Some(ScheduledLease { lease, .. }) => Ok(Some(lease)),
            None => self.store.lock_task(&self.tenant, self.kind),
        };
        let result = match lease {
            Ok(Some(lease)) => self.run_leased(work, lease),
            Ok(None) => Ok(SKIPPED_ELSEWHERE.to_string()),
            Err(error) => Err(error.into()),
        };
        let duration_ms = clock.elapsed().as_millis() as u64;
        let (id, kind, tenant) = (&self.id, self.kind, &self.tenant);
        match &result {
            Ok(summary) => {
                tracing::info!(task = %id, kind, tenant = %tenant, duration_ms, summary = %summary, "task finished")
            }
            Err(error) => tracing::warn!(task = %id, kind, tenant = %tenant, duration_ms, %error, "task failed"),
        }
        self.records.finish(id, duration_ms, result);
    }

    /// Runs the work while holding `lease`; a success closes the run's slot.
    fn run_leased(&self, work: &TaskWork, lease: Box<dyn TaskLease>) -> EngineResult<String> {
        let lease = Mutex::new(lease);
        let progress = TaskProgress { run: self, lease: &lease };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&self.tenant, &progress)))
            .unwrap_or_else(|_| Err(EngineError::internal("the task panicked")));
        if let (Ok(_), Some(slot)) = (&result, self.slot) {
            self.store.finish_task_slot(&self.tenant, self.kind, slot)?;
        }
        drop(lease);
        result
    }
}

/// What a running task sees of itself: reports its stage and progress, and checks whether to stop.
pub struct TaskProgress<'a> {
    run: &'a TaskRun,
    lease: &'a Mutex<Box<dyn TaskLease>>,
}

impl TaskProgress<'_> {
    /// Who started the task.
    pub fn trigger(&self) -> TaskTrigger {
        self.run.trigger
    }

    /// Sets the stage and the fraction done (clamped to 0..=1).
    pub fn report(&self, stage: &str, progress: f64) {
        let progress = progress.clamp(0.0, 1.0);
        self.run.records.update(&self.run.id, |r| {
            if r.stage != stage {
                r.stage = stage.to_string();
            }
            r.progress = progress;
        });
    }

    /// A point where the task may stop: `shutting_down` once the engine stops, and `conflict` once the task's
    /// lease is lost (its database connection was closed, so another process may be running the task now), so
    /// the task ends here with nothing half-written. Call it before storing a result.
    pub fn checkpoint(&self) -> EngineResult<()> {
        if self.run.background.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        if !self.lease.lock().expect("task lease poisoned").still_held() {
            return Err(EngineError::Conflict(LEASE_LOST.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_store::{SqliteOptions, SqliteStore};

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path().join("tasks.sqlite3"), SqliteOptions::default()).unwrap();
        (directory, Arc::new(store))
    }

    fn wait_for(registry: &TaskRegistry, tenant: &TenantId, id: &str) -> TaskRecord {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let record = registry.get(tenant, id).expect("the task is kept");
            if record.status != TaskStatus::Running {
                return record;
            }
            assert!(Instant::now() < deadline, "the task never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_registered_kind_runs_once_per_tenant_at_a_time_and_reports_its_outcome() {
        let (_directory, store) = store();
        let registry = TaskRegistry::new(Background::default(), store);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        registry.register("wait", move |tenant, progress| {
            progress.report("waiting", 0.5);
            gate.lock().unwrap().recv().unwrap();
            Ok(format!("done for {tenant}"))
        });
        let tenant = TenantId::parse_slug("shop").unwrap();
        let (first, started) = registry.start(&tenant, "wait", TaskTrigger::Request).unwrap();
        assert!(started);
        let (second, started_again) = registry.start(&tenant, "wait", TaskTrigger::Request).unwrap();
        assert!(!started_again);
        assert_eq!(second.id, first.id, "the running one is returned");
        assert!(matches!(registry.start(&tenant, "nap", TaskTrigger::Request), Err(EngineError::NotFound(_))));
        release.send(()).unwrap();
        let done = wait_for(&registry, &tenant, &first.id);
        assert_eq!(
            (done.status, done.progress, done.summary.as_deref()),
            (TaskStatus::Succeeded, 1.0, Some("done for shop"))
        );
        assert_eq!(registry.kinds(), vec!["wait"]);
    }

    #[test]
    fn a_stopping_engine_ends_tasks_at_their_checkpoint_and_starts_none() {
        let background = Background::default();
        let (_directory, store) = store();
        let registry = TaskRegistry::new(background.clone(), store);
        registry.register("loop", |_, progress| {
            loop {
                progress.checkpoint()?;
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let tenant = TenantId::parse_slug("shop").unwrap();
        let (record, _) = registry.start(&tenant, "loop", TaskTrigger::Schedule).unwrap();
        background.stop();
        assert_eq!(background.join(Instant::now() + Duration::from_secs(10)), 0);
        let stopped = registry.get(&tenant, &record.id).unwrap();
        assert_eq!(stopped.status, TaskStatus::Failed);
        assert_eq!(stopped.error.as_deref(), Some("the engine is shutting down"));
        assert!(matches!(registry.start(&tenant, "loop", TaskTrigger::Request), Err(EngineError::ShuttingDown)));
    }

    #[test]
    fn a_task_leased_elsewhere_is_skipped_and_a_scheduled_slot_runs_once() {
        let (_directory, store) = store();
        let registry = TaskRegistry::new(Background::default(), store.clone());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = runs.clone();
        registry.register("count", move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok("counted".into())
        });
        let tenant = TenantId::parse_slug("shop").unwrap();
        let held = store.lock_task(&tenant, "count").unwrap().unwrap();
        let (record, _) = registry.start(&tenant, "count", TaskTrigger::Request).unwrap();
        assert_eq!(wait_for(&registry, &tenant, &record.id).summary.as_deref(), Some(SKIPPED_ELSEWHERE));
        registry.start_scheduled(&tenant, "count", 7).unwrap();
        assert!(registry.list(&tenant).len() == 1, "a scheduler does not start a run another process holds");
        drop(held);
        for _ in 0..3 {
            registry.start_scheduled(&tenant, "count", 7).unwrap();
            let newest = registry.list(&tenant)[0].clone();
            wait_for(&registry, &tenant, &newest.id);
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1, "slot 7 ran once");
        assert!(store.task_slot_done(&tenant, "count", 7).unwrap());
        registry.start_scheduled(&tenant, "count", 8).unwrap();
        let newest = registry.list(&tenant)[0].clone();
        wait_for(&registry, &tenant, &newest.id);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2, "the next slot runs again");
    }
}
