//! Sequential next-item model ("what will this customer buy next"): a recency-aware item-to-item model
//! over the ORDERED history, in the family of sequential item-kNN / higher-order Markov models.
//!
//! Two item × item sources are blended, both kept sparse (top-K per item):
//!
//! * an order-blind item similarity S (cosine item-kNN, or the sparsified EASE weights — see
//!   [`top_k_similarity`]);
//! * a directed transition matrix T learned from the sequences: every time item i is followed by item j
//!   within `window` steps, T(i, j) gains 1 / distance; each row is divided by its sum plus
//!   `transition_shrink` (a shrunk estimate of P(next = j | i)).
//!
//! The score of item j after history h₁ … h_L (oldest first) is
//! `Σ_p decay^(L − p) · (S(h_p, j) + β · T(h_p, j))` over the last `max_history` items, so the latest
//! purchases weigh most and the transitions say what comes AFTER an item, not just what goes with it.
//! With `decay = 1` and `β = 0` it reduces to the order-blind item model, which is how the evaluation
//! shows what the order adds. Each suggestion names the history items that contributed most.

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};
use crate::recommender::{keep_best, top_n_excluding};
use crate::sparse::CsrMatrix;

/// Hyper-parameters of [`SequentialModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialConfig {
    /// Weight multiplier per step back in the history, in (0, 1] (1 = order-blind).
    pub decay: f32,
    /// β: weight of the directed transitions against the similarity.
    pub transition_weight: f32,
    /// Followers up to this many steps after an item count as its transitions.
    pub window: usize,
    /// Added to each transition row's total (pulls rare items' transitions towards 0).
    pub transition_shrink: f32,
    /// Transitions kept per item.
    pub transition_k: usize,
    /// Only the last this many history items are used.
    pub max_history: usize,
}

/// Defaults: decay and β as tuned on Amazon Beauty validation (`attune eval recs --only beauty`).
impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            decay: 0.6,
            transition_weight: 1.0,
            window: 3,
            transition_shrink: 5.0,
            transition_k: 100,
            max_history: 20,
        }
    }
}

/// One next-item suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialSuggestion {
    pub item: u32,
    pub score: f32,
    /// History items that contributed most, strongest first (at most 3).
    pub anchors: Vec<u32>,
}

/// A fitted sequential model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequentialModel {
    config: SequentialConfig,
    similarity: CsrMatrix,
    transitions: CsrMatrix,
}

/// Keeps, per item, the `k` largest positive entries of a dense similarity row produced by `row_of`
/// (called once per item with a zeroed buffer of `n_items`), e.g. the rows of EASE's weight matrix.
pub fn top_k_similarity(
    n_items: usize,
    k: usize,
    row_of: impl Fn(u32, &mut [f32]) + Sync,
) -> Result<CsrMatrix, RecsError> {
    use rayon::prelude::*;
    let lists: Vec<Vec<(u32, f32)>> = (0..n_items)
        .into_par_iter()
        .map_init(
            || vec![0f32; n_items],
            |buf, i| {
                buf.fill(0.0);
                row_of(i as u32, buf);
                buf[i] = 0.0;
                top_n_excluding(buf, &[], k).into_iter().filter(|&(_, s)| s > 0.0).collect()
            },
        )
        .collect();
    let triplets: Vec<(u32, u32, f32)> =
        lists.iter().enumerate().flat_map(|(i, l)| l.iter().map(move |&(j, s)| (i as u32, j, s))).collect();
    CsrMatrix::from_triplets(n_items, n_items, &triplets)
}

