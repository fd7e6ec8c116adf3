//! Tape and footprint patterns of a closed candle, from its order flow
//! (aggressor volumes and runs) and its range against ATR(14): the names of
//! domain.md's TapeReading (sweep, absorption, momentum, exhaustion) and
//! FootprintPattern (initiative buying / selling) agents. Each pattern
//! implies a direction for the next bar; its outcome is whether the next
//! close moved that way. Pure and allocation-free: the store writer runs it
//! off the engine thread to keep the permanent `hmarl:pattern:*` statistics.
//!
//! Not detected: iceberg (it needs the book or per-price trade counts, which
//! a candle does not carry) and the footprint reversals (P/B shapes need
//! volume per price level).

use crate::market::Candle;

/// A run of this many aggressor trades in a row on one side is a sweep.
pub const SWEEP_RUN: u32 = 8;
/// |buy - sell| / (buy + sell) of aggressive volume counted as one-sided.
pub const IMBALANCE: f64 = 0.3;
/// Share of aggressive volume on one side for initiative buying / selling.
pub const INITIATIVE: f64 = 0.7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    Tape,
    Footprint,
}

impl PatternKind {
    pub fn name(self) -> &'static str {
        match self {
            PatternKind::Tape => "tape",
            PatternKind::Footprint => "footprint",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pattern {
    pub kind: PatternKind,
    pub name: &'static str,
    /// The move it implies for the next bar: +1 up, -1 down.
    pub direction: i8,
}

/// Up to this many patterns per candle.
pub const MAX_PER_CANDLE: usize = 5;

/// The patterns of `c`; `atr` is ATR(14) in points (0 or NaN before it is
/// known: the range-based patterns are then not looked for).
pub fn detect(c: &Candle, atr: f64) -> ([Option<Pattern>; MAX_PER_CANDLE], usize) {
    let mut out = [None; MAX_PER_CANDLE];
    let mut n = 0;
    let mut push = |kind, name, direction| {
        if n < MAX_PER_CANDLE {
            out[n] = Some(Pattern { kind, name, direction });
            n += 1;
        }
    };
    let aggressive = c.buy_volume + c.sell_volume;
    let delta = c.buy_volume - c.sell_volume;
    let body = c.close - c.open;
    let range = c.high - c.low;
    let delta_sign = if delta > 0.0 { 1 } else { -1 };

    if c.max_buy_run.max(c.max_sell_run) >= SWEEP_RUN {
        push(PatternKind::Tape, "sweep", if c.max_buy_run >= c.max_sell_run { 1 } else { -1 });
    }
    if aggressive > 0.0 && delta.abs() / aggressive >= IMBALANCE {
        if body * f64::from(delta_sign) <= 0.0 {
            // One side hit hard and price did not follow: the passive side absorbed it.
            push(PatternKind::Tape, "absorption", -delta_sign as i8);
        }
        let share = c.buy_volume.max(c.sell_volume) / aggressive;
        if share >= INITIATIVE && body * f64::from(delta_sign) > 0.0 {
            let name = if delta > 0.0 { "initiative_buying" } else { "initiative_selling" };
            push(PatternKind::Footprint, name, delta_sign as i8);
        }
    }
    if atr.is_finite() && atr > 0.0 && range > 0.0 {
        if range >= atr && body.abs() >= 0.6 * range && body * delta >= 0.0 && delta != 0.0 {
            push(PatternKind::Tape, "momentum", if body > 0.0 { 1 } else { -1 });
        }
        // A wide bar that gave most of its move back against its own aggression.
        if range >= 1.5 * atr {
            if delta > 0.0 && c.high - c.close >= 0.6 * range {
                push(PatternKind::Tape, "exhaustion", -1);
            } else if delta < 0.0 && c.close - c.low >= 0.6 * range {
                push(PatternKind::Tape, "exhaustion", 1);
            }
        }
    }
    (out, n)
}

/// The outcome of a pattern seen at a bar closing at `close` once the next
/// bar closed at `next_close`: +1 it moved the implied way, -1 against, 0 flat.
pub fn outcome(direction: i8, close: f64, next_close: f64) -> (i8, f64) {
    let moved = (next_close - close) * f64::from(direction);
    let o = if moved > 0.0 {
        1
    } else if moved < 0.0 {
        -1
    } else {
        0
    };
    (o, moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Symbol;

    fn candle(open: f64, high: f64, low: f64, close: f64, buy: f64, sell: f64, runs: (u32, u32)) -> Candle {
        Candle {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            open_ms: 0,
            close_ms: 59_000,
            open,
            high,
            low,
            close,
            volume: buy + sell,
            financial_volume: 0.0,
            trades: 10,
            buy_volume: buy,
            sell_volume: sell,
            buy_trades: 5,
            sell_trades: 5,
            max_buy_run: runs.0,
            max_sell_run: runs.1,
        }
    }

    fn names(c: &Candle, atr: f64) -> Vec<(&'static str, i8)> {
        let (p, n) = detect(c, atr);
        p[..n].iter().flatten().map(|p| (p.name, p.direction)).collect()
    }

    #[test]
    fn each_pattern_from_its_order_flow() {
        // Buyers swept 9 in a row and carried price up, bar wider than ATR.
        let c = candle(100.0, 110.0, 99.0, 109.0, 90.0, 10.0, (9, 2));
        assert_eq!(names(&c, 5.0), [("sweep", 1), ("initiative_buying", 1), ("momentum", 1)]);
        // Sellers hit hard, price closed up: absorbed, expect up.
        let c = candle(100.0, 101.0, 99.5, 100.5, 10.0, 60.0, (1, 3));
        assert_eq!(names(&c, 5.0), [("absorption", 1)]);
        // A wide bar bought up and given back: exhaustion, expect down.
        let c = candle(100.0, 112.0, 99.0, 102.0, 60.0, 30.0, (2, 2));
        assert_eq!(names(&c, 5.0), [("exhaustion", -1)]);
        // Balanced, narrow: nothing; no ATR yet: no range patterns.
        assert!(names(&candle(100.0, 101.0, 99.0, 100.5, 50.0, 48.0, (2, 2)), 5.0).is_empty());
        assert_eq!(names(&candle(100.0, 112.0, 99.0, 102.0, 60.0, 30.0, (2, 2)), f64::NAN), []);
    }

    #[test]
    fn outcomes_follow_the_implied_direction() {
        assert_eq!(outcome(1, 100.0, 101.5), (1, 1.5));
        assert_eq!(outcome(-1, 100.0, 101.5), (-1, -1.5));
        assert_eq!(outcome(1, 100.0, 100.0).0, 0);
    }
}
