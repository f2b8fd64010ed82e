//! From a plan's tiers to the picked items: hard rules while pooling (never a duplicate, an excluded item, an
//! item gone from the catalog, an out-of-stock item when asked, an item failing the filter), then boosts
//! (re-rank within a tier), then diversity (at most N per category, maximal marginal relevance with item-kNN
//! similarity).
//!
//! Candidates are checked against the in-memory catalog copy: a model's candidate is an array index into the
//! copy's view of the model's items, pooled and excluded items are bits over the model's indices, and
//! category caps count the copy's category numbers, so thousands of candidates are looked at per list.

use super::candidate::{Candidate, ItemRef, MAX_CANDIDATES};
use super::model::RecsModel;
use super::plan::Plan;
use super::request::{Boost, BoostEffect, ListRequest, Rules};
use crate::catalog::CatalogSnapshot;
use attune_core::{Item, ItemId};
use std::collections::HashSet;
use std::sync::Arc;

/// Candidates pooled per list item before boosts and diversity re-rank them.
pub const POOL_FACTOR: usize = 5;
pub const MIN_POOL: usize = 50;

/// A candidate that passed the hard rules, with its catalog item and its category's number in the copy.
pub struct Pooled {
    pub item: Arc<Item>,
    pub category: Option<u32>,
    pub score: f32,
    pub tier: usize,
    pub candidate: Candidate,
}

/// Walks the tiers in order and keeps candidates that pass the hard rules until the pool offers `target`
/// pickable items: under a category cap, items of a category beyond the cap count for nothing (they stay
/// in the pool, up to [`POOL_FACTOR`] × the cap per category, because boosts may move them up).
pub fn gather(
    model: &RecsModel,
    catalog: &CatalogSnapshot,
    plan: &Plan,
    request: &ListRequest,
    rules: &Rules,
    target: usize,
) -> Vec<Pooled> {
    let chunk_size = (target * 2).max(20);
    let mut pool: Vec<Pooled> = Vec::new();
    let mut unpoolable = Unpoolable::new(model, &plan.exclude);
    let mut looked_at = 0;
    let mut per_category = CategoryCounts::default();
    let mut pickable = 0;
    let by_model_index = catalog.by_model_index(model.version, &model.items);
    for (tier, candidates) in plan.tiers.iter().enumerate() {
        let mut rest: &[Candidate] = candidates;
        while pickable < target && !rest.is_empty() && looked_at < MAX_CANDIDATES {
            let (chunk, tail) = rest.split_at(chunk_size.min(rest.len()));
            rest = tail;
            looked_at += chunk.len();
            for candidate in chunk {
                if pickable >= target {
                    break;
                }
                if !unpoolable.allows(candidate) {
                    continue;
                }
                let Some((item, category)) = catalog_item(model, catalog, &by_model_index, candidate) else { continue };
                if (request.in_stock_only && !item.is_in_stock())
                    || rules.filter.as_ref().is_some_and(|f| !f.matches(&item))
                {
                    continue;
                }
                match rules.max_per_category {
                    Some(cap) if !item.category_path.is_empty() => {
                        let so_far = per_category.get(category);
                        if so_far >= cap * POOL_FACTOR {
                            continue;
                        }
                        if so_far < cap {
                            pickable += 1;
                        }
                        per_category.increment(category);
                    }
                    _ => pickable += 1,
                }
                unpoolable.pooled(candidate);
                pool.push(Pooled { item, category, score: candidate.score, tier, candidate: candidate.clone() });
            }
        }
    }
    pool
}

