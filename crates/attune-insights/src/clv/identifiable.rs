//! When a fitted customer model may be believed.
//!
//! A maximum-likelihood fit on a handful of customers, or one whose optimizer stopped early, can sit at the
//! edge of the parameter space and predict absurd figures (millions in value from a few pounds of history).
//! [`check_customer_model`] accepts a fit only when there are enough customers and repeat customers, the
//! optimizers converged, every parameter is finite and positive with no shape collapsed to 0, the mean purchase rate is
//! possible at day granularity, and the mean spend exists and is near the spends observed.

use super::gamma_gamma::GammaGammaParams;
use super::purchase_model::RepeatPurchaseModel;
use crate::{InsightsError, Result};

/// The thresholds of [`check_customer_model`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentifiabilityRules {
    /// Customers (with at least one purchase) the fit needs.
    pub min_customers: usize,
    /// Customers with at least one repeat purchase the fit needs.
    pub min_repeat_customers: usize,
    /// The purchase-rate shape r and the spend shapes p, q must be at least this (a shape collapsing to 0 is a
    /// degenerate fit). Large shapes are a legitimate limit (r, α → ∞ with r/α fixed: every
    /// customer buys at the same rate) and are bounded through the figures they imply instead.
    pub min_shape: f64,
    /// The largest possible mean purchase rate per model period (7 per week at day granularity).
    pub max_purchase_rate: f64,
    /// The population mean spend may be at most this multiple of the largest customer's mean spend.
    pub max_spend_ratio: f64,
    /// Below this mean dropout probability per purchase, a/(a+b), the history shows no measurable dropout:
    /// the fit sits at the boundary a → 0 and its P(alive) (then ≈ 1 for everyone) is not identified.
    pub min_dropout: f64,
}

impl Default for IdentifiabilityRules {
    fn default() -> Self {
        Self {
            min_customers: 20,
            min_repeat_customers: 10,
            min_shape: 1e-6,
            max_purchase_rate: 7.0,
            max_spend_ratio: 10.0,
            min_dropout: 1e-3,
        }
    }
}

/// What [`check_customer_model`] looks at.
pub struct CustomerModelFit<'a> {
    pub customers: usize,
    pub repeat_customers: usize,
    pub purchases: &'a dyn RepeatPurchaseModel,
    /// The repeat-purchase model's parameters (r, α, a, b).
    pub purchase_parameters: [f64; 4],
    pub purchases_converged: bool,
    pub spend: GammaGammaParams,
    pub spend_converged: bool,
    /// The largest mean repeat spend of a customer.
    pub max_observed_spend: f64,
}

/// Checks the counts before fitting: `NotEnoughData` when too few customers or repeat customers.
pub fn check_customer_counts(customers: usize, repeat_customers: usize, rules: &IdentifiabilityRules) -> Result<()> {
    if customers < rules.min_customers {
        return Err(InsightsError::NotEnoughData {
            what: "the customer model",
            needed: rules.min_customers,
            got: customers,
        });
    }
    if repeat_customers < rules.min_repeat_customers {
        return Err(InsightsError::NotIdentifiable(format!(
            "{repeat_customers} customers bought more than once; the customer model needs at least {}",
            rules.min_repeat_customers
        )));
    }
    Ok(())
}

/// Accepts the fitted models or says why their figures cannot be trusted.
pub fn check_customer_model(fit: &CustomerModelFit<'_>, rules: &IdentifiabilityRules) -> Result<()> {
    check_customer_counts(fit.customers, fit.repeat_customers, rules)?;
    let name = fit.purchases.name();
    if !fit.purchases_converged {
        return Err(InsightsError::NotIdentifiable(format!("the {name} fit did not converge")));
    }
    if !fit.spend_converged {
        return Err(InsightsError::NotIdentifiable("the Gamma-Gamma spend fit did not converge".into()));
    }
    let GammaGammaParams { p, q, gamma } = fit.spend;
    let [r, alpha, a, b] = fit.purchase_parameters;
    let positive = [r, alpha, a, b, p, q, gamma].iter().all(|v| v.is_finite() && *v > 0.0);
    let shapes_alive = [r, p, q].iter().all(|v| *v >= rules.min_shape);
    if !positive || !shapes_alive {
        return Err(InsightsError::NotIdentifiable(format!(
            "the fit is at the edge of the parameter space (r {r:.3e}, α {alpha:.3e}, a {a:.3e}, b {b:.3e}, \
             p {p:.3e}, q {q:.3e}, γ {gamma:.3e})"
        )));
    }
    let rate = fit.purchases.mean_purchase_rate();
    if !(rate.is_finite() && rate <= rules.max_purchase_rate) {
        return Err(InsightsError::NotIdentifiable(format!(
            "the {name} fit implies {rate:.3e} purchases per period, more than is possible"
        )));
    }
    let mean_spend = fit.spend.population_mean_spend();
    if !(mean_spend.is_finite() && mean_spend <= rules.max_spend_ratio * fit.max_observed_spend) {
        return Err(InsightsError::NotIdentifiable(format!(
            "the Gamma-Gamma fit implies a mean spend of {mean_spend:.3e}, far from any customer's ({:.2} at most)",
            fit.max_observed_spend
        )));
    }
    Ok(())
}

