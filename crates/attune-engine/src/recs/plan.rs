//! The first step of every list: the scenario's candidate tiers, best source first, and the items it never
//! returns. Each scenario is one method of [`Planner`]; the sources are the model's parts (item-kNN,
//! bought-together, buy-again, session-kNN, sequential, trending, popular) and, when the model's own tiers
//! leave a list short (an item added after the last training has no item-kNN neighbours; a shopper's history
//! holds only such items), a cold-start content tier: items like the anchors by title words, brand,
//! category path and attribute values.

use super::candidate::{Because, Candidate, Detail, ItemRef, MAX_CANDIDATES};
use super::holdout::BLEND_DEPTH;
use super::model::{BlendWeights, ForYouScorer, RecsModel};
use super::request::{Basis, ListRequest, Rules, Signal};
use super::shopper::{ShopperEvents, Touch, WeightedHistory, acted_on};
use crate::catalog::CatalogContent;
use attune_core::ItemId;
use attune_recs::{Als, Recommender, Row, blend, top_n_excluding};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Most candidates asked of a per-request model (session kNN, sequential, buy again, bought together,
/// content). A list asks for [`TIER_FACTOR`] × the items it needs plus its exclusions (at least
/// [`MIN_TIER`]): enough after exclusions and filters, while the precomputed trending and popular tiers back
/// them up.
const TIER_CANDIDATES: usize = 500;
const TIER_FACTOR: usize = 4;
const MIN_TIER: usize = 40;
/// Most anchors of a content tier (the heaviest): each anchor's features reach thousands of catalog items,
/// and a few heavy anchors already say what the shopper is after.
const MAX_CONTENT_SOURCES: usize = 5;

/// The scenario's candidate tiers (best source first) and the items it never returns.
pub struct Plan<'m> {
    pub tiers: Vec<Cow<'m, [Candidate]>>,
    pub exclude: HashSet<ItemId>,
    /// How the shopper touched the items a tier cites, for the explanations' verbs.
    pub touch: HashMap<ItemId, Touch>,
}

/// How many candidates the sources of a plan offer.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    /// Candidates the list needs before the hard rules.
    pub wanted: usize,
    /// Every source offers all it has (a filter rejected too many of the usual candidates).
    pub wide: bool,
}

/// Plans the list `request` asks for under `rules`, for the shopper whose latest events are `shopper`.
pub fn plan<'m>(
    model: &'m RecsModel,
    content: Option<&CatalogContent>,
    request: &ListRequest,
    rules: &Rules,
    shopper: &ShopperEvents,
    now_ms: i64,
    depth: Depth,
) -> Plan<'m> {
    let mut planner = Planner {
        model,
        content,
        depth,
        exclude: exclusions(request, rules, shopper),
        tiers: Vec::new(),
        touch: HashMap::new(),
    };
    match &request.basis {
        Basis::Similar(anchors) => planner.similar(anchors),
        Basis::ForYou(_) => planner.for_you(shopper),
        Basis::Trending => planner.fallbacks(),
        Basis::RecentlyViewed => planner.recently_viewed(shopper),
        Basis::BoughtTogether(anchor) => planner.bought_together(anchor),
        Basis::CompleteCart(cart) => planner.complete_cart(cart),
        Basis::BuyAgain => planner.buy_again(shopper, now_ms),
        Basis::Next => planner.next(shopper),
    }
    Plan { tiers: planner.tiers, exclude: planner.exclude, touch: planner.touch }
}

/// What every scenario leaves out: the request's exclusions, what the shopper marked not interested, and their
/// purchases when asked (by default for `for_you`).
fn exclusions(request: &ListRequest, rules: &Rules, shopper: &ShopperEvents) -> HashSet<ItemId> {
    let mut exclude = request.exclude.clone();
    exclude.extend(shopper.not_interested().cloned());
    if rules.exclude_purchased.unwrap_or(matches!(request.basis, Basis::ForYou(_))) {
        exclude.extend(shopper.purchased().cloned());
    }
    exclude
}

