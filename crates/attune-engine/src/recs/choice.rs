//! Which model serves `for_you`, chosen per tenant at training: item-kNN, implicit ALS, sparse EASE, or a
//! blend of the three (`attune_recs::blend`) with weights tuned by coordinate search.
//!
//! The held-out shoppers are split in two halves that share no shopper ([`split_halves`]): the weights and
//! the choice are settled on the tuning half by NDCG@10 ([`choose`]), and every model's metrics, the chosen
//! one's included, are measured once on the other half ([`measure_scorers`]), so the stored figures are not inflated
//! by the choice.
//! Ties keep the simpler model, in the order item-kNN, ALS, EASE, blend.

use super::holdout::{EVAL_K, HeldShopper, ScorerMetrics, measure};
use super::model::{BlendWeights, ForYouScorer};
use attune_recs::{blend, tune_weights};

/// Weights the blend's coordinate search tries for each source.
const BLEND_GRID: [f32; 5] = [0.0, 0.25, 0.5, 1.0, 2.0];
/// Most passes of the coordinate search.
const BLEND_PASSES: usize = 4;

/// Which parts the fitted model has: item-kNN always; ALS and EASE when there were positive interactions.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub als: bool,
    pub ease: bool,
}

/// The served `for_you` and what it was chosen on.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub scorer: ForYouScorer,
    /// The blend's tuned weights (item-kNN, ALS, EASE), whether or not the blend was chosen.
    pub blend_weights: BlendWeights,
    /// Each candidate's NDCG@10 on the tuning half, by scorer name.
    pub tuning_ndcg: Vec<(String, f64)>,
}

/// The holdout metrics of every scorer, on the reporting half.
#[derive(Debug, Clone, Copy)]
pub struct HoldoutMetrics {
    /// `for_you` by item-kNN.
    pub for_you: ScorerMetrics,
    /// `for_you` by ALS (`None` when the model has no ALS part).
    pub for_you_als: Option<ScorerMetrics>,
    /// `for_you` by sparse EASE (`None` when the model has no EASE part).
    pub for_you_ease: Option<ScorerMetrics>,
    /// `for_you` by the blend with the tuned weights.
    pub for_you_blend: ScorerMetrics,
    pub next: ScorerMetrics,
    pub popular: ScorerMetrics,
}

/// Splits held-out shoppers (in the holdout's order, sorted by shopper key) into a tuning half (even
/// positions) and a reporting half (odd positions).
pub fn split_halves(shoppers: Vec<HeldShopper>) -> (Vec<HeldShopper>, Vec<HeldShopper>) {
    let (mut tune, mut test) = (Vec::new(), Vec::new());
    for (position, shopper) in shoppers.into_iter().enumerate() {
        if position % 2 == 0 { tune.push(shopper) } else { test.push(shopper) }
    }
    (tune, test)
}

/// The blend's top [`EVAL_K`] for one shopper.
pub fn blended(shopper: &HeldShopper, weights: &BlendWeights) -> Vec<u32> {
    match blend(&shopper.for_you, weights, EVAL_K, &[]) {
        Ok(items) => items.into_iter().map(|b| b.item).collect(),
        Err(_) => Vec::new(),
    }
}

/// Tunes the blend and picks the `for_you` scorer with the best NDCG@10 on `tune`.
pub fn choose(tune: &[HeldShopper], n_items: usize, parts: Parts) -> Choice {
    let ndcg = |list: &dyn Fn(&HeldShopper) -> Vec<u32>| measure(tune, n_items, list).ndcg;
    let blend_weights = tune_blend(tune, n_items, parts);
    let mut candidates = vec![(ForYouScorer::ItemKnn, ndcg(&|s| s.top(0)))];
    if parts.als {
        candidates.push((ForYouScorer::Als, ndcg(&|s| s.top(1))));
    }
    if parts.ease {
        candidates.push((ForYouScorer::Ease, ndcg(&|s| s.top(2))));
    }
    candidates.push((ForYouScorer::Blend(blend_weights), ndcg(&|s| blended(s, &blend_weights))));
    let mut best = candidates[0];
    for &candidate in &candidates[1..] {
        if candidate.1 > best.1 {
            best = candidate;
        }
    }
    let tuning_ndcg = candidates.iter().map(|(scorer, ndcg)| (scorer.name().to_string(), *ndcg)).collect();
    Choice { scorer: best.0, blend_weights, tuning_ndcg }
}

