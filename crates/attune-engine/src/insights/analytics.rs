//! A tenant's analytics as one value: the customer model (MBG/NBD + Gamma-Gamma + RFM) and the demand history
//! that forecasts and reorder suggestions are computed from, built by one scan of the event log
//! (`Store::events_after`, in chunks); the numerics live in `attune-insights`.
//!
//! Conventions:
//! * a customer is a `user_id`; anonymous purchases are left out;
//! * transactions have day granularity (UTC): several orders on one day are one transaction;
//! * revenue is the sum of the purchase lines' totals (summed in 128 bits); returns are not subtracted;
//! * only purchases in the tenant's main currency (the one with the most purchase lines) are valued;
//! * the analytics are computed over an explicit [`ObservationWindow`]: its as-of day is the day of the
//!   tenant's last event (by event time, any type) that is not a stray far from the bulk of the events, and
//!   never after today; a data set from the past is valued as of its own end;
//! * P(alive) and expected purchases come from MBG/NBD, which lets one-time buyers drop out (BG/NBD gives
//!   them P(alive) = 1); the figures are served only when [`check_customer_model`] accepts the fit, and
//!   P(alive) only when [`check_dropout`] finds measurable dropout (on Online Retail I, BG/NBD, MBG/NBD and
//!   Pareto/NBD all fit no dropout at all, so P(alive) ≈ 1 for everyone would be an artefact, not a finding);
//! * model time is measured in weeks.

use super::window::{ObservationWindow, observation_window};
use crate::error::{EngineError, EngineResult};
use attune_core::Purpose;
use attune_core::time::MILLIS_PER_DAY;
use attune_core::{Currency, EventKind, ItemId, Money, TenantId, Timestamp, UserId};
use attune_insights::InsightsError;
use attune_insights::clv::{
    CustomerModelFit, CustomerSummary, GammaGammaParams, IdentifiabilityRules, LifetimeValueSettings, MbgNbdParams,
    PurchaseSummary, RepeatPurchaseModel, RfmInput, RfmScore, Segment, SpendObservation, Transaction,
    check_customer_counts, check_customer_model, check_dropout, expected_lifetime_value, fit_gamma_gamma, fit_mbg_nbd,
    rfm_segments, summarize_transactions,
};
use attune_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Events read per store call while scanning the log.
const SCAN_CHUNK: usize = 5_000;
/// Days in one model time unit (weeks).
pub const DAYS_PER_PERIOD: f64 = 7.0;
/// The largest amount (in minor units) an analytic figure may have: 2⁵³, the largest integer an `f64`
/// holds exactly; anything larger is an error, never a wrapped or saturated number.
const MAX_MONEY_MINOR_UNITS: f64 = 9_007_199_254_740_992.0;
/// What the console and the API say the customer figures come from.
pub const CUSTOMER_MODEL_NAMES: &str = "MBG/NBD (P(alive), purchases) and Gamma-Gamma (spend)";

/// What the engine knows about a tenant's customers and demand, as of `fitted_at`.
pub struct TenantAnalytics {
    /// The tenant's event count when this was built.
    pub events: u64,
    pub built_at: Instant,
    pub fitted_at: Timestamp,
    /// Day number (days since 1970-01-01, UTC) the analytics are as of: `window.as_of`.
    pub end_day: i64,
    /// The days the analytics read.
    pub window: ObservationWindow,
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
    /// P(alive) and expected purchases.
    pub mbg_nbd: MbgNbdParams,
    /// Why P(alive) is not served, when the fit finds no measurable dropout (`None`: it is identified).
    pub p_alive_unidentified: Option<String>,
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
    /// P(alive) from MBG/NBD; `None` when the fit does not identify dropout
    /// ([`CustomerModel::p_alive_unidentified`] says why).
    pub p_alive: Option<f64>,
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

