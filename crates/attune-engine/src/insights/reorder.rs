//! Reorder suggestions: daily demand forecasts for the best sellers turned into an inventory policy per item
//! (safety stock, reorder point, days of cover, stockout risk, overstock, order quantity).

use super::analytics::TenantAnalytics;
use super::demand::{Granularity, demand_series};
use crate::error::EngineResult;
use attune_core::{ItemId, TenantId, Timestamp};
use attune_insights::forecast::{ForecastSettings, forecast_many};
use attune_insights::inventory::{LeadTime, OrderRules, PolicySettings, StockPosition, inventory_policy};
use attune_store::Store;
use std::collections::BTreeMap;

/// Items considered for reorder suggestions: the best sellers of the last [`RECENT_DAYS`] days.
const REORDER_ITEMS: usize = 200;
const RECENT_DAYS: i64 = 90;
/// Default replenishment lead time of reorder suggestions, in days.
pub const DEFAULT_LEAD_TIME_DAYS: f64 = 14.0;
/// Default cycle service level of reorder suggestions.
pub const DEFAULT_SERVICE_LEVEL: f64 = 0.95;

#[derive(Debug, Clone)]
pub struct ReorderLine {
    pub item_id: String,
    pub title: Option<String>,
    /// Units on hand from the catalog's `stock_quantity`; null when the catalog has no stock figure, in
    /// which case only the safety stock and reorder point are meaningful.
    pub stock: Option<i64>,
    pub units_last_90d: f64,
    /// Forecast daily demand (mean over the lead time).
    pub daily_demand: f64,
    pub lead_time_demand: f64,
    pub safety_stock: f64,
    pub reorder_point: f64,
    /// Null without a stock figure.
    pub days_of_cover: Option<f64>,
    pub stockout_risk: Option<f64>,
    /// Whether to order now; null without a stock figure.
    pub reorder: Option<bool>,
    /// More than 90 days of cover; null without a stock figure.
    pub overstock: Option<bool>,
    pub suggested_order: Option<f64>,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct Reorder {
    pub lead_time_days: f64,
    pub service_level: f64,
    /// When the list was computed (by a request or by the scheduled `forecast` task).
    pub computed_at: Timestamp,
    /// Items considered: the best sellers of the last 90 days, at most 200.
    pub items_considered: usize,
    /// Items considered that have a stock figure.
    pub items_with_stock: usize,
    /// Items with a stock figure that should be reordered now (the first lines of `items`).
    pub reorder_now: usize,
    /// Items with a stock figure and over 90 days of cover (listed after those to reorder).
    pub overstocked: usize,
    /// Items with a stock figure that should be reordered now, most urgent first, then items without stock
    /// figures by demand.
    pub items: Vec<ReorderLine>,
}

/// Computes the reorder list for a policy: daily demand forecasts for the best sellers of the last 90 days (at
/// most 200); items with a stock figure get a full policy and are listed when due (most at risk first) or
/// overstocked, items without one are listed with only their safety stock and reorder point. CPU-heavy:
/// call on a blocking thread.
pub fn compute_reorder(
    store: &dyn Store,
    tenant: &TenantId,
    analytics: &TenantAnalytics,
    lead_time_days: f64,
    service_level: f64,
) -> EngineResult<Reorder> {
    let recent = best_sellers(analytics);
    let ids: Vec<ItemId> = recent.iter().map(|(id, _)| (*id).clone()).collect();
    let catalog: BTreeMap<ItemId, (String, Option<i64>)> =
        store.items(tenant, &ids)?.into_iter().map(|i| (i.id, (i.title, i.stock_quantity))).collect();
    let horizon = lead_time_days.ceil() as usize + 1;
    let series: Vec<Vec<f64>> = recent
        .iter()
        .map(|(id, _)| demand_series(&analytics.demand.items[*id], Granularity::Day, analytics.end_day).1)
        .collect();
    let forecasts = forecast_many(&series, &ForecastSettings::new(7, horizon));
    let policy = Policy {
        settings: PolicySettings { service_level, ..Default::default() },
        lead_time: LeadTime { mean: lead_time_days, sd: 0.0 },
    };
    let mut lines = Lines::default();
    for ((id, units), fitted) in recent.iter().zip(forecasts) {
        let Ok(fitted) = fitted else { continue };
        let (title, stock) = catalog.get(*id).cloned().map_or((None, None), |(t, s)| (Some(t), s));
        lines.add(policy.line(id, title, stock, *units, &fitted)?);
    }
    Ok(lines.into_reorder(lead_time_days, service_level, recent.len()))
}

/// The best sellers of the last [`RECENT_DAYS`] days (at most [`REORDER_ITEMS`]) with their units, most first.
fn best_sellers(analytics: &TenantAnalytics) -> Vec<(&ItemId, f64)> {
    let since = analytics.end_day - RECENT_DAYS;
    let mut recent: Vec<(&ItemId, f64)> = analytics
        .demand
        .items
        .iter()
        .map(|(id, daily)| (id, daily.range(since + 1..=analytics.end_day).map(|(_, q)| q).sum::<f64>()))
        .filter(|(_, units)| *units > 0.0)
        .collect();
    recent.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    recent.truncate(REORDER_ITEMS);
    recent
}

/// The policy every line is computed with.
struct Policy {
    settings: PolicySettings,
    lead_time: LeadTime,
}

/// A line with how it is listed: (is due, how urgent) or (overstocked, days of cover), or without a stock figure.
enum Listed {
    Due(f64, ReorderLine),
    Overstocked(f64, ReorderLine),
    Covered,
    WithoutStock(ReorderLine),
}

impl Policy {
    /// One item's line from its daily demand forecast; the full policy only with a stock figure.
    fn line(
        &self,
        id: &ItemId,
        title: Option<String>,
        stock: Option<i64>,
        units: f64,
        fitted: &attune_insights::forecast::AutoForecast,
    ) -> EngineResult<Listed> {
        let position = StockPosition { on_hand: stock.unwrap_or(0) as f64, ..Default::default() };
        let policy =
            inventory_policy(&fitted.forecast, &position, &self.lead_time, &OrderRules::default(), &self.settings)?;
        let known = stock.is_some();
        let line = ReorderLine {
            item_id: id.to_string(),
            title,
            stock,
            units_last_90d: units,
            daily_demand: policy.lead_time_demand / self.lead_time.mean,
            lead_time_demand: policy.lead_time_demand,
            safety_stock: policy.safety_stock,
            reorder_point: policy.reorder_point,
            days_of_cover: known.then_some(policy.days_of_cover).filter(|d| d.is_finite()),
            stockout_risk: known.then_some(policy.stockout_risk),
            reorder: known.then_some(policy.reorder),
            overstock: known.then_some(policy.overstock),
            suggested_order: known.then_some(policy.suggested_order),
            model: fitted.method().to_string(),
        };
        Ok(match (known, policy.reorder, policy.overstock) {
            (true, true, _) => Listed::Due(policy.stockout_risk, line),
            (true, false, true) => Listed::Overstocked(policy.days_of_cover, line),
            (true, false, false) => Listed::Covered,
            (false, _, _) => Listed::WithoutStock(line),
        })
    }
}

/// The lines gathered, by how they are listed.
#[derive(Default)]
struct Lines {
    due: Vec<(f64, ReorderLine)>,
    overstocked: Vec<(f64, ReorderLine)>,
    without_stock: Vec<ReorderLine>,
    with_stock: usize,
}

impl Lines {
    fn add(&mut self, listed: Listed) {
        match listed {
            Listed::Due(risk, line) => self.due.push((risk, line)),
            Listed::Overstocked(cover, line) => self.overstocked.push((cover, line)),
            Listed::Covered => {}
            Listed::WithoutStock(line) => {
                self.without_stock.push(line);
                return;
            }
        }
        self.with_stock += 1;
    }

    /// The list: due items most at risk first, then overstocked ones most covered first, then the items
    /// without a stock figure.
    fn into_reorder(mut self, lead_time_days: f64, service_level: f64, considered: usize) -> Reorder {
        self.due.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.overstocked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (reorder_now, overstocked) = (self.due.len(), self.overstocked.len());
        let mut items: Vec<ReorderLine> = self.due.into_iter().map(|(_, line)| line).collect();
        items.extend(self.overstocked.into_iter().map(|(_, line)| line));
        items.extend(self.without_stock);
        Reorder {
            lead_time_days,
            service_level,
            computed_at: Timestamp::now(),
            items_considered: considered,
            items_with_stock: self.with_stock,
            reorder_now,
            overstocked,
            items,
        }
    }
}
