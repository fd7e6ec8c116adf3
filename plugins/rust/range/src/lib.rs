//! `range`: the engine's native range strategy
//! (`tickhost_core::strategy::RangeStrategy`: buy near support, sell near
//! resistance, levels from 5-bar pivots over the last 50 candles) as a
//! `regime-strategy` component. It reuses the native code, so it answers
//! exactly what the native strategy answers.
//!
//! Inputs: all v3 features, in `V3_FEATURE_NAMES` order.
//!
//! State: the (high, low) of the last `lookback` candles, the pivot ring the
//! native strategy scans. The guest keeps its own copy of the ring to
//! snapshot it, and restores by replaying the bars into a fresh native
//! strategy (a bar in a non-range regime only updates the ring). Snapshot:
//! `b"TRG1"`, the bar count as a u32, then each bar's high and low as f64,
//! little-endian, oldest first.

use std::cell::RefCell;
use std::collections::VecDeque;

use tickhost_core::features::{V3_FEATURE_COUNT, V3_FEATURE_NAMES};
use tickhost_core::regime::{Regime as CoreRegime, RegimeReading};
use tickhost_core::strategy::{RangeConfig, RangeStrategy, Signal as CoreSignal, StrategyInput};

wit_bindgen::generate!({
    world: "regime-strategy",
    path: "../../../wit",
    additional_derives: [PartialEq],
});

use exports::tickhost::plugin::lifecycle;
use exports::tickhost::plugin::strategy;
use tickhost::plugin::types::{Cadence, Candle, Description, Signal};

#[path = "../../../shared/strategy_convert.rs"]
mod convert;
use convert::{core_candle, core_regime, wit_signal};

const MAGIC: &[u8; 4] = b"TRG1";

fn config() -> RangeConfig {
    RangeConfig::default()
}

/// Bars the native strategy remembers (its constructor's rule).
fn ring_len(config: &RangeConfig) -> usize {
    config.lookback.max(2 * config.pivot_wing + 1)
}

struct State {
    strategy: RangeStrategy,
    /// The same bars as the native strategy's ring, oldest first.
    bars: VecDeque<(f64, f64)>,
    capacity: usize,
    frame: Vec<f64>,
}

impl State {
    fn new() -> Self {
        let config = config();
        let capacity = ring_len(&config);
        Self {
            strategy: RangeStrategy::new(config),
            bars: VecDeque::with_capacity(capacity),
            capacity,
            frame: vec![0.0; V3_FEATURE_COUNT],
        }
    }

    fn remember(&mut self, high: f64, low: f64) {
        if self.bars.len() == self.capacity {
            self.bars.pop_front();
        }
        self.bars.push_back((high, low));
    }

    fn on_candle(&mut self, candle: &Candle, regime: RegimeReading, inputs: &[f64]) -> CoreSignal {
        for (slot, v) in self.frame.iter_mut().zip(inputs.iter().chain(std::iter::repeat(&0.0))) {
            *slot = if v.is_finite() { *v } else { 0.0 };
        }
        let candle = core_candle(candle);
        self.remember(candle.high, candle.low);
        self.strategy.on_candle(&StrategyInput { candle: &candle, features: &self.frame, regime })
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 16 * self.bars.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.bars.len() as u32).to_le_bytes());
        for &(h, l) in &self.bars {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&l.to_le_bytes());
        }
        out
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let mut state = Self::new();
        if bytes.is_empty() {
            return Ok(state);
        }
        let rest = bytes.strip_prefix(MAGIC).ok_or("range snapshot: bad magic (not a TRG1 snapshot)")?;
        let (count, bars) = rest.split_at_checked(4).ok_or("range snapshot: truncated header")?;
        let count = u32::from_le_bytes(count.try_into().map_err(|_| "range snapshot: truncated header")?) as usize;
        if count.checked_mul(16) != Some(bars.len()) {
            return Err(format!(
                "range snapshot: {count} bars need {} bytes, got {}",
                count.saturating_mul(16),
                bars.len()
            ));
        }
        let f64_at = |i: usize| f64::from_le_bytes(bars[i..i + 8].try_into().expect("8 bytes"));
        // A snapshot from a version with a longer lookback keeps its newest bars.
        let skip = count.saturating_sub(state.capacity);
        let dummy = core_candle(&Candle {
            open_ms: 0,
            close_ms: 0,
            open: 0.0,
            high: 0.0,
            low: 0.0,
            close: 0.0,
            volume: 0.0,
            financial_volume: 0.0,
            trades: 0,
            buy_volume: 0.0,
            sell_volume: 0.0,
            buy_trades: 0,
            sell_trades: 0,
        });
        let undefined = RegimeReading { regime: CoreRegime::Undefined, confidence: 0.0, adx: 0.0 };
        for i in 0..count {
            let (high, low) = (f64_at(16 * i), f64_at(16 * i + 8));
            if !high.is_finite() || !low.is_finite() || low > high {
                return Err(format!("range snapshot: bar {i} is not a finite high >= low"));
            }
            if i >= skip {
                let candle = tickhost_core::Candle { high, low, ..dummy };
                // Not a range regime: the native strategy only records the bar.
                state.strategy.on_candle(&StrategyInput { candle: &candle, features: &[], regime: undefined });
                state.remember(high, low);
            }
        }
        Ok(state)
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new());
}

