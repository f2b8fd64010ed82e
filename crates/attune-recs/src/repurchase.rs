//! Buy it again: which of a customer's past items they are due to buy again now.
//!
//! Fitted from per-customer timed purchases. Per item:
//!
//! * the typical repurchase interval: the median gap between consecutive purchases of the item by the
//!   same customer, over every customer who bought it more than once, shrunk in log space towards the
//!   global median gap: `ln τ_i = (g_i · ln median_i + m · ln median_all) / (g_i + m)` with g_i the number
//!   of gaps observed and m = `interval_prior_weight`;
//! * the repurchase propensity: the share of the item's customers who bought it again, with a Beta prior
//!   centred on the global share: `(r_i + a · p_all) / (c_i + a)`, a = `propensity_prior_weight`.
//!
//! Only items with evidence of repurchase (at least `min_repeat_customers` customers who bought them
//! twice) are ever suggested. A customer's score for such an item is propensity × dueness, where the
//! customer's own interval (their median gap when they have repurchased it, blended with τ_i) sets the
//! clock: with ratio ρ = time since their last purchase / interval, dueness is
//! exp(−(ln ρ)² / (2σ²)) before the due date (ρ < 1) and decays more slowly after it,
//! exp(−(ln ρ)² / (2 (2σ)²)), because an overdue staple is still likely; σ = `timing_width`.
//! The customer's own number of purchases of the item multiplies the score by (1 + ln count).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};

/// Priors and thresholds of [`BuyAgain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyAgainConfig {
    /// Pseudo-gaps of the global median mixed into each item's interval.
    pub interval_prior_weight: f64,
    /// Pseudo-customers of the global repurchase share mixed into each item's propensity.
    pub propensity_prior_weight: f64,
    /// Items need at least this many repeat customers to be suggested.
    pub min_repeat_customers: u32,
    /// Width σ of the timing kernel in log(time ratio).
    pub timing_width: f64,
    /// Purchases closer than this (ms) are one purchase occasion (same order or session).
    pub min_gap_ms: i64,
}

impl Default for BuyAgainConfig {
    fn default() -> Self {
        Self {
            interval_prior_weight: 3.0,
            propensity_prior_weight: 5.0,
            min_repeat_customers: 1,
            timing_width: 0.7,
            min_gap_ms: 60 * 60 * 1000,
        }
    }
}

/// What is known about an item's repurchases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RepurchaseProfile {
    /// Shrunk typical interval between purchases, ms.
    pub interval_ms: f64,
    /// Shrunk share of customers who buy it again.
    pub propensity: f64,
    pub customers: u32,
    pub repeat_customers: u32,
    /// Gaps the interval was estimated from.
    pub gaps: u32,
}

/// One buy-again suggestion with what explains it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuyAgainSuggestion {
    pub item: u32,
    pub score: f64,
    /// The customer's last purchase of the item (ms).
    pub last_purchase_ms: i64,
    /// The interval the timing was judged against (ms): the item's, or blended with the customer's own.
    pub typical_interval_ms: f64,
    /// How many times the customer bought it (purchase occasions).
    pub times_bought: u32,
}

/// Fitted buy-again model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuyAgain {
    config: BuyAgainConfig,
    profiles: Vec<Option<RepurchaseProfile>>,
    global_interval_ms: f64,
    global_propensity: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// A customer's purchase occasions of one item: times sorted, near-duplicates merged.
fn occasions(times: &mut Vec<i64>, min_gap_ms: i64) {
    times.sort_unstable();
    let mut kept: Vec<i64> = Vec::with_capacity(times.len());
    for &t in times.iter() {
        if kept.last().is_none_or(|&l| t - l >= min_gap_ms) {
            kept.push(t);
        }
    }
    *times = kept;
}

/// Per item, the sorted purchase occasions of one customer.
fn by_item(history: &[(u32, i64)], min_gap_ms: i64) -> BTreeMap<u32, Vec<i64>> {
    let mut m: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for &(item, t) in history {
        m.entry(item).or_default().push(t);
    }
    for times in m.values_mut() {
        occasions(times, min_gap_ms);
    }
    m
}

