//! The filter expression language shared by recommendations and search: a short, typed boolean
//! expression over catalog items, such as
//!
//! ```text
//! price < 40 and category = "Home > Kitchen" and brand in ("Acme", "Zed") and not colour = "red"
//! ```
//!
//! Text is parsed into a typed [`Expr`] (parse, don't validate: every predicate is type-checked against
//! its field while parsing), printed back with [`std::fmt::Display`] (`parse(display(e)) == e`), and
//! evaluated with [`Expr::matches`] against an [`Item`].
//!
//! Grammar (keywords `and`, `or`, `not`, `in`, `true`, `false` are case-insensitive; `not` binds tighter
//! than `and`, which binds tighter than `or`):
//!
//! ```text
//! expr      := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | predicate
//! predicate := field (op value | "in" "(" value ("," value)* ")")?
//! op        := "=" | "!=" | "<" | "<=" | ">" | ">="
//! value     := "string with \" \\ \n \t \r \u{1F600} escapes" | -12.50 | true | false
//! field     := price | stock_quantity | category | brand | availability | in_stock | id | item_group_id
//!            | attributes.NAME | attributes."any name" | a common attribute name (colour, size, ...)
//! ```
//!
//! Types: `price` is money, compared with a decimal number in the catalog currency (exactly, in minor
//! units); `stock_quantity` is a number; `category` matches the item's category path or any prefix of it
//! (`category = "Home"` matches `Home > Kitchen > Mugs`); text fields compare case-insensitively with `=`,
//! `!=` and `in` only; `in_stock` is a boolean that can stand alone; attributes compare with any value, and
//! with `<`/`>` only against numbers. A predicate on a value the item does not have (no price, no brand,
//! no such attribute) is false, so `not e` always matches exactly the items `e` does not.

use crate::input::ScalarValue;
use crate::item::{Availability, Item};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Longest accepted filter text, in bytes.
pub const MAX_FILTER_LEN: usize = 4_096;
/// Deepest accepted nesting of parentheses and `not`.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Most values in one `in (...)` list.
pub const MAX_IN_VALUES: usize = 256;
/// Most significant digits in a number literal.
const MAX_DIGITS: usize = 18;

/// Attribute names that may be written without the `attributes.` prefix.
pub const COMMON_ATTRIBUTES: [&str; 8] =
    ["colour", "color", "size", "material", "gender", "age_group", "pattern", "condition"];

/// Why a filter text was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct FilterError {
    /// Byte offset into the filter text where the problem is (0-based; the text's length for "at the end").
    pub position: usize,
    /// The same place as a 1-based character column, for people.
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// A field of an item that a predicate can test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Price,
    StockQuantity,
    Category,
    Brand,
    Availability,
    InStock,
    Id,
    ItemGroupId,
    /// A named attribute (`attributes.colour`).
    Attribute(String),
}

/// The type of a field, which decides the comparisons it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Money,
    Number,
    Text,
    Category,
    Bool,
    /// Attributes hold text, numbers or booleans.
    Scalar,
}

const BUILT_IN_FIELDS: [(&str, Field); 8] = [
    ("price", Field::Price),
    ("stock_quantity", Field::StockQuantity),
    ("category", Field::Category),
    ("brand", Field::Brand),
    ("availability", Field::Availability),
    ("in_stock", Field::InStock),
    ("id", Field::Id),
    ("item_group_id", Field::ItemGroupId),
];

impl Field {
    fn field_type(&self) -> FieldType {
        match self {
            Self::Price => FieldType::Money,
            Self::StockQuantity => FieldType::Number,
            Self::Category => FieldType::Category,
            Self::Brand | Self::Availability | Self::Id | Self::ItemGroupId => FieldType::Text,
            Self::InStock => FieldType::Bool,
            Self::Attribute(_) => FieldType::Scalar,
        }
    }

    /// Every field name the language knows, for error messages and documentation.
    pub fn valid_names() -> String {
        let mut names: Vec<&str> = BUILT_IN_FIELDS.iter().map(|(name, _)| *name).collect();
        names.push("attributes.<name>");
        names.extend(COMMON_ATTRIBUTES);
        names.join(", ")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Attribute(name) if is_identifier(name) => write!(f, "attributes.{name}"),
            Self::Attribute(name) => write!(f, "attributes.{}", Quoted(name)),
            built_in => {
                let name = BUILT_IN_FIELDS.iter().find(|(_, field)| field == built_in).map(|(name, _)| *name);
                f.write_str(name.expect("every built-in field is in the table"))
            }
        }
    }
}

