//! Search serving: a per-tenant [`SearchEngine`] (lexical BM25 with typo tolerance, plus semantic retrieval when
//! the sentence embedder is loaded and every item has a stored embedding), personalised from the shopper's
//! recent events, with autocomplete from past queries and catalog titles.
//!
//! * The engine is built from the in-memory catalog copy ([`crate::catalog`]) and the stored item embeddings on
//!   a blocking thread, cached per tenant, and rebuilt when the catalog generation changes (an item write
//!   through this server) or the `embed_items` task finished (its epoch).
//! * The embedder is loaded once at start-up ([`load_embedder`]); without it search is lexical-only and every
//!   response says so in its warnings. A missing or broken model directory is one warning in the log, never a
//!   crash.
//! * The `embed_items` task ([`run_embed_task`]) embeds items without a stored embedding or whose text changed
//!   (content hash), in batches of [`EMBED_BATCH`].
//! * Query vectors are kept in a small least-recently-used cache ([`QueryVectors`]), so a repeated query (the
//!   next page, a facet refinement, a popular query) is not embedded again.
//! * Each search with a known shopper is logged as a `search` event (query, the page's result ids, the session
//!   and the `search_id` in its context, which a later `click` can carry to attribute itself) through the batched
//!   writer ([`crate::impressions`]); queries are also counted in memory for autocomplete.

use crate::catalog::{CATALOG_TTL, CatalogSnapshot};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::stored_tuning::{self, TuningKey};
use crate::tasks::TaskProgress;
use attune_core::input::ScalarValue;
use attune_core::{
    AnonymousId, Channel, Event, EventId, EventKind, FilterExpr, Item, ItemId, Money, SessionId, Subject, TenantId,
    Timestamp, UserId,
};
use attune_search::{
    AttributeKind, Autocomplete, CatalogTuning, Facets, Filters, ParsedQuery, Retrieval, SearchConfig, SearchEngine,
    SearchMode, SearchRequest, ShopperProfile, SortOrder, SuggestionSource, TuningConfig, Understood, description_text,
};
use attune_store::{ItemEmbedding, ShopperRef, Store};
use attune_text::SentenceEmbedder;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use utoipa::ToSchema;

/// Items embedded per batch by the `embed_items` task.
pub const EMBED_BATCH: usize = 64;
/// Latest events scanned for past search queries when a tenant's query counts are first needed.
const QUERY_SCAN: usize = 20_000;
/// Most distinct past queries kept per tenant for autocomplete.
const MAX_QUERIES: usize = 5_000;
/// A shopper's latest events that make up their search profile.
const SHOPPER_EVENTS: usize = 200;
/// Latest events of the tenant scanned for the events of a session without a known shopper.
const ANONYMOUS_SCAN: usize = 5_000;
/// Events this recent (before the newest one) are the shopper's current session.
const SESSION_WINDOW_MS: i64 = 30 * 60 * 1000;
/// Most session items used for session similarity.
const SESSION_ITEMS: usize = 10;
/// Query vectors kept in the cache.
pub const QUERY_VECTORS_KEPT: usize = 1_024;

/// A least-recently-used cache of query vectors, keyed by the embedded text.
pub struct QueryVectors {
    capacity: usize,
    /// Text → (vector, last use).
    entries: HashMap<String, (Arc<Vec<f32>>, u64)>,
    /// Last use → text, oldest first.
    order: BTreeMap<u64, String>,
    clock: u64,
}

