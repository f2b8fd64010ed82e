//! One scan of a tenant's event log and the fit of every serving model from it: the weighted user × item
//! matrix's cosine item-kNN, popularity, trending with a 7-day half-life measured from the tenant's last
//! event, frequently-bought-together pairs, buy-it-again intervals, the session-kNN index, the sequential
//! next-item model, implicit ALS (item side) and sparse EASE over the most popular [`EASE_MAX_ITEMS`] items.
//!
//! Nothing in the fit depends on hash order or thread count: the same scan and seed give the same model.
//!
//! Memory: the scan is the largest thing training holds, so it keeps no strings per event. Shoppers and items
//! are interned once ([`Scan::shoppers`], [`Scan::items`], in the order the weighted signals name them, which
//! is the order the matrix's columns take) and session ids are digested, so each signal and each touch is a
//! 24-byte record; the log is read in chunks of [`SCAN_CHUNK`] and each chunk is dropped once added. The fit
//! maps the scan's indices to the model's (`ScanMatrix`): the identity for a whole scan, a compaction for the
//! holdout's reduced one. `attune bench scale` reports time and memory per part.

use super::model::{FittedRecs, ForYouScorer, ModelError};
use super::shopper::{acted_on, split_sessions, subject_key};
use crate::error::EngineError;
use attune_core::{Event, EventKind, TenantId};
use attune_recs::{
    Als, AlsConfig, BoughtTogether, BoughtTogetherConfig, BuyAgain, BuyAgainConfig, CsrMatrix, IdMap,
    InteractionWeights, ItemKnn, ItemKnnConfig, PastSession, Popularity, Recommender, RecsError, SequentialConfig,
    SequentialModel, SessionKnn, SessionKnnConfig, SparseEase, SparseEaseConfig, TimedInteraction, Trending,
    item_weights,
};
use attune_store::{Store, StoreError};

/// Events read per store call while scanning the log.
pub const SCAN_CHUNK: usize = 5_000;
/// Neighbours kept per item.
const KNN_NEIGHBOURS: usize = 50;
/// Cosine shrinkage: similarities resting on few co-occurrences are pulled towards zero.
const KNN_SHRINKAGE: f32 = 10.0;
/// Items EASE models at most (the most popular; the others get no EASE weights): its dense fit takes
/// items² × 4 bytes (100 MB at 5,000) and time growing with items³ (seconds at 5,000 on two cores).
pub const EASE_MAX_ITEMS: usize = 5_000;
/// EASE weights kept per item for serving: the fewest whose validation NDCG@20 on Online Retail is within 1 %
/// of dense EASE's (`attune eval recs --only retail`: 100 kept 0.0939, 300 kept 0.0959, dense 0.0960).
pub const EASE_KEEP: usize = 300;
const TRENDING_HALF_LIFE_MS: f64 = 7.0 * 86_400_000.0;

/// What can go wrong while training, storing or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("model fit: {0}")]
    Fit(#[from] RecsError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot record the metrics: {0}")]
    Metrics(String),
    /// The engine is stopping: training ended at a checkpoint, nothing was stored.
    #[error("the engine is shutting down")]
    Stopped,
    /// The tenant has too little data for a model whose metrics mean anything; nothing was stored.
    #[error("not enough data to train: {0}")]
    NotEnoughData(String),
}

impl From<TrainError> for EngineError {
    fn from(error: TrainError) -> Self {
        match error {
            TrainError::Store(error) => EngineError::Store(error),
            TrainError::Stopped => EngineError::ShuttingDown,
            error @ TrainError::NotEnoughData(_) => EngineError::NotEnoughData(error.to_string()),
            other => EngineError::internal(other),
        }
    }
}

/// What a progress report answers: `Err(TrainError::Stopped)` ends the training at that stage.
pub type StageResult = Result<(), TrainError>;

/// A touch without a session id.
pub const NO_SESSION: u64 = 0;
/// An index that maps to nothing.
const NONE: u32 = u32::MAX;

/// One weighted (shopper, item) signal, in the scan's indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted {
    pub shopper: u32,
    pub item: u32,
    pub weight: f32,
    pub time_ms: i64,
}

