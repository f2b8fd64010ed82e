//! Scenario models on synthetic data built to have a known answer: frequently bought together ignores
//! chance pairs of popular items and finds a real complement; buy-again times an item by its interval;
//! session kNN reacts to every new click; all are deterministic and never return excluded items.

use attune_recs::{
    BasketDelta, BoughtTogether, BoughtTogetherConfig, BuyAgain, BuyAgainConfig, PastSession, SessionKnn,
    SessionKnnConfig,
};
use proptest::prelude::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }
}

/// 2,000 baskets: items 0 and 1 each in ~60 % of baskets independently (a chance pair with a large raw
/// count); items 2 and 3 rare but always bought together (a real complement); items 4..40 filler.
fn baskets(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Lcg(seed);
    (0..2000)
        .map(|b| {
            let mut basket = Vec::new();
            if rng.unit() < 0.6 {
                basket.push(0);
            }
            if rng.unit() < 0.6 {
                basket.push(1);
            }
            if b % 50 == 0 {
                basket.extend([2, 3]);
            }
            for _ in 0..3 {
                basket.push(4 + (rng.next() % 36) as u32);
            }
            basket
        })
        .collect()
}

#[test]
fn bought_together_rejects_chance_pairs_of_popular_items_and_finds_real_complements() {
    let data = baskets(7);
    let together = data.iter().filter(|b| b.contains(&0) && b.contains(&1)).count();
    assert!(together > 600, "the chance pair has a large raw count ({together})");
    let model = BoughtTogether::fit(&data, 40, BoughtTogetherConfig::default()).unwrap();
    let for_zero = model.for_items(&[0], 10, &[]);
    assert!(for_zero.iter().all(|s| s.item != 1), "chance pair recommended: {for_zero:?}");
    let for_two = model.for_items(&[2], 5, &[]);
    assert_eq!(for_two.first().map(|s| s.item), Some(3));
    assert_eq!(for_two[0].anchors, vec![2]);
    assert!(for_two[0].lift > 10.0);
    // With a cart of both 0 and 2, the complement of 2 is first and cites 2 as its anchor.
    let cart = model.for_items(&[0, 2], 5, &[]);
    assert_eq!(cart[0].item, 3);
    assert_eq!(cart[0].anchors, vec![2]);
}

#[test]
fn bought_together_is_deterministic() {
    let data = baskets(11);
    let a = BoughtTogether::fit(&data, 40, BoughtTogetherConfig::default()).unwrap();
    let b = BoughtTogether::fit(&data, 40, BoughtTogetherConfig::default()).unwrap();
    for i in 0..40 {
        assert_eq!(a.companions(i), b.companions(i));
    }
}

#[test]
fn a_new_item_bought_with_a_fitted_one_after_the_fit_becomes_its_companion() {
    let data = baskets(3);
    let model = BoughtTogether::fit(&data, 40, BoughtTogetherConfig::default()).unwrap();
    let new_item = 40;
    let mut since = BasketDelta::default();
    for _ in 0..3 {
        since.add(&[7, new_item, 7]);
    }
    assert!(model.for_items(&[7], 100, &[]).iter().all(|s| s.item != new_item));
    let with = model.for_items_with(&since, &[7], 100, &[]);
    let found = with.iter().find(|s| s.item == new_item).expect("the new item is suggested");
    assert_eq!(found.anchors, vec![7]);
    assert_eq!(model.for_items_with(&since, &[new_item], 5, &[])[0].item, 7, "and the other way round");
    since.add(&[]);
    assert_eq!((since.n_baskets(), since.item_baskets(7), since.item_baskets(new_item)), (3, 3, 3));
}

const DAY: i64 = 86_400_000;

/// 60 customers buy item 0 every ~30 days (±2) and item 1 once; item 2 every ~7 days.
fn purchase_histories() -> Vec<Vec<(u32, i64)>> {
    let mut rng = Lcg(3);
    (0..60)
        .map(|_| {
            let mut h = Vec::new();
            let mut t = (rng.next() % 10) as i64 * DAY;
            for _ in 0..5 {
                h.push((0, t));
                t += (28 + (rng.next() % 5) as i64) * DAY;
            }
            h.push((1, (rng.next() % 100) as i64 * DAY));
            let mut t = (rng.next() % 5) as i64 * DAY;
            for _ in 0..8 {
                h.push((2, t));
                t += 7 * DAY;
            }
            h
        })
        .collect()
}

