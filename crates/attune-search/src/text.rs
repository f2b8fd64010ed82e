//! Small text helpers shared by query understanding, facets and autocomplete: lower-cased word splitting,
//! a light English singular form, and a bounded edit distance.

/// Lower-cased words of `text`: runs of letters, digits and apostrophes (apostrophes are dropped).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.chars().filter(|c| *c != '\'').flat_map(char::to_lowercase).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// A light singular form for matching vocabulary: `dresses` → `dress`, `jackets` → `jacket`,
/// `accessories` → `accessory`, `glasses` stays `glass`. Words of three letters or fewer are kept.
pub fn singular(word: &str) -> String {
    if word.len() <= 3 || !word.is_ascii() {
        return word.to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if word.ends_with(suffix) {
            return word[..word.len() - 2].to_string();
        }
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return word.to_string();
    }
    word.strip_suffix('s').map(str::to_string).unwrap_or_else(|| word.to_string())
}

/// The words of `text`, each in its singular form, joined by single spaces.
pub fn normalized_phrase(text: &str) -> String {
    words(text).iter().map(|w| singular(w)).collect::<Vec<_>>().join(" ")
}

/// Whether the Damerau–Levenshtein (optimal string alignment) distance between `a` and `b` is at most
/// `max`. Runs in O(len · (2·max+1)) by only filling the band around the diagonal.
pub fn within_edit_distance(a: &str, b: &str, max: usize) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    EditDistance::default().at_most(&a, &b, max).is_some()
}

/// The banded Damerau–Levenshtein (optimal string alignment) computation with its rows kept between calls,
/// for comparing one word with many.
#[derive(Debug, Default)]
pub struct EditDistance {
    /// Rows i − 2, i − 1 and i of the table.
    rows: [Vec<usize>; 3],
}

impl EditDistance {
    /// The distance between `a` and `b` if it is at most `max`.
    pub fn at_most(&mut self, a: &[char], b: &[char], max: usize) -> Option<usize> {
        if a.len().abs_diff(b.len()) > max {
            return None;
        }
        let width = b.len() + 1;
        let big = max + 1;
        let [prev2, prev, current] = &mut self.rows;
        for row in [&mut *prev2, &mut *prev, &mut *current] {
            row.clear();
            row.resize(width, big);
        }
        prev.iter_mut().enumerate().for_each(|(j, c)| *c = j.min(big));
        for i in 1..=a.len() {
            current.iter_mut().for_each(|c| *c = big);
            current[0] = i.min(big);
            let low = i.saturating_sub(max).max(1);
            let high = (i + max).min(b.len());
            let mut row_min = current[0];
            for j in low..=high {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut value = (prev[j - 1] + cost).min(prev[j] + 1).min(current[j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    value = value.min(prev2[j - 2] + 1);
                }
                current[j] = value.min(big);
                row_min = row_min.min(current[j]);
            }
            if row_min > max {
                return None;
            }
            std::mem::swap(prev2, prev);
            std::mem::swap(prev, current);
        }
        Some(prev[b.len()]).filter(|distance| *distance <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_forms() {
        assert_eq!(singular("jackets"), "jacket");
        assert_eq!(singular("dresses"), "dress");
        assert_eq!(singular("accessories"), "accessory");
        assert_eq!(singular("watches"), "watch");
        assert_eq!(singular("dress"), "dress");
        assert_eq!(singular("bag"), "bag");
    }

    #[test]
    fn edit_distance_bounds() {
        assert!(within_edit_distance("jaket", "jacket", 1));
        assert!(within_edit_distance("adidsa", "adidas", 1));
        assert!(!within_edit_distance("jaket", "jackets", 1));
        assert!(within_edit_distance("jaket", "jackets", 2));
        assert!(within_edit_distance("", "ab", 2));
        assert!(!within_edit_distance("shoe", "shirt", 2));
        let letters = |w: &str| w.chars().collect::<Vec<char>>();
        let mut distance = EditDistance::default();
        assert_eq!(distance.at_most(&letters("jaket"), &letters("jackets"), 2), Some(2));
        assert_eq!(distance.at_most(&letters("jacket"), &letters("jacket"), 2), Some(0));
        assert_eq!(distance.at_most(&letters("jcaket"), &letters("jacket"), 2), Some(1));
        assert_eq!(distance.at_most(&letters("jaket"), &letters("jackets"), 1), None);
    }

    /// The optimal string alignment distance, filling the whole table.
    fn full_distance(a: &[char], b: &[char]) -> usize {
        let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in table.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in table[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut value = (table[i - 1][j - 1] + cost).min(table[i - 1][j] + 1).min(table[i][j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    value = value.min(table[i - 2][j - 2] + 1);
                }
                table[i][j] = value;
            }
        }
        table[a.len()][b.len()]
    }

    proptest::proptest! {
        /// The banded computation, reused across calls, gives the full table's distance whenever it is within
        /// the bound, and nothing otherwise.
        #[test]
        fn the_banded_distance_agrees_with_the_full_table(
            pairs in proptest::collection::vec(("[abc]{0,9}", "[abc]{0,9}", 0usize..4), 1..20)
        ) {
            let mut distance = EditDistance::default();
            for (a, b, max) in pairs {
                let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
                let full = full_distance(&a, &b);
                proptest::prop_assert_eq!(distance.at_most(&a, &b, max), (full <= max).then_some(full));
            }
        }
    }

    #[test]
    fn words_split_and_fold_case() {
        assert_eq!(words("Men's Navy-Blue  T-shirt"), vec!["mens", "navy", "blue", "t", "shirt"]);
    }
}
