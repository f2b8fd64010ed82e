//! Per-tenant recommendation serving state kept in memory, and the one code path that turns it into
//! recommendation lists for the API (`POST /v1/recommendations`) and the storefront's slots.
//!
//! One scan of the tenant's event log (`Store::events_after`, in chunks) builds a [`RecsModel`] on a
//! blocking thread: the weighted user × item matrix (`attune-recs` default [`InteractionWeights`]), a cosine
//! item-kNN fitted on it, all-time popularity and trending (half-life 7 days, measured from the tenant's last
//! event time, so a historical data set trends as of its own end). The model is cached in [`AppState`] with
//! the event count it was built from and rebuilt when that count changed and it is older than
//! [`REBUILD_AFTER`], like the analytics in [`crate::insights`].
//!
//! Selection rules every list obeys: no duplicates, never an excluded id (the anchors of `similar`, the
//! shopper's history for `for_you`, the caller's `exclude_item_ids`), only items still in the catalog, and
//! only items in stock when asked. Every item carries an explanation that names the signal it came from and,
//! for personalised signals, the items that caused it.

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, blocking};
use attune_core::{EventKind, Item, ItemId, TenantId, UserId};
use attune_recs::{
    IdMap, InteractionMatrix, InteractionWeights, ItemKnn, ItemKnnConfig, Popularity, Recommender, TimedInteraction,
    Trending, interactions_from_events,
};
use attune_store::{Store, TimelineQuery};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cached model is rebuilt only when the tenant's event count changed and it is at least this old.
pub const REBUILD_AFTER: Duration = Duration::from_secs(60);
/// Events read per store call while scanning the log.
const SCAN_CHUNK: usize = 5_000;
/// Neighbours kept per item.
const KNN_NEIGHBOURS: usize = 50;
/// Cosine shrinkage: similarities resting on few co-occurrences are pulled towards zero.
const KNN_SHRINKAGE: f32 = 10.0;
const TRENDING_HALF_LIFE_MS: f64 = 7.0 * 86_400_000.0;
/// How many of a user's latest events make up their history for `for_you`.
pub const HISTORY_EVENTS: usize = 50;
/// Most candidates looked at (catalog and stock checks) for one list.
const MAX_CANDIDATES: usize = 5_000;

/// What the server serves recommendations from, for one tenant.
pub struct RecsModel {
    /// The tenant's event count when this was built.
    pub events: u64,
    pub built_at: Instant,
    pub items: IdMap,
    pub knn: ItemKnn,
    pub popularity: Popularity,
    pub trending: Trending,
}

/// Where a recommended item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    SimilarItems,
    YourHistory,
    Trending,
    Popular,
}

impl Signal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SimilarItems => "similar_items",
            Self::YourHistory => "your_history",
            Self::Trending => "trending",
            Self::Popular => "popular",
        }
    }
}

/// Why an item is recommended.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub signal: Signal,
    pub because_item_ids: Vec<ItemId>,
    pub text: String,
}

/// One recommended item.
#[derive(Debug, Clone)]
pub struct Recommended {
    pub item: Item,
    pub score: f32,
    pub explanation: Explanation,
}

/// What a list is computed from.
#[derive(Debug, Clone)]
pub enum Basis {
    /// Items similar to all of `anchors` together (one product, or a basket); anchors are never returned.
    Similar(Vec<ItemId>),
    /// Personalised from a user's recent history; without history, trending then popular items.
    ForYou(Option<UserId>),
    /// Trending, then popular items.
    Trending,
}

/// A list request after validation.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub basis: Basis,
    pub count: usize,
    pub exclude: HashSet<ItemId>,
    pub in_stock_only: bool,
}

