//! Background task endpoints: start a task (`POST /v1/tasks`), list the tenant's tasks and follow one's
//! progress (`GET /v1/tasks`, `GET /v1/tasks/{id}`). The work itself runs in [`crate::tasks`].

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tasks::{TaskKind, TaskRecord, TaskTrigger, start_task};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /v1/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub kind: TaskKind,
}

/// The answer to `POST /v1/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStarted {
    /// False when a task of this kind was already running for the tenant; `task` is that one.
    pub started: bool,
    pub task: TaskRecord,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskRecord>,
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
    let (task, started) = start_task(&state, &caller.tenant, request.kind, TaskTrigger::Request);
    let status = if started { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(TaskStarted { started, task })))
}

/// The tenant's recent background tasks (scheduled and requested), newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", responses((status = 200, body = TaskList)),
    security(("secret_key" = [])))]
pub async fn list_tasks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TaskList>> {
    caller.require_secret()?;
    Ok(Json(TaskList { tasks: state.tasks.list(&caller.tenant) }))
}

/// One task with its stage, progress and outcome.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskRecord), (status = 404, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskRecord>> {
    caller.require_secret()?;
    state.tasks.get(&caller.tenant, &id).map(Json).ok_or_else(|| ApiError::not_found("task"))
}
