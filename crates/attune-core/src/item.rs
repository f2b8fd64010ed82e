//! Catalog items: products and their variants, with price, attributes and stock.

use crate::error::ValidationError;
use crate::ids::ItemId;
use crate::input::{ItemInput, ScalarValue, TimeInput};
use crate::money::{Currency, Money};
use crate::time::Timestamp;
use crate::user::validate_scalar_map;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MAX_TITLE_LEN: usize = 1_000;
const MAX_DESCRIPTION_LEN: usize = 20_000;
const MAX_URL_LEN: usize = 4_000;
const MAX_CATEGORY_LEVELS: usize = 12;
const MAX_ATTRIBUTES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Availability {
    InStock,
    OutOfStock,
    Preorder,
    Backorder,
}

impl Availability {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        // Merchant Center spells these with spaces ("in stock"); accept both spellings.
        match text.trim().to_ascii_lowercase().replace(' ', "_").as_str() {
            "in_stock" => Ok(Self::InStock),
            "out_of_stock" => Ok(Self::OutOfStock),
            "preorder" => Ok(Self::Preorder),
            "backorder" => Ok(Self::Backorder),
            _ => Err(ValidationError::new(
                "availability",
                "invalid_availability",
                format!("`{text}` is not one of in_stock, out_of_stock, preorder, backorder"),
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::OutOfStock => "out_of_stock",
            Self::Preorder => "preorder",
            Self::Backorder => "backorder",
        }
    }

    /// Whether a shopper can buy the item now.
    pub fn is_purchasable(&self) -> bool {
        matches!(self, Self::InStock | Self::Backorder | Self::Preorder)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Item {
    pub id: ItemId,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_path: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::money::MoneyText>))]
    pub price: Option<Money>,
    /// Colour, size, material, gender and any other attribute, by name.
    pub attributes: BTreeMap<String, ScalarValue>,
    pub image_url: Option<String>,
    pub link: Option<String>,
    pub stock_quantity: Option<i64>,
    pub availability: Availability,
    pub item_group_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Item {
    /// Validate an input. `now` fills `created_at` when the input has none, and `updated_at`.
    pub fn parse(input: ItemInput, now: Timestamp) -> Result<Self, ValidationError> {
        let id = ItemId::parse_field("id", input.id.ok_or_else(|| ValidationError::missing("id"))?)?;
        let title = input.title.map(|t| t.trim().to_string()).unwrap_or_default();
        if title.is_empty() {
            return Err(ValidationError::missing("title"));
        }
        check_len("title", &title, MAX_TITLE_LEN)?;
        let description = input.description.unwrap_or_default();
        check_len("description", &description, MAX_DESCRIPTION_LEN)?;
        let brand = non_empty(input.brand);
        if let Some(brand) = &brand {
            check_len("brand", brand, MAX_TITLE_LEN)?;
        }
        let category_path = match (input.category_path, input.category) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "category",
                    "conflicting_fields",
                    "give either `category_path` or `category`, not both",
                ));
            }
            (Some(path), None) => path,
            (None, Some(text)) => split_category(&text),
            (None, None) => Vec::new(),
        };
        let category_path: Vec<String> =
            category_path.into_iter().map(|level| level.trim().to_string()).filter(|l| !l.is_empty()).collect();
        if category_path.len() > MAX_CATEGORY_LEVELS {
            return Err(ValidationError::new(
                "category_path",
                "too_many_levels",
                format!("a category path has at most {MAX_CATEGORY_LEVELS} levels"),
            ));
        }
        for level in &category_path {
            check_len("category_path", level, MAX_TITLE_LEN)?;
        }
        let price = match (input.price, input.currency) {
            (None, None) => None,
            (Some(_), None) => return Err(ValidationError::missing("currency")),
            (None, Some(_)) => return Err(ValidationError::missing("price")),
            (Some(amount), Some(code)) => {
                let money = Money::parse_amount(&amount.to_decimal_string(), Currency::parse(&code)?)?;
                if money.minor_units < 0 {
                    return Err(ValidationError::new("price", "negative_price", "a price must not be negative"));
                }
                Some(money)
            }
        };
        let attributes = input.attributes.unwrap_or_default();
        validate_scalar_map("attributes", &attributes, MAX_ATTRIBUTES, 64, MAX_TITLE_LEN)?;
        let image_url = non_empty(input.image_url);
        let link = non_empty(input.link);
        for (field, url) in [("image_url", &image_url), ("link", &link)] {
            if let Some(url) = url {
                check_url(field, url)?;
            }
        }
        if let Some(stock) = input.stock_quantity
            && stock < 0
        {
            return Err(ValidationError::new("stock_quantity", "negative_quantity", "stock must not be negative"));
        }
        let availability = match input.availability {
            Some(text) => Availability::parse(&text)?,
            None => match input.stock_quantity {
                Some(0) => Availability::OutOfStock,
                _ => Availability::InStock,
            },
        };
        let item_group_id = non_empty(input.item_group_id);
        if let Some(group) = &item_group_id {
            ItemId::parse_field("item_group_id", group.clone())?;
        }
        let created_at = match input.created_at {
            None => now,
            Some(time) => parse_time("created_at", time)?,
        };
        Ok(Self {
            id,
            title,
            description,
            brand,
            category_path,
            price,
            attributes,
            image_url,
            link,
            stock_quantity: input.stock_quantity,
            availability,
            item_group_id,
            created_at,
            updated_at: now,
        })
    }

    /// The attribute `name` as text, if present.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes.get(name).map(ScalarValue::to_text)
    }

    /// The most specific category, if any.
    pub fn leaf_category(&self) -> Option<&str> {
        self.category_path.last().map(String::as_str)
    }

    /// Whether the item can be sold now: purchasable availability and, if stock is tracked, stock left.
    pub fn is_in_stock(&self) -> bool {
        self.availability.is_purchasable()
            && self.stock_quantity.is_none_or(|s| s > 0 || self.availability != Availability::InStock)
    }
}

