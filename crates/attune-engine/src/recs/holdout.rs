//! Offline metrics of a fit: a leave-one-out holdout of up to a few thousand shoppers drawn with the training
//! seed, every item ranked for each, seen items left out; HR, NDCG and coverage of `for_you` (item-kNN over
//! the weighted history), `for_you` by implicit ALS (the shopper folded in from the same history, as served),
//! `next` (the sequential model) and a popularity baseline. Training serves the better `for_you`.

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
/// Returns the reduced scan and the held-out (shopper, item) pairs, by shopper key.
pub fn holdout(mut scan: Scan, seed: u64, max_users: usize) -> (Scan, Vec<(String, String)>) {
    let mut eligible: Vec<(String, String)> = scan
        .touches
        .iter()
        .filter_map(|(key, touches)| {
            // The latest touch; equal times keep log order, so the last one logged wins.
            let (_, _, held) = touches.iter().enumerate().max_by_key(|(n, (time, _, _))| (*time, *n))?.1;
            touches.iter().any(|(_, _, item)| item != held).then(|| (key.clone(), held.clone()))
        })
        .collect();
    eligible.sort();
    let mut random = SplitMix64::new(seed);
    for i in (1..eligible.len()).rev() {
        let j = (random.next_u64() % (i as u64 + 1)) as usize;
        eligible.swap(i, j);
    }
    eligible.truncate(max_users);
    eligible.sort();
    let held: HashMap<&str, &str> = eligible.iter().map(|(k, i)| (k.as_str(), i.as_str())).collect();
    let is_held = |key: &str, item: &str| held.get(key).is_some_and(|h| *h == item);
    scan.interactions.retain(|i| !is_held(&i.user, &i.item));
    for (key, items) in &mut scan.baskets {
        items.retain(|item| !is_held(key, item));
    }
    scan.baskets.retain(|(_, items)| !items.is_empty());
    for (key, purchases) in &mut scan.purchases {
        purchases.retain(|(item, _)| !is_held(key, item));
    }
    for (key, touches) in &mut scan.touches {
        touches.retain(|(_, _, item)| !is_held(key, item));
    }
    drop(held);
    (scan, eligible)
}

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

/// The holdout metrics of every scorer.
pub struct HoldoutMetrics {
    /// `for_you` by item-kNN.
    pub for_you: ScorerMetrics,
    /// `for_you` by ALS (`None` when the model has no ALS part).
    pub for_you_als: Option<ScorerMetrics>,
    pub next: ScorerMetrics,
    pub popular: ScorerMetrics,
}

