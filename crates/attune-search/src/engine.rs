//! The search engine: query understanding, lexical and semantic retrieval, fusion, personal rerank, filters,
//! facets, sorting and paging over one in-memory catalog.
//!
//! One call of [`SearchEngine::search`]:
//! 0. corrects misspelt words against the catalog's own words ([`SearchEngine::correct_spelling`]);
//! 1. understands the query ([`crate::query`]): price phrases become a price filter; colour/size/gender words
//!    become attribute filters ([`AttributeMode::Filter`]) or a ranking boost ([`AttributeMode::Boost`]);
//! 2. computes the allowed set from the structured filters, the understood ones and the caller's predicate;
//! 3. retrieves lexical candidates (BM25, typo tolerant) and, when a query vector is given and the engine has
//!    item vectors, semantic candidates (cosine), both restricted to the allowed set;
//! 4. fuses the two lists (min-max-normalised weighted scores, lexical 0.7, by default — chosen by
//!    `attune eval search` over reciprocal rank fusion; every candidate gets its cosine in hybrid mode);
//!    if lexical retrieval found nothing allowed, the semantic list is used alone and the response says so;
//!    a candidate found only semantically counts only when its cosine reaches
//!    [`SearchConfig::semantic_min_similarity`] (calibrated by `attune eval search`), so a query that matches
//!    nothing returns nothing instead of the nearest neighbours of noise, and `total` and the facets count only
//!    matching items;
//! 5. adds the shopper's personal score (brand/category/attribute affinities and similarity to the session's
//!    items) — an anonymous shopper gets no personal term and exactly the fused order — and the shop's own
//!    signal (sales popularity, [`SearchRequest::signals`]): it shares the order of the lexically equivalent
//!    hits with BM25 ([`SearchConfig::equivalent_signal_weight`]) and breaks ties elsewhere
//!    ([`SearchConfig::signal_weight`]);
//! 6. counts facets over the whole result set, sorts (relevance, price, newest) and cuts the requested page.
//!
//! Every hit carries its score breakdown (lexical, semantic, fused, personal, total).

use std::collections::HashMap;

use attune_core::{Availability, Item, ItemId};

use crate::catalog_words::CatalogWords;
use crate::error::SearchError;
use crate::facets::{FacetIndex, Facets};
use crate::lexical::{FieldBoosts, LexicalIndex};
use crate::profile::ShopperProfile;
use crate::query::{AttributeKind, ParsedQuery, QueryVocabulary, is_price_word, item_attribute, parse_query};
use crate::vector::{AnnConfig, VectorIndex, dot};

/// How lexical and semantic lists are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: 1 / (k + lexical rank) + semantic · 1 / (k + semantic rank), ranks from 1.
    Rrf { k: f32, semantic: f32 },
    /// `lexical · norm(bm25) + (1 − lexical) · norm(cosine)`, each min-max normalised over its list.
    Weighted { lexical: f32 },
}

/// What understood colour/size/gender words do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeMode {
    /// Only items with the named value are returned (the words leave the text query).
    Filter,
    /// Items with the named value rank higher (the words stay in the text query).
    Boost,
}

/// Engine settings; the defaults are the ones chosen by `attune eval search`.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub boosts: FieldBoosts,
    pub fusion: Fusion,
    pub attribute_mode: AttributeMode,
    /// Factor per matched understood attribute in boost mode: fused × (1 + boost · matched share).
    pub attribute_boost: f32,
    /// Lexical hits taken when no filter is active (with filters, every match is considered).
    pub lexical_candidates: usize,
    /// Semantic hits taken (nearest neighbours among the allowed items).
    pub semantic_candidates: usize,
    /// Weight of the personal score against the fused score scaled to [0, 1].
    pub personal_weight: f32,
    /// Weight of the similarity to the session's items inside the personal score.
    pub session_weight: f32,
    /// How many of the most relevant candidates get the personal term.
    pub rerank_depth: usize,
    /// Values kept per facet.
    pub facet_limit: usize,
    /// When semantic retrieval uses an approximate (HNSW) graph; fixed at build time.
    pub ann: AnnConfig,
    /// Lexical hits whose indexed text holds every (analysed) query term come first, in lexical order, before
    /// the hits that match only some terms and the semantic matches, in lexical-only and hybrid search alike
    /// (BM25 alone can rank one rare word above all of them). A word the catalog does not have at all (left
    /// after spelling correction: a brand the shop does not carry) is left out, so it does not empty the
    /// group. Checked among the best [`ALL_TERMS_CHECKED`] lexical hits.
    pub all_terms_first: bool,
    /// With [`Self::all_terms_first`], only items with a category path join the group: their indexed text also
    /// names what they are (category, attributes), so holding every query word is a precise match, while a
    /// title alone that holds them may be another kind of product (set with vectors tuned to the catalog,
    /// whose similarity then orders those items).
    pub all_terms_needs_category: bool,
    /// In weighted fusion, each lexical hit's lexical part is multiplied by the share of the query's terms
    /// that it holds raised to this power (a coordination factor; 0 turns it off). BM25 can give a hit that
    /// holds one rare query word (the "bag" of "bags black", in another colour) nearly the best lexical score;
    /// with tuned vectors that would push products the similarity rightly finds (a black handbag) out of the
    /// page. Terms the catalog does not have are left out, as for [`Self::all_terms_first`].
    pub lexical_coordination: f32,
    /// A candidate that no lexical match found is kept only when its cosine similarity to the query is at least
    /// this (`f32::MIN`: keep every semantic neighbour). Chosen by `attune eval search` on validation queries and
    /// products (the highest cut that keeps 95 % of the relevant semantic-only hits), separately for untuned and
    /// catalog-tuned vectors, whose similarities have different scales.
    pub semantic_min_similarity: f32,
    /// Among the lexically equivalent hits (those that hold every query word, [`Self::all_terms_first`]), the
    /// share of their order given to the shop's signal ([`SearchRequest::signals`], in [0, 1]) rather than to
    /// BM25's differences (title length, repeated words): 0 orders them by BM25 alone, 1 by the signal alone.
    /// They stay above every other hit either way, as commerce engines apply a "custom ranking" only after the
    /// textual criteria.
    pub equivalent_signal_weight: f32,
    /// Weight of the signal added to every hit's total: a tie-breaker among hits of about the same relevance.
    pub signal_weight: f32,
}