/// An exact decimal number: `mantissa · 10^-scale`, normalised (no trailing zeros in the fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i64,
    scale: u32,
}

impl Decimal {
    /// `mantissa · 10^-scale`, normalised.
    pub fn new(mut mantissa: i64, mut scale: u32) -> Self {
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        Self { mantissa, scale }
    }

    pub fn as_f64(&self) -> f64 {
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }

    /// Compares `units · 10^-exponent` (an integer amount with `exponent` decimals) with this number, exactly.
    fn cmp_scaled(&self, units: i64, exponent: u32) -> Ordering {
        let common = self.scale.max(exponent);
        let left = i128::from(units) * 10i128.pow(common - exponent);
        let right = i128::from(self.mantissa) * 10i128.pow(common - self.scale);
        left.cmp(&right)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let magnitude = self.mantissa.unsigned_abs();
        let unit = 10u64.pow(self.scale);
        write!(f, "{sign}{}.{:0width$}", magnitude / unit, magnitude % unit, width = self.scale as usize)
    }
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Text(String),
    Number(Decimal),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "{}", Quoted(text)),
            Self::Number(number) => write!(f, "{number}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn is_ordering(&self) -> bool {
        !matches!(self, Self::Eq | Self::Ne)
    }

    fn holds(&self, ordering: Ordering) -> bool {
        match self {
            Self::Eq => ordering == Ordering::Equal,
            Self::Ne => ordering != Ordering::Equal,
            Self::Lt => ordering == Ordering::Less,
            Self::Le => ordering != Ordering::Greater,
            Self::Gt => ordering == Ordering::Greater,
            Self::Ge => ordering != Ordering::Less,
        }
    }
}

/// What a predicate asks of its field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Test {
    /// `field op value`.
    Compare(CompareOp, Value),
    /// `field in (v1, v2, ...)`: equal to any of them.
    In(Vec<Value>),
    /// The field alone: a boolean that is true.
    IsTrue,
}

/// One type-checked test of one field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Predicate {
    pub field: Field,
    pub test: Test,
}

/// A parsed, type-checked filter expression. `And` and `Or` hold at least two operands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Predicate(Predicate),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Parses and type-checks a filter text.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        Parser::new(text)?.parse_all()
    }

    /// Whether `item` passes the filter.
    pub fn matches(&self, item: &Item) -> bool {
        match self {
            Self::Predicate(predicate) => predicate.matches(item),
            Self::Not(inner) => !inner.matches(item),
            Self::And(operands) => operands.iter().all(|e| e.matches(item)),
            Self::Or(operands) => operands.iter().any(|e| e.matches(item)),
        }
    }

    fn write_operand(&self, f: &mut fmt::Formatter<'_>, parenthesise: bool) -> fmt::Result {
        if parenthesise { write!(f, "({self})") } else { write!(f, "{self}") }
    }
}

