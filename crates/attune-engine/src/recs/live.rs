//! Between trainings: the order baskets logged after the served model's last scanned event, counted as they
//! arrive, so `bought_together` and `complete_cart` follow new orders without a full training. A new item
//! bought together with an existing one becomes its companion (and the other way round) once the pair passes
//! the same significance test as in training ([`attune_recs::BoughtTogether::for_items_with`]).
//!
//! Each served model carries its own [`LiveBaskets`], starting at its `events_through_seq`. A request that
//! finds them older than [`LIVE_REFRESH`] starts a background catch-up ([`LiveBaskets::catch_up`]) that reads
//! only the events after the last one counted, at most [`CATCH_UP_EVENTS`] at a time, and adds their baskets
//! under a short write lock; the request never waits for it. Every process sharing the store counts from the
//! log itself, so replicas agree. When data leaves the log (erasure, retention), the counts start again from
//! the model's sequence number ([`LiveBaskets::forget`]), so nothing erased is still counted.

use super::shopper::subject_key;
use attune_core::{EventKind, TenantId};
use attune_recs::{BasketDelta, IdMap};
use attune_store::{Store, StoreResult};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

/// How often a served model's live counts catch up with the log (at most; only while requests come).
pub const LIVE_REFRESH: Duration = Duration::from_secs(10);
/// Most events one catch-up reads; past that the next request starts another at once.
pub const CATCH_UP_EVENTS: usize = 40 * CHUNK;
/// Events read per store call.
const CHUNK: usize = 5_000;

/// Whether work scheduled at `next_ms` (ms since the epoch) is due at `now_ms`; the one caller that sees it due
/// moves it `interval_ms` on and gets `true`, every other caller `false` until then.
pub fn claim_due(next_ms: &AtomicI64, now_ms: i64, interval_ms: i64) -> bool {
    let due = next_ms.load(Ordering::Relaxed);
    let next = now_ms.saturating_add(interval_ms);
    now_ms >= due && next_ms.compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed).is_ok()
}

/// The baskets counted since a model's fit, and the items first seen in them.
#[derive(Debug, Default)]
pub struct LiveCounts {
    /// The last event sequence number counted.
    pub through_seq: i64,
    /// Items the model does not know, at indices after the model's own (`model items + index here`).
    pub new_items: IdMap,
    pub baskets: BasketDelta,
}

impl LiveCounts {
    /// The index of `id` among the model's items (`items`) followed by the new ones.
    pub fn index(&self, items: &IdMap, id: &str) -> Option<u32> {
        items.index(id).or_else(|| Some(self.new_items.index(id)? + items.len() as u32))
    }

    /// The id at `index` among the model's items followed by the new ones.
    pub fn id<'a>(&'a self, items: &'a IdMap, index: u32) -> Option<&'a str> {
        match index.checked_sub(items.len() as u32) {
            None => items.id(index),
            Some(new) => self.new_items.id(new),
        }
    }

    fn add_basket(&mut self, items: &IdMap, basket: &[&str]) {
        let indices: Vec<u32> = basket
            .iter()
            .map(|id| match items.index(id) {
                Some(index) => index,
                None => self.new_items.intern(id) + items.len() as u32,
            })
            .collect();
        self.baskets.add(&indices);
    }
}

/// A served model's live counts and when they next catch up.
#[derive(Debug)]
pub struct LiveBaskets {
    /// The model's own `events_through_seq`: where counting starts (again, after [`Self::forget`]).
    base_seq: i64,
    counts: RwLock<LiveCounts>,
    /// When a request next starts a catch-up (ms since the epoch).
    next_refresh_ms: AtomicI64,
}

impl LiveBaskets {
    /// Nothing counted yet; the first request starts a catch-up.
    pub fn new(base_seq: i64) -> Self {
        Self {
            base_seq,
            counts: RwLock::new(LiveCounts { through_seq: base_seq, ..LiveCounts::default() }),
            next_refresh_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// The counts as they are now (a read lock, held briefly by requests).
    pub fn read(&self) -> RwLockReadGuard<'_, LiveCounts> {
        self.counts.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a catch-up is due at `now_ms`; `true` to exactly one caller per [`LIVE_REFRESH`].
    pub fn claim_refresh(&self, now_ms: i64) -> bool {
        claim_due(&self.next_refresh_ms, now_ms, LIVE_REFRESH.as_millis() as i64)
    }

    /// Counts the baskets of the events logged after the last one counted (at most [`CATCH_UP_EVENTS`]; when
    /// more remain, the next request starts another catch-up). `items` are the model's. Returns the events read.
    pub fn catch_up(&self, store: &dyn Store, tenant: &TenantId, items: &IdMap) -> StoreResult<usize> {
        let mut through = self.read().through_seq;
        let mut read = 0;
        while read < CATCH_UP_EVENTS {
            let chunk = store.events_after(tenant, through, CHUNK)?;
            let Some(last) = chunk.last() else { break };
            let baskets: Vec<Vec<&str>> = chunk
                .iter()
                .filter(|stored| subject_key(&stored.event).is_some())
                .filter_map(|stored| match &stored.event.kind {
                    EventKind::Purchase { lines, .. } => Some(lines.iter().map(|l| l.item_id.as_str()).collect()),
                    _ => None,
                })
                .collect();
            let mut counts = self.counts.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if counts.through_seq != through {
                // Forgotten meanwhile: the next catch-up counts from the start again.
                return Ok(read);
            }
            baskets.iter().for_each(|basket| counts.add_basket(items, basket));
            counts.through_seq = last.seq;
            drop(counts);
            (through, read) = (last.seq, read + chunk.len());
            if chunk.len() < CHUNK {
                return Ok(read);
            }
        }
        self.next_refresh_ms.store(i64::MIN, Ordering::Release);
        Ok(read)
    }

    /// Drops everything counted: data left the log. The next request counts again from the model's sequence
    /// number.
    pub fn forget(&self) {
        *self.counts.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            LiveCounts { through_seq: self.base_seq, ..LiveCounts::default() };
        self.next_refresh_ms.store(i64::MIN, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_items_take_indices_after_the_models_and_map_back() {
        let mut items = IdMap::new();
        items.intern("a");
        items.intern("b");
        let mut counts = LiveCounts::default();
        counts.add_basket(&items, &["b", "new", "a"]);
        assert_eq!(counts.index(&items, "new"), Some(2));
        assert_eq!(counts.index(&items, "a"), Some(0));
        assert_eq!(counts.id(&items, 2), Some("new"));
        assert_eq!(counts.id(&items, 1), Some("b"));
        assert_eq!(counts.id(&items, 3), None);
        assert_eq!((counts.baskets.n_baskets(), counts.baskets.item_baskets(2)), (1, 1));
    }

    #[test]
    fn one_caller_per_interval_claims_the_refresh() {
        let live = LiveBaskets::new(7);
        assert!(live.claim_refresh(1_000));
        assert!(!live.claim_refresh(1_001), "claimed already");
        assert!(live.claim_refresh(1_000 + LIVE_REFRESH.as_millis() as i64));
        live.forget();
        assert!(live.claim_refresh(1), "forgetting makes a catch-up due");
        assert_eq!(live.read().through_seq, 7);
    }
}