/// One item event of a shopper, in the scan's indices. Its session is only ever compared with the shopper's
/// other sessions, so it is kept as a 64-bit digest of the session id ([`session_digest`]; [`NO_SESSION`]
/// without one) instead of the id: two of one shopper's sessions share a digest with odds of 2⁻⁶³ per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touched {
    pub time_ms: i64,
    pub session: u64,
    pub item: u32,
}

/// A session id's digest: never [`NO_SESSION`], the same for the same id within a process.
pub fn session_digest(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish() | 1
}

/// The events of one tenant, gathered by one scan. Every shopper and item id is interned once and session ids
/// are digested, so a signal and a touch take 24 bytes each whatever the ids' lengths, and the fit works on
/// dense indices throughout.
#[derive(Debug)]
pub struct Scan {
    /// Events read into the scan: those inside the training window.
    pub events: u64,
    /// The tenant's training window in days, when set (`TenantSettings::training_window_days`): events older
    /// than that before the newest event are left out.
    pub window_days: Option<u32>,
    pub through_seq: i64,
    pub last_millis: i64,
    /// Shopper keys (the user id, else `anon:` + the anonymous id), in first-seen order.
    pub shoppers: IdMap,
    /// Item ids, in the order the weighted signals first name them.
    pub items: IdMap,
    /// Weighted signals, in log order.
    pub interactions: Vec<Weighted>,
    /// Order baskets: (shopper, items).
    pub baskets: Vec<(u32, Vec<u32>)>,
    /// Registered customers' purchases: (shopper, item, time ms), in log order.
    pub purchases: Vec<(u32, u32, i64)>,
    /// Per shopper index, their item events in log order.
    pub touches: Vec<Vec<Touched>>,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            events: 0,
            window_days: None,
            through_seq: 0,
            last_millis: i64::MIN,
            shoppers: IdMap::new(),
            items: IdMap::new(),
            interactions: Vec::new(),
            baskets: Vec::new(),
            purchases: Vec::new(),
            touches: Vec::new(),
        }
    }
}

impl Scan {
    /// The index of shopper `key`, interned when new.
    fn shopper(&mut self, key: &str) -> u32 {
        let index = self.shoppers.intern(key);
        if self.touches.len() <= index as usize {
            self.touches.resize_with(index as usize + 1, Vec::new);
        }
        index
    }

    /// Adds a weighted signal.
    pub fn add_interaction(&mut self, shopper: &str, item: &str, weight: f32, time_ms: i64) {
        let shopper = self.shopper(shopper);
        let item = self.items.intern(item);
        self.interactions.push(Weighted { shopper, item, weight, time_ms });
    }

    /// Adds an item event of `shopper`.
    pub fn add_touch(&mut self, shopper: &str, time_ms: i64, session: Option<&str>, item: &str) {
        let shopper = self.shopper(shopper);
        let session = session.map_or(NO_SESSION, session_digest);
        let item = self.items.intern(item);
        self.touches[shopper as usize].push(Touched { time_ms, session, item });
    }

    /// Adds an order basket of `shopper`; `registered` customers' lines are purchases too.
    pub fn add_basket(&mut self, shopper: &str, items: &[&str], time_ms: i64, registered: bool) {
        let shopper = self.shopper(shopper);
        let items: Vec<u32> = items.iter().map(|id| self.items.intern(id)).collect();
        if registered {
            self.purchases.extend(items.iter().map(|&item| (shopper, item, time_ms)));
        }
        self.baskets.push((shopper, items));
    }

    /// Every shopper's rank in the order of their keys: what makes a fit independent of the log's order of
    /// first appearance where it iterates over shoppers.
    pub fn key_ranks(&self) -> Vec<u32> {
        let mut by_key: Vec<u32> = (0..self.shoppers.len() as u32).collect();
        by_key.sort_by(|a, b| self.shoppers.id(*a).cmp(&self.shoppers.id(*b)));
        let mut ranks = vec![0; by_key.len()];
        for (rank, shopper) in by_key.into_iter().enumerate() {
            ranks[shopper as usize] = rank as u32;
        }
        ranks
    }

    /// Shoppers with an item event.
    pub fn active_shoppers(&self) -> usize {
        self.touches.iter().filter(|touches| !touches.is_empty()).count()
    }
}

