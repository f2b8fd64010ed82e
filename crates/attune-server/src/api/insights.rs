//! Predictive analytics endpoints: a customer's predicted value, segments, customers at risk, demand
//! forecasts and reorder suggestions. The models are built by [`crate::insights`] on blocking threads.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::insights::{
    CustomerInsight, CustomerModel, TenantAnalytics, customer_model, insights_error, tenant_analytics,
};
use crate::state::{AppState, blocking};
use attune_core::money::MoneyText;
use attune_core::{ItemId, TenantId, Timestamp, UserId};
use attune_insights::forecast::{ForecastSettings, forecast_auto, forecast_many, rolling_origin};
use attune_insights::inventory::{LeadTime, OrderRules, PolicySettings, StockPosition, inventory_policy};
use attune_store::Store;
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Parameters of the fitted models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub fitted_at: Timestamp,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// UTC day of the tenant's last event: predictions are made as of this day.
    pub calibration_end: String,
    /// BG/NBD purchase-rate shape and scale (time unit: weeks).
    pub r: f64,
    pub alpha: f64,
    /// BG/NBD dropout shape parameters.
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
    /// Probability the customer is still active (BG/NBD).
    pub p_alive: f64,
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
    pub mean_p_alive: f64,
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
    pub limit: Option<usize>,
    /// Customers with a P(alive) below this are at risk, 0 to 1 (default 0.5).
    pub max_p_alive: Option<f64>,
    /// Customers silent for this many times their mean gap between purchases are at risk, at least 1
    /// (default 3).
    pub min_overdue: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AtRiskCustomer {
    pub user_id: String,
    pub p_alive: f64,
    /// max(1 − P(alive), 1 − 1/overdue).
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

pub(crate) fn day_text(day: i64) -> String {
    NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).map(|d| d.to_string()).unwrap_or_default()
}

pub(crate) fn model_info(analytics: &TenantAnalytics, model: &CustomerModel) -> ModelInfo {
    ModelInfo {
        fitted_at: analytics.fitted_at,
        customers: model.customers.len(),
        calibration_end: day_text(analytics.end_day),
        r: model.bg_nbd.r,
        alpha: model.bg_nbd.alpha,
        a: model.bg_nbd.a,
        b: model.bg_nbd.b,
        p: model.gamma_gamma.p,
        q: model.gamma_gamma.q,
        gamma: model.gamma_gamma.gamma,
    }
}

pub(crate) fn customer_insights(
    analytics: &TenantAnalytics,
    model: &CustomerModel,
    c: &CustomerInsight,
) -> CustomerInsights {
    CustomerInsights {
        user_id: c.user_id.to_string(),
        p_alive: c.p_alive,
        expected_purchases_90d: c.expected_purchases_90d,
        expected_value_12m: model.money(c.expected_value_12m).into(),
        historical_value: model.money(c.total_spend).into(),
        segment: c.segment.name().to_string(),
        suggested_action: c.segment.suggested_action().to_string(),
        rfm: RfmScores { recency: c.rfm.recency, frequency: c.rfm.frequency, monetary: c.rfm.monetary },
        frequency: c.purchases.frequency,
        recency_days: c.last_day - c.first_day,
        tenure_days: analytics.end_day - c.first_day,
        model: model_info(analytics, model),
    }
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
    let analytics = tenant_analytics(&state, &caller.tenant).await?;
    let model = customer_model(&analytics)?;
    let c = model.customer(&id).ok_or_else(|| ApiError::not_found("customer with purchases"))?;
    Ok(Json(customer_insights(&analytics, model, c)))
}

pub(crate) fn segment_summaries(model: &CustomerModel) -> Vec<SegmentSummary> {
    // (customers, sum of P(alive), expected value, historical value)
    let mut by_segment: BTreeMap<_, (usize, f64, f64, f64)> = BTreeMap::new();
    for c in &model.customers {
        let entry = by_segment.entry(c.segment).or_default();
        entry.0 += 1;
        entry.1 += c.p_alive;
        entry.2 += c.expected_value_12m;
        entry.3 += c.total_spend;
    }
    by_segment
        .into_iter()
        .map(|(segment, (n, p_alive, value, spent))| SegmentSummary {
            segment: segment.name().to_string(),
            suggested_action: segment.suggested_action().to_string(),
            customers: n,
            mean_p_alive: p_alive / n as f64,
            expected_value_12m: model.money(value).into(),
            historical_value: model.money(spent).into(),
        })
        .collect()
}

