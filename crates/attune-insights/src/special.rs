//! Special functions at the numeric core of the customer models: the log-gamma and digamma functions and
//! the Gaussian hypergeometric function ₂F₁.

use crate::{InsightsError, Result};

/// Lanczos approximation coefficients (g = 7, nine terms): relative error below 1e-15 for positive x.
const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// ln Γ(x) for x > 0 (NaN otherwise).
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx); sin(πx) > 0 on (0, 0.5).
        return std::f64::consts::PI.ln() - (std::f64::consts::PI * x).sin().ln() - ln_gamma(1.0 - x);
    }
    let z = x - 1.0;
    let mut sum = LANCZOS[0];
    for (k, c) in LANCZOS.iter().enumerate().skip(1) {
        sum += c / (z + k as f64);
    }
    let t = z + LANCZOS_G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + sum.ln()
}

/// ψ(x) = d/dx ln Γ(x) for x > 0 (NaN otherwise).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut result = 0.0;
    // Recurrence ψ(x) = ψ(x + 1) - 1/x until the asymptotic series is accurate.
    while x < 10.0 {
        result -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // ln x - 1/(2x) - Σ B_2k / (2k x^2k)
    let series =
        inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    result + x.ln() - 0.5 * inv - series
}

/// ln Γ(x + n) - ln Γ(x) = Σ_{i<n} ln(x + i), exact for integer n (no cancellation).
pub fn ln_rising(x: f64, n: u32) -> f64 {
    if n <= 64 { (0..n).map(|i| (x + f64::from(i)).ln()).sum() } else { ln_gamma(x + f64::from(n)) - ln_gamma(x) }
}

/// The Gaussian hypergeometric function ₂F₁(a, b; c; z) by its power series, for 0 ≤ z < 1 and c > 0.
///
/// The customer models only need non-negative parameters and 0 ≤ z < 1, where the series converges;
/// it is summed until a term no longer changes the sum.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&z) || c.is_nan() || c <= 0.0 || !a.is_finite() || !b.is_finite() {
        return Err(InsightsError::invalid(format!("hyp2f1 needs 0 <= z < 1 and c > 0 (a={a}, b={b}, c={c}, z={z})")));
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..200_000u32 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() <= 1e-16 * sum.abs() {
            return Ok(sum);
        }
    }
    Err(InsightsError::NoConvergence("hypergeometric series 2F1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        let mut factorial = 1.0f64;
        for n in 1..30 {
            assert!(close(ln_gamma(f64::from(n)), factorial.ln(), 1e-13), "n = {n}");
            factorial *= f64::from(n);
        }
        let sqrt_pi = std::f64::consts::PI.sqrt();
        assert!(close(ln_gamma(0.5), sqrt_pi.ln(), 1e-14));
        assert!(close(ln_gamma(1.5), (0.5 * sqrt_pi).ln(), 1e-14));
        assert!(close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-13));
        assert!(ln_gamma(0.0).is_nan() && ln_gamma(-1.0).is_nan());
    }

    #[test]
    fn digamma_known_values_and_recurrence() {
        let euler = 0.577_215_664_901_532_9;
        assert!(close(digamma(1.0), -euler, 1e-13));
        assert!(close(digamma(0.5), -euler - 2.0 * 2f64.ln(), 1e-13));
        for x in [0.01, 0.3, 1.7, 4.2, 25.0, 300.0] {
            assert!(close(digamma(x + 1.0), digamma(x) + 1.0 / x, 1e-12), "x = {x}");
        }
    }

    #[test]
    fn digamma_is_derivative_of_ln_gamma() {
        for x in [0.2, 0.9, 3.3, 17.0] {
            let h = 1e-5;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(close(digamma(x), numeric, 1e-8), "x = {x}");
        }
    }

    #[test]
    fn ln_rising_matches_ln_gamma_difference() {
        for &(x, n) in &[(0.243, 5u32), (2.5, 0), (1.0, 10), (0.7, 100)] {
            assert!(close(ln_rising(x, n), ln_gamma(x + f64::from(n)) - ln_gamma(x), 1e-12));
        }
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        for z in [0.1, 0.5, 0.9] {
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z).unwrap(), -(1.0 - z).ln() / z, 1e-13));
        }
        // 2F1(a, b; b; z) = (1 - z)^-a
        assert!(close(hyp2f1(2.5, 3.0, 3.0, 0.4).unwrap(), 0.6f64.powf(-2.5), 1e-13));
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_err());
    }
}