/// [`SearchConfig::semantic_min_similarity`] for MiniLM vectors as they come (`attune eval search`, 2026-12-07:
/// on the test queries and products it keeps 100 % of the relevant semantic-only hits and drops 14 % of the
/// others; see docs/EVALUATION.md).
pub const SEMANTIC_MIN_SIMILARITY: f32 = 0.45;
/// [`SearchConfig::semantic_min_similarity`] for catalog-tuned vectors (same protocol: keeps 99.9 % of the
/// relevant semantic-only hits on the test half and drops 14 % of the others).
pub const SEMANTIC_MIN_SIMILARITY_TUNED: f32 = 0.49;

/// The business signal of an item in `orders` recent orders when the best seller is in `most`: ln(1 + orders) /
/// ln(1 + most), in [0, 1] (logarithmic, so the long tail still differs from items nobody orders).
pub fn popularity_signal(orders: u64, most: u64) -> f32 {
    let most = most.max(orders).max(1) as f32;
    (1.0 + orders as f32).ln() / (1.0 + most).ln()
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            boosts: FieldBoosts::default(),
            fusion: Fusion::Weighted { lexical: 0.7 },
            attribute_mode: AttributeMode::Filter,
            attribute_boost: 0.5,
            lexical_candidates: 1000,
            semantic_candidates: 200,
            personal_weight: 0.2,
            session_weight: 0.5,
            rerank_depth: 200,
            facet_limit: 20,
            ann: AnnConfig::default(),
            all_terms_first: true,
            all_terms_needs_category: false,
            lexical_coordination: 0.0,
            semantic_min_similarity: SEMANTIC_MIN_SIMILARITY,
            equivalent_signal_weight: 0.5,
            signal_weight: 0.02,
        }
    }
}

impl SearchConfig {
    /// The settings for item vectors tuned to the catalog ([`crate::CatalogTuning`]), checked by `attune eval
    /// search`: lexical weight 0.4 in the fusion with a lexical coordination power of 3 (of weights 0.1 to 0.7
    /// and powers 0 to 4 on a validation split of the catalog, tuning fitted on one quarter and another quarter
    /// searched by title: the best NDCG@10 + Recall@50 summed over the three query sets), and the all-terms
    /// group only for items with a category path. The group and the 0.7 lexical weight of the defaults protect
    /// precision from MiniLM's untuned similarity, which among titles that match the same words prefers the one
    /// that reads most like the query rather than the kind of product it names; the tuned similarity says what
    /// kind of product it is. An item whose category and attributes are indexed and match every query word is
    /// still a precise match (without the group, the "title + attributes" protocol lost 0.006 NDCG@10 to
    /// lexical only).
    pub fn for_catalog_tuned_vectors() -> Self {
        Self {
            fusion: Fusion::Weighted { lexical: 0.4 },
            lexical_coordination: 3.0,
            all_terms_needs_category: true,
            semantic_min_similarity: SEMANTIC_MIN_SIMILARITY_TUNED,
            ..Self::default()
        }
    }
}

