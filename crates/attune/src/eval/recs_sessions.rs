//! YOOCHOOSE sample, next-click protocol of session-rec (Ludewig & Jannach): sessions are the clicks of
//! `yoochoose-clicks-100k_train_full.txt` / `_test.txt` in time order; test clicks on items never seen in
//! training are dropped and test sessions left with fewer than 2 clicks are skipped. For every test
//! session and every position p ≥ 1, each model ranks all items from the prefix s[..p] and is scored on
//! s[p]: HR@20 (= Recall@20 with one target) and MRR@20, averaged over all predictions. Items already in
//! the session are not excluded (repeat clicks are common). Session kNN's λ₁ / λ₃ / k are tuned on the
//! last 10 % of the training sessions (by time) with the same protocol, fitted on the rest.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use attune_recs::evaluation::rank_metrics;
use attune_recs::{
    CsrMatrix, ItemKnn, ItemKnnConfig, PastSession, Recommender, Row as SparseRow, SessionKnn, SessionKnnConfig,
    top_n_excluding,
};

const K: usize = 20;

/// Sessions in time order, with their start time (ms).
fn load_sessions(path: &Path, ids: &mut HashMap<u64, u32>, grow: bool) -> anyhow::Result<Vec<PastSession>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut by_session: HashMap<u64, Vec<(i64, u32)>> = HashMap::new();
    for (n, line) in BufReader::new(file).lines().enumerate().skip(1) {
        let line = line?;
        let mut parts = line.split('\t');
        let (Some(s), Some(i), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("{}:{}: expected 3 columns", path.display(), n + 1);
        };
        let session: u64 = s.parse().with_context(|| format!("line {}", n + 1))?;
        let item: u64 = i.parse().with_context(|| format!("line {}", n + 1))?;
        let time_ms = (t.parse::<f64>().with_context(|| format!("line {}", n + 1))? * 1000.0) as i64;
        let next = ids.len() as u32;
        let index = if grow { Some(*ids.entry(item).or_insert(next)) } else { ids.get(&item).copied() };
        if let Some(index) = index {
            by_session.entry(session).or_default().push((time_ms, index));
        }
    }
    let mut sessions: Vec<(u64, PastSession)> = by_session
        .into_iter()
        .map(|(id, mut clicks)| {
            clicks.sort_by_key(|c| c.0);
            (id, PastSession { time_ms: clicks[0].0, items: clicks.into_iter().map(|c| c.1).collect() })
        })
        .collect();
    sessions.sort_by_key(|(id, s)| (s.time_ms, *id));
    Ok(sessions.into_iter().map(|(_, s)| s).collect())
}

#[derive(Default)]
struct NextClick {
    hr: f64,
    mrr: f64,
    events: usize,
    micros: Vec<f64>,
}

impl NextClick {
    fn hr(&self) -> f64 {
        self.hr / self.events.max(1) as f64
    }
    fn mrr(&self) -> f64 {
        self.mrr / self.events.max(1) as f64
    }
    fn latency(&mut self) -> (f64, f64) {
        if self.micros.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        self.micros.sort_by(f64::total_cmp);
        let mean = self.micros.iter().sum::<f64>() / self.micros.len() as f64;
        let p99 = self.micros[((self.micros.len() as f64 * 0.99) as usize).min(self.micros.len() - 1)];
        (mean, p99)
    }
}

/// Runs the next-click protocol over `test` with `recommend(prefix) -> top-K items`.
fn next_click(test: &[PastSession], mut recommend: impl FnMut(&[u32]) -> Vec<u32>) -> NextClick {
    let mut r = NextClick::default();
    for s in test.iter().filter(|s| s.items.len() >= 2) {
        for p in 1..s.items.len() {
            let t = Instant::now();
            let list = recommend(&s.items[..p]);
            r.micros.push(t.elapsed().as_secs_f64() * 1e6);
            let m = rank_metrics(&list, &[s.items[p]], K);
            r.hr += m.hr;
            r.mrr += m.mrr;
            r.events += 1;
        }
    }
    r
}

fn session_knn_lists(model: &SessionKnn) -> impl FnMut(&[u32]) -> Vec<u32> + '_ {
    move |prefix| model.recommend(prefix, K, &[]).into_iter().map(|s| s.item).collect()
}

