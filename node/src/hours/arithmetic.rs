//! Exact hour arithmetic: how a service interval becomes credited minutes and hundredths of an hour, and how it
//! splits over China calendar days. Pure functions, integers only (hours are never floating point).

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};

use crate::wire;

/// Seconds in a minute, as the interval arithmetic counts them.
const SECONDS_PER_MINUTE: i64 = 60;

/// The credited minutes of an interval of `seconds`: the nearest multiple of `rounding_minutes`, halves rounded
/// up (with 15: 7 min 29 s → 0, 7 min 30 s → 15, 22 min 30 s → 30). Rounding rules vary by region (MCA Order 67
/// leaves them to the organiser), so the unit is configuration (`[hours] rounding_minutes`). A negative interval
/// or a zero unit credits nothing.
pub fn credited_minutes(seconds: i64, rounding_minutes: u32) -> u32 {
    if seconds <= 0 || rounding_minutes == 0 {
        return 0;
    }
    let unit = i64::from(rounding_minutes) * SECONDS_PER_MINUTE;
    let whole = seconds / unit;
    let rest = seconds % unit;
    let units = if rest * 2 >= unit { whole + 1 } else { whole };
    u32::try_from(units * i64::from(rounding_minutes)).unwrap_or(u32::MAX)
}

/// Hundredths of an hour for `minutes`, to the nearest hundredth, halves rounded up (15 min → 25, 20 min → 33,
/// 50 min → 83, 60 min → 100). Exact for multiples of 3 minutes.
pub fn hours_x100(minutes: u32) -> u32 {
    let hundredths = (u64::from(minutes) * 100 + 30) / 60;
    u32::try_from(hundredths).unwrap_or(u32::MAX)
}

/// The start (inclusive) and end (exclusive) in UTC of China calendar day `date` (UTC+8, no daylight saving).
pub fn china_day_bounds(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |day: NaiveDate| {
        wire::china()
            .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    (start_of(date), start_of(next))
}

/// The China calendar day of `time`.
pub fn china_date(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&wire::china()).date_naive()
}

/// Seconds of `[start, end)` that fall within `[from, to)`.
pub fn overlap_seconds(start: DateTime<Utc>, end: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let low = start.max(from);
    let high = end.min(to);
    if high > low { (high - low).num_seconds() } else { 0 }
}

/// The parts of `[start, end)` in each China calendar day, in day order: an interval crossing midnight counts
/// into both days. Empty if `end` is not after `start`.
pub fn split_by_china_day(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(NaiveDate, i64)> {
    let mut parts = Vec::new();
    if end <= start {
        return parts;
    }
    let mut day = china_date(start);
    loop {
        let (from, to) = china_day_bounds(day);
        if from >= end {
            break;
        }
        let seconds = overlap_seconds(start, end, from, to);
        if seconds > 0 {
            parts.push((day, seconds));
        }
        match day.checked_add_days(Days::new(1)) {
            Some(next) if to < end => day = next,
            _ => break,
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn date(text: &str) -> NaiveDate {
        wire::parse_date(text).unwrap_or_default()
    }

    #[test]
    fn rounding_is_to_the_nearest_unit_with_halves_up() {
        // (seconds served, unit minutes, credited minutes)
        let cases: &[(i64, u32, u32)] = &[
            (0, 15, 0),
            (-60, 15, 0),
            (7 * 60 + 29, 15, 0),
            (7 * 60 + 30, 15, 15),
            (15 * 60, 15, 15),
            (22 * 60 + 29, 15, 15),
            (22 * 60 + 30, 15, 30),
            (2 * 3600 + 7 * 60 + 30, 15, 135),
            (2 * 3600 + 7 * 60 + 29, 15, 120),
            (89, 1, 1),
            (90, 1, 2),
            (29, 1, 0),
            (2 * 60 + 30, 5, 5),
            (2 * 60 + 29, 5, 0),
            (3 * 60, 6, 6),
            (14 * 60 + 59, 30, 0),
            (15 * 60, 30, 30),
            (29 * 60 + 59, 60, 0),
            (30 * 60, 60, 60),
            (90 * 60, 60, 120),
            (3600, 0, 0),
            (24 * 3600, 15, 1440),
        ];
        for &(seconds, unit, expected) in cases {
            assert_eq!(credited_minutes(seconds, unit), expected, "{seconds} s at {unit} min");
        }
    }

    #[test]
    fn hundredths_of_an_hour_are_exact_or_rounded_half_up() {
        let cases: &[(u32, u32)] = &[
            (0, 0),
            (1, 2),
            (3, 5),
            (5, 8),
            (6, 10),
            (10, 17),
            (15, 25),
            (20, 33),
            (30, 50),
            (45, 75),
            (50, 83),
            (60, 100),
            (90, 150),
            (1440, 2400),
        ];
        for &(minutes, expected) in cases {
            assert_eq!(hours_x100(minutes), expected, "{minutes} min");
        }
    }

    #[test]
    fn china_days_start_at_16_utc() {
        let (from, to) = china_day_bounds(date("2025-06-05"));
        assert_eq!(from, at("2025-06-04T16:00:00Z"));
        assert_eq!(to, at("2025-06-05T16:00:00Z"));
        assert_eq!(china_date(at("2025-06-04T15:59:59Z")), date("2025-06-04"));
        assert_eq!(china_date(at("2025-06-04T16:00:00Z")), date("2025-06-05"));
    }

    #[test]
    fn intervals_split_over_china_midnight_into_both_days() {
        // 22:00–02:00 China time on the night of 4–5 June: 2 h in each day.
        let parts = split_by_china_day(at("2025-06-04T14:00:00Z"), at("2025-06-04T18:00:00Z"));
        assert_eq!(parts, [(date("2025-06-04"), 7200), (date("2025-06-05"), 7200)]);
        // 09:00–17:00 China time, one day; the UTC date differs from the China date for the morning part.
        let parts = split_by_china_day(at("2025-06-05T01:00:00Z"), at("2025-06-05T09:00:00Z"));
        assert_eq!(parts, [(date("2025-06-05"), 8 * 3600)]);
        // Ending exactly at China midnight touches only the first day.
        let parts = split_by_china_day(at("2025-06-04T14:00:00Z"), at("2025-06-04T16:00:00Z"));
        assert_eq!(parts, [(date("2025-06-04"), 7200)]);
        // Starting exactly at China midnight, over two full days and a bit.
        let parts = split_by_china_day(at("2025-06-04T16:00:00Z"), at("2025-06-06T17:30:00Z"));
        assert_eq!(parts, [(date("2025-06-05"), 86_400), (date("2025-06-06"), 86_400), (date("2025-06-07"), 5400)]);
        assert!(split_by_china_day(at("2025-06-05T01:00:00Z"), at("2025-06-05T01:00:00Z")).is_empty());
        assert!(split_by_china_day(at("2025-06-05T02:00:00Z"), at("2025-06-05T01:00:00Z")).is_empty());
    }

    #[test]
    fn overlap_of_disjoint_and_nested_intervals() {
        let (a, b, c, d) = (
            at("2025-06-05T01:00:00Z"),
            at("2025-06-05T02:00:00Z"),
            at("2025-06-05T03:00:00Z"),
            at("2025-06-05T04:00:00Z"),
        );
        assert_eq!(overlap_seconds(a, b, c, d), 0);
        assert_eq!(overlap_seconds(a, c, b, d), 3600);
        assert_eq!(overlap_seconds(a, d, b, c), 3600);
        assert_eq!(overlap_seconds(a, b, b, c), 0);
    }
}
