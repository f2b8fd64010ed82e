//! The sentence embedder of search and what it embeds: loaded once at start-up (without it search is
//! lexical-only and every response says so; a missing or broken model directory is one warning in the log,
//! never a crash), item texts embedded by the `embed_items` task in batches of [`EMBED_BATCH`] and stored with
//! the content hash of their text, query vectors kept in a small LRU cache, and the vectors of the item
//! descriptions that catalog tuning fits toward.

use super::query_vectors::QueryVectors;
use crate::catalog::CatalogCache;
use crate::error::{EngineError, EngineResult};
use crate::tasks::TaskProgress;
use attune_core::{Item, ItemId, TenantId};
use attune_store::{ItemEmbedding, Store};
use attune_text::SentenceEmbedder;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// Items embedded per batch by the `embed_items` task.
pub const EMBED_BATCH: usize = 64;
/// Query vectors kept in the cache.
pub const QUERY_VECTORS_KEPT: usize = 1_024;

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

/// The embedder with the vectors it made that are worth keeping.
pub struct Embedder {
    state: RwLock<EmbedderState>,
    /// Vectors of recent queries.
    query_vectors: Mutex<QueryVectors>,
    /// Vectors of item descriptions that catalog tuning fits toward (a catalog has a few thousand distinct
    /// ones at most: gender, colour and category leaf).
    description_vectors: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

impl Default for Embedder {
    fn default() -> Self {
        Self {
            state: RwLock::new(EmbedderState::Loading),
            query_vectors: Mutex::new(QueryVectors::new(QUERY_VECTORS_KEPT)),
            description_vectors: Mutex::default(),
        }
    }
}

impl Embedder {
    pub fn state(&self) -> EmbedderState {
        self.state.read().expect("embedder state poisoned").clone()
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state(), EmbedderState::Ready { .. })
    }

    /// Sets the state; vectors of a previous model are forgotten.
    pub fn set(&self, state: EmbedderState) {
        *self.state.write().expect("embedder state poisoned") = state;
        self.query_vectors.lock().expect("query vectors poisoned").clear();
        self.description_vectors.lock().expect("description vectors poisoned").clear();
    }

    /// Loads the sentence embedder from `dir` (blocking). Failure or absence is logged once as a warning and
    /// leaves search lexical-only.
    pub fn load(&self, dir: Option<&Path>) {
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
        self.set(outcome);
    }

    /// The vector of a query text: cached, or embedded (blocking) and cached.
    pub fn query_vector(&self, embedder: &SentenceEmbedder, text: &str) -> EngineResult<Arc<Vec<f32>>> {
        if let Some(vector) = self.query_vectors.lock().expect("query vectors poisoned").get(text) {
            return Ok(vector);
        }
        let vector = Arc::new(embedder.embed_one(text).map_err(EngineError::internal)?);
        self.query_vectors.lock().expect("query vectors poisoned").insert(text, vector.clone());
        Ok(vector)
    }

    /// The vectors of `texts` (descriptions), embedding those not yet known in batches.
    pub fn description_vectors(
        &self,
        embedder: &SentenceEmbedder,
        texts: &[&str],
    ) -> EngineResult<HashMap<String, Arc<Vec<f32>>>> {
        let mut known = self.description_vectors.lock().expect("description vectors poisoned").clone();
        let mut missing: Vec<&str> = texts.iter().copied().filter(|text| !known.contains_key(*text)).collect();
        missing.sort_unstable();
        missing.dedup();
        for batch in missing.chunks(EMBED_BATCH) {
            let embedded = embedder.embed(batch).map_err(EngineError::internal)?;
            let mut cache = self.description_vectors.lock().expect("description vectors poisoned");
            for (text, vector) in batch.iter().zip(embedded) {
                let vector = Arc::new(vector);
                cache.insert(text.to_string(), vector.clone());
                known.insert(text.to_string(), vector);
            }
        }
        Ok(known)
    }

    /// The `embed_items` task: embeds the tenant's items that have no current embedding and stores them.
    /// Items written while a round runs are embedded by another round.
    pub fn embed_items(
        &self,
        store: &dyn Store,
        catalog: &CatalogCache,
        tenant: &TenantId,
        progress: &TaskProgress<'_>,
    ) -> EngineResult<String> {
        let (model, embedder) = match self.state() {
            EmbedderState::Ready { model, embedder } => (model, embedder),
            EmbedderState::Loading => return Err(EngineError::Conflict("the embedding model is still loading".into())),
            EmbedderState::Unavailable(reason) => {
                return Err(EngineError::Conflict(format!("no embedding model: {reason}")));
            }
        };
        let mut embedded = 0;
        let mut items_total;
        loop {
            let generation = catalog.generation(tenant);
            progress.report("reading items", 0.0);
            let items = store.all_items(tenant)?;
            items_total = items.len();
            let todo = stale_embeddings(store, tenant, &model, &items)?;
            let total = todo.len();
            for (done, batch) in todo.chunks(EMBED_BATCH).enumerate() {
                progress.checkpoint()?;
                progress.report("embedding items", (done * EMBED_BATCH) as f64 / total.max(1) as f64);
                let texts: Vec<&str> = batch.iter().map(|(_, text, _)| text.as_str()).collect();
                let vectors = embedder.embed(&texts).map_err(EngineError::internal)?;
                let embeddings: Vec<ItemEmbedding> = batch
                    .iter()
                    .zip(vectors)
                    .map(|((id, _, hash), vector)| ItemEmbedding { item_id: id.clone(), content_hash: *hash, vector })
                    .collect();
                store.upsert_item_embeddings(tenant, &model, &embeddings)?;
            }
            embedded += total;
            if catalog.generation(tenant) == generation {
                break;
            }
        }
        Ok(format!("embedded {embedded} items with {model}; the catalog has {items_total}"))
    }
}

/// The items without a stored embedding of their current text: (id, text, content hash).
fn stale_embeddings(
    store: &dyn Store,
    tenant: &TenantId,
    model: &str,
    items: &[Item],
) -> EngineResult<Vec<(ItemId, String, u64)>> {
    let stored: HashMap<ItemId, u64> =
        store.item_embeddings(tenant, model)?.into_iter().map(|e| (e.item_id, e.content_hash)).collect();
    Ok(items
        .iter()
        .filter_map(|item| {
            let text = embedding_text(item);
            let hash = content_hash(&text);
            (stored.get(&item.id) != Some(&hash)).then(|| (item.id.clone(), text, hash))
        })
        .collect())
}

/// The model name embeddings are stored under: the model directory's name.
fn model_name(dir: &Path) -> String {
    dir.file_name().and_then(|n| n.to_str()).unwrap_or("sentence-model").to_string()
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
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One FNV-1a 64 step: `value` (a byte, or a whole hash when combining hashes) folded into `hash`.
pub fn fnv_step(hash: u64, value: u64) -> u64 {
    (hash ^ value).wrapping_mul(0x0100_0000_01b3)
}

/// FNV-1a 64 of the embedded text: stable across builds and platforms.
pub fn content_hash(text: &str) -> u64 {
    text.bytes().fold(FNV_OFFSET, |hash, byte| fnv_step(hash, u64::from(byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_fnv1a() {
        assert_eq!(content_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
