//! Event ingestion: one event, or a batch of up to 10,000 applied all-or-nothing. An event is
//! acknowledged only after it is durably stored; retrying with the same event ids stores nothing twice.
//! Event times outside the server's accepted window (default: ten years back to one day ahead) are
//! rejected like any other invalid field.

use crate::api::items::invalid_batch;
use crate::auth::Caller;
use crate::body::{LimitedBody, json_error, parse_json, parse_json_borrowed};
use crate::error::{ApiError, ApiResult, ErrorDetail, ErrorKind};
use crate::state::{AppState, blocking};
use attune_core::{
    ApiKeyKind, Event, EventInput, EventKind, EventTimeWindow, PUBLIC_EVENT_ID_PREFIX, TenantId, Timestamp, UserId,
    ValidationError,
};
use attune_store::Store;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventAccepted {
    pub event_id: String,
    /// True when an event with this id was already stored (a retry); nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAccepted {
    /// Events newly stored.
    pub accepted: u64,
    /// Events skipped because their id was already stored.
    pub duplicates: u64,
    /// The id of every event of the batch, in order (generated where the client gave none).
    pub event_ids: Vec<String>,
}

/// The body of `POST /v1/events/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch<'a> {
    #[serde(borrow)]
    #[schema(value_type = Vec<EventInput>)]
    pub events: Vec<&'a RawValue>,
}

/// Parses an event and checks its time against the accepted window.
fn parse_event(input: EventInput, now: Timestamp, window: &EventTimeWindow) -> Result<Event, ValidationError> {
    let event = Event::parse(input, now)?;
    window.check(event.timestamp, now)?;
    Ok(event)
}

/// What a key may send. A secret key (the shop's backend): anything, with ids outside the public namespace. A
/// public key (a browser or app): events of its token's user or of anonymous visitors, no purchases or returns
/// (a browser could claim any order), and its event ids go into the public namespace, so they can never take an
/// id the backend will send.
fn scope_event(caller: &Caller, event: Event) -> ApiResult<Event> {
    if caller.kind == ApiKeyKind::Secret {
        if event.id.is_public() {
            return Err(ValidationError::new(
                "event_id",
                "reserved_event_id",
                format!(
                    "event ids starting with `{PUBLIC_EVENT_ID_PREFIX}` are those of events sent with a public key"
                ),
            )
            .into());
        }
        return Ok(event);
    }
    if let Some(user) = &event.subject.user_id {
        caller.require_user(user)?;
    }
    if matches!(event.kind, EventKind::Purchase { .. } | EventKind::Return { .. }) {
        return Err(ApiError::forbidden(format!(
            "`{}` events need a secret key: send orders and returns from your backend",
            event.kind.event_type().as_str()
        )));
    }
    Ok(Event { id: event.id.into_public()?, ..event })
}

/// Refuses `events` when any names an erased user: the shop must register them again first. Blocking.
fn refuse_erased_users(store: &dyn Store, tenant: &TenantId, events: &[Event]) -> ApiResult<()> {
    let users: Vec<&UserId> = events.iter().filter_map(|e| e.subject.user_id.as_ref()).collect();
    if users.is_empty() {
        return Ok(());
    }
    let erased = store.erased_users(tenant, &users)?;
    if erased.is_empty() {
        return Ok(());
    }
    let problems = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.subject.user_id.as_ref().is_some_and(|u| erased.contains(u)))
        .map(|(index, e)| ErrorDetail {
            index: Some(index),
            field: "user_id".into(),
            code: "user_erased".into(),
            message: format!("user `{}` was erased", e.subject.user_id.as_ref().map_or("", |u| u.as_str())),
        })
        .collect();
    Err(user_erased(problems))
}

fn user_erased(details: Vec<ErrorDetail>) -> ApiError {
    let message = "the event names a user who was erased; register them again with PUT /v1/users/{id} first";
    ApiError::new(ErrorKind::UserErased, message).with_details(details)
}

/// Send one event.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventInput,
    responses((status = 200, body = EventAccepted), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = [])))]
pub async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<EventAccepted>> {
    let input: EventInput = parse_json(&body).inspect_err(|_| {
        state.metrics.events_rejected.inc();
    })?;
    let event = parse_event(input, Timestamp::now(), &state.options.event_time_window).inspect_err(|_| {
        state.metrics.events_rejected.inc();
    })?;
    let event = scope_event(&caller, event)?;
    let event_id = event.id.to_string();
    let store = state.store().clone();
    // The store refuses an erased user's event inside the append's transaction and says so.
    let outcome = blocking(move || Ok(store.append_events(&caller.tenant, std::slice::from_ref(&event))?)).await?;
    if outcome.erased > 0 {
        return Err(user_erased(Vec::new()));
    }
    state.metrics.events_accepted.inc_by(outcome.accepted);
    state.metrics.events_duplicate.inc_by(outcome.duplicates);
    Ok(Json(EventAccepted { event_id, duplicate: outcome.duplicates == 1 }))
}

/// Send up to 10,000 events at once. Every event is validated first; if any is invalid the response
/// lists them and nothing of the batch is stored.
#[utoipa::path(post, path = "/v1/events/batch", tag = "events", request_body = EventBatch,
    responses((status = 200, body = BatchAccepted), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = [])))]
pub async fn post_event_batch(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<BatchAccepted>> {
    let store = state.store().clone();
    let limit = state.options.max_batch_events;
    let window = state.options.event_time_window;
    let metrics_state = state.clone();
    let result = blocking(move || {
        let batch: EventBatch<'_> = parse_json_borrowed(&body)?;
        if batch.events.len() > limit {
            return Err(ApiError::new(
                ErrorKind::BatchTooLarge,
                format!("{} events in one batch; the limit is {limit}", batch.events.len()),
            ));
        }
        let received_at = Timestamp::now();
        let mut events = Vec::with_capacity(batch.events.len());
        let mut problems = Vec::new();
        for (index, raw) in batch.events.iter().enumerate() {
            let parsed = serde_json::from_str::<EventInput>(raw.get())
                .map_err(|e| {
                    let error = json_error(e);
                    ErrorDetail {
                        index: Some(index),
                        field: String::new(),
                        code: error.body().code,
                        message: error.message,
                    }
                })
                .and_then(|input| {
                    parse_event(input, received_at, &window).map_err(|e| ErrorDetail {
                        index: Some(index),
                        field: e.field,
                        code: e.code.to_string(),
                        message: e.message,
                    })
                });
            match parsed {
                Ok(event) => events.push(event),
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            metrics_state.metrics.events_rejected.inc_by(problems.len() as u64);
            return Err(invalid_batch("events", problems));
        }
        let events = events.into_iter().map(|event| scope_event(&caller, event)).collect::<ApiResult<Vec<_>>>()?;
        // Checked first so that a batch naming an erased user stores nothing (the store's own check, inside the
        // append, catches an erasure that commits in between).
        refuse_erased_users(store.as_ref(), &caller.tenant, &events)?;
        let outcome = store.append_events(&caller.tenant, &events)?;
        Ok((outcome, events.into_iter().map(|e| e.id.to_string()).collect::<Vec<_>>()))
    })
    .await;
    let (outcome, event_ids) = result?;
    state.metrics.events_accepted.inc_by(outcome.accepted);
    state.metrics.events_duplicate.inc_by(outcome.duplicates);
    Ok(Json(BatchAccepted { accepted: outcome.accepted, duplicates: outcome.duplicates, event_ids }))
}
