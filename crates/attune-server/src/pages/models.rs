//! The console's models page (`/console/models`): the stored versions of the recommendation model with
//! their offline metrics and which one serves, a "Train now" button (the `train_recs` task), activating a
//! kept version, the training tasks, and a preview of every scenario for any customer with each item's
//! explanation — computed by the same selection path as `POST /v1/recommendations`, without logging an
//! impression. A tenant with too little data to train is told so, with the figures and the minimums.

use super::context::{FormToken, PageError, PagePath, PageQuery, PageResult, Session, customer_href};
use super::format::{date_time, encode};
use super::layout::{ConsoleSection, console_page, page_header, tasks_table};
use crate::api::models::{ModelVersion, ModelVersions, model_versions};
use crate::error::ApiError;
use crate::state::AppState;
use attune_core::{ItemId, UserId};
use attune_engine::recs::training::{MIN_EVAL_SHOPPERS, MIN_INTERACTIONS, UNSTORED_VERSION};
use attune_engine::recs::{Preview, PreviewList, TRAIN_TASK};
use attune_engine::tasks::{TaskRecord, TaskTrigger};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/models", get(models_page))
        .route("/console/models/train", post(train_now))
        .route("/console/models/{version}/activate", post(activate_version))
}

/// Training tasks listed.
const TASKS_SHOWN: usize = 5;

#[derive(Debug, Deserialize)]
struct ModelsParams {
    customer: Option<String>,
    item: Option<String>,
}

fn metric(version: &ModelVersion, scorer: &str, name: &str) -> String {
    version.metrics[scorer][name].as_f64().map_or("—".to_string(), |v| format!("{v:.4}"))
}

/// The for-you model a version serves, in words; a blend with its weights (item-kNN, ALS, EASE).
fn serves(version: &ModelVersion) -> String {
    let weights = version.metrics["blend_weights"].as_array().map(|w| {
        let named = ["kNN", "ALS", "EASE"].iter().zip(w).filter_map(|(name, w)| Some((name, w.as_f64()?)));
        named.filter(|(_, w)| *w > 0.0).map(|(name, w)| format!("{name} ×{w}")).collect::<Vec<_>>().join(" + ")
    });
    match version.metrics["for_you_serves"].as_str() {
        Some("als") => "ALS".to_string(),
        Some("ease") => "EASE".to_string(),
        Some("blend") => format!("blend: {}", weights.unwrap_or_default()),
        _ => "item-kNN".to_string(),
    }
}

/// Until when a version's factor parts may still hold erased data (set on versions made by unlearning).
fn factors_retrained_by(version: &ModelVersion) -> Option<attune_core::Timestamp> {
    attune_core::Timestamp::parse_rfc3339(version.metrics["unlearned"]["factors_retrained_by"].as_str()?).ok()
}

