//! Event time. The engine never reads a wall clock: replays are deterministic.
//!
//! Timestamps are milliseconds since the Unix epoch (UTC). B3 quotes local
//! time (America/Sao_Paulo), which has had no daylight saving since 2019, so a
//! fixed offset converts exactly; older files can set another offset.

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_DAY: i64 = 86_400 * MS_PER_SECOND;

/// B3's offset from UTC in minutes (UTC-3).
pub const B3_UTC_OFFSET_MINUTES: i32 = -180;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). `None` for an impossible date such as 2024-02-30.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The (year, month, day) of a day number from [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A local wall-clock time at a fixed UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl LocalTime {
    /// Milliseconds since the epoch, or `None` if any field is out of range.
    pub fn to_epoch_ms(&self, utc_offset_minutes: i32) -> Option<i64> {
        if self.hour > 23 || self.minute > 59 || self.second > 59 || self.millisecond > 999 {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day)?;
        let local_ms = days * MS_PER_DAY
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * MS_PER_MINUTE
            + i64::from(self.second) * MS_PER_SECOND
            + i64::from(self.millisecond);
        Some(local_ms - i64::from(utc_offset_minutes) * MS_PER_MINUTE)
    }

    pub fn from_epoch_ms(ts_ms: i64, utc_offset_minutes: i32) -> Self {
        let local = ts_ms + i64::from(utc_offset_minutes) * MS_PER_MINUTE;
        let days = local.div_euclid(MS_PER_DAY);
        let ms_of_day = local.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (ms_of_day / 3_600_000) as u32,
            minute: (ms_of_day / MS_PER_MINUTE % 60) as u32,
            second: (ms_of_day / MS_PER_SECOND % 60) as u32,
            millisecond: (ms_of_day % 1000) as u32,
        }
    }
}

/// Converts event time to the exchange's local day and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionClock {
    pub utc_offset_minutes: i32,
}

impl Default for SessionClock {
    fn default() -> Self {
        Self { utc_offset_minutes: B3_UTC_OFFSET_MINUTES }
    }
}

impl SessionClock {
    fn local_ms(&self, ts_ms: i64) -> i64 {
        ts_ms + i64::from(self.utc_offset_minutes) * MS_PER_MINUTE
    }

    /// Local trading day number (days since 1970-01-01, local time).
    pub fn day(&self, ts_ms: i64) -> i64 {
        self.local_ms(ts_ms).div_euclid(MS_PER_DAY)
    }

    /// Milliseconds since local midnight.
    pub fn ms_of_day(&self, ts_ms: i64) -> i64 {
        self.local_ms(ts_ms).rem_euclid(MS_PER_DAY)
    }

    /// Start (inclusive) of the `bar_ms` bucket holding `ts_ms`, aligned to local midnight.
    pub fn bar_start(&self, ts_ms: i64, bar_ms: i64) -> i64 {
        ts_ms - self.ms_of_day(ts_ms).rem_euclid(bar_ms)
    }
}

/// Parses `HH:MM` (as used in config files) into milliseconds since midnight.
pub fn parse_hh_mm(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 3_600_000 + m * MS_PER_MINUTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_across_eras_and_leap_days() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_782, 19_783, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
    }

    #[test]
    fn b3_local_time_converts_with_offset() {
        let t = LocalTime { year: 2024, month: 1, day: 8, hour: 9, minute: 0, second: 38, millisecond: 250 };
        let ms = t.to_epoch_ms(B3_UTC_OFFSET_MINUTES).expect("valid time");
        // 09:00:38.250 in Sao Paulo is 12:00:38.250 UTC.
        assert_eq!(ms % MS_PER_DAY, 12 * 3_600_000 + 38_250);
        assert_eq!(LocalTime::from_epoch_ms(ms, B3_UTC_OFFSET_MINUTES), t);
        let clock = SessionClock::default();
        assert_eq!(clock.ms_of_day(ms), 9 * 3_600_000 + 38_250);
        assert_eq!(clock.bar_start(ms, MS_PER_MINUTE), ms - 38_250);
    }

    #[test]
    fn parses_session_hours() {
        assert_eq!(parse_hh_mm("09:00"), Some(9 * 3_600_000));
        assert_eq!(parse_hh_mm("17:55"), Some(17 * 3_600_000 + 55 * 60_000));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("nine"), None);
    }
}