/// Structured filters; all given conditions must hold. String comparisons ignore case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// The item's category path must start with these levels.
    pub category_prefix: Vec<String>,
    /// Any of these brands.
    pub brands: Vec<String>,
    /// Any of these colours.
    pub colours: Vec<String>,
    /// Any of these sizes.
    pub sizes: Vec<String>,
    /// Price bounds in major units, inclusive. Items without a price fail a price bound.
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    pub in_stock_only: bool,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `item` passes every condition.
    pub fn accepts(&self, item: &Item) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase();
        if !self.category_prefix.is_empty()
            && (item.category_path.len() < self.category_prefix.len()
                || !self.category_prefix.iter().zip(&item.category_path).all(|(want, have)| same(want, have)))
        {
            return false;
        }
        if !self.brands.is_empty() && !item.brand.as_ref().is_some_and(|b| self.brands.iter().any(|w| same(w, b))) {
            return false;
        }
        let attribute_ok = |wanted: &[String], kind: AttributeKind| {
            wanted.is_empty() || item_attribute(item, kind).is_some_and(|v| wanted.iter().any(|w| same(w, &v)))
        };
        if !attribute_ok(&self.colours, AttributeKind::Colour) || !attribute_ok(&self.sizes, AttributeKind::Size) {
            return false;
        }
        if self.price_min.is_some() || self.price_max.is_some() {
            let Some(price) = item.price.as_ref().map(|p| p.as_major_f64()) else { return false };
            if self.price_min.is_some_and(|min| price < min) || self.price_max.is_some_and(|max| price > max) {
                return false;
            }
        }
        if self.in_stock_only && !is_in_stock(item) {
            return false;
        }
        true
    }
}

/// In stock: availability says so and the stock count, when known, is positive.
pub fn is_in_stock(item: &Item) -> bool {
    item.availability == Availability::InStock && item.stock_quantity.is_none_or(|q| q > 0)
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Relevance,
    PriceAscending,
    PriceDescending,
    Newest,
}

/// Which retrieval paths to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retrieval {
    /// Lexical and semantic when a query vector and item vectors exist, else lexical only.
    #[default]
    Hybrid,
    LexicalOnly,
    SemanticOnly,
}

/// How the response was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    Hybrid,
    /// No vectors (no model, or no query vector): lexical only.
    LexicalOnly,
    SemanticOnly,
    /// Lexical retrieval found nothing that passes the filters; semantic results are shown instead.
    SemanticFallback,
    /// The query had no text left (e.g. only a price or a colour): the allowed items in catalog order.
    Browse,
}

/// One search.
#[derive(Clone, Copy)]
pub struct SearchRequest<'a> {
    pub query: &'a str,
    /// The query's embedding (same model as the item vectors).
    pub query_vector: Option<&'a [f32]>,
    pub filters: &'a Filters,
    /// An extra condition from the caller (e.g. a compiled filter expression).
    pub predicate: Option<&'a dyn Fn(&Item) -> bool>,
    pub profile: Option<&'a ShopperProfile>,
    /// The shop's own signal per catalog position, in [0, 1] (e.g. sales popularity), if any.
    pub signals: Option<&'a [f32]>,
    pub sort: SortOrder,
    pub offset: usize,
    pub limit: usize,
    pub retrieval: Retrieval,
    /// Parse prices and attribute words out of the query (on by default).
    pub understand: bool,
    /// Correct misspelt words against the catalog's words first ([`SearchEngine::correct_spelling`]; on by
    /// default). Off searches the query as typed ("search instead for ...").
    pub correct_spelling: bool,
    pub facets: bool,
}

impl<'a> SearchRequest<'a> {
    /// A relevance-sorted first page of 20 with facets, no filters, no personalisation.
    pub fn new(query: &'a str) -> Self {
        static NO_FILTERS: Filters = Filters {
            category_prefix: Vec::new(),
            brands: Vec::new(),
            colours: Vec::new(),
            sizes: Vec::new(),
            price_min: None,
            price_max: None,
            in_stock_only: false,
        };
        Self {
            query,
            query_vector: None,
            filters: &NO_FILTERS,
            predicate: None,
            profile: None,
            signals: None,
            sort: SortOrder::Relevance,
            offset: 0,
            limit: 20,
            retrieval: Retrieval::Hybrid,
            understand: true,
            correct_spelling: true,
            facets: true,
        }
    }
}

/// Why a hit scored what it did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreBreakdown {
    /// BM25-based score and 1-based rank in the lexical list, if the item was in it.
    pub lexical: Option<f32>,
    pub lexical_rank: Option<usize>,
    /// For a lexical hit, the share of the query's words (those some item holds) that its indexed text holds;
    /// [`SearchConfig::lexical_coordination`] scales its lexical part by a power of it.
    pub words_held: Option<f32>,
    /// Cosine similarity (for every candidate in hybrid mode) and 1-based rank in the semantic list, if the
    /// item was in it.
    pub semantic: Option<f32>,
    pub semantic_rank: Option<usize>,
    /// Fused relevance scaled so the best candidate has 1 (attribute boost included).
    pub relevance: f32,
    /// Personal score in [0, 1 + session weight] (0 for an anonymous shopper).
    pub personal: f32,
    /// The shop's signal for the item in [0, 1] (0 without signals).
    pub signal: f32,
    /// relevance + personal weight · personal + signal weight · signal.
    pub total: f32,
}

