//! What sells now, for a shop's front page and as search's business signal: the items in the most orders among the tenant's latest events
//! (without recent orders, what visitors looked at and put in baskets), kept per tenant for [`POPULAR_TTL`].

use attune_core::{EventKind, ItemId, TenantId};
use attune_store::{Store, StoreResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many of the most recent events (by log position) popularity is computed from.
const POPULAR_WINDOW: usize = 25_000;
/// Items kept per tenant, most popular first, whatever a caller asks for (the cache is per tenant).
const POPULAR_KEPT: usize = 5_000;
/// How long computed popularity is reused before it is computed again.
pub const POPULAR_TTL: Duration = Duration::from_secs(600);

/// The most ordered items among the tenant's latest events.
#[derive(Debug, Default)]
pub struct Popularity {
    /// Item and the number of recent orders containing it (or views and cart adds), most first.
    pub items: Vec<(ItemId, u64)>,
    /// Orders looked at.
    pub orders: u64,
}

/// The popularity of every tenant, computed on demand.
#[derive(Default)]
pub struct PopularItems {
    cached: Mutex<HashMap<TenantId, (Instant, Arc<Popularity>)>>,
}

impl PopularItems {
    /// The tenant's popular items (at most [`POPULAR_KEPT`]; take the first ones you need); computed when missing
    /// or older than [`POPULAR_TTL`]. Blocking.
    pub fn get(&self, store: &dyn Store, tenant: &TenantId) -> StoreResult<Arc<Popularity>> {
        if let Some((at, cached)) = self.cached.lock().expect("popularity cache poisoned").get(tenant)
            && at.elapsed() < POPULAR_TTL
        {
            return Ok(cached.clone());
        }
        let computed = Arc::new(compute(store, tenant, POPULAR_KEPT)?);
        self.cached
            .lock()
            .expect("popularity cache poisoned")
            .insert(tenant.clone(), (Instant::now(), computed.clone()));
        Ok(computed)
    }
}

impl PopularItems {
    /// Drops `tenant`'s popularity (events left the log), so the next call computes it again.
    pub fn forget(&self, tenant: &TenantId) {
        self.cached.lock().expect("popularity cache poisoned").remove(tenant);
    }
}

fn compute(store: &dyn Store, tenant: &TenantId, keep: usize) -> StoreResult<Popularity> {
    let events = store.recent_events(tenant, POPULAR_WINDOW)?;
    let mut ordered: HashMap<&ItemId, u64> = HashMap::new();
    let mut browsed: HashMap<&ItemId, u64> = HashMap::new();
    let mut orders = 0;
    for stored in &events {
        match &stored.event.kind {
            EventKind::Purchase { lines, .. } => {
                orders += 1;
                let distinct: HashSet<&ItemId> = lines.iter().map(|l| &l.item_id).collect();
                for id in distinct {
                    *ordered.entry(id).or_default() += 1;
                }
            }
            EventKind::View { item_id, .. } | EventKind::AddToCart { item_id, .. } => {
                *browsed.entry(item_id).or_default() += 1;
            }
            _ => {}
        }
    }
    // Without recent orders, fall back to what visitors looked at and put in baskets.
    let counts = if ordered.is_empty() { browsed } else { ordered };
    let mut items: Vec<(ItemId, u64)> = counts.into_iter().map(|(id, n)| (id.clone(), n)).collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(keep);
    Ok(Popularity { items, orders })
}
