//! Query understanding: turns what a shopper types ("warm jumper for winter under 40 pounds", "red dress size
//! 12 between £20 and £40") into a price range, attribute constraints (colour, size, gender) and the remaining
//! free text.
//!
//! Price phrases are recognised by a small token grammar (`under|below|less than|cheaper than|max|up to|at
//! most N`, `over|above|more than|min|at least|from N`, `between N and M`, `N-M`, `N to M`, with optional
//! `£ $ €` signs and `pounds|dollars|euros|gbp|usd|eur` units). Colour, size and gender words are looked up in
//! a vocabulary learned from the catalog's own attribute values plus common synonyms (grey/gray, mens/men's,
//! ladies → women, ...). Sizes are only taken after the word `size` unless they are unambiguous letter sizes
//! (`xs`, `xl`, `xxl`, ...), so "m" in a brand name never becomes a size.

use std::collections::{BTreeSet, HashMap};

use attune_core::Item;

use crate::text::{singular, words};

/// Attribute names read as colour, size and gender (compared lower-cased).
pub const COLOUR_KEYS: &[&str] = &["colour", "color", "basecolour", "base_colour", "base colour"];
pub const SIZE_KEYS: &[&str] = &["size"];
pub const GENDER_KEYS: &[&str] = &["gender"];

/// The kind of attribute a query phrase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributeKind {
    Colour,
    Size,
    Gender,
}

impl AttributeKind {
    /// The attribute names this kind is read from.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Colour => COLOUR_KEYS,
            Self::Size => SIZE_KEYS,
            Self::Gender => GENDER_KEYS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Colour => "colour",
            Self::Size => "size",
            Self::Gender => "gender",
        }
    }
}

/// The value of `item`'s attribute of this kind, if it has one, lower-cased.
pub fn item_attribute(item: &Item, kind: AttributeKind) -> Option<String> {
    item.attributes
        .iter()
        .find(|(key, _)| kind.keys().contains(&key.to_lowercase().as_str()))
        .map(|(_, value)| value.to_text().to_lowercase())
}

/// Colour, size and gender values a query can name, learned from a catalog.
#[derive(Debug, Clone, Default)]
pub struct QueryVocabulary {
    /// Normalised phrase (singular words joined by spaces) → (kind, catalog value lower-cased).
    phrases: HashMap<String, (AttributeKind, String)>,
    /// Sizes by normalised phrase; matched only after "size" unless unambiguous.
    sizes: HashMap<String, String>,
    longest_phrase: usize,
}

const COLOUR_SYNONYMS: &[(&str, &str)] = &[("gray", "grey"), ("grey", "gray"), ("navy", "navy blue")];
const GENDER_SYNONYMS: &[(&str, &[&str])] = &[
    ("men", &["men", "mens", "man", "male", "gents", "gent"]),
    ("women", &["women", "womens", "woman", "female", "ladies", "lady"]),
    ("boys", &["boys", "boy"]),
    ("girls", &["girls", "girl"]),
    ("unisex", &["unisex"]),
    ("kids", &["kids", "kid", "children", "child"]),
];
const UNAMBIGUOUS_SIZES: &[&str] = &["xxs", "xs", "xl", "xxl", "xxxl", "2xl", "3xl"];

