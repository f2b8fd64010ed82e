//! Predictive analytics endpoints: a customer's predicted value, segments, customers at risk, demand
//! forecasts and reorder suggestions. The models and the rules live in the engine's insights service; this
//! module parses parameters and renders its results.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;
use attune_core::money::MoneyText;
use attune_core::{TenantId, Timestamp, UserId};
use attune_engine::insights::analytics::{
    CUSTOMER_MODEL_NAMES, CustomerInsight, CustomerModel, TenantAnalytics, day_text,
};
use attune_engine::insights::customers::{self, at_risk_customers, churn_risk, overdue};
use attune_engine::insights::demand::{self, ForecastTarget, Granularity};
use attune_engine::insights::reorder::{self, DEFAULT_LEAD_TIME_DAYS, DEFAULT_SERVICE_LEVEL};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Parameters of the fitted models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub fitted_at: Timestamp,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// The UTC day predictions are made as of: the day of the tenant's last event that is not a stray far from
    /// the rest, never after today.
    pub calibration_end: String,
    /// First UTC day of the history the models read (at most three years before `calibration_end`).
    pub history_start: String,
    /// Events left out as strays far from the rest or older than the history.
    pub events_left_out: u64,
    /// Which model each figure comes from.
    pub models: String,
    /// Whether the fit identifies dropout, so that `p_alive` is served.
    pub p_alive_identified: bool,
    /// Why P(alive) is not served, when it is not.
    pub p_alive_note: Option<String>,
    /// MBG/NBD purchase-rate shape and scale (time unit: weeks).
    pub r: f64,
    pub alpha: f64,
    /// MBG/NBD dropout shape parameters.
    pub a: f64,
    pub b: f64,
    /// Gamma-Gamma spend parameters.
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RfmScores {
    /// 1 to 5, 5 the most recent fifth.
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerInsights {
    pub user_id: String,
    /// Probability the customer is still active (MBG/NBD); null when the tenant's history does not identify
    /// dropout (`model.p_alive_note` says why).
    pub p_alive: Option<f64>,
    pub expected_purchases_90d: f64,
    /// Expected revenue over the next 12 months, discounted 1 % a month.
    pub expected_value_12m: MoneyText,
    pub historical_value: MoneyText,
    pub segment: String,
    pub suggested_action: String,
    pub rfm: RfmScores,
    /// Purchase days after the first.
    pub frequency: u32,
    /// Days from the first to the last purchase day.
    pub recency_days: i64,
    /// Days from the first purchase day to the calibration end.
    pub tenure_days: i64,
    pub model: ModelInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentSummary {
    pub segment: String,
    pub suggested_action: String,
    pub customers: usize,
    /// Null when P(alive) is not identified.
    pub mean_p_alive: Option<f64>,
    pub mean_expected_purchases_90d: f64,
    pub expected_value_12m: MoneyText,
    pub historical_value: MoneyText,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Segments {
    pub customers: usize,
    pub segments: Vec<SegmentSummary>,
    pub model: ModelInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtRiskParams {
    /// Most customers listed, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Customers with a P(alive) below this are at risk, 0 to 1 (default 0.5).
    #[param(minimum = 0, maximum = 1)]
    pub max_p_alive: Option<f64>,
    /// Customers silent for this many times their mean gap between purchases are at risk, at least 1
    /// (default 3).
    #[param(minimum = 1)]
    pub min_overdue: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AtRiskCustomer {
    pub user_id: String,
    /// Null when P(alive) is not identified.
    pub p_alive: Option<f64>,
    /// max(1 − P(alive), 1 − 1/overdue); 1 − 1/overdue when P(alive) is not identified.
    pub churn_risk: f64,
    /// Days since the last purchase over the mean days between purchases.
    pub overdue: f64,
    pub historical_value: MoneyText,
    /// Historical value × churn risk.
    pub value_at_risk: MoneyText,
    pub expected_value_12m: MoneyText,
    pub segment: String,
    /// UTC day of the last purchase.
    pub last_purchase: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AtRisk {
    /// Customers at risk in all, before `limit`.
    pub total: usize,
    pub customers: Vec<AtRiskCustomer>,
}

/// The tenant's analytics: cached, or rebuilt on a blocking thread.
pub(crate) async fn analytics(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantAnalytics>> {
    if let Some(fresh) = state.engine.insights().fresh(tenant) {
        return Ok(fresh);
    }
    let tenant = tenant.clone();
    state.run(move |engine| engine.insights().analytics(&tenant)).await
}

pub(crate) fn model_info(analytics: &TenantAnalytics, model: &CustomerModel) -> ModelInfo {
    ModelInfo {
        fitted_at: analytics.fitted_at,
        customers: model.customers.len(),
        calibration_end: day_text(analytics.end_day),
        history_start: day_text(analytics.window.start),
        events_left_out: analytics.window.left_out,
        models: CUSTOMER_MODEL_NAMES.to_string(),
        p_alive_identified: model.p_alive_unidentified.is_none(),
        p_alive_note: model.p_alive_unidentified.clone(),
        r: model.mbg_nbd.r,
        alpha: model.mbg_nbd.alpha,
        a: model.mbg_nbd.a,
        b: model.mbg_nbd.b,
        p: model.gamma_gamma.p,
        q: model.gamma_gamma.q,
        gamma: model.gamma_gamma.gamma,
    }
}

pub(crate) fn customer_insights(
    analytics: &TenantAnalytics,
    model: &CustomerModel,
    c: &CustomerInsight,
) -> ApiResult<CustomerInsights> {
    Ok(CustomerInsights {
        user_id: c.user_id.to_string(),
        p_alive: c.p_alive,
        expected_purchases_90d: c.expected_purchases_90d,
        expected_value_12m: model.money(c.expected_value_12m)?.into(),
        historical_value: model.money(c.total_spend)?.into(),
        segment: c.segment.name().to_string(),
        suggested_action: c.segment.suggested_action().to_string(),
        rfm: RfmScores { recency: c.rfm.recency, frequency: c.rfm.frequency, monetary: c.rfm.monetary },
        frequency: c.purchases.frequency,
        recency_days: c.last_day - c.first_day,
        tenure_days: analytics.end_day - c.first_day,
        model: model_info(analytics, model),
    })
}

/// A customer's predicted value: probability of being active, expected purchases and revenue, RFM segment.
#[utoipa::path(get, path = "/v1/customers/{id}/insights", tag = "insights",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = CustomerInsights), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerInsights>> {
    caller.require_secret()?;
    let id = UserId::parse_field("id", id)?;
    Ok(Json(insights_of(&state, &caller.tenant, &id).await?))
}

/// The insights of customer `id` (the API's and a customer's export).
pub(crate) async fn insights_of(state: &AppState, tenant: &TenantId, id: &UserId) -> ApiResult<CustomerInsights> {
    let analytics = analytics(state, tenant).await?;
    let model = analytics.customer_model()?;
    let c = model.customer(id).ok_or_else(|| ApiError::not_found("customer with purchases"))?;
    customer_insights(&analytics, model, c)
}

pub(crate) fn segment_summaries(model: &CustomerModel) -> ApiResult<Vec<SegmentSummary>> {
    Ok(customers::segment_summaries(model)?
        .into_iter()
        .map(|s| SegmentSummary {
            segment: s.segment.name().to_string(),
            suggested_action: s.segment.suggested_action().to_string(),
            customers: s.customers,
            mean_p_alive: s.mean_p_alive,
            mean_expected_purchases_90d: s.mean_expected_purchases_90d,
            expected_value_12m: s.expected_value_12m.into(),
            historical_value: s.historical_value.into(),
        })
        .collect())
}

/// Customer segments (RFM) with their size, mean P(alive) and expected 12-month value.
#[utoipa::path(get, path = "/v1/customers/segments", tag = "insights",
    responses((status = 200, body = Segments), (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn segments(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Segments>> {
    caller.require_secret()?;
    let analytics = analytics(&state, &caller.tenant).await?;
    let model = analytics.customer_model()?;
    Ok(Json(Segments {
        customers: model.customers.len(),
        segments: segment_summaries(model)?,
        model: model_info(&analytics, model),
    }))
}

pub(crate) fn at_risk_entry(model: &CustomerModel, end_day: i64, c: &CustomerInsight) -> ApiResult<AtRiskCustomer> {
    let risk = churn_risk(end_day, c);
    Ok(AtRiskCustomer {
        user_id: c.user_id.to_string(),
        p_alive: c.p_alive,
        churn_risk: risk,
        overdue: overdue(end_day, c),
        historical_value: model.money(c.total_spend)?.into(),
        value_at_risk: model.money(c.total_spend * risk)?.into(),
        expected_value_12m: model.money(c.expected_value_12m)?.into(),
        segment: c.segment.name().to_string(),
        last_purchase: day_text(c.last_day),
    })
}

/// Repeat customers who appear to be leaving — P(alive) below `max_p_alive`, or silent for `min_overdue`
/// times their usual gap between purchases (and 30 days or more) — most value at risk first. Value at risk
/// is revenue so far × churn risk, the churn risk being the larger of 1 − P(alive) and 1 − 1/overdue.
#[utoipa::path(get, path = "/v1/customers/at-risk", tag = "insights", params(AtRiskParams),
    responses((status = 200, body = AtRisk), (status = 400, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn at_risk(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AtRiskParams>,
) -> ApiResult<Json<AtRisk>> {
    caller.require_secret()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid_parameter("`limit` must be between 1 and 1000"));
    }
    let max_p_alive = params.max_p_alive.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&max_p_alive) {
        return Err(ApiError::invalid_parameter("`max_p_alive` must be between 0 and 1"));
    }
    let min_overdue = params.min_overdue.unwrap_or(3.0);
    if !(min_overdue >= 1.0 && min_overdue.is_finite()) {
        return Err(ApiError::invalid_parameter("`min_overdue` must be a number of at least 1"));
    }
    let analytics = analytics(&state, &caller.tenant).await?;
    let model = analytics.customer_model()?;
    let end_day = analytics.end_day;
    let list = at_risk_customers(model, end_day, max_p_alive, min_overdue);
    Ok(Json(AtRisk {
        total: list.len(),
        customers: list.into_iter().take(limit).map(|c| at_risk_entry(model, end_day, c)).collect::<ApiResult<_>>()?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// The item to forecast; the tenant's total demand when neither this nor `category` is given.
    pub item_id: Option<String>,
    /// A category path (`Home > Kitchen`) or its first levels: the summed demand of its items.
    pub category: Option<String>,
    /// `day`, `week` (default) or `month`.
    #[param(pattern = "^(day|week|month)$")]
    pub granularity: Option<String>,
    /// Periods ahead, 1 to 365 (default 12).
    #[param(minimum = 1, maximum = 365)]
    pub horizon: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemandPoint {
    /// First day of the period, `YYYY-MM-DD`.
    pub period: String,
    pub quantity: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastPoint {
    pub period: String,
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemandForecast {
    pub item_id: Option<String>,
    /// The category forecast, as given.
    pub category: Option<String>,
    /// Items whose demand is summed: 1 for an item, the catalog's items in the category, null for the total.
    pub items: Option<usize>,
    pub granularity: String,
    /// The chosen model, e.g. `ETS(A,N,N)`.
    pub model: String,
    /// Season length used (1: none).
    pub season: usize,
    /// Coverage of the interval.
    pub level: f64,
    /// Units sold per period, from the first sale to the last complete period before the calibration end
    /// (a week or month cut short by it is left out).
    pub history: Vec<DemandPoint>,
    pub forecast: Vec<ForecastPoint>,
    /// Rolling-origin backtest of the automatic choice on this history; null when the history is too short.
    pub backtest: Option<BacktestSummary>,
}

/// Accuracy of the automatic model choice on the series' own past: at each origin the model is chosen and
/// fitted on the history before it and scored on the next `horizon` periods.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestSummary {
    pub origins: usize,
    pub horizon: usize,
    /// Mean absolute scaled error (1: as good as the in-sample seasonal naive forecast); null when undefined.
    pub mase: Option<f64>,
    /// Symmetric mean absolute percentage error, in percent.
    pub smape: f64,
}

/// Parsed and checked forecast parameters.
pub(crate) fn forecast_params(params: &ForecastParams) -> ApiResult<(ForecastTarget, Granularity, usize)> {
    let granularity = params.granularity.as_deref().unwrap_or("week");
    let granularity = Granularity::parse(granularity).ok_or_else(|| {
        ApiError::invalid_parameter(format!("`granularity` must be day, week or month, not `{granularity}`"))
    })?;
    let horizon = params.horizon.unwrap_or(12);
    if !(1..=365).contains(&horizon) {
        return Err(ApiError::invalid_parameter("`horizon` must be between 1 and 365"));
    }
    let target = ForecastTarget::from_names(params.item_id.as_deref(), params.category.as_deref())
        .map_err(ApiError::invalid_parameter)?;
    Ok((target, granularity, horizon as usize))
}

/// Demand forecast (units sold per period, from purchase lines) for one item, a category or the tenant in total, with
/// the history, a 95 % prediction interval and the automatically chosen model.
#[utoipa::path(get, path = "/v1/forecast", tag = "insights", params(ForecastParams),
    responses((status = 200, body = DemandForecast), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn forecast(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ForecastParams>,
) -> ApiResult<Json<DemandForecast>> {
    caller.require_secret()?;
    let (target, granularity, horizon) = forecast_params(&params)?;
    let analytics = analytics(&state, &caller.tenant).await?;
    let forecast = state
        .run(move |engine| engine.insights().forecast(&caller.tenant, &analytics, &target, granularity, horizon))
        .await?;
    Ok(Json(forecast_view(forecast)))
}

fn forecast_view(forecast: demand::DemandForecast) -> DemandForecast {
    DemandForecast {
        item_id: forecast.item_id,
        category: forecast.category,
        items: forecast.items,
        granularity: forecast.granularity,
        model: forecast.model,
        season: forecast.season,
        level: forecast.level,
        history: forecast.history.into_iter().map(|p| DemandPoint { period: p.period, quantity: p.quantity }).collect(),
        forecast: forecast
            .forecast
            .into_iter()
            .map(|p| ForecastPoint { period: p.period, mean: p.mean, lower: p.lower, upper: p.upper })
            .collect(),
        backtest: forecast.backtest.map(|b| BacktestSummary {
            origins: b.origins,
            horizon: b.horizon,
            mase: b.mase,
            smape: b.smape,
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReorderParams {
    /// Mean replenishment lead time in days, 1 to 365 (default 14).
    #[param(minimum = 1, maximum = 365)]
    pub lead_time_days: Option<f64>,
    /// Cycle service level, 0.5 to 0.9999 (default 0.95).
    #[param(minimum = 0.5, maximum = 0.9999)]
    pub service_level: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReorderLine {
    pub item_id: String,
    pub title: Option<String>,
    /// Units on hand from the catalog's `stock_quantity`; null when the catalog has no stock figure, in
    /// which case only the safety stock and reorder point are meaningful.
    pub stock: Option<i64>,
    pub units_last_90d: f64,
    /// Forecast daily demand (mean over the lead time).
    pub daily_demand: f64,
    pub lead_time_demand: f64,
    pub safety_stock: f64,
    pub reorder_point: f64,
    /// Null without a stock figure.
    pub days_of_cover: Option<f64>,
    pub stockout_risk: Option<f64>,
    /// Whether to order now; null without a stock figure.
    pub reorder: Option<bool>,
    /// More than 90 days of cover; null without a stock figure.
    pub overstock: Option<bool>,
    pub suggested_order: Option<f64>,
    pub model: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reorder {
    pub lead_time_days: f64,
    pub service_level: f64,
    /// When the list was computed (by a request or by the scheduled `forecast` task).
    pub computed_at: Timestamp,
    /// Items considered: the best sellers of the last 90 days, at most 200.
    pub items_considered: usize,
    /// Items considered that have a stock figure.
    pub items_with_stock: usize,
    /// Items with a stock figure that should be reordered now (the first lines of `items`).
    pub reorder_now: usize,
    /// Items with a stock figure and over 90 days of cover (listed after those to reorder).
    pub overstocked: usize,
    /// Items with a stock figure that should be reordered now, most urgent first, then items without stock
    /// figures by demand.
    pub items: Vec<ReorderLine>,
}

/// Reorder suggestions from daily demand forecasts for the best sellers of the last 90 days (at most 200).
/// Items with `stock_quantity` get a full policy (reorder now or not, quantity, days of cover, stockout
/// risk, overstock) and are listed when due (most at risk first) or overstocked; items without a stock figure are listed with `stock: null` and
/// only their safety stock and reorder point. With the default policy the list computed by the latest
/// `forecast` task is served when it is as recent as the analytics.
#[utoipa::path(get, path = "/v1/inventory/reorder", tag = "insights", params(ReorderParams),
    responses((status = 200, body = Reorder), (status = 400, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn reorder(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ReorderParams>,
) -> ApiResult<Json<Reorder>> {
    caller.require_secret()?;
    let (lead_time_days, service_level) = reorder_params(&params)?;
    let analytics = analytics(&state, &caller.tenant).await?;
    let reorder = reorder_suggestions(&state, &caller.tenant, analytics, lead_time_days, service_level).await?;
    Ok(Json(reorder_view(reorder)))
}

/// Checked reorder parameters: lead time in days and service level.
pub(crate) fn reorder_params(params: &ReorderParams) -> ApiResult<(f64, f64)> {
    let lead_time_days = params.lead_time_days.unwrap_or(DEFAULT_LEAD_TIME_DAYS);
    if !(1.0..=365.0).contains(&lead_time_days) {
        return Err(ApiError::invalid_parameter("`lead_time_days` must be between 1 and 365"));
    }
    let service_level = params.service_level.unwrap_or(DEFAULT_SERVICE_LEVEL);
    if !(0.5..=0.9999).contains(&service_level) {
        return Err(ApiError::invalid_parameter("`service_level` must be between 0.5 and 0.9999"));
    }
    Ok((lead_time_days, service_level))
}

/// The reorder list for a policy: the forecast task's list when it matches (default policy, same analytics),
/// else computed now on a blocking thread.
pub(crate) async fn reorder_suggestions(
    state: &AppState,
    tenant: &TenantId,
    analytics: Arc<TenantAnalytics>,
    lead_time_days: f64,
    service_level: f64,
) -> ApiResult<reorder::Reorder> {
    let insights = state.engine.insights();
    if let Some(reorder) = insights.precomputed_reorder(tenant, &analytics, lead_time_days, service_level) {
        return Ok(reorder);
    }
    let tenant = tenant.clone();
    state.run(move |engine| engine.insights().reorder(&tenant, &analytics, lead_time_days, service_level)).await
}

fn reorder_view(reorder: reorder::Reorder) -> Reorder {
    let line = |l: reorder::ReorderLine| ReorderLine {
        item_id: l.item_id,
        title: l.title,
        stock: l.stock,
        units_last_90d: l.units_last_90d,
        daily_demand: l.daily_demand,
        lead_time_demand: l.lead_time_demand,
        safety_stock: l.safety_stock,
        reorder_point: l.reorder_point,
        days_of_cover: l.days_of_cover,
        stockout_risk: l.stockout_risk,
        reorder: l.reorder,
        overstock: l.overstock,
        suggested_order: l.suggested_order,
        model: l.model,
    };
    Reorder {
        lead_time_days: reorder.lead_time_days,
        service_level: reorder.service_level,
        computed_at: reorder.computed_at,
        items_considered: reorder.items_considered,
        items_with_stock: reorder.items_with_stock,
        reorder_now: reorder.reorder_now,
        overstocked: reorder.overstocked,
        items: reorder.items.into_iter().map(line).collect(),
    }
}
