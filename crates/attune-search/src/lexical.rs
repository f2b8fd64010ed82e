//! Lexical retrieval: an in-RAM tantivy index over the catalog with BM25 per field, field boosts, typo
//! tolerance and search-as-you-type.
//!
//! Every text field is analysed the same way: split on non-alphanumerics, drop tokens over 40 bytes,
//! lower-case, fold accents to ASCII, drop English stop words, Porter-stem (English). A query term becomes, per
//! field, the exact stemmed term scored by BM25 times the field's boost, plus — for terms of at least 4
//! characters — a fuzzy term (Damerau–Levenshtein 1, or 2 from 8 characters) with a small constant score, so
//! an exact match always outranks a typo match. The last term, when the query does not end in a space, also
//! matches as a prefix (constant score), so "jack" already finds jackets. Terms are OR-ed; documents matching
//! more terms score higher.

use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use attune_core::Item;

use crate::error::SearchError;

const ANALYZER: &str = "attune_text";
const DOC_INDEX: &str = "doc_index";

/// Per-field BM25 multipliers: the title and brand say most about what a product is.
#[derive(Debug, Clone, Copy)]
pub struct FieldBoosts {
    pub title: f32,
    pub brand: f32,
    pub category: f32,
    pub attributes: f32,
    pub description: f32,
}

impl Default for FieldBoosts {
    fn default() -> Self {
        Self { title: 3.0, brand: 2.5, category: 2.0, attributes: 1.5, description: 0.5 }
    }
}

/// Constant score of a typo (fuzzy) match and of a prefix match, per unit of field boost. Small next to a
/// BM25 score of an exact term (typically 1–10), so exact matches rank first.
const FUZZY_SCORE: f32 = 0.3;
const PREFIX_SCORE: f32 = 0.4;

/// The tantivy index and how to query it.
pub struct LexicalIndex {
    reader: IndexReader,
    /// (field, boost) for every searched field.
    fields: Vec<(Field, f32)>,
    analyzer: TextAnalyzer,
    /// The same analysis without stemming: words as the catalog writes them.
    word_analyzer: TextAnalyzer,
    /// Per segment, the column mapping a tantivy doc id to the item's position in the engine.
    doc_index_columns: Vec<Column<u64>>,
}

/// The smallest query term length that gets typo tolerance, and the length from which two edits are allowed.
pub const FUZZY_MIN_LEN: usize = 4;
pub const FUZZY_TWO_EDITS_MIN_LEN: usize = 8;

/// The index's analysis: split, drop long tokens, lower-case, fold accents, drop stop words, and Porter-stem
/// when `stem` is set.
fn analyzer(stem: bool) -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .dynamic();
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter_dynamic(stop_words),
        None => builder,
    };
    if stem { builder.filter_dynamic(Stemmer::new(Language::English)).build() } else { builder.build() }
}

/// The text of an item's attribute values (colour, size, material, ...), space separated.
pub fn attribute_text(item: &Item) -> String {
    item.attributes.values().map(|v| v.to_text()).collect::<Vec<_>>().join(" ")
}

/// The texts the index holds of an item: title, brand, category path, attribute values, description (in
/// the order of the index's fields; an item without a brand has an empty brand text).
pub fn indexed_texts(item: &Item) -> [String; 5] {
    [
        item.title.clone(),
        item.brand.clone().unwrap_or_default(),
        item.category_path.join(" "),
        attribute_text(item),
        item.description.clone(),
    ]
}

