//! Console pages for predictive analytics: the "Predicted value" card of a customer, the insights page
//! (segments and customers at risk), the demand forecast with its chart, the reorder table and the forecast
//! tasks.

use super::chart::forecast_chart;
use super::context::{FormToken, PageQuery, PageResult, Session, customer_href};
use super::format::{count, encode, money};
use super::layout::{ConsoleSection, console_page, icon, page_header, tasks_table};
use crate::api::insights::{ForecastParams, analytics, forecast_params, reorder_suggestions, segment_summaries};
use crate::error::ApiError;
use crate::state::AppState;
use attune_core::money::MoneyText;
use attune_core::{Money, UserId};
use attune_engine::EngineError;
use attune_engine::insights::FORECAST_TASK;
use attune_engine::insights::analytics::{CUSTOMER_MODEL_NAMES, CustomerModel, TenantAnalytics, day_text};
use attune_engine::insights::customers::{at_risk_customers, churn_risk, overdue};
use attune_engine::insights::demand::{DemandForecast, ForecastTarget};
use attune_engine::insights::reorder::{DEFAULT_LEAD_TIME_DAYS, DEFAULT_SERVICE_LEVEL, Reorder};
use attune_engine::tasks::{TaskRecord, TaskTrigger};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/insights", get(insights_page))
        .route("/console/forecast", get(forecast_page))
        .route("/console/forecast/run", post(run_forecast))
}

/// Customers listed on the insights page as at risk.
const AT_RISK_SHOWN: usize = 25;
/// Lines of the reorder table on the forecast page.
const REORDER_SHOWN: usize = 50;

fn percent(p: f64) -> String {
    format!("{:.0} %", p * 100.0)
}

/// P(alive) as a coloured badge; a dash when the model does not identify it.
fn p_alive_badge(p: Option<f64>) -> Markup {
    let Some(p) = p else {
        return html! { span.muted title="Not identified: the history shows no measurable dropout" { "—" } };
    };
    let class = if p >= 0.7 {
        "badge badge-green"
    } else if p >= 0.4 {
        "badge badge-amber"
    } else {
        "badge badge-red"
    };
    html! { span class=(class) { (percent(p)) } }
}

fn amount(value: Money) -> String {
    money(&value)
}

/// An amount of the model currency, or what is wrong with it (checked money: never a wrapped number).
fn model_amount(model: &CustomerModel, major: f64) -> String {
    model.money(major).map(amount).unwrap_or_else(|error| format!("— ({error})"))
}

fn money_text(value: &MoneyText) -> String {
    Money::try_from(value.clone()).map(amount).unwrap_or_else(|_| format!("{} {}", value.amount, value.currency))
}

/// The "Predicted value" card of a customer page; explains itself when there is nothing to predict.
pub(super) async fn predicted_value_card(state: &AppState, session: &Session, user: &UserId) -> Markup {
    let analytics = match analytics(state, &session.tenant).await {
        Ok(analytics) => analytics,
        Err(error) => return predicted_value_message(&error.message),
    };
    let model = match analytics.customer_model() {
        Ok(model) => model,
        Err(error) => return predicted_value_message(&error.to_string()),
    };
    let Some(c) = model.customer(user) else {
        return predicted_value_message("This customer has no purchases to predict from.");
    };
    html! {
        section.card id="predicted-value" {
            div.card-header {
                div {
                    h2 { "Predicted value" }
                    p.muted { (CUSTOMER_MODEL_NAMES) ", as of " (day_text(analytics.end_day)) ". " a href="/console/insights" { "All segments" } }
                }
            }
            dl.kv {
                dt { "P(alive) (MBG/NBD)" } dd id="p-alive" data-value=[c.p_alive.map(|p| format!("{p:.4}"))] {
                    (p_alive_badge(c.p_alive))
                    @if let Some(note) = &model.p_alive_unidentified { " " span.muted { (note) } }
                }
                dt { "Purchases, next 90 days" } dd id="expected-purchases" { (format!("{:.1}", c.expected_purchases_90d)) }
                dt { "Value, next 12 months" } dd id="expected-value" { (model_amount(model, c.expected_value_12m)) }
                dt { "RFM segment" } dd id="segment" {
                    span.chip { (c.segment.name()) }
                    " " span.muted { "R" (c.rfm.recency) " F" (c.rfm.frequency) " M" (c.rfm.monetary) }
                }
                dt { "Suggested" } dd.muted { (c.segment.suggested_action()) }
                dt { "Purchase days" } dd { (count(u64::from(c.transactions))) " · " (model_amount(model, c.total_spend)) " before returns" }
                dt { "Last purchase" } dd {
                    (day_text(c.last_day))
                    @if c.purchases.frequency > 0 {
                        " " span.muted { (format!("{:.1}× the usual gap ago", overdue(analytics.end_day, c))) }
                    }
                }
            }
        }
    }
}

