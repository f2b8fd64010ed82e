//! Per-tenant recommendation serving state kept in memory, and the one code path that turns it into
//! recommendation lists for the API (`POST /v1/recommendations`) and the storefront's slots.
//!
//! The served [`RecsModel`] of a tenant (the weighted user × item matrix's item-kNN, popularity, trending
//! with a 7-day half-life measured from the tenant's last event, frequently-bought-together pairs, buy-it-again
//! intervals, the session-kNN index and the sequential next-item model) is trained, stored, loaded and swapped
//! in by [`crate::training`]; this module only reads it. A request takes the tenant's current model (an `Arc`)
//! and keeps it to the end, so a swap never disturbs it.
//!
//! The shopper's own events are read from the store at request time (their newest [`SHOPPER_EVENTS`] events
//! of their own doing, through the store's per-shopper index; impressions and searches are left out so the
//! lists a shopper is shown never push their history out of reach), so `recently_viewed`, `next`, `for_you`
//! and the exclusions see an event accepted a moment ago without waiting for a rebuild.
//!
//! Every scenario goes through one selection path ([`recommend_with_rules`]): candidate tiers (the scenario's
//! own signal, then its fallbacks) → hard rules (never a duplicate, an anchor, an excluded id, an item the
//! shopper marked `not_interested`, an already purchased item when asked, an item gone from the catalog, an
//! out-of-stock item when asked, an item failing the filter expression) → boosts (re-rank within a tier) →
//! diversity (at most N per category, maximal marginal relevance with item-kNN similarity) → explanations
//! naming the signal and the shopper's or request's items that caused each pick.
//!
//! Cold start: when the model's own signal leaves a list short (an item added after the last training has no
//! item-kNN neighbours; a shopper's history holds only such items), a content tier follows it: items like the
//! anchors by title words, brand, category path and attribute values ([`crate::catalog::CatalogContent`]),
//! explained by what they share ("brand puma, category shoes").

use crate::catalog::{CatalogContent, CatalogSnapshot};
use crate::error::ApiResult;
use crate::state::{AppState, blocking};
use crate::training::{FittedRecs, ensure_model, retrain_if_stale};
use attune_core::{AnonymousId, Event, EventKind, FilterExpr, Item, ItemId, TenantId, Timestamp, UserId};
use attune_recs::{InteractionWeights, interactions_from_events, keep_best};
use attune_store::{ShopperRef, Store};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

/// How many of a shopper's latest events make up their history for `for_you`.
pub const HISTORY_EVENTS: usize = 50;
/// How many of a shopper's latest events are read for exclusions, recently viewed and buy-it-again.
pub const SHOPPER_EVENTS: usize = 200;
/// A pause longer than this between a shopper's events starts a new session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;
/// Most candidates looked at (catalog and stock checks) for one list.
const MAX_CANDIDATES: usize = 5_000;
/// Most candidates asked of a per-request model (session kNN, sequential, buy again, bought together,
/// content). A list asks for [`TIER_FACTOR`] × the items it needs plus its exclusions (at least
/// [`MIN_TIER`]): enough after exclusions and filters, while the precomputed trending and popular tiers back
/// them up.
const TIER_CANDIDATES: usize = 500;
const TIER_FACTOR: usize = 4;
const MIN_TIER: usize = 40;
/// Candidates pooled per list item before boosts and diversity re-rank them.
const POOL_FACTOR: usize = 5;
const MIN_POOL: usize = 50;
const MS_PER_DAY: f64 = 86_400_000.0;
/// Most anchors of a content tier (the heaviest): each anchor's features reach thousands of catalog items,
/// and a few heavy anchors already say what the shopper is after.
const MAX_CONTENT_SOURCES: usize = 5;

/// What the server serves recommendations from, for one tenant: a decoded snapshot. Its parts are reached
/// through `Deref` (`model.knn`, `model.items`, ...).
pub struct RecsModel {
    /// The stored snapshot version it was decoded from.
    pub version: i64,
    /// When it was swapped in.
    pub loaded_at: Timestamp,
    pub fitted: FittedRecs,
    /// The log holds no event that training uses between `events_through_seq` and this sequence number
    /// (impressions and searches only), so a staleness check resumes here.
    pub(crate) checked_through: AtomicI64,
    /// When a request next checks whether the model is stale (ms since the epoch; `i64::MAX`: never).
    pub(crate) next_check_ms: AtomicI64,
    /// The trending and popular fallback tiers, ranked once per model on first use: every `for_you`,
    /// `trending` and `next` answer borrows them instead of ranking the whole catalog again.
    pub(crate) fallback_tiers: std::sync::OnceLock<[Vec<Candidate>; 2]>,
}

impl RecsModel {
    /// Wraps a fitted model for serving.
    pub(crate) fn new(version: i64, loaded_at: Timestamp, next_check_ms: i64, fitted: FittedRecs) -> Self {
        Self {
            version,
            loaded_at,
            checked_through: AtomicI64::new(fitted.events_through_seq),
            next_check_ms: AtomicI64::new(next_check_ms),
            fallback_tiers: std::sync::OnceLock::new(),
            fitted,
        }
    }
}

impl std::ops::Deref for RecsModel {
    type Target = FittedRecs;
    fn deref(&self) -> &FittedRecs {
        &self.fitted
    }
}

/// Where a recommended item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    SimilarItems,
    YourHistory,
    Trending,
    Popular,
    RecentlyViewed,
    BoughtTogether,
    BuyAgain,
    Session,
    Sequential,
    /// Cold start: alike in title, brand, category or attributes.
    SimilarContent,
}

impl Signal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SimilarItems => "similar_items",
            Self::YourHistory => "your_history",
            Self::Trending => "trending",
            Self::Popular => "popular",
            Self::RecentlyViewed => "recently_viewed",
            Self::BoughtTogether => "bought_together",
            Self::BuyAgain => "buy_again",
            Self::Session => "session",
            Self::Sequential => "sequential",
            Self::SimilarContent => "similar_content",
        }
    }
}

