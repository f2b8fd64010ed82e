//! Product search endpoints: `GET /v1/search` (query parameters) and `POST /v1/search` (the same fields as
//! JSON), and `GET /v1/search/autocomplete`. The serving itself is the engine's search service.

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use attune_core::{Money, TenantId, ValidationError};
use attune_engine::search::index::TenantIndex;
use attune_engine::search::query::{MAX_QUERY_CHARS, SearchQuery};
use attune_engine::search::serve::{SearchOutcome, SearchParams};
use attune_search::{AttributeKind, Facets, ParsedQuery, SearchMode, Suggestion, SuggestionSource, Understood};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Most autocomplete suggestions.
pub const MAX_SUGGESTIONS: usize = 20;

/// The query parameters of `GET /v1/search`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQueryParams {
    /// What the shopper typed, e.g. `warm jumper under 40` (at most 500 characters; may be empty when a
    /// filter is given).
    pub q: Option<String>,
    /// The shopper, for personalisation (a public key needs a user token for this user).
    pub user_id: Option<String>,
    /// An anonymous visitor, when there is no `user_id`.
    pub anonymous_id: Option<String>,
    /// The shopper's current session: its items steer the session part of the personalisation (else the last
    /// 30 minutes), and the `search` event is logged with it. Alone, it identifies an anonymous shopper.
    pub session_id: Option<String>,
    /// A filter expression, e.g. `price < 40 and brand = "Acme"`.
    pub filter: Option<String>,
    /// Category path prefix, levels separated by `>`.
    pub category: Option<String>,
    /// Brands, comma-separated (any of them).
    pub brand: Option<String>,
    /// Colours, comma-separated.
    pub colour: Option<String>,
    /// Sizes, comma-separated.
    pub size: Option<String>,
    pub price_min: Option<String>,
    pub price_max: Option<String>,
    /// `relevance` (default), `price_asc`, `price_desc` or `newest`.
    pub sort: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<String>,
    /// Hits per page, 1 to 100 (default 20).
    pub per_page: Option<String>,
    /// Count facets (default true).
    pub facets: Option<String>,
    /// Correct misspelt words against the catalog's words first (default true); the response's
    /// `corrected_query` says when it did. `false` searches the query as typed.
    pub correct_spelling: Option<String>,
    /// Store nothing about this search (default false): no `search` event in the shopper's history, and the
    /// query is not counted for autocomplete. For previews and tools such as the console's playground.
    pub dry_run: Option<String>,
}

/// The body of `POST /v1/search`: the fields of the `GET` query parameters.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub q: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub filter: Option<String>,
    pub category: Option<String>,
    /// Brands, comma-separated.
    pub brand: Option<String>,
    pub colour: Option<String>,
    pub size: Option<String>,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    pub sort: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub facets: Option<bool>,
    pub correct_spelling: Option<bool>,
    /// Store nothing about this search (default false).
    pub dry_run: Option<bool>,
}

fn number<T: std::str::FromStr>(field: &'static str, text: Option<String>) -> ApiResult<Option<T>> {
    // Given but empty (`limit=`) is not a number either.
    text.map(|t| {
        t.trim().parse::<T>().map_err(|_| {
            ApiError::from(ValidationError::new(field, "invalid_number", format!("`{field}` must be a number")))
        })
    })
    .transpose()
}

impl SearchQueryParams {
    fn into_body(self) -> ApiResult<SearchBody> {
        Ok(SearchBody {
            facets: boolean("facets", self.facets)?,
            correct_spelling: boolean("correct_spelling", self.correct_spelling)?,
            dry_run: boolean("dry_run", self.dry_run)?,
            price_min: number("price_min", self.price_min)?,
            price_max: number("price_max", self.price_max)?,
            page: number("page", self.page)?,
            per_page: number("per_page", self.per_page)?,
            q: self.q,
            user_id: self.user_id,
            anonymous_id: self.anonymous_id,
            session_id: self.session_id,
            filter: self.filter,
            category: self.category,
            brand: self.brand,
            colour: self.colour,
            size: self.size,
            sort: self.sort,
        })
    }
}