/// The catalog item of a candidate with its category number: by model index where the candidate has one,
/// else by id. `None` for an item gone from the catalog.
fn catalog_item(
    model: &RecsModel,
    catalog: &CatalogSnapshot,
    by_model_index: &[Option<crate::catalog::NumberedItem>],
    candidate: &Candidate,
) -> Option<(Arc<Item>, Option<u32>)> {
    let in_view = match &candidate.item {
        ItemRef::Model(index) => by_model_index.get(*index as usize),
        ItemRef::Other(_) => None,
    };
    match in_view {
        Some(found) => found.as_ref().map(|found| (found.item.clone(), found.category)),
        None => {
            let item = catalog.get_by_text(candidate.id(&model.items))?;
            Some((item.clone(), catalog.category_number(item)))
        }
    }
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
        match candidate.index_in(&self.model.items) {
            Some(index) => {
                let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
                self.pooled_bits[word] & bit == 0 && self.excluded_bits[word] & bit == 0
            }
            None => {
                !self.pooled_ids.contains(&candidate.item)
                    && !self.excluded_ids.contains(candidate.id(&self.model.items))
            }
        }
    }

    fn pooled(&mut self, candidate: &Candidate) {
        match candidate.index_in(&self.model.items) {
            Some(index) => self.pooled_bits[index as usize / 64] |= 1 << (index % 64),
            None => {
                self.pooled_ids.insert(candidate.item.clone());
            }
        }
    }
}

/// Items counted per category number of the catalog copy (items without a category are not counted).
#[derive(Default)]
struct CategoryCounts {
    numbered: foldhash::HashMap<u32, usize>,
}

impl CategoryCounts {
    fn get(&self, number: Option<u32>) -> usize {
        number.and_then(|number| self.numbered.get(&number).copied()).unwrap_or(0)
    }

    fn increment(&mut self, number: Option<u32>) {
        if let Some(number) = number {
            *self.numbered.entry(number).or_default() += 1;
        }
    }
}

/// Applies the boosts and orders the pool: by tier, then boosted score, then item id.
pub fn boost(model: &RecsModel, pool: &mut [Pooled], boosts: &[Boost]) {
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
            .then_with(|| a.candidate.id(&model.items).cmp(b.candidate.id(&model.items)))
    });
}

/// Picks `count` items in order, skipping any that would break the category cap; with MMR, each pick
/// maximises λ · relevance − (1 − λ) · (highest item-kNN similarity to an item already picked), where
/// relevance falls linearly with the position in the boosted order.
pub fn diversify(model: &RecsModel, pool: Vec<Pooled>, count: usize, rules: &Rules) -> Vec<Pooled> {
    let n = pool.len().max(1) as f32;
    let mut remaining: Vec<(f32, Pooled)> =
        pool.into_iter().enumerate().map(|(rank, p)| (1.0 - rank as f32 / n, p)).collect();
    let mut picked: Vec<Pooled> = Vec::new();
    let mut per_category = CategoryCounts::default();
    let mut picked_indices: Vec<u32> = Vec::new();
    while picked.len() < count && !remaining.is_empty() {
        let allowed = |p: &Pooled| match rules.max_per_category {
            Some(cap) if !p.item.category_path.is_empty() => per_category.get(p.category) < cap,
            _ => true,
        };
        let mut best: Option<(usize, f32)> = None;
        for (position, (relevance, pooled)) in remaining.iter().enumerate() {
            if !allowed(pooled) {
                continue;
            }
            let Some(lambda) = rules.mmr_lambda else {
                best = Some((position, 0.0));
                break;
            };
            let redundancy = pooled
                .candidate
                .index_in(&model.items)
                .map(|i| picked_indices.iter().map(|&j| model.knn.similarity(j, i)).fold(0.0f32, f32::max))
                .unwrap_or(0.0);
            let value = lambda * relevance - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((position, value));
            }
        }
        let Some((position, _)) = best else { break };
        let (_, pooled) = remaining.remove(position);
        if !pooled.item.category_path.is_empty() {
            per_category.increment(pooled.category);
        }
        if let Some(index) = pooled.candidate.index_in(&model.items) {
            picked_indices.push(index);
        }
        picked.push(pooled);
    }
    picked
}