/// The next-click section of `attune eval recs`.
pub(super) fn sessions_section(out: &mut String, data_dir: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let dir = data_dir.join("session/yoochoose_100k");
    let mut ids = HashMap::new();
    let train = load_sessions(&dir.join("yoochoose-clicks-100k_train_full.txt"), &mut ids, true)?;
    let test = load_sessions(&dir.join("yoochoose-clicks-100k_test.txt"), &mut ids, false)?;
    let n_items = ids.len();
    let test: Vec<PastSession> = test.into_iter().filter(|s| s.items.len() >= 2).collect();
    let train_clicks: usize = train.iter().map(|s| s.items.len()).sum();
    writeln!(
        out,
        "\n== YOOCHOOSE 100k sample: {} train sessions ({train_clicks} clicks), {} test sessions, {n_items} items; next click, K = {K} ==",
        train.len(),
        test.len()
    )?;

    // Tuning on the last 10 % of the training sessions.
    let cut = train.len() - train.len() / 10;
    let (fit_part, valid_part) = train.split_at(cut);
    let mut best = (SessionKnnConfig::default(), -1.0);
    for k in [50, 100, 200] {
        for position_decay in [0.0, 1.0, 2.0, 4.0] {
            for neighbour_decay in [0.0, 1.0, 2.0, 4.0] {
                let config = SessionKnnConfig { k, position_decay, neighbour_decay, ..SessionKnnConfig::default() };
                let model = SessionKnn::fit(fit_part, n_items, config.clone())?;
                let r = next_click(valid_part, session_knn_lists(&model));
                if r.mrr() > best.1 {
                    best = (config, r.mrr());
                }
            }
        }
    }
    writeln!(
        out,
        "  valid: best session kNN k={} λ1={} λ3={} (MRR@{K} {:.4}) over 48 settings",
        best.0.k, best.0.position_decay, best.0.neighbour_decay, best.1
    )?;

    let mut rows: Vec<(String, NextClick, f64)> = Vec::new();
    // Popularity: most clicked training items.
    let t = Instant::now();
    let mut counts = vec![0f32; n_items];
    for s in &train {
        for &i in &s.items {
            counts[i as usize] += 1.0;
        }
    }
    let popular: Vec<u32> = top_n_excluding(&mut counts.clone(), &[], K).into_iter().map(|p| p.0).collect();
    let fit_s = t.elapsed().as_secs_f64();
    rows.push(("popularity".into(), next_click(&test, |_| popular.clone()), fit_s));
    // Item-kNN of the last click (session-rec's IKNN): cosine over sessions.
    let t = Instant::now();
    let rows_binary: Vec<Vec<u32>> = train.iter().map(|s| s.items.clone()).collect();
    let matrix = CsrMatrix::from_rows_binary(n_items, &rows_binary)?;
    let mut iknn = ItemKnn::new(ItemKnnConfig { k: 100, shrinkage: 20.0, binary: true })?;
    iknn.fit(&matrix)?;
    let fit_s = t.elapsed().as_secs_f64();
    let mut scores = vec![0f32; n_items];
    let r = next_click(&test, |prefix| {
        let last = [prefix[prefix.len() - 1]];
        let _ = iknn.score_into(0, SparseRow { indices: &last, values: &[1.0] }, &mut scores);
        top_n_excluding(&mut scores, &[], K).into_iter().map(|p| p.0).collect()
    });
    rows.push(("item-kNN of the last click (cosine)".into(), r, fit_s));
    // Session kNN, order-blind (plain SKNN), and tuned with position decays.
    for (name, config) in [
        (
            "session kNN, order-blind (SKNN)",
            SessionKnnConfig { position_decay: 0.0, neighbour_decay: 0.0, ..best.0.clone() },
        ),
        ("session kNN, tuned (V-SKNN/STAN)", best.0.clone()),
    ] {
        let t = Instant::now();
        let model = SessionKnn::fit(&train, n_items, config.clone())?;
        let fit_s = t.elapsed().as_secs_f64();
        let r = next_click(&test, session_knn_lists(&model));
        rows.push((
            format!("{name} k={} λ1={} λ3={}", config.k, config.position_decay, config.neighbour_decay),
            r,
            fit_s,
        ));
    }
    writeln!(
        out,
        "  {:<52} {:>8} {:>8} {:>8} {:>11} {:>10}",
        "model",
        format!("HR@{K}"),
        format!("MRR@{K}"),
        "fit s",
        "mean µs/call",
        "p99 µs"
    )?;
    for (name, mut r, fit_s) in rows {
        let (mean, p99) = r.latency();
        writeln!(out, "  {name:<52} {:>8.4} {:>8.4} {fit_s:>8.2} {mean:>11.0} {p99:>10.0}", r.hr(), r.mrr())?;
    }
    writeln!(
        out,
        "  ({} predictions; latency = wall time of one recommend call, single thread)",
        test.iter().map(|s| s.items.len() - 1).sum::<usize>()
    )?;
    writeln!(out, "(YOOCHOOSE section took {:.0}s)", t0.elapsed().as_secs_f64())?;
    Ok(())
}
