//! Past search queries per tenant, counted in memory for autocomplete and the storefront's search box:
//! seeded from the latest [`QUERY_SCAN`] events the first time a tenant's counts are needed, then counted as
//! queries are served. A query counts as it was searched (after spelling correction), so a misspelling is
//! never suggested to the next shopper.
//!
//! Suggestions are shown to everyone, so they must not repeat one shopper's words (a name and an address typed
//! into the search box) or let anyone fill them with junk:
//! - a query is suggested only once at least `min_shoppers` distinct shoppers searched it, and ranks by how many
//!   did: a shopper counts once, however often they search it;
//! - when a tenant holds [`MAX_QUERIES`] queries, the least searched tenth is evicted, so junk from a few
//!   shoppers gives way to what many search;
//! - an erased shopper's searches are taken out of the counts.
//!
//! Shoppers are kept as 64-bit hashes of their ids, at most [`SHOPPERS_KEPT`] per query; beyond that a query is
//! popular enough that its count grows by one per search.

use crate::error::EngineResult;
use attune_core::input::ScalarValue;
use attune_core::{AnonymousId, Event, EventKind, SessionId, TenantId, UserId};
use attune_search::{Autocomplete, Suggestion, SuggestionSource};
use attune_store::Store;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Latest events scanned for past search queries when a tenant's query counts are first needed.
const QUERY_SCAN: usize = 20_000;
/// Most distinct past queries kept per tenant for autocomplete.
pub const MAX_QUERIES: usize = 5_000;
/// Distinct shoppers remembered per query.
const SHOPPERS_KEPT: usize = 64;
/// Distinct shoppers a query needs before it is suggested, unless configured otherwise.
pub const DEFAULT_MIN_SHOPPERS: usize = 5;
/// The `search` event's context key holding the query as searched when spelling correction changed it (the
/// event's `query` is what the shopper typed).
pub const CORRECTED_QUERY_KEY: &str = "corrected_query";

/// Who searched: a user, an anonymous visitor or a session (by id), or nobody known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Searcher(Option<u64>);

impl Searcher {
    /// The shopper named by `kind` (`user`, `anonymous`, `session`) and `id`.
    pub fn named(kind: &str, id: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        (kind, id).hash(&mut hasher);
        Self(Some(hasher.finish()))
    }

    pub const UNKNOWN: Self = Self(None);

    /// The user, else the anonymous visitor, else the session.
    pub fn of(user: Option<&UserId>, anonymous: Option<&AnonymousId>, session: Option<&SessionId>) -> Self {
        match (user, anonymous, session) {
            (Some(user), _, _) => Self::named("user", user.as_str()),
            (None, Some(anonymous), _) => Self::named("anonymous", anonymous.as_str()),
            (None, None, Some(session)) => Self::named("session", session.as_str()),
            (None, None, None) => Self::UNKNOWN,
        }
    }

    fn of_event(event: &Event) -> Self {
        Self::of(event.subject.user_id.as_ref(), event.subject.anonymous_id.as_ref(), event.session_id.as_ref())
    }
}

/// One past query: how many distinct shoppers searched it (as far as known) and who.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct QueryCount {
    shoppers: u64,
    seen: HashSet<u64>,
    /// The tenant's search counter when it was last searched, to evict the stalest of equals first.
    last: u64,
}

/// One tenant's past queries.
#[derive(Debug, Default)]
struct TenantQueries {
    queries: HashMap<String, QueryCount>,
    searches: u64,
}

impl TenantQueries {
    fn add(&mut self, query: &str, searcher: Searcher) {
        let key = normalise_query(query);
        if key.is_empty() {
            return;
        }
        if self.queries.len() >= MAX_QUERIES && !self.queries.contains_key(&key) {
            self.evict();
        }
        self.searches += 1;
        let count = self.queries.entry(key).or_default();
        count.last = self.searches;
        let Searcher(Some(hash)) = searcher else { return };
        if count.seen.contains(&hash) {
            return;
        }
        if count.seen.len() < SHOPPERS_KEPT {
            count.seen.insert(hash);
        }
        count.shoppers += 1;
    }

    /// Drops the least searched tenth of the queries (the stalest first among equals).
    fn evict(&mut self) {
        let mut ranked: Vec<(u64, u64, String)> =
            self.queries.iter().map(|(query, count)| (count.shoppers, count.last, query.clone())).collect();
        ranked.sort_unstable();
        for (_, _, query) in ranked.into_iter().take(MAX_QUERIES.div_ceil(10)) {
            self.queries.remove(&query);
        }
    }

    fn forget(&mut self, searcher: Searcher) {
        let Searcher(Some(hash)) = searcher else { return };
        for count in self.queries.values_mut() {
            if count.seen.remove(&hash) {
                count.shoppers -= 1;
            }
        }
        self.queries.retain(|_, count| count.shoppers > 0);
    }

    /// The queries at least `min_shoppers` shoppers searched, with how many did.
    fn suggestable(&self, min_shoppers: usize) -> impl Iterator<Item = (&str, u64)> {
        self.queries
            .iter()
            .filter(move |(_, count)| count.shoppers >= min_shoppers as u64)
            .map(|(query, count)| (query.as_str(), count.shoppers))
    }
}

/// The counts of every tenant.
pub struct PastQueries {
    tenants: Mutex<HashMap<TenantId, TenantQueries>>,
    /// Distinct shoppers a query needs before it is suggested.
    min_shoppers: usize,
}

impl Default for PastQueries {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_SHOPPERS)
    }
}

