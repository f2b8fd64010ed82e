//! A recommendation request as a caller states it ([`ListQuery`], the API's body field by field) and the rules
//! that turn it into a list request: what each scenario needs (an anchor item, a shopper, a user, a cart),
//! the limits of every field, and the business rules (filter and boost expressions, boost weights, the
//! category cap, the diversity weight).

use super::request::{Basis, Boost, BoostEffect, ListRequest, Rules, Shopper};
use crate::error::EngineError;
use attune_core::{AnonymousId, FilterExpr, ItemId, UserId, ValidationError};
use std::collections::HashSet;

/// Most items in one list.
pub const MAX_COUNT: i64 = 100;
/// Most ids in `exclude_item_ids`.
pub const MAX_EXCLUDED: usize = 1_000;
/// Most items in `cart_item_ids`.
pub const MAX_CART: usize = 200;
/// Most boosts in one request.
pub const MAX_BOOSTS: usize = 20;

/// The kind of list asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Similar,
    ForYou,
    Trending,
    RecentlyViewed,
    BoughtTogether,
    CompleteCart,
    BuyAgain,
    Next,
}

/// A boost as given: a filter expression, a weight, and whether it adds (else multiplies).
#[derive(Debug, Clone)]
pub struct BoostQuery {
    pub filter: String,
    pub weight: f32,
    pub add: bool,
}

/// A recommendation request as given, before validation.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub scenario: Scenario,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub item_id: Option<String>,
    pub count: Option<i64>,
    pub exclude_item_ids: Vec<String>,
    pub in_stock_only: Option<bool>,
    pub cart_item_ids: Vec<String>,
    pub filter: Option<String>,
    pub boosts: Vec<BoostQuery>,
    pub max_per_category: Option<u32>,
    pub mmr_lambda: Option<f32>,
    pub exclude_purchased: Option<bool>,
    /// Store the served list as an `impression` event of the shopper (default true).
    pub log_impression: Option<bool>,
}

/// A validated request: the list to compute, its rules (with the shopper to log the impression for), the
/// anchor item, which must be in the catalog, and whether the served list is logged as an impression.
#[derive(Debug, Clone)]
pub struct ValidList {
    pub request: ListRequest,
    pub rules: Rules,
    pub anchor: Option<ItemId>,
    /// False for prefetches and load tests: the list is served, but no `impression` event is stored.
    pub log_impression: bool,
}

impl ListQuery {
    /// Checks every field and the scenario's needs; `may_act_for` says whether the caller may ask for this
    /// user's list (checked first, right after the ids are read).
    pub fn validate<E: From<EngineError>>(
        mut self,
        may_act_for: impl Fn(&UserId) -> Result<(), E>,
    ) -> Result<ValidList, E> {
        let invalid = |error: ValidationError| E::from(EngineError::from(error));
        let user = self.user_id.take().map(|u| UserId::parse_field("user_id", u)).transpose().map_err(invalid)?;
        let anonymous = self.anonymous_id.take();
        let anonymous = anonymous.map(|a| AnonymousId::parse_field("anonymous_id", a)).transpose().map_err(invalid)?;
        if let Some(user) = &user {
            may_act_for(user)?;
        }
        Ok(self.validate_for(Shopper { user, anonymous })?)
    }

    /// The rest of [`ListQuery::validate`], once the shopper is known.
    fn validate_for(self, shopper: Shopper) -> Result<ValidList, EngineError> {
        let items = Items::parse(self.item_id, self.count, self.exclude_item_ids, self.cart_item_ids)?;
        let basis = basis(self.scenario, &shopper, items.anchor.clone(), items.cart)?;
        let rules = Rules {
            shopper,
            filter: filter("filter", self.filter)?,
            boosts: boosts(self.boosts)?,
            max_per_category: max_per_category(self.max_per_category)?,
            mmr_lambda: mmr_lambda(self.mmr_lambda)?,
            exclude_purchased: self.exclude_purchased,
        };
        let in_stock_only = self.in_stock_only.unwrap_or(true);
        let request = ListRequest { basis, count: items.count, exclude: items.exclude, in_stock_only };
        let log_impression = self.log_impression.unwrap_or(true);
        Ok(ValidList { request, rules, anchor: items.anchor, log_impression })
    }
}

/// The item fields of a request, checked.
struct Items {
    anchor: Option<ItemId>,
    count: usize,
    exclude: HashSet<ItemId>,
    cart: Vec<ItemId>,
}

