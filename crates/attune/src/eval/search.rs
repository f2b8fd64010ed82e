//! `attune eval search`: relevance of the hybrid product search on the Fashion Product Images catalog
//! (44,446 products) with the real fashion query log of Algolia's e-commerce demo (713 queries).
//!
//! Protocol (printed with the results):
//! * Catalog: `catalog/fashion_product_images_styles.csv` (id, gender, masterCategory, subCategory,
//!   articleType, baseColour, season, year, usage) row-aligned with `fashion_product_images_styles_names.csv`
//!   (productDisplayName); the row counts are checked to be equal.
//! * Queries: `faq/algolia_ecommerce-federated_products_query_suggestions.json` (fashion). The other file in
//!   `faq/` is Best Buy electronics, which this catalog cannot answer; it is skipped.
//! * Judgement: a query's *stated attributes* are the phrases in it that name a value of gender,
//!   masterCategory, subCategory, articleType, baseColour, season or usage (case-insensitive, singular and
//!   plural alike, longest phrase first). Relevant products match every stated attribute (a phrase that names
//!   values in several columns matches any of them). A query is kept when every word is such a phrase or a
//!   stop word and at least one product is relevant; the others are dropped with their reason counted.
//! * A second query set ("unknown words") also keeps queries whose other words appear in no product title at
//!   all — mostly brands this catalog does not carry ("michael kors bags black"). The shop has nothing with
//!   such a word, so the products with the stated attributes are the relevant ones; the words stay in the query
//!   the engine sees. Queries with a word that titles use but no attribute names ("sneakers") stay dropped.
//! * A third set ("one typo") is the first with the middle letter of each query's longest word deleted; its
//!   relevant products are those of the query as typed correctly.
//! * Spelling: every mode searches the query as the engine's spelling correction reads it, and the query
//!   vector is the corrected text's (as the server embeds it); rows marked "spelling as typed" turn it off.
//! * The goal is judged query by query: the default hybrid against lexical only and semantic only, per metric,
//!   with a 95% bootstrap interval of the mean difference; PASS needs every interval above zero.
//! * Retrieval sees, in the main ("title only") protocol, only the product title (brand and words as a shop
//!   would write them): the judged columns are not indexed, so the test is not circular. The optional
//!   "title + attributes" protocol also gives gender and colour as structured item attributes (what query
//!   understanding uses, as filters or as boosts) and the category path as text.
//! * Semantic vectors: all-MiniLM-L6-v2 (`attune-text`) of the title; the query vector is the query's.
//!   Item vectors are cached under `target/search-eval/` keyed by a hash of the model files' sizes and
//!   the names file, and recomputed when the cache is missing.
//! * Catalog tuning ("tuned half" rows): `CatalogTuning` fitted, as the server fits it, on the products with
//!   even ids described by their gender, colour and article type; search runs over the products with odd ids,
//!   titles only (the map never saw their attributes), judged on that half. The settings for tuned vectors are
//!   checked on a validation split (fitted on ids ≡ 0 mod 4, searched over ids ≡ 2 mod 4), printed per lexical
//!   coordination power and lexical weight.
//! * Under "title + attributes" every product has a category path, so the server would tune the vectors to
//!   the catalog: rows "tuned vectors (as the server builds this catalog)" search that engine.
//! * Metrics: NDCG@10 with binary gains; Recall@50 = relevant products in the top 50 / min(|relevant|, 50)
//!   (capped, since broad queries such as "shoes" have thousands of relevant products); both averaged over
//!   the kept queries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use attune_core::input::ScalarValue;
use attune_core::{Item, ItemInput, Timestamp};
use attune_search::text::{singular, words};
use attune_search::{
    AttributeMode, CatalogTuning, Fusion, Retrieval, SearchConfig, SearchEngine, SearchRequest, TuningConfig,
    description_text,
};
use attune_text::SentenceEmbedder;

use super::table;

/// Judged catalog columns, in the order of the styles file after `id`.
const JUDGED_COLUMNS: [&str; 7] =
    ["gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage"];
/// Words that carry no attribute and are allowed in kept queries.
const STOP_WORDS: &[&str] = &["for", "and", "the", "with", "of", "a", "in", "on", "to", "&"];

/// One catalog row.
#[derive(Clone)]
pub struct CatalogRow {
    pub id: String,
    pub title: String,
    /// Judged column → value, as in the file.
    pub columns: BTreeMap<&'static str, String>,
}

/// Reads the styles file and its row-aligned names file.
pub fn load_catalog(datasets: &Path) -> anyhow::Result<Vec<CatalogRow>> {
    let styles_path = datasets.join("catalog/fashion_product_images_styles.csv");
    let names_path = datasets.join("catalog/fashion_product_images_styles_names.csv");
    let mut styles = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&styles_path)
        .with_context(|| format!("opening {}", styles_path.display()))?;
    let header: Vec<String> = styles.headers()?.iter().map(str::to_string).collect();
    let column = |name: &str| header.iter().position(|h| h == name).with_context(|| format!("no column {name}"));
    let id_column = column("id")?;
    let judged: Vec<(&'static str, usize)> =
        JUDGED_COLUMNS.iter().map(|name| Ok((*name, column(name)?))).collect::<anyhow::Result<_>>()?;
    let mut names = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&names_path)
        .with_context(|| format!("opening {}", names_path.display()))?;
    let style_rows: Vec<csv::StringRecord> = styles.records().collect::<Result<_, _>>()?;
    let name_rows: Vec<csv::StringRecord> = names.records().collect::<Result<_, _>>()?;
    ensure!(
        style_rows.len() == name_rows.len(),
        "{} style rows but {} names: the files are not row-aligned",
        style_rows.len(),
        name_rows.len()
    );
    let mut rows = Vec::with_capacity(style_rows.len());
    for (style, name) in style_rows.iter().zip(&name_rows) {
        let title = name.get(0).unwrap_or_default().trim().to_string();
        let id = style.get(id_column).unwrap_or_default().trim().to_string();
        if title.is_empty() || id.is_empty() {
            continue;
        }
        let columns = judged
            .iter()
            .map(|(name, index)| (*name, style.get(*index).unwrap_or_default().trim().to_string()))
            .collect();
        rows.push(CatalogRow { id, title, columns });
    }
    Ok(rows)
}

/// One query of the log with its popularity.
pub struct LoggedQuery {
    pub text: String,
    pub popularity: u64,
}