/// Why an item is recommended.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub signal: Signal,
    pub because_item_ids: Vec<ItemId>,
    pub text: String,
}

/// One recommended item.
#[derive(Debug, Clone)]
pub struct Recommended {
    pub item: Arc<Item>,
    pub score: f32,
    pub explanation: Explanation,
}

/// Who the list is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shopper {
    pub user: Option<UserId>,
    pub anonymous: Option<AnonymousId>,
}

/// What a list is computed from.
#[derive(Debug, Clone)]
pub enum Basis {
    /// Items similar to all of `anchors` together (one product, or a basket); anchors are never returned.
    Similar(Vec<ItemId>),
    /// Personalised from a shopper's recent history (the user here, else the rules' shopper); without
    /// history, trending then popular items.
    ForYou(Option<UserId>),
    /// Trending, then popular items.
    Trending,
    /// The shopper's latest viewed items, newest first.
    RecentlyViewed,
    /// Items significantly often bought with this one (then similar items).
    BoughtTogether(ItemId),
    /// Items significantly often bought with the cart's items (then similar items); cart items never return.
    CompleteCart(Vec<ItemId>),
    /// Items the shopper is due to buy again.
    BuyAgain,
    /// What comes next in the shopper's current session (session kNN), then after their ordered history
    /// (sequential model), then items like the session's, then trending items.
    Next,
}

/// A list request after validation.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub basis: Basis,
    pub count: usize,
    pub exclude: HashSet<ItemId>,
    pub in_stock_only: bool,
}

/// How a boost changes the score of an item that matches its filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoostEffect {
    Multiply(f32),
    Add(f32),
}

/// A soft rule: items matching `filter` move up (or down) within their tier.
#[derive(Debug, Clone)]
pub struct Boost {
    pub filter: FilterExpr,
    pub effect: BoostEffect,
}

/// Business rules beside the basis; the default applies none.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The shopper, for exclusions and shopper-based scenarios.
    pub shopper: Shopper,
    /// Only items matching this expression.
    pub filter: Option<FilterExpr>,
    pub boosts: Vec<Boost>,
    /// At most this many items of one category (the full category path).
    pub max_per_category: Option<usize>,
    /// Maximal marginal relevance: 1 = relevance only, 0 = dissimilarity only.
    pub mmr_lambda: Option<f32>,
    /// Leave out what the shopper bought; `None` means the scenario's default (true for `for_you`).
    pub exclude_purchased: Option<bool>,
}

/// The model `tenant` is served from. Never waits for a training, except for a tenant that has no model at
/// all yet (nothing stored): that first request trains one. A model older than the training interval is
/// checked for new events in the background, and retrained there when it is behind.
pub async fn tenant_recs(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<RecsModel>> {
    if let Some(model) = state.cached_recs(tenant) {
        retrain_if_stale(state, tenant, &model);
        return Ok(model);
    }
    let state = state.clone();
    let tenant = tenant.clone();
    blocking(move || ensure_model(&state, &tenant)).await
}

/// The current model of `tenant` without waiting: pages use this so a page view never waits for a load or
/// a fit. A missing model is loaded (or trained) in the background.
pub fn cached_or_warm_up(state: &AppState, tenant: &TenantId) -> Option<Arc<RecsModel>> {
    let cached = state.cached_recs(tenant);
    if cached.is_none() {
        let state = state.clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            // A load or training already running holds the lock; it will install the model.
            if state.recs_lock(&tenant).try_lock().is_err() {
                return;
            }
            if let Err(error) = ensure_model(&state, &tenant) {
                tracing::warn!(error = %error.message, "could not load the recommendation model");
            }
        });
    }
    cached
}

/// The key of an event's shopper: the user id, else `anon:` + the anonymous id.
pub(crate) fn subject_key(event: &Event) -> Option<String> {
    match (&event.subject.user_id, &event.subject.anonymous_id) {
        (Some(user), _) => Some(user.to_string()),
        (None, Some(anonymous)) => Some(format!("anon:{anonymous}")),
        (None, None) => None,
    }
}

/// Items a shopper acted on in an event (not impressions or searches, which the shop chose).
pub(crate) fn acted_on(kind: &EventKind) -> Vec<&ItemId> {
    match kind {
        EventKind::View { item_id, .. }
        | EventKind::Click { item_id, .. }
        | EventKind::AddToCart { item_id, .. }
        | EventKind::Wishlist { item_id } => vec![item_id],
        EventKind::Purchase { lines, .. } => lines.iter().map(|l| &l.item_id).collect(),
        _ => Vec::new(),
    }
}

/// One item event of a shopper: (time ms, session id, item id).
pub(crate) type ItemTouch = (i64, Option<String>, String);

/// Splits one shopper's `(time, session id, item)` events (in log order) into sessions.
pub(crate) fn split_sessions(mut touches: Vec<ItemTouch>, out: &mut Vec<(i64, Vec<String>)>) {
    touches.sort_by_key(|(time, _, _)| *time);
    let mut current: Vec<String> = Vec::new();
    let mut previous: Option<(i64, Option<String>)> = None;
    let mut started = 0;
    for (time, session, item) in touches {
        let new_session = match &previous {
            None => true,
            Some((last_time, last_session)) => match (last_session, &session) {
                (Some(a), Some(b)) => a != b,
                _ => time - last_time > SESSION_GAP_MS,
            },
        };
        if new_session && !current.is_empty() {
            out.push((started, std::mem::take(&mut current)));
        }
        if new_session {
            started = time;
        }
        current.push(item);
        previous = Some((time, session));
    }
    if !current.is_empty() {
        out.push((started, current));
    }
}

/// How a shopper touched an item, strongest first (for the explanation's verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Touch {
    Bought,
    AddedToBasket,
    Wishlisted,
    Viewed,
    Other,
}

