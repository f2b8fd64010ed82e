//! One search, top-down: correct the spelling against the catalog, embed the corrected query (cached), build
//! the shopper's profile from their latest events, search the tenant's index, then count the query for
//! autocomplete and queue a `search` event for a known shopper (query as typed, the page's result ids, the
//! session, the `search_id` that a later `click` carries to attribute itself, and the corrected query).

use super::embedding::{Embedder, EmbedderState};
use super::index::TenantIndex;
use super::queries::Searcher;
use super::queries::{CORRECTED_QUERY_KEY, PastQueries};
use crate::error::{EngineError, EngineResult};
use crate::event_log::EventLog;
use crate::popular::{PopularItems, Popularity};
use crate::privacy::{Consents, Personalization};
use attune_core::event::loggable_query;
use attune_core::input::ScalarValue;
use attune_core::{
    AnonymousId, Channel, Event, EventId, EventKind, FilterExpr, Item, ItemId, SessionId, Subject, TenantId, Timestamp,
    UserId,
};
use attune_search::{
    Facets, Filters, ParsedQuery, Retrieval, ScoreBreakdown, SearchMode, SearchRequest, ShopperProfile, SortOrder,
    is_in_stock,
};
use attune_store::{ShopperRef, Store};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A shopper's latest events that make up their search profile.
const SHOPPER_EVENTS: usize = 200;
/// Latest events of the tenant scanned for the events of a session without a known shopper.
const ANONYMOUS_SCAN: usize = 5_000;
/// Events this recent (before the newest one) are the shopper's current session.
const SESSION_WINDOW_MS: i64 = 30 * 60 * 1000;
/// Most session items used for session similarity.
const SESSION_ITEMS: usize = 10;

/// A validated search.
#[derive(Debug, Clone)]
pub struct SearchParams {
    pub query: String,
    pub user: Option<UserId>,
    pub anonymous: Option<AnonymousId>,
    /// The shopper's current session: its items are the profile's session items, and the `search` event is
    /// logged with it.
    pub session: Option<SessionId>,
    pub filter: Option<FilterExpr>,
    pub filters: Filters,
    pub sort: SortOrder,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    pub facets: bool,
    /// Correct misspelt words against the catalog before searching.
    pub correct_spelling: bool,
    /// Store nothing: no `search` event, and the query is not counted for autocomplete (the console's
    /// playground, previews).
    pub dry_run: bool,
}

/// One result.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub item: Item,
    /// Why it ranks where it does.
    pub score: ScoreBreakdown,
}

/// The answer to a search.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// Identifies this result list (logged with the `search` event).
    pub search_id: String,
    pub mode: SearchMode,
    pub warnings: Vec<String>,
    /// The query as searched, when spelling correction changed it.
    pub corrected_query: Option<String>,
    /// Whether semantic similarity used item vectors tuned to this catalog.
    pub catalog_tuned: bool,
    /// What the query was understood to ask for.
    pub parsed: ParsedQuery,
    /// Size of the whole result set.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub hits: Vec<SearchHit>,
    pub facets: Option<Facets>,
    /// Set when the query has words and nothing matches them.
    pub no_match: Option<NoMatch>,
    /// Whether the shopper's own history could rank the results.
    pub personalization: Personalization,
}

/// What a search reads and where it logs.
pub struct SearchContext<'a> {
    pub store: &'a dyn Store,
    pub consents: &'a Consents,
    pub embedder: &'a Embedder,
    pub queries: &'a PastQueries,
    pub events: &'a EventLog,
    pub popular: &'a PopularItems,
}

/// Popular items offered, labelled as such, when a query matches nothing.
const NO_MATCH_POPULAR: usize = 8;

/// What a query that matches nothing gets instead of hits, each part labelled.
#[derive(Debug, Clone)]
pub struct NoMatch {
    /// The catalog's reading of the query when spelling correction was turned off and would change it.
    pub did_you_mean: Option<String>,
    /// The shop's best sellers (in stock), not results of the query.
    pub popular: Vec<Item>,
}