/// Reads the fashion query log.
pub fn load_queries(datasets: &Path) -> anyhow::Result<Vec<LoggedQuery>> {
    let path = datasets.join("faq/algolia_ecommerce-federated_products_query_suggestions.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let list = value.as_array().context("query log is not a JSON array")?;
    Ok(list
        .iter()
        .filter_map(|entry| {
            Some(LoggedQuery {
                text: entry.get("query")?.as_str()?.to_string(),
                popularity: entry.get("popularity").and_then(|p| p.as_u64()).unwrap_or(0),
            })
        })
        .collect())
}

/// A query kept for the evaluation, with its relevant catalog rows.
#[derive(Clone)]
pub struct JudgedQuery {
    pub text: String,
    pub stated: Vec<Vec<(&'static str, String)>>,
    pub relevant: HashSet<usize>,
}

/// Why queries were dropped, with counts.
#[derive(Default)]
pub struct Judgement {
    pub kept: Vec<JudgedQuery>,
    pub dropped: BTreeMap<&'static str, Vec<String>>,
}

/// Which logged queries the judgement keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySet {
    /// Every word names a catalog attribute value (or is a stop word).
    EveryWordJudged,
    /// Also queries with words that no product title contains either (mostly brands this catalog does not
    /// carry, "michael kors bags black"): the shop has nothing with such a word, so the best it can show are
    /// the products with the attributes the other words state, and those are the relevant ones. The words stay
    /// in the query the engine sees. A query with a word that titles do use but no attribute names ("sneakers")
    /// is still dropped: its meaning cannot be judged from the attributes.
    UnknownWordsIgnored,
}

/// Applies the judgement rule to every logged query.
pub fn judge(rows: &[CatalogRow], queries: &[LoggedQuery], query_set: QuerySet) -> Judgement {
    // Phrase (singular words) → the (column, value) pairs it names.
    let mut phrases: HashMap<String, Vec<(&'static str, String)>> = HashMap::new();
    let mut longest = 1;
    for row in rows {
        for (column, value) in &row.columns {
            let key = words(value).iter().map(|w| singular(w)).collect::<Vec<_>>();
            if key.is_empty() {
                continue;
            }
            longest = longest.max(key.len());
            let entry = phrases.entry(key.join(" ")).or_default();
            if !entry.iter().any(|(c, v)| c == column && v == value) {
                entry.push((column, value.clone()));
            }
        }
    }
    // Only the unknown-words set asks whether titles use a word.
    let title_words: HashSet<String> = match query_set {
        QuerySet::EveryWordJudged => HashSet::new(),
        QuerySet::UnknownWordsIgnored => {
            rows.iter().flat_map(|row| words(&row.title)).map(|word| singular(&word)).collect()
        }
    };
    let mut judgement = Judgement::default();
    let mut seen = HashSet::new();
    for query in queries {
        let key = words(&query.text).join(" ");
        if !seen.insert(key) {
            judgement.dropped.entry("duplicate of an earlier query").or_default().push(query.text.clone());
            continue;
        }
        let tokens: Vec<String> = words(&query.text).iter().map(|w| singular(w)).collect();
        let mut stated: Vec<Vec<(&'static str, String)>> = Vec::new();
        let mut unknown = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let found = (1..=longest.min(tokens.len() - i))
                .rev()
                .find_map(|n| phrases.get(&tokens[i..i + n].join(" ")).map(|values| (n, values.clone())));
            match found {
                Some((n, values)) => {
                    if !stated.contains(&values) {
                        stated.push(values);
                    }
                    i += n;
                }
                None => {
                    if !STOP_WORDS.contains(&tokens[i].as_str()) {
                        unknown.push(tokens[i].clone());
                    }
                    i += 1;
                }
            }
        }
        let judgeable = match query_set {
            QuerySet::EveryWordJudged => unknown.is_empty(),
            QuerySet::UnknownWordsIgnored => unknown.iter().all(|word| !title_words.contains(word)),
        };
        if !judgeable {
            judgement
                .dropped
                .entry(match query_set {
                    QuerySet::EveryWordJudged => "has a word that names no catalog attribute value",
                    QuerySet::UnknownWordsIgnored => "has a word that titles use but no attribute value names",
                })
                .or_default()
                .push(query.text.clone());
            continue;
        }
        if stated.is_empty() {
            judgement.dropped.entry("states no attribute").or_default().push(query.text.clone());
            continue;
        }
        let relevant: HashSet<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| {
                stated.iter().all(|alternatives| {
                    alternatives.iter().any(|(column, value)| row.columns.get(column).is_some_and(|v| v == value))
                })
            })
            .map(|(i, _)| i)
            .collect();
        if relevant.is_empty() {
            judgement.dropped.entry("no product has all stated attributes").or_default().push(query.text.clone());
            continue;
        }
        judgement.kept.push(JudgedQuery { text: query.text.clone(), stated, relevant });
    }
    judgement
}

/// The same queries with one typo each: the middle letter of the longest word (the last of equal length, at
/// least 5 letters) deleted, "women yellow" → "women yelow". Deterministic, so runs compare; the relevant
/// products stay those of the query as typed correctly.
pub fn with_one_typo(queries: &[JudgedQuery]) -> Vec<JudgedQuery> {
    queries
        .iter()
        .map(|query| {
            let words: Vec<&str> = query.text.split_whitespace().collect();
            let longest = (0..words.len()).max_by_key(|i| words[*i].chars().count());
            let text = words
                .iter()
                .enumerate()
                .map(|(i, word)| {
                    let letters: Vec<char> = word.chars().collect();
                    if Some(i) != longest || letters.len() < 5 {
                        return word.to_string();
                    }
                    let middle = letters.len() / 2;
                    letters.iter().enumerate().filter(|(j, _)| *j != middle).map(|(_, c)| *c).collect()
                })
                .collect::<Vec<String>>()
                .join(" ");
            JudgedQuery { text, stated: query.stated.clone(), relevant: query.relevant.clone() }
        })
        .collect()
}

/// Which fields retrieval sees.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    TitleOnly,
    TitleAndAttributes,
}

/// The catalog as Attune items under a protocol (no prices: the log states none).
pub fn catalog_items(rows: &[CatalogRow], protocol: Protocol) -> anyhow::Result<Vec<Item>> {
    let now = Timestamp::from_millis(1_700_000_000_000)?;
    rows.iter()
        .map(|row| {
            let mut input =
                ItemInput { id: Some(row.id.clone()), title: Some(row.title.clone()), ..Default::default() };
            if protocol == Protocol::TitleAndAttributes {
                let column = |name: &str| row.columns.get(name).cloned().unwrap_or_default();
                let path: Vec<String> = ["masterCategory", "subCategory", "articleType"]
                    .iter()
                    .map(|c| column(c))
                    .filter(|v| !v.is_empty())
                    .collect();
                input.category_path = Some(path);
                let mut attributes = BTreeMap::new();
                for (name, columnn) in [("gender", "gender"), ("colour", "baseColour")] {
                    let value = column(columnn);
                    if !value.is_empty() {
                        attributes.insert(name.to_string(), ScalarValue::Text(value));
                    }
                }
                input.attributes = Some(attributes);
            }
            Item::parse(input, now).map_err(|e| anyhow::anyhow!("item {}: {e}", row.id))
        })
        .collect()
}

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for byte in bytes {
        *hash ^= u64::from(*byte);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// The directory for cached evaluation files: `target/search-eval` of the workspace (or `$CARGO_TARGET_DIR`).
fn cache_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("search-eval")
}

