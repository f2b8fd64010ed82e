//! `attune eval recs`: the recommendation core on real data, full ranking over all items.
//!
//! * Amazon Beauty (S3-Rec preprocessing), leave-one-out: hyper-parameters are tuned on the
//!   second-to-last item (trained on all but the last two), the report is on the last item (trained on
//!   all but the last), HR@10 and NDCG@10 beside the published SASRec, S3-Rec and PopRec figures.
//! * UCI Online Retail I, last-basket split: each customer's last invoice is held out (customers with at
//!   least 2 invoices; targets are the items new to the customer), tuned on the invoice before it;
//!   Recall@20, NDCG@20, catalog coverage, mean popularity.
//! * With `peer`: `bench/python/recs_implicit.py` fits the Python `implicit` package's ALS and cosine
//!   item-item model on the same training matrices (written to a temporary folder), returns its top-K
//!   lists, which are scored here by the same code; fit times are compared. ALS starts from random
//!   factors, so both sides fit it once per seed of a fixed list, each seed from the same initial factors
//!   on both sides (Attune writes them for the peer), and the means (± sd) and the per-seed differences
//!   are compared.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use attune_engine::recs::fit::{EASE_KEEP, EASE_MAX_ITEMS};
use attune_recs::evaluation::evaluate_lists;
use attune_recs::{
    Als, AlsConfig, CsrMatrix, Ease, EaseConfig, EvalReport, ItemKnn, ItemKnnConfig, Popularity, Purchase, Recommender,
    SparseEase, SparseEaseConfig, blend, evaluate, last_basket_split, leave_one_out, top_n_excluding, tune_weights,
};

#[path = "recs_basket.rs"]
mod basket;
#[path = "recs_instacart.rs"]
mod instacart;
#[path = "recs_sequential.rs"]
mod sequential;
#[path = "recs_sessions.rs"]
mod sessions;

/// Published leave-one-out full-ranking figures on Beauty (S3-Rec paper, Zhou et al. 2020): (model, HR@10, NDCG@10).
const PUBLISHED_BEAUTY: [(&str, f64, Option<f64>); 3] = [
    ("PopRec (published)", 0.0152, None),
    ("SASRec (published)", 0.0605, Some(0.0318)),
    ("S3-Rec (published)", 0.0647, Some(0.0327)),
];

/// Beauty sequences on dense item indices (first-seen order) and the catalog size.
pub struct Sequences {
    pub sequences: Vec<Vec<u32>>,
    pub n_items: usize,
}

/// Reads `Beauty.txt` ("user item item ..." per line, items in time order); `max_users` keeps the first lines.
pub fn load_beauty(path: &Path, max_users: Option<usize>) -> anyhow::Result<Sequences> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut sequences = Vec::new();
    for line in BufReader::new(file).lines() {
        if max_users.is_some_and(|m| sequences.len() >= m) {
            break;
        }
        let line = line?;
        let mut parts = line.split_whitespace();
        if parts.next().is_none() {
            continue;
        }
        let seq: Vec<u32> = parts
            .map(|tok| {
                let next = ids.len() as u32;
                *ids.entry(tok.to_string()).or_insert(next)
            })
            .collect();
        sequences.push(seq);
    }
    Ok(Sequences { sequences, n_items: ids.len() })
}

/// Online Retail purchases on dense indices, with the original stock codes.
pub struct RetailPurchases {
    pub purchases: Vec<Purchase>,
    pub n_users: usize,
    pub n_items: usize,
}

