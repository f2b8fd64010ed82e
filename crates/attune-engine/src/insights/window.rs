//! The stretch of days a tenant's analytics are computed over, and their "as of" day.
//!
//! A tenant's events normally form one bulk; a few stray events far from it (a purchase dated 1990 in a shop
//! that opened last year, a demo history from 2011 that a few clicks of today follow) must not move the
//! analytics to a day where almost nothing happened. The window is the bulk: from the far end, a run of
//! events separated from the rest by a gap of more than [`MAX_GAP_DAYS`] is left out while it holds at most
//! [`MAX_STRAY_SHARE`] of the events; the end is never after today; the start is at most
//! [`MAX_HISTORY_DAYS`] before the end.

use std::collections::BTreeMap;

/// A silence longer than this separates stray events from the bulk.
pub const MAX_GAP_DAYS: i64 = 60;
/// Stray events left out at either end may hold at most this share of all events.
pub const MAX_STRAY_SHARE: f64 = 0.01;
/// The longest history analytics read: three years before the as-of day.
pub const MAX_HISTORY_DAYS: i64 = 3 * 366;

/// The days analytics use: `start..=as_of`, and how many events fell outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationWindow {
    pub start: i64,
    pub as_of: i64,
    /// Events before `start` or after `as_of`, left out of the analytics.
    pub left_out: u64,
}

impl ObservationWindow {
    pub fn contains(&self, day: i64) -> bool {
        (self.start..=self.as_of).contains(&day)
    }
}

/// The window of events per day (day number → events), with `today` the latest possible as-of day.
pub fn observation_window(events_per_day: &BTreeMap<i64, u64>, today: i64) -> ObservationWindow {
    let total: u64 = events_per_day.values().sum();
    let allowed = (total as f64 * MAX_STRAY_SHARE).floor() as u64;
    let days: Vec<(i64, u64)> = events_per_day.range(..=today).map(|(d, n)| (*d, *n)).collect();
    let Some(&(last_day, _)) = days.last() else {
        return ObservationWindow { start: today, as_of: today, left_out: total };
    };
    let as_of = bulk_edge(days.iter().rev().copied(), allowed, |later, earlier| later - earlier).unwrap_or(last_day);
    let first_day = days[0].0;
    let start = bulk_edge(days.iter().copied(), allowed, |earlier, later| later - earlier).unwrap_or(first_day);
    let earliest = start.max(as_of - MAX_HISTORY_DAYS);
    // The first day with events in the window (the as-of day itself has events).
    let start = days.iter().map(|(d, _)| *d).find(|d| *d >= earliest).unwrap_or(as_of).min(as_of);
    let left_out = events_per_day.iter().filter(|(d, _)| !(start..=as_of).contains(*d)).map(|(_, n)| n).sum();
    ObservationWindow { start, as_of, left_out }
}

/// Walking `days` from one end, the day where the bulk begins when the events passed before a long gap are
/// few enough to be strays; `None` when no such gap is found.
fn bulk_edge(days: impl Iterator<Item = (i64, u64)>, allowed: u64, gap: impl Fn(i64, i64) -> i64) -> Option<i64> {
    let mut passed = 0;
    let mut previous: Option<i64> = None;
    let mut edge = None;
    for (day, count) in days {
        if let Some(before) = previous
            && gap(before, day).abs() > MAX_GAP_DAYS
        {
            edge = Some(day);
        }
        passed += count;
        if passed > allowed {
            break;
        }
        previous = Some(day);
    }
    edge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(pairs: &[(i64, u64)]) -> BTreeMap<i64, u64> {
        pairs.iter().copied().collect()
    }

    fn bulk(from: i64, to: i64) -> Vec<(i64, u64)> {
        (from..=to).map(|d| (d, 100)).collect()
    }

    #[test]
    fn a_continuous_history_ends_on_its_last_day() {
        let window = observation_window(&days(&bulk(1000, 1300)), 5000);
        assert_eq!(window, ObservationWindow { start: 1000, as_of: 1300, left_out: 0 });
    }

    #[test]
    fn a_few_events_long_after_the_bulk_do_not_move_the_as_of_day() {
        let mut history = bulk(1000, 1300);
        history.push((6000, 40));
        let window = observation_window(&days(&history), 6000);
        assert_eq!((window.start, window.as_of, window.left_out), (1000, 1300, 40));
    }

    #[test]
    fn many_events_after_a_gap_are_the_shop_now() {
        let mut history = bulk(1000, 1100);
        history.extend(bulk(6000, 6010));
        let window = observation_window(&days(&history), 6010);
        assert_eq!(window.as_of, 6010);
        assert_eq!(window.start, 6000, "the old bulk is before the gap and is more than three years back");
    }

    #[test]
    fn a_stray_old_event_and_future_events_are_left_out() {
        let mut history = vec![(10, 1)];
        history.extend(bulk(1000, 1300));
        history.push((1302, 5));
        let window = observation_window(&days(&history), 1301);
        assert_eq!((window.start, window.as_of, window.left_out), (1000, 1300, 6));
    }

    #[test]
    fn history_is_at_most_three_years() {
        let window = observation_window(&days(&bulk(0, 2000)), 2000);
        assert_eq!(window.start, 2000 - MAX_HISTORY_DAYS);
        assert_eq!(window.left_out, 100 * (2000 - MAX_HISTORY_DAYS) as u64);
        assert!(window.contains(2000) && !window.contains(0));
    }

    #[test]
    fn no_events_is_an_empty_window_at_today() {
        let window = observation_window(&BTreeMap::new(), 42);
        assert_eq!((window.start, window.as_of, window.left_out), (42, 42, 0));
    }
}