    /// An amount in major units of the model currency, rounded to minor units; an error (never a wrapped or
    /// saturated amount) when it is not finite or too large to be exact.
    pub fn money(&self, major: f64) -> EngineResult<Money> {
        money_of(major, self.currency)
    }
}

/// `major` units of `currency` as [`Money`], checked.
pub fn money_of(major: f64, currency: Currency) -> EngineResult<Money> {
    let minor = (major * 10_f64.powi(currency.exponent() as i32)).round();
    if minor.is_finite() && minor.abs() <= MAX_MONEY_MINOR_UNITS {
        Ok(Money::new(minor as i64, currency))
    } else {
        Err(EngineError::NotEnoughData(format!("an amount of {major:e} {currency} is out of range")))
    }
}

/// Day number (days since 1970-01-01 UTC) of a timestamp.
pub fn day_of(t: Timestamp) -> i64 {
    t.millis().div_euclid(MILLIS_PER_DAY)
}

/// What one scan of the event log collects.
#[derive(Default)]
struct Scan {
    read: u64,
    events_per_day: BTreeMap<i64, u64>,
    /// (customer, day, currency, minor units)
    purchases: Vec<(UserId, i64, Currency, i128)>,
    lines_per_currency: BTreeMap<Currency, u64>,
    demand: DemandHistory,
}

/// Scans the event log once and fits the models, calling `scanned` with the events read so far after each
/// chunk. Runs on a blocking thread.
pub fn build(
    store: &dyn Store,
    tenant: &TenantId,
    events: u64,
    scanned: &mut dyn FnMut(u64),
) -> EngineResult<TenantAnalytics> {
    let scan = scan_events(store, tenant, scanned)?;
    let window = observation_window(&scan.events_per_day, day_of(Timestamp::now()));
    let Scan { mut purchases, lines_per_currency, mut demand, .. } = scan;
    // Customers who withheld consent to analytics are left out of the customer models (their purchases still
    // count in the shop's demand, which names no one).
    let withholding = store.users_withholding(tenant, &Purpose::Analytics)?;
    purchases.retain(|(user, day, _, _)| window.contains(*day) && !withholding.contains(user));
    demand.total.retain(|day, _| window.contains(*day));
    for daily in demand.items.values_mut() {
        daily.retain(|day, _| window.contains(*day));
    }
    demand.items.retain(|_, daily| !daily.is_empty());
    let currency = lines_per_currency.into_iter().max_by_key(|(c, n)| (*n, std::cmp::Reverse(*c))).map(|(c, _)| c);
    let customers = match currency {
        None => Err("the tenant has no purchases yet".to_string()),
        Some(currency) => fit_customers(&purchases, currency, window.as_of).map_err(|e| e.to_string()),
    };
    Ok(TenantAnalytics {
        events,
        built_at: Instant::now(),
        fitted_at: Timestamp::now(),
        end_day: window.as_of,
        window,
        customers,
        demand,
    })
}

/// Reads the whole event log in chunks and collects events per day, purchases and demand.
fn scan_events(store: &dyn Store, tenant: &TenantId, scanned: &mut dyn FnMut(u64)) -> EngineResult<Scan> {
    let mut scan = Scan::default();
    let mut after = 0;
    loop {
        let chunk = store.events_after(tenant, after, SCAN_CHUNK)?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let full = chunk.len() == SCAN_CHUNK;
        scan.read += chunk.len() as u64;
        scanned(scan.read);
        for stored in chunk {
            scan.add(stored.event);
        }
        if !full {
            break;
        }
    }
    Ok(scan)
}