impl Touch {
    fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Purchase { .. } => Self::Bought,
            EventKind::AddToCart { .. } => Self::AddedToBasket,
            EventKind::Wishlist { .. } => Self::Wishlisted,
            EventKind::View { .. } | EventKind::Click { .. } => Self::Viewed,
            _ => Self::Other,
        }
    }

    fn text(self, title: &str) -> String {
        match self {
            Self::Bought => format!("Because you bought {title}"),
            Self::AddedToBasket => format!("Because you added {title} to your basket"),
            Self::Wishlisted => format!("Because you saved {title} to your wishlist"),
            Self::Viewed => format!("Because you viewed {title}"),
            Self::Other => format!("Because of your interest in {title}"),
        }
    }
}

/// A shopper's recent history as weights.
struct WeightedHistory {
    /// Positive weight per model item, by index.
    model_items: Vec<(u32, f32)>,
    /// Positive weight per item id (items the model has not seen included), heaviest first.
    items: Vec<(ItemId, f32)>,
    /// How each item was touched.
    touch: HashMap<ItemId, Touch>,
}

/// A shopper's latest events (newest first), read from the store at request time.
struct ShopperEvents {
    events: Arc<[Event]>,
}

impl ShopperEvents {
    fn load(store: &dyn Store, tenant: &TenantId, user: Option<&UserId>, shopper: &Shopper) -> ApiResult<Self> {
        let whose = match (user.or(shopper.user.as_ref()), &shopper.anonymous) {
            (Some(user), _) => ShopperRef::User(user),
            (None, Some(anonymous)) => ShopperRef::Anonymous(anonymous),
            (None, None) => return Ok(Self { events: Arc::from(Vec::new()) }),
        };
        Ok(Self { events: store.shopper_activity(tenant, whose, SHOPPER_EVENTS)? })
    }

