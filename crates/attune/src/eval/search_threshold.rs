//! Calibrates [`SearchConfig::semantic_min_similarity`]: how close to the query a product that no lexical match
//! found must be to count as a match, for MiniLM's vectors as they are and for catalog-tuned vectors.
//!
//! Protocol (query- and product-disjoint): the settings are chosen on the validation products (ids ≡ 2 mod 4,
//! tuning fitted on ids ≡ 0 mod 4) with the even-numbered judged queries, and reported on the test products
//! (odd ids, tuning fitted on even ids) with the odd-numbered queries. For each query, the semantic-only hits are
//! the 200 nearest products that lexical retrieval (up to 1,000 hits) did not find; each is relevant or not by
//! the query's judgement. The threshold is the highest cut that still keeps [`RECALL_KEPT`] of the relevant
//! semantic-only hits on validation: it removes the neighbours that are almost never relevant (the nearest items
//! of a query that matches nothing) without costing the ranking what the semantic list finds. The test half
//! reports the precision, recall and F1 it gives there beside keeping every neighbour and beside the F1-best cut
//! (tried first: it kept 48 % and 22 % of the relevant hits on the test half and cost the hybrid up to 0.033
//! NDCG@10, so it is reported, not used).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use attune_search::{Retrieval, SearchConfig, SearchEngine, SearchRequest};

use super::search::{JudgedQuery, TunedHalf, queries_in_half};
use super::table;

/// The share of relevant semantic-only hits the chosen threshold keeps on validation.
const RECALL_KEPT: f64 = 0.95;
/// Nearest products examined per query, as the engine's default semantic candidates.
const SEMANTIC_HITS: usize = 200;
/// Lexical hits a product must be outside of to be semantic-only.
const LEXICAL_HITS: usize = 1000;

/// (cosine, relevant) of every semantic-only hit of a set of queries.
type Labelled = Vec<(f32, bool)>;

/// Precision, recall and F1 of keeping the hits at or above `threshold`.
fn quality(hits: &Labelled, threshold: f32) -> (f64, f64, f64) {
    let relevant = hits.iter().filter(|(_, r)| *r).count() as f64;
    let kept: Vec<&(f32, bool)> = hits.iter().filter(|(s, _)| *s >= threshold).collect();
    let kept_relevant = kept.iter().filter(|(_, r)| *r).count() as f64;
    let precision = if kept.is_empty() { 0.0 } else { kept_relevant / kept.len() as f64 };
    let recall = if relevant > 0.0 { kept_relevant / relevant } else { 0.0 };
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    (precision, recall, f1)
}

/// The F1-best threshold on a 0.01 grid (the lowest of equal ones).
fn best_threshold(hits: &Labelled) -> f32 {
    let grid = (0..=100).map(|i| i as f32 / 100.0);
    grid.fold((f32::MIN, -1.0), |(best, best_f1), t| {
        let f1 = quality(hits, t).2;
        if f1 > best_f1 + 1e-12 { (t, f1) } else { (best, best_f1) }
    })
    .0
}

/// The highest threshold on a 0.01 grid that keeps at least `recall` of the relevant hits.
fn threshold_keeping(hits: &Labelled, recall: f64) -> f32 {
    (0..=100).map(|i| i as f32 / 100.0).filter(|t| quality(hits, *t).1 >= recall).fold(f32::MIN, f32::max)
}

/// The semantic-only hits of `queries` on one engine (threshold off), labelled.
fn semantic_only_hits(
    engine: &SearchEngine,
    queries: &[JudgedQuery],
    vectors: &[Vec<f32>],
) -> anyhow::Result<Labelled> {
    let mut labelled = Vec::new();
    for (query, vector) in queries.iter().zip(vectors) {
        let mut request = SearchRequest::new(&query.text);
        request.query_vector = Some(vector);
        request.facets = false;
        request.retrieval = Retrieval::LexicalOnly;
        request.limit = LEXICAL_HITS;
        let lexical: HashSet<usize> = engine.search(&request)?.hits.iter().map(|h| h.position).collect();
        request.retrieval = Retrieval::SemanticOnly;
        request.limit = SEMANTIC_HITS;
        for hit in engine.search(&request)?.hits {
            if let (false, Some(similarity)) = (lexical.contains(&hit.position), hit.score.semantic) {
                labelled.push((similarity, query.relevant.contains(&hit.position)));
            }
        }
    }
    Ok(labelled)
}