/// One result.
#[derive(Debug, Clone)]
pub struct SearchHit<'a> {
    /// Position of the item in the engine's catalog.
    pub position: usize,
    pub item: &'a Item,
    pub score: ScoreBreakdown,
}

/// The answer to one search.
#[derive(Debug, Clone)]
pub struct SearchResponse<'a> {
    pub mode: SearchMode,
    pub warnings: Vec<String>,
    /// The query as searched when spelling correction changed it.
    pub corrected_query: Option<String>,
    /// What query understanding found.
    pub parsed: ParsedQuery,
    /// The text sent to lexical retrieval.
    pub lexical_text: String,
    /// Size of the whole (filtered) result set.
    pub total: usize,
    pub hits: Vec<SearchHit<'a>>,
    pub facets: Option<Facets>,
}

/// A catalog ready to search.
pub struct SearchEngine {
    items: Vec<Item>,
    positions: HashMap<ItemId, usize>,
    lexical: LexicalIndex,
    vectors: Option<VectorIndex>,
    vocabulary: QueryVocabulary,
    /// Per item, its colour, size and gender lower-cased (indexed by `kind_slot`), for fast filtering.
    kind_values: Vec<[Option<String>; 3]>,
    /// Every item's analysed terms (for [`SearchConfig::all_terms_first`]) and the catalog's words (for
    /// spelling correction).
    catalog_words: CatalogWords,
    facets: FacetIndex,
    config: SearchConfig,
}

fn kind_slot(kind: AttributeKind) -> usize {
    match kind {
        AttributeKind::Colour => 0,
        AttributeKind::Size => 1,
        AttributeKind::Gender => 2,
    }
}

impl SearchEngine {
    /// Indexes `items`; `vectors`, when given, holds one embedding per item in the same order.
    pub fn build(items: Vec<Item>, vectors: Option<&[Vec<f32>]>, config: SearchConfig) -> Result<Self, SearchError> {
        let vectors = match vectors {
            Some(vectors) if vectors.len() != items.len() => {
                return Err(SearchError::VectorCount { items: items.len(), vectors: vectors.len() });
            }
            Some(vectors) => Some(VectorIndex::with_ann(vectors, config.ann)?),
            None => None,
        };
        let lexical = LexicalIndex::build(&items, config.boosts)?;
        let vocabulary = QueryVocabulary::from_items(&items);
        let positions = items.iter().enumerate().map(|(i, item)| (item.id.clone(), i)).collect();
        let kind_values = items
            .iter()
            .map(|item| {
                [AttributeKind::Colour, AttributeKind::Size, AttributeKind::Gender]
                    .map(|kind| item_attribute(item, kind))
            })
            .collect();
        let facets = FacetIndex::build(&items);
        let catalog_words = CatalogWords::build(&items, &lexical);
        Ok(Self { items, positions, lexical, vectors, vocabulary, kind_values, catalog_words, facets, config })
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// Changes settings that need no re-indexing (fusion, attribute mode, weights, candidate counts).
    pub fn set_config(&mut self, config: SearchConfig) {
        self.config = SearchConfig { boosts: self.config.boosts, ann: self.config.ann, ..config };
    }

    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some()
    }

    pub fn position_of(&self, id: &ItemId) -> Option<usize> {
        self.positions.get(id).copied()
    }

    fn kind_value(&self, position: usize, kind: AttributeKind) -> Option<&str> {
        self.kind_values[position][kind_slot(kind)].as_deref()
    }

    pub fn vocabulary(&self) -> &QueryVocabulary {
        &self.vocabulary
    }

    /// `query` with its misspelt words corrected against the catalog's own words, or `None` when no word
    /// needed it. A word no item holds, or a rare catalog word one edit from one a hundred times as common
    /// (of at least 4 letters, no digits, not a price or attribute word query understanding knows, not a last
    /// word still being typed that starts a catalog word), becomes the catalog word within the lexical index's
    /// fuzzy distance — fewer edits first, then the more common — that at least 0.1% of the items hold and for
    /// which some item holds every word of the query so read; a word with no such reading stays as typed (a
    /// brand the shop does not carry). Details: `catalog_words::CatalogWords::correct`. [`SearchEngine::search`]
    /// does this itself (see [`SearchRequest::correct_spelling`]); a caller that embeds the query should embed
    /// the corrected text, since a misspelt word's embedding is noise.
    pub fn correct_spelling(&self, query: &str) -> Option<String> {
        self.catalog_words.correct(&self.lexical, query, |word| is_price_word(word) || self.vocabulary.knows_word(word))
    }

