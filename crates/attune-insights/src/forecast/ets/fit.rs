//! Fitting ETS models: maximum likelihood over the smoothing parameters and the initial states by
//! Nelder–Mead, information criteria, the AICc choice among the family, and forecasts.
//!
//! The parameters are kept in the "usual" region of Hyndman et al. (2008) by construction: the optimizer
//! works on unbounded values mapped through logistic functions to α ∈ (10⁻⁴, 0.9999), β = α·β* with
//! β* ∈ (0, 1), γ = (1−α)·γ* with γ* ∈ (0, 1) and φ ∈ (0.8, 0.98). The data are divided by their
//! early mean level while fitting so that every coordinate has a similar scale; the initial seasonal states
//! are normalized (sum 0 for additive, mean 1 for multiplicative), so m − 1 of them are free.

use super::init::initial_guess;
use super::layout::Layout;
use super::recursion::{PassSums, filter, point_forecasts, variance_multipliers};
use super::spec::{EtsSpec, SeasonKind};
use crate::forecast::{Forecast, check_series};
use crate::optim::{NelderMeadOptions, nelder_mead};
use crate::{InsightsError, Result};

/// Likelihood evaluations allowed for one model fit (the `forecast` package's default budget).
const MAX_EVALUATIONS: usize = 2_000;
/// Evaluations for the first Nelder–Mead run; the rest go to a restart from its best point.
const FIRST_RUN_EVALUATIONS: usize = 1_000;

/// Smoothing parameters in innovations form (β and γ as in Hyndman et al. 2008, so β < α, γ < 1 − α).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtsParams {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing (unused without trend).
    pub beta: f64,
    /// Seasonal smoothing (unused without season).
    pub gamma: f64,
    /// Trend damping (1 for an undamped trend; unused without trend).
    pub phi: f64,
}

/// The states of an ETS model at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct EtsState {
    /// Level ℓ.
    pub level: f64,
    /// Trend (slope) b; 0 without trend.
    pub trend: f64,
    /// Seasonal states indexed by time modulo the period (time 0 is the first observation); `[0.0]`
    /// without season.
    pub season: Vec<f64>,
}

/// A fitted ETS model.
#[derive(Debug, Clone, PartialEq)]
pub struct EtsModel {
    /// Which model.
    pub spec: EtsSpec,
    /// Season length used (1 without season).
    pub period: usize,
    /// Estimated smoothing parameters.
    pub params: EtsParams,
    /// Estimated initial states (before the first observation).
    pub initial: EtsState,
    /// States after the last observation.
    pub last: EtsState,
    /// Number of observations fitted.
    pub observations: usize,
    /// Standard deviation of the innovations (relative for multiplicative errors), on n − k degrees of
    /// freedom.
    pub sigma: f64,
    /// Maximized Gaussian log-likelihood.
    pub log_likelihood: f64,
    /// Number of estimated parameters k, σ included.
    pub parameters: usize,
    /// Akaike's information criterion.
    pub aic: f64,
    /// AIC corrected for small samples.
    pub aicc: f64,
    /// Likelihood evaluations the optimizer used.
    pub evaluations: usize,
    non_negative: bool,
}

/// Fits one ETS model to `y` with season length `period` (ignored for non-seasonal models).
pub fn fit_ets(y: &[f64], period: usize, spec: EtsSpec) -> Result<EtsModel> {
    check_series(y, "ETS", 3)?;
    let layout = Layout::new(spec, period);
    let n = y.len();
    let needed = (layout.free_parameters() + 5).max(if spec.has_season() { 2 * layout.m } else { 0 });
    if n < needed {
        return Err(InsightsError::NotEnoughData { what: "ETS", needed, got: n });
    }
    let multiplicative = spec.error == super::ErrorKind::Multiplicative || spec.season == SeasonKind::Multiplicative;
    if multiplicative && y.iter().any(|v| *v <= 0.0) {
        return Err(InsightsError::invalid(format!("{spec} needs strictly positive data")));
    }
    let scale = data_scale(y, layout.m);
    let scaled: Vec<f64> = y.iter().map(|v| v / scale).collect();

    let guess = initial_guess(&scaled, &spec, layout.m);
    let start = layout.start(&guess);
    let steps = layout.steps(&guess);
    let mut ring = vec![0.0; layout.m];
    let objective = |x: &[f64]| -> f64 {
        let (params, mut level, mut trend) = layout.unpack(x);
        if !layout.fill_season(x, &mut ring) {
            return f64::INFINITY;
        }
        match filter(&spec, &params, &scaled, &mut level, &mut trend, &mut ring, None) {
            Some(sums) => sums.objective(n),
            None => f64::INFINITY,
        }
    };
    // Nelder–Mead often stalls on these 10–18 dimensional problems; a restart from the best point with a
    // fresh simplex finds better optima than one long run with the same budget.
    let mut objective = objective;
    let first = NelderMeadOptions { max_evaluations: FIRST_RUN_EVALUATIONS, relative_tolerance: 1e-8 };
    let mut minimum = nelder_mead(&mut objective, &start, &steps, first);
    if minimum.f.is_finite() {
        let remaining = MAX_EVALUATIONS.saturating_sub(minimum.evaluations);
        let restart = NelderMeadOptions { max_evaluations: remaining, relative_tolerance: 1e-8 };
        let from = minimum.x.clone();
        let second = nelder_mead(&mut objective, &from, &steps, restart);
        let evaluations = minimum.evaluations + second.evaluations;
        if second.f <= minimum.f {
            minimum = second;
        }
        minimum.evaluations = evaluations;
    }
    if !minimum.f.is_finite() {
        return Err(InsightsError::FitFailed("ETS"));
    }

    // Back to the data's scale, and one more pass for the final states and the likelihood.
    let (params, level, trend) = layout.unpack(&minimum.x);
    let mut season = vec![0.0; layout.m];
    layout.fill_season(&minimum.x, &mut season);
    if spec.season != SeasonKind::Multiplicative {
        season.iter_mut().for_each(|s| *s *= scale);
    }
    let initial = EtsState { level: level * scale, trend: trend * scale, season };
    let mut last = initial.clone();
    let sums = filter(&spec, &params, y, &mut last.level, &mut last.trend, &mut last.season, None)
        .ok_or(InsightsError::FitFailed("ETS"))?;
    let mut model = EtsModel::assemble(spec, layout, params, initial, last, y, sums);
    model.evaluations = minimum.evaluations;
    Ok(model)
}

