//! Recommendation model versions: list the stored snapshots with their offline metrics and which one serves
//! (`GET /v1/models/recs`), and swap a kept version in (`POST /v1/models/recs/{version}/activate`, a
//! roll-back). Training itself is the `train_recs` task (`POST /v1/tasks`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::AppState;
use attune_core::Timestamp;
use attune_engine::recs::model::MODEL_KIND;
use attune_store::ModelSnapshotInfo;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// One stored version of a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersion {
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The last event (sequence number) it was trained on.
    pub events_through_seq: i64,
    pub payload_bytes: u64,
    /// Whether requests are served from this version now.
    pub active: bool,
    /// Offline metrics and settings of the training: `seed`, `events`, `items`, `k`, `eval_users`, `tune_users`,
    /// and `hr`, `ndcg`, `coverage` of `for_you` (item-kNN), `for_you_als` (implicit ALS), `for_you_ease`
    /// (sparse EASE), `for_you_blend` (the three blended with `blend_weights`), `next` and the `popular`
    /// baseline on the reporting half of a leave-one-out holdout; `for_you_serves` (`item_knn`, `als`, `ease`
    /// or `blend`) is the best NDCG on the tuning half (`tuning_ndcg`).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

/// The answer to `GET /v1/models/recs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersions {
    pub kind: &'static str,
    /// The version requests are served from; `None` before the tenant's model is loaded.
    pub active_version: Option<i64>,
    /// Newest first.
    pub versions: Vec<ModelVersion>,
}

fn version_view(info: ModelSnapshotInfo, active: Option<i64>) -> ModelVersion {
    ModelVersion {
        version: info.version,
        created_at: info.created_at,
        events_through_seq: info.events_through_seq,
        payload_bytes: info.payload_bytes,
        active: active == Some(info.version),
        metrics: serde_json::from_str(&info.metrics).unwrap_or(serde_json::Value::Null),
    }
}

/// The stored versions of the caller's recommendation model (the newest ten), with their metrics and which
/// one serves.
pub(crate) async fn model_versions(state: &AppState, tenant: &attune_core::TenantId) -> ApiResult<ModelVersions> {
    let lookup = tenant.clone();
    let stored = state.run(move |engine| engine.recs().versions(&lookup)).await?;
    let active = state.engine.recs().active(tenant).map(|m| m.version);
    Ok(ModelVersions {
        kind: MODEL_KIND,
        active_version: active,
        versions: stored.into_iter().map(|info| version_view(info, active)).collect(),
    })
}

/// The stored versions of the recommendation model, newest first, with their offline metrics.
#[utoipa::path(get, path = "/v1/models/recs", tag = "models", responses((status = 200, body = ModelVersions)),
    security(("secret_key" = [])))]
pub async fn list_recs_models(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ModelVersions>> {
    caller.require_secret()?;
    Ok(Json(model_versions(&state, &caller.tenant).await?))
}

/// Serve recommendations from a stored version (roll back, or forward again) until the next training or
/// restart. Requests in flight finish with the model they started with.
#[utoipa::path(post, path = "/v1/models/recs/{version}/activate", tag = "models",
    params(("version" = i64, Path, description = "Model version", minimum = 1)),
    responses((status = 200, body = ModelVersion), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn activate_recs_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> ApiResult<Json<ModelVersion>> {
    caller.require_secret()?;
    let version: i64 = version
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid_parameter("the version is a positive whole number"))?;
    let info = state.run(move |engine| engine.recs().activate(&caller.tenant, version)).await?;
    Ok(Json(version_view(info, Some(version))))
}
