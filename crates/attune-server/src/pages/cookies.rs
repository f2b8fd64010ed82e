//! Cookies of the pages: the console's key, the storefront's visitor and session ids and its basket.

use super::format::{decode, encode};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use rand::RngCore;

/// The console's secret API key (HttpOnly, SameSite=Strict).
pub const CONSOLE: &str = "attune_console";
/// The storefront basket.
pub const CART: &str = "attune_cart";
/// A storefront visitor's anonymous id (a year).
pub const VISITOR: &str = "attune_visitor";
/// A storefront browsing session (until the browser closes).
pub const SESSION: &str = "attune_session";

/// The value of cookie `name` in the request, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Whether `value` may be sent as a cookie value without quoting.
pub fn is_cookie_safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 3_000
        && value.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// A `Set-Cookie` header value. `max_age` of `None` makes a session cookie; `Some(0)` deletes.
pub fn set(name: &str, value: &str, path: &str, same_site: &str, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&text).expect("cookie values are checked to be header-safe")
}

/// Append `Set-Cookie` headers to a response's headers.
pub fn append_all(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn is_valid_id(value: &str) -> bool {
    (8..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Who is browsing the storefront: the ids events are recorded under, and the cookies to set when the
/// ids were just created.
pub struct Visitor {
    pub anonymous_id: String,
    pub session_id: String,
    pub new_cookies: Vec<HeaderValue>,
}

impl Visitor {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut new_cookies = Vec::new();
        let anonymous_id = match get(headers, VISITOR).filter(|v| is_valid_id(v)) {
            Some(id) => id.to_string(),
            None => {
                let id = random_id("v_");
                new_cookies.push(set(VISITOR, &id, "/", "Lax", Some(365 * 24 * 3600)));
                id
            }
        };
        let session_id = match get(headers, SESSION).filter(|v| is_valid_id(v)) {
            Some(id) => id.to_string(),
            None => {
                let id = random_id("s_");
                new_cookies.push(set(SESSION, &id, "/", "Lax", None));
                id
            }
        };
        Self { anonymous_id, session_id, new_cookies }
    }
}

/// Most lines a basket keeps, and most units of one line; keeps the cookie far below 4 KB limits.
pub const MAX_CART_LINES: usize = 30;
pub const MAX_LINE_QUANTITY: u32 = 999;

/// The storefront basket, kept in the `attune_cart` cookie as `id*qty|id*qty` with ids percent-encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<(String, u32)>,
}

impl Cart {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        get(headers, CART).map(Self::decode).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Self {
        let mut cart = Self::default();
        for entry in text.split('|') {
            let Some((id, quantity)) = entry.split_once('*') else { continue };
            let (Some(id), Ok(quantity)) = (decode(id), quantity.parse::<u32>()) else { continue };
            if !id.is_empty() && quantity > 0 {
                cart.add(&id, quantity);
            }
        }
        cart
    }

    pub fn encode(&self) -> String {
        self.lines.iter().map(|(id, quantity)| format!("{}*{quantity}", encode(id))).collect::<Vec<_>>().join("|")
    }

    /// Units in the basket.
    pub fn units(&self) -> u64 {
        self.lines.iter().map(|(_, q)| u64::from(*q)).sum()
    }

    pub fn quantity(&self, id: &str) -> u32 {
        self.lines.iter().find(|(line, _)| line == id).map_or(0, |(_, q)| *q)
    }

    /// Add units of an item; returns how many were actually added (capped per line and per basket).
    pub fn add(&mut self, id: &str, quantity: u32) -> u32 {
        let before = self.quantity(id);
        self.set(id, before.saturating_add(quantity));
        self.quantity(id) - before
    }

    /// Set an item's quantity (0 removes the line).
    pub fn set(&mut self, id: &str, quantity: u32) {
        let quantity = quantity.min(MAX_LINE_QUANTITY);
        match self.lines.iter().position(|(line, _)| line == id) {
            Some(index) if quantity == 0 => {
                self.lines.remove(index);
            }
            Some(index) => self.lines[index].1 = quantity,
            None if quantity > 0 && self.lines.len() < MAX_CART_LINES => self.lines.push((id.to_string(), quantity)),
            None => {}
        }
    }

    /// The `Set-Cookie` header keeping this basket (30 days), or deleting the cookie when empty.
    pub fn cookie(&self) -> HeaderValue {
        if self.lines.is_empty() {
            set(CART, "", "/", "Lax", Some(0))
        } else {
            set(CART, &self.encode(), "/", "Lax", Some(30 * 24 * 3600))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_from_all_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; attune_console=sk_x"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(get(&headers, CONSOLE), Some("sk_x"));
        assert_eq!(get(&headers, "b"), Some("2"));
        assert_eq!(get(&headers, "c"), None);
    }

    #[test]
    fn cart_round_trips_odd_ids_and_ignores_garbage() {
        let mut cart = Cart::default();
        assert_eq!(cart.add("85123A", 2), 2);
        cart.add("a*b~c d", 1);
        cart.add("85123A", 3);
        assert_eq!(cart.quantity("85123A"), 5);
        let again = Cart::decode(&cart.encode());
        assert_eq!(again, cart);
        assert_eq!(again.units(), 6);
        assert!(is_cookie_safe(&cart.encode()));
        assert_eq!(Cart::decode("x*0|*3|y*abc|%zz*1|ok*2").lines, vec![("ok".to_string(), 2)]);
        cart.set("85123A", 0);
        assert_eq!(cart.lines.len(), 1);
        assert_eq!(cart.add("big", 5_000), MAX_LINE_QUANTITY);
    }

    #[test]
    fn new_visitors_get_ids_and_cookies() {
        let visitor = Visitor::from_headers(&HeaderMap::new());
        assert!(visitor.anonymous_id.starts_with("v_"));
        assert_eq!(visitor.new_cookies.len(), 2);
        let mut headers = HeaderMap::new();
        let cookie = format!("{VISITOR}={}; {SESSION}={}", visitor.anonymous_id, visitor.session_id);
        headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
        let again = Visitor::from_headers(&headers);
        assert_eq!(again.anonymous_id, visitor.anonymous_id);
        assert!(again.new_cookies.is_empty());
    }
}
