//! Search: each tenant's index (lexical BM25 with typo tolerance, plus semantic retrieval when the sentence
//! embedder is loaded and every item has a stored embedding), personalised from the shopper's recent events,
//! with autocomplete from past queries and catalog titles.
//!
//! Module order, top-down: this service → [`serve`] (one search) → [`index`] (each tenant's index and its
//! catalog tuning, [`stored_tuning`]) → [`embedding`] (the embedder, the `embed_items` task, query vectors,
//! [`query_vectors`]); [`queries`] counts past queries.

pub mod embedding;
pub mod index;
pub mod queries;
pub mod query;
pub mod query_vectors;
pub mod serve;
pub mod stored_tuning;

use crate::catalog::CatalogCache;
use crate::error::{EngineError, EngineResult};
use crate::event_log::EventLog;
use crate::popular::PopularItems;
use crate::privacy::Consents;
use crate::tasks::TaskRegistry;
use attune_core::{TenantId, UserId};
use attune_search::{Suggestion, TuningConfig};
use attune_store::Store;
use embedding::{Embedder, EmbedderState};
use index::{BuildInputs, Indexes, TenantIndex};
use queries::{PastQueries, Searcher};
use serve::{SearchContext, SearchOutcome, SearchParams};
use std::path::PathBuf;
use std::sync::{Arc, Weak};

/// The task kind that embeds a tenant's new and changed items: those without a stored embedding or whose text
/// changed (batches of 64); the search index is rebuilt after it.
pub const EMBED_TASK: &str = "embed_items";

/// What search is configured with.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// The sentence-transformers model directory; `None` or unloadable: lexical-only.
    pub model_dir: Option<PathBuf>,
    /// How item vectors are tuned to the catalog when enough items have a category path; `None`: never.
    pub catalog_tuning: Option<TuningConfig>,
    /// Distinct shoppers a past query needs before autocomplete suggests it to anyone.
    pub suggestion_min_shoppers: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            model_dir: None,
            catalog_tuning: Some(TuningConfig::default()),
            suggestion_min_shoppers: queries::DEFAULT_MIN_SHOPPERS,
        }
    }
}

/// The search service of one engine.
pub struct SearchService {
    store: Arc<dyn Store>,
    catalog: CatalogCache,
    events: Arc<EventLog>,
    tasks: Arc<TaskRegistry>,
    /// What sells: search's business signal, and what a query without matches offers instead.
    popular: Arc<PopularItems>,
    /// Whether a search may use the shopper's history.
    consents: Arc<Consents>,
    settings: SearchSettings,
    embedder: Embedder,
    indexes: Indexes,
    queries: PastQueries,
}

impl SearchService {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: CatalogCache,
        events: Arc<EventLog>,
        tasks: Arc<TaskRegistry>,
        popular: Arc<PopularItems>,
        consents: Arc<Consents>,
        settings: SearchSettings,
    ) -> Arc<Self> {
        let service = Arc::new(Self {
            store,
            consents,
            catalog,
            events,
            tasks,
            popular,
            embedder: Embedder::default(),
            indexes: Indexes::default(),
            queries: PastQueries::new(settings.suggestion_min_shoppers),
            settings,
        });
        let search: Weak<SearchService> = Arc::downgrade(&service);
        service.tasks.register(EMBED_TASK, move |tenant, progress| {
            let search = search.upgrade().ok_or(EngineError::ShuttingDown)?;
            let summary = search.embedder.embed_items(search.store.as_ref(), &search.catalog, tenant, progress)?;
            search.indexes.bump_epoch(tenant);
            Ok(summary)
        });
        service
    }

    /// Where the sentence embedder stands.
    pub fn embedder(&self) -> EmbedderState {
        self.embedder.state()
    }

    /// Start-up: loads the embedder (blocking), then starts `embed_items` for every tenant.
    pub fn start(&self, tenants: &[TenantId]) {
        self.load_embedder();
        if self.embedder.is_ready() {
            for tenant in tenants {
                self.tasks.start_in_background(tenant, EMBED_TASK);
            }
        }
    }

    /// Loads (or reloads) the embedder from the configured model directory. Blocking.
    pub fn load_embedder(&self) {
        self.embedder.load(self.settings.model_dir.as_deref());
        self.indexes.forget_tunings();
    }

    /// After items changed: embeds them in the background when a model is loaded.
    pub fn items_changed(&self, tenant: &TenantId) {
        if self.embedder.is_ready() {
            self.tasks.start_in_background(tenant, EMBED_TASK);
        }
    }

    /// The tenant's index when it is current; `None` when it must be built (call [`SearchService::index`] on a
    /// blocking thread).
    pub fn current_index(&self, tenant: &TenantId) -> Option<Arc<TenantIndex>> {
        self.indexes.current(&self.catalog, tenant)
    }

    /// The tenant's index, built when missing or stale. Blocking.
    pub fn index(&self, tenant: &TenantId) -> EngineResult<Arc<TenantIndex>> {
        if let Some(index) = self.current_index(tenant) {
            return Ok(index);
        }
        let inputs = BuildInputs {
            store: self.store.as_ref(),
            catalog: &self.catalog,
            embedder: &self.embedder,
            tuning: self.settings.catalog_tuning.as_ref(),
        };
        let (index, built) = self.indexes.build(&inputs, tenant)?;
        // Items written by another process are embedded too (a running task is not started twice).
        if built && index.embedded < index.engine.items().len() && self.embedder.is_ready() {
            self.tasks.start_in_background(tenant, EMBED_TASK);
        }
        Ok(index)
    }

    /// Runs one search on `index` and logs it. Blocking.
    pub fn search(&self, tenant: &TenantId, index: &TenantIndex, params: &SearchParams) -> EngineResult<SearchOutcome> {
        let context = SearchContext {
            store: self.store.as_ref(),
            consents: &self.consents,
            embedder: &self.embedder,
            queries: &self.queries,
            events: &self.events,
            popular: &self.popular,
        };
        serve::search(&context, tenant, index, params)
    }

    /// Suggestions for `typed`: past queries first (most searched first), then catalog titles. Blocking.
    pub fn suggest(
        &self,
        tenant: &TenantId,
        index: &TenantIndex,
        typed: &str,
        limit: usize,
    ) -> EngineResult<Vec<Suggestion>> {
        let queries = self.queries.suggest(self.store.as_ref(), tenant, typed, limit)?;
        Ok(queries::merge_suggestions(queries, index.titles.suggest(typed, limit), limit))
    }

    /// Takes an erased user's searches out of autocomplete's counts.
    pub fn forget_user(&self, tenant: &TenantId, user: &UserId) {
        self.queries.forget(tenant, Searcher::of(Some(user), None, None));
    }

    /// The tenant's most searched queries, most frequent first. Blocking the first time.
    pub fn popular_queries(&self, tenant: &TenantId, limit: usize) -> EngineResult<Vec<String>> {
        self.queries.popular(self.store.as_ref(), tenant, limit)
    }
}