/// Reads `tenant`'s log, up to and including sequence number `through` when given, into a [`Scan`]; with a
/// training window, only the events of its last days before the newest event.
pub fn scan(
    store: &dyn Store,
    tenant: &TenantId,
    through: Option<i64>,
    report: &dyn Fn(&str, f64) -> StageResult,
) -> Result<Scan, TrainError> {
    let stats = store.stats(tenant)?;
    let (total, mut read) = (stats.events.max(1) as f64, 0u64);
    let window_days = store.tenant_settings(tenant)?.training_window_days;
    let from_ms = window_start(window_days, stats.last_event_at.map(|at| at.millis()));
    let weights = InteractionWeights::default();
    let mut out = Scan { window_days, ..Scan::default() };
    loop {
        let mut chunk = store.events_after(tenant, out.through_seq, SCAN_CHUNK)?;
        let within = |seq: i64| through.is_none_or(|through| seq <= through);
        let more = chunk.len() == SCAN_CHUNK && chunk.last().is_some_and(|last| within(last.seq + 1));
        chunk.retain(|stored| within(stored.seq));
        let Some(last) = chunk.last() else { break };
        out.through_seq = last.seq;
        read += chunk.len() as u64;
        for stored in chunk.iter().filter(|stored| stored.event.timestamp.millis() >= from_ms) {
            out.events += 1;
            add_event(&mut out, &stored.event, &weights);
        }
        report("scanning events", 0.4 * (read as f64 / total).min(1.0))?;
        if !more {
            break;
        }
    }
    Ok(out)
}

/// The earliest event time a training reads: `days` before the newest event (`newest_ms`), else any.
fn window_start(days: Option<u32>, newest_ms: Option<i64>) -> i64 {
    match (days, newest_ms) {
        (Some(days), Some(newest)) => newest.saturating_sub(i64::from(days) * 86_400_000),
        _ => i64::MIN,
    }
}

/// Adds one event to the scan: its weighted signals first, so shoppers and items are interned in the order
/// the signals name them.
fn add_event(out: &mut Scan, event: &Event, weights: &InteractionWeights) {
    let time = event.timestamp.millis();
    out.last_millis = out.last_millis.max(time);
    let Some(key) = subject_key(event) else { return };
    for (item, weight) in item_weights(&event.kind, weights) {
        out.add_interaction(&key, item, weight, time);
    }
    if let EventKind::Purchase { lines, .. } = &event.kind {
        let items: Vec<&str> = lines.iter().map(|l| l.item_id.as_str()).collect();
        out.add_basket(&key, &items, time, event.subject.user_id.is_some());
    }
    let session = event.session_id.as_ref().map(|id| id.as_str());
    for item in acted_on(&event.kind) {
        out.add_touch(&key, time, session, item.as_str());
    }
}

/// The parts of a model that are sums over shoppers (counts, co-occurrences and their similarities), fitted
/// from one scan: a shopper's data leaves them exactly when they are fitted again without it.
pub struct Counted {
    pub items: IdMap,
    pub knn: ItemKnn,
    pub popularity: Popularity,
    pub trending: Trending,
    pub bought_together: BoughtTogether,
    pub buy_again: Option<BuyAgain>,
    pub sessions: SessionKnn,
    pub sequential: SequentialModel,
}

/// What a fit calls as each of its parts begins, naming the part: `Err(TrainError::Stopped)` ends the fit there.
pub type PartReport<'a> = &'a dyn Fn(&str) -> StageResult;

/// Which parts a fit makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitFor {
    /// Every part: a model that serves.
    Serving,
    /// Only what the holdout ranks with (item-kNN, popularity, the sequential model, ALS, EASE); the basket
    /// models and the session index are left empty.
    Holdout,
}

/// Fits every serving model from one scan; `report` hears each part's name as its fit begins.
pub fn fit(scan: &Scan, seed: u64, report: PartReport) -> Result<FittedRecs, TrainError> {
    fit_parts(scan, seed, FitFor::Serving, report)
}

/// [`fit`], making only the parts `purpose` needs.
pub fn fit_parts(scan: &Scan, seed: u64, purpose: FitFor, report: PartReport) -> Result<FittedRecs, TrainError> {
    let (counted, matrix) = fit_counted_for(scan, purpose, report)?;
    report("ALS")?;
    let als = fit_als(&matrix, seed)?;
    report("EASE")?;
    let ease = fit_ease(&matrix)?;
    Ok(assemble(scan, seed, counted, als, ease))
}