    fn not_interested(&self) -> impl Iterator<Item = &ItemId> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::NotInterested { item_id } => Some(item_id),
            _ => None,
        })
    }

    fn purchased(&self) -> impl Iterator<Item = &ItemId> {
        self.events.iter().flat_map(|e| match &e.kind {
            EventKind::Purchase { lines, .. } => lines.iter().map(|l| &l.item_id).collect(),
            _ => Vec::new(),
        })
    }

    /// Viewed (or clicked) items, newest first, each once.
    fn recently_viewed(&self) -> Vec<ItemId> {
        let mut seen = HashSet::new();
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::View { item_id, .. } | EventKind::Click { item_id, .. } => Some(item_id),
                _ => None,
            })
            .filter(|id| seen.insert((*id).clone()))
            .cloned()
            .collect()
    }

    /// The items acted on in the current session, oldest first: the latest item events that share the
    /// newest one's session id, or (without ids) follow each other within [`SESSION_GAP_MS`].
    fn current_session(&self) -> Vec<ItemId> {
        let mut items: Vec<ItemId> = Vec::new();
        let mut later: Option<&Event> = None;
        for event in self.events.iter() {
            let acted = acted_on(&event.kind);
            if acted.is_empty() {
                continue;
            }
            if let Some(later) = later {
                let same = match (&later.session_id, &event.session_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => later.timestamp.millis() - event.timestamp.millis() <= SESSION_GAP_MS,
                };
                if !same {
                    break;
                }
            }
            items.extend(acted.into_iter().rev().cloned());
            later = Some(event);
        }
        items.reverse();
        items
    }

    /// Purchases as `(item, time ms)`.
    fn purchase_times(&self) -> Vec<(ItemId, i64)> {
        self.events
            .iter()
            .flat_map(|e| match &e.kind {
                EventKind::Purchase { lines, .. } => {
                    lines.iter().map(|l| (l.item_id.clone(), e.timestamp.millis())).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// The newest [`HISTORY_EVENTS`] events' positive weight per model item, the same per item id (items the
    /// model has not seen included, heaviest first), and how each item was touched.
    fn weighted_history(&self, model: &RecsModel) -> WeightedHistory {
        let recent = &self.events[..self.events.len().min(HISTORY_EVENTS)];
        let mut touch: HashMap<ItemId, Touch> = HashMap::new();
        for event in recent {
            let how = Touch::of(&event.kind);
            for id in acted_on(&event.kind) {
                let slot = touch.entry(id.clone()).or_insert(how);
                *slot = (*slot).min(how);
            }
        }
        let mut by_id: HashMap<String, f32> = HashMap::new();
        for interaction in interactions_from_events(recent.iter(), &InteractionWeights::default()) {
            *by_id.entry(interaction.item).or_default() += interaction.weight;
        }
        let mut weights: Vec<(u32, f32)> =
            by_id.iter().filter(|(_, w)| **w > 0.0).filter_map(|(id, w)| Some((model.items.index(id)?, *w))).collect();
        weights.sort_by_key(|(i, _)| *i);
        let mut by_item: Vec<(ItemId, f32)> = by_id
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .filter_map(|(id, w)| Some((ItemId::parse(id).ok()?, w)))
            .collect();
        by_item.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        WeightedHistory { model_items: weights, items: by_item, touch }
    }
}

/// What an explanation needs beyond the signal and anchors.
#[derive(Debug, Clone)]
enum Detail {
    None,
    BuyAgain {
        interval_ms: f64,
        times_bought: u32,
        last_purchase_ms: i64,
    },
    /// A content match: its position in the catalog's content index and the weighted anchor positions it
    /// was found from (shared by the whole tier); what they share is named only in the explanations of
    /// picked items ([`shared_content_text`]).
    ContentMatch {
        position: u32,
        anchors: Arc<[(u32, f32)]>,
    },
}

/// An item a candidate is or comes from: by its model index when the model knows it (no id is copied or
/// reference-counted for the thousands of candidates a list looks at), else by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ItemRef {
    Model(u32),
    Other(Arc<str>),
}

impl ItemRef {
    fn id<'a>(&'a self, model: &'a RecsModel) -> &'a str {
        match self {
            Self::Model(index) => model.items.id(*index).unwrap_or_default(),
            Self::Other(id) => id,
        }
    }
}

/// The items a candidate comes from (one or two almost always, so they are kept inline).
type Because = SmallVec<[ItemRef; 2]>;

/// One candidate item with its score and the reason it is a candidate.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The item; a model index makes the catalog lookup an array index (see
    /// [`CatalogSnapshot::by_model_index`]).
    item: ItemRef,
    score: f32,
    signal: Signal,
    because: Because,
    detail: Detail,
}

impl Candidate {
    /// A candidate the model does not know (content matches, recently viewed items), by id.
    fn new(id: impl Into<Arc<str>>, score: f32, signal: Signal, because: Because) -> Self {
        Self { item: ItemRef::Other(id.into()), score, signal, because, detail: Detail::None }
    }

    /// A candidate the model found, by its model index.
    fn of_model(index: u32, score: f32, signal: Signal, because: Because) -> Self {
        Self { item: ItemRef::Model(index), score, signal, because, detail: Detail::None }
    }

    fn id<'a>(&'a self, model: &'a RecsModel) -> &'a str {
        self.item.id(model)
    }

    /// The item's index in `model`: carried by the model's candidates, looked up by id for the others.
    fn index_in(&self, model: &RecsModel) -> Option<u32> {
        match &self.item {
            ItemRef::Model(index) if (*index as usize) < model.items.len() => Some(*index),
            ItemRef::Model(_) => None,
            ItemRef::Other(id) => model.items.index(id),
        }
    }
}

/// Items counted per category (items without a category are not counted). Items from the catalog copy come
/// with their category's number; items read from the store are counted by their category path.
#[derive(Default)]
struct CategoryCounts {
    numbered: foldhash::HashMap<u32, usize>,
    by_path: foldhash::HashMap<Vec<String>, usize>,
}

impl CategoryCounts {
    fn get(&self, item: &Item, number: Option<u32>) -> usize {
        match number {
            Some(number) => self.numbered.get(&number).copied(),
            None => self.by_path.get(item.category_path.as_slice()).copied(),
        }
        .unwrap_or(0)
    }

    fn increment(&mut self, item: &Item, number: Option<u32>) {
        match number {
            Some(number) => *self.numbered.entry(number).or_default() += 1,
            None => match self.by_path.get_mut(item.category_path.as_slice()) {
                Some(count) => *count += 1,
                None => {
                    self.by_path.insert(item.category_path.clone(), 1);
                }
            },
        }
    }
}

/// The best `k` items by Σ over `sources` of weight · sim(source, j), citing the source contributing most to
/// each j.
fn knn_candidates(model: &RecsModel, sources: &[(u32, f32)], signal: Signal, k: usize) -> Vec<Candidate> {
    let reachable = sources.iter().map(|&(source, _)| model.knn.neighbours(source).len()).sum();
    let mut scores: foldhash::HashMap<u32, (f32, u32, f32)> =
        foldhash::HashMap::with_capacity_and_hasher(reachable, Default::default());
    for &(source, weight) in sources {
        for (j, sim) in model.knn.neighbours(source).iter() {
            let contribution = weight * sim;
            let entry = scores.entry(j).or_insert((0.0, source, f32::NEG_INFINITY));
            entry.0 += contribution;
            if contribution > entry.2 || (contribution == entry.2 && source < entry.1) {
                entry.1 = source;
                entry.2 = contribution;
            }
        }
    }
    let mut ranked: Vec<(u32, f32, u32)> = scores
        .into_iter()
        .filter(|(_, (s, _, _))| *s > 0.0 && s.is_finite())
        .map(|(j, (s, source, _))| (j, s, source))
        .collect();
    let better = |a: &(u32, f32, u32), b: &(u32, f32, u32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > k {
        ranked.select_nth_unstable_by(k, better);
        ranked.truncate(k);
    }
    ranked.sort_by(better);
    ranked
        .into_iter()
        .map(|(j, score, source)| Candidate::of_model(j, score, signal, SmallVec::from_elem(ItemRef::Model(source), 1)))
        .collect()
}

/// The best [`MAX_CANDIDATES`] items by a dense score vector.
fn ranked(scores: &[f32], signal: Signal) -> Vec<Candidate> {
    let mut order: Vec<(u32, f32)> =
        scores.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(i, s)| (i as u32, *s)).collect();
    keep_best(&mut order, MAX_CANDIDATES);
    order.into_iter().map(|(i, s)| Candidate::of_model(i, s, signal, Because::new())).collect()
}

/// Cold start: items whose content is like the weighted `sources` (any catalog items, trained on or not;
/// the [`MAX_CONTENT_SOURCES`] heaviest), citing the heaviest source. Empty without a catalog copy.
fn content_candidates(content: Option<&CatalogContent>, sources: &[(ItemId, f32)], k: usize) -> Vec<Candidate> {
    let Some(content) = content else { return Vec::new() };
    let mut positions: Vec<(u32, f32)> =
        sources.iter().filter_map(|(id, weight)| Some((content.position(id)?, *weight))).collect();
    positions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    positions.truncate(MAX_CONTENT_SOURCES);
    let Some(&(cited, _)) = positions.first() else { return Vec::new() };
    let Some(cited) = content.id(cited).map(|id| Arc::<str>::from(id.as_str())) else { return Vec::new() };
    let matches = match content.index.ranked_similar_to(&positions, k, &[]) {
        Ok(matches) => matches,
        Err(error) => {
            tracing::warn!(error = %error, "content similarity failed");
            return Vec::new();
        }
    };
    let anchors: Arc<[(u32, f32)]> = positions.into();
    matches
        .into_iter()
        .filter_map(|(position, score)| {
            let id = content.id(position)?;
            let mut candidate = Candidate::new(
                id.as_str(),
                score,
                Signal::SimilarContent,
                SmallVec::from_elem(ItemRef::Other(cited.clone()), 1),
            );
            candidate.detail = Detail::ContentMatch { position, anchors: anchors.clone() };
            Some(candidate)
        })
        .collect()
}

/// What a content match shares with its anchors, readable ("brand puma, category shoes"); empty when
/// unknown.
fn shared_content_text(content: Option<&CatalogContent>, detail: &Detail) -> String {
    match (content, detail) {
        (Some(content), Detail::ContentMatch { position, anchors }) => {
            let shared = content.index.shared_features(anchors, *position);
            shared.iter().map(|f| attune_recs::describe_feature(f)).collect::<Vec<_>>().join(", ")
        }
        _ => String::new(),
    }
}

/// Whether the tiers so far offer fewer than twice the `wanted` candidates (room for exclusions and filters),
/// so that a content tier should follow them.
fn short_of(tiers: &[Cow<'_, [Candidate]>], wanted: usize) -> bool {
    tiers.iter().map(|tier| tier.len()).sum::<usize>() < wanted * 2
}

fn indices(model: &RecsModel, ids: &[ItemId]) -> Vec<u32> {
    ids.iter().filter_map(|id| model.items.index(id.as_str())).collect()
}

/// The scenario's candidate tiers (best source first) and the items it never returns.
struct Plan<'m> {
    tiers: Vec<Cow<'m, [Candidate]>>,
    exclude: HashSet<ItemId>,
    touch: HashMap<ItemId, Touch>,
}

/// How many candidates the sources of a plan offer.
#[derive(Debug, Clone, Copy)]
struct Depth {
    /// Candidates the list needs before the hard rules.
    wanted: usize,
    /// Every source offers all it has (a filter rejected too many of the usual candidates).
    wide: bool,
}

fn plan<'m>(
    model: &'m RecsModel,
    content: Option<&CatalogContent>,
    request: &ListRequest,
    rules: &Rules,
    shopper: &ShopperEvents,
    now_ms: i64,
    depth: Depth,
) -> Plan<'m> {
    let Depth { wanted, wide } = depth;
    let mut exclude = request.exclude.clone();
    exclude.extend(shopper.not_interested().cloned());
    let exclude_purchased = rules.exclude_purchased.unwrap_or(matches!(request.basis, Basis::ForYou(_)));
    if exclude_purchased {
        exclude.extend(shopper.purchased().cloned());
    }
    let mut touch = HashMap::new();
    let fallbacks = || -> [Cow<'m, [Candidate]>; 2] {
        let [trending, popular] = model.fallback_tiers.get_or_init(|| {
            [ranked(model.trending.scores(), Signal::Trending), ranked(model.popularity.scores(), Signal::Popular)]
        });
        [Cow::Borrowed(trending.as_slice()), Cow::Borrowed(popular.as_slice())]
    };
    let mut tiers: Vec<Cow<'m, [Candidate]>> = Vec::new();
    let tier_size = |excluded: &HashSet<ItemId>| match wide {
        true => TIER_CANDIDATES,
        false => (wanted * TIER_FACTOR + excluded.len()).clamp(MIN_TIER, TIER_CANDIDATES),
    };
    let knn_size = |excluded: &HashSet<ItemId>| if wide { MAX_CANDIDATES } else { tier_size(excluded) };
    match &request.basis {
        Basis::Similar(anchors) => {
            exclude.extend(anchors.iter().cloned());
            let sources: Vec<(u32, f32)> = indices(model, anchors).into_iter().map(|i| (i, 1.0)).collect();
            tiers.push(knn_candidates(model, &sources, Signal::SimilarItems, knn_size(&exclude)).into());
            if short_of(&tiers, wanted) {
                let sources: Vec<(ItemId, f32)> = anchors.iter().map(|id| (id.clone(), 1.0)).collect();
                tiers.push(content_candidates(content, &sources, tier_size(&exclude)).into());
            }
        }
        Basis::ForYou(_) => {
            let WeightedHistory { model_items: weights, items: by_item, touch: touched } =
                shopper.weighted_history(model);
            // Items the shopper already knows are not news; purchases follow `exclude_purchased`.
            exclude.extend(touched.iter().filter(|(_, how)| **how != Touch::Bought).map(|(id, _)| id.clone()));
            tiers.push(knn_candidates(model, &weights, Signal::YourHistory, knn_size(&exclude)).into());
            if short_of(&tiers, wanted) {
                tiers.push(content_candidates(content, &by_item, tier_size(&exclude)).into());
            }
            tiers.extend(fallbacks());
            touch = touched;
        }
        Basis::Trending => tiers.extend(fallbacks()),
        Basis::RecentlyViewed => {
            let viewed = shopper.recently_viewed();
            let n = viewed.len() as f32;
            tiers.push(
                viewed
                    .into_iter()
                    .enumerate()
                    .map(|(rank, id)| {
                        let id: Arc<str> = Arc::from(id.as_str());
                        Candidate::new(
                            id.clone(),
                            (n - rank as f32) / n,
                            Signal::RecentlyViewed,
                            SmallVec::from_elem(ItemRef::Other(id), 1),
                        )
                    })
                    .collect(),
            );
        }
        Basis::BoughtTogether(anchor) => {
            let anchors = vec![anchor.clone()];
            exclude.insert(anchor.clone());
            tiers.extend(basket_tiers(model, &anchors, tier_size(&exclude)).into_iter().map(Cow::Owned));
            if short_of(&tiers, wanted) {
                tiers.push(content_candidates(content, &[(anchor.clone(), 1.0)], tier_size(&exclude)).into());
            }
        }
        Basis::CompleteCart(cart) => {
            exclude.extend(cart.iter().cloned());
            tiers.extend(basket_tiers(model, cart, tier_size(&exclude)).into_iter().map(Cow::Owned));
            if short_of(&tiers, wanted) {
                let sources: Vec<(ItemId, f32)> = cart.iter().map(|id| (id.clone(), 1.0)).collect();
                tiers.push(content_candidates(content, &sources, tier_size(&exclude)).into());
            }
        }
        Basis::BuyAgain => {
            let history: Vec<(u32, i64)> = shopper
                .purchase_times()
                .into_iter()
                .filter_map(|(id, time)| Some((model.items.index(id.as_str())?, time)))
                .collect();
            let suggestions = match &model.buy_again {
                Some(buy_again) => buy_again.for_customer(&history, now_ms, tier_size(&exclude), &[]),
                None => Vec::new(),
            };
            tiers.push(
                suggestions
                    .into_iter()
                    .map(|s| {
                        let because = SmallVec::from_elem(ItemRef::Model(s.item), 1);
                        let mut candidate = Candidate::of_model(s.item, s.score as f32, Signal::BuyAgain, because);
                        candidate.detail = Detail::BuyAgain {
                            interval_ms: s.typical_interval_ms,
                            times_bought: s.times_bought,
                            last_purchase_ms: s.last_purchase_ms,
                        };
                        candidate
                    })
                    .collect(),
            );
        }
        Basis::Next => {
            let session = shopper.current_session();
            exclude.extend(session.iter().cloned());
            let clicks = indices(model, &session);
            let suggestions = model.sessions.recommend(&clicks, tier_size(&exclude), &[]);
            tiers.push(
                suggestions
                    .into_iter()
                    .map(|s| {
                        let because = s.anchors.iter().map(|a| ItemRef::Model(*a)).collect();
                        Candidate::of_model(s.item, s.score as f32, Signal::Session, because)
                    })
                    .collect(),
            );
            // What tends to follow the shopper's whole recent history, in order.
            let history: Vec<ItemId> =
                shopper.events.iter().rev().flat_map(|e| acted_on(&e.kind).into_iter().cloned()).collect();
            let ordered = indices(model, &history);
            if let Ok(suggestions) = model.sequential.recommend(&ordered, tier_size(&exclude), &[]) {
                tiers.push(
                    suggestions
                        .into_iter()
                        .map(|s| {
                            let because = s.anchors.iter().map(|a| ItemRef::Model(*a)).collect();
                            Candidate::of_model(s.item, s.score, Signal::Sequential, because)
                        })
                        .collect(),
                );
            }
            // Items like the session's, latest weighing most, then what is trending.
            let n = clicks.len();
            let sources: Vec<(u32, f32)> =
                clicks.iter().enumerate().map(|(p, &i)| (i, (-((n - 1 - p) as f32) / 2.0).exp())).collect();
            tiers.push(knn_candidates(model, &sources, Signal::Session, knn_size(&exclude)).into());
            if short_of(&tiers, wanted) {
                let m = session.len();
                let sources: Vec<(ItemId, f32)> = session
                    .iter()
                    .enumerate()
                    .map(|(p, id)| (id.clone(), (-((m - 1 - p) as f32) / 2.0).exp()))
                    .collect();
                tiers.push(content_candidates(content, &sources, tier_size(&exclude)).into());
            }
            tiers.extend(fallbacks());
            for event in shopper.events.iter().rev() {
                for id in acted_on(&event.kind) {
                    let how = Touch::of(&event.kind);
                    let slot = touch.entry(id.clone()).or_insert(how);
                    *slot = (*slot).min(how);
                }
            }
        }
    }
    Plan { tiers, exclude, touch }
}