fn predicted_value_message(message: &str) -> Markup {
    html! {
        section.card id="predicted-value" {
            div.card-header { h2 { "Predicted value" } }
            p.muted { (message) }
        }
    }
}

fn segments_table(model: &CustomerModel) -> Markup {
    let summaries = match segment_summaries(model) {
        Ok(summaries) => summaries,
        Err(error) => return html! { p.muted { (error.message) } },
    };
    html! {
        div.table-scroll { table.data-table.compact id="segments-table" {
            thead { tr {
                th { "Segment" } th.num { "Customers" } th.num { "Mean P(alive)" } th.num { "Purchases, next 90 days" }
                th.num { "Expected value, 12 months" } th.num { "Revenue so far, before returns" } th { "Suggested action" }
            } }
            tbody {
                @for s in summaries {
                    tr {
                        td { span.chip { (s.segment) } }
                        td.num { (count(s.customers as u64)) }
                        td.num { (p_alive_badge(s.mean_p_alive)) }
                        td.num data-value=(format!("{:.4}", s.mean_expected_purchases_90d)) { (format!("{:.2}", s.mean_expected_purchases_90d)) }
                        td.num { (money_text(&s.expected_value_12m)) }
                        td.num { (money_text(&s.historical_value)) }
                        td.muted { (s.suggested_action) }
                    }
                }
            }
        } }
    }
}

fn at_risk_table(model: &CustomerModel, end_day: i64) -> Markup {
    let list = at_risk_customers(model, end_day, 0.5, 3.0);
    html! {
        @if list.is_empty() {
            div.empty-state { p.empty-title { "No repeat customers appear to be leaving" } }
        } @else {
            div.table-scroll { table.data-table.compact id="at-risk-table" {
                thead { tr {
                    th { "Customer" } th.num { "P(alive)" } th.num { "Overdue" } th.num { "Revenue so far, before returns" } th.num { "Value at risk" }
                    th { "Segment" } th { "Last purchase" }
                } }
                tbody {
                    @for c in list.iter().take(AT_RISK_SHOWN) {
                        tr {
                            td.mono { a href=(customer_href(c.user_id.as_str())) { (c.user_id) } }
                            td.num { (p_alive_badge(c.p_alive)) }
                            td.num { (format!("{:.0}×", overdue(end_day, c))) }
                            td.num { (model_amount(model, c.total_spend)) }
                            td.num { (model_amount(model, c.total_spend * churn_risk(end_day, c))) }
                            td { (c.segment.name()) }
                            td.nowrap { (day_text(c.last_day)) }
                        }
                    }
                }
            } }
            @if list.len() > AT_RISK_SHOWN {
                p.muted { (count(list.len() as u64)) " customers at risk in all; " a href="/v1/customers/at-risk?limit=1000" { "the API lists them all" } "." }
            }
        }
    }
}

/// `/console/insights`: segments and customers at risk.
async fn insights_page(State(state): State<AppState>, session: Session) -> PageResult<Markup> {
    let analytics = analytics(&state, &session.tenant).await?;
    let body = match analytics.customer_model() {
        Err(error) => html! {
            (page_header(&[], "Insights", None, None))
            section.card { div.empty-state { p.empty-title { "No customer model yet" } p.muted { (error.to_string()) } } }
        },
        Ok(model) => insights_body(&analytics, model),
    };
    Ok(console_page(&session.shell(ConsoleSection::Insights), "Insights", body))
}

fn insights_body(analytics: &TenantAnalytics, model: &CustomerModel) -> Markup {
    let expected: f64 = model.customers.iter().map(|c| c.expected_value_12m).sum();
    let active: Option<f64> = model.customers.iter().map(|c| c.p_alive).sum();
    let subtitle = html! {
        "Customer model fitted on " (count(model.customers.len() as u64)) " customers as of "
        (day_text(analytics.end_day)) " (the last event, never after today), on the history from "
        (day_text(analytics.window.start))
        @if analytics.window.left_out > 0 { " (" (count(analytics.window.left_out)) " stray or older events left out)" }
        ". "
        a href="/console/forecast" { "Demand forecast" }
    };
    html! {
        (page_header(&[], "Insights", Some(subtitle), None))
        section.stat-grid {
            div.card.stat-card { span.stat-label { "Customers with purchases" } span.stat-value id="insights-customers" { (count(model.customers.len() as u64)) } }
            div.card.stat-card { span.stat-label { "Expected active" } span.stat-value { (active.map_or("—".to_string(), |a| count(a.round() as u64))) } span.stat-note { "Sum of P(alive)" } }
            div.card.stat-card { span.stat-label { "Expected value, 12 months" } span.stat-value { (model_amount(model, expected)) } span.stat-note { "Gamma-Gamma spend, discounted 1 % a month" } }
            div.card.stat-card { span.stat-label { "P(alive) model" } span.stat-value id="customer-model" { "MBG/NBD" } span.stat-note {
                "r " (format!("{:.3}", model.mbg_nbd.r)) " · α " (format!("{:.2}", model.mbg_nbd.alpha))
                " · a " (format!("{:.3}", model.mbg_nbd.a)) " · b " (format!("{:.3}", model.mbg_nbd.b))
            } }
        }
        section.card id="segments" {
            div.card-header { div { h2 { "Segments" } p.muted { "RFM quintile scores named by recency and frequency × spend; P(alive) and purchases from MBG/NBD, which lets one-time buyers drop out." } } }
            @if let Some(note) = &model.p_alive_unidentified { p.muted id="p-alive-note" { "P(alive): " (note) "." } }
            (segments_table(model))
        }
        section.card id="at-risk" {
            div.card-header { div { h2 { "At risk" } p.muted { "Repeat customers with P(alive) below 50 % or silent for over 3 times their usual gap between purchases; most value at risk first (revenue so far × max(1 − P(alive), 1 − 1/overdue))." } } }
            (at_risk_table(model, analytics.end_day))
        }
    }
}

