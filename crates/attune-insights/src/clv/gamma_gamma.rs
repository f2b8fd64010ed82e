//! The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
//! curves for customer base analysis"; Fader & Hardie, "The Gamma-Gamma model of monetary value").
//!
//! A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers. For a customer
//! with x repeat transactions of mean mₓ the likelihood is
//!
//! f(mₓ | x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · mₓ^(px−1) · x^(px) / (γ + x·mₓ)^(px+q).
//!
//! It is fitted on customers with at least one repeat transaction, by maximum likelihood with BFGS on the
//! logarithms of (p, q, γ) and the analytic gradient. The gamma and digamma terms depend on x only and are
//! computed once per distinct x.

use crate::optim::{BfgsOptions, bfgs};
use crate::special::{digamma, ln_gamma};
use crate::{InsightsError, Result};

/// One customer's repeat transactions: how many, and their mean value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendObservation {
    /// Number of repeat transactions x (at least 1).
    pub frequency: u32,
    /// Mean value of those transactions (positive).
    pub mean_spend: f64,
}

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    /// Shape of the per-transaction spend distribution.
    pub p: f64,
    /// Shape of the distribution of the customers' spend rates ν.
    pub q: f64,
    /// Rate of the distribution of the customers' spend rates ν.
    pub gamma: f64,
}

/// A fitted Gamma-Gamma model.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaGammaFit {
    /// Maximum-likelihood parameters.
    pub params: GammaGammaParams,
    /// The maximized log-likelihood (sum over customers).
    pub log_likelihood: f64,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// Likelihood evaluations the optimizer used.
    pub evaluations: usize,
    /// Whether the optimizer's convergence test passed.
    pub converged: bool,
}

/// Fits the Gamma-Gamma model by maximum likelihood.
pub fn fit_gamma_gamma(observations: &[SpendObservation]) -> Result<GammaGammaFit> {
    if observations.len() < 2 {
        return Err(InsightsError::NotEnoughData { what: "Gamma-Gamma", needed: 2, got: observations.len() });
    }
    for o in observations {
        if o.frequency == 0 || !(o.mean_spend > 0.0 && o.mean_spend.is_finite()) {
            return Err(InsightsError::invalid(format!(
                "Gamma-Gamma needs frequency >= 1 and positive spend, got x = {}, m = {}",
                o.frequency, o.mean_spend
            )));
        }
    }
    let data = ByFrequency::new(observations);
    let total = observations.len() as f64;
    let objective = |theta: &[f64], gradient: &mut [f64]| {
        let params = GammaGammaParams { p: theta[0].exp(), q: theta[1].exp(), gamma: theta[2].exp() };
        let (ll, g) = data.log_likelihood_and_gradient(&params);
        gradient[0] = -g[0] * params.p / total;
        gradient[1] = -g[1] * params.q / total;
        gradient[2] = -g[2] * params.gamma / total;
        -ll / total
    };
    let options = BfgsOptions { max_iterations: 1_000, gradient_tolerance: 1e-9, relative_tolerance: 1e-15 };
    let minimum = bfgs(objective, &[0.0; 3], options);
    if !minimum.f.is_finite() {
        return Err(InsightsError::FitFailed("Gamma-Gamma"));
    }
    let x = &minimum.x;
    Ok(GammaGammaFit {
        params: GammaGammaParams { p: x[0].exp(), q: x[1].exp(), gamma: x[2].exp() },
        log_likelihood: -minimum.f * total,
        customers: observations.len(),
        evaluations: minimum.evaluations,
        converged: minimum.converged,
    })
}

impl GammaGammaParams {
    /// ln f(mₓ | x) for one customer.
    pub fn log_likelihood(&self, o: &SpendObservation) -> f64 {
        let Self { p, q, gamma } = *self;
        let x = f64::from(o.frequency);
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + q * gamma.ln() + (px - 1.0) * o.mean_spend.ln() + px * x.ln()
            - (px + q) * (gamma + x * o.mean_spend).ln()
    }

    /// Mean spend per transaction across all customers, pγ/(q−1) (infinite when q ≤ 1).
    pub fn population_mean_spend(&self) -> f64 {
        if self.q > 1.0 { self.p * self.gamma / (self.q - 1.0) } else { f64::INFINITY }
    }

    /// Expected spend per future transaction of a customer with `frequency` repeat transactions of mean
    /// `mean_spend`: a weighted average of the population mean and the customer's own mean.
    pub fn conditional_expected_spend(&self, frequency: u32, mean_spend: f64) -> f64 {
        if frequency == 0 {
            return self.population_mean_spend();
        }
        let px = self.p * f64::from(frequency);
        self.p * (self.gamma + f64::from(frequency) * mean_spend) / (px + self.q - 1.0)
    }
}

/// Observations grouped by frequency, with the per-group sums the likelihood needs.
struct ByFrequency {
    /// Distinct frequencies.
    frequency: Vec<f64>,
    /// Customers per distinct frequency.
    count: Vec<f64>,
    /// Σ ln mₓ per distinct frequency.
    sum_ln_mean: Vec<f64>,
    /// Start of each group in `scaled_spend`, plus the end.
    bounds: Vec<usize>,
    /// x·mₓ for every customer, grouped.
    scaled_spend: Vec<f64>,
}