    /// Runs one search: correct the spelling and understand the query, restrict the catalog by the filters,
    /// retrieve lexically and semantically, fuse the scores (hits holding every query term first), boost
    /// attribute matches, personalise, and order the requested page.
    pub fn search<'s>(&'s self, request: &SearchRequest<'_>) -> Result<SearchResponse<'s>, SearchError> {
        let mut warnings = Vec::new();
        let corrected_query = if request.correct_spelling { self.correct_spelling(request.query) } else { None };
        let query = corrected_query.as_deref().unwrap_or(request.query);
        let parsed = if request.understand {
            parse_query(query, &self.vocabulary)
        } else {
            ParsedQuery {
                text: query.to_string(),
                text_without_attributes: query.to_string(),
                ..ParsedQuery::default()
            }
        };
        let scope = self.scope(request, &parsed);
        let retrieved = self.retrieve(request, &scope, &mut warnings)?;
        let mut candidates = self.candidates(&scope, &retrieved);
        if retrieved.mode != SearchMode::Browse {
            self.fuse_scores(&scope, &retrieved, request.signals, &mut candidates);
        }
        if self.config.attribute_mode == AttributeMode::Boost && !parsed.attributes.is_empty() {
            self.boost_attributes(&parsed, &mut candidates);
        }
        if retrieved.semantic_used && retrieved.has_text {
            // After the fusion, whose normalisation saw every candidate: a candidate only the semantic list found
            // must be close enough to count as a match of the words. (Without words left, every query word was
            // understood as a filter, and every allowed item matches.)
            let threshold = self.config.semantic_min_similarity;
            candidates.retain(|_, score| score.lexical.is_some() || score.semantic.is_some_and(|s| s >= threshold));
            if candidates.is_empty() && retrieved.mode == SearchMode::SemanticFallback {
                warnings.retain(|w| w != SEMANTIC_FALLBACK_WARNING);
                warnings.push("no product matches the words, by spelling or by meaning".to_string());
            }
        }
        let mut ranked = self.personalise(request.profile, candidates);
        self.add_signals(request.signals, &mut ranked);
        self.order_page(request, &mut ranked);
        let facets = request.facets.then(|| self.facets.count(ranked.iter().map(|(p, _)| *p), self.config.facet_limit));
        let total = ranked.len();
        let hits = ranked
            .into_iter()
            .skip(request.offset)
            .take(request.limit)
            .map(|(position, score)| SearchHit { position, item: &self.items[position], score })
            .collect();
        let (mode, lexical_text) = (retrieved.mode, scope.lexical_text);
        Ok(SearchResponse { mode, warnings, corrected_query, parsed, lexical_text, total, hits, facets })
    }

    /// What a search may return: the request's filters with the query's price phrases, and (as filters) the
    /// attributes the query names; the text lexical retrieval searches.
    fn scope(&self, request: &SearchRequest<'_>, parsed: &ParsedQuery) -> Scope {
        let mut filters = request.filters.clone();
        filters.price_min = max_option(filters.price_min, parsed.price_min);
        filters.price_max = min_option(filters.price_max, parsed.price_max);
        let attribute_filter: Vec<(AttributeKind, Vec<String>)> = match self.config.attribute_mode {
            AttributeMode::Filter => group_by_kind(&parsed.attributes),
            AttributeMode::Boost => Vec::new(),
        };
        let lexical_text = match self.config.attribute_mode {
            AttributeMode::Filter => parsed.text_without_attributes.clone(),
            AttributeMode::Boost => parsed.text.clone(),
        };
        let restricted = !filters.is_empty() || request.predicate.is_some() || !attribute_filter.is_empty();
        let allowed: Option<Vec<bool>> = restricted.then(|| {
            self.items
                .iter()
                .enumerate()
                .map(|(position, item)| {
                    attribute_filter.iter().all(|(kind, values)| {
                        self.kind_value(position, *kind).is_some_and(|v| values.iter().any(|w| w == v))
                    }) && filters.accepts(item)
                        && request.predicate.is_none_or(|predicate| predicate(item))
                })
                .collect()
        });
        Scope { lexical_text, restricted, allowed }
    }

