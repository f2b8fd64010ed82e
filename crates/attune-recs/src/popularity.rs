//! Non-personalized baselines: all-time [`Popularity`] (how many users interacted with each item) and
//! time-decayed [`Trending`] (each interaction's weight halves every `half_life_ms`).

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};
use crate::recommender::{Recommender, check_scores_len};
use crate::sparse::{CsrMatrix, Row};

/// Most-popular items: score = number of users with a positive interaction (ties broken by index).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Popularity {
    scores: Vec<f32>,
}

impl Popularity {
    pub fn new() -> Self {
        Self::default()
    }

    /// The fitted per-item scores.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
}

impl Recommender for Popularity {
    fn name(&self) -> String {
        "popularity".into()
    }

    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError> {
        self.scores = train.column_counts().into_iter().map(|c| c as f32).collect();
        Ok(())
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_into(&self, _user: u32, _history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.scores.len())?;
        scores.copy_from_slice(&self.scores);
        Ok(())
    }
}

/// One interaction with its time, on dense item indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedInteraction {
    pub item: u32,
    pub timestamp_ms: i64,
    pub weight: f32,
}

/// Trending items: score = Σ weight · 2^(−age / half_life), age measured from `now_ms` (interactions
/// stamped after `now_ms` count as age 0). It needs timestamps, so it is fitted with
/// [`Trending::fit_timed`]; [`Recommender::fit`] on a bare matrix is an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trending {
    half_life_ms: f64,
    scores: Vec<f32>,
}

impl Trending {
    pub fn new(half_life_ms: f64) -> Result<Self, RecsError> {
        if !(half_life_ms.is_finite() && half_life_ms > 0.0) {
            return Err(invalid("half_life_ms", "must be positive and finite"));
        }
        Ok(Self { half_life_ms, scores: Vec::new() })
    }

    /// Computes the decayed scores of `n_items` items as of `now_ms`.
    pub fn fit_timed(
        &mut self,
        n_items: usize,
        interactions: &[TimedInteraction],
        now_ms: i64,
    ) -> Result<(), RecsError> {
        let mut scores = vec![0f64; n_items];
        for it in interactions {
            let slot = scores.get_mut(it.item as usize).ok_or(RecsError::OutOfRange {
                what: "item",
                index: it.item as usize,
                size: n_items,
            })?;
            let age = (now_ms - it.timestamp_ms).max(0) as f64;
            *slot += f64::from(it.weight) * (-age / self.half_life_ms * std::f64::consts::LN_2).exp();
        }
        self.scores = scores.into_iter().map(|s| s as f32).collect();
        Ok(())
    }

    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
}

impl Recommender for Trending {
    fn name(&self) -> String {
        format!("trending(half_life={}h)", self.half_life_ms / 3_600_000.0)
    }

    fn fit(&mut self, _train: &CsrMatrix) -> Result<(), RecsError> {
        Err(invalid("train", "trending needs timestamps: use Trending::fit_timed"))
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_into(&self, _user: u32, _history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.scores.len())?;
        scores.copy_from_slice(&self.scores);
        Ok(())
    }
}