/// Fits the count-based parts from one scan; also returns the user × item matrix they were fitted on.
pub fn fit_counted(scan: &Scan, report: PartReport) -> Result<(Counted, CsrMatrix), TrainError> {
    fit_counted_for(scan, FitFor::Serving, report)
}

fn fit_counted_for(scan: &Scan, purpose: FitFor, report: PartReport) -> Result<(Counted, CsrMatrix), TrainError> {
    report("interaction matrix")?;
    let ScanMatrix { items, of_scan, matrix } = ScanMatrix::build(scan)?;
    let n_items = items.len();
    report("item-kNN")?;
    let config = ItemKnnConfig { k: KNN_NEIGHBOURS, shrinkage: KNN_SHRINKAGE, binary: false };
    let mut knn = ItemKnn::new(config)?;
    knn.fit(&matrix)?;
    report("popularity and trending")?;
    let mut popularity = Popularity::new();
    popularity.fit(&matrix)?;
    let trending = fit_trending(scan, &of_scan, n_items)?;
    let index = |item: u32| Some(of_scan[item as usize]).filter(|&i| i != NONE);
    report("baskets")?;
    let ranks = scan.key_ranks();
    let (bought_together, buy_again) = match purpose {
        FitFor::Serving => fit_baskets(scan, &ranks, n_items, &index)?,
        FitFor::Holdout => (BoughtTogether::fit(&[], n_items, BoughtTogetherConfig::default())?, None),
    };
    report("sessions and sequences")?;
    let (sessions, sequential) = fit_sequences(scan, &ranks, &knn, n_items, purpose, &index)?;
    let counted = Counted { items, knn, popularity, trending, bought_together, buy_again, sessions, sequential };
    Ok((counted, matrix))
}

/// The user × item matrix of a scan: its rows are the shoppers and its columns the items in the order the
/// signals first name them (the scan's own order, unless the holdout took signals out), with the sums of the
/// weights; `of_scan` maps the scan's item indices to the matrix's ([`NONE`]: no signal left).
struct ScanMatrix {
    items: IdMap,
    of_scan: Vec<u32>,
    matrix: CsrMatrix,
}

impl ScanMatrix {
    fn build(scan: &Scan) -> Result<Self, TrainError> {
        let mut row_of = vec![NONE; scan.shoppers.len()];
        let mut of_scan = vec![NONE; scan.items.len()];
        let (mut rows, mut items) = (0u32, IdMap::new());
        let mut triplets = Vec::with_capacity(scan.interactions.len());
        for signal in &scan.interactions {
            let row = &mut row_of[signal.shopper as usize];
            if *row == NONE {
                (*row, rows) = (rows, rows + 1);
            }
            let column = &mut of_scan[signal.item as usize];
            if *column == NONE {
                *column = items.intern(scan.items.id(signal.item).unwrap_or_default());
            }
            triplets.push((*row, *column, signal.weight));
        }
        let matrix = CsrMatrix::from_triplets(rows as usize, items.len(), &triplets)?;
        Ok(Self { items, of_scan, matrix })
    }
}

/// A whole model from its count-based and factor parts; `for_you` serves item-kNN until a choice is made.
pub fn assemble(scan: &Scan, seed: u64, counted: Counted, als: Option<Als>, ease: Option<SparseEase>) -> FittedRecs {
    let Counted { items, knn, popularity, trending, bought_together, buy_again, sessions, sequential } = counted;
    FittedRecs {
        seed,
        events: scan.events,
        events_through_seq: scan.through_seq,
        items,
        knn,
        popularity,
        trending,
        bought_together,
        buy_again,
        sessions,
        sequential,
        als,
        ease,
        for_you_scorer: ForYouScorer::ItemKnn,
    }
}

/// Implicit ALS (default settings, `seed`) on the user × item matrix (whose entries are the positive sums of
/// the weights: `CsrMatrix::from_triplets` drops the rest), in the same item indices; kept without its user
/// factors. `None` without entries.
fn fit_als(matrix: &CsrMatrix, seed: u64) -> Result<Option<Als>, TrainError> {
    if matrix.nnz() == 0 {
        return Ok(None);
    }
    let mut als = Als::new(AlsConfig { seed, ..AlsConfig::default() })?;
    als.fit(matrix)?;
    Ok(Some(als.without_users()))
}

