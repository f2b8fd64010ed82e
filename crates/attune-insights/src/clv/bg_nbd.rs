//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting your customers the easy
//! way").
//!
//! While active, a customer buys at Poisson rate λ ~ Gamma(r, α); after each purchase they become inactive
//! with probability p ~ Beta(a, b). The likelihood of a customer with x repeat purchases, the last at tₓ,
//! observed for T is
//!
//! L = B(a, b+x)/B(a, b) · Γ(r+x) αʳ / (Γ(r) (α+T)^(r+x)) · [1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)].
//!
//! Parameters are fitted by maximum likelihood with BFGS on their logarithms, using the analytic gradient.
//! Customers with identical (x, tₓ, T) are evaluated once, and the per-x gamma and beta terms are computed
//! once per distinct x, so a fit costs a few hundred microseconds on thousands of customers.

use super::purchase_model::RepeatPurchaseModel;
use super::summary::PurchaseSummary;
use crate::optim::{BfgsOptions, bfgs};
use crate::special::{hyp2f1, ln_rising};
use crate::{InsightsError, Result};

/// BG/NBD parameters: purchase rate λ ~ Gamma(shape r, rate α), dropout p ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (inverse scale) of the purchase-rate distribution, in model time units.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

/// A fitted BG/NBD model.
#[derive(Debug, Clone, PartialEq)]
pub struct BgNbdFit {
    /// Maximum-likelihood parameters.
    pub params: BgNbdParams,
    /// The maximized log-likelihood (sum over customers).
    pub log_likelihood: f64,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// Likelihood evaluations the optimizer used.
    pub evaluations: usize,
    /// Whether the optimizer's convergence test passed.
    pub converged: bool,
}

/// Fits BG/NBD to customers' purchase summaries by maximum likelihood.
pub fn fit_bg_nbd(customers: &[PurchaseSummary]) -> Result<BgNbdFit> {
    let (params, minimum) = fit_family(customers, Dropout::AfterRepeats, "BG/NBD")?;
    Ok(BgNbdFit {
        params,
        log_likelihood: -minimum.f * customers.len() as f64,
        customers: customers.len(),
        evaluations: minimum.evaluations,
        converged: minimum.converged,
    })
}

/// When a customer of the BG/NBD family may drop out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dropout {
    /// After each repeat purchase (BG/NBD): a customer without repeats is certainly alive.
    AfterRepeats,
    /// After every purchase, the first included (MBG/NBD).
    AfterEveryPurchase,
}

impl Dropout {
    /// How far the beta terms' index is ahead of the frequency: B(a, b+x) for BG/NBD, B(a, b+x+1) for MBG/NBD.
    fn beta_shift(self) -> usize {
        match self {
            Dropout::AfterRepeats => 0,
            Dropout::AfterEveryPurchase => 1,
        }
    }
}

/// Maximum-likelihood fit of a BG/NBD-family model; the parameters and the optimizer's minimum of the
/// negative mean log-likelihood.
pub(super) fn fit_family(
    customers: &[PurchaseSummary],
    dropout: Dropout,
    what: &'static str,
) -> Result<(BgNbdParams, crate::optim::Minimum)> {
    if customers.is_empty() {
        return Err(InsightsError::NotEnoughData { what, needed: 1, got: 0 });
    }
    for c in customers {
        PurchaseSummary::new(c.frequency, c.recency, c.age)?;
    }
    if customers.iter().all(|c| c.frequency == 0) {
        return Err(InsightsError::invalid(format!("{what} needs at least one customer with a repeat purchase")));
    }
    let groups = Groups::new(customers);
    let mut terms = PerFrequencyTerms::new(groups.max_frequency + dropout.beta_shift() as u32);
    let total = customers.len() as f64;
    let objective = |theta: &[f64], gradient: &mut [f64]| {
        let params = BgNbdParams { r: theta[0].exp(), alpha: theta[1].exp(), a: theta[2].exp(), b: theta[3].exp() };
        let (ll, g) = groups.log_likelihood_and_gradient(&params, &mut terms, dropout);
        // Gradient with respect to log-parameters, of the negative mean log-likelihood.
        gradient[0] = -g[0] * params.r / total;
        gradient[1] = -g[1] * params.alpha / total;
        gradient[2] = -g[2] * params.a / total;
        gradient[3] = -g[3] * params.b / total;
        -ll / total
    };
    let options = BfgsOptions { max_iterations: 1_000, gradient_tolerance: 1e-9, relative_tolerance: 1e-15 };
    let minimum = bfgs(objective, &[0.0; 4], options);
    if !minimum.f.is_finite() {
        return Err(InsightsError::FitFailed(what));
    }
    let x = &minimum.x;
    let params = BgNbdParams { r: x[0].exp(), alpha: x[1].exp(), a: x[2].exp(), b: x[3].exp() };
    Ok((params, minimum))
}

