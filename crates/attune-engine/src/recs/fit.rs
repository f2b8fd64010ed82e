//! One scan of a tenant's event log and the fit of every serving model from it: the weighted user × item
//! matrix's cosine item-kNN, popularity, trending with a 7-day half-life measured from the tenant's last
//! event, frequently-bought-together pairs, buy-it-again intervals, the session-kNN index, the sequential
//! next-item model, implicit ALS (item side) and sparse EASE over the most popular [`EASE_MAX_ITEMS`] items.
//!
//! Nothing in the fit depends on hash order or thread count: the same scan and seed give the same model.

use super::model::{FittedRecs, ForYouScorer, ModelError};
use super::shopper::{ItemTouch, acted_on, split_sessions, subject_key};
use crate::error::EngineError;
use attune_core::{EventKind, TenantId};
use attune_recs::{
    Als, AlsConfig, BoughtTogether, BoughtTogetherConfig, BuyAgain, BuyAgainConfig, CsrMatrix, IdMap, Interaction,
    InteractionMatrix, InteractionWeights, ItemKnn, ItemKnnConfig, PastSession, Popularity, Recommender, RecsError,
    SequentialConfig, SequentialModel, SessionKnn, SessionKnnConfig, SparseEase, SparseEaseConfig, TimedInteraction,
    Trending, interactions_from_events,
};
use attune_store::{Store, StoreError};
use std::collections::HashMap;

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

/// The events of one tenant, gathered by one scan.
pub struct Scan {
    pub events: u64,
    pub through_seq: i64,
    pub last_millis: i64,
    pub interactions: Vec<Interaction>,
    /// Order baskets with their shopper's key.
    pub baskets: Vec<(String, Vec<String>)>,
    /// Registered customers' purchases: (item, time ms).
    pub purchases: HashMap<String, Vec<(String, i64)>>,
    /// Every shopper's item events.
    pub touches: HashMap<String, Vec<ItemTouch>>,
}

/// Reads `tenant`'s log, up to and including sequence number `through` when given, into a [`Scan`].
pub fn scan(
    store: &dyn Store,
    tenant: &TenantId,
    through: Option<i64>,
    report: &dyn Fn(&str, f64) -> StageResult,
) -> Result<Scan, TrainError> {
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
        let mut chunk = store.events_after(tenant, out.through_seq, SCAN_CHUNK)?;
        let within = |seq: i64| through.is_none_or(|through| seq <= through);
        let more = chunk.len() == SCAN_CHUNK && chunk.last().is_some_and(|last| within(last.seq + 1));
        chunk.retain(|stored| within(stored.seq));
        let Some(last) = chunk.last() else { break };
        out.through_seq = last.seq;
        out.events += chunk.len() as u64;
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
        report("scanning events", 0.4 * (out.events as f64 / total).min(1.0))?;
        if !more {
            break;
        }
    }
    Ok(out)
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

/// Fits every serving model from one scan; `report` hears each part's name as its fit begins.
pub fn fit(scan: &Scan, seed: u64, report: PartReport) -> Result<FittedRecs, TrainError> {
    let (counted, matrix) = fit_counted(scan, report)?;
    report("ALS")?;
    let als = fit_als(&matrix, seed)?;
    report("EASE")?;
    let ease = fit_ease(&matrix)?;
    Ok(assemble(scan, seed, counted, als, ease))
}

/// Fits the count-based parts from one scan; also returns the user × item matrix they were fitted on.
pub fn fit_counted(scan: &Scan, report: PartReport) -> Result<(Counted, CsrMatrix), TrainError> {
    report("interaction matrix")?;
    let matrix = InteractionMatrix::build(&scan.interactions)?;
    let n_items = matrix.items.len();
    report("item-kNN")?;
    let config = ItemKnnConfig { k: KNN_NEIGHBOURS, shrinkage: KNN_SHRINKAGE, binary: false };
    let mut knn = ItemKnn::new(config)?;
    knn.fit(&matrix.matrix)?;
    report("popularity and trending")?;
    let mut popularity = Popularity::new();
    popularity.fit(&matrix.matrix)?;
    let trending = fit_trending(scan, &matrix.items)?;
    let index = |id: &String| matrix.items.index(id);
    report("baskets")?;
    let (bought_together, buy_again) = fit_baskets(scan, n_items, &index)?;
    report("sessions and sequences")?;
    let (sessions, sequential) = fit_sequences(scan, &knn, n_items, &index)?;
    let counted =
        Counted { items: matrix.items, knn, popularity, trending, bought_together, buy_again, sessions, sequential };
    Ok((counted, matrix.matrix))
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
fn fit_trending(scan: &Scan, items: &IdMap) -> Result<Trending, TrainError> {
    let timed: Vec<TimedInteraction> = scan
        .interactions
        .iter()
        .filter(|i| i.weight > 0.0)
        .filter_map(|i| {
            items.index(&i.item).map(|item| TimedInteraction { item, timestamp_ms: i.timestamp_ms, weight: i.weight })
        })
        .collect();
    let mut trending = Trending::new(TRENDING_HALF_LIFE_MS)?;
    trending.fit_timed(items.len(), &timed, scan.last_millis.max(0))?;
    Ok(trending)
}

/// Frequently bought together from the order baskets, and buy-it-again from registered customers' purchases
/// (`None` while no customer has bought any item twice).
fn fit_baskets(
    scan: &Scan,
    n_items: usize,
    index: &dyn Fn(&String) -> Option<u32>,
) -> Result<(BoughtTogether, Option<BuyAgain>), TrainError> {
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
    Ok((bought_together, buy_again))
}

/// The session-kNN index over every shopper's sessions, and the sequential model over their ordered
/// histories with item-kNN as its similarity.
fn fit_sequences(
    scan: &Scan,
    knn: &ItemKnn,
    n_items: usize,
    index: &dyn Fn(&String) -> Option<u32>,
) -> Result<(SessionKnn, SequentialModel), TrainError> {
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
    Ok((sessions, sequential))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::recs::model::{decode, encode};

    pub(crate) fn tiny_scan() -> Scan {
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