/// Embeds `titles` with the model in `model_dir`, or reads them from the cache keyed by model and titles.
pub fn title_vectors(model_dir: &Path, embedder: &SentenceEmbedder, titles: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut model_files: Vec<_> = std::fs::read_dir(model_dir)?.filter_map(Result::ok).collect();
    model_files.sort_by_key(|e| e.file_name());
    for entry in model_files {
        fnv1a(&mut hash, entry.file_name().as_encoded_bytes());
        fnv1a(&mut hash, &entry.metadata()?.len().to_le_bytes());
    }
    for title in titles {
        fnv1a(&mut hash, title.as_bytes());
        fnv1a(&mut hash, b"\n");
    }
    let path = cache_dir().join(format!("title-vectors-{hash:016x}.f32"));
    let dimension = embedder.dimension();
    if let Ok(mut file) = std::fs::File::open(&path) {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() == titles.len() * dimension * 4 {
            let floats: Vec<f32> =
                bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            eprintln!("read {} cached title vectors from {}", titles.len(), path.display());
            return Ok(floats.chunks_exact(dimension).map(<[f32]>::to_vec).collect());
        }
    }
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(titles.len());
    for (chunk_index, chunk) in titles.chunks(2048).enumerate() {
        vectors.extend(embedder.embed(chunk)?);
        eprintln!(
            "embedded {}/{} titles ({:.0} s)",
            (chunk_index * 2048 + chunk.len()),
            titles.len(),
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::create_dir_all(cache_dir())?;
    let mut file = std::fs::File::create(&path)?;
    let mut bytes = Vec::with_capacity(titles.len() * dimension * 4);
    vectors.iter().flatten().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    file.write_all(&bytes)?;
    Ok(vectors)
}

/// Per query, NDCG@10 (binary gains) and capped Recall@50 of its ranked list.
pub fn per_query_scores(queries: &[JudgedQuery], lists: &[Vec<usize>]) -> Vec<(f64, f64)> {
    queries
        .iter()
        .zip(lists)
        .map(|(query, list)| {
            let dcg: f64 = list
                .iter()
                .take(10)
                .enumerate()
                .filter(|(_, p)| query.relevant.contains(p))
                .map(|(rank, _)| 1.0 / (rank as f64 + 2.0).log2())
                .sum();
            let ideal: f64 = (0..query.relevant.len().min(10)).map(|rank| 1.0 / (rank as f64 + 2.0).log2()).sum();
            let found = list.iter().take(50).filter(|p| query.relevant.contains(p)).count();
            (dcg / ideal, found as f64 / query.relevant.len().min(50) as f64)
        })
        .collect()
}

/// Mean NDCG@10 (binary gains) and capped Recall@50 of ranked lists against the judged queries.
pub fn score_lists(queries: &[JudgedQuery], lists: &[Vec<usize>]) -> (f64, f64) {
    mean_scores(&per_query_scores(queries, lists))
}

fn mean_scores(scores: &[(f64, f64)]) -> (f64, f64) {
    let n = scores.len().max(1) as f64;
    (scores.iter().map(|s| s.0).sum::<f64>() / n, scores.iter().map(|s| s.1).sum::<f64>() / n)
}

/// One metric of two runs over the same queries, compared query by query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    /// Mean of (a − b) per query.
    pub mean: f64,
    /// 95% percentile bootstrap interval of that mean (queries resampled with replacement).
    pub low: f64,
    pub high: f64,
    /// Queries where a scores higher, the same (within 1e-9), lower.
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
}

impl PairedDifference {
    /// Whether a is better than b beyond resampling noise: the whole interval is above zero.
    pub fn significant(&self) -> bool {
        self.low > 0.0
    }
}

/// The lexical weights and lexical coordination powers the validation split compares for tuned vectors.
const TUNED_LEXICAL_WEIGHTS: [f32; 7] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
const TUNED_COORDINATION_POWERS: [f32; 5] = [0.0, 1.0, 2.0, 3.0, 4.0];

/// The label prefix of the held-out catalog tuning protocol's rows, whose goal lines make the verdict.
const HELD_OUT_LABEL: &str = "tuned half";

/// Resamples in [`paired_difference`] and its fixed seed.
const BOOTSTRAP_RESAMPLES: usize = 10_000;
const BOOTSTRAP_SEED: u64 = 42;

/// Compares per-query scores `a` and `b` (same queries, same order).
pub fn paired_difference(a: &[f64], b: &[f64]) -> PairedDifference {
    use rand::{Rng as _, SeedableRng as _};
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = differences.len();
    let mean = differences.iter().sum::<f64>() / n.max(1) as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut means: Vec<f64> = (0..if n == 0 { 0 } else { BOOTSTRAP_RESAMPLES })
        .map(|_| (0..n).map(|_| differences[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |share: f64| means.get(((means.len() as f64 - 1.0) * share).round() as usize).copied().unwrap_or(0.0);
    let count = |keep: fn(f64) -> bool| differences.iter().filter(|d| keep(**d)).count();
    PairedDifference {
        mean,
        low: at(0.025),
        high: at(0.975),
        wins: count(|d| d > 1e-9),
        ties: count(|d| d.abs() <= 1e-9),
        losses: count(|d| d < -1e-9),
    }
}

/// The top-50 positions for every judged query (spelling corrected, as by default).
pub fn run_queries(
    engine: &SearchEngine,
    queries: &[JudgedQuery],
    query_vectors: &[Vec<f32>],
    retrieval: Retrieval,
) -> anyhow::Result<Vec<Vec<usize>>> {
    run_queries_spelled(engine, queries, query_vectors, retrieval, true)
}

/// [`run_queries`], with spelling correction on or off.
pub fn run_queries_spelled(
    engine: &SearchEngine,
    queries: &[JudgedQuery],
    query_vectors: &[Vec<f32>],
    retrieval: Retrieval,
    correct_spelling: bool,
) -> anyhow::Result<Vec<Vec<usize>>> {
    queries
        .iter()
        .zip(query_vectors)
        .map(|(query, vector)| {
            let mut request = SearchRequest::new(&query.text);
            request.query_vector = Some(vector);
            request.retrieval = retrieval;
            request.correct_spelling = correct_spelling;
            request.limit = 50;
            request.facets = false;
            let response = engine.search(&request)?;
            Ok(response.hits.iter().map(|h| h.position).collect())
        })
        .collect()
}

/// The query vectors one engine searches with, and what its spelling correction changed.
pub struct CorrectedQueries {
    /// Per query, the vector of the corrected text where the engine corrects it (as the server embeds it), else
    /// of the query as typed.
    pub vectors: Vec<Vec<f32>>,
    /// (typed, corrected) of each query the engine corrects.
    pub corrected: Vec<(String, String)>,
}

/// Corrects each query's spelling with `engine` and embeds the corrected ones.
pub fn corrected_query_vectors(
    engine: &SearchEngine,
    embedder: &SentenceEmbedder,
    queries: &[JudgedQuery],
    typed_vectors: &[Vec<f32>],
) -> anyhow::Result<CorrectedQueries> {
    let corrected: Vec<(usize, String)> = queries
        .iter()
        .enumerate()
        .filter_map(|(i, query)| engine.correct_spelling(&query.text).map(|text| (i, text)))
        .collect();
    let texts: Vec<&str> = corrected.iter().map(|(_, text)| text.as_str()).collect();
    let mut vectors = typed_vectors.to_vec();
    for ((i, _), vector) in corrected.iter().zip(embedder.embed(&texts)?) {
        vectors[*i] = vector;
    }
    let corrected = corrected.into_iter().map(|(i, text)| (queries[i].text.clone(), text)).collect();
    Ok(CorrectedQueries { vectors, corrected })
}

/// Loads the catalog, queries and model, and embeds what is needed: shared by the eval and the benchmark.
pub struct SearchFixture {
    pub rows: Vec<CatalogRow>,
    pub judgement: Judgement,
    /// The whole fashion query log, as read.
    pub logged: Vec<LoggedQuery>,
    pub embedder: SentenceEmbedder,
    pub title_vectors: Vec<Vec<f32>>,
    pub query_vectors: Vec<Vec<f32>>,
    pub model_dir: PathBuf,
    /// Vectors of the item descriptions catalog tuning has embedded so far (each fit asks for a set that
    /// overlaps the others').
    description_vectors: std::sync::Mutex<HashMap<String, Vec<f32>>>,
}

impl SearchFixture {
    pub fn load(datasets: &Path) -> anyhow::Result<Self> {
        let rows = load_catalog(datasets)?;
        let queries = load_queries(datasets)?;
        let judgement = judge(&rows, &queries, QuerySet::EveryWordJudged);
        let model_dir = attune_text::default_model_dir()
            .context("no MiniLM model found (set ATTUNE_MODEL_DIR or put it in ../shared/models)")?;
        let embedder = SentenceEmbedder::load(&model_dir)?;
        let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
        let title_vectors = title_vectors(&model_dir, &embedder, &titles)?;
        let texts: Vec<&str> = judgement.kept.iter().map(|q| q.text.as_str()).collect();
        let query_vectors = embedder.embed(&texts)?;
        Ok(Self {
            rows,
            judgement,
            logged: queries,
            embedder,
            title_vectors,
            query_vectors,
            model_dir,
            description_vectors: Default::default(),
        })
    }
}

/// The catalog split in two by product id: catalog tuning is fitted on the even ids' products, described by
/// their attributes, and search runs over the odd ids' products, which it sees by title only.
pub struct TunedHalf {
    /// The searched half, titles only.
    pub items: Vec<Item>,
    /// Their title vectors as tuned, and as MiniLM gives them.
    pub tuned_vectors: Vec<Vec<f32>>,
    pub title_vectors: Vec<Vec<f32>>,
    /// Catalog row → position in the searched half.
    pub positions: HashMap<usize, usize>,
    pub tuning: CatalogTuning,
    /// Distinct descriptions the tuning was fitted toward.
    pub descriptions: usize,
    /// Seconds to fit (and to embed the descriptions no earlier fit of the run embedded).
    pub fit_seconds: f64,
}

/// Fits catalog tuning on `items` (with their vectors, searched by title) toward their descriptions, as the
/// server does: each distinct description embedded once (and kept for the next fit). Returns the tuning and how
/// many distinct descriptions there were.
pub fn fit_tuning(
    fixture: &SearchFixture,
    items: &[Item],
    vectors: &[&[f32]],
) -> anyhow::Result<(CatalogTuning, usize)> {
    let descriptions: Vec<Option<String>> = items.iter().map(description_text).collect();
    let mut distinct: Vec<&str> = descriptions.iter().flatten().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut known = fixture.description_vectors.lock().expect("description vectors poisoned");
    let missing: Vec<&str> = distinct.iter().copied().filter(|text| !known.contains_key(*text)).collect();
    for (text, vector) in missing.iter().zip(fixture.embedder.embed(&missing)?) {
        known.insert(text.to_string(), vector);
    }
    let description_vector = |text: &str| known.get(text).map(Vec::as_slice);
    let tuning = CatalogTuning::fit_to_descriptions(
        items,
        vectors,
        &descriptions,
        description_vector,
        &TuningConfig::default(),
    )?;
    Ok((tuning, distinct.len()))
}

/// How [`tuned_half`] splits the catalog by product id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSplit {
    /// Fitted on even ids, searched on odd ids: the reported figures.
    Test,
    /// Fitted on ids ≡ 0 (mod 4), searched on ids ≡ 2 (mod 4): chooses the settings, never touching odd ids.
    Validation,
}

impl CatalogSplit {
    /// (fitted, searched) for a product id.
    fn roles(self, id: u64) -> (bool, bool) {
        match self {
            CatalogSplit::Test => (id.is_multiple_of(2), !id.is_multiple_of(2)),
            CatalogSplit::Validation => (id.is_multiple_of(4), id % 4 == 2),
        }
    }
}

/// Fits catalog tuning on one part of the catalog and tunes another part's title vectors.
pub fn tuned_half(fixture: &SearchFixture, split: CatalogSplit) -> anyhow::Result<TunedHalf> {
    // Ids are numbers in this catalog; any other id is placed by its length.
    let roles = |row: &CatalogRow| split.roles(row.id.parse::<u64>().unwrap_or(row.id.len() as u64));
    let fitted: Vec<usize> = (0..fixture.rows.len()).filter(|i| roles(&fixture.rows[*i]).0).collect();
    let searched: Vec<usize> = (0..fixture.rows.len()).filter(|i| roles(&fixture.rows[*i]).1).collect();
    let fitted_rows: Vec<CatalogRow> = fitted.iter().map(|i| fixture.rows[*i].clone()).collect();
    let described = catalog_items(&fitted_rows, Protocol::TitleAndAttributes)?;
    let fitted_vectors: Vec<&[f32]> = fitted.iter().map(|i| fixture.title_vectors[*i].as_slice()).collect();
    let started = Instant::now();
    let (tuning, descriptions) = fit_tuning(fixture, &described, &fitted_vectors)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let rows: Vec<CatalogRow> = searched.iter().map(|i| fixture.rows[*i].clone()).collect();
    let title_vectors: Vec<Vec<f32>> = searched.iter().map(|i| fixture.title_vectors[*i].clone()).collect();
    let items = catalog_items(&rows, Protocol::TitleOnly)?;
    let tuned_vectors = tuning.apply_to_items(&items, &title_vectors)?;
    let positions = searched.iter().enumerate().map(|(position, row)| (*row, position)).collect();
    Ok(TunedHalf { items, tuned_vectors, title_vectors, positions, tuning, descriptions, fit_seconds })
}

/// The queries with a relevant product in the searched half, judged there, with their vectors.
pub(super) fn queries_in_half(
    queries: &[JudgedQuery],
    vectors: &[Vec<f32>],
    positions: &HashMap<usize, usize>,
) -> (Vec<JudgedQuery>, Vec<Vec<f32>>) {
    queries
        .iter()
        .zip(vectors)
        .filter_map(|(query, vector)| {
            let relevant: HashSet<usize> =
                query.relevant.iter().filter_map(|row| positions.get(row).copied()).collect();
            (!relevant.is_empty()).then(|| {
                (JudgedQuery { text: query.text.clone(), stated: query.stated.clone(), relevant }, vector.clone())
            })
        })
        .unzip()
}

/// One report line per reason queries were dropped, with their count and a few of them.
fn write_dropped(out: &mut String, judgement: &Judgement, indent: &str) -> std::fmt::Result {
    for (reason, texts) in &judgement.dropped {
        let examples: Vec<&str> = texts.iter().take(4).map(String::as_str).collect();
        writeln!(out, "{indent}dropped {:>3}: {reason} (e.g. {})", texts.len(), examples.join(", "))?;
    }
    Ok(())
}

/// The three query sets with their typed query vectors: the judged queries, the "unknown words" set and the
/// "one typo" set.
struct QuerySets<'f> {
    kept: &'f [JudgedQuery],
    open: Judgement,
    open_vectors: Vec<Vec<f32>>,
    typo: Vec<JudgedQuery>,
    typo_vectors: Vec<Vec<f32>>,
}

impl<'f> QuerySets<'f> {
    fn new(fixture: &'f SearchFixture) -> anyhow::Result<Self> {
        let open = judge(&fixture.rows, &fixture.logged, QuerySet::UnknownWordsIgnored);
        let open_texts: Vec<&str> = open.kept.iter().map(|q| q.text.as_str()).collect();
        let open_vectors = fixture.embedder.embed(&open_texts)?;
        let typo = with_one_typo(&fixture.judgement.kept);
        let typo_texts: Vec<&str> = typo.iter().map(|q| q.text.as_str()).collect();
        let typo_vectors = fixture.embedder.embed(&typo_texts)?;
        Ok(Self { kept: &fixture.judgement.kept, open, open_vectors, typo, typo_vectors })
    }
}

/// Per query: NDCG@10 and Recall@50.
type Scores = Vec<(f64, f64)>;

/// One protocol's spelling corrections: (label, queries, (typed, corrected) of each corrected query).
type Corrections<'q> = (&'q str, usize, Vec<(String, String)>);

/// What the runs found: the table's rows, the (label, lexical, semantic, hybrid) scores of every protocol the
/// goal is judged on, and each protocol's spelling corrections.
#[derive(Default)]
struct Results<'q> {
    rows: Vec<Vec<String>>,
    summary: Vec<(String, Scores, Scores, Scores)>,
    corrections: Vec<Corrections<'q>>,
}