/// Frequently bought together with `anchors`, then items similar to them.
fn basket_tiers(model: &RecsModel, anchors: &[ItemId], k: usize) -> Vec<Vec<Candidate>> {
    let cart = indices(model, anchors);
    let together = model
        .bought_together
        .for_items(&cart, k, &[])
        .into_iter()
        .map(|s| {
            let because = s.anchors.iter().map(|a| ItemRef::Model(*a)).collect();
            Candidate::of_model(s.item, s.score as f32, Signal::BoughtTogether, because)
        })
        .collect();
    let sources: Vec<(u32, f32)> = cart.into_iter().map(|i| (i, 1.0)).collect();
    vec![together, knn_candidates(model, &sources, Signal::SimilarItems, k)]
}

/// Where catalog items are read from: the in-memory copy of the serving path, else the store.
#[derive(Clone, Copy)]
struct Items<'a> {
    store: &'a dyn Store,
    tenant: &'a TenantId,
    catalog: Option<&'a CatalogSnapshot>,
}

impl Items<'_> {
    fn get(&self, ids: &[ItemId]) -> ApiResult<Vec<Arc<Item>>> {
        match self.catalog {
            Some(catalog) => Ok(catalog.items(ids)),
            None => Ok(self.store.items(self.tenant, ids)?.into_iter().map(Arc::new).collect()),
        }
    }
}