impl BgNbdParams {
    /// ln L for one customer.
    pub fn log_likelihood(&self, c: &PurchaseSummary) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency);
        let beta_ratio = ln_rising(b, c.frequency) - ln_rising(a + b, c.frequency);
        let base = ln_rising(r, c.frequency) + r * alpha.ln() + beta_ratio - (r + x) * (alpha + c.age).ln();
        if c.frequency == 0 { base } else { base + softplus(self.ln_odds_inactive(c)) }
    }

    /// Σ ln L over customers.
    pub fn total_log_likelihood(&self, customers: &[PurchaseSummary]) -> f64 {
        customers.iter().map(|c| self.log_likelihood(c)).sum()
    }

    /// Probability that the customer is still active at the end of their observation period.
    pub fn p_alive(&self, c: &PurchaseSummary) -> f64 {
        if c.frequency == 0 { 1.0 } else { 1.0 / (1.0 + self.ln_odds_inactive(c).exp()) }
    }

    /// Expected number of purchases in a period of length `t` by a new customer, E[X(t)].
    pub fn expected_purchases(&self, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let Self { r, alpha, a, b } = *self;
        let value = |a: f64| -> Result<f64> {
            let hyper = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))?;
            Ok((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * hyper))
        };
        near_one_safe(a, value)
    }

    /// Expected number of purchases in the next `t` periods by a customer with the given history,
    /// E[Y(t) | x, tₓ, T].
    pub fn conditional_expected_purchases(&self, c: &PurchaseSummary, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let Self { r, alpha, a: _, b } = *self;
        let x = f64::from(c.frequency);
        let p_alive = self.p_alive(c);
        let value = |a: f64| -> Result<f64> {
            let z = t / (alpha + c.age + t);
            let hyper = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
            let decay = ((alpha + c.age) / (alpha + c.age + t)).powf(r + x);
            Ok((a + b + x - 1.0) / (a - 1.0) * (1.0 - decay * hyper))
        };
        Ok(near_one_safe(self.a, value)? * p_alive)
    }

    /// ln[a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)] for x > 0: the log odds that the customer has dropped out.
    fn ln_odds_inactive(&self, c: &PurchaseSummary) -> f64 {
        let x = f64::from(c.frequency);
        self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + c.age).ln() - (self.alpha + c.recency).ln())
    }
}

impl RepeatPurchaseModel for BgNbdParams {
    fn name(&self) -> &'static str {
        "BG/NBD"
    }

    fn p_alive(&self, customer: &PurchaseSummary) -> f64 {
        BgNbdParams::p_alive(self, customer)
    }

    fn expected_purchases(&self, t: f64) -> Result<f64> {
        BgNbdParams::expected_purchases(self, t)
    }

    fn conditional_expected_purchases(&self, customer: &PurchaseSummary, t: f64) -> Result<f64> {
        BgNbdParams::conditional_expected_purchases(self, customer, t)
    }

    fn mean_purchase_rate(&self) -> f64 {
        self.r / self.alpha
    }
}

pub(super) fn check_horizon(t: f64) -> Result<()> {
    if t.is_finite() && t >= 0.0 { Ok(()) } else { Err(InsightsError::invalid(format!("horizon {t} must be >= 0"))) }
}

/// Evaluates `value(a)`, which has a removable singularity at a = 1, by averaging either side of it.
pub(super) fn near_one_safe(a: f64, value: impl Fn(f64) -> Result<f64>) -> Result<f64> {
    const EPS: f64 = 1e-6;
    if (a - 1.0).abs() < EPS { Ok(0.5 * (value(1.0 - EPS)? + value(1.0 + EPS)?)) } else { value(a) }
}

/// ln(1 + eˣ) without overflow.
pub(super) fn softplus(x: f64) -> f64 {
    if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
}

/// 1 / (1 + e⁻ˣ) without overflow.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Customers with identical (x, tₓ, T), counted once with a weight.
pub(super) struct Groups {
    frequency: Vec<u32>,
    recency: Vec<f64>,
    age: Vec<f64>,
    weight: Vec<f64>,
    pub(super) max_frequency: u32,
}

