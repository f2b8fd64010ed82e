//! Content-based similarity for cold start: items nobody has interacted with yet (a new product) and
//! shoppers with too little history for collaborative models get neighbours from what the items ARE —
//! title words, brand, category path and attribute values — instead of from who bought them.
//!
//! Each item is a sparse TF-IDF vector over prefixed features (`t:` title word, `b:` brand, `c:` category
//! level, `a:` attribute key=value), each feature weighted by its field ([`ContentFields`]) and by
//! ln(N / document frequency), then L2-normalised, so the score of two items is a cosine in [0, 1]. An
//! inverted index (feature → items) makes one query cost the postings of the query item's features only;
//! features carried by more than [`ContentConfig::max_document_share`] of the catalog (e.g. a gender that half
//! the catalog has) carry almost no information and are skipped at query time — in catalogs large enough for
//! that to matter (a feature on at most [`ALWAYS_USED_POSTINGS`] items is always used).
//!
//! When the caller also has one sentence embedding per item (all-MiniLM-L6-v2 of the title, from
//! `attune-text`), the best TF-IDF candidates are re-scored by `(1 − β)·tfidf + β·cosine(embedding)`.
//! Every match names the strongest shared features, so an explanation can say "same brand and category".

use std::collections::HashMap;

use crate::error::{RecsError, invalid};
use crate::recommender::keep_best;

/// Field weights of the features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentFields {
    pub title_word: f32,
    pub brand: f32,
    /// Weight of the deepest category level; each level above weighs half of the one below.
    pub category: f32,
    pub attribute: f32,
}

impl Default for ContentFields {
    fn default() -> Self {
        Self { title_word: 1.0, brand: 1.5, category: 2.0, attribute: 0.75 }
    }
}

/// Index settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentConfig {
    pub fields: ContentFields,
    /// Features on more than this share of the items are ignored when querying.
    pub max_document_share: f32,
    /// Weight β of the embedding cosine when embeddings are given.
    pub embedding_weight: f32,
    /// TF-IDF candidates re-scored with embeddings.
    pub rescore_depth: usize,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self { fields: ContentFields::default(), max_document_share: 0.3, embedding_weight: 0.5, rescore_depth: 200 }
    }
}

/// What the index needs to know about one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemContent {
    pub title: String,
    pub brand: Option<String>,
    /// Category path, top level first.
    pub category: Vec<String>,
    /// Attribute (key, value) pairs, e.g. ("colour", "navy").
    pub attributes: Vec<(String, String)>,
}

/// One content neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentMatch {
    pub item: u32,
    pub score: f32,
    /// The shared features that contributed most, strongest first (e.g. `b:puma`, `c:shoes`), at most 3.
    pub shared: Vec<String>,
}

/// Content vectors of a catalog, ready to query.
#[derive(Debug, Clone)]
pub struct ContentIndex {
    config: ContentConfig,
    features: Vec<String>,
    /// Per item, its (feature, weight) pairs, sorted by feature.
    vectors: Vec<Vec<(u32, f32)>>,
    /// Per feature, the (item, weight) pairs that carry it.
    postings: Vec<Vec<(u32, f32)>>,
    /// Row-major unit embeddings (one per item) when given.
    embeddings: Option<(usize, Vec<f32>)>,
}

/// A feature carried by at most this many items is never skipped, whatever its share of a small catalog.
pub const ALWAYS_USED_POSTINGS: usize = 64;

const STOP_WORDS: &[&str] = &["and", "for", "the", "with", "of", "in", "on", "to", "a", "an", "set", "pack", "by"];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit()))
}

