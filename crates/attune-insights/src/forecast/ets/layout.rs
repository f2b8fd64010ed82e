//! The optimizer's view of an ETS model: which coordinate of its parameter vector is which, the maps from
//! unbounded coordinates to the "usual" parameter region of Hyndman et al. (2008), the starting point and
//! the initial simplex steps.
//!
//! Coordinates: smoothing parameters first (α, β*, γ*, φ as the model has them), then ℓ₀, b₀ and the first
//! m − 1 seasonal states. α = 10⁻⁴ + (0.9999 − 10⁻⁴)·σ(u), β = α·σ(v), γ = (1 − α)·σ(w),
//! φ = 0.8 + 0.18·σ(z), with σ the logistic function; the last seasonal state makes the seasonal states sum
//! to 0 (additive) or m (multiplicative).

use super::fit::EtsParams;
use super::init::InitialGuess;
use super::spec::{EtsSpec, SeasonKind, TrendKind};

const ALPHA_LOWER: f64 = 1e-4;
const ALPHA_UPPER: f64 = 0.9999;
const PHI_LOWER: f64 = 0.8;
const PHI_UPPER: f64 = 0.98;

fn logistic(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

/// Where each free parameter sits in the optimizer's vector: smoothing parameters (α, β*, γ*, φ as
/// present), then ℓ₀, b₀ and the first m − 1 seasonal states.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    spec: EtsSpec,
    /// Season length in use (1 without season).
    pub m: usize,
}

impl Layout {
    pub(super) fn new(spec: EtsSpec, period: usize) -> Self {
        Self { spec, m: if spec.has_season() { period.max(2) } else { 1 } }
    }

    pub(super) fn smoothing_count(&self) -> usize {
        1 + usize::from(self.spec.has_trend())
            + usize::from(self.spec.has_season())
            + usize::from(self.spec.trend == TrendKind::Damped)
    }

    pub(super) fn free_parameters(&self) -> usize {
        self.smoothing_count()
            + 1
            + usize::from(self.spec.has_trend())
            + if self.spec.has_season() { self.m - 1 } else { 0 }
    }

    fn state_offset(&self) -> usize {
        self.smoothing_count()
    }

    fn season_offset(&self) -> usize {
        self.state_offset() + 1 + usize::from(self.spec.has_trend())
    }

    /// Smoothing parameters, ℓ₀ and b₀ from the optimizer's vector.
    pub(super) fn unpack(&self, x: &[f64]) -> (EtsParams, f64, f64) {
        let mut i = 0;
        let mut next = || {
            i += 1;
            x[i - 1]
        };
        let alpha = ALPHA_LOWER + (ALPHA_UPPER - ALPHA_LOWER) * logistic(next());
        let beta = if self.spec.has_trend() { alpha * logistic(next()) } else { 0.0 };
        let gamma = if self.spec.has_season() { (1.0 - alpha) * logistic(next()) } else { 0.0 };
        let phi = match self.spec.trend {
            TrendKind::Damped => PHI_LOWER + (PHI_UPPER - PHI_LOWER) * logistic(next()),
            TrendKind::Additive => 1.0,
            TrendKind::None => 0.0,
        };
        let level = next();
        let trend = if self.spec.has_trend() { next() } else { 0.0 };
        (EtsParams { alpha, beta, gamma, phi }, level, trend)
    }

    /// Writes the normalized initial seasonal states into `ring`; false if a multiplicative one is not
    /// positive.
    pub(super) fn fill_season(&self, x: &[f64], ring: &mut [f64]) -> bool {
        match self.spec.season {
            SeasonKind::None => {
                ring[0] = 0.0;
                true
            }
            SeasonKind::Additive | SeasonKind::Multiplicative => {
                let free = &x[self.season_offset()..self.season_offset() + self.m - 1];
                ring[..self.m - 1].copy_from_slice(free);
                let total: f64 = free.iter().sum();
                if self.spec.season == SeasonKind::Additive {
                    ring[self.m - 1] = -total;
                    true
                } else {
                    ring[self.m - 1] = self.m as f64 - total;
                    ring.iter().all(|s| *s > 0.0)
                }
            }
        }
    }

    pub(super) fn start(&self, guess: &InitialGuess) -> Vec<f64> {
        let mut x = Vec::with_capacity(self.free_parameters());
        let alpha = ALPHA_LOWER + 0.2 * (ALPHA_UPPER - ALPHA_LOWER) / self.m as f64;
        x.push(logit((alpha - ALPHA_LOWER) / (ALPHA_UPPER - ALPHA_LOWER)));
        if self.spec.has_trend() {
            x.push(logit(0.1));
        }
        if self.spec.has_season() {
            x.push(logit(0.05));
        }
        if self.spec.trend == TrendKind::Damped {
            x.push(logit((0.95 - PHI_LOWER) / (PHI_UPPER - PHI_LOWER)));
        }
        x.push(guess.level);
        if self.spec.has_trend() {
            x.push(guess.trend);
        }
        if self.spec.has_season() {
            let mut season = guess.season.clone();
            if self.spec.season == SeasonKind::Multiplicative {
                let mean = season.iter().sum::<f64>() / self.m as f64;
                season.iter_mut().for_each(|s| *s /= mean);
            }
            x.extend_from_slice(&season[..self.m - 1]);
        }
        x
    }

    pub(super) fn steps(&self, guess: &InitialGuess) -> Vec<f64> {
        let mut steps = vec![0.5; self.smoothing_count()];
        steps.push(0.05 * guess.level.abs().max(0.1));
        if self.spec.has_trend() {
            steps.push(0.01 * guess.level.abs().max(0.1));
        }
        if self.spec.has_season() {
            steps.extend(std::iter::repeat_n(0.02, self.m - 1));
        }
        steps
    }
}