impl QueryVectors {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: HashMap::new(), order: BTreeMap::new(), clock: 0 }
    }

    /// The cached vector of `text`, marked as just used.
    pub fn get(&mut self, text: &str) -> Option<Arc<Vec<f32>>> {
        self.clock += 1;
        let (vector, used) = self.entries.get_mut(text)?;
        self.order.remove(used);
        *used = self.clock;
        self.order.insert(self.clock, text.to_string());
        Some(vector.clone())
    }

    /// Keeps `vector` for `text`, dropping the least recently used entry when full.
    pub fn insert(&mut self, text: &str, vector: Arc<Vec<f32>>) {
        self.clock += 1;
        if let Some((_, used)) = self.entries.remove(text) {
            self.order.remove(&used);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        self.entries.insert(text.to_string(), (vector, self.clock));
        self.order.insert(self.clock, text.to_string());
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

/// Where the sentence embedder stands.
#[derive(Clone)]
pub enum EmbedderState {
    /// Start-up has not finished loading it yet.
    Loading,
    /// Loaded; `model` names the stored embeddings.
    Ready { model: String, embedder: Arc<SentenceEmbedder> },
    /// No model (not configured, missing or unreadable): search is lexical-only.
    Unavailable(String),
}

/// One tenant's search index.
pub struct TenantIndex {
    pub engine: SearchEngine,
    /// (catalog generation, embedding epoch) the index was built at.
    key: (u64, u64),
    /// Items with a current embedding, of all items.
    pub embedded: usize,
    /// Whether the item vectors were tuned to the catalog ([`CatalogTuning`]).
    pub catalog_tuned: bool,
    titles: Autocomplete,
    /// (items, newest `updated_at`) of the catalog copy it was built from: a copy reloaded after a write by
    /// another process (`attune import`, another replica) with other figures makes the index stale.
    fingerprint: (usize, i64),
    /// When and against which catalog copy the index was last found current.
    checked: Mutex<(Instant, Arc<CatalogSnapshot>)>,
}

impl TenantIndex {
    fn checked_recently(&self) -> bool {
        self.checked.lock().expect("search index poisoned").0.elapsed() < CATALOG_TTL
    }

    /// Whether the index still describes `snapshot` (remembering it when so).
    fn matches(&self, snapshot: &Arc<CatalogSnapshot>) -> bool {
        let mut checked = self.checked.lock().expect("search index poisoned");
        if Arc::ptr_eq(&checked.1, snapshot) || fingerprint(snapshot) == self.fingerprint {
            *checked = (Instant::now(), snapshot.clone());
            return true;
        }
        false
    }
}

fn fingerprint(snapshot: &CatalogSnapshot) -> (usize, i64) {
    snapshot.fingerprint()
}

/// The search state of one server.
pub struct SearchService {
    embedder: RwLock<EmbedderState>,
    indexes: Mutex<HashMap<TenantId, Arc<TenantIndex>>>,
    /// Per tenant, held while its index is built, so concurrent requests share one build.
    builds: Mutex<HashMap<TenantId, Arc<Mutex<()>>>>,
    /// Bumped per tenant when an `embed_items` task finishes.
    epochs: Mutex<HashMap<TenantId, u64>>,
    /// Past queries (normalised) with their counts, per tenant.
    queries: Mutex<HashMap<TenantId, HashMap<String, u64>>>,
    /// Vectors of recent queries, for the loaded embedder.
    query_vectors: Mutex<QueryVectors>,
    /// Vectors of item descriptions that catalog tuning fits toward, for the loaded embedder (a catalog has a
    /// few thousand distinct ones at most: gender, colour and category leaf).
    description_vectors: Mutex<HashMap<String, Arc<Vec<f32>>>>,
    /// Per tenant, the last catalog tuning with what it was fitted on: an index rebuilt after a write that
    /// changed no described item's text (a price, the stock) maps with it again instead of refitting.
    tunings: Mutex<HashMap<TenantId, (TuningKey, Arc<CatalogTuning>)>>,
}

impl Default for SearchService {
    fn default() -> Self {
        Self {
            embedder: RwLock::new(EmbedderState::Loading),
            indexes: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            epochs: Mutex::new(HashMap::new()),
            queries: Mutex::new(HashMap::new()),
            query_vectors: Mutex::new(QueryVectors::new(QUERY_VECTORS_KEPT)),
            description_vectors: Mutex::new(HashMap::new()),
            tunings: Mutex::new(HashMap::new()),
        }
    }
}

impl SearchService {
    pub fn embedder(&self) -> EmbedderState {
        self.embedder.read().expect("embedder state poisoned").clone()
    }

    pub fn set_embedder(&self, state: EmbedderState) {
        *self.embedder.write().expect("embedder state poisoned") = state;
        self.query_vectors.lock().expect("query vectors poisoned").clear();
        self.description_vectors.lock().expect("description vectors poisoned").clear();
        self.tunings.lock().expect("tunings poisoned").clear();
    }

    /// The vector of a query text: cached, or embedded (blocking) and cached.
    fn query_vector(&self, embedder: &SentenceEmbedder, text: &str) -> ApiResult<Arc<Vec<f32>>> {
        if let Some(vector) = self.query_vectors.lock().expect("query vectors poisoned").get(text) {
            return Ok(vector);
        }
        let vector = Arc::new(embedder.embed_one(text).map_err(ApiError::internal)?);
        self.query_vectors.lock().expect("query vectors poisoned").insert(text, vector.clone());
        Ok(vector)
    }

    fn epoch(&self, tenant: &TenantId) -> u64 {
        self.epochs.lock().expect("search epochs poisoned").get(tenant).copied().unwrap_or(0)
    }

    /// Makes the next search of `tenant` rebuild its index (new embeddings are stored).
    pub fn bump_epoch(&self, tenant: &TenantId) {
        *self.epochs.lock().expect("search epochs poisoned").entry(tenant.clone()).or_default() += 1;
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantIndex>> {
        self.indexes.lock().expect("search cache poisoned").get(tenant).cloned()
    }

    /// Counts a served query for autocomplete (after the tenant's past queries were loaded).
    fn count_query(&self, tenant: &TenantId, query: &str) {
        let key = normalise_query(query);
        if key.is_empty() {
            return;
        }
        let mut queries = self.queries.lock().expect("query counts poisoned");
        let counts = queries.entry(tenant.clone()).or_default();
        if counts.len() >= MAX_QUERIES && !counts.contains_key(&key) {
            return;
        }
        *counts.entry(key).or_default() += 1;
    }

    /// Loads the tenant's past queries from the store the first time they are needed. Blocking.
    fn ensure_queries(&self, store: &dyn Store, tenant: &TenantId) -> ApiResult<()> {
        if self.queries.lock().expect("query counts poisoned").contains_key(tenant) {
            return Ok(());
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        for stored in store.recent_events(tenant, QUERY_SCAN)? {
            if let EventKind::Search { query, .. } = &stored.event.kind {
                let searched = match stored.event.context.get(CORRECTED_QUERY_KEY) {
                    Some(ScalarValue::Text(corrected)) => corrected,
                    _ => query,
                };
                let key = normalise_query(searched);
                if !key.is_empty() && (counts.len() < MAX_QUERIES || counts.contains_key(&key)) {
                    *counts.entry(key).or_default() += 1;
                }
            }
        }
        self.queries.lock().expect("query counts poisoned").entry(tenant.clone()).or_insert(counts);
        Ok(())
    }
}

/// The `search` event's context key holding the query as searched when spelling correction changed it (the
/// event's `query` is what the shopper typed).
const CORRECTED_QUERY_KEY: &str = "corrected_query";

fn normalise_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The model name embeddings are stored under: the model directory's name.
fn model_name(dir: &Path) -> String {
    dir.file_name().and_then(|n| n.to_str()).unwrap_or("sentence-model").to_string()
}

/// Loads the sentence embedder from `dir` (blocking). Failure or absence is logged once as a warning and
/// leaves search lexical-only.
pub fn load_embedder(state: &AppState, dir: Option<&Path>) {
    let outcome = match dir {
        None => EmbedderState::Unavailable(
            "no model directory is configured (set --model-dir or ATTUNE_MODEL_DIR)".to_string(),
        ),
        Some(dir) => match SentenceEmbedder::load(dir) {
            Ok(embedder) => {
                tracing::info!(model_dir = %dir.display(), dimension = embedder.dimension(), "sentence embedder loaded");
                EmbedderState::Ready { model: model_name(dir), embedder: Arc::new(embedder) }
            }
            Err(error) => {
                EmbedderState::Unavailable(format!("the model in `{}` cannot be loaded: {error}", dir.display()))
            }
        },
    };
    if let EmbedderState::Unavailable(reason) = &outcome {
        tracing::warn!(reason = %reason, "semantic search is off; search runs lexical-only");
    }
    state.search.set_embedder(outcome);
}

/// The text of an item that is embedded: title, brand and category path.
pub fn embedding_text(item: &Item) -> String {
    let mut text = item.title.clone();
    if let Some(brand) = &item.brand {
        text.push_str(" | ");
        text.push_str(brand);
    }
    if !item.category_path.is_empty() {
        text.push_str(" | ");
        text.push_str(&item.category_path.join(" > "));
    }
    text
}

/// FNV-1a 64's starting value.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One FNV-1a 64 step: `value` (a byte, or a whole hash when combining hashes) folded into `hash`.
fn fnv_step(hash: u64, value: u64) -> u64 {
    (hash ^ value).wrapping_mul(0x0100_0000_01b3)
}

/// FNV-1a 64 of the embedded text: stable across builds and platforms.
pub fn content_hash(text: &str) -> u64 {
    text.bytes().fold(FNV_OFFSET, |hash, byte| fnv_step(hash, u64::from(byte)))
}

/// The `embed_items` task: embeds the tenant's items that have no current embedding and stores them.
pub fn run_embed_task(state: &AppState, tenant: &TenantId, progress: &TaskProgress<'_>) -> ApiResult<String> {
    let (model, embedder) = match state.search.embedder() {
        EmbedderState::Ready { model, embedder } => (model, embedder),
        EmbedderState::Loading => {
            return Err(ApiError::new(crate::error::ErrorKind::Conflict, "the embedding model is still loading"));
        }
        EmbedderState::Unavailable(reason) => {
            return Err(ApiError::new(crate::error::ErrorKind::Conflict, format!("no embedding model: {reason}")));
        }
    };
    let mut embedded = 0;
    let mut items_total;
    // Items written while a round runs are embedded by another round.
    loop {
        let generation = state.catalog.generation(tenant);
        progress.report("reading items", 0.0);
        let items = state.store.all_items(tenant)?;
        items_total = items.len();
        let stored: HashMap<ItemId, u64> =
            state.store.item_embeddings(tenant, &model)?.into_iter().map(|e| (e.item_id, e.content_hash)).collect();
        let todo: Vec<(ItemId, String, u64)> = items
            .iter()
            .filter_map(|item| {
                let text = embedding_text(item);
                let hash = content_hash(&text);
                (stored.get(&item.id) != Some(&hash)).then(|| (item.id.clone(), text, hash))
            })
            .collect();
        let total = todo.len();
        for (done, batch) in todo.chunks(EMBED_BATCH).enumerate() {
            progress.report("embedding items", (done * EMBED_BATCH) as f64 / total.max(1) as f64);
            let texts: Vec<&str> = batch.iter().map(|(_, text, _)| text.as_str()).collect();
            let vectors = embedder.embed(&texts).map_err(ApiError::internal)?;
            let embeddings: Vec<ItemEmbedding> = batch
                .iter()
                .zip(vectors)
                .map(|((id, _, hash), vector)| ItemEmbedding { item_id: id.clone(), content_hash: *hash, vector })
                .collect();
            state.store.upsert_item_embeddings(tenant, &model, &embeddings)?;
        }
        embedded += total;
        if state.catalog.generation(tenant) == generation {
            break;
        }
    }
    state.search.bump_epoch(tenant);
    Ok(format!("embedded {embedded} items with {model}; the catalog has {items_total}"))
}

/// The tenant's index, built (on a blocking thread) when missing or stale.
pub async fn tenant_index(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantIndex>> {
    let key = (state.catalog.generation(tenant), state.search.epoch(tenant));
    if let Some(index) = state.search.cached(tenant).filter(|index| index.key == key && index.checked_recently()) {
        return Ok(index);
    }
    let state = state.clone();
    let tenant = tenant.clone();
    crate::state::blocking(move || build_index(&state, &tenant)).await
}

/// Where the map that tuned an index build came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TuningSource {
    /// Kept in memory from an earlier build of this process.
    Memory,
    /// Read from the store (fitted by an earlier process or another replica).
    Store,
    /// Fitted now (and stored).
    Fitted,
}

impl TuningSource {
    fn name(self) -> &'static str {
        match self {
            TuningSource::Memory => "memory",
            TuningSource::Store => "store",
            TuningSource::Fitted => "fitted",
        }
    }
}

/// Tunes `vectors` (one per item, embedded by `model` from texts with `content_hashes`) to the catalog in place
/// when at least `config.min_examples` items have a description (a category path): fitted on those, applied to
/// every item. The descriptions' vectors are embedded once per model and kept; the fitted map is kept in memory
/// and in the store, and reused while the described items' texts, the model and the settings are unchanged.
fn tune_to_catalog(
    state: &AppState,
    tenant: &TenantId,
    (model, embedder): (&str, &SentenceEmbedder),
    config: &TuningConfig,
    items: &[Item],
    content_hashes: &[u64],
    vectors: &mut [Vec<f32>],
) -> ApiResult<Option<(Arc<CatalogTuning>, TuningSource)>> {
    let descriptions: Vec<Option<String>> = items.iter().map(description_text).collect();
    if descriptions.iter().flatten().count() < config.min_examples.max(1) {
        return Ok(None);
    }
    let distinct: HashSet<&str> = descriptions.iter().flatten().map(String::as_str).collect();
    if distinct.len() < config.min_descriptions.max(1) {
        return Ok(None);
    }
    // The examples are fixed by each described item's embedded text (its vector, for the loaded model, and its
    // title, which that text holds) and description.
    let fingerprint = content_hashes.iter().zip(&descriptions).fold(FNV_OFFSET, |hash, (text_hash, description)| {
        let Some(description) = description else { return hash };
        fnv_step(fnv_step(hash, *text_hash), content_hash(description))
    });
    let key = TuningKey::new(fingerprint, model, config);
    let cached = state.search.tunings.lock().expect("tunings poisoned").get(tenant).cloned();
    let (tuning, source) = match cached {
        Some((cached_key, tuning)) if cached_key == key => (tuning, TuningSource::Memory),
        _ => {
            let (tuning, source) = match stored_tuning::load(state.store.as_ref(), tenant, &key) {
                Some(tuning) => (Arc::new(tuning), TuningSource::Store),
                None => {
                    let tuning = fit_tuning(state, embedder, config, items, vectors, &descriptions)?;
                    stored_tuning::save(state.store.as_ref(), tenant, &key, &tuning);
                    (Arc::new(tuning), TuningSource::Fitted)
                }
            };
            state.search.tunings.lock().expect("tunings poisoned").insert(tenant.clone(), (key, tuning.clone()));
            (tuning, source)
        }
    };
    let tuned = tuning.apply_to_items(items, vectors).map_err(ApiError::internal)?;
    vectors.iter_mut().zip(tuned).for_each(|(vector, tuned)| *vector = tuned);
    Ok(Some((tuning, source)))
}

/// Fits catalog tuning on the described items, embedding the descriptions not yet known.
fn fit_tuning(
    state: &AppState,
    embedder: &SentenceEmbedder,
    config: &TuningConfig,
    items: &[Item],
    vectors: &[Vec<f32>],
    descriptions: &[Option<String>],
) -> ApiResult<CatalogTuning> {
    let mut known = state.search.description_vectors.lock().expect("description vectors poisoned").clone();
    let mut missing: Vec<&str> =
        descriptions.iter().flatten().map(String::as_str).filter(|text| !known.contains_key(*text)).collect();
    missing.sort_unstable();
    missing.dedup();
    for batch in missing.chunks(EMBED_BATCH) {
        let embedded = embedder.embed(batch).map_err(ApiError::internal)?;
        let mut cache = state.search.description_vectors.lock().expect("description vectors poisoned");
        for (text, vector) in batch.iter().zip(embedded) {
            let vector = Arc::new(vector);
            cache.insert(text.to_string(), vector.clone());
            known.insert(text.to_string(), vector);
        }
    }
    let description_vector = |text: &str| known.get(text).map(|vector| vector.as_slice());
    CatalogTuning::fit_to_descriptions(items, vectors, descriptions, description_vector, config)
        .map_err(ApiError::internal)
}

fn build_index(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantIndex>> {
    let lock = state.search.builds.lock().expect("search builds poisoned").entry(tenant.clone()).or_default().clone();
    // While the tenant's index is rebuilt, other requests are served by the previous one instead of waiting.
    let _building = match lock.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::WouldBlock) => match state.search.cached(tenant) {
            Some(previous) => return Ok(previous),
            None => lock.lock().map_err(ApiError::internal)?,
        },
        Err(std::sync::TryLockError::Poisoned(error)) => return Err(ApiError::internal(error)),
    };
    let key = (state.catalog.generation(tenant), state.search.epoch(tenant));
    let snapshot = state.catalog.snapshot(&state.store, tenant)?;
    if let Some(index) = state.search.cached(tenant).filter(|index| index.key == key && index.matches(&snapshot)) {
        return Ok(index);
    }
    let clock = Instant::now();
    let mut items: Vec<Item> = snapshot.iter().map(|item| Item::clone(item)).collect();
    items.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let mut embedded = 0;
    // Every item's vector with the content hash of its embedded text, when all are current.
    let mut vectors: Option<(Vec<u64>, Vec<Vec<f32>>)> = None;
    if let EmbedderState::Ready { model, .. } = state.search.embedder() {
        let mut stored: HashMap<ItemId, ItemEmbedding> =
            state.store.item_embeddings(tenant, &model)?.into_iter().map(|e| (e.item_id.clone(), e)).collect();
        let current: Vec<Option<(u64, Vec<f32>)>> = items
            .iter()
            .map(|item| {
                let hash = content_hash(&embedding_text(item));
                stored.remove(&item.id).filter(|e| e.content_hash == hash).map(|e| (hash, e.vector))
            })
            .collect();
        embedded = current.iter().filter(|v| v.is_some()).count();
        if embedded == items.len() && !items.is_empty() {
            vectors = Some(current.into_iter().flatten().unzip());
        }
    }
    let mut catalog_tuned = false;
    if let (Some((content_hashes, item_vectors)), EmbedderState::Ready { embedder, model }, Some(config)) =
        (vectors.as_mut(), state.search.embedder(), state.options.catalog_tuning.as_ref())
    {
        let tuning_clock = Instant::now();
        if let Some((tuning, source)) =
            tune_to_catalog(state, tenant, (&model, &embedder), config, &items, content_hashes, item_vectors)?
        {
            catalog_tuned = true;
            tracing::info!(
                tenant = %tenant,
                source = source.name(),
                described = tuning.examples(),
                words = tuning.words(),
                ms = tuning_clock.elapsed().as_millis() as u64,
                "item vectors tuned to the catalog"
            );
        }
    }
    let config = if catalog_tuned { SearchConfig::for_catalog_tuned_vectors() } else { SearchConfig::default() };
    let vectors = vectors.map(|(_, vectors)| vectors);
    let engine = SearchEngine::build(items, vectors.as_deref(), config).map_err(ApiError::internal)?;
    let titles = Autocomplete::new(std::iter::empty(), engine.items().iter().map(|item| (item.title.as_str(), 1)));
    let fingerprint = fingerprint(&snapshot);
    let index = Arc::new(TenantIndex {
        engine,
        key,
        embedded,
        catalog_tuned,
        titles,
        fingerprint,
        checked: Mutex::new((Instant::now(), snapshot)),
    });
    tracing::info!(
        tenant = %tenant,
        items = index.engine.items().len(),
        embedded,
        semantic = index.engine.has_vectors(),
        catalog_tuned,
        ms = clock.elapsed().as_millis() as u64,
        "search index built"
    );
    state.search.indexes.lock().expect("search cache poisoned").insert(tenant.clone(), index.clone());
    // Items written by another process are embedded too (a running task is not started twice).
    if embedded < index.engine.items().len() && matches!(state.search.embedder(), EmbedderState::Ready { .. }) {
        crate::tasks::start_task(
            state,
            tenant,
            crate::tasks::TaskKind::EmbedItems,
            crate::tasks::TaskTrigger::Schedule,
        );
    }
    Ok(index)
}

/// A validated search.
#[derive(Debug, Clone)]
pub struct SearchParams {
    pub query: String,
    pub user: Option<UserId>,
    pub anonymous: Option<AnonymousId>,
    /// The shopper's current session: its items are the profile's session items, and the `search` event is
    /// logged with it.
    pub session: Option<SessionId>,
    pub filter: Option<FilterExpr>,
    pub filters: Filters,
    pub sort: SortOrder,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    pub facets: bool,
    /// Correct misspelt words against the catalog before searching.
    pub correct_spelling: bool,
}

/// What the query was understood to ask for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnderstoodQuery {
    /// The words used for text retrieval.
    pub text: String,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    /// Attribute values named in the query, e.g. colour `navy`.
    pub attributes: Vec<UnderstoodAttribute>,
    /// The phrases that were understood, e.g. `under 40`.
    pub phrases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnderstoodAttribute {
    /// `colour`, `size` or `gender`.
    pub name: String,
    pub value: String,
}

/// Why a hit ranks where it does.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoreView {
    /// BM25-based score, when the item matched the words.
    pub lexical: Option<f32>,
    /// When the item matched the words: the share of the query's words (those the catalog has) it holds. With
    /// item vectors tuned to the catalog, the lexical part of the relevance is scaled by a power of it.
    pub words_held: Option<f32>,
    /// Cosine similarity to the query, in hybrid mode.
    pub semantic: Option<f32>,
    /// Fused relevance, 1 for the best candidate.
    pub relevance: f32,
    /// The shopper's affinity for the item (0 for anonymous shoppers).
    pub personal: f32,
    pub total: f32,
}

/// One result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHitView {
    pub item_id: String,
    pub title: String,
    #[schema(value_type = Option<attune_core::money::MoneyText>)]
    pub price: Option<Money>,
    pub brand: Option<String>,
    /// The category path joined with ` > `.
    pub category: String,
    pub image_url: Option<String>,
    /// The score breakdown: the explanation of the hit.
    pub score: ScoreView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceFacet {
    pub min: f64,
    /// None: no upper bound.
    pub max: Option<f64>,
    pub count: usize,
}

/// Counts over the whole result set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacetsView {
    pub brand: Vec<FacetValue>,
    pub category: Vec<FacetValue>,
    pub colour: Vec<FacetValue>,
    pub size: Vec<FacetValue>,
    pub price: Vec<PriceFacet>,
}

