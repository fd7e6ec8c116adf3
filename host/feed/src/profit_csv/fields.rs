//! Byte-level parsers for single CSV fields.
//!
//! Hand-written because they run tens of millions of times per file: going
//! through `str` and `str::parse` would validate UTF-8 and re-scan each field.
//! `str::parse::<f64>` remains the fallback for the rare spellings the fast
//! paths do not cover (exponents, very long mantissas), so nothing valid is
//! rejected just because it is unusual.

use tickhost_core::Price;

/// `10^k` for the Clinger fast path: every power up to 22 is exact in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Largest integer every smaller one of which is exact in `f64`.
const F64_EXACT_INT: u64 = 1 << 53;

fn split_sign(b: &[u8]) -> (bool, &[u8]) {
    match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    }
}

/// A plain scan: fields are a dozen bytes, too short for `memchr` to pay off.
fn split_point(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    }
}

/// Splits `line` at commas into `spans` as (start, end) byte ranges and
/// returns the field count, or `None` when there are more fields than spans.
///
/// Eight bytes per step (SWAR) rather than `memchr`: a comma every ~9 bytes
/// means `memchr`'s per-call setup, not the scan, would dominate.
pub(super) fn split_fields(line: &[u8], spans: &mut [(usize, usize)]) -> Option<usize> {
    const COMMAS: u64 = u64::from_ne_bytes([b','; 8]);
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let mut n = 0;
    let mut start = 0;
    let mut comma_at = |pos: usize| {
        if n + 1 >= spans.len() {
            return None;
        }
        spans[n] = (start, pos);
        n += 1;
        start = pos + 1;
        Some(())
    };
    let (chunks, rest) = line.as_chunks::<8>();
    for (i, chunk) in chunks.iter().enumerate() {
        let x = u64::from_le_bytes(*chunk) ^ COMMAS;
        // High bit set in exactly the zero bytes of `x` (no carries between
        // bytes, so no false positives).
        let mut mask = !(((x & LOW7) + LOW7) | x | LOW7);
        while mask != 0 {
            comma_at(i * 8 + (mask.trailing_zeros() / 8) as usize)?;
            mask &= mask - 1;
        }
    }
    let base = line.len() - rest.len();
    for (i, &b) in rest.iter().enumerate() {
        if b == b',' {
            comma_at(base + i)?;
        }
    }
    *spans.get_mut(n)? = (start, line.len());
    Some(n + 1)
}

