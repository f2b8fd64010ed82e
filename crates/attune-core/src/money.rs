//! Money as integer minor units with an ISO 4217 currency, never floating point; parsing of decimal
//! amounts ("12.50") and Merchant Center price strings ("12.50 GBP").

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest accepted amount in major units; prices beyond this are data errors, not merchandise.
const MAX_MAJOR_UNITS: i64 = 1_000_000_000;

/// The ISO 4217 currencies that have a minor unit, with its number of decimal places, sorted by code: the
/// active national currencies and funds codes (list one of the standard as amended to 2025). Precious metals,
/// special drawing rights and the testing and "no currency" codes have no minor unit and price nothing.
const ISO_4217: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SLL", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
    ("ZWL", 2),
];

/// An ISO 4217 alphabetic currency code, one of [`ISO_4217`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "GBP"))]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(ValidationError::new(
                "currency",
                "invalid_currency",
                format!("`{code}` is not an ISO 4217 currency code (three uppercase letters, such as GBP)"),
            ));
        }
        if Self::entry(code).is_none() {
            return Err(ValidationError::new(
                "currency",
                "invalid_currency",
                format!("`{code}` is not an ISO 4217 currency code"),
            ));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    fn entry(code: &str) -> Option<&'static (&'static str, u8)> {
        ISO_4217.binary_search_by(|(listed, _)| (*listed).cmp(code)).ok().map(|index| &ISO_4217[index])
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// Number of decimal places of the currency's minor unit (ISO 4217 exponent).
    pub fn exponent(&self) -> u32 {
        Self::entry(self.as_str()).map_or(2, |(_, exponent)| u32::from(*exponent))
    }
}

/// Reading stored data: any three uppercase letters, as accepted before the table, so that a shop's data written
/// then still loads. Input goes through [`Currency::parse`].
impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Self::parse(&value),
        }
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in minor units (pence, cents) of `currency`. Written as
/// `{"amount": "12.50", "currency": "GBP"}` so no client has to know the currency's exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "MoneyText", try_from = "MoneyText")]
pub struct Money {
    pub minor_units: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor_units: i64, currency: Currency) -> Self {
        Self { minor_units, currency }
    }

    /// Parse a decimal amount such as `12.5`, `12.50` or `-3`; more decimals than the currency has
    /// are rejected rather than rounded, so no money is silently created or lost.
    pub fn parse_amount(amount: &str, currency: Currency) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new("price", "invalid_amount", format!("`{amount}` is not a decimal amount of {currency}"))
        };
        let text = amount.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let exponent = currency.exponent();
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > exponent as usize {
            return Err(ValidationError::new(
                "price",
                "too_many_decimals",
                format!("`{amount}` has more decimal places than {currency} allows ({exponent})"),
            ));
        }
        let whole_value: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        if whole_value > MAX_MAJOR_UNITS {
            return Err(ValidationError::new("price", "amount_out_of_range", format!("`{amount}` is too large")));
        }
        let mut fraction_value: i64 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| invalid())? };
        for _ in fraction.len()..exponent as usize {
            fraction_value *= 10;
        }
        let minor = whole_value * 10_i64.pow(exponent) + fraction_value;
        Ok(Self { minor_units: if negative { -minor } else { minor }, currency })
    }

    /// Parse a Merchant Center price: `"12.50 GBP"` (amount, space, currency).
    pub fn parse_with_currency(text: &str) -> Result<Self, ValidationError> {
        let mut parts = text.split_whitespace();
        let (Some(amount), Some(code), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ValidationError::new(
                "price",
                "invalid_price",
                format!("`{text}` is not a price like \"12.50 GBP\""),
            ));
        };
        Self::parse_amount(amount, Currency::parse(code)?)
    }

    /// The amount as a decimal string with the currency's number of decimals.
    pub fn amount_string(&self) -> String {
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return self.minor_units.to_string();
        }
        let scale = 10_i64.pow(exponent);
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let abs = self.minor_units.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / scale as u64, abs % scale as u64, width = exponent as usize)
    }

    /// The price for people: the currency's symbol where one is well known (`£1,234.50`), else the code after
    /// the amount (`1,234.50 CHF`), digits grouped by thousands.
    pub fn formatted(&self) -> String {
        let text = self.amount_string();
        let (sign, unsigned) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text.as_str()),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let mut amount = group_thousands(whole);
        if let Some(fraction) = fraction {
            amount.push('.');
            amount.push_str(fraction);
        }
        let symbol = match self.currency.as_str() {
            "GBP" => Some("£"),
            "USD" => Some("$"),
            "EUR" => Some("€"),
            "JPY" => Some("¥"),
            "INR" => Some("₹"),
            _ => None,
        };
        match symbol {
            Some(symbol) => format!("{sign}{symbol}{amount}"),
            None => format!("{sign}{amount} {}", self.currency),
        }
    }

    /// The amount in major units as a float, for analytics only (never for accounting).
    pub fn as_major_f64(&self) -> f64 {
        self.minor_units as f64 / 10_f64.powi(self.currency.exponent() as i32)
    }
}