/// A candidate that passed the hard rules, with its catalog item (and its category's number in the catalog
/// copy, when it came from there).
struct Pooled {
    item: Arc<Item>,
    category: Option<u32>,
    score: f32,
    tier: usize,
    candidate: Candidate,
}

/// Walks the tiers in order and keeps candidates that pass the hard rules until the pool offers `target`
/// pickable items: under a category cap, items of a category beyond the cap count for nothing (they stay
/// in the pool, up to [`POOL_FACTOR`] × the cap per category, because boosts may move them up).
fn gather(
    model: &RecsModel,
    items: Items<'_>,
    plan: &Plan,
    request: &ListRequest,
    rules: &Rules,
    target: usize,
) -> ApiResult<Vec<Pooled>> {
    let chunk_size = (target * 2).max(20);
    let mut pool: Vec<Pooled> = Vec::new();
    let mut unpoolable = Unpoolable::new(model, &plan.exclude);
    let mut looked_at = 0;
    let mut per_category = CategoryCounts::default();
    let mut pickable = 0;
    let by_model_index = items.catalog.map(|catalog| catalog.by_model_index(model));
    for (tier, candidates) in plan.tiers.iter().enumerate() {
        let mut rest: &[Candidate] = candidates;
        while pickable < target && !rest.is_empty() && looked_at < MAX_CANDIDATES {
            let (chunk, tail) = rest.split_at(chunk_size.min(rest.len()));
            rest = tail;
            looked_at += chunk.len();
            // The in-memory catalog is read item by item; the store is asked once per chunk.
            let mut found: HashMap<String, Arc<Item>> = HashMap::new();
            if items.catalog.is_none() {
                let ids: Vec<ItemId> = chunk
                    .iter()
                    .filter(|c| unpoolable.allows(c))
                    .filter_map(|c| ItemId::parse(c.id(model).to_string()).ok())
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                found = items.get(&ids)?.into_iter().map(|item| (item.id.to_string(), item)).collect();
            }
            for candidate in chunk {
                if pickable >= target {
                    break;
                }
                let item = match items.catalog {
                    Some(catalog) if unpoolable.allows(candidate) => {
                        let in_view = match &candidate.item {
                            ItemRef::Model(index) => by_model_index.as_ref().and_then(|view| view.get(*index as usize)),
                            ItemRef::Other(_) => None,
                        };
                        match in_view {
                            Some(found) => found.as_ref().map(|found| (found.item.clone(), found.category)),
                            None => catalog
                                .get_by_text(candidate.id(model))
                                .map(|item| (item.clone(), catalog.category_number(item))),
                        }
                    }
                    Some(_) => None,
                    None => found.remove(candidate.id(model)).map(|item| (item, None)),
                };
                let Some((item, category)) = item else { continue };
                if (request.in_stock_only && !item.is_in_stock())
                    || rules.filter.as_ref().is_some_and(|f| !f.matches(&item))
                {
                    continue;
                }
                match rules.max_per_category {
                    Some(cap) if !item.category_path.is_empty() => {
                        let so_far = per_category.get(&item, category);
                        if so_far >= cap * POOL_FACTOR {
                            continue;
                        }
                        if so_far < cap {
                            pickable += 1;
                        }
                        per_category.increment(&item, category);
                    }
                    _ => pickable += 1,
                }
                unpoolable.pooled(candidate);
                pool.push(Pooled { item, category, score: candidate.score, tier, candidate: candidate.clone() });
            }
        }
    }
    Ok(pool)
}

