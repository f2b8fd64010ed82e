//! Product feed rows in Google Merchant Center attribute names to [`ItemInput`]s.
//!
//! | feed attribute | item field |
//! |---|---|
//! | `id` (required) | `id` |
//! | `title`, `description`, `link`, `brand`, `item_group_id` | the field of the same name |
//! | `image_link` | `image_url` |
//! | `availability` (`in stock`, `out of stock`, `preorder`, `backorder`) | `availability` |
//! | `price` (`12.50 GBP`) | `price` and `currency` |
//! | `sale_price` (`9.99 GBP`) | checked like `price`, kept as attribute `sale_price` |
//! | `product_type` (`Home & Garden > Kitchen > Mugs`) | `category_path` |
//! | `google_product_category` | attribute `google_product_category`; also the category path when there is no `product_type` and it is a path, not a numeric category id |
//! | `quantity` or `stock_quantity` | `stock_quantity` |
//! | `color` (or `colour`), `size`, `gender`, `material`, `pattern`, `age_group`, `condition`, `gtin`, `mpn`, `custom_label_0`…`custom_label_4` | attribute of that name |
//! | anything else | attribute named after the column (kept, and listed in the import summary) |
//!
//! Column names are matched case-insensitively, with spaces read as `_` (`image link` = `image_link`).
//! Empty values count as absent.

use crate::import::source::UTF8_BOM_CHAR;
use anyhow::bail;
use attune_core::ItemInput;
use attune_core::input::{AmountInput, ScalarValue};
use attune_core::item::split_category;
use attune_core::money::Money;
use std::collections::{BTreeMap, BTreeSet};

/// Merchant Center attributes kept as item attributes under their own name.
const ATTRIBUTE_COLUMNS: &[&str] = &[
    "color",
    "size",
    "gender",
    "material",
    "pattern",
    "age_group",
    "condition",
    "gtin",
    "mpn",
    "custom_label_0",
    "custom_label_1",
    "custom_label_2",
    "custom_label_3",
    "custom_label_4",
];

/// What a feed column fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemColumn {
    Id,
    Title,
    Description,
    Link,
    ImageLink,
    Availability,
    Price,
    SalePrice,
    Brand,
    ProductType,
    GoogleProductCategory,
    ItemGroupId,
    StockQuantity,
    /// An attribute of this name; `mapped` is false for columns Attune does not know.
    Attribute {
        name: String,
        mapped: bool,
    },
}

impl ItemColumn {
    /// The column for a header name or JSON key.
    pub fn from_name(name: &str) -> Self {
        let name = normalize_column_name(name);
        match name.as_str() {
            "id" => Self::Id,
            "title" => Self::Title,
            "description" => Self::Description,
            "link" => Self::Link,
            "image_link" => Self::ImageLink,
            "availability" => Self::Availability,
            "price" => Self::Price,
            "sale_price" => Self::SalePrice,
            "brand" => Self::Brand,
            "product_type" => Self::ProductType,
            "google_product_category" => Self::GoogleProductCategory,
            "item_group_id" => Self::ItemGroupId,
            "quantity" | "stock_quantity" => Self::StockQuantity,
            "colour" => Self::Attribute { name: "color".into(), mapped: true },
            _ => {
                let mapped = ATTRIBUTE_COLUMNS.contains(&name.as_str());
                Self::Attribute { name, mapped }
            }
        }
    }
}

/// `" Image Link"` → `image_link`.
pub fn normalize_column_name(name: &str) -> String {
    name.trim_start_matches(UTF8_BOM_CHAR).trim().to_lowercase().replace(' ', "_")
}

