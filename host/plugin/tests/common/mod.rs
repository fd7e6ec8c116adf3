//! Shared test helpers: find built plugins through target/plugins/index.txt,
//! one runtime per test binary, and events.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use tickhost_core::features::{V3_FEATURE_COUNT, v3_index};
use tickhost_core::market::{AgentId, Candle, Price, Symbol, Trade, TradeType};
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::strategy::StrategyInput;
use tickhost_plugin::{LoadedPlugin, PluginError, PluginIndex, PluginRuntime};

/// The manifest of a built plugin, by name.
pub fn manifest(name: &str) -> PathBuf {
    static INDEX: OnceLock<PluginIndex> = OnceLock::new();
    INDEX
        .get_or_init(|| PluginIndex::checkout().unwrap_or_else(|e| panic!("{e}")))
        .manifest(name)
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| PluginRuntime::new().expect("runtime"))
}

pub fn load(name: &str) -> LoadedPlugin {
    runtime().load(&manifest(name)).unwrap_or_else(|e| panic!("load {name}: {e}"))
}

pub fn load_err(name: &str) -> PluginError {
    match runtime().load(&manifest(name)) {
        Ok(p) => panic!("{name} loaded, but should have been refused: {:?}", p.description()),
        Err(e) => e,
    }
}

pub const MIN: i64 = 60_000;

pub fn candle(i: i64) -> Candle {
    let close = 5000.0 + i as f64;
    Candle {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        open_ms: 1_700_000_000_000 + i * MIN,
        close_ms: 1_700_000_000_000 + i * MIN + MIN - 1,
        open: close - 1.0,
        high: close + 1.0,
        low: close - 2.0,
        close,
        volume: 100.0,
        financial_volume: 5e5,
        trades: 10,
        buy_volume: 60.0,
        sell_volume: 40.0,
        buy_trades: 6,
        sell_trades: 4,
        max_buy_run: 3,
        max_sell_run: 2,
    }
}

/// A candle the good-counter plugin traps on.
pub fn trap_candle(i: i64) -> Candle {
    Candle { trades: 0xDEAD, ..candle(i) }
}

pub fn trade(i: i64) -> Trade {
    Trade {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        ts_ms: 1_700_000_000_000 + i * 100,
        trade_number: i as u64,
        price: Price::from_f64(5000.0 + (i % 7) as f64).expect("price"),
        quantity: 5,
        volume: 5.0 * 5000.0,
        buy_agent: AgentId(1),
        sell_agent: AgentId(2),
        trade_type: TradeType::AggressorBuy,
        is_edit: false,
    }
}

pub fn v3_frame() -> Vec<f64> {
    vec![0.0; V3_FEATURE_COUNT]
}

/// A v3 frame with `v3_momentum_1` set (good-counter buys when it is > 0).
pub fn frame_with_momentum(m: f64) -> Vec<f64> {
    let mut f = v3_frame();
    f[v3_index("v3_momentum_1").expect("v3_momentum_1")] = m;
    f
}

pub fn reading(regime: Regime) -> RegimeReading {
    RegimeReading { regime, confidence: 0.7, adx: 30.0 }
}

pub fn input<'a>(candle: &'a Candle, features: &'a [f64], regime: Regime) -> StrategyInput<'a> {
    StrategyInput { candle, features, regime: reading(regime) }
}
