//! Each tenant's search index: an [`attune_search::SearchEngine`] built from the in-memory catalog copy and
//! the stored item embeddings, with the item vectors tuned to the catalog when enough items have a category
//! path ([`CatalogTuning`]).
//!
//! An index is cached per tenant and rebuilt when the catalog generation changes (an item write through this
//! engine), the `embed_items` task finished (the tenant's epoch), or — checked every [`CATALOG_TTL`] — the
//! catalog copy's item count or newest update differs (writes by `attune import` or another replica).
//! Requests arriving while a tenant's index is rebuilt are served by the previous one. The fitted tuning map
//! is kept in memory and in the store ([`super::stored_tuning`]) and reused while no described item's text
//! changed, so a price or stock write does not refit.

use super::embedding::{Embedder, EmbedderState, FNV_OFFSET, content_hash, embedding_text, fnv_step};
use super::stored_tuning::{self, TuningKey};
use crate::catalog::{CATALOG_TTL, CatalogCache, CatalogSnapshot};
use crate::error::{EngineError, EngineResult};
use crate::popular::Popularity;
use attune_core::{Item, ItemId, TenantId};
use attune_search::{
    Autocomplete, CatalogTuning, SearchConfig, SearchEngine, TuningConfig, description_text, popularity_signal,
};
use attune_store::{ItemEmbedding, Store};
use attune_text::SentenceEmbedder;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One tenant's search index.
pub struct TenantIndex {
    pub engine: SearchEngine,
    /// (catalog generation, embedding epoch) the index was built at.
    key: (u64, u64),
    /// Items with a current embedding, of all items.
    pub embedded: usize,
    /// Whether the item vectors were tuned to the catalog ([`CatalogTuning`]).
    pub catalog_tuned: bool,
    /// Catalog titles for autocomplete.
    pub titles: Autocomplete,
    /// (items, newest `updated_at`) of the catalog copy it was built from: a copy reloaded after a write by
    /// another process (`attune import`, another replica) with other figures makes the index stale.
    fingerprint: (usize, i64),
    /// When and against which catalog copy the index was last found current.
    checked: Mutex<(Instant, Arc<CatalogSnapshot>)>,
    /// The business signal by catalog position, and the popularity it was computed from.
    signals: Mutex<Option<ItemSignals>>,
}

/// A popularity snapshot and the per-position signal computed from it.
type ItemSignals = (Arc<Popularity>, Arc<Vec<f32>>);

impl TenantIndex {
    /// Each item's sales popularity in [0, 1] by catalog position: ln(1 + orders) / ln(1 + most orders), 0 for
    /// items in no recent order; computed once per popularity snapshot.
    pub fn signals(&self, popularity: &Arc<Popularity>) -> Arc<Vec<f32>> {
        let mut cached = self.signals.lock().expect("search signals poisoned");
        if let Some((from, signals)) = cached.as_ref()
            && Arc::ptr_eq(from, popularity)
        {
            return signals.clone();
        }
        let mut signals = vec![0.0_f32; self.engine.items().len()];
        let most = popularity.items.first().map_or(1, |(_, n)| *n);
        for (id, orders) in &popularity.items {
            if let Some(position) = self.engine.position_of(id) {
                signals[position] = popularity_signal(*orders, most);
            }
        }
        let signals = Arc::new(signals);
        *cached = Some((popularity.clone(), signals.clone()));
        signals
    }

    fn checked_recently(&self) -> bool {
        self.checked.lock().expect("search index poisoned").0.elapsed() < CATALOG_TTL
    }

    /// Whether the index still describes `snapshot` (remembering it when so).
    fn matches(&self, snapshot: &Arc<CatalogSnapshot>) -> bool {
        let mut checked = self.checked.lock().expect("search index poisoned");
        if Arc::ptr_eq(&checked.1, snapshot) || snapshot.fingerprint() == self.fingerprint {
            *checked = (Instant::now(), snapshot.clone());
            return true;
        }
        false
    }
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

/// What an index build reads.
pub struct BuildInputs<'a> {
    pub store: &'a dyn Store,
    pub catalog: &'a CatalogCache,
    pub embedder: &'a Embedder,
    /// `None`: never tune the vectors.
    pub tuning: Option<&'a TuningConfig>,
}

/// The indexes of every tenant.
#[derive(Default)]
pub struct Indexes {
    indexes: Mutex<HashMap<TenantId, Arc<TenantIndex>>>,
    /// Per tenant, held while its index is built, so concurrent requests share one build.
    builds: Mutex<HashMap<TenantId, Arc<Mutex<()>>>>,
    /// Bumped per tenant when an `embed_items` task finishes.
    epochs: Mutex<HashMap<TenantId, u64>>,
    /// Per tenant, the last catalog tuning with what it was fitted on.
    tunings: Mutex<HashMap<TenantId, (TuningKey, Arc<CatalogTuning>)>>,
}