impl QueryVocabulary {
    /// Learns the vocabulary from the catalog's colour, size and gender attribute values.
    pub fn from_items(items: &[Item]) -> Self {
        let mut values: HashMap<AttributeKind, BTreeSet<String>> = HashMap::new();
        for item in items {
            for kind in [AttributeKind::Colour, AttributeKind::Size, AttributeKind::Gender] {
                if let Some(value) = item_attribute(item, kind) {
                    values.entry(kind).or_default().insert(value);
                }
            }
        }
        let mut vocabulary = Self::default();
        for colour in values.get(&AttributeKind::Colour).into_iter().flatten() {
            vocabulary.add_phrase(colour, AttributeKind::Colour, colour);
            for (synonym, canonical) in COLOUR_SYNONYMS {
                if colour == canonical {
                    vocabulary.add_phrase(synonym, AttributeKind::Colour, colour);
                }
                if colour.contains(canonical) && !colour.contains(synonym) && canonical.len() == synonym.len() {
                    vocabulary.add_phrase(&colour.replace(canonical, synonym), AttributeKind::Colour, colour);
                }
            }
        }
        for gender in values.get(&AttributeKind::Gender).into_iter().flatten() {
            vocabulary.add_phrase(gender, AttributeKind::Gender, gender);
            let key = singular(&words(gender).join(" "));
            for (canonical, synonyms) in GENDER_SYNONYMS {
                if singular(canonical) == key {
                    for synonym in *synonyms {
                        vocabulary.add_phrase(synonym, AttributeKind::Gender, gender);
                    }
                }
            }
        }
        for size in values.get(&AttributeKind::Size).into_iter().flatten() {
            let key = words(size).join(" ");
            if !key.is_empty() {
                vocabulary.sizes.insert(key, size.clone());
            }
        }
        vocabulary
    }

    fn add_phrase(&mut self, phrase: &str, kind: AttributeKind, value: &str) {
        let key: Vec<String> = words(phrase).iter().map(|w| singular(w)).collect();
        if key.is_empty() {
            return;
        }
        self.longest_phrase = self.longest_phrase.max(key.len());
        self.phrases.entry(key.join(" ")).or_insert((kind, value.to_string()));
    }

    /// Whether `word` (lower-cased) alone names a colour, gender or size, or is a synonym of one ("ladies").
    pub fn knows_word(&self, word: &str) -> bool {
        self.phrases.contains_key(&singular(word)) || self.sizes.contains_key(word)
    }

    /// Whether the vocabulary knows no attribute values (e.g. a catalog without colour/size/gender).
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty() && self.sizes.is_empty()
    }
}

/// One thing the query understood, with the words it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Understood {
    /// A price bound in major currency units (e.g. pounds).
    PriceAtMost {
        amount: f64,
        phrase: String,
    },
    PriceAtLeast {
        amount: f64,
        phrase: String,
    },
    PriceBetween {
        min: f64,
        max: f64,
        phrase: String,
    },
    /// An attribute value of the catalog (lower-cased), e.g. colour `navy blue`.
    Attribute {
        kind: AttributeKind,
        value: String,
        phrase: String,
    },
}

/// The result of query understanding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedQuery {
    /// The words left for text retrieval (price phrases removed; attribute words kept, the engine decides).
    pub text: String,
    /// The text with attribute words removed as well.
    pub text_without_attributes: String,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    /// Attribute constraints: kind → accepted values (lower-cased).
    pub attributes: Vec<(AttributeKind, String)>,
    pub understood: Vec<Understood>,
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Word,
    Number(f64),
    Currency,
    Dash,
    Less,
    Greater,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    text: String,
    start: usize,
    end: usize,
}

fn lex(query: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = query.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map(|(b, _)| *b).unwrap_or(query.len());
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.' || chars[j].1 == ',') {
                j += 1;
            }
            let text: String = query[start..end_of(j)].trim_end_matches(['.', ',']).replace(',', "");
            let end = start + query[start..end_of(j)].trim_end_matches(['.', ',']).len();
            let kind = text.parse::<f64>().map(TokenKind::Number).unwrap_or(TokenKind::Word);
            // A number glued to letters ("sun68", "2xl") is a word.
            let glued_before = i > 0 && chars[i - 1].1.is_alphabetic();
            let glued_after = j < chars.len() && chars[j].1.is_alphabetic() && !is_unit_start(query, end_of(j));
            let kind = if glued_before || glued_after { TokenKind::Word } else { kind };
            tokens.push(Token { kind, text, start, end });
            i = chars.iter().position(|(b, _)| *b >= end).unwrap_or(chars.len());
        } else if c.is_alphabetic() || c == '\'' {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '\'') {
                j += 1;
            }
            let text = query[start..end_of(j)].to_lowercase().replace('\'', "");
            tokens.push(Token { kind: TokenKind::Word, text, start, end: end_of(j) });
            i = j;
        } else {
            let kind = match c {
                '£' | '$' | '€' => Some(TokenKind::Currency),
                '-' | '–' => Some(TokenKind::Dash),
                '<' => Some(TokenKind::Less),
                '>' => Some(TokenKind::Greater),
                _ => None,
            };
            if let Some(kind) = kind {
                tokens.push(Token { kind, text: c.to_string(), start, end: end_of(i + 1) });
            }
            i += 1;
        }
    }
    tokens
}

