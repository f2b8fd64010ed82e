//! Expected customer lifetime value: a repeat-purchase model's (BG/NBD, MBG/NBD) expected purchases per step times Gamma-Gamma expected spend,
//! times a margin, discounted step by step.

use super::gamma_gamma::GammaGammaParams;
use super::purchase_model::RepeatPurchaseModel;
use super::summary::PurchaseSummary;
use crate::{InsightsError, Result};

/// How far ahead to value a customer, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifetimeValueSettings {
    /// Horizon in model time units (for example 52 weeks).
    pub horizon: f64,
    /// Number of equal steps the horizon is cut into for discounting (for example 12 months).
    pub steps: u32,
    /// Discount rate per step (for example 0.01 a month).
    pub discount_rate_per_step: f64,
    /// Share of revenue that is profit (1.0 values revenue).
    pub margin: f64,
}

impl Default for LifetimeValueSettings {
    fn default() -> Self {
        Self { horizon: 52.0, steps: 12, discount_rate_per_step: 0.01, margin: 1.0 }
    }
}

/// Σₖ margin · E(spend) · (E(Y(k·Δ)) − E(Y((k−1)·Δ))) / (1 + d)ᵏ over the steps k = 1..K of the horizon.
///
/// `mean_spend` is the customer's mean repeat spend; without one (or without repeats) the population mean
/// spend is used.
pub fn expected_lifetime_value(
    purchases_model: &dyn RepeatPurchaseModel,
    spend_model: &GammaGammaParams,
    customer: &PurchaseSummary,
    mean_spend: Option<f64>,
    settings: &LifetimeValueSettings,
) -> Result<f64> {
    let LifetimeValueSettings { horizon, steps, discount_rate_per_step, margin } = *settings;
    if steps == 0
        || horizon.is_nan()
        || horizon <= 0.0
        || discount_rate_per_step.is_nan()
        || discount_rate_per_step <= -1.0
        || !margin.is_finite()
    {
        return Err(InsightsError::invalid("lifetime value needs steps > 0, horizon > 0, discount rate > -1"));
    }
    let spend = match mean_spend {
        Some(m) if customer.frequency > 0 => spend_model.conditional_expected_spend(customer.frequency, m),
        _ => spend_model.population_mean_spend(),
    };
    let step = horizon / f64::from(steps);
    let mut value = 0.0;
    let mut previous = 0.0;
    for k in 1..=steps {
        let cumulative = purchases_model.conditional_expected_purchases(customer, step * f64::from(k))?;
        value += (cumulative - previous) / (1.0 + discount_rate_per_step).powi(k as i32);
        previous = cumulative;
    }
    Ok(margin * spend * value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::bg_nbd::BgNbdParams;

    const BG: BgNbdParams = BgNbdParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    const GG: GammaGammaParams = GammaGammaParams { p: 6.25, q: 3.74, gamma: 15.44 };

    #[test]
    fn undiscounted_value_is_purchases_times_spend() {
        let c = PurchaseSummary { frequency: 4, recency: 30.0, age: 38.0 };
        let settings = LifetimeValueSettings { horizon: 52.0, steps: 4, discount_rate_per_step: 0.0, margin: 0.5 };
        let value = expected_lifetime_value(&BG, &GG, &c, Some(40.0), &settings).unwrap();
        let expected =
            0.5 * GG.conditional_expected_spend(4, 40.0) * BG.conditional_expected_purchases(&c, 52.0).unwrap();
        assert!((value - expected).abs() < 1e-9 * expected);
    }

    #[test]
    fn discounting_lowers_value_and_active_customers_are_worth_more() {
        let recent = PurchaseSummary { frequency: 4, recency: 37.0, age: 38.0 };
        let lapsed = PurchaseSummary { frequency: 4, recency: 5.0, age: 38.0 };
        let plain = LifetimeValueSettings { discount_rate_per_step: 0.0, ..Default::default() };
        let discounted = LifetimeValueSettings { discount_rate_per_step: 0.05, ..Default::default() };
        let v = |c, s| expected_lifetime_value(&BG, &GG, c, Some(30.0), s).unwrap();
        assert!(v(&recent, &discounted) < v(&recent, &plain));
        assert!(v(&lapsed, &plain) < v(&recent, &plain));
    }
}
