//! Recently read shopper activity, kept decoded in memory: every personalized list reads its shopper's
//! latest events, and decoding them from JSON took more time than anything else in the read. An entry is
//! used only after the store confirms, by one index-only lookup per read, that the shopper's newest
//! activity sequence number and the tenant's event-deletion generation are what the entry was built
//! from. Events are append-only with sequence numbers that are never reused (AUTOINCREMENT), and every
//! deletion of events bumps the generation in the same transaction, so an entry that passes is exactly
//! what a fresh read would return; when only new events arrived, just those are read and put in front.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attune_core::Event;

/// Whose activity an entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ActivityKey {
    pub tenant: String,
    pub anonymous: bool,
    pub shopper: String,
}

/// A shopper's newest events (newest first) as of `newest_seq` and deletion generation `deletions`.
#[derive(Debug, Clone)]
pub(super) struct CachedActivity {
    pub newest_seq: i64,
    pub deletions: i64,
    pub events: Arc<[Event]>,
    /// The read that filled the entry asked for this many events (at least as many as it holds).
    pub limit: usize,
}

impl CachedActivity {
    /// Whether the entry holds every event the shopper has (the read that filled it came back short).
    pub fn holds_all(&self) -> bool {
        self.events.len() < self.limit
    }
}

/// A bounded map of [`CachedActivity`]; when the events it holds pass the bound, entries are dropped
/// (whichever the map yields first) until a quarter of the room is free again.
pub(super) struct ActivityCache {
    max_events: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_shopper: HashMap<ActivityKey, CachedActivity>,
    events: usize,
}

impl ActivityCache {
    pub fn new(max_events: usize) -> Self {
        Self { max_events, entries: Mutex::new(Entries::default()) }
    }

    pub fn enabled(&self) -> bool {
        self.max_events > 0
    }

    pub fn get(&self, key: &ActivityKey) -> Option<CachedActivity> {
        self.entries.lock().expect("activity cache poisoned").by_shopper.get(key).cloned()
    }

    pub fn put(&self, key: ActivityKey, entry: CachedActivity) {
        if !self.enabled() || entry.events.len() > self.max_events {
            return;
        }
        let mut entries = self.entries.lock().expect("activity cache poisoned");
        let added = entry.events.len();
        if let Some(old) = entries.by_shopper.insert(key, entry) {
            entries.events -= old.events.len();
        }
        entries.events += added;
        if entries.events > self.max_events {
            let keep = self.max_events - self.max_events / 4;
            let mut held = entries.events;
            entries.by_shopper.retain(|_, e| {
                if held <= keep {
                    return true;
                }
                held -= e.events.len();
                false
            });
            entries.events = held;
        }
    }

    pub fn remove(&self, key: &ActivityKey) {
        let mut entries = self.entries.lock().expect("activity cache poisoned");
        if let Some(old) = entries.by_shopper.remove(key) {
            entries.events -= old.events.len();
        }
    }

    #[cfg(test)]
    pub fn held_events(&self) -> usize {
        self.entries.lock().expect("activity cache poisoned").events
    }
}