impl Indexes {
    /// The tenant's index when it is current (no build needed); else call [`Indexes::build`].
    pub fn current(&self, catalog: &CatalogCache, tenant: &TenantId) -> Option<Arc<TenantIndex>> {
        let key = (catalog.generation(tenant), self.epoch(tenant));
        self.cached(tenant).filter(|index| index.key == key && index.checked_recently())
    }

    /// Makes the next search of `tenant` rebuild its index (new embeddings are stored).
    pub fn bump_epoch(&self, tenant: &TenantId) {
        *self.epochs.lock().expect("search epochs poisoned").entry(tenant.clone()).or_default() += 1;
    }

    /// Forgets the fitted tunings (another embedding model was loaded).
    pub fn forget_tunings(&self) {
        self.tunings.lock().expect("tunings poisoned").clear();
    }

    fn epoch(&self, tenant: &TenantId) -> u64 {
        self.epochs.lock().expect("search epochs poisoned").get(tenant).copied().unwrap_or(0)
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantIndex>> {
        self.indexes.lock().expect("search cache poisoned").get(tenant).cloned()
    }

    /// The tenant's index, built (blocking) when missing or stale, with whether it was built now; while
    /// another thread builds it, the previous index answers.
    pub fn build(&self, inputs: &BuildInputs<'_>, tenant: &TenantId) -> EngineResult<(Arc<TenantIndex>, bool)> {
        let lock = self.builds.lock().expect("search builds poisoned").entry(tenant.clone()).or_default().clone();
        let _building = match lock.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => match self.cached(tenant) {
                Some(previous) => return Ok((previous, false)),
                None => lock.lock().map_err(EngineError::internal)?,
            },
            Err(std::sync::TryLockError::Poisoned(error)) => return Err(EngineError::internal(error)),
        };
        let key = (inputs.catalog.generation(tenant), self.epoch(tenant));
        let snapshot = inputs.catalog.snapshot(tenant)?;
        if let Some(index) = self.cached(tenant).filter(|index| index.key == key && index.matches(&snapshot)) {
            return Ok((index, false));
        }
        let index = Arc::new(self.build_index(inputs, tenant, key, snapshot)?);
        self.indexes.lock().expect("search cache poisoned").insert(tenant.clone(), index.clone());
        Ok((index, true))
    }

    fn build_index(
        &self,
        inputs: &BuildInputs<'_>,
        tenant: &TenantId,
        key: (u64, u64),
        snapshot: Arc<CatalogSnapshot>,
    ) -> EngineResult<TenantIndex> {
        let clock = Instant::now();
        let mut items: Vec<Item> = snapshot.iter().map(|item| Item::clone(item)).collect();
        items.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let state = inputs.embedder.state();
        let (embedded, mut vectors) = current_vectors(inputs.store, tenant, &state, &items)?;
        let mut catalog_tuned = false;
        if let (Some((content_hashes, item_vectors)), EmbedderState::Ready { embedder, model }, Some(config)) =
            (vectors.as_mut(), &state, inputs.tuning)
        {
            let tuning_clock = Instant::now();
            let described = Described { items: &items, content_hashes };
            if let Some((tuning, source)) =
                self.tune_to_catalog(inputs, tenant, (model, embedder), config, &described, item_vectors)?
            {
                catalog_tuned = true;
                tracing::info!(tenant = %tenant, source = source.name(), described = tuning.examples(),
                    words = tuning.words(), ms = tuning_clock.elapsed().as_millis() as u64,
                    "item vectors tuned to the catalog");
            }
        }
        let config = if catalog_tuned { SearchConfig::for_catalog_tuned_vectors() } else { SearchConfig::default() };
        let vectors = vectors.map(|(_, vectors)| vectors);
        let engine = SearchEngine::build(items, vectors.as_deref(), config).map_err(EngineError::internal)?;
        let titles = Autocomplete::new(std::iter::empty(), engine.items().iter().map(|item| (item.title.as_str(), 1)));
        let fingerprint = snapshot.fingerprint();
        let index = TenantIndex {
            engine,
            key,
            embedded,
            catalog_tuned,
            titles,
            fingerprint,
            checked: Mutex::new((Instant::now(), snapshot)),
            signals: Mutex::new(None),
        };
        tracing::info!(tenant = %tenant, items = index.engine.items().len(), embedded,
            semantic = index.engine.has_vectors(), catalog_tuned, ms = clock.elapsed().as_millis() as u64,
            "search index built");
        Ok(index)
    }