impl Scan {
    fn add(&mut self, event: attune_core::Event) {
        let day = day_of(event.timestamp);
        *self.events_per_day.entry(day).or_default() += 1;
        let EventKind::Purchase { lines, .. } = event.kind else { return };
        let mut totals: BTreeMap<Currency, i128> = BTreeMap::new();
        for line in lines {
            let quantity = f64::from(line.quantity);
            *self.demand.total.entry(day).or_default() += quantity;
            *self.demand.items.entry(line.item_id.clone()).or_default().entry(day).or_default() += quantity;
            *self.lines_per_currency.entry(line.unit_price.currency).or_default() += 1;
            *totals.entry(line.unit_price.currency).or_default() += i128::from(line.total_minor_units());
        }
        if let Some(user) = event.subject.user_id {
            for (currency, minor) in totals {
                self.purchases.push((user.clone(), day, currency, minor));
            }
        }
    }
}

fn fit_customers(
    purchases: &[(UserId, i64, Currency, i128)],
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
    let rules = IdentifiabilityRules { max_purchase_rate: DAYS_PER_PERIOD, ..Default::default() };
    let repeaters = summaries.iter().filter(|s| s.purchases.frequency > 0).count();
    check_customer_counts(summaries.len(), repeaters, &rules)?;
    let mbg = fit_mbg_nbd(&summaries.iter().map(|s| s.purchases).collect::<Vec<_>>())?;
    let spend: Vec<SpendObservation> = summaries
        .iter()
        .filter_map(|s| match s.mean_repeat_spend {
            Some(mean) if mean > 0.0 => Some(SpendObservation { frequency: s.purchases.frequency, mean_spend: mean }),
            _ => None,
        })
        .collect();
    let gg = fit_gamma_gamma(&spend)?;
    let p = mbg.params;
    check_customer_model(
        &CustomerModelFit {
            customers: summaries.len(),
            repeat_customers: repeaters,
            purchases: &p,
            purchase_parameters: [p.r, p.alpha, p.a, p.b],
            purchases_converged: mbg.converged,
            spend: gg.params,
            spend_converged: gg.converged,
            max_observed_spend: spend.iter().map(|o| o.mean_spend).fold(0.0, f64::max),
        },
        &rules,
    )?;
    let p_alive_unidentified = check_dropout(p.a, p.b, &rules).err();
    let customers = value_customers(summaries, end_day, &p, &gg.params, p_alive_unidentified.is_none())?;
    Ok(CustomerModel { currency, mbg_nbd: p, p_alive_unidentified, gamma_gamma: gg.params, customers })
}

/// Every customer's P(alive), expected purchases, value and RFM segment.
fn value_customers(
    summaries: Vec<CustomerSummary<UserId>>,
    end_day: i64,
    purchases_model: &MbgNbdParams,
    spend_model: &GammaGammaParams,
    dropout_identified: bool,
) -> Result<Vec<CustomerInsight>, InsightsError> {
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
        let expected_purchases_90d =
            purchases_model.conditional_expected_purchases(&s.purchases, 90.0 / DAYS_PER_PERIOD)?;
        let expected_value_12m =
            expected_lifetime_value(purchases_model, spend_model, &s.purchases, mean_spend, &value_settings)?;
        if !(expected_purchases_90d.is_finite() && expected_purchases_90d <= 90.0 && expected_value_12m.is_finite()) {
            return Err(InsightsError::NotIdentifiable(format!(
                "customer {} would get {expected_purchases_90d:e} purchases in 90 days and a value of {expected_value_12m:e}",
                s.customer
            )));
        }
        customers.push(CustomerInsight {
            p_alive: dropout_identified.then(|| purchases_model.p_alive(&s.purchases).clamp(0.0, 1.0)),
            expected_purchases_90d,
            expected_value_12m,
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
    Ok(customers)
}

impl TenantAnalytics {
    /// The customer model, or `insufficient_data` saying why it could not be fitted.
    pub fn customer_model(&self) -> EngineResult<&CustomerModel> {
        self.customers.as_ref().map_err(|why| EngineError::NotEnoughData(why.clone()))
    }
}

/// A day number as `YYYY-MM-DD`.
pub fn day_text(day: i64) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).map(|d| d.to_string()).unwrap_or_default()
}
