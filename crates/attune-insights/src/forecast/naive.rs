//! The seasonal naive method: each forecast repeats the value one season earlier.

use super::{Forecast, check_series};
use crate::Result;

/// A seasonal naive model: the last season of the series and the spread of its seasonal differences.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalNaive {
    /// The last `period` values, oldest first.
    pub last_season: Vec<f64>,
    /// Root mean square of the in-sample seasonal differences yₜ − yₜ₋ₘ.
    pub sigma: f64,
    /// Whether the series never goes below zero (intervals are then cut at zero).
    pub non_negative: bool,
}

impl SeasonalNaive {
    /// Fits to `y` with season length `period` (1 gives the plain naive method). Needs more than `period`
    /// values.
    pub fn fit(y: &[f64], period: usize) -> Result<Self> {
        let m = period.max(1);
        check_series(y, "seasonal naive", m + 1)?;
        let squares: f64 = y.windows(m + 1).map(|w| (w[m] - w[0]).powi(2)).sum();
        Ok(Self {
            last_season: y[y.len() - m..].to_vec(),
            sigma: (squares / (y.len() - m) as f64).sqrt(),
            non_negative: y.iter().all(|v| *v >= 0.0),
        })
    }

    /// Forecasts `horizon` steps; the error variance grows with the number of whole seasons ahead.
    pub fn forecast(&self, horizon: usize, level: f64) -> Forecast {
        let m = self.last_season.len();
        let mean = (0..horizon).map(|h| self.last_season[h % m]).collect();
        let sd = (0..horizon).map(|h| self.sigma * ((h / m + 1) as f64).sqrt()).collect();
        Forecast::from_mean_and_sd(mean, sd, level, self.non_negative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_last_season_exactly() {
        let season = [3.0, 7.0, 1.0, 9.0];
        let y: Vec<f64> = season.iter().cycle().take(14).copied().collect();
        let model = SeasonalNaive::fit(&y, 4).unwrap();
        let f = model.forecast(6, 0.95);
        assert_eq!(f.mean, vec![1.0, 9.0, 3.0, 7.0, 1.0, 9.0]);
        assert_eq!(model.sigma, 0.0);
    }
}
