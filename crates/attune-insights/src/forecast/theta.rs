//! The Theta method (Assimakopoulos & Nikolopoulos 2000) in the form shown by Hyndman & Billah (2003) to be
//! simple exponential smoothing with drift equal to half the slope of the linear trend; as in the M4
//! competition's benchmark, a series whose lag-m autocorrelation is significant is first seasonally
//! adjusted by classical multiplicative decomposition and reseasonalized afterwards.

use super::decompose::{is_seasonal, multiplicative_seasonal_indices};
use super::ets::{ErrorKind, SeasonKind, TrendKind};
use super::ets::{EtsModel, EtsSpec, fit_ets};
use super::{Forecast, check_series};
use crate::Result;

/// A fitted Theta model.
#[derive(Debug, Clone, PartialEq)]
pub struct ThetaModel {
    /// Multiplicative seasonal indices by time modulo the period, when the series was found seasonal.
    pub seasonal_indices: Option<Vec<f64>>,
    /// Simple exponential smoothing, ETS(A,N,N), of the seasonally adjusted series.
    pub smoothing: EtsModel,
    /// Half the least-squares slope of the seasonally adjusted series against time.
    pub drift: f64,
    observations: usize,
    non_negative: bool,
}

impl ThetaModel {
    /// Fits the Theta method with season length `period` (1 for none).
    pub fn fit(y: &[f64], period: usize) -> Result<Self> {
        check_series(y, "Theta", 7)?;
        let positive = y.iter().all(|v| *v > 0.0);
        let seasonal_indices =
            if positive && is_seasonal(y, period) { multiplicative_seasonal_indices(y, period) } else { None };
        let adjusted: Vec<f64> = match &seasonal_indices {
            Some(idx) => y.iter().enumerate().map(|(t, v)| v / idx[t % idx.len()]).collect(),
            None => y.to_vec(),
        };
        let smoothing = fit_ets(&adjusted, 1, EtsSpec::new(ErrorKind::Additive, TrendKind::None, SeasonKind::None))?;
        Ok(Self {
            seasonal_indices,
            smoothing,
            drift: 0.5 * slope(&adjusted),
            observations: y.len(),
            non_negative: y.iter().all(|v| *v >= 0.0),
        })
    }

    /// Forecasts `horizon` steps: SES level + drift · ((h − 1) + (1 − (1 − α)ⁿ)/α), reseasonalized; intervals
    /// from the SES model, scaled by the seasonal index.
    pub fn forecast(&self, horizon: usize, level: f64) -> Forecast {
        let base = self.smoothing.forecast(horizon, level);
        let alpha = self.smoothing.params.alpha;
        let n = self.observations;
        let offset = (1.0 - (1.0 - alpha).powi(n as i32)) / alpha;
        let index = |h: usize| self.seasonal_indices.as_ref().map_or(1.0, |idx| idx[(n + h) % idx.len()]);
        let mean = (0..horizon).map(|h| (base.mean[h] + self.drift * (h as f64 + offset)) * index(h)).collect();
        let sd = (0..horizon).map(|h| base.sd[h] * index(h)).collect();
        Forecast::from_mean_and_sd(mean, sd, level, self.non_negative)
    }
}

/// Least-squares slope of y against t = 0, 1, ….
fn slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    let mean_t = (n - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in y.iter().enumerate() {
        let dt = t as f64 - mean_t;
        sxy += dt * (v - mean_y);
        sxx += dt * dt;
    }
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_series_forecasts_the_constant() {
        let model = ThetaModel::fit(&[42.0; 40], 12).unwrap();
        let f = model.forecast(12, 0.95);
        assert!(f.mean.iter().all(|v| (v - 42.0).abs() < 1e-6), "{:?}", f.mean);
    }

    #[test]
    fn linear_trend_continues_at_half_slope_plus_smoothing() {
        let y: Vec<f64> = (0..50).map(|t| 10.0 + 2.0 * t as f64).collect();
        let model = ThetaModel::fit(&y, 1).unwrap();
        assert!((model.drift - 1.0).abs() < 1e-12);
        let f = model.forecast(3, 0.8);
        assert!(f.mean.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1e-9));
    }

    #[test]
    fn seasonal_series_is_adjusted() {
        let pattern = [0.7, 0.9, 1.1, 1.3];
        let y: Vec<f64> = (0..48).map(|t| 100.0 * pattern[t % 4]).collect();
        let model = ThetaModel::fit(&y, 4).unwrap();
        assert!(model.seasonal_indices.is_some());
        let f = model.forecast(4, 0.95);
        for (h, v) in f.mean.iter().enumerate() {
            assert!((v - 100.0 * pattern[h]).abs() < 1e-3, "{:?}", f.mean);
        }
    }
}
