//! Complete-the-basket on Online Retail I: frequently-bought-together is fitted on every invoice except
//! each customer's last; in each held-out invoice with at least 2 distinct items one item (chosen by a
//! fixed hash of the invoice) is hidden and the rest is the cart. HR@10 and MRR@10 of the hidden item,
//! cart items excluded, for the lift + G² + lower-bound model, raw co-occurrence counts, cosine item-kNN
//! over invoices and popularity.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use attune_recs::evaluation::rank_metrics;
use attune_recs::{
    BasketRanking, BoughtTogether, BoughtTogetherConfig, CsrMatrix, ItemKnn, ItemKnnConfig, Purchase, Recommender,
    Row as SparseRow, top_n_excluding,
};

const K: usize = 10;

fn baskets_of(purchases: &[Purchase]) -> BTreeMap<u32, BTreeSet<u32>> {
    let mut m: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for p in purchases {
        m.entry(p.basket).or_default().insert(p.item);
    }
    m
}

/// The complete-the-basket table, appended to `out`.
pub(super) fn basket_section(
    out: &mut String,
    all: &[Purchase],
    train_purchases: &[Purchase],
    n_items: usize,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let train = baskets_of(train_purchases);
    let held: Vec<(Vec<u32>, u32)> = baskets_of(all)
        .into_iter()
        .filter(|(b, items)| !train.contains_key(b) && items.len() >= 2)
        .map(|(b, items)| {
            let items: Vec<u32> = items.into_iter().collect();
            let hide = (u64::from(b).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % items.len();
            let target = items[hide];
            (items.into_iter().filter(|&i| i != target).collect(), target)
        })
        .collect();
    let train_baskets: Vec<Vec<u32>> = train.values().map(|s| s.iter().copied().collect()).collect();
    let matrix = CsrMatrix::from_rows_binary(n_items, &train_baskets)?;
    let by_item = matrix.transpose();
    writeln!(
        out,
        "complete the basket: {} training invoices, {} held-out invoices (one hidden item each, the rest is the cart), K = {K}",
        train_baskets.len(),
        held.len()
    )?;
    let mut rows: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut score = |name: String, fit_s: f64, recommend: &mut dyn FnMut(&[u32]) -> Vec<u32>| {
        let (mut hr, mut mrr) = (0.0, 0.0);
        for (cart, target) in &held {
            let m = rank_metrics(&recommend(cart), &[*target], K);
            hr += m.hr;
            mrr += m.mrr;
        }
        let n = held.len().max(1) as f64;
        rows.push((name, hr / n, mrr / n, fit_s));
    };
    for (label, ranking) in
        [("confidence", BasketRanking::Confidence), ("lower-bound lift", BasketRanking::LowerBoundLift)]
    {
        let t = Instant::now();
        let config = BoughtTogetherConfig { ranking, ..BoughtTogetherConfig::default() };
        let fbt = BoughtTogether::fit(&train_baskets, n_items, config)?;
        let fit_s = t.elapsed().as_secs_f64();
        score(format!("bought together (G² ≥ 10.83, LB lift > 1), by {label}"), fit_s, &mut |cart| {
            fbt.for_items(cart, K, &[]).into_iter().map(|s| s.item).collect()
        });
    }
    let mut counts = vec![0f32; n_items];
    score("raw co-occurrence counts".into(), 0.0, &mut |cart| {
        counts.fill(0.0);
        for &i in cart {
            for &b in by_item.row(i as usize).indices {
                for &j in matrix.row(b as usize).indices {
                    counts[j as usize] += 1.0;
                }
            }
        }
        top_n_excluding(&mut counts, cart, K).into_iter().map(|p| p.0).collect()
    });
    let t = Instant::now();
    let mut knn = ItemKnn::new(ItemKnnConfig { k: 100, shrinkage: 10.0, binary: true })?;
    knn.fit(&matrix)?;
    let fit_s = t.elapsed().as_secs_f64();
    let mut scores = vec![0f32; n_items];
    score("item-kNN over invoices (cosine)".into(), fit_s, &mut |cart| {
        let ones = vec![1.0; cart.len()];
        let mut sorted = cart.to_vec();
        sorted.sort_unstable();
        let _ = knn.score_into(0, SparseRow { indices: &sorted, values: &ones }, &mut scores);
        top_n_excluding(&mut scores, cart, K).into_iter().map(|p| p.0).collect()
    });
    let popularity = matrix.column_counts();
    score("popularity".into(), 0.0, &mut |cart| {
        let mut s: Vec<f32> = popularity.iter().map(|&c| c as f32).collect();
        top_n_excluding(&mut s, cart, K).into_iter().map(|p| p.0).collect()
    });
    writeln!(out, "  {:<64} {:>8} {:>8} {:>8}", "model", format!("HR@{K}"), format!("MRR@{K}"), "fit s")?;
    for (name, hr, mrr, fit_s) in rows {
        writeln!(out, "  {name:<64} {hr:>8.4} {mrr:>8.4} {fit_s:>8.2}")?;
    }
    writeln!(out, "  (complete-the-basket took {:.0}s)", t0.elapsed().as_secs_f64())?;
    Ok(())
}