impl Results<'_> {
    /// Scores ranked lists of `queries` and adds the table row; returns the per-query scores.
    fn add(&mut self, queries: &[JudgedQuery], protocol: &str, name: &str, lists: &[Vec<usize>]) -> Scores {
        let scores = per_query_scores(queries, lists);
        let (ndcg, recall) = mean_scores(&scores);
        self.rows.push(vec![protocol.to_string(), name.to_string(), format!("{ndcg:.4}"), format!("{recall:.4}")]);
        scores
    }
}

/// Runs the evaluation and returns the printed report.
pub fn run_search_eval(datasets: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    let fixture = SearchFixture::load(datasets)?;
    if fixture.judgement.kept.is_empty() {
        bail!("no query of the log could be judged");
    }
    let sets = QuerySets::new(&fixture)?;
    let mut out = String::new();
    write_protocol(&mut out, &fixture, &sets)?;
    let mut results = Results::default();
    for (label, protocol, queries, query_vectors) in [
        ("title only", Protocol::TitleOnly, sets.kept, &fixture.query_vectors),
        ("title + attributes", Protocol::TitleAndAttributes, sets.kept, &fixture.query_vectors),
        ("title only, unknown words", Protocol::TitleOnly, &sets.open.kept, &sets.open_vectors),
        ("title only, one typo", Protocol::TitleOnly, &sets.typo, &sets.typo_vectors),
    ] {
        run_protocol(&fixture, (label, protocol), queries, query_vectors, &mut results)?;
    }
    let half = tuned_half(&fixture, CatalogSplit::Test)?;
    let tuned_counts = run_tuned_half(&fixture, &sets, &half, &mut results)?;
    let validation = tuned_half(&fixture, CatalogSplit::Validation)?;
    let validated = validate_tuned_settings(&fixture, &sets, &validation)?;
    let (thresholds, _, _) = super::search_threshold::calibrate(&validation, &half, sets.kept, &fixture.query_vectors)?;
    out.push_str(&table(&["protocol", "retrieval", "NDCG@10", "Recall@50"], &results.rows));
    writeln!(out)?;
    writeln!(out, "{thresholds}")?;
    write_corrections(&mut out, &results.corrections)?;
    write_tuning(&mut out, &half, &tuned_counts, &validation, &validated)?;
    let verdicts = write_goal(&mut out, results.summary)?;
    write_verdict(&mut out, &verdicts)?;
    writeln!(
        out,
        "({} + {} + {} queries, {:.0} s)",
        sets.kept.len(),
        sets.open.kept.len(),
        sets.typo.len(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(out)
}

/// The report's head: the data, the query sets and how they were judged.
fn write_protocol(out: &mut String, fixture: &SearchFixture, sets: &QuerySets<'_>) -> anyhow::Result<()> {
    writeln!(
        out,
        "Search relevance: Fashion Product Images ({} products) x Algolia fashion query log",
        fixture.rows.len()
    )?;
    writeln!(
        out,
        "  Queries: {} logged, {} kept (every word names a catalog attribute value; >= 1 relevant product)",
        fixture.logged.len(),
        sets.kept.len()
    )?;
    write_dropped(out, &fixture.judgement, "  ")?;
    writeln!(
        out,
        "  \"unknown words\" query set: {} kept, also with words that no product title contains (brands this catalog does \
         not carry); those words stay in the query but are not judged",
        sets.open.kept.len()
    )?;
    write_dropped(out, &sets.open, "    ")?;
    let typo_texts: Vec<&str> = sets.typo.iter().map(|q| q.text.as_str()).collect();
    writeln!(
        out,
        "  \"one typo\" query set: the {} kept queries with the middle letter of their longest word deleted (e.g. {})",
        sets.typo.len(),
        typo_texts.iter().take(4).copied().collect::<Vec<_>>().join(", ")
    )?;
    writeln!(
        out,
        "  Skipped: faq/algolia_ecommerce_instant_search_demo_query_suggestions.json (Best Buy electronics, not this catalog)"
    )?;
    writeln!(
        out,
        "  Relevant = products matching every stated attribute (gender, master/sub category, article type, colour, season, usage)."
    )?;
    writeln!(
        out,
        "  Vectors: {} of the title; NDCG@10 binary gains; Recall@50 = hits / min(|relevant|, 50).",
        fixture.model_dir.display()
    )?;
    writeln!(out)?;
    Ok(())
}

/// Every retrieval of one protocol and query set: lexical, semantic and hybrid under each fusion, the ablations,
/// and (with attributes, where the server would tune the vectors) the tuned engine.
fn run_protocol<'q>(
    fixture: &SearchFixture,
    (label, protocol): (&'q str, Protocol),
    queries: &[JudgedQuery],
    typed_vectors: &[Vec<f32>],
    results: &mut Results<'q>,
) -> anyhow::Result<()> {
    let items = catalog_items(&fixture.rows, protocol)?;
    // Every product has a category path under "title + attributes", so the server would tune the vectors to
    // this catalog: rows "tuned vectors" search the engine it would build.
    let mut tuned_engine = match protocol {
        Protocol::TitleOnly => None,
        Protocol::TitleAndAttributes => {
            let title_vectors: Vec<&[f32]> = fixture.title_vectors.iter().map(Vec::as_slice).collect();
            let (tuning, _) = fit_tuning(fixture, &items, &title_vectors)?;
            let tuned = tuning.apply_to_items(&items, &title_vectors)?;
            Some(SearchEngine::build(items.clone(), Some(&tuned), SearchConfig::for_catalog_tuned_vectors())?)
        }
    };
    let mut engine = SearchEngine::build(items, Some(&fixture.title_vectors), SearchConfig::default())?;
    let CorrectedQueries { vectors: query_vectors, corrected } =
        corrected_query_vectors(&engine, &fixture.embedder, queries, typed_vectors)?;
    let any_corrected = !corrected.is_empty();
    results.corrections.push((label, queries.len(), corrected));
    let modes: Vec<(&str, AttributeMode)> = match protocol {
        Protocol::TitleOnly => vec![("", AttributeMode::Filter)],
        Protocol::TitleAndAttributes => {
            vec![(" [attrs as filters]", AttributeMode::Filter), (" [attrs as boosts]", AttributeMode::Boost)]
        }
    };
    let vectors = RunVectors { typed: typed_vectors, corrected: &query_vectors, any_corrected };
    for (suffix, attribute_mode) in modes {
        let run = ModeRun { fixture, label, suffix, attribute_mode, queries, vectors: &vectors };
        run.evaluate(&mut engine, tuned_engine.as_mut(), results)?;
    }
    Ok(())
}

/// The query vectors of a protocol's runs: as typed, and of the corrected queries.
struct RunVectors<'a> {
    typed: &'a [Vec<f32>],
    corrected: &'a [Vec<f32>],
    any_corrected: bool,
}

/// One attribute mode of one protocol's runs.
struct ModeRun<'a> {
    fixture: &'a SearchFixture,
    label: &'a str,
    /// Appended to every row's name (the attribute mode, for "title + attributes").
    suffix: &'a str,
    attribute_mode: AttributeMode,
    queries: &'a [JudgedQuery],
    vectors: &'a RunVectors<'a>,
}

