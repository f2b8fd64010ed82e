//! Per-tenant predictive analytics kept in memory: the customer model (BG/NBD + Gamma-Gamma + RFM) and
//! the demand history that forecasts and reorder suggestions are computed from.
//!
//! One scan of the tenant's event log (`Store::events_after`, in chunks) builds a [`TenantAnalytics`] on a
//! blocking thread; the numerics live in `attune-insights`. The result is cached in [`AppState`] together
//! with the event count it was built from, and rebuilt when that count changed and the cached model is older
//! than [`REBUILD_AFTER`].
//!
//! Conventions:
//! * a customer is a `user_id`; anonymous purchases are left out;
//! * transactions have day granularity (UTC): several orders on one day are one transaction;
//! * revenue is the sum of the purchase lines' totals; returns are not subtracted (yet);
//! * only purchases in the tenant's main currency (the one with the most purchase lines) are valued;
//! * the calibration end is the day of the tenant's last event (by event time, any type), so a demo data
//!   set from the past is valued as of its own end, not as of today;
//! * model time is measured in weeks.

use crate::api::insights::{Reorder, compute_reorder};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::{AppState, blocking};
use crate::tasks::TaskProgress;
use attune_core::{Currency, EventKind, ItemId, Money, TenantId, Timestamp, UserId};
use attune_insights::InsightsError;
use attune_insights::clv::{
    BgNbdParams, GammaGammaParams, LifetimeValueSettings, PurchaseSummary, RfmInput, RfmScore, Segment,
    SpendObservation, Transaction, expected_lifetime_value, fit_bg_nbd, fit_gamma_gamma, rfm_segments,
    summarize_transactions,
};
use attune_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cached model is rebuilt only when the tenant's event count changed and it is at least this old.
pub const REBUILD_AFTER: Duration = Duration::from_secs(60);
/// Events read per store call while scanning the log.
const SCAN_CHUNK: usize = 5_000;
/// Days in one model time unit (weeks).
pub const DAYS_PER_PERIOD: f64 = 7.0;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What the server knows about a tenant's customers and demand, as of `fitted_at`.
pub struct TenantAnalytics {
    /// The tenant's event count when this was built.
    pub events: u64,
    pub built_at: Instant,
    pub fitted_at: Timestamp,
    /// Day number (days since 1970-01-01, UTC) of the tenant's last event: the calibration end.
    pub end_day: i64,
    /// The customer model; `Err` says why it could not be fitted (too few customers, no purchases).
    pub customers: Result<CustomerModel, String>,
    pub demand: DemandHistory,
}

/// Units sold per day, per item and in total.
#[derive(Default)]
pub struct DemandHistory {
    pub total: BTreeMap<i64, f64>,
    pub items: HashMap<ItemId, BTreeMap<i64, f64>>,
}

/// The fitted customer model and every customer's predictions, sorted by user id.
pub struct CustomerModel {
    pub currency: Currency,
    pub bg_nbd: BgNbdParams,
    pub gamma_gamma: GammaGammaParams,
    pub customers: Vec<CustomerInsight>,
}

/// One customer's history and predictions.
pub struct CustomerInsight {
    pub user_id: UserId,
    /// Repeat purchases, recency and age in weeks.
    pub purchases: PurchaseSummary,
    /// Purchase days.
    pub transactions: u32,
    /// Revenue up to the calibration end, in major units of the model currency.
    pub total_spend: f64,
    pub first_day: i64,
    pub last_day: i64,
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// Expected revenue over the next 12 months, discounted 1 % a month, in major units.
    pub expected_value_12m: f64,
    pub rfm: RfmScore,
    pub segment: Segment,
}

impl CustomerModel {
    pub fn customer(&self, user: &UserId) -> Option<&CustomerInsight> {
        self.customers.binary_search_by(|c| c.user_id.cmp(user)).ok().map(|i| &self.customers[i])
    }

    /// An amount in major units of the model currency, rounded to minor units.
    pub fn money(&self, major: f64) -> Money {
        let scale = 10_f64.powi(self.currency.exponent() as i32);
        Money::new((major * scale).round() as i64, self.currency)
    }
}

/// Day number (days since 1970-01-01 UTC) of a timestamp.
pub fn day_of(t: Timestamp) -> i64 {
    t.millis().div_euclid(MILLIS_PER_DAY)
}