impl FromStr for Expr {
    type Err = FilterError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Predicate(predicate) => write!(f, "{predicate}"),
            Self::Not(inner) => {
                f.write_str("not ")?;
                inner.write_operand(f, matches!(**inner, Self::And(_) | Self::Or(_)))
            }
            Self::And(operands) | Self::Or(operands) => {
                let is_and = matches!(self, Self::And(_));
                for (index, operand) in operands.iter().enumerate() {
                    if index > 0 {
                        f.write_str(if is_and { " and " } else { " or " })?;
                    }
                    // A nested `and` inside `or` needs no parentheses; anything else nested does.
                    let parenthesise = match operand {
                        Self::And(_) => is_and,
                        Self::Or(_) => true,
                        _ => false,
                    };
                    operand.write_operand(f, parenthesise)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.test {
            Test::Compare(op, value) => write!(f, "{} {} {value}", self.field, op.as_str()),
            Test::In(values) => {
                write!(f, "{} in (", self.field)?;
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
            Test::IsTrue => write!(f, "{}", self.field),
        }
    }
}

impl Predicate {
    /// Whether `item` passes this predicate; false when the item lacks the field's value.
    pub fn matches(&self, item: &Item) -> bool {
        match &self.test {
            Test::Compare(op, value) => self.compare(item, *op, value),
            Test::In(values) => values.iter().any(|value| self.compare(item, CompareOp::Eq, value)),
            Test::IsTrue => match &self.field {
                Field::InStock => item.is_in_stock(),
                Field::Attribute(name) => matches!(attribute(item, name), Some(ScalarValue::Bool(true))),
                _ => false,
            },
        }
    }

    fn compare(&self, item: &Item, op: CompareOp, value: &Value) -> bool {
        match (&self.field, value) {
            (Field::Price, Value::Number(n)) => {
                item.price.is_some_and(|p| op.holds(n.cmp_scaled(p.minor_units, p.currency.exponent())))
            }
            (Field::StockQuantity, Value::Number(n)) => {
                item.stock_quantity.is_some_and(|s| op.holds(n.cmp_scaled(s, 0)))
            }
            (Field::Category, Value::Text(text)) => {
                let wanted = crate::item::split_category(text);
                let prefix = !wanted.is_empty()
                    && wanted.len() <= item.category_path.len()
                    && wanted.iter().zip(&item.category_path).all(|(w, level)| same_text(w, level));
                if item.category_path.is_empty() { false } else { op.holds(equal_if(prefix)) }
            }
            (Field::Brand, Value::Text(text)) => {
                item.brand.as_deref().is_some_and(|b| op.holds(equal_if(same_text(b, text))))
            }
            (Field::Availability, Value::Text(text)) => {
                op.holds(equal_if(Availability::parse(text).is_ok_and(|a| a == item.availability)))
            }
            (Field::Id, Value::Text(text)) => op.holds(equal_if(item.id.as_str() == text)),
            (Field::ItemGroupId, Value::Text(text)) => {
                item.item_group_id.as_deref().is_some_and(|g| op.holds(equal_if(g == text)))
            }
            (Field::InStock, Value::Bool(b)) => op.holds(equal_if(item.is_in_stock() == *b)),
            // `!=` on an attribute means "present and different", also when the kinds differ.
            (Field::Attribute(name), value) => {
                attribute(item, name).is_some_and(|actual| match compare_scalar(actual, value) {
                    Some(ordering) => op.holds(ordering),
                    None => op == CompareOp::Ne,
                })
            }
            // Type checking at parse time rules out every other pairing.
            _ => false,
        }
    }
}

fn equal_if(equal: bool) -> Ordering {
    if equal { Ordering::Equal } else { Ordering::Less }
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn attribute<'a>(item: &'a Item, name: &str) -> Option<&'a ScalarValue> {
    item.attributes
        .get(name)
        .or_else(|| item.attributes.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value))
}

/// Orders an attribute value against a literal; `None` when they are of kinds that do not compare.
fn compare_scalar(actual: &ScalarValue, literal: &Value) -> Option<Ordering> {
    match (actual, literal) {
        (ScalarValue::Number(a), Value::Number(n)) => a.partial_cmp(&n.as_f64()),
        (ScalarValue::Text(a), Value::Number(n)) => a.trim().parse::<f64>().ok()?.partial_cmp(&n.as_f64()),
        (ScalarValue::Text(a), Value::Text(t)) => Some(equal_if(same_text(a, t))),
        (ScalarValue::Bool(a), Value::Bool(b)) => Some(equal_if(a == b)),
        (ScalarValue::Text(a), Value::Bool(b)) => Some(equal_if(same_text(a, &b.to_string()))),
        (ScalarValue::Number(_) | ScalarValue::Bool(_), Value::Text(t)) => {
            Some(equal_if(same_text(&actual.to_text(), t)))
        }
        _ => None,
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(text))
}

const KEYWORDS: [&str; 6] = ["and", "or", "not", "in", "true", "false"];

/// A string literal written with quotes and escapes.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    Text(String),
    Number(Decimal),
    Op(CompareOp),
    Open,
    Close,
    Comma,
    Dot,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Identifier(name) => format!("`{name}`"),
            Self::Text(text) => format!("the string {}", Quoted(text)),
            Self::Number(n) => format!("the number {n}"),
            Self::Op(op) => format!("`{}`", op.as_str()),
            Self::Open => "`(`".to_string(),
            Self::Close => "`)`".to_string(),
            Self::Comma => "`,`".to_string(),
            Self::Dot => "`.`".to_string(),
            Self::End => "the end of the filter".to_string(),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Self::Identifier(name) if name.eq_ignore_ascii_case(keyword))
    }
}

