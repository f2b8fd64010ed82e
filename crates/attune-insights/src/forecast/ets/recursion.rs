//! The ETS state recursions in error-correction form and the quantities the likelihood needs.
//!
//! With q = ℓ + φb the trend-adjusted level and E = y − μ the one-step error on the data's scale, every
//! member of the family updates its states the same way whatever its error type:
//!
//! | season | μ | ℓ ← | b ← | s ← |
//! |---|---|---|---|---|
//! | none | q | q + αE | φb + βE | |
//! | additive | q + s | q + αE | φb + βE | s + γE |
//! | multiplicative | q·s | q + αE/s | φb + βE/s | s + γE/q |
//!
//! The error type changes only the likelihood: additive errors score E, multiplicative errors E/μ and
//! add the Jacobian Σ ln μ (Hyndman et al. 2008, ch. 5).

use super::fit::EtsParams;
use super::spec::{ErrorKind, EtsSpec, SeasonKind, TrendKind};

/// What the likelihood needs from one pass over the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PassSums {
    /// Σ εₜ², with εₜ = E for additive and E/μ for multiplicative errors.
    pub squared_errors: f64,
    /// Σ ln μₜ (multiplicative errors only, 0 otherwise).
    pub log_means: f64,
}

impl PassSums {
    /// −2 ln L up to a constant that is the same for every model on the same data:
    /// n ln Σε² + 2 Σ ln μ.
    pub fn objective(&self, n: usize) -> f64 {
        n as f64 * self.floored_squared_errors().ln() + 2.0 * self.log_means
    }

    /// Σε², kept positive so that a perfect fit (a constant or exactly periodic series) has a finite
    /// likelihood.
    fn floored_squared_errors(&self) -> f64 {
        self.squared_errors.max(f64::MIN_POSITIVE)
    }

    /// The Gaussian log-likelihood with σ² estimated by Σε²/n.
    pub fn log_likelihood(&self, n: usize) -> f64 {
        let n = n as f64;
        -0.5 * (n * (self.floored_squared_errors() / n).ln() + n * (2.0 * std::f64::consts::PI).ln() + n)
            - self.log_means
    }
}

/// The effective damping factor: 0 without trend, 1 for a linear trend.
pub(super) fn damping(spec: &EtsSpec, params: &EtsParams) -> f64 {
    match spec.trend {
        TrendKind::None => 0.0,
        TrendKind::Additive => 1.0,
        TrendKind::Damped => params.phi,
    }
}

/// Runs the recursion over `y` from the states given, leaving the final states in place; `season` is a
/// ring indexed by time modulo its length, starting at time 0. Writes the one-step forecasts into
/// `fitted` when given. None when the model leaves its admissible region (a non-positive mean with
/// multiplicative error, a non-positive level or seasonal factor with multiplicative season) or diverges.
pub(super) fn filter(
    spec: &EtsSpec,
    params: &EtsParams,
    y: &[f64],
    level: &mut f64,
    trend: &mut f64,
    season: &mut [f64],
    fitted: Option<&mut [f64]>,
) -> Option<PassSums> {
    let smoothing = Smoothing {
        alpha: params.alpha,
        beta: if spec.has_trend() { params.beta } else { 0.0 },
        gamma: params.gamma,
        phi: damping(spec, params),
    };
    let mut states = (*level, if spec.has_trend() { *trend } else { 0.0 });
    let sums = match (spec.season, spec.error) {
        (SeasonKind::None, ErrorKind::Additive) => run::<NO_SEASON, false>(&smoothing, y, &mut states, season, fitted),
        (SeasonKind::None, ErrorKind::Multiplicative) => {
            run::<NO_SEASON, true>(&smoothing, y, &mut states, season, fitted)
        }
        (SeasonKind::Additive, ErrorKind::Additive) => {
            run::<ADDITIVE_SEASON, false>(&smoothing, y, &mut states, season, fitted)
        }
        (SeasonKind::Additive, ErrorKind::Multiplicative) => {
            run::<ADDITIVE_SEASON, true>(&smoothing, y, &mut states, season, fitted)
        }
        (SeasonKind::Multiplicative, ErrorKind::Additive) => {
            run::<MULTIPLICATIVE_SEASON, false>(&smoothing, y, &mut states, season, fitted)
        }
        (SeasonKind::Multiplicative, ErrorKind::Multiplicative) => {
            run::<MULTIPLICATIVE_SEASON, true>(&smoothing, y, &mut states, season, fitted)
        }
    }?;
    (*level, *trend) = states;
    Some(sums)
}