/// `/console/forecast?item=&category=&granularity=`: demand history and forecast of the whole shop, an item
/// or a category; for the whole shop also the reorder suggestions and the latest forecast tasks.
async fn forecast_page(
    State(state): State<AppState>,
    session: Session,
    PageQuery(params): PageQuery<ForecastPageParams>,
) -> PageResult<Response> {
    let api_params = ForecastParams {
        item_id: params.item.clone().filter(|i| !i.is_empty()),
        category: params.category.clone().filter(|c| !c.is_empty()),
        granularity: params.granularity.clone().filter(|g| !g.is_empty()),
        horizon: None,
    };
    let (target, granularity, _) = forecast_params(&api_params)?;
    let horizon = granularity.page_horizon();
    let title = match &target {
        ForecastTarget::Item(item) => format!("Forecast for {item}"),
        ForecastTarget::Category(levels) => format!("Forecast for {}", levels.join(" > ")),
        ForecastTarget::Total => "Demand forecast".to_string(),
    };
    let analytics = analytics(&state, &session.tenant).await?;
    let (tenant, for_forecast, shown_target) = (session.tenant.clone(), analytics.clone(), target.clone());
    // An unknown item or category is an error page; a forecast that cannot be made is said on the page.
    let result = state
        .run(move |engine| {
            match engine.insights().forecast(&tenant, &for_forecast, &shown_target, granularity, horizon) {
                Err(error @ (EngineError::InvalidParameter(_) | EngineError::Store(_))) => Err(error),
                forecast => Ok(forecast.map_err(ApiError::from)),
            }
        })
        .await?;
    let reorder = match target {
        ForecastTarget::Total => Some(
            reorder_suggestions(&state, &session.tenant, analytics, DEFAULT_LEAD_TIME_DAYS, DEFAULT_SERVICE_LEVEL)
                .await,
        ),
        _ => None,
    };
    let tasks: Vec<TaskRecord> =
        state.engine.tasks().list(&session.tenant).into_iter().filter(|t| t.kind == FORECAST_TASK).take(5).collect();
    let item_query = params.item.as_deref().unwrap_or("");
    let category_query = params.category.as_deref().unwrap_or("");
    let tabs = html! {
        @for g in ["day", "week", "month"] {
            a.button.small.ghost[g != granularity.name()] href=(format!("/console/forecast?item={}&category={}&granularity={g}", encode(item_query), encode(category_query))) { (g) }
        }
    };
    let crumbs = [("/console/insights", "Insights")];
    let body = html! {
        (page_header(&crumbs, &title, Some(html! { "Units sold per " (granularity.name()) " from purchase lines, with a 95 % interval." }), Some(tabs)))
        form.toolbar method="get" action="/console/forecast" role="search" {
            div.search-input {
                (icon("search"))
                input.input type="search" name="item" value=(item_query) placeholder="Item id (empty: all items)"
                    aria-label="Item id";
            }
            div.search-input {
                input.input type="search" name="category" value=(category_query) placeholder="Category, e.g. Home > Kitchen"
                    aria-label="Category";
            }
            input type="hidden" name="granularity" value=(granularity.name());
            button.button type="submit" { "Forecast" }
        }
        section.card id="forecast" {
            @match &result {
                Ok(forecast) => { (forecast_card(forecast)) }
                Err(error) => { div.empty-state { p.empty-title { "No forecast" } p.muted { (error.message) } } }
            }
        }
        @if let Some(reorder) = &reorder {
            section.card id="reorder" {
                @match reorder {
                    Ok(reorder) => { (reorder_table(reorder)) }
                    Err(error) => { div.empty-state { p.empty-title { "No reorder suggestions" } p.muted { (error.message) } } }
                }
            }
        }
        section.card id="tasks" {
            div.card-header {
                div {
                    h2 { "Forecast tasks" }
                    p.muted { "The forecast task rescans the events, refits the models and recomputes the reorder list; it runs on a schedule and on demand." }
                }
                form method="post" action="/console/forecast/run" {
                    input type="hidden" name="form_token" value=(session.form_token);
                    button.button.small type="submit" { "Run now" }
                }
            }
            (tasks_table("forecast-tasks", &tasks, "No forecast task has run since the server started."))
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Insights), &title, body).into_response())
}

