//! Background tasks: long work that must never block a request handler (refreshing a tenant's analytics and
//! forecasts; later model training) runs on a blocking thread, started on demand (`POST /v1/tasks`) or by the
//! scheduler, with its progress and outcome kept in memory for `GET /v1/tasks` and the console.
//!
//! Rules:
//! * at most one task of a kind runs per tenant; asking for a second one returns the running one;
//! * the registry keeps the latest [`KEPT_RECORDS`] records (all tenants), newest first;
//! * a task's outcome is also logged (`task finished` / `task failed` with its id, kind and tenant).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use attune_core::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Records kept in memory, all tenants together.
pub const KEPT_RECORDS: usize = 200;

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Rescan the event log, refit the customer model, forecast demand (total and per item) and compute the
    /// reorder suggestions with the default policy.
    Forecast,
    /// Embed the items that have no stored embedding or whose text changed (batches of 64), then rebuild the
    /// search index.
    EmbedItems,
    /// Rescan the event log, fit every recommendation model, measure it on a leave-one-out holdout, store it as
    /// a new snapshot version and swap it in.
    TrainRecs,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forecast => "forecast",
            Self::EmbedItems => "embed_items",
            Self::TrainRecs => "train_recs",
        }
    }
}

/// Who started a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskTrigger {
    /// An API call or a console button.
    Request,
    /// The scheduler.
    Schedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    Succeeded,
    Failed,
}

/// One task, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskRecord {
    pub id: String,
    pub kind: TaskKind,
    #[serde(skip)]
    pub tenant: Option<TenantId>,
    pub trigger: TaskTrigger,
    pub status: TaskStatus,
    /// What the task is doing now (or did last).
    pub stage: String,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// A one-line account of the result, when it succeeded.
    pub summary: Option<String>,
    /// Why it failed, when it failed.
    pub error: Option<String>,
}

/// The in-memory task registry of one server.
#[derive(Default)]
pub struct TaskRegistry {
    records: Mutex<VecDeque<TaskRecord>>,
}

impl TaskRegistry {
    /// Registers a new running task, or returns the running task of the same kind and tenant (`false`).
    fn begin(&self, tenant: &TenantId, kind: TaskKind, trigger: TaskTrigger) -> (TaskRecord, bool) {
        let mut records = self.records.lock().expect("task registry poisoned");
        if let Some(running) = records
            .iter()
            .find(|r| r.kind == kind && r.status == TaskStatus::Running && r.tenant.as_ref() == Some(tenant))
        {
            return (running.clone(), false);
        }
        let record = TaskRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            tenant: Some(tenant.clone()),
            trigger,
            status: TaskStatus::Running,
            stage: "starting".to_string(),
            progress: 0.0,
            started_at: Timestamp::now(),
            finished_at: None,
            duration_ms: None,
            summary: None,
            error: None,
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

    /// The tenant's tasks, newest first.
    pub fn list(&self, tenant: &TenantId) -> Vec<TaskRecord> {
        let records = self.records.lock().expect("task registry poisoned");
        records.iter().filter(|r| r.tenant.as_ref() == Some(tenant)).cloned().collect()
    }

    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<TaskRecord> {
        let records = self.records.lock().expect("task registry poisoned");
        records.iter().find(|r| r.id == id && r.tenant.as_ref() == Some(tenant)).cloned()
    }
}

/// Reports a running task's stage and progress.
pub struct TaskProgress<'a> {
    registry: &'a TaskRegistry,
    id: String,
    trigger: TaskTrigger,
}

impl TaskProgress<'_> {
    /// Who started the task.
    pub fn trigger(&self) -> TaskTrigger {
        self.trigger
    }

    /// Sets the stage and the fraction done (clamped to 0..=1).
    pub fn report(&self, stage: &str, progress: f64) {
        let progress = progress.clamp(0.0, 1.0);
        self.registry.update(&self.id, |r| {
            if r.stage != stage {
                r.stage = stage.to_string();
            }
            r.progress = progress;
        });
    }
}

/// Starts `kind` for `tenant` on a blocking thread and returns at once with its record; when one is running
/// already, returns that one instead (and the flag `false`).
pub fn start_task(state: &AppState, tenant: &TenantId, kind: TaskKind, trigger: TaskTrigger) -> (TaskRecord, bool) {
    let (record, started) = state.tasks.begin(tenant, kind, trigger);
    if !started {
        return (record, false);
    }
    let state = state.clone();
    let tenant = tenant.clone();
    let id = record.id.clone();
    tokio::task::spawn_blocking(move || {
        let clock = Instant::now();
        let progress = TaskProgress { registry: &state.tasks, id: id.clone(), trigger };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&state, &tenant, kind, &progress)))
            .unwrap_or_else(|_| Err(ApiError::internal("the task panicked")));
        let duration_ms = clock.elapsed().as_millis() as u64;
        match &result {
            Ok(summary) => {
                tracing::info!(task = %id, kind = kind.as_str(), tenant = %tenant, duration_ms, summary = %summary, "task finished")
            }
            Err(error) => {
                tracing::warn!(task = %id, kind = kind.as_str(), tenant = %tenant, duration_ms, error = %error.message, "task failed")
            }
        }
        state.tasks.update(&id, |r| {
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
                    r.error = Some(error.message);
                }
            }
        });
    });
    (record, true)
}

fn run(state: &AppState, tenant: &TenantId, kind: TaskKind, progress: &TaskProgress<'_>) -> ApiResult<String> {
    match kind {
        TaskKind::Forecast => crate::insights::run_forecast_task(state, tenant, progress),
        TaskKind::EmbedItems => crate::search::run_embed_task(state, tenant, progress),
        TaskKind::TrainRecs => crate::training::run_train_task(state, tenant, progress),
    }
}

/// Runs `kind` for every tenant with events every `interval`, the first time right after start-up (`after`),
/// until the server stops. Tenants whose previous run is still going are skipped for that round.
pub fn spawn_scheduler(state: AppState, kind: TaskKind, after: Duration, interval: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let store = state.store.clone();
            let tenants = crate::state::blocking(move || {
                let mut with_events = Vec::new();
                for tenant in store.tenants()? {
                    if store.stats(&tenant.id)?.events > 0 {
                        with_events.push(tenant.id);
                    }
                }
                Ok(with_events)
            })
            .await;
            match tenants {
                Ok(tenants) => {
                    for tenant in tenants {
                        start_task(&state, &tenant, kind, TaskTrigger::Schedule);
                    }
                }
                Err(error) => {
                    tracing::warn!(kind = kind.as_str(), error = %error.message, "scheduler cannot list tenants")
                }
            }
        }
    });
}
