//! One item's policy, in forecast periods (a month, a week, a day).
//!
//! With L the lead time, R the review period, D(t) the forecast demand over the next t periods (whole
//! periods summed, a fraction of the next one prorated, the last forecast repeated beyond the horizon),
//! σ₁ the one-step forecast error and d̄ the mean demand per period over the lead time:
//!
//! * σ_L = √(L·σ₁² + d̄²·σ_LT²), the standard deviation of demand over a lead time of uncertain length;
//! * safety stock SS = z·σ_L, with z the standard normal quantile of the cycle service level;
//! * reorder point ROP = D(L) + SS; order-up-to level S = D(L+R) + z·σ_(L+R);
//! * inventory position IP = on hand + on order − backordered; reorder when IP ≤ ROP, for S − IP rounded
//!   up to the pack size and at least the minimum order;
//! * stockout risk = P(demand over the lead time > IP), the chance of running out before an order placed
//!   now arrives;
//! * days of cover = on hand / mean daily forecast demand; overstock when above the configured cover.

use crate::forecast::Forecast;
use crate::normal;
use crate::{InsightsError, Result};

/// Replenishment lead time, in forecast periods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeadTime {
    /// Mean lead time.
    pub mean: f64,
    /// Standard deviation of the lead time (0 when fixed).
    pub sd: f64,
}

/// Stock on hand and in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StockPosition {
    /// Units on hand.
    pub on_hand: f64,
    /// Units ordered and not yet received.
    pub on_order: f64,
    /// Units owed to customers.
    pub backordered: f64,
}

/// How orders must be sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRules {
    /// Orders are whole multiples of this (1 for single units; 0 for no rounding).
    pub pack_size: f64,
    /// Smallest order the supplier accepts.
    pub minimum_order: f64,
}

impl Default for OrderRules {
    fn default() -> Self {
        Self { pack_size: 1.0, minimum_order: 0.0 }
    }
}

/// Targets shared by all items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicySettings {
    /// Cycle service level: probability of no stockout in a replenishment cycle, in (0, 1).
    pub service_level: f64,
    /// Periods between stock reviews (0 for continuous review).
    pub review_period: f64,
    /// Days in one forecast period (for example 30.44 for months, 7 for weeks).
    pub days_per_period: f64,
    /// Days of cover above which an item is flagged as overstocked.
    pub overstock_cover_days: f64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self { service_level: 0.95, review_period: 0.0, days_per_period: 1.0, overstock_cover_days: 90.0 }
    }
}

/// One item's policy figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InventoryPolicy {
    /// Forecast demand over the lead time, D(L).
    pub lead_time_demand: f64,
    /// Standard deviation of demand over the lead time, σ_L.
    pub lead_time_demand_sd: f64,
    /// Safety stock z·σ_L.
    pub safety_stock: f64,
    /// Reorder point D(L) + safety stock.
    pub reorder_point: f64,
    /// Order-up-to level for a periodic review.
    pub order_up_to: f64,
    /// On hand + on order − backordered.
    pub inventory_position: f64,
    /// On hand over mean daily forecast demand (infinite without demand).
    pub days_of_cover: f64,
    /// Probability that lead-time demand exceeds the inventory position.
    pub stockout_risk: f64,
    /// Days of cover above the configured limit.
    pub overstock: bool,
    /// Inventory position at or below the reorder point.
    pub reorder: bool,
    /// Units to order now (0 when no reorder is due).
    pub suggested_order: f64,
}

/// Computes one item's policy from its demand forecast (whose first step is the next period).
pub fn inventory_policy(
    forecast: &Forecast,
    stock: &StockPosition,
    lead_time: &LeadTime,
    rules: &OrderRules,
    settings: &PolicySettings,
) -> Result<InventoryPolicy> {
    check(forecast, stock, lead_time, rules, settings)?;
    let z = normal::quantile(settings.service_level);
    let one_step_sd = forecast.sd[0].max(0.0);
    let (lead_time_demand, lead_time_demand_sd) = demand_over(forecast, lead_time.mean, lead_time.sd, one_step_sd);
    let protection = lead_time.mean + settings.review_period;
    let (protection_demand, protection_sd) = demand_over(forecast, protection, lead_time.sd, one_step_sd);
    let safety_stock = z * lead_time_demand_sd;
    let reorder_point = lead_time_demand + safety_stock;
    let order_up_to = (protection_demand + z * protection_sd).max(reorder_point);
    let inventory_position = stock.on_hand + stock.on_order - stock.backordered;

    let mean_per_period = forecast.mean.iter().map(|v| v.max(0.0)).sum::<f64>() / forecast.mean.len() as f64;
    let daily = mean_per_period / settings.days_per_period;
    let days_of_cover = if daily > 0.0 { stock.on_hand.max(0.0) / daily } else { f64::INFINITY };
    let stockout_risk = if lead_time_demand_sd > 0.0 {
        1.0 - normal::cdf((inventory_position - lead_time_demand) / lead_time_demand_sd)
    } else if lead_time_demand > inventory_position {
        1.0
    } else {
        0.0
    };
    let reorder = inventory_position <= reorder_point && (lead_time_demand > 0.0 || inventory_position < 0.0);
    let suggested_order = if reorder { round_order(order_up_to - inventory_position, rules) } else { 0.0 };
    Ok(InventoryPolicy {
        lead_time_demand,
        lead_time_demand_sd,
        safety_stock,
        reorder_point,
        order_up_to,
        inventory_position,
        days_of_cover,
        stockout_risk,
        overstock: days_of_cover > settings.overstock_cover_days,
        reorder,
        suggested_order,
    })
}

