//! Background task endpoints: start a task (`POST /v1/tasks`), list the tenant's tasks and follow one's
//! progress (`GET /v1/tasks`, `GET /v1/tasks/{id}`). The tasks themselves are registered by the engine's
//! services.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::Path;
use crate::state::AppState;
use attune_core::Timestamp;
use attune_engine::tasks::{TaskRecord, TaskStatus, TaskTrigger};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /v1/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// `forecast` (refit the analytics and the reorder list), `embed_items` (embed new and changed items for
    /// search), `train_recs` (train the recommendation model) or `retention` (delete what the retention policy
    /// no longer keeps).
    #[schema(pattern = "^(forecast|embed_items|train_recs|retention)$")]
    pub kind: String,
}

/// One task, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub kind: &'static str,
    /// `request` (an API call or a console button) or `schedule` (a scheduler, start-up or stale state).
    pub trigger: &'static str,
    /// `running`, `succeeded` or `failed`.
    pub status: &'static str,
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
    /// The stable code of the failure, e.g. `insufficient_data` for a `train_recs` on too little data.
    pub error_code: Option<&'static str>,
}

impl From<TaskRecord> for TaskView {
    fn from(record: TaskRecord) -> Self {
        Self {
            id: record.id,
            kind: record.kind,
            trigger: trigger_name(record.trigger),
            status: status_name(record.status),
            stage: record.stage,
            progress: record.progress,
            started_at: record.started_at,
            finished_at: record.finished_at,
            duration_ms: record.duration_ms,
            summary: record.summary,
            error: record.error,
            error_code: record.error_code,
        }
    }
}

pub fn trigger_name(trigger: TaskTrigger) -> &'static str {
    match trigger {
        TaskTrigger::Request => "request",
        TaskTrigger::Schedule => "schedule",
    }
}

pub fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::Succeeded => "succeeded",
        TaskStatus::Failed => "failed",
    }
}

/// The answer to `POST /v1/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStarted {
    /// False when a task of this kind was already running for the tenant; `task` is that one.
    pub started: bool,
    pub task: TaskView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskView>,
}

/// Start a background task for the caller's tenant: 202 with the new task, or 200 with the task of the same
/// kind that is already running. Follow it with `GET /v1/tasks/{id}`.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = TaskRequest,
    responses((status = 202, body = TaskStarted), (status = 200, body = TaskStarted),
        (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn post_task(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<(StatusCode, Json<TaskStarted>)> {
    caller.require_secret()?;
    let request: TaskRequest = parse_json(&body)?;
    let tasks = state.engine.tasks();
    let kinds = tasks.kinds();
    if !kinds.contains(&request.kind.as_str()) {
        let expected: Vec<String> = kinds.iter().map(|kind| format!("`{kind}`")).collect();
        let message = format!("unknown task kind `{}`, expected one of {}", request.kind, expected.join(", "));
        return Err(ApiError::new(ErrorKind::InvalidBody, message));
    }
    let (task, started) = tasks.start(&caller.tenant, &request.kind, TaskTrigger::Request)?;
    let status = if started { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(TaskStarted { started, task: task.into() })))
}

/// The tenant's recent background tasks (scheduled and requested), newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", responses((status = 200, body = TaskList)),
    security(("secret_key" = [])))]
pub async fn list_tasks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TaskList>> {
    caller.require_secret()?;
    let tasks = state.engine.tasks().list(&caller.tenant).into_iter().map(TaskView::from).collect();
    Ok(Json(TaskList { tasks }))
}

/// One task with its stage, progress and outcome.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskView), (status = 404, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    caller.require_secret()?;
    let task = state.engine.tasks().get(&caller.tenant, &id).ok_or_else(|| ApiError::not_found("task"))?;
    Ok(Json(task.into()))
}
