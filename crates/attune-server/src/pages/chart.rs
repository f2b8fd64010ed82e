//! The console's "events over time" chart as inline SVG: one bar per calendar day (per week or month
//! for long histories), y gridlines with values, month labels, and a tooltip on every bar.

use super::format::count;
use attune_store::DayCount;
use chrono::{Datelike, Duration, NaiveDate};
use maud::{Markup, html};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Week,
    Month,
}

impl Bucket {
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    fn start_of(&self, date: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => date,
            Self::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
            Self::Month => date.with_day(1).expect("day 1 exists"),
        }
    }

    fn next(&self, date: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => date + Duration::days(1),
            Self::Week => date + Duration::days(7),
            Self::Month => next_month(date),
        }
    }
}

fn next_month(date: NaiveDate) -> NaiveDate {
    let (year, month) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(year, month, 1).expect("valid month")
}

/// Longest run of days without events kept inside one stretch of the chart; longer quiet periods
/// (historical data next to live traffic, say) are drawn as a break in the axis instead.
const MAX_GAP_DAYS: i64 = 60;
/// Width of an axis break, in chart units.
const BREAK_WIDTH: f64 = 26.0;
/// Narrowest a stretch of the chart is drawn, in chart units.
const MIN_STRETCH_WIDTH: f64 = 72.0;

/// Events grouped into buckets: stretches of consecutive buckets (no gaps inside a stretch) separated
/// by long quiet periods, oldest first.
#[derive(Debug, Clone)]
pub struct Series {
    pub bucket: Bucket,
    pub stretches: Vec<Vec<(NaiveDate, u64)>>,
}

impl Series {
    pub fn from_days(days: &[DayCount]) -> Option<Self> {
        let mut parsed: Vec<(NaiveDate, u64)> = days
            .iter()
            .filter_map(|d| NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok().map(|date| (date, d.events)))
            .collect();
        parsed.sort();
        let mut groups: Vec<Vec<(NaiveDate, u64)>> = Vec::new();
        for (date, events) in parsed {
            match groups.last_mut() {
                Some(group) if (date - group.last().expect("groups are never empty").0).num_days() <= MAX_GAP_DAYS => {
                    group.push((date, events))
                }
                _ => groups.push(vec![(date, events)]),
            }
        }
        let covered: i64 = groups.iter().map(|g| (g[g.len() - 1].0 - g[0].0).num_days() + 1).sum();
        if groups.is_empty() {
            return None;
        }
        let bucket = if covered <= 450 {
            Bucket::Day
        } else if covered <= 7 * 400 {
            Bucket::Week
        } else {
            Bucket::Month
        };
        let stretches = groups
            .into_iter()
            .map(|group| {
                let last = group[group.len() - 1].0;
                let mut points = Vec::new();
                let mut start = bucket.start_of(group[0].0);
                while start <= last {
                    points.push((start, 0));
                    start = bucket.next(start);
                }
                for (date, events) in group {
                    if let Ok(index) = points.binary_search_by_key(&bucket.start_of(date), |(d, _)| *d) {
                        points[index].1 += events;
                    }
                }
                points
            })
            .collect();
        Some(Self { bucket, stretches })
    }

    fn points(&self) -> impl Iterator<Item = &(NaiveDate, u64)> {
        self.stretches.iter().flatten()
    }
}
/// A "nice" axis: a maximum and a step of 1, 2 or 5 times a power of ten, about four gridlines.
pub fn nice_axis(max: u64) -> (u64, u64) {
    if max == 0 {
        return (4, 1);
    }
    let raw = (max as f64 / 4.0).max(1.0);
    let magnitude = 10_f64.powi(raw.log10().floor() as i32);
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|f| f * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let step = step.max(1.0) as u64;
    (max.div_ceil(step) * step, step)
}

fn compact(value: u64) -> String {
    if value >= 1_000_000 && value.is_multiple_of(100_000) {
        format!("{}M", trim_decimal(value as f64 / 1e6))
    } else if value >= 10_000 && value.is_multiple_of(100) {
        format!("{}k", trim_decimal(value as f64 / 1e3))
    } else {
        count(value)
    }
}