struct Component;

impl lifecycle::Guest for Component {
    fn describe() -> Description {
        Description {
            name: "range".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: V3_FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            outputs: Vec::new(),
            cadence: Cadence::PerCandle,
        }
    }

    fn snapshot() -> Vec<u8> {
        STATE.with_borrow(State::snapshot)
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        let restored = State::restore(&state)?;
        STATE.set(restored);
        Ok(())
    }
}

impl strategy::Guest for Component {
    fn on_candle(candle: Candle, regime: tickhost::plugin::types::RegimeReading, inputs: Vec<f64>) -> Signal {
        let signal = STATE.with_borrow_mut(|s| s.on_candle(&candle, core_regime(&regime), &inputs));
        wit_signal(&signal)
    }
}

export!(Component);

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle::Guest as _;
    use strategy::Guest as _;
    use tickhost::plugin::types::{Action, Regime};
    use tickhost_core::features::v3_index;

    fn noise(s: &mut u64) -> f64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 2_000_001) as f64 / 1_000_000.0 - 1.0
    }

    /// A choppy market around 5000 with range regimes most of the time.
    fn market(n: usize, seed: u64) -> Vec<(Candle, tickhost::plugin::types::RegimeReading, Vec<f64>)> {
        let mut s = seed;
        let mut price = 5000.0;
        (0..n)
            .map(|i| {
                price += 2.0 * (i as f64 / 3.0).sin() + noise(&mut s);
                let (high, low) = (price + 1.0 + noise(&mut s).abs(), price - 1.0 - noise(&mut s).abs());
                let candle = Candle {
                    open_ms: i as i64 * 60_000,
                    close_ms: i as i64 * 60_000 + 59_000,
                    open: price,
                    high,
                    low,
                    close: price + noise(&mut s).clamp(low - price, high - price),
                    volume: 100.0,
                    financial_volume: 1e6,
                    trades: 20,
                    buy_volume: 50.0,
                    sell_volume: 50.0,
                    buy_trades: 10,
                    sell_trades: 10,
                };
                let regime = if i % 7 == 0 { Regime::TrendUp } else { Regime::Range };
                let reading = tickhost::plugin::types::RegimeReading { regime, confidence: 0.6, adx: 20.0 };
                let mut frame: Vec<f64> = (0..V3_FEATURE_COUNT).map(|_| noise(&mut s)).collect();
                frame[v3_index("v3_bb_position_20").unwrap()] = 0.5 + 0.5 * noise(&mut s);
                frame[v3_index("v3_atr_14").unwrap()] = 2.0 + noise(&mut s);
                (candle, reading, frame)
            })
            .collect()
    }

    #[test]
    fn answers_exactly_what_the_native_strategy_answers() {
        Component::restore(Vec::new()).unwrap();
        let mut native = RangeStrategy::new(config());
        let mut acted = 0;
        for (i, (c, r, f)) in market(3000, 9).into_iter().enumerate() {
            let core = core_candle(&c);
            let want = native.on_candle(&StrategyInput { candle: &core, features: &f, regime: core_regime(&r) });
            let got = Component::on_candle(c, r, f);
            assert_eq!(got, wit_signal(&want), "candle {i}");
            acted += usize::from(got.action != Action::Hold);
        }
        assert!(acted > 0, "the test never produced a trade");
    }

    #[test]
    fn restored_state_continues_identically() {
        let data = market(400, 3);
        Component::restore(Vec::new()).unwrap();
        for (c, r, f) in &data[..200] {
            Component::on_candle(*c, *r, f.clone());
        }
        let snap = Component::snapshot();
        assert_eq!(snap.len(), 8 + 16 * 50);
        let continued: Vec<Signal> =
            data[200..].iter().map(|(c, r, f)| Component::on_candle(*c, *r, f.clone())).collect();
        Component::restore(Vec::new()).unwrap();
        assert_eq!(Component::snapshot(), b"TRG1\0\0\0\0");
        Component::restore(snap.clone()).unwrap();
        assert_eq!(Component::snapshot(), snap);
        let replayed: Vec<Signal> =
            data[200..].iter().map(|(c, r, f)| Component::on_candle(*c, *r, f.clone())).collect();
        assert_eq!(continued, replayed);
    }

    #[test]
    fn garbage_is_an_error_and_keeps_the_state() {
        Component::restore(Vec::new()).unwrap();
        let before = Component::snapshot();
        let mut bad_bar = b"TRG1\x01\0\0\0".to_vec();
        bad_bar.extend_from_slice(&1.0f64.to_le_bytes());
        bad_bar.extend_from_slice(&f64::NAN.to_le_bytes());
        for garbage in
            [&b"x"[..], b"TRG1", b"TRG1\x02\0\0\0", b"TRG1\xff\xff\xff\xff", &bad_bar, b"not a snapshot at all"]
        {
            assert!(Component::restore(garbage.to_vec()).is_err(), "{garbage:?}");
        }
        assert_eq!(Component::snapshot(), before);
    }
}
