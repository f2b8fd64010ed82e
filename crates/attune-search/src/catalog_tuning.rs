//! Catalog tuning: a linear map, fitted on the shop's own catalog, that moves each product's vector toward the
//! vector of its structured description — gender, colour and category leaf, "women black heels", the words a
//! shopper types. MiniLM places a title near titles that read alike ("Catwalk Women Brown Sandals" near other
//! sandals); tuned, it lies near the queries that name what the catalog says the product is (this catalog files
//! it under flats).
//!
//! The map is a ridge regression onto the description's vector from the title's vector and a bag of the
//! catalog's common words (so a brand's or a style's word can say what kind of product it is), fitted in closed
//! form on the products that have a description and applied to every product. Same examples, same map: there
//! is no seed because nothing is random.

use std::collections::HashMap;

use attune_core::Item;
use faer::linalg::solvers::Solve as _;
use faer::{Mat, Side};

use crate::error::SearchError;
use crate::query::{AttributeKind, item_attribute};
use crate::text::words;
use crate::vector::normalise;

/// How the map is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuningConfig {
    /// Ridge penalty on the weights (the examples' features have unit scale).
    pub ridge: f64,
    /// A word joins the bag when at least this many examples hold it.
    pub min_word_examples: usize,
    /// At most this many words (those most examples hold).
    pub max_words: usize,
    /// Fewer described products than this fit no map.
    pub min_examples: usize,
    /// Fewer distinct descriptions than this fit no map: every product would be pulled toward one of a handful
    /// of points ("clothing"), and similarity would lose what the vectors knew.
    pub min_descriptions: usize,
}

impl Default for TuningConfig {
    fn default() -> Self {
        Self { ridge: 1.0, min_word_examples: 5, max_words: 3000, min_examples: 200, min_descriptions: 20 }
    }
}

/// A fitted [`CatalogTuning`] as plain parts (for storage; the caller chooses the format).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TuningParts {
    /// The vectors' dimension.
    pub dimension: usize,
    /// The bag's words, in the order of their weight rows.
    pub words: Vec<String>,
    /// Row-major `(dimension + words) × dimension`: the vector rows, then one row per word.
    pub weights: Vec<f32>,
    /// How many described products it was fitted on.
    pub examples: usize,
}

/// One described product: its vector and text as searched, and the vector of its description.
#[derive(Debug, Clone, Copy)]
pub struct TuningExample<'a> {
    pub vector: &'a [f32],
    pub text: &'a str,
    pub target: &'a [f32],
}

/// A fitted map from (product vector, product words) to the description space.
#[derive(Debug, Clone)]
pub struct CatalogTuning {
    dimension: usize,
    /// Word → its row in `weights` after the `dimension` vector rows.
    words: HashMap<String, usize>,
    /// Row-major `(dimension + words) × dimension`.
    weights: Vec<f32>,
    examples: usize,
}

/// The description a product is tuned toward: its gender and colour attributes and the last level of its
/// category path, lower-cased ("women black heels"); `None` without a category path.
pub fn description_text(item: &Item) -> Option<String> {
    let leaf = item.category_path.last().filter(|leaf| !leaf.trim().is_empty())?;
    let mut parts: Vec<String> = [AttributeKind::Gender, AttributeKind::Colour]
        .into_iter()
        .filter_map(|kind| item_attribute(item, kind))
        .collect();
    parts.push(leaf.trim().to_lowercase());
    Some(parts.join(" "))
}