/// Fits every candidate ETS model (see [`EtsSpec::candidates`]) and returns the one with the lowest AICc.
/// Seasonal models are tried when `period` > 1 and the series has at least two full seasons.
pub fn auto_ets(y: &[f64], period: usize) -> Result<EtsModel> {
    check_series(y, "ETS", 3)?;
    let positive = y.iter().all(|v| *v > 0.0);
    let seasonal = period > 1 && y.len() >= 2 * period;
    let mut best: Option<EtsModel> = None;
    let mut last_error = None;
    for spec in EtsSpec::candidates(positive, seasonal) {
        match fit_ets(y, period, spec) {
            Ok(model) => {
                if best.as_ref().is_none_or(|b| model.aicc < b.aicc) {
                    best = Some(model);
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    best.ok_or_else(|| last_error.unwrap_or(InsightsError::FitFailed("ETS")))
}

impl EtsModel {
    fn assemble(
        spec: EtsSpec,
        layout: Layout,
        params: EtsParams,
        initial: EtsState,
        last: EtsState,
        y: &[f64],
        sums: PassSums,
    ) -> Self {
        let n = y.len();
        let k = layout.free_parameters() + 1;
        let log_likelihood = sums.log_likelihood(n);
        let aic = -2.0 * log_likelihood + 2.0 * k as f64;
        let aicc = if n > k + 1 { aic + 2.0 * (k * (k + 1)) as f64 / (n - k - 1) as f64 } else { f64::INFINITY };
        let sigma = (sums.squared_errors / (n.saturating_sub(k)).max(1) as f64).sqrt();
        Self {
            spec,
            period: layout.m,
            params,
            initial,
            last,
            observations: n,
            sigma,
            log_likelihood,
            parameters: k,
            aic,
            aicc,
            evaluations: 0,
            non_negative: y.iter().all(|v| *v >= 0.0),
        }
    }

    /// Forecasts `horizon` steps ahead with a central prediction interval of coverage `level`.
    pub fn forecast(&self, horizon: usize, level: f64) -> Forecast {
        let mean = point_forecasts(
            &self.spec,
            &self.params,
            self.last.level,
            self.last.trend,
            &self.last.season,
            self.observations,
            horizon,
        );
        let multipliers = variance_multipliers(&self.spec, &self.params, self.period, horizon);
        let relative = self.spec.error == super::ErrorKind::Multiplicative;
        let sd = mean
            .iter()
            .zip(&multipliers)
            .map(|(m, v)| if relative { m.abs() * self.sigma * v.sqrt() } else { self.sigma * v.sqrt() })
            .collect();
        Forecast::from_mean_and_sd(mean, sd, level, self.non_negative)
    }
}

/// A typical magnitude of the series' early values, to bring the states to order one while fitting.
fn data_scale(y: &[f64], m: usize) -> f64 {
    let count = y.len().min(m.max(10));
    let mean = y[..count].iter().map(|v| v.abs()).sum::<f64>() / count as f64;
    if mean > 0.0 {
        mean
    } else {
        let overall = y.iter().map(|v| v.abs()).sum::<f64>() / y.len() as f64;
        if overall > 0.0 { overall } else { 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::ets::spec::{ErrorKind, TrendKind};

    fn seasonal_series(n: usize) -> Vec<f64> {
        // A deterministic trend-seasonal series with a little pseudo-noise.
        (0..n)
            .map(|t| {
                let season = 1.0 + 0.2 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin();
                let noise = 1.0 + 0.02 * ((t * 7919 % 97) as f64 / 97.0 - 0.5);
                (100.0 + 0.5 * t as f64) * season * noise
            })
            .collect()
    }

    #[test]
    fn fits_every_candidate_on_a_seasonal_series() {
        let y = seasonal_series(120);
        for spec in EtsSpec::candidates(true, true) {
            let model = fit_ets(&y, 12, spec).unwrap();
            assert!(model.aicc.is_finite(), "{spec}");
            let f = model.forecast(24, 0.95);
            assert!(f.mean.iter().all(|v| v.is_finite() && *v > 0.0), "{spec}");
        }
    }

    #[test]
    fn auto_choice_prefers_a_seasonal_model_for_seasonal_data() {
        let y = seasonal_series(120);
        let model = auto_ets(&y, 12).unwrap();
        assert!(model.spec.has_season(), "chose {}", model.spec);
    }

    #[test]
    fn too_short_or_non_positive_data_is_rejected() {
        let spec = EtsSpec::new(ErrorKind::Multiplicative, TrendKind::None, SeasonKind::None);
        assert!(matches!(fit_ets(&[1.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1, spec), Err(InsightsError::InvalidInput(_))));
        let seasonal = EtsSpec::new(ErrorKind::Additive, TrendKind::None, SeasonKind::Additive);
        assert!(matches!(fit_ets(&[1.0; 20], 12, seasonal), Err(InsightsError::NotEnoughData { .. })));
    }
}