impl LexicalIndex {
    /// Indexes `items`; item `i` is returned as `i` by [`LexicalIndex::search`].
    pub fn build(items: &[Item], boosts: FieldBoosts) -> Result<Self, SearchError> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs),
        );
        let title = schema.add_text_field("title", text.clone());
        let brand = schema.add_text_field("brand", text.clone());
        let category = schema.add_text_field("category", text.clone());
        let attributes = schema.add_text_field("attributes", text.clone());
        let description = schema.add_text_field("description", text);
        let doc_index = schema.add_u64_field(DOC_INDEX, FAST);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, analyzer(true));
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 64_000_000)?;
        for (position, item) in items.iter().enumerate() {
            let mut document = TantivyDocument::default();
            for (field, text) in [title, brand, category, attributes, description].into_iter().zip(indexed_texts(item))
            {
                if field != brand || item.brand.is_some() {
                    document.add_text(field, text);
                }
            }
            document.add_u64(doc_index, position as u64);
            writer.add_document(document)?;
        }
        writer.commit()?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let searcher = reader.searcher();
        let doc_index_columns = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.fast_fields().u64(DOC_INDEX))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = vec![
            (title, boosts.title),
            (brand, boosts.brand),
            (category, boosts.category),
            (attributes, boosts.attributes),
            (description, boosts.description),
        ];
        Ok(Self { reader, fields, analyzer: analyzer(true), word_analyzer: analyzer(false), doc_index_columns })
    }

    /// The analysed (lower-cased, folded, stemmed) terms of `text`, stop words removed.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms
    }

    /// The words of `text` as the index splits and folds them, before stemming (stop words removed), each
    /// with its byte range in `text`.
    pub fn words(&self, text: &str) -> Vec<(std::ops::Range<usize>, String)> {
        let mut analyzer = self.word_analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        while stream.advance() {
            let token = stream.token();
            words.push((token.offset_from..token.offset_to, token.text.clone()));
        }
        words
    }

    /// The analysed term of one word given by [`LexicalIndex::words`].
    pub fn stem(&self, word: &str) -> String {
        self.analyze(word).into_iter().next().unwrap_or_else(|| word.to_string())
    }

    fn build_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let terms = self.analyze(text);
        let as_you_type = !text.ends_with(char::is_whitespace);
        let last_raw: Option<String> =
            text.split_whitespace().last().map(|w| w.to_lowercase()).filter(|w| w.chars().count() >= 2);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (position, term) in terms.iter().enumerate() {
            let length = term.chars().count();
            let is_last = position + 1 == terms.len();
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for &(field, boost) in &self.fields {
                let exact = Term::from_field_text(field, term);
                alternatives.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(exact.clone(), IndexRecordOption::WithFreqs)),
                        boost,
                    )),
                ));
                if length >= FUZZY_MIN_LEN {
                    let distance = if length >= FUZZY_TWO_EDITS_MIN_LEN { 2 } else { 1 };
                    alternatives.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new(exact.clone(), distance, true)),
                            FUZZY_SCORE * boost,
                        )),
                    ));
                }
                if is_last && as_you_type && length >= 2 {
                    alternatives.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new_prefix(exact, 0, false)),
                            PREFIX_SCORE * boost,
                        )),
                    ));
                }
            }
            clauses.push((Occur::Should, Box::new(BooleanQuery::new(alternatives))));
        }
        // The raw last word as a prefix too: stemming "runn" gives no stem of "running".
        if as_you_type && let Some(raw) = last_raw.filter(|raw| terms.last().is_none_or(|t| t != raw)) {
            let folded: String = self.analyze_unstemmed(&raw);
            if folded.chars().count() >= 2 {
                let prefixes: Vec<(Occur, Box<dyn Query>)> = self
                    .fields
                    .iter()
                    .map(|&(field, boost)| {
                        let prefix: Box<dyn Query> = Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new_prefix(Term::from_field_text(field, &folded), 0, false)),
                            PREFIX_SCORE * boost,
                        ));
                        (Occur::Should, prefix)
                    })
                    .collect();
                clauses.push((Occur::Should, Box::new(BooleanQuery::new(prefixes))));
            }
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    fn analyze_unstemmed(&self, word: &str) -> String {
        word.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
    }

    /// The best `limit` items for `text` as (item position, BM25-based score), best first; ties by position.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<(usize, f32)>, SearchError> {
        let Some(query) = self.build_query(text) else { return Ok(Vec::new()) };
        let searcher = self.reader.searcher();
        let limit = limit.max(1);
        let top = searcher.search(&query, &TopDocs::with_limit(limit))?;
        let mut hits: Vec<(usize, f32)> = top
            .into_iter()
            .filter_map(|(score, DocAddress { segment_ord, doc_id })| {
                let position = self.doc_index_columns.get(segment_ord as usize)?.first(doc_id)?;
                Some((position as usize, score))
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits)
    }
}
