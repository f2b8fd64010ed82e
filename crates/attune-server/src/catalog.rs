//! An in-memory copy of each tenant's catalog for the serving path: recommendation and search requests check
//! candidates (in stock, filters, titles, prices) against it instead of reading and parsing items from the
//! store on every request.
//!
//! Freshness: item writes through this server (`/v1/items`) drop the tenant's copy at once, so the next
//! request sees them; writes by other replicas or `attune import` are seen after at most [`CATALOG_TTL`].
//! A copy is loaded with one `Store::all_items` call on a blocking thread (an expired one by one request while
//! the others go on with it); concurrent requests for a cold
//! tenant share one load.
//!
//! Each copy also carries, built on first use, the content vectors of its items ([`CatalogContent`]): the
//! cold-start source of recommendations for items and shoppers the trained model has not seen yet.

use crate::error::ApiResult;
use attune_core::{Item, ItemId, TenantId};
use attune_recs::{ContentConfig, ContentIndex, ItemContent};
use attune_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a copy is trusted without hearing of a change.
pub const CATALOG_TTL: Duration = Duration::from_secs(30);

/// One tenant's catalog as of `loaded_at`.
pub struct CatalogSnapshot {
    pub loaded_at: Instant,
    items: HashMap<ItemId, Arc<Item>>,
    content: OnceLock<Arc<CatalogContent>>,
}

/// Content vectors (title words, brand, category path, attribute values) of one catalog copy, with the
/// mapping between item ids and the index's positions (items in id order).
pub struct CatalogContent {
    pub index: ContentIndex,
    ids: Vec<ItemId>,
    positions: HashMap<ItemId, u32>,
}

impl CatalogContent {
    fn build(items: &HashMap<ItemId, Arc<Item>>) -> Self {
        let mut ids: Vec<ItemId> = items.keys().cloned().collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let contents: Vec<ItemContent> = ids
            .iter()
            .map(|id| {
                let item = &items[id];
                ItemContent {
                    title: item.title.clone(),
                    brand: item.brand.clone(),
                    category: item.category_path.clone(),
                    attributes: item.attributes.iter().map(|(key, value)| (key.clone(), value.to_text())).collect(),
                }
            })
            .collect();
        let index = ContentIndex::build(&contents, None, ContentConfig::default())
            .expect("the default content configuration is valid");
        let positions = ids.iter().enumerate().map(|(position, id)| (id.clone(), position as u32)).collect();
        Self { index, ids, positions }
    }

    pub fn position(&self, id: &ItemId) -> Option<u32> {
        self.positions.get(id).copied()
    }

    pub fn id(&self, position: u32) -> Option<&ItemId> {
        self.ids.get(position as usize)
    }
}

impl CatalogSnapshot {
    pub fn new(items: Vec<Item>) -> Self {
        Self {
            loaded_at: Instant::now(),
            items: items.into_iter().map(|i| (i.id.clone(), Arc::new(i))).collect(),
            content: OnceLock::new(),
        }
    }

    /// The content vectors of this copy, built on first use (a few hundred milliseconds for 40,000 items).
    pub fn content(&self) -> &CatalogContent {
        self.content.get_or_init(|| {
            let clock = Instant::now();
            let content = CatalogContent::build(&self.items);
            tracing::debug!(
                items = content.ids.len(),
                ms = clock.elapsed().as_millis() as u64,
                "content vectors built"
            );
            Arc::new(content)
        })
    }

    /// Item count and newest update: equal fingerprints mean no item was added, changed or removed (a removal
    /// changes the count, an addition or change the newest update).
    pub fn fingerprint(&self) -> (usize, i64) {
        (self.items.len(), self.items.values().map(|item| item.updated_at.millis()).max().unwrap_or(0))
    }

    pub fn get(&self, id: &ItemId) -> Option<&Arc<Item>> {
        self.items.get(id)
    }

    /// The item with this id text (no id parsing, for ids that came from a model).
    pub fn get_by_text(&self, id: &str) -> Option<&Arc<Item>> {
        self.items.get(id)
    }

