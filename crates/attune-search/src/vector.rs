//! Semantic retrieval: nearest item vectors to a query vector by cosine similarity.
//!
//! Vectors are computed by the caller (e.g. all-MiniLM-L6-v2 from `attune-text`) and L2-normalised here, so
//! cosine is a dot product. [`VectorIndex`] keeps the vectors in one contiguous row-major matrix for exact
//! scans and, for large catalogs ([`AnnConfig::min_items`]), an approximate nearest-neighbour graph (HNSW,
//! the `instant-distance` crate, built with a fixed seed so the same vectors give the same graph).
//!
//! A query uses the graph when it exists and enough of the catalog is allowed by the filters: the graph
//! returns `ef_search` near neighbours, the disallowed ones are dropped and the rest are scored exactly. When
//! the filters allow only a small share of the catalog (or the graph's neighbours were mostly filtered out)
//! the allowed rows are scanned exactly instead — that scan is cheap precisely because few rows are allowed.
//! `attune bench search` reports the graph's recall@k against the exact scan and both latencies.

use std::sync::Arc;

use crate::error::SearchError;

/// When and how the approximate (HNSW) graph is built and used.
///
/// The default builds the graph from 100,000 items: on the 44k fashion catalog the exact scan takes 3.7 ms
/// (p50) against the graph's 2.1 ms, and exact neighbours score better in `attune eval search` (title-only
/// semantic NDCG@10 0.7623 exact, 0.7425 through the graph), so below that size exactness wins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnConfig {
    /// The graph is built only for at least this many vectors; smaller catalogs are always scanned exactly.
    pub min_items: usize,
    /// Neighbours the graph returns per query (HNSW `ef` at search time).
    pub ef_search: usize,
    /// Candidate list size while building (HNSW `efConstruction`).
    pub ef_construction: usize,
    /// The graph is used only when at least this share of the items passes the filters.
    pub min_allowed_share: f32,
    /// Seed of the layer assignment, so a build is reproducible.
    pub seed: u64,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self { min_items: 100_000, ef_search: 400, ef_construction: 100, min_allowed_share: 0.25, seed: 7 }
    }
}

impl AnnConfig {
    /// Never build a graph: every query is an exact scan.
    pub fn exact_only() -> Self {
        Self { min_items: usize::MAX, ..Self::default() }
    }
}

/// A unit vector as an HNSW point; distance is 1 − cosine.
#[derive(Clone)]
struct UnitVector(Box<[f32]>);

impl instant_distance::Point for UnitVector {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

/// The HNSW graph; values are item positions.
struct AnnGraph {
    map: instant_distance::HnswMap<UnitVector, u32>,
    config: AnnConfig,
}

/// Cosine search over row-major, L2-normalised vectors: exact scans, plus an HNSW graph for large catalogs.
#[derive(Clone)]
pub struct VectorIndex {
    dimension: usize,
    data: Vec<f32>,
    graph: Option<Arc<AnnGraph>>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dimension", &self.dimension)
            .field("len", &self.len())
            .field("graph", &self.graph.as_ref().map(|graph| graph.config))
            .finish()
    }
}

fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product in eight independent lanes so the compiler vectorises it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl VectorIndex {
    /// Builds an exact index from one vector per item (any length > 0, all the same).
    pub fn new(vectors: &[Vec<f32>]) -> Result<Self, SearchError> {
        Self::with_ann(vectors, AnnConfig::exact_only())
    }

    /// Builds the index and, when there are at least `ann.min_items` vectors, its HNSW graph.
    pub fn with_ann(vectors: &[Vec<f32>], ann: AnnConfig) -> Result<Self, SearchError> {
        let mut index = Self::exact(vectors)?;
        if index.len() >= ann.min_items && index.dimension > 0 {
            let points: Vec<UnitVector> = (0..index.len()).map(|p| UnitVector(index.vector(p).into())).collect();
            let values: Vec<u32> = (0..index.len() as u32).collect();
            let map = instant_distance::Builder::default()
                .ef_search(ann.ef_search.max(1))
                .ef_construction(ann.ef_construction.max(1))
                .seed(ann.seed)
                .build(points, values);
            index.graph = Some(Arc::new(AnnGraph { map, config: ann }));
        }
        Ok(index)
    }

    /// Whether queries can use an HNSW graph.
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    fn exact(vectors: &[Vec<f32>]) -> Result<Self, SearchError> {
        let dimension = vectors.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(dimension * vectors.len());
        for vector in vectors {
            if vector.len() != dimension {
                return Err(SearchError::VectorDimension { expected: dimension, got: vector.len() });
            }
            let start = data.len();
            data.extend_from_slice(vector);
            normalise(&mut data[start..]);
        }
        Ok(Self { dimension, data, graph: None })
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dimension).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (normalised) vector of item `position`.
    pub fn vector(&self, position: usize) -> &[f32] {
        &self.data[position * self.dimension..(position + 1) * self.dimension]
    }

    /// The `k` items most similar to `query` among those `allowed` (all when `None`), as (position, cosine),
    /// best first, ties by position. Uses the HNSW graph when there is one and enough items are allowed
    /// (approximate: a true neighbour can be missed), else scans exactly.
    pub fn search(&self, query: &[f32], k: usize, allowed: Option<&[bool]>) -> Result<Vec<(usize, f32)>, SearchError> {
        if query.len() != self.dimension {
            return Err(SearchError::VectorDimension { expected: self.dimension, got: query.len() });
        }
        let mut query = query.to_vec();
        normalise(&mut query);
        if let Some(graph) = &self.graph {
            let allowed_count = allowed.map_or(self.len(), |allowed| allowed.iter().filter(|a| **a).count());
            if allowed_count as f32 >= graph.config.min_allowed_share * self.len() as f32 {
                let mut state = instant_distance::Search::default();
                let point = UnitVector(query.clone().into_boxed_slice());
                let mut hits: Vec<(usize, f32)> = graph
                    .map
                    .search(&point, &mut state)
                    .map(|item| *item.value as usize)
                    .filter(|position| allowed.is_none_or(|allowed| allowed[*position]))
                    .map(|position| (position, dot(self.vector(position), &query)))
                    .collect();
                if hits.len() >= k.min(allowed_count) {
                    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    hits.truncate(k);
                    return Ok(hits);
                }
            }
        }
        Ok(self.scan(&query, k, allowed))
    }

    /// The exact top `k` among the allowed rows for a normalised query.
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&[bool]>,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        if query.len() != self.dimension {
            return Err(SearchError::VectorDimension { expected: self.dimension, got: query.len() });
        }
        let mut query = query.to_vec();
        normalise(&mut query);
        Ok(self.scan(&query, k, allowed))
    }

    fn scan(&self, query: &[f32], k: usize, allowed: Option<&[bool]>) -> Vec<(usize, f32)> {
        let mut scored: Vec<(usize, f32)> = self
            .data
            .chunks_exact(self.dimension.max(1))
            .enumerate()
            .filter(|(position, _)| allowed.is_none_or(|allowed| allowed[*position]))
            .map(|(position, row)| (position, dot(row, query)))
            .collect();
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k && k > 0 {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.truncate(k);
        scored.sort_by(order);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_and_respects_allowed() {
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.7, 0.7], vec![-1.0, 0.0]];
        let index = VectorIndex::new(&vectors).unwrap();
        let hits = index.search(&[1.0, 0.1], 2, None).unwrap();
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![0, 2]);
        let allowed = [false, true, true, true];
        let hits = index.search(&[1.0, 0.1], 2, Some(&allowed)).unwrap();
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![2, 1]);
        assert!(index.search(&[1.0], 2, None).is_err());
    }

    /// Deterministic pseudo-random unit-ish vectors in clusters.
    fn clustered_vectors(count: usize, dimension: usize) -> Vec<Vec<f32>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..dimension).map(|_| next()).collect()).collect();
        (0..count).map(|i| centres[i % centres.len()].iter().map(|c| c + 0.3 * next()).collect()).collect()
    }

    #[test]
    fn graph_finds_nearly_all_exact_neighbours_and_is_reproducible() {
        let vectors = clustered_vectors(1_500, 16);
        let ann = AnnConfig { min_items: 1_000, ef_search: 64, ef_construction: 40, ..AnnConfig::default() };
        let index = VectorIndex::with_ann(&vectors, ann).unwrap();
        let again = VectorIndex::with_ann(&vectors, ann).unwrap();
        assert!(index.has_graph());
        let mut found = 0;
        let mut total = 0;
        for query in vectors.iter().step_by(37) {
            let approximate = index.search(query, 10, None).unwrap();
            assert_eq!(approximate, again.search(query, 10, None).unwrap(), "same seed, same answers");
            let exact = index.search_exact(query, 10, None).unwrap();
            total += exact.len();
            found += exact.iter().filter(|hit| approximate.iter().any(|a| a.0 == hit.0)).count();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn selective_filters_scan_exactly() {
        let vectors = clustered_vectors(1_200, 16);
        let ann = AnnConfig { min_items: 1_000, ef_construction: 40, ..AnnConfig::default() };
        let index = VectorIndex::with_ann(&vectors, ann).unwrap();
        // 1% of the items allowed: below min_allowed_share, so the answer is the exact one.
        let allowed: Vec<bool> = (0..vectors.len()).map(|i| i % 100 == 3).collect(); // 12 items
        let query = &vectors[5];
        let hits = index.search(query, 5, Some(&allowed)).unwrap();
        assert_eq!(hits, index.search_exact(query, 5, Some(&allowed)).unwrap());
        assert!(hits.iter().all(|(position, _)| allowed[*position]));
        assert_eq!(hits.len(), 5);
    }

    #[test]
    fn small_catalogs_have_no_graph() {
        let vectors = clustered_vectors(100, 8);
        assert!(!VectorIndex::with_ann(&vectors, AnnConfig::default()).unwrap().has_graph());
    }
}
