//! The storefront demo: a small public shop over the storefront tenant's catalog. It keeps the basket in
//! a cookie and records what visitors do (product views, searches, basket changes) as real events under
//! an anonymous visitor id and a session id, so Attune sees the demo like any shop's traffic.
//!
//! Recommendation slots are `<section>`s with stable ids (`recommendations-similar`,
//! `recommendations-bought-together`, `recommendations-complete-your-basket`, and on the home page
//! `recommendations-recently-viewed`, `recommendations-for-you` and `recommendations-complete-your-basket`,
//! computed for the visitor's own anonymous id) and `data-` attributes naming the items they are about. The product page's similar items and the basket's "complete your
//! basket" are filled from the same code path as `POST /v1/recommendations` (and logged as impressions);
//! a page never waits long for a model build: without a model yet, the slot stays empty (and hidden).
//!
//! Every recommended product carries a "Why am I seeing this?" disclosure (the explanation, the data it used,
//! and a link to the privacy panel, [`super::shop_privacy`]); with personalization off, the visitor's own
//! activity shapes nothing and the home page says so.

use super::context::{PageError, PagePath, PageQuery, PageResult};
use super::cookies::{self, Cart, Visitor};
use super::format::{count, display_title, encode, money, plural, short_name, with_query};
use super::layout::{ShopShell, icon, product_image, shop_page};
use crate::api::recommendations::serving_model;
use crate::api::search::{suggest, tenant_index};
use crate::state::{AppState, blocking};
use attune_core::input::ScalarValue;
use attune_core::{AnonymousId, Event, EventInput, Item, ItemId, Money, Purpose, TenantId, Timestamp};
use attune_engine::privacy::VisitorConsent;
use attune_engine::recs::request::{Basis, ListRequest, Recommended, Rules, Shopper};
use attune_engine::search::serve::SearchParams;
use attune_store::{ItemQuery, Store};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

const GRID_PAGE: usize = 24;
const POPULAR_SHOWN: usize = 12;
const MAX_ADD_QUANTITY: u32 = 99;
/// Items shown in a recommendation slot.
const RECOMMENDATIONS_SHOWN: usize = 8;
/// How long a page waits for a first recommendation model before it is shown without recommendations.
const RECOMMENDATIONS_WAIT: Duration = Duration::from_millis(1_500);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shop", get(home))
        .route("/shop/", get(|| async { Redirect::to("/shop") }))
        .route("/shop/browse", get(browse))
        .route("/shop/search", get(search_page))
        .route("/shop/category/{name}", get(category))
        .route("/shop/products/{id}", get(product))
        .route("/shop/cart", get(cart_page))
        .route("/shop/cart/add", post(cart_add))
        .route("/shop/cart/update", post(cart_update))
        .route("/shop/cart/remove", post(cart_remove))
        .route("/shop/{*rest}", get(unknown_page))
}

/// The storefront tenant and its display name.
pub(super) struct Shop {
    pub(super) tenant: TenantId,
    name: String,
}

async fn storefront(state: &AppState) -> PageResult<Shop> {
    let missing = || {
        PageError::not_found(
            "This server has no storefront. Run `attune serve --demo` to serve the demo shop, or configure a storefront tenant.",
        )
    };
    let tenant = state.options.storefront_tenant.clone().ok_or_else(missing)?;
    let store = state.store().clone();
    let lookup = tenant.clone();
    let found = blocking(move || Ok(store.tenant(&lookup)?)).await?.ok_or_else(missing)?;
    let name = if found.name.trim().is_empty() { tenant.to_string() } else { found.name };
    Ok(Shop { tenant, name })
}

/// Everything a storefront request knows about the visitor.
pub(super) struct Request {
    pub(super) shop: Shop,
    pub(super) visitor: Visitor,
    cart: Cart,
    /// Popular past queries for the search box.
    suggestions: Vec<String>,
    /// The visitor's consent: the shop's default until they choose in the privacy panel.
    pub(super) consent: VisitorConsent,
}

impl Request {
    pub(super) async fn new(state: &AppState, headers: &HeaderMap) -> PageResult<Self> {
        let shop = storefront(state).await?;
        let visitor = Visitor::from_headers(headers);
        let (tenant, anonymous) = (shop.tenant.clone(), AnonymousId::parse(visitor.anonymous_id.clone()).ok());
        let (suggestions, consent) = state
            .run(move |engine| {
                let suggestions = engine.search().popular_queries(&tenant, 8).unwrap_or_default();
                let consent = match anonymous {
                    Some(visitor) => engine.consents().visitor(&tenant, &visitor)?,
                    None => VisitorConsent {
                        consent: engine.consents().settings(&tenant)?.anonymous_default(),
                        history: Vec::new(),
                    },
                };
                Ok((suggestions, consent))
            })
            .await?;
        Ok(Self { shop, visitor, cart: Cart::from_headers(headers), suggestions, consent })
    }

    /// Whether the visitor's own activity may shape what they see.
    fn personalized(&self) -> bool {
        self.consent.consent.allows(&Purpose::Personalization)
    }

    pub(super) fn shell<'a>(&'a self, query: &'a str) -> ShopShell<'a> {
        ShopShell { shop_name: &self.shop.name, basket_units: self.cart.units(), query, suggestions: &self.suggestions }
    }

