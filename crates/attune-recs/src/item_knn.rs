//! Cosine item-kNN: sim(i, j) = ⟨x_i, x_j⟩ / (‖x_i‖‖x_j‖ + shrinkage) over the items' user columns,
//! keeping each item's top-K neighbours; a user's score for j is Σ_i x_ui · sim(i, j) over the items
//! in their history. Similarities are computed item by item in parallel (rayon), each from the
//! co-occurrences through the users who touched it.

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};
use crate::recommender::{Recommender, check_scores_len};
use crate::sparse::{CsrMatrix, Row};

/// Item-kNN hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemKnnConfig {
    /// Neighbours kept per item.
    pub k: usize,
    /// Added to the cosine denominator: pulls similarities resting on few co-occurrences towards zero.
    pub shrinkage: f32,
    /// Treat every stored interaction as 1 (counts and event weights ignored) for similarities and scores.
    pub binary: bool,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        Self { k: 100, shrinkage: 10.0, binary: false }
    }
}

/// A fitted (or not yet fitted) cosine item-kNN model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemKnn {
    config: ItemKnnConfig,
    /// Row i: item i's neighbours j with sim(i, j), sorted by j.
    neighbours: CsrMatrix,
}

impl ItemKnn {
    pub fn new(config: ItemKnnConfig) -> Result<Self, RecsError> {
        if config.k == 0 {
            return Err(invalid("k", "must be at least 1"));
        }
        if !(config.shrinkage.is_finite() && config.shrinkage >= 0.0) {
            return Err(invalid("shrinkage", "must be finite and non-negative"));
        }
        Ok(Self { config, neighbours: CsrMatrix::empty(0, 0) })
    }

    /// The kept similarity of `i` to `j` (0 when `j` is not among `i`'s top-K).
    pub fn similarity(&self, i: u32, j: u32) -> f32 {
        self.neighbours.get(i as usize, j)
    }

    /// Item `i`'s kept neighbours.
    pub fn neighbours(&self, i: u32) -> Row<'_> {
        self.neighbours.row(i as usize)
    }

    /// Every item's kept neighbours: row i holds sim(i, j) by j.
    pub fn similarities(&self) -> &CsrMatrix {
        &self.neighbours
    }
}

impl Recommender for ItemKnn {
    fn name(&self) -> String {
        let b = if self.config.binary { ", binary" } else { "" };
        format!("item-kNN(k={}, shrink={}{b})", self.config.k, self.config.shrinkage)
    }

    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError> {
        let binary;
        let train = if self.config.binary {
            binary = train.map_values(|_| 1.0);
            &binary
        } else {
            train
        };
        let n_items = train.n_cols();
        let by_item = train.transpose();
        let norms: Vec<f32> =
            (0..n_items).map(|i| by_item.row(i).values.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
        let k = self.config.k;
        let shrink = self.config.shrinkage;
        let lists: Vec<Vec<(u32, f32)>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n_items], Vec::<u32>::new()),
                |(acc, touched), i| {
                    for (u, x_ui) in by_item.row(i).iter() {
                        for (j, x_uj) in train.row(u as usize).iter() {
                            if j as usize == i {
                                continue;
                            }
                            if acc[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            acc[j as usize] += x_ui * x_uj;
                        }
                    }
                    let mut sims: Vec<(u32, f32)> = touched
                        .drain(..)
                        .map(|j| {
                            let dot = std::mem::take(&mut acc[j as usize]);
                            (j, dot / (norms[i] * norms[j as usize] + shrink))
                        })
                        .filter(|&(_, s)| s > 0.0 && s.is_finite())
                        .collect();
                    if sims.len() > k {
                        sims.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        sims.truncate(k);
                    }
                    // Every co-occurring item was a candidate: without this, each kept list would hold their
                    // capacity until the end of the fit (740 MB at 100k items and 1M events).
                    sims.shrink_to_fit();
                    sims
                },
            )
            .collect();
        // Each list has distinct, positive entries: the rows as they are (no triplets, no re-summing).
        self.neighbours = CsrMatrix::from_rows(n_items, &lists)?;
        Ok(())
    }

    fn n_items(&self) -> usize {
        self.neighbours.n_rows()
    }

    fn score_into(&self, _user: u32, history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.n_items())?;
        scores.fill(0.0);
        let binary = self.config.binary;
        self.neighbours.add_weighted_rows(history.iter().map(|(i, x)| (i, if binary { 1.0 } else { x })), scores);
        Ok(())
    }
}
