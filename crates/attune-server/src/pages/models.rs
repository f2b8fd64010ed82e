//! The console's models page (`/console/models`): the stored versions of the recommendation model with
//! their offline metrics and which one serves, a "Train now" button (the `train_recs` task), activating a
//! kept version, the training tasks, and a preview of every scenario for any customer with each item's
//! explanation — computed by the same selection path as `POST /v1/recommendations`, without logging an
//! impression.

use super::console::{Session, customer_href};
use super::format::{date_time, encode};
use super::layout::{ConsoleSection, console_page, page_header};
use super::{PageError, PageResult};
use crate::api::models::{ModelVersion, ModelVersions, model_versions};
use crate::recommendations::{
    Basis, ListRequest, Recommended, Rules, Shopper, acted_on, recommend_with_rules, tenant_recs,
};
use crate::state::{AppState, blocking};
use crate::tasks::{TaskKind, TaskRecord, TaskStatus, TaskTrigger, start_task};
use crate::training::activate;
use attune_core::{ItemId, UserId};
use attune_store::TimelineQuery;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::HashSet;

/// Items shown per scenario in the preview.
const PREVIEW_COUNT: usize = 5;
/// Training tasks listed.
const TASKS_SHOWN: usize = 5;

#[derive(Debug, Deserialize)]
pub(super) struct ModelsParams {
    customer: Option<String>,
    item: Option<String>,
}

/// One scenario's preview list, or why there is none.
struct PreviewList {
    scenario: &'static str,
    what: String,
    result: Result<Vec<Recommended>, String>,
}

fn metric(version: &ModelVersion, scorer: &str, name: &str) -> String {
    version.metrics[scorer][name].as_f64().map_or("—".to_string(), |v| format!("{v:.4}"))
}