/// The answer to a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    /// Identifies this result list (logged with the `search` event).
    pub search_id: String,
    /// `hybrid`, `lexical`, `semantic`, `semantic_fallback` (no lexical match; semantic matches shown) or
    /// `browse` (no words: filtered catalog).
    pub mode: &'static str,
    pub warnings: Vec<String>,
    /// The query as searched, when spelling correction changed it ("showing results for ..."); search again
    /// with `correct_spelling=false` for the query as typed.
    pub corrected_query: Option<String>,
    /// Whether semantic similarity used item vectors tuned to this catalog (enough items with a category path;
    /// `catalog_tuning` in the configuration).
    pub catalog_tuned: bool,
    pub understood: UnderstoodQuery,
    /// Size of the whole result set.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub hits: Vec<SearchHitView>,
    pub facets: Option<FacetsView>,
}

fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::LexicalOnly => "lexical",
        SearchMode::SemanticOnly => "semantic",
        SearchMode::SemanticFallback => "semantic_fallback",
        SearchMode::Browse => "browse",
    }
}

fn understood_view(parsed: &ParsedQuery) -> UnderstoodQuery {
    let kind_name = |kind: AttributeKind| kind.name().to_string();
    UnderstoodQuery {
        text: parsed.text.clone(),
        price_min: parsed.price_min,
        price_max: parsed.price_max,
        attributes: parsed
            .attributes
            .iter()
            .map(|(kind, value)| UnderstoodAttribute { name: kind_name(*kind), value: value.clone() })
            .collect(),
        phrases: parsed
            .understood
            .iter()
            .map(|u| match u {
                Understood::PriceAtMost { phrase, .. }
                | Understood::PriceAtLeast { phrase, .. }
                | Understood::PriceBetween { phrase, .. }
                | Understood::Attribute { phrase, .. } => phrase.clone(),
            })
            .collect(),
    }
}

