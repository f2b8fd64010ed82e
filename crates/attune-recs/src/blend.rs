//! Blending candidate sources per scenario (e.g. buy-again + EASE for "for you" in grocery).
//!
//! Each source proposes a ranked candidate list `(item, score)`; its scores are min–max normalised to
//! [0, 1] within the list (so sources on different scales are comparable, and the weakest candidate of a
//! source still counts a little: it maps to `floor`), and an item's blended score is Σ_s w_s · norm_s(item).
//! Each blended item records the source that contributed most, for the explanation.
//!
//! Weights are tuned on a validation split by deterministic coordinate search ([`tune_weights`]): start
//! from equal weights, and repeatedly set one weight at a time to the grid value that maximises the
//! objective (ties keep the current value), until a full pass changes nothing.

use std::collections::BTreeMap;

use crate::error::{RecsError, invalid};

/// Normalised score of the last candidate of a source list.
const FLOOR: f32 = 0.05;

/// One blended item.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendedItem {
    pub item: u32,
    pub score: f32,
    /// Index of the source that contributed most to `score`.
    pub source: usize,
}

/// Blends `sources[s]` (each an `(item, score)` candidate list, any order) with `weights[s]`, returns the
/// `n` best items not in `exclude`, best first (ties by item index).
pub fn blend(
    sources: &[Vec<(u32, f32)>],
    weights: &[f32],
    n: usize,
    exclude: &[u32],
) -> Result<Vec<BlendedItem>, RecsError> {
    if sources.len() != weights.len() {
        return Err(RecsError::DimensionMismatch(format!("{} sources, {} weights", sources.len(), weights.len())));
    }
    if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(invalid("weights", "must be finite and non-negative"));
    }
    // item -> (total, best contribution, its source)
    let mut acc: BTreeMap<u32, (f32, f32, usize)> = BTreeMap::new();
    for (s, (list, &w)) in sources.iter().zip(weights).enumerate() {
        if w == 0.0 || list.is_empty() {
            continue;
        }
        let finite = list.iter().map(|p| p.1).filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        for &(item, score) in list {
            if !score.is_finite() || exclude.contains(&item) {
                continue;
            }
            let norm = if hi > lo { FLOOR + (1.0 - FLOOR) * (score - lo) / (hi - lo) } else { 1.0 };
            let c = w * norm;
            let e = acc.entry(item).or_insert((0.0, f32::NEG_INFINITY, s));
            e.0 += c;
            if c > e.1 {
                e.1 = c;
                e.2 = s;
            }
        }
    }
    let mut out: Vec<BlendedItem> =
        acc.into_iter().map(|(item, (score, _, source))| BlendedItem { item, score, source }).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    out.truncate(n);
    Ok(out)
}

/// Coordinate search over `grid` for `n_sources` weights maximising `objective(weights)` (e.g. validation
/// NDCG); deterministic. Returns the weights and their objective.
pub fn tune_weights(
    n_sources: usize,
    grid: &[f32],
    max_passes: usize,
    mut objective: impl FnMut(&[f32]) -> Result<f64, RecsError>,
) -> Result<(Vec<f32>, f64), RecsError> {
    if n_sources == 0 || grid.is_empty() {
        return Err(invalid("grid", "needs at least one source and one grid value"));
    }
    let mut weights = vec![1.0f32; n_sources];
    let mut best = objective(&weights)?;
    for _ in 0..max_passes {
        let mut changed = false;
        for s in 0..n_sources {
            for &g in grid {
                if g == weights[s] {
                    continue;
                }
                let mut trial = weights.clone();
                trial[s] = g;
                if trial.iter().all(|&w| w == 0.0) {
                    continue;
                }
                let value = objective(&trial)?;
                if value > best {
                    best = value;
                    weights = trial;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok((weights, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_normalises_sources_and_names_the_main_one() {
        let a = vec![(1, 100.0), (2, 50.0), (3, 0.0)];
        let b = vec![(3, 1.0), (4, 0.5)];
        let out = blend(&[a, b], &[1.0, 2.0], 10, &[4]).unwrap();
        assert_eq!(out[0].item, 3);
        assert_eq!(out[0].source, 1);
        assert!(out.iter().all(|x| x.item != 4));
        assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn coordinate_search_finds_the_optimum_of_a_separable_objective() {
        let (w, v) =
            tune_weights(2, &[0.0, 0.5, 1.0, 2.0], 5, |w| Ok(-((w[0] - 2.0).powi(2) + (w[1] - 0.5).powi(2)) as f64))
                .unwrap();
        assert_eq!(w, vec![2.0, 0.5]);
        assert_eq!(v, 0.0);
    }
}
