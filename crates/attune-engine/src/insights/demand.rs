//! Demand forecasts: units sold per day, week or month from purchase lines, for one item, a category (its
//! items' summed demand) or the tenant in total, with an automatically chosen model (`attune-insights`), a
//! 95 % prediction interval and a rolling-origin backtest.

use super::analytics::{TenantAnalytics, day_text};
use crate::error::{EngineError, EngineResult};
use attune_core::{ItemId, TenantId};
use attune_insights::forecast::{ForecastSettings, forecast_auto, rolling_origin};
use attune_store::Store;
use chrono::{Datelike, NaiveDate};
use std::collections::BTreeMap;

/// Time buckets of a demand series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
}

impl Granularity {
    /// `day`, `week` or `month`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The bucket of a day number: the day itself, weeks starting on Monday, calendar months.
    pub fn bucket(self, day: i64) -> i64 {
        match self {
            Self::Day => day,
            // 1970-01-05 (day 4) was a Monday.
            Self::Week => (day - 4).div_euclid(7),
            Self::Month => {
                let date = NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap_or_default();
                i64::from(date.year()) * 12 + i64::from(date.month0())
            }
        }
    }

    /// The first day of a bucket, `YYYY-MM-DD`.
    pub fn label(self, bucket: i64) -> String {
        match self {
            Self::Day => day_text(bucket),
            Self::Week => day_text(bucket * 7 + 4),
            Self::Month => {
                let (year, month0) = (bucket.div_euclid(12), bucket.rem_euclid(12));
                NaiveDate::from_ymd_opt(year as i32, month0 as u32 + 1, 1).map(|d| d.to_string()).unwrap_or_default()
            }
        }
    }

    /// The periods a page shows ahead: four weeks of days, twelve weeks, six months.
    pub fn page_horizon(self) -> usize {
        match self {
            Self::Day => 28,
            Self::Week => 12,
            Self::Month => 6,
        }
    }

    /// The season length used when the history covers at least two seasons.
    pub fn season(self, periods: usize) -> usize {
        let season = match self {
            Self::Day => 7,
            Self::Week => 52,
            Self::Month => 12,
        };
        if periods >= 2 * season { season } else { 1 }
    }
}

#[derive(Debug, Clone)]
pub struct DemandPoint {
    /// First day of the period, `YYYY-MM-DD`.
    pub period: String,
    pub quantity: f64,
}

#[derive(Debug, Clone)]
pub struct ForecastPoint {
    pub period: String,
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone)]
pub struct DemandForecast {
    pub item_id: Option<String>,
    /// The category forecast, as given.
    pub category: Option<String>,
    /// Items whose demand is summed: 1 for an item, the catalog's items in the category, null for the total.
    pub items: Option<usize>,
    pub granularity: String,
    /// The chosen model, e.g. `ETS(A,N,N)`.
    pub model: String,
    /// Season length used (1: none).
    pub season: usize,
    /// Coverage of the interval.
    pub level: f64,
    /// Units sold per period, from the first sale to the last complete period before the calibration end
    /// (a week or month cut short by it is left out).
    pub history: Vec<DemandPoint>,
    pub forecast: Vec<ForecastPoint>,
    /// Rolling-origin backtest of the automatic choice on this history; null when the history is too short.
    pub backtest: Option<BacktestSummary>,
}

/// Accuracy of the automatic model choice on the series' own past: at each origin the model is chosen and
/// fitted on the history before it and scored on the next `horizon` periods.
#[derive(Debug, Clone)]
pub struct BacktestSummary {
    pub origins: usize,
    pub horizon: usize,
    /// Mean absolute scaled error (1: as good as the in-sample seasonal naive forecast); null when undefined.
    pub mase: Option<f64>,
    /// Symmetric mean absolute percentage error, in percent.
    pub smape: f64,
}

/// Backtest origins of a forecast response.
const BACKTEST_ORIGINS: usize = 3;

/// Units per period from the period of the first recorded sale to the last complete period ending on or
/// before `end_day`, zero-filled. A period cut short by the calibration end (the week or month of the last
/// event) is left out, so it does not read as a drop in demand.
pub fn demand_series(daily: &BTreeMap<i64, f64>, granularity: Granularity, end_day: i64) -> (i64, Vec<f64>) {
    let end_bucket = granularity.bucket(end_day);
    let last = if granularity.bucket(end_day + 1) == end_bucket { end_bucket - 1 } else { end_bucket };
    let Some((&first_day, _)) = daily.first_key_value() else { return (last + 1, Vec::new()) };
    let first = granularity.bucket(first_day);
    let mut series = vec![0.0; (last - first + 1).max(0) as usize];
    for (&day, &quantity) in daily.range(..=end_day) {
        if let Some(slot) = series.get_mut((granularity.bucket(day) - first) as usize) {
            *slot += quantity;
        }
    }
    (first, series)
}