/// What `gather` may no longer pool: the items already pooled and the plan's exclusions. Items the model knows
/// are bits over its item indices (a candidate from the model is checked without hashing its id); others
/// are kept by id.
struct Unpoolable<'a> {
    model: &'a RecsModel,
    pooled_bits: Vec<u64>,
    excluded_bits: Vec<u64>,
    pooled_ids: foldhash::HashSet<ItemRef>,
    excluded_ids: &'a HashSet<ItemId>,
}

impl<'a> Unpoolable<'a> {
    fn new(model: &'a RecsModel, exclude: &'a HashSet<ItemId>) -> Self {
        let words = model.items.len().div_ceil(64);
        let mut excluded_bits = vec![0u64; words];
        for index in exclude.iter().filter_map(|id| model.items.index(id.as_str())) {
            excluded_bits[index as usize / 64] |= 1 << (index % 64);
        }
        Self {
            model,
            pooled_bits: vec![0u64; words],
            excluded_bits,
            pooled_ids: foldhash::HashSet::default(),
            excluded_ids: exclude,
        }
    }

    fn allows(&self, candidate: &Candidate) -> bool {
        match candidate.index_in(self.model) {
            Some(index) => {
                let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
                self.pooled_bits[word] & bit == 0 && self.excluded_bits[word] & bit == 0
            }
            None => !self.pooled_ids.contains(&candidate.item) && !self.excluded_ids.contains(candidate.id(self.model)),
        }
    }

    fn pooled(&mut self, candidate: &Candidate) {
        match candidate.index_in(self.model) {
            Some(index) => self.pooled_bits[index as usize / 64] |= 1 << (index % 64),
            None => {
                self.pooled_ids.insert(candidate.item.clone());
            }
        }
    }
}

/// Applies the boosts and orders the pool: by tier, then boosted score, then item id.
fn boost(model: &RecsModel, pool: &mut [Pooled], boosts: &[Boost]) {
    for pooled in pool.iter_mut() {
        for boost in boosts.iter().filter(|b| b.filter.matches(&pooled.item)) {
            pooled.score = match boost.effect {
                BoostEffect::Multiply(factor) => pooled.score * factor,
                BoostEffect::Add(amount) => pooled.score + amount,
            };
        }
    }
    pool.sort_by(|a, b| {
        a.tier
            .cmp(&b.tier)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.candidate.id(model).cmp(b.candidate.id(model)))
    });
}

/// Picks `count` items in order, skipping any that would break the category cap; with MMR, each pick
/// maximises λ · relevance − (1 − λ) · (highest item-kNN similarity to an item already picked), where
/// relevance falls linearly with the position in the boosted order.
fn diversify(model: &RecsModel, pool: Vec<Pooled>, count: usize, rules: &Rules) -> Vec<Pooled> {
    let n = pool.len().max(1) as f32;
    let mut remaining: Vec<(f32, Pooled)> =
        pool.into_iter().enumerate().map(|(rank, p)| (1.0 - rank as f32 / n, p)).collect();
    let mut picked: Vec<Pooled> = Vec::new();
    let mut per_category = CategoryCounts::default();
    let mut picked_indices: Vec<u32> = Vec::new();
    while picked.len() < count && !remaining.is_empty() {
        let allowed = |p: &Pooled| match rules.max_per_category {
            Some(cap) if !p.item.category_path.is_empty() => per_category.get(&p.item, p.category) < cap,
            _ => true,
        };
        let mut best: Option<(usize, f32)> = None;
        for (position, (relevance, pooled)) in remaining.iter().enumerate() {
            if !allowed(pooled) {
                continue;
            }
            let value = match rules.mmr_lambda {
                None => {
                    best = Some((position, 0.0));
                    break;
                }
                Some(lambda) => {
                    let own = pooled.candidate.index_in(model);
                    let redundancy = own
                        .map(|i| picked_indices.iter().map(|&j| model.knn.similarity(j, i)).fold(0.0f32, f32::max))
                        .unwrap_or(0.0);
                    lambda * relevance - (1.0 - lambda) * redundancy
                }
            };
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((position, value));
            }
        }
        let Some((position, _)) = best else { break };
        let (_, pooled) = remaining.remove(position);
        if !pooled.item.category_path.is_empty() {
            per_category.increment(&pooled.item, pooled.category);
        }
        if let Some(index) = pooled.candidate.index_in(model) {
            picked_indices.push(index);
        }
        picked.push(pooled);
    }
    picked
}