/// The model of `tenant`, from the cache when it is fresh enough, else rebuilt on a blocking thread.
pub async fn tenant_recs(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<RecsModel>> {
    let cached = state.cached_recs(tenant);
    if let Some(cached) = &cached
        && cached.built_at.elapsed() < REBUILD_AFTER
    {
        return Ok(cached.clone());
    }
    let state = state.clone();
    let tenant = tenant.clone();
    blocking(move || refresh(&state, &tenant)).await
}

/// The cached model of `tenant` without waiting for a build: pages use this so a page view never waits
/// for a model fit. A missing or stale model is (re)built in the background.
pub fn cached_or_warm_up(state: &AppState, tenant: &TenantId) -> Option<Arc<RecsModel>> {
    let cached = state.cached_recs(tenant);
    let fresh = cached.as_ref().is_some_and(|c| c.built_at.elapsed() < REBUILD_AFTER);
    if !fresh {
        let state = state.clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            // A build already running holds the lock; one background build at a time is enough.
            if state.recs_build.try_lock().is_err() {
                return;
            }
            if let Err(error) = refresh(&state, &tenant) {
                tracing::warn!(error = %error.message, "could not build the recommendation model");
            }
        });
    }
    cached
}

/// Rebuilds the model when needed. Runs on a blocking thread.
fn refresh(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<RecsModel>> {
    // One build at a time, so a burst of requests after a change waits for one scan, not many.
    let _building = state.recs_build.lock().map_err(ApiError::internal)?;
    let events = state.store.stats(tenant)?.events;
    if let Some(cached) = state.cached_recs(tenant)
        && (cached.events == events || cached.built_at.elapsed() < REBUILD_AFTER)
    {
        return Ok(cached);
    }
    let built = Arc::new(build(state.store.as_ref(), tenant, events)?);
    state.cache_recs(tenant.clone(), built.clone());
    Ok(built)
}

/// Scans the event log once and fits the models. Runs on a blocking thread.
fn build(store: &dyn Store, tenant: &TenantId, events: u64) -> ApiResult<RecsModel> {
    let weights = InteractionWeights::default();
    let mut after = 0;
    let mut last_millis = i64::MIN;
    let mut interactions = Vec::new();
    loop {
        let chunk = store.events_after(tenant, after, SCAN_CHUNK)?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let full = chunk.len() == SCAN_CHUNK;
        for stored in &chunk {
            last_millis = last_millis.max(stored.event.timestamp.millis());
        }
        interactions.extend(interactions_from_events(chunk.iter().map(|s| &s.event), &weights));
        if !full {
            break;
        }
    }
    let matrix = InteractionMatrix::build(&interactions).map_err(ApiError::internal)?;
    let config = ItemKnnConfig { k: KNN_NEIGHBOURS, shrinkage: KNN_SHRINKAGE, binary: false };
    let mut knn = ItemKnn::new(config).map_err(ApiError::internal)?;
    knn.fit(&matrix.matrix).map_err(ApiError::internal)?;
    let mut popularity = Popularity::new();
    popularity.fit(&matrix.matrix).map_err(ApiError::internal)?;
    let timed: Vec<TimedInteraction> = interactions
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
    let mut trending = Trending::new(TRENDING_HALF_LIFE_MS).map_err(ApiError::internal)?;
    trending.fit_timed(matrix.items.len(), &timed, last_millis.max(0)).map_err(ApiError::internal)?;
    Ok(RecsModel { events, built_at: Instant::now(), items: matrix.items, knn, popularity, trending })
}

/// How a shopper touched an item, strongest first (for the explanation's verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Touch {
    Bought,
    AddedToBasket,
    Wishlisted,
    Viewed,
    Other,
}

impl Touch {
    fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Purchase { .. } => Self::Bought,
            EventKind::AddToCart { .. } => Self::AddedToBasket,
            EventKind::Wishlist { .. } => Self::Wishlisted,
            EventKind::View { .. } | EventKind::Click { .. } => Self::Viewed,
            _ => Self::Other,
        }
    }

    fn text(self, title: &str) -> String {
        match self {
            Self::Bought => format!("Because you bought {title}"),
            Self::AddedToBasket => format!("Because you added {title} to your basket"),
            Self::Wishlisted => format!("Because you saved {title} to your wishlist"),
            Self::Viewed => format!("Because you viewed {title}"),
            Self::Other => format!("Because of your interest in {title}"),
        }
    }
}

/// A user's recent history: positive weight per item, every item touched (to exclude), and how.
struct History {
    weights: Vec<(u32, f32)>,
    touched: HashSet<ItemId>,
    touch: HashMap<String, Touch>,
}