    /// The ids events are recorded under.
    fn subject(&self) -> (String, String) {
        (self.visitor.anonymous_id.clone(), self.visitor.session_id.clone())
    }

    /// A page response that also sets the visitor cookies (when new) and any `extra` cookies.
    pub(super) fn respond(self, status: StatusCode, markup: Markup, extra: Vec<HeaderValue>) -> Response {
        let mut response = (status, markup).into_response();
        cookies::append_all(response.headers_mut(), self.visitor.new_cookies);
        cookies::append_all(response.headers_mut(), extra);
        response
    }

    /// `response` with the visitor cookies (when new).
    pub(super) fn finish(self, mut response: Response) -> Response {
        cookies::append_all(response.headers_mut(), self.visitor.new_cookies);
        response
    }

    pub(super) fn redirect(self, to: &str, extra: Vec<HeaderValue>) -> Response {
        let mut response = Redirect::to(to).into_response();
        cookies::append_all(response.headers_mut(), self.visitor.new_cookies);
        cookies::append_all(response.headers_mut(), extra);
        response
    }

    fn not_found(self, message: &str) -> Response {
        let body = html! {
            div.shop-container {
                div.empty-state.shop-empty {
                    p.error-code { "404" }
                    h1 { "We couldn't find that" }
                    p.muted { (message) }
                    div.button-row {
                        a.button.primary href="/shop" { "Back to the shop" }
                        a.button href="/shop/browse" { "Browse all products" }
                    }
                }
            }
        };
        let markup = shop_page(&self.shell(""), "Not found", body);
        self.respond(StatusCode::NOT_FOUND, markup, Vec::new())
    }
}

/// Record one storefront event; a failure is logged and never breaks the page.
fn record(store: &dyn Store, tenant: &TenantId, subject: &(String, String), mut input: EventInput) {
    input.anonymous_id = Some(subject.0.clone());
    input.session_id = Some(subject.1.clone());
    input.channel = Some("web".to_string());
    let mut context = input.context.take().unwrap_or_default();
    context.insert("source".to_string(), ScalarValue::Text("storefront-demo".to_string()));
    input.context = Some(context);
    let event_type = input.event_type.clone();
    let outcome = Event::parse(input, Timestamp::now())
        .map_err(|e| e.message)
        .and_then(|event| store.append_events(tenant, &[event]).map_err(|e| e.to_string()));
    if let Err(error) = outcome {
        tracing::warn!(%error, event_type, "the storefront could not record an event");
    }
}

fn item_event(event_type: &str, item_id: &ItemId, quantity: Option<u32>) -> EventInput {
    EventInput {
        event_type: event_type.to_string(),
        item_id: Some(item_id.to_string()),
        quantity: quantity.map(i64::from),
        ..Default::default()
    }
}

fn product_href(id: &str) -> String {
    format!("/shop/products/{}", encode(id))
}

fn category_href(name: &str) -> String {
    format!("/shop/category/{}", encode(name))
}

// ---------------------------------------------------------------------------------------------------
// Pages

fn product_card(item: &Item, note: Option<String>) -> Markup {
    product_card_to(item, note, &product_href(item.id.as_str()))
}

/// A product card that links to `href` (the product page, with any attribution parameters).
fn product_card_to(item: &Item, note: Option<String>, href: &str) -> Markup {
    html! {
        a.product-card href=(href) data-item-id=(item.id) {
            div.product-media { (product_image(item)) }
            div.product-info {
                h3.product-title { (display_title(&item.title)) }
                div.product-meta {
                    span.price { @if let Some(price) = &item.price { (money(price)) } }
                    @if !item.is_in_stock() { span.stock-out { "Out of stock" } }
                }
                @if let Some(note) = note { p.product-note { (note) } }
            }
        }
    }
}

/// A recommendation slot's content: a heading and a grid of product cards with their explanations and a "Why
/// am I seeing this?" disclosure each (nothing at all when there are no recommendations, so the empty slot stays
/// hidden).
fn recommendation_grid(heading: &str, lead: &str, recommended: &[Recommended]) -> Markup {
    html! {
        @if !recommended.is_empty() {
            div.section-header { div { h2 { (heading) } p.muted { (lead) } } }
            div.product-grid {
                @for r in recommended {
                    div.recommended-card {
                        (product_card(&r.item, Some(r.explanation.text.clone())))
                        (why_this(r))
                    }
                }
            }
        }
    }
}

/// "Why am I seeing this?": the explanation, the data it used, and the way to turn personalization off.
fn why_this(recommended: &Recommended) -> Markup {
    let signal = recommended.explanation.signal;
    html! {
        details.why-this data-signal=(signal.as_str()) {
            summary { "Why am I seeing this?" }
            div.why-this-body {
                p { (recommended.explanation.text) "." }
                p.muted { strong { "Data used: " } (signal.data_used()) "." }
                p.muted {
                    @if signal.is_personal() {
                        "Chosen for you from your activity. "
                        a.why-privacy href="/shop/privacy" { "Turn personalization off" }
                    } @else {
                        "The same for every shopper. "
                        a.why-privacy href="/shop/privacy" { "Your privacy choices" }
                    }
                }
            }
        }
    }
}

