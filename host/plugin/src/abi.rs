//! Rust mirrors of the WIT types in `wit/plugin.wit`, lowered and lifted by
//! wasmtime's derive macros. The host looks exports up by name and type-checks
//! them against these shapes once, when an instance is created.

use tickhost_core::broker::RoundTrip;
use tickhost_core::market::{Candle, Side, Trade};
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::strategy::Action;
use wasmtime::component::{ComponentType, Lift, Lower};

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WSide {
    #[component(name = "buy")]
    Buy,
    #[component(name = "sell")]
    Sell,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq)]
#[component(record)]
pub struct WTrade {
    #[component(name = "ts-ms")]
    pub ts_ms: i64,
    #[component(name = "trade-number")]
    pub trade_number: u64,
    #[component(name = "price")]
    pub price: f64,
    #[component(name = "quantity")]
    pub quantity: i64,
    #[component(name = "volume")]
    pub volume: f64,
    #[component(name = "trade-type")]
    pub trade_type: u8,
    #[component(name = "aggressor")]
    pub aggressor: Option<WSide>,
    #[component(name = "is-edit")]
    pub is_edit: bool,
}

impl From<&Trade> for WTrade {
    fn from(t: &Trade) -> Self {
        WTrade {
            ts_ms: t.ts_ms,
            trade_number: t.trade_number,
            price: t.price.as_f64(),
            quantity: t.quantity,
            volume: t.volume,
            trade_type: t.trade_type.code(),
            aggressor: t.aggressor().map(|s| match s {
                Side::Buy => WSide::Buy,
                Side::Sell => WSide::Sell,
            }),
            is_edit: t.is_edit,
        }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq)]
#[component(record)]
pub struct WCandle {
    #[component(name = "open-ms")]
    pub open_ms: i64,
    #[component(name = "close-ms")]
    pub close_ms: i64,
    #[component(name = "open")]
    pub open: f64,
    #[component(name = "high")]
    pub high: f64,
    #[component(name = "low")]
    pub low: f64,
    #[component(name = "close")]
    pub close: f64,
    #[component(name = "volume")]
    pub volume: f64,
    #[component(name = "financial-volume")]
    pub financial_volume: f64,
    #[component(name = "trades")]
    pub trades: u32,
    #[component(name = "buy-volume")]
    pub buy_volume: f64,
    #[component(name = "sell-volume")]
    pub sell_volume: f64,
    #[component(name = "buy-trades")]
    pub buy_trades: u32,
    #[component(name = "sell-trades")]
    pub sell_trades: u32,
}

impl From<&Candle> for WCandle {
    fn from(c: &Candle) -> Self {
        WCandle {
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
        }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WRegime {
    #[component(name = "trend-up")]
    TrendUp,
    #[component(name = "trend-down")]
    TrendDown,
    #[component(name = "range")]
    Range,
    #[component(name = "undefined")]
    Undefined,
}

impl From<Regime> for WRegime {
    fn from(r: Regime) -> Self {
        match r {
            Regime::TrendUp => WRegime::TrendUp,
            Regime::TrendDown => WRegime::TrendDown,
            Regime::Range => WRegime::Range,
            Regime::Undefined => WRegime::Undefined,
        }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq)]
#[component(record)]
pub struct WRegimeReading {
    #[component(name = "regime")]
    pub regime: WRegime,
    #[component(name = "confidence")]
    pub confidence: f64,
    #[component(name = "adx")]
    pub adx: f64,
}

impl From<&RegimeReading> for WRegimeReading {
    fn from(r: &RegimeReading) -> Self {
        WRegimeReading { regime: r.regime.into(), confidence: r.confidence, adx: r.adx }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WAction {
    #[component(name = "buy")]
    Buy,
    #[component(name = "sell")]
    Sell,
    #[component(name = "hold")]
    Hold,
}

impl From<WAction> for Action {
    fn from(a: WAction) -> Self {
        match a {
            WAction::Buy => Action::Buy,
            WAction::Sell => Action::Sell,
            WAction::Hold => Action::Hold,
        }
    }
}

impl From<Action> for WAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Buy => WAction::Buy,
            Action::Sell => WAction::Sell,
            Action::Hold => WAction::Hold,
        }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct WSignal {
    #[component(name = "action")]
    pub action: WAction,
    #[component(name = "confidence")]
    pub confidence: f64,
    #[component(name = "probability")]
    pub probability: f64,
    #[component(name = "direction")]
    pub direction: f64,
    #[component(name = "expected-move")]
    pub expected_move: f64,
    #[component(name = "stop-points")]
    pub stop_points: f64,
    #[component(name = "target-points")]
    pub target_points: f64,
    #[component(name = "reason")]
    pub reason: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct WAgentSignal {
    #[component(name = "action")]
    pub action: WAction,
    #[component(name = "confidence")]
    pub confidence: f64,
    #[component(name = "reason")]
    pub reason: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq)]
#[component(record)]
pub struct WFeedback {
    #[component(name = "ts-ms")]
    pub ts_ms: i64,
    #[component(name = "action")]
    pub action: WAction,
    #[component(name = "pnl-points")]
    pub pnl_points: f64,
    #[component(name = "pnl-brl")]
    pub pnl_brl: f64,
}

impl From<&RoundTrip> for WFeedback {
    fn from(t: &RoundTrip) -> Self {
        let action = match t.side {
            Side::Buy => WAction::Buy,
            Side::Sell => WAction::Sell,
        };
        WFeedback { ts_ms: t.exit_ts_ms, action, pnl_points: t.pnl_points, pnl_brl: t.pnl_brl }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WCadence {
    #[component(name = "per-trade")]
    PerTrade,
    #[component(name = "per-candle")]
    PerCandle,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct WDescription {
    #[component(name = "name")]
    pub name: String,
    #[component(name = "version")]
    pub version: String,
    #[component(name = "inputs")]
    pub inputs: Vec<String>,
    #[component(name = "outputs")]
    pub outputs: Vec<String>,
    #[component(name = "cadence")]
    pub cadence: WCadence,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WLogLevel {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}