/// A feed value: CSV cells are text, JSON values keep their type.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl FeedValue {
    /// A JSON value as a feed value; `None` for null. Arrays and objects become their JSON text.
    fn from_json(value: serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(b) => Some(Self::Bool(b)),
            serde_json::Value::Number(n) => Some(Self::Number(n)),
            serde_json::Value::String(s) => Some(Self::Text(s)),
            other => Some(Self::Text(other.to_string())),
        }
    }

    fn into_text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }

    fn is_blank(&self) -> bool {
        matches!(self, Self::Text(text) if text.trim().is_empty())
    }

    fn into_scalar(self) -> ScalarValue {
        match self {
            Self::Text(text) => ScalarValue::Text(text.trim().to_string()),
            Self::Number(n) => n.as_f64().map_or_else(|| ScalarValue::Text(n.to_string()), ScalarValue::Number),
            Self::Bool(b) => ScalarValue::Bool(b),
        }
    }
}

/// The columns of a CSV/TSV feed, resolved once from its header.
#[derive(Debug)]
pub struct ItemColumns {
    columns: Vec<ItemColumn>,
    headers: Vec<String>,
}

impl ItemColumns {
    /// Resolve a header row. A header without an `id` column, or with two columns filling the same
    /// field, is not a usable feed.
    pub fn from_headers(headers: &[String]) -> anyhow::Result<Self> {
        let columns: Vec<ItemColumn> = headers.iter().map(|h| ItemColumn::from_name(h)).collect();
        if !columns.contains(&ItemColumn::Id) {
            let shown: Vec<String> = headers.iter().take(5).map(|h| h.chars().take(40).collect()).collect();
            bail!(
                "the header has no `id` column (it starts with {shown:?}); is this a product feed, and is the format \
                 (comma- or tab-separated) right?"
            );
        }
        for (index, column) in columns.iter().enumerate() {
            if let Some(other) = columns[..index].iter().position(|c| same_target(c, column)) {
                bail!(
                    "columns `{}` and `{}` both give the item's {}",
                    headers[other],
                    headers[index],
                    target_name(column)
                );
            }
        }
        Ok(Self { columns, headers: headers.to_vec() })
    }

    /// Columns that are not Merchant Center attributes Attune knows, kept as attributes.
    pub fn unmapped_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter_map(|column| match column {
                ItemColumn::Attribute { name, mapped: false } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// One row's values as an item input.
    pub fn item_input(&self, fields: &[String]) -> Result<ItemInput, String> {
        debug_assert_eq!(fields.len(), self.headers.len());
        item_input_from_values(
            self.columns
                .iter()
                .zip(&self.headers)
                .zip(fields)
                .map(|((c, h), v)| (c, h.as_str(), FeedValue::Text(v.clone()))),
        )
    }
}

/// One JSON line of a feed (an object keyed by Merchant Center attribute names) as an item input; keys
/// that are not known attributes are added to `unmapped`.
pub fn item_input_from_json(line: &[u8], unmapped: &mut BTreeSet<String>) -> Result<ItemInput, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {}", json_error_text(&e)))?;
    let mut values = Vec::with_capacity(object.len());
    for (key, value) in object {
        let column = ItemColumn::from_name(&key);
        if let ItemColumn::Attribute { name, mapped: false } = &column {
            unmapped.insert(name.clone());
        }
        if let Some(value) = FeedValue::from_json(value) {
            values.push((column, key, value));
        }
    }
    item_input_from_values(values.iter().map(|(column, key, value)| (column, key.as_str(), value.clone())))
}

/// A serde_json error without its "at line 1" (the whole input is one line of the file).
pub(crate) fn json_error_text(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => format!("{message} (column {})", error.column()),
        None => text,
    }
}

fn same_target(a: &ItemColumn, b: &ItemColumn) -> bool {
    match (a, b) {
        (ItemColumn::Attribute { name: x, .. }, ItemColumn::Attribute { name: y, .. }) => x == y,
        (ItemColumn::Attribute { .. }, _) | (_, ItemColumn::Attribute { .. }) => false,
        _ => a == b,
    }
}

