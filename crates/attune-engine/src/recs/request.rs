//! What a recommendation list is asked for and what it answers: the scenario's basis, the business rules, and
//! each recommended item with the signal and items that explain it.

use crate::privacy::Personalization;
use attune_core::{AnonymousId, FilterExpr, Item, ItemId, RecommendationId, UserId};
use std::collections::HashSet;
use std::sync::Arc;

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

    /// Whether the signal reads the shopper's own history (and so needs their consent to personalization).
    pub fn is_personal(&self) -> bool {
        matches!(self, Self::YourHistory | Self::RecentlyViewed | Self::BuyAgain | Self::Session | Self::Sequential)
    }

    /// The data a recommendation from this signal used, in words a shopper understands.
    pub fn data_used(&self) -> &'static str {
        match self {
            Self::YourHistory | Self::Sequential => {
                "Your own activity in this shop (what you viewed, put in your basket and bought), matched with what \
                 other shoppers did, counted across the shop"
            }
            Self::RecentlyViewed => "The products you viewed in this shop",
            Self::BuyAgain => "Your past orders in this shop and how often such products are bought again",
            Self::Session => "What you looked at in this visit, matched with other shoppers' visits",
            Self::SimilarItems | Self::BoughtTogether => {
                "The product or basket in front of you and what shoppers bought together, counted across the shop; \
                 nothing about you"
            }
            Self::SimilarContent => "The product in front of you and the catalogue's descriptions; nothing about you",
            Self::Trending | Self::Popular => "What sells across the shop; nothing about you",
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

impl Basis {
    /// The scenario's name, as the API and the impression events call it.
    pub fn scenario(&self) -> &'static str {
        match self {
            Self::Similar(_) => "similar",
            Self::ForYou(_) => "for_you",
            Self::Trending => "trending",
            Self::RecentlyViewed => "recently_viewed",
            Self::BoughtTogether(_) => "bought_together",
            Self::CompleteCart(_) => "complete_cart",
            Self::BuyAgain => "buy_again",
            Self::Next => "next",
        }
    }
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

/// A served list: what `POST /v1/recommendations` answers.
#[derive(Debug, Clone)]
pub struct ServedList {
    /// Identifies the list; its impression event carries it, and clicks send it back.
    pub recommendation_id: RecommendationId,
    /// The stored model version the list was computed with.
    pub model_version: i64,
    pub items: Vec<Recommended>,
    /// Whether the shopper's own history shaped the list.
    pub personalization: Personalization,
}
