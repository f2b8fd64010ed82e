//! A search as a caller states it ([`SearchQuery`], the API's fields) and the rules that turn it into
//! [`SearchParams`]: the ids, the filter expression, structured filters with sane prices, the query's length,
//! the sort, and the page within bounds.

use super::serve::SearchParams;
use crate::error::EngineError;
use attune_core::{AnonymousId, SessionId, UserId, ValidationError};
use attune_search::{Filters, SortOrder};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Largest page.
pub const MAX_PER_PAGE: usize = 100;
/// Deepest page.
pub const MAX_PAGE: usize = 1_000;

/// A search as given, before validation. Lists (`brand`, `colour`, `size`) are comma-separated and
/// `category` is a path with levels separated by `>`.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub filter: Option<String>,
    pub category: Option<String>,
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

impl SearchQuery {
    /// Checks every field; `may_act_for` says whether the caller may personalise for this user (checked right
    /// after the ids are read).
    pub fn validate<E: From<EngineError>>(
        mut self,
        may_act_for: impl Fn(&UserId) -> Result<(), E>,
    ) -> Result<SearchParams, E> {
        let ids = Ids::parse(&mut self).map_err(|error| E::from(error.into()))?;
        if let Some(user) = &ids.user {
            may_act_for(user)?;
        }
        Ok(self.validate_with(ids)?)
    }

    /// The rest of [`SearchQuery::validate`], once the shopper's ids are known.
    fn validate_with(self, ids: Ids) -> Result<SearchParams, EngineError> {
        let filter = crate::recs::query::filter("filter", self.filter.clone().filter(|f| !f.trim().is_empty()))?;
        let filters = self.filters()?;
        let query = self.q.unwrap_or_default();
        if query.chars().count() > MAX_QUERY_CHARS {
            let message = format!("`q` is at most {MAX_QUERY_CHARS} characters");
            return Err(ValidationError::new("q", "too_long", message).into());
        }
        if query.trim().is_empty() && filter.is_none() && filters.is_empty() {
            return Err(ValidationError::new("q", "missing_field", "`q` is required unless a filter is given").into());
        }
        let sort = sort_order(self.sort.as_deref())?;
        let (page, per_page) = paging(self.page, self.per_page)?;
        Ok(SearchParams {
            query,
            user: ids.user,
            anonymous: ids.anonymous,
            session: ids.session,
            filter,
            filters,
            sort,
            page,
            per_page,
            facets: self.facets.unwrap_or(true),
            correct_spelling: self.correct_spelling.unwrap_or(true),
            dry_run: self.dry_run.unwrap_or(false),
        })
    }

    /// The structured filters, with prices of 0 or more and the minimum at most the maximum.
    fn filters(&self) -> Result<Filters, ValidationError> {
        for (field, value) in [("price_min", self.price_min), ("price_max", self.price_max)] {
            if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(ValidationError::new(field, "out_of_range", format!("`{field}` is a price of 0 or more")));
            }
        }
        if let (Some(min), Some(max)) = (self.price_min, self.price_max)
            && min > max
        {
            return Err(ValidationError::new("price_min", "out_of_range", "`price_min` is above `price_max`"));
        }
        Ok(Filters {
            category_prefix: list(self.category.as_deref(), '>'),
            brands: list(self.brand.as_deref(), ','),
            colours: list(self.colour.as_deref(), ','),
            sizes: list(self.size.as_deref(), ','),
            price_min: self.price_min,
            price_max: self.price_max,
            in_stock_only: false,
        })
    }
}

/// The shopper's ids of a search (empty texts count as absent).
struct Ids {
    user: Option<UserId>,
    anonymous: Option<AnonymousId>,
    session: Option<SessionId>,
}

impl Ids {
    fn parse(query: &mut SearchQuery) -> Result<Self, ValidationError> {
        let user = query.user_id.take().filter(|u| !u.is_empty());
        let anonymous = query.anonymous_id.take().filter(|a| !a.is_empty());
        let session = query.session_id.take().filter(|s| !s.is_empty());
        Ok(Self {
            user: user.map(|u| UserId::parse_field("user_id", u)).transpose()?,
            anonymous: anonymous.map(|a| AnonymousId::parse_field("anonymous_id", a)).transpose()?,
            session: session.map(|s| SessionId::parse_field("session_id", s)).transpose()?,
        })
    }
}

fn list(text: Option<&str>, separator: char) -> Vec<String> {
    text.map(|t| t.split(separator).map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

fn sort_order(text: Option<&str>) -> Result<SortOrder, ValidationError> {
    match text.unwrap_or("relevance") {
        "relevance" => Ok(SortOrder::Relevance),
        "price_asc" => Ok(SortOrder::PriceAscending),
        "price_desc" => Ok(SortOrder::PriceDescending),
        "newest" => Ok(SortOrder::Newest),
        _ => Err(ValidationError::new("sort", "invalid_value", "`sort` is relevance, price_asc, price_desc or newest")),
    }
}

/// The 1-based page and the page size, within bounds.
fn paging(page: Option<i64>, per_page: Option<i64>) -> Result<(usize, usize), ValidationError> {
    let page = page.unwrap_or(1);
    if !(1..=MAX_PAGE as i64).contains(&page) {
        return Err(ValidationError::new("page", "out_of_range", format!("`page` is 1 to {MAX_PAGE}")));
    }
    let per_page = per_page.unwrap_or(20);
    if !(1..=MAX_PER_PAGE as i64).contains(&per_page) {
        return Err(ValidationError::new("per_page", "out_of_range", format!("`per_page` is 1 to {MAX_PER_PAGE}")));
    }
    Ok((page as usize, per_page as usize))
}
