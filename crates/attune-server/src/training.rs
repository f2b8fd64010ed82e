//! Recommendation model training and the lifecycle of the served model.
//!
//! [`train`] is the one code path that makes a model: one scan of the tenant's event log
//! (`Store::events_after`, in chunks), [`fit`] of every serving model (the weighted user × item matrix, cosine
//! item-kNN, popularity, trending, frequently-bought-together pairs, buy-it-again intervals, the session-kNN
//! index and the sequential next-item model), offline metrics on a leave-one-out holdout fitted by the same
//! [`fit`], and a versioned snapshot in the store (`Store::save_model_snapshot`, kind [`MODEL_KIND`]) whose
//! payload is the fitted model in postcard with a SHA-256 digest. The `train_recs` task (on demand or from the
//! scheduler), `attune train`, and a tenant's very first request when nothing is stored all call it.
//!
//! Every model that serves comes out of [`decode`] — a freshly trained one too — and is put in front of
//! requests by a pointer swap ([`AppState::cache_recs`]): a request holds the `Arc` it started with, so a
//! swap never fails or stalls one. At start-up (and on the first request of a tenant with no model in
//! memory) the newest stored snapshot is loaded; when the log has moved past its `events_through_seq`, it
//! serves at once and a `train_recs` task is started. `POST /v1/models/recs/{version}/activate` swaps in
//! any kept version (a roll-back lasts until the next training or restart).
//!
//! Determinism: nothing in the fit depends on hash order or thread count, the holdout sample is drawn with
//! the configured seed, and ids serialize as ordered lists, so the same events and seed give the same
//! payload bytes.

use crate::error::{ApiError, ApiResult};
use crate::recommendations::{ItemTouch, RecsModel, acted_on, split_sessions, subject_key};
use crate::state::AppState;
use crate::tasks::{TaskKind, TaskProgress, TaskTrigger, start_task};
use attune_core::{EventKind, TenantId};
use attune_recs::evaluation::rank_metrics;
use attune_recs::{
    BoughtTogether, BoughtTogetherConfig, BuyAgain, BuyAgainConfig, CsrMatrix, IdMap, Interaction, InteractionMatrix,
    InteractionWeights, ItemKnn, ItemKnnConfig, PastSession, Popularity, Recommender, RecsError, SequentialConfig,
    SequentialModel, SessionKnn, SessionKnnConfig, TimedInteraction, Trending, interactions_from_events,
    top_n_excluding,
};
use attune_store::{ModelSnapshotInfo, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The `kind` of recommendation snapshots in the store.
pub const MODEL_KIND: &str = "recs";
/// The seed of the holdout sample when none is configured.
pub const DEFAULT_SEED: u64 = 42;
/// Shoppers evaluated at most, so metrics stay quick on large tenants.
pub const DEFAULT_EVAL_USERS: usize = 2_000;
/// Cut-off of the offline metrics.
pub const EVAL_K: usize = 10;
/// The first bytes of every payload; the number is the payload format's version.
const MAGIC: &[u8; 8] = b"ATRECS01";
/// Events read per store call while scanning the log.
const SCAN_CHUNK: usize = 5_000;
/// Neighbours kept per item.
const KNN_NEIGHBOURS: usize = 50;
/// Cosine shrinkage: similarities resting on few co-occurrences are pulled towards zero.
const KNN_SHRINKAGE: f32 = 10.0;
const TRENDING_HALF_LIFE_MS: f64 = 7.0 * 86_400_000.0;

/// How a model is trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Seed of everything random in training (the holdout sample).
    pub seed: u64,
    /// Shoppers evaluated at most.
    pub eval_users: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { seed: DEFAULT_SEED, eval_users: DEFAULT_EVAL_USERS }
    }
}

/// What can go wrong while training, storing or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("model fit: {0}")]
    Fit(#[from] RecsError),
    #[error("cannot encode the model: {0}")]
    Encode(postcard::Error),
    #[error("the stored model is unreadable: {0}")]
    Corrupt(String),
}

