//! Product search endpoints: `GET /v1/search` (query parameters) and `POST /v1/search` (the same fields as
//! JSON), and `GET /v1/search/autocomplete`. The serving itself lives in [`crate::search`].

use crate::auth::Caller;
use crate::body::{LimitedBody, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::search::{SearchParams, SearchResults, SuggestionView, run_search, suggest, tenant_index};
use crate::state::{AppState, blocking};
use attune_core::{AnonymousId, FilterExpr, SessionId, UserId, ValidationError};
use attune_search::{Filters, SortOrder};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Largest page.
pub const MAX_PER_PAGE: usize = 100;
/// Deepest page.
pub const MAX_PAGE: usize = 1_000;
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
}

fn number<T: std::str::FromStr>(field: &'static str, text: Option<String>) -> ApiResult<Option<T>> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| {
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

fn list(text: Option<String>, separator: char) -> Vec<String> {
    text.map(|t| t.split(separator).map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// Validates a search request; public keys may personalise only for their user token's user.
pub fn validate(caller: Option<&Caller>, body: SearchBody) -> ApiResult<SearchParams> {
    let user = body.user_id.filter(|u| !u.is_empty()).map(|u| UserId::parse_field("user_id", u)).transpose()?;
    let anonymous =
        body.anonymous_id.filter(|a| !a.is_empty()).map(|a| AnonymousId::parse_field("anonymous_id", a)).transpose()?;
    let session =
        body.session_id.filter(|s| !s.is_empty()).map(|s| SessionId::parse_field("session_id", s)).transpose()?;
    if let (Some(caller), Some(user)) = (caller, &user) {
        caller.require_user(user)?;
    }
    let filter = body
        .filter
        .filter(|f| !f.trim().is_empty())
        .map(|text| FilterExpr::parse(&text).map_err(|e| ApiError::invalid_filter("filter", &e)))
        .transpose()?;
    for (field, value) in [("price_min", body.price_min), ("price_max", body.price_max)] {
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(
                ValidationError::new(field, "out_of_range", format!("`{field}` is a price of 0 or more")).into()
            );
        }
    }
    if let (Some(min), Some(max)) = (body.price_min, body.price_max)
        && min > max
    {
        return Err(ValidationError::new("price_min", "out_of_range", "`price_min` is above `price_max`").into());
    }
    let filters = Filters {
        category_prefix: list(body.category, '>'),
        brands: list(body.brand, ','),
        colours: list(body.colour, ','),
        sizes: list(body.size, ','),
        price_min: body.price_min,
        price_max: body.price_max,
        in_stock_only: false,
    };
    let query = body.q.unwrap_or_default();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(
            ValidationError::new("q", "too_long", format!("`q` is at most {MAX_QUERY_CHARS} characters")).into()
        );
    }
    if query.trim().is_empty() && filter.is_none() && filters.is_empty() {
        return Err(ValidationError::new("q", "missing_field", "`q` is required unless a filter is given").into());
    }
    let sort = match body.sort.as_deref().unwrap_or("relevance") {
        "relevance" => SortOrder::Relevance,
        "price_asc" => SortOrder::PriceAscending,
        "price_desc" => SortOrder::PriceDescending,
        "newest" => SortOrder::Newest,
        _ => {
            return Err(ValidationError::new(
                "sort",
                "invalid_value",
                "`sort` is relevance, price_asc, price_desc or newest",
            )
            .into());
        }
    };
    let page = body.page.unwrap_or(1);
    if !(1..=MAX_PAGE as i64).contains(&page) {
        return Err(ValidationError::new("page", "out_of_range", format!("`page` is 1 to {MAX_PAGE}")).into());
    }
    let per_page = body.per_page.unwrap_or(20);
    if !(1..=MAX_PER_PAGE as i64).contains(&per_page) {
        return Err(
            ValidationError::new("per_page", "out_of_range", format!("`per_page` is 1 to {MAX_PER_PAGE}")).into()
        );
    }
    Ok(SearchParams {
        query,
        user,
        anonymous,
        session,
        filter,
        filters,
        sort,
        page: page as usize,
        per_page: per_page as usize,
        facets: body.facets.unwrap_or(true),
        correct_spelling: body.correct_spelling.unwrap_or(true),
    })
}

async fn serve_search(state: AppState, caller: Caller, params: SearchParams) -> ApiResult<Json<SearchResults>> {
    let index = tenant_index(&state, &caller.tenant).await?;
    let tenant = caller.tenant.clone();
    let results = blocking(move || run_search(&state, &tenant, &index, &params)).await?;
    Ok(Json(results))
}

/// Search the catalog: lexical (BM25, typo tolerant) and, when a model is loaded, semantic retrieval fused,
/// price phrases ("under 40") and colour/size words understood as filters, personalised for the shopper
/// (`user_id` or `anonymous_id`) from their recent events. Each hit carries its score breakdown. A search
/// with a shopper is logged as a `search` event.
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
    let index = tenant_index(&state, &caller.tenant).await?;
    let tenant = caller.tenant.clone();
    let suggestions = blocking(move || suggest(&state, &tenant, &index, &typed, limit as usize)).await?;
    Ok(Json(Suggestions { suggestions }))
}
