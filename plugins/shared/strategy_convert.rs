//! Conversions between the plugin contract's types and the native core's,
//! shared by the Rust guests that wrap a native strategy (`trend`, `range`).
//! Compiled into each guest (`#[path]`) against that guest's own bindings:
//! `crate::tickhost::plugin::types` is what its `wit_bindgen::generate!`
//! defines at the crate root.

use tickhost_core::market::Symbol;
use tickhost_core::regime::{Regime as CoreRegime, RegimeReading};
use tickhost_core::strategy::{Action as CoreAction, Signal as CoreSignal};

use crate::tickhost::plugin::types::{Action, Candle, Regime, Signal};

/// The WIT candle as the core's candle (the symbol is not part of the
/// contract; the strategies do not read it).
pub(crate) fn core_candle(c: &Candle) -> tickhost_core::Candle {
    tickhost_core::Candle {
        symbol: Symbol::new("PLUGIN").expect("valid symbol"),
        open_ms: c.open_ms,
        close_ms: c.close_ms,
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        financial_volume: c.financial_volume,
        trades: c.trades,
        buy_volume: c.buy_volume,
        sell_volume: c.sell_volume,
        buy_trades: c.buy_trades,
        sell_trades: c.sell_trades,
        max_buy_run: 0,
        max_sell_run: 0,
    }
}

pub(crate) fn core_regime(r: &crate::tickhost::plugin::types::RegimeReading) -> RegimeReading {
    let regime = match r.regime {
        Regime::TrendUp => CoreRegime::TrendUp,
        Regime::TrendDown => CoreRegime::TrendDown,
        Regime::Range => CoreRegime::Range,
        Regime::Undefined => CoreRegime::Undefined,
    };
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    RegimeReading { regime, confidence: finite(r.confidence), adx: finite(r.adx) }
}

/// The core's signal in the contract's terms, always finite and in range: a
/// value the contract would reject turns the answer into a hold.
pub(crate) fn wit_signal(s: &CoreSignal) -> Signal {
    let unit = |v: f64| if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let action = match s.action {
        CoreAction::Buy => Action::Buy,
        CoreAction::Sell => Action::Sell,
        CoreAction::Hold => Action::Hold,
    };
    let valid_exits = s.stop_points.is_finite()
        && s.target_points.is_finite()
        && s.stop_points > 0.0
        && s.target_points > 0.0
        && s.expected_move.is_finite();
    if action != Action::Hold && !valid_exits {
        return Signal {
            action: Action::Hold,
            confidence: unit(s.confidence),
            probability: 0.0,
            direction: 0.0,
            expected_move: 0.0,
            stop_points: 0.0,
            target_points: 0.0,
            reason: "invalid exits".to_string(),
        };
    }
    let non_negative = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    Signal {
        action,
        confidence: unit(s.confidence),
        probability: unit(s.probability),
        direction: unit(s.direction),
        expected_move: non_negative(s.expected_move),
        stop_points: non_negative(s.stop_points),
        target_points: non_negative(s.target_points),
        reason: s.reason.to_string(),
    }
}
