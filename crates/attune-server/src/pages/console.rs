//! The operator console: sign-in with a secret API key, the tenant overview with its activity chart,
//! the catalog browser and customer profiles with their cross-channel timelines.

use super::chart::events_chart;
use super::context::{
    FormToken, PageError, PagePath, PageQuery, PageResult, Session, clear_console_cookie, customer_href, item_href,
    safe_next, signed_in,
};
use super::cookies;
use super::format::{channel_label, count, date, date_time, encode, event_type_label, iso, money, plural, with_query};
use super::insights::predicted_value_card;
use super::layout::{ConsoleSection, auth_page, console_page, icon, page_header, placeholder};
use crate::auth::resolve_key;
use crate::error::ErrorKind;
use crate::state::{AppState, blocking};
use attune_core::{
    ApiKeyKind, Availability, Channel, Currency, Event, EventKind, EventType, Item, ItemId, Money, OrderLine, User,
    UserId,
};
use attune_engine::insights::activity::CustomerActivity;
use attune_store::{ItemQuery, StoredEvent, TenantStats, TimelineQuery, UserQuery};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

const CATALOG_PAGE: usize = 50;
const CUSTOMER_PAGE: usize = 50;
const TIMELINE_PAGE: usize = 30;
/// Most events read to summarise one customer.
const SUMMARY_EVENT_CAP: usize = 20_000;
/// Order lines shown before the rest fold away.
const LINES_SHOWN: usize = 6;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/login/demo", post(demo_login))
        .route("/console/logout", get(|| async { Redirect::to("/console") }).post(logout))
        .route("/console/sessions", get(sessions_page))
        .route("/console/sessions/{id}/end", post(end_session))
        .route("/console/catalog", get(catalog))
        .route("/console/catalog/{id}", get(item_page))
        .route("/console/customers", get(customers))
        .route("/console/customers/{id}", get(customer_page))
        .route("/console/customers/{id}/export", get(customer_export))
        .route("/console/{*rest}", get(unknown_page))
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginParams {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    next: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<LoginParams>,
) -> Markup {
    login_markup(&state, &headers, params.next.as_deref(), None)
}

/// The demo's one-click sign-in key, when this request may use it: `serve --demo`, reached by a loopback name.
fn demo_key<'a>(state: &'a AppState, headers: &HeaderMap) -> Option<&'a str> {
    state.options.demo_console_key.as_deref().filter(|_| super::is_loopback_host(headers))
}

fn login_markup(state: &AppState, headers: &HeaderMap, next: Option<&str>, error: Option<&str>) -> Markup {
    let next = Some(safe_next(next)).filter(|n| *n != "/console");
    auth_page(
        "Sign in",
        html! {
            div.card.auth-card {
                h1 { "Sign in to the console" }
                p.muted { "Use a secret API key of your tenant. Keys start with " code { "sk_" } "." }
                @if let Some(error) = error {
                    div.alert.alert-error role="alert" { (icon("x")) span { (error) } }
                }
                form.stack method="post" action="/console/login" {
                    @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                    label.field {
                        span.field-label { "Secret API key" }
                        input.input type="password" name="key" required autocomplete="off" spellcheck="false"
                            placeholder="sk_…" autofocus;
                    }
                    button.button.primary.block type="submit" id="sign-in" { (icon("key")) "Sign in" }
                }
                @if demo_key(state, headers).is_some() {
                    div.divider { span { "or" } }
                    form method="post" action="/console/login/demo" {
                        @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                        button.button.block type="submit" id="demo-sign-in" {
                            (icon("store")) "Open the demo shop's console"
                        }
                    }
                    p.hint { "One-click sign-in is offered because this server runs " code { "attune serve --demo" }
                        " and you reached it as localhost." }
                } @else {
                    p.hint { "Create a key with " code { "attune keys create --tenant <id> --kind secret" } "." }
                }
            }
        },
    )
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let key = form.key.trim();
    let next = form.next.as_deref();
    let refuse =
        |message: &str| (StatusCode::UNAUTHORIZED, login_markup(&state, &headers, next, Some(message))).into_response();
    if !cookies::is_cookie_safe(key) {
        return refuse("That does not look like an API key.");
    }
    match resolve_key(&state, key).await {
        Ok(resolved) if resolved.record.kind == ApiKeyKind::Secret => {
            signed_in(&state, &resolved, &headers, next).await
        }
        Ok(_) => refuse("This is a public key (pk_…). The console needs a secret key (sk_…)."),
        Err(error) if error.kind == ErrorKind::Unauthenticated => refuse("This key is unknown or has been revoked."),
        Err(error) => PageError::from(error).into_response(),
    }
}

