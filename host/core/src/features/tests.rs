use std::collections::HashSet;

use super::*;
use crate::candles::candle_from_trades;
use crate::market::{AgentId, Price, Symbol, Trade, TradeType};
use crate::time::{B3_UTC_OFFSET_MINUTES, LocalTime, MS_PER_DAY, MS_PER_MINUTE};

/// splitmix64: tiny, deterministic, good enough to vary test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn session_start() -> i64 {
    let t = LocalTime { year: 2024, month: 1, day: 8, hour: 9, minute: 0, second: 0, millisecond: 0 };
    t.to_epoch_ms(B3_UTC_OFFSET_MINUTES).expect("valid time")
}

fn symbol() -> Symbol {
    Symbol::new("WDOFUT").expect("valid symbol")
}

fn blank(open_ms: i64, price: f64) -> Candle {
    Candle::flat(symbol(), open_ms, open_ms + 59_000, price)
}

/// A bar built the real way, from random trades.
fn candle_from_random_trades(rng: &mut Rng, open_ms: i64, start: f64, trade_no: &mut u64) -> Candle {
    let n = 1 + rng.below(40) as usize;
    let mut price = start;
    let trades: Vec<Trade> = (0..n)
        .map(|i| {
            price += 0.5 * (rng.below(5) as f64 - 2.0);
            *trade_no += 1;
            let trade_type = match rng.below(5) {
                0 | 1 => TradeType::AggressorBuy,
                2 | 3 => TradeType::AggressorSell,
                _ => TradeType::Cross,
            };
            Trade {
                symbol: symbol(),
                ts_ms: open_ms + i as i64 * 1000,
                trade_number: *trade_no,
                price: Price::from_f64(price).expect("finite price"),
                quantity: 1 + rng.below(20) as i64,
                volume: 0.0,
                buy_agent: AgentId(1),
                sell_agent: AgentId(2),
                trade_type,
                is_edit: false,
            }
        })
        .collect();
    candle_from_trades(open_ms, &trades).expect("non-empty trades")
}

/// A few thousand varied candles: random walks on the WDO tick grid, long
/// flat stretches, bars without aggressors or without any volume, constant
/// imbalances, fractional volumes, big jumps, and a change of trading day.
fn generate(seed: u64, n: usize) -> Vec<Candle> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n);
    let mut open_ms = session_start();
    let mut price = 5000.0;
    let mut trade_no = 0;
    for i in 0..n {
        if i == n / 2 {
            open_ms += MS_PER_DAY - 200 * MS_PER_MINUTE;
        }
        open_ms += MS_PER_MINUTE;
        let phase = (i / 150) % 8;
        let mut c = blank(open_ms, price);
        match phase {
            // Flat market: identical prices, aggressor volume only sometimes.
            1 => {
                c.volume = rng.below(50) as f64;
                c.trades = rng.below(10) as u32;
                if i % 3 == 0 && c.volume > 0.0 {
                    c.buy_volume = (c.volume / 2.0).floor();
                    c.sell_volume = c.volume - c.buy_volume;
                    c.buy_trades = 1;
                    c.sell_trades = 1;
                }
            }
            // Real bars from trades.
            3 => c = candle_from_random_trades(&mut rng, open_ms, price, &mut trade_no),
            // Constant imbalance of 1/3 with a slow trend; some empty bars.
            5 => {
                if rng.below(10) == 0 {
                    // no trades at all
                } else {
                    let k = (1 + rng.below(30)) as f64;
                    c.close = price + 0.5;
                    c.high = c.close + 0.5;
                    c.low = price - 0.5;
                    c.buy_volume = 2.0 * k;
                    c.sell_volume = k;
                    c.volume = 3.0 * k + rng.below(3) as f64;
                    c.trades = 3;
                    c.buy_trades = 2;
                    c.sell_trades = 1;
                    c.max_buy_run = 2;
                    c.max_sell_run = 1;
                }
            }
            // Fractional volumes and occasional big jumps.
            7 => {
                let jump = if rng.below(40) == 0 { if price > 5000.0 { 0.7 } else { 1.4 } } else { 1.0 };
                let close = ((price * jump + 0.5 * (rng.below(21) as f64 - 10.0)) * 2.0).round() / 2.0;
                c.close = close.max(1.0);
                c.high = c.open.max(c.close) + 0.5 * rng.below(4) as f64;
                c.low = c.open.min(c.close) - 0.5 * rng.below(4) as f64;
                c.volume = 1000.0 * rng.unit();
                c.buy_volume = c.volume * rng.unit();
                c.sell_volume = (c.volume - c.buy_volume) * rng.unit();
                c.trades = 1 + rng.below(200) as u32;
                c.buy_trades = rng.below(u64::from(c.trades) + 1) as u32;
                c.sell_trades = c.trades - c.buy_trades;
                c.max_buy_run = c.buy_trades.min(3);
                c.max_sell_run = c.sell_trades.min(4);
            }
            // Ordinary random walk, integer contracts.
            _ => {
                let step = 0.5 * (rng.below(13) as f64 - 6.0);
                c.open = if rng.below(4) == 0 { price + 0.5 * (rng.below(5) as f64 - 2.0) } else { price };
                c.close = c.open + step;
                c.high = c.open.max(c.close) + 0.5 * rng.below(6) as f64;
                c.low = c.open.min(c.close) - 0.5 * rng.below(6) as f64;
                c.volume = (1 + rng.below(500)) as f64;
                c.buy_volume = (c.volume * rng.unit()).floor();
                c.sell_volume = c.volume - c.buy_volume;
                if rng.below(15) == 0 {
                    c.buy_volume = 0.0;
                    c.sell_volume = 0.0;
                }
                c.trades = 1 + rng.below(100) as u32;
                c.buy_trades = rng.below(u64::from(c.trades) + 1) as u32;
                c.sell_trades = c.trades - c.buy_trades;
                c.max_buy_run = c.buy_trades.min(1 + rng.below(8) as u32);
                c.max_sell_run = c.sell_trades.min(1 + rng.below(8) as u32);
            }
        }
        price = c.close;
        out.push(c);
    }
    out
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12
}