/// What a demand forecast is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForecastTarget {
    Total,
    Item(ItemId),
    /// Category path levels (a prefix of the items' paths).
    Category(Vec<String>),
}

impl ForecastTarget {
    /// The target named by an item id or a category path (`Home > Kitchen`, any first levels), the tenant's
    /// total without either; `Err` says what is wrong, by parameter name.
    pub fn from_names(item_id: Option<&str>, category: Option<&str>) -> Result<Self, String> {
        let item_id = item_id.map(str::trim).filter(|s| !s.is_empty());
        let category = category.map(str::trim).filter(|s| !s.is_empty());
        match (item_id, category) {
            (Some(_), Some(_)) => Err("give `item_id` or `category`, not both".to_string()),
            (Some(id), None) => Ok(Self::Item(ItemId::parse_field("item_id", id.to_string()).map_err(|e| e.message)?)),
            (None, Some(path)) => {
                let levels: Vec<String> =
                    path.split('>').map(|level| level.trim().to_string()).filter(|l| !l.is_empty()).collect();
                if levels.is_empty() {
                    return Err("`category` must name at least one level".to_string());
                }
                Ok(Self::Category(levels))
            }
            (None, None) => Ok(Self::Total),
        }
    }
}

/// Whether `path` starts with the levels of `prefix` (case-insensitive).
fn category_has_prefix(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(level, wanted)| level.eq_ignore_ascii_case(wanted))
}

/// The daily demand of a target and how many items it sums; `invalid_parameter` for an unknown item or a
/// category without items. Reads the catalog: call on a blocking thread.
pub fn target_demand(
    store: &dyn Store,
    tenant: &TenantId,
    analytics: &TenantAnalytics,
    target: &ForecastTarget,
) -> EngineResult<(BTreeMap<i64, f64>, Option<usize>)> {
    match target {
        ForecastTarget::Total => Ok((analytics.demand.total.clone(), None)),
        ForecastTarget::Item(id) => {
            if store.item(tenant, id)?.is_none() {
                return Err(EngineError::InvalidParameter(format!("`item_id`: item `{id}` is not in the catalog")));
            }
            Ok((analytics.demand.items.get(id).cloned().unwrap_or_default(), Some(1)))
        }
        ForecastTarget::Category(levels) => {
            let members: Vec<ItemId> = store
                .all_items(tenant)?
                .into_iter()
                .filter(|item| category_has_prefix(&item.category_path, levels))
                .map(|item| item.id)
                .collect();
            if members.is_empty() {
                return Err(EngineError::InvalidParameter(format!(
                    "`category`: no catalog item is in `{}`",
                    levels.join(" > ")
                )));
            }
            let mut daily: BTreeMap<i64, f64> = BTreeMap::new();
            for id in &members {
                for (day, quantity) in analytics.demand.items.get(id).into_iter().flatten() {
                    *daily.entry(*day).or_default() += quantity;
                }
            }
            Ok((daily, Some(members.len())))
        }
    }
}

/// Forecasts a daily demand history aggregated to `granularity`. CPU-heavy: call on a blocking thread.
pub fn forecast_demand(
    analytics: &TenantAnalytics,
    target: &ForecastTarget,
    daily: &BTreeMap<i64, f64>,
    items: Option<usize>,
    granularity: Granularity,
    horizon: usize,
) -> EngineResult<DemandForecast> {
    let (first, series) = demand_series(daily, granularity, analytics.end_day);
    let season = granularity.season(series.len());
    let fitted = forecast_auto(&series, &ForecastSettings::new(season, horizon))?;
    let next = first + series.len() as i64;
    let f = &fitted.forecast;
    // Backtest over a horizon the history can afford: at most the requested one, at most a quarter of it.
    let backtest_horizon = horizon.min(series.len() / 4).max(1);
    let backtest =
        rolling_origin(&series, &ForecastSettings::new(season, backtest_horizon), BACKTEST_ORIGINS, backtest_horizon)
            .ok()
            .map(|report| BacktestSummary {
                origins: report.folds.len(),
                horizon: backtest_horizon,
                mase: report.mean_mase.is_finite().then_some(report.mean_mase),
                smape: report.mean_smape,
            });
    Ok(DemandForecast {
        backtest,
        item_id: match target {
            ForecastTarget::Item(id) => Some(id.to_string()),
            _ => None,
        },
        category: match target {
            ForecastTarget::Category(levels) => Some(levels.join(" > ")),
            _ => None,
        },
        items,
        granularity: granularity.name().to_string(),
        model: fitted.method().to_string(),
        season,
        level: f.level,
        history: series
            .iter()
            .enumerate()
            .map(|(i, q)| DemandPoint { period: granularity.label(first + i as i64), quantity: *q })
            .collect(),
        forecast: (0..f.horizon())
            .map(|h| ForecastPoint {
                period: granularity.label(next + h as i64),
                mean: f.mean[h].max(0.0),
                lower: f.lower[h],
                upper: f.upper[h],
            })
            .collect(),
    })
}