impl CatalogTuning {
    /// Fits the map on `examples` (at least `config.min_examples`, all of one dimension).
    pub fn fit(examples: &[TuningExample<'_>], config: &TuningConfig) -> Result<Self, SearchError> {
        if examples.len() < config.min_examples.max(1) {
            return Err(SearchError::TuningExamples { got: examples.len(), needed: config.min_examples.max(1) });
        }
        let dimension = examples[0].vector.len();
        for example in examples {
            for got in [example.vector.len(), example.target.len()] {
                if got != dimension {
                    return Err(SearchError::VectorDimension { expected: dimension, got });
                }
            }
        }
        let mut distinct: Vec<Vec<u32>> =
            examples.iter().map(|e| e.target.iter().map(|x| x.to_bits()).collect()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < config.min_descriptions.max(1) {
            return Err(SearchError::TuningDescriptions {
                got: distinct.len(),
                needed: config.min_descriptions.max(1),
            });
        }
        let vocabulary = common_words(examples.iter().map(|e| e.text), config);
        let example_words: Vec<Vec<usize>> = examples.iter().map(|e| word_rows(&vocabulary, e.text)).collect();
        let features = dimension + vocabulary.len();
        let vectors = Mat::<f64>::from_fn(examples.len(), dimension, |i, j| f64::from(examples[i].vector[j]));
        let targets = Mat::<f64>::from_fn(examples.len(), dimension, |i, j| f64::from(examples[i].target[j]));
        let mut gram = Mat::<f64>::zeros(features, features);
        let mut cross = Mat::<f64>::zeros(features, dimension);
        gram.as_mut().submatrix_mut(0, 0, dimension, dimension).copy_from(vectors.transpose() * &vectors);
        cross.as_mut().submatrix_mut(0, 0, dimension, dimension).copy_from(vectors.transpose() * &targets);
        // The word features are sparse (a title has a handful): their blocks are summed example by example.
        for (i, rows) in example_words.iter().enumerate() {
            let Some(scale) = word_scale(rows.len()) else { continue };
            for &row in rows {
                let row = dimension + row;
                for j in 0..dimension {
                    let value = scale * vectors[(i, j)];
                    gram[(row, j)] += value;
                    gram[(j, row)] += value;
                    cross[(row, j)] += scale * targets[(i, j)];
                }
                for &other in rows {
                    gram[(row, dimension + other)] += scale * scale;
                }
            }
        }
        for k in 0..features {
            gram[(k, k)] += config.ridge;
        }
        let cholesky = gram.llt(Side::Lower).map_err(|_| SearchError::TuningNotPositive)?;
        let solution = cholesky.solve(&cross);
        let weights =
            (0..features).flat_map(|i| (0..dimension).map(move |j| (i, j))).map(|(i, j)| solution[(i, j)] as f32);
        Ok(Self { dimension, words: vocabulary, weights: weights.collect(), examples: examples.len() })
    }

    /// Fits the map on the items that have a description (`descriptions`, one per item, from
    /// [`description_text`]) whose vector `description_vector` knows: each such item with its vector in
    /// `vectors` and its title as the text, as [`Self::apply_to_items`] reads them.
    pub fn fit_to_descriptions<'a, V: AsRef<[f32]>>(
        items: &'a [Item],
        vectors: &'a [V],
        descriptions: &'a [Option<String>],
        description_vector: impl Fn(&str) -> Option<&'a [f32]>,
        config: &TuningConfig,
    ) -> Result<Self, SearchError> {
        if items.len() != vectors.len() {
            return Err(SearchError::VectorCount { items: items.len(), vectors: vectors.len() });
        }
        let examples: Vec<TuningExample<'a>> = items
            .iter()
            .zip(vectors)
            .zip(descriptions)
            .filter_map(|((item, vector), description)| {
                let target = description_vector(description.as_deref()?)?;
                Some(TuningExample { vector: vector.as_ref(), text: &item.title, target })
            })
            .collect();
        Self::fit(&examples, config)
    }

    /// The tuned, unit-length vector of a product with this vector and text.
    pub fn apply(&self, vector: &[f32], text: &str) -> Result<Vec<f32>, SearchError> {
        if vector.len() != self.dimension {
            return Err(SearchError::VectorDimension { expected: self.dimension, got: vector.len() });
        }
        let mut out = vec![0.0f32; self.dimension];
        for (i, x) in vector.iter().enumerate() {
            let row = &self.weights[i * self.dimension..(i + 1) * self.dimension];
            out.iter_mut().zip(row).for_each(|(o, w)| *o += x * w);
        }
        let rows = word_rows(&self.words, text);
        if let Some(scale) = word_scale(rows.len()) {
            for row in rows {
                let start = (self.dimension + row) * self.dimension;
                let row = &self.weights[start..start + self.dimension];
                out.iter_mut().zip(row).for_each(|(o, w)| *o += scale as f32 * w);
            }
        }
        normalise(&mut out);
        Ok(out)
    }

    /// The tuned vectors of `items`, each with its vector in `vectors` and its title as the text.
    pub fn apply_to_items<V: AsRef<[f32]>>(&self, items: &[Item], vectors: &[V]) -> Result<Vec<Vec<f32>>, SearchError> {
        if items.len() != vectors.len() {
            return Err(SearchError::VectorCount { items: items.len(), vectors: vectors.len() });
        }
        items.iter().zip(vectors).map(|(item, vector)| self.apply(vector.as_ref(), &item.title)).collect()
    }

    /// The map as plain parts, to be stored and read back with [`Self::from_parts`].
    pub fn to_parts(&self) -> TuningParts {
        let mut words = vec![String::new(); self.words.len()];
        for (word, row) in &self.words {
            words[*row] = word.clone();
        }
        TuningParts { dimension: self.dimension, words, weights: self.weights.clone(), examples: self.examples }
    }

    /// The map from parts that [`Self::to_parts`] gave; an error when they do not fit together (a weight count
    /// other than `(dimension + words) × dimension`, a repeated or empty word, a non-finite weight).
    pub fn from_parts(parts: TuningParts) -> Result<Self, SearchError> {
        let TuningParts { dimension, words, weights, examples } = parts;
        if dimension == 0 {
            return Err(SearchError::TuningParts("dimension 0".to_string()));
        }
        let expected = (dimension + words.len()).checked_mul(dimension);
        if expected != Some(weights.len()) {
            return Err(SearchError::TuningParts(format!(
                "{} weights for {} words of dimension {dimension}",
                weights.len(),
                words.len()
            )));
        }
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(SearchError::TuningParts("a non-finite weight".to_string()));
        }
        let mut rows = HashMap::with_capacity(words.len());
        for (row, word) in words.into_iter().enumerate() {
            if word.is_empty() || rows.insert(word, row).is_some() {
                return Err(SearchError::TuningParts(format!("word {row} is empty or repeated")));
            }
        }
        Ok(Self { dimension, words: rows, weights, examples })
    }