impl BuyAgain {
    /// Fits from `histories[customer]` = `(item, time ms)` purchases (any order), items `< n_items`.
    pub fn fit(histories: &[Vec<(u32, i64)>], n_items: usize, config: BuyAgainConfig) -> Result<Self, RecsError> {
        for (name, v) in [
            ("interval_prior_weight", config.interval_prior_weight),
            ("propensity_prior_weight", config.propensity_prior_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(name, "must be finite and non-negative"));
            }
        }
        if !(config.timing_width.is_finite() && config.timing_width > 0.0) {
            return Err(invalid("timing_width", "must be finite and positive"));
        }
        let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); n_items];
        let mut customers = vec![0u32; n_items];
        let mut repeaters = vec![0u32; n_items];
        for history in histories {
            for (item, times) in by_item(history, config.min_gap_ms) {
                let i = item as usize;
                if i >= n_items {
                    return Err(RecsError::OutOfRange { what: "item", index: i, size: n_items });
                }
                customers[i] += 1;
                if times.len() >= 2 {
                    repeaters[i] += 1;
                    gaps[i].extend(times.windows(2).map(|w| (w[1] - w[0]) as f64));
                }
            }
        }
        let mut all_gaps: Vec<f64> = gaps.iter().flatten().copied().collect();
        if all_gaps.is_empty() {
            return Err(RecsError::EmptyData("no customer bought any item twice".into()));
        }
        let global_interval_ms = median(&mut all_gaps);
        let total_customers: u64 = customers.iter().map(|&c| u64::from(c)).sum();
        let total_repeaters: u64 = repeaters.iter().map(|&c| u64::from(c)).sum();
        let global_propensity = total_repeaters as f64 / total_customers.max(1) as f64;
        let (m, a) = (config.interval_prior_weight, config.propensity_prior_weight);
        let profiles = (0..n_items)
            .map(|i| {
                if repeaters[i] < config.min_repeat_customers.max(1) {
                    return None;
                }
                let g = gaps[i].len() as f64;
                let item_median = median(&mut gaps[i]).max(1.0);
                let ln_tau = (g * item_median.ln() + m * global_interval_ms.max(1.0).ln()) / (g + m);
                Some(RepurchaseProfile {
                    interval_ms: ln_tau.exp(),
                    propensity: (f64::from(repeaters[i]) + a * global_propensity) / (f64::from(customers[i]) + a),
                    customers: customers[i],
                    repeat_customers: repeaters[i],
                    gaps: gaps[i].len() as u32,
                })
            })
            .collect();
        Ok(Self { config, profiles, global_interval_ms, global_propensity })
    }

    /// The item's repurchase profile, `None` without evidence of repurchase.
    pub fn profile(&self, item: u32) -> Option<&RepurchaseProfile> {
        self.profiles.get(item as usize).and_then(Option::as_ref)
    }

    /// Median gap between repurchases over all items (ms).
    pub fn global_interval_ms(&self) -> f64 {
        self.global_interval_ms
    }

    /// Share of (customer, item) pairs that were repurchased.
    pub fn global_propensity(&self) -> f64 {
        self.global_propensity
    }

    pub fn n_items(&self) -> usize {
        self.profiles.len()
    }

    /// How due an item bought last `elapsed_ms` ago is, against `interval_ms` (1 exactly on time).
    pub fn dueness(&self, elapsed_ms: f64, interval_ms: f64) -> f64 {
        let ratio = (elapsed_ms.max(0.0) / interval_ms.max(1.0)).max(1e-6);
        let ln = ratio.ln();
        let sigma = if ratio < 1.0 { self.config.timing_width } else { 2.0 * self.config.timing_width };
        (-(ln * ln) / (2.0 * sigma * sigma)).exp()
    }

    /// Scores every item of one customer's `history` (`(item, time ms)`, any order) at time `now_ms`,
    /// best first (ties by item index), at most `n`, never an item of `exclude`; only items with evidence of
    /// repurchase. Purchases after `now_ms` are ignored.
    pub fn for_customer(
        &self,
        history: &[(u32, i64)],
        now_ms: i64,
        n: usize,
        exclude: &[u32],
    ) -> Vec<BuyAgainSuggestion> {
        let past: Vec<(u32, i64)> = history.iter().copied().filter(|&(_, t)| t <= now_ms).collect();
        let mut out: Vec<BuyAgainSuggestion> = by_item(&past, self.config.min_gap_ms)
            .into_iter()
            .filter(|(item, _)| !exclude.contains(item))
            .filter_map(|(item, times)| {
                let p = self.profile(item)?;
                let last = *times.last()?;
                // The customer's own rhythm, when they have one, counts like that many item gaps.
                let own_gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
                let interval = if own_gaps.is_empty() {
                    p.interval_ms
                } else {
                    let mut g = own_gaps.clone();
                    let own = median(&mut g).max(1.0);
                    let w = own_gaps.len() as f64;
                    ((w * own.ln() + 2.0 * p.interval_ms.ln()) / (w + 2.0)).exp()
                };
                let count = times.len() as u32;
                let score =
                    p.propensity * self.dueness((now_ms - last) as f64, interval) * (1.0 + f64::from(count).ln());
                Some(BuyAgainSuggestion {
                    item,
                    score,
                    last_purchase_ms: last,
                    typical_interval_ms: interval,
                    times_bought: count,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        out.truncate(n);
        out
    }
}