impl SequentialModel {
    /// Learns the transitions from `sequences` (items in time order, `< n_items` where n_items is the
    /// size of the square `similarity`) and keeps `similarity` as the order-blind part.
    pub fn fit(sequences: &[Vec<u32>], similarity: CsrMatrix, config: SequentialConfig) -> Result<Self, RecsError> {
        if !(config.decay > 0.0 && config.decay <= 1.0) {
            return Err(invalid("decay", "must be in (0, 1]"));
        }
        if !(config.transition_weight.is_finite() && config.transition_weight >= 0.0) {
            return Err(invalid("transition_weight", "must be finite and non-negative"));
        }
        if !(config.transition_shrink.is_finite() && config.transition_shrink >= 0.0) {
            return Err(invalid("transition_shrink", "must be finite and non-negative"));
        }
        if config.window == 0 || config.transition_k == 0 || config.max_history == 0 {
            return Err(invalid("window/transition_k/max_history", "must be at least 1"));
        }
        let n_items = similarity.n_rows();
        if similarity.n_cols() != n_items {
            return Err(RecsError::DimensionMismatch(format!(
                "similarity is {} × {}",
                similarity.n_rows(),
                similarity.n_cols()
            )));
        }
        let mut triplets: Vec<(u32, u32, f32)> = Vec::new();
        for seq in sequences {
            for (p, &i) in seq.iter().enumerate() {
                for (d, &j) in seq.iter().enumerate().skip(p + 1).take(config.window) {
                    if i != j {
                        triplets.push((i, j, 1.0 / (d - p) as f32));
                    }
                }
            }
        }
        let counts = CsrMatrix::from_triplets(n_items, n_items, &triplets)?;
        let mut normalised: Vec<(u32, u32, f32)> = Vec::with_capacity(counts.nnz());
        for i in 0..n_items {
            let row = counts.row(i);
            let total: f32 = row.values.iter().sum::<f32>() + config.transition_shrink;
            let mut entries: Vec<(u32, f32)> = row.iter().map(|(j, v)| (j, v / total)).collect();
            entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            entries.truncate(config.transition_k);
            normalised.extend(entries.into_iter().map(|(j, v)| (i as u32, j, v)));
        }
        let transitions = CsrMatrix::from_triplets(n_items, n_items, &normalised)?;
        Ok(Self { config, similarity, transitions })
    }

    pub fn config(&self) -> &SequentialConfig {
        &self.config
    }

    pub fn n_items(&self) -> usize {
        self.similarity.n_rows()
    }

