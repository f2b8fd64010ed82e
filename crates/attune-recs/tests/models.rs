//! Model-level properties on small synthetic data: EASE against the closed form computed another way,
//! ALS determinism and decreasing loss, item-kNN symmetry, popularity and trending ordering, and
//! recommendation lists that never hold seen items or duplicates.

use attune_recs::{
    Als, AlsConfig, CsrMatrix, Ease, EaseConfig, ItemKnn, ItemKnnConfig, Popularity, Recommender, TimedInteraction,
    Trending,
};
use proptest::prelude::*;

/// A deterministic random-looking binary matrix.
fn synthetic(n_users: usize, n_items: usize, per_user: usize, seed: u64) -> CsrMatrix {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let rows: Vec<Vec<u32>> = (0..n_users)
        .map(|u| {
            (0..per_user)
                .map(|_| {
                    // Popularity skew plus a per-user taste cluster.
                    let base = (u % 4) * (n_items / 4);
                    if next() % 3 == 0 {
                        (next() % n_items) as u32
                    } else {
                        ((base + next() % (n_items / 4)) % n_items) as u32
                    }
                })
                .collect()
        })
        .collect();
    CsrMatrix::from_rows_binary(n_items, &rows).unwrap()
}

/// Dense f64 inverse by Gauss–Jordan with partial pivoting (independent of the crate's routine).
fn inverse(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    for c in 0..n {
        let p = (c..n).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())).unwrap();
        a.swap(c, p);
        inv.swap(c, p);
        let d = a[c][c];
        for j in 0..n {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = a[r][c];
                for j in 0..n {
                    a[r][j] -= f * a[c][j];
                    inv[r][j] -= f * inv[c][j];
                }
            }
        }
    }
    inv
}

#[test]
fn ease_matches_closed_form() {
    let x = synthetic(30, 12, 4, 7);
    let lambda = 2.5f32;
    let mut model = Ease::new(EaseConfig { lambda, max_items: 100 }).unwrap();
    model.fit(&x).unwrap();
    let n = x.n_cols();
    let mut g = vec![vec![0f64; n]; n];
    for u in 0..x.n_rows() {
        for (i, a) in x.row(u).iter() {
            for (j, b) in x.row(u).iter() {
                g[i as usize][j as usize] += f64::from(a * b);
            }
        }
    }
    let counts = x.column_counts();
    let active: Vec<usize> = (0..n).filter(|&i| counts[i] > 0).collect();
    let sub: Vec<Vec<f64>> = active
        .iter()
        .map(|&i| active.iter().map(|&j| g[i][j] + if i == j { f64::from(lambda) } else { 0.0 }).collect())
        .collect();
    let p = inverse(sub);
    for (a, &i) in active.iter().enumerate() {
        for (b, &j) in active.iter().enumerate() {
            let want = if a == b { 0.0 } else { -p[a][b] / p[b][b] };
            let got = f64::from(model.weight(i as u32, j as u32));
            assert!((got - want).abs() < 1e-4, "B[{i}][{j}] = {got}, want {want}");
        }
    }
}

#[test]
fn als_is_deterministic_and_loss_decreases() {
    let x = synthetic(60, 40, 6, 3);
    let cfg = AlsConfig { factors: 8, iterations: 6, regularization: 0.1, alpha: 5.0, ..AlsConfig::default() };
    let mut a = Als::new(cfg.clone()).unwrap();
    let losses = a.fit_with_losses(&x).unwrap();
    let mut b = Als::new(cfg.clone()).unwrap();
    b.fit(&x).unwrap();
    assert_eq!(a.user_factors(), b.user_factors());
    assert_eq!(a.item_factors(), b.item_factors());
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-5), "loss went up: {losses:?}");
    }
    assert!(losses.last().unwrap() < &(losses[0] * 0.999), "{losses:?}");
    let mut c = Als::new(AlsConfig { seed: 99, ..cfg }).unwrap();
    c.fit(&x).unwrap();
    assert_ne!(a.item_factors(), c.item_factors());
}

#[test]
fn als_folds_in_unknown_users() {
    let x = synthetic(40, 30, 5, 11);
    let mut model = Als::new(AlsConfig { factors: 6, iterations: 4, ..AlsConfig::default() }).unwrap();
    model.fit(&x).unwrap();
    let recs = model.recommend(1_000, x.row(0), 5).unwrap();
    assert_eq!(recs.len(), 5);
    assert!(recs.iter().all(|(i, _)| !x.row(0).indices.contains(i)));
}