/// `POST /console/forecast/run`: starts the forecast task and goes back to the forecast page.
async fn run_forecast(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<FormToken>,
) -> PageResult<Response> {
    session.check_form(&form)?;
    state.engine.tasks().start(&session.tenant, FORECAST_TASK, TaskTrigger::Request)?;
    Ok(Redirect::to("/console/forecast#tasks").into_response())
}

fn reorder_table(reorder: &Reorder) -> Markup {
    let number = |value: f64| format!("{value:.1}");
    html! {
        div.card-header {
            div {
                h2 { "Reorder suggestions" }
                p.muted {
                    "Best sellers of the last 90 days (" (reorder.items_considered) " items, " (reorder.items_with_stock)
                    " with stock figures): daily forecasts, " (reorder.lead_time_days) "-day lead time, "
                    (format!("{:.0}", reorder.service_level * 100.0)) " % service level. Computed " (reorder.computed_at.to_string()) "."
                }
            }
            div.card-header-stats {
                div { span.mini-label { "Reorder now" } span.mini-value { (reorder.reorder_now) } }
                div { span.mini-label { "Overstocked" } span.mini-value { (reorder.overstocked) } }
            }
        }
        @if reorder.items.is_empty() {
            p.muted { "Nothing to reorder: every best seller with a stock figure covers its lead time." }
        } @else {
            div.table-scroll { table.data-table.compact id="reorder-table" {
                thead { tr {
                    th { "Item" } th.num { "Stock" } th.num { "Sold, 90 days" } th.num { "Daily demand" }
                    th.num { "Safety stock" } th.num { "Reorder point" } th.num { "Days of cover" }
                    th.num { "Stockout risk" } th.num { "Order" } th { "Status" } th { "Model" }
                } }
                tbody {
                    @for line in reorder.items.iter().take(REORDER_SHOWN) {
                        tr {
                            td.item-cell { a href=(format!("/console/forecast?item={}&granularity=day", encode(&line.item_id))) { (line.title.as_deref().unwrap_or(&line.item_id)) } }
                            td.num { (line.stock.map_or("—".to_string(), |s| s.to_string())) }
                            td.num { (number(line.units_last_90d)) }
                            td.num { (number(line.daily_demand)) }
                            td.num { (number(line.safety_stock)) }
                            td.num { (number(line.reorder_point)) }
                            td.num { (line.days_of_cover.map_or("—".to_string(), number)) }
                            td.num { (line.stockout_risk.map_or("—".to_string(), percent)) }
                            td.num { (line.suggested_order.map_or("—".to_string(), |q| format!("{q:.0}"))) }
                            td { (match (line.reorder, line.overstock) {
                                (Some(true), _) => "reorder now",
                                (_, Some(true)) => "overstocked",
                                (None, _) => "no stock figure",
                                _ => "covered",
                            }) }
                            td { (line.model) }
                        }
                    }
                }
            } }
        }
    }
}

fn forecast_card(forecast: &DemandForecast) -> Markup {
    let total: f64 = forecast.forecast.iter().map(|p| p.mean).sum();
    html! {
        div.card-header {
            div {
                h2 { "Model: " (forecast.model) }
                p.muted { (count(forecast.history.len() as u64)) " periods of history; season length " (forecast.season) "." }
                @if let Some(backtest) = &forecast.backtest {
                    p.muted id="backtest" {
                        "Backtest over " (backtest.origins) " origins, " (backtest.horizon) " periods ahead: MASE "
                        (backtest.mase.map_or("—".to_string(), |m| format!("{m:.2}"))) ", sMAPE " (format!("{:.1}", backtest.smape)) " %."
                    }
                }
            }
            div.card-header-stats {
                div { span.mini-label { "Next " (forecast.forecast.len()) " " (forecast.granularity) "s" } span.mini-value id="forecast-total" data-value=(format!("{total:.1}")) { (count(total.round() as u64)) " units" } }
            }
        }
        div.chart-wrap { (forecast_chart(forecast)) }
    }
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ForecastPageParams {
    item: Option<String>,
    category: Option<String>,
    granularity: Option<String>,
}