/// Split `"Home > Kitchen > Mugs"` into levels.
pub fn split_category(text: &str) -> Vec<String> {
    text.split('>').map(|level| level.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

pub(crate) fn parse_time(field: &str, time: TimeInput) -> Result<Timestamp, ValidationError> {
    match time {
        TimeInput::Millis(millis) => Timestamp::from_millis(millis),
        TimeInput::Text(text) => Timestamp::parse_rfc3339(&text),
    }
    .map_err(|mut e| {
        e.field = field.to_string();
        e
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(ValidationError::new(field, "value_too_long", format!("`{field}` is longer than {max} bytes")));
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), ValidationError> {
    check_len(field, url, MAX_URL_LEN)?;
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/');
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(
            field,
            "invalid_url",
            format!("`{field}` must be an http(s) URL or an absolute path"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::AmountInput;

    fn input() -> ItemInput {
        ItemInput {
            id: Some("85123A".into()),
            title: Some("WHITE HANGING HEART T-LIGHT HOLDER".into()),
            price: Some(AmountInput::Text("2.55".into())),
            currency: Some("GBP".into()),
            category: Some("Home > Candles".into()),
            ..Default::default()
        }
    }

    #[test]
    fn parses_a_valid_item() {
        let item = Item::parse(input(), Timestamp::now()).unwrap();
        assert_eq!(item.price.unwrap().minor_units, 255);
        assert_eq!(item.category_path, vec!["Home", "Candles"]);
        assert_eq!(item.availability, Availability::InStock);
    }

    #[test]
    fn rejects_negative_price_and_stock() {
        let mut bad = input();
        bad.price = Some(AmountInput::Number(-1.0));
        assert_eq!(Item::parse(bad, Timestamp::now()).unwrap_err().code, "negative_price");
        let mut bad = input();
        bad.stock_quantity = Some(-2);
        assert_eq!(Item::parse(bad, Timestamp::now()).unwrap_err().code, "negative_quantity");
    }

    #[test]
    fn zero_stock_means_out_of_stock() {
        let mut zero = input();
        zero.stock_quantity = Some(0);
        let item = Item::parse(zero, Timestamp::now()).unwrap();
        assert_eq!(item.availability, Availability::OutOfStock);
        assert!(!item.is_in_stock());
    }
}