fn target_name(column: &ItemColumn) -> String {
    match column {
        ItemColumn::Attribute { name, .. } => format!("attribute `{name}`"),
        ItemColumn::StockQuantity => "stock quantity".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Build an item input from `(column, name as given, value)` triples.
fn item_input_from_values<'a>(
    values: impl Iterator<Item = (&'a ItemColumn, &'a str, FeedValue)>,
) -> Result<ItemInput, String> {
    let mut input = ItemInput::default();
    let mut attributes: BTreeMap<String, ScalarValue> = BTreeMap::new();
    let mut product_type: Option<String> = None;
    let mut google_category: Option<String> = None;
    let mut seen: Vec<(&'a ItemColumn, &'a str)> = Vec::new();
    for (column, given_name, value) in values {
        if value.is_blank() {
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(c, _)| same_target(c, column)) {
            return Err(format!("`{first}` and `{given_name}` both give the item's {}", target_name(column)));
        }
        seen.push((column, given_name));
        match column {
            ItemColumn::Id => input.id = Some(value.into_text().trim().to_string()),
            ItemColumn::Title => input.title = Some(value.into_text()),
            ItemColumn::Description => input.description = Some(value.into_text()),
            ItemColumn::Link => input.link = Some(value.into_text()),
            ItemColumn::ImageLink => input.image_url = Some(value.into_text()),
            ItemColumn::Availability => input.availability = Some(value.into_text()),
            ItemColumn::Brand => input.brand = Some(value.into_text()),
            ItemColumn::ItemGroupId => input.item_group_id = Some(value.into_text().trim().to_string()),
            ItemColumn::Price => {
                let price = parse_price("price", &value.into_text())?;
                input.price = Some(AmountInput::Text(price.amount_string()));
                input.currency = Some(price.currency.to_string());
            }
            ItemColumn::SalePrice => {
                let sale_price = parse_price("sale_price", &value.into_text())?;
                attributes.insert("sale_price".into(), ScalarValue::Text(sale_price.to_string()));
            }
            ItemColumn::ProductType => product_type = Some(value.into_text()),
            ItemColumn::GoogleProductCategory => {
                let text = value.into_text().trim().to_string();
                attributes.insert("google_product_category".into(), ScalarValue::Text(text.clone()));
                google_category = Some(text);
            }
            ItemColumn::StockQuantity => input.stock_quantity = Some(parse_whole_number(given_name, value)?),
            ItemColumn::Attribute { name, .. } => {
                attributes.insert(name.clone(), value.into_scalar());
            }
        }
    }
    let category = product_type.or_else(|| google_category.filter(|text| !text.chars().all(|c| c.is_ascii_digit())));
    input.category_path = category.map(|text| split_category(&text)).filter(|path| !path.is_empty());
    if !attributes.is_empty() {
        input.attributes = Some(attributes);
    }
    Ok(input)
}

fn parse_price(field: &str, text: &str) -> Result<Money, String> {
    Money::parse_with_currency(text.trim()).map_err(|mut error| {
        error.field = field.to_string();
        error.to_string()
    })
}

/// `12`, `12.0` (spreadsheet exports) or a JSON integer.
fn parse_whole_number(field: &str, value: FeedValue) -> Result<i64, String> {
    let text = value.into_text();
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i64>() {
        return Ok(number);
    }
    match trimmed.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole.parse::<i64>().map_err(|_| format!("{field}: `{text}` is not a whole number"))
        }
        _ => Err(format!("{field}: `{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{Availability, Item, Timestamp};

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn row(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn maps_merchant_center_columns() {
        let columns = ItemColumns::from_headers(&headers(&[
            "id",
            "Title",
            "image link",
            "availability",
            "price",
            "sale_price",
            "product_type",
            "google_product_category",
            "colour",
            "size",
            "quantity",
            "shipping_label",
        ]))
        .unwrap();
        assert_eq!(columns.unmapped_columns(), ["shipping_label"]);
        let input = columns
            .item_input(&row(&[
                "SKU-1",
                "Mug",
                "https://shop.example/mug.jpg",
                "in stock",
                "12.5 GBP",
                "9.99 GBP",
                "Home & Garden > Kitchen > Mugs",
                "Home & Garden > Kitchen & Dining",
                "blue",
                "",
                "7.0",
                "oversize",
            ]))
            .unwrap();
        let item = Item::parse(input, Timestamp::now()).unwrap();
        assert_eq!(item.id.as_str(), "SKU-1");
        assert_eq!(item.price.unwrap().to_string(), "12.50 GBP");
        assert_eq!(item.category_path, ["Home & Garden", "Kitchen", "Mugs"]);
        assert_eq!(item.availability, Availability::InStock);
        assert_eq!(item.stock_quantity, Some(7));
        assert_eq!(item.image_url.as_deref(), Some("https://shop.example/mug.jpg"));
        assert_eq!(item.attribute("color").as_deref(), Some("blue"));
        assert_eq!(item.attribute("size"), None);
        assert_eq!(item.attribute("sale_price").as_deref(), Some("9.99 GBP"));
        assert_eq!(item.attribute("google_product_category").as_deref(), Some("Home & Garden > Kitchen & Dining"));
        assert_eq!(item.attribute("shipping_label").as_deref(), Some("oversize"));
    }

    #[test]
    fn google_category_is_the_path_only_without_product_type_and_when_textual() {
        let columns = ItemColumns::from_headers(&headers(&["id", "title", "google_product_category"])).unwrap();
        let input = columns.item_input(&row(&["a", "A", "Apparel > Shoes"])).unwrap();
        assert_eq!(input.category_path, Some(vec!["Apparel".to_string(), "Shoes".to_string()]));
        let input = columns.item_input(&row(&["a", "A", "187"])).unwrap();
        assert_eq!(input.category_path, None);
    }

    #[test]
    fn explains_bad_values() {
        let columns = ItemColumns::from_headers(&headers(&["id", "title", "price", "stock_quantity"])).unwrap();
        let error = columns.item_input(&row(&["a", "A", "abc GBP", ""])).unwrap_err();
        assert!(error.starts_with("price:"), "{error}");
        let error = columns.item_input(&row(&["a", "A", "12.50", ""])).unwrap_err();
        assert!(error.contains("12.50 GBP"), "{error}");
        let error = columns.item_input(&row(&["a", "A", "", "many"])).unwrap_err();
        assert!(error.contains("whole number"), "{error}");
    }

    #[test]
    fn rejects_unusable_headers() {
        let error = ItemColumns::from_headers(&headers(&["id\ttitle\tprice"])).unwrap_err();
        assert!(error.to_string().contains("no `id` column"), "{error}");
        let error = ItemColumns::from_headers(&headers(&["id", "quantity", "stock_quantity"])).unwrap_err();
        assert!(error.to_string().contains("both"), "{error}");
    }

    #[test]
    fn json_lines_keep_types_and_report_unknown_keys() {
        let mut unmapped = BTreeSet::new();
        let line = br#"{"id":"a","title":"A","price":"3 EUR","quantity":4,"adult":false,"rating_count":12,"extra":null,"tags":["x","y"]}"#;
        let input = item_input_from_json(line, &mut unmapped).unwrap();
        assert_eq!(input.stock_quantity, Some(4));
        let attributes = input.attributes.unwrap();
        assert_eq!(attributes["adult"], ScalarValue::Bool(false));
        assert_eq!(attributes["rating_count"], ScalarValue::Number(12.0));
        assert_eq!(attributes["tags"], ScalarValue::Text(r#"["x","y"]"#.into()));
        assert!(!attributes.contains_key("extra"));
        assert_eq!(unmapped.into_iter().collect::<Vec<_>>(), ["adult", "extra", "rating_count", "tags"]);
        let error = item_input_from_json(b"[1,2]", &mut BTreeSet::new()).unwrap_err();
        assert!(error.starts_with("not a JSON object"), "{error}");
        let error =
            item_input_from_json(br#"{"id":"a","quantity":1,"stock_quantity":2}"#, &mut BTreeSet::new()).unwrap_err();
        assert!(error.contains("both"), "{error}");
    }
}