/// A plan under construction.
struct Planner<'m, 'c> {
    model: &'m RecsModel,
    content: Option<&'c CatalogContent>,
    depth: Depth,
    exclude: HashSet<ItemId>,
    tiers: Vec<Cow<'m, [Candidate]>>,
    touch: HashMap<ItemId, Touch>,
}

impl<'m> Planner<'m, '_> {
    /// Candidates asked of a per-request source, given the exclusions so far.
    fn tier_size(&self) -> usize {
        match self.depth.wide {
            true => TIER_CANDIDATES,
            false => (self.depth.wanted * TIER_FACTOR + self.exclude.len()).clamp(MIN_TIER, TIER_CANDIDATES),
        }
    }

    /// Candidates asked of item-kNN, which is cheap enough to offer all it has when a filter is strict.
    fn knn_size(&self) -> usize {
        if self.depth.wide { MAX_CANDIDATES } else { self.tier_size() }
    }

    /// Whether the tiers so far offer fewer than twice the wanted candidates (room for exclusions and
    /// filters), so that a content tier should follow them.
    fn short(&self) -> bool {
        self.tiers.iter().map(|tier| tier.len()).sum::<usize>() < self.depth.wanted * 2
    }

    fn push(&mut self, tier: Vec<Candidate>) {
        self.tiers.push(Cow::Owned(tier));
    }

    /// A content tier when the model's tiers are short.
    fn content_if_short(&mut self, sources: &[(ItemId, f32)]) {
        if self.short() {
            let tier = content_candidates(self.content, sources, self.tier_size());
            self.push(tier);
        }
    }

    /// The trending and popular tiers, borrowed from the model.
    fn fallbacks(&mut self) {
        let [trending, popular] = self.model.fallback_tiers();
        self.tiers.push(Cow::Borrowed(trending.as_slice()));
        self.tiers.push(Cow::Borrowed(popular.as_slice()));
    }

    fn similar(&mut self, anchors: &[ItemId]) {
        self.exclude.extend(anchors.iter().cloned());
        let sources: Vec<(u32, f32)> = indices(self.model, anchors).into_iter().map(|i| (i, 1.0)).collect();
        let tier = knn_candidates(self.model, &sources, Signal::SimilarItems, self.knn_size());
        self.push(tier);
        let sources: Vec<(ItemId, f32)> = anchors.iter().map(|id| (id.clone(), 1.0)).collect();
        self.content_if_short(&sources);
    }

    fn for_you(&mut self, shopper: &ShopperEvents) {
        let WeightedHistory { model_items, items, touch } = shopper.weighted_history(&self.model.items);
        // Items the shopper already knows are not news; purchases follow `exclude_purchased`.
        self.exclude.extend(touch.iter().filter(|(_, how)| **how != Touch::Bought).map(|(id, _)| id.clone()));
        let tier = for_you_candidates(self.model, &model_items, self.knn_size());
        self.push(tier);
        self.content_if_short(&items);
        self.fallbacks();
        self.touch = touch;
    }

    fn recently_viewed(&mut self, shopper: &ShopperEvents) {
        let viewed = shopper.recently_viewed();
        let n = viewed.len() as f32;
        let tier = viewed
            .into_iter()
            .enumerate()
            .map(|(rank, id)| {
                let id: Arc<str> = Arc::from(id.as_str());
                let because = SmallVec::from_elem(ItemRef::Other(id.clone()), 1);
                Candidate::new(id, (n - rank as f32) / n, Signal::RecentlyViewed, because)
            })
            .collect();
        self.push(tier);
    }

    fn bought_together(&mut self, anchor: &ItemId) {
        self.exclude.insert(anchor.clone());
        let tiers = basket_tiers(self.model, std::slice::from_ref(anchor), self.tier_size());
        tiers.into_iter().for_each(|tier| self.push(tier));
        self.content_if_short(&[(anchor.clone(), 1.0)]);
    }

    fn complete_cart(&mut self, cart: &[ItemId]) {
        self.exclude.extend(cart.iter().cloned());
        let tiers = basket_tiers(self.model, cart, self.tier_size());
        tiers.into_iter().for_each(|tier| self.push(tier));
        let sources: Vec<(ItemId, f32)> = cart.iter().map(|id| (id.clone(), 1.0)).collect();
        self.content_if_short(&sources);
    }

    fn buy_again(&mut self, shopper: &ShopperEvents, now_ms: i64) {
        let model = self.model;
        let history: Vec<(u32, i64)> = shopper
            .purchase_times()
            .into_iter()
            .filter_map(|(id, time)| Some((model.items.index(id.as_str())?, time)))
            .collect();
        let suggestions = match &model.buy_again {
            Some(buy_again) => buy_again.for_customer(&history, now_ms, self.tier_size(), &[]),
            None => Vec::new(),
        };
        let tier = suggestions
            .into_iter()
            .map(|s| {
                let because = SmallVec::from_elem(ItemRef::Model(s.item), 1);
                let mut candidate = Candidate::of_model(s.item, s.score as f32, Signal::BuyAgain, because);
                candidate.detail = Detail::BuyAgain {
                    interval_ms: s.typical_interval_ms,
                    times_bought: s.times_bought,
                    last_purchase_ms: s.last_purchase_ms,
                };
                candidate
            })
            .collect();
        self.push(tier);
    }

    /// The session's next item (session kNN), then what follows the ordered history (sequential model), then
    /// items like the session's (latest weighing most), content, and what is trending.
    fn next(&mut self, shopper: &ShopperEvents) {
        let model = self.model;
        let session = shopper.current_session();
        self.exclude.extend(session.iter().cloned());
        let clicks = indices(model, &session);
        let tier = model.sessions.recommend(&clicks, self.tier_size(), &[]).into_iter().map(|s| {
            let because = s.anchors.iter().map(|a| ItemRef::Model(*a)).collect();
            Candidate::of_model(s.item, s.score as f32, Signal::Session, because)
        });
        self.push(tier.collect());
        self.sequential(shopper);
        let n = clicks.len();
        let sources: Vec<(u32, f32)> = clicks.iter().enumerate().map(|(p, &i)| (i, recency_weight(n, p))).collect();
        let tier = knn_candidates(model, &sources, Signal::Session, self.knn_size());
        self.push(tier);
        let m = session.len();
        let sources: Vec<(ItemId, f32)> =
            session.iter().enumerate().map(|(p, id)| (id.clone(), recency_weight(m, p))).collect();
        self.content_if_short(&sources);
        self.fallbacks();
        for event in shopper.events.iter().rev() {
            for id in acted_on(&event.kind) {
                let how = Touch::of(&event.kind);
                let slot = self.touch.entry(id.clone()).or_insert(how);
                *slot = (*slot).min(how);
            }
        }
    }

    /// What tends to follow the shopper's whole recent history, in order.
    fn sequential(&mut self, shopper: &ShopperEvents) {
        let history: Vec<ItemId> =
            shopper.events.iter().rev().flat_map(|e| acted_on(&e.kind).into_iter().cloned()).collect();
        let ordered = indices(self.model, &history);
        if let Ok(suggestions) = self.model.sequential.recommend(&ordered, self.tier_size(), &[]) {
            let tier = suggestions.into_iter().map(|s| {
                let because = s.anchors.iter().map(|a| ItemRef::Model(*a)).collect();
                Candidate::of_model(s.item, s.score, Signal::Sequential, because)
            });
            self.push(tier.collect());
        }
    }
}

