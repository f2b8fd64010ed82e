//! Rolling-origin evaluation: forecast from several origins near the end of a series, each time using only
//! the data before the origin, and score each forecast with MASE and sMAPE.

use rayon::prelude::*;

use super::auto::{ForecastSettings, forecast_auto};
use super::metrics::{mase, smape};
use super::{Method, check_series};
use crate::Result;

/// One forecast origin's result.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestFold {
    /// Number of observations before the origin (the training length).
    pub origin: usize,
    /// Method chosen from the training data.
    pub method: Method,
    /// MASE over the horizon (None when the training part has no usable scale).
    pub mase: Option<f64>,
    /// sMAPE over the horizon, in percent.
    pub smape: f64,
}

/// All folds and their means.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestReport {
    /// Folds from the earliest origin to the latest.
    pub folds: Vec<BacktestFold>,
    /// Mean MASE over folds that have one (NaN if none).
    pub mean_mase: f64,
    /// Mean sMAPE over folds.
    pub mean_smape: f64,
}

/// Backtests the automatic forecast over `origins` origins `step` apart; the last origin leaves exactly
/// one horizon of data. Needs enough data for every origin to keep at least `settings.period + 1`
/// observations.
pub fn rolling_origin(y: &[f64], settings: &ForecastSettings, origins: usize, step: usize) -> Result<BacktestReport> {
    let h = settings.horizon.max(1);
    let span = h + step * origins.saturating_sub(1);
    check_series(y, "rolling-origin backtest", span + settings.period.max(1) + 1)?;
    let mut folds = Vec::with_capacity(origins);
    for k in (0..origins).rev() {
        let origin = y.len() - h - k * step;
        let (train, rest) = y.split_at(origin);
        let actual = &rest[..h];
        let result = forecast_auto(train, &ForecastSettings { horizon: h, ..*settings })?;
        folds.push(BacktestFold {
            origin,
            method: result.method(),
            mase: mase(train, actual, &result.forecast.mean, settings.period),
            smape: smape(actual, &result.forecast.mean),
        });
    }
    let scored: Vec<f64> = folds.iter().filter_map(|f| f.mase).collect();
    let mean_mase = if scored.is_empty() { f64::NAN } else { scored.iter().sum::<f64>() / scored.len() as f64 };
    let mean_smape = folds.iter().map(|f| f.smape).sum::<f64>() / folds.len().max(1) as f64;
    Ok(BacktestReport { folds, mean_mase, mean_smape })
}

/// Runs [`rolling_origin`] on every series in parallel; results are in input order.
pub fn rolling_origin_many<S: AsRef<[f64]> + Sync>(
    series: &[S],
    settings: &ForecastSettings,
    origins: usize,
    step: usize,
) -> Vec<Result<BacktestReport>> {
    series.par_iter().map(|y| rolling_origin(y.as_ref(), settings, origins, step)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_in_order_and_leave_one_horizon() {
        let y: Vec<f64> = (0..80).map(|t| 50.0 + 10.0 * ((t % 12) as f64 / 12.0) + 0.3 * t as f64).collect();
        let settings = ForecastSettings::new(12, 6);
        let report = rolling_origin(&y, &settings, 3, 6).unwrap();
        let origins: Vec<usize> = report.folds.iter().map(|f| f.origin).collect();
        assert_eq!(origins, vec![62, 68, 74]);
        assert!(report.mean_smape.is_finite());
    }
}
