//! Strings numbered in the order they are first seen, so per-item data built with the engine (facet values,
//! analysed terms) holds small numbers and a query compares numbers instead of strings.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct Numbering {
    numbers: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Numbering {
    /// The number of `text`, given it the first time it is seen.
    pub(crate) fn number(&mut self, text: String) -> u32 {
        *self.numbers.entry(text).or_insert_with_key(|text| {
            self.texts.push(text.clone());
            (self.texts.len() - 1) as u32
        })
    }

    /// The number of `text`, if it has been seen.
    pub(crate) fn get(&self, text: &str) -> Option<u32> {
        self.numbers.get(text).copied()
    }

    pub(crate) fn text(&self, number: u32) -> &str {
        &self.texts[number as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }
}