/// Whether a BG/NBD-family fit with dropout shapes (a, b) identifies dropout: `Err` says why its P(alive)
/// cannot be used (the purchase-rate part, and so expected purchases and value, may still be sound).
pub fn check_dropout(a: f64, b: f64, rules: &IdentifiabilityRules) -> std::result::Result<(), String> {
    let mean_dropout = a / (a + b);
    if mean_dropout.is_finite() && mean_dropout >= rules.min_dropout {
        Ok(())
    } else {
        Err(format!(
            "the history shows no measurable dropout (mean dropout probability per purchase {mean_dropout:.1e}): \
             P(alive) is not identified, and churn risk follows each customer's own purchase rhythm"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::mbg_nbd::MbgNbdParams;

    const MBG: MbgNbdParams = MbgNbdParams { r: 0.525, alpha: 6.183, a: 0.891, b: 1.614 };
    const GG: GammaGammaParams = GammaGammaParams { p: 6.25, q: 3.74, gamma: 15.44 };

    fn fit(purchases: &MbgNbdParams, spend: GammaGammaParams) -> CustomerModelFit<'_> {
        CustomerModelFit {
            customers: 2357,
            repeat_customers: 946,
            purchases,
            purchase_parameters: [purchases.r, purchases.alpha, purchases.a, purchases.b],
            purchases_converged: true,
            spend,
            spend_converged: true,
            max_observed_spend: 300.0,
        }
    }

    #[test]
    fn a_published_fit_is_accepted() {
        check_customer_model(&fit(&MBG, GG), &IdentifiabilityRules::default()).unwrap();
    }

    #[test]
    fn dropout_at_the_boundary_is_not_identified() {
        let rules = IdentifiabilityRules::default();
        assert!(check_dropout(MBG.a, MBG.b, &rules).is_ok());
        // Online Retail I: a = 0.0014, b = 12.3 (MBG/NBD); lifetimes gives the same boundary fit.
        assert!(check_dropout(0.0014, 12.3, &rules).unwrap_err().contains("no measurable dropout"));
    }

    #[test]
    fn degenerate_fits_are_refused_with_a_reason() {
        let rules = IdentifiabilityRules::default();
        let few = CustomerModelFit { customers: 3, repeat_customers: 3, ..fit(&MBG, GG) };
        assert!(matches!(check_customer_model(&few, &rules), Err(InsightsError::NotEnoughData { .. })));
        let no_repeats = CustomerModelFit { repeat_customers: 2, ..fit(&MBG, GG) };
        assert!(matches!(check_customer_model(&no_repeats, &rules), Err(InsightsError::NotIdentifiable(_))));
        let edge = MbgNbdParams { r: 1e-9, ..MBG };
        assert!(check_customer_model(&fit(&edge, GG), &rules).is_err());
        let homogeneous = MbgNbdParams { r: 1e8, alpha: 1e9, ..MBG };
        assert!(check_customer_model(&fit(&homogeneous, GG), &rules).is_ok(), "equal rates are a limit, not a failure");
        let too_fast = MbgNbdParams { r: 50.0, alpha: 1.0, ..MBG };
        assert!(check_customer_model(&fit(&too_fast, GG), &rules).is_err());
        let no_mean = GammaGammaParams { q: 0.9, ..GG };
        assert!(check_customer_model(&fit(&MBG, no_mean), &rules).is_err());
        let not_converged = CustomerModelFit { purchases_converged: false, ..fit(&MBG, GG) };
        assert!(check_customer_model(&not_converged, &rules).is_err());
    }
}
