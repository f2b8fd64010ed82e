//! A least-recently-used cache of query vectors, keyed by the embedded text: a repeated query (the next page,
//! a facet refinement, a popular query) is not embedded again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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
}
