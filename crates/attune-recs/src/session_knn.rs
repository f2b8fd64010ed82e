//! Session-based real-time recommendations: session kNN in the V-SKNN / STAN family.
//!
//! Built once from past sessions (each an ordered list of items with a time); an inverted index maps each
//! item to the sessions that hold it, most recent first. Recommending for the current session is a pure
//! function of its item list, so every new event changes the very next answer without retraining:
//!
//! 1. each item of the current session gets a position weight w(p) = exp(−(L − 1 − p) / λ₁) (the last item
//!    weighs 1; a repeated item keeps its latest position);
//! 2. the candidate neighbours are the `sample` most recent past sessions holding any current item;
//! 3. a neighbour n's similarity is Σ_{i ∈ n ∩ s} w(i) / √(|s| · |n|) (distinct items), and the `k` most
//!    similar neighbours are kept;
//! 4. an item j of neighbour n scores sim(s, n) · exp(−|pos_n(j) − pos_n(a)| / λ₃), with a the shared item
//!    of highest weight: items clicked near the shared one in the neighbour count more (λ₃ = 0 turns this
//!    off).
//!
//! Each suggestion names the session items that contributed most to its score (each neighbour's share is
//! split over the shared items in proportion to their weights).

use serde::{Deserialize, Serialize};

use crate::error::{RecsError, invalid};

/// Hyper-parameters of [`SessionKnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionKnnConfig {
    /// Neighbour sessions kept.
    pub k: usize,
    /// Most recent candidate sessions considered.
    pub sample: usize,
    /// λ₁: position decay inside the current session (in clicks).
    pub position_decay: f64,
    /// λ₃: decay of neighbour items with their distance to the shared item (0 = off).
    pub neighbour_decay: f64,
    /// Only the last this many clicks of the current session are used.
    pub max_session_items: usize,
}

/// Defaults: the setting `attune eval recs --only sessions` selects on YOOCHOOSE validation.
impl Default for SessionKnnConfig {
    fn default() -> Self {
        Self { k: 100, sample: 1000, position_decay: 1.0, neighbour_decay: 4.0, max_session_items: 20 }
    }
}

/// A past session: when it happened and the items in click order.
#[derive(Debug, Clone, PartialEq)]
pub struct PastSession {
    pub time_ms: i64,
    pub items: Vec<u32>,
}

/// One suggestion for the current session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSuggestion {
    pub item: u32,
    pub score: f64,
    /// Current-session items that contributed most, strongest first (at most 3, never empty).
    pub anchors: Vec<u32>,
}

/// A fitted session-kNN index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionKnn {
    config: SessionKnnConfig,
    /// Sessions in time order (index = recency rank, higher is newer).
    sessions: Vec<Vec<u32>>,
    distinct_len: Vec<u32>,
    /// Per item, the sessions holding it, newest first.
    postings: Vec<Vec<u32>>,
}

