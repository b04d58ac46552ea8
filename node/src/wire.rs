//! Small conversions shared by the pb ⇄ domain code: timestamps, dates, the China calendar day.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// China Standard Time (UTC+8, no daylight saving): calendar days of service, ages and months are counted in it.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("+08:00 is a valid offset"))
}

/// Today's date in China.
pub fn today_china() -> NaiveDate {
    Utc::now().with_timezone(&china()).date_naive()
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

pub fn optional_timestamp(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(timestamp)
}

/// First second a wire timestamp may name: 0001-01-01T00:00:00Z, the start of `google.protobuf.Timestamp`'s range.
pub const TIMESTAMP_SECONDS_MIN: i64 = -62_135_596_800;
/// Last second a wire timestamp may name: 9999-12-31T23:59:59Z, the end of `google.protobuf.Timestamp`'s range.
pub const TIMESTAMP_SECONDS_MAX: i64 = 253_402_300_799;

/// A wire timestamp as UTC time; `None` if out of range.
///
/// The range is `google.protobuf.Timestamp`'s (years 1 to 9999), narrower than chrono's (±262 143 years), so
/// that adding or subtracting minutes or days to a stored time cannot overflow chrono (which panics): a project
/// created at chrono's first instant once stopped the committer when hours were recorded against it.
pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&timestamp.nanos)
        || !(TIMESTAMP_SECONDS_MIN..=TIMESTAMP_SECONDS_MAX).contains(&timestamp.seconds)
    {
        return None;
    }
    DateTime::from_timestamp(timestamp.seconds, timestamp.nanos as u32)
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}