impl ByFrequency {
    fn new(observations: &[SpendObservation]) -> Self {
        let mut sorted = observations.to_vec();
        sorted.sort_by(|a, b| a.frequency.cmp(&b.frequency).then(a.mean_spend.total_cmp(&b.mean_spend)));
        let mut data =
            Self { frequency: vec![], count: vec![], sum_ln_mean: vec![], bounds: vec![], scaled_spend: vec![] };
        for (i, o) in sorted.iter().enumerate() {
            let x = f64::from(o.frequency);
            if data.frequency.last() != Some(&x) {
                data.frequency.push(x);
                data.count.push(0.0);
                data.sum_ln_mean.push(0.0);
                data.bounds.push(i);
            }
            *data.count.last_mut().expect("a group") += 1.0;
            *data.sum_ln_mean.last_mut().expect("a group") += o.mean_spend.ln();
            data.scaled_spend.push(x * o.mean_spend);
        }
        data.bounds.push(sorted.len());
        data
    }

    /// Σ ln f and its gradient with respect to (p, q, γ).
    fn log_likelihood_and_gradient(&self, params: &GammaGammaParams) -> (f64, [f64; 3]) {
        let GammaGammaParams { p, q, gamma } = *params;
        if ![p, q, gamma].iter().all(|v| v.is_finite() && *v > 0.0) {
            return (f64::NEG_INFINITY, [0.0; 3]);
        }
        let (ln_gamma_q, digamma_q, ln_rate) = (ln_gamma(q), digamma(q), gamma.ln());
        let mut ll = 0.0;
        let mut g = [0.0; 3];
        for (k, &x) in self.frequency.iter().enumerate() {
            let n = self.count[k];
            let px = p * x;
            let (ln_x, digamma_pxq) = (x.ln(), digamma(px + q));
            let mut sum_ln_total = 0.0;
            let mut sum_inv_total = 0.0;
            for &s in &self.scaled_spend[self.bounds[k]..self.bounds[k + 1]] {
                let total = gamma + s;
                sum_ln_total += total.ln();
                sum_inv_total += 1.0 / total;
            }
            ll += n * (ln_gamma(px + q) - ln_gamma(px) - ln_gamma_q + q * ln_rate + px * ln_x)
                + (px - 1.0) * self.sum_ln_mean[k]
                - (px + q) * sum_ln_total;
            g[0] += x * (n * (digamma_pxq - digamma(px) + ln_x) + self.sum_ln_mean[k] - sum_ln_total);
            g[1] += n * (digamma_pxq - digamma_q + ln_rate) - sum_ln_total;
            g[2] += n * q / gamma - (px + q) * sum_inv_total;
        }
        (ll, g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: GammaGammaParams = GammaGammaParams { p: 6.25, q: 3.74, gamma: 15.44 };

    fn sample() -> Vec<SpendObservation> {
        [(1, 20.0), (2, 35.5), (1, 12.0), (7, 41.2), (3, 18.0)]
            .into_iter()
            .map(|(frequency, mean_spend)| SpendObservation { frequency, mean_spend })
            .collect()
    }

    #[test]
    fn grouped_likelihood_and_gradient_match_direct_evaluation() {
        let obs = sample();
        let data = ByFrequency::new(&obs);
        let direct = |p: &GammaGammaParams| obs.iter().map(|o| p.log_likelihood(o)).sum::<f64>();
        let (ll, g) = data.log_likelihood_and_gradient(&PUBLISHED);
        assert!((ll - direct(&PUBLISHED)).abs() < 1e-9);
        let h = 1e-6;
        let shifted = |k: usize, d: f64| {
            let mut v = [PUBLISHED.p, PUBLISHED.q, PUBLISHED.gamma];
            v[k] += d;
            direct(&GammaGammaParams { p: v[0], q: v[1], gamma: v[2] })
        };
        for (k, gk) in g.iter().enumerate() {
            let numeric = (shifted(k, h) - shifted(k, -h)) / (2.0 * h);
            assert!((gk - numeric).abs() < 1e-5 * (1.0 + numeric.abs()), "k = {k}: {gk} vs {numeric}");
        }
    }

    #[test]
    fn expected_spend_shrinks_towards_the_population_mean() {
        let population = PUBLISHED.population_mean_spend();
        let few = PUBLISHED.conditional_expected_spend(1, 100.0);
        let many = PUBLISHED.conditional_expected_spend(20, 100.0);
        assert!(population < few && few < many && many < 100.0);
        assert_eq!(PUBLISHED.conditional_expected_spend(0, 100.0), population);
    }

    #[test]
    fn rejects_customers_without_repeats() {
        let obs =
            [SpendObservation { frequency: 0, mean_spend: 1.0 }, SpendObservation { frequency: 1, mean_spend: 1.0 }];
        assert!(fit_gamma_gamma(&obs).is_err());
    }
}