/// Scores each held-out item against the model fitted without it, as `for_you` (item-kNN and ALS), `next` and
/// popularity rank.
pub fn evaluate(reduced: &Scan, model: &FittedRecs, held: &[(String, String)]) -> HoldoutMetrics {
    let n_items = model.items.len();
    let wanted: HashSet<&str> = held.iter().map(|(k, _)| k.as_str()).collect();
    let mut weights: HashMap<&str, HashMap<u32, f32>> = HashMap::new();
    for interaction in &reduced.interactions {
        if wanted.contains(interaction.user.as_str())
            && let Some(item) = model.items.index(&interaction.item)
        {
            *weights.entry(interaction.user.as_str()).or_default().entry(item).or_default() += interaction.weight;
        }
    }
    let mut by_popularity: Vec<u32> = (0..n_items as u32).collect();
    let popularity = model.popularity.scores();
    by_popularity.sort_by(|a, b| popularity[*b as usize].total_cmp(&popularity[*a as usize]).then(a.cmp(b)));
    let (mut for_you, mut next, mut popular) = (Tally::default(), Tally::default(), Tally::default());
    let mut for_you_als = Tally::default();
    let mut scores = vec![0f32; n_items];
    for (key, item) in held {
        let target = model.items.index(item);
        let mut history: Vec<(i64, u32)> = reduced
            .touches
            .get(key)
            .map(|touches| touches.iter().filter_map(|(time, _, id)| Some((*time, model.items.index(id)?))).collect())
            .unwrap_or_default();
        history.sort_by_key(|(time, _)| *time);
        let mut ordered: Vec<u32> = history.into_iter().map(|(_, i)| i).collect();
        ordered.dedup();
        let mut seen: Vec<u32> = ordered.clone();
        let positive: Vec<(u32, f32)> = weights
            .get(key.as_str())
            .map(|w| {
                let mut w: Vec<(u32, f32)> = w.iter().filter(|(_, w)| **w > 0.0).map(|(i, w)| (*i, *w)).collect();
                w.sort_by_key(|(i, _)| *i);
                w
            })
            .unwrap_or_default();
        seen.extend(positive.iter().map(|(i, _)| *i));
        seen.sort_unstable();
        seen.dedup();

        scores.fill(0.0);
        for &(source, weight) in &positive {
            for (j, sim) in model.knn.neighbours(source).iter() {
                scores[j as usize] += weight * sim;
            }
        }
        let list: Vec<u32> =
            top_n_excluding(&mut scores, &seen, EVAL_K).into_iter().filter(|(_, s)| *s > 0.0).map(|(i, _)| i).collect();
        for_you.add(&list, target);

        if let Some(als) = &model.als {
            let (indices, values): (Vec<u32>, Vec<f32>) = positive.iter().copied().unzip();
            let list: Vec<u32> = match als.score_into(u32::MAX, Row { indices: &indices, values: &values }, &mut scores)
            {
                Ok(()) => top_n_excluding(&mut scores, &seen, EVAL_K).into_iter().map(|(i, _)| i).collect(),
                Err(_) => Vec::new(),
            };
            for_you_als.add(&list, target);
        }

        let list: Vec<u32> = match model.sequential.score_into(&ordered, &mut scores) {
            Ok(()) => top_n_excluding(&mut scores, &seen, EVAL_K)
                .into_iter()
                .filter(|(_, s)| *s > 0.0)
                .map(|(i, _)| i)
                .collect(),
            Err(_) => Vec::new(),
        };
        next.add(&list, target);

        let list: Vec<u32> =
            by_popularity.iter().filter(|i| seen.binary_search(i).is_err()).take(EVAL_K).copied().collect();
        popular.add(&list, target);
    }
    HoldoutMetrics {
        for_you: for_you.finish(n_items),
        for_you_als: model.als.as_ref().map(|_| for_you_als.finish(n_items)),
        next: next.finish(n_items),
        popular: popular.finish(n_items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recs::fit::tests::tiny_scan;

    #[test]
    fn the_holdout_takes_each_sampled_shoppers_latest_item_out_of_everything() {
        let (reduced, held) = holdout(tiny_scan(), 1, 10);
        assert_eq!(held, vec![("u".to_string(), "b".to_string()), ("v".to_string(), "b".to_string())]);
        assert!(reduced.interactions.iter().all(|i| i.item == "a"));
        assert!(reduced.baskets.iter().all(|(_, items)| items == &vec!["a".to_string()]));
        assert_eq!(reduced.purchases["u"], vec![("a".to_string(), 0)]);
        let model = crate::recs::fit::fit(&reduced, 7).unwrap();
        let metrics = evaluate(&reduced, &model, &held);
        let als = metrics.for_you_als.expect("the model has an ALS part");
        assert!((0.0..=1.0).contains(&als.hr) && als.ndcg <= als.hr, "{als:?}");
        let again = evaluate(&reduced, &crate::recs::fit::fit(&reduced, 7).unwrap(), &held);
        assert_eq!(again.for_you_als, Some(als), "same scan and seed, same metrics");
        let (_, one) = holdout(tiny_scan(), 1, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(holdout(tiny_scan(), 1, 1).1, one, "the sample depends on the seed only");
    }
}
