//! Heuristic initial states, the optimizer's starting point (after Hyndman et al. 2008, section 2.6.1):
//! seasonal indices from a classical decomposition of the first (up to) three seasons, then level and
//! trend from a straight line fitted to the first deseasonalized values.

use super::spec::{EtsSpec, SeasonKind};
use crate::forecast::decompose::{additive_seasonal_indices, multiplicative_seasonal_indices};

/// Starting values for ℓ₀, b₀ and the seasonal states (indexed by time modulo the period).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct InitialGuess {
    pub level: f64,
    pub trend: f64,
    pub season: Vec<f64>,
}

/// Initial states for `spec` on `y`; seasonal models need at least two full seasons.
pub(super) fn initial_guess(y: &[f64], spec: &EtsSpec, period: usize) -> InitialGuess {
    let m = if spec.has_season() { period } else { 1 };
    let (season, adjusted) = match spec.season {
        SeasonKind::None => (vec![0.0], y.to_vec()),
        SeasonKind::Additive | SeasonKind::Multiplicative => {
            let seasons = (y.len() / m).min(3);
            let block = &y[..seasons * m];
            let multiplicative = spec.season == SeasonKind::Multiplicative;
            let indices = if multiplicative {
                multiplicative_seasonal_indices(block, m).unwrap_or_else(|| vec![1.0; m])
            } else {
                additive_seasonal_indices(block, m).unwrap_or_else(|| vec![0.0; m])
            };
            let adjusted = block
                .iter()
                .enumerate()
                .map(|(t, v)| if multiplicative { v / indices[t % m] } else { v - indices[t % m] })
                .collect();
            (indices, adjusted)
        }
    };
    let count = adjusted.len().min(10.max(2 * m));
    let first = &adjusted[..count];
    let (level, trend) = if spec.has_trend() && count >= 2 {
        // Least squares line through (1, y₁) … (k, y_k); its value at t = 0 is the initial level.
        let k = count as f64;
        let mean_t = (k + 1.0) / 2.0;
        let mean_y = first.iter().sum::<f64>() / k;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, v) in first.iter().enumerate() {
            let dt = (i + 1) as f64 - mean_t;
            sxy += dt * (v - mean_y);
            sxx += dt * dt;
        }
        let slope = sxy / sxx;
        (mean_y - slope * mean_t, slope)
    } else {
        (first.iter().sum::<f64>() / count as f64, 0.0)
    };
    InitialGuess { level, trend, season }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::ets::spec::{ErrorKind, TrendKind};

    #[test]
    fn linear_series_gives_exact_level_and_trend() {
        let y: Vec<f64> = (1..=30).map(|t| 5.0 + 2.0 * t as f64).collect();
        let spec = EtsSpec::new(ErrorKind::Additive, TrendKind::Additive, SeasonKind::None);
        let guess = initial_guess(&y, &spec, 1);
        assert!((guess.level - 5.0).abs() < 1e-9 && (guess.trend - 2.0).abs() < 1e-9);
    }

    #[test]
    fn seasonal_indices_are_found() {
        let pattern = [10.0, -5.0, 0.0, -5.0];
        let y: Vec<f64> = (0..24).map(|t| 100.0 + pattern[t % 4]).collect();
        let spec = EtsSpec::new(ErrorKind::Additive, TrendKind::None, SeasonKind::Additive);
        let guess = initial_guess(&y, &spec, 4);
        for (a, b) in guess.season.iter().zip(pattern) {
            assert!((a - b).abs() < 1e-9);
        }
        assert!((guess.level - 100.0).abs() < 1e-9);
    }
}