impl ModeRun<'_> {
    fn evaluate(
        &self,
        engine: &mut SearchEngine,
        tuned_engine: Option<&mut SearchEngine>,
        results: &mut Results<'_>,
    ) -> anyhow::Result<()> {
        let (label, suffix, queries, query_vectors) = (self.label, self.suffix, self.queries, self.vectors.corrected);
        let base = SearchConfig { attribute_mode: self.attribute_mode, ..SearchConfig::default() };
        engine.set_config(base.clone());
        let lexical_lists = run_queries(engine, queries, query_vectors, Retrieval::LexicalOnly)?;
        let lexical = results.add(queries, label, &format!("lexical only{suffix}"), &lexical_lists);
        if std::env::var_os("ATTUNE_SEARCH_EVAL_DEBUG").is_some() {
            self.print_lexical_and_hybrid_differences(engine, &base, &lexical_lists)?;
        }
        self.ablations(engine, &base, results)?;
        let semantic = results.add(
            queries,
            label,
            &format!("semantic only{suffix}"),
            &run_queries(engine, queries, query_vectors, Retrieval::SemanticOnly)?,
        );
        if let Some(tuned_engine) = tuned_engine {
            tuned_engine.set_config(SearchConfig {
                attribute_mode: self.attribute_mode,
                ..SearchConfig::for_catalog_tuned_vectors()
            });
            let mut tuned = Vec::new();
            for (name, retrieval) in [("semantic only", Retrieval::SemanticOnly), ("hybrid", Retrieval::Hybrid)] {
                tuned.push(results.add(
                    queries,
                    label,
                    &format!("{name}, tuned vectors (as the server builds this catalog){suffix}"),
                    &run_queries(tuned_engine, queries, query_vectors, retrieval)?,
                ));
            }
            let hybrid = tuned.pop().unwrap_or_default();
            let semantic = tuned.pop().unwrap_or_default();
            results.summary.push((format!("{label}{suffix}, tuned vectors"), lexical.clone(), semantic, hybrid));
        }
        self.fusions(engine, &base, (&lexical, &semantic), results)
    }

    /// Ablations: without putting hits that hold every query term first, and the words as typed (no spelling
    /// correction, the embedding of the typed words).
    fn ablations(
        &self,
        engine: &mut SearchEngine,
        base: &SearchConfig,
        results: &mut Results<'_>,
    ) -> anyhow::Result<()> {
        let (label, suffix, queries, query_vectors) = (self.label, self.suffix, self.queries, self.vectors.corrected);
        engine.set_config(SearchConfig { all_terms_first: false, ..base.clone() });
        results.add(
            queries,
            label,
            &format!("lexical only, all terms not first{suffix}"),
            &run_queries(engine, queries, query_vectors, Retrieval::LexicalOnly)?,
        );
        results.add(
            queries,
            label,
            &format!("hybrid (default), all terms not first{suffix}"),
            &run_queries(engine, queries, query_vectors, Retrieval::Hybrid)?,
        );
        engine.set_config(base.clone());
        if self.vectors.any_corrected {
            for (name, retrieval) in [
                ("lexical only", Retrieval::LexicalOnly),
                ("semantic only", Retrieval::SemanticOnly),
                ("hybrid (default)", Retrieval::Hybrid),
            ] {
                results.add(
                    queries,
                    label,
                    &format!("{name}, spelling as typed{suffix}"),
                    &run_queries_spelled(engine, queries, self.vectors.typed, retrieval, false)?,
                );
            }
        }
        Ok(())
    }

    /// The hybrid under each fusion; the default one is what the goal judges.
    fn fusions(
        &self,
        engine: &mut SearchEngine,
        base: &SearchConfig,
        (lexical, semantic): (&Scores, &Scores),
        results: &mut Results<'_>,
    ) -> anyhow::Result<()> {
        let (label, suffix, queries, query_vectors) = (self.label, self.suffix, self.queries, self.vectors.corrected);
        for (name, fusion) in [
            ("hybrid RRF k=60", Fusion::Rrf { k: 60.0, semantic: 1.0 }),
            ("hybrid RRF k=60, semantic x0.5", Fusion::Rrf { k: 60.0, semantic: 0.5 }),
            ("hybrid weighted lexical 0.5", Fusion::Weighted { lexical: 0.5 }),
            ("hybrid weighted lexical 0.7", Fusion::Weighted { lexical: 0.7 }),
            ("hybrid weighted lexical 0.8", Fusion::Weighted { lexical: 0.8 }),
            ("hybrid weighted lexical 0.9", Fusion::Weighted { lexical: 0.9 }),
        ] {
            engine.set_config(SearchConfig { fusion, ..base.clone() });
            let hybrid = results.add(
                queries,
                label,
                &format!("{name}{suffix}"),
                &run_queries(engine, queries, query_vectors, Retrieval::Hybrid)?,
            );
            if fusion == SearchConfig::default().fusion {
                results.summary.push((format!("{label}{suffix}"), lexical.clone(), semantic.clone(), hybrid));
            }
        }
        Ok(())
    }

    /// For `ATTUNE_SEARCH_EVAL_DEBUG`: the queries where lexical only and the hybrid differ most, with the titles
    /// each ranks first.
    fn print_lexical_and_hybrid_differences(
        &self,
        engine: &mut SearchEngine,
        base: &SearchConfig,
        lexical_lists: &[Vec<usize>],
    ) -> anyhow::Result<()> {
        let (label, suffix, queries) = (self.label, self.suffix, self.queries);
        engine.set_config(SearchConfig { fusion: Fusion::Weighted { lexical: 0.7 }, ..base.clone() });
        let hybrid_lists = run_queries(engine, queries, self.vectors.corrected, Retrieval::Hybrid)?;
        engine.set_config(base.clone());
        for (i, query) in queries.iter().enumerate() {
            let one = std::slice::from_ref(query);
            let (l, _) = score_lists(one, std::slice::from_ref(&lexical_lists[i]));
            let (h, _) = score_lists(one, std::slice::from_ref(&hybrid_lists[i]));
            if (l - h).abs() > 0.05 {
                let titles = |list: &[usize]| {
                    let title = |p: &usize| {
                        let mark = if query.relevant.contains(p) { "+" } else { "-" };
                        format!("{mark}{}", self.fixture.rows[*p].title)
                    };
                    list.iter().take(5).map(title).collect::<Vec<_>>().join(" | ")
                };
                eprintln!(
                    "{label}{suffix} {:?} |rel|={} lexical {l:.3} hybrid {h:.3}\n  L: {}\n  H: {}",
                    query.text,
                    query.relevant.len(),
                    titles(&lexical_lists[i]),
                    titles(&hybrid_lists[i])
                );
            }
        }
        Ok(())
    }
}