impl SessionKnn {
    /// Builds the index from `sessions` (items `< n_items`); empty sessions are skipped.
    pub fn fit(sessions: &[PastSession], n_items: usize, config: SessionKnnConfig) -> Result<Self, RecsError> {
        if config.k == 0 || config.sample == 0 || config.max_session_items == 0 {
            return Err(invalid("k/sample/max_session_items", "must be at least 1"));
        }
        for (name, v) in [("position_decay", config.position_decay), ("neighbour_decay", config.neighbour_decay)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(name, "must be finite and non-negative"));
            }
        }
        let mut order: Vec<usize> = (0..sessions.len()).filter(|&s| !sessions[s].items.is_empty()).collect();
        order.sort_by_key(|&s| (sessions[s].time_ms, s));
        let mut postings: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        let mut kept = Vec::with_capacity(order.len());
        let mut distinct_len = Vec::with_capacity(order.len());
        for (rank, &s) in order.iter().enumerate() {
            let items = &sessions[s].items;
            let mut distinct = items.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for &i in &distinct {
                postings
                    .get_mut(i as usize)
                    .ok_or(RecsError::OutOfRange { what: "item", index: i as usize, size: n_items })?
                    .push(rank as u32);
            }
            distinct_len.push(distinct.len() as u32);
            kept.push(items.clone());
        }
        for p in &mut postings {
            p.reverse();
        }
        Ok(Self { config, sessions: kept, distinct_len, postings })
    }

    pub fn config(&self) -> &SessionKnnConfig {
        &self.config
    }

    pub fn n_items(&self) -> usize {
        self.postings.len()
    }

    pub fn n_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The `n` best next items for a session whose clicks so far are `session` (oldest first), never an
    /// item of `exclude`; best first, ties by item index. Unknown items are ignored.
    ///
    /// Steps: the session's distinct recent items with position weights → the `k` most similar past sessions
    /// among the `sample` most recent ones sharing an item → each item of those sessions scored by the
    /// neighbour's similarity, decayed by its distance from the shared item → the best `n`, each citing the
    /// current items that contributed most.
    pub fn recommend(&self, session: &[u32], n: usize, exclude: &[u32]) -> Vec<SessionSuggestion> {
        let current = self.current_items(session);
        if current.is_empty() || n == 0 {
            return Vec::new();
        }
        let neighbours = self.neighbours(&current);
        let scored = self.score_items(&current, &neighbours, exclude);
        scored.best(&current, n)
    }

    /// The distinct known items of the session's latest `max_session_items` clicks with their weight: the
    /// latest position's, decaying with the distance from the end of the session.
    fn current_items(&self, session: &[u32]) -> Vec<(u32, f64)> {
        let cfg = &self.config;
        let known: Vec<u32> = session.iter().copied().filter(|&i| (i as usize) < self.postings.len()).collect();
        let recent = &known[known.len().saturating_sub(cfg.max_session_items)..];
        let mut current: Vec<(u32, f64)> = Vec::new();
        let len = recent.len();
        for (p, &item) in recent.iter().enumerate() {
            let w = if cfg.position_decay > 0.0 { (-((len - 1 - p) as f64) / cfg.position_decay).exp() } else { 1.0 };
            match current.iter_mut().find(|(i, _)| *i == item) {
                Some(slot) => slot.1 = w,
                None => current.push((item, w)),
            }
        }
        current
    }

    /// The `k` past sessions most similar to `current` among the `sample` most recent ones holding any current
    /// item, most similar first: (session, cosine similarity, position of its anchor, the heaviest shared item).
    fn neighbours(&self, current: &[(u32, f64)]) -> Vec<(u32, f64, usize)> {
        let cfg = &self.config;
        let mut candidates: Vec<u32> = Vec::new();
        for &(item, _) in current {
            candidates.extend(self.postings[item as usize].iter().take(cfg.sample));
        }
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        candidates.truncate(cfg.sample);
        let Some(&oldest) = candidates.last() else { return Vec::new() };
        // Similarities from the postings: the candidates holding a current item are exactly its sessions down to
        // the oldest candidate (any newer one not among its first `sample` would push that candidate out), so
        // no candidate's items are scanned. Per candidate: the summed weights of the distinct shared items, in
        // the order of `current`, and the heaviest shared item (the first of equals), its anchor.
        let mut shared: Vec<(f64, f64, u32)> = vec![(0.0, f64::NEG_INFINITY, 0); candidates.len()];
        for &(item, w) in current {
            for &sid in self.postings[item as usize].iter().take_while(|&&sid| sid >= oldest) {
                // `candidates` is sorted newest (largest id) first.
                let slot =
                    candidates.binary_search_by(|c| sid.cmp(c)).expect("a posting above the oldest is a candidate");
                let entry = &mut shared[slot];
                entry.0 += w;
                if w > entry.1 {
                    entry.1 = w;
                    entry.2 = item;
                }
            }
        }
        let norm_s = (current.len() as f64).sqrt();
        let mut neighbours: Vec<(u32, f64, u32)> = candidates
            .iter()
            .zip(&shared)
            .map(|(&sid, &(dot, _, anchor_item))| {
                (sid, dot / (norm_s * f64::from(self.distinct_len[sid as usize]).sqrt()), anchor_item)
            })
            .filter(|&(_, sim, _)| sim > 0.0)
            .collect();
        let by_sim = |a: &(u32, f64, u32), b: &(u32, f64, u32)| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0));
        if neighbours.len() > cfg.k {
            neighbours.select_nth_unstable_by(cfg.k - 1, by_sim);
            neighbours.truncate(cfg.k);
        }
        neighbours.sort_by(by_sim);
        // The anchor's position in each kept neighbour: its last occurrence.
        neighbours
            .into_iter()
            .map(|(sid, sim, anchor_item)| {
                let items = &self.sessions[sid as usize];
                (sid, sim, items.iter().rposition(|&x| x == anchor_item).expect("a neighbour holds its anchor"))
            })
            .collect()
    }

    /// Every item of the neighbours (but the excluded) scored: Σ similarity · exp(−distance from the anchor /
    /// λ₃), with each current item's share of every contribution.
    fn score_items(&self, current: &[(u32, f64)], neighbours: &[(u32, f64, usize)], exclude: &[u32]) -> Scored {
        let cfg = &self.config;
        let d = current.len();
        // Each item's slot in `items` (`NO_SLOT`: none yet), in a per-thread buffer over all items that is
        // reset where used; taken out while in use, so a panic mid-way leaves no stale slots behind.
        thread_local! {
            static SLOTS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        const NO_SLOT: u32 = u32::MAX;
        let mut slot_of = SLOTS.with_borrow_mut(std::mem::take);
        if slot_of.len() < self.postings.len() {
            slot_of.resize(self.postings.len(), NO_SLOT);
        }
        let mut scored = Scored { d, items: Vec::new(), scores: Vec::new(), contrib: Vec::new() };
        let mut shares = vec![0f64; d];
        // exp(−distance / λ₃), worked out once per distance.
        let longest = neighbours.iter().map(|&(sid, _, _)| self.sessions[sid as usize].len()).max().unwrap_or(0);
        let decay_at: Vec<f64> = (0..longest)
            .map(|dist| if cfg.neighbour_decay > 0.0 { (-(dist as f64) / cfg.neighbour_decay).exp() } else { 1.0 })
            .collect();
        let mut seen_in_session: Vec<u32> = Vec::new();
        let mut by_distance: Vec<(usize, u32)> = Vec::new();
        let mut shared_slots: Vec<usize> = Vec::with_capacity(d);
        for &(sid, sim, anchor_pos) in neighbours {
            let items = &self.sessions[sid as usize];
            let mut total = 0.0;
            for (c, &(ci, w)) in current.iter().enumerate() {
                shares[c] = if items.contains(&ci) { w } else { 0.0 };
                total += shares[c];
            }
            // Only the shared items get a contribution (adding 0 to the others changes nothing).
            shared_slots.clear();
            shared_slots.extend((0..d).filter(|&c| shares[c] != 0.0));
            seen_in_session.clear();
            outward_from(items, anchor_pos, &mut by_distance);
            for &(dist, j) in &by_distance {
                if seen_in_session.contains(&j) || exclude.contains(&j) {
                    continue;
                }
                seen_in_session.push(j);
                let gain = sim * decay_at[dist];
                let slot = match slot_of[j as usize] {
                    NO_SLOT => {
                        slot_of[j as usize] = scored.items.len() as u32;
                        scored.push(j)
                    }
                    slot => slot as usize,
                };
                scored.scores[slot] += gain;
                for &c in &shared_slots {
                    scored.contrib[slot * d + c] += gain * shares[c] / total;
                }
            }
        }
        for &j in &scored.items {
            slot_of[j as usize] = NO_SLOT;
        }
        SLOTS.with_borrow_mut(|slots| *slots = slot_of);
        scored
    }
}