impl From<TrainError> for ApiError {
    fn from(error: TrainError) -> Self {
        ApiError::internal(error)
    }
}

/// Everything a served model is made of: what a snapshot's payload holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct FittedRecs {
    /// The seed it was trained with.
    pub seed: u64,
    /// Events scanned.
    pub events: u64,
    /// The last event sequence number scanned (0 without events).
    pub events_through_seq: i64,
    pub items: IdMap,
    pub knn: ItemKnn,
    pub popularity: Popularity,
    pub trending: Trending,
    pub bought_together: BoughtTogether,
    /// `None` while no customer has bought any item twice.
    pub buy_again: Option<BuyAgain>,
    pub sessions: SessionKnn,
    /// Next item after a shopper's ordered history: item-kNN similarity plus directed transitions.
    pub sequential: SequentialModel,
}

/// HR, NDCG and catalog coverage of one scorer at [`EVAL_K`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScorerMetrics {
    pub hr: f64,
    pub ndcg: f64,
    pub coverage: f64,
}

/// The offline metrics stored with a snapshot (its `metrics` JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainMetrics {
    pub seed: u64,
    pub events: u64,
    pub items: usize,
    pub shoppers: usize,
    /// How the metrics were measured.
    pub protocol: String,
    pub k: usize,
    /// Shoppers evaluated.
    pub eval_users: usize,
    /// `for_you`: item-kNN over the shopper's weighted history.
    pub for_you: ScorerMetrics,
    /// `next`: the sequential model over the shopper's ordered history.
    pub next: ScorerMetrics,
    /// Baseline: the most popular items.
    pub popular: ScorerMetrics,
    pub fit_ms: u64,
    pub eval_ms: u64,
}

/// A trained and stored model.
pub struct Trained {
    pub info: ModelSnapshotInfo,
    pub metrics: TrainMetrics,
    /// The model as decoded from the stored payload.
    pub model: FittedRecs,
}

/// The events of one tenant, gathered by one scan.
struct Scan {
    events: u64,
    through_seq: i64,
    last_millis: i64,
    interactions: Vec<Interaction>,
    /// Order baskets with their shopper's key.
    baskets: Vec<(String, Vec<String>)>,
    /// Registered customers' purchases: (item, time ms).
    purchases: HashMap<String, Vec<(String, i64)>>,
    /// Every shopper's item events.
    touches: HashMap<String, Vec<ItemTouch>>,
}