/// Catalog tuning: fitted on half the catalog with its attributes, searched on the other half by title. Returns
/// how many queries of each set have a relevant product in the searched half.
fn run_tuned_half(
    fixture: &SearchFixture,
    sets: &QuerySets<'_>,
    half: &TunedHalf,
    results: &mut Results<'_>,
) -> anyhow::Result<Vec<usize>> {
    let mut tuned_engine =
        SearchEngine::build(half.items.clone(), Some(&half.tuned_vectors), SearchConfig::for_catalog_tuned_vectors())?;
    let mut untuned_engine =
        SearchEngine::build(half.items.clone(), Some(&half.title_vectors), SearchConfig::default())?;
    let mut tuned_counts = Vec::new();
    for (set, queries, typed_vectors) in [
        ("title only", sets.kept, &fixture.query_vectors),
        ("unknown words", &sets.open.kept, &sets.open_vectors),
        ("one typo", &sets.typo, &sets.typo_vectors),
    ] {
        let label = &format!("{HELD_OUT_LABEL}, {set}");
        let (queries, typed_vectors) = queries_in_half(queries, typed_vectors, &half.positions);
        let query_vectors =
            corrected_query_vectors(&tuned_engine, &fixture.embedder, &queries, &typed_vectors)?.vectors;
        tuned_counts.push(queries.len());
        // Lexical only with its own best settings (the all-terms rule), as in the other protocols; the last two
        // rows search the same half with the vectors as MiniLM gives them.
        let mut scores = Vec::new();
        for (name, tuned, config, retrieval) in [
            ("lexical only", true, SearchConfig::default(), Retrieval::LexicalOnly),
            ("semantic only", true, SearchConfig::default(), Retrieval::SemanticOnly),
            ("hybrid (default for tuned vectors)", true, SearchConfig::for_catalog_tuned_vectors(), Retrieval::Hybrid),
            ("hybrid, untuned settings", true, SearchConfig::default(), Retrieval::Hybrid),
            ("semantic only, vectors not tuned", false, SearchConfig::default(), Retrieval::SemanticOnly),
            ("hybrid (default), vectors not tuned", false, SearchConfig::default(), Retrieval::Hybrid),
        ] {
            let engine = if tuned { &mut tuned_engine } else { &mut untuned_engine };
            engine.set_config(config);
            scores.push(results.add(&queries, label, name, &run_queries(engine, &queries, &query_vectors, retrieval)?));
        }
        let mut scores = scores.into_iter();
        let (lexical, semantic, hybrid) =
            (scores.next().unwrap_or_default(), scores.next().unwrap_or_default(), scores.next().unwrap_or_default());
        results.summary.push((label.to_string(), lexical, semantic, hybrid));
    }
    Ok(tuned_counts)
}