const NO_SEASON: u8 = 0;
const ADDITIVE_SEASON: u8 = 1;
const MULTIPLICATIVE_SEASON: u8 = 2;

/// The smoothing constants as the recursion uses them (β = 0 without trend, φ = 0 without trend and 1
/// for an undamped trend).
struct Smoothing {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// The recursion, specialized per season type and error type so that the inner loop has no branches
/// other than the admissibility checks; divisions are kept off the level–trend dependency chain.
#[inline(always)]
fn run<const SEASON: u8, const MULTIPLICATIVE_ERROR: bool>(
    p: &Smoothing,
    y: &[f64],
    states: &mut (f64, f64),
    season: &mut [f64],
    mut fitted: Option<&mut [f64]>,
) -> Option<PassSums> {
    let (mut l, mut b) = *states;
    // Without season the ring is a scratch block, so the loop below still works in blocks.
    let mut scratch = [0.0; 16];
    let ring: &mut [f64] = if SEASON == NO_SEASON { &mut scratch } else { season };
    let m = ring.len();
    let mut squared_errors = 0.0;
    // Σ ln μ is accumulated as the log of running products, one logarithm per block (or sooner if the
    // product gets large or small).
    let mut log_means = 0.0;
    let mut t = 0;
    for block in y.chunks(m) {
        let mut product = 1.0;
        for (&obs, s) in block.iter().zip(ring.iter_mut()) {
            let q = l + p.phi * b;
            let mu;
            match SEASON {
                NO_SEASON | ADDITIVE_SEASON => {
                    let seasonal = if SEASON == ADDITIVE_SEASON { *s } else { 0.0 };
                    mu = q + seasonal;
                    let e = obs - mu;
                    l = q + p.alpha * e;
                    b = p.phi * b + p.beta * e;
                    if SEASON == ADDITIVE_SEASON {
                        *s += p.gamma * e;
                    }
                    if MULTIPLICATIVE_ERROR {
                        let relative = e / mu;
                        squared_errors += relative * relative;
                    } else {
                        squared_errors += e * e;
                    }
                }
                _ => {
                    let factor = *s;
                    if !(q > 0.0 && factor > 0.0) {
                        return None;
                    }
                    mu = q * factor;
                    // e/s = y/s − q keeps the division by s off the chain through ℓ and b.
                    let scaled_error = obs / factor - q;
                    l = q + p.alpha * scaled_error;
                    b = p.phi * b + p.beta * scaled_error;
                    let relative = scaled_error / q;
                    *s = factor + p.gamma * factor * relative;
                    if MULTIPLICATIVE_ERROR {
                        squared_errors += relative * relative;
                    } else {
                        let e = factor * scaled_error;
                        squared_errors += e * e;
                    }
                }
            }
            if MULTIPLICATIVE_ERROR {
                if mu.is_nan() || mu <= 0.0 {
                    return None;
                }
                product *= mu;
                if !(1e-100..=1e100).contains(&product) {
                    log_means += product.ln();
                    product = 1.0;
                }
            }
            if let Some(f) = fitted.as_deref_mut() {
                f[t] = mu;
            }
            t += 1;
        }
        if MULTIPLICATIVE_ERROR {
            log_means += product.ln();
        }
    }
    if !(l.is_finite() && b.is_finite() && squared_errors.is_finite() && log_means.is_finite()) {
        return None;
    }
    *states = (l, b);
    Some(PassSums { squared_errors, log_means })
}

/// Point forecasts h = 1..=horizon from the final states; `season` is the final ring and `n` the number
/// of observations it was run over.
pub(super) fn point_forecasts(
    spec: &EtsSpec,
    params: &EtsParams,
    level: f64,
    trend: f64,
    season: &[f64],
    n: usize,
    horizon: usize,
) -> Vec<f64> {
    let phi = damping(spec, params);
    let m = season.len();
    let mut damped_sum = 0.0;
    let mut phi_power = 1.0;
    (0..horizon)
        .map(|h| {
            phi_power *= phi;
            damped_sum += phi_power;
            let q = level + damped_sum * trend;
            let s = season[(n + h) % m];
            match spec.season {
                SeasonKind::None => q,
                SeasonKind::Additive => q + s,
                SeasonKind::Multiplicative => q * s,
            }
        })
        .collect()
}

/// Forecast-variance multipliers 1 + Σ_{j<h} cⱼ² for h = 1..=horizon, with cⱼ = α + β(φ + … + φʲ) + γ·1{m | j},
/// the impulse responses of the linear (additive) model with the same smoothing parameters. Exact for the
/// additive models; a first-order approximation for the multiplicative ones, where it scales the relative
/// error.
pub(super) fn variance_multipliers(spec: &EtsSpec, params: &EtsParams, period: usize, horizon: usize) -> Vec<f64> {
    let phi = damping(spec, params);
    let beta = if spec.has_trend() { params.beta } else { 0.0 };
    let gamma = if spec.has_season() { params.gamma } else { 0.0 };
    let mut multipliers = Vec::with_capacity(horizon);
    let mut total = 1.0;
    let mut damped_sum = 0.0;
    let mut phi_power = 1.0;
    for h in 0..horizon {
        if h > 0 {
            phi_power *= phi;
            damped_sum += phi_power;
            let seasonal = if spec.has_season() && h % period == 0 { gamma } else { 0.0 };
            let c = params.alpha + beta * damped_sum + seasonal;
            total += c * c;
        }
        multipliers.push(total);
    }
    multipliers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> EtsParams {
        EtsParams { alpha: 0.3, beta: 0.1, gamma: 0.2, phi: 0.9 }
    }

    #[test]
    fn error_type_changes_only_the_likelihood() {
        let y = [10.0, 12.0, 11.0, 13.0, 12.5, 14.0, 13.0, 15.0];
        let run = |error| {
            let spec = EtsSpec::new(error, TrendKind::Damped, SeasonKind::Multiplicative);
            let (mut l, mut b, mut s) = (10.0, 0.5, vec![0.95, 1.05]);
            let mut fitted = vec![0.0; y.len()];
            let sums = filter(&spec, &params(), &y, &mut l, &mut b, &mut s, Some(&mut fitted)).unwrap();
            (l, b, s, fitted, sums)
        };
        let additive = run(ErrorKind::Additive);
        let multiplicative = run(ErrorKind::Multiplicative);
        assert_eq!(additive.0, multiplicative.0);
        assert_eq!(additive.3, multiplicative.3);
        assert_ne!(additive.4, multiplicative.4);
        let expected_log_means: f64 = additive.3.iter().map(|m| m.ln()).sum();
        assert!((multiplicative.4.log_means - expected_log_means).abs() < 1e-10);
    }

    #[test]
    fn simple_exponential_smoothing_by_hand() {
        let spec = EtsSpec::new(ErrorKind::Additive, TrendKind::None, SeasonKind::None);
        let p = EtsParams { alpha: 0.5, beta: 0.0, gamma: 0.0, phi: 1.0 };
        let (mut l, mut b, mut s) = (0.0, 0.0, vec![0.0]);
        let sums = filter(&spec, &p, &[2.0, 4.0], &mut l, &mut b, &mut s, None).unwrap();
        // ℓ: 0 → 1 → 2.5; errors 2 and 3.
        assert_eq!(l, 2.5);
        assert_eq!(sums.squared_errors, 13.0);
    }

    #[test]
    fn damped_trend_forecasts_flatten() {
        let spec = EtsSpec::new(ErrorKind::Additive, TrendKind::Damped, SeasonKind::None);
        let f = point_forecasts(&spec, &params(), 100.0, 10.0, &[0.0], 5, 50);
        assert!((f[0] - 109.0).abs() < 1e-12);
        assert!(f[49] < 100.0 + 10.0 * 0.9 / 0.1 + 1e-9);
        assert!(f.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn variance_grows_with_horizon() {
        let spec = EtsSpec::new(ErrorKind::Additive, TrendKind::Additive, SeasonKind::Additive);
        let v = variance_multipliers(&spec, &params(), 4, 9);
        assert_eq!(v[0], 1.0);
        assert!((v[1] - (1.0 + 0.4f64.powi(2))).abs() < 1e-12);
        assert!(v.windows(2).all(|w| w[1] >= w[0]));
    }
}
