//! Display helpers shared by the console and the storefront: numbers, money, dates, titles and URL
//! encoding. Everything here returns plain text; maud escapes it when it is rendered.

use attune_core::money::group_thousands;
use attune_core::{Money, Timestamp};

/// `1234567` as `1,234,567`.
pub fn count(value: u64) -> String {
    group_thousands(&value.to_string())
}

/// A price with its currency symbol where one is well known (`£1,234.50`), else `1,234.50 CHF`.
pub fn money(value: &Money) -> String {
    value.formatted()
}

/// `1 Dec 2010`.
pub fn date(value: Timestamp) -> String {
    value.to_datetime().format("%-d %b %Y").to_string()
}

/// `1 Dec 2010, 08:26`, in UTC.
pub fn date_time(value: Timestamp) -> String {
    value.to_datetime().format("%-d %b %Y, %H:%M").to_string()
}

/// Machine-readable time for `<time datetime=...>`.
pub fn iso(value: Timestamp) -> String {
    value.to_string()
}

/// Shop catalogs often keep titles in capitals (`WHITE HANGING HEART T-LIGHT HOLDER`); the storefront
/// shows those in title case. Titles with any lowercase letter are kept exactly as written.
pub fn display_title(title: &str) -> String {
    if title.chars().any(char::is_lowercase) {
        return title.to_string();
    }
    const SMALL_WORDS: [&str; 10] = ["a", "an", "and", "of", "the", "in", "on", "for", "with", "to"];
    let mut out = String::with_capacity(title.len());
    for (index, word) in title.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let lower = word.to_lowercase();
        if index > 0 && SMALL_WORDS.contains(&lower.as_str()) {
            out.push_str(&lower);
            continue;
        }
        let mut start_of_part = true;
        for c in lower.chars() {
            if start_of_part && c.is_alphabetic() {
                out.extend(c.to_uppercase());
                start_of_part = false;
            } else {
                out.push(c);
                if matches!(c, '-' | '/' | '(' | '&' | '+' | '.') {
                    start_of_part = true;
                } else if c.is_alphanumeric() {
                    start_of_part = false;
                }
            }
        }
    }
    out
}

/// Up to two letters naming a product, for its placeholder image: the initials of its first two words
/// that start with a letter, skipping little words ("Pack of 72 cake cases" → "PC").
pub fn initials(title: &str) -> String {
    const SKIP: [&str; 9] = ["a", "an", "and", "of", "the", "with", "for", "in", "set"];
    let words: Vec<&str> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().next().is_some_and(char::is_alphabetic))
        .collect();
    let significant: Vec<&str> = words.iter().copied().filter(|w| !SKIP.contains(&w.to_lowercase().as_str())).collect();
    let chosen = if significant.is_empty() { &words } else { &significant };
    let letters: String = chosen.iter().filter_map(|w| w.chars().next()).take(2).flat_map(char::to_uppercase).collect();
    if letters.is_empty() { title.chars().take(2).flat_map(char::to_uppercase).collect() } else { letters }
}

/// The short form of a shop's name for tight places: the part before a parenthesis
/// ("Demo gift shop (UCI Online Retail I)" → "Demo gift shop").
pub fn short_name(name: &str) -> &str {
    match name.split_once(" (") {
        Some((short, _)) if !short.trim().is_empty() => short.trim(),
        _ => name,
    }
}

/// A stable hue (0..360) derived from an id, so an item keeps its placeholder colour everywhere.
pub fn hue(id: &str) -> u32 {
    // FNV-1a: tiny, stable across processes and platforms.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % 360
}

/// Percent-encode a path segment or query value (everything except unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Undo [`encode`]; `None` for malformed escapes or bytes that are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A path with a query string built from the non-empty `params`.
pub fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| format!("{name}={}", encode(v))))
        .collect();
    if query.is_empty() { path.to_string() } else { format!("{path}?{}", query.join("&")) }
}

/// A readable name for an event type (`add_to_cart` → `Add to cart`).
pub fn event_type_label(event_type: attune_core::EventType) -> &'static str {
    use attune_core::EventType as T;
    match event_type {
        T::View => "View",
        T::AddToCart => "Add to cart",
        T::RemoveFromCart => "Remove from cart",
        T::Purchase => "Purchase",
        T::Return => "Return",
        T::Search => "Search",
        T::Impression => "Impression",
        T::Click => "Click",
        T::Rating => "Rating",
        T::Wishlist => "Wishlist",
        T::NotInterested => "Not interested",
    }
}

/// A readable channel name.
pub fn channel_label(channel: attune_core::Channel) -> &'static str {
    use attune_core::Channel as C;
    match channel {
        C::Web => "Web",
        C::App => "App",
        C::Store => "Store",
        C::Kiosk => "Kiosk",
        C::CallCenter => "Call center",
    }
}

/// `1 item` / `3 items`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::Currency;

    #[test]
    fn formats_numbers_and_money() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        let gbp = Currency::parse("GBP").unwrap();
        assert_eq!(money(&Money::new(255, gbp)), "£2.55");
        assert_eq!(money(&Money::new(123456789, gbp)), "£1,234,567.89");
        assert_eq!(money(&Money::new(-550, gbp)), "-£5.50");
        assert_eq!(money(&Money::new(1500, Currency::parse("CHF").unwrap())), "15.00 CHF");
    }

    #[test]
    fn title_cases_capitalised_titles_only() {
        assert_eq!(display_title("WHITE HANGING HEART T-LIGHT HOLDER"), "White Hanging Heart T-Light Holder");
        assert_eq!(display_title("PACK OF 72 RETROSPOT CAKE CASES"), "Pack of 72 Retrospot Cake Cases");
        assert_eq!(display_title("SET/6 RED SPOTTY PAPER CUPS"), "Set/6 Red Spotty Paper Cups");
        assert_eq!(display_title("CHILDREN'S APRON"), "Children's Apron");
        assert_eq!(display_title("iPhone case"), "iPhone case");
    }

    #[test]
    fn initials_and_hues_are_stable() {
        assert_eq!(initials("WHITE HANGING HEART"), "WH");
        assert_eq!(initials("72 cake cases"), "CC");
        assert_eq!(initials("Pack of 72 retrospot cake cases"), "PR");
        assert_eq!(initials("Set of 3 cake tins"), "CT");
        assert_eq!(short_name("Demo gift shop (UCI Online Retail I)"), "Demo gift shop");
        assert_eq!(short_name("(odd)"), "(odd)");
        assert_eq!(initials("?"), "?");
        assert_eq!(hue("85123A"), hue("85123A"));
        assert!(hue("x") < 360);
    }

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
        assert_eq!(decode(&encode("héllo wörld/?&")).unwrap(), "héllo wörld/?&");
        assert_eq!(decode("%zz"), None);
        assert_eq!(with_query("/x", &[("q", Some("a b")), ("after", None), ("e", Some(""))]), "/x?q=a%20b");
    }
}