/// The settings for tuned vectors, chosen on the validation split: hybrid NDCG@10 + Recall@50 summed over the
/// three query sets, per (lexical coordination power, lexical weight).
fn validate_tuned_settings(
    fixture: &SearchFixture,
    sets: &QuerySets<'_>,
    validation: &TunedHalf,
) -> anyhow::Result<Vec<(f32, f32, f64)>> {
    let mut validation_engine = SearchEngine::build(
        validation.items.clone(),
        Some(&validation.tuned_vectors),
        SearchConfig::for_catalog_tuned_vectors(),
    )?;
    let mut validation_sets = Vec::new();
    for (queries, typed_vectors) in
        [(sets.kept, &fixture.query_vectors), (&sets.open.kept, &sets.open_vectors), (&sets.typo, &sets.typo_vectors)]
    {
        let (queries, typed_vectors) = queries_in_half(queries, typed_vectors, &validation.positions);
        let vectors = corrected_query_vectors(&validation_engine, &fixture.embedder, &queries, &typed_vectors)?.vectors;
        validation_sets.push((queries, vectors));
    }
    let mut validated = Vec::new();
    for lexical_coordination in TUNED_COORDINATION_POWERS {
        for lexical in TUNED_LEXICAL_WEIGHTS {
            validation_engine.set_config(SearchConfig {
                fusion: Fusion::Weighted { lexical },
                lexical_coordination,
                ..SearchConfig::for_catalog_tuned_vectors()
            });
            let mut sum = 0.0;
            for (queries, vectors) in &validation_sets {
                let (ndcg, recall) =
                    score_lists(queries, &run_queries(&validation_engine, queries, vectors, Retrieval::Hybrid)?);
                sum += ndcg + recall;
            }
            validated.push((lexical_coordination, lexical, sum));
        }
    }
    Ok(validated)
}

