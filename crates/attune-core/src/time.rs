//! Timestamps: milliseconds since the Unix epoch in UTC, accepted as RFC 3339 text or integer
//! milliseconds, always written as RFC 3339.

use crate::error::ValidationError;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Earliest accepted event time (1990-01-01); anything before is a unit mistake (seconds vs millis).
const EARLIEST_MILLIS: i64 = 631_152_000_000;
/// Latest accepted time (2200-01-01).
const LATEST_MILLIS: i64 = 7_258_118_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = DateTime))]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(millis: i64) -> Result<Self, ValidationError> {
        if !(EARLIEST_MILLIS..=LATEST_MILLIS).contains(&millis) {
            return Err(ValidationError::new(
                "timestamp",
                "timestamp_out_of_range",
                format!("{millis} ms is outside 1990-01-01..2200-01-01 (is it in seconds instead of milliseconds?)"),
            ));
        }
        Ok(Self(millis))
    }

    pub fn parse_rfc3339(text: &str) -> Result<Self, ValidationError> {
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| {
            ValidationError::new(
                "timestamp",
                "invalid_timestamp",
                format!("`{text}` is not an RFC 3339 time such as 2024-05-01T12:00:00Z ({e})"),
            )
        })?;
        Self::from_millis(parsed.timestamp_millis())
    }

    pub fn millis(&self) -> i64 {
        self.0
    }

    pub fn to_datetime(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0).single().expect("range-checked at construction")
    }

    /// The UTC calendar day, as `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.to_datetime().format("%Y-%m-%d").to_string()
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl TryFrom<String> for Timestamp {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_rfc3339(&value)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::parse_rfc3339("2011-12-09T12:50:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2011-12-09T11:50:00.000Z");
        assert_eq!(t.day(), "2011-12-09");
    }

    #[test]
    fn rejects_seconds_and_garbage() {
        assert_eq!(Timestamp::from_millis(1_700_000_000).unwrap_err().code, "timestamp_out_of_range");
        assert_eq!(Timestamp::parse_rfc3339("yesterday").unwrap_err().code, "invalid_timestamp");
    }
}

/// Milliseconds in one UTC day.
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// The event times ingest accepts, relative to the server clock: by default from ten years back to one day
/// ahead. A purchase dated 1990 or 2199 is a data error that would stretch every analytic over centuries, so
/// it is rejected with a clear error instead of stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeWindow {
    /// Oldest accepted event, in days before now.
    pub max_age_days: u32,
    /// Latest accepted event, in days after now (clock skew between systems).
    pub max_ahead_days: u32,
}

impl Default for EventTimeWindow {
    fn default() -> Self {
        Self { max_age_days: 3_650, max_ahead_days: 1 }
    }
}

impl EventTimeWindow {
    /// `Err(timestamp_out_of_range)` when `time` is outside the window around `now`.
    pub fn check(&self, time: Timestamp, now: Timestamp) -> Result<(), ValidationError> {
        let earliest = now.millis() - i64::from(self.max_age_days) * MILLIS_PER_DAY;
        let latest = now.millis() + i64::from(self.max_ahead_days) * MILLIS_PER_DAY;
        if (earliest..=latest).contains(&time.millis()) {
            return Ok(());
        }
        let bound = |millis: i64| Timestamp::from_millis(millis).map(|t| t.to_string()).unwrap_or_default();
        Err(ValidationError::new(
            "timestamp",
            "timestamp_out_of_range",
            format!(
                "the event time {time} is outside the accepted window {} to {} ({} days back to {} ahead of the server clock)",
                bound(earliest),
                bound(latest),
                self.max_age_days,
                self.max_ahead_days
            ),
        ))
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn events_far_in_the_past_or_future_are_rejected() {
        let now = Timestamp::parse_rfc3339("2026-12-07T12:00:00Z").unwrap();
        let window = EventTimeWindow::default();
        let at = |text: &str| Timestamp::parse_rfc3339(text).unwrap();
        assert!(window.check(at("2026-12-07T11:00:00Z"), now).is_ok());
        assert!(window.check(at("2017-01-01T00:00:00Z"), now).is_ok());
        assert!(window.check(at("2026-12-08T11:00:00Z"), now).is_ok());
        let old = window.check(at("1990-01-01T00:00:00Z"), now).unwrap_err();
        assert_eq!((old.field.as_str(), old.code), ("timestamp", "timestamp_out_of_range"));
        assert!(window.check(at("2199-01-01T00:00:00Z"), now).is_err());
        assert!(window.check(at("2026-12-09T00:00:00Z"), now).is_err());
    }
}