fn facets_view(facets: Facets) -> FacetsView {
    let values = |list: Vec<attune_search::FacetCount>| {
        list.into_iter().map(|f| FacetValue { value: f.value, count: f.count }).collect()
    };
    FacetsView {
        brand: values(facets.brand),
        category: values(facets.category),
        colour: values(facets.colour),
        size: values(facets.size),
        price: facets.price.into_iter().map(|p| PriceFacet { min: p.min, max: p.max, count: p.count }).collect(),
    }
}

/// The shopper's profile from their latest events: purchases weigh 5, add-to-cart 3, wishlist 2, clicks and
/// views 1; the items viewed, clicked, put in the cart or on the wishlist, or bought in the session (the given
/// session's events, else those of the 30 minutes before the shopper's newest event) are the session items, so a
/// catalog without brands, categories or attributes is still personalised by similarity to them.
/// Without a user or anonymous id, a session id alone is the shopper. `None` when there is nothing to personalise
/// on.
fn shopper_profile(
    store: &dyn Store,
    tenant: &TenantId,
    index: &TenantIndex,
    params: &SearchParams,
) -> ApiResult<Option<ShopperProfile>> {
    let recent = |keep: &dyn Fn(&Event) -> bool| -> ApiResult<Arc<[Event]>> {
        Ok(store
            .recent_events(tenant, ANONYMOUS_SCAN)?
            .into_iter()
            .map(|s| s.event)
            .filter(|e| keep(e))
            .take(SHOPPER_EVENTS)
            .collect())
    };
    // The shopper's own events (their searches and the impressions they were shown left out).
    let events: Arc<[Event]> = if let Some(user) = &params.user {
        store.shopper_activity(tenant, ShopperRef::User(user), SHOPPER_EVENTS)?
    } else if let Some(anonymous) = &params.anonymous {
        store.shopper_activity(tenant, ShopperRef::Anonymous(anonymous), SHOPPER_EVENTS)?
    } else if let Some(session) = &params.session {
        recent(&|e| e.session_id.as_ref() == Some(session))?
    } else {
        return Ok(None);
    };
    let engine = &index.engine;
    let item = |id: &ItemId| engine.position_of(id).map(|p| &engine.items()[p]);
    let mut interactions: Vec<(&Item, f32)> = Vec::new();
    for event in events.iter() {
        match &event.kind {
            EventKind::Purchase { lines, .. } => {
                interactions.extend(lines.iter().filter_map(|l| item(&l.item_id)).map(|i| (i, 5.0)))
            }
            EventKind::AddToCart { item_id, .. } => interactions.extend(item(item_id).map(|i| (i, 3.0))),
            EventKind::Wishlist { item_id } => interactions.extend(item(item_id).map(|i| (i, 2.0))),
            EventKind::Click { item_id, .. } | EventKind::View { item_id, .. } => {
                interactions.extend(item(item_id).map(|i| (i, 1.0)))
            }
            _ => {}
        }
    }
    let newest = events.iter().map(|e| e.timestamp.millis()).max().unwrap_or(0);
    let in_session = |e: &Event| match &params.session {
        Some(session) => e.session_id.as_ref() == Some(session),
        None => newest - e.timestamp.millis() <= SESSION_WINDOW_MS,
    };
    let mut seen = HashSet::new();
    let session: Vec<ItemId> = events
        .iter()
        .filter(|e| in_session(e))
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::View { .. }
                    | EventKind::Click { .. }
                    | EventKind::AddToCart { .. }
                    | EventKind::Wishlist { .. }
                    | EventKind::Purchase { .. }
            )
        })
        .flat_map(|e| e.kind.items())
        .filter(|id| engine.position_of(id).is_some() && seen.insert(*id))
        .take(SESSION_ITEMS)
        .cloned()
        .collect();
    let profile = ShopperProfile::from_interactions(interactions).with_session(session);
    Ok((!profile.is_empty()).then_some(profile))
}