impl Items {
    fn parse(
        item_id: Option<String>,
        count: Option<i64>,
        excluded: Vec<String>,
        cart: Vec<String>,
    ) -> Result<Self, EngineError> {
        let count = count.unwrap_or(10);
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(ValidationError::new("count", "out_of_range", format!("count must be 1 to {MAX_COUNT}")).into());
        }
        if excluded.len() > MAX_EXCLUDED {
            let message = format!("at most {MAX_EXCLUDED} ids may be excluded");
            return Err(ValidationError::new("exclude_item_ids", "too_many", message).into());
        }
        let exclude =
            excluded.into_iter().map(|id| ItemId::parse_field("exclude_item_ids", id)).collect::<Result<_, _>>()?;
        let anchor = item_id.map(|id| ItemId::parse_field("item_id", id)).transpose()?;
        if cart.len() > MAX_CART {
            let message = format!("a cart has at most {MAX_CART} items");
            return Err(ValidationError::new("cart_item_ids", "too_many", message).into());
        }
        let cart = cart.into_iter().map(|id| ItemId::parse_field("cart_item_ids", id)).collect::<Result<_, _>>()?;
        Ok(Self { anchor, count: count as usize, exclude, cart })
    }
}

/// What the scenario computes from, with what it needs checked: `similar` and `bought_together` an anchor
/// item, `complete_cart` a cart, `for_you`, `recently_viewed` and `next` a shopper, `buy_again` a user.
fn basis(
    scenario: Scenario,
    shopper: &Shopper,
    anchor: Option<ItemId>,
    cart: Vec<ItemId>,
) -> Result<Basis, ValidationError> {
    let need_anchor = || anchor.clone().ok_or_else(|| ValidationError::missing("item_id"));
    let need_shopper = || match (&shopper.user, &shopper.anonymous) {
        (None, None) => Err(ValidationError::missing("user_id")),
        _ => Ok(()),
    };
    Ok(match scenario {
        Scenario::Similar => Basis::Similar(vec![need_anchor()?]),
        Scenario::ForYou => {
            need_shopper()?;
            Basis::ForYou(shopper.user.clone())
        }
        Scenario::Trending => Basis::Trending,
        Scenario::RecentlyViewed => {
            need_shopper()?;
            Basis::RecentlyViewed
        }
        Scenario::BoughtTogether => Basis::BoughtTogether(need_anchor()?),
        Scenario::CompleteCart if cart.is_empty() => return Err(ValidationError::missing("cart_item_ids")),
        Scenario::CompleteCart => Basis::CompleteCart(cart),
        Scenario::BuyAgain if shopper.user.is_none() => return Err(ValidationError::missing("user_id")),
        Scenario::BuyAgain => Basis::BuyAgain,
        Scenario::Next => {
            need_shopper()?;
            Basis::Next
        }
    })
}

/// A filter expression of request field `field`, parsed.
pub fn filter(field: &str, text: Option<String>) -> Result<Option<FilterExpr>, EngineError> {
    text.map(|text| {
        FilterExpr::parse(&text).map_err(|error| EngineError::InvalidFilter { field: field.to_string(), error })
    })
    .transpose()
}

/// Boosts with parsed filters and checked weights: finite, at most 1e6 in size, not negative when they
/// multiply.
fn boosts(boosts: Vec<BoostQuery>) -> Result<Vec<Boost>, EngineError> {
    if boosts.len() > MAX_BOOSTS {
        return Err(ValidationError::new("boosts", "too_many", format!("at most {MAX_BOOSTS} boosts")).into());
    }
    boosts
        .into_iter()
        .enumerate()
        .map(|(index, boost)| {
            let filter = filter(&format!("boosts[{index}].filter"), Some(boost.filter))?.expect("a filter was given");
            let weight_ok = boost.weight.is_finite() && (boost.add || boost.weight >= 0.0) && boost.weight.abs() <= 1e6;
            if !weight_ok {
                return Err(ValidationError::new(
                    format!("boosts[{index}].weight"),
                    "out_of_range",
                    "a boost weight is a finite number, at most 1e6 in size, and not negative when it multiplies",
                )
                .into());
            }
            let effect = if boost.add { BoostEffect::Add(boost.weight) } else { BoostEffect::Multiply(boost.weight) };
            Ok(Boost { filter, effect })
        })
        .collect()
}

fn max_per_category(cap: Option<u32>) -> Result<Option<usize>, ValidationError> {
    if cap == Some(0) {
        return Err(ValidationError::new("max_per_category", "out_of_range", "max_per_category must be at least 1"));
    }
    Ok(cap.map(|n| n as usize))
}

fn mmr_lambda(lambda: Option<f32>) -> Result<Option<f32>, ValidationError> {
    match lambda {
        Some(lambda) if !(0.0..=1.0).contains(&lambda) => {
            Err(ValidationError::new("mmr_lambda", "out_of_range", "mmr_lambda must be 0 to 1"))
        }
        lambda => Ok(lambda),
    }
}
