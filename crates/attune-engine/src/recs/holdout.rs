//! Offline metrics of a fit: a leave-one-out holdout of up to a few thousand shoppers drawn with the training
//! seed, every item ranked for each, seen items left out ([`holdout`], [`rank_held`]); HR, NDCG and coverage
//! ([`measure`]) of `for_you` by item-kNN, implicit ALS (the shopper folded in from the same history, as
//! served) and sparse EASE over the weighted history, `next` (the sequential model) and a popularity
//! baseline. [`super::choice`] picks the served `for_you` on one half of these shoppers and reports on the
//! other.

use super::fit::Scan;
use super::model::FittedRecs;
use attune_core::SplitMix64;
use attune_recs::evaluation::rank_metrics;
use attune_recs::{Recommender, Row, top_n_excluding};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Cut-off of the offline metrics.
pub const EVAL_K: usize = 10;

/// HR, NDCG and catalog coverage of one scorer at [`EVAL_K`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScorerMetrics {
    pub hr: f64,
    pub ndcg: f64,
    pub coverage: f64,
}

/// Leave-one-out: for up to `max_users` shoppers (drawn with `seed`) with at least two distinct items, the
/// item of their latest item event is held out — every event of theirs on it is removed from the scan.
/// Returns the reduced scan and the held-out (shopper, item) pairs in the scan's indices, in the order of the
/// shoppers' keys.
pub fn holdout(mut scan: Scan, seed: u64, max_users: usize) -> (Scan, Vec<(u32, u32)>) {
    let ranks = scan.key_ranks();
    let mut eligible: Vec<(u32, u32)> = scan
        .touches
        .iter()
        .enumerate()
        .filter_map(|(shopper, touches)| {
            // The latest touch; equal times keep log order, so the last one logged wins.
            let held = touches.iter().enumerate().max_by_key(|(n, touch)| (touch.time_ms, *n))?.1.item;
            touches.iter().any(|touch| touch.item != held).then_some((shopper as u32, held))
        })
        .collect();
    eligible.sort_by_key(|&(shopper, _)| ranks[shopper as usize]);
    let mut random = SplitMix64::new(seed);
    for i in (1..eligible.len()).rev() {
        let j = (random.next_u64() % (i as u64 + 1)) as usize;
        eligible.swap(i, j);
    }
    eligible.truncate(max_users);
    eligible.sort_by_key(|&(shopper, _)| ranks[shopper as usize]);
    let mut held = vec![NO_ITEM; scan.shoppers.len()];
    for &(shopper, item) in &eligible {
        held[shopper as usize] = item;
    }
    let is_held = |shopper: u32, item: u32| held[shopper as usize] == item;
    scan.interactions.retain(|signal| !is_held(signal.shopper, signal.item));
    for (shopper, items) in &mut scan.baskets {
        items.retain(|&item| !is_held(*shopper, item));
    }
    scan.baskets.retain(|(_, items)| !items.is_empty());
    scan.purchases.retain(|&(shopper, item, _)| !is_held(shopper, item));
    for (shopper, touches) in scan.touches.iter_mut().enumerate() {
        touches.retain(|touch| !is_held(shopper as u32, touch.item));
    }
    (scan, eligible)
}

/// No item held out.
const NO_ITEM: u32 = u32::MAX;

/// Accumulates one scorer's metrics.
#[derive(Default)]
struct Tally {
    hr: f64,
    ndcg: f64,
    users: usize,
    shown: HashSet<u32>,
}

impl Tally {
    fn add(&mut self, list: &[u32], target: Option<u32>) {
        let targets: Vec<u32> = target.into_iter().collect();
        let metrics = rank_metrics(list, &targets, EVAL_K);
        self.hr += metrics.hr;
        self.ndcg += metrics.ndcg;
        self.users += 1;
        self.shown.extend(list.iter().copied());
    }