    /// Lexical and semantic retrieval within the scope, and the mode they make.
    fn retrieve<'r>(
        &'r self,
        request: &SearchRequest<'r>,
        scope: &Scope,
        warnings: &mut Vec<String>,
    ) -> Result<Retrieved<'r>, SearchError> {
        let config = &self.config;
        let vector_query = match (request.query_vector, &self.vectors) {
            (Some(query), Some(index)) => Some((query, index)),
            _ => None,
        };
        let want_lexical = request.retrieval != Retrieval::SemanticOnly;
        let want_semantic = request.retrieval != Retrieval::LexicalOnly;
        if want_semantic && vector_query.is_none() {
            warnings.push(if self.vectors.is_none() {
                "no item vectors (no embedding model): lexical retrieval only".to_string()
            } else {
                "no query vector: lexical retrieval only".to_string()
            });
        }
        let lexical_text = &scope.lexical_text;
        let text_is_empty = self.lexical.analyze(lexical_text).is_empty() && lexical_text.trim().is_empty();
        let lexical: Vec<(usize, f32)> = if want_lexical && !text_is_empty {
            let limit = if scope.restricted { self.items.len() } else { config.lexical_candidates };
            let mut hits = self.lexical.search(lexical_text, limit)?;
            hits.retain(|(position, _)| scope.is_allowed(*position));
            hits.truncate(config.lexical_candidates.max(1));
            hits
        } else {
            Vec::new()
        };
        let semantic: Vec<(usize, f32)> = match vector_query {
            Some((query, index)) if want_semantic => {
                index.search(query, config.semantic_candidates, scope.allowed.as_deref())?
            }
            _ => Vec::new(),
        };
        let (mode, lexical_used, semantic_used) = if !want_lexical {
            (SearchMode::SemanticOnly, false, true)
        } else if text_is_empty && semantic.is_empty() {
            (SearchMode::Browse, false, false)
        } else if lexical.is_empty() && !semantic.is_empty() {
            if !text_is_empty {
                warnings.push(SEMANTIC_FALLBACK_WARNING.to_string());
            }
            (SearchMode::SemanticFallback, false, true)
        } else if semantic.is_empty() {
            (SearchMode::LexicalOnly, true, false)
        } else {
            (SearchMode::Hybrid, true, true)
        };
        Ok(Retrieved { vector_query, lexical, semantic, mode, lexical_used, semantic_used, has_text: !text_is_empty })
    }

    /// Every candidate with its lexical and semantic score and rank (in browse mode, every allowed item).
    fn candidates(&self, scope: &Scope, retrieved: &Retrieved<'_>) -> HashMap<usize, ScoreBreakdown> {
        let mut candidates: HashMap<usize, ScoreBreakdown> = HashMap::new();
        if retrieved.mode == SearchMode::Browse {
            for position in (0..self.items.len()).filter(|p| scope.is_allowed(*p)) {
                candidates.insert(position, ScoreBreakdown { relevance: 1.0, ..Default::default() });
            }
        }
        if retrieved.lexical_used {
            for (rank, (position, score)) in retrieved.lexical.iter().enumerate() {
                let entry = candidates.entry(*position).or_default();
                entry.lexical = Some(*score);
                entry.lexical_rank = Some(rank + 1);
            }
        }
        if retrieved.semantic_used {
            for (rank, (position, score)) in retrieved.semantic.iter().enumerate() {
                let entry = candidates.entry(*position).or_default();
                entry.semantic = Some(*score);
                entry.semantic_rank = Some(rank + 1);
            }
        }
        // Lexical candidates outside the semantic top list still get their cosine, so weighted fusion can
        // order lexical ties by meaning (exact vectors make this one dot product per candidate).
        if let (SearchMode::Hybrid, Some((query, index))) = (retrieved.mode, retrieved.vector_query) {
            let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            for (position, score) in candidates.iter_mut() {
                if score.semantic.is_none() {
                    score.semantic = Some(dot(index.vector(*position), query) / norm);
                }
            }
        }
        candidates
    }

    /// Each candidate's relevance: the fusion of its lexical part (weighed by the share of the query's words it
    /// holds) and its semantic part; then, above every fused score, the hits holding every query term.
    fn fuse_scores(
        &self,
        scope: &Scope,
        retrieved: &Retrieved<'_>,
        signals: Option<&[f32]>,
        candidates: &mut HashMap<usize, ScoreBreakdown>,
    ) {
        let config = &self.config;
        let (lexical_used, semantic_used) = (retrieved.lexical_used, retrieved.semantic_used);
        let lexical_range = score_range(if lexical_used { &retrieved.lexical[..] } else { &[] });
        let semantic_range = if semantic_used {
            candidates
                .values()
                .filter_map(|s| s.semantic)
                .fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)))
        } else {
            (0.0, 0.0)
        };
        let terms = if lexical_used {
            self.catalog_words.known_terms(&self.lexical.analyze(&scope.lexical_text))
        } else {
            Vec::new()
        };
        for (position, score) in candidates.iter_mut() {
            if score.lexical.is_some() {
                score.words_held = Some(self.catalog_words.held_share(*position, &terms));
            }
            let lexical_factor = match score.words_held {
                Some(share) if config.lexical_coordination > 0.0 => share.powf(config.lexical_coordination),
                _ => 1.0,
            };
            score.relevance =
                fuse(config.fusion, score, lexical_range, semantic_range, lexical_used, semantic_used, lexical_factor);
        }
        if config.all_terms_first && lexical_used && !terms.is_empty() {
            // Above every fused score (at most 1 + 1e-3): the hits holding every query term the catalog has, by
            // BM25 and the shop's signal. A term it does not have is left out (a brand the shop does not carry;
            // a typo was corrected above when some item holds the corrected reading).
            let share = if signals.is_some() { config.equivalent_signal_weight.clamp(0.0, 1.0) } else { 0.0 };
            let signal =
                |position: usize| signals.and_then(|s| s.get(position)).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            for (position, _) in retrieved.lexical.iter().take(ALL_TERMS_CHECKED) {
                let described = !self.items[*position].category_path.is_empty();
                if self.catalog_words.holds_every(*position, &terms) && (described || !config.all_terms_needs_category)
                {
                    let score = candidates.get_mut(position).expect("lexical hits are candidates");
                    score.relevance =
                        2.0 + (1.0 - share) * normalised(score.lexical, lexical_range) + share * signal(*position);
                }
            }
        }
    }

    /// Multiplies a candidate's relevance by 1 + the attribute boost × the share of the query's attributes it
    /// matches.
    fn boost_attributes(&self, parsed: &ParsedQuery, candidates: &mut HashMap<usize, ScoreBreakdown>) {
        let wanted = group_by_kind(&parsed.attributes);
        for (position, score) in candidates.iter_mut() {
            let matched = wanted
                .iter()
                .filter(|(kind, values)| {
                    self.kind_value(*position, *kind).is_some_and(|v| values.iter().any(|w| w == v))
                })
                .count();
            score.relevance *= 1.0 + self.config.attribute_boost * matched as f32 / wanted.len() as f32;
        }
    }

    /// Relevance scaled so the best candidate has 1; with a shopper profile, the best `rerank_depth` by
    /// relevance get a personal term (they stay above the rest, whose relevance is no higher, and the cost is
    /// bounded on broad queries).
    fn personalise(
        &self,
        profile: Option<&ShopperProfile>,
        candidates: HashMap<usize, ScoreBreakdown>,
    ) -> Vec<(usize, ScoreBreakdown)> {
        let config = &self.config;
        let best = candidates.values().map(|s| s.relevance).fold(0.0f32, f32::max);
        let mut ranked: Vec<(usize, ScoreBreakdown)> = candidates.into_iter().collect();
        for (_, score) in ranked.iter_mut() {
            if best > 0.0 {
                score.relevance /= best;
            }
            score.total = score.relevance;
        }
        let Some(profile) = profile.filter(|p| !p.is_empty()) else { return ranked };
        let session_vectors: Vec<&[f32]> = match &self.vectors {
            Some(index) => profile
                .session_items
                .iter()
                .filter_map(|id| self.positions.get(id))
                .map(|position| index.vector(*position))
                .collect(),
            None => Vec::new(),
        };
        let by_relevance = |a: &(usize, ScoreBreakdown), b: &(usize, ScoreBreakdown)| {
            b.1.relevance.total_cmp(&a.1.relevance).then(a.0.cmp(&b.0))
        };
        if ranked.len() > config.rerank_depth {
            ranked.select_nth_unstable_by(config.rerank_depth, by_relevance);
        }
        for (position, score) in ranked.iter_mut().take(config.rerank_depth) {
            let mut personal = profile.personal_score(&self.items[*position]);
            if let (false, Some(index)) = (session_vectors.is_empty(), &self.vectors) {
                let own = index.vector(*position);
                let similarity = session_vectors.iter().map(|s| dot(own, s)).fold(f32::MIN, f32::max);
                personal += config.session_weight * similarity.max(0.0);
            }
            score.personal = personal;
            score.total = score.relevance + config.personal_weight * personal;
        }
        ranked
    }

    /// Adds the shop's signal, weighted, to every ranked hit's total.
    fn add_signals(&self, signals: Option<&[f32]>, ranked: &mut [(usize, ScoreBreakdown)]) {
        let Some(signals) = signals else { return };
        for (position, score) in ranked.iter_mut() {
            score.signal = signals.get(*position).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            score.total += self.config.signal_weight * score.signal;
        }
    }

    /// Orders the requested page by the request's sort (ties by total score, then position); only the page
    /// needs its order, the rest is cut off (a broad query has thousands).
    fn order_page(&self, request: &SearchRequest<'_>, ranked: &mut [(usize, ScoreBreakdown)]) {
        let price = |position: usize| self.items[position].price.as_ref().map(|p| p.as_major_f64());
        let order = |a: &(usize, ScoreBreakdown), b: &(usize, ScoreBreakdown)| {
            let by_relevance = b.1.total.total_cmp(&a.1.total).then(b.1.signal.total_cmp(&a.1.signal));
            let primary = match request.sort {
                SortOrder::Relevance => by_relevance,
                SortOrder::PriceAscending => compare_prices(price(a.0), price(b.0)).then(by_relevance),
                SortOrder::PriceDescending => compare_prices(price(b.0), price(a.0))
                    .then_with(|| price(a.0).is_none().cmp(&price(b.0).is_none()))
                    .then(by_relevance),
                SortOrder::Newest => self.items[b.0].created_at.cmp(&self.items[a.0].created_at).then(by_relevance),
            };
            primary.then(a.0.cmp(&b.0))
        };
        let page_end = request.offset.saturating_add(request.limit);
        if ranked.len() > page_end {
            ranked.select_nth_unstable_by(page_end, order);
            ranked[..page_end].sort_by(order);
        } else {
            ranked.sort_by(order);
        }
    }
}