async fn demo_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginParams>, axum::extract::rejection::FormRejection>,
) -> Response {
    // The form only carries an optional `next`; a bare POST signs in too.
    let next = form.ok().and_then(|Form(form)| form.next);
    let Some(key) = demo_key(&state, &headers) else {
        return PageError::not_found(
            "one-click sign-in is only offered by `attune serve --demo`, reached as localhost",
        )
        .into_response();
    };
    match resolve_key(&state, key).await {
        Ok(resolved) => signed_in(&state, &resolved, &headers, next.as_deref()).await,
        Err(error) => PageError::from(error).into_response(),
    }
}

/// Ends this browser's session on the server and forgets its cookie.
async fn logout(State(state): State<AppState>, session: Session, Form(form): Form<FormToken>) -> Response {
    if let Err(error) = session.check_form(&form) {
        return error.into_response();
    }
    let (tenant, id) = (session.tenant.clone(), session.session_id.clone());
    if let Err(error) = state.run(move |engine| Ok(engine.store().end_console_session(&tenant, &id)?)).await {
        return PageError::from(error).into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(SET_COOKIE, clear_console_cookie());
    response
}

/// The tenant's console sessions: who is signed in, since when, until when; each can be ended.
async fn sessions_page(State(state): State<AppState>, session: Session) -> PageResult<Markup> {
    let tenant = session.tenant.clone();
    let sessions = state.run(move |engine| Ok(engine.store().console_sessions(&tenant)?)).await?;
    let body = html! {
        (page_header(&[], "Sessions", Some(html! { "Browsers signed in to this tenant's console. Revoking a key ends the sessions it signed in." }), None))
        section.card {
            table.table id="sessions" {
                thead { tr { th { "Session" } th { "Browser" } th { "Key" } th { "Signed in" } th { "Expires" } th {} } }
                tbody {
                    @for other in &sessions {
                        tr {
                            td { code { (other.session_id) } @if other.session_id == session.session_id { " " span.badge.badge-green { "this browser" } } }
                            td { (other.user_agent) }
                            td { code { (other.key_id) } }
                            td { (date_time(other.created_at)) }
                            td { (date_time(other.expires_at)) }
                            td {
                                form method="post" action=(format!("/console/sessions/{}/end", other.session_id)) {
                                    input type="hidden" name="form_token" value=(session.form_token);
                                    button.button.small.ghost type="submit" { "End" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Overview), "Sessions", body))
}

/// `POST /console/sessions/{id}/end`: ends a session of the tenant (this browser's signs it out).
async fn end_session(
    State(state): State<AppState>,
    session: Session,
    PagePath(id): PagePath<String>,
    Form(form): Form<FormToken>,
) -> PageResult<Response> {
    session.check_form(&form)?;
    let tenant = session.tenant.clone();
    let ended = state.run(move |engine| Ok(engine.store().end_console_session(&tenant, &id)?)).await?;
    if !ended {
        return Err(PageError::not_found("No such session."));
    }
    Ok(Redirect::to("/console/sessions").into_response())
}

async fn unknown_page(session: Session) -> Response {
    not_found(&session, ConsoleSection::Overview, "There is no console page at this address.")
}

fn not_found(session: &Session, section: ConsoleSection, message: &str) -> Response {
    let body = html! {
        (page_header(&[], "Not found", None, None))
        div.card.empty-state {
            p.empty-title { (message) }
            a.button href="/console" { (icon("arrow-left")) "Back to the overview" }
        }
    };
    (StatusCode::NOT_FOUND, console_page(&session.shell(section), "Not found", body)).into_response()
}

// ---------------------------------------------------------------------------------------------------
// Overview

async fn overview(State(state): State<AppState>, session: Session) -> PageResult<Markup> {
    let store = state.store().clone();
    let tenant = session.tenant.clone();
    let (stats, days) = blocking(move || Ok((store.stats(&tenant)?, store.events_per_day(&tenant)?))).await?;
    let of_type = |t: EventType| stats.events_by_type.iter().find(|(kind, _)| *kind == t).map_or(0, |(_, n)| *n);
    let active_days = days.iter().filter(|d| d.events > 0).count() as u64;
    let range = match (stats.first_event_at, stats.last_event_at) {
        (Some(first), Some(last)) => Some((first, last)),
        _ => None,
    };
    let subtitle = html! { (session.tenant_name) " · tenant " code { (session.tenant) } };
    let body = html! {
        (page_header(&[], "Overview", Some(subtitle), None))
        section.stat-grid {
            (stat_card("stat-items", "Catalog items", stats.items, "/console/catalog", html! { "Products and variants" }))
            (stat_card("stat-users", "Customers", stats.users, "/console/customers", html! { "Known customer profiles" }))
            (stat_card("stat-events", "Events", stats.events, "#activity", html! {
                @if let Some((first, last)) = range { (date(first)) " – " (date(last)) } @else { "None recorded yet" }
            }))
            (stat_card("stat-orders", "Orders", of_type(EventType::Purchase), "#event-types", html! {
                (plural(of_type(EventType::Return), "return", "returns"))
            }))
        }
        section.card id="activity" {
            div.card-header {
                div {
                    h2 { "Activity" }
                    p.muted {
                        @if let Some((first, last)) = range {
                            "Events per day from " time datetime=(iso(first)) { (date(first)) }
                            " to " time datetime=(iso(last)) { (date(last)) } " (UTC). Hover a bar for its count."
                        } @else { "Events per day will appear once data arrives." }
                    }
                }
                @if active_days > 0 {
                    div.card-header-stats {
                        div { span.mini-label { "Active days" } span.mini-value { (count(active_days)) } }
                        div {
                            span.mini-label { "Avg per active day" }
                            span.mini-value { (count(stats.events / active_days.max(1))) }
                        }
                        div {
                            span.mini-label { "Busiest day" }
                            span.mini-value { (count(days.iter().map(|d| d.events).max().unwrap_or(0))) }
                        }
                    }
                }
            }
            div.chart-wrap { (events_chart(&days)) }
        }
        div.two-col {
            section.card id="event-types" {
                div.card-header { div { h2 { "Events by type" } p.muted { "Everything recorded for this tenant, across channels." } } }
                (event_type_breakdown(&stats))
            }
            section.card {
                div.card-header { div { h2 { "Send data" } p.muted { "Events arrive through the HTTP API with a secret or public key." } } }
                pre.code-block {
                    "curl -X POST \"$ATTUNE/v1/events\" \\\n"
                    "  -H \"Authorization: Bearer sk_…\" \\\n"
                    "  -H \"Content-Type: application/json\" \\\n"
                    "  -d '{\"type\": \"view\", \"user_id\": \"17850\",\n"
                    "       \"item_id\": \"85123A\"}'"
                }
                ul.link-list {
                    li { a href="/v1/openapi.json" target="_blank" rel="noopener" { "OpenAPI document" } span.muted { " — every endpoint and field" } }
                    li { a href="/console/catalog" { "Browse the catalog" } span.muted { " — " (plural(stats.items, "item", "items")) } }
                    li { a href="/console/customers" { "Look up a customer" } span.muted { " — profiles and timelines" } }
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Overview), "Overview", body))
}

fn stat_card(id: &str, label: &str, value: u64, href: &str, note: Markup) -> Markup {
    html! {
        a.card.stat-card href=(href) {
            span.stat-label { (label) }
            span.stat-value id=(id) data-value=(value) { (count(value)) }
            span.stat-note { (note) }
        }
    }
}

fn event_type_breakdown(stats: &TenantStats) -> Markup {
    let mut rows: Vec<(EventType, u64)> = stats.events_by_type.iter().filter(|(_, n)| *n > 0).copied().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = rows.first().map_or(1, |(_, n)| *n).max(1);
    html! {
        @if rows.is_empty() {
            div.empty-state { p.empty-title { "No events yet" } }
        } @else {
            ul.breakdown {
                @for (event_type, events) in &rows {
                    li {
                        span.breakdown-label { span.badge.(type_class(*event_type)) { (event_type_label(*event_type)) } }
                        span.breakdown-bar {
                            span style=(format!("width:{:.1}%", *events as f64 * 100.0 / max as f64)) {}
                        }
                        span.breakdown-value { (count(*events)) }
                        span.breakdown-share.muted {
                            (format!("{:.1}%", *events as f64 * 100.0 / stats.events.max(1) as f64))
                        }
                    }
                }
            }
        }
    }
}

fn type_class(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Purchase => "badge-green",
        EventType::Return | EventType::NotInterested => "badge-red",
        EventType::AddToCart | EventType::Wishlist => "badge-blue",
        EventType::RemoveFromCart => "badge-amber",
        EventType::Search => "badge-purple",
        EventType::Click | EventType::Impression => "badge-teal",
        EventType::View | EventType::Rating => "badge-gray",
    }
}

// ---------------------------------------------------------------------------------------------------
// Catalog

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    q: Option<String>,
    after: Option<String>,
}

impl ListParams {
    fn query(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }
    fn after(&self) -> Option<&str> {
        self.after.as_deref().filter(|a| !a.is_empty())
    }
}

fn search_bar(action: &str, query: Option<&str>, placeholder_text: &str) -> Markup {
    html! {
        form.toolbar method="get" action=(action) role="search" {
            div.search-input {
                (icon("search"))
                input.input type="search" name="q" value=[query] placeholder=(placeholder_text) aria-label=(placeholder_text);
            }
            button.button type="submit" { "Search" }
            @if query.is_some() { a.button.ghost href=(action) { "Clear" } }
        }
    }
}

fn pager(path: &str, query: Option<&str>, after: Option<&str>, next_after: Option<&str>) -> Markup {
    html! {
        @if after.is_some() || next_after.is_some() {
            nav.pager aria-label="Pages" {
                @if after.is_some() {
                    a.button.ghost href=(with_query(path, &[("q", query)])) { (icon("arrow-left")) "First page" }
                } @else { span {} }
                @if let Some(next) = next_after {
                    a.button id="next-page" href=(with_query(path, &[("q", query), ("after", Some(next))])) {
                        "Next page" (icon("arrow-right"))
                    }
                }
            }
        }
    }
}

fn availability_badge(availability: Availability) -> Markup {
    let (class, label) = match availability {
        Availability::InStock => ("badge-green", "In stock"),
        Availability::OutOfStock => ("badge-gray", "Out of stock"),
        Availability::Preorder => ("badge-blue", "Preorder"),
        Availability::Backorder => ("badge-amber", "Backorder"),
    };
    html! { span.badge.(class) { (label) } }
}

fn price_text(item: &Item) -> String {
    item.price.as_ref().map(money).unwrap_or_else(|| "—".to_string())
}

async fn catalog(
    State(state): State<AppState>,
    session: Session,
    PageQuery(params): PageQuery<ListParams>,
) -> PageResult<Markup> {
    let store = state.store().clone();
    let tenant = session.tenant.clone();
    let query = ItemQuery {
        search: params.query().map(str::to_string),
        category: None,
        after: params.after().map(str::to_string),
        limit: CATALOG_PAGE,
    };
    let page = blocking(move || Ok(store.list_items(&tenant, &query)?)).await?;
    let q = params.query();
    let subtitle = html! {
        @if let Some(q) = q { (plural(page.total, "item matches", "items match")) " “" (q) "”" }
        @else { (plural(page.total, "item", "items")) " in the catalog" }
    };
    let body = html! {
        (page_header(&[], "Catalog", Some(subtitle), Some(html! { a.button href="/console/search" { "Search playground" } })))
        div.card.table-card {
            (search_bar("/console/catalog", q, "Search by item id or title"))
            @if page.items.is_empty() {
                div.empty-state {
                    p.empty-title { @if q.is_some() { "No items match your search" } @else { "The catalog is empty" } }
                    p.muted { "Items arrive through " code { "PUT /v1/items/{id}" } ", " code { "POST /v1/items" }
                        " or " code { "attune import" } "." }
                }
            } @else {
                div.table-scroll {
                    table.data-table id="catalog-table" {
                        thead { tr {
                            th { "Item" } th { "Title" } th.num { "Price" } th { "Availability" } th.num { "Stock" }
                            th { "Created" }
                        } }
                        tbody {
                            @for item in &page.items {
                                tr {
                                    td.mono { a href=(item_href(item.id.as_str())) { (item.id) } }
                                    td.title-cell { a.row-link href=(item_href(item.id.as_str())) { (item.title) } }
                                    td.num { (price_text(item)) }
                                    td { (availability_badge(item.availability)) }
                                    td.num { @if let Some(stock) = item.stock_quantity { (count(stock.max(0) as u64)) } @else { span.muted { "—" } } }
                                    td.muted { time datetime=(iso(item.created_at)) { (date(item.created_at)) } }
                                }
                            }
                        }
                    }
                }
                div.table-footer {
                    span.muted { "Showing " (page.items.len()) " of " (count(page.total)) }
                    (pager("/console/catalog", q, params.after(), page.next_after.as_deref()))
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Catalog), "Catalog", body))
}

async fn item_page(
    State(state): State<AppState>,
    session: Session,
    PagePath(id): PagePath<String>,
) -> PageResult<Response> {
    let Ok(item_id) = ItemId::parse(id) else {
        return Ok(not_found(&session, ConsoleSection::Catalog, "That is not a valid item id."));
    };
    let store = state.store().clone();
    let tenant = session.tenant.clone();
    let Some(item) = blocking(move || Ok(store.item(&tenant, &item_id)?)).await? else {
        return Ok(not_found(&session, ConsoleSection::Catalog, "No item with this id is in the catalog."));
    };
    let crumbs = [("/console/catalog", "Catalog")];
    let actions = session.has_storefront.then(|| {
        html! {
            a.button href=(format!("/shop/products/{}", encode(item.id.as_str()))) target="_blank" rel="noopener" {
                (icon("store")) "View in storefront"
            }
        }
    });
    let subtitle = html! { "Item " code { (item.id) } };
    let body = html! {
        (page_header(&crumbs, &item.title, Some(subtitle), actions))
        div.detail-grid {
            div.card.media-card {
                div.media-frame {
                    @if let Some(url) = &item.image_url { img src=(url) alt=(item.title); }
                    @else { (placeholder(item.id.as_str(), &item.title)) }
                }
                @if item.image_url.is_none() { p.hint.center { "No image in the catalog; showing a generated tile." } }
            }
            div.stack-lg {
                section.card {
                    div.card-header { h2 { "Details" } }
                    dl.kv {
                        dt { "Title" } dd { (item.title) }
                        dt { "Price" } dd.strong { (price_text(&item)) }
                        dt { "Availability" } dd { (availability_badge(item.availability)) }
                        dt { "Stock" } dd { @if let Some(s) = item.stock_quantity { (count(s.max(0) as u64)) } @else { span.muted { "Not tracked" } } }
                        dt { "Brand" } dd { @if let Some(b) = &item.brand { (b) } @else { span.muted { "—" } } }
                        dt { "Category" } dd {
                            @if item.category_path.is_empty() { span.muted { "Uncategorised" } }
                            @else { (item.category_path.join(" › ")) }
                        }
                        @if let Some(group) = &item.item_group_id { dt { "Item group" } dd.mono { (group) } }
                        @if let Some(link) = &item.link { dt { "Link" } dd { a href=(link) rel="noopener noreferrer" target="_blank" { (link) } } }
                        dt { "Created" } dd { (date_time(item.created_at)) " UTC" }
                        dt { "Updated" } dd { (date_time(item.updated_at)) " UTC" }
                    }
                }
                section.card {
                    div.card-header { h2 { "Description" } }
                    @if item.description.trim().is_empty() { p.muted { "No description." } }
                    @else { p.prose { (item.description) } }
                }
                @if !item.attributes.is_empty() {
                    section.card {
                        div.card-header { h2 { "Attributes" } }
                        dl.kv {
                            @for (name, value) in &item.attributes { dt { (name) } dd { (value.to_text()) } }
                        }
                    }
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Catalog), &item.title, body).into_response())
}

// ---------------------------------------------------------------------------------------------------
// Customers

async fn customers(
    State(state): State<AppState>,
    session: Session,
    PageQuery(params): PageQuery<ListParams>,
) -> PageResult<Markup> {
    let store = state.store().clone();
    let tenant = session.tenant.clone();
    let query = UserQuery {
        search: params.query().map(str::to_string),
        after: params.after().map(str::to_string),
        limit: CUSTOMER_PAGE,
    };
    let page = blocking(move || Ok(store.list_users(&tenant, &query)?)).await?;
    let q = params.query();
    let subtitle = html! {
        @if let Some(q) = q { (plural(page.total, "customer matches", "customers match")) " “" (q) "”" }
        @else { (plural(page.total, "customer profile", "customer profiles")) }
    };
    let body = html! {
        (page_header(&[], "Customers", Some(subtitle), None))
        div.card.table-card {
            (search_bar("/console/customers", q, "Search by customer id"))
            @if page.users.is_empty() {
                div.empty-state {
                    p.empty-title { @if q.is_some() { "No customers match your search" } @else { "No customer profiles yet" } }
                    p.muted { "Profiles arrive through " code { "PUT /v1/users/{id}" } "." }
                }
            } @else {
                div.table-scroll {
                    table.data-table id="customers-table" {
                        thead { tr { th { "Customer" } th { "Traits" } th { "Consent" } th { "Created" } } }
                        tbody {
                            @for user in &page.users {
                                tr {
                                    td.mono { a href=(customer_href(user.id.as_str())) { (user.id) } }
                                    td {
                                        @for (name, value) in user.traits.iter().take(3) {
                                            span.chip { span.muted { (name) ": " } (value.to_text()) }
                                        }
                                        @if user.traits.len() > 3 { span.muted { " +" (user.traits.len() - 3) } }
                                        @if user.traits.is_empty() { span.muted { "—" } }
                                    }
                                    td { (consent_summary(user)) }
                                    td.muted { time datetime=(iso(user.created_at)) { (date(user.created_at)) } }
                                }
                            }
                        }
                    }
                }
                div.table-footer {
                    span.muted { "Showing " (page.users.len()) " of " (count(page.total)) }
                    (pager("/console/customers", q, params.after(), page.next_after.as_deref()))
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Customers), "Customers", body))
}

fn consent_summary(user: &User) -> Markup {
    let flags = [
        ("Personalization", user.consent.personalization),
        ("Marketing", user.consent.marketing),
        ("Analytics", user.consent.analytics),
    ];
    html! {
        span.consent-dots {
            @for (name, granted) in flags {
                span.consent-dot.granted[granted] title=(format!("{name}: {}", if granted { "granted" } else { "not granted" })) {
                    (&name[..1])
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TimelineParams {
    before: Option<String>,
}

fn amounts(totals: &BTreeMap<Currency, i64>) -> String {
    if totals.is_empty() {
        return "—".to_string();
    }
    totals.iter().map(|(currency, minor)| money(&Money::new(*minor, *currency))).collect::<Vec<_>>().join(" + ")
}

struct CustomerData {
    user: Option<User>,
    summary: CustomerActivity,
    page: Vec<StoredEvent>,
    next_before: Option<i64>,
    titles: HashMap<ItemId, String>,
}

/// `GET /console/customers/{id}/export`: the customer's export (as `GET /v1/users/{id}/export`), downloaded.
async fn customer_export(
    State(state): State<AppState>,
    session: Session,
    PagePath(id): PagePath<String>,
) -> PageResult<Response> {
    let user_id = UserId::parse(id).map_err(|_| PageError::not_found("That is not a valid customer id."))?;
    let export = crate::api::privacy::user_export(&state, &session.tenant, &user_id).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|e| PageError::from(crate::error::ApiError::internal(e)))?;
    let name: String = user_id.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let disposition = format!("attachment; filename=\"customer-{name}.json\"");
    Ok(([(CONTENT_TYPE, "application/json".to_string()), (CONTENT_DISPOSITION, disposition)], body).into_response())
}

async fn customer_page(
    State(state): State<AppState>,
    session: Session,
    PagePath(id): PagePath<String>,
    PageQuery(params): PageQuery<TimelineParams>,
) -> PageResult<Response> {
    let Ok(user_id) = UserId::parse(id) else {
        return Ok(not_found(&session, ConsoleSection::Customers, "That is not a valid customer id."));
    };
    let before = params.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    let store = state.store().clone();
    let tenant = session.tenant.clone();
    let lookup = user_id.clone();
    let data = blocking(move || {
        let user = store.user(&tenant, &lookup)?;
        let summary = CustomerActivity::read(store.as_ref(), &tenant, &lookup, SUMMARY_EVENT_CAP)?;
        let shown =
            store.user_timeline(&tenant, &lookup, &TimelineQuery { before_seq: before, limit: TIMELINE_PAGE })?;
        let mut ids: Vec<ItemId> = summary.top_items.iter().map(|(id, _)| id.clone()).collect();
        for stored in &shown.events {
            ids.extend(stored.event.kind.items().into_iter().cloned());
        }
        ids.sort();
        ids.dedup();
        let titles = store.items(&tenant, &ids)?.into_iter().map(|item| (item.id, item.title)).collect();
        Ok(CustomerData { user, summary, page: shown.events, next_before: shown.next_before_seq, titles })
    })
    .await?;
    if data.user.is_none() && data.summary.events == 0 {
        return Ok(not_found(&session, ConsoleSection::Customers, "No customer with this id has a profile or events."));
    }
    let title = format!("Customer {user_id}");
    let crumbs = [("/console/customers", "Customers")];
    let summary = &data.summary;
    let channels: BTreeMap<&str, u64> = summary.channels.iter().map(|(c, n)| (channel_label(*c), *n)).collect();
    let subtitle = html! {
        @if let (Some(first), Some(last)) = (summary.first_seen, summary.last_seen) {
            "Seen from " (date(first)) " to " (date(last))
        } @else { "No events recorded" }
    };
    let self_href = customer_href(user_id.as_str());
    let predicted = predicted_value_card(&state, &session, &user_id).await;
    let body = html! {
        (page_header(&crumbs, &title, Some(subtitle), Some(html! {
            a.button.small id="export-customer" href=(format!("{self_href}/export")) { (icon("download")) "Export data" }
        })))
        section.stat-grid.stat-grid-5 id="customer-summary" {
            (mini_stat("Orders", &count(summary.orders)))
            (mini_stat("Revenue", &amounts(&summary.revenue)))
            (mini_stat("Units bought", &count(summary.units)))
            (mini_stat("Returns", &if summary.returns == 0 { "0".to_string() } else {
                format!("{} · {}", count(summary.returns), amounts(&summary.returned))
            }))
            (mini_stat("Events", &format!("{}{}", count(summary.events), if summary.capped { "+" } else { "" })))
        }
        div.profile-grid {
            div.stack-lg {
                (profile_card(data.user.as_ref()))
                (predicted)
                section.card {
                    div.card-header { h2 { "Activity" } }
                    dl.kv {
                        dt { "First seen" } dd { @if let Some(t) = summary.first_seen { (date_time(t)) } @else { "—" } }
                        dt { "Last seen" } dd { @if let Some(t) = summary.last_seen { (date_time(t)) } @else { "—" } }
                        dt { "Channels" } dd {
                            @if summary.channels.is_empty() { span.muted { "—" } }
                            @for (channel, n) in &channels { span.chip { (channel) " " span.muted { (count(*n)) } } }
                        }
                    }
                }
                @if !summary.top_items.is_empty() {
                    section.card {
                        div.card-header { h2 { "Most bought" } }
                        ol.top-items {
                            @for (id, units) in &summary.top_items {
                                li {
                                    (item_ref(id, &data.titles))
                                    span.muted.nowrap { (plural(*units, "unit", "units")) }
                                }
                            }
                        }
                    }
                }
            }
            section.card.timeline-card id="timeline" {
                div.card-header {
                    div {
                        h2 { "Timeline" }
                        p.muted { "Every event across channels, newest first. Times are UTC." }
                    }
                    @if before.is_some() { a.button.ghost href=(self_href) { "Newest" } }
                }
                @if data.page.is_empty() {
                    div.empty-state { p.empty-title { "No events" } }
                } @else {
                    ol.timeline {
                        @for stored in &data.page { (timeline_entry(&stored.event, &data.titles)) }
                    }
                }
                @if let Some(next) = data.next_before {
                    nav.pager {
                        span {}
                        a.button id="older-events" href=(format!("{self_href}?before={next}#timeline")) {
                            "Older events" (icon("arrow-right"))
                        }
                    }
                }
            }
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Customers), &title, body).into_response())
}

fn mini_stat(label: &str, value: &str) -> Markup {
    html! {
        div.card.stat-card.compact {
            span.stat-label { (label) }
            span.stat-value { (value) }
        }
    }
}

fn profile_card(user: Option<&User>) -> Markup {
    html! {
        section.card id="profile" {
            div.card-header { h2 { "Profile" } }
            @match user {
                None => { p.muted { "No profile: this id appears only in events." } }
                Some(user) => {
                    dl.kv {
                        @for (name, value) in &user.traits { dt { (name) } dd { (value.to_text()) } }
                        dt { "Created" } dd { (date_time(user.created_at)) }
                        dt { "Updated" } dd { (date_time(user.updated_at)) }
                    }
                    h3.subheading { "Consent" }
                    ul.consent-list {
                        @for (name, granted) in [("Personalization", user.consent.personalization), ("Marketing", user.consent.marketing), ("Analytics", user.consent.analytics)] {
                            li.granted[granted] {
                                @if granted { (icon("check")) } @else { (icon("x")) }
                                span { (name) } span.muted { @if granted { "granted" } @else { "not granted" } }
                            }
                        }
                        // The shop's own purposes that the customer made a statement about.
                        @for (name, granted) in &user.consent.other {
                            li.granted[*granted] {
                                @if *granted { (icon("check")) } @else { (icon("x")) }
                                span { (name) } span.muted { @if *granted { "granted" } @else { "not granted" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn item_ref(id: &ItemId, titles: &HashMap<ItemId, String>) -> Markup {
    html! {
        span.item-ref {
            @match titles.get(id) {
                Some(title) => { a href=(item_href(id.as_str())) { (title) } span.item-id { (id) } },
                None => { span.mono { (id) } span.item-id { "not in catalog" } },
            }
        }
    }
}

fn order_lines(lines: &[OrderLine], titles: &HashMap<ItemId, String>) -> Markup {
    let total: i64 = lines.iter().map(OrderLine::total_minor_units).sum();
    let currency = lines.first().map(|l| l.unit_price.currency);
    let row = |line: &OrderLine| {
        html! {
            tr {
                td.qty { (line.quantity) " ×" }
                td { (item_ref(&line.item_id, titles)) }
                td.num.muted { (money(&line.unit_price)) }
                td.num { (money(&Money::new(line.total_minor_units(), line.unit_price.currency))) }
            }
        }
    };
    html! {
        table.lines {
            tbody {
                @for line in lines.iter().take(LINES_SHOWN) { (row(line)) }
            }
            @if lines.len() > LINES_SHOWN {
                tbody.more {
                    tr { td colspan="4" {
                        details {
                            summary { (format!("Show {} more lines", lines.len() - LINES_SHOWN)) }
                            table.lines { tbody { @for line in &lines[LINES_SHOWN..] { (row(line)) } } }
                        }
                    } }
                }
            }
            @if let Some(currency) = currency {
                tfoot { tr {
                    td {} td.muted { (plural(lines.iter().map(|l| u64::from(l.quantity)).sum(), "unit", "units")) }
                    td.num.muted { "Total" }
                    td.num.strong { (money(&Money::new(total, currency))) }
                } }
            }
        }
    }
}

fn timeline_entry(event: &Event, titles: &HashMap<ItemId, String>) -> Markup {
    let event_type = event.event_type();
    let headline = match &event.kind {
        EventKind::View { item_id, dwell_ms } => html! {
            "Viewed " (item_ref(item_id, titles))
            @if let Some(ms) = dwell_ms { span.muted { " · " (format!("{:.0} s", f64::from(*ms) / 1000.0)) } }
        },
        EventKind::AddToCart { item_id, quantity } => {
            html! { "Added " (quantity) " × " (item_ref(item_id, titles)) " to the basket" }
        }
        EventKind::RemoveFromCart { item_id, quantity } => {
            html! { "Removed " (quantity) " × " (item_ref(item_id, titles)) " from the basket" }
        }
        EventKind::Purchase { order_id, lines } => html! {
            "Order " span.mono { (order_id) } span.muted { " · " (plural(lines.len() as u64, "line", "lines")) }
        },
        EventKind::Return { order_id, lines } => html! {
            "Returned " (plural(lines.len() as u64, "line", "lines"))
            @if let Some(order) = order_id { " of " span.mono { (order) } }
        },
        EventKind::Search { query, result_ids } => html! {
            "Searched “" (query) "”" span.muted { " · " (plural(result_ids.len() as u64, "result", "results")) }
        },
        EventKind::Impression { recommendation_id, item_ids, .. } => html! {
            "Was shown " (plural(item_ids.len() as u64, "recommendation", "recommendations"))
            span.muted.mono { " " (recommendation_id) }
        },
        EventKind::Click { item_id, position, .. } => html! {
            "Clicked " (item_ref(item_id, titles))
            @if let Some(p) = position { span.muted { " · position " (p + 1) } }
        },
        EventKind::Rating { item_id, rating } => {
            html! { "Rated " (item_ref(item_id, titles)) " " strong { (format!("{rating:.1}")) " / 5" } }
        }
        EventKind::Wishlist { item_id } => html! { "Wishlisted " (item_ref(item_id, titles)) },
        EventKind::NotInterested { item_id } => html! { "Not interested in " (item_ref(item_id, titles)) },
    };
    html! {
        li.timeline-entry data-type=(event_type.as_str()) {
            span.timeline-dot.(type_class(event_type)) {}
            div.timeline-body {
                div.timeline-head {
                    span.badge.(type_class(event_type)) { (event_type_label(event_type)) }
                    span.timeline-text { (headline) }
                    span.timeline-meta {
                        span.chip.channel { (channel_label(event.channel)) }
                        @if let (Channel::Store, Some(store)) = (event.channel, &event.store_id) { span.chip { "store " (store) } }
                        time datetime=(iso(event.timestamp)) { (date_time(event.timestamp)) }
                    }
                }
                @match &event.kind {
                    EventKind::Purchase { lines, .. } | EventKind::Return { lines, .. } => { (order_lines(lines, titles)) },
                    _ => {},
                }
            }
        }
    }
}