/// Reads Online Retail I: lines with a CustomerID and a positive quantity (invoices starting with `C`
/// are cancellations and skipped); one basket per invoice, ordered by invoice date. `max_rows` limits
/// the lines read.
pub fn load_online_retail(path: &Path, max_rows: Option<usize>) -> anyhow::Result<RetailPurchases> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = csv::Reader::from_reader(flate2::read::GzDecoder::new(file));
    let (mut users, mut items, mut baskets) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut purchases = Vec::new();
    for (n, record) in reader.records().enumerate() {
        if max_rows.is_some_and(|m| n >= m) {
            break;
        }
        let r = record.with_context(|| format!("line {}", n + 2))?;
        let (invoice, code, qty, date, customer) = (&r[0], &r[1], &r[3], &r[4], &r[6]);
        if customer.trim().is_empty() || invoice.starts_with('C') {
            continue;
        }
        let qty: f64 = qty.parse().with_context(|| format!("quantity `{qty}`"))?;
        if qty <= 0.0 {
            continue;
        }
        // "2010-12-01 08:26:00" → 201012010826, increasing with time.
        let time: i64 = date.chars().filter(char::is_ascii_digit).take(12).collect::<String>().parse().unwrap_or(0);
        let intern = |m: &mut HashMap<String, u32>, k: &str| {
            let next = m.len() as u32;
            *m.entry(k.to_string()).or_insert(next)
        };
        let user = intern(&mut users, customer);
        let item = intern(&mut items, code);
        let basket = intern(&mut baskets, invoice);
        purchases.push(Purchase { user, item, basket, time });
    }
    Ok(RetailPurchases { purchases, n_users: users.len(), n_items: items.len() })
}

struct Row {
    name: String,
    report: EvalReport,
    fit_s: f64,
}

fn fit_eval(
    mut model: Box<dyn Recommender>,
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
) -> anyhow::Result<(Box<dyn Recommender>, EvalReport, f64)> {
    let t = Instant::now();
    model.fit(train)?;
    let fit_s = t.elapsed().as_secs_f64();
    let report = evaluate(model.as_ref(), train, targets, k)?;
    Ok((model, report, fit_s))
}

type Factory = Box<dyn Fn() -> anyhow::Result<Box<dyn Recommender>>>;

/// Picks the candidate with the best validation NDCG@k; returns its index and a log line per candidate.
fn tune(
    candidates: &[Factory],
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
    log: &mut String,
) -> anyhow::Result<usize> {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, make) in candidates.iter().enumerate() {
        let (model, r, fit_s) = fit_eval(make()?, train, targets, k)?;
        writeln!(
            log,
            "  valid {:<38} NDCG@{k} {:.4}  HR@{k} {:.4}  fit {:.1}s",
            model.name(),
            r.metrics.ndcg,
            r.metrics.hr,
            fit_s
        )?;
        if r.metrics.ndcg > best.1 {
            best = (i, r.metrics.ndcg);
        }
    }
    Ok(best.0)
}

struct Grids {
    knn: Vec<ItemKnnConfig>,
    ease: Vec<f32>,
    als: Vec<AlsConfig>,
}

fn grids(knn_binary: &[bool], ease_lambdas: &[f32], als_regs: &[f32], als_alphas: &[f32]) -> Grids {
    let knn = knn_binary
        .iter()
        .flat_map(|&binary| {
            [20, 50, 100, 200]
                .into_iter()
                .flat_map(move |k| [0.0, 10.0, 50.0].map(|shrinkage| ItemKnnConfig { k, shrinkage, binary }))
        })
        .collect();
    let als = als_regs
        .iter()
        .flat_map(|&regularization| {
            als_alphas.iter().map(move |&alpha| AlsConfig { regularization, alpha, ..AlsConfig::default() })
        })
        .collect();
    Grids { knn, ease: ease_lambdas.to_vec(), als }
}

/// Tunes every model family on the validation split, refits the winners on the test split and evaluates.
fn tune_and_test(
    grids: &Grids,
    valid: (&CsrMatrix, &[(u32, Vec<u32>)]),
    test: (&CsrMatrix, &[(u32, Vec<u32>)]),
    k: usize,
    log: &mut String,
) -> anyhow::Result<(Vec<Row>, ItemKnnConfig, f32, AlsConfig)> {
    let knn: Vec<Factory> = grids
        .knn
        .iter()
        .map(|c| {
            let c = c.clone();
            Box::new(move || Ok(Box::new(ItemKnn::new(c.clone())?) as Box<dyn Recommender>)) as Factory
        })
        .collect();
    let ease: Vec<Factory> = grids
        .ease
        .iter()
        .map(|&lambda| {
            Box::new(move || {
                Ok(Box::new(Ease::new(EaseConfig { lambda, ..EaseConfig::default() })?) as Box<dyn Recommender>)
            }) as Factory
        })
        .collect();
    let als: Vec<Factory> = grids
        .als
        .iter()
        .map(|c| {
            let c = c.clone();
            Box::new(move || Ok(Box::new(Als::new(c.clone())?) as Box<dyn Recommender>)) as Factory
        })
        .collect();
    let best_knn = tune(&knn, valid.0, valid.1, k, log)?;
    let best_ease = tune(&ease, valid.0, valid.1, k, log)?;
    let best_als = tune(&als, valid.0, valid.1, k, log)?;
    let mut rows = Vec::new();
    let finals: Vec<Box<dyn Recommender>> =
        vec![Box::new(Popularity::new()), knn[best_knn]()?, ease[best_ease]()?, als[best_als]()?];
    for model in finals {
        let (model, report, fit_s) = fit_eval(model, test.0, test.1, k)?;
        rows.push(Row { name: model.name(), report, fit_s });
    }
    Ok((rows, grids.knn[best_knn].clone(), grids.ease[best_ease], grids.als[best_als].clone()))
}

