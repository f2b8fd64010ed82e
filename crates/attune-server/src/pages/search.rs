//! The console's search playground (`/console/search`): runs a query through the same search path as
//! `/v1/search`, optionally as a given shopper, and shows each hit's score breakdown (lexical, semantic,
//! personal, total), what the query was understood to mean, the mode and any warnings. Playground searches are
//! dry runs: personalised for the shopper typed in, but nothing is stored (no `search` event in their history,
//! no autocomplete count).

use super::context::{PageError, PageQuery, PageResult, Session};
use super::format::with_query;
use super::layout::{ConsoleSection, console_page, page_header};
use crate::api::search::{SearchBody, SearchResults, search, validate};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/search", get(playground))
}

#[derive(Debug, Default, Deserialize)]
pub struct PlaygroundParams {
    q: Option<String>,
    user_id: Option<String>,
    filter: Option<String>,
}

fn score(value: Option<f32>) -> String {
    value.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".to_string())
}

async fn playground(
    State(state): State<AppState>,
    session: Session,
    PageQuery(params): PageQuery<PlaygroundParams>,
) -> PageResult<Markup> {
    let q = params.q.clone().unwrap_or_default();
    let user = params.user_id.clone().unwrap_or_default();
    let filter = params.filter.clone().unwrap_or_default();
    let outcome: Option<Result<SearchResults, PageError>> = if q.trim().is_empty() && filter.trim().is_empty() {
        None
    } else {
        let body = SearchBody {
            q: Some(q.clone()),
            user_id: Some(user.trim().to_string()),
            filter: Some(filter.clone()),
            per_page: Some(20),
            dry_run: Some(true),
            ..Default::default()
        };
        Some(match validate(None, body) {
            Err(error) => Err(error.into()),
            Ok(params) => search(&state, &session.tenant, params).await.map_err(PageError::from),
        })
    };
    let body = html! {
        (page_header(&[("/console/catalog", "Catalog")], "Search playground",
            Some(html! { "Run a query as a shopper and see why each product ranks where it does." }), None))
        section.card {
            form.toolbar method="get" action="/console/search" role="search" {
                input.input type="search" name="q" value=(q) placeholder="e.g. warm jumper under 40" aria-label="Query";
                input.input type="text" name="user_id" value=(user) placeholder="user id (optional)" aria-label="User id";
                input.input type="text" name="filter" value=(filter) placeholder="filter, e.g. brand = \"Acme\"" aria-label="Filter";
                button.button.primary type="submit" { "Search" }
            }
        }
        @match &outcome {
            None => {}
            Some(Err(error)) => section.card { div.empty-state { p.empty-title { "That search was not understood" } p.muted id="search-error" { (error.message) } } },
            Some(Ok(results)) => (results_card(results, &q, &filter)),
        }
    };
    Ok(console_page(&session.shell(ConsoleSection::Catalog), "Search playground", body))
}

fn results_card(results: &SearchResults, q: &str, filter: &str) -> Markup {
    let understood = &results.understood;
    html! {
        section.card id="search-results" {
            div.card-header { div {
                h2 { (results.total) " results · mode " span.chip id="search-mode" { (results.mode) } }
                p.muted {
                    @if let Some(corrected) = &results.corrected_query { "Spelling corrected to “" (corrected) "” · " }
                    "Text searched: “" (understood.text) "”"
                    @if results.catalog_tuned { " · item vectors tuned to the catalog" }
                    @if let Some(max) = understood.price_max { " · price at most " (format!("{max:.2}")) }
                    @if let Some(min) = understood.price_min { " · price at least " (format!("{min:.2}")) }
                    @for attribute in &understood.attributes { " · " (attribute.name) " = " (attribute.value) }
                }
                @for warning in &results.warnings { p.muted.warning { (warning) } }
            } }
            table.data-table id="search-hits" {
                thead { tr {
                    th { "#" } th { "Product" } th { "Brand" } th { "Category" }
                    th.num { "Lexical" } th.num { "Words held" } th.num { "Semantic" } th.num { "Relevance" } th.num { "Personal" } th.num { "Total" }
                } }
                tbody {
                    @for (position, hit) in results.hits.iter().enumerate() {
                        tr {
                            td { (position + 1) }
                            td { a href=(format!("/console/catalog/{}", super::format::encode(&hit.item_id))) { (hit.title) } }
                            td { (hit.brand.as_deref().unwrap_or("–")) }
                            td { (hit.category) }
                            td.num { (score(hit.score.lexical)) }
                            td.num { (hit.score.words_held.map_or("–".to_string(), |share| format!("{:.0}%", share * 100.0))) }
                            td.num { (score(hit.score.semantic)) }
                            td.num { (format!("{:.3}", hit.score.relevance)) }
                            td.num { (format!("{:.3}", hit.score.personal)) }
                            td.num { strong { (format!("{:.3}", hit.score.total)) } }
                        }
                    }
                }
            }
            @if let Some(facets) = &results.facets {
                div.card-footer {
                    @for value in facets.brand.iter().take(10) {
                        a.chip href=(with_query("/console/search", &[("q", Some(q)), ("filter", Some(&format!("brand = \"{}\"", value.value.replace('"', "")))), ("user_id", None)])) {
                            (value.value) " (" (value.count) ")"
                        }
                    }
                    @if !filter.is_empty() { a.link-arrow href=(with_query("/console/search", &[("q", Some(q))])) { "Clear filter" } }
                }
            }
        }
    }
}