/// Feeds `candles` to a FeatureCore and checks every output against the
/// reference on the prefix after every candle.
fn assert_matches_reference(candles: &[Candle]) {
    let clock = SessionClock::default();
    let mut core = FeatureCore::new(clock);
    let mut fast = vec![0.0; V3_FEATURE_COUNT];
    let mut slow = vec![0.0; V3_FEATURE_COUNT];
    let mut failures = Vec::new();
    for i in 0..candles.len() {
        core.on_candle(&candles[i], &mut fast);
        reference::compute_last(&candles[..=i], clock, &mut slow);
        for (k, name) in V3_FEATURE_NAMES.iter().enumerate() {
            assert!(fast[k].is_finite() && slow[k].is_finite(), "{name} not finite at candle {i}");
            if !close_enough(fast[k], slow[k]) && failures.len() < 20 {
                failures.push(format!("{name} at candle {i}: core {:e} vs reference {:e}", fast[k], slow[k]));
            }
        }
    }
    assert_eq!(core.candles_seen(), candles.len() as u64);
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn features_core_matches_reference_on_varied_candles() {
    assert_matches_reference(&generate(0x5EED, 3000));
}

#[test]
fn features_core_matches_reference_property_over_seeds() {
    for seed in 1..=4 {
        assert_matches_reference(&generate(seed * 0x9E37, 1200));
    }
}

#[test]
fn features_reset_starts_over() {
    let candles = generate(11, 300);
    let clock = SessionClock::default();
    let mut core = FeatureCore::new(clock);
    let mut a = vec![0.0; V3_FEATURE_COUNT];
    let mut b = vec![0.0; V3_FEATURE_COUNT];
    for c in &candles[..200] {
        core.on_candle(c, &mut a);
    }
    core.reset();
    assert_eq!(core.candles_seen(), 0);
    let mut fresh = FeatureCore::new(clock);
    for c in &candles[200..] {
        core.on_candle(c, &mut a);
        fresh.on_candle(c, &mut b);
        assert_eq!(a, b);
    }
}

#[test]
fn features_names_are_unique_prefixed_and_indexed() {
    let unique: HashSet<&str> = V3_FEATURE_NAMES.iter().copied().collect();
    assert_eq!(unique.len(), V3_FEATURE_COUNT);
    assert_eq!(V3_FEATURE_NAMES.len(), V3_FEATURE_COUNT);
    for (i, name) in V3_FEATURE_NAMES.iter().enumerate() {
        assert!(name.starts_with("v3_") && name.len() > 3, "{name}");
        assert_eq!(v3_index(name), Some(i));
    }
    assert_eq!(v3_index("momentum_1"), None);
    assert_eq!(v3_index("v3_nope"), None);
    // Every group of the brief is present.
    for name in ["v3_momentum_accel_10", "v3_volatility_ratio_20", "v3_volume_concentration_20", "v3_sell_run_length"] {
        assert!(v3_index(name).is_some(), "{name}");
    }
    for name in ["v3_price_position_50", "v3_ema_alignment_score", "v3_trend_volume_interaction"] {
        assert!(v3_index(name).is_some(), "{name}");
    }
}

#[test]
fn features_stay_finite_on_pathological_input() {
    let clock = SessionClock::default();
    let weird = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -5.0, 1e300, -1e300, 1e-300, 5e-324, 1.0];
    let mut rng = Rng(99);
    let mut candles = Vec::new();
    let mut open_ms = session_start();
    for i in 0..600 {
        open_ms += if i % 97 == 0 { MS_PER_DAY } else { MS_PER_MINUTE };
        let mut pick = || weird[rng.below(weird.len() as u64) as usize];
        let mut c = blank(open_ms, 100.0);
        if i % 5 != 0 {
            c.open = pick();
            c.high = pick();
            c.low = pick();
            c.close = pick();
            c.volume = pick();
            c.buy_volume = pick();
            c.sell_volume = pick();
        }
        c.trades = [0, 1, u32::MAX][i % 3];
        c.buy_trades = [0, u32::MAX, 7][i % 3];
        c.sell_trades = [u32::MAX, 0, 0][i % 3];
        c.max_buy_run = u32::MAX;
        candles.push(c);
    }
    let mut core = FeatureCore::new(clock);
    let mut fast = vec![0.0; V3_FEATURE_COUNT];
    let mut slow = vec![0.0; V3_FEATURE_COUNT];
    for i in 0..candles.len() {
        core.on_candle(&candles[i], &mut fast);
        reference::compute_last(&candles[..=i], clock, &mut slow);
        for (k, name) in V3_FEATURE_NAMES.iter().enumerate() {
            assert!(fast[k].is_finite(), "core {name} = {} at {i}", fast[k]);
            assert!(slow[k].is_finite(), "reference {name} = {} at {i}", slow[k]);
        }
    }
    // Sanity on the empty history too.
    reference::compute_last(&[], clock, &mut slow);
    assert!(slow.iter().all(|&v| v == 0.0));
}