impl Groups {
    pub(super) fn new(customers: &[PurchaseSummary]) -> Self {
        let mut sorted: Vec<_> = customers.to_vec();
        sorted.sort_by(|p, q| {
            p.frequency.cmp(&q.frequency).then(p.recency.total_cmp(&q.recency)).then(p.age.total_cmp(&q.age))
        });
        let mut groups = Groups { frequency: vec![], recency: vec![], age: vec![], weight: vec![], max_frequency: 0 };
        for c in sorted {
            let same = groups.frequency.last() == Some(&c.frequency)
                && groups.recency.last() == Some(&c.recency)
                && groups.age.last() == Some(&c.age);
            if same {
                *groups.weight.last_mut().expect("a previous group") += 1.0;
            } else {
                groups.frequency.push(c.frequency);
                groups.recency.push(c.recency);
                groups.age.push(c.age);
                groups.weight.push(1.0);
                groups.max_frequency = groups.max_frequency.max(c.frequency);
            }
        }
        groups
    }

    /// Σ ln L and its gradient with respect to (r, α, a, b), for the model family member `dropout`.
    pub(super) fn log_likelihood_and_gradient(
        &self,
        params: &BgNbdParams,
        terms: &mut PerFrequencyTerms,
        dropout: Dropout,
    ) -> (f64, [f64; 4]) {
        let BgNbdParams { r, alpha, a, b } = *params;
        if ![r, alpha, a, b].iter().all(|v| v.is_finite() && *v > 0.0) {
            return (f64::NEG_INFINITY, [0.0; 4]);
        }
        terms.update(params);
        let shift = dropout.beta_shift();
        let ln_alpha = alpha.ln();
        let ln_a = a.ln();
        let mut ll = 0.0;
        let mut g = [0.0; 4];
        for i in 0..self.frequency.len() {
            let k = self.frequency[i] as usize;
            let j = k + shift;
            let x = f64::from(self.frequency[i]);
            let (age, recency, w) = (self.age[i], self.recency[i], self.weight[i]);
            let ln_age = (alpha + age).ln();
            let mut value = terms.ln_rising_r[k] + r * ln_alpha + terms.ln_beta_ratio[j] - (r + x) * ln_age;
            let mut d_r = terms.d_r[k] + ln_alpha - ln_age;
            let mut d_alpha = r / alpha - (r + x) / (alpha + age);
            let mut d_a = terms.d_a[j];
            let mut d_b = terms.d_b[j];
            if j > 0 {
                let ln_recency = (alpha + recency).ln();
                let ln_odds = ln_a - terms.ln_b_x_minus_1[j] + (r + x) * (ln_age - ln_recency);
                let share = sigmoid(ln_odds);
                value += softplus(ln_odds);
                d_r += share * (ln_age - ln_recency);
                d_alpha += share * (r + x) * (1.0 / (alpha + age) - 1.0 / (alpha + recency));
                d_a += share / a;
                d_b -= share / (b + j as f64 - 1.0);
            }
            ll += w * value;
            g[0] += w * d_r;
            g[1] += w * d_alpha;
            g[2] += w * d_a;
            g[3] += w * d_b;
        }
        (ll, g)
    }
}

/// Terms that depend on the parameters and the frequency x only, for x = 0..=max.
pub(super) struct PerFrequencyTerms {
    /// ln Γ(r+x) − ln Γ(r)
    ln_rising_r: Vec<f64>,
    /// ln B(a, b+x) − ln B(a, b)
    ln_beta_ratio: Vec<f64>,
    /// ln(b + x − 1), for x ≥ 1
    ln_b_x_minus_1: Vec<f64>,
    /// ∂/∂r of ln_rising_r
    d_r: Vec<f64>,
    /// ∂/∂a of ln_beta_ratio
    d_a: Vec<f64>,
    /// ∂/∂b of ln_beta_ratio
    d_b: Vec<f64>,
}

impl PerFrequencyTerms {
    pub(super) fn new(max_frequency: u32) -> Self {
        let n = max_frequency as usize + 1;
        Self {
            ln_rising_r: vec![0.0; n],
            ln_beta_ratio: vec![0.0; n],
            ln_b_x_minus_1: vec![0.0; n],
            d_r: vec![0.0; n],
            d_a: vec![0.0; n],
            d_b: vec![0.0; n],
        }
    }