fn boolean(field: &'static str, text: Option<String>) -> ApiResult<Option<bool>> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(_) => Err(ValidationError::new(field, "invalid_value", format!("`{field}` is true or false")).into()),
    }
}

/// Validates a search request; public keys may personalise only for their user token's user.
pub fn validate(caller: Option<&Caller>, body: SearchBody) -> ApiResult<SearchParams> {
    let query = SearchQuery {
        q: body.q,
        user_id: body.user_id,
        anonymous_id: body.anonymous_id,
        session_id: body.session_id,
        filter: body.filter,
        category: body.category,
        brand: body.brand,
        colour: body.colour,
        size: body.size,
        price_min: body.price_min,
        price_max: body.price_max,
        sort: body.sort,
        page: body.page,
        per_page: body.per_page,
        facets: body.facets,
        correct_spelling: body.correct_spelling,
        dry_run: body.dry_run,
    };
    query.validate(|user| caller.map_or(Ok(()), |caller| caller.require_user(user)))
}

async fn serve_search(state: AppState, caller: Caller, params: SearchParams) -> ApiResult<Json<SearchResults>> {
    Ok(Json(search(&state, &caller.tenant, params).await?))
}

/// The tenant's search index, built on a blocking thread when missing or stale.
pub(crate) async fn tenant_index(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantIndex>> {
    if let Some(index) = state.engine.search().current_index(tenant) {
        return Ok(index);
    }
    let tenant = tenant.clone();
    state.run(move |engine| engine.search().index(&tenant)).await
}

/// Runs a validated search (logged unless it is a dry run) and renders the answer.
pub(crate) async fn search(state: &AppState, tenant: &TenantId, params: SearchParams) -> ApiResult<SearchResults> {
    let index = tenant_index(state, tenant).await?;
    let tenant = tenant.clone();
    let outcome = state.run(move |engine| engine.search().search(&tenant, &index, &params)).await?;
    Ok(results_view(outcome))
}

/// Search the catalog: lexical (BM25, typo tolerant) and, when a model is loaded, semantic retrieval fused,
/// price phrases ("under 40") and colour/size words understood as filters, personalised for the shopper
/// (`user_id` or `anonymous_id`) from their recent events. Each hit carries its score breakdown. A search
/// with a shopper is logged as a `search` event, unless `dry_run` is true.
#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchQueryParams),
    responses((status = 200, body = SearchResults), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = []), ("public_key_with_user_token" = [])))]
pub async fn get_search(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SearchQueryParams>,
) -> ApiResult<Json<SearchResults>> {
    let params = validate(Some(&caller), params.into_body()?)?;
    serve_search(state, caller, params).await
}

/// `GET /v1/search` with the fields as a JSON body.
#[utoipa::path(post, path = "/v1/search", tag = "search", request_body = SearchBody,
    responses((status = 200, body = SearchResults), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = []), ("public_key_with_user_token" = [])))]
pub async fn post_search(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<SearchResults>> {
    let body: SearchBody = parse_json(&body)?;
    let params = validate(Some(&caller), body)?;
    serve_search(state, caller, params).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AutocompleteParams {
    /// What the shopper has typed so far.
    pub q: Option<String>,
    /// Most suggestions, 1 to 20 (default 8).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 20)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestions {
    /// Past queries first (most searched first), then catalog titles.
    pub suggestions: Vec<SuggestionView>,
}

/// Suggestions for a partly typed query from past searches and catalog titles (typo tolerant).
#[utoipa::path(get, path = "/v1/search/autocomplete", tag = "search", params(AutocompleteParams),
    responses((status = 200, body = Suggestions), (status = 400, body = crate::error::ErrorBody)),
    security(("secret_key" = []), ("public_key" = [])))]
pub async fn autocomplete(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AutocompleteParams>,
) -> ApiResult<Json<Suggestions>> {
    let typed = params.q.unwrap_or_default();
    if typed.chars().count() > MAX_QUERY_CHARS {
        return Err(
            ValidationError::new("q", "too_long", format!("`q` is at most {MAX_QUERY_CHARS} characters")).into()
        );
    }
    let limit = number::<i64>("limit", params.limit)?.unwrap_or(8);
    if !(1..=MAX_SUGGESTIONS as i64).contains(&limit) {
        return Err(ValidationError::new("limit", "out_of_range", format!("`limit` is 1 to {MAX_SUGGESTIONS}")).into());
    }
    if typed.trim().is_empty() {
        return Ok(Json(Suggestions { suggestions: Vec::new() }));
    }
    let suggestions = suggest(&state, &caller.tenant, typed, limit as usize).await?;
    Ok(Json(Suggestions { suggestions: suggestions.into_iter().map(suggestion_view).collect() }))
}