/// Titles of `ids`, for explanation texts (the id where an item is gone from the catalog).
fn titles(items: Items<'_>, ids: &[ItemId]) -> ApiResult<HashMap<String, String>> {
    let mut out: HashMap<String, String> = ids.iter().map(|id| (id.to_string(), id.to_string())).collect();
    for item in items.get(ids)? {
        out.insert(item.id.to_string(), item.title.trim().to_string());
    }
    Ok(out)
}

fn days(ms: f64) -> i64 {
    (ms / MS_PER_DAY).round().max(1.0) as i64
}

fn explanation_text(
    model: &RecsModel,
    candidate: &Candidate,
    content: Option<&CatalogContent>,
    names: &HashMap<String, String>,
    touch: &HashMap<ItemId, Touch>,
    now_ms: i64,
) -> String {
    let title = |item: &ItemRef| {
        let id = item.id(model);
        names.get(id).cloned().unwrap_or_else(|| id.to_string())
    };
    let first = candidate.because.first().map(title).unwrap_or_default();
    let how = |item: Option<&ItemRef>| item.and_then(|item| touch.get(item.id(model)).copied()).unwrap_or(Touch::Other);
    match candidate.signal {
        Signal::SimilarItems => format!("Customers who bought {first} also bought this"),
        Signal::YourHistory | Signal::Session | Signal::Sequential => how(candidate.because.first()).text(&first),
        Signal::SimilarContent => {
            let shared = shared_content_text(content, &candidate.detail);
            let shared = if shared.is_empty() { "similar description" } else { shared.as_str() };
            match how(candidate.because.first()) {
                Touch::Other => format!("Like {first}: {shared}"),
                touched => format!("{} ({shared})", touched.text(&first)),
            }
        }
        Signal::Trending => "Trending this week".to_string(),
        Signal::Popular => "Popular with our customers".to_string(),
        Signal::RecentlyViewed => "You viewed this recently".to_string(),
        Signal::BoughtTogether => match candidate.because.get(1) {
            Some(second) => format!("Often bought with {first} and {}", title(second)),
            None => format!("Often bought with {first}"),
        },
        Signal::BuyAgain => match candidate.detail {
            Detail::BuyAgain { interval_ms, times_bought, .. } if times_bought >= 2 => {
                format!("You buy this about every {} days", days(interval_ms))
            }
            Detail::BuyAgain { interval_ms, last_purchase_ms, .. } => format!(
                "You bought this {} days ago; customers buy it again about every {} days",
                days((now_ms - last_purchase_ms) as f64),
                days(interval_ms)
            ),
            Detail::None | Detail::ContentMatch { .. } => "You bought this before".to_string(),
        },
    }
}

/// Computes one recommendation list under `rules`: the one selection path of every scenario. Items are
/// read from `catalog` when given, else from the store. Runs on a blocking thread (store calls).
pub fn recommend_with_rules(
    store: &dyn Store,
    tenant: &TenantId,
    model: &RecsModel,
    catalog: Option<&CatalogSnapshot>,
    request: &ListRequest,
    rules: &Rules,
) -> ApiResult<Vec<Recommended>> {
    let user = match &request.basis {
        Basis::ForYou(user) => user.as_ref(),
        _ => None,
    };
    let shopper = ShopperEvents::load(store, tenant, user, &rules.shopper)?;
    let now_ms = Timestamp::now().millis();
    let reranks = !rules.boosts.is_empty() || rules.max_per_category.is_some() || rules.mmr_lambda.is_some();
    let target = if reranks { (request.count * POOL_FACTOR).max(MIN_POOL) } else { request.count };
    let content = catalog.map(CatalogSnapshot::content);
    let items = Items { store, tenant, catalog };
    // Sources first offer what a list usually needs; when a filter rejects so many that the list comes out
    // short, they are asked again for all they have.
    let mut wide = false;
    let (plan, picked) = loop {
        let plan = plan(model, content, request, rules, &shopper, now_ms, Depth { wanted: target, wide });
        let mut pool = gather(model, items, &plan, request, rules, target)?;
        boost(model, &mut pool, &rules.boosts);
        let picked = diversify(model, pool, request.count, rules);
        if picked.len() >= request.count || wide || rules.filter.is_none() {
            break (plan, picked);
        }
        wide = true;
    };
    let mut cited: Vec<ItemId> = picked
        .iter()
        .flat_map(|p| p.candidate.because.iter())
        .filter_map(|item| ItemId::parse(item.id(model).to_string()).ok())
        .collect();
    cited.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    cited.dedup();
    let names = titles(items, &cited)?;
    Ok(picked
        .into_iter()
        .map(|p| {
            let text = explanation_text(model, &p.candidate, content, &names, &plan.touch, now_ms);
            let because_item_ids =
                p.candidate.because.iter().filter_map(|item| ItemId::parse(item.id(model).to_string()).ok()).collect();
            Recommended {
                item: p.item,
                score: p.score,
                explanation: Explanation { signal: p.candidate.signal, because_item_ids, text },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_split_on_a_new_session_id_or_a_long_pause() {
        let touch = |t: i64, s: Option<&str>, i: &str| (t, s.map(str::to_string), i.to_string());
        let mut out = Vec::new();
        split_sessions(
            vec![
                touch(0, None, "a"),
                touch(60_000, None, "b"),
                touch(60_000 + SESSION_GAP_MS + 1, None, "c"),
                touch(SESSION_GAP_MS * 3, Some("s1"), "d"),
                touch(SESSION_GAP_MS * 3 + 1, Some("s2"), "e"),
            ],
            &mut out,
        );
        let items: Vec<Vec<String>> = out.into_iter().map(|(_, items)| items).collect();
        assert_eq!(items, vec![vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }
}