/// The weight of position `p` of `n` session items: the latest 1, each earlier one e^(-1/2) times less.
fn recency_weight(n: usize, p: usize) -> f32 {
    (-((n - 1 - p) as f32) / 2.0).exp()
}

fn indices(model: &RecsModel, ids: &[ItemId]) -> Vec<u32> {
    ids.iter().filter_map(|id| model.items.index(id.as_str())).collect()
}

/// `for_you`'s candidates from the shopper's weighted model items, by the model the training chose.
fn for_you_candidates(model: &RecsModel, sources: &[(u32, f32)], k: usize) -> Vec<Candidate> {
    let signal = Signal::YourHistory;
    match (model.for_you_scorer, &model.als, &model.ease) {
        (ForYouScorer::Als, Some(als), _) => als_candidates(als, sources, signal, k),
        (ForYouScorer::Ease, _, Some(ease)) => neighbour_candidates(&|i| ease.neighbours(i), sources, signal, k),
        (ForYouScorer::Blend(weights), _, _) => blended_candidates(model, sources, &weights, k),
        _ => knn_candidates(model, sources, signal, k),
    }
}

/// The blend of item-kNN, ALS and EASE candidates (each source offering at least [`BLEND_DEPTH`], as on the
/// training holdout), each citing what its strongest source cited.
/// The tier can hold fewer than `k` items: each source offers only what it reaches.
fn blended_candidates(model: &RecsModel, sources: &[(u32, f32)], weights: &BlendWeights, k: usize) -> Vec<Candidate> {
    let (signal, depth) = (Signal::YourHistory, k.max(BLEND_DEPTH));
    let lists: [Vec<Candidate>; 3] = [
        if weights[0] > 0.0 { knn_candidates(model, sources, signal, depth) } else { Vec::new() },
        match &model.als {
            Some(als) if weights[1] > 0.0 => als_candidates(als, sources, signal, depth),
            _ => Vec::new(),
        },
        match &model.ease {
            Some(ease) if weights[2] > 0.0 => neighbour_candidates(&|i| ease.neighbours(i), sources, signal, depth),
            _ => Vec::new(),
        },
    ];
    let model_index = |c: &Candidate| c.index_in(&model.items);
    // The shopper's own items are left out before the scores are normalised, as on the holdout.
    let history: HashSet<u32> = sources.iter().map(|(item, _)| *item).collect();
    let scored: Vec<Vec<(u32, f32)>> = lists
        .iter()
        .map(|list| {
            let scored = list.iter().filter_map(|c| Some((model_index(c)?, c.score)));
            scored.filter(|(item, _)| !history.contains(item)).collect()
        })
        .collect();
    let Ok(blended) = blend(&scored, weights, k, &[]) else { return Vec::new() };
    blended
        .into_iter()
        .filter_map(|b| {
            let mut candidate = lists[b.source].iter().find(|c| model_index(c) == Some(b.item))?.clone();
            candidate.score = b.score;
            Some(candidate)
        })
        .collect()
}

