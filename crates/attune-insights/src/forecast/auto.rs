//! Automatic model choice per series, and forecasting many series in parallel.
//!
//! Intermittent series (see [`is_intermittent`]) get Croston or TSB. Any other series gets one of the
//! [`Candidate`]s — the AICc-best ETS model, Theta, seasonal naive — chosen as [`Selection`] says. The
//! default, [`Selection::InformationCriterion`], takes the ETS model with the lowest AICc among the whole
//! family and falls back to Theta, then seasonal naive, when no ETS model can be fitted (too short a
//! series). [`Selection::Holdout`] instead scores every candidate by MASE on the last values of the series
//! after fitting it on the rest. On aus_retail (152 monthly series) hold-out choice was less accurate than
//! the AICc choice at each of three forecast origins tried (24, 48 and 72 months before the end; one or
//! several hold-out windows, with or without a margin in favour of ETS), so it is not the default.

use rayon::prelude::*;

use super::ets::auto_ets;
use super::intermittent::{fit_intermittent, is_intermittent};
use super::metrics::mase;
use super::naive::SeasonalNaive;
use super::theta::ThetaModel;
use super::{FittedModel, Forecast, Method, check_level, check_series};
use crate::{InsightsError, Result};

/// How to choose among the non-intermittent candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The AICc-best ETS model; Theta, then seasonal naive, when no ETS model can be fitted.
    InformationCriterion,
    /// Score each candidate on the last `window` observations after fitting it on the rest.
    Holdout {
        /// Number of final observations held out.
        window: usize,
    },
    /// Always this candidate (the others, in order, only when it cannot be fitted).
    Fixed(Candidate),
}

/// What to forecast and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastSettings {
    /// Season length (12 for monthly data, 7 for daily data with a weekly cycle, 1 for none).
    pub period: usize,
    /// Steps ahead to forecast.
    pub horizon: usize,
    /// Coverage of the prediction intervals, for example 0.95.
    pub level: f64,
    /// How the model is chosen.
    pub selection: Selection,
}

impl ForecastSettings {
    /// Settings for `period` and `horizon` with 95 % intervals and the AICc choice.
    pub fn new(period: usize, horizon: usize) -> Self {
        Self { period, horizon, level: 0.95, selection: Selection::InformationCriterion }
    }
}

/// The chosen model, its forecast, and how each candidate scored in the hold-out (empty when no hold-out
/// was run).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoForecast {
    /// The model fitted on the whole series.
    pub model: FittedModel,
    /// Its forecast.
    pub forecast: Forecast,
    /// Hold-out MASE by candidate method, in the order tried.
    pub holdout_scores: Vec<(Method, f64)>,
}

impl AutoForecast {
    /// The chosen method.
    pub fn method(&self) -> Method {
        self.model.method()
    }
}

/// The model families the automatic choice picks from, in order of preference on ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Candidate {
    /// The AICc-best ETS model.
    Ets,
    /// The Theta method.
    Theta,
    /// Seasonal naive.
    SeasonalNaive,
}

impl Candidate {
    /// All candidates, in order of preference on ties.
    pub const ALL: [Candidate; 3] = [Candidate::Ets, Candidate::Theta, Candidate::SeasonalNaive];

    /// Fits this candidate to `y`.
    pub fn fit(self, y: &[f64], period: usize) -> Result<FittedModel> {
        Ok(match self {
            Candidate::Ets => FittedModel::Ets(auto_ets(y, period)?),
            Candidate::Theta => FittedModel::Theta(ThetaModel::fit(y, period)?),
            Candidate::SeasonalNaive => FittedModel::SeasonalNaive(SeasonalNaive::fit(y, period)?),
        })
    }
}

