//! Frequently bought together / complete the basket, learned from order baskets.
//!
//! For every pair of items (i, j) that share at least `min_support` baskets, the 2 × 2 contingency table
//! of "basket holds i" × "basket holds j" over all N baskets gives
//!
//! * the lift `n_ij · N / (n_i · n_j)` (how many times more often the pair occurs than if the two items
//!   were bought independently),
//! * Dunning's log-likelihood ratio G² of that table (χ² with 1 degree of freedom under independence):
//!   the pair is kept only when G² ≥ `min_llr` and the association is positive (lift > 1), so a pair that
//!   two very popular items form by chance is never recommended however large its raw count is,
//! * a lower confidence bound on the lift, `lift · exp(−z / √n_ij)` (the count n_ij treated as Poisson, so
//!   the standard error of ln n_ij is ≈ 1/√n_ij), which must exceed 1 as well.
//!
//! Only such significant pairs are ever suggested. A candidate's score for a cart sums, over the cart items
//! i it is significant with, either the confidence P(j | i) = n_ij / n_i (default: the likeliest addition,
//! measured best on Online Retail's complete-the-basket) or ln(lower-bound lift(i, j)) (the most surprising
//! one); evidence from several cart items adds up, and each suggestion names the cart items it goes with,
//! strongest first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// (cart item, its score contribution, lift) of one anchor of a candidate.
type AnchorEvidence = (u32, f64, f64);

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};

/// How significant companions are ranked for a cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasketRanking {
    /// Σ over cart items of P(j | i) = n_ij / n_i (association-rule confidence): the likeliest addition.
    Confidence,
    /// Σ over cart items of ln(lower-bound lift): the most surprising addition.
    LowerBoundLift,
}

/// Pair-statistics thresholds of [`BoughtTogether`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoughtTogetherConfig {
    /// Minimum number of baskets that hold both items.
    pub min_support: u32,
    /// Minimum log-likelihood ratio G² (10.83 is the χ²₁ critical value at p = 0.001).
    pub min_llr: f64,
    /// z of the one-sided lower confidence bound on the lift (1.645 is 95 %).
    pub z: f64,
    /// Companions kept per item (the strongest by lower-bound lift).
    pub max_companions: usize,
    /// Ranking of the significant companions (both only ever suggest significant pairs).
    pub ranking: BasketRanking,
}

impl Default for BoughtTogetherConfig {
    fn default() -> Self {
        Self { min_support: 3, min_llr: 10.83, z: 1.645, max_companions: 100, ranking: BasketRanking::Confidence }
    }
}

/// One significant companion of an item.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Companion {
    pub item: u32,
    /// Baskets holding both items.
    pub support: u32,
    pub lift: f64,
    /// Lower confidence bound on the lift (> 1 for every kept companion).
    pub lift_lower: f64,
    /// Log-likelihood ratio G² of the pair.
    pub llr: f64,
}

/// One suggestion for a cart: the item, its score, and the cart items it goes with.
#[derive(Debug, Clone, PartialEq)]
pub struct BasketSuggestion {
    pub item: u32,
    /// Σ over anchors of the ranking's per-pair score (confidence or ln lower-bound lift); higher is better.
    pub score: f64,
    /// The lift with the strongest anchor.
    pub lift: f64,
    /// Cart items the suggestion is significantly bought with, strongest first (never empty).
    pub anchors: Vec<u32>,
}

/// Fitted frequently-bought-together statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoughtTogether {
    config: BoughtTogetherConfig,
    n_baskets: u64,
    item_baskets: Vec<u32>,
    /// Per item, its significant companions sorted by lower-bound lift (best first, ties by index).
    companions: Vec<Vec<Companion>>,
}

/// x · ln(x), 0 at 0.
fn xlnx(x: f64) -> f64 {
    if x <= 0.0 { 0.0 } else { x * x.ln() }
}

/// Dunning's G² of the 2 × 2 table [[k11, k12], [k21, k22]].
pub fn log_likelihood_ratio(k11: f64, k12: f64, k21: f64, k22: f64) -> f64 {
    let n = k11 + k12 + k21 + k22;
    let cells = xlnx(k11) + xlnx(k12) + xlnx(k21) + xlnx(k22);
    let rows = xlnx(k11 + k12) + xlnx(k21 + k22);
    let cols = xlnx(k11 + k21) + xlnx(k12 + k22);
    (2.0 * (cells - rows - cols + xlnx(n))).max(0.0)
}

