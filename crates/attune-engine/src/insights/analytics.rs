//! A tenant's analytics as one value: the customer model (BG/NBD + Gamma-Gamma + RFM) and the demand history
//! that forecasts and reorder suggestions are computed from, built by one scan of the event log
//! (`Store::events_after`, in chunks); the numerics live in `attune-insights`.
//!
//! Conventions:
//! * a customer is a `user_id`; anonymous purchases are left out;
//! * transactions have day granularity (UTC): several orders on one day are one transaction;
//! * revenue is the sum of the purchase lines' totals; returns are not subtracted (yet);
//! * only purchases in the tenant's main currency (the one with the most purchase lines) are valued;
//! * the calibration end is the day of the tenant's last event (by event time, any type), so a demo data
//!   set from the past is valued as of its own end, not as of today;
//! * model time is measured in weeks.

use crate::error::EngineResult;
use attune_core::{Currency, EventKind, ItemId, Money, TenantId, Timestamp, UserId};
use attune_insights::InsightsError;
use attune_insights::clv::{
    BgNbdParams, GammaGammaParams, LifetimeValueSettings, PurchaseSummary, RfmInput, RfmScore, Segment,
    SpendObservation, Transaction, expected_lifetime_value, fit_bg_nbd, fit_gamma_gamma, rfm_segments,
    summarize_transactions,
};
use attune_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Events read per store call while scanning the log.
const SCAN_CHUNK: usize = 5_000;
/// Days in one model time unit (weeks).
pub const DAYS_PER_PERIOD: f64 = 7.0;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What the engine knows about a tenant's customers and demand, as of `fitted_at`.
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

/// Scans the event log once and fits the models, calling `scanned` with the events read so far after each
/// chunk. Runs on a blocking thread.
pub fn build(
    store: &dyn Store,
    tenant: &TenantId,
    events: u64,
    scanned: &mut dyn FnMut(u64),
) -> EngineResult<TenantAnalytics> {
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

impl TenantAnalytics {
    /// The customer model, or `not_enough_data` saying why it could not be fitted.
    pub fn customer_model(&self) -> EngineResult<&CustomerModel> {
        self.customers.as_ref().map_err(|why| crate::error::EngineError::NotEnoughData(why.clone()))
    }
}

/// A day number as `YYYY-MM-DD`.
pub fn day_text(day: i64) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).map(|d| d.to_string()).unwrap_or_default()
}
