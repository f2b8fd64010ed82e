//! Forecasts for intermittent demand, where many periods sell nothing: Croston's method with the
//! Syntetos–Boylan bias correction (SBA), and the Teunter–Syntetos–Babai method (TSB), which also lets the
//! forecast decay while no demand occurs. Smoothing constants are chosen on a grid by in-sample mean
//! squared one-step error, and so is the method.

use super::{Forecast, check_series};
use crate::{InsightsError, Result};

/// Syntetos–Boylan cut-off on the average inter-demand interval above which demand is intermittent.
pub const INTERMITTENT_ADI: f64 = 1.32;

const GRID: [f64; 10] = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];

/// Which intermittent-demand method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntermittentMethod {
    /// Croston with the SBA correction (1 − α/2).
    Croston,
    /// Teunter–Syntetos–Babai.
    Tsb,
}

/// A fitted intermittent-demand model: a flat forecast of expected demand per period.
#[derive(Debug, Clone, PartialEq)]
pub struct IntermittentModel {
    /// Croston or TSB.
    pub method: IntermittentMethod,
    /// Smoothing constant of the demand size.
    pub alpha: f64,
    /// Smoothing constant of the interval (Croston: equal to α) or of the demand probability (TSB).
    pub beta: f64,
    /// Expected demand per period.
    pub rate: f64,
    /// Root mean squared in-sample one-step error.
    pub sigma: f64,
}

/// Whether a non-negative series is intermittent: average inter-demand interval (periods per non-zero
/// period) at least [`INTERMITTENT_ADI`].
pub fn is_intermittent(y: &[f64]) -> bool {
    let demands = y.iter().filter(|v| **v > 0.0).count();
    demands > 0 && y.iter().all(|v| *v >= 0.0) && y.len() as f64 / demands as f64 >= INTERMITTENT_ADI
}

/// Fits Croston (SBA) and TSB and keeps the one with the lower in-sample mean squared error. Needs
/// non-negative data with at least two non-zero periods.
pub fn fit_intermittent(y: &[f64]) -> Result<IntermittentModel> {
    check_series(y, "Croston/TSB", 2)?;
    if y.iter().any(|v| *v < 0.0) {
        return Err(InsightsError::invalid("intermittent-demand methods need non-negative data"));
    }
    let demands = y.iter().filter(|v| **v > 0.0).count();
    if demands < 2 {
        return Err(InsightsError::NotEnoughData { what: "Croston/TSB (non-zero periods)", needed: 2, got: demands });
    }
    let croston =
        GRID.iter().map(|&a| croston(y, a)).min_by(|p, q| p.sigma.total_cmp(&q.sigma)).expect("non-empty grid");
    let tsb = GRID
        .iter()
        .flat_map(|&a| GRID.iter().map(move |&b| (a, b)))
        .map(|(a, b)| tsb(y, a, b))
        .min_by(|p, q| p.sigma.total_cmp(&q.sigma))
        .expect("non-empty grid");
    Ok(if tsb.sigma < croston.sigma { tsb } else { croston })
}

/// Croston's method with SBA correction and smoothing constant `alpha` for both size and interval.
pub fn croston(y: &[f64], alpha: f64) -> IntermittentModel {
    let correction = 1.0 - alpha / 2.0;
    let mut state: Option<(f64, f64)> = None; // (size, interval)
    let mut since_last = 0.0;
    let (mut squared, mut count) = (0.0, 0usize);
    for &v in y {
        since_last += 1.0;
        if let Some((size, interval)) = state {
            let forecast = correction * size / interval;
            squared += (v - forecast).powi(2);
            count += 1;
        }
        if v > 0.0 {
            state = Some(match state {
                None => (v, since_last),
                Some((size, interval)) => (size + alpha * (v - size), interval + alpha * (since_last - interval)),
            });
            since_last = 0.0;
        }
    }
    let (size, interval) = state.unwrap_or((0.0, 1.0));
    IntermittentModel {
        method: IntermittentMethod::Croston,
        alpha,
        beta: alpha,
        rate: correction * size / interval,
        sigma: rms(squared, count),
    }
}

/// TSB with size smoothing `alpha` and demand-probability smoothing `beta`, started from the mean non-zero
/// demand and the share of non-zero periods.
pub fn tsb(y: &[f64], alpha: f64, beta: f64) -> IntermittentModel {
    let nonzero: Vec<f64> = y.iter().copied().filter(|v| *v > 0.0).collect();
    let mut size = if nonzero.is_empty() { 0.0 } else { nonzero.iter().sum::<f64>() / nonzero.len() as f64 };
    let mut probability = nonzero.len() as f64 / y.len().max(1) as f64;
    let mut squared = 0.0;
    for &v in y {
        squared += (v - probability * size).powi(2);
        let occurred = if v > 0.0 { 1.0 } else { 0.0 };
        probability += beta * (occurred - probability);
        if v > 0.0 {
            size += alpha * (v - size);
        }
    }
    IntermittentModel {
        method: IntermittentMethod::Tsb,
        alpha,
        beta,
        rate: probability * size,
        sigma: rms(squared, y.len()),
    }
}

fn rms(squared: f64, count: usize) -> f64 {
    if count == 0 { 0.0 } else { (squared / count as f64).sqrt() }
}

impl IntermittentModel {
    /// A flat forecast of `rate` per period; intervals from the in-sample error, cut at zero.
    pub fn forecast(&self, horizon: usize, level: f64) -> Forecast {
        Forecast::from_mean_and_sd(vec![self.rate; horizon], vec![self.sigma; horizon], level, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_intermittence() {
        assert!(is_intermittent(&[0.0, 0.0, 3.0, 0.0, 1.0, 0.0]));
        assert!(!is_intermittent(&[1.0, 2.0, 3.0, 0.0, 1.0, 2.0]));
        assert!(!is_intermittent(&[0.0, 0.0]));
    }

    #[test]
    fn croston_of_regular_demand_is_size_over_interval() {
        // Demand of 4 every second period: rate 2, times the SBA correction.
        let y: Vec<f64> = (0..40).map(|t| if t % 2 == 1 { 4.0 } else { 0.0 }).collect();
        let m = croston(&y, 0.1);
        assert!((m.rate - 0.95 * 2.0).abs() < 1e-9, "{}", m.rate);
    }

    #[test]
    fn tsb_decays_after_demand_stops() {
        let mut y = vec![0.0, 5.0, 0.0, 5.0, 0.0, 5.0];
        let before = tsb(&y, 0.2, 0.2).rate;
        y.extend([0.0; 10]);
        let after = tsb(&y, 0.2, 0.2).rate;
        assert!(after < before);
    }
}