    fn update(&mut self, p: &BgNbdParams) {
        for k in 1..self.ln_rising_r.len() {
            let i = (k - 1) as f64;
            let (ri, bi, abi) = (p.r + i, p.b + i, p.a + p.b + i);
            self.ln_rising_r[k] = self.ln_rising_r[k - 1] + ri.ln();
            let ln_bi = bi.ln();
            self.ln_beta_ratio[k] = self.ln_beta_ratio[k - 1] + ln_bi - abi.ln();
            self.ln_b_x_minus_1[k] = ln_bi;
            self.d_r[k] = self.d_r[k - 1] + 1.0 / ri;
            self.d_a[k] = self.d_a[k - 1] - 1.0 / abi;
            self.d_b[k] = self.d_b[k - 1] + 1.0 / bi - 1.0 / abi;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const PUBLISHED: BgNbdParams = BgNbdParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    /// A few customers of every kind: one-time buyers, repeat buyers, a repeated (x, tₓ, T).
    pub(in crate::clv) fn sample() -> Vec<PurchaseSummary> {
        vec![
            PurchaseSummary { frequency: 0, recency: 0.0, age: 38.86 },
            PurchaseSummary { frequency: 2, recency: 30.43, age: 38.86 },
            PurchaseSummary { frequency: 1, recency: 1.71, age: 38.86 },
            PurchaseSummary { frequency: 5, recency: 20.0, age: 30.0 },
            PurchaseSummary { frequency: 0, recency: 0.0, age: 38.86 },
        ]
    }

    #[test]
    fn grouped_likelihood_equals_per_customer_sum() {
        let customers = sample();
        let groups = Groups::new(&customers);
        assert_eq!(groups.frequency.len(), 4);
        let mut terms = PerFrequencyTerms::new(groups.max_frequency);
        let (ll, _) = groups.log_likelihood_and_gradient(&PUBLISHED, &mut terms, Dropout::AfterRepeats);
        assert!((ll - PUBLISHED.total_log_likelihood(&customers)).abs() < 1e-10);
    }

    /// Checks an analytic gradient of Σ ln L at (r, α, a, b) against central finite differences of `total`.
    pub(in crate::clv) fn assert_gradient_matches(gradient: [f64; 4], at: [f64; 4], total: impl Fn([f64; 4]) -> f64) {
        for k in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (at, at);
            up[k] += h;
            down[k] -= h;
            let numeric = (total(up) - total(down)) / (2.0 * h);
            let g = gradient[k];
            assert!((g - numeric).abs() < 1e-5 * (1.0 + numeric.abs()), "k = {k}: {g} vs {numeric}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let customers = sample();
        let groups = Groups::new(&customers);
        let mut terms = PerFrequencyTerms::new(groups.max_frequency);
        let (_, g) = groups.log_likelihood_and_gradient(&PUBLISHED, &mut terms, Dropout::AfterRepeats);
        let at = [PUBLISHED.r, PUBLISHED.alpha, PUBLISHED.a, PUBLISHED.b];
        assert_gradient_matches(g, at, |v| {
            BgNbdParams { r: v[0], alpha: v[1], a: v[2], b: v[3] }.total_log_likelihood(&customers)
        });
    }

    #[test]
    fn p_alive_is_one_without_repeats_and_falls_with_silence() {
        let fresh = PurchaseSummary { frequency: 3, recency: 30.0, age: 31.0 };
        let silent = PurchaseSummary { frequency: 3, recency: 5.0, age: 31.0 };
        assert_eq!(PUBLISHED.p_alive(&PurchaseSummary { frequency: 0, recency: 0.0, age: 31.0 }), 1.0);
        assert!(PUBLISHED.p_alive(&fresh) > PUBLISHED.p_alive(&silent));
    }

    #[test]
    fn expected_purchases_is_increasing_and_matches_conditional_for_a_new_customer() {
        let e = |t| PUBLISHED.expected_purchases(t).unwrap();
        assert!(e(0.0).abs() < 1e-12);
        assert!(e(10.0) < e(20.0) && e(20.0) < e(52.0));
        let brand_new = PurchaseSummary { frequency: 0, recency: 0.0, age: 0.0 };
        let conditional = PUBLISHED.conditional_expected_purchases(&brand_new, 20.0).unwrap();
        assert!((conditional - e(20.0)).abs() < 1e-9, "{conditional} vs {}", e(20.0));
    }

    #[test]
    fn removable_singularity_at_a_equal_one() {
        let p = BgNbdParams { a: 1.0, ..PUBLISHED };
        let near = BgNbdParams { a: 1.001, ..PUBLISHED };
        let v = p.expected_purchases(10.0).unwrap();
        assert!(v.is_finite() && (v - near.expected_purchases(10.0).unwrap()).abs() < 1e-3);
    }
}