#[test]
fn buy_again_times_an_item_by_its_interval() {
    let model = BuyAgain::fit(&purchase_histories(), 3, BuyAgainConfig::default()).unwrap();
    let interval = model.profile(0).unwrap().interval_ms / DAY as f64;
    assert!((27.0..33.0).contains(&interval), "interval {interval} days");
    assert!(model.profile(1).is_none(), "never repurchased: no evidence");
    // A new customer bought item 0 on day 0 and item 1 once.
    let history = vec![(0, 0), (1, 0)];
    let at = |day: i64| {
        let s = model.for_customer(&history, day * DAY, 5, &[]);
        assert!(s.iter().all(|x| x.item == 0), "only items with repurchase evidence: {s:?}");
        s.first().map_or(0.0, |x| x.score)
    };
    assert!(at(30) > 2.0 * at(5), "due at day 30 ({}) rather than day 5 ({})", at(30), at(5));
    assert!(at(30) > at(15) && at(30) > at(90));
    let s = model.for_customer(&history, 30 * DAY, 5, &[]);
    assert_eq!(s[0].last_purchase_ms, 0);
    assert!((s[0].typical_interval_ms / DAY as f64 - interval).abs() < 1e-9);
    assert!(model.for_customer(&history, 30 * DAY, 5, &[0]).is_empty(), "excluded");
}

#[test]
fn buy_again_ranks_the_due_item_first() {
    let model = BuyAgain::fit(&purchase_histories(), 3, BuyAgainConfig::default()).unwrap();
    // Item 2 (weekly) last bought 7 days ago, item 0 (monthly) 7 days ago: the weekly one is due.
    let history = vec![(0, 0), (2, 0)];
    let s = model.for_customer(&history, 7 * DAY, 2, &[]);
    assert_eq!(s[0].item, 2);
    // At day 30 the monthly one is due and the weekly one, bought 3 days ago, is not yet.
    let history = vec![(0, 0), (2, 27 * DAY)];
    let s = model.for_customer(&history, 30 * DAY, 2, &[]);
    assert_eq!(s[0].item, 0);
}

/// Past sessions drawn from two "journeys": 0→1→2→3 and 10→11→12→13, plus noise items.
fn past_sessions(seed: u64) -> Vec<PastSession> {
    let mut rng = Lcg(seed);
    (0..400)
        .map(|s| {
            let base = if s % 2 == 0 { 0 } else { 10 };
            let start = (rng.next() % 2) as u32;
            let mut items: Vec<u32> = (start..4).map(|k| base + k).collect();
            items.push(20 + (rng.next() % 20) as u32);
            PastSession { time_ms: s as i64 * 1000, items }
        })
        .collect()
}

#[test]
fn session_knn_reacts_to_each_new_click() {
    let model = SessionKnn::fit(&past_sessions(5), 40, SessionKnnConfig::default()).unwrap();
    let first = model.recommend(&[0], 3, &[0]);
    assert!(first.iter().any(|s| s.item == 1 || s.item == 2));
    assert!(first.iter().all(|s| s.anchors == vec![0]));
    // A click on the other journey changes the very next answer, without refitting.
    let next = model.recommend(&[0, 11], 3, &[0, 11]);
    assert_ne!(first, next);
    assert!([12, 13].contains(&next[0].item), "{next:?}");
    assert_eq!(next[0].anchors[0], 11, "the latest click explains it");
}

#[test]
fn session_knn_is_deterministic_and_ignores_unknown_items() {
    let a = SessionKnn::fit(&past_sessions(9), 40, SessionKnnConfig::default()).unwrap();
    let b = SessionKnn::fit(&past_sessions(9), 40, SessionKnnConfig::default()).unwrap();
    assert_eq!(a.recommend(&[1, 2], 10, &[]), b.recommend(&[1, 2], 10, &[]));
    assert_eq!(a.recommend(&[1, 2, 999], 10, &[]), a.recommend(&[1, 2], 10, &[]));
    assert!(a.recommend(&[999], 10, &[]).is_empty());
}

