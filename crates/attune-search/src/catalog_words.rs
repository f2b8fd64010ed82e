//! The catalog's own words, worked out when the engine is built: each item's analysed terms as sorted numbers
//! (the all-terms-first rule asks whether a hit holds every query term), and every word as the catalog writes
//! it with how many items hold it (spelling correction reads a query word no item holds, or a rare one next to
//! a common one, as the catalog word it is a typo of).
//!
//! Both come from one pass over the texts the lexical index holds of each item, split and folded as the index
//! does ([`LexicalIndex::words`]); each distinct word is stemmed once.

use std::collections::HashMap;

use attune_core::Item;

use crate::lexical::{FUZZY_MIN_LEN, FUZZY_TWO_EDITS_MIN_LEN, LexicalIndex, indexed_texts};
use crate::numbering::Numbering;
use crate::text::EditDistance;

/// Candidate corrections tried per misspelt word (fewest edits first, then the most held).
const CORRECTIONS_TRIED: usize = 8;

/// The least share of the catalog's items that must hold a correction's term. A word no item holds is either a typo or a word the shop does not use (a brand it
/// does not carry): read as a typo only of a term common enough that the typo is the likelier story. Rare
/// catalog words ("koro", "hero" held by a handful of 44k products) otherwise capture brands like "kors" and
/// "herno".
const CORRECTION_MIN_SHARE: f64 = 0.001;

/// How many times as many items must hold a one-edit neighbour's term for a word the catalog does have to be
/// read as its typo. Roughly the odds of typing a word as written against mistyping its neighbour by that one
/// edit; well above the ratio of ordinary word pairs ("kurta" / "kurti").
const RARE_WORD_RATIO: usize = 100;

/// A word as the catalog writes it (lower-cased, accents folded), with its analysed term.
struct CatalogWord {
    text: String,
    letters: Box<[char]>,
    term: u32,
    /// How many items hold the word.
    items: u32,
}

pub(crate) struct CatalogWords {
    /// Analysed (stemmed) terms.
    terms: Numbering,
    /// Per term number, the positions of the items holding it, ascending.
    items_of_term: Vec<Vec<u32>>,
    /// Per item, the numbers of the terms it holds, ascending.
    terms_of_item: Vec<Box<[u32]>>,
    words: Vec<CatalogWord>,
    /// Word indices by length in characters.
    words_of_length: Vec<Vec<u32>>,
    /// Word indices in the order of their text, for prefix lookups.
    words_by_text: Vec<u32>,
    /// The most items holding one term (no correction can need more).
    most_items_of_a_term: usize,
}