/// Suggestions for `typed`: past queries first, then catalog titles.
pub(crate) async fn suggest(
    state: &AppState,
    tenant: &TenantId,
    typed: String,
    limit: usize,
) -> ApiResult<Vec<Suggestion>> {
    let index = tenant_index(state, tenant).await?;
    let tenant = tenant.clone();
    state.run(move |engine| engine.search().suggest(&tenant, &index, &typed, limit)).await
}

fn suggestion_view(suggestion: Suggestion) -> SuggestionView {
    SuggestionView {
        source: match suggestion.source {
            SuggestionSource::Query => "query",
            SuggestionSource::Title => "title",
        },
        count: suggestion.count,
        text: suggestion.text,
    }
}

/// One autocomplete suggestion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuggestionView {
    pub text: String,
    /// `query` (searched before) or `title` (a catalog title).
    pub source: &'static str,
    /// Times searched, for queries.
    pub count: u64,
}

/// What the query was understood to ask for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnderstoodQuery {
    /// The words used for text retrieval.
    pub text: String,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    /// Attribute values named in the query, e.g. colour `navy`.
    pub attributes: Vec<UnderstoodAttribute>,
    /// The phrases that were understood, e.g. `under 40`.
    pub phrases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnderstoodAttribute {
    /// `colour`, `size` or `gender`.
    pub name: String,
    pub value: String,
}

/// Why a hit ranks where it does.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoreView {
    /// BM25-based score, when the item matched the words.
    pub lexical: Option<f32>,
    /// When the item matched the words: the share of the query's words (those the catalog has) it holds. With
    /// item vectors tuned to the catalog, the lexical part of the relevance is scaled by a power of it.
    pub words_held: Option<f32>,
    /// Cosine similarity to the query, in hybrid mode.
    pub semantic: Option<f32>,
    /// Fused relevance, 1 for the best candidate.
    pub relevance: f32,
    /// The shopper's affinity for the item (0 for anonymous shoppers).
    pub personal: f32,
    /// The shop's own signal: the item's sales popularity in [0, 1] (ln(1 + recent orders) over the best
    /// seller's), added with a small weight so it orders hits of about the same relevance.
    pub popularity: f32,
    pub total: f32,
}

/// What a query that matches no product gets instead of hits; nothing here is a result of the query.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoMatchView {
    /// The catalog's reading of the query, when `correct_spelling=false` kept it from being searched.
    pub did_you_mean: Option<String>,
    /// The shop's best sellers in stock, offered instead (not matches of the query).
    pub popular: Vec<SearchHitItem>,
}

/// An item offered without a score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHitItem {
    pub item_id: String,
    pub title: String,
    #[schema(value_type = Option<attune_core::money::MoneyText>)]
    pub price: Option<Money>,
    pub image_url: Option<String>,
}

/// One result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHitView {
    pub item_id: String,
    pub title: String,
    #[schema(value_type = Option<attune_core::money::MoneyText>)]
    pub price: Option<Money>,
    pub brand: Option<String>,
    /// The category path joined with ` > `.
    pub category: String,
    pub image_url: Option<String>,
    /// The score breakdown: the explanation of the hit.
    pub score: ScoreView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceFacet {
    pub min: f64,
    /// None: no upper bound.
    pub max: Option<f64>,
    pub count: usize,
}

/// Counts over the whole result set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacetsView {
    pub brand: Vec<FacetValue>,
    pub category: Vec<FacetValue>,
    pub colour: Vec<FacetValue>,
    pub size: Vec<FacetValue>,
    pub price: Vec<PriceFacet>,
}