/// The best `k` items by Σ over `sources` of weight · sim(source, j), citing the source contributing most to
/// each j.
fn knn_candidates(model: &RecsModel, sources: &[(u32, f32)], signal: Signal, k: usize) -> Vec<Candidate> {
    neighbour_candidates(&|i| model.knn.neighbours(i), sources, signal, k)
}

/// The best `k` items by Σ over `sources` of weight · w(source, j) for an item × item model's kept weights
/// (item-kNN's similarities, EASE's weights), citing the source contributing most to each j.
fn neighbour_candidates<'a>(
    neighbours: &dyn Fn(u32) -> Row<'a>,
    sources: &[(u32, f32)],
    signal: Signal,
    k: usize,
) -> Vec<Candidate> {
    let reachable = sources.iter().map(|&(source, _)| neighbours(source).len()).sum();
    let mut scores: foldhash::HashMap<u32, (f32, u32, f32)> =
        foldhash::HashMap::with_capacity_and_hasher(reachable, Default::default());
    for &(source, weight) in sources {
        for (j, sim) in neighbours(source).iter() {
            let contribution = weight * sim;
            let entry = scores.entry(j).or_insert((0.0, source, f32::NEG_INFINITY));
            entry.0 += contribution;
            if contribution > entry.2 || (contribution == entry.2 && source < entry.1) {
                entry.1 = source;
                entry.2 = contribution;
            }
        }
    }
    let mut ranked: Vec<(u32, f32, u32)> = scores
        .into_iter()
        .filter(|(_, (s, _, _))| *s > 0.0 && s.is_finite())
        .map(|(j, (s, source, _))| (j, s, source))
        .collect();
    let better = |a: &(u32, f32, u32), b: &(u32, f32, u32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > k {
        ranked.select_nth_unstable_by(k, better);
        ranked.truncate(k);
    }
    ranked.sort_by(better);
    ranked
        .into_iter()
        .map(|(j, score, source)| Candidate::of_model(j, score, signal, SmallVec::from_elem(ItemRef::Model(source), 1)))
        .collect()
}

/// Implicit ALS with the shopper folded in from the weighted `sources` (model items), the best `k` items not among
/// them; each cites the source the model finds most alike (by item factors).
fn als_candidates(als: &Als, sources: &[(u32, f32)], signal: Signal, k: usize) -> Vec<Candidate> {
    let mut history = sources.to_vec();
    history.sort_by_key(|(item, _)| *item);
    history.dedup_by_key(|(item, _)| *item);
    if history.is_empty() {
        return Vec::new();
    }
    let (indices, values): (Vec<u32>, Vec<f32>) = history.into_iter().unzip();
    let mut scores = vec![0f32; als.n_items()];
    if als.score_into(u32::MAX, Row { indices: &indices, values: &values }, &mut scores).is_err() {
        return Vec::new();
    }
    let cited = |j: u32| {
        let closeness = |source: u32| als.item_similarity(source, j);
        indices.iter().copied().max_by(|a, b| closeness(*a).total_cmp(&closeness(*b)).then(b.cmp(a))).unwrap_or(j)
    };
    top_n_excluding(&mut scores, &indices, k)
        .into_iter()
        .filter(|(_, score)| *score > 0.0 && score.is_finite())
        .map(|(j, score)| Candidate::of_model(j, score, signal, SmallVec::from_elem(ItemRef::Model(cited(j)), 1)))
        .collect()
}

/// Cold start: items whose content is like the weighted `sources` (any catalog items, trained on or not;
/// the [`MAX_CONTENT_SOURCES`] heaviest), citing the heaviest source. Empty without a catalog copy.
fn content_candidates(content: Option<&CatalogContent>, sources: &[(ItemId, f32)], k: usize) -> Vec<Candidate> {
    let Some(content) = content else { return Vec::new() };
    let mut positions: Vec<(u32, f32)> =
        sources.iter().filter_map(|(id, weight)| Some((content.position(id)?, *weight))).collect();
    positions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    positions.truncate(MAX_CONTENT_SOURCES);
    let Some(&(cited, _)) = positions.first() else { return Vec::new() };
    let Some(cited) = content.id(cited).map(|id| Arc::<str>::from(id.as_str())) else { return Vec::new() };
    let matches = match content.index.ranked_similar_to(&positions, k, &[]) {
        Ok(matches) => matches,
        Err(error) => {
            tracing::warn!(error = %error, "content similarity failed");
            return Vec::new();
        }
    };
    let anchors: Arc<[(u32, f32)]> = positions.into();
    matches
        .into_iter()
        .filter_map(|(position, score)| {
            let id = content.id(position)?;
            let because: Because = SmallVec::from_elem(ItemRef::Other(cited.clone()), 1);
            let mut candidate = Candidate::new(id.as_str(), score, Signal::SimilarContent, because);
            candidate.detail = Detail::ContentMatch { position, anchors: anchors.clone() };
            Some(candidate)
        })
        .collect()
}

/// Frequently bought together with `anchors` (the fitted counts plus the orders logged since, so items new
/// since the training take part), then items similar to them.
fn basket_tiers(model: &RecsModel, anchors: &[ItemId], k: usize) -> Vec<Vec<Candidate>> {
    let live = model.live.read();
    let cart: Vec<u32> = anchors.iter().filter_map(|id| live.index(&model.items, id.as_str())).collect();
    let n_model = model.items.len() as u32;
    let item = |index: u32| {
        if index < n_model {
            ItemRef::Model(index)
        } else {
            ItemRef::Other(Arc::from(live.id(&model.items, index).unwrap_or_default()))
        }
    };
    let together = model
        .bought_together
        .for_items_with(&live.baskets, &cart, k, &[])
        .into_iter()
        .map(|s| {
            let because = s.anchors.iter().map(|a| item(*a)).collect();
            Candidate::at(item(s.item), s.score as f32, Signal::BoughtTogether, because)
        })
        .collect();
    let sources: Vec<(u32, f32)> = cart.into_iter().filter(|i| *i < n_model).map(|i| (i, 1.0)).collect();
    vec![together, knn_candidates(model, &sources, Signal::SimilarItems, k)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recs::fit::{Scan, fit};
    use attune_core::Timestamp;

    /// Forty shoppers, each buying three items of one of two groups: {a, b, c, d} and {w, x, y, z}.
    fn two_groups() -> Scan {
        let groups = [["a", "b", "c", "d"], ["w", "x", "y", "z"]];
        let mut scan = Scan { last_millis: 0, ..Scan::default() };
        for shopper in 0..40usize {
            let group = groups[shopper % 2];
            let key = format!("s{shopper}");
            for step in 0..3 {
                let item = group[(shopper / 2 + step) % 4];
                let at = (shopper * 10 + step) as i64;
                scan.add_interaction(&key, item, 1.0, at);
                scan.add_touch(&key, at, None, item);
                scan.events += 1;
                scan.last_millis = at;
            }
        }
        scan.through_seq = scan.events as i64;
        scan
    }

    #[test]
    fn every_for_you_scorer_serves_the_shoppers_own_group_and_cites_their_items() {
        let fitted = fit(&two_groups(), 3, &|_| Ok(())).unwrap();
        assert!(fitted.als.is_some() && fitted.ease.is_some(), "both parts are fitted");
        let mut fitted = Some(fitted);
        for scorer in
            [ForYouScorer::ItemKnn, ForYouScorer::Als, ForYouScorer::Ease, ForYouScorer::Blend([1.0, 0.5, 2.0])]
        {
            let mut model = fitted.take().unwrap();
            model.for_you_scorer = scorer;
            let model = RecsModel::new(1, Timestamp::now(), i64::MAX, model, None);
            let history: Vec<(u32, f32)> = ["a", "b"].iter().map(|id| (model.items.index(id).unwrap(), 1.0)).collect();
            let tier = for_you_candidates(&model, &history, 10);
            let ids: Vec<&str> = tier.iter().map(|c| c.id(&model.items)).collect();
            let unseen: Vec<&str> = ids.iter().copied().filter(|id| !["a", "b"].contains(id)).collect();
            let own_group = |id: &&str| ["c", "d"].contains(id);
            assert!(unseen.first().is_some_and(own_group), "{scorer:?}: {ids:?}");
            let first_other = unseen.iter().position(|id| !own_group(id)).unwrap_or(unseen.len());
            assert!(unseen[first_other..].iter().all(|id| !own_group(id)), "{scorer:?}: the own group first: {ids:?}");
            assert!(tier.windows(2).all(|w| w[0].score >= w[1].score), "{scorer:?}: best first");
            for candidate in &tier {
                let cited: Vec<&str> = candidate.because.iter().map(|b| b.id(&model.items)).collect();
                assert!(cited.iter().all(|id| ["a", "b"].contains(id)), "{scorer:?} cites {cited:?}");
            }
            fitted = Some(model.fitted);
        }
    }
}