fn scan(store: &dyn Store, tenant: &TenantId, report: &dyn Fn(&str, f64)) -> Result<Scan, TrainError> {
    let total = store.stats(tenant)?.events.max(1) as f64;
    let weights = InteractionWeights::default();
    let mut out = Scan {
        events: 0,
        through_seq: 0,
        last_millis: i64::MIN,
        interactions: Vec::new(),
        baskets: Vec::new(),
        purchases: HashMap::new(),
        touches: HashMap::new(),
    };
    loop {
        let chunk = store.events_after(tenant, out.through_seq, SCAN_CHUNK)?;
        let Some(last) = chunk.last() else { break };
        out.through_seq = last.seq;
        out.events += chunk.len() as u64;
        let full = chunk.len() == SCAN_CHUNK;
        for stored in &chunk {
            let event = &stored.event;
            let time = event.timestamp.millis();
            out.last_millis = out.last_millis.max(time);
            let Some(key) = subject_key(event) else { continue };
            if let EventKind::Purchase { lines, .. } = &event.kind {
                out.baskets.push((key.clone(), lines.iter().map(|l| l.item_id.to_string()).collect()));
                if event.subject.user_id.is_some() {
                    let history = out.purchases.entry(key.clone()).or_default();
                    history.extend(lines.iter().map(|l| (l.item_id.to_string(), time)));
                }
            }
            let items = acted_on(&event.kind);
            if !items.is_empty() {
                let session = event.session_id.as_ref().map(ToString::to_string);
                let shopper = out.touches.entry(key).or_default();
                shopper.extend(items.into_iter().map(|item| (time, session.clone(), item.to_string())));
            }
        }
        out.interactions.extend(interactions_from_events(chunk.iter().map(|s| &s.event), &weights));
        report("scanning events", 0.4 * (out.events as f64 / total).min(1.0));
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Fits every serving model from one scan.
fn fit(scan: &Scan, seed: u64) -> Result<FittedRecs, TrainError> {
    let matrix = InteractionMatrix::build(&scan.interactions)?;
    let n_items = matrix.items.len();
    let config = ItemKnnConfig { k: KNN_NEIGHBOURS, shrinkage: KNN_SHRINKAGE, binary: false };
    let mut knn = ItemKnn::new(config)?;
    knn.fit(&matrix.matrix)?;
    let mut popularity = Popularity::new();
    popularity.fit(&matrix.matrix)?;
    let timed: Vec<TimedInteraction> = scan
        .interactions
        .iter()
        .filter(|i| i.weight > 0.0)
        .filter_map(|i| {
            matrix.items.index(&i.item).map(|item| TimedInteraction {
                item,
                timestamp_ms: i.timestamp_ms,
                weight: i.weight,
            })
        })
        .collect();
    let mut trending = Trending::new(TRENDING_HALF_LIFE_MS)?;
    trending.fit_timed(n_items, &timed, scan.last_millis.max(0))?;

    let index = |id: &String| matrix.items.index(id);
    let baskets: Vec<Vec<u32>> = scan.baskets.iter().map(|(_, b)| b.iter().filter_map(index).collect()).collect();
    let bought_together = BoughtTogether::fit(&baskets, n_items, BoughtTogetherConfig::default())?;
    let mut customers: Vec<(&String, &Vec<(String, i64)>)> = scan.purchases.iter().collect();
    customers.sort_by_key(|(key, _)| *key);
    let histories: Vec<Vec<(u32, i64)>> = customers
        .iter()
        .map(|(_, history)| history.iter().filter_map(|(item, time)| Some((index(item)?, *time))).collect())
        .collect();
    let buy_again = match BuyAgain::fit(&histories, n_items, BuyAgainConfig::default()) {
        Ok(model) => Some(model),
        Err(RecsError::EmptyData(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let mut shoppers: Vec<(&String, &Vec<ItemTouch>)> = scan.touches.iter().collect();
    shoppers.sort_by_key(|(key, _)| *key);
    let mut split = Vec::new();
    let mut sequences: Vec<Vec<u32>> = Vec::new();
    for (_, shopper) in shoppers {
        let mut shopper = shopper.clone();
        shopper.sort_by_key(|(time, _, _)| *time);
        let mut sequence: Vec<u32> = shopper.iter().filter_map(|(_, _, item)| index(item)).collect();
        sequence.dedup();
        if sequence.len() >= 2 {
            sequences.push(sequence);
        }
        split_sessions(shopper, &mut split);
    }
    let past: Vec<PastSession> = split
        .into_iter()
        .map(|(time_ms, items)| PastSession { time_ms, items: items.iter().filter_map(index).collect() })
        .filter(|s| s.items.len() >= 2)
        .collect();
    let sessions = SessionKnn::fit(&past, n_items, SessionKnnConfig::default())?;
    let similarity: Vec<(u32, u32, f32)> =
        (0..n_items as u32).flat_map(|i| knn.neighbours(i).iter().map(move |(j, sim)| (i, j, sim))).collect();
    let similarity = CsrMatrix::from_triplets(n_items, n_items, &similarity)?;
    let sequential = SequentialModel::fit(&sequences, similarity, SequentialConfig::default())?;
    Ok(FittedRecs {
        seed,
        events: scan.events,
        events_through_seq: scan.through_seq,
        items: matrix.items,
        knn,
        popularity,
        trending,
        bought_together,
        buy_again,
        sessions,
        sequential,
    })
}

/// SplitMix64: a small, portable seeded generator for the holdout sample.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Leave-one-out: for up to `max_users` shoppers (drawn with `seed`) with at least two distinct items, the
/// item of their latest item event is held out — every event of theirs on it is removed from the scan.
/// Returns the reduced scan and the held-out (shopper, item) pairs, by shopper key.
fn holdout(mut scan: Scan, seed: u64, max_users: usize) -> (Scan, Vec<(String, String)>) {
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
    let mut random = SplitMix64(seed);
    for i in (1..eligible.len()).rev() {
        let j = (random.next() % (i as u64 + 1)) as usize;
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

/// Scores each held-out item against the model fitted without it, as `for_you`, `next` and popularity rank.
fn evaluate(
    reduced: &Scan,
    model: &FittedRecs,
    held: &[(String, String)],
) -> (ScorerMetrics, ScorerMetrics, ScorerMetrics) {
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
    (for_you.finish(n_items), next.finish(n_items), popular.finish(n_items))
}

/// Encodes a fitted model as a snapshot payload: magic, SHA-256 of the body, postcard body.
pub fn encode(model: &FittedRecs) -> Result<Vec<u8>, TrainError> {
    let body = postcard::to_stdvec(model).map_err(TrainError::Encode)?;
    Ok(crate::snapshot_payload::seal(MAGIC, &body))
}

/// Decodes and checks a snapshot payload: format, digest, structure and that every part has the same items.
pub fn decode(payload: &[u8]) -> Result<FittedRecs, TrainError> {
    let corrupt = |reason: &str| TrainError::Corrupt(reason.to_string());
    let body = crate::snapshot_payload::unseal(MAGIC, payload).map_err(corrupt)?;
    let model: FittedRecs = postcard::from_bytes(body).map_err(|e| TrainError::Corrupt(e.to_string()))?;
    let n = model.items.len();
    let sizes = [
        model.knn.n_items(),
        model.popularity.scores().len(),
        model.trending.scores().len(),
        model.bought_together.n_items(),
        model.buy_again.as_ref().map_or(n, BuyAgain::n_items),
        model.sessions.n_items(),
        model.sequential.n_items(),
    ];
    if sizes.iter().any(|&size| size != n) {
        return Err(corrupt("its parts disagree on the number of items"));
    }
    Ok(model)
}

/// Scans, fits, evaluates and stores a new version of `tenant`'s model. `report(stage, fraction)` follows
/// the progress. Runs on a blocking thread (or in the CLI).
pub fn train(
    store: &dyn Store,
    tenant: &TenantId,
    options: &TrainOptions,
    report: &dyn Fn(&str, f64),
) -> Result<Trained, TrainError> {
    let scan = scan(store, tenant, report)?;
    report("fitting models", 0.4);
    let clock = Instant::now();
    let fitted = fit(&scan, options.seed)?;
    let fit_ms = clock.elapsed().as_millis() as u64;
    // Only the bytes are kept while the holdout is fitted: peak memory is one scan and one model.
    let payload = encode(&fitted)?;
    let (through_seq, items) = (fitted.events_through_seq, fitted.items.len());
    drop(fitted);
    report("evaluating on a holdout", 0.6);
    let clock = Instant::now();
    let (events, shoppers) = (scan.events, scan.touches.len());
    let (reduced, held) = holdout(scan, options.seed, options.eval_users);
    let held_out_model = fit(&reduced, options.seed)?;
    let (for_you, next, popular) = evaluate(&reduced, &held_out_model, &held);
    drop((reduced, held_out_model));
    let metrics = TrainMetrics {
        seed: options.seed,
        events,
        items,
        shoppers,
        protocol: format!(
            "leave-one-out: the latest item of up to {} shoppers held out, all items ranked, seen items excluded",
            options.eval_users
        ),
        k: EVAL_K,
        eval_users: held.len(),
        for_you,
        next,
        popular,
        fit_ms,
        eval_ms: clock.elapsed().as_millis() as u64,
    };
    report("saving the snapshot", 0.9);
    let metrics_json = serde_json::to_string(&metrics).map_err(|e| TrainError::Corrupt(e.to_string()))?;
    let info = store.save_model_snapshot(tenant, MODEL_KIND, through_seq, &metrics_json, &payload)?;
    let model = decode(&payload)?;
    tracing::info!(tenant = %tenant, version = info.version, events = metrics.events, items = metrics.items,
        hr = metrics.for_you.hr, ndcg = metrics.for_you.ndcg, "recommendation model trained");
    Ok(Trained { info, metrics, model })
}

/// A one-line account of a training, for the task list and the CLI.
pub fn summary(info: &ModelSnapshotInfo, m: &TrainMetrics) -> String {
    format!(
        "version {}: {} events, {} items; for you HR@{k} {:.4} NDCG@{k} {:.4}, next HR@{k} {:.4} NDCG@{k} {:.4}, \
         popular HR@{k} {:.4} ({} shoppers held out)",
        info.version,
        m.events,
        m.items,
        m.for_you.hr,
        m.for_you.ndcg,
        m.next.hr,
        m.next.ndcg,
        m.popular.hr,
        m.eval_users,
        k = m.k,
    )
}

/// Puts a decoded version of `tenant`'s model in front of requests.
fn install(state: &AppState, tenant: &TenantId, version: i64, fitted: FittedRecs) -> Arc<RecsModel> {
    let loaded_at = attune_core::Timestamp::now();
    let next_check_ms = match state.options.train_interval {
        Some(interval) => loaded_at.millis().saturating_add(interval.as_millis().min(i64::MAX as u128) as i64),
        None => i64::MAX,
    };
    let model = Arc::new(RecsModel::new(version, loaded_at, next_check_ms, fitted));
    state.cache_recs(tenant.clone(), model.clone());
    tracing::info!(tenant = %tenant, version, events_through_seq = model.events_through_seq, "recommendation model swapped in");
    model
}

/// Whether an event changes what training fits: impressions (the server's own record of what it served) and
/// searches do not, so serving traffic alone never makes a model stale.
pub fn trains_on(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Impression { .. } | EventKind::Search { .. })
}

/// Whether `tenant`'s log holds an event that training uses beyond what `model` has seen. Scans from where the
/// previous check of this model stopped, in chunks, and stops at the first such event; impressions and
/// searches are skipped once and never read again for the same model.
fn is_behind(store: &dyn Store, tenant: &TenantId, model: &RecsModel) -> Result<bool, TrainError> {
    let mut through = model.checked_through.load(Ordering::Acquire).max(model.events_through_seq);
    loop {
        let chunk = store.events_after(tenant, through, SCAN_CHUNK)?;
        if chunk.iter().any(|stored| trains_on(&stored.event.kind)) {
            return Ok(true);
        }
        let Some(last) = chunk.last() else { break };
        through = last.seq;
        model.checked_through.fetch_max(through, Ordering::AcqRel);
        if chunk.len() < SCAN_CHUNK {
            break;
        }
    }
    Ok(false)
}

/// Called on the request path with the model it serves: once the model is older than the training interval
/// (and then at most once per interval), a background check looks for new events that training uses and
/// starts a `train_recs` task when there are some. The request never waits for either.
pub(crate) fn retrain_if_stale(state: &AppState, tenant: &TenantId, model: &Arc<RecsModel>) {
    let due = model.next_check_ms.load(Ordering::Relaxed);
    let now = attune_core::Timestamp::now().millis();
    let Some(interval) = state.options.train_interval else { return };
    let next = now.saturating_add(interval.as_millis().min(i64::MAX as u128) as i64);
    if now < due || model.next_check_ms.compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    let (state, tenant, model) = (state.clone(), tenant.clone(), model.clone());
    tokio::task::spawn_blocking(move || match is_behind(state.store.as_ref(), &tenant, &model) {
        Ok(true) => {
            tracing::info!(tenant = %tenant, version = model.version, "served model is stale; training in the background");
            start_task(&state, &tenant, TaskKind::TrainRecs, TaskTrigger::Schedule);
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(tenant = %tenant, error = %error, "cannot check whether the model is stale"),
    });
}

/// Trains a new version and swaps it in; returns the summary. Runs on a blocking thread.
fn train_and_install(state: &AppState, tenant: &TenantId, report: &dyn Fn(&str, f64)) -> ApiResult<String> {
    let Trained { info, metrics, model } = train(state.store.as_ref(), tenant, &state.options.training, report)?;
    install(state, tenant, info.version, model);
    Ok(summary(&info, &metrics))
}

/// The `train_recs` task. A scheduled run skips a tenant whose served model has seen every event.
pub(crate) fn run_train_task(state: &AppState, tenant: &TenantId, progress: &TaskProgress<'_>) -> ApiResult<String> {
    let lock = state.recs_lock(tenant);
    let _training = lock.lock().map_err(ApiError::internal)?;
    if progress.trigger() == TaskTrigger::Schedule
        && let Some(current) = state.cached_recs(tenant)
        && !is_behind(state.store.as_ref(), tenant, &current)?
    {
        return Ok(format!("version {} has seen every event training uses; nothing to train", current.version));
    }
    train_and_install(state, tenant, &|stage, fraction| progress.report(stage, fraction))
}

/// Loads the newest readable stored version of `tenant`'s model and swaps it in; `None` when none is stored.
/// When the event log has moved past it, a `train_recs` task is started. Runs on a blocking thread.
fn load_newest(state: &AppState, tenant: &TenantId) -> ApiResult<Option<Arc<RecsModel>>> {
    let store = state.store.as_ref();
    for info in store.model_snapshots(tenant, MODEL_KIND)? {
        let Some(payload) = store.model_snapshot_payload(tenant, MODEL_KIND, info.version)? else { continue };
        match decode(&payload) {
            Ok(fitted) => {
                let model = install(state, tenant, info.version, fitted);
                if is_behind(store, tenant, &model)? {
                    tracing::info!(tenant = %tenant, version = info.version,
                        events_through_seq = info.events_through_seq, "stored model is behind the events; retraining");
                    start_task(state, tenant, TaskKind::TrainRecs, TaskTrigger::Schedule);
                }
                return Ok(Some(model));
            }
            Err(error) => {
                tracing::warn!(tenant = %tenant, version = info.version, error = %error, "skipping an unreadable model snapshot")
            }
        }
    }
    Ok(None)
}

/// The model `tenant` is served from: the one in memory, else the newest stored version, else (the very first
/// time) a freshly trained one. Runs on a blocking thread; only a tenant without any model ever waits here.
pub(crate) fn ensure_model(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<RecsModel>> {
    if let Some(model) = state.cached_recs(tenant) {
        return Ok(model);
    }
    let lock = state.recs_lock(tenant);
    let _loading = lock.lock().map_err(ApiError::internal)?;
    if let Some(model) = state.cached_recs(tenant) {
        return Ok(model);
    }
    if let Some(model) = load_newest(state, tenant)? {
        return Ok(model);
    }
    tracing::info!(tenant = %tenant, "no stored recommendation model; training the first one");
    train_and_install(state, tenant, &|_, _| {})?;
    state.cached_recs(tenant).ok_or_else(|| ApiError::internal("the trained model was not installed"))
}

/// Swaps in stored version `version` of `tenant`'s model (a roll-back, or forward again).
pub(crate) fn activate(state: &AppState, tenant: &TenantId, version: i64) -> ApiResult<Arc<RecsModel>> {
    let payload = state
        .store
        .model_snapshot_payload(tenant, MODEL_KIND, version)?
        .ok_or_else(|| ApiError::not_found(format!("model version {version}")))?;
    let fitted = decode(&payload)?;
    tracing::info!(tenant = %tenant, version, "activating a stored recommendation model");
    Ok(install(state, tenant, version, fitted))
}

/// At start-up: for every tenant with events, loads its newest stored model (retraining in the background when
/// it is behind) or, when none is stored, starts a `train_recs` task. Requests meanwhile find the model
/// through [`ensure_model`].
pub(crate) async fn load_at_startup(state: AppState) {
    let store = state.store.clone();
    let tenants = crate::state::blocking(move || {
        let mut with_events = Vec::new();
        for tenant in store.tenants()? {
            if store.stats(&tenant.id)?.events > 0 {
                with_events.push(tenant.id);
            }
        }
        Ok(with_events)
    })
    .await;
    let tenants = match tenants {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(error = %error.message, "cannot list tenants to load their recommendation models");
            return;
        }
    };
    for tenant in tenants {
        let loading = state.clone();
        let result = crate::state::blocking(move || {
            let lock = loading.recs_lock(&tenant);
            let _loading = lock.lock().map_err(ApiError::internal)?;
            if loading.cached_recs(&tenant).is_none() && load_newest(&loading, &tenant)?.is_none() {
                start_task(&loading, &tenant, TaskKind::TrainRecs, TaskTrigger::Schedule);
            }
            Ok(())
        })
        .await;
        if let Err(error) = result {
            tracing::warn!(error = %error.message, "cannot load a stored recommendation model");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_scan() -> Scan {
        let interaction = |user: &str, item: &str, at: i64| Interaction {
            user: user.to_string(),
            item: item.to_string(),
            weight: 5.0,
            timestamp_ms: at,
        };
        let touch = |at: i64, item: &str| (at, None, item.to_string());
        Scan {
            events: 4,
            through_seq: 4,
            last_millis: 3,
            interactions: vec![
                interaction("u", "a", 0),
                interaction("u", "b", 1),
                interaction("v", "a", 2),
                interaction("v", "b", 3),
            ],
            baskets: vec![("u".into(), vec!["a".into(), "b".into()]), ("v".into(), vec!["a".into(), "b".into()])],
            purchases: HashMap::from([("u".to_string(), vec![("a".to_string(), 0), ("b".to_string(), 1)])]),
            touches: HashMap::from([
                ("u".to_string(), vec![touch(0, "a"), touch(1, "b")]),
                ("v".to_string(), vec![touch(2, "a"), touch(3, "b")]),
            ]),
        }
    }

    #[test]
    fn payloads_round_trip_and_damage_is_refused() {
        let scan = tiny_scan();
        let payload = encode(&fit(&scan, 1).unwrap()).unwrap();
        assert_eq!(payload, encode(&fit(&scan, 1).unwrap()).unwrap(), "same scan and seed, same bytes");
        let model = decode(&payload).unwrap();
        assert_eq!((model.items.len(), model.events_through_seq, model.seed), (2, 4, 1));
        assert_eq!(encode(&model).unwrap(), payload, "decoding and encoding again changes nothing");
        let mut damaged = payload.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(matches!(decode(&damaged), Err(TrainError::Corrupt(_))));
        assert!(matches!(decode(b"ATRECS00 not a model"), Err(TrainError::Corrupt(_))));
        assert!(matches!(decode(&payload[..20]), Err(TrainError::Corrupt(_))));
    }

    #[test]
    fn the_holdout_takes_each_sampled_shoppers_latest_item_out_of_everything() {
        let (reduced, held) = holdout(tiny_scan(), 1, 10);
        assert_eq!(held, vec![("u".to_string(), "b".to_string()), ("v".to_string(), "b".to_string())]);
        assert!(reduced.interactions.iter().all(|i| i.item == "a"));
        assert!(reduced.baskets.iter().all(|(_, items)| items == &vec!["a".to_string()]));
        assert_eq!(reduced.purchases["u"], vec![("a".to_string(), 0)]);
        let (_, one) = holdout(tiny_scan(), 1, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(holdout(tiny_scan(), 1, 1).1, one, "the sample depends on the seed only");
    }
}