/// Runs one search (blocking: embeds the query, reads the shopper's events) and, unless it is a dry run, logs it.
pub fn search(
    context: &SearchContext<'_>,
    tenant: &TenantId,
    index: &TenantIndex,
    params: &SearchParams,
) -> EngineResult<SearchOutcome> {
    let engine = &index.engine;
    let mut warnings = Vec::new();
    // Corrected here rather than inside the engine's search, so the embedding is of the corrected words (a
    // misspelt word's embedding is noise).
    let corrected_query = if params.correct_spelling { engine.correct_spelling(&params.query) } else { None };
    let query = corrected_query.as_deref().unwrap_or(&params.query);
    let query_vector = query_vector(context.embedder, index, query, &mut warnings)?;
    let personalization = match (&params.user, &params.anonymous, &params.session) {
        // A session id alone: the session's events, whoever's they are.
        (None, None, Some(_)) => context.consents.session_personalization(tenant)?,
        (user, anonymous, _) => context.consents.personalization(tenant, user.as_ref(), anonymous.as_ref())?,
    };
    let profile = match personalization {
        Personalization::Personalized => shopper_profile(context.store, tenant, index, params)?,
        Personalization::NotPersonalized(_) => None,
    };
    let filter = params.filter.clone();
    let predicate = move |item: &Item| filter.as_ref().is_none_or(|f| f.matches(item));
    let mut request = SearchRequest::new(query);
    request.correct_spelling = false;
    request.query_vector = query_vector.as_deref().map(Vec::as_slice);
    if query_vector.is_none() {
        // The warnings already say why there is no semantic retrieval.
        request.retrieval = Retrieval::LexicalOnly;
    }
    request.filters = &params.filters;
    request.predicate = params.filter.as_ref().map(|_| &predicate as &dyn Fn(&Item) -> bool);
    request.profile = profile.as_ref();
    request.sort = params.sort;
    request.offset = (params.page - 1) * params.per_page;
    request.limit = params.per_page;
    request.facets = params.facets;
    let popularity = context.popular.get(context.store, tenant)?;
    let signals = index.signals(&popularity);
    request.signals = Some(signals.as_slice());
    let response = engine.search(&request).map_err(EngineError::internal)?;
    warnings.extend(response.warnings.iter().cloned());
    let search_id = uuid::Uuid::now_v7().to_string();
    let result_ids: Vec<ItemId> = response.hits.iter().map(|h| h.item.id.clone()).collect();
    if !params.dry_run && !params.query.trim().is_empty() {
        // Autocomplete suggests what was searched: a misspelling is not offered to the next shopper.
        let searcher = Searcher::of(params.user.as_ref(), params.anonymous.as_ref(), params.session.as_ref());
        context.queries.count(context.store, tenant, query, searcher)?;
        if let Some(event) = search_event(params, &search_id, corrected_query.as_deref(), result_ids) {
            // Queued for the batched writer: a search never waits for its event's disk sync.
            context.events.record(tenant.clone(), event);
        }
    }
    tracing::debug!(tenant = %tenant, mode = ?response.mode, total = response.total, "search served");
    Ok(SearchOutcome {
        search_id,
        mode: response.mode,
        warnings,
        corrected_query,
        catalog_tuned: index.catalog_tuned,
        parsed: response.parsed,
        total: response.total,
        page: params.page,
        per_page: params.per_page,
        hits: response.hits.iter().map(|hit| SearchHit { item: hit.item.clone(), score: hit.score }).collect(),
        facets: response.facets,
        no_match: (response.total == 0 && !params.query.trim().is_empty())
            .then(|| no_match(index, &popularity, params)),
        personalization,
    })
}

/// The labelled alternatives of a query that matched nothing.
fn no_match(index: &TenantIndex, popularity: &Popularity, params: &SearchParams) -> NoMatch {
    let engine = &index.engine;
    let did_you_mean = if params.correct_spelling { None } else { engine.correct_spelling(&params.query) };
    let popular = popularity
        .items
        .iter()
        .filter_map(|(id, _)| engine.position_of(id).map(|p| &engine.items()[p]))
        .filter(|item| is_in_stock(item))
        .take(NO_MATCH_POPULAR)
        .cloned()
        .collect();
    NoMatch { did_you_mean, popular }
}

/// The query's vector when semantic retrieval can run; otherwise a warning says why not.
fn query_vector(
    embedder: &Embedder,
    index: &TenantIndex,
    query: &str,
    warnings: &mut Vec<String>,
) -> EngineResult<Option<Arc<Vec<f32>>>> {
    let engine = &index.engine;
    match embedder.state() {
        EmbedderState::Ready { embedder: model, .. } if engine.has_vectors() && !query.trim().is_empty() => {
            let parsed = attune_search::parse_query(query, engine.vocabulary());
            let text = if parsed.text.trim().is_empty() { query.to_string() } else { parsed.text };
            Ok(Some(embedder.query_vector(&model, &text)?))
        }
        EmbedderState::Ready { .. } => {
            if !engine.has_vectors() && !engine.items().is_empty() {
                warnings.push(format!(
                    "item embeddings are being computed ({} of {} items); results are lexical only",
                    index.embedded,
                    engine.items().len()
                ));
            }
            Ok(None)
        }
        EmbedderState::Loading => {
            warnings.push("the embedding model is still loading; results are lexical only".to_string());
            Ok(None)
        }
        EmbedderState::Unavailable(reason) => {
            warnings.push(format!("semantic search is off: {reason}; results are lexical only"));
            Ok(None)
        }
    }
}

