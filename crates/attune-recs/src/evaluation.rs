//! Offline ranking evaluation with full ranking: every item is scored, the user's training items are
//! excluded, and the top K is compared with the held-out items.
//!
//! Per user with targets T and list L (|L| ≤ K): HR@K = [L ∩ T ≠ ∅]; Recall@K = |L ∩ T| / |T|;
//! NDCG@K = Σ_{hits at rank r (1-based)} 1/log2(r + 1) divided by the ideal Σ_{r ≤ min(|T|, K)} 1/log2(r + 1);
//! MRR@K = 1 / rank of the first hit (0 without one). All are averaged over users. Catalog coverage is the
//! share of catalog items that appear in at least one list; mean popularity is the mean number of
//! training users of the recommended items (one count per list slot).

use rayon::prelude::*;

use crate::error::RecsError;
use crate::recommender::{Recommender, top_n_excluding};
use crate::sparse::CsrMatrix;

/// Ranking metrics of one list (or their averages).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub hr: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub mrr: f64,
}

/// The metrics of one ranked list `recs` against the held-out `targets`, at cut-off `k`.
pub fn rank_metrics(recs: &[u32], targets: &[u32], k: usize) -> Metrics {
    if targets.is_empty() || k == 0 {
        return Metrics::default();
    }
    let mut hits = 0usize;
    let mut dcg = 0f64;
    let mut first: Option<usize> = None;
    for (r, item) in recs.iter().take(k).enumerate() {
        if targets.contains(item) {
            hits += 1;
            dcg += 1.0 / ((r + 2) as f64).log2();
            first.get_or_insert(r + 1);
        }
    }
    let ideal: f64 = (0..targets.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    Metrics {
        hr: if hits > 0 { 1.0 } else { 0.0 },
        recall: hits as f64 / targets.len() as f64,
        ndcg: dcg / ideal,
        mrr: first.map_or(0.0, |r| 1.0 / r as f64),
    }
}

/// Averaged metrics plus list-level statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub k: usize,
    pub users: usize,
    pub metrics: Metrics,
    /// Share of catalog items recommended to at least one user.
    pub coverage: f64,
    /// Mean number of training users of a recommended item.
    pub mean_popularity: f64,
}

/// Evaluates `model` with full ranking: for each `(user, targets)`, recommend the top `k` excluding the
/// user's row of `train`, then score the list. Users are processed in parallel; the result does not
/// depend on the thread count.
pub fn evaluate(
    model: &dyn Recommender,
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
) -> Result<EvalReport, RecsError> {
    let n_items = model.n_items();
    if n_items != train.n_cols() {
        return Err(RecsError::DimensionMismatch(format!("model has {n_items} items, train {}", train.n_cols())));
    }
    evaluate_scored(n_items, train, targets, k, |user, scores| model.score_into(user, train.row(user as usize), scores))
}

/// Like [`evaluate`] for any scorer: `score(user, scores)` fills every item's score (length `n_items`)
/// — e.g. a sequential model reading the user's ordered history. The top `k` excludes the user's row of
/// `train`; users are processed in parallel and the result does not depend on the thread count.
pub fn evaluate_scored<F>(
    n_items: usize,
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
    score: F,
) -> Result<EvalReport, RecsError>
where
    F: Fn(u32, &mut [f32]) -> Result<(), RecsError> + Sync,
{
    if n_items != train.n_cols() {
        return Err(RecsError::DimensionMismatch(format!("scorer has {n_items} items, train {}", train.n_cols())));
    }
    let lists: Vec<Vec<u32>> = targets
        .par_iter()
        .map_init(
            || vec![0f32; n_items],
            |scores, (user, _)| -> Result<Vec<u32>, RecsError> {
                score(*user, scores)?;
                let seen = train.row(*user as usize).indices;
                Ok(top_n_excluding(scores, seen, k).into_iter().map(|(i, _)| i).collect())
            },
        )
        .collect::<Result<_, _>>()?;
    evaluate_lists(train, targets, &lists, k)
}

/// Scores lists produced elsewhere (e.g. a peer library) exactly like [`evaluate`]; `lists[i]` belongs
/// to `targets[i]`.
pub fn evaluate_lists(
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    lists: &[Vec<u32>],
    k: usize,
) -> Result<EvalReport, RecsError> {
    if lists.len() != targets.len() {
        return Err(RecsError::DimensionMismatch(format!("{} lists for {} users", lists.len(), targets.len())));
    }
    let popularity = train.column_counts();
    let mut seen = vec![false; train.n_cols()];
    let mut sum = Metrics::default();
    let (mut pop_sum, mut slots) = (0f64, 0usize);
    for ((_, t), list) in targets.iter().zip(lists) {
        let m = rank_metrics(list, t, k);
        sum.hr += m.hr;
        sum.recall += m.recall;
        sum.ndcg += m.ndcg;
        sum.mrr += m.mrr;
        for &i in list.iter().take(k) {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
                pop_sum += f64::from(popularity[i as usize]);
                slots += 1;
            }
        }
    }
    let n = targets.len().max(1) as f64;
    Ok(EvalReport {
        k,
        users: targets.len(),
        metrics: Metrics { hr: sum.hr / n, recall: sum.recall / n, ndcg: sum.ndcg / n, mrr: sum.mrr / n },
        coverage: seen.iter().filter(|&&s| s).count() as f64 / train.n_cols().max(1) as f64,
        mean_popularity: pop_sum / slots.max(1) as f64,
    })
}