/// Runs one search (blocking: embeds the query, reads the shopper's events) and logs it.
pub fn run_search(
    state: &AppState,
    tenant: &TenantId,
    index: &TenantIndex,
    params: &SearchParams,
) -> ApiResult<SearchResults> {
    let engine = &index.engine;
    let mut warnings = Vec::new();
    // Corrected here rather than inside the engine's search, so the embedding is of the corrected words (a
    // misspelt word's embedding is noise).
    let corrected_query = if params.correct_spelling { engine.correct_spelling(&params.query) } else { None };
    let query = corrected_query.as_deref().unwrap_or(&params.query);
    let embedder = state.search.embedder();
    let query_vector = match &embedder {
        EmbedderState::Ready { embedder, .. } if engine.has_vectors() && !query.trim().is_empty() => {
            let parsed = attune_search::parse_query(query, engine.vocabulary());
            let text = if parsed.text.trim().is_empty() { query.to_string() } else { parsed.text };
            Some(state.search.query_vector(embedder, &text)?)
        }
        EmbedderState::Ready { .. } => {
            if !engine.has_vectors() && !engine.items().is_empty() {
                warnings.push(format!(
                    "item embeddings are being computed ({} of {} items); results are lexical only",
                    index.embedded,
                    engine.items().len()
                ));
            }
            None
        }
        EmbedderState::Loading => {
            warnings.push("the embedding model is still loading; results are lexical only".to_string());
            None
        }
        EmbedderState::Unavailable(reason) => {
            warnings.push(format!("semantic search is off: {reason}; results are lexical only"));
            None
        }
    };
    let profile = shopper_profile(state.store.as_ref(), tenant, index, params)?;
    let filter = params.filter.clone();
    let predicate = move |item: &Item| filter.as_ref().is_none_or(|f| f.matches(item));
    let mut request = SearchRequest::new(query);
    request.correct_spelling = false;
    request.query_vector = query_vector.as_deref().map(Vec::as_slice);
    if query_vector.is_none() {
        // The warnings above already say why there is no semantic retrieval.
        request.retrieval = Retrieval::LexicalOnly;
    }
    request.filters = &params.filters;
    request.predicate = params.filter.as_ref().map(|_| &predicate as &dyn Fn(&Item) -> bool);
    request.profile = profile.as_ref();
    request.sort = params.sort;
    request.offset = (params.page - 1) * params.per_page;
    request.limit = params.per_page;
    request.facets = params.facets;
    let response = engine.search(&request).map_err(ApiError::internal)?;
    warnings.extend(response.warnings.iter().cloned());
    let search_id = uuid::Uuid::now_v7().to_string();
    let hits: Vec<SearchHitView> = response
        .hits
        .iter()
        .map(|hit| SearchHitView {
            item_id: hit.item.id.to_string(),
            title: hit.item.title.clone(),
            price: hit.item.price,
            brand: hit.item.brand.clone(),
            category: hit.item.category_path.join(" > "),
            image_url: hit.item.image_url.clone(),
            score: ScoreView {
                lexical: hit.score.lexical,
                words_held: hit.score.words_held,
                semantic: hit.score.semantic,
                relevance: hit.score.relevance,
                personal: hit.score.personal,
                total: hit.score.total,
            },
        })
        .collect();
    if !params.query.trim().is_empty() {
        state.search.ensure_queries(state.store.as_ref(), tenant)?;
        // Autocomplete suggests what was searched: a misspelling is not offered to the next shopper.
        state.search.count_query(tenant, query);
        if params.user.is_some() || params.anonymous.is_some() {
            let mut context = BTreeMap::from([
                ("source".to_string(), ScalarValue::Text("search".to_string())),
                ("search_id".to_string(), ScalarValue::Text(search_id.clone())),
            ]);
            if let Some(corrected) = &corrected_query {
                context.insert(CORRECTED_QUERY_KEY.to_string(), ScalarValue::Text(corrected.clone()));
            }
            let event = Event {
                id: EventId::generate(),
                subject: Subject { user_id: params.user.clone(), anonymous_id: params.anonymous.clone() },
                session_id: params.session.clone(),
                timestamp: Timestamp::now(),
                channel: Channel::Web,
                store_id: None,
                context,
                kind: EventKind::Search {
                    query: params.query.clone(),
                    result_ids: response.hits.iter().map(|h| h.item.id.clone()).collect(),
                },
            };
            // Queued for the batched writer: a search never waits for its event's disk sync.
            state.impressions.record(tenant.clone(), event);
        }
    }
    tracing::debug!(tenant = %tenant, mode = mode_name(response.mode), total = response.total, "search served");
    Ok(SearchResults {
        search_id,
        mode: mode_name(response.mode),
        warnings,
        corrected_query,
        catalog_tuned: index.catalog_tuned,
        understood: understood_view(&response.parsed),
        total: response.total,
        page: params.page,
        per_page: params.per_page,
        hits,
        facets: response.facets.map(facets_view),
    })
}