/// The pair (anchor, `item`) judged from its counts: `support` baskets hold both, `n_anchor` and `n_item` each,
/// of `n_baskets`; `Some` when significant and positive by `config`'s thresholds.
fn judge_pair(
    config: &BoughtTogetherConfig,
    item: u32,
    support: u32,
    n_anchor: u32,
    n_item: u32,
    n_baskets: u64,
) -> Option<Companion> {
    if support < config.min_support {
        return None;
    }
    let (k11, n_i, n_j, n) = (f64::from(support), f64::from(n_anchor), f64::from(n_item), n_baskets as f64);
    let lift = k11 * n / (n_i * n_j);
    let lift_lower = lift * (-config.z / k11.sqrt()).exp();
    if lift_lower <= 1.0 {
        return None;
    }
    let llr = log_likelihood_ratio(k11, n_i - k11, n_j - k11, n - n_i - n_j + k11);
    (llr >= config.min_llr).then_some(Companion { item, support, lift, lift_lower, llr })
}

/// Baskets counted after a fit, so frequently-bought-together follows new orders between trainings
/// ([`BoughtTogether::for_items_with`]): the number of baskets, each item's basket count and every pair's.
/// Its size grows with the pairs in the baskets counted, not with the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BasketDelta {
    n_baskets: u64,
    item_baskets: HashMap<u32, u32>,
    /// Per item, the baskets it shares with each other item (both directions stored).
    pairs: HashMap<u32, HashMap<u32, u32>>,
}