fn versions_table(models: &ModelVersions) -> Markup {
    html! {
        div.table-scroll { table.data-table id="model-versions" {
            thead { tr {
                th { "Version" } th { "Trained" } th.num { "Events" } th.num { "Items" }
                th.num { "For you HR@10" } th.num { "For you NDCG@10" } th.num { "Next HR@10" } th.num { "Next NDCG@10" }
                th.num { "Popular HR@10" } th.num { "Coverage" } th.num { "Size" } th { "" }
            } }
            tbody {
                @for v in &models.versions {
                    tr id=(format!("model-version-{}", v.version)) {
                        td { "v" (v.version) }
                        td { (date_time(v.created_at)) }
                        td.num { (v.events_through_seq) }
                        td.num { (v.metrics["items"].as_u64().map_or("—".to_string(), |n| n.to_string())) }
                        td.num { (metric(v, "for_you", "hr")) }
                        td.num { (metric(v, "for_you", "ndcg")) }
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

fn tasks_table(tasks: &[TaskRecord]) -> Markup {
    html! {
        @if tasks.is_empty() {
            p.muted { "No training task has run since the server started." }
        } @else {
            table.data-table id="training-tasks" {
                thead { tr { th { "Started" } th { "Trigger" } th { "Status" } th { "Progress" } th { "Result" } } }
                tbody {
                    @for task in tasks {
                        tr {
                            td { (task.started_at.to_string()) }
                            td { (match task.trigger { TaskTrigger::Request => "on demand", TaskTrigger::Schedule => "scheduled" }) }
                            td { (match task.status { TaskStatus::Running => "running", TaskStatus::Succeeded => "succeeded", TaskStatus::Failed => "failed" }) }
                            td { (format!("{:.0} % ({})", task.progress * 100.0, task.stage)) }
                            td { (task.summary.as_deref().or(task.error.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
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

/// Every scenario for `customer`, anchored on `item` or else the customer's latest item.
async fn preview(
    state: &AppState,
    session: &Session,
    customer: &UserId,
    item: Option<ItemId>,
) -> PageResult<(Option<ItemId>, Vec<PreviewList>)> {
    let model = tenant_recs(state, &session.tenant).await?;
    let store = state.store.clone();
    let tenant = session.tenant.clone();
    let user = customer.clone();
    let serving = state.clone();
    let lists = blocking(move || {
        let anchor = match item {
            Some(item) => Some(item),
            None => {
                let query = TimelineQuery { before_seq: None, limit: 50 };
                let timeline = store.user_timeline(&tenant, &user, &query)?;
                timeline.events.iter().find_map(|e| acted_on(&e.event.kind).first().map(|id| (*id).clone()))
            }
        };
        let catalog = serving.catalog.snapshot(&store, &tenant)?;
        let rules = Rules { shopper: Shopper { user: Some(user.clone()), anonymous: None }, ..Default::default() };
        let anchor_name = anchor.as_ref().map(|a| catalog.get(a).map_or(a.to_string(), |i| i.title.trim().to_string()));
        let scenarios: Vec<(&'static str, String, Option<Basis>)> = vec![
            ("for_you", "From the customer's recent history".into(), Some(Basis::ForYou(Some(user.clone())))),
            ("next", "What comes next in the current session and after the ordered history".into(), Some(Basis::Next)),
            ("buy_again", "Items the customer is due to buy again".into(), Some(Basis::BuyAgain)),
            ("recently_viewed", "The customer's latest viewed items".into(), Some(Basis::RecentlyViewed)),
            ("trending", "Trending, then popular items".into(), Some(Basis::Trending)),
            (
                "similar",
                anchor_name.as_ref().map_or("Needs an item".into(), |n| format!("Items similar to {n}")),
                anchor.clone().map(|a| Basis::Similar(vec![a])),
            ),
            (
                "bought_together",
                anchor_name.as_ref().map_or("Needs an item".into(), |n| format!("Often bought with {n}")),
                anchor.clone().map(Basis::BoughtTogether),
            ),
            (
                "complete_cart",
                anchor_name.as_ref().map_or("Needs an item".into(), |n| format!("A cart holding {n}")),
                anchor.clone().map(|a| Basis::CompleteCart(vec![a])),
            ),
        ];
        let mut lists = Vec::new();
        for (scenario, what, basis) in scenarios {
            let result = match basis {
                None => Err("Give an item id, or pick a customer with item events.".to_string()),
                Some(basis) => {
                    let request =
                        ListRequest { basis, count: PREVIEW_COUNT, exclude: HashSet::new(), in_stock_only: true };
                    recommend_with_rules(store.as_ref(), &tenant, &model, Some(&catalog), &request, &rules)
                        .map_err(|e| e.message)
                }
            };
            lists.push(PreviewList { scenario, what, result });
        }
        Ok((anchor, lists))
    })
    .await?;
    Ok(lists)
}

/// `GET /console/models`.
pub(super) async fn models_page(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<ModelsParams>,
) -> PageResult<Response> {
    let models = model_versions(&state, &session.tenant).await?;
    let tasks: Vec<TaskRecord> = state
        .tasks
        .list(&session.tenant)
        .into_iter()
        .filter(|t| t.kind == TaskKind::TrainRecs)
        .take(TASKS_SHOWN)
        .collect();
    let customer_text = params.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let item_text = params.item.as_deref().map(str::trim).filter(|i| !i.is_empty());
    let customer = customer_text
        .map(|c| UserId::parse(c.to_string()))
        .transpose()
        .map_err(|e| PageError::from(crate::error::ApiError::from(e)))?;
    let item = item_text
        .map(|i| ItemId::parse(i.to_string()))
        .transpose()
        .map_err(|e| PageError::from(crate::error::ApiError::from(e)))?;
    let previewed = match &customer {
        Some(customer) => Some(preview(&state, &session, customer, item).await?),
        None => None,
    };
    let active = state.cached_recs(&session.tenant);
    let train = html! {
        form method="post" action="/console/models/train" { button.button.small type="submit" { "Train now" } }
    };
    let body = html! {
        (page_header(&[], "Recommendation models", Some(html! { "Trained snapshots of the recommendation model, their offline metrics, and a preview of every scenario." }), Some(train)))
        section.card id="models" {
            div.card-header {
                div {
                    h2 { "Versions" }
                    p.muted {
                        @match &active {
                            Some(model) => { "Serving v" (model.version) ", trained on " (model.events) " events and " (model.items.len()) " items, swapped in " (date_time(model.loaded_at)) ". " }
                            None => { "No model is loaded yet. " }
                        }
                        "Metrics: the latest item of up to 2,000 shoppers held out, every item ranked, seen items left out."
                    }
                }
            }
            @if models.versions.is_empty() {
                div.empty-state { p.empty-title { "No stored model" } p.muted { "Train one with the button above, `attune train`, or POST /v1/tasks." } }
            } @else {
                (versions_table(&models))
            }
        }
        section.card id="tasks" {
            div.card-header { div { h2 { "Training tasks" } p.muted { "Scheduled, on demand, and at start-up for a tenant without a stored model." } } }
            (tasks_table(&tasks))
        }
        section.card id="preview" {
            div.card-header { div { h2 { "Preview" } p.muted { "Every scenario for one customer, with each item's explanation. Nothing is logged." } } }
            form.toolbar method="get" action="/console/models#preview" {
                input.input type="search" name="customer" value=(customer_text.unwrap_or("")) placeholder="Customer id" aria-label="Customer id";
                input.input type="search" name="item" value=(item_text.unwrap_or("")) placeholder="Item id (default: the customer's latest)" aria-label="Item id";
                button.button type="submit" { "Preview" }
            }
            @if let (Some(customer), Some((anchor, _))) = (&customer, &previewed) {
                p.muted {
                    "For " a href=(customer_href(customer.as_str())) { (customer.as_str()) }
                    @if let Some(anchor) = anchor { ", anchored on item " (anchor.as_str()) }
                    "."
                }
            }
        }
        @if let Some((_, lists)) = &previewed {
            div.preview-grid {
                @for list in lists { (preview_card(list)) }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Models), "Models", body).into_response())
}

/// `POST /console/models/train`: starts the `train_recs` task and goes back to the models page.
pub(super) async fn train_now(State(state): State<AppState>, session: Session) -> Response {
    start_task(&state, &session.tenant, TaskKind::TrainRecs, TaskTrigger::Request);
    Redirect::to("/console/models#tasks").into_response()
}

/// `POST /console/models/{version}/activate`: serves from a stored version.
pub(super) async fn activate_version(
    State(state): State<AppState>,
    session: Session,
    Path(version): Path<String>,
) -> PageResult<Response> {
    let version: i64 = version.parse().map_err(|_| PageError::not_found("No such model version."))?;
    let tenant = session.tenant.clone();
    blocking(move || activate(&state, &tenant, version).map(|_| ())).await?;
    Ok(Redirect::to("/console/models#models").into_response())
}