/// One autocomplete suggestion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuggestionView {
    pub text: String,
    /// `query` (searched before) or `title` (a catalog title).
    pub source: &'static str,
    /// Times searched, for queries.
    pub count: u64,
}

/// Suggestions for `typed` (blocking): past queries first, then titles.
pub fn suggest(
    state: &AppState,
    tenant: &TenantId,
    index: &TenantIndex,
    typed: &str,
    limit: usize,
) -> ApiResult<Vec<SuggestionView>> {
    state.search.ensure_queries(state.store.as_ref(), tenant)?;
    let queries = {
        let all = state.search.queries.lock().expect("query counts poisoned");
        let counts = all.get(tenant).cloned().unwrap_or_default();
        Autocomplete::new(counts.iter().map(|(q, c)| (q.as_str(), *c)).collect::<Vec<_>>(), std::iter::empty())
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for suggestion in queries.suggest(typed, limit).into_iter().chain(index.titles.suggest(typed, limit)) {
        if out.len() >= limit {
            break;
        }
        if seen.insert(suggestion.text.to_lowercase()) {
            out.push(SuggestionView {
                source: match suggestion.source {
                    SuggestionSource::Query => "query",
                    SuggestionSource::Title => "title",
                },
                count: if suggestion.source == SuggestionSource::Query { suggestion.count } else { 0 },
                text: suggestion.text,
            });
        }
    }
    Ok(out)
}

/// Start-up: loads the embedder on a blocking thread, then starts `embed_items` for every tenant.
pub async fn start(state: AppState) {
    let loading = state.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        load_embedder(&loading, loading.options.model_dir.as_deref());
        Ok::<_, ApiError>(loading.store.tenants()?)
    })
    .await;
    let tenants = match loaded {
        Ok(Ok(tenants)) => tenants,
        Ok(Err(error)) => {
            tracing::warn!(error = %error.message, "cannot list tenants to embed their items");
            return;
        }
        Err(error) => {
            tracing::warn!(error = %error, "the embedder loader stopped");
            state.search.set_embedder(EmbedderState::Unavailable("the model loader failed".to_string()));
            return;
        }
    };
    if matches!(state.search.embedder(), EmbedderState::Ready { .. }) {
        for tenant in tenants {
            crate::tasks::start_task(
                &state,
                &tenant.id,
                crate::tasks::TaskKind::EmbedItems,
                crate::tasks::TaskTrigger::Schedule,
            );
        }
    }
}

