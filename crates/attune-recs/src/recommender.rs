//! The [`Recommender`] trait every model implements, and the top-N selection that never returns an
//! excluded (already seen) item or the same item twice.

use crate::error::RecsError;
use crate::sparse::{CsrMatrix, Row};

/// A model fitted on a user × item matrix that scores every item for a user.
///
/// `history` is the user's row of interactions (the training row in evaluation, the live row in
/// production); item-based models score from it alone, factor models use `user`'s learned vector.
pub trait Recommender: Send + Sync {
    /// A short name with the hyper-parameters, for reports.
    fn name(&self) -> String;

    /// Learns from `train` (users × items). Calling it again refits from scratch.
    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError>;

    /// The number of items the fitted model scores.
    fn n_items(&self) -> usize;

    /// Writes a score for every item into `scores` (length [`Recommender::n_items`]); higher is better.
    fn score_into(&self, user: u32, history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError>;

    /// The top `n` items by score, best first, excluding the items in `history`.
    fn recommend(&self, user: u32, history: Row<'_>, n: usize) -> Result<Vec<(u32, f32)>, RecsError> {
        let mut scores = vec![0f32; self.n_items()];
        self.score_into(user, history, &mut scores)?;
        Ok(top_n_excluding(&mut scores, history.indices, n))
    }
}

pub(crate) fn check_scores_len(scores: &[f32], n_items: usize) -> Result<(), RecsError> {
    if scores.len() != n_items {
        return Err(RecsError::DimensionMismatch(format!("scores has {} slots for {n_items} items", scores.len())));
    }
    Ok(())
}

/// Keeps the `n` best of `ranked` `(item, score)` pairs, best first (ties: lower index first).
pub fn keep_best(ranked: &mut Vec<(u32, f32)>, n: usize) {
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > n {
        ranked.select_nth_unstable_by(n, better);
        ranked.truncate(n);
    }
    ranked.sort_by(better);
}

/// The `n` best `(item, score)` pairs, best first (ties: lower index first). Items in `exclude` and
/// items whose score is NaN or −∞ are never returned; `scores` is overwritten at the excluded items.
pub fn top_n_excluding(scores: &mut [f32], exclude: &[u32], n: usize) -> Vec<(u32, f32)> {
    for &i in exclude {
        if let Some(s) = scores.get_mut(i as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() || s == f32::NEG_INFINITY {
            continue;
        }
        if best.len() == n && s <= best[n - 1].1 {
            continue;
        }
        // Scanning in index order, an equal score never outranks one already kept.
        let pos = best.partition_point(|&(_, b)| b >= s);
        best.insert(pos, (i as u32, s));
        if best.len() > n {
            best.pop();
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_orders_excludes_and_breaks_ties_by_index() {
        let mut s = vec![0.5, 0.9, 0.5, f32::NAN, 2.0, 0.9];
        let top = top_n_excluding(&mut s, &[4], 3);
        assert_eq!(top, vec![(1, 0.9), (5, 0.9), (0, 0.5)]);
        let mut s = vec![1.0, 2.0];
        assert_eq!(top_n_excluding(&mut s, &[0, 1], 5), vec![]);
    }
}