impl PastQueries {
    pub fn new(min_shoppers: usize) -> Self {
        Self { tenants: Mutex::default(), min_shoppers: min_shoppers.max(1) }
    }

    /// Counts a served query of `searcher` (after the tenant's past queries were loaded).
    pub fn count(&self, store: &dyn Store, tenant: &TenantId, query: &str, searcher: Searcher) -> EngineResult<()> {
        self.ensure(store, tenant)?;
        let mut all = self.tenants.lock().expect("query counts poisoned");
        all.entry(tenant.clone()).or_default().add(query, searcher);
        Ok(())
    }

    /// Takes `searcher`'s searches out of the tenant's counts (an erasure).
    pub fn forget(&self, tenant: &TenantId, searcher: Searcher) {
        if let Some(queries) = self.tenants.lock().expect("query counts poisoned").get_mut(tenant) {
            queries.forget(searcher);
        }
    }

    /// Past queries starting like `typed` (typo tolerant) that enough shoppers searched, most searched first.
    pub fn suggest(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        typed: &str,
        limit: usize,
    ) -> EngineResult<Vec<Suggestion>> {
        self.ensure(store, tenant)?;
        let queries = {
            let all = self.tenants.lock().expect("query counts poisoned");
            let counts: Vec<(String, u64)> = all
                .get(tenant)
                .map(|t| t.suggestable(self.min_shoppers).map(|(q, n)| (q.to_string(), n)).collect())
                .unwrap_or_default();
            Autocomplete::new(counts.iter().map(|(q, c)| (q.as_str(), *c)).collect::<Vec<_>>(), std::iter::empty())
        };
        Ok(queries.suggest(typed, limit))
    }

    /// The tenant's most searched queries that enough shoppers searched, most first.
    pub fn popular(&self, store: &dyn Store, tenant: &TenantId, limit: usize) -> EngineResult<Vec<String>> {
        self.ensure(store, tenant)?;
        let all = self.tenants.lock().expect("query counts poisoned");
        let mut counts: Vec<(&str, u64)> =
            all.get(tenant).map(|t| t.suggestable(self.min_shoppers).collect()).unwrap_or_default();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        Ok(counts.into_iter().take(limit).map(|(query, _)| query.to_string()).collect())
    }

    /// Loads the tenant's past queries from the store the first time they are needed. Blocking.
    fn ensure(&self, store: &dyn Store, tenant: &TenantId) -> EngineResult<()> {
        if self.tenants.lock().expect("query counts poisoned").contains_key(tenant) {
            return Ok(());
        }
        let mut queries = TenantQueries::default();
        // Oldest first, as they were served.
        for stored in store.recent_events(tenant, QUERY_SCAN)?.into_iter().rev() {
            if let EventKind::Search { query, .. } = &stored.event.kind {
                let searched = match stored.event.context.get(CORRECTED_QUERY_KEY) {
                    Some(ScalarValue::Text(corrected)) => corrected,
                    _ => query,
                };
                queries.add(searched, Searcher::of_event(&stored.event));
            }
        }
        self.tenants.lock().expect("query counts poisoned").entry(tenant.clone()).or_insert(queries);
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
    use attune_core::{Channel, EventId, Subject, Timestamp};
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
        let queries = PastQueries::new(1);
        queries.ensure(&store, &tenant).unwrap();
        let all = queries.tenants.lock().unwrap();
        let counted: Vec<(&str, u64)> = all[&tenant].suggestable(1).collect();
        assert_eq!(counted, [("waterproof boots", 1)], "one shopper, counted once");
    }

    fn searches(queries: &mut TenantQueries, query: &str, shoppers: std::ops::Range<usize>) {
        for n in shoppers {
            queries.add(query, Searcher::named("user", &format!("u{n}")));
        }
    }

    #[test]
    fn a_query_is_suggested_only_once_enough_shoppers_searched_it() {
        let mut queries = TenantQueries::default();
        for _ in 0..50 {
            queries.add("jane doe 42 baker street gift", Searcher::named("user", "jane"));
        }
        searches(&mut queries, "rain jacket", 0..4);
        assert_eq!(queries.suggestable(5).count(), 0, "one shopper, however often; four shoppers");
        searches(&mut queries, "rain jacket", 4..5);
        assert_eq!(queries.suggestable(5).collect::<Vec<_>>(), [("rain jacket", 5)]);
        // Nobody known counts as nobody.
        for _ in 0..10 {
            queries.add("anonymous words", Searcher::UNKNOWN);
        }
        assert_eq!(queries.suggestable(5).count(), 1);
    }

    #[test]
    fn junk_gives_way_to_what_many_search() {
        let mut queries = TenantQueries::default();
        searches(&mut queries, "wool socks", 0..6);
        for junk in 0..(MAX_QUERIES + 100) {
            queries.add(&format!("junk {junk}"), Searcher::named("user", "spammer"));
        }
        assert!(queries.queries.len() <= MAX_QUERIES);
        assert_eq!(queries.suggestable(5).collect::<Vec<_>>(), [("wool socks", 6)], "the real query survives");
        searches(&mut queries, "linen shirt", 10..16);
        assert!(queries.suggestable(5).any(|(q, _)| q == "linen shirt"), "a new real query is counted");
    }

    #[test]
    fn an_erased_shopper_is_taken_out_of_the_counts() {
        let mut queries = TenantQueries::default();
        searches(&mut queries, "rain jacket", 0..5);
        queries.add("my own words", Searcher::named("user", "u0"));
        queries.forget(Searcher::named("user", "u0"));
        assert_eq!(queries.suggestable(1).collect::<Vec<_>>(), [("rain jacket", 4)]);
    }
}