fn user_history(store: &dyn Store, tenant: &TenantId, user: &UserId, model: &RecsModel) -> ApiResult<History> {
    let page = store.user_timeline(tenant, user, &TimelineQuery { before_seq: None, limit: HISTORY_EVENTS })?;
    let events: Vec<_> = page.events.iter().map(|s| &s.event).collect();
    let mut touch: HashMap<String, Touch> = HashMap::new();
    let mut touched = HashSet::new();
    for event in &events {
        let how = Touch::of(&event.kind);
        let ids: Vec<&ItemId> = match &event.kind {
            EventKind::Purchase { lines, .. } | EventKind::Return { lines, .. } => {
                lines.iter().map(|l| &l.item_id).collect()
            }
            other => other.primary_item().into_iter().collect(),
        };
        for id in ids {
            touched.insert(id.clone());
            let slot = touch.entry(id.to_string()).or_insert(how);
            *slot = (*slot).min(how);
        }
    }
    let mut summed: HashMap<u32, f32> = HashMap::new();
    for interaction in interactions_from_events(events.iter().copied(), &InteractionWeights::default()) {
        if let Some(index) = model.items.index(&interaction.item) {
            *summed.entry(index).or_default() += interaction.weight;
        }
    }
    let mut weights: Vec<(u32, f32)> = summed.into_iter().filter(|(_, w)| *w > 0.0).collect();
    weights.sort_by_key(|(i, _)| *i);
    Ok(History { weights, touched, touch })
}

/// Candidate item indices with score and best contributing source item, best first.
type Candidates = Vec<(u32, f32, Option<u32>)>;