fn get(out: &[f64], name: &str) -> f64 {
    out[v3_index(name).unwrap_or_else(|| panic!("no feature {name}"))]
}

#[test]
fn features_hand_checked_values() {
    let clock = SessionClock::default();
    let mut core = FeatureCore::new(clock);
    let mut out = vec![0.0; V3_FEATURE_COUNT];
    let t0 = session_start();

    // First candle: nothing to compare against yet.
    let mut c = blank(t0, 100.0);
    c.high = 101.0;
    c.low = 99.0;
    c.volume = 10.0;
    c.buy_volume = 6.0;
    c.sell_volume = 4.0;
    c.trades = 4;
    c.buy_trades = 3;
    c.sell_trades = 1;
    core.on_candle(&c, &mut out);
    assert_eq!(get(&out, "v3_momentum_1"), 0.0);
    assert_eq!(get(&out, "v3_momentum_accel_5"), 0.0);
    assert_eq!(get(&out, "v3_volatility_cc_5"), 0.0);
    assert_eq!(get(&out, "v3_volume_imbalance"), 0.2);
    assert_eq!(get(&out, "v3_trade_imbalance"), 0.5);
    assert_eq!(get(&out, "v3_avg_trade_size"), 2.5);
    assert_eq!(get(&out, "v3_atr_14"), 2.0);
    assert_eq!(get(&out, "v3_ema_50"), 100.0);
    assert_eq!(get(&out, "v3_volume_imbalance_cum"), 2.0);

    // Closes 101..105 with volumes 20..60.
    for k in 1..=5 {
        let p = 100.0 + k as f64;
        let mut c = blank(t0 + k * MS_PER_MINUTE, p);
        c.open = p - 1.0;
        c.high = p + 1.0;
        c.low = p - 1.0;
        c.volume = 10.0 * (k + 1) as f64;
        c.buy_volume = c.volume / 2.0;
        c.sell_volume = c.volume / 2.0;
        c.trades = 1;
        core.on_candle(&c, &mut out);
    }
    assert_eq!(get(&out, "v3_momentum_1"), 1.0);
    assert_eq!(get(&out, "v3_momentum_5"), 5.0);
    assert!((get(&out, "v3_momentum_pct_5") - 0.05).abs() < 1e-15);
    assert!((get(&out, "v3_roc_5") - 5.0).abs() < 1e-12);
    // Window of 5 = volumes 20..60; window of 10 uses all six candles.
    assert_eq!(get(&out, "v3_volume_ma_5"), 40.0);
    assert_eq!(get(&out, "v3_volume_ratio_5"), 1.5);
    assert_eq!(get(&out, "v3_volume_ma_10"), 35.0);
    assert_eq!(get(&out, "v3_volume_momentum_5"), 5.0);
    assert_eq!(get(&out, "v3_buy_pressure"), 0.5);
    assert!((get(&out, "v3_volume_concentration_10") - 60.0 / 210.0).abs() < 1e-15);
    // Every true range after the first is max(2, |105+1-104|, ...) = 2.
    assert_eq!(get(&out, "v3_atr_14"), 2.0);
    // Steady up-moves: +DM = 1 every bar, -DM = 0.
    assert_eq!(get(&out, "v3_plus_di"), 50.0);
    assert_eq!(get(&out, "v3_minus_di"), 0.0);
    assert_eq!(get(&out, "v3_adx"), 100.0);
    assert_eq!(get(&out, "v3_volatility_ratio_10"), VOLATILITY_RATIO_CAP);
    assert_eq!(get(&out, "v3_price_position_20"), (105.0 - 99.0) / (106.0 - 99.0));
    assert_eq!(get(&out, "v3_volume_imbalance_cum"), 2.0);
    // Momentum 5 now is 5, and five candles ago (candle 0) it was 0.
    assert_eq!(get(&out, "v3_momentum_accel_5"), 5.0);

    // A new trading day restarts the cumulative imbalance.
    let mut c = blank(t0 + MS_PER_DAY, 105.0);
    c.volume = 9.0;
    c.buy_volume = 1.0;
    c.sell_volume = 8.0;
    core.on_candle(&c, &mut out);
    assert_eq!(get(&out, "v3_volume_imbalance_cum"), -7.0);

    // Twenty flat candles: degenerate bands and ranges take their documented values.
    for k in 0..20 {
        let mut c = blank(t0 + MS_PER_DAY + (k + 1) * MS_PER_MINUTE, 5000.0);
        c.volume = 5.0;
        core.on_candle(&c, &mut out);
    }
    assert_eq!(get(&out, "v3_bb_upper_20"), 5000.0);
    assert_eq!(get(&out, "v3_bb_lower_20"), 5000.0);
    assert_eq!(get(&out, "v3_bb_width_20"), 0.0);
    assert_eq!(get(&out, "v3_bb_position_20"), 0.5);
    assert_eq!(get(&out, "v3_price_position_20"), 0.5);
    assert_eq!(get(&out, "v3_volatility_cc_10"), 0.0);
    assert_eq!(get(&out, "v3_volatility_ratio_10"), 1.0);
    assert_eq!(get(&out, "v3_volume_imbalance_zscore_20"), 0.0);
    assert_eq!(get(&out, "v3_momentum_vol_ratio_5"), 0.0);
    assert_eq!(get(&out, "v3_volume_ratio_20"), 1.0);
    assert_eq!(get(&out, "v3_buy_pressure"), 0.0);
}
