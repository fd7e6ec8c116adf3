//! Pure decoding of what the DLL hands over: UTF-16 tickers, `DD/MM/YYYY
//! HH:mm:SS.ZZZ` dates, trade types. No allocation: callbacks use these.
//! The encoders are for the simulator (and tests), which speak the same ABI.

use tickhost_core::time::LocalTime;
use tickhost_core::{Symbol, TradeType};

use super::abi::SystemTime;

/// Longest string read from a `PWideChar`: a string without its NUL (a
/// malformed one) is cut here instead of running through memory.
pub const MAX_WIDE_LEN: usize = 256;

/// A ticker from UTF-16; `None` unless it is printable ASCII that fits a [`Symbol`].
pub fn symbol_from_utf16(units: &[u16]) -> Option<Symbol> {
    if units.is_empty() || units.len() > Symbol::CAPACITY {
        return None;
    }
    let mut bytes = [0u8; Symbol::CAPACITY];
    for (b, &u) in bytes.iter_mut().zip(units) {
        *b = u8::try_from(u).ok().filter(u8::is_ascii_graphic)?;
    }
    Symbol::from_bytes(&bytes[..units.len()])
}

fn digits(units: &[u16]) -> Option<u32> {
    let mut n = 0u32;
    for &u in units {
        let d = u.checked_sub(u16::from(b'0')).filter(|d| *d <= 9)?;
        n = n * 10 + u32::from(d);
    }
    Some(n)
}

/// `DD/MM/YYYY HH:mm:SS.ZZZ` (milliseconds optional) local time to epoch ms.
pub fn parse_dll_date(units: &[u16], utc_offset_minutes: i32) -> Option<i64> {
    if units.len() != 19 && units.len() != 23 {
        return None;
    }
    let sep = |i: usize, c: u8| units[i] == u16::from(c);
    if !(sep(2, b'/') && sep(5, b'/') && sep(10, b' ') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let millisecond = if units.len() == 23 {
        if !sep(19, b'.') {
            return None;
        }
        digits(&units[20..23])?
    } else {
        0
    };
    LocalTime {
        day: digits(&units[0..2])?,
        month: digits(&units[3..5])?,
        year: digits(&units[6..10])? as i32,
        hour: digits(&units[11..13])?,
        minute: digits(&units[14..16])?,
        second: digits(&units[17..19])?,
        millisecond,
    }
    .to_epoch_ms(utc_offset_minutes)
}

/// A `SYSTEMTIME` (local exchange time) to epoch ms.
pub fn system_time_ms(t: &SystemTime, utc_offset_minutes: i32) -> Option<i64> {
    LocalTime {
        year: i32::from(t.year),
        month: u32::from(t.month),
        day: u32::from(t.day),
        hour: u32::from(t.hour),
        minute: u32::from(t.minute),
        second: u32::from(t.second),
        millisecond: u32::from(t.milliseconds),
    }
    .to_epoch_ms(utc_offset_minutes)
}

pub fn system_time_from_ms(ts_ms: i64, utc_offset_minutes: i32) -> SystemTime {
    let t = LocalTime::from_epoch_ms(ts_ms, utc_offset_minutes);
    SystemTime {
        year: t.year as u16,
        month: t.month as u16,
        day_of_week: 0,
        day: t.day as u16,
        hour: t.hour as u16,
        minute: t.minute as u16,
        second: t.second as u16,
        milliseconds: t.millisecond as u16,
    }
}

/// The DLL's trade-type code; an undefined code is kept as
/// [`TradeType::Unknown`] (no aggressor side), and the caller counts it.
pub fn trade_type(code: i32) -> (TradeType, bool) {
    match TradeType::from_code(code) {
        Some(t) => (t, true),
        None => (TradeType::Unknown, false),
    }
}

/// NUL-terminated UTF-16, as the DLL's `PWideChar` parameters.
pub fn to_wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// `DD/MM/YYYY HH:mm:SS.ZZZ` for a trade time.
pub fn format_dll_date(ts_ms: i64, utc_offset_minutes: i32, with_ms: bool) -> String {
    let t = LocalTime::from_epoch_ms(ts_ms, utc_offset_minutes);
    let base = format!("{:02}/{:02}/{:04} {:02}:{:02}:{:02}", t.day, t.month, t.year, t.hour, t.minute, t.second);
    if with_ms { format!("{base}.{:03}", t.millisecond) } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn dates_round_trip_with_and_without_milliseconds() {
        let ts = parse_dll_date(&w("08/01/2024 09:00:38.125"), -180).expect("date");
        assert_eq!(format_dll_date(ts, -180, true), "08/01/2024 09:00:38.125");
        let whole = parse_dll_date(&w("08/01/2024 09:00:38"), -180).expect("date");
        assert_eq!(ts - whole, 125);
        // 09:00 in B3 local time is 12:00 UTC.
        assert_eq!(whole.rem_euclid(86_400_000), 12 * 3_600_000 + 38_000);
    }

    #[test]
    fn malformed_dates_are_refused() {
        for bad in ["", "08-01-2024 09:00:38", "32/01/2024 09:00:38", "08/01/2024 25:00:38", "08/01/2024 09:0x:38"] {
            assert_eq!(parse_dll_date(&w(bad), -180), None, "{bad}");
        }
    }

    #[test]
    fn tickers_must_be_printable_ascii() {
        assert_eq!(symbol_from_utf16(&w("WDOFUT")).map(|s| s.to_string()), Some("WDOFUT".into()));
        assert_eq!(symbol_from_utf16(&w("WDOÇ")), None);
        assert_eq!(symbol_from_utf16(&[0xD800]), None, "a lone surrogate");
        assert_eq!(symbol_from_utf16(&[]), None);
    }

    #[test]
    fn trade_types_keep_unknown_codes_without_a_side() {
        assert_eq!(trade_type(4), (TradeType::Auction, true));
        assert_eq!(trade_type(99), (TradeType::Unknown, false));
        assert_eq!(trade_type(99).0.aggressor(), None);
    }

    #[test]
    fn system_time_round_trips() {
        let ts = parse_dll_date(&w("08/01/2024 17:54:59.999"), -180).expect("date");
        assert_eq!(system_time_ms(&system_time_from_ms(ts, -180), -180), Some(ts));
    }
}