/// Mean and standard deviation of demand over `periods` periods whose length has standard deviation
/// `periods_sd`.
fn demand_over(forecast: &Forecast, periods: f64, periods_sd: f64, one_step_sd: f64) -> (f64, f64) {
    let whole = periods.floor() as usize;
    let fraction = periods - whole as f64;
    let at = |h: usize| forecast.mean.get(h).or(forecast.mean.last()).copied().unwrap_or(0.0).max(0.0);
    let mean = (0..whole).map(at).sum::<f64>() + fraction * at(whole);
    let per_period = if periods > 0.0 { mean / periods } else { at(0) };
    let variance = periods * one_step_sd * one_step_sd + per_period * per_period * periods_sd * periods_sd;
    (mean, variance.sqrt())
}

fn round_order(quantity: f64, rules: &OrderRules) -> f64 {
    if quantity <= 0.0 {
        return 0.0;
    }
    let rounded = if rules.pack_size > 0.0 { (quantity / rules.pack_size).ceil() * rules.pack_size } else { quantity };
    rounded.max(rules.minimum_order)
}

fn check(
    forecast: &Forecast,
    stock: &StockPosition,
    lead_time: &LeadTime,
    rules: &OrderRules,
    settings: &PolicySettings,
) -> Result<()> {
    if forecast.mean.is_empty() || forecast.sd.len() != forecast.mean.len() {
        return Err(InsightsError::invalid("the forecast needs at least one step with a standard deviation"));
    }
    if !(settings.service_level > 0.0 && settings.service_level < 1.0) {
        return Err(InsightsError::invalid("service level must be in (0, 1)"));
    }
    let non_negative = [
        lead_time.mean,
        lead_time.sd,
        settings.review_period,
        rules.pack_size,
        rules.minimum_order,
        stock.on_order,
        stock.backordered,
    ];
    if non_negative.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || !stock.on_hand.is_finite() {
        return Err(InsightsError::invalid("lead time, review period, order rules and pipeline stock must be >= 0"));
    }
    if settings.days_per_period.is_nan() || settings.days_per_period <= 0.0 {
        return Err(InsightsError::invalid("days per period must be positive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(mean: f64, sd: f64) -> Forecast {
        Forecast::from_mean_and_sd(vec![mean; 12], vec![sd; 12], 0.95, true)
    }

    #[test]
    fn textbook_example() {
        // 100 a period, σ₁ = 20, lead time 4 periods: D(L) = 400, σ_L = 40, z(0.95) ≈ 1.645.
        let settings = PolicySettings { service_level: 0.95, days_per_period: 7.0, ..Default::default() };
        let stock = StockPosition { on_hand: 300.0, on_order: 100.0, backordered: 0.0 };
        let lead = LeadTime { mean: 4.0, sd: 0.0 };
        let p = inventory_policy(&flat(100.0, 20.0), &stock, &lead, &OrderRules::default(), &settings).unwrap();
        assert!((p.lead_time_demand - 400.0).abs() < 1e-9);
        assert!((p.lead_time_demand_sd - 40.0).abs() < 1e-9);
        assert!((p.safety_stock - 65.794).abs() < 1e-3);
        assert!(p.reorder && p.suggested_order >= 66.0);
        assert!((p.stockout_risk - 0.5).abs() < 1e-12);
        assert!((p.days_of_cover - 21.0).abs() < 1e-9);
    }

    #[test]
    fn fractional_lead_time_is_prorated_and_pack_size_rounds_up() {
        let settings = PolicySettings::default();
        let lead = LeadTime { mean: 1.5, sd: 0.0 };
        let rules = OrderRules { pack_size: 12.0, minimum_order: 0.0 };
        let p = inventory_policy(&flat(10.0, 0.0), &StockPosition::default(), &lead, &rules, &settings).unwrap();
        assert!((p.lead_time_demand - 15.0).abs() < 1e-12);
        assert_eq!(p.suggested_order, 24.0);
    }

    #[test]
    fn overstock_is_flagged() {
        let settings = PolicySettings { days_per_period: 1.0, overstock_cover_days: 30.0, ..Default::default() };
        let stock = StockPosition { on_hand: 1_000.0, ..Default::default() };
        let lead = LeadTime { mean: 3.0, sd: 0.0 };
        let p = inventory_policy(&flat(5.0, 1.0), &stock, &lead, &OrderRules::default(), &settings).unwrap();
        assert!(p.overstock && !p.reorder && p.stockout_risk < 1e-12);
    }
}
