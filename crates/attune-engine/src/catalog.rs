//! An in-memory copy of each tenant's catalog for the serving path: recommendation and search requests check
//! candidates (in stock, filters, titles, prices) against it instead of reading and parsing items from the
//! store on every request.
//!
//! Freshness: item writes through this engine drop the tenant's copy at once, so the next
//! request sees them; writes by other replicas or `attune import` are seen after at most [`CATALOG_TTL`].
//! A copy is loaded with one `Store::all_items` call on a blocking thread; concurrent requests for a cold tenant
//! share one load, and an expired copy keeps answering while one background thread reloads it, so a request
//! never waits for a reload.
//!
//! Each copy also carries, built on first use, the content vectors of its items ([`CatalogContent`]): the
//! cold-start source of recommendations for items and shoppers the trained model has not seen yet.

use crate::background::Background;
use crate::error::EngineResult;
use attune_core::{Item, ItemId, TenantId};
use attune_recs::{ContentConfig, ContentIndex, IdMap, ItemContent};
use attune_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a copy is trusted without hearing of a change.
pub const CATALOG_TTL: Duration = Duration::from_secs(30);

/// One tenant's catalog as of `loaded_at`.
pub struct CatalogSnapshot {
    pub loaded_at: Instant,
    /// foldhash: every recommendation looks up hundreds of candidates here.
    items: foldhash::HashMap<ItemId, Arc<Item>>,
    content: OnceLock<Arc<CatalogContent>>,
    /// This copy's items by the index of one model version (see [`CatalogSnapshot::by_model_index`]).
    by_model_index: Mutex<Option<ModelItems>>,
    /// Every category path of this copy, numbered: per-category counts (category caps) count numbers instead
    /// of hashing paths.
    category_numbers: foldhash::HashMap<Vec<String>, u32>,
}

/// A catalog item with the number of its category path in its copy (`None`: no category).
#[derive(Debug, Clone)]
pub struct NumberedItem {
    pub item: Arc<Item>,
    pub category: Option<u32>,
}

/// The catalog items of a model's item indices (`None`: no longer in the catalog), for one model version.
struct ModelItems {
    model_version: i64,
    items: Arc<[Option<NumberedItem>]>,
}

/// Content vectors (title words, brand, category path, attribute values) of one catalog copy, with the
/// mapping between item ids and the index's positions (items in id order).
pub struct CatalogContent {
    pub index: ContentIndex,
    ids: Vec<ItemId>,
    positions: foldhash::HashMap<ItemId, u32>,
}

impl CatalogContent {
    fn build(items: &foldhash::HashMap<ItemId, Arc<Item>>) -> Self {
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
        let mut category_numbers: foldhash::HashMap<Vec<String>, u32> = foldhash::HashMap::default();
        for item in items.iter().filter(|item| !item.category_path.is_empty()) {
            if !category_numbers.contains_key(item.category_path.as_slice()) {
                let number = category_numbers.len() as u32;
                category_numbers.insert(item.category_path.clone(), number);
            }
        }
        Self {
            loaded_at: Instant::now(),
            items: items.into_iter().map(|i| (i.id.clone(), Arc::new(i))).collect(),
            content: OnceLock::new(),
            by_model_index: Mutex::new(None),
            category_numbers,
        }
    }

    /// The number of `item`'s category path in this copy (`None` without a category, or for a path this copy
    /// does not have).
    pub fn category_number(&self, item: &Item) -> Option<u32> {
        self.category_numbers.get(item.category_path.as_slice()).copied()
    }