fn trim_decimal(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

fn tooltip(bucket: Bucket, date: NaiveDate, events: u64) -> String {
    let what = match events {
        0 => "no events".to_string(),
        1 => "1 event".to_string(),
        n => format!("{} events", count(n)),
    };
    match bucket {
        Bucket::Day => format!("{}: {what}", date.format("%a %-d %b %Y")),
        Bucket::Week => format!("Week of {}: {what}", date.format("%-d %b %Y")),
        Bucket::Month => format!("{}: {what}", date.format("%B %Y")),
    }
}

/// Where a date falls inside a stretch starting at `start`, in buckets.
fn buckets_between(bucket: Bucket, start: NaiveDate, date: NaiveDate) -> f64 {
    match bucket {
        Bucket::Day => (date - start).num_days() as f64,
        Bucket::Week => (date - start).num_days() as f64 / 7.0,
        Bucket::Month => {
            f64::from((date.year() - start.year()) * 12 + date.month() as i32 - start.month() as i32)
                + f64::from(date.day() - 1) / 30.44
        }
    }
}

struct Label {
    x: f64,
    text: String,
}

/// The chart, or an empty state when there are no events.
pub fn events_chart(days: &[DayCount]) -> Markup {
    let Some(series) = Series::from_days(days) else {
        return html! {
            div.empty-state {
                p.empty-title { "No events yet" }
                p { "Send events to " code { "POST /v1/events" } " and they will appear here." }
            }
        };
    };
    let max = series.points().map(|(_, n)| *n).max().unwrap_or(0);
    let (axis_max, step) = nice_axis(max);
    let plot_height = HEIGHT - TOP - BOTTOM;
    let breaks = series.stretches.len() - 1;
    let available = WIDTH - LEFT - RIGHT - BREAK_WIDTH * breaks as f64;
    // Every stretch gets at least MIN_STRETCH_WIDTH so a lone day after a break stays visible and
    // labelled; the others share the rest at one common bar width.
    let mut narrow = vec![false; series.stretches.len()];
    let mut slot = available / series.points().count() as f64;
    for _ in 0..3 {
        for (index, points) in series.stretches.iter().enumerate() {
            narrow[index] = series.stretches.len() > 1 && points.len() as f64 * slot < MIN_STRETCH_WIDTH;
        }
        let reserved = narrow.iter().filter(|n| **n).count() as f64 * MIN_STRETCH_WIDTH;
        let wide_buckets: usize =
            series.stretches.iter().zip(&narrow).filter(|(_, n)| !**n).map(|(points, _)| points.len()).sum();
        if wide_buckets == 0 {
            break;
        }
        slot = ((available - reserved) / wide_buckets as f64).max(0.5);
    }
    let gap = if slot > 4.0 { slot * 0.2 } else { slot * 0.12 };
    let bar_width = (slot - gap).max(0.6);
    let y_of = |value: u64| TOP + plot_height * (1.0 - value as f64 / axis_max as f64);
    let days_per_bucket = match series.bucket {
        Bucket::Day => 1.0,
        Bucket::Week => 7.0,
        Bucket::Month => 30.44,
    };
    let every =
        [1_u32, 2, 3, 6, 12].into_iter().find(|m| f64::from(*m) * slot * 30.44 / days_per_bucket >= 60.0).unwrap_or(24);

    // Lay out stretches left to right with a break between them; collect month labels on the way.
    let mut stretch_x = Vec::new();
    let mut gaps = Vec::new();
    let mut labels: Vec<Label> = Vec::new();
    let mut x = LEFT;
    for (index, points) in series.stretches.iter().enumerate() {
        let start = points[0].0;
        let end = series.bucket.next(points[points.len() - 1].0);
        let width = if narrow[index] { MIN_STRETCH_WIDTH } else { slot * points.len() as f64 };
        // Bars of a narrow stretch sit in the middle of its area.
        let bars_x = x + (width - slot * points.len() as f64) / 2.0;
        stretch_x.push(bars_x);
        if index > 0 {
            // The start of a stretch after a break is always labelled; nearby month labels give way.
            let at = if narrow[index] { x + width / 2.0 } else { bars_x + slot / 2.0 };
            while labels.last().is_some_and(|last| at - last.x < 56.0) {
                labels.pop();
            }
            let format = if (end - start).num_days() < 45 { "%-d %b %Y" } else { "%b %Y" };
            labels.push(Label { x: at, text: start.format(format).to_string() });
        }
        if !narrow[index] {
            let mut month = if start.day() == 1 { start } else { next_month(start) };
            while month < end {
                let month_index = month.year() * 12 + month.month0() as i32;
                if month_index % every as i32 == 0 {
                    let first_of_stretch = labels.last().is_none_or(|last| last.x < x);
                    let text = if first_of_stretch || month.month() == 1 {
                        month.format("%b %Y").to_string()
                    } else {
                        month.format("%b").to_string()
                    };
                    let at = bars_x + slot * buckets_between(series.bucket, start, month);
                    if labels.last().is_none_or(|last| at - last.x >= 56.0) {
                        labels.push(Label { x: at, text });
                    }
                }
                month = next_month(month);
            }
        }
        x += width;
        if index + 1 < series.stretches.len() {
            let next_start = series.stretches[index + 1][0].0;
            let quiet_from = points.iter().rev().find(|(_, n)| *n > 0).map_or(start, |(d, _)| *d) + Duration::days(1);
            let quiet_to = next_start - Duration::days(1);
            gaps.push((
                x,
                format!("No events from {} to {}", quiet_from.format("%-d %b %Y"), quiet_to.format("%-d %b %Y")),
            ));
            x += BREAK_WIDTH;
        }
    }

    let first = series.stretches[0][0].0;
    let last = series.points().last().map_or(first, |(d, _)| *d);
    let title =
        format!("Events per {}, {} to {}", series.bucket.noun(), first.format("%-d %b %Y"), last.format("%-d %b %Y"));
    let ticks: Vec<u64> = (0..=axis_max / step).map(|i| i * step).collect();
    let baseline = TOP + plot_height;

    html! {
        svg.chart id="events-chart" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            data-bucket=(series.bucket.noun()) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            g.grid {
                @for tick in &ticks {
                    @let y = y_of(*tick);
                    line.baseline[*tick == 0] x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y)) y2=(fmt(y)) {}
                    text.y-label x=(LEFT - 8.0) y=(fmt(y + 4.0)) text-anchor="end" { (compact(*tick)) }
                }
            }
            g.x-axis {
                @for label in &labels {
                    line x1=(fmt(label.x)) x2=(fmt(label.x)) y1=(baseline) y2=(baseline + 5.0) {}
                    text.x-label x=(fmt(label.x)) y=(HEIGHT - 8.0) text-anchor="middle" { (label.text) }
                }
            }
            @for (gap_x, gap_title) in &gaps {
                g.gap {
                    title { (gap_title) }
                    rect x=(fmt(gap_x + 4.0)) y=(TOP) width=(fmt(BREAK_WIDTH - 8.0)) height=(fmt(plot_height)) {}
                    path d=(format!(
                        "M{} {} l6 -12 M{} {} l6 -12",
                        fmt(gap_x + 7.0), fmt(baseline + 6.0), fmt(gap_x + 13.0), fmt(baseline + 6.0)
                    )) {}
                }
            }
            g.bars {
                @for (stretch, points) in series.stretches.iter().enumerate() {
                    @for (i, (date, events)) in points.iter().enumerate() {
                        @let x = stretch_x[stretch] + slot * i as f64;
                        g.col {
                            title { (tooltip(series.bucket, *date, *events)) }
                            rect.hit x=(fmt(x)) y=(TOP) width=(fmt(slot)) height=(fmt(plot_height)) {}
                            @if *events > 0 {
                                @let y = y_of(*events);
                                rect.bar x=(fmt(x + gap / 2.0)) y=(fmt(y)) width=(fmt(bar_width))
                                    height=(fmt((baseline - y).max(0.8))) data-day=(date.to_string())
                                    data-events=(events) {}
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A demand history and its forecast as inline SVG: the history as a line, the forecast mean dashed, and
/// the prediction interval as a shaded band.
pub fn forecast_chart(forecast: &attune_engine::insights::demand::DemandForecast) -> Markup {
    let history: Vec<f64> = forecast.history.iter().map(|p| p.quantity).collect();
    let periods: Vec<&str> = forecast
        .history
        .iter()
        .map(|p| p.period.as_str())
        .chain(forecast.forecast.iter().map(|p| p.period.as_str()))
        .collect();
    let n = periods.len().max(2);
    let top = history.iter().chain(forecast.forecast.iter().map(|p| &p.upper)).fold(0.0_f64, |m, v| m.max(*v));
    let (axis_max, step) = nice_axis(top.ceil() as u64);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x_of = |i: usize| LEFT + plot_width * i as f64 / (n - 1) as f64;
    let y_of = |v: f64| TOP + plot_height * (1.0 - v.max(0.0) / axis_max as f64);
    let path = |points: &[(usize, f64)]| {
        points
            .iter()
            .enumerate()
            .map(|(k, (i, v))| format!("{}{} {}", if k == 0 { "M" } else { "L" }, fmt(x_of(*i)), fmt(y_of(*v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let start = history.len();
    let last = history.last().map(|v| (start.saturating_sub(1), *v));
    let history_points: Vec<(usize, f64)> = history.iter().copied().enumerate().collect();
    let mean_points: Vec<(usize, f64)> =
        last.into_iter().chain(forecast.forecast.iter().enumerate().map(|(h, p)| (start + h, p.mean))).collect();
    let upper: Vec<(usize, f64)> = forecast.forecast.iter().enumerate().map(|(h, p)| (start + h, p.upper)).collect();
    let lower: Vec<(usize, f64)> =
        forecast.forecast.iter().enumerate().rev().map(|(h, p)| (start + h, p.lower)).collect();
    let band = if upper.is_empty() {
        String::new()
    } else {
        format!("{} {} Z", path(&upper), path(&lower).replacen('M', "L", 1))
    };
    let ticks: Vec<u64> = (0..=axis_max / step).map(|i| i * step).collect();
    let label_every = periods.len().div_ceil(8).max(1);
    let title = format!("Units per {}: history and {}-period forecast", forecast.granularity, forecast.forecast.len());
    html! {
        svg.chart id="forecast-chart" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            g.grid {
                @for tick in &ticks {
                    @let y = y_of(*tick as f64);
                    line.baseline[*tick == 0] x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y)) y2=(fmt(y)) {}
                    text.y-label x=(LEFT - 8.0) y=(fmt(y + 4.0)) text-anchor="end" { (compact(*tick)) }
                }
            }
            g.x-axis {
                @for (i, period) in periods.iter().enumerate().step_by(label_every) {
                    text.x-label x=(fmt(x_of(i))) y=(HEIGHT - 8.0) text-anchor="middle" { (period) }
                }
            }
            @if !band.is_empty() {
                path.forecast-band d=(band) fill="#818cf8" fill-opacity="0.18" stroke="none" {
                    title { (format!("{:.0} % prediction interval", forecast.level * 100.0)) }
                }
            }
            path.history-line d=(path(&history_points)) fill="none" stroke="#4f46e5" stroke-width="1.6" {}
            path.forecast-line d=(path(&mean_points)) fill="none" stroke="#4f46e5" stroke-width="1.8"
                stroke-dasharray="5 4" {}
        }
    }
}

fn fmt(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, events: u64) -> DayCount {
        DayCount { day: day.to_string(), events }
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0), (4, 1));
        assert_eq!(nice_axis(3), (3, 1));
        assert_eq!(nice_axis(143), (150, 50));
        assert_eq!(nice_axis(1_234), (1_500, 500));
        assert_eq!(nice_axis(100), (100, 50));
    }

    #[test]
    fn fills_gaps_between_days() {
        let series = Series::from_days(&[day("2010-12-01", 5), day("2010-12-03", 7)]).unwrap();
        assert_eq!(series.bucket, Bucket::Day);
        assert_eq!(series.points().map(|p| p.1).collect::<Vec<_>>(), vec![5, 0, 7]);
        assert!(Series::from_days(&[]).is_none());
    }

    #[test]
    fn long_histories_use_weeks() {
        let days: Vec<DayCount> = (0..600)
            .map(|i| day(&(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Duration::days(i * 2)).to_string(), 1))
            .collect();
        let series = Series::from_days(&days).unwrap();
        assert_eq!(series.bucket, Bucket::Week);
        assert_eq!(series.stretches.len(), 1);
    }

    #[test]
    fn long_quiet_periods_become_axis_breaks() {
        let mut days: Vec<DayCount> = (1..=28).map(|d| day(&format!("2011-02-{d:02}"), 3)).collect();
        days.push(day("2026-11-25", 2));
        let series = Series::from_days(&days).unwrap();
        assert_eq!(series.bucket, Bucket::Day);
        assert_eq!(series.stretches.len(), 2);
        let svg = events_chart(&days).into_string();
        assert_eq!(svg.matches("class=\"bar\"").count(), 29);
        assert!(svg.contains("No events from 1 Mar 2011 to 24 Nov 2026"));
        assert!(svg.contains("25 Nov 2026"), "the lone day after the break is labelled");
    }

    #[test]
    fn renders_a_bar_per_day_with_tooltips() {
        let days: Vec<DayCount> =
            (1..=28).map(|d| day(&format!("2011-02-{d:02}"), if d % 7 == 0 { 0 } else { d })).collect();
        let svg = events_chart(&days).into_string();
        assert_eq!(svg.matches("class=\"bar\"").count(), 24);
        assert_eq!(svg.matches("class=\"col\"").count(), 28);
        assert!(svg.contains("Tue 1 Feb 2011: 1 event"));
        assert!(svg.contains("Feb 2011"));
    }
}