impl BasketDelta {
    /// Counts one basket (repeats inside it count once; an empty basket is not counted).
    pub fn add(&mut self, basket: &[u32]) {
        let set: BTreeSet<u32> = basket.iter().copied().collect();
        if set.is_empty() {
            return;
        }
        self.n_baskets += 1;
        for &i in &set {
            *self.item_baskets.entry(i).or_default() += 1;
            let with = self.pairs.entry(i).or_default();
            for &j in set.iter().filter(|&&j| j != i) {
                *with.entry(j).or_default() += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n_baskets == 0
    }

    /// Baskets counted.
    pub fn n_baskets(&self) -> u64 {
        self.n_baskets
    }

    /// Counted baskets that hold `item`.
    pub fn item_baskets(&self, item: u32) -> u32 {
        self.item_baskets.get(&item).copied().unwrap_or(0)
    }

    /// The items counted together with `item`, with how many baskets each shares with it.
    pub fn pairs_of(&self, item: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.pairs.get(&item).into_iter().flat_map(|with| with.iter().map(|(&j, &n)| (j, n)))
    }
}

impl BoughtTogether {
    /// Counts items and pairs over `baskets` (item indices `< n_items` per order; repeats inside a basket
    /// count once) and keeps the significant positive pairs.
    pub fn fit(baskets: &[Vec<u32>], n_items: usize, config: BoughtTogetherConfig) -> Result<Self, RecsError> {
        if config.min_support == 0 {
            return Err(invalid("min_support", "must be at least 1"));
        }
        if !(config.min_llr.is_finite() && config.min_llr >= 0.0) {
            return Err(invalid("min_llr", "must be finite and non-negative"));
        }
        if !(config.z.is_finite() && config.z >= 0.0) {
            return Err(invalid("z", "must be finite and non-negative"));
        }
        let mut sets: Vec<Vec<u32>> = Vec::with_capacity(baskets.len());
        for b in baskets {
            let set: BTreeSet<u32> = b.iter().copied().collect();
            if let Some(&max) = set.last()
                && max as usize >= n_items
            {
                return Err(RecsError::OutOfRange { what: "item", index: max as usize, size: n_items });
            }
            if !set.is_empty() {
                sets.push(set.into_iter().collect());
            }
        }
        let n_baskets = sets.len() as u64;
        let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        for (b, set) in sets.iter().enumerate() {
            for &i in set {
                by_item[i as usize].push(b as u32);
            }
        }
        let item_baskets: Vec<u32> = by_item.iter().map(|v| v.len() as u32).collect();
        let companions: Vec<Vec<Companion>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n_items], Vec::<u32>::new()),
                |(counts, touched), i| {
                    for &b in &by_item[i] {
                        for &j in &sets[b as usize] {
                            if j as usize == i {
                                continue;
                            }
                            if counts[j as usize] == 0 {
                                touched.push(j);
                            }
                            counts[j as usize] += 1;
                        }
                    }
                    let n_i = item_baskets[i];
                    let mut kept: Vec<Companion> = touched
                        .drain(..)
                        .filter_map(|j| {
                            let support = std::mem::take(&mut counts[j as usize]);
                            judge_pair(&config, j, support, n_i, item_baskets[j as usize], n_baskets)
                        })
                        .collect();
                    kept.sort_by(|a, b| b.lift_lower.total_cmp(&a.lift_lower).then(a.item.cmp(&b.item)));
                    kept.truncate(config.max_companions);
                    kept.shrink_to_fit();
                    kept
                },
            )
            .collect();
        Ok(Self { config, n_baskets, item_baskets, companions })
    }

    pub fn config(&self) -> &BoughtTogetherConfig {
        &self.config
    }

    /// Number of non-empty baskets fitted on.
    pub fn n_baskets(&self) -> u64 {
        self.n_baskets
    }

    /// Number of items in the catalog the model was fitted for.
    pub fn n_items(&self) -> usize {
        self.companions.len()
    }

    /// Baskets that hold `item` (0 for an unknown item).
    pub fn item_baskets(&self, item: u32) -> u32 {
        self.item_baskets.get(item as usize).copied().unwrap_or(0)
    }

    /// `item`'s significant companions, strongest first (empty for an unknown item).
    pub fn companions(&self, item: u32) -> &[Companion] {
        self.companions.get(item as usize).map_or(&[], Vec::as_slice)
    }

    /// The `n` best items to add to a cart holding `cart_items`, never an item of the cart or of
    /// `exclude`, best first (ties by item index). Unknown cart items are ignored.
    pub fn for_items(&self, cart_items: &[u32], n: usize, exclude: &[u32]) -> Vec<BasketSuggestion> {
        self.suggest(cart_items, n, exclude, |anchor| self.companions(anchor).to_vec(), |i| self.item_baskets(i))
    }

    /// [`Self::for_items`] with the baskets counted since the fit (`since`) added to the fitted counts: a pair's
    /// support, both items' basket counts and the number of baskets are the sums, and the pair is judged again
    /// by the same thresholds. Items at indices past the fitted ones (new since the fit) take part too. Exact for
    /// pairs the fit kept or first seen since; a pair the fit dropped counts from the fit on.
    pub fn for_items_with(
        &self,
        since: &BasketDelta,
        cart_items: &[u32],
        n: usize,
        exclude: &[u32],
    ) -> Vec<BasketSuggestion> {
        if since.is_empty() {
            return self.for_items(cart_items, n, exclude);
        }
        let baskets_of = |i: u32| self.item_baskets(i) + since.item_baskets(i);
        let total = self.n_baskets + since.n_baskets;
        let companions = |anchor: u32| {
            let mut supports: BTreeMap<u32, u32> =
                self.companions(anchor).iter().map(|c| (c.item, c.support)).collect();
            for (j, added) in since.pairs_of(anchor) {
                *supports.entry(j).or_default() += added;
            }
            let n_anchor = baskets_of(anchor);
            supports
                .into_iter()
                .filter_map(|(j, support)| judge_pair(&self.config, j, support, n_anchor, baskets_of(j), total))
                .collect()
        };
        self.suggest(cart_items, n, exclude, companions, baskets_of)
    }

    /// Ranks the companions of a cart's items (`companions_of`, each with its pair statistics) by the configured
    /// ranking, `baskets_of` giving each anchor's basket count.
    fn suggest(
        &self,
        cart_items: &[u32],
        n: usize,
        exclude: &[u32],
        companions_of: impl Fn(u32) -> Vec<Companion>,
        baskets_of: impl Fn(u32) -> u32,
    ) -> Vec<BasketSuggestion> {
        let cart: BTreeSet<u32> = cart_items.iter().copied().collect();
        let excluded: BTreeSet<u32> = exclude.iter().copied().collect();
        let mut found: BTreeMap<u32, (f64, Vec<AnchorEvidence>)> = BTreeMap::new();
        for &anchor in &cart {
            for c in companions_of(anchor) {
                if cart.contains(&c.item) || excluded.contains(&c.item) {
                    continue;
                }
                let gain = match self.config.ranking {
                    BasketRanking::Confidence => f64::from(c.support) / f64::from(baskets_of(anchor).max(1)),
                    BasketRanking::LowerBoundLift => c.lift_lower.ln(),
                };
                let entry = found.entry(c.item).or_default();
                entry.0 += gain;
                entry.1.push((anchor, gain, c.lift));
            }
        }
        let mut out: Vec<BasketSuggestion> = found
            .into_iter()
            .map(|(item, (score, mut anchors))| {
                anchors.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                BasketSuggestion {
                    item,
                    score,
                    lift: anchors[0].2,
                    anchors: anchors.into_iter().map(|a| a.0).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llr_is_zero_under_independence_and_grows_with_association() {
        assert!(log_likelihood_ratio(10.0, 10.0, 10.0, 10.0) < 1e-9);
        assert!(log_likelihood_ratio(20.0, 0.0, 0.0, 20.0) > 50.0);
    }
}