/// ALS seeds of the side-by-side comparison: ALS starts from random factors, so one fit per seed on each
/// side and the comparison is between the means.
const PEER_ALS_SEEDS: [u64; 5] = [42, 43, 44, 45, 46];

/// The peer script's results, scored here.
struct Peer {
    /// One (report, fit seconds) per seed of [`PEER_ALS_SEEDS`].
    als: Vec<(EvalReport, f64)>,
    knn: EvalReport,
    knn_fit_s: f64,
    version: String,
}

/// Attune's ALS with `config`, fitted once per seed of [`PEER_ALS_SEEDS`] on the same split as the peer.
fn als_over_seeds(
    config: &AlsConfig,
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
) -> anyhow::Result<Vec<(EvalReport, f64)>> {
    PEER_ALS_SEEDS
        .iter()
        .map(|&seed| {
            let model = Box::new(Als::new(AlsConfig { seed, ..config.clone() })?);
            let (_, report, fit_s) = fit_eval(model, train, targets, k)?;
            Ok((report, fit_s))
        })
        .collect()
}

/// Mean and sample standard deviation.
fn mean_and_sd(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.collect();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, variance.sqrt())
}

fn bench_script() -> PathBuf {
    std::env::var_os("ATTUNE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/python"))
        .join("recs_implicit.py")
}