/// After items changed: embeds them in the background when a model is loaded.
pub fn items_changed(state: &AppState, tenant: &TenantId) {
    if matches!(state.search.embedder(), EmbedderState::Ready { .. }) {
        crate::tasks::start_task(state, tenant, crate::tasks::TaskKind::EmbedItems, crate::tasks::TaskTrigger::Request);
    }
}

/// The tenant's most searched queries, most frequent first (blocking: loads past queries the first time).
pub fn popular_queries(state: &AppState, tenant: &TenantId, limit: usize) -> ApiResult<Vec<String>> {
    state.search.ensure_queries(state.store.as_ref(), tenant)?;
    let all = state.search.queries.lock().expect("query counts poisoned");
    let mut counts: Vec<(&String, &u64)> = all.get(tenant).map(|c| c.iter().collect()).unwrap_or_default();
    counts.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    Ok(counts.into_iter().take(limit).map(|(query, _)| query.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_vector_cache_drops_the_least_recently_used() {
        let mut cache = QueryVectors::new(2);
        cache.insert("a", Arc::new(vec![1.0]));
        cache.insert("b", Arc::new(vec![2.0]));
        assert_eq!(cache.get("a").as_deref(), Some(&vec![1.0]));
        cache.insert("c", Arc::new(vec![3.0]));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.insert("c", Arc::new(vec![4.0]));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("c").as_deref(), Some(&vec![4.0]));
        cache.clear();
        assert!(cache.is_empty());
    }

    /// After a restart, autocomplete's past queries are read back from the `search` events: a misspelt
    /// search counts as what was searched, as it did when it was served.
    #[test]
    fn past_queries_are_read_back_as_searched() {
        use attune_core::{Channel, EventId, Subject, UserId};
        use attune_store::{SqliteOptions, SqliteStore};
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path().join("queries.sqlite3"), SqliteOptions::default()).unwrap();
        let tenant = TenantId::parse_slug("shop").unwrap();
        crate::keys::create_tenant(&store, &tenant, "Shop").unwrap();
        let search = |typed: &str, corrected: Option<&str>| {
            let mut context = BTreeMap::new();
            if let Some(corrected) = corrected {
                context.insert(CORRECTED_QUERY_KEY.to_string(), ScalarValue::Text(corrected.to_string()));
            }
            Event {
                id: EventId::generate(),
                subject: Subject { user_id: Some(UserId::parse("u1".to_string()).unwrap()), anonymous_id: None },
                session_id: None,
                timestamp: Timestamp::now(),
                channel: Channel::Web,
                store_id: None,
                context,
                kind: EventKind::Search { query: typed.to_string(), result_ids: Vec::new() },
            }
        };
        store
            .append_events(
                &tenant,
                &[search("Waterproof  boots", None), search("waterprof boots", Some("waterproof boots"))],
            )
            .unwrap();
        let service = SearchService::default();
        service.ensure_queries(&store, &tenant).unwrap();
        let queries = service.queries.lock().unwrap();
        assert_eq!(queries[&tenant], HashMap::from([("waterproof boots".to_string(), 2)]));
    }

    #[test]
    fn the_content_hash_is_fnv1a() {
        assert_eq!(content_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
