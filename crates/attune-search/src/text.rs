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
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let width = b.len() + 1;
    let big = max + 1;
    let mut prev2 = vec![big; width];
    let mut prev: Vec<usize> = (0..width).map(|j| j.min(big)).collect();
    let mut current = vec![big; width];
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
            return false;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut current);
    }
    prev[b.len()] <= max
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
    }

    #[test]
    fn words_split_and_fold_case() {
        assert_eq!(words("Men's Navy-Blue  T-shirt"), vec!["mens", "navy", "blue", "t", "shirt"]);
    }
}