    /// How many described products it was fitted on.
    pub fn examples(&self) -> usize {
        self.examples
    }

    /// How many words its bag holds.
    pub fn words(&self) -> usize {
        self.words.len()
    }
}

/// The words at least `min_word_examples` texts hold, the `max_words` most held (ties by the word), numbered in
/// that order.
fn common_words<'a>(texts: impl Iterator<Item = &'a str>, config: &TuningConfig) -> HashMap<String, usize> {
    let mut held: HashMap<String, usize> = HashMap::new();
    for text in texts {
        let mut distinct = words(text);
        distinct.sort_unstable();
        distinct.dedup();
        for word in distinct {
            *held.entry(word).or_default() += 1;
        }
    }
    let mut common: Vec<(String, usize)> =
        held.into_iter().filter(|(_, count)| *count >= config.min_word_examples.max(1)).collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    common.into_iter().take(config.max_words).enumerate().map(|(row, (word, _))| (word, row)).collect()
}

/// The bag rows of a text's distinct known words, ascending.
fn word_rows(vocabulary: &HashMap<String, usize>, text: &str) -> Vec<usize> {
    let mut rows: Vec<usize> = words(text).iter().filter_map(|word| vocabulary.get(word).copied()).collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Each of a text's n known words weighs 1/√n, so the bag has unit length like the vector.
fn word_scale(known_words: usize) -> Option<f64> {
    (known_words > 0).then(|| 1.0 / (known_words as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples whose target is a fixed function of their vector and one marker word.
    fn examples(count: usize) -> (Vec<Vec<f32>>, Vec<String>, Vec<Vec<f32>>) {
        let mut vectors = Vec::new();
        let mut texts = Vec::new();
        let mut targets = Vec::new();
        for i in 0..count {
            let angle = i as f32 * 0.37;
            let vector = vec![angle.cos(), angle.sin(), (angle * 0.5).cos()];
            let heel = i % 3 == 0;
            // The target swaps the first two axes; the word "heels" adds the third.
            let target = vec![vector[1], vector[0], if heel { 1.0 } else { 0.0 }];
            texts.push(format!("item {i} {}", if heel { "heels" } else { "flats" }));
            vectors.push(vector);
            targets.push(target);
        }
        (vectors, texts, targets)
    }

    /// The examples as [`CatalogTuning::fit`] takes them.
    fn as_examples<'a>(
        vectors: &'a [Vec<f32>],
        texts: &'a [String],
        targets: &'a [Vec<f32>],
    ) -> Vec<TuningExample<'a>> {
        (0..vectors.len())
            .map(|i| TuningExample { vector: &vectors[i], text: &texts[i], target: &targets[i] })
            .collect()
    }

    #[test]
    fn the_map_learns_a_linear_target_and_its_words() {
        let (vectors, texts, targets) = examples(300);
        let examples = as_examples(&vectors, &texts, &targets);
        let config = TuningConfig { ridge: 0.01, ..TuningConfig::default() };
        let tuning = CatalogTuning::fit(&examples, &config).unwrap();
        // "item", "heels", "flats": the numbers are held by one example each.
        assert_eq!((tuning.examples(), tuning.words()), (300, 3));
        // A product it has seen and one it has not, with the other word: the map reproduces the target.
        let cosine = |a: &[f32], b: &[f32]| {
            let norm = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>().sqrt();
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b))
        };
        let seen = tuning.apply(&vectors[3], &texts[3]).unwrap();
        assert!(cosine(&seen, &targets[3]) > 0.99, "{seen:?} against {:?}", targets[3]);
        // The word carries what the vector does not: a flat's vector with the word "heels" moves up the third axis.
        let flat = tuning.apply(&vectors[4], &texts[4]).unwrap();
        assert!(cosine(&flat, &targets[4]) > 0.99, "{flat:?} against {:?}", targets[4]);
        let said_heels = tuning.apply(&vectors[4], "new heels").unwrap();
        assert!(said_heels[2] > flat[2] + 0.3, "{said_heels:?} against {flat:?}");
        let length = seen.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((length - 1.0).abs() < 1e-5);
        // Deterministic: the same examples fit the same map.
        let again = CatalogTuning::fit(&examples, &config).unwrap();
        assert_eq!(again.weights, tuning.weights);
    }

    #[test]
    fn parts_read_back_to_the_same_map_and_bad_parts_are_errors() {
        let (vectors, texts, targets) = examples(300);
        let examples = as_examples(&vectors, &texts, &targets);
        let tuning = CatalogTuning::fit(&examples, &TuningConfig::default()).unwrap();
        let parts = tuning.to_parts();
        assert_eq!((parts.dimension, parts.words.len(), parts.examples), (3, 3, 300));
        let again = CatalogTuning::from_parts(parts.clone()).unwrap();
        for (vector, text) in vectors.iter().zip(&texts).take(20) {
            assert_eq!(again.apply(vector, text).unwrap(), tuning.apply(vector, text).unwrap());
        }
        assert_eq!(again.to_parts(), parts);
        let broken = |change: fn(&mut TuningParts)| {
            let mut parts = parts.clone();
            change(&mut parts);
            CatalogTuning::from_parts(parts).unwrap_err()
        };
        for error in [
            broken(|p| p.weights.truncate(p.weights.len() - 1)),
            broken(|p| p.words[1] = p.words[0].clone()),
            broken(|p| p.words[2] = String::new()),
            broken(|p| p.weights[5] = f32::NAN),
            broken(|p| p.dimension = 0),
        ] {
            assert!(matches!(error, SearchError::TuningParts(_)), "{error}");
        }
    }

    #[test]
    fn too_few_examples_or_mixed_dimensions_fit_nothing() {
        let (vectors, texts, targets) = examples(10);
        let examples = as_examples(&vectors, &texts, &targets);
        let error = CatalogTuning::fit(&examples, &TuningConfig::default()).unwrap_err();
        assert!(matches!(error, SearchError::TuningExamples { got: 10, needed: 200 }), "{error}");
        let short = [0.0f32; 2];
        let mut mixed = examples.clone();
        mixed[3].target = &short;
        let config = TuningConfig { min_examples: 5, ..TuningConfig::default() };
        assert!(matches!(
            CatalogTuning::fit(&mixed, &config).unwrap_err(),
            SearchError::VectorDimension { expected: 3, got: 2 }
        ));
        // Ten products described alike ("clothing") would all be pulled to one point.
        let one = [1.0f32, 0.0, 0.0];
        let alike: Vec<TuningExample<'_>> = examples.iter().map(|e| TuningExample { target: &one, ..*e }).collect();
        let error = CatalogTuning::fit(&alike, &config).unwrap_err();
        assert!(matches!(error, SearchError::TuningDescriptions { got: 1, needed: 20 }), "{error}");
        let config = TuningConfig { min_descriptions: 1, ..config };
        assert!(CatalogTuning::fit(&alike, &config).is_ok());
    }

    #[test]
    fn a_description_needs_a_category_and_takes_gender_and_colour() {
        use attune_core::input::ScalarValue;
        use attune_core::{ItemInput, Timestamp};
        let now = Timestamp::from_millis(1_700_000_000_000).unwrap();
        let item = |path: Vec<&str>, attributes: Vec<(&str, &str)>| {
            let input = ItemInput {
                id: Some("a".into()),
                title: Some("Catwalk Women Brown Sandals".into()),
                category_path: Some(path.into_iter().map(String::from).collect()),
                attributes: Some(
                    attributes.into_iter().map(|(k, v)| (k.to_string(), ScalarValue::Text(v.to_string()))).collect(),
                ),
                ..Default::default()
            };
            Item::parse(input, now).unwrap()
        };
        let described = item(vec!["Footwear", "Shoes", "Flats"], vec![("gender", "Women"), ("colour", "Brown")]);
        assert_eq!(description_text(&described).as_deref(), Some("women brown flats"));
        assert_eq!(description_text(&item(vec!["Footwear", "Flats"], vec![])).as_deref(), Some("flats"));
        assert_eq!(description_text(&item(vec![], vec![("gender", "Women")])), None);
    }
}