/// The analytics of `tenant`, from the cache when it is fresh enough, else rebuilt on a blocking thread.
pub async fn tenant_analytics(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantAnalytics>> {
    let cached = state.cached_analytics(tenant);
    if let Some(cached) = &cached
        && cached.built_at.elapsed() < REBUILD_AFTER
    {
        return Ok(cached.clone());
    }
    let state = state.clone();
    let tenant = tenant.clone();
    blocking(move || {
        // One build at a time per server: a burst of requests after a change waits for one scan, not many.
        let _building = state.analytics_build.lock().map_err(ApiError::internal)?;
        let events = state.store.stats(&tenant)?.events;
        if let Some(cached) = state.cached_analytics(&tenant)
            && (cached.events == events || cached.built_at.elapsed() < REBUILD_AFTER)
        {
            return Ok(cached);
        }
        let built = Arc::new(build(state.store.as_ref(), &tenant, events, &mut |_| {})?);
        state.cache_analytics(tenant, built.clone());
        Ok(built)
    })
    .await
}

/// The customer model of `tenant`, or `not_enough_data` when it could not be fitted.
pub fn customer_model(analytics: &TenantAnalytics) -> ApiResult<&CustomerModel> {
    analytics.customers.as_ref().map_err(|why| ApiError::new(ErrorKind::NotEnoughData, why.clone()))
}

/// Maps an analytics failure to the error table.
pub fn insights_error(error: InsightsError) -> ApiError {
    match error {
        InsightsError::NotEnoughData { .. } => ApiError::new(ErrorKind::NotEnoughData, error.to_string()),
        other => ApiError::internal(other),
    }
}

/// What the latest `forecast` task computed for a tenant, served while the analytics it came from are current.
pub struct ForecastSnapshot {
    /// `events` and `fitted_at` of the analytics it was computed from.
    pub analytics_events: u64,
    pub analytics_fitted_at: Timestamp,
    /// The reorder list with the default policy.
    pub reorder: Reorder,
}

/// The `forecast` task: rescans the event log and refits the customer model (replacing the cached analytics),
/// then forecasts daily demand for the best sellers and computes the reorder list with the default policy,
/// kept as the tenant's [`ForecastSnapshot`]. Runs on a blocking thread; returns a one-line summary.
pub fn run_forecast_task(state: &AppState, tenant: &TenantId, progress: &TaskProgress<'_>) -> ApiResult<String> {
    let analytics = {
        let _building = state.analytics_build.lock().map_err(ApiError::internal)?;
        let events = state.store.stats(tenant)?.events;
        progress.report("scanning events", 0.0);
        let total = events.max(1) as f64;
        let built = build(state.store.as_ref(), tenant, events, &mut |scanned| {
            progress.report("scanning events", 0.5 * scanned as f64 / total)
        })?;
        progress.report("fitting customer model", 0.5);
        let built = Arc::new(built);
        state.cache_analytics(tenant.clone(), built.clone());
        built
    };
    progress.report("forecasting demand", 0.6);
    let reorder = compute_reorder(
        state.store.as_ref(),
        tenant,
        &analytics,
        crate::api::insights::DEFAULT_LEAD_TIME_DAYS,
        crate::api::insights::DEFAULT_SERVICE_LEVEL,
    )?;
    let summary = format!(
        "{} events scanned; {}; {} items forecast, {} with stock figures, {} to reorder now",
        analytics.events,
        match &analytics.customers {
            Ok(model) => format!("{} customers valued", model.customers.len()),
            Err(why) => format!("no customer model ({why})"),
        },
        reorder.items_considered,
        reorder.items_with_stock,
        reorder.reorder_now,
    );
    state.cache_forecasts(
        tenant.clone(),
        Arc::new(ForecastSnapshot {
            analytics_events: analytics.events,
            analytics_fitted_at: analytics.fitted_at,
            reorder,
        }),
    );
    Ok(summary)
}

/// Scans the event log once and fits the models, calling `scanned` with the events read so far after each
/// chunk. Runs on a blocking thread.
fn build(
    store: &dyn Store,
    tenant: &TenantId,
    events: u64,
    scanned: &mut dyn FnMut(u64),
) -> ApiResult<TenantAnalytics> {
    let mut read: u64 = 0;
    let mut after = 0;
    let mut last_millis: Option<i64> = None;
    // (customer, day, currency, minor units)
    let mut purchases: Vec<(UserId, i64, Currency, i64)> = Vec::new();
    let mut lines_per_currency: BTreeMap<Currency, u64> = BTreeMap::new();
    let mut demand = DemandHistory::default();
    loop {
        let chunk = store.events_after(tenant, after, SCAN_CHUNK)?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let full = chunk.len() == SCAN_CHUNK;
        read += chunk.len() as u64;
        scanned(read);
        for stored in chunk {
            let event = stored.event;
            let millis = event.timestamp.millis();
            last_millis = Some(last_millis.map_or(millis, |m| m.max(millis)));
            let EventKind::Purchase { lines, .. } = event.kind else { continue };
            let day = day_of(event.timestamp);
            let mut totals: BTreeMap<Currency, i64> = BTreeMap::new();
            for line in lines {
                let quantity = f64::from(line.quantity);
                *demand.total.entry(day).or_default() += quantity;
                *demand.items.entry(line.item_id.clone()).or_default().entry(day).or_default() += quantity;
                *lines_per_currency.entry(line.unit_price.currency).or_default() += 1;
                *totals.entry(line.unit_price.currency).or_default() += line.total_minor_units();
            }
            if let Some(user) = event.subject.user_id {
                for (currency, minor) in totals {
                    purchases.push((user.clone(), day, currency, minor));
                }
            }
        }
        if !full {
            break;
        }
    }
    let end_day = last_millis.map_or(0, |m| m.div_euclid(MILLIS_PER_DAY));
    let currency = lines_per_currency.into_iter().max_by_key(|(c, n)| (*n, std::cmp::Reverse(*c))).map(|(c, _)| c);
    let customers = match currency {
        None => Err("the tenant has no purchases yet".to_string()),
        Some(currency) => fit_customers(&purchases, currency, end_day).map_err(|e| e.to_string()),
    };
    Ok(TenantAnalytics { events, built_at: Instant::now(), fitted_at: Timestamp::now(), end_day, customers, demand })
}

fn fit_customers(
    purchases: &[(UserId, i64, Currency, i64)],
    currency: Currency,
    end_day: i64,
) -> Result<CustomerModel, InsightsError> {
    let scale = 10_f64.powi(currency.exponent() as i32);
    let transactions: Vec<Transaction<UserId>> = purchases
        .iter()
        .filter(|(_, _, c, _)| *c == currency)
        .map(|(user, day, _, minor)| Transaction { customer: user.clone(), day: *day, amount: *minor as f64 / scale })
        .collect();
    let summaries = summarize_transactions(&transactions, end_day, DAYS_PER_PERIOD)?;
    let bg = fit_bg_nbd(&summaries.iter().map(|s| s.purchases).collect::<Vec<_>>())?.params;
    let spend: Vec<SpendObservation> = summaries
        .iter()
        .filter_map(|s| match s.mean_repeat_spend {
            Some(mean) if mean > 0.0 => Some(SpendObservation { frequency: s.purchases.frequency, mean_spend: mean }),
            _ => None,
        })
        .collect();
    let gg = fit_gamma_gamma(&spend)?.params;
    let rfm = rfm_segments(
        &summaries
            .iter()
            .map(|s| RfmInput {
                days_since_last_purchase: (end_day - s.last_day) as f64,
                purchases: s.transactions,
                monetary: s.total_spend,
            })
            .collect::<Vec<_>>(),
    )?;
    let value_settings = LifetimeValueSettings { horizon: 365.25 / DAYS_PER_PERIOD, steps: 12, ..Default::default() };
    let mut customers = Vec::with_capacity(summaries.len());
    for (s, (score, segment)) in summaries.into_iter().zip(rfm) {
        let mean_spend = s.mean_repeat_spend.filter(|m| *m > 0.0);
        customers.push(CustomerInsight {
            p_alive: bg.p_alive(&s.purchases).clamp(0.0, 1.0),
            expected_purchases_90d: bg.conditional_expected_purchases(&s.purchases, 90.0 / DAYS_PER_PERIOD)?,
            expected_value_12m: expected_lifetime_value(&bg, &gg, &s.purchases, mean_spend, &value_settings)?,
            user_id: s.customer,
            purchases: s.purchases,
            transactions: s.transactions,
            total_spend: s.total_spend,
            first_day: s.first_day,
            last_day: s.last_day,
            rfm: score,
            segment,
        });
    }
    Ok(CustomerModel { currency, bg_nbd: bg, gamma_gamma: gg, customers })
}