/// Splits the text into tokens with their byte offsets.
fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let error = |position: usize, message: String| FilterError { position, column: column(text, position), message };
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = text[at..].chars().next().expect("at is on a char boundary");
        let start = at;
        match c {
            c if c.is_whitespace() => at += c.len_utf8(),
            '(' | ')' | ',' | '.' | '=' => {
                at += 1;
                tokens.push((
                    start,
                    match c {
                        '(' => Token::Open,
                        ')' => Token::Close,
                        ',' => Token::Comma,
                        '.' => Token::Dot,
                        _ => Token::Op(CompareOp::Eq),
                    },
                ));
            }
            '!' | '<' | '>' => {
                let equals = bytes.get(at + 1) == Some(&b'=');
                let op = match (c, equals) {
                    ('!', true) => CompareOp::Ne,
                    ('<', true) => CompareOp::Le,
                    ('<', false) => CompareOp::Lt,
                    ('>', true) => CompareOp::Ge,
                    ('>', false) => CompareOp::Gt,
                    _ => return Err(error(start, "expected `!=`; write `not` to negate".to_string())),
                };
                at += if equals { 2 } else { 1 };
                tokens.push((start, Token::Op(op)));
            }
            '"' => {
                let (value, end) = lex_string(text, start).map_err(|(p, m)| error(p, m))?;
                at = end;
                tokens.push((start, Token::Text(value)));
            }
            c if c.is_ascii_digit() || (c == '-' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)) => {
                let (value, end) = lex_number(text, start).map_err(|(p, m)| error(p, m))?;
                at = end;
                tokens.push((start, Token::Number(value)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                    at += 1;
                }
                tokens.push((start, Token::Identifier(text[start..at].to_string())));
            }
            other => return Err(error(start, format!("unexpected character `{other}`"))),
        }
    }
    tokens.push((text.len(), Token::End));
    Ok(tokens)
}

fn lex_string(text: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices().map(|(i, c)| (i + start + 1, c));
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, at + 1)),
            '\\' => {
                let Some((_, escaped)) = chars.next() else { break };
                match escaped {
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    'u' => {
                        let mut hex = String::new();
                        if chars.next().map(|(_, c)| c) != Some('{') {
                            return Err((at, "expected `\\u{HEX}`".to_string()));
                        }
                        loop {
                            match chars.next() {
                                Some((_, '}')) => break,
                                Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                                _ => return Err((at, "expected `\\u{HEX}` with 1 to 6 hex digits".to_string())),
                            }
                        }
                        let code = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        value.push(code.ok_or_else(|| (at, format!("`\\u{{{hex}}}` is not a character")))?);
                    }
                    other => return Err((at, format!("unknown escape `\\{other}`"))),
                }
            }
            c => value.push(c),
        }
    }
    Err((start, "this string is not closed with `\"`".to_string()))
}

fn lex_number(text: &str, start: usize) -> Result<(Decimal, usize), (usize, String)> {
    let bytes = text.as_bytes();
    let mut at = start;
    let negative = bytes[at] == b'-';
    if negative {
        at += 1;
    }
    let mut digits = String::new();
    let mut scale = 0u32;
    let mut seen_dot = false;
    while at < bytes.len() {
        match bytes[at] {
            b'0'..=b'9' => {
                digits.push(bytes[at] as char);
                if seen_dot {
                    scale += 1;
                }
            }
            b'.' if !seen_dot && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => seen_dot = true,
            _ => break,
        }
        at += 1;
    }
    if bytes.get(at).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
        return Err((at, "expected a space or an operator after a number".to_string()));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err((start, format!("a number has at most {MAX_DIGITS} significant digits")));
    }
    let magnitude: i64 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| (start, "bad number".to_string()))? };
    Ok((Decimal::new(if negative { -magnitude } else { magnitude }, scale), at))
}

