//! Classical seasonal decomposition and the seasonality test used by the Theta method.

/// Seasonal indices of a classical multiplicative decomposition: the series over its centred moving average
/// (2×m for even m), averaged per season and normalized to mean 1. `indices[j]` applies to times t ≡ j
/// (mod m), t counted from the series start. None if the series has fewer than two full seasons or a
/// non-positive moving average.
pub fn multiplicative_seasonal_indices(y: &[f64], period: usize) -> Option<Vec<f64>> {
    seasonal_indices(y, period, true)
}

/// Seasonal indices of a classical additive decomposition (normalized to mean 0), as for
/// [`multiplicative_seasonal_indices`].
pub fn additive_seasonal_indices(y: &[f64], period: usize) -> Option<Vec<f64>> {
    seasonal_indices(y, period, false)
}

fn seasonal_indices(y: &[f64], period: usize, multiplicative: bool) -> Option<Vec<f64>> {
    let m = period;
    if m < 2 || y.len() < 2 * m {
        return None;
    }
    let trend = centred_moving_average(y, m);
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for (t, tr) in trend.iter().enumerate() {
        if let Some(tr) = tr {
            let detrended = if multiplicative {
                if *tr <= 0.0 {
                    return None;
                }
                y[t] / tr
            } else {
                y[t] - tr
            };
            sums[t % m] += detrended;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut indices: Vec<f64> = sums.iter().zip(&counts).map(|(s, c)| s / *c as f64).collect();
    let mean = indices.iter().sum::<f64>() / m as f64;
    if multiplicative {
        if mean <= 0.0 {
            return None;
        }
        indices.iter_mut().for_each(|v| *v /= mean);
    } else {
        indices.iter_mut().for_each(|v| *v -= mean);
    }
    Some(indices)
}

/// Centred moving average of order m (a 2×m average for even m); None where the window does not fit.
pub fn centred_moving_average(y: &[f64], m: usize) -> Vec<Option<f64>> {
    let n = y.len();
    let half = m / 2;
    (0..n)
        .map(|t| {
            if t < half || t + half >= n {
                return None;
            }
            if m % 2 == 1 {
                Some(y[t - half..=t + half].iter().sum::<f64>() / m as f64)
            } else {
                let inner: f64 = y[t - half + 1..t + half].iter().sum();
                Some((inner + 0.5 * (y[t - half] + y[t + half])) / m as f64)
            }
        })
        .collect()
}

/// Sample autocorrelations r₁..r_max_lag.
pub fn autocorrelations(y: &[f64], max_lag: usize) -> Vec<f64> {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let denominator: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    (1..=max_lag)
        .map(|k| {
            if k >= n || denominator == 0.0 {
                return 0.0;
            }
            (k..n).map(|t| (y[t] - mean) * (y[t - k] - mean)).sum::<f64>() / denominator
        })
        .collect()
}

/// The seasonality test of the M4 competition's Theta benchmark: the lag-m autocorrelation is significant
/// at 90 % (two-sided) against Bartlett's standard error. Needs at least three full seasons.
pub fn is_seasonal(y: &[f64], period: usize) -> bool {
    let m = period;
    if m < 2 || y.len() < 3 * m {
        return false;
    }
    let acf = autocorrelations(y, m);
    let partial: f64 = acf[..m - 1].iter().map(|r| r * r).sum();
    let limit = 1.645 * ((1.0 + 2.0 * partial) / y.len() as f64).sqrt();
    acf[m - 1].abs() > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_multiplicative_indices() {
        let pattern = [0.8, 1.0, 1.2, 1.0];
        let y: Vec<f64> = (0..40).map(|t| (100.0 + t as f64) * pattern[t % 4]).collect();
        let idx = multiplicative_seasonal_indices(&y, 4).unwrap();
        for (a, b) in idx.iter().zip(pattern) {
            assert!((a - b).abs() < 0.01, "{idx:?}");
        }
        assert!(is_seasonal(&y, 4));
    }

    #[test]
    fn trend_only_series_is_not_seasonal() {
        let y: Vec<f64> = (0..48).map(|t| 10.0 + (t as f64 * 0.7).sin() * 0.01 + t as f64).collect();
        assert!(!is_seasonal(&y, 12));
    }

    #[test]
    fn moving_average_of_constant_is_constant() {
        let ma = centred_moving_average(&[5.0; 30], 12);
        assert!(ma.iter().flatten().all(|v| (v - 5.0).abs() < 1e-12));
        assert_eq!(ma.iter().filter(|v| v.is_none()).count(), 12);
    }
}