proptest! {
    #[test]
    fn scenario_lists_never_hold_excluded_items_and_are_sorted(
        seed in 0u64..50,
        cart in proptest::collection::vec(0u32..40, 0..5),
        exclude in proptest::collection::vec(0u32..40, 0..5),
        n in 1usize..12,
    ) {
        let fbt = BoughtTogether::fit(&baskets(seed), 40, BoughtTogetherConfig { min_support: 2, min_llr: 3.84, ..Default::default() }).unwrap();
        let s = fbt.for_items(&cart, n, &exclude);
        prop_assert!(s.len() <= n);
        prop_assert!(s.windows(2).all(|w| w[0].score >= w[1].score));
        for x in &s {
            prop_assert!(!cart.contains(&x.item) && !exclude.contains(&x.item));
            prop_assert!(!x.anchors.is_empty() && x.anchors.iter().all(|a| cart.contains(a)));
        }
        let knn = SessionKnn::fit(&past_sessions(seed), 40, SessionKnnConfig::default()).unwrap();
        let s = knn.recommend(&cart, n, &exclude);
        prop_assert!(s.len() <= n);
        prop_assert!(s.windows(2).all(|w| w[0].score >= w[1].score));
        for x in &s {
            prop_assert!(!exclude.contains(&x.item));
            prop_assert!(!x.anchors.is_empty() && x.anchors.iter().all(|a| cart.contains(a)));
        }
        let again = BuyAgain::fit(&purchase_histories(), 3, BuyAgainConfig::default()).unwrap();
        let history: Vec<(u32, i64)> = cart.iter().map(|&i| (i % 3, i as i64 * DAY)).collect();
        let s = again.for_customer(&history, 60 * DAY, n, &exclude);
        prop_assert!(s.windows(2).all(|w| w[0].score >= w[1].score));
        for x in &s {
            prop_assert!(!exclude.contains(&x.item) && history.iter().any(|h| h.0 == x.item));
        }
    }
}

/// Sequences that walk the chain 0 → 1 → … → 9 from a random start (4 steps each).
fn chain_sequences() -> Vec<Vec<u32>> {
    let mut rng = Lcg(21);
    (0..300)
        .map(|_| {
            let start = (rng.next() % 6) as u32;
            (start..start + 4).collect()
        })
        .collect()
}

fn cosine_similarity(sequences: &[Vec<u32>], n_items: usize) -> attune_recs::CsrMatrix {
    use attune_recs::{CsrMatrix, ItemKnn, ItemKnnConfig, Recommender};
    let train = CsrMatrix::from_rows_binary(n_items, sequences).unwrap();
    let mut knn = ItemKnn::new(ItemKnnConfig { k: 20, shrinkage: 0.0, binary: true }).unwrap();
    knn.fit(&train).unwrap();
    let triplets: Vec<(u32, u32, f32)> = (0..n_items as u32)
        .flat_map(|i| knn.neighbours(i).iter().map(move |(j, s)| (i, j, s)).collect::<Vec<_>>())
        .collect();
    CsrMatrix::from_triplets(n_items, n_items, &triplets).unwrap()
}

#[test]
fn sequential_model_uses_the_order_of_the_history() {
    use attune_recs::{SequentialConfig, SequentialModel};
    let seqs = chain_sequences();
    let sim = cosine_similarity(&seqs, 10);
    let model = SequentialModel::fit(&seqs, sim.clone(), SequentialConfig::default()).unwrap();
    // After 3 … 7 the next item is 8; after 7 … 3 (the same items reversed) it is 4.
    let forward = model.recommend(&[3, 7], 1, &[3, 7]).unwrap();
    let reversed = model.recommend(&[7, 3], 1, &[3, 7]).unwrap();
    assert_eq!(forward[0].item, 8, "{forward:?}");
    assert_eq!(forward[0].anchors[0], 7);
    assert_eq!(reversed[0].item, 4, "{reversed:?}");
    assert_eq!(reversed[0].anchors[0], 3);
    // The order-blind setting gives the same answer both ways.
    let blind = SequentialModel::fit(
        &seqs,
        sim,
        SequentialConfig { decay: 1.0, transition_weight: 0.0, ..SequentialConfig::default() },
    )
    .unwrap();
    assert_eq!(blind.recommend(&[3, 7], 3, &[3, 7]).unwrap(), blind.recommend(&[7, 3], 3, &[3, 7]).unwrap());
    // Determinism.
    let again = SequentialModel::fit(&seqs, cosine_similarity(&seqs, 10), SequentialConfig::default()).unwrap();
    assert_eq!(again.recommend(&[1, 2, 3], 5, &[]).unwrap(), model.recommend(&[1, 2, 3], 5, &[]).unwrap());
}