/// Sparse EASE (default λ) on the user × item matrix over its [`EASE_MAX_ITEMS`] most popular items, keeping
/// [`EASE_KEEP`] weights per item. `None` without entries.
fn fit_ease(matrix: &CsrMatrix) -> Result<Option<SparseEase>, TrainError> {
    if matrix.nnz() == 0 {
        return Ok(None);
    }
    let config = SparseEaseConfig { max_items: EASE_MAX_ITEMS, keep: EASE_KEEP, ..SparseEaseConfig::default() };
    let mut ease = SparseEase::new(config)?;
    ease.fit(matrix)?;
    Ok(Some(ease))
}

/// Time-decayed activity with a 7-day half-life, measured from the tenant's last event.
fn fit_trending(scan: &Scan, of_scan: &[u32], n_items: usize) -> Result<Trending, TrainError> {
    let timed: Vec<TimedInteraction> = scan
        .interactions
        .iter()
        .filter(|signal| signal.weight > 0.0 && of_scan[signal.item as usize] != NONE)
        .map(|s| TimedInteraction { item: of_scan[s.item as usize], timestamp_ms: s.time_ms, weight: s.weight })
        .collect();
    let mut trending = Trending::new(TRENDING_HALF_LIFE_MS)?;
    trending.fit_timed(n_items, &timed, scan.last_millis.max(0))?;
    Ok(trending)
}

/// Frequently bought together from the order baskets, and buy-it-again from registered customers' purchases
/// (`None` while no customer has bought any item twice); customers in the order of their keys (`ranks`).
fn fit_baskets(
    scan: &Scan,
    ranks: &[u32],
    n_items: usize,
    index: &dyn Fn(u32) -> Option<u32>,
) -> Result<(BoughtTogether, Option<BuyAgain>), TrainError> {
    let baskets: Vec<Vec<u32>> =
        scan.baskets.iter().map(|(_, basket)| basket.iter().filter_map(|&item| index(item)).collect()).collect();
    let bought_together = BoughtTogether::fit(&baskets, n_items, BoughtTogetherConfig::default())?;
    drop(baskets);
    let mut purchases: Vec<(u32, u32, i64)> = scan.purchases.clone();
    purchases.sort_by_key(|&(shopper, _, _)| ranks[shopper as usize]);
    let histories: Vec<Vec<(u32, i64)>> = purchases
        .chunk_by(|a, b| a.0 == b.0)
        .map(|customer| customer.iter().filter_map(|&(_, item, time)| Some((index(item)?, time))).collect())
        .collect();
    let buy_again = match BuyAgain::fit(&histories, n_items, BuyAgainConfig::default()) {
        Ok(model) => Some(model),
        Err(RecsError::EmptyData(_)) => None,
        Err(error) => return Err(error.into()),
    };
    Ok((bought_together, buy_again))
}

