//! The MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007, "Empirical validation and
//! comparison of models for customer base analysis").
//!
//! BG/NBD lets a customer drop out only after a repeat purchase, so everyone who never bought twice has
//! P(alive) = 1, however long ago they bought. MBG/NBD lets a customer drop out after every purchase, the first
//! included. With λ ~ Gamma(r, α) and p ~ Beta(a, b) as in BG/NBD, the likelihood of a customer with x repeat
//! purchases, the last at tₓ, observed for T is
//!
//! L = B(a, b+x+1)/B(a, b) · Γ(r+x) αʳ / Γ(r) · [(α+T)^−(r+x) + a/(b+x) · (α+tₓ)^−(r+x)],
//!
//! fitted by maximum likelihood with the BG/NBD code's optimizer and grouped, analytic-gradient likelihood.

use super::bg_nbd::{BgNbdParams, Dropout, check_horizon, fit_family, near_one_safe, softplus};
use super::purchase_model::RepeatPurchaseModel;
use super::summary::PurchaseSummary;
use crate::Result;
use crate::special::{hyp2f1, ln_rising};

/// MBG/NBD parameters: purchase rate λ ~ Gamma(shape r, rate α), dropout p ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbgNbdParams {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (inverse scale) of the purchase-rate distribution, in model time units.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

/// A fitted MBG/NBD model.
#[derive(Debug, Clone, PartialEq)]
pub struct MbgNbdFit {
    /// Maximum-likelihood parameters.
    pub params: MbgNbdParams,
    /// The maximized log-likelihood (sum over customers).
    pub log_likelihood: f64,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// Likelihood evaluations the optimizer used.
    pub evaluations: usize,
    /// Whether the optimizer's convergence test passed.
    pub converged: bool,
}

/// Fits MBG/NBD to customers' purchase summaries by maximum likelihood.
pub fn fit_mbg_nbd(customers: &[PurchaseSummary]) -> Result<MbgNbdFit> {
    let (shape, minimum) = fit_family(customers, Dropout::AfterEveryPurchase, "MBG/NBD")?;
    let BgNbdParams { r, alpha, a, b } = shape;
    Ok(MbgNbdFit {
        params: MbgNbdParams { r, alpha, a, b },
        log_likelihood: -minimum.f * customers.len() as f64,
        customers: customers.len(),
        evaluations: minimum.evaluations,
        converged: minimum.converged,
    })
}

impl MbgNbdParams {
    /// ln L for one customer.
    pub fn log_likelihood(&self, c: &PurchaseSummary) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency);
        let beta_ratio = ln_rising(b, c.frequency + 1) - ln_rising(a + b, c.frequency + 1);
        let base = ln_rising(r, c.frequency) + r * alpha.ln() + beta_ratio - (r + x) * (alpha + c.age).ln();
        base + softplus(self.ln_odds_inactive(c))
    }

    /// Σ ln L over customers.
    pub fn total_log_likelihood(&self, customers: &[PurchaseSummary]) -> f64 {
        customers.iter().map(|c| self.log_likelihood(c)).sum()
    }

    /// ln[a/(b+x) · ((α+T)/(α+tₓ))^(r+x)]: the log odds that the customer has dropped out.
    fn ln_odds_inactive(&self, c: &PurchaseSummary) -> f64 {
        let x = f64::from(c.frequency);
        self.a.ln() - (self.b + x).ln() + (self.r + x) * ((self.alpha + c.age).ln() - (self.alpha + c.recency).ln())
    }
}

impl RepeatPurchaseModel for MbgNbdParams {
    fn name(&self) -> &'static str {
        "MBG/NBD"
    }

    fn p_alive(&self, c: &PurchaseSummary) -> f64 {
        1.0 / (1.0 + self.ln_odds_inactive(c).exp())
    }

    fn expected_purchases(&self, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let Self { r, alpha, a: _, b } = *self;
        let value = |a: f64| -> Result<f64> {
            let hyper = hyp2f1(r, b + 1.0, a + b, t / (alpha + t))?;
            Ok(b / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * hyper))
        };
        near_one_safe(self.a, value)
    }

    fn conditional_expected_purchases(&self, c: &PurchaseSummary, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let Self { r, alpha, a: _, b } = *self;
        let x = f64::from(c.frequency);
        let value = |a: f64| -> Result<f64> {
            let z = t / (alpha + c.age + t);
            let hyper = hyp2f1(r + x, b + x + 1.0, a + b + x, z)?;
            let decay = ((alpha + c.age) / (alpha + c.age + t)).powf(r + x);
            Ok((a + b + x) / (a - 1.0) * (1.0 - decay * hyper))
        };
        Ok(near_one_safe(self.a, value)? * self.p_alive(c))
    }

    fn mean_purchase_rate(&self) -> f64 {
        self.r / self.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::bg_nbd::tests::{assert_gradient_matches, sample};
    use crate::clv::bg_nbd::{Groups, PerFrequencyTerms};

    /// `lifetimes`' ModifiedBetaGeoFitter on the CDNOW 2,357-customer cohort (its documentation's example).
    const CDNOW: MbgNbdParams = MbgNbdParams { r: 0.525, alpha: 6.183, a: 0.891, b: 1.614 };

    fn shape(p: &MbgNbdParams) -> BgNbdParams {
        BgNbdParams { r: p.r, alpha: p.alpha, a: p.a, b: p.b }
    }

    #[test]
    fn grouped_likelihood_and_gradient_match_the_per_customer_formula() {
        let customers = sample();
        let groups = Groups::new(&customers);
        let mut terms = PerFrequencyTerms::new(groups.max_frequency + 1);
        let (ll, g) = groups.log_likelihood_and_gradient(&shape(&CDNOW), &mut terms, Dropout::AfterEveryPurchase);
        assert!((ll - CDNOW.total_log_likelihood(&customers)).abs() < 1e-10);
        assert_gradient_matches(g, [CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b], |v| {
            MbgNbdParams { r: v[0], alpha: v[1], a: v[2], b: v[3] }.total_log_likelihood(&customers)
        });
    }

    #[test]
    fn a_one_time_buyer_can_have_left_and_long_silence_lowers_p_alive() {
        let recent = PurchaseSummary { frequency: 0, recency: 0.0, age: 1.0 };
        let long_ago = PurchaseSummary { frequency: 0, recency: 0.0, age: 50.0 };
        assert!(CDNOW.p_alive(&long_ago) < 1.0);
        assert!(CDNOW.p_alive(&long_ago) < CDNOW.p_alive(&recent));
        let silent = PurchaseSummary { frequency: 3, recency: 5.0, age: 31.0 };
        let fresh = PurchaseSummary { frequency: 3, recency: 30.0, age: 31.0 };
        assert!(CDNOW.p_alive(&silent) < CDNOW.p_alive(&fresh));
    }

    #[test]
    fn conditional_expectation_of_a_brand_new_customer_is_the_unconditional_one_times_p_alive() {
        let e = |t| CDNOW.expected_purchases(t).unwrap();
        assert!(e(0.0).abs() < 1e-12 && e(10.0) < e(52.0));
        let brand_new = PurchaseSummary { frequency: 0, recency: 0.0, age: 0.0 };
        // At T = 0 a customer has just bought (and may have dropped out at once): E[Y(t)] = E[X(t)] for MBG/NBD,
        // whose X(t) counts purchases after the first one.
        let conditional = CDNOW.conditional_expected_purchases(&brand_new, 20.0).unwrap();
        assert!((conditional - e(20.0)).abs() < 1e-9, "{conditional} vs {}", e(20.0));
    }
}