/// The item's (feature, field weight) pairs; repeated features add up.
fn raw_features(content: &ItemContent, fields: &ContentFields) -> HashMap<String, f32> {
    let mut out: HashMap<String, f32> = HashMap::new();
    for word in words(&content.title) {
        *out.entry(format!("t:{word}")).or_default() += fields.title_word;
    }
    if let Some(brand) = content.brand.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        *out.entry(format!("b:{}", brand.to_lowercase())).or_default() += fields.brand;
    }
    let depth = content.category.len();
    for (level, name) in content.category.iter().enumerate() {
        // The full path prefix, so "Men > Shoes" and "Women > Shoes" differ.
        let path = content.category[..=level].iter().map(|s| s.trim().to_lowercase()).collect::<Vec<_>>().join(">");
        let weight = fields.category * 0.5f32.powi((depth - 1 - level) as i32);
        if !name.trim().is_empty() {
            *out.entry(format!("c:{path}")).or_default() += weight;
        }
    }
    for (key, value) in &content.attributes {
        let (key, value) = (key.trim().to_lowercase(), value.trim().to_lowercase());
        if !key.is_empty() && !value.is_empty() {
            *out.entry(format!("a:{key}={value}")).or_default() += fields.attribute;
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl ContentIndex {
    /// Indexes `items` (position = dense item index). `embeddings`, when given, holds one vector per item.
    pub fn build(
        items: &[ItemContent],
        embeddings: Option<&[Vec<f32>]>,
        config: ContentConfig,
    ) -> Result<Self, RecsError> {
        if !(0.0..=1.0).contains(&config.embedding_weight) {
            return Err(invalid("embedding_weight", "must be within [0, 1]"));
        }
        if !(config.max_document_share > 0.0 && config.max_document_share <= 1.0) {
            return Err(invalid("max_document_share", "must be within (0, 1]"));
        }
        let raw: Vec<HashMap<String, f32>> = items.iter().map(|c| raw_features(c, &config.fields)).collect();
        let mut feature_ids: HashMap<String, u32> = HashMap::new();
        let mut features = Vec::new();
        let mut document_frequency: Vec<u32> = Vec::new();
        // Assign feature ids in sorted order per item, so ids do not depend on hash-map iteration order.
        let mut sorted_raw: Vec<Vec<(String, f32)>> = Vec::with_capacity(raw.len());
        for map in raw {
            let mut pairs: Vec<(String, f32)> = map.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            for (feature, _) in &pairs {
                let id = *feature_ids.entry(feature.clone()).or_insert_with(|| {
                    features.push(feature.clone());
                    document_frequency.push(0);
                    (features.len() - 1) as u32
                });
                document_frequency[id as usize] += 1;
            }
            sorted_raw.push(pairs);
        }
        let n = items.len().max(1) as f32;
        let mut vectors = Vec::with_capacity(sorted_raw.len());
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); features.len()];
        for (item, pairs) in sorted_raw.into_iter().enumerate() {
            let mut vector: Vec<(u32, f32)> = pairs
                .into_iter()
                .map(|(feature, weight)| {
                    let id = feature_ids[&feature];
                    let idf = (n / document_frequency[id as usize] as f32).ln().max(0.0) + 0.01;
                    (id, weight * idf)
                })
                .collect();
            let norm = vector.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|(_, w)| *w /= norm);
            }
            vector.sort_by_key(|(id, _)| *id);
            for &(id, weight) in &vector {
                postings[id as usize].push((item as u32, weight));
            }
            vectors.push(vector);
        }
        let embeddings = match embeddings {
            None => None,
            Some(given) if given.len() != items.len() => {
                return Err(RecsError::DimensionMismatch(format!(
                    "{} embeddings for {} items",
                    given.len(),
                    items.len()
                )));
            }
            Some(given) => {
                let dimension = given.first().map_or(0, Vec::len);
                let mut flat = Vec::with_capacity(dimension * given.len());
                for vector in given {
                    if vector.len() != dimension {
                        return Err(RecsError::DimensionMismatch(format!(
                            "embedding of length {} among length {dimension}",
                            vector.len()
                        )));
                    }
                    let norm = dot(vector, vector).sqrt();
                    flat.extend(vector.iter().map(|v| if norm > 0.0 { v / norm } else { 0.0 }));
                }
                Some((dimension, flat))
            }
        };
        Ok(Self { config, features, vectors, postings, embeddings })
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The items most similar to the weighted `sources` (item, weight), best first, ties by index; sources
    /// and `exclude` are never returned. Each match names the features it shares with the sources.
    pub fn similar_to(
        &self,
        sources: &[(u32, f32)],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<ContentMatch>, RecsError> {
        Ok(self
            .ranked_similar_to(sources, k, exclude)?
            .into_iter()
            .map(|(item, score)| ContentMatch { item, score, shared: self.shared_features(sources, item) })
            .collect())
    }

    /// Features shared by documents on more than this many items are skipped.
    fn max_postings(&self) -> usize {
        ((self.config.max_document_share * self.len() as f32) as usize).max(ALWAYS_USED_POSTINGS)
    }

    /// [`Self::similar_to`] without naming the shared features: `(item, score)`, best first. Naming them
    /// costs more than ranking, so a caller that shows only a few matches names those with
    /// [`Self::shared_features`].
    pub fn ranked_similar_to(
        &self,
        sources: &[(u32, f32)],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, RecsError> {
        for &(item, _) in sources {
            if item as usize >= self.len() {
                return Err(RecsError::OutOfRange { what: "item", index: item as usize, size: self.len() });
            }
        }
        let max_postings = self.max_postings();
        let used = |feature: u32| self.postings[feature as usize].len() <= max_postings;
        // Dense accumulation: one slot per item, plus the list of items reached.
        let mut scores = vec![0f32; self.len()];
        let mut reached = vec![false; self.len()];
        let mut touched: Vec<u32> = Vec::new();
        for &(source, source_weight) in sources {
            for &(feature, weight) in &self.vectors[source as usize] {
                if !used(feature) {
                    continue;
                }
                for &(item, other) in &self.postings[feature as usize] {
                    if !reached[item as usize] {
                        reached[item as usize] = true;
                        touched.push(item);
                    }
                    scores[item as usize] += source_weight * weight * other;
                }
            }
        }
        for &(source, _) in sources {
            scores[source as usize] = 0.0;
        }
        for &item in exclude {
            if let Some(score) = scores.get_mut(item as usize) {
                *score = 0.0;
            }
        }
        let mut ranked: Vec<(u32, f32)> =
            touched.into_iter().map(|i| (i, scores[i as usize])).filter(|(_, s)| *s > 0.0).collect();
        let total_weight: f32 = sources.iter().map(|(_, w)| w.abs()).sum::<f32>().max(f32::MIN_POSITIVE);
        if let Some((dimension, flat)) = &self.embeddings
            && *dimension > 0
        {
            keep_best(&mut ranked, self.config.rescore_depth.max(k));
            let beta = self.config.embedding_weight;
            let row = |i: u32| &flat[i as usize * dimension..(i as usize + 1) * dimension];
            for (item, score) in ranked.iter_mut() {
                let semantic: f32 =
                    sources.iter().map(|&(s, w)| w * dot(row(s), row(*item))).sum::<f32>() / total_weight;
                *score = (1.0 - beta) * (*score / total_weight) + beta * semantic.max(0.0);
            }
        } else {
            ranked.iter_mut().for_each(|(_, s)| *s /= total_weight);
        }
        keep_best(&mut ranked, k);
        Ok(ranked)
    }

    /// The (at most 3) used features that contribute most to `item`'s score against `sources`, strongest
    /// first (empty for an index out of range).
    pub fn shared_features(&self, sources: &[(u32, f32)], item: u32) -> Vec<String> {
        let max_postings = self.max_postings();
        let used = |feature: u32| self.postings[feature as usize].len() <= max_postings;
        let Some(target) = self.vectors.get(item as usize) else { return Vec::new() };
        let mut shared: Vec<(u32, f32)> = Vec::new();
        for &(source, source_weight) in sources {
            // Both vectors are sorted by feature: merge them.
            let Some(source_vector) = self.vectors.get(source as usize) else { continue };
            let (mut a, mut b) = (source_vector.iter().peekable(), target.iter().peekable());
            while let (Some(&&(fa, wa)), Some(&&(fb, wb))) = (a.peek(), b.peek()) {
                match fa.cmp(&fb) {
                    std::cmp::Ordering::Less => {
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if used(fa) {
                            let contribution = source_weight * wa * wb;
                            match shared.iter_mut().find(|(f, _)| *f == fa) {
                                Some(slot) => slot.1 += contribution,
                                None => shared.push((fa, contribution)),
                            }
                        }
                        a.next();
                        b.next();
                    }
                }
            }
        }
        shared.retain(|(_, c)| *c > 0.0);
        shared.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        shared.into_iter().take(3).map(|(f, _)| self.features[f as usize].clone()).collect()
    }
}

/// A readable phrase for a feature name (`b:puma` → "brand puma"), for explanations.
pub fn describe_feature(feature: &str) -> String {
    match feature.split_once(':') {
        Some(("t", word)) => format!("\"{word}\" in the title"),
        Some(("b", brand)) => format!("brand {brand}"),
        Some(("c", path)) => format!("category {}", path.rsplit('>').next().unwrap_or(path)),
        Some(("a", pair)) => pair.replace('=', " "),
        _ => feature.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, brand: &str, category: &[&str], colour: &str) -> ItemContent {
        ItemContent {
            title: title.into(),
            brand: Some(brand.into()),
            category: category.iter().map(|s| s.to_string()).collect(),
            attributes: vec![("colour".into(), colour.into())],
        }
    }

    fn catalog() -> Vec<ItemContent> {
        vec![
            item("Puma Men Running Shoes", "Puma", &["Men", "Footwear", "Shoes"], "black"),
            item("Puma Men Sports Shoes", "Puma", &["Men", "Footwear", "Shoes"], "white"),
            item("Nike Men Running Shoes", "Nike", &["Men", "Footwear", "Shoes"], "black"),
            item("Nike Women Dri-Fit Tshirt", "Nike", &["Women", "Apparel", "Topwear"], "pink"),
            item("Lotto Women Tshirt", "Lotto", &["Women", "Apparel", "Topwear"], "pink"),
            item("Titan Men Watch", "Titan", &["Men", "Accessories", "Watches"], "black"),
            item("Fastrack Women Watch", "Fastrack", &["Women", "Accessories", "Watches"], "silver"),
        ]
    }

    #[test]
    fn new_item_neighbours_share_brand_category_and_words() {
        let index = ContentIndex::build(&catalog(), None, ContentConfig::default()).unwrap();
        let hits = index.similar_to(&[(0, 1.0)], 3, &[]).unwrap();
        let order: Vec<u32> = hits.iter().map(|h| h.item).collect();
        // Same brand, category and "running" beat same category alone; a watch never comes close.
        assert_eq!(order[..2], [1, 2], "{hits:?}");
        assert!(!order.contains(&0), "the source itself is never returned");
        assert!(hits[0].score > 0.0 && hits[0].score <= 1.0 + 1e-5);
        assert!(!hits[0].shared.is_empty());
        let tees = index.similar_to(&[(3, 1.0)], 1, &[]).unwrap();
        assert_eq!(tees[0].item, 4, "{tees:?}");
        assert!(tees[0].shared.iter().any(|f| f.starts_with("c:women>apparel")), "{tees:?}");
    }

    #[test]
    fn exclusions_and_ranges_are_respected() {
        let index = ContentIndex::build(&catalog(), None, ContentConfig::default()).unwrap();
        let hits = index.similar_to(&[(0, 1.0)], 5, &[1]).unwrap();
        assert!(hits.iter().all(|h| h.item != 1 && h.item != 0));
        assert!(index.similar_to(&[(99, 1.0)], 5, &[]).is_err());
    }

    #[test]
    fn embeddings_reorder_candidates_and_build_is_deterministic() {
        let items = catalog();
        // Item 2's embedding is identical to item 0's, item 1's orthogonal: with β = 1 item 2 must lead.
        let mut vectors: Vec<Vec<f32>> = (0..items.len()).map(|i| vec![0.0, 0.0, 1.0 + i as f32]).collect();
        vectors[0] = vec![1.0, 0.0, 0.0];
        vectors[1] = vec![0.0, 1.0, 0.0];
        vectors[2] = vec![1.0, 0.0, 0.0];
        let config = ContentConfig { embedding_weight: 1.0, ..ContentConfig::default() };
        let index = ContentIndex::build(&items, Some(&vectors), config).unwrap();
        let hits = index.similar_to(&[(0, 1.0)], 2, &[]).unwrap();
        assert_eq!(hits[0].item, 2, "{hits:?}");
        let again = ContentIndex::build(&items, Some(&vectors), config).unwrap();
        assert_eq!(hits, again.similar_to(&[(0, 1.0)], 2, &[]).unwrap());
        assert!(ContentIndex::build(&items, Some(&vectors[..3]), config).is_err());
    }

    #[test]
    fn features_read_as_phrases() {
        assert_eq!(describe_feature("b:puma"), "brand puma");
        assert_eq!(describe_feature("c:men>footwear>shoes"), "category shoes");
        assert_eq!(describe_feature("a:colour=black"), "colour black");
    }
}