/// Σ over `sources` of weight · sim(source, j), remembering the source contributing most to each j.
fn knn_candidates(model: &RecsModel, sources: &[(u32, f32)]) -> Candidates {
    let mut scores: HashMap<u32, (f32, u32, f32)> = HashMap::new();
    for &(source, weight) in sources {
        for (j, sim) in model.knn.neighbours(source).iter() {
            let contribution = weight * sim;
            let entry = scores.entry(j).or_insert((0.0, source, f32::NEG_INFINITY));
            entry.0 += contribution;
            if contribution > entry.2 || (contribution == entry.2 && source < entry.1) {
                entry.1 = source;
                entry.2 = contribution;
            }
        }
    }
    let mut out: Candidates = scores
        .into_iter()
        .filter(|(_, (s, _, _))| *s > 0.0 && s.is_finite())
        .map(|(j, (s, source, _))| (j, s, Some(source)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn ranked(scores: &[f32]) -> Candidates {
    let mut out: Candidates =
        scores.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(i, s)| (i as u32, *s, None)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Picks items from ranked candidates: in the catalog, not excluded, not yet picked, in stock when asked.
struct Picker<'a> {
    store: &'a dyn Store,
    tenant: &'a TenantId,
    model: &'a RecsModel,
    request: &'a ListRequest,
    picked: Vec<Recommended>,
    seen: HashSet<ItemId>,
    looked_at: usize,
}

impl Picker<'_> {
    fn full(&self) -> bool {
        self.picked.len() >= self.request.count
    }

    /// Adds candidates in order until the list is full; `explain` gives each picked item's explanation.
    fn take(&mut self, candidates: &Candidates, mut explain: impl FnMut(Option<u32>) -> Explanation) -> ApiResult<()> {
        let chunk_size = (self.request.count * 2).max(20);
        let mut rest = candidates.as_slice();
        while !self.full() && !rest.is_empty() && self.looked_at < MAX_CANDIDATES {
            let (chunk, tail) = rest.split_at(chunk_size.min(rest.len()));
            rest = tail;
            self.looked_at += chunk.len();
            let ids: Vec<ItemId> = chunk
                .iter()
                .filter_map(|(j, _, _)| self.model.items.id(*j))
                .filter_map(|id| ItemId::parse(id.to_string()).ok())
                .filter(|id| !self.request.exclude.contains(id) && !self.seen.contains(id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut found: HashMap<ItemId, Item> =
                self.store.items(self.tenant, &ids)?.into_iter().map(|item| (item.id.clone(), item)).collect();
            for &(j, score, source) in chunk {
                if self.full() {
                    break;
                }
                let Some(id) = self.model.items.id(j) else { continue };
                let Ok(id) = ItemId::parse(id.to_string()) else { continue };
                let Some(item) = found.remove(&id) else { continue };
                if self.request.in_stock_only && !item.is_in_stock() {
                    continue;
                }
                self.seen.insert(id);
                self.picked.push(Recommended { item, score, explanation: explain(source) });
            }
        }
        Ok(())
    }

    /// Fills the rest of the list with trending, then popular items.
    fn fill_with_fallbacks(&mut self) -> ApiResult<()> {
        let trending = ranked(self.model.trending.scores());
        self.take(&trending, |_| Explanation {
            signal: Signal::Trending,
            because_item_ids: Vec::new(),
            text: "Trending this week".to_string(),
        })?;
        let popular = ranked(self.model.popularity.scores());
        self.take(&popular, |_| Explanation {
            signal: Signal::Popular,
            because_item_ids: Vec::new(),
            text: "Popular with our customers".to_string(),
        })
    }
}

/// Titles of `ids`, for explanation texts (the id where an item is gone from the catalog).
fn titles(store: &dyn Store, tenant: &TenantId, ids: &[ItemId]) -> ApiResult<HashMap<String, String>> {
    let mut out: HashMap<String, String> = ids.iter().map(|id| (id.to_string(), id.to_string())).collect();
    for item in store.items(tenant, ids)? {
        out.insert(item.id.to_string(), item.title.trim().to_string());
    }
    Ok(out)
}

/// Computes one recommendation list. Runs on a blocking thread (store calls).
pub fn recommend(
    store: &dyn Store,
    tenant: &TenantId,
    model: &RecsModel,
    request: &ListRequest,
) -> ApiResult<Vec<Recommended>> {
    let mut request = request.clone();
    let basis = request.basis.clone();
    let (candidates, sources_touch, fallback) = match &basis {
        Basis::Similar(anchors) => {
            request.exclude.extend(anchors.iter().cloned());
            let sources: Vec<(u32, f32)> =
                anchors.iter().filter_map(|a| model.items.index(a.as_str())).map(|i| (i, 1.0)).collect();
            (knn_candidates(model, &sources), None, false)
        }
        Basis::ForYou(user) => {
            let history = match user {
                Some(user) => Some(user_history(store, tenant, user, model)?),
                None => None,
            };
            match history {
                Some(history) => {
                    request.exclude.extend(history.touched.iter().cloned());
                    (knn_candidates(model, &history.weights), Some(history.touch), true)
                }
                None => (Vec::new(), None, true),
            }
        }
        Basis::Trending => (Vec::new(), None, true),
    };
    // Explanation texts need the titles of the source items that were actually used.
    let sources: Vec<ItemId> = {
        let mut seen = HashSet::new();
        candidates
            .iter()
            .take(MAX_CANDIDATES)
            .filter_map(|(_, _, s)| *s)
            .filter(|s| seen.insert(*s))
            .filter_map(|s| model.items.id(s))
            .filter_map(|id| ItemId::parse(id.to_string()).ok())
            .take(200)
            .collect()
    };
    let names = titles(store, tenant, &sources)?;
    let mut picker =
        Picker { store, tenant, model, request: &request, picked: Vec::new(), seen: HashSet::new(), looked_at: 0 };
    picker.take(&candidates, |source| {
        let source_id = source.and_then(|s| model.items.id(s)).unwrap_or_default().to_string();
        let title = names.get(&source_id).cloned().unwrap_or_else(|| source_id.clone());
        let because: Vec<ItemId> = ItemId::parse(source_id.clone()).ok().into_iter().collect();
        match &sources_touch {
            Some(touch) => Explanation {
                signal: Signal::YourHistory,
                because_item_ids: because,
                text: touch.get(&source_id).copied().unwrap_or(Touch::Other).text(&title),
            },
            None => Explanation {
                signal: Signal::SimilarItems,
                because_item_ids: because,
                text: format!("Customers who bought {title} also bought this"),
            },
        }
    })?;
    if fallback && !picker.full() {
        picker.fill_with_fallbacks()?;
    }
    Ok(picker.picked)
}