const UNITS: &[&str] = &["pounds", "pound", "gbp", "quid", "dollars", "dollar", "usd", "euros", "euro", "eur", "p"];

fn is_unit_start(query: &str, byte: usize) -> bool {
    let rest: String = query[byte..].chars().take_while(|c| c.is_alphabetic()).collect::<String>().to_lowercase();
    UNITS.contains(&rest.as_str())
}

const UPPER_PHRASES: &[&[&str]] = &[
    &["under"],
    &["below"],
    &["less", "than"],
    &["cheaper", "than"],
    &["max"],
    &["maximum"],
    &["up", "to"],
    &["at", "most"],
    &["no", "more", "than"],
    &["within"],
];
const LOWER_PHRASES: &[&[&str]] = &[
    &["over"],
    &["above"],
    &["more", "than"],
    &["min"],
    &["minimum"],
    &["at", "least"],
    &["from"],
    &["starting", "at"],
];

/// Whether `word` (lower-cased) belongs to the price grammar ("under", "between", "pounds", ...), so it is
/// no typo of a catalog word.
pub fn is_price_word(word: &str) -> bool {
    UPPER_PHRASES.iter().chain(LOWER_PHRASES).any(|phrase| phrase.contains(&word))
        || UNITS.contains(&word)
        || ["between", "and", "to", "size"].contains(&word)
}

struct PriceParser<'a> {
    tokens: &'a [Token],
}

impl PriceParser<'_> {
    fn word_is(&self, i: usize, word: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == TokenKind::Word && t.text == word)
    }

    fn phrase_at(&self, i: usize, phrases: &[&[&str]]) -> Option<usize> {
        phrases.iter().filter(|p| p.iter().enumerate().all(|(k, w)| self.word_is(i + k, w))).map(|p| i + p.len()).max()
    }

    /// A price at `i`: optional currency sign, a number, optional currency sign or unit. Returns the amount,
    /// the index after it and whether a currency marker was present.
    fn price_at(&self, i: usize) -> Option<(f64, usize, bool)> {
        let mut j = i;
        let mut marked = false;
        if self.tokens.get(j).is_some_and(|t| t.kind == TokenKind::Currency) {
            j += 1;
            marked = true;
        }
        let TokenKind::Number(amount) = self.tokens.get(j)?.kind else { return None };
        j += 1;
        if self.tokens.get(j).is_some_and(|t| t.kind == TokenKind::Currency)
            || self.tokens.get(j).is_some_and(|t| t.kind == TokenKind::Word && UNITS.contains(&t.text.as_str()))
        {
            j += 1;
            marked = true;
        }
        Some((amount, j, marked))
    }

    /// A range `N-M`, `N to M`, `N and M` starting at `i`.
    fn range_at(&self, i: usize, allow_and: bool) -> Option<(f64, f64, usize, bool)> {
        let (low, j, marked_low) = self.price_at(i)?;
        let separator = self.tokens.get(j)?;
        let is_separator = separator.kind == TokenKind::Dash
            || (separator.kind == TokenKind::Word
                && (separator.text == "to" || (allow_and && separator.text == "and")));
        if !is_separator {
            return None;
        }
        let (high, k, marked_high) = self.price_at(j + 1)?;
        Some((low.min(high), low.max(high), k, marked_low || marked_high))
    }
}

