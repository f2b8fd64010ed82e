//! The reorder suggestion list: every item whose inventory position is at or below its reorder point, most
//! at risk of a stockout first.

use super::policy::{InventoryPolicy, LeadTime, OrderRules, PolicySettings, StockPosition, inventory_policy};
use crate::Result;
use crate::forecast::Forecast;

/// One item's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemStock<K> {
    /// The item's key.
    pub item: K,
    /// Its demand forecast per period.
    pub forecast: Forecast,
    /// Its stock.
    pub stock: StockPosition,
    /// Its supplier's lead time.
    pub lead_time: LeadTime,
    /// Its order sizing rules.
    pub rules: OrderRules,
}

/// An item to reorder now.
#[derive(Debug, Clone, PartialEq)]
pub struct ReorderSuggestion<K> {
    /// The item's key.
    pub item: K,
    /// Units to order.
    pub quantity: f64,
    /// The policy figures behind the suggestion.
    pub policy: InventoryPolicy,
}

/// Items due for reorder, by stockout risk (highest first), then days of cover (lowest first), then input
/// order.
pub fn reorder_suggestions<K: Clone>(
    items: &[ItemStock<K>],
    settings: &PolicySettings,
) -> Result<Vec<ReorderSuggestion<K>>> {
    let mut suggestions = Vec::new();
    for item in items {
        let policy = inventory_policy(&item.forecast, &item.stock, &item.lead_time, &item.rules, settings)?;
        if policy.reorder && policy.suggested_order > 0.0 {
            suggestions.push(ReorderSuggestion { item: item.item.clone(), quantity: policy.suggested_order, policy });
        }
    }
    suggestions.sort_by(|a, b| {
        b.policy
            .stockout_risk
            .total_cmp(&a.policy.stockout_risk)
            .then(a.policy.days_of_cover.total_cmp(&b.policy.days_of_cover))
    });
    Ok(suggestions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_items_due_most_urgent_first() {
        let forecast = Forecast::from_mean_and_sd(vec![10.0; 6], vec![3.0; 6], 0.95, true);
        let item = |name: &'static str, on_hand: f64| ItemStock {
            item: name,
            forecast: forecast.clone(),
            stock: StockPosition { on_hand, ..Default::default() },
            lead_time: LeadTime { mean: 2.0, sd: 0.0 },
            rules: OrderRules::default(),
        };
        let items = [item("plenty", 500.0), item("low", 15.0), item("empty", 0.0)];
        let list = reorder_suggestions(&items, &PolicySettings::default()).unwrap();
        let names: Vec<_> = list.iter().map(|s| s.item).collect();
        assert_eq!(names, vec!["empty", "low"]);
        assert!(list[0].quantity > list[1].quantity);
    }
}
