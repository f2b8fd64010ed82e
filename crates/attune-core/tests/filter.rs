//! The filter expression language: parsing, type errors with positions, evaluation against items, and
//! properties (display/parse round trip, no panics on any input, `not e` is the exact complement of `e`).

use attune_core::filter::{CompareOp, Decimal, Expr, Field, MAX_FILTER_DEPTH, MAX_FILTER_LEN, Predicate, Test, Value};
use attune_core::input::{AmountInput, ScalarValue};
use attune_core::{Item, ItemInput, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn item(price: Option<&str>, category: &str, brand: Option<&str>, stock: Option<i64>) -> Item {
    let mut attributes = BTreeMap::new();
    attributes.insert("colour".to_string(), ScalarValue::Text("Red".to_string()));
    attributes.insert("size".to_string(), ScalarValue::Number(42.0));
    attributes.insert("organic".to_string(), ScalarValue::Bool(true));
    attributes.insert("age group".to_string(), ScalarValue::Text("adult".to_string()));
    Item::parse(
        ItemInput {
            id: Some("mug-1".into()),
            title: Some("Mug".into()),
            price: price.map(|p| AmountInput::Text(p.to_string())),
            currency: price.map(|_| "GBP".to_string()),
            category: Some(category.to_string()),
            brand: brand.map(str::to_string),
            stock_quantity: stock,
            attributes: Some(attributes),
            ..Default::default()
        },
        Timestamp::from_millis(1_700_000_000_000).unwrap(),
    )
    .unwrap()
}

fn mug() -> Item {
    item(Some("12.50"), "Home > Kitchen > Mugs", Some("Acme"), Some(3))
}

fn matches(filter: &str, item: &Item) -> bool {
    Expr::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")).matches(item)
}

#[test]
fn money_is_compared_exactly_in_the_catalog_currency() {
    let mug = mug();
    assert!(matches("price < 40", &mug));
    assert!(matches("price >= 12.5", &mug));
    assert!(matches("price <= 12.50", &mug));
    assert!(matches("price = 12.500", &mug));
    assert!(!matches("price > 12.5", &mug));
    assert!(!matches("price < 12.49", &mug));
    assert!(matches("price > 12.499999", &mug));
    assert!(matches("price != 12.51", &mug));
    assert!(matches("price > -1", &mug));
    // An item without a price passes no price test, and so passes its negation.
    let unpriced = item(None, "Home", None, None);
    assert!(!matches("price < 40", &unpriced));
    assert!(!matches("price >= 40", &unpriced));
    assert!(matches("not price < 40", &unpriced));
}

#[test]
fn category_matches_the_path_or_any_prefix_of_it() {
    let mug = mug();
    assert!(matches(r#"category = "Home > Kitchen""#, &mug));
    assert!(matches(r#"category = "home>kitchen>mugs""#, &mug));
    assert!(matches(r#"category = "Home""#, &mug));
    assert!(!matches(r#"category = "Kitchen""#, &mug));
    assert!(!matches(r#"category = "Home > Kitchen > Mugs > Tall""#, &mug));
    assert!(matches(r#"category != "Garden""#, &mug));
    assert!(matches(r#"category in ("Garden", "Home > Kitchen")"#, &mug));
}

#[test]
fn text_attributes_stock_and_logic() {
    let mug = mug();
    assert!(matches(r#"brand in ("acme", "Zed")"#, &mug));
    assert!(!matches(r#"brand = "Zed""#, &mug));
    assert!(matches(r#"colour = "red" and attributes.colour = "RED""#, &mug));
    assert!(matches(r#"attributes."age group" = "adult""#, &mug));
    assert!(matches("size >= 40 and size < 44 and size = 42", &mug));
    assert!(matches("attributes.organic and attributes.organic = true", &mug));
    assert!(!matches("attributes.missing = 1 or attributes.missing != 1", &mug));
    assert!(matches("in_stock", &mug));
    assert!(matches("IN_STOCK = TRUE AND NOT in_stock = false", &mug));
    assert!(matches(r#"availability = "in stock""#, &mug));
    assert!(matches("stock_quantity > 2 and stock_quantity < 4", &mug));
    assert!(matches(r#"id = "mug-1""#, &mug));
    let sold_out = item(Some("12.50"), "Home", Some("Acme"), Some(0));
    assert!(!matches("in_stock", &sold_out));
    assert!(matches("not in_stock", &sold_out));
    assert!(matches(r#"availability = "out_of_stock""#, &sold_out));
    // Precedence: not > and > or.
    assert!(matches(r#"brand = "Zed" and price < 1 or in_stock"#, &mug));
    assert!(!matches(r#"brand = "Zed" and (price < 1 or in_stock)"#, &mug));
    assert!(!matches("not in_stock and in_stock", &mug));
}

#[test]
fn string_escapes() {
    let expr = Expr::parse(r#"brand = "A \"quoted\" \\ name\n\u{e9}""#).unwrap();
    let Expr::Predicate(Predicate { test: Test::Compare(CompareOp::Eq, Value::Text(text)), .. }) = &expr else {
        panic!("{expr:?}")
    };
    assert_eq!(text, "A \"quoted\" \\ name\n\u{e9}");
    assert_eq!(Expr::parse(&expr.to_string()).unwrap(), expr);
}

/// (filter, byte position, column, a fragment of the message)
const ERRORS: [(&str, usize, usize, &str); 17] = [
    ("price < ", 8, 9, "expected a value after `<`"),
    ("", 0, 1, "empty"),
    ("price", 5, 6, "expected a comparison after `price`"),
    ("colr = \"red\"", 0, 1, "unknown field `colr`; valid fields are price, stock_quantity"),
    ("brand < \"Acme\"", 6, 7, "`brand` cannot be compared with `<`"),
    ("price < \"cheap\"", 8, 9, "needs a number"),
    ("in_stock = 1", 11, 12, "true or false"),
    ("(price < 4", 10, 11, "expected `)`"),
    ("price < 4)", 9, 10, "unexpected `)`"),
    ("price < 4 brand = \"x\"", 10, 11, "expected `and`, `or` or the end"),
    ("brand = \"open", 8, 9, "not closed"),
    ("brand = Acme", 8, 9, "quote text"),
    ("brand in (\"a\" \"b\")", 14, 15, "expected `,` or `)`"),
    ("price # 4", 6, 7, "unexpected character `#`"),
    ("availability = \"sold\"", 15, 16, "not an availability"),
    ("attributes.colour < \"red\"", 20, 21, "needs a number"),
    ("é = 1", 0, 1, "unexpected character `é`"),
];

#[test]
fn errors_say_what_and_where() {
    for (filter, position, column, fragment) in ERRORS {
        let error = Expr::parse(filter).expect_err(filter);
        assert_eq!((error.position, error.column), (position, column), "{filter}: {error}");
        assert!(error.message.contains(fragment), "{filter}: {}", error.message);
    }
    let error = Expr::parse("brand = \"é\" and price < ").unwrap_err();
    assert_eq!((error.position, error.column), (25, 25));
}

#[test]
fn limits_on_length_and_depth() {
    let deep = format!("{}in_stock{}", "(".repeat(MAX_FILTER_DEPTH + 1), ")".repeat(MAX_FILTER_DEPTH + 1));
    assert!(Expr::parse(&deep).unwrap_err().message.contains("nests deeper"));
    let ok = format!("{}in_stock{}", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
    assert!(Expr::parse(&ok).is_ok());
    let nots = format!("{}in_stock", "not ".repeat(MAX_FILTER_DEPTH + 1));
    assert!(Expr::parse(&nots).is_err());
    let long = vec!["in_stock"; MAX_FILTER_LEN / 8].join(" or ");
    assert!(Expr::parse(&long).unwrap_err().message.contains("at most"));
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (-10_000_000i64..10_000_000, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["Acme", "Zed", "red", "Home", "Home > Kitchen", "Garden > Tools", "adult"])
            .prop_map(str::to_string),
        "\\PC{0,12}",
        "[\"\\\\\n\t a-z\u{1}]{0,6}",
    ]
}

fn category() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["Home", "Home > Kitchen", "Home > Kitchen > Mugs", "Garden", "garden > tools"])
        .prop_map(str::to_string)
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["colour", "size", "organic", "age group", "and", "x-y"]).prop_map(str::to_string),
        "[a-z_][a-z0-9_]{0,8}",
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge])
}

fn equality() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne])
}

fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![text().prop_map(Value::Text), decimal().prop_map(Value::Number), any::<bool>().prop_map(Value::Bool)]
}

fn predicate() -> impl Strategy<Value = Expr> {
    let numeric_field = prop::sample::select(vec![Field::Price, Field::StockQuantity]);
    let text_field = prop::sample::select(vec![Field::Brand, Field::Id, Field::ItemGroupId]);
    let availability = prop::sample::select(vec!["in_stock", "out_of_stock", "preorder", "backorder"])
        .prop_map(|a| Value::Text(a.to_string()));
    let leaf = prop_oneof![
        (numeric_field.clone(), op(), decimal()).prop_map(|(f, o, d)| (f, Test::Compare(o, Value::Number(d)))),
        (numeric_field, prop::collection::vec(decimal().prop_map(Value::Number), 1..4))
            .prop_map(|(f, v)| (f, Test::In(v))),
        (text_field.clone(), equality(), text()).prop_map(|(f, o, t)| (f, Test::Compare(o, Value::Text(t)))),
        (text_field, prop::collection::vec(text().prop_map(Value::Text), 1..4)).prop_map(|(f, v)| (f, Test::In(v))),
        (equality(), category()).prop_map(|(o, c)| (Field::Category, Test::Compare(o, Value::Text(c)))),
        (equality(), availability).prop_map(|(o, a)| (Field::Availability, Test::Compare(o, a))),
        Just((Field::InStock, Test::IsTrue)),
        (equality(), any::<bool>()).prop_map(|(o, b)| (Field::InStock, Test::Compare(o, Value::Bool(b)))),
        attribute_name().prop_map(|n| (Field::Attribute(n), Test::IsTrue)),
        (attribute_name(), op(), decimal())
            .prop_map(|(n, o, d)| (Field::Attribute(n), Test::Compare(o, Value::Number(d)))),
        (attribute_name(), equality(), scalar_value()).prop_map(|(n, o, v)| (Field::Attribute(n), Test::Compare(o, v))),
        (attribute_name(), prop::collection::vec(scalar_value(), 1..4))
            .prop_map(|(n, v)| (Field::Attribute(n), Test::In(v))),
    ];
    leaf.prop_map(|(field, test)| Expr::Predicate(Predicate { field, test }))
}

fn expr() -> impl Strategy<Value = Expr> {
    predicate().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn any_item() -> impl Strategy<Value = Item> {
    (
        prop::option::of(prop::sample::select(vec!["0", "4.99", "12.50", "40", "1000"])),
        category(),
        prop::option::of(prop::sample::select(vec!["Acme", "zed", "Other"])),
        prop::option::of(0i64..5),
    )
        .prop_map(|(price, category, brand, stock)| item(price, &category, brand, stock))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_then_parse_gives_back_the_same_expression(expr in expr()) {
        let text = expr.to_string();
        let parsed = Expr::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, expr, "{}", text);
    }

    #[test]
    fn not_matches_exactly_the_complement(expr in expr(), item in any_item()) {
        let text = format!("not ({expr})");
        let negated = Expr::parse(&text).unwrap();
        prop_assert_eq!(negated.matches(&item), !expr.matches(&item), "{}", text);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,80}") {
        if let Err(error) = Expr::parse(&text) {
            prop_assert!(error.position <= text.len());
            prop_assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn random_token_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "price", "brand", "category", "in_stock", "colour", "attributes", ".", "and", "or", "not", "in", "(", ")",
        ",", "=", "!=", "<", ">=", "\"x\"", "\"", "12.5", "-3", "true", "\\", "\\u{", "é",
    ]), 0..20), item in any_item()) {
        let text = words.join(" ");
        match Expr::parse(&text) {
            Ok(expr) => {
                let _ = expr.matches(&item);
                prop_assert_eq!(Expr::parse(&expr.to_string()).unwrap(), expr);
            }
            Err(error) => prop_assert!(error.position <= text.len(), "{}: {:?}", text, error),
        }
    }
}
