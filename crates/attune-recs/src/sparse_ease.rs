//! EASE kept sparse for serving: each item's `keep` largest weights by magnitude of the dense EASE matrix
//! ([`crate::Ease`]), stored as item × item rows like item-kNN's neighbour lists.
//!
//! The dense matrix is items² floats (52 MB for 3,600 items), too large to store with every model version
//! and to load per tenant; EASE's weight rows are dominated by few large entries, so a top-K row keeps most
//! of its ranking (`attune eval recs` reports the dense and the sparse model side by side).
//! Negative weights are kept with the positive ones: they hold popular items back for shoppers whose items
//! predict against them, and dropping them cost a tenth of the NDCG on Online Retail.
//! A user's score for j is Σ_i x_ui · B_ij over the kept B_ij; an item reached by no kept weight scores 0.
//! The dense matrix exists only during `fit`.

use serde::{Deserialize, Serialize};

use crate::ease::{Ease, EaseConfig};
use crate::error::{RecsError, invalid};
use crate::recommender::{Recommender, check_scores_len};
use crate::sparse::{CsrMatrix, Row};

/// Sparse EASE hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseEaseConfig {
    /// EASE's L2 regularization λ.
    pub lambda: f32,
    /// At most this many (most popular) items take part in the dense fit (time grows with its cube, memory
    /// with its square).
    pub max_items: usize,
    /// Weights kept per item.
    pub keep: usize,
}

impl Default for SparseEaseConfig {
    fn default() -> Self {
        let dense = EaseConfig::default();
        Self { lambda: dense.lambda, max_items: dense.max_items, keep: 100 }
    }
}

/// A fitted (or not yet fitted) sparse EASE model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SparseEase {
    config: SparseEaseConfig,
    /// Row i: item i's kept weights B_ij, sorted by j.
    weights: CsrMatrix,
}

impl SparseEase {
    pub fn new(config: SparseEaseConfig) -> Result<Self, RecsError> {
        if config.keep == 0 {
            return Err(invalid("keep", "must be at least 1"));
        }
        Ease::new(dense_config(&config))?;
        Ok(Self { config, weights: CsrMatrix::empty(0, 0) })
    }

    /// Item `i`'s kept weights.
    pub fn neighbours(&self, i: u32) -> Row<'_> {
        self.weights.row(i as usize)
    }

    /// The model in new item indices: item `old` becomes `new_of_old[old]`, and items mapped to `None` are left
    /// out with every weight on them.
    pub fn reindex_items(&self, new_of_old: &[Option<u32>], n_new: usize) -> Result<Self, RecsError> {
        Ok(Self { config: self.config.clone(), weights: self.weights.reindex_square(new_of_old, n_new)? })
    }

    /// Kept weights in all.
    pub fn nnz(&self) -> usize {
        self.weights.nnz()
    }
}

fn dense_config(config: &SparseEaseConfig) -> EaseConfig {
    EaseConfig { lambda: config.lambda, max_items: config.max_items }
}

/// Item `i`'s `keep` largest weights in `dense` by magnitude (ties by item index); zeros are left out.
fn top_weights(dense: &Ease, i: u32, keep: usize) -> Vec<(u32, f32)> {
    let mut row: Vec<(u32, f32)> =
        dense.modelled().iter().map(|&j| (j, dense.weight(i, j))).filter(|&(_, w)| w != 0.0 && w.is_finite()).collect();
    if row.len() > keep {
        row.select_nth_unstable_by(keep - 1, |a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        row.truncate(keep);
    }
    row
}

impl Recommender for SparseEase {
    fn name(&self) -> String {
        format!("EASE(λ={}, top {} kept)", self.config.lambda, self.config.keep)
    }

    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError> {
        let mut dense = Ease::new(dense_config(&self.config))?;
        dense.fit(train)?;
        let mut rows = vec![Vec::new(); train.n_cols()];
        for &i in dense.modelled() {
            rows[i as usize] = top_weights(&dense, i, self.config.keep);
        }
        drop(dense);
        self.weights = CsrMatrix::from_rows(rows.len(), &rows)?;
        Ok(())
    }

    fn n_items(&self) -> usize {
        self.weights.n_rows()
    }

    fn score_into(&self, _user: u32, history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.n_items())?;
        scores.fill(0.0);
        self.weights.add_weighted_rows(history.iter(), scores);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two groups of items that users buy together: {0, 1, 2} and {3, 4}.
    fn groups() -> CsrMatrix {
        let mut rows = Vec::new();
        for u in 0..30u32 {
            rows.push(if u % 2 == 0 { vec![0, 1, 2] } else { vec![3, 4] });
            if u % 5 == 0 {
                rows.push(vec![u % 3, 3]);
            }
        }
        CsrMatrix::from_rows_binary(6, &rows).unwrap()
    }

    #[test]
    fn keeps_the_largest_dense_weights_of_each_row_by_magnitude() {
        let train = groups();
        let config = SparseEaseConfig { lambda: 1.0, max_items: 100, keep: 2 };
        let mut sparse = SparseEase::new(config.clone()).unwrap();
        sparse.fit(&train).unwrap();
        let mut dense = Ease::new(dense_config(&config)).unwrap();
        dense.fit(&train).unwrap();
        for i in 0..6u32 {
            let kept: Vec<(u32, f32)> = sparse.neighbours(i).iter().collect();
            assert!(kept.len() <= 2, "item {i} keeps {kept:?}");
            for &(j, w) in &kept {
                assert_eq!(w, dense.weight(i, j), "kept weights are the dense ones");
                assert!(w != 0.0);
            }
            let smallest_kept = kept.iter().map(|k| k.1.abs()).fold(f32::INFINITY, f32::min);
            for j in (0..6u32).filter(|j| kept.iter().all(|k| k.0 != *j)) {
                assert!(dense.weight(i, j).abs() <= smallest_kept, "({i},{j}) dropped though larger than a kept one");
            }
        }
        assert_eq!(sparse.n_items(), 6);
        assert!(sparse.neighbours(5).is_empty(), "an item without interactions has no weights");
    }

    #[test]
    fn with_every_weight_kept_it_scores_as_the_dense_model() {
        let train = groups();
        let mut sparse = SparseEase::new(SparseEaseConfig { lambda: 1.0, max_items: 100, keep: 100 }).unwrap();
        sparse.fit(&train).unwrap();
        let mut scores = vec![0f32; 6];
        let history = [0u32];
        sparse.score_into(0, Row { indices: &history, values: &[1.0] }, &mut scores).unwrap();
        let mut dense = Ease::new(EaseConfig { lambda: 1.0, max_items: 100 }).unwrap();
        dense.fit(&train).unwrap();
        let mut dense_scores = vec![0f32; 6];
        dense.score_into(0, Row { indices: &history, values: &[1.0] }, &mut dense_scores).unwrap();
        for j in 0..5 {
            assert_eq!(scores[j], dense_scores[j], "item {j}");
        }
        assert!(scores[1] > 0.0 && scores[2] > 0.0, "{scores:?}");
        assert!(scores[1] > scores[4], "an item bought with 0 outranks one from the other group: {scores:?}");
    }

    #[test]
    fn rejects_a_zero_keep_and_a_bad_lambda() {
        assert!(SparseEase::new(SparseEaseConfig { keep: 0, ..SparseEaseConfig::default() }).is_err());
        assert!(SparseEase::new(SparseEaseConfig { lambda: 0.0, ..SparseEaseConfig::default() }).is_err());
    }
}