/// One half's queries (even or odd positions among the judged queries) with a relevant product in the half's
/// products, judged there.
fn half_queries(
    queries: &[JudgedQuery],
    vectors: &[Vec<f32>],
    positions: &HashMap<usize, usize>,
    odd: bool,
) -> (Vec<JudgedQuery>, Vec<Vec<f32>>) {
    let (picked, picked_vectors): (Vec<JudgedQuery>, Vec<Vec<f32>>) = queries
        .iter()
        .zip(vectors)
        .enumerate()
        .filter(|(i, _)| (i % 2 == 1) == odd)
        .map(|(_, (query, vector))| (query.clone(), vector.clone()))
        .unzip();
    queries_in_half(&picked, &picked_vectors, positions)
}

/// The labelled semantic-only hits of one half, for untuned and tuned vectors.
fn half_hits(
    half: &TunedHalf,
    queries: &[JudgedQuery],
    vectors: &[Vec<f32>],
    odd: bool,
) -> anyhow::Result<(usize, Labelled, Labelled)> {
    let (queries, vectors) = half_queries(queries, vectors, &half.positions, odd);
    let off = |config: SearchConfig| SearchConfig { semantic_min_similarity: f32::MIN, ..config };
    let untuned = SearchEngine::build(half.items.clone(), Some(&half.title_vectors), off(SearchConfig::default()))?;
    let tuned = SearchEngine::build(
        half.items.clone(),
        Some(&half.tuned_vectors),
        off(SearchConfig::for_catalog_tuned_vectors()),
    )?;
    Ok((
        queries.len(),
        semantic_only_hits(&untuned, &queries, &vectors)?,
        semantic_only_hits(&tuned, &queries, &vectors)?,
    ))
}

/// Chooses both thresholds on the validation half and reports them on the test half; returns the report's
/// lines and the (untuned, tuned) thresholds.
pub fn calibrate(
    validation: &TunedHalf,
    test: &TunedHalf,
    queries: &[JudgedQuery],
    vectors: &[Vec<f32>],
) -> anyhow::Result<(String, f32, f32)> {
    let (validation_queries, untuned_validation, tuned_validation) = half_hits(validation, queries, vectors, false)?;
    let (test_queries, untuned_test, tuned_test) = half_hits(test, queries, vectors, true)?;
    let untuned = threshold_keeping(&untuned_validation, RECALL_KEPT);
    let tuned = threshold_keeping(&tuned_validation, RECALL_KEPT);
    let f1_best = [best_threshold(&untuned_validation), best_threshold(&tuned_validation)];
    let mut rows = Vec::new();
    for (i, (name, threshold, hits)) in
        [("untuned", untuned, &untuned_test), ("catalog-tuned", tuned, &tuned_test)].into_iter().enumerate()
    {
        let cuts = [
            (f32::MIN, "keep every neighbour".to_string()),
            (threshold, format!(">= {threshold:.2} (chosen)")),
            (f1_best[i], format!(">= {:.2} (F1-best, not used)", f1_best[i])),
        ];
        for (cut, label) in cuts {
            let (precision, recall, f1) = quality(hits, cut);
            let kept = hits.iter().filter(|(s, _)| *s >= cut).count();
            rows.push(vec![
                name.to_string(),
                label,
                format!("{kept} of {}", hits.len()),
                format!("{precision:.3}"),
                format!("{recall:.3}"),
                format!("{f1:.3}"),
            ]);
        }
    }
    let mut out = String::new();
    writeln!(
        out,
        "Semantic-only threshold: chosen on {validation_queries} validation queries x validation products (the highest cut \
         keeping {:.0} % of the relevant semantic-only hits), reported on {test_queries} other queries x the test products",
        100.0 * RECALL_KEPT
    )?;
    writeln!(out, "  chosen: untuned {untuned:.2}, catalog-tuned {tuned:.2}")?;
    out.push_str(&table(&["vectors", "semantic-only hits", "kept", "precision", "recall", "F1"], &rows));
    Ok((out, untuned, tuned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_threshold_keeps_the_asked_share_of_relevant_hits() {
        let hits: Labelled = (0..20).map(|i| (i as f32 / 20.0, i >= 5)).collect();
        let threshold = threshold_keeping(&hits, 0.95);
        assert!(quality(&hits, threshold).1 >= 0.95 && quality(&hits, threshold + 0.06).1 < 0.95, "{threshold}");
    }

    #[test]
    fn the_threshold_separates_relevant_from_irrelevant_neighbours() {
        let hits: Labelled = vec![(0.9, true), (0.8, true), (0.7, true), (0.6, false), (0.5, false), (0.65, true)];
        let threshold = best_threshold(&hits);
        assert!((0.61..=0.65).contains(&threshold), "{threshold}");
        assert_eq!(quality(&hits, threshold), (1.0, 1.0, 1.0));
        let (precision, recall, _) = quality(&hits, f32::MIN);
        assert!((precision - 4.0 / 6.0).abs() < 1e-9 && recall == 1.0);
    }
}