/// Understands `query` with the catalog `vocabulary`.
pub fn parse_query(query: &str, vocabulary: &QueryVocabulary) -> ParsedQuery {
    let tokens = lex(query);
    let parser = PriceParser { tokens: &tokens };
    let mut consumed = vec![false; tokens.len()];
    let mut parsed = ParsedQuery::default();
    let phrase_of = |from: usize, to: usize| query[tokens[from].start..tokens[to - 1].end].to_string();
    let mut i = 0;
    while i < tokens.len() {
        let mut matched: Option<(usize, Understood)> = None;
        if parser.word_is(i, "between")
            && let Some((min, max, end, _)) = parser.range_at(i + 1, true)
        {
            matched = Some((end, Understood::PriceBetween { min, max, phrase: phrase_of(i, end) }));
        }
        let upper = parser
            .phrase_at(i, UPPER_PHRASES)
            .or_else(|| (tokens[i].kind == TokenKind::Less).then_some(i + 1 + usize::from(parser.word_is(i + 1, "="))));
        if matched.is_none()
            && let Some(after) = upper
            && let Some((amount, end, _)) = parser.price_at(after)
        {
            matched = Some((end, Understood::PriceAtMost { amount, phrase: phrase_of(i, end) }));
        }
        let lower =
            parser.phrase_at(i, LOWER_PHRASES).or_else(|| (tokens[i].kind == TokenKind::Greater).then_some(i + 1));
        if matched.is_none()
            && let Some(after) = lower
        {
            // "from 20 to 40" is a range; "over 100" a lower bound.
            if let Some((min, max, end, _)) = parser.range_at(after, false) {
                matched = Some((end, Understood::PriceBetween { min, max, phrase: phrase_of(i, end) }));
            } else if let Some((amount, end, _)) = parser.price_at(after) {
                matched = Some((end, Understood::PriceAtLeast { amount, phrase: phrase_of(i, end) }));
            }
        }
        // A bare "20-40" or "£20 to £40"; a range right after "size" is a size, not a price.
        if matched.is_none()
            && let Some((min, max, end, _)) = parser.range_at(i, false)
            && !(i > 0 && parser.word_is(i - 1, "size"))
        {
            matched = Some((end, Understood::PriceBetween { min, max, phrase: phrase_of(i, end) }));
        }
        // "£40" alone reads as a budget.
        if matched.is_none()
            && let Some((amount, end, true)) = parser.price_at(i)
        {
            matched = Some((end, Understood::PriceAtMost { amount, phrase: phrase_of(i, end) }));
        }
        if let Some((end, understood)) = matched {
            consumed[i..end].iter_mut().for_each(|c| *c = true);
            // "for under 40": the "for" belongs to the price phrase.
            if i > 0 && parser.word_is(i - 1, "for") {
                consumed[i - 1] = true;
            }
            match &understood {
                Understood::PriceAtMost { amount, .. } => {
                    parsed.price_max = Some(parsed.price_max.map_or(*amount, |m: f64| m.min(*amount)))
                }
                Understood::PriceAtLeast { amount, .. } => {
                    parsed.price_min = Some(parsed.price_min.map_or(*amount, |m: f64| m.max(*amount)))
                }
                Understood::PriceBetween { min, max, .. } => {
                    parsed.price_min = Some(parsed.price_min.map_or(*min, |m: f64| m.max(*min)));
                    parsed.price_max = Some(parsed.price_max.map_or(*max, |m: f64| m.min(*max)));
                }
                Understood::Attribute { .. } => {}
            }
            parsed.understood.push(understood);
            i = end;
        } else {
            i += 1;
        }
    }

    let mut attribute_word = vec![false; tokens.len()];
    let mut i = 0;
    while i < tokens.len() {
        if consumed[i] || tokens[i].kind == TokenKind::Currency || tokens[i].kind == TokenKind::Dash {
            i += 1;
            continue;
        }
        // Sizes: "size 12", "size m", "size uk 8"; or unambiguous letter sizes anywhere.
        if parser.word_is(i, "size") {
            let best = (1..=3).rev().filter(|n| i + 1 + n <= tokens.len()).find_map(|n| {
                let key = tokens[i + 1..i + 1 + n].iter().map(|t| t.text.to_lowercase()).collect::<Vec<_>>().join(" ");
                vocabulary.sizes.get(&key).map(|value| (n, value.clone()))
            });
            if let Some((n, value)) = best {
                let phrase = phrase_of(i, i + 1 + n);
                attribute_word[i..i + 1 + n].iter_mut().for_each(|w| *w = true);
                parsed.attributes.push((AttributeKind::Size, value.clone()));
                parsed.understood.push(Understood::Attribute { kind: AttributeKind::Size, value, phrase });
                i += 1 + n;
                continue;
            }
        }
        if tokens[i].kind == TokenKind::Word
            && UNAMBIGUOUS_SIZES.contains(&tokens[i].text.as_str())
            && let Some(value) = vocabulary.sizes.get(&tokens[i].text)
        {
            attribute_word[i] = true;
            parsed.attributes.push((AttributeKind::Size, value.clone()));
            parsed.understood.push(Understood::Attribute {
                kind: AttributeKind::Size,
                value: value.clone(),
                phrase: phrase_of(i, i + 1),
            });
            i += 1;
            continue;
        }
        let longest = vocabulary.longest_phrase.min(tokens.len() - i);
        let found = (1..=longest).rev().find_map(|n| {
            let span = &tokens[i..i + n];
            if span.iter().enumerate().any(|(k, t)| t.kind != TokenKind::Word || consumed[i + k]) {
                return None;
            }
            let key = span.iter().map(|t| singular(&t.text)).collect::<Vec<_>>().join(" ");
            vocabulary.phrases.get(&key).map(|found| (n, found.clone()))
        });
        if let Some((n, (kind, value))) = found {
            attribute_word[i..i + n].iter_mut().for_each(|w| *w = true);
            if !parsed.attributes.contains(&(kind, value.clone())) {
                parsed.attributes.push((kind, value.clone()));
            }
            parsed.understood.push(Understood::Attribute { kind, value, phrase: phrase_of(i, i + n) });
            i += n;
        } else {
            i += 1;
        }
    }

    let keep = |with_attributes: bool| {
        let mut out = String::new();
        for (k, token) in tokens.iter().enumerate() {
            let dropped = consumed[k] || (!with_attributes && attribute_word[k]);
            if !dropped && matches!(token.kind, TokenKind::Word | TokenKind::Number(_)) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&query[token.start..token.end]);
            }
        }
        out
    };
    parsed.text = keep(true);
    parsed.text_without_attributes = keep(false);
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> QueryVocabulary {
        QueryVocabulary::default()
    }

    #[test]
    fn price_phrases() {
        let cases: &[(&str, Option<f64>, Option<f64>, &str)] = &[
            ("warm jumper for winter under 40 pounds", None, Some(40.0), "warm jumper for winter"),
            ("jumper below £40", None, Some(40.0), "jumper"),
            ("less than 40 pounds dress", None, Some(40.0), "dress"),
            ("boots over 100", Some(100.0), None, "boots"),
            ("bag between 20 and 40", Some(20.0), Some(40.0), "bag"),
            ("bag 20-40", Some(20.0), Some(40.0), "bag"),
            ("bag £20 - £40", Some(20.0), Some(40.0), "bag"),
            ("shirt cheaper than 30", None, Some(30.0), "shirt"),
            ("shirt max 50", None, Some(50.0), "shirt"),
            ("shirt up to $25.50", None, Some(25.5), "shirt"),
            ("coat at least 60 euros", Some(60.0), None, "coat"),
            ("sun68 sneakers", None, None, "sun68 sneakers"),
            ("jeans for £30", None, Some(30.0), "jeans"),
        ];
        for (query, min, max, text) in cases {
            let parsed = parse_query(query, &empty());
            assert_eq!((parsed.price_min, parsed.price_max), (*min, *max), "{query}");
            assert_eq!(parsed.text, *text, "{query}");
        }
    }

    #[test]
    fn plain_numbers_stay_text() {
        let parsed = parse_query("iphone 13 case", &empty());
        assert_eq!(parsed.price_max, None);
        assert_eq!(parsed.text, "iphone 13 case");
    }
}