fn write_corrections(out: &mut String, corrections: &[Corrections<'_>]) -> anyhow::Result<()> {
    writeln!(out, "Spelling correction (every mode searches the corrected query; the hybrid embeds it):")?;
    for (label, count, corrected) in corrections {
        let examples: Vec<String> =
            corrected.iter().take(6).map(|(typed, read)| format!("{typed} -> {read}")).collect();
        writeln!(
            out,
            "  {label}: {} of {count} queries corrected{}",
            corrected.len(),
            if examples.is_empty() { String::new() } else { format!(" ({})", examples.join(", ")) }
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// How the tuned half was fitted and searched, and the validation grid of the settings for tuned vectors.
fn write_tuning(
    out: &mut String,
    half: &TunedHalf,
    tuned_counts: &[usize],
    validation: &TunedHalf,
    validated: &[(f32, f32, f64)],
) -> anyhow::Result<()> {
    writeln!(
        out,
        "Catalog tuning (\"tuned half\" rows): fitted on the {} products with even ids, described as \"gender colour article type\" \
         ({} distinct descriptions; {} bag words; fitted in {:.1} s); search runs over the {} products \
         with odd ids, titles only, on the queries with a relevant product there ({} / {} / {})",
        half.tuning.examples(),
        half.descriptions,
        half.tuning.words(),
        half.fit_seconds,
        half.items.len(),
        tuned_counts[0],
        tuned_counts[1],
        tuned_counts[2]
    )?;
    let tuned_defaults = SearchConfig::for_catalog_tuned_vectors();
    let default_weight = match tuned_defaults.fusion {
        Fusion::Weighted { lexical } => Some(lexical),
        Fusion::Rrf { .. } => None,
    };
    writeln!(
        out,
        "  Settings for tuned vectors, validated on another split (fitted on the {} products with ids = 0 mod 4, \
         searched over the {} with ids = 2 mod 4): hybrid NDCG@10 + Recall@50 summed over the three query sets, \
         by lexical coordination power and lexical weight:",
        validation.tuning.examples(),
        validation.items.len(),
    )?;
    for power in TUNED_COORDINATION_POWERS {
        let sums: Vec<String> = validated
            .iter()
            .filter(|(p, _, _)| *p == power)
            .map(|(p, weight, sum)| {
                let default = Some(*weight) == default_weight && *p == tuned_defaults.lexical_coordination;
                format!("{weight:.1} {sum:.4}{}", if default { " (default)" } else { "" })
            })
            .collect();
        writeln!(out, "    power {power}: {}", sums.join(", "))?;
    }
    writeln!(out)?;
    Ok(())
}

/// A protocol's verdict: (label, passed, lexical only at the headroom).
type Verdict = (String, bool, bool);

/// The goal, judged per protocol: the default hybrid against lexical only and semantic only, per metric, with a
/// bootstrap interval of the mean per-query difference; and the headroom any fusion could reach.
fn write_goal(out: &mut String, summary: Vec<(String, Scores, Scores, Scores)>) -> anyhow::Result<Vec<Verdict>> {
    writeln!(
        out,
        "Goal: the default hybrid beats lexical only and semantic only on both metrics, beyond noise: the 95% \
         bootstrap interval of the mean per-query difference ({BOOTSTRAP_RESAMPLES} resamples of the queries, \
         seed {BOOTSTRAP_SEED}) lies above zero"
    )?;
    let mut verdicts = Vec::new();
    for (label, lexical, semantic, hybrid) in summary {
        let all_significant = write_differences(out, &label, &lexical, &semantic, &hybrid)?;
        // What any fusion of the two lists could reach at most if it knew, per query, which list is better.
        let better_of = |recall: bool| -> f64 {
            let pick = |s: &(f64, f64)| if recall { s.1 } else { s.0 };
            lexical.iter().zip(&semantic).map(|(l, m)| pick(l).max(pick(m))).sum::<f64>() / lexical.len().max(1) as f64
        };
        writeln!(
            out,
            "    headroom: the better of lexical only and semantic only, chosen per query in hindsight, scores {:.4} / {:.4}",
            better_of(false),
            better_of(true)
        )?;
        let (lexical_ndcg, lexical_recall) = mean_scores(&lexical);
        let lexical_at_headroom = better_of(false) - lexical_ndcg < 1e-9 && better_of(true) - lexical_recall < 1e-9;
        if lexical_at_headroom {
            writeln!(
                out,
                "    lexical only is at the headroom on both metrics: semantic only is the better list on no query"
            )?;
        }
        verdicts.push((label, all_significant, lexical_at_headroom));
    }
    Ok(verdicts)
}

/// The protocol's PASS line and its four intervals; whether all four lie above zero.
fn write_differences(
    out: &mut String,
    label: &str,
    lexical: &Scores,
    semantic: &Scores,
    hybrid: &Scores,
) -> anyhow::Result<bool> {
    let metric = |scores: &[(f64, f64)], recall: bool| -> Vec<f64> {
        scores.iter().map(|s| if recall { s.1 } else { s.0 }).collect()
    };
    let mut all_significant = true;
    let mut lines = Vec::new();
    for (other_name, other) in [("lexical", lexical), ("semantic", semantic)] {
        for (metric_name, recall) in [("NDCG@10", false), ("Recall@50", true)] {
            let difference = paired_difference(&metric(hybrid, recall), &metric(other, recall));
            all_significant &= difference.significant();
            lines.push(format!(
                "    hybrid - {other_name:<8} {metric_name:<9} {:+.4}  95% CI [{:+.4}, {:+.4}]  \
                 queries better/same/worse {}/{}/{}{}",
                difference.mean,
                difference.low,
                difference.high,
                difference.wins,
                difference.ties,
                difference.losses,
                if difference.significant() {
                    ""
                } else if difference.high < 0.0 {
                    "  (significantly worse)"
                } else {
                    "  (not significant)"
                }
            ));
        }
    }
    writeln!(out, "  {label}: {}", super::pass(all_significant))?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(all_significant)
}

/// The verdict: the held-out protocol's query sets that pass, and elsewhere where lexical only is at the headroom
/// and what did not pass.
fn write_verdict(out: &mut String, verdicts: &[Verdict]) -> anyhow::Result<()> {
    let labels = |keep: &dyn Fn(&Verdict) -> bool| -> String {
        let kept: Vec<&str> = verdicts.iter().filter(|v| keep(v)).map(|v| v.0.as_str()).collect();
        if kept.is_empty() { "none".to_string() } else { kept.join("; ") }
    };
    let held_out = |v: &Verdict| v.0.starts_with(HELD_OUT_LABEL);
    writeln!(
        out,
        "Verdict: on products the catalog tuning never saw, searched as the server searches a catalog with category \
         paths (\"{HELD_OUT_LABEL}\"), {} of {} query sets PASS",
        verdicts.iter().filter(|v| held_out(v) && v.1).count(),
        verdicts.iter().filter(|v| held_out(v)).count()
    )?;
    writeln!(
        out,
        "  elsewhere, lexical only at the headroom (nothing for a hybrid to beat): {}",
        labels(&|v| !held_out(v) && v.2)
    )?;
    writeln!(out, "  elsewhere, not passed: {}", labels(&|v| !held_out(v) && !v.1 && !v.2))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paired_difference_is_significant_only_when_the_gain_is_consistent() {
        let same = [0.5; 40];
        let none = paired_difference(&same, &same);
        assert_eq!((none.mean, none.low, none.high), (0.0, 0.0, 0.0));
        assert_eq!((none.wins, none.ties, none.losses), (0, 40, 0));
        assert!(!none.significant());
        // One query much better and the rest equal: a higher mean, but a third of the resamples leave it out.
        let mut one_better = same;
        one_better[0] = 1.0;
        let one = paired_difference(&one_better, &same);
        assert!(one.mean > 0.0 && one.wins == 1 && one.low == 0.0 && !one.significant(), "{one:?}");
        // Every query a little better: significant, with the interval around the true gain.
        let all_better: Vec<f64> = same.iter().enumerate().map(|(i, x)| x + 0.01 + 0.001 * (i % 3) as f64).collect();
        let all = paired_difference(&all_better, &same);
        assert!(all.significant() && all.low > 0.01 - 1e-12 && all.high < 0.012 + 1e-12, "{all:?}");
        let worse = paired_difference(&same, &all_better);
        assert!(!worse.significant() && worse.losses == 40);
    }
}
