//! Forecast accuracy: MASE (mean absolute scaled error) and sMAPE as defined for the M4 competition.

/// Mean absolute in-sample error of the seasonal naive forecast, mean |yₜ − yₜ₋ₘ|, the MASE denominator.
/// None when the series is not longer than `period`.
pub fn seasonal_scale(train: &[f64], period: usize) -> Option<f64> {
    let m = period.max(1);
    if train.len() <= m {
        return None;
    }
    let sum: f64 = train.windows(m + 1).map(|w| (w[m] - w[0]).abs()).sum();
    Some(sum / (train.len() - m) as f64)
}

/// MASE = mean |y − f| over the test period / [`seasonal_scale`] of the training part.
///
/// When the training part is not longer than `period`, the non-seasonal scale (period 1) is used; None
/// when that is impossible too or the scale is zero.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64], period: usize) -> Option<f64> {
    let scale = seasonal_scale(train, period).or_else(|| seasonal_scale(train, 1))?;
    if scale <= 0.0 || actual.is_empty() {
        return None;
    }
    let mae = actual.iter().zip(forecast).map(|(y, f)| (y - f).abs()).sum::<f64>() / actual.len() as f64;
    Some(mae / scale)
}

/// sMAPE in percent: mean of 200 |y − f| / (|y| + |f|), with 0 for a step where both are 0.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    if actual.is_empty() {
        return 0.0;
    }
    let total: f64 = actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| {
            let denominator = y.abs() + f.abs();
            if denominator == 0.0 { 0.0 } else { 200.0 * (y - f).abs() / denominator }
        })
        .sum();
    total / actual.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_forecast_scores_zero() {
        let train = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(mase(&train, &[6.0, 7.0], &[6.0, 7.0], 1), Some(0.0));
        assert_eq!(smape(&[6.0, 7.0], &[6.0, 7.0]), 0.0);
    }

    #[test]
    fn known_values() {
        // Seasonal differences with period 2: |3-1|, |4-2|, |5-3| → scale 2.
        let train = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(seasonal_scale(&train, 2), Some(2.0));
        assert_eq!(mase(&train, &[10.0], &[6.0], 2), Some(2.0));
        assert!((smape(&[100.0], &[50.0]) - 200.0 * 50.0 / 150.0).abs() < 1e-12);
        assert_eq!(smape(&[0.0], &[0.0]), 0.0);
    }

    #[test]
    fn short_training_falls_back_to_period_one() {
        assert_eq!(seasonal_scale(&[1.0, 3.0], 12), None);
        assert_eq!(mase(&[1.0, 3.0], &[4.0], &[3.0], 12), Some(0.5));
    }
}