impl CatalogWords {
    pub(crate) fn build(items: &[Item], lexical: &LexicalIndex) -> Self {
        let mut terms = Numbering::default();
        let mut items_of_term: Vec<Vec<u32>> = Vec::new();
        let mut words: Vec<CatalogWord> = Vec::new();
        let mut word_numbers: HashMap<String, u32> = HashMap::new();
        let mut terms_of_item = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            let mut held_words: Vec<u32> = Vec::new();
            for (_, word) in lexical.words(&indexed_texts(item).join(" ")) {
                let number = match word_numbers.get(&word) {
                    Some(number) => *number,
                    None => {
                        let term = terms.number(lexical.stem(&word));
                        items_of_term.resize_with(terms.len(), Vec::new);
                        let number = words.len() as u32;
                        words.push(CatalogWord { letters: word.chars().collect(), text: word.clone(), term, items: 0 });
                        word_numbers.insert(word, number);
                        number
                    }
                };
                held_words.push(number);
            }
            held_words.sort_unstable();
            held_words.dedup();
            let mut held_terms: Vec<u32> = held_words.iter().map(|w| words[*w as usize].term).collect();
            held_terms.sort_unstable();
            held_terms.dedup();
            for word in &held_words {
                words[*word as usize].items += 1;
            }
            for term in &held_terms {
                items_of_term[*term as usize].push(position as u32);
            }
            terms_of_item.push(held_terms.into_boxed_slice());
        }
        let mut words_of_length: Vec<Vec<u32>> = Vec::new();
        for (number, word) in words.iter().enumerate() {
            let length = word.letters.len();
            if words_of_length.len() <= length {
                words_of_length.resize_with(length + 1, Vec::new);
            }
            words_of_length[length].push(number as u32);
        }
        let mut words_by_text: Vec<u32> = (0..words.len() as u32).collect();
        words_by_text.sort_unstable_by(|a, b| words[*a as usize].text.cmp(&words[*b as usize].text));
        let most_items_of_a_term = items_of_term.iter().map(Vec::len).max().unwrap_or(0);
        Self { terms, items_of_term, terms_of_item, words, words_of_length, words_by_text, most_items_of_a_term }
    }

    /// Whether some catalog word starts with `prefix`.
    fn starts_some_word(&self, prefix: &str) -> bool {
        let at = self.words_by_text.partition_point(|number| self.words[*number as usize].text.as_str() < prefix);
        self.words_by_text.get(at).is_some_and(|number| self.words[*number as usize].text.starts_with(prefix))
    }

    /// The numbers of the analysed `terms` that some item holds (the others are left out).
    pub(crate) fn known_terms(&self, terms: &[String]) -> Vec<u32> {
        terms.iter().filter_map(|term| self.terms.get(term)).collect()
    }

    /// Whether the item at `position` holds every one of `terms`.
    pub(crate) fn holds_every(&self, position: usize, terms: &[u32]) -> bool {
        let held = &self.terms_of_item[position];
        terms.iter().all(|term| held.binary_search(term).is_ok())
    }

    /// The share of `terms` the item at `position` holds (1 for none).
    pub(crate) fn held_share(&self, position: usize, terms: &[u32]) -> f32 {
        if terms.is_empty() {
            return 1.0;
        }
        let held = &self.terms_of_item[position];
        terms.iter().filter(|term| held.binary_search(term).is_ok()).count() as f32 / terms.len() as f32
    }

    /// Whether some item holds every one of `terms` (true for none).
    fn some_item_holds(&self, terms: &[u32]) -> bool {
        let Some(rarest) = terms.iter().min_by_key(|term| self.items_of_term[**term as usize].len()) else {
            return true;
        };
        self.items_of_term[*rarest as usize].iter().any(|position| self.holds_every(*position as usize, terms))
    }

    /// `query` with its misspelt words replaced by the catalog words they are typos of, or `None` when nothing
    /// was replaced. A word of at least [`FUZZY_MIN_LEN`] letters (no digits, not one `keep` says to leave) is
    /// misspelt when no item holds it, or when it is one edit from a word whose term [`RARE_WORD_RATIO`] times
    /// as many items hold ("shits" in a shop with one such product and thousands of shirts). It is replaced by
    /// the first of its candidates — catalog words within the lexical index's fuzzy distance (one edit for a
    /// word the catalog has), fewer edits first, then the one more items hold — whose term at least
    /// [`CORRECTION_MIN_SHARE`] of the items hold and for which some item holds every term of the query read so
    /// far. A word without such a candidate stays as typed: a brand the shop does not carry is not turned into
    /// one it does. The last word of a query still being typed (no trailing space) that starts some catalog
    /// word is left for prefix matching ("cashm").
    pub(crate) fn correct(&self, lexical: &LexicalIndex, query: &str, keep: impl Fn(&str) -> bool) -> Option<String> {
        let words: Vec<(std::ops::Range<usize>, String, Option<u32>)> = lexical
            .words(query)
            .into_iter()
            .map(|(span, word)| {
                let term = self.terms.get(&lexical.stem(&word));
                (span, word, term)
            })
            .collect();
        // The query as read so far: every term the catalog has, each replaced by its correction once made.
        let mut read: Vec<u32> = words.iter().filter_map(|(_, _, term)| *term).collect();
        let least_items = (CORRECTION_MIN_SHARE * self.terms_of_item.len() as f64).ceil() as usize;
        let mut distance = EditDistance::default();
        let mut replaced: Vec<(std::ops::Range<usize>, &str)> = Vec::new();
        let as_you_type = !query.ends_with(char::is_whitespace);
        for (at, (span, word, term)) in words.iter().enumerate() {
            let letters: Vec<char> = word.chars().collect();
            if letters.len() < FUZZY_MIN_LEN
                || letters.iter().any(char::is_ascii_digit)
                || keep(word)
                || (as_you_type && at + 1 == words.len() && term.is_none() && self.starts_some_word(word))
            {
                continue;
            }
            let (most_edits, least_items) = match term {
                None => (usize::MAX, least_items),
                Some(term) => (1, least_items.max(RARE_WORD_RATIO * self.items_of_term[*term as usize].len())),
            };
            if least_items > self.most_items_of_a_term {
                continue;
            }
            if let Some(own) = term {
                let at = read.iter().position(|t| t == own).expect("known terms are read");
                read.remove(at);
            }
            let candidates = self.candidates(&letters, most_edits, least_items, &mut distance);
            let correction = candidates.into_iter().find(|candidate| {
                read.push(candidate.term);
                let held = self.some_item_holds(&read);
                read.pop();
                held
            });
            match (correction, term) {
                (Some(correction), _) => {
                    read.push(correction.term);
                    replaced.push((span.clone(), &correction.text));
                }
                (None, Some(own)) => read.push(*own),
                (None, None) => {}
            }
        }
        if replaced.is_empty() {
            return None;
        }
        let mut corrected = String::with_capacity(query.len());
        let mut from = 0;
        for (span, text) in replaced {
            corrected.push_str(&query[from..span.start]);
            corrected.push_str(text);
            from = span.end;
        }
        corrected.push_str(&query[from..]);
        Some(corrected)
    }

    /// Catalog words within the fuzzy distance of `letters` (and at most `most_edits`), other than `letters`
    /// itself, whose term at least `least_items` items hold: fewer edits first, then more items holding their
    /// term, then more holding the word, then catalog order; at most [`CORRECTIONS_TRIED`].
    fn candidates(
        &self,
        letters: &[char],
        most_edits: usize,
        least_items: usize,
        distance: &mut EditDistance,
    ) -> Vec<&CatalogWord> {
        let most_edits = most_edits.min(if letters.len() >= FUZZY_TWO_EDITS_MIN_LEN { 2 } else { 1 });
        let lengths = letters.len().saturating_sub(most_edits)..=letters.len() + most_edits;
        let mut found: Vec<(usize, u32)> = Vec::new();
        for length in lengths {
            for number in self.words_of_length.get(length).into_iter().flatten() {
                let known = &self.words[*number as usize];
                if self.items_of_term[known.term as usize].len() < least_items {
                    continue;
                }
                if let Some(edits @ 1..) = distance.at_most(letters, &known.letters, most_edits) {
                    found.push((edits, *number));
                }
            }
        }
        found.sort_by_key(|(edits, number)| {
            let word = &self.words[*number as usize];
            (*edits, std::cmp::Reverse((self.items_of_term[word.term as usize].len(), word.items)), *number)
        });
        found.into_iter().take(CORRECTIONS_TRIED).map(|(_, number)| &self.words[number as usize]).collect()
    }
}