    /// The items of `ids` that exist, in the order of `ids`.
    pub fn items<'a>(&'a self, ids: impl IntoIterator<Item = &'a ItemId>) -> Vec<Arc<Item>> {
        ids.into_iter().filter_map(|id| self.items.get(id).cloned()).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Item>> {
        self.items.values()
    }
}

/// The per-tenant copies of one server.
#[derive(Default)]
pub struct CatalogCache {
    snapshots: Mutex<HashMap<TenantId, Arc<CatalogSnapshot>>>,
    /// Bumped by every invalidation, so a copy read before a change is never kept after it.
    generations: Mutex<HashMap<TenantId, u64>>,
    /// Held while a copy is loaded, so a burst of requests for a cold tenant loads it once.
    loading: Mutex<()>,
}

impl CatalogCache {
    /// The tenant's catalog, loaded from the store when missing or older than [`CATALOG_TTL`]. Blocking:
    /// call on a blocking thread.
    ///
    /// An expired copy is reloaded by one request while the others go on with it; a copy dropped by
    /// [`CatalogCache::invalidate`] is never served again. A reloaded copy whose items did not change keeps the
    /// content vectors of the one it replaces.
    pub fn snapshot(&self, store: &dyn Store, tenant: &TenantId) -> ApiResult<Arc<CatalogSnapshot>> {
        let current = self.current(tenant);
        if let Some(fresh) = current.as_ref().filter(|s| s.loaded_at.elapsed() < CATALOG_TTL) {
            return Ok(fresh.clone());
        }
        let _loading = match (self.loading.try_lock(), &current) {
            (Ok(guard), _) => guard,
            (Err(std::sync::TryLockError::WouldBlock), Some(expired)) => return Ok(expired.clone()),
            (Err(std::sync::TryLockError::WouldBlock), None) => {
                self.loading.lock().map_err(crate::error::ApiError::internal)?
            }
            (Err(std::sync::TryLockError::Poisoned(error)), _) => return Err(crate::error::ApiError::internal(error)),
        };
        if let Some(fresh) = self.fresh(tenant) {
            return Ok(fresh);
        }
        let generation = self.generation(tenant);
        let snapshot = CatalogSnapshot::new(store.all_items(tenant)?);
        if let Some(previous) = self.current(tenant)
            && previous.fingerprint() == snapshot.fingerprint()
            && let Some(content) = previous.content.get()
        {
            let _ = snapshot.content.set(content.clone());
        }
        let snapshot = Arc::new(snapshot);
        tracing::debug!(tenant = %tenant, items = snapshot.len(), "catalog copy loaded");
        let mut snapshots = self.snapshots.lock().expect("catalog cache poisoned");
        // A change landed while reading: serve this copy once, keep none.
        if self.generation(tenant) == generation {
            snapshots.insert(tenant.clone(), snapshot.clone());
        }
        Ok(snapshot)
    }

    fn current(&self, tenant: &TenantId) -> Option<Arc<CatalogSnapshot>> {
        self.snapshots.lock().expect("catalog cache poisoned").get(tenant).cloned()
    }

    fn fresh(&self, tenant: &TenantId) -> Option<Arc<CatalogSnapshot>> {
        let snapshots = self.snapshots.lock().expect("catalog cache poisoned");
        snapshots.get(tenant).filter(|s| s.loaded_at.elapsed() < CATALOG_TTL).cloned()
    }

    /// The tenant's invalidation count: changes whenever its catalog changed through this server.
    pub fn generation(&self, tenant: &TenantId) -> u64 {
        self.generations.lock().expect("catalog cache poisoned").get(tenant).copied().unwrap_or(0)
    }

    /// Forget the tenant's copy after its catalog changed (call after the store write committed).
    pub fn invalidate(&self, tenant: &TenantId) {
        *self.generations.lock().expect("catalog cache poisoned").entry(tenant.clone()).or_default() += 1;
        self.snapshots.lock().expect("catalog cache poisoned").remove(tenant);
    }
}