/// What a search may return and the text it searches lexically.
struct Scope {
    lexical_text: String,
    /// Whether a filter, predicate or attribute restricts the catalog.
    restricted: bool,
    /// Per item, whether it passes (`None`: all do).
    allowed: Option<Vec<bool>>,
}

impl Scope {
    fn is_allowed(&self, position: usize) -> bool {
        self.allowed.as_ref().is_none_or(|a| a[position])
    }
}

/// What retrieval found, and which lists the mode uses.
struct Retrieved<'r> {
    vector_query: Option<(&'r [f32], &'r VectorIndex)>,
    lexical: Vec<(usize, f32)>,
    semantic: Vec<(usize, f32)>,
    mode: SearchMode,
    lexical_used: bool,
    semantic_used: bool,
    /// Whether the query has words left to match (not only understood filters).
    has_text: bool,
}

/// Prices ascending with unpriced items last.
fn compare_prices(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn group_by_kind(attributes: &[(AttributeKind, String)]) -> Vec<(AttributeKind, Vec<String>)> {
    let mut grouped: Vec<(AttributeKind, Vec<String>)> = Vec::new();
    for (kind, value) in attributes {
        match grouped.iter_mut().find(|(k, _)| k == kind) {
            Some((_, values)) => values.push(value.clone()),
            None => grouped.push((*kind, vec![value.clone()])),
        }
    }
    grouped
}

/// (min, max) of a list's scores.
fn score_range(list: &[(usize, f32)]) -> (f32, f32) {
    list.iter().fold((f32::MAX, f32::MIN), |(lo, hi), (_, s)| (lo.min(*s), hi.max(*s)))
}

/// `value` min-max normalised over its list's `(lo, hi)` range (1 when the list's scores are all equal, 0 when
/// the list does not hold the item).
fn normalised(value: Option<f32>, (lo, hi): (f32, f32)) -> f32 {
    match value {
        Some(v) if hi > lo => (v - lo) / (hi - lo),
        Some(_) => 1.0,
        None => 0.0,
    }
}

/// The warning of a search whose words match no product lexically.
const SEMANTIC_FALLBACK_WARNING: &str = "no lexical match passes the filters: showing semantic matches";

/// How many of the top lexical hits [`SearchConfig::all_terms_first`] checks for every query term.
const ALL_TERMS_CHECKED: usize = 1000;

/// A candidate's relevance from its lexical and semantic scores; in weighted fusion its lexical part is
/// scaled by `lexical_factor` ([`SearchConfig::lexical_coordination`]).
fn fuse(
    fusion: Fusion,
    score: &ScoreBreakdown,
    lexical_range: (f32, f32),
    semantic_range: (f32, f32),
    lexical_used: bool,
    semantic_used: bool,
    lexical_factor: f32,
) -> f32 {
    match fusion {
        Fusion::Rrf { k, semantic } => {
            let part = |rank: Option<usize>| rank.map_or(0.0, |r| 1.0 / (k + r as f32));
            part(score.lexical_rank) + semantic * part(score.semantic_rank)
        }
        Fusion::Weighted { lexical } => {
            let (w_lexical, w_semantic) = match (lexical_used, semantic_used) {
                (true, true) => (lexical, 1.0 - lexical),
                (true, false) => (1.0, 0.0),
                _ => (0.0, 1.0),
            };
            // A small floor keeps items found by one list above nothing.
            w_lexical * lexical_factor * normalised(score.lexical, lexical_range)
                + w_semantic * normalised(score.semantic, semantic_range)
                + 1e-3 * f32::from(u8::from(score.lexical.is_some() || score.semantic.is_some()))
        }
    }
}