/// Random walks over 40 items with a drift, so transitions and similarities overlap.
fn drifting_sequences(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Lcg(seed);
    (0..200)
        .map(|_| {
            let mut item = (rng.next() % 40) as u32;
            (0..2 + rng.next() % 6)
                .map(|_| {
                    item = (item + 1 + (rng.next() % 3) as u32) % 40;
                    item
                })
                .collect()
        })
        .collect()
}

proptest! {
    /// The serving path ranks only the items its history reaches; it must agree with scoring every item.
    #[test]
    fn sequential_suggestions_equal_the_dense_ranking(
        seed in 0u64..30,
        history in proptest::collection::vec(0u32..45, 0..25),
        exclude in proptest::collection::vec(0u32..40, 0..6),
        n in 0usize..15,
    ) {
        use attune_recs::{SequentialConfig, SequentialModel, top_n_excluding};
        let seqs = drifting_sequences(seed);
        let model = SequentialModel::fit(&seqs, cosine_similarity(&seqs, 40), SequentialConfig::default()).unwrap();
        let mut scores = vec![0f32; model.n_items()];
        model.score_into(&history, &mut scores).unwrap();
        let dense: Vec<(u32, f32)> =
            top_n_excluding(&mut scores, &exclude, n).into_iter().filter(|&(_, s)| s > 0.0).collect();
        let suggestions = model.recommend(&history, n, &exclude).unwrap();
        let served: Vec<(u32, f32)> = suggestions.iter().map(|s| (s.item, s.score)).collect();
        prop_assert_eq!(served, dense);
        // Anchors: the history items with the largest summed contribution, each contribution being the
        // position's weight times what that item alone scores the suggestion.
        let config = model.config().clone();
        let recent = &history[history.len().saturating_sub(config.max_history)..];
        let alone = |i: u32| {
            let mut scores = vec![0f32; model.n_items()];
            model.score_into(&[i], &mut scores).unwrap();
            scores
        };
        for suggestion in &suggestions {
            let mut parts: Vec<(u32, f32)> = Vec::new();
            for (p, &i) in recent.iter().enumerate().filter(|&(_, &i)| (i as usize) < model.n_items()) {
                let c = config.decay.powi((recent.len() - 1 - p) as i32) * alone(i)[suggestion.item as usize];
                match parts.iter_mut().find(|(a, _)| *a == i) {
                    Some(part) => part.1 += c,
                    None => parts.push((i, c)),
                }
            }
            parts.retain(|&(_, c)| c > 0.0);
            parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let expected: Vec<u32> = parts.iter().take(3).map(|p| p.0).collect();
            prop_assert_eq!(&suggestion.anchors, &expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn baskets_counted_after_a_fit_on_nothing_rank_exactly_as_a_fit_on_them(
        seed in 0u64..50,
        cart in proptest::collection::vec(0u32..40, 0..5),
        exclude in proptest::collection::vec(0u32..40, 0..5),
        n in 1usize..12,
    ) {
        let config = BoughtTogetherConfig { min_support: 2, min_llr: 3.84, ..Default::default() };
        let data = baskets(seed);
        let fitted = BoughtTogether::fit(&data, 40, config.clone()).unwrap();
        let nothing = BoughtTogether::fit(&[], 40, config).unwrap();
        let mut since = BasketDelta::default();
        data.iter().for_each(|basket| since.add(basket));
        prop_assert_eq!(nothing.for_items_with(&since, &cart, n, &exclude), fitted.for_items(&cart, n, &exclude));
        prop_assert_eq!(
            fitted.for_items_with(&BasketDelta::default(), &cart, n, &exclude),
            fitted.for_items(&cart, n, &exclude)
        );
    }
}