/// Recommendations for a storefront slot, logged as an impression of the visitor. Any failure is logged
/// and gives an empty slot: recommendations never break a page.
async fn storefront_recommendations(
    state: &AppState,
    request: &Request,
    basis: Basis,
    exclude: HashSet<ItemId>,
) -> Vec<Recommended> {
    let tenant = request.shop.tenant.clone();
    let model = match state.engine.recs().active_or_warm_up(&tenant) {
        Some(model) => model,
        None => match tokio::time::timeout(RECOMMENDATIONS_WAIT, serving_model(state, &tenant)).await {
            Ok(Ok(model)) => model,
            Ok(Err(error)) => {
                tracing::warn!(error = %error.message, "the storefront could not load recommendations");
                return Vec::new();
            }
            Err(_) => return Vec::new(),
        },
    };
    let subject = request.subject();
    let list = ListRequest { basis, count: RECOMMENDATIONS_SHOWN, exclude, in_stock_only: true };
    // The visitor is the shopper: their own views and basket personalise the shopper-based slots.
    let shopper = Shopper { user: None, anonymous: AnonymousId::parse(subject.0.clone()).ok() };
    let rules = Rules { shopper, ..Rules::default() };
    let outcome = state
        .run(move |engine| {
            let picked = engine.recs().recommend(&tenant, &model, &list, &rules)?;
            if !picked.is_empty() {
                let impression = EventInput {
                    event_type: "impression".to_string(),
                    recommendation_id: Some(attune_core::RecommendationId::generate().to_string()),
                    item_ids: Some(picked.iter().map(|r| r.item.id.to_string()).collect()),
                    ..Default::default()
                };
                record(engine.store().as_ref(), &tenant, &subject, impression);
            }
            Ok(picked)
        })
        .await;
    outcome.unwrap_or_else(|error| {
        tracing::warn!(error = %error.message, "the storefront could not compute recommendations");
        Vec::new()
    })
}

