//! Past search queries per tenant, counted in memory for autocomplete and the storefront's search box:
//! seeded from the latest [`QUERY_SCAN`] events the first time a tenant's counts are needed, then counted as
//! queries are served. A query counts as it was searched (after spelling correction), so a misspelling is
//! never suggested to the next shopper.

use crate::error::EngineResult;
use attune_core::input::ScalarValue;
use attune_core::{EventKind, TenantId};
use attune_search::{Autocomplete, Suggestion, SuggestionSource};
use attune_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Latest events scanned for past search queries when a tenant's query counts are first needed.
const QUERY_SCAN: usize = 20_000;
/// Most distinct past queries kept per tenant for autocomplete.
const MAX_QUERIES: usize = 5_000;
/// The `search` event's context key holding the query as searched when spelling correction changed it (the
/// event's `query` is what the shopper typed).
pub const CORRECTED_QUERY_KEY: &str = "corrected_query";

/// The counts of every tenant.
#[derive(Default)]
pub struct PastQueries {
    /// Normalised query → times searched, per tenant.
    counts: Mutex<HashMap<TenantId, HashMap<String, u64>>>,
}

impl PastQueries {
    /// Counts a served query (after the tenant's past queries were loaded).
    pub fn count(&self, store: &dyn Store, tenant: &TenantId, query: &str) -> EngineResult<()> {
        self.ensure(store, tenant)?;
        let key = normalise_query(query);
        if key.is_empty() {
            return Ok(());
        }
        let mut all = self.counts.lock().expect("query counts poisoned");
        let counts = all.entry(tenant.clone()).or_default();
        if counts.len() >= MAX_QUERIES && !counts.contains_key(&key) {
            return Ok(());
        }
        *counts.entry(key).or_default() += 1;
        Ok(())
    }

    /// Past queries starting like `typed` (typo tolerant), most searched first.
    pub fn suggest(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        typed: &str,
        limit: usize,
    ) -> EngineResult<Vec<Suggestion>> {
        self.ensure(store, tenant)?;
        let queries = {
            let all = self.counts.lock().expect("query counts poisoned");
            let counts = all.get(tenant).cloned().unwrap_or_default();
            Autocomplete::new(counts.iter().map(|(q, c)| (q.as_str(), *c)).collect::<Vec<_>>(), std::iter::empty())
        };
        Ok(queries.suggest(typed, limit))
    }

    /// The tenant's most searched queries, most frequent first.
    pub fn popular(&self, store: &dyn Store, tenant: &TenantId, limit: usize) -> EngineResult<Vec<String>> {
        self.ensure(store, tenant)?;
        let all = self.counts.lock().expect("query counts poisoned");
        let mut counts: Vec<(&String, &u64)> = all.get(tenant).map(|c| c.iter().collect()).unwrap_or_default();
        counts.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        Ok(counts.into_iter().take(limit).map(|(query, _)| query.clone()).collect())
    }

    /// Loads the tenant's past queries from the store the first time they are needed. Blocking.
    fn ensure(&self, store: &dyn Store, tenant: &TenantId) -> EngineResult<()> {
        if self.counts.lock().expect("query counts poisoned").contains_key(tenant) {
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
        self.counts.lock().expect("query counts poisoned").entry(tenant.clone()).or_insert(counts);
        Ok(())
    }
}

fn normalise_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Past queries first, then `titles`' suggestions, each text once (case-insensitive), at most `limit`.
pub fn merge_suggestions(queries: Vec<Suggestion>, titles: Vec<Suggestion>, limit: usize) -> Vec<Suggestion> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for mut suggestion in queries.into_iter().chain(titles) {
        if out.len() >= limit {
            break;
        }
        if seen.insert(suggestion.text.to_lowercase()) {
            if suggestion.source != SuggestionSource::Query {
                suggestion.count = 0;
            }
            out.push(suggestion);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{Channel, Event, EventId, Subject, Timestamp, UserId};
    use attune_store::{SqliteOptions, SqliteStore};
    use std::collections::BTreeMap;

    /// After a restart, autocomplete's past queries are read back from the `search` events: a misspelt
    /// search counts as what was searched, as it did when it was served.
    #[test]
    fn past_queries_are_read_back_as_searched() {
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
        let queries = PastQueries::default();
        queries.ensure(&store, &tenant).unwrap();
        let counts = queries.counts.lock().unwrap();
        assert_eq!(counts[&tenant], HashMap::from([("waterproof boots".to_string(), 2)]));
    }
}