/// A run of digits with a comma before every group of three from the right: `1234567` as `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The written form of [`Money`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MoneyText {
    #[cfg_attr(feature = "openapi", schema(example = "12.50"))]
    pub amount: String,
    pub currency: Currency,
}

impl From<Money> for MoneyText {
    fn from(value: Money) -> Self {
        Self { amount: value.amount_string(), currency: value.currency }
    }
}

impl TryFrom<MoneyText> for Money {
    type Error = ValidationError;
    fn try_from(value: MoneyText) -> Result<Self, Self::Error> {
        Money::parse_amount(&value.amount, value.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbp() -> Currency {
        Currency::parse("GBP").unwrap()
    }

    #[test]
    fn currencies_are_the_iso_4217_table() {
        assert!(ISO_4217.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted, each once");
        for code in ["XQZ", "ZZZ", "XAU", "XXX", "gbp", "GB", "GBPX"] {
            let error = Currency::parse(code).unwrap_err();
            assert_eq!(error.code, "invalid_currency", "{code}");
            assert!(error.message.contains("ISO 4217"), "{}", error.message);
        }
        let exponent = |code| Currency::parse(code).unwrap().exponent();
        assert_eq!(
            [exponent("GBP"), exponent("JPY"), exponent("BHD"), exponent("CLF"), exponent("XPF")],
            [2, 0, 3, 4, 0]
        );
        // Data stored before the table still loads.
        let stored: Currency = serde_json::from_str("\"ZZZ\"").unwrap();
        assert_eq!(stored.as_str(), "ZZZ");
    }

    #[test]
    fn formats_prices_for_people() {
        assert_eq!(Money::new(255, gbp()).formatted(), "£2.55");
        assert_eq!(Money::new(123_456_789, gbp()).formatted(), "£1,234,567.89");
        assert_eq!(Money::new(-550, gbp()).formatted(), "-£5.50");
        assert_eq!(Money::new(1500, Currency::parse("CHF").unwrap()).formatted(), "15.00 CHF");
        assert_eq!(Money::new(1500, Currency::parse("JPY").unwrap()).formatted(), "¥1,500");
    }

    #[test]
    fn parses_decimal_amounts_exactly() {
        assert_eq!(Money::parse_amount("12.5", gbp()).unwrap().minor_units, 1250);
        assert_eq!(Money::parse_amount("12.50", gbp()).unwrap().minor_units, 1250);
        assert_eq!(Money::parse_amount("0.01", gbp()).unwrap().minor_units, 1);
        assert_eq!(Money::parse_amount(".5", gbp()).unwrap().minor_units, 50);
        assert_eq!(Money::parse_amount("-3", gbp()).unwrap().minor_units, -300);
        assert_eq!(Money::parse_amount("1.230", gbp()).unwrap().minor_units, 123);
        assert_eq!(Money::parse_amount("1.234", gbp()).unwrap_err().code, "too_many_decimals");
        assert!(Money::parse_amount("abc", gbp()).is_err());
        assert!(Money::parse_amount("", gbp()).is_err());
        assert!(Money::parse_amount("1e5", gbp()).is_err());
    }

    #[test]
    fn parses_merchant_center_prices() {
        let price = Money::parse_with_currency("12.50 GBP").unwrap();
        assert_eq!(price.to_string(), "12.50 GBP");
        assert_eq!(Money::parse_with_currency("1500 JPY").unwrap().minor_units, 1500);
        assert_eq!(Money::parse_with_currency("12.50").unwrap_err().code, "invalid_price");
        assert_eq!(Money::parse_with_currency("12.50 gbp").unwrap_err().code, "invalid_currency");
    }

    #[test]
    fn formats_with_currency_exponent() {
        assert_eq!(Money::new(-5, gbp()).amount_string(), "-0.05");
        assert_eq!(Money::new(1234, Currency::parse("KWD").unwrap()).amount_string(), "1.234");
    }
}