fn versions_table(models: &ModelVersions, form_token: &str) -> Markup {
    html! {
        div.table-scroll { table.data-table id="model-versions" {
            thead { tr {
                th { "Version" } th { "Trained" } th.num { "Events" } th.num { "Items" }
                th.num { "kNN HR@10" } th.num { "kNN NDCG@10" } th.num title="For you by implicit ALS on the same holdout" { "ALS NDCG@10" } th.num title="For you by sparse EASE on the same holdout" { "EASE NDCG@10" } th.num title="For you by the blend of item-kNN, ALS and EASE on the same holdout" { "Blend NDCG@10" } th title="The for-you model this version serves: the best NDCG on the tuning half of the holdout (the figures are the other half's)" { "For you serves" }
                th.num { "Next HR@10" } th.num { "Next NDCG@10" }
                th.num { "Popular HR@10" } th.num { "Coverage" } th.num { "Size" } th { "" }
            } }
            tbody {
                @for v in &models.versions {
                    tr id=(format!("model-version-{}", v.version)) {
                        td {
                            "v" (v.version)
                            @if let Some(by) = factors_retrained_by(v) {
                                " " span.badge.badge-amber.unlearned title="Erased shoppers' data was taken out of this version's count-based parts; its ALS and EASE parts, fitted before, are replaced by a full training by then" {
                                    "unlearned · retrained by " (date_time(by))
                                }
                            }
                        }
                        td { (date_time(v.created_at)) }
                        td.num { (v.events_through_seq) }
                        td.num { (v.metrics["items"].as_u64().map_or("—".to_string(), |n| n.to_string())) }
                        td.num { (metric(v, "for_you", "hr")) }
                        td.num { (metric(v, "for_you", "ndcg")) }
                        td.num { (metric(v, "for_you_als", "ndcg")) }
                        td.num { (metric(v, "for_you_ease", "ndcg")) }
                        td.num { (metric(v, "for_you_blend", "ndcg")) }
                        td.for-you-serves { (serves(v)) }
                        td.num { (metric(v, "next", "hr")) }
                        td.num { (metric(v, "next", "ndcg")) }
                        td.num { (metric(v, "popular", "hr")) }
                        td.num { (v.metrics["for_you"]["coverage"].as_f64().map_or("—".to_string(), |c| format!("{:.1} %", c * 100.0))) }
                        td.num { (format!("{:.1} KB", v.payload_bytes as f64 / 1024.0)) }
                        td {
                            @if v.active {
                                span.badge.badge-green { "serving" }
                            } @else {
                                form method="post" action=(format!("/console/models/{}/activate", v.version)) {
                                    input type="hidden" name="form_token" value=(form_token);
                                    button.button.small.ghost type="submit" { "Activate" }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// Why no model is stored: the latest training's `insufficient_data` answer, else the minimums.
fn not_enough_data(tasks: &[TaskRecord]) -> Markup {
    let reason = tasks.iter().find(|t| t.finished_at.is_some()).filter(|t| t.error_code == Some("insufficient_data"));
    html! {
        div.empty-state id="not-enough-data" {
            p.empty-title { "Not enough data to train a model yet" }
            @match reason.and_then(|t| t.error.as_deref()) {
                Some(error) => { p.muted { (error) "." } }
                None => { p.muted { "Training needs at least " (MIN_INTERACTIONS) " item interactions and " (MIN_EVAL_SHOPPERS) " shoppers with two or more items (with fewer, its offline metrics would be noise); until then recommendations come from popularity, trending and content matches." } }
            }
            p.muted { "Nothing is stored meanwhile. Send more events, then train again with the button above, `attune train`, or POST /v1/tasks." }
        }
    }
}

fn preview_card(list: &PreviewList) -> Markup {
    html! {
        section.card id=(format!("preview-{}", list.scenario)) {
            div.card-header { div { h2 { (list.scenario) } p.muted { (list.what) } } }
            @match &list.result {
                Err(message) => { p.muted { (message) } }
                Ok(items) if items.is_empty() => { p.muted { "Nothing to recommend." } }
                Ok(items) => {
                    table.data-table {
                        thead { tr { th { "Item" } th.num { "Score" } th { "Signal" } th { "Explanation" } } }
                        tbody {
                            @for r in items {
                                tr {
                                    td { a href=(format!("/console/catalog/{}", encode(r.item.id.as_str()))) { (r.item.title) } }
                                    td.num { (format!("{:.4}", r.score)) }
                                    td { span.chip { (r.explanation.signal.as_str()) } }
                                    td.explanation { (r.explanation.text) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/models`.
async fn models_page(
    State(state): State<AppState>,
    session: Session,
    PageQuery(params): PageQuery<ModelsParams>,
) -> PageResult<Response> {
    let models = model_versions(&state, &session.tenant).await?;
    let tasks: Vec<TaskRecord> = state
        .engine
        .tasks()
        .list(&session.tenant)
        .into_iter()
        .filter(|t| t.kind == TRAIN_TASK)
        .take(TASKS_SHOWN)
        .collect();
    let customer_text = params.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let item_text = params.item.as_deref().map(str::trim).filter(|i| !i.is_empty());
    let customer = customer_text
        .map(|c| UserId::parse(c.to_string()))
        .transpose()
        .map_err(|e| PageError::from(ApiError::from(e)))?;
    let item =
        item_text.map(|i| ItemId::parse(i.to_string())).transpose().map_err(|e| PageError::from(ApiError::from(e)))?;
    let previewed = match &customer {
        Some(customer) => {
            let (tenant, customer) = (session.tenant.clone(), customer.clone());
            Some(state.run(move |engine| engine.recs().preview(&tenant, &customer, item)).await?)
        }
        None => None,
    };
    let active = state.engine.recs().active(&session.tenant);
    let unstored = active.as_ref().is_some_and(|model| model.version == UNSTORED_VERSION);
    let thin = tasks.first().is_some_and(|t| t.error_code == Some("insufficient_data"));
    let train = html! {
        form method="post" action="/console/models/train" {
            input type="hidden" name="form_token" value=(session.form_token);
            button.button.small type="submit" { "Train now" }
        }
    };
    let body = html! {
        (page_header(&[], "Recommendation models", Some(html! { "Trained snapshots of the recommendation model, their offline metrics, and a preview of every scenario." }), Some(train)))
        section.card id="models" {
            div.card-header {
                div {
                    h2 { "Versions" }
                    p.muted {
                        @match &active {
                            Some(model) if model.version == UNSTORED_VERSION => { "Serving an unstored model fitted on " (model.events) " events and " (model.items.len()) " items (too little data to train). " }
                            Some(model) => { "Serving v" (model.version) ", trained on " (model.events) " events and " (model.items.len()) " items, swapped in " (date_time(model.loaded_at)) ". " }
                            None => { "No model is loaded yet. " }
                        }
                        "Metrics: the latest item of up to 2,000 shoppers held out, every item ranked, seen items left out."
                    }
                }
            }
            @if models.versions.is_empty() && (unstored || thin) {
                (not_enough_data(&tasks))
            } @else if models.versions.is_empty() {
                div.empty-state { p.empty-title { "No stored model" } p.muted { "Train one with the button above, `attune train`, or POST /v1/tasks." } }
            } @else {
                (versions_table(&models, &session.form_token))
            }
        }
        section.card id="tasks" {
            div.card-header { div { h2 { "Training tasks" } p.muted { "Scheduled, on demand, and at start-up for a tenant without a stored model." } } }
            (tasks_table("training-tasks", &tasks, "No training task has run since the server started."))
        }
        section.card id="preview" {
            div.card-header { div { h2 { "Preview" } p.muted { "Every scenario for one customer, with each item's explanation. Nothing is logged." } } }
            form.toolbar method="get" action="/console/models#preview" {
                input.input type="search" name="customer" value=(customer_text.unwrap_or("")) placeholder="Customer id" aria-label="Customer id";
                input.input type="search" name="item" value=(item_text.unwrap_or("")) placeholder="Item id (default: the customer's latest)" aria-label="Item id";
                button.button type="submit" { "Preview" }
            }
            @if let (Some(customer), Some(Preview { anchor, .. })) = (&customer, &previewed) {
                p.muted {
                    "For " a href=(customer_href(customer.as_str())) { (customer.as_str()) }
                    @if let Some(anchor) = anchor { ", anchored on item " (anchor.as_str()) }
                    "."
                }
            }
        }
        @if let Some(Preview { lists, .. }) = &previewed {
            div.preview-grid {
                @for list in lists { (preview_card(list)) }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Models), "Models", body).into_response())
}

/// `POST /console/models/train`: starts the `train_recs` task and goes back to the models page.
async fn train_now(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<FormToken>,
) -> PageResult<Response> {
    session.check_form(&form)?;
    state.engine.tasks().start(&session.tenant, TRAIN_TASK, TaskTrigger::Request)?;
    Ok(Redirect::to("/console/models#tasks").into_response())
}

/// `POST /console/models/{version}/activate`: serves from a stored version.
async fn activate_version(
    State(state): State<AppState>,
    session: Session,
    PagePath(version): PagePath<String>,
    Form(form): Form<FormToken>,
) -> PageResult<Response> {
    session.check_form(&form)?;
    let version: i64 = version.parse().map_err(|_| PageError::not_found("No such model version."))?;
    let tenant = session.tenant.clone();
    state.run(move |engine| engine.recs().activate(&tenant, version)).await?;
    Ok(Redirect::to("/console/models#models").into_response())
}