/// Unsigned decimal integer, digits only; `None` on anything else or overflow.
pub(super) fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Value of exactly `b.len()` digits (callers pass at most 4).
fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    Some(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QuantityError {
    NotANumber,
    NonPositive,
}

/// Whole contracts. A fraction of only zeros (`25.000`) is accepted because
/// spreadsheet round trips add one; any other fraction is not a contract count.
pub(super) fn parse_quantity(b: &[u8]) -> Result<i64, QuantityError> {
    let (neg, rest) = split_sign(b);
    let (int, frac) = split_point(rest);
    if frac.is_some_and(|f| !f.iter().all(|&c| c == b'0')) {
        return Err(QuantityError::NotANumber);
    }
    let v = parse_u64(int).ok_or(QuantityError::NotANumber)?;
    let v = i64::try_from(v).map_err(|_| QuantityError::NotANumber)?;
    if neg || v == 0 { Err(QuantityError::NonPositive) } else { Ok(v) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PriceError {
    NotANumber,
    NonPositive,
    NonFinite,
    OutOfRange,
}

/// A price, parsed straight to fixed point so `132840.00000000` never goes
/// through binary floating point; digits past the fourth decimal round half
/// away from zero, as [`Price::from_f64`] does.
pub(super) fn parse_price(b: &[u8]) -> Result<Price, PriceError> {
    let raw = match parse_fixed4(b) {
        Some(raw) => raw,
        None => {
            let v: f64 = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or(PriceError::NotANumber)?;
            // Rust's parser accepts "NaN", "inf" and "infinity".
            if !v.is_finite() {
                return Err(PriceError::NonFinite);
            }
            if v <= 0.0 {
                return Err(PriceError::NonPositive);
            }
            Price::from_f64(v).ok_or(PriceError::OutOfRange)?.raw()
        }
    };
    if raw <= 0 { Err(PriceError::NonPositive) } else { Ok(Price::from_raw(raw)) }
}

/// `[+-]digits[.digits]` as units of 1e-4; `None` for any other spelling or
/// on overflow, which the caller retries through `f64`.
fn parse_fixed4(b: &[u8]) -> Option<i64> {
    let (neg, rest) = split_sign(b);
    let (int, frac) = split_point(rest);
    let frac = frac.unwrap_or(b"");
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let int_v = if int.is_empty() { 0 } else { parse_u64(int)? };
    let mut frac_v: u64 = 0;
    for i in 0..4 {
        let d = match frac.get(i) {
            Some(&c) => c.wrapping_sub(b'0'),
            None => 0,
        };
        if d > 9 {
            return None;
        }
        frac_v = frac_v * 10 + u64::from(d);
    }
    let mut round_up = false;
    if frac.len() > 4 {
        for &c in &frac[4..] {
            if !c.is_ascii_digit() {
                return None;
            }
        }
        round_up = frac[4] >= b'5';
    }
    let magnitude = int_v.checked_mul(Price::SCALE as u64)?.checked_add(frac_v + u64::from(round_up))?;
    let magnitude = i64::try_from(magnitude).ok()?;
    Some(if neg { -magnitude } else { magnitude })
}

/// A decimal number, correctly rounded. The fast path is Clinger's: a
/// mantissa below 2^53 divided by an exact power of ten is a single IEEE
/// operation, hence correctly rounded, which is what lets the writer's
/// shortest representation round-trip bit for bit.
pub(super) fn parse_f64(b: &[u8]) -> Option<f64> {
    if let Some(v) = parse_f64_fast(b) {
        return Some(v);
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn parse_f64_fast(b: &[u8]) -> Option<f64> {
    let (neg, rest) = split_sign(b);
    // Single pass; `point` is the number of digits before the '.'.
    let mut m: u64 = 0;
    let mut n = 0;
    let mut point = None;
    for &c in rest {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            // More than 19 digits could overflow: leave those to the slow path.
            if n == 19 {
                return None;
            }
            m = m * 10 + u64::from(d);
            n += 1;
        } else if c == b'.' && point.is_none() {
            point = Some(n);
        } else {
            return None;
        }
    }
    let frac_digits = n - point.unwrap_or(n);
    if n == 0 || m > F64_EXACT_INT || frac_digits >= POW10.len() {
        return None;
    }
    let v = m as f64 / POW10[frac_digits];
    Some(if neg { -v } else { v })
}

/// `YYYYMMDD`, `YYYY-MM-DD` or `DD/MM/YYYY` as (year, month, day), not yet
/// checked against the calendar.
pub(super) fn parse_date(b: &[u8]) -> Option<(i32, u32, u32)> {
    let (y, m, d) = match b.len() {
        8 => (digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?),
        10 if b[4] == b'-' && b[7] == b'-' => (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?),
        10 if b[2] == b'/' && b[5] == b'/' => (digits(&b[6..10])?, digits(&b[3..5])?, digits(&b[0..2])?),
        _ => return None,
    };
    Some((y as i32, m, d))
}

/// Milliseconds since local midnight from `HHMMSS`, `HHMMSS.mmm`,
/// `HHMMSSmmm` or `HH:MM:SS[.mmm]`. A dropped leading zero (`90038`,
/// `9:00:38`) is accepted since spreadsheets strip it. Fractions longer than
/// milliseconds are truncated: the engine's clock is milliseconds.
pub(super) fn parse_time(b: &[u8]) -> Option<u32> {
    let (hms, frac) = split_point(b);
    let (h, m, s, mut ms) = match hms.len() {
        5 | 6 if hms.iter().all(u8::is_ascii_digit) => {
            let (h, rest) = hms.split_at(hms.len() - 4);
            (digits(h)?, digits(&rest[0..2])?, digits(&rest[2..4])?, 0)
        }
        8 | 9 if hms.iter().all(u8::is_ascii_digit) => {
            if frac.is_some() {
                return None;
            }
            let (h, rest) = hms.split_at(hms.len() - 7);
            (digits(h)?, digits(&rest[0..2])?, digits(&rest[2..4])?, digits(&rest[4..7])?)
        }
        7 | 8 if hms[hms.len() - 3] == b':' && hms[hms.len() - 6] == b':' => {
            let n = hms.len();
            (digits(&hms[..n - 6])?, digits(&hms[n - 5..n - 3])?, digits(&hms[n - 2..])?, 0)
        }
        _ => return None,
    };
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        ms = 0;
        for i in 0..3 {
            ms = ms * 10 + frac.get(i).map_or(0, |&c| u32::from(c - b'0'));
        }
    }
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BadFlag;

/// The `<edit>` column. Empty counts as "no" so a trailing comma is harmless.
pub(super) fn parse_flag(b: &[u8]) -> Result<bool, BadFlag> {
    const YES: [&[u8]; 4] = [b"y", b"1", b"true", b"yes"];
    const NO: [&[u8]; 5] = [b"", b"n", b"0", b"false", b"no"];
    if YES.iter().any(|w| w.eq_ignore_ascii_case(b)) {
        Ok(true)
    } else if NO.iter().any(|w| w.eq_ignore_ascii_case(b)) {
        Ok(false)
    } else {
        Err(BadFlag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_every_comma() {
        let mut spans = [(0, 0); 12];
        for line in [
            "",
            "a",
            ",",
            "a,b",
            "WINFUT,20240108,090038,10,132840.00000000,25,664200.0000,Capital,Capital,Auction,N",
            ",,,,,,,,,,,",
            "\u{2c}\u{ac},\u{80},x",
        ] {
            let want: Vec<&str> = line.split(',').collect();
            let n = split_fields(line.as_bytes(), &mut spans).expect("fits");
            let got: Vec<&str> = spans[..n].iter().map(|&(a, b)| &line[a..b]).collect();
            assert_eq!(got, want);
        }
        assert_eq!(split_fields(b",,,,,,,,,,,,", &mut spans), None);
        assert_eq!(split_fields(b"a,b,c", &mut spans[..2]), None);
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_u64(b"-1"), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(b"25"), Ok(25));
        assert_eq!(parse_quantity(b"25.000"), Ok(25));
        assert_eq!(parse_quantity(b"+7"), Ok(7));
        assert_eq!(parse_quantity(b"25.5"), Err(QuantityError::NotANumber));
        assert_eq!(parse_quantity(b"0"), Err(QuantityError::NonPositive));
        assert_eq!(parse_quantity(b"-3"), Err(QuantityError::NonPositive));
        assert_eq!(parse_quantity(b"x"), Err(QuantityError::NotANumber));
        assert_eq!(parse_quantity(b"9223372036854775808"), Err(QuantityError::NotANumber));
    }

    #[test]
    fn prices() {
        let p = |s: &[u8]| parse_price(s).map(Price::raw);
        assert_eq!(p(b"132840.00000000"), Ok(1_328_400_000));
        assert_eq!(p(b"5123.5"), Ok(51_235_000));
        assert_eq!(p(b".5"), Ok(5_000));
        assert_eq!(p(b"1."), Ok(10_000));
        assert_eq!(p(b"0.00005"), Ok(1));
        assert_eq!(p(b"0.00004999"), Err(PriceError::NonPositive));
        assert_eq!(p(b"1.23456"), Ok(12_346));
        assert_eq!(p(b"1.5e3"), Ok(15_000_000));
        assert_eq!(p(b"0"), Err(PriceError::NonPositive));
        assert_eq!(p(b"-1.5"), Err(PriceError::NonPositive));
        assert_eq!(p(b"NaN"), Err(PriceError::NonFinite));
        assert_eq!(p(b"inf"), Err(PriceError::NonFinite));
        assert_eq!(p(b"-infinity"), Err(PriceError::NonFinite));
        assert_eq!(p(b"1e300"), Err(PriceError::OutOfRange));
        assert_eq!(p(b"99999999999999999999"), Err(PriceError::OutOfRange));
        assert_eq!(p(b"abc"), Err(PriceError::NotANumber));
        assert_eq!(p(b"."), Err(PriceError::NotANumber));
        assert_eq!(p(b""), Err(PriceError::NotANumber));
        assert_eq!(p(b"1.2.3"), Err(PriceError::NotANumber));
    }

    #[test]
    fn floats_match_the_standard_parser() {
        for s in [
            "664200.0000",
            "0.1",
            "0.30000000000000004",
            "123456789.123456789",
            "9007199254740993",
            "1e10",
            "-2.5",
            "0.000000000000000000001",
            "17976931348623157e292",
            "4.9e-324",
        ] {
            assert_eq!(parse_f64(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"1,5"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"20240108"), Some((2024, 1, 8)));
        assert_eq!(parse_date(b"2024-01-08"), Some((2024, 1, 8)));
        assert_eq!(parse_date(b"08/01/2024"), Some((2024, 1, 8)));
        assert_eq!(parse_date(b"2024010"), None);
        assert_eq!(parse_date(b"2024/01/08"), None);
        assert_eq!(parse_date(b"2024O108"), None);
    }

    #[test]
    fn times() {
        let ms = |h: u32, m: u32, s: u32, f: u32| Some(((h * 60 + m) * 60 + s) * 1000 + f);
        assert_eq!(parse_time(b"090038"), ms(9, 0, 38, 0));
        assert_eq!(parse_time(b"90038"), ms(9, 0, 38, 0));
        assert_eq!(parse_time(b"090038.250"), ms(9, 0, 38, 250));
        assert_eq!(parse_time(b"090038.5"), ms(9, 0, 38, 500));
        assert_eq!(parse_time(b"090038.123456"), ms(9, 0, 38, 123));
        assert_eq!(parse_time(b"090038250"), ms(9, 0, 38, 250));
        assert_eq!(parse_time(b"90038250"), ms(9, 0, 38, 250));
        assert_eq!(parse_time(b"09:00:38"), ms(9, 0, 38, 0));
        assert_eq!(parse_time(b"9:00:38.007"), ms(9, 0, 38, 7));
        assert_eq!(parse_time(b"235959.999"), ms(23, 59, 59, 999));
        assert_eq!(parse_time(b"240000"), None);
        assert_eq!(parse_time(b"096000"), None);
        assert_eq!(parse_time(b"090060"), None);
        assert_eq!(parse_time(b"090038250.1"), None);
        assert_eq!(parse_time(b"090038."), None);
        assert_eq!(parse_time(b"0900"), None);
        assert_eq!(parse_time(b"09-00-38"), None);
        assert_eq!(parse_time(b""), None);
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flag(b"Y"), Ok(true));
        assert_eq!(parse_flag(b"true"), Ok(true));
        assert_eq!(parse_flag(b"1"), Ok(true));
        assert_eq!(parse_flag(b"N"), Ok(false));
        assert_eq!(parse_flag(b"FALSE"), Ok(false));
        assert_eq!(parse_flag(b""), Ok(false));
        assert_eq!(parse_flag(b"maybe"), Err(BadFlag));
    }
}
