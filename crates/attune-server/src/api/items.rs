//! Catalog endpoints: upsert one or many items, read, list with paging, delete.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult, ErrorDetail, ErrorKind};
use crate::extract::{Path, Query};
use crate::state::{AppState, blocking};
use attune_core::{Item, ItemId, ItemInput, Timestamp};
use attune_engine::EngineError;
use attune_store::ItemQuery;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most items in one batch upsert.
pub const MAX_ITEMS_PER_BATCH: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemUpserted {
    pub item: Item,
    /// True when the item did not exist before.
    pub created: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBatch {
    pub items: Vec<ItemInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemBatchUpserted {
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemListParams {
    /// Case-insensitive substring of id or title.
    pub q: Option<String>,
    /// Only items with this category level.
    pub category: Option<String>,
    /// Cursor: the `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    pub items: Vec<Item>,
    pub total: u64,
    pub next_after: Option<String>,
}

fn parse_path_item(id: String) -> ApiResult<ItemId> {
    Ok(ItemId::parse_field("id", id)?)
}

/// Create or replace one item.
#[utoipa::path(put, path = "/v1/items/{id}", tag = "catalog", request_body = ItemInput,
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = ItemUpserted), (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn put_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<ItemUpserted>> {
    caller.require_secret()?;
    let id = parse_path_item(id)?;
    let mut input: ItemInput = parse_json(&body)?;
    match &input.id {
        Some(body_id) if body_id != id.as_str() => {
            return Err(ApiError::new(ErrorKind::Validation("id_mismatch"), "the body's `id` differs from the path's"));
        }
        _ => input.id = Some(id.to_string()),
    }
    let item = Item::parse(input, Timestamp::now())?;
    let (item, created) = state
        .run(move |engine| {
            let counts = engine.upsert_items(&caller.tenant, std::slice::from_ref(&item))?;
            let stored = engine.store().item(&caller.tenant, &item.id)?;
            let stored = stored.ok_or_else(|| EngineError::internal("item vanished after upsert"))?;
            Ok((stored, counts.created == 1))
        })
        .await?;
    Ok(Json(ItemUpserted { item, created }))
}

/// Create or replace up to 10,000 items. All are validated first; if any is invalid, none is stored.
#[utoipa::path(post, path = "/v1/items", tag = "catalog", request_body = ItemBatch,
    responses((status = 200, body = ItemBatchUpserted), (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn post_items(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<ItemBatchUpserted>> {
    caller.require_secret()?;
    let engine = state.engine.clone();
    let counts = blocking(move || {
        let batch: ItemBatch = parse_json(&body)?;
        if batch.items.len() > MAX_ITEMS_PER_BATCH {
            return Err(ApiError::new(
                ErrorKind::BatchTooLarge,
                format!("{} items in one batch; the limit is {MAX_ITEMS_PER_BATCH}", batch.items.len()),
            ));
        }
        let now = Timestamp::now();
        let mut items = Vec::with_capacity(batch.items.len());
        let mut problems = Vec::new();
        for (index, input) in batch.items.into_iter().enumerate() {
            match Item::parse(input, now) {
                Ok(item) => items.push(item),
                Err(e) => problems.push(ErrorDetail {
                    index: Some(index),
                    field: e.field,
                    code: e.code.to_string(),
                    message: e.message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(invalid_batch("items", problems));
        }
        Ok(engine.upsert_items(&caller.tenant, &items)?)
    })
    .await?;
    Ok(Json(ItemBatchUpserted { created: counts.created, updated: counts.updated }))
}

/// The error for a batch with invalid entries: the first few problems in detail.
pub(crate) fn invalid_batch(what: &str, mut problems: Vec<ErrorDetail>) -> ApiError {
    let total = problems.len();
    let first = &problems[0];
    let message = format!(
        "{total} of the {what} are invalid, nothing was stored; first: {what}[{}].{}: {}",
        first.index.unwrap_or(0),
        first.field,
        first.message
    );
    problems.truncate(100);
    ApiError::new(ErrorKind::InvalidBatch, message).with_details(problems)
}

/// Read one item.
#[utoipa::path(get, path = "/v1/items/{id}", tag = "catalog", params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = Item), (status = 404, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_item(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Item>> {
    caller.require_secret()?;
    let id = parse_path_item(id)?;
    let store = state.store().clone();
    let found = blocking(move || Ok(store.item(&caller.tenant, &id)?)).await?;
    found.map(Json).ok_or_else(|| ApiError::not_found("item"))
}

/// List items in id order, optionally filtered.
#[utoipa::path(get, path = "/v1/items", tag = "catalog", params(ItemListParams),
    responses((status = 200, body = ItemList)), security(("secret_key" = [])))]
pub async fn list_items(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ItemListParams>,
) -> ApiResult<Json<ItemList>> {
    caller.require_secret()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid_parameter("`limit` must be between 1 and 1000"));
    }
    let store = state.store().clone();
    let query = ItemQuery { search: params.q, category: params.category, after: params.after, limit };
    let page = blocking(move || Ok(store.list_items(&caller.tenant, &query)?)).await?;
    Ok(Json(ItemList { items: page.items, total: page.total, next_after: page.next_after }))
}

/// Delete one item.
#[utoipa::path(delete, path = "/v1/items/{id}", tag = "catalog", params(("id" = String, Path, description = "Item id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)), security(("secret_key" = [])))]
pub async fn delete_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_secret()?;
    let id = parse_path_item(id)?;
    let deleted = state.run(move |engine| engine.delete_item(&caller.tenant, &id)).await?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found("item")) }
}
