//! `trend`: the engine's native trend-following strategy
//! (`tickhost_core::strategy::TrendStrategy`) as a `regime-strategy`
//! component. It reuses the native code as is, so it answers exactly what the
//! native strategy answers; it is the reference for "a plugin and its native
//! fallback agree".
//!
//! Inputs: all v3 features, in `V3_FEATURE_NAMES` order, so the frame it
//! hands the native strategy is the engine's own v3 frame, whatever v3
//! features the native code reads.
//!
//! State: a call counter (it has no other), so a live swap can show that the
//! state survived. Snapshot: `b"TTR1"` then the counter as a u64,
//! little-endian (12 bytes).

use std::cell::RefCell;

use tickhost_core::features::{V3_FEATURE_COUNT, V3_FEATURE_NAMES};
use tickhost_core::regime::RegimeReading;
use tickhost_core::strategy::{Signal as CoreSignal, StrategyInput, TrendConfig, TrendStrategy};

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

const MAGIC: &[u8; 4] = b"TTR1";

struct State {
    strategy: TrendStrategy,
    frame: Vec<f64>,
    calls: u64,
}

impl State {
    fn new() -> Self {
        Self { strategy: TrendStrategy::new(TrendConfig::default()), frame: vec![0.0; V3_FEATURE_COUNT], calls: 0 }
    }

    fn on_candle(&mut self, candle: &Candle, regime: RegimeReading, inputs: &[f64]) -> CoreSignal {
        self.calls += 1;
        // The host sends exactly describe().inputs; anything else reads as 0.
        for (slot, v) in self.frame.iter_mut().zip(inputs.iter().chain(std::iter::repeat(&0.0))) {
            *slot = if v.is_finite() { *v } else { 0.0 };
        }
        let candle = core_candle(candle);
        self.strategy.on_candle(&StrategyInput { candle: &candle, features: &self.frame, regime })
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new());
}

fn restore_state(bytes: &[u8]) -> Result<u64, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    match bytes.strip_prefix(MAGIC) {
        Some(rest) => {
            let calls: [u8; 8] =
                rest.try_into().map_err(|_| format!("trend snapshot: expected 12 bytes, got {}", bytes.len()))?;
            Ok(u64::from_le_bytes(calls))
        }
        None => Err("trend snapshot: bad magic (not a TTR1 snapshot)".to_string()),
    }
}

struct Component;

impl lifecycle::Guest for Component {
    fn describe() -> Description {
        Description {
            name: "trend".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: V3_FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            outputs: Vec::new(),
            cadence: Cadence::PerCandle,
        }
    }

    fn snapshot() -> Vec<u8> {
        let calls = STATE.with_borrow(|s| s.calls);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&calls.to_le_bytes());
        out
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        let calls = restore_state(&state)?;
        STATE.set(State { calls, ..State::new() });
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

    fn candle(close: f64) -> Candle {
        Candle {
            open_ms: 0,
            close_ms: 60_000,
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 10.0,
            financial_volume: 1e5,
            trades: 3,
            buy_volume: 6.0,
            sell_volume: 4.0,
            buy_trades: 2,
            sell_trades: 1,
        }
    }

    /// A deterministic pseudo-random value in [-1, 1) (xorshift).
    fn noise(s: &mut u64) -> f64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 2_000_001) as f64 / 1_000_000.0 - 1.0
    }

    #[test]
    fn answers_exactly_what_the_native_strategy_answers() {
        let native = TrendStrategy::new(TrendConfig::default());
        let mut seed = 42u64;
        let mut acted = 0;
        for i in 0..2000 {
            let frame: Vec<f64> = (0..V3_FEATURE_COUNT).map(|_| noise(&mut seed) * 0.01).collect();
            let regime = [Regime::TrendUp, Regime::TrendDown, Regime::Range, Regime::Undefined][i % 4];
            let reading = tickhost::plugin::types::RegimeReading {
                regime,
                confidence: 0.5 + 0.3 * noise(&mut seed).abs(),
                adx: 25.0 + 20.0 * noise(&mut seed),
            };
            let c = candle(5000.0 + i as f64);
            let got = Component::on_candle(c, reading, frame.clone());
            let core = core_candle(&c);
            let want =
                native.on_candle(&StrategyInput { candle: &core, features: &frame, regime: core_regime(&reading) });
            assert_eq!(got, wit_signal(&want), "candle {i}");
            acted += usize::from(got.action != Action::Hold);
        }
        assert!(acted > 0, "the test never produced a trade");
    }

    #[test]
    fn snapshot_restore_round_trip() {
        Component::restore(Vec::new()).unwrap();
        for _ in 0..3 {
            let reading = tickhost::plugin::types::RegimeReading { regime: Regime::Range, confidence: 0.6, adx: 10.0 };
            Component::on_candle(candle(5000.0), reading, vec![0.0; V3_FEATURE_COUNT]);
        }
        let snap = Component::snapshot();
        assert_eq!(snap.len(), 12);
        assert_eq!(restore_state(&snap), Ok(3));
        Component::restore(Vec::new()).unwrap();
        assert_eq!(restore_state(&Component::snapshot()), Ok(0));
        Component::restore(snap.clone()).unwrap();
        assert_eq!(Component::snapshot(), snap);
        for garbage in [&b"TTR1"[..], b"TTR1\x01\x02", b"garbage garbage", b"TTR2\0\0\0\0\0\0\0\0"] {
            assert!(Component::restore(garbage.to_vec()).is_err());
        }
        assert_eq!(Component::snapshot(), snap, "a failed restore keeps the state");
    }
}
