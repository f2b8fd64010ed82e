//! What the customer model says about groups of customers: segment summaries, churn risk and the customers
//! at risk of leaving, most value at risk first.

use super::analytics::{CustomerInsight, CustomerModel};
use crate::error::EngineResult;
use attune_core::Money;
use attune_insights::clv::Segment;
use std::collections::BTreeMap;

/// One RFM segment's size and value.
#[derive(Debug, Clone)]
pub struct SegmentSummary {
    pub segment: Segment,
    pub customers: usize,
    /// `None` when the model does not identify P(alive).
    pub mean_p_alive: Option<f64>,
    pub mean_expected_purchases_90d: f64,
    pub expected_value_12m: Money,
    pub historical_value: Money,
}

/// Every segment with customers, in segment order; an error when a sum is out of the range of money.
pub fn segment_summaries(model: &CustomerModel) -> EngineResult<Vec<SegmentSummary>> {
    // (customers, sum of P(alive), sum of expected purchases, expected value, historical value)
    let mut by_segment: BTreeMap<_, (usize, f64, f64, f64, f64)> = BTreeMap::new();
    for c in &model.customers {
        let entry = by_segment.entry(c.segment).or_default();
        entry.0 += 1;
        entry.1 += c.p_alive.unwrap_or(f64::NAN);
        entry.2 += c.expected_purchases_90d;
        entry.3 += c.expected_value_12m;
        entry.4 += c.total_spend;
    }
    by_segment
        .into_iter()
        .map(|(segment, (n, p_alive, purchases, value, spent))| {
            Ok(SegmentSummary {
                segment,
                customers: n,
                mean_p_alive: Some(p_alive / n as f64).filter(|p| p.is_finite()),
                mean_expected_purchases_90d: purchases / n as f64,
                expected_value_12m: model.money(value)?,
                historical_value: model.money(spent)?,
            })
        })
        .collect()
}

/// Days since the last purchase over the customer's mean days between purchase days (repeat customers).
pub fn overdue(model_end_day: i64, c: &CustomerInsight) -> f64 {
    let mean_gap = ((c.last_day - c.first_day) as f64 / f64::from(c.purchases.frequency.max(1))).max(1.0);
    (model_end_day - c.last_day) as f64 / mean_gap
}

/// Risk of having left: the larger of the model's 1 − P(alive) (when identified) and the lapse rule
/// 1 − 1/overdue. The lapse rule matters where the fitted dropout is small or not identified, so that buyers
/// long overdue by their own rhythm are still seen.
pub fn churn_risk(end_day: i64, c: &CustomerInsight) -> f64 {
    let lapse = overdue(end_day, c);
    let lapse_risk = if lapse > 1.0 { 1.0 - 1.0 / lapse } else { 0.0 };
    c.p_alive.map_or(lapse_risk, |p| (1.0 - p).max(lapse_risk))
}

/// Revenue so far × churn risk.
pub fn value_at_risk(end_day: i64, c: &CustomerInsight) -> f64 {
    c.total_spend * churn_risk(end_day, c)
}

/// Repeat customers at risk, most value at risk (revenue so far × churn risk) first: P(alive) below
/// `max_p_alive`, or silent for at least `min_overdue` times their usual gap and at least 30 days.
pub fn at_risk_customers(
    model: &CustomerModel,
    end_day: i64,
    max_p_alive: f64,
    min_overdue: f64,
) -> Vec<&CustomerInsight> {
    let mut list: Vec<&CustomerInsight> = model
        .customers
        .iter()
        .filter(|c| c.purchases.frequency > 0)
        .filter(|c| {
            c.p_alive.is_some_and(|p| p < max_p_alive)
                || (end_day - c.last_day >= 30 && overdue(end_day, c) >= min_overdue)
        })
        .collect();
    let risk = |c: &CustomerInsight| value_at_risk(end_day, c);
    list.sort_by(|a, b| risk(b).total_cmp(&risk(a)).then(a.user_id.cmp(&b.user_id)));
    list
}
