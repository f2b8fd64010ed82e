//! Exponential smoothing fitted to series simulated from known ETS models.

mod common;

use attune_insights::forecast::ets::{ErrorKind, EtsSpec, SeasonKind, TrendKind, fit_ets};
use attune_insights::forecast::{auto_ets, mase};
use common::Rng;

#[test]
fn simple_exponential_smoothing_recovers_alpha_and_sigma() {
    let (alpha, sigma) = (0.3, 2.0);
    let mut rng = Rng::new(42);
    let mut level = 100.0;
    let y: Vec<f64> = (0..3_000)
        .map(|_| {
            let e = sigma * rng.normal();
            let obs = level + e;
            level += alpha * e;
            obs
        })
        .collect();
    let model = fit_ets(&y, 1, EtsSpec::new(ErrorKind::Additive, TrendKind::None, SeasonKind::None)).unwrap();
    assert!((model.params.alpha - alpha).abs() < 0.03, "alpha = {}", model.params.alpha);
    assert!((model.sigma - sigma).abs() < 0.1, "sigma = {}", model.sigma);
}

#[test]
fn holt_winters_multiplicative_is_recovered_and_chosen() {
    let (alpha, beta, gamma, sigma) = (0.4, 0.005, 0.1, 0.02);
    let pattern = [0.85, 0.9, 1.0, 1.05, 1.1, 1.2, 1.15, 1.0, 0.95, 0.9, 0.85, 1.05];
    let mut rng = Rng::new(7);
    let (mut level, mut trend, mut season): (f64, f64, Vec<f64>) = (500.0, 2.0, pattern.to_vec());
    // The log-likelihood at the true parameters and states: Σε² and Σ ln μ.
    let (mut true_squares, mut true_log_means) = (0.0f64, 0.0f64);
    let y: Vec<f64> = (0..480)
        .map(|t| {
            let s = season[t % 12];
            let q = level + trend;
            let eps = sigma * rng.normal();
            true_squares += eps * eps;
            true_log_means += (q * s).ln();
            let obs = q * s * (1.0 + eps);
            level = q * (1.0 + alpha * eps);
            trend += beta * q * eps;
            season[t % 12] = s * (1.0 + gamma * eps);
            obs
        })
        .collect();
    let spec = EtsSpec::new(ErrorKind::Multiplicative, TrendKind::Additive, SeasonKind::Multiplicative);
    assert!(y.iter().all(|v| *v > 0.0));
    let model = fit_ets(&y, 12, spec).unwrap();
    let n = y.len() as f64;
    let true_log_likelihood = -0.5 * n * ((2.0 * std::f64::consts::PI * true_squares / n).ln() + 1.0) - true_log_means;
    eprintln!("{:?} sigma {} loglik {} truth {true_log_likelihood}", model.params, model.sigma, model.log_likelihood);
    assert!(model.log_likelihood >= true_log_likelihood, "the optimizer stopped below the truth");
    assert!((model.params.alpha - alpha).abs() < 0.08, "alpha = {}", model.params.alpha);
    // γ moves the seasonal factors by γ·ε ≈ 0.002 a year here: weakly identified, so only bounded.
    assert!(model.params.gamma < 0.25, "gamma = {}", model.params.gamma);
    assert!((model.sigma - sigma).abs() < 0.004, "sigma = {}", model.sigma);
    let chosen = auto_ets(&y, 12).unwrap();
    assert_eq!(chosen.spec.season, SeasonKind::Multiplicative, "chose {}", chosen.spec);
    assert_eq!(chosen.spec.error, ErrorKind::Multiplicative, "chose {}", chosen.spec);
}

#[test]
fn trend_model_beats_naive_on_a_noisy_trend() {
    let mut rng = Rng::new(3);
    let y: Vec<f64> = (0..120).map(|t| 50.0 + 1.5 * t as f64 + 3.0 * rng.normal()).collect();
    let (train, test) = y.split_at(100);
    let model = auto_ets(train, 1).unwrap();
    assert!(model.spec.has_trend(), "chose {}", model.spec);
    let naive = vec![train[99]; 20];
    let ets_error = mase(train, test, &model.forecast(20, 0.95).mean, 1).unwrap();
    let naive_error = mase(train, test, &naive, 1).unwrap();
    assert!(ets_error < naive_error, "{ets_error} vs {naive_error}");
}