    fn finish(&self, n_items: usize) -> ScorerMetrics {
        let users = self.users.max(1) as f64;
        ScorerMetrics {
            hr: self.hr / users,
            ndcg: self.ndcg / users,
            coverage: if n_items == 0 { 0.0 } else { self.shown.len() as f64 / n_items as f64 },
        }
    }
}

/// How many candidates each `for_you` source offers a blend, on the holdout and (at least) when serving.
pub const BLEND_DEPTH: usize = 50;

/// One held-out shopper's ranked lists, seen items left out.
pub struct HeldShopper {
    /// The held-out item (`None` when the model fitted without it does not know it: a sure miss).
    pub target: Option<u32>,
    /// `for_you` candidates by item-kNN, ALS and EASE (the [`super::model::BlendWeights`] order): up to
    /// [`BLEND_DEPTH`] `(item, score)`, best first; empty where the model lacks the part.
    pub for_you: [Vec<(u32, f32)>; 3],
    pub next: Vec<u32>,
    pub popular: Vec<u32>,
}

impl HeldShopper {
    /// The first [`EVAL_K`] items of `for_you` source `source`.
    pub fn top(&self, source: usize) -> Vec<u32> {
        self.for_you[source].iter().take(EVAL_K).map(|(item, _)| *item).collect()
    }
}

/// HR, NDCG and coverage of the lists `list` makes for `shoppers`.
pub fn measure(shoppers: &[HeldShopper], n_items: usize, list: impl Fn(&HeldShopper) -> Vec<u32>) -> ScorerMetrics {
    let mut tally = Tally::default();
    for shopper in shoppers {
        tally.add(&list(shopper), shopper.target);
    }
    tally.finish(n_items)
}

/// A shopper's history as the model fitted without their held-out item sees it.
struct History {
    /// Distinct items in time order.
    ordered: Vec<u32>,
    /// Items with a positive summed weight, by index.
    positive: Vec<(u32, f32)>,
    /// Every item the shopper touched, sorted.
    seen: Vec<u32>,
}

/// Ranks every source's list for each held-out shopper against the model fitted without their items.
pub fn rank_held(reduced: &Scan, model: &FittedRecs, held: &[(u32, u32)]) -> Vec<HeldShopper> {
    let n_items = model.items.len();
    let to_model: Vec<Option<u32>> =
        (0..reduced.items.len() as u32).map(|i| model.items.index(reduced.items.id(i)?)).collect();
    let mut weights = positive_weights(reduced, &to_model, held);
    let mut by_popularity: Vec<u32> = (0..n_items as u32).collect();
    let popularity = model.popularity.scores();
    by_popularity.sort_by(|a, b| popularity[*b as usize].total_cmp(&popularity[*a as usize]).then(a.cmp(b)));
    let mut scores = vec![0f32; n_items];
    held.iter()
        .map(|&(shopper, item)| {
            let history = history_of(reduced, &to_model, shopper, weights.remove(&shopper).unwrap_or_default());
            let popular =
                by_popularity.iter().filter(|i| history.seen.binary_search(i).is_err()).take(EVAL_K).copied().collect();
            HeldShopper {
                target: to_model.get(item as usize).copied().flatten(),
                for_you: for_you_lists(model, &history, &mut scores),
                next: next_list(model, &history, &mut scores),
                popular,
            }
        })
        .collect()
}

/// The held-out shoppers' summed interaction weights by model item.
fn positive_weights(reduced: &Scan, to_model: &[Option<u32>], held: &[(u32, u32)]) -> HashMap<u32, HashMap<u32, f32>> {
    let wanted: HashSet<u32> = held.iter().map(|&(shopper, _)| shopper).collect();
    let mut weights: HashMap<u32, HashMap<u32, f32>> = HashMap::new();
    for signal in &reduced.interactions {
        if wanted.contains(&signal.shopper)
            && let Some(item) = to_model[signal.item as usize]
        {
            *weights.entry(signal.shopper).or_default().entry(item).or_default() += signal.weight;
        }
    }
    weights
}