/// The answer to a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    /// Identifies this result list (logged with the `search` event).
    pub search_id: String,
    /// `hybrid`, `lexical`, `semantic`, `semantic_fallback` (no lexical match; semantic matches shown) or
    /// `browse` (no words: filtered catalog).
    pub mode: &'static str,
    pub warnings: Vec<String>,
    /// The query as searched, when spelling correction changed it ("showing results for ..."); search again
    /// with `correct_spelling=false` for the query as typed.
    pub corrected_query: Option<String>,
    /// Whether semantic similarity used item vectors tuned to this catalog (enough items with a category path;
    /// `catalog_tuning` in the configuration).
    pub catalog_tuned: bool,
    pub understood: UnderstoodQuery,
    /// Size of the whole result set.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub hits: Vec<SearchHitView>,
    pub facets: Option<FacetsView>,
    /// Present when the query has words and no product matches them (`total` is 0): labelled alternatives.
    pub no_match: Option<NoMatchView>,
    /// Whether the shopper's own history could rank the results.
    pub personalized: bool,
    /// Why not: `no_shopper` (no user, anonymous or session id given) or `consent_withdrawn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_personalized_reason: Option<&'static str>,
}

pub(crate) fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::LexicalOnly => "lexical",
        SearchMode::SemanticOnly => "semantic",
        SearchMode::SemanticFallback => "semantic_fallback",
        SearchMode::Browse => "browse",
    }
}

fn understood_view(parsed: &ParsedQuery) -> UnderstoodQuery {
    let kind_name = |kind: AttributeKind| kind.name().to_string();
    UnderstoodQuery {
        text: parsed.text.clone(),
        price_min: parsed.price_min,
        price_max: parsed.price_max,
        attributes: parsed
            .attributes
            .iter()
            .map(|(kind, value)| UnderstoodAttribute { name: kind_name(*kind), value: value.clone() })
            .collect(),
        phrases: parsed
            .understood
            .iter()
            .map(|u| match u {
                Understood::PriceAtMost { phrase, .. }
                | Understood::PriceAtLeast { phrase, .. }
                | Understood::PriceBetween { phrase, .. }
                | Understood::Attribute { phrase, .. } => phrase.clone(),
            })
            .collect(),
    }
}

fn facets_view(facets: Facets) -> FacetsView {
    let values = |list: Vec<attune_search::FacetCount>| {
        list.into_iter().map(|f| FacetValue { value: f.value, count: f.count }).collect()
    };
    FacetsView {
        brand: values(facets.brand),
        category: values(facets.category),
        colour: values(facets.colour),
        size: values(facets.size),
        price: facets.price.into_iter().map(|p| PriceFacet { min: p.min, max: p.max, count: p.count }).collect(),
    }
}

fn results_view(outcome: SearchOutcome) -> SearchResults {
    let hits = outcome.hits.into_iter().map(|hit| SearchHitView {
        item_id: hit.item.id.to_string(),
        category: hit.item.category_path.join(" > "),
        title: hit.item.title,
        price: hit.item.price,
        brand: hit.item.brand,
        image_url: hit.item.image_url,
        score: ScoreView {
            lexical: hit.score.lexical,
            words_held: hit.score.words_held,
            semantic: hit.score.semantic,
            relevance: hit.score.relevance,
            personal: hit.score.personal,
            popularity: hit.score.signal,
            total: hit.score.total,
        },
    });
    let no_match = outcome.no_match.map(|no_match| NoMatchView {
        did_you_mean: no_match.did_you_mean,
        popular: no_match
            .popular
            .into_iter()
            .map(|item| SearchHitItem {
                item_id: item.id.to_string(),
                title: item.title,
                price: item.price,
                image_url: item.image_url,
            })
            .collect(),
    });
    SearchResults {
        search_id: outcome.search_id,
        mode: mode_name(outcome.mode),
        warnings: outcome.warnings,
        corrected_query: outcome.corrected_query,
        catalog_tuned: outcome.catalog_tuned,
        understood: understood_view(&outcome.parsed),
        total: outcome.total,
        page: outcome.page,
        per_page: outcome.per_page,
        hits: hits.collect(),
        facets: outcome.facets.map(facets_view),
        no_match,
        personalized: outcome.personalization.is_personalized(),
        not_personalized_reason: outcome.personalization.reason().map(|r| r.code()),
    }
}