/// Raw little-endian f32 values (numpy's `fromfile(dtype="<f4")`).
fn write_f32_le(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

fn run_peer(
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
    k: usize,
    als: &AlsConfig,
    knn: &ItemKnnConfig,
) -> anyhow::Result<Peer> {
    let dir = tempfile::tempdir()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.path().join("train.txt"))?);
    writeln!(out, "{} {}", train.n_rows(), train.n_cols())?;
    for (u, i, v) in train.triplets() {
        writeln!(out, "{u} {i} {v}")?;
    }
    out.flush()?;
    let users: String = targets.iter().map(|(u, _)| format!("{u}\n")).collect();
    std::fs::write(dir.path().join("users.txt"), users)?;
    // Both sides start each seed's fit from the same factors, so the seeds pair up and only the solvers differ.
    for seed in PEER_ALS_SEEDS {
        let start = AlsConfig { seed, ..als.clone() }.initial_factors(train.n_rows(), train.n_cols());
        write_f32_le(&dir.path().join(format!("init_users_{seed}.f32")), &start.user_factors)?;
        write_f32_le(&dir.path().join(format!("init_items_{seed}.f32")), &start.item_factors)?;
    }
    let script = bench_script();
    let output = Command::new("python3")
        .arg(&script)
        .arg("--split-dir")
        .arg(dir.path())
        .args(["--factors", &als.factors.to_string(), "--regularization", &als.regularization.to_string()])
        .args(["--alpha", &als.alpha.to_string(), "--iterations", &als.iterations.to_string()])
        .args(["--knn-k", &knn.k.to_string(), "--top-k", &k.to_string(), "--threads", "2"])
        .args(["--seeds", &PEER_ALS_SEEDS.map(|s| s.to_string()).join(",")])
        .output()
        .with_context(|| format!("running python3 {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).context("parsing the peer script's JSON line")?;
    let read_lists = |name: &str| -> anyhow::Result<Vec<Vec<u32>>> {
        let text = std::fs::read_to_string(dir.path().join(name))?;
        text.lines()
            .map(|l| l.split_whitespace().map(|t| t.parse::<i64>().map(|v| v.max(0) as u32)).collect::<Result<_, _>>())
            .collect::<Result<_, _>>()
            .context(name.to_string())
    };
    let num = |key: &str| json.get(key).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let als_fit_s: Vec<f64> = json
        .get("als_fit_seconds")
        .and_then(serde_json::Value::as_array)
        .context("als_fit_seconds is not a list")?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    if als_fit_s.len() != PEER_ALS_SEEDS.len() {
        bail!("the peer script fitted ALS {} times, not once per seed", als_fit_s.len());
    }
    let als = PEER_ALS_SEEDS
        .iter()
        .zip(als_fit_s)
        .map(|(seed, fit_s)| {
            Ok((evaluate_lists(train, targets, &read_lists(&format!("recs_als_{seed}.txt"))?, k)?, fit_s))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Peer {
        als,
        knn: evaluate_lists(train, targets, &read_lists("recs_itemknn.txt")?, k)?,
        knn_fit_s: num("itemknn_fit_seconds"),
        version: json.get("implicit_version").and_then(|v| v.as_str()).unwrap_or("?").to_string(),
    })
}

fn peer_section(
    out: &mut String,
    rows: &[Row],
    ours_als: &[(EvalReport, f64)],
    peer: anyhow::Result<Peer>,
    k: usize,
    knn: &ItemKnnConfig,
) -> anyhow::Result<()> {
    let p = match peer {
        Err(e) => {
            writeln!(out, "peer (implicit): not run: {e:#}")?;
            return Ok(());
        }
        Ok(p) => p,
    };
    let ours_knn = &rows[1];
    let als_name = &rows[3].name;
    writeln!(out, "peer: implicit {} (CPU, 2 threads), same training matrix, lists scored here", p.version)?;
    writeln!(
        out,
        "  {:<40} {:>9} {:>9} {:>9} {:>9}",
        "model",
        &format!("HR@{k}"),
        &format!("NDCG@{k}"),
        &format!("Recall@{k}"),
        "fit s"
    )?;
    let line = |out: &mut String, name: &str, r: &EvalReport, s: f64| {
        writeln!(
            out,
            "  {:<40} {:>9.4} {:>9.4} {:>9.4} {:>9.2}",
            name, r.metrics.hr, r.metrics.ndcg, r.metrics.recall, s
        )
    };
    line(out, &format!("attune {}", ours_knn.name), &ours_knn.report, ours_knn.fit_s)?;
    line(out, &format!("implicit CosineRecommender(K={})", knn.k), &p.knn, p.knn_fit_s)?;
    let seeds = PEER_ALS_SEEDS.map(|s| s.to_string()).join(", ");
    writeln!(out, "  {als_name}, one fit per seed ({seeds}), mean ± sd:")?;
    let summary = |runs: &[(EvalReport, f64)]| {
        (
            mean_and_sd(runs.iter().map(|(r, _)| r.metrics.hr)),
            mean_and_sd(runs.iter().map(|(r, _)| r.metrics.ndcg)),
            mean_and_sd(runs.iter().map(|(r, _)| r.metrics.recall)),
            mean_and_sd(runs.iter().map(|(_, s)| *s)),
        )
    };
    let ours = summary(ours_als);
    let theirs = summary(&p.als);
    for (name, (hr, ndcg, recall, fit)) in [("attune ALS", ours), ("implicit AlternatingLeastSquares (cg)", theirs)] {
        writeln!(
            out,
            "  {name:<40} HR@{k} {:.4} ± {:.4}  NDCG@{k} {:.4} ± {:.4}  Recall@{k} {:.4} ± {:.4}  fit {:.2} ± {:.2} s",
            hr.0, hr.1, ndcg.0, ndcg.1, recall.0, recall.1, fit.0, fit.1
        )?;
    }
    let per_seed = |metric: fn(&EvalReport) -> f64| -> String {
        ours_als
            .iter()
            .zip(&p.als)
            .map(|((a, _), (b, _))| format!("{:+.5}", metric(a) - metric(b)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    writeln!(
        out,
        "  per seed, same initial factors on both sides, attune − implicit: HR@{k} {}; NDCG@{k} {}",
        per_seed(|r| r.metrics.hr),
        per_seed(|r| r.metrics.ndcg)
    )?;
    // Both sides solve the same problem from the same start, so what is left between them is float rounding
    // in the solvers. A mean difference smaller than one test user's whole hit (1/n) is that, not a less
    // accurate model.
    let test_users = ours_als.first().map_or(1, |(r, _)| r.users.max(1));
    let one_user = 1.0 / test_users as f64;
    let at_least_as_accurate = ours.0.0 - theirs.0.0 >= -one_user && ours.1.0 - theirs.1.0 >= -one_user;
    writeln!(
        out,
        "  ALS accuracy, attune − implicit (means): HR@{k} {:+.5}, NDCG@{k} {:+.5}; goal at least as accurate on both \
         (within one test user's hit, 1/{} = {one_user:.5}): {}",
        ours.0.0 - theirs.0.0,
        ours.1.0 - theirs.1.0,
        test_users,
        super::pass(at_least_as_accurate)
    )?;
    writeln!(
        out,
        "  ALS fit time attune/implicit = {:.2} (speed-up {:.2}x; goal >= 1.5x): {}",
        ours.3.0 / theirs.3.0,
        theirs.3.0 / ours.3.0,
        super::pass(theirs.3.0 / ours.3.0 >= 1.5)
    )?;
    Ok(())
}

fn table(out: &mut String, rows: &[Row], k: usize) -> anyhow::Result<()> {
    writeln!(
        out,
        "  {:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "model",
        format!("HR@{k}"),
        format!("NDCG@{k}"),
        format!("Recall@{k}"),
        format!("MRR@{k}"),
        "coverage",
        "mean pop",
        "fit s"
    )?;
    for r in rows {
        let m = &r.report.metrics;
        writeln!(
            out,
            "  {:<40} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.3} {:>9.1} {:>8.2}",
            r.name, m.hr, m.ndcg, m.recall, m.mrr, r.report.coverage, r.report.mean_popularity, r.fit_s
        )?;
    }
    Ok(())
}

/// The data sets `attune eval recs` can run (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecsSection {
    /// Amazon Beauty, leave-one-out (order-blind and sequential models).
    Beauty,
    /// UCI Online Retail I, last invoice held out.
    Retail,
    /// Instacart sample, last order held out.
    Instacart,
    /// YOOCHOOSE sample, next click.
    Sessions,
}

/// Options of `attune eval recs`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RecsEvalArgs {
    /// Run only these sections (comma-separated); all when absent.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<RecsSection>,
}

impl RecsEvalArgs {
    fn wants(&self, section: RecsSection) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}

/// Runs the selected evaluations (and the `implicit` comparison with `peer`) and returns the report.
pub fn run_recs_eval(data_dir: &Path, peer: bool, args: &RecsEvalArgs) -> anyhow::Result<String> {
    let mut out = String::new();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    writeln!(out, "attune eval recs: full ranking over all items, training items excluded; {threads} threads")?;
    if args.wants(RecsSection::Beauty) {
        beauty_section(&mut out, data_dir, peer)?;
    }
    if args.wants(RecsSection::Retail) {
        retail_section(&mut out, data_dir, peer)?;
    }
    if args.wants(RecsSection::Instacart) {
        instacart::instacart_section(&mut out, data_dir)?;
    }
    if args.wants(RecsSection::Sessions) {
        sessions::sessions_section(&mut out, data_dir)?;
    }
    Ok(out)
}

fn beauty_section(out: &mut String, data_dir: &Path, peer: bool) -> anyhow::Result<()> {
    let t = Instant::now();
    let beauty = load_beauty(&data_dir.join("seqrec/Beauty.txt"), None)?;
    let split = leave_one_out(&beauty.sequences, beauty.n_items)?;
    let interactions: usize = beauty.sequences.iter().map(Vec::len).sum();
    writeln!(
        out,
        "\n== Amazon Beauty (S3-Rec preprocessing): {} users, {} items, {} interactions; leave-one-out, K = 10 ==",
        beauty.sequences.len(),
        beauty.n_items,
        interactions
    )?;
    let g = grids(&[true], &[100.0, 300.0, 1000.0], &[0.1, 1.0, 10.0], &[1.0, 5.0, 20.0]);
    let mut log = String::new();
    let (mut rows, knn_cfg, ease_lambda, als_cfg) = tune_and_test(
        &g,
        (&split.valid_train, &split.valid_targets),
        (&split.test_train, &split.test_targets),
        10,
        &mut log,
    )?;
    let sequential = sequential::sequential_rows(&beauty.sequences, &split, &knn_cfg, ease_lambda, 10, &mut log)?;
    out.push_str(&log);
    writeln!(out, "test ({} users):", split.test_targets.len())?;
    let order_blind = rows.len();
    rows.extend(sequential);
    table(out, &rows, 10)?;
    for (name, hr, ndcg) in PUBLISHED_BEAUTY {
        let ndcg = ndcg.map_or("-".to_string(), |v| format!("{v:.4}"));
        writeln!(out, "  {name:<40} {hr:>9.4} {ndcg:>9}")?;
    }
    if peer {
        let ours_als = als_over_seeds(&als_cfg, &split.test_train, &split.test_targets, 10)?;
        let p = run_peer(&split.test_train, &split.test_targets, 10, &als_cfg, &knn_cfg);
        peer_section(out, &rows[..order_blind], &ours_als, p, 10, &knn_cfg)?;
    }
    writeln!(out, "(Beauty section took {:.0}s)", t.elapsed().as_secs_f64())?;
    Ok(())
}

fn retail_section(out: &mut String, data_dir: &Path, peer: bool) -> anyhow::Result<()> {
    let t = Instant::now();
    let retail = load_online_retail(&data_dir.join("online_retail/online_retail_I.csv.gz"), None)?;
    let test = last_basket_split(&retail.purchases, retail.n_users, retail.n_items)?;
    let valid = last_basket_split(&test.train_purchases, retail.n_users, retail.n_items)?;
    writeln!(
        out,
        "\n== Online Retail I: {} customers, {} items, {} purchase lines; last invoice held out (new items only), K = 20 ==",
        retail.n_users,
        retail.n_items,
        retail.purchases.len()
    )?;
    let g = grids(&[true, false], &[10.0, 50.0, 200.0, 1000.0], &[0.1, 1.0, 10.0], &[1.0, 5.0, 20.0]);
    let mut log = String::new();
    let (mut rows, knn_cfg, ease_lambda, als_cfg) =
        tune_and_test(&g, (&valid.train, &valid.targets), (&test.train, &test.targets), 20, &mut log)?;
    out.push_str(&log);
    let blend_row = blend_cf_row(
        (&valid.train, &valid.targets),
        (&test.train, &test.targets),
        &knn_cfg,
        ease_lambda,
        &als_cfg,
        20,
        out,
    )?;
    let sparse_row = sparse_ease_row(ease_lambda, (&valid.train, &valid.targets), (&test.train, &test.targets), out)?;
    writeln!(out, "test ({} customers):", test.targets.len())?;
    let single_models = rows.len();
    rows.push(blend_row);
    rows.push(sparse_row);
    table(out, &rows, 20)?;
    if peer {
        let ours_als = als_over_seeds(&als_cfg, &test.train, &test.targets, 20)?;
        let p = run_peer(&test.train, &test.targets, 20, &als_cfg, &knn_cfg);
        peer_section(out, &rows[..single_models], &ours_als, p, 20, &knn_cfg)?;
    }
    basket::basket_section(out, &retail.purchases, &test.train_purchases, retail.n_items)?;
    writeln!(out, "(Online Retail section took {:.0}s)", t.elapsed().as_secs_f64())?;
    Ok(())
}

/// EASE with the tuned λ, kept sparse as the server keeps it (top weights per item by magnitude): how much of
/// the dense model's accuracy the served form keeps. Validation NDCG@20 for a few kept counts (the server
/// keeps the fewest within 1 % of dense EASE's validation NDCG: 300), then the server's form on the test split.
fn sparse_ease_row(
    lambda: f32,
    valid: (&CsrMatrix, &[(u32, Vec<u32>)]),
    test: (&CsrMatrix, &[(u32, Vec<u32>)]),
    out: &mut String,
) -> anyhow::Result<Row> {
    let served = SparseEaseConfig { lambda, max_items: EASE_MAX_ITEMS, keep: EASE_KEEP };
    for keep in [100, 300, 1000] {
        let config = SparseEaseConfig { keep, ..served.clone() };
        let (model, report, fit_s) = fit_eval(Box::new(SparseEase::new(config)?), valid.0, valid.1, 20)?;
        let m = report.metrics;
        writeln!(out, "  valid {:<40} NDCG@20 {:.4}  HR@20 {:.4}  fit {fit_s:.1}s", model.name(), m.ndcg, m.hr)?;
    }
    let (model, report, fit_s) = fit_eval(Box::new(SparseEase::new(served)?), test.0, test.1, 20)?;
    Ok(Row { name: format!("{} as served", model.name()), report, fit_s })
}

/// Per target user, the model's top-100 candidates, training items excluded.
fn candidate_lists(
    model: &dyn Recommender,
    train: &CsrMatrix,
    targets: &[(u32, Vec<u32>)],
) -> anyhow::Result<Vec<Vec<(u32, f32)>>> {
    let mut scores = vec![0f32; model.n_items()];
    targets
        .iter()
        .map(|(u, _)| {
            let history = train.row(*u as usize);
            model.score_into(*u, history, &mut scores)?;
            Ok(top_n_excluding(&mut scores, history.indices, 100))
        })
        .collect()
}

/// One model's scored candidates per evaluated user.
type CandidateLists = Vec<Vec<(u32, f32)>>;

/// Blends the tuned item-kNN, EASE and ALS: weights by coordinate search on validation NDCG@k, then
/// the test row.
fn blend_cf_row(
    valid: (&CsrMatrix, &[(u32, Vec<u32>)]),
    test: (&CsrMatrix, &[(u32, Vec<u32>)]),
    knn: &ItemKnnConfig,
    ease_lambda: f32,
    als: &AlsConfig,
    k: usize,
    out: &mut String,
) -> anyhow::Result<Row> {
    let sources = |train: &CsrMatrix, targets: &[(u32, Vec<u32>)]| -> anyhow::Result<(Vec<CandidateLists>, f64)> {
        let t = Instant::now();
        let models: Vec<Box<dyn Recommender>> = vec![
            Box::new(ItemKnn::new(knn.clone())?),
            Box::new(Ease::new(EaseConfig { lambda: ease_lambda, ..EaseConfig::default() })?),
            Box::new(Als::new(als.clone())?),
        ];
        let mut lists = Vec::new();
        for mut m in models {
            m.fit(train)?;
            lists.push(candidate_lists(m.as_ref(), train, targets)?);
        }
        Ok((lists, t.elapsed().as_secs_f64()))
    };
    let blended = |lists: &[Vec<Vec<(u32, f32)>>], weights: &[f32]| -> Result<Vec<Vec<u32>>, attune_recs::RecsError> {
        (0..lists[0].len())
            .map(|u| {
                let per_user: Vec<Vec<(u32, f32)>> = lists.iter().map(|l| l[u].clone()).collect();
                Ok(blend(&per_user, weights, k, &[])?.into_iter().map(|b| b.item).collect())
            })
            .collect()
    };
    let (valid_lists, _) = sources(valid.0, valid.1)?;
    let (weights, ndcg) = tune_weights(3, &[0.0, 0.25, 0.5, 1.0, 2.0], 4, |w| {
        Ok(evaluate_lists(valid.0, valid.1, &blended(&valid_lists, w)?, k)?.metrics.ndcg)
    })?;
    writeln!(out, "  valid blend item-kNN/EASE/ALS weights {weights:?}: NDCG@{k} {ndcg:.4}")?;
    let (test_lists, fit_s) = sources(test.0, test.1)?;
    let report = evaluate_lists(test.0, test.1, &blended(&test_lists, &weights)?, k)?;
    Ok(Row { name: format!("blend kNN/EASE/ALS {weights:?}"), report, fit_s })
}