/// 1-based character column of a byte offset.
fn column(text: &str, position: usize) -> usize {
    text.get(..position).map_or(position, |before| before.chars().count()) + 1
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    next: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError {
                position: MAX_FILTER_LEN,
                column: column(text, text.floor_char_boundary_compat(MAX_FILTER_LEN)),
                message: format!("a filter is at most {MAX_FILTER_LEN} bytes long"),
            });
        }
        Ok(Self { text, tokens: tokenize(text)?, next: 0, depth: 0 })
    }

    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError { position, column: column(self.text, position), message: message.into() }
    }

    fn peek(&self) -> &(usize, Token) {
        &self.tokens[self.next]
    }

    fn advance(&mut self) -> (usize, Token) {
        let token = self.tokens[self.next].clone();
        if self.next + 1 < self.tokens.len() {
            self.next += 1;
        }
        token
    }

    fn parse_all(mut self) -> Result<Expr, FilterError> {
        if self.peek().1 == Token::End {
            return Err(self.error(0, "the filter is empty"));
        }
        let expr = self.parse_or()?;
        let (position, token) = self.peek().clone();
        if token != Token::End {
            let hint = if token == Token::Close { " (no `(` to close)" } else { "; expected `and`, `or` or the end" };
            return Err(self.error(position, format!("unexpected {}{hint}", token.describe())));
        }
        Ok(expr)
    }

    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.parse_and()?];
        while self.peek().1.is_keyword("or") {
            self.advance();
            operands.push(self.parse_and()?);
        }
        Ok(if operands.len() == 1 { operands.pop().expect("one operand") } else { Expr::Or(operands) })
    }

    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.parse_unary()?];
        while self.peek().1.is_keyword("and") {
            self.advance();
            operands.push(self.parse_unary()?);
        }
        Ok(if operands.len() == 1 { operands.pop().expect("one operand") } else { Expr::And(operands) })
    }

    fn descend(&mut self, position: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error(position, format!("the filter nests deeper than {MAX_FILTER_DEPTH} levels")));
        }
        Ok(())
    }

    fn parse_unary(&mut self) -> Result<Expr, FilterError> {
        let (position, token) = self.peek().clone();
        if token.is_keyword("not") {
            self.advance();
            self.descend(position)?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if token == Token::Open {
            self.advance();
            self.descend(position)?;
            let inner = self.parse_or()?;
            self.depth -= 1;
            let (close_at, close) = self.peek().clone();
            if close != Token::Close {
                return Err(self.error(
                    close_at,
                    format!("expected `)` to close the `(` at position {position}, found {}", close.describe()),
                ));
            }
            self.advance();
            return Ok(inner);
        }
        self.parse_predicate()
    }

    fn parse_field(&mut self) -> Result<Field, FilterError> {
        let (position, token) = self.advance();
        let Token::Identifier(name) = token else {
            return Err(self.error(position, format!("expected a field name, found {}", token.describe())));
        };
        if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
            return Err(self.error(position, format!("expected a field name, found the keyword `{name}`")));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "attributes" {
            let (dot_at, dot) = self.advance();
            if dot != Token::Dot {
                return Err(self.error(
                    dot_at,
                    format!("expected `.` and an attribute name after `attributes`, found {}", dot.describe()),
                ));
            }
            let (name_at, attribute) = self.advance();
            return match attribute {
                Token::Identifier(attribute) | Token::Text(attribute) if !attribute.is_empty() => {
                    Ok(Field::Attribute(attribute))
                }
                other => Err(self.error(
                    name_at,
                    format!("expected an attribute name after `attributes.`, found {}", other.describe()),
                )),
            };
        }
        if let Some((_, field)) = BUILT_IN_FIELDS.iter().find(|(known, _)| *known == lower) {
            return Ok(field.clone());
        }
        if COMMON_ATTRIBUTES.contains(&lower.as_str()) {
            return Ok(Field::Attribute(name));
        }
        Err(self.error(position, format!("unknown field `{name}`; valid fields are {}", Field::valid_names())))
    }

    fn parse_value(&mut self, after: &str) -> Result<(usize, Value), FilterError> {
        let (position, token) = self.advance();
        let value = match token {
            Token::Text(text) => Value::Text(text),
            Token::Number(number) => Value::Number(number),
            Token::Identifier(word) if word.eq_ignore_ascii_case("true") => Value::Bool(true),
            Token::Identifier(word) if word.eq_ignore_ascii_case("false") => Value::Bool(false),
            Token::Identifier(word) => {
                return Err(self.error(
                    position,
                    format!("expected a value after `{after}`, found `{word}` (quote text: \"{word}\")"),
                ));
            }
            other => {
                return Err(
                    self.error(position, format!("expected a value after `{after}`, found {}", other.describe()))
                );
            }
        };
        Ok((position, value))
    }

    fn parse_predicate(&mut self) -> Result<Expr, FilterError> {
        let field = self.parse_field()?;
        let (op_at, token) = self.peek().clone();
        let test = match token {
            Token::Op(op) => {
                self.advance();
                let (value_at, value) = self.parse_value(op.as_str())?;
                self.check(&field, op, &value, op_at, value_at)?;
                Test::Compare(op, value)
            }
            ref t if t.is_keyword("in") => {
                self.advance();
                let (open_at, open) = self.advance();
                if open != Token::Open {
                    return Err(self.error(open_at, format!("expected `(` after `in`, found {}", open.describe())));
                }
                let mut values = Vec::new();
                loop {
                    let (value_at, value) = self.parse_value(if values.is_empty() { "(" } else { "," })?;
                    self.check(&field, CompareOp::Eq, &value, op_at, value_at)?;
                    values.push(value);
                    if values.len() > MAX_IN_VALUES {
                        return Err(self.error(value_at, format!("an `in` list has at most {MAX_IN_VALUES} values")));
                    }
                    let (next_at, next) = self.advance();
                    match next {
                        Token::Comma => continue,
                        Token::Close => break,
                        other => {
                            return Err(self.error(
                                next_at,
                                format!("expected `,` or `)` in the `in` list, found {}", other.describe()),
                            ));
                        }
                    }
                }
                Test::In(values)
            }
            _ => {
                if !matches!(field.field_type(), FieldType::Bool | FieldType::Scalar) {
                    return Err(self.error(
                        op_at,
                        format!(
                            "expected a comparison after `{field}` (such as `{}`), found {}",
                            example(&field),
                            token.describe()
                        ),
                    ));
                }
                Test::IsTrue
            }
        };
        Ok(Expr::Predicate(Predicate { field, test }))
    }

    /// Type-checks `field op value`.
    fn check(
        &self,
        field: &Field,
        op: CompareOp,
        value: &Value,
        op_at: usize,
        value_at: usize,
    ) -> Result<(), FilterError> {
        let field_type = field.field_type();
        let ordering_allowed = matches!(field_type, FieldType::Money | FieldType::Number | FieldType::Scalar);
        if op.is_ordering() && !ordering_allowed {
            return Err(self
                .error(op_at, format!("`{field}` cannot be compared with `{}`; use `=`, `!=` or `in`", op.as_str())));
        }
        let fits = match (field_type, value) {
            (FieldType::Money | FieldType::Number, Value::Number(_)) => true,
            (FieldType::Text | FieldType::Category, Value::Text(_)) => true,
            (FieldType::Bool, Value::Bool(_)) => true,
            (FieldType::Scalar, Value::Number(_)) => true,
            (FieldType::Scalar, _) => !op.is_ordering(),
            _ => false,
        };
        if !fits {
            let wanted = match field_type {
                FieldType::Money => "a number (an amount in the catalog currency, such as 12.50)",
                FieldType::Number => "a number",
                FieldType::Text | FieldType::Category => "a quoted string",
                FieldType::Bool => "true or false",
                FieldType::Scalar => "a number",
            };
            return Err(self.error(value_at, format!("`{field}` {} needs {wanted}, found {value}", op.as_str())));
        }
        if let (Field::Availability, Value::Text(text)) = (field, value)
            && Availability::parse(text).is_err()
        {
            return Err(self.error(
                value_at,
                format!("{} is not an availability; use in_stock, out_of_stock, preorder or backorder", Quoted(text)),
            ));
        }
        if let (Field::Category, Value::Text(text)) = (field, value)
            && crate::item::split_category(text).is_empty()
        {
            return Err(self.error(value_at, "a category needs at least one level, such as \"Home > Kitchen\""));
        }
        Ok(())
    }
}

fn example(field: &Field) -> String {
    match field.field_type() {
        FieldType::Money | FieldType::Number => format!("{field} < 40"),
        _ => format!("{field} = \"...\""),
    }
}

/// `str::floor_char_boundary` is not stable yet.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, index: usize) -> usize {
        let mut index = index.min(self.len());
        while !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}