#[test]
fn item_knn_similarity_is_symmetric_cosine() {
    let x = synthetic(50, 20, 5, 5);
    let mut model = ItemKnn::new(ItemKnnConfig { k: 1_000, shrinkage: 0.0, binary: false }).unwrap();
    model.fit(&x).unwrap();
    let t = x.transpose();
    for i in 0..20u32 {
        for j in 0..20u32 {
            assert_eq!(model.similarity(i, j), model.similarity(j, i));
            if i != j {
                let (a, b) = (t.row(i as usize), t.row(j as usize));
                let common = a.indices.iter().filter(|u| b.indices.contains(u)).count() as f32;
                let want = common / ((a.len() as f32).sqrt() * (b.len() as f32).sqrt());
                let want = if want.is_finite() { want } else { 0.0 };
                assert!((model.similarity(i, j) - want).abs() < 1e-5);
            }
        }
        assert_eq!(model.similarity(i, i), 0.0);
    }
    // Top-K keeps the K largest.
    let mut small = ItemKnn::new(ItemKnnConfig { k: 3, shrinkage: 0.0, binary: false }).unwrap();
    small.fit(&x).unwrap();
    for i in 0..20u32 {
        let kept = small.neighbours(i);
        assert!(kept.len() <= 3);
        let min_kept = kept.values.iter().copied().fold(f32::INFINITY, f32::min);
        let dropped = (0..20u32).filter(|j| *j != i && !kept.indices.contains(j)).map(|j| model.similarity(i, j));
        assert!(dropped.into_iter().all(|s| s <= min_kept));
    }
}

#[test]
fn popularity_and_trending_order() {
    let x = CsrMatrix::from_rows_binary(3, &[vec![0, 1], vec![1], vec![1, 2], vec![2]]).unwrap();
    let mut pop = Popularity::new();
    pop.fit(&x).unwrap();
    assert_eq!(pop.recommend(0, x.row(0), 3).unwrap(), vec![(2, 2.0)]);
    assert_eq!(pop.recommend(9, CsrMatrix::empty(0, 3).row(0), 2).unwrap(), vec![(1, 3.0), (2, 2.0)]);

    let day = 86_400_000i64;
    let now = 100 * day;
    // Item 0: 4 old interactions (10 days ago); item 1: 2 fresh ones (today).
    let mut events: Vec<TimedInteraction> =
        (0..4).map(|_| TimedInteraction { item: 0, timestamp_ms: now - 10 * day, weight: 1.0 }).collect();
    events.extend((0..2).map(|_| TimedInteraction { item: 1, timestamp_ms: now, weight: 1.0 }));
    let mut short = Trending::new(day as f64).unwrap();
    short.fit_timed(2, &events, now).unwrap();
    assert!(short.scores()[1] > short.scores()[0]);
    assert!((short.scores()[0] - 4.0 / 1024.0).abs() < 1e-6);
    let mut long = Trending::new(1000.0 * day as f64).unwrap();
    long.fit_timed(2, &events, now).unwrap();
    assert!(long.scores()[0] > long.scores()[1]);
    assert!(Trending::new(0.0).is_err());
}

fn models() -> Vec<Box<dyn Recommender>> {
    vec![
        Box::new(Popularity::new()),
        Box::new(ItemKnn::new(ItemKnnConfig { k: 5, shrinkage: 1.0, binary: true }).unwrap()),
        Box::new(Ease::new(EaseConfig { lambda: 10.0, max_items: 20 }).unwrap()),
        Box::new(Als::new(AlsConfig { factors: 4, iterations: 2, ..AlsConfig::default() }).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn recommendations_exclude_seen_and_have_no_duplicates(
        rows in prop::collection::vec(prop::collection::vec(0u32..25, 0..8), 2..15),
        n in 0usize..30,
    ) {
        let x = CsrMatrix::from_rows_binary(25, &rows).unwrap();
        prop_assume!(x.nnz() > 0);
        for mut model in models() {
            model.fit(&x).unwrap();
            for u in 0..x.n_rows() {
                let recs = model.recommend(u as u32, x.row(u), n).unwrap();
                prop_assert!(recs.len() <= n);
                let mut ids: Vec<u32> = recs.iter().map(|r| r.0).collect();
                prop_assert!(ids.iter().all(|i| !x.row(u).indices.contains(i)));
                prop_assert!(recs.windows(2).all(|w| w[0].1 >= w[1].1));
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), recs.len());
            }
        }
    }
}