/// Chooses a model for `y`, fits it and forecasts.
pub fn forecast_auto(y: &[f64], settings: &ForecastSettings) -> Result<AutoForecast> {
    check_series(y, "automatic forecast", 2)?;
    check_level(settings.level)?;
    let period = settings.period.max(1);
    if is_intermittent(y) && y.iter().filter(|v| **v > 0.0).count() >= 2 {
        let model = FittedModel::Intermittent(fit_intermittent(y)?);
        let forecast = model.forecast(settings.horizon, settings.level);
        return Ok(AutoForecast { model, forecast, holdout_scores: Vec::new() });
    }
    let (candidate, holdout_scores) = match settings.selection {
        Selection::Holdout { window } => choose_by_holdout(y, period, window.max(1)),
        Selection::Fixed(candidate) => (Some(candidate), Vec::new()),
        Selection::InformationCriterion => (Some(Candidate::Ets), Vec::new()),
    };
    let model = match candidate.map(|c| c.fit(y, period)) {
        Some(Ok(model)) => model,
        _ => fit_first_that_works(y, period)?,
    };
    let forecast = model.forecast(settings.horizon, settings.level);
    Ok(AutoForecast { model, forecast, holdout_scores })
}

/// Runs [`forecast_auto`] on every series in parallel; results are in input order.
pub fn forecast_many<S: AsRef<[f64]> + Sync>(series: &[S], settings: &ForecastSettings) -> Vec<Result<AutoForecast>> {
    series.par_iter().map(|y| forecast_auto(y.as_ref(), settings)).collect()
}

/// The candidate with the lowest hold-out MASE, or None when fewer than two can be scored.
fn choose_by_holdout(y: &[f64], period: usize, window: usize) -> (Option<Candidate>, Vec<(Method, f64)>) {
    if y.len() < window + 2 * period + 2 {
        return (None, Vec::new());
    }
    let (train, test) = y.split_at(y.len() - window);
    let mut scores = Vec::new();
    let mut best: Option<(Candidate, f64)> = None;
    for candidate in Candidate::ALL {
        let Ok(model) = candidate.fit(train, period) else { continue };
        let forecast = model.forecast(window, 0.95);
        let Some(score) = mase(train, test, &forecast.mean, period) else { continue };
        scores.push((model.method(), score));
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((candidate, score));
        }
    }
    if scores.len() < 2 { (None, scores) } else { (best.map(|(f, _)| f), scores) }
}

fn fit_first_that_works(y: &[f64], period: usize) -> Result<FittedModel> {
    let mut last_error = None;
    for candidate in Candidate::ALL {
        match candidate.fit(y, period) {
            Ok(model) => return Ok(model),
            Err(e) => last_error = Some(e),
        }
    }
    // Too short for any model: a flat forecast at the last value.
    match Candidate::SeasonalNaive.fit(y, 1) {
        Ok(model) => Ok(model),
        Err(_) => Err(last_error.unwrap_or(InsightsError::FitFailed("automatic forecast"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intermittent_series_get_croston_or_tsb() {
        let y: Vec<f64> = (0..60).map(|t| if t % 3 == 0 { (t % 7) as f64 + 1.0 } else { 0.0 }).collect();
        let result = forecast_auto(&y, &ForecastSettings::new(12, 6)).unwrap();
        assert!(matches!(result.method(), Method::Croston | Method::Tsb), "{}", result.method());
    }

    #[test]
    fn many_series_keep_their_order() {
        let a: Vec<f64> = (0..60).map(|t| 10.0 + t as f64).collect();
        let b = vec![5.0; 60];
        let results = forecast_many(&[a, b], &ForecastSettings::new(12, 3));
        assert!(results[0].as_ref().unwrap().forecast.mean[0] > 60.0);
        assert!((results[1].as_ref().unwrap().forecast.mean[0] - 5.0).abs() < 1e-6);
    }

    #[test]
    fn holdout_choice_reports_every_candidate() {
        let y: Vec<f64> = (0..96).map(|t| 100.0 + t as f64 + 10.0 * ((t % 12) as f64 - 5.5).abs()).collect();
        let settings =
            ForecastSettings { selection: Selection::Holdout { window: 12 }, ..ForecastSettings::new(12, 6) };
        let result = forecast_auto(&y, &settings).unwrap();
        assert_eq!(result.holdout_scores.len(), 3);
        let best = result.holdout_scores.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let chosen = result.holdout_scores.iter().find(|s| s.1 == best).unwrap().0;
        assert_eq!(std::mem::discriminant(&chosen), std::mem::discriminant(&result.method()));
    }

    #[test]
    fn very_short_series_still_forecast() {
        let result = forecast_auto(&[3.0, 4.0, 5.0], &ForecastSettings::new(12, 2)).unwrap();
        assert_eq!(result.forecast.mean.len(), 2);
    }
}
