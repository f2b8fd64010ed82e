//! Autocomplete: suggestions for what a shopper has typed so far, from past queries (with how often they
//! were searched) and catalog titles.
//!
//! Entries are kept sorted by their normalised text (lower-case words joined by one space), so a prefix is a
//! binary search. Suggestions are ranked by popularity (count; past queries add a bonus over titles of the
//! same count), then shorter first, then alphabetically. When a prefix matches fewer suggestions than asked
//! for, its last word is corrected: every known word within one edit of it (or of its prefix of the same
//! length) is tried in its place, so "jakc" still suggests "jackets".

use std::collections::{BTreeSet, HashMap};

use crate::text::{within_edit_distance, words};

/// Where a suggestion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionSource {
    Query,
    Title,
}

/// One suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub text: String,
    /// Times searched (queries) or the caller's popularity (titles).
    pub count: u64,
    pub source: SuggestionSource,
    /// Whether the last typed word was corrected to find it.
    pub corrected: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    text: String,
    count: u64,
    source: SuggestionSource,
}

/// A prefix index of suggestions.
#[derive(Debug, Clone, Default)]
pub struct Autocomplete {
    entries: Vec<Entry>,
    vocabulary: Vec<String>,
}

fn key_of(text: &str) -> String {
    words(text).join(" ")
}

impl Autocomplete {
    /// Builds the index from past queries with their counts and catalog titles with a popularity each.
    /// Duplicate texts are merged (counts add up; a query wins over a title).
    pub fn new<'a>(
        queries: impl IntoIterator<Item = (&'a str, u64)>,
        titles: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Self {
        let mut merged: HashMap<String, Entry> = HashMap::new();
        let sources = queries
            .into_iter()
            .map(|(t, c)| (t, c, SuggestionSource::Query))
            .chain(titles.into_iter().map(|(t, c)| (t, c, SuggestionSource::Title)));
        for (text, count, source) in sources {
            let key = key_of(text);
            if key.is_empty() {
                continue;
            }
            let entry = merged.entry(key.clone()).or_insert_with(|| Entry {
                key,
                text: text.trim().to_string(),
                count: 0,
                source,
            });
            entry.count += count;
        }
        let mut entries: Vec<Entry> = merged.into_values().collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let vocabulary: BTreeSet<String> =
            entries.iter().flat_map(|e| e.key.split(' ').map(str::to_string).collect::<Vec<_>>()).collect();
        Self { entries, vocabulary: vocabulary.into_iter().collect() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn with_prefix(&self, prefix: &str) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.key.as_str() < prefix);
        let end = start + self.entries[start..].partition_point(|e| e.key.starts_with(prefix));
        &self.entries[start..end]
    }

    /// Up to `limit` suggestions for `typed`, most popular first.
    pub fn suggest(&self, typed: &str, limit: usize) -> Vec<Suggestion> {
        let typed_words = words(typed);
        if typed_words.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut prefix = typed_words.join(" ");
        if typed.ends_with(char::is_whitespace) {
            prefix.push(' ');
        }
        let mut found: Vec<(&Entry, bool)> = self.with_prefix(&prefix).iter().map(|e| (e, false)).collect();
        let last = typed_words.last().map(String::as_str).unwrap_or_default();
        if found.len() < limit && last.chars().count() >= 3 && !typed.ends_with(char::is_whitespace) {
            let head = &typed_words[..typed_words.len() - 1];
            let length = last.chars().count();
            let mut corrections: BTreeSet<String> = BTreeSet::new();
            for word in &self.vocabulary {
                let word_prefix: String = word.chars().take(length).collect();
                if word != last && (within_edit_distance(last, word, 1) || within_edit_distance(last, &word_prefix, 1))
                {
                    corrections.insert(word_prefix);
                }
            }
            corrections.remove(last);
            for correction in corrections {
                let corrected = head.iter().cloned().chain([correction]).collect::<Vec<_>>().join(" ");
                for entry in self.with_prefix(&corrected) {
                    if !found.iter().any(|(e, _)| e.key == entry.key) {
                        found.push((entry, true));
                    }
                }
            }
        }
        let bonus = |e: &Entry| u64::from(e.source == SuggestionSource::Query);
        found.sort_by(|(a, a_corrected), (b, b_corrected)| {
            a_corrected
                .cmp(b_corrected)
                .then((b.count + bonus(b)).cmp(&(a.count + bonus(a))))
                .then(a.key.len().cmp(&b.key.len()))
                .then(a.key.cmp(&b.key))
        });
        found
            .into_iter()
            .take(limit)
            .map(|(e, corrected)| Suggestion { text: e.text.clone(), count: e.count, source: e.source, corrected })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_popularity_and_typos() {
        let index = Autocomplete::new(
            [("jackets", 10), ("jeans", 4), ("women jackets", 2), ("jacket leather", 1)],
            [("Roadster Men Black Jacket", 0)],
        );
        let texts = |s: Vec<Suggestion>| s.into_iter().map(|s| s.text).collect::<Vec<_>>();
        assert_eq!(texts(index.suggest("ja", 5)), vec!["jackets", "jacket leather"]);
        assert_eq!(texts(index.suggest("J", 2)), vec!["jackets", "jeans"]);
        assert_eq!(texts(index.suggest("women ja", 5)), vec!["women jackets"]);
        let corrected = index.suggest("jakc", 5);
        assert!(corrected.iter().any(|s| s.text == "jackets" && s.corrected), "{corrected:?}");
        assert!(index.suggest("", 5).is_empty());
        assert_eq!(texts(index.suggest("roadster", 5)), vec!["Roadster Men Black Jacket"]);
    }
}