    /// The items of a model version's item indices (`model_items`) in this copy, looked up once per model
    /// version (a few milliseconds for 40,000 items): a list checks thousands of the model's candidates by
    /// index instead of by id.
    pub fn by_model_index(&self, model_version: i64, model_items: &IdMap) -> Arc<[Option<NumberedItem>]> {
        let mut cached = self.by_model_index.lock().expect("model items poisoned");
        match &*cached {
            Some(view) if view.model_version == model_version => view.items.clone(),
            _ => {
                let items: Arc<[Option<NumberedItem>]> = (0..model_items.len() as u32)
                    .map(|index| {
                        let item = self.items.get(model_items.id(index)?)?;
                        Some(NumberedItem { item: item.clone(), category: self.category_number(item) })
                    })
                    .collect();
                *cached = Some(ModelItems { model_version, items: items.clone() });
                items
            }
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

/// The per-tenant copies of one engine (cheap to clone: clones share the copies).
#[derive(Clone)]
pub struct CatalogCache {
    shared: Arc<CacheShared>,
}

struct CacheShared {
    store: Arc<dyn Store>,
    background: Background,
    /// How long a copy is trusted ([`CATALOG_TTL`] but in tests).
    ttl: Duration,
    snapshots: Mutex<HashMap<TenantId, Arc<CatalogSnapshot>>>,
    /// Bumped by every invalidation, so a copy read before a change is never kept after it.
    generations: Mutex<HashMap<TenantId, u64>>,
    /// Held while a copy is loaded, so a burst of requests for a cold tenant loads it once.
    loading: Mutex<()>,
    /// Tenants whose expired copy is being reloaded in the background.
    refreshing: Mutex<HashSet<TenantId>>,
}

impl CatalogCache {
    /// The copies of `store`'s catalogs; reloads run on `background`.
    pub fn new(store: Arc<dyn Store>, background: Background) -> Self {
        Self::with_ttl(store, background, CATALOG_TTL)
    }

    /// A cache whose copies expire after `ttl` instead of [`CATALOG_TTL`].
    pub fn with_ttl(store: Arc<dyn Store>, background: Background, ttl: Duration) -> Self {
        let shared = CacheShared {
            store,
            background,
            ttl,
            snapshots: Mutex::default(),
            generations: Mutex::default(),
            loading: Mutex::default(),
            refreshing: Mutex::default(),
        };
        Self { shared: Arc::new(shared) }
    }

    /// The tenant's catalog, loaded from the store when missing. Blocking: call on a blocking thread.
    ///
    /// A copy older than [`CATALOG_TTL`] is still answered at once while one background thread reloads it,
    /// so no request waits for a reload; a copy dropped by [`CatalogCache::invalidate`] is never served
    /// again (the next request loads a new one). A reloaded copy whose items did not change keeps the
    /// content vectors of the one it replaces.
    pub fn snapshot(&self, tenant: &TenantId) -> EngineResult<Arc<CatalogSnapshot>> {
        match self.current(tenant) {
            Some(fresh) if fresh.loaded_at.elapsed() < self.shared.ttl => Ok(fresh),
            Some(expired) => {
                self.refresh_in_background(tenant);
                Ok(expired)
            }
            None => self.load(tenant),
        }
    }

    /// Starts one background reload of the tenant's copy unless one is running.
    fn refresh_in_background(&self, tenant: &TenantId) {
        if !self.shared.refreshing.lock().expect("catalog cache poisoned").insert(tenant.clone()) {
            return;
        }
        let (cache, refreshed) = (self.clone(), tenant.clone());
        let started = self.shared.background.spawn("catalog-refresh", move || {
            if let Err(error) = cache.load(&refreshed) {
                tracing::warn!(tenant = %refreshed, %error, "could not reload the catalog copy");
            }
            cache.shared.refreshing.lock().expect("catalog cache poisoned").remove(&refreshed);
        });
        if !started {
            self.shared.refreshing.lock().expect("catalog cache poisoned").remove(tenant);
        }
    }

    /// Loads the tenant's copy unless a fresh one appeared while waiting for another load.
    fn load(&self, tenant: &TenantId) -> EngineResult<Arc<CatalogSnapshot>> {
        let _loading = self.shared.loading.lock().expect("catalog loading poisoned");
        if let Some(fresh) = self.fresh(tenant) {
            return Ok(fresh);
        }
        let generation = self.generation(tenant);
        let snapshot = CatalogSnapshot::new(self.shared.store.all_items(tenant)?);
        if let Some(previous) = self.current(tenant)
            && previous.fingerprint() == snapshot.fingerprint()
            && let Some(content) = previous.content.get()
        {
            let _ = snapshot.content.set(content.clone());
        }
        let snapshot = Arc::new(snapshot);
        tracing::debug!(tenant = %tenant, items = snapshot.len(), "catalog copy loaded");
        let mut snapshots = self.shared.snapshots.lock().expect("catalog cache poisoned");
        // A change landed while reading: serve this copy once, keep none.
        if self.generation(tenant) == generation {
            snapshots.insert(tenant.clone(), snapshot.clone());
        }
        Ok(snapshot)
    }

    fn current(&self, tenant: &TenantId) -> Option<Arc<CatalogSnapshot>> {
        self.shared.snapshots.lock().expect("catalog cache poisoned").get(tenant).cloned()
    }

    fn fresh(&self, tenant: &TenantId) -> Option<Arc<CatalogSnapshot>> {
        let snapshots = self.shared.snapshots.lock().expect("catalog cache poisoned");
        snapshots.get(tenant).filter(|s| s.loaded_at.elapsed() < self.shared.ttl).cloned()
    }

    /// The tenant's invalidation count: changes whenever its catalog changed through this engine.
    pub fn generation(&self, tenant: &TenantId) -> u64 {
        self.shared.generations.lock().expect("catalog cache poisoned").get(tenant).copied().unwrap_or(0)
    }

    /// Forgets the tenant's copy after its catalog changed (call after the store write committed).
    pub fn invalidate(&self, tenant: &TenantId) {
        *self.shared.generations.lock().expect("catalog cache poisoned").entry(tenant.clone()).or_default() += 1;
        self.shared.snapshots.lock().expect("catalog cache poisoned").remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::ItemInput;
    use attune_core::Timestamp;
    use attune_store::{SqliteOptions, SqliteStore};

    fn item(id: &str) -> Item {
        let input = ItemInput { id: Some(id.into()), title: Some(format!("Item {id}")), ..Default::default() };
        Item::parse(input, Timestamp::now()).unwrap()
    }

    #[test]
    fn an_expired_copy_answers_at_once_while_a_background_reload_brings_the_new_items() {
        let directory = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(directory.path().join("catalog.sqlite3"), SqliteOptions::default()).unwrap());
        let tenant = TenantId::parse_slug("shop").unwrap();
        crate::keys::create_tenant(store.as_ref(), &tenant, "Shop").unwrap();
        store.upsert_items(&tenant, &[item("a")]).unwrap();
        let cache = CatalogCache::with_ttl(store.clone(), Background::default(), Duration::ZERO);
        assert_eq!(cache.snapshot(&tenant).unwrap().len(), 1);

        // Another replica adds an item: this engine hears nothing of it.
        store.upsert_items(&tenant, &[item("b")]).unwrap();
        let expired = cache.snapshot(&tenant).unwrap();
        assert_eq!(expired.len(), 1, "the expired copy answers without waiting for the reload");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if cache.snapshot(&tenant).unwrap().len() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "the background reload never brought the new item");
            std::thread::sleep(Duration::from_millis(10));
        }

        // An invalidated copy is never served again: the next request loads a new one itself.
        store.upsert_items(&tenant, &[item("c")]).unwrap();
        cache.invalidate(&tenant);
        assert_eq!(cache.snapshot(&tenant).unwrap().len(), 3);
    }
}
