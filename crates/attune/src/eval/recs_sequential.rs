//! The sequential next-item model on Amazon Beauty, leave-one-out, in the same full-ranking protocol as
//! the order-blind models: its decay β grid is tuned on the second-to-last item, the winner is refitted
//! on all but the last item and reported on the last, beside its own order-blind ablation (decay 1,
//! β = 0) so the table shows what the order of the history adds.

use std::fmt::Write as _;
use std::time::Instant;

use attune_recs::evaluation::evaluate_scored;
use attune_recs::{
    CsrMatrix, Ease, EaseConfig, EvalReport, ItemKnn, ItemKnnConfig, Recommender, Row as SparseRow, SequentialConfig,
    SequentialModel, top_k_similarity,
};

use super::Row;

/// Item × item sources the sequential model can sit on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Cosine,
    Ease,
}

impl Base {
    fn label(self) -> &'static str {
        match self {
            Base::Cosine => "cosine kNN",
            Base::Ease => "EASE",
        }
    }
}

/// Neighbours kept per item when sparsifying EASE's weights.
const EASE_NEIGHBOURS: usize = 200;

fn similarity(base: Base, train: &CsrMatrix, knn: &ItemKnnConfig, ease_lambda: f32) -> anyhow::Result<CsrMatrix> {
    let n_items = train.n_cols();
    Ok(match base {
        Base::Cosine => {
            let mut model = ItemKnn::new(knn.clone())?;
            model.fit(train)?;
            let rows: Vec<(u32, u32, f32)> = (0..n_items as u32)
                .flat_map(|i| model.neighbours(i).iter().map(move |(j, s)| (i, j, s)).collect::<Vec<_>>())
                .collect();
            CsrMatrix::from_triplets(n_items, n_items, &rows)?
        }
        Base::Ease => {
            let mut model = Ease::new(EaseConfig { lambda: ease_lambda, ..EaseConfig::default() })?;
            model.fit(train)?;
            top_k_similarity(n_items, EASE_NEIGHBOURS, |i, buf| {
                let one = [i];
                let history = SparseRow { indices: &one, values: &[1.0] };
                if model.score_into(0, history, buf).is_err() {
                    buf.fill(0.0);
                }
            })?
        }
    })
}

/// Scores the model's top-k lists for `targets`, history = `histories[user]` in time order, excluding
/// the history's items (like the order-blind evaluation excludes the training row).
fn evaluate_sequential(
    model: &SequentialModel,
    histories: &[Vec<u32>],
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
) -> anyhow::Result<EvalReport> {
    Ok(evaluate_scored(model.n_items(), train, targets, k, |user, scores| {
        model.score_into(&histories[user as usize], scores)
    })?)
}

fn cut(sequences: &[Vec<u32>], drop: usize) -> Vec<Vec<u32>> {
    sequences.iter().map(|s| s[..s.len().saturating_sub(drop)].to_vec()).collect()
}

/// Tunes decay × β per base on validation, then reports each base's best and its order-blind ablation on test.
pub(super) fn sequential_rows(
    sequences: &[Vec<u32>],
    split: &attune_recs::LeaveOneOutSplit,
    knn: &ItemKnnConfig,
    ease_lambda: f32,
    k: usize,
    log: &mut String,
) -> anyhow::Result<Vec<Row>> {
    let valid_hist = cut(sequences, 2);
    let test_hist = cut(sequences, 1);
    let mut rows = Vec::new();
    for base in [Base::Cosine, Base::Ease] {
        let t = Instant::now();
        let sim_valid = similarity(base, &split.valid_train, knn, ease_lambda)?;
        let mut best = (SequentialConfig { decay: 1.0, transition_weight: 0.0, ..SequentialConfig::default() }, -1.0);
        for decay in [1.0f32, 0.8, 0.6, 0.4] {
            for transition_weight in [0.0f32, 0.5, 1.0, 2.0, 4.0] {
                let config = SequentialConfig { decay, transition_weight, ..SequentialConfig::default() };
                let model = SequentialModel::fit(&valid_hist, sim_valid.clone(), config.clone())?;
                let r = evaluate_sequential(&model, &valid_hist, &split.valid_train, &split.valid_targets, k)?;
                writeln!(
                    log,
                    "  valid sequential({}, decay={decay}, β={transition_weight})      NDCG@{k} {:.4}  HR@{k} {:.4}",
                    base.label(),
                    r.metrics.ndcg,
                    r.metrics.hr
                )?;
                if r.metrics.ndcg > best.1 {
                    best = (config, r.metrics.ndcg);
                }
            }
        }
        let tune_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let sim_test = similarity(base, &split.test_train, knn, ease_lambda)?;
        let sim_s = t.elapsed().as_secs_f64();
        let blind = SequentialConfig { decay: 1.0, transition_weight: 0.0, ..SequentialConfig::default() };
        for (config, what) in [(blind, "order-blind"), (best.0.clone(), "tuned")] {
            let t = Instant::now();
            let model = SequentialModel::fit(&test_hist, sim_test.clone(), config.clone())?;
            let fit_s = t.elapsed().as_secs_f64() + sim_s;
            let report = evaluate_sequential(&model, &test_hist, &split.test_train, &split.test_targets, k)?;
            let name = format!("seq {} {what} (d={}, β={})", base.label(), config.decay, config.transition_weight);
            rows.push(Row { name, report, fit_s });
        }
        writeln!(log, "  ({} sequential grid took {tune_s:.0}s)", base.label())?;
    }
    Ok(rows)
}