/// Customer segments (RFM) with their size, mean P(alive) and expected 12-month value.
#[utoipa::path(get, path = "/v1/customers/segments", tag = "insights",
    responses((status = 200, body = Segments), (status = 422, body = crate::error::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn segments(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Segments>> {
    caller.require_secret()?;
    let analytics = tenant_analytics(&state, &caller.tenant).await?;
    let model = customer_model(&analytics)?;
    Ok(Json(Segments {
        customers: model.customers.len(),
        segments: segment_summaries(model),
        model: model_info(&analytics, model),
    }))
}

/// Days since the last purchase over the customer's mean days between purchase days (repeat customers).
pub(crate) fn overdue(model_end_day: i64, c: &CustomerInsight) -> f64 {
    let mean_gap = ((c.last_day - c.first_day) as f64 / f64::from(c.purchases.frequency.max(1))).max(1.0);
    (model_end_day - c.last_day) as f64 / mean_gap
}

/// Risk of having left: the larger of the model's 1 − P(alive) and the lapse rule 1 − 1/overdue. The lapse
/// rule matters where the fitted dropout is negligible (the demo's BG/NBD fit has a ≈ 0.003, so P(alive) is
/// near 1 for everyone and cannot single out lapsed buyers on its own).
pub(crate) fn churn_risk(end_day: i64, c: &CustomerInsight) -> f64 {
    let lapse = overdue(end_day, c);
    (1.0 - c.p_alive).max(if lapse > 1.0 { 1.0 - 1.0 / lapse } else { 0.0 })
}

/// Repeat customers at risk, most value at risk (revenue so far × churn risk) first: P(alive) below
/// `max_p_alive`, or silent for at least `min_overdue` times their usual gap and at least 30 days.
pub(crate) fn at_risk_customers(
    model: &CustomerModel,
    end_day: i64,
    max_p_alive: f64,
    min_overdue: f64,
) -> Vec<&CustomerInsight> {
    let mut list: Vec<&CustomerInsight> = model
        .customers
        .iter()
        .filter(|c| c.purchases.frequency > 0)
        .filter(|c| c.p_alive < max_p_alive || (end_day - c.last_day >= 30 && overdue(end_day, c) >= min_overdue))
        .collect();
    let risk = |c: &CustomerInsight| c.total_spend * churn_risk(end_day, c);
    list.sort_by(|a, b| risk(b).total_cmp(&risk(a)).then(a.user_id.cmp(&b.user_id)));
    list
}

pub(crate) fn at_risk_entry(model: &CustomerModel, end_day: i64, c: &CustomerInsight) -> AtRiskCustomer {
    let risk = churn_risk(end_day, c);
    AtRiskCustomer {
        user_id: c.user_id.to_string(),
        p_alive: c.p_alive,
        churn_risk: risk,
        overdue: overdue(end_day, c),
        historical_value: model.money(c.total_spend).into(),
        value_at_risk: model.money(c.total_spend * risk).into(),
        expected_value_12m: model.money(c.expected_value_12m).into(),
        segment: c.segment.name().to_string(),
        last_purchase: day_text(c.last_day),
    }
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
    let analytics = tenant_analytics(&state, &caller.tenant).await?;
    let model = customer_model(&analytics)?;
    let end_day = analytics.end_day;
    let list = at_risk_customers(model, end_day, max_p_alive, min_overdue);
    Ok(Json(AtRisk {
        total: list.len(),
        customers: list.into_iter().take(limit).map(|c| at_risk_entry(model, end_day, c)).collect(),
    }))
}

/// Time buckets of a demand series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
}

impl Granularity {
    pub fn parse(text: Option<&str>) -> ApiResult<Self> {
        match text.unwrap_or("week") {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            other => {
                Err(ApiError::invalid_parameter(format!("`granularity` must be day, week or month, not `{other}`")))
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The bucket of a day number: the day itself, weeks starting on Monday, calendar months.
    fn bucket(self, day: i64) -> i64 {
        match self {
            Self::Day => day,
            // 1970-01-05 (day 4) was a Monday.
            Self::Week => (day - 4).div_euclid(7),
            Self::Month => {
                let date = NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap_or_default();
                i64::from(date.year()) * 12 + i64::from(date.month0())
            }
        }
    }

    /// The first day of a bucket, `YYYY-MM-DD`.
    fn label(self, bucket: i64) -> String {
        match self {
            Self::Day => day_text(bucket),
            Self::Week => day_text(bucket * 7 + 4),
            Self::Month => {
                let (year, month0) = (bucket.div_euclid(12), bucket.rem_euclid(12));
                NaiveDate::from_ymd_opt(year as i32, month0 as u32 + 1, 1).map(|d| d.to_string()).unwrap_or_default()
            }
        }
    }

    /// The season length used when the history covers at least two seasons.
    fn season(self, periods: usize) -> usize {
        let season = match self {
            Self::Day => 7,
            Self::Week => 52,
            Self::Month => 12,
        };
        if periods >= 2 * season { season } else { 1 }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// The item to forecast; the tenant's total demand when neither this nor `category` is given.
    pub item_id: Option<String>,
    /// A category path (`Home > Kitchen`) or its first levels: the summed demand of its items.
    pub category: Option<String>,
    /// `day`, `week` (default) or `month`.
    pub granularity: Option<String>,
    /// Periods ahead, 1 to 365 (default 12).
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

/// Backtest origins of a forecast response.
const BACKTEST_ORIGINS: usize = 3;

/// Units per period from the period of the first recorded sale to the last complete period ending on or
/// before `end_day`, zero-filled. A period cut short by the calibration end (the week or month of the last
/// event) is left out, so it does not read as a drop in demand.
fn demand_series(daily: &BTreeMap<i64, f64>, granularity: Granularity, end_day: i64) -> (i64, Vec<f64>) {
    let end_bucket = granularity.bucket(end_day);
    let last = if granularity.bucket(end_day + 1) == end_bucket { end_bucket - 1 } else { end_bucket };
    let Some((&first_day, _)) = daily.first_key_value() else { return (last + 1, Vec::new()) };
    let first = granularity.bucket(first_day);
    let mut series = vec![0.0; (last - first + 1).max(0) as usize];
    for (&day, &quantity) in daily.range(..=end_day) {
        if let Some(slot) = series.get_mut((granularity.bucket(day) - first) as usize) {
            *slot += quantity;
        }
    }
    (first, series)
}

/// What a demand forecast is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ForecastTarget {
    Total,
    Item(ItemId),
    /// Category path levels (a prefix of the items' paths).
    Category(Vec<String>),
}

/// Whether `path` starts with the levels of `prefix` (case-insensitive).
fn category_has_prefix(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(level, wanted)| level.eq_ignore_ascii_case(wanted))
}

/// The daily demand of a target and how many items it sums; `invalid_parameter` for an unknown item or a
/// category without items. Reads the catalog: call on a blocking thread.
pub(crate) fn target_demand(
    store: &dyn Store,
    tenant: &TenantId,
    analytics: &TenantAnalytics,
    target: &ForecastTarget,
) -> ApiResult<(BTreeMap<i64, f64>, Option<usize>)> {
    match target {
        ForecastTarget::Total => Ok((analytics.demand.total.clone(), None)),
        ForecastTarget::Item(id) => {
            if store.item(tenant, id)?.is_none() {
                return Err(ApiError::invalid_parameter(format!("`item_id`: item `{id}` is not in the catalog")));
            }
            Ok((analytics.demand.items.get(id).cloned().unwrap_or_default(), Some(1)))
        }
        ForecastTarget::Category(levels) => {
            let members: Vec<ItemId> = store
                .all_items(tenant)?
                .into_iter()
                .filter(|item| category_has_prefix(&item.category_path, levels))
                .map(|item| item.id)
                .collect();
            if members.is_empty() {
                return Err(ApiError::invalid_parameter(format!(
                    "`category`: no catalog item is in `{}`",
                    levels.join(" > ")
                )));
            }
            let mut daily: BTreeMap<i64, f64> = BTreeMap::new();
            for id in &members {
                for (day, quantity) in analytics.demand.items.get(id).into_iter().flatten() {
                    *daily.entry(*day).or_default() += quantity;
                }
            }
            Ok((daily, Some(members.len())))
        }
    }
}

/// Forecasts a daily demand history aggregated to `granularity`. CPU-heavy: call on a blocking thread.
pub(crate) fn forecast_demand(
    analytics: &TenantAnalytics,
    target: &ForecastTarget,
    daily: &BTreeMap<i64, f64>,
    items: Option<usize>,
    granularity: Granularity,
    horizon: usize,
) -> ApiResult<DemandForecast> {
    let (first, series) = demand_series(daily, granularity, analytics.end_day);
    let season = granularity.season(series.len());
    let fitted = forecast_auto(&series, &ForecastSettings::new(season, horizon)).map_err(insights_error)?;
    let next = first + series.len() as i64;
    let f = &fitted.forecast;
    // Backtest over a horizon the history can afford: at most the requested one, at most a quarter of it.
    let backtest_horizon = horizon.min(series.len() / 4).max(1);
    let backtest =
        rolling_origin(&series, &ForecastSettings::new(season, backtest_horizon), BACKTEST_ORIGINS, backtest_horizon)
            .ok()
            .map(|report| BacktestSummary {
                origins: report.folds.len(),
                horizon: backtest_horizon,
                mase: report.mean_mase.is_finite().then_some(report.mean_mase),
                smape: report.mean_smape,
            });
    Ok(DemandForecast {
        backtest,
        item_id: match target {
            ForecastTarget::Item(id) => Some(id.to_string()),
            _ => None,
        },
        category: match target {
            ForecastTarget::Category(levels) => Some(levels.join(" > ")),
            _ => None,
        },
        items,
        granularity: granularity.name().to_string(),
        model: fitted.method().to_string(),
        season,
        level: f.level,
        history: series
            .iter()
            .enumerate()
            .map(|(i, q)| DemandPoint { period: granularity.label(first + i as i64), quantity: *q })
            .collect(),
        forecast: (0..f.horizon())
            .map(|h| ForecastPoint {
                period: granularity.label(next + h as i64),
                mean: f.mean[h].max(0.0),
                lower: f.lower[h],
                upper: f.upper[h],
            })
            .collect(),
    })
}

/// Parsed and checked forecast parameters.
pub(crate) fn forecast_params(params: &ForecastParams) -> ApiResult<(ForecastTarget, Granularity, usize)> {
    let granularity = Granularity::parse(params.granularity.as_deref())?;
    let horizon = params.horizon.unwrap_or(12);
    if !(1..=365).contains(&horizon) {
        return Err(ApiError::invalid_parameter("`horizon` must be between 1 and 365"));
    }
    let item = params.item_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let category = params.category.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let target = match (item, category) {
        (Some(_), Some(_)) => return Err(ApiError::invalid_parameter("give `item_id` or `category`, not both")),
        (Some(id), None) => ForecastTarget::Item(
            ItemId::parse_field("item_id", id.to_string()).map_err(|e| ApiError::invalid_parameter(e.message))?,
        ),
        (None, Some(path)) => {
            let levels: Vec<String> =
                path.split('>').map(|level| level.trim().to_string()).filter(|l| !l.is_empty()).collect();
            if levels.is_empty() {
                return Err(ApiError::invalid_parameter("`category` must name at least one level"));
            }
            ForecastTarget::Category(levels)
        }
        (None, None) => ForecastTarget::Total,
    };
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
    let analytics = tenant_analytics(&state, &caller.tenant).await?;
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let result = blocking(move || {
        let (daily, items) = target_demand(store.as_ref(), &tenant, &analytics, &target)?;
        forecast_demand(&analytics, &target, &daily, items, granularity, horizon)
    })
    .await?;
    Ok(Json(result))
}

/// Items considered for reorder suggestions: the best sellers of the last [`RECENT_DAYS`] days.
const REORDER_ITEMS: usize = 200;
const RECENT_DAYS: i64 = 90;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReorderParams {
    /// Mean replenishment lead time in days, 1 to 365 (default 14).
    pub lead_time_days: Option<f64>,
    /// Cycle service level, strictly between 0 and 1 (default 0.95).
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

/// Default replenishment lead time of reorder suggestions, in days.
pub const DEFAULT_LEAD_TIME_DAYS: f64 = 14.0;
/// Default cycle service level of reorder suggestions.
pub const DEFAULT_SERVICE_LEVEL: f64 = 0.95;

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
    let analytics = tenant_analytics(&state, &caller.tenant).await?;
    Ok(Json(reorder_suggestions(&state, &caller.tenant, analytics, lead_time_days, service_level).await?))
}

/// Checked reorder parameters: lead time in days and service level.
pub(crate) fn reorder_params(params: &ReorderParams) -> ApiResult<(f64, f64)> {
    let lead_time_days = params.lead_time_days.unwrap_or(DEFAULT_LEAD_TIME_DAYS);
    if !(1.0..=365.0).contains(&lead_time_days) {
        return Err(ApiError::invalid_parameter("`lead_time_days` must be between 1 and 365"));
    }
    let service_level = params.service_level.unwrap_or(DEFAULT_SERVICE_LEVEL);
    if !(service_level > 0.0 && service_level < 1.0) {
        return Err(ApiError::invalid_parameter("`service_level` must be strictly between 0 and 1"));
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
) -> ApiResult<Reorder> {
    if lead_time_days == DEFAULT_LEAD_TIME_DAYS
        && service_level == DEFAULT_SERVICE_LEVEL
        && let Some(snapshot) = state.cached_forecasts(tenant)
        && snapshot.analytics_events == analytics.events
        && snapshot.analytics_fitted_at == analytics.fitted_at
    {
        return Ok(snapshot.reorder.clone());
    }
    let store = state.store.clone();
    let tenant = tenant.clone();
    blocking(move || compute_reorder(store.as_ref(), &tenant, &analytics, lead_time_days, service_level)).await
}

/// Computes the reorder list (see [`reorder`]). CPU-heavy: call on a blocking thread.
pub(crate) fn compute_reorder(
    store: &dyn Store,
    tenant: &TenantId,
    analytics: &TenantAnalytics,
    lead_time_days: f64,
    service_level: f64,
) -> ApiResult<Reorder> {
    let since = analytics.end_day - RECENT_DAYS;
    let mut recent: Vec<(&ItemId, f64)> = analytics
        .demand
        .items
        .iter()
        .map(|(id, daily)| (id, daily.range(since + 1..=analytics.end_day).map(|(_, q)| q).sum::<f64>()))
        .filter(|(_, units)| *units > 0.0)
        .collect();
    recent.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    recent.truncate(REORDER_ITEMS);
    let ids: Vec<ItemId> = recent.iter().map(|(id, _)| (*id).clone()).collect();
    let catalog: BTreeMap<ItemId, (String, Option<i64>)> =
        store.items(tenant, &ids)?.into_iter().map(|i| (i.id, (i.title, i.stock_quantity))).collect();
    let horizon = lead_time_days.ceil() as usize + 1;
    let series: Vec<Vec<f64>> = recent
        .iter()
        .map(|(id, _)| demand_series(&analytics.demand.items[*id], Granularity::Day, analytics.end_day).1)
        .collect();
    let forecasts = forecast_many(&series, &ForecastSettings::new(7, horizon));
    let settings = PolicySettings { service_level, ..Default::default() };
    let lead_time = LeadTime { mean: lead_time_days, sd: 0.0 };
    let mut due = Vec::new();
    let mut overstocked = Vec::new();
    let mut without_stock = Vec::new();
    let mut with_stock = 0;
    for ((id, units), fitted) in recent.iter().zip(forecasts) {
        let Ok(fitted) = fitted else { continue };
        let (title, stock) = catalog.get(*id).cloned().map_or((None, None), |(t, s)| (Some(t), s));
        let position = StockPosition { on_hand: stock.unwrap_or(0) as f64, ..Default::default() };
        let policy = inventory_policy(&fitted.forecast, &position, &lead_time, &OrderRules::default(), &settings)
            .map_err(insights_error)?;
        let known = stock.is_some();
        with_stock += usize::from(known);
        let line = ReorderLine {
            item_id: id.to_string(),
            title,
            stock,
            units_last_90d: *units,
            daily_demand: policy.lead_time_demand / lead_time_days,
            lead_time_demand: policy.lead_time_demand,
            safety_stock: policy.safety_stock,
            reorder_point: policy.reorder_point,
            days_of_cover: known.then_some(policy.days_of_cover).filter(|d| d.is_finite()),
            stockout_risk: known.then_some(policy.stockout_risk),
            reorder: known.then_some(policy.reorder),
            overstock: known.then_some(policy.overstock),
            suggested_order: known.then_some(policy.suggested_order),
            model: fitted.method().to_string(),
        };
        match (known, policy.reorder, policy.overstock) {
            (true, true, _) => due.push((policy.stockout_risk, line)),
            (true, false, true) => overstocked.push((policy.days_of_cover, line)),
            (true, false, false) => {}
            (false, _, _) => without_stock.push(line),
        }
    }
    due.sort_by(|a, b| b.0.total_cmp(&a.0));
    overstocked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (reorder_now, overstocked_count) = (due.len(), overstocked.len());
    let mut items: Vec<ReorderLine> = due.into_iter().map(|(_, line)| line).collect();
    items.extend(overstocked.into_iter().map(|(_, line)| line));
    items.extend(without_stock);
    Ok(Reorder {
        lead_time_days,
        service_level,
        computed_at: Timestamp::now(),
        items_considered: recent.len(),
        items_with_stock: with_stock,
        reorder_now,
        overstocked: overstocked_count,
        items,
    })
}