    /// Tunes `vectors` to the catalog in place when enough items have a description (a category path):
    /// fitted on those, applied to every item. The fitted map is kept in memory and in the store, and reused
    /// while the described items' texts, the model and the settings are unchanged.
    fn tune_to_catalog(
        &self,
        inputs: &BuildInputs<'_>,
        tenant: &TenantId,
        (model, embedder): (&str, &SentenceEmbedder),
        config: &TuningConfig,
        described: &Described<'_>,
        vectors: &mut [Vec<f32>],
    ) -> EngineResult<Option<(Arc<CatalogTuning>, TuningSource)>> {
        let items = described.items;
        let descriptions: Vec<Option<String>> = items.iter().map(description_text).collect();
        if descriptions.iter().flatten().count() < config.min_examples.max(1) {
            return Ok(None);
        }
        let distinct: HashSet<&str> = descriptions.iter().flatten().map(String::as_str).collect();
        if distinct.len() < config.min_descriptions.max(1) {
            return Ok(None);
        }
        let key = TuningKey::new(described.fingerprint(&descriptions), model, config);
        let cached = self.tunings.lock().expect("tunings poisoned").get(tenant).cloned();
        let (tuning, source) = match cached {
            Some((cached_key, tuning)) if cached_key == key => (tuning, TuningSource::Memory),
            _ => {
                let (tuning, source) = match stored_tuning::load(inputs.store, tenant, &key) {
                    Some(tuning) => (Arc::new(tuning), TuningSource::Store),
                    None => {
                        let tuning = fit_tuning(inputs.embedder, embedder, config, items, vectors, &descriptions)?;
                        stored_tuning::save(inputs.store, tenant, &key, &tuning);
                        (Arc::new(tuning), TuningSource::Fitted)
                    }
                };
                self.tunings.lock().expect("tunings poisoned").insert(tenant.clone(), (key, tuning.clone()));
                (tuning, source)
            }
        };
        let tuned = tuning.apply_to_items(items, vectors).map_err(EngineError::internal)?;
        vectors.iter_mut().zip(tuned).for_each(|(vector, tuned)| *vector = tuned);
        Ok(Some((tuning, source)))
    }
}

/// The catalog's items (sorted by id) with the content hashes of their embedded texts.
struct Described<'a> {
    items: &'a [Item],
    content_hashes: &'a [u64],
}

impl Described<'_> {
    /// What a tuning is fitted on: each described item's embedded text (its vector, for the loaded model, and
    /// its title, which that text holds) and description.
    fn fingerprint(&self, descriptions: &[Option<String>]) -> u64 {
        self.content_hashes.iter().zip(descriptions).fold(FNV_OFFSET, |hash, (text_hash, description)| {
            let Some(description) = description else { return hash };
            fnv_step(fnv_step(hash, *text_hash), content_hash(description))
        })
    }
}

/// The items with a current stored embedding, and — when every item has one — their content hashes and
/// vectors in the order of `items`.
#[allow(clippy::type_complexity)]
fn current_vectors(
    store: &dyn Store,
    tenant: &TenantId,
    state: &EmbedderState,
    items: &[Item],
) -> EngineResult<(usize, Option<(Vec<u64>, Vec<Vec<f32>>)>)> {
    let EmbedderState::Ready { model, .. } = state else { return Ok((0, None)) };
    let mut stored: HashMap<ItemId, ItemEmbedding> =
        store.item_embeddings(tenant, model)?.into_iter().map(|e| (e.item_id.clone(), e)).collect();
    let current: Vec<Option<(u64, Vec<f32>)>> = items
        .iter()
        .map(|item| {
            let hash = content_hash(&embedding_text(item));
            stored.remove(&item.id).filter(|e| e.content_hash == hash).map(|e| (hash, e.vector))
        })
        .collect();
    let embedded = current.iter().filter(|v| v.is_some()).count();
    let all = embedded == items.len() && !items.is_empty();
    Ok((embedded, all.then(|| current.into_iter().flatten().unzip())))
}

/// Fits catalog tuning on the described items, embedding the descriptions not yet known.
fn fit_tuning(
    cache: &Embedder,
    embedder: &SentenceEmbedder,
    config: &TuningConfig,
    items: &[Item],
    vectors: &[Vec<f32>],
    descriptions: &[Option<String>],
) -> EngineResult<CatalogTuning> {
    let texts: Vec<&str> = descriptions.iter().flatten().map(String::as_str).collect();
    let known = cache.description_vectors(embedder, &texts)?;
    let description_vector = |text: &str| known.get(text).map(|vector| vector.as_slice());
    CatalogTuning::fit_to_descriptions(items, vectors, descriptions, description_vector, config)
        .map_err(EngineError::internal)
}