/// The `search` event of a search with a known shopper (`None` without one).
fn search_event(
    params: &SearchParams,
    search_id: &str,
    corrected_query: Option<&str>,
    result_ids: Vec<ItemId>,
) -> Option<Event> {
    if params.user.is_none() && params.anonymous.is_none() {
        return None;
    }
    let mut context = BTreeMap::from([
        ("source".to_string(), ScalarValue::Text("search".to_string())),
        ("search_id".to_string(), ScalarValue::Text(search_id.to_string())),
    ]);
    if let Some(corrected) = corrected_query {
        context.insert(CORRECTED_QUERY_KEY.to_string(), ScalarValue::Text(loggable_query(corrected)));
    }
    Some(Event {
        id: EventId::generate(),
        subject: Subject { user_id: params.user.clone(), anonymous_id: params.anonymous.clone() },
        session_id: params.session.clone(),
        timestamp: Timestamp::now(),
        channel: Channel::Web,
        store_id: None,
        context,
        kind: EventKind::Search { query: loggable_query(&params.query), result_ids },
    })
}

/// The shopper's events a profile is built from: a user's or anonymous visitor's own latest events (their
/// searches and the impressions they were shown left out), or a session's when only the session is known.
fn profile_events(store: &dyn Store, tenant: &TenantId, params: &SearchParams) -> EngineResult<Option<Arc<[Event]>>> {
    Ok(Some(if let Some(user) = &params.user {
        store.shopper_activity(tenant, ShopperRef::User(user), SHOPPER_EVENTS)?
    } else if let Some(anonymous) = &params.anonymous {
        store.shopper_activity(tenant, ShopperRef::Anonymous(anonymous), SHOPPER_EVENTS)?
    } else if let Some(session) = &params.session {
        let recent = store.recent_events(tenant, ANONYMOUS_SCAN)?.into_iter().map(|s| s.event);
        recent.filter(|e| e.session_id.as_ref() == Some(session)).take(SHOPPER_EVENTS).collect()
    } else {
        return Ok(None);
    }))
}

/// The shopper's profile from their latest events: purchases weigh 5, add-to-cart 3, wishlist 2, clicks and
/// views 1; the items viewed, clicked, put in the cart or on the wishlist, or bought in the session (the given
/// session's events, else those of the 30 minutes before the shopper's newest event) are the session items, so a
/// catalog without brands, categories or attributes is still personalised by similarity to them.
/// Without a user or anonymous id, a session id alone is the shopper. `None` when there is nothing to personalise
/// on.
fn shopper_profile(
    store: &dyn Store,
    tenant: &TenantId,
    index: &TenantIndex,
    params: &SearchParams,
) -> EngineResult<Option<ShopperProfile>> {
    let Some(events) = profile_events(store, tenant, params)? else { return Ok(None) };
    let engine = &index.engine;
    let item = |id: &ItemId| engine.position_of(id).map(|p| &engine.items()[p]);
    let mut interactions: Vec<(&Item, f32)> = Vec::new();
    for event in events.iter() {
        match &event.kind {
            EventKind::Purchase { lines, .. } => {
                interactions.extend(lines.iter().filter_map(|l| item(&l.item_id)).map(|i| (i, 5.0)))
            }
            EventKind::AddToCart { item_id, .. } => interactions.extend(item(item_id).map(|i| (i, 3.0))),
            EventKind::Wishlist { item_id } => interactions.extend(item(item_id).map(|i| (i, 2.0))),
            EventKind::Click { item_id, .. } | EventKind::View { item_id, .. } => {
                interactions.extend(item(item_id).map(|i| (i, 1.0)))
            }
            _ => {}
        }
    }
    let session = session_items(index, params, &events);
    let profile = ShopperProfile::from_interactions(interactions).with_session(session);
    Ok((!profile.is_empty()).then_some(profile))
}

/// The items the shopper acted on in the current session, newest first, each once.
fn session_items(index: &TenantIndex, params: &SearchParams, events: &[Event]) -> Vec<ItemId> {
    let newest = events.iter().map(|e| e.timestamp.millis()).max().unwrap_or(0);
    let in_session = |e: &Event| match &params.session {
        Some(session) => e.session_id.as_ref() == Some(session),
        None => newest - e.timestamp.millis() <= SESSION_WINDOW_MS,
    };
    let acted = |e: &Event| {
        matches!(
            e.kind,
            EventKind::View { .. }
                | EventKind::Click { .. }
                | EventKind::AddToCart { .. }
                | EventKind::Wishlist { .. }
                | EventKind::Purchase { .. }
        )
    };
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|e| in_session(e) && acted(e))
        .flat_map(|e| e.kind.items())
        .filter(|id| index.engine.position_of(id).is_some() && seen.insert(*id))
        .take(SESSION_ITEMS)
        .cloned()
        .collect()
}