fn history_of(reduced: &Scan, to_model: &[Option<u32>], shopper: u32, weights: HashMap<u32, f32>) -> History {
    let mut timed: Vec<(i64, u32)> = reduced.touches[shopper as usize]
        .iter()
        .filter_map(|touch| Some((touch.time_ms, to_model[touch.item as usize]?)))
        .collect();
    timed.sort_by_key(|(time, _)| *time);
    let mut ordered: Vec<u32> = timed.into_iter().map(|(_, i)| i).collect();
    ordered.dedup();
    let mut positive: Vec<(u32, f32)> = weights.into_iter().filter(|(_, w)| *w > 0.0).collect();
    positive.sort_by_key(|(i, _)| *i);
    let mut seen = ordered.clone();
    seen.extend(positive.iter().map(|(i, _)| *i));
    seen.sort_unstable();
    seen.dedup();
    History { ordered, positive, seen }
}

/// Item-kNN, ALS and EASE lists for one history (positive scores only for the neighbour models, as served).
fn for_you_lists(model: &FittedRecs, history: &History, scores: &mut [f32]) -> [Vec<(u32, f32)>; 3] {
    let (indices, values): (Vec<u32>, Vec<f32>) = history.positive.iter().copied().unzip();
    let row = Row { indices: &indices, values: &values };
    let mut ranked = |scorer: &dyn Recommender, positive_only: bool| -> Vec<(u32, f32)> {
        match scorer.score_into(u32::MAX, row, scores) {
            Ok(()) => top_n_excluding(scores, &history.seen, BLEND_DEPTH)
                .into_iter()
                .filter(|(_, s)| !positive_only || *s > 0.0)
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let knn = ranked(&model.knn, true);
    let als = model.als.as_ref().map_or_else(Vec::new, |als| ranked(als, false));
    let ease = model.ease.as_ref().map_or_else(Vec::new, |ease| ranked(ease, true));
    [knn, als, ease]
}

fn next_list(model: &FittedRecs, history: &History, scores: &mut [f32]) -> Vec<u32> {
    match model.sequential.score_into(&history.ordered, scores) {
        Ok(()) => top_n_excluding(scores, &history.seen, EVAL_K)
            .into_iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(i, _)| i)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recs::fit::tests::tiny_scan;

    #[test]
    fn the_holdout_takes_each_sampled_shoppers_latest_item_out_of_everything() {
        let (reduced, held) = holdout(tiny_scan(), 1, 10);
        let (u, v, a, b) = (0, 1, 0, 1);
        assert_eq!(held, vec![(u, b), (v, b)]);
        assert_eq!((reduced.shoppers.id(u), reduced.items.id(b)), (Some("u"), Some("b")));
        assert!(reduced.interactions.iter().all(|i| i.item == a));
        assert!(reduced.baskets.iter().all(|(_, items)| items == &vec![a]));
        assert_eq!(reduced.purchases, vec![(u, a, 0)]);
        let model = crate::recs::fit::fit(&reduced, 7, &|_| Ok(())).unwrap();
        let ranked = rank_held(&reduced, &model, &held);
        let als = measure(&ranked, model.items.len(), |s| s.top(1));
        assert!((0.0..=1.0).contains(&als.hr) && als.ndcg <= als.hr, "{als:?}");
        assert!(
            ranked.iter().all(|s| s.for_you.iter().all(|list| list.iter().all(|(i, _)| *i != 0))),
            "seen `a` is out"
        );
        let again = rank_held(&reduced, &crate::recs::fit::fit(&reduced, 7, &|_| Ok(())).unwrap(), &held);
        assert_eq!(measure(&again, model.items.len(), |s| s.top(1)), als, "same scan and seed, same metrics");
        let (_, one) = holdout(tiny_scan(), 1, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(holdout(tiny_scan(), 1, 1).1, one, "the sample depends on the seed only");
    }
}