/// The blend weights with the best NDCG@10 on `tune`; a part the model lacks keeps weight 0.
fn tune_blend(tune: &[HeldShopper], n_items: usize, parts: Parts) -> BlendWeights {
    let mask = |weights: &[f32]| -> BlendWeights {
        let present = [true, parts.als, parts.ease];
        std::array::from_fn(|s| if present[s] { weights[s] } else { 0.0 })
    };
    let objective = |weights: &[f32]| {
        let weights = mask(weights);
        Ok(measure(tune, n_items, |s| blended(s, &weights)).ndcg)
    };
    match tune_weights(3, &BLEND_GRID, BLEND_PASSES, objective) {
        Ok((weights, _)) if mask(&weights) != [0.0; 3] => mask(&weights),
        _ => [1.0, 0.0, 0.0],
    }
}

/// Every scorer's metrics on `test`, the blend with `weights`.
pub fn measure_scorers(test: &[HeldShopper], n_items: usize, parts: Parts, weights: &BlendWeights) -> HoldoutMetrics {
    let metrics = |list: &dyn Fn(&HeldShopper) -> Vec<u32>| measure(test, n_items, list);
    HoldoutMetrics {
        for_you: metrics(&|s| s.top(0)),
        for_you_als: parts.als.then(|| metrics(&|s| s.top(1))),
        for_you_ease: parts.ease.then(|| metrics(&|s| s.top(2))),
        for_you_blend: metrics(&|s| blended(s, weights)),
        next: metrics(&|s| s.next.clone()),
        popular: metrics(&|s| s.popular.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shopper whose held-out item is `target`; the sources rank `lists` (item ids, best first).
    fn shopper(target: u32, lists: [&[u32]; 3]) -> HeldShopper {
        let scored = |items: &[u32]| items.iter().enumerate().map(|(r, &i)| (i, 10.0 - r as f32)).collect();
        HeldShopper {
            target: Some(target),
            for_you: [scored(lists[0]), scored(lists[1]), scored(lists[2])],
            next: Vec::new(),
            popular: Vec::new(),
        }
    }

    const ALL: Parts = Parts { als: true, ease: true };

    #[test]
    fn the_source_that_ranks_the_held_out_items_first_is_chosen() {
        let shoppers: Vec<HeldShopper> =
            (0..20).map(|n| shopper(n, [&[100, 101, n], &[n, 100], &[101, 100, 102, n]])).collect();
        let choice = choose(&shoppers, 200, ALL);
        assert_eq!(choice.scorer, ForYouScorer::Als, "{choice:?}");
        assert_eq!(choice.tuning_ndcg[1], ("als".to_string(), 1.0));
        let without_als = choose(&shoppers, 200, Parts { als: false, ease: true });
        assert_eq!(without_als.scorer, ForYouScorer::ItemKnn, "item-kNN ranks n third, EASE fourth");
        assert_eq!(without_als.blend_weights[1], 0.0, "a missing part gets no weight");
    }

    #[test]
    fn a_blend_wins_only_when_it_beats_every_single_source() {
        // Half the shoppers' items are found by item-kNN alone, half by EASE alone: only a blend finds both.
        let shoppers: Vec<HeldShopper> = (0..40)
            .map(|n| if n % 2 == 0 { shopper(n, [&[n], &[], &[100]]) } else { shopper(n, [&[100], &[], &[n]]) })
            .collect();
        let choice = choose(&shoppers, 200, ALL);
        let ForYouScorer::Blend(weights) = choice.scorer else { panic!("{choice:?}") };
        assert!(weights[0] > 0.0 && weights[2] > 0.0, "{weights:?}");
        let ties: Vec<HeldShopper> = (0..10).map(|n| shopper(n, [&[n], &[n], &[n]])).collect();
        assert_eq!(choose(&ties, 200, ALL).scorer, ForYouScorer::ItemKnn, "ties keep the simplest");
    }

    #[test]
    fn halves_share_no_shopper_and_the_report_covers_every_scorer() {
        let shoppers: Vec<HeldShopper> = (0..7).map(|n| shopper(n, [&[n], &[], &[]])).collect();
        let (tune, test) = split_halves(shoppers);
        assert_eq!((tune.len(), test.len()), (4, 3));
        let targets = |half: &[HeldShopper]| half.iter().map(|s| s.target.unwrap()).collect::<Vec<_>>();
        assert_eq!((targets(&tune), targets(&test)), (vec![0, 2, 4, 6], vec![1, 3, 5]));
        let metrics = measure_scorers(&test, 10, Parts { als: true, ease: false }, &[1.0, 0.0, 0.0]);
        assert_eq!(metrics.for_you.hr, 1.0);
        assert_eq!(metrics.for_you_als.map(|m| m.hr), Some(0.0));
        assert!(metrics.for_you_ease.is_none());
        assert_eq!(metrics.for_you_blend.hr, 1.0);
    }
}
