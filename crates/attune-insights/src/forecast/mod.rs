//! Demand forecasting for many series at once, with an automatic model choice per series.
//!
//! * [`naive`] — seasonal naive.
//! * [`ets`] — exponential smoothing state-space models ETS(error, trend, season) selected by AICc.
//! * [`theta`] — the Theta method with classical multiplicative seasonal adjustment.
//! * [`intermittent`] — Croston (SBA) and TSB for series with many zero periods.
//! * [`auto`] — the per-series choice among them, and [`auto::forecast_many`] to run it over series in
//!   parallel.
//! * [`metrics`] and [`backtest`] — MASE, sMAPE and rolling-origin evaluation.
//!
//! Every model gives point forecasts, a standard deviation per horizon and a central prediction interval.

pub mod auto;
pub mod backtest;
pub mod decompose;
pub mod ets;
pub mod intermittent;
pub mod metrics;
pub mod naive;
pub mod theta;

use std::fmt;

pub use auto::{AutoForecast, Candidate, ForecastSettings, Selection, forecast_auto, forecast_many};
pub use backtest::{BacktestFold, BacktestReport, rolling_origin, rolling_origin_many};
pub use ets::{EtsModel, EtsSpec, auto_ets, fit_ets};
pub use intermittent::{IntermittentMethod, IntermittentModel, fit_intermittent, is_intermittent};
pub use metrics::{mase, seasonal_scale, smape};
pub use naive::SeasonalNaive;
pub use theta::ThetaModel;

use crate::{InsightsError, Result};

/// Point forecasts with their uncertainty, one entry per step ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Point forecasts.
    pub mean: Vec<f64>,
    /// Standard deviation of the forecast error at each step.
    pub sd: Vec<f64>,
    /// Lower end of the central prediction interval.
    pub lower: Vec<f64>,
    /// Upper end of the central prediction interval.
    pub upper: Vec<f64>,
    /// Coverage of the interval, for example 0.95.
    pub level: f64,
}

impl Forecast {
    /// Normal prediction intervals `mean ± z·sd` at `level`; with `non_negative` the ends are cut at zero.
    pub fn from_mean_and_sd(mean: Vec<f64>, sd: Vec<f64>, level: f64, non_negative: bool) -> Self {
        let z = crate::normal::quantile(0.5 + level / 2.0);
        let floor = |v: f64| if non_negative { v.max(0.0) } else { v };
        let lower = mean.iter().zip(&sd).map(|(m, s)| floor(m - z * s)).collect();
        let upper = mean.iter().zip(&sd).map(|(m, s)| floor(m + z * s)).collect();
        Self { mean, sd, lower, upper, level }
    }

    /// Number of steps ahead.
    pub fn horizon(&self) -> usize {
        self.mean.len()
    }
}

/// A forecasting method, as chosen for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The value one season ago.
    SeasonalNaive,
    /// An exponential smoothing state-space model.
    Ets(EtsSpec),
    /// The Theta method.
    Theta,
    /// Croston's method with the Syntetos–Boylan bias correction.
    Croston,
    /// Teunter–Syntetos–Babai: demand probability and size smoothed separately.
    Tsb,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::SeasonalNaive => f.write_str("Seasonal naive"),
            Method::Ets(spec) => write!(f, "{spec}"),
            Method::Theta => f.write_str("Theta"),
            Method::Croston => f.write_str("Croston (SBA)"),
            Method::Tsb => f.write_str("TSB"),
        }
    }
}

/// A model fitted to one series, ready to forecast.
#[derive(Debug, Clone, PartialEq)]
pub enum FittedModel {
    /// Seasonal naive.
    SeasonalNaive(SeasonalNaive),
    /// Exponential smoothing.
    Ets(EtsModel),
    /// Theta.
    Theta(ThetaModel),
    /// Croston or TSB.
    Intermittent(IntermittentModel),
}

impl FittedModel {
    /// Which method this is.
    pub fn method(&self) -> Method {
        match self {
            FittedModel::SeasonalNaive(_) => Method::SeasonalNaive,
            FittedModel::Ets(m) => Method::Ets(m.spec),
            FittedModel::Theta(_) => Method::Theta,
            FittedModel::Intermittent(m) => match m.method {
                IntermittentMethod::Croston => Method::Croston,
                IntermittentMethod::Tsb => Method::Tsb,
            },
        }
    }

    /// Forecasts `horizon` steps ahead with a central prediction interval of coverage `level`.
    pub fn forecast(&self, horizon: usize, level: f64) -> Forecast {
        match self {
            FittedModel::SeasonalNaive(m) => m.forecast(horizon, level),
            FittedModel::Ets(m) => m.forecast(horizon, level),
            FittedModel::Theta(m) => m.forecast(horizon, level),
            FittedModel::Intermittent(m) => m.forecast(horizon, level),
        }
    }
}

/// Checks that a series is non-empty and finite.
pub(crate) fn check_series(y: &[f64], what: &'static str, needed: usize) -> Result<()> {
    if y.len() < needed {
        return Err(InsightsError::NotEnoughData { what, needed, got: y.len() });
    }
    if let Some(bad) = y.iter().find(|v| !v.is_finite()) {
        return Err(InsightsError::invalid(format!("{what}: series value {bad} is not finite")));
    }
    Ok(())
}

/// Checks 0 < level < 1.
pub(crate) fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(InsightsError::invalid(format!("interval level {level} must be in (0, 1)")))
    }
}