/// A session's items from the anchor outwards, so each item takes its closest occurrence (of two at the same
/// distance, the earlier first): (distance, item).
fn outward_from(items: &[u32], anchor_pos: usize, out: &mut Vec<(usize, u32)>) {
    out.clear();
    out.push((0, items[anchor_pos]));
    for dist in 1..items.len() {
        if let Some(before) = anchor_pos.checked_sub(dist) {
            out.push((dist, items[before]));
        }
        if let Some(&after) = items.get(anchor_pos + dist) {
            out.push((dist, after));
        }
    }
}

/// Scored items with each current item's contribution (flat: item slot × current item).
struct Scored {
    /// Current items.
    d: usize,
    items: Vec<u32>,
    scores: Vec<f64>,
    contrib: Vec<f64>,
}

impl Scored {
    /// Adds an item with a zero score; its slot.
    fn push(&mut self, item: u32) -> usize {
        self.items.push(item);
        self.scores.push(0.0);
        self.contrib.extend(std::iter::repeat_n(0.0, self.d));
        self.items.len() - 1
    }

    /// The `n` best, ties by item index, each with the (at most three) current items contributing most.
    fn best(self, current: &[(u32, f64)], n: usize) -> Vec<SessionSuggestion> {
        let d = self.d;
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]).then(self.items[a].cmp(&self.items[b])));
        order.truncate(n);
        order
            .into_iter()
            .map(|slot| {
                let mut anchors: Vec<(u32, f64)> =
                    (0..d).map(|c| (current[c].0, self.contrib[slot * d + c])).filter(|&(_, v)| v > 0.0).collect();
                anchors.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                anchors.truncate(3);
                SessionSuggestion {
                    item: self.items[slot],
                    score: self.scores[slot],
                    anchors: anchors.into_iter().map(|a| a.0).collect(),
                }
            })
            .collect()
    }
}