    /// The weights of the history positions used (oldest first), paired with their items.
    fn weighted_history<'h>(&self, history: &'h [u32]) -> impl Iterator<Item = (u32, f32)> + 'h {
        let n_items = self.n_items();
        let recent = &history[history.len().saturating_sub(self.config.max_history)..];
        let len = recent.len();
        let decay = self.config.decay;
        recent
            .iter()
            .enumerate()
            .filter(move |&(_, &i)| (i as usize) < n_items)
            .map(move |(p, &i)| (i, decay.powi((len - 1 - p) as i32)))
    }

    /// Writes every item's score after `history` (oldest first) into `scores` (length [`Self::n_items`]).
    pub fn score_into(&self, history: &[u32], scores: &mut [f32]) -> Result<(), RecsError> {
        if scores.len() != self.n_items() {
            return Err(RecsError::DimensionMismatch(format!(
                "scores has {} slots for {} items",
                scores.len(),
                self.n_items()
            )));
        }
        scores.fill(0.0);
        self.accumulate(self.weighted_history(history), |j, v| scores[j as usize] += v);
        Ok(())
    }

    /// Hands `add` every contribution to a score, row by row in the order of `weighted`: the similarity row,
    /// then (with β > 0) the transition row of each history item. Dense and sparse scoring both sum through
    /// here, so they add the same terms in the same order.
    fn accumulate(&self, weighted: impl IntoIterator<Item = (u32, f32)>, mut add: impl FnMut(u32, f32)) {
        let beta = self.config.transition_weight;
        for (i, w) in weighted {
            for (j, s) in self.similarity.row(i as usize).iter() {
                add(j, w * s);
            }
            if beta > 0.0 {
                for (j, t) in self.transitions.row(i as usize).iter() {
                    add(j, w * beta * t);
                }
            }
        }
    }

    /// The `n` best positive scores (ties by item index) among the items reached from the rows of `weighted`:
    /// the same sums, added in the same order, as [`Self::score_into`], but only the touched items of a dense
    /// buffer kept per thread are ranked and zeroed again, not the whole catalog.
    fn sparse_top_n(&self, weighted: &[(u32, f32)], n: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let mut excluded = exclude.to_vec();
        excluded.sort_unstable();
        // Taken out of the thread's slot while in use: a panic mid-way drops it instead of leaving stale sums.
        let (mut dense, mut touched) = SCRATCH.with_borrow_mut(std::mem::take);
        if dense.len() < self.n_items() {
            dense.resize(self.n_items(), 0.0);
        }
        self.accumulate(weighted.iter().copied(), |j, v| {
            let slot = &mut dense[j as usize];
            if *slot == 0.0 {
                touched.push(j);
            }
            *slot += v;
        });
        touched.sort_unstable();
        touched.dedup();
        let mut ranked: Vec<(u32, f32)> = touched
            .iter()
            .map(|&j| (j, std::mem::take(&mut dense[j as usize])))
            .filter(|&(j, s)| s > 0.0 && s.is_finite() && excluded.binary_search(&j).is_err())
            .collect();
        touched.clear();
        SCRATCH.with_borrow_mut(|scratch| *scratch = (dense, touched));
        keep_best(&mut ranked, n);
        ranked
    }

    /// The `n` best next items after `history`, never an item of `exclude`, best first, each with the
    /// history items that contributed most.
    pub fn recommend(
        &self,
        history: &[u32],
        n: usize,
        exclude: &[u32],
    ) -> Result<Vec<SequentialSuggestion>, RecsError> {
        let weighted: Vec<(u32, f32)> = self.weighted_history(history).collect();
        let beta = self.config.transition_weight;
        let top = self.sparse_top_n(&weighted, n, exclude);
        // Each suggestion's contribution per history item, gathered row by row: one pass over each history
        // item's similarity and transition rows instead of a lookup per (history item, suggestion) pair.
        let slot_of: foldhash::HashMap<u32, usize> =
            top.iter().enumerate().map(|(slot, &(item, _))| (item, slot)).collect();
        // The distinct history items in order of first appearance; contributions per (suggestion, item).
        let mut distinct: Vec<u32> = Vec::with_capacity(weighted.len());
        let position_of: Vec<usize> = weighted
            .iter()
            .map(|&(i, _)| match distinct.iter().position(|&d| d == i) {
                Some(k) => k,
                None => {
                    distinct.push(i);
                    distinct.len() - 1
                }
            })
            .collect();
        let width = distinct.len();
        let mut contributions = vec![0f32; top.len() * width];
        let (mut similarity_at, mut transition_at) = (vec![0f32; top.len()], vec![0f32; top.len()]);
        for (&(i, w), &k) in weighted.iter().zip(&position_of) {
            similarity_at.fill(0.0);
            transition_at.fill(0.0);
            for (j, s) in self.similarity.row(i as usize).iter() {
                if let Some(&slot) = slot_of.get(&j) {
                    similarity_at[slot] = s;
                }
            }
            for (j, t) in self.transitions.row(i as usize).iter() {
                if let Some(&slot) = slot_of.get(&j) {
                    transition_at[slot] = t;
                }
            }
            for slot in 0..top.len() {
                contributions[slot * width + k] += w * (similarity_at[slot] + beta * transition_at[slot]);
            }
        }
        let parts = (0..top.len()).map(|slot| {
            distinct
                .iter()
                .copied()
                .zip(contributions[slot * width..(slot + 1) * width].iter().copied())
                .collect::<Vec<_>>()
        });
        Ok(top
            .into_iter()
            .zip(parts)
            .map(|((item, score), mut parts): ((u32, f32), Vec<(u32, f32)>)| {
                parts.retain(|&(_, c)| c > 0.0);
                parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                parts.truncate(3);
                SequentialSuggestion { item, score, anchors: parts.into_iter().map(|p| p.0).collect() }
            })
            .collect())
    }
}
