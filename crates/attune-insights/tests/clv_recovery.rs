//! Parameter recovery: BG/NBD and Gamma-Gamma fitted to data simulated from known parameters.

mod common;

use attune_insights::clv::{PurchaseSummary, SpendObservation, fit_bg_nbd, fit_gamma_gamma};
use common::Rng;

fn relative_error(estimate: f64, truth: f64) -> f64 {
    (estimate - truth).abs() / truth
}

/// One BG/NBD customer: Poisson purchases at rate λ while active; after each repeat purchase they drop out
/// with probability p; observed for `age` weeks from the first purchase.
fn simulate_customer(rng: &mut Rng, lambda: f64, p: f64, age: f64) -> PurchaseSummary {
    let (mut t, mut frequency, mut recency) = (0.0, 0, 0.0);
    loop {
        t += rng.exponential(lambda);
        if t > age {
            break;
        }
        frequency += 1;
        recency = t;
        if rng.uniform() < p {
            break;
        }
    }
    PurchaseSummary { frequency, recency, age }
}

#[test]
fn bg_nbd_recovers_simulated_parameters() {
    let (r, alpha, a, b) = (0.25, 4.0, 0.8, 2.5);
    let mut rng = Rng::new(2005);
    let customers: Vec<PurchaseSummary> = (0..30_000)
        .map(|_| {
            let lambda = rng.gamma(r, alpha);
            let p = rng.beta(a, b);
            let age = 26.0 + 26.0 * rng.uniform();
            simulate_customer(&mut rng, lambda, p, age)
        })
        .collect();
    let fit = fit_bg_nbd(&customers).unwrap();
    eprintln!("BG/NBD estimates: {:?}", fit.params);
    assert!(fit.converged);
    let p = fit.params;
    assert!(relative_error(p.r, r) < 0.05, "r = {}", p.r);
    assert!(relative_error(p.alpha, alpha) < 0.08, "alpha = {}", p.alpha);
    assert!(relative_error(p.a, a) < 0.15, "a = {}", p.a);
    assert!(relative_error(p.b, b) < 0.15, "b = {}", p.b);
    // The maximum is a maximum: the true parameters fit no better.
    let truth = attune_insights::clv::BgNbdParams { r, alpha, a, b };
    assert!(fit.log_likelihood >= truth.total_log_likelihood(&customers));
}

#[test]
fn gamma_gamma_recovers_simulated_parameters() {
    let (p, q, gamma) = (6.0, 4.0, 15.0);
    let mut rng = Rng::new(1997);
    let observations: Vec<SpendObservation> = (0..8_000)
        .map(|_| {
            let nu = rng.gamma(q, gamma);
            let frequency = 1 + (rng.uniform() * 8.0) as u32;
            let total: f64 = (0..frequency).map(|_| rng.gamma(p, nu)).sum();
            SpendObservation { frequency, mean_spend: total / f64::from(frequency) }
        })
        .collect();
    let fit = fit_gamma_gamma(&observations).unwrap();
    eprintln!("Gamma-Gamma estimates: {:?}", fit.params);
    assert!(fit.converged);
    let e = fit.params;
    assert!(relative_error(e.p, p) < 0.1, "p = {}", e.p);
    assert!(relative_error(e.q, q) < 0.15, "q = {}", e.q);
    assert!(relative_error(e.gamma, gamma) < 0.2, "gamma = {}", e.gamma);
    // The population mean spend p·γ/(q−1) is what matters most for value, and is well identified.
    assert!(relative_error(e.population_mean_spend(), p * gamma / (q - 1.0)) < 0.05);
}