/// The session-kNN index over every shopper's sessions (empty for the holdout), and the sequential model over
/// their ordered histories with item-kNN as its similarity; shoppers in the order of their keys (`ranks`).
fn fit_sequences(
    scan: &Scan,
    ranks: &[u32],
    knn: &ItemKnn,
    n_items: usize,
    purpose: FitFor,
    index: &dyn Fn(u32) -> Option<u32>,
) -> Result<(SessionKnn, SequentialModel), TrainError> {
    let mut by_key: Vec<u32> = (0..scan.touches.len() as u32).collect();
    by_key.sort_by_key(|&shopper| ranks[shopper as usize]);
    let mut past: Vec<PastSession> = Vec::new();
    let mut sequences: Vec<Vec<u32>> = Vec::new();
    let mut split = Vec::new();
    for shopper in by_key {
        let touches = &scan.touches[shopper as usize];
        if touches.is_empty() {
            continue;
        }
        let mut ordered: Vec<(i64, Option<u64>, u32)> =
            touches.iter().map(|t| (t.time_ms, Some(t.session).filter(|&s| s != NO_SESSION), t.item)).collect();
        ordered.sort_by_key(|(time, _, _)| *time);
        let mut sequence: Vec<u32> = ordered.iter().filter_map(|&(_, _, item)| index(item)).collect();
        sequence.dedup();
        if sequence.len() >= 2 {
            sequences.push(sequence);
        }
        if purpose == FitFor::Holdout {
            continue;
        }
        split_sessions(ordered, &mut split);
        past.extend(split.drain(..).filter_map(|(time_ms, items)| {
            let items: Vec<u32> = items.into_iter().filter_map(index).collect();
            (items.len() >= 2).then_some(PastSession { time_ms, items })
        }));
    }
    let sessions = SessionKnn::fit(&past, n_items, SessionKnnConfig::default())?;
    drop(past);
    let sequential = SequentialModel::fit(&sequences, knn.similarities().clone(), SequentialConfig::default())?;
    Ok((sessions, sequential))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::recs::model::{decode, encode};

    pub(crate) fn tiny_scan() -> Scan {
        let mut scan = Scan { events: 4, through_seq: 4, last_millis: 3, ..Scan::default() };
        for (user, item, at) in [("u", "a", 0), ("u", "b", 1), ("v", "a", 2), ("v", "b", 3)] {
            scan.add_interaction(user, item, 5.0, at);
        }
        scan.add_basket("u", &["a", "b"], 0, false);
        scan.add_basket("v", &["a", "b"], 2, false);
        // The registered customer u (shopper 0) bought a (item 0) at 0 and b at 1.
        scan.purchases.extend([(0, 0, 0), (0, 1, 1)]);
        for (user, item, at) in [("u", "a", 0), ("u", "b", 1), ("v", "a", 2), ("v", "b", 3)] {
            scan.add_touch(user, at, None, item);
        }
        scan
    }

    #[test]
    fn a_training_window_reads_only_its_last_days_before_the_newest_event() {
        use attune_core::{EventInput, Timestamp};
        use attune_store::{SqliteOptions, SqliteStore};
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path().join("window.sqlite3"), SqliteOptions::default()).unwrap();
        let tenant = TenantId::parse_slug("shop").unwrap();
        crate::keys::create_tenant(&store, &tenant, "Shop").unwrap();
        // The newest event is 200 days old: the window counts back from it, not from today.
        let day = 86_400_000;
        let newest = Timestamp::now().millis() - 200 * day;
        let events: Vec<Event> = [("old", 45), ("edge", 30), ("recent", 29), ("newest", 0)]
            .into_iter()
            .map(|(item, days_before)| {
                let input: EventInput = serde_json::from_value(serde_json::json!({"type": "view",
                    "user_id": "u", "item_id": item, "timestamp": newest - days_before * day}))
                .unwrap();
                Event::parse(input, Timestamp::now()).unwrap()
            })
            .collect();
        store.append_events(&tenant, &events).unwrap();
        let items = |scan: &Scan| -> Vec<String> {
            (0..scan.items.len() as u32).map(|i| scan.items.id(i).unwrap().to_string()).collect()
        };
        let all = scan(&store, &tenant, None, &|_, _| Ok(())).unwrap();
        assert_eq!((all.events, all.window_days), (4, None));
        let settings = attune_core::TenantSettings { training_window_days: Some(30), ..Default::default() };
        store.put_tenant_settings(&tenant, &settings).unwrap();
        let windowed = scan(&store, &tenant, None, &|_, _| Ok(())).unwrap();
        assert_eq!((windowed.events, windowed.window_days), (3, Some(30)));
        assert_eq!(items(&windowed), ["edge", "recent", "newest"]);
        assert_eq!(windowed.through_seq, all.through_seq, "the whole log was read");
    }

    #[test]
    fn payloads_round_trip_and_damage_is_refused() {
        let scan = tiny_scan();
        let payload = encode(&fit(&scan, 1, &|_| Ok(())).unwrap()).unwrap();
        assert_eq!(payload, encode(&fit(&scan, 1, &|_| Ok(())).unwrap()).unwrap(), "same scan and seed, same bytes");
        let model = decode(&payload).unwrap();
        assert_eq!((model.items.len(), model.events_through_seq, model.seed), (2, 4, 1));
        assert_eq!(encode(&model).unwrap(), payload, "decoding and encoding again changes nothing");
        let mut damaged = payload.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(matches!(decode(&damaged), Err(ModelError::Corrupt(_))));
        assert!(matches!(decode(b"ATRECS00 not a model"), Err(ModelError::Corrupt(_))));
        assert!(matches!(decode(&payload[..20]), Err(ModelError::Corrupt(_))));
    }
}