struct HomeData {
    popular: Vec<(Item, Option<u64>)>,
    orders: u64,
    total: u64,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let engine = state.engine.clone();
    let tenant = request.shop.tenant.clone();
    let data = blocking(move || {
        let store = engine.store();
        let popularity = engine.popular(&tenant, POPULAR_SHOWN * 4)?;
        let ids: Vec<ItemId> = popularity.items.iter().map(|(id, _)| id.clone()).collect();
        let counts: HashMap<&ItemId, u64> = popularity.items.iter().map(|(id, n)| (id, *n)).collect();
        let mut popular: Vec<(Item, Option<u64>)> = store
            .items(&tenant, &ids)?
            .into_iter()
            .filter(Item::is_in_stock)
            .take(POPULAR_SHOWN)
            .map(|item| {
                let n = counts.get(&item.id).copied();
                (item, n)
            })
            .collect();
        let first = store.list_items(&tenant, &ItemQuery { limit: POPULAR_SHOWN * 2, ..Default::default() })?;
        for item in first.items {
            if popular.len() >= POPULAR_SHOWN {
                break;
            }
            if item.is_in_stock() && !popular.iter().any(|(p, _)| p.id == item.id) {
                popular.push((item, None));
            }
        }
        Ok(HomeData { popular, orders: popularity.orders, total: first.total })
    })
    .await?;
    let personal = personal_slots(&state, &request).await;
    let from_orders = data.orders > 0 && data.popular.iter().any(|(_, n)| n.is_some());
    let body = html! {
        section.hero {
            div.hero-inner {
                div.hero-copy {
                    span.eyebrow { "Welcome to " (short_name(&request.shop.name)) }
                    h1 { "Find something they'll love" }
                    p.lead {
                        "Browse " (plural(data.total, "product", "products")) " picked from our catalogue. "
                        "Everything you look at here teaches the shop what you like."
                    }
                    div.button-row {
                        a.button.primary.large href="/shop/browse" { "Browse all products" (icon("arrow-right")) }
                        a.button.large href="#popular" { "Popular now" }
                    }
                }
                div.hero-collage aria-hidden="true" {
                    @for (item, _) in data.popular.iter().take(4) {
                        div.collage-tile { (product_image(item)) }
                    }
                }
            }
        }
        div.shop-container {
            (personal)
            section.shop-section id="popular" {
                div.section-header {
                    div {
                        h2 { "Popular now" }
                        p.muted {
                            @if from_orders { "The most ordered products across the shop's latest " (count(data.orders)) " orders." }
                            @else { "A selection from the catalogue." }
                        }
                    }
                    a.link-arrow href="/shop/browse" { "See everything" (icon("arrow-right")) }
                }
                @if data.popular.is_empty() {
                    div.empty-state { p.empty-title { "The catalogue is empty" } }
                } @else {
                    div.product-grid id="popular-grid" {
                        @for (item, orders) in &data.popular {
                            (product_card(item, orders.filter(|_| from_orders).map(|n| format!("In {} recent orders", count(n)))))
                        }
                    }
                }
            }
        }
    };
    let markup = shop_page(&request.shell(""), "Home", body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

/// The home page's slots from the visitor's own activity, as a real shop shows them: recently viewed, for you
/// (only once the visitor has done something, else it would repeat "Popular now") and complete your basket.
/// Empty slots are left out.
async fn personal_slots(state: &AppState, request: &Request) -> Markup {
    if !request.personalized() {
        return html! {
            section.shop-section.personalization-off id="personalization-off" {
                p.muted {
                    "Personalization is off: what you do here does not shape what you see. "
                    a href="/shop/privacy" { "Change your privacy choices" }
                }
            }
        };
    }
    let recent = storefront_recommendations(state, request, Basis::RecentlyViewed, HashSet::new()).await;
    let basket: Vec<ItemId> = request.cart.lines.iter().filter_map(|(id, _)| ItemId::parse(id.clone()).ok()).collect();
    let for_you = if recent.is_empty() && basket.is_empty() {
        Vec::new()
    } else {
        let seen = recent.iter().map(|r| r.item.id.clone()).collect();
        storefront_recommendations(state, request, Basis::ForYou(None), seen).await
    };
    let complete = if basket.is_empty() {
        Vec::new()
    } else {
        let exclude = basket.iter().cloned().collect();
        storefront_recommendations(state, request, Basis::CompleteCart(basket), exclude).await
    };
    let slots = [
        ("recommendations-recently-viewed", "Recently viewed", "Pick up where you left off.", recent),
        ("recommendations-for-you", "For you", "Picked from what you looked at and added.", for_you),
        (
            "recommendations-complete-your-basket",
            "Complete your basket",
            "Often bought with what is in your basket.",
            complete,
        ),
    ];
    html! {
        @for (id, heading, lead, items) in &slots {
            @if !items.is_empty() {
                section.shop-section id=(id) data-item-ids=(items.iter().map(|r| r.item.id.as_str()).collect::<Vec<_>>().join(",")) {
                    (recommendation_grid(heading, lead, items))
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BrowseParams {
    q: Option<String>,
    after: Option<String>,
}

async fn browse(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<BrowseParams>,
) -> PageResult<Response> {
    listing(state, headers, params, None).await
}

async fn category(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePath(name): PagePath<String>,
    PageQuery(params): PageQuery<BrowseParams>,
) -> PageResult<Response> {
    listing(state, headers, params, Some(name)).await
}

async fn listing(
    state: AppState,
    headers: HeaderMap,
    params: BrowseParams,
    category: Option<String>,
) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let q = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_string);
    let after = params.after.filter(|a| !a.is_empty());
    let store = state.store().clone();
    let tenant = request.shop.tenant.clone();
    let subject = request.subject();
    let query = ItemQuery { search: q.clone(), category: category.clone(), after: after.clone(), limit: GRID_PAGE };
    let page = blocking(move || {
        let page = store.list_items(&tenant, &query)?;
        // A search from the search box (first page only) is an event too.
        if let (Some(text), None) = (&query.search, &query.after) {
            let input = EventInput {
                event_type: "search".to_string(),
                query: Some(text.chars().take(500).collect()),
                result_ids: Some(page.items.iter().map(|i| i.id.to_string()).collect()),
                ..Default::default()
            };
            record(store.as_ref(), &tenant, &subject, input);
        }
        Ok(page)
    })
    .await?;
    let path = match &category {
        Some(name) => category_href(name),
        None => "/shop/browse".to_string(),
    };
    let heading = match (&category, &q) {
        (Some(name), _) => name.clone(),
        (None, Some(q)) => format!("Results for “{q}”"),
        (None, None) => "All products".to_string(),
    };
    let body = html! {
        div.shop-container {
            nav.shop-breadcrumb aria-label="Breadcrumb" {
                a href="/shop" { "Home" } span { "/" }
                @if category.is_some() { a href="/shop/browse" { "All products" } span { "/" } }
                span.current { (heading) }
            }
            div.section-header {
                div {
                    h1 { (heading) }
                    p.muted id="result-count" { (plural(page.total, "product", "products")) }
                }
                @if q.is_some() { a.link-arrow href=(path.clone()) { "Clear search" } }
            }
            @if page.items.is_empty() {
                div.empty-state.shop-empty {
                    p.empty-title { "No products found" }
                    p.muted { "Try a different word, or browse everything." }
                    a.button.primary href="/shop/browse" { "Browse all products" }
                }
            } @else {
                div.product-grid id="browse-grid" {
                    @for item in &page.items { (product_card(item, None)) }
                }
                @if after.is_some() || page.next_after.is_some() {
                    nav.pager.shop-pager {
                        @if after.is_some() {
                            a.button href=(with_query(&path, &[("q", q.as_deref())])) { (icon("arrow-left")) "First page" }
                        } @else { span {} }
                        @if let Some(next) = &page.next_after {
                            a.button.primary id="next-page" href=(with_query(&path, &[("q", q.as_deref()), ("after", Some(next))])) {
                                "Next page" (icon("arrow-right"))
                            }
                        }
                    }
                }
            }
        }
    };
    let title = heading.clone();
    let markup = shop_page(&request.shell(q.as_deref().unwrap_or("")), &title, body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

/// The query of the storefront's search page: the search box's text and the facet links' refinements.
#[derive(Debug, Default, Deserialize)]
pub struct ShopSearchParams {
    q: Option<String>,
    brand: Option<String>,
    category: Option<String>,
    colour: Option<String>,
    page: Option<usize>,
    /// Search the words as typed (the "search instead for" link under a spelling correction).
    as_typed: Option<bool>,
}

/// Search results ranked for the visitor by the search engine, with facet links to refine them. The search is
/// recorded as a `search` event of the visitor.
async fn search_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<ShopSearchParams>,
) -> PageResult<Response> {
    let mut request = Request::new(&state, &headers).await?;
    let q = params.q.clone().unwrap_or_default().trim().chars().take(500).collect::<String>();
    let refined = params.brand.is_some() || params.category.is_some() || params.colour.is_some();
    if q.is_empty() && !refined {
        return Ok(Redirect::to("/shop/browse").into_response());
    }
    let page = params.page.unwrap_or(1).clamp(1, 100);
    let anonymous = attune_core::AnonymousId::parse_field("anonymous_id", request.visitor.anonymous_id.clone()).ok();
    let session = attune_core::SessionId::parse_field("session_id", request.visitor.session_id.clone()).ok();
    let search = SearchParams {
        query: q.clone(),
        user: None,
        anonymous,
        session,
        filter: None,
        filters: attune_search::Filters {
            category_prefix: params.category.iter().flat_map(|c| c.split('>')).map(|c| c.trim().to_string()).collect(),
            brands: params.brand.iter().cloned().collect(),
            colours: params.colour.iter().cloned().collect(),
            ..Default::default()
        },
        sort: attune_search::SortOrder::Relevance,
        page,
        per_page: GRID_PAGE,
        facets: true,
        correct_spelling: !params.as_typed.unwrap_or(false),
        dry_run: false,
    };
    let index = tenant_index(&state, &request.shop.tenant).await?;
    let (tenant, used) = (request.shop.tenant.clone(), index.clone());
    let results = state.run(move |engine| engine.search().search(&tenant, &used, &search)).await?;
    // The search box's suggestions here: those for the query (past queries, then titles), then popular queries.
    let related = suggest(&state, &request.shop.tenant, q.clone(), 8).await;
    let mut suggestions: Vec<String> = related.unwrap_or_default().into_iter().map(|s| s.text).collect();
    for popular in std::mem::take(&mut request.suggestions) {
        if !suggestions.iter().any(|s| s.eq_ignore_ascii_case(&popular)) {
            suggestions.push(popular);
        }
    }
    request.suggestions = suggestions;
    // Each card links to its product page with the search id and its rank, so the click is attributed to this
    // search, and shows the hit's score breakdown.
    let first_rank = (page - 1) * GRID_PAGE;
    let cards: Vec<Markup> = results
        .hits
        .iter()
        .enumerate()
        .map(|(rank, hit)| {
            let position = (first_rank + rank).to_string();
            let href = with_query(
                &product_href(hit.item.id.as_str()),
                &[("search_id", Some(results.search_id.as_str())), ("position", Some(position.as_str()))],
            );
            product_card_to(&hit.item, Some(score_note(&hit.score)), &href)
        })
        .collect();
    let link = |brand: Option<&str>, category: Option<&str>, colour: Option<&str>, page: Option<&str>| {
        with_query(
            "/shop/search",
            &[
                ("q", Some(q.as_str())),
                ("brand", brand.or(params.brand.as_deref())),
                ("category", category.or(params.category.as_deref())),
                ("colour", colour.or(params.colour.as_deref())),
                ("page", page),
                ("as_typed", params.as_typed.filter(|as_typed| *as_typed).map(|_| "true")),
            ],
        )
    };
    let searched = results.corrected_query.as_deref().unwrap_or(&q);
    let heading = if q.is_empty() { "Refined results".to_string() } else { format!("Results for “{searched}”") };
    let as_typed = with_query("/shop/search", &[("q", Some(q.as_str())), ("as_typed", Some("true"))]);
    let next_page = (page * GRID_PAGE < results.total).then(|| (page + 1).to_string());
    let body = html! {
        div.shop-container {
            nav.shop-breadcrumb aria-label="Breadcrumb" {
                a href="/shop" { "Home" } span { "/" } span.current { (heading) }
            }
            div.section-header {
                div {
                    h1 { (heading) }
                    p.muted id="result-count" { (plural(results.total as u64, "product", "products")) }
                    @if let Some(corrected) = &results.corrected_query {
                        p.muted id="spelling-note" {
                            "Showing results for " strong { (corrected) } ". Search instead for "
                            a href=(as_typed) { (q) } "."
                        }
                    }
                }
                @if refined { a.link-arrow href=(with_query("/shop/search", &[("q", Some(q.as_str()))])) { "Clear filters" } }
            }
            @if let Some(facets) = &results.facets {
                div.search-facets id="search-facets" {
                    @for (name, values, pick) in [("Brand", &facets.brand, 0), ("Category", &facets.category, 1), ("Colour", &facets.colour, 2)] {
                        @if !values.is_empty() {
                            div.facet-group {
                                strong { (name) }
                                @for value in values.iter().take(8) {
                                    @let v = Some(value.value.as_str());
                                    @let href = match pick { 0 => link(v, None, None, None), 1 => link(None, v, None, None), _ => link(None, None, v, None) };
                                    a.chip href=(href) { (value.value) " (" (value.count) ")" }
                                }
                            }
                        }
                    }
                }
            }
            @if cards.is_empty() {
                div.empty-state.shop-empty {
                    p.empty-title { "No products found" }
                    p.muted { "Try a different word, or browse everything." }
                    @if let Some(reading) = results.no_match.as_ref().and_then(|n| n.did_you_mean.as_deref()) {
                        p id="did-you-mean" { "Did you mean " a href=(with_query("/shop/search", &[("q", Some(reading))])) { (reading) } "?" }
                    }
                    a.button.primary href="/shop/browse" { "Browse all products" }
                }
                @if let Some(no_match) = results.no_match.as_ref().filter(|n| !n.popular.is_empty()) {
                    section.shop-section id="no-match-popular" {
                        div.section-header { div { h2 { "Popular instead" } p.muted { "Not matches of your search: what other shoppers buy most." } } }
                        div.product-grid {
                            @for item in &no_match.popular { (product_card(item, None)) }
                        }
                    }
                }
            } @else {
                div.product-grid id="search-grid" {
                    @for card in &cards { (card) }
                }
                @if page > 1 || next_page.is_some() {
                    nav.pager.shop-pager {
                        @if page > 1 {
                            a.button href=(link(None, None, None, Some(&(page - 1).to_string()))) { (icon("arrow-left")) "Previous page" }
                        } @else { span {} }
                        @if let Some(next) = &next_page {
                            a.button.primary id="next-page" href=(link(None, None, None, Some(next))) {
                                "Next page" (icon("arrow-right"))
                            }
                        }
                    }
                }
            }
        }
    };
    let markup = shop_page(&request.shell(&q), &heading, body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

/// Where a product page was opened from: a search result carries its search's id and its rank.
#[derive(Debug, Default, Deserialize)]
pub struct ProductParams {
    search_id: Option<String>,
    /// Kept as text: a malformed value is ignored, never an error page.
    position: Option<String>,
}

/// The `click` on a search result that opened a product page, with the search's id in its context.
fn search_click(item_id: &ItemId, from: &ProductParams) -> Option<EventInput> {
    let search_id = uuid::Uuid::parse_str(from.search_id.as_deref()?).ok()?;
    Some(EventInput {
        event_type: "click".to_string(),
        item_id: Some(item_id.to_string()),
        position: from.position.as_deref().and_then(|p| p.parse::<u32>().ok()).map(i64::from),
        context: Some(BTreeMap::from([("search_id".to_string(), ScalarValue::Text(search_id.to_string()))])),
        ..Default::default()
    })
}

/// A search hit's score breakdown, in words.
fn score_note(score: &attune_search::ScoreBreakdown) -> String {
    let mut parts = Vec::new();
    if let Some(lexical) = score.lexical {
        match score.words_held {
            Some(share) if share < 1.0 => {
                parts.push(format!("words {lexical:.2} ({:.0}% of the query)", share * 100.0));
            }
            _ => parts.push(format!("words {lexical:.2}")),
        }
    }
    if let Some(semantic) = score.semantic {
        parts.push(format!("meaning {semantic:.2}"));
    }
    if score.personal > 0.0 {
        parts.push(format!("for you {:.2}", score.personal));
    }
    parts.push(format!("score {:.2}", score.total));
    parts.join(" · ")
}

async fn product(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePath(id): PagePath<String>,
    PageQuery(from): PageQuery<ProductParams>,
) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let Ok(item_id) = ItemId::parse(id) else { return Ok(request.not_found("That is not a product of this shop.")) };
    let store = state.store().clone();
    let tenant = request.shop.tenant.clone();
    let subject = request.subject();
    let found = blocking(move || {
        let item = store.item(&tenant, &item_id)?;
        if let Some(item) = &item {
            if let Some(click) = search_click(&item.id, &from) {
                record(store.as_ref(), &tenant, &subject, click);
            }
            record(store.as_ref(), &tenant, &subject, item_event("view", &item.id, None));
        }
        Ok(item)
    })
    .await?;
    let Some(item) = found else {
        return Ok(request.not_found("This product is not (or no longer) in the catalogue."));
    };
    let similar =
        storefront_recommendations(&state, &request, Basis::Similar(vec![item.id.clone()]), HashSet::new()).await;
    let title = display_title(&item.title);
    let in_basket = request.cart.quantity(item.id.as_str());
    let body = html! {
        div.shop-container {
            nav.shop-breadcrumb aria-label="Breadcrumb" {
                a href="/shop" { "Home" } span { "/" }
                a href="/shop/browse" { "All products" } span { "/" }
                @for level in &item.category_path { a href=(category_href(level)) { (level) } span { "/" } }
                span.current { (title) }
            }
            article.product-page data-item-id=(item.id) {
                div.product-gallery { div.product-hero-image { (product_image(&item)) } }
                div.product-summary {
                    @if let Some(brand) = &item.brand { p.eyebrow { (brand) } }
                    h1 id="product-title" { (title) }
                    p.sku { "Item " span.mono { (item.id) } }
                    p.product-price id="product-price" {
                        @if let Some(price) = &item.price { (money(price)) } @else { "Price on request" }
                    }
                    p.availability {
                        @if item.is_in_stock() {
                            span.stock-in { (icon("check")) "In stock" }
                            @if let Some(stock) = item.stock_quantity { span.muted { " · " (count(stock.max(0) as u64)) " available" } }
                        } @else { span.stock-out { "Out of stock" } }
                    }
                    @if item.is_in_stock() {
                        form.add-form method="post" action="/shop/cart/add" {
                            input type="hidden" name="item_id" value=(item.id);
                            label.qty-field {
                                span { "Quantity" }
                                input.input type="number" name="quantity" value="1" min="1" max=(MAX_ADD_QUANTITY) inputmode="numeric";
                            }
                            button.button.primary.large type="submit" id="add-to-basket" { (icon("store")) "Add to basket" }
                        }
                    } @else {
                        button.button.large type="button" disabled { "Currently unavailable" }
                    }
                    @if in_basket > 0 {
                        p.in-basket { (icon("check")) (plural(u64::from(in_basket), "unit", "units")) " in your basket · "
                            a href="/shop/cart" { "View basket" } }
                    }
                    @if !item.description.trim().is_empty() {
                        div.description { h2 { "Description" } p { (item.description) } }
                    }
                    dl.product-facts {
                        dt { "Item number" } dd.mono { (item.id) }
                        @if !item.category_path.is_empty() { dt { "Category" } dd { (item.category_path.join(" › ")) } }
                        @for (name, value) in item.attributes.iter().take(8) { dt { (name) } dd { (value.to_text()) } }
                    }
                }
            }
            // Filled by recommendation work: items similar to this one.
            section.rec-slot id="recommendations-similar" data-placement="similar" data-item-id=(item.id)
                aria-label="Similar products" {
                (recommendation_grid("You may also like", "Products that shoppers who liked this one also liked.", &similar))
            }
            // Filled by recommendation work: items often bought together with this one.
            section.rec-slot id="recommendations-bought-together" data-placement="bought-together"
                data-item-id=(item.id) aria-label="Frequently bought together" {}
        }
    };
    let markup = shop_page(&request.shell(""), &title, body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

// ---------------------------------------------------------------------------------------------------
// Basket

#[derive(Debug, Default, Deserialize)]
pub struct CartParams {
    added: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CartForm {
    #[serde(default)]
    item_id: String,
    quantity: Option<String>,
}

impl CartForm {
    fn quantity(&self, default: u32) -> u32 {
        self.quantity.as_deref().and_then(|q| q.trim().parse::<u32>().ok()).unwrap_or(default)
    }
}

async fn cart_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<CartParams>,
) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let ids: Vec<ItemId> = request.cart.lines.iter().filter_map(|(id, _)| ItemId::parse(id.clone()).ok()).collect();
    let store = state.store().clone();
    let tenant = request.shop.tenant.clone();
    let items = blocking(move || Ok(store.items(&tenant, &ids)?)).await?;
    let lines: Vec<(&Item, u32)> =
        items.iter().map(|item| (item, request.cart.quantity(item.id.as_str()))).filter(|(_, q)| *q > 0).collect();
    let mut totals: BTreeMap<attune_core::Currency, i64> = BTreeMap::new();
    for (item, quantity) in &lines {
        if let Some(price) = &item.price {
            *totals.entry(price.currency).or_default() += price.minor_units * i64::from(*quantity);
        }
    }
    let units: u64 = lines.iter().map(|(_, q)| u64::from(*q)).sum();
    let added = params.added.as_deref().and_then(|id| lines.iter().find(|(item, _)| item.id.as_str() == id));
    let total_text = if totals.is_empty() {
        "—".to_string()
    } else {
        totals.iter().map(|(c, m)| money(&Money::new(*m, *c))).collect::<Vec<_>>().join(" + ")
    };
    let item_ids = lines.iter().map(|(item, _)| item.id.as_str()).collect::<Vec<_>>().join(",");
    let basket: Vec<ItemId> = lines.iter().map(|(item, _)| item.id.clone()).collect();
    let complete = if basket.is_empty() {
        Vec::new()
    } else {
        let exclude = basket.iter().cloned().collect();
        storefront_recommendations(&state, &request, Basis::Similar(basket), exclude).await
    };
    let body = html! {
        div.shop-container {
            nav.shop-breadcrumb aria-label="Breadcrumb" { a href="/shop" { "Home" } span { "/" } span.current { "Basket" } }
            h1.page-title { "Your basket" }
            @if let Some((item, _)) = added {
                div.alert.alert-success role="status" id="added-notice" {
                    (icon("check")) span { "Added " strong { (display_title(&item.title)) } " to your basket." }
                }
            }
            @if lines.is_empty() {
                div.empty-state.shop-empty id="cart-empty" {
                    p.empty-title { "Your basket is empty" }
                    p.muted { "Find something you like and add it here." }
                    a.button.primary href="/shop/browse" { "Browse products" }
                }
            } @else {
                div.cart-layout {
                    div.card.cart-lines {
                        table.cart-table id="cart" {
                            thead { tr { th { "Product" } th.num { "Price" } th { "Quantity" } th.num { "Total" } th { span.sr-only { "Remove" } } } }
                            tbody {
                                @for (item, quantity) in &lines {
                                    tr.cart-line data-item-id=(item.id) {
                                        td {
                                            a.cart-product href=(product_href(item.id.as_str())) {
                                                span.cart-thumb { (product_image(item)) }
                                                span {
                                                    span.cart-title { (display_title(&item.title)) }
                                                    span.muted.mono.small { (item.id) }
                                                }
                                            }
                                        }
                                        td.num { @if let Some(p) = &item.price { (money(p)) } @else { "—" } }
                                        td {
                                            form.qty-form method="post" action="/shop/cart/update" {
                                                input type="hidden" name="item_id" value=(item.id);
                                                input.input.qty-input type="number" name="quantity" value=(quantity) min="0"
                                                    max=(cookies::MAX_LINE_QUANTITY) aria-label="Quantity";
                                                button.button.small type="submit" { "Update" }
                                            }
                                        }
                                        td.num.strong.line-total {
                                            @if let Some(p) = &item.price { (money(&Money::new(p.minor_units * i64::from(*quantity), p.currency))) }
                                            @else { "—" }
                                        }
                                        td {
                                            form method="post" action="/shop/cart/remove" {
                                                input type="hidden" name="item_id" value=(item.id);
                                                button.icon-button type="submit" title="Remove from basket" aria-label=(format!("Remove {}", display_title(&item.title))) {
                                                    (icon("trash"))
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    aside.card.cart-summary {
                        h2 { "Summary" }
                        dl.summary-rows {
                            dt { "Items" } dd { (count(units)) }
                            dt { "Delivery" } dd { "Calculated at checkout" }
                            dt.total { "Total" } dd.total id="cart-total" { (total_text) }
                        }
                        button.button.primary.block.large type="button" disabled { "Checkout" }
                        p.hint.center { "Checkout is switched off in this demo." }
                    }
                }
            }
            // Filled by recommendation work: items that complete this basket.
            section.rec-slot id="recommendations-complete-your-basket" data-placement="complete-your-basket"
                data-item-ids=(item_ids) aria-label="Complete your basket" {
                (recommendation_grid("Complete your basket", "Products often chosen together with what is in your basket.", &complete))
            }
        }
    };
    let markup = shop_page(&request.shell(""), "Basket", body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

async fn cart_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CartForm>,
) -> PageResult<Response> {
    let mut request = Request::new(&state, &headers).await?;
    let Ok(item_id) = ItemId::parse(form.item_id.trim().to_string()) else {
        return Ok(request.not_found("That is not a product of this shop."));
    };
    let store = state.store().clone();
    let tenant = request.shop.tenant.clone();
    let lookup = item_id.clone();
    let Some(item) = blocking(move || Ok(store.item(&tenant, &lookup)?)).await? else {
        return Ok(request.not_found("This product is not (or no longer) in the catalogue."));
    };
    if !item.is_in_stock() {
        return Ok(request.redirect(&product_href(item.id.as_str()), Vec::new()));
    }
    let added = request.cart.add(item.id.as_str(), form.quantity(1).clamp(1, MAX_ADD_QUANTITY));
    if added > 0 {
        let (store, tenant, subject) = (state.store().clone(), request.shop.tenant.clone(), request.subject());
        blocking(move || {
            record(store.as_ref(), &tenant, &subject, item_event("add_to_cart", &item_id, Some(added)));
            Ok(())
        })
        .await?;
    }
    let cookie = request.cart.cookie();
    let to = with_query("/shop/cart", &[("added", Some(item.id.as_str()))]);
    Ok(request.redirect(&to, vec![cookie]))
}

async fn cart_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CartForm>,
) -> PageResult<Response> {
    let mut request = Request::new(&state, &headers).await?;
    let id = form.item_id.trim().to_string();
    let before = request.cart.quantity(&id);
    let wanted = form.quantity(before).min(cookies::MAX_LINE_QUANTITY);
    if before > 0 && wanted != before {
        request.cart.set(&id, wanted);
        if let Ok(item_id) = ItemId::parse(id) {
            let event = if wanted > before {
                item_event("add_to_cart", &item_id, Some(wanted - before))
            } else {
                item_event("remove_from_cart", &item_id, Some(before - wanted))
            };
            let (store, tenant, subject) = (state.store().clone(), request.shop.tenant.clone(), request.subject());
            blocking(move || {
                record(store.as_ref(), &tenant, &subject, event);
                Ok(())
            })
            .await?;
        }
    }
    let cookie = request.cart.cookie();
    Ok(request.redirect("/shop/cart", vec![cookie]))
}

async fn cart_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CartForm>,
) -> PageResult<Response> {
    let mut request = Request::new(&state, &headers).await?;
    let id = form.item_id.trim().to_string();
    let before = request.cart.quantity(&id);
    if before > 0 {
        request.cart.set(&id, 0);
        if let Ok(item_id) = ItemId::parse(id) {
            let (store, tenant, subject) = (state.store().clone(), request.shop.tenant.clone(), request.subject());
            blocking(move || {
                record(store.as_ref(), &tenant, &subject, item_event("remove_from_cart", &item_id, Some(before)));
                Ok(())
            })
            .await?;
        }
    }
    let cookie = request.cart.cookie();
    Ok(request.redirect("/shop/cart", vec![cookie]))
}

async fn unknown_page(State(state): State<AppState>, headers: HeaderMap) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    Ok(request.not_found("There is no page at this address."))
}
