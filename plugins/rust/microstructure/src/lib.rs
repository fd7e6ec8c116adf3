//! `microstructure`: a `feature-extension` component, called per trade, that
//! adds `ms_trade_rate`, `ms_avg_trade_size`, `ms_large_trade_share`,
//! `ms_vwap_distance` and `ms_price_impact` to the feature frame.
//!
//! The computation is the engine's native extension
//! (`tickhost_core::extensions::Microstructure`, also its fallback); this
//! crate only converts between the contract's types and the core's. Its
//! snapshot is the native one (`Microstructure::snapshot`).

use std::cell::RefCell;

use tickhost_core::extensions::{MICROSTRUCTURE_OUTPUTS, Microstructure};
use tickhost_core::market::{AgentId, Price, Symbol, TradeType};

wit_bindgen::generate!({
    world: "feature-extension",
    path: "../../../wit",
});

use exports::tickhost::plugin::features;
use exports::tickhost::plugin::lifecycle;
use tickhost::plugin::types::{Cadence, Candle, Description, Trade};

thread_local! {
    static STATE: RefCell<Microstructure> = RefCell::new(Microstructure::default());
}

/// The contract's trade as the core's; `None` for a price the core cannot
/// represent (NaN, infinite, out of range), which is then ignored.
fn core_trade(t: &Trade) -> Option<tickhost_core::Trade> {
    Some(tickhost_core::Trade {
        symbol: Symbol::new("PLUGIN").expect("valid symbol"),
        ts_ms: t.ts_ms,
        trade_number: t.trade_number,
        price: Price::from_f64(t.price)?,
        quantity: t.quantity,
        volume: t.volume,
        buy_agent: AgentId(0),
        sell_agent: AgentId(0),
        trade_type: TradeType::from_code(i32::from(t.trade_type)).unwrap_or(TradeType::Unknown),
        is_edit: t.is_edit,
    })
}

struct Component;

impl lifecycle::Guest for Component {
    fn describe() -> Description {
        Description {
            name: "microstructure".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: Vec::new(),
            outputs: MICROSTRUCTURE_OUTPUTS.iter().map(|s| s.to_string()).collect(),
            cadence: Cadence::PerTrade,
        }
    }

    fn snapshot() -> Vec<u8> {
        STATE.with_borrow(Microstructure::snapshot)
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        STATE.with_borrow_mut(|ms| ms.restore(&state))
    }
}

impl features::Guest for Component {
    fn on_trade(trade: Trade, _inputs: Vec<f64>) -> Vec<f64> {
        STATE.with_borrow_mut(|ms| {
            if let Some(t) = core_trade(&trade) {
                ms.update(&t);
            }
            ms.outputs().to_vec()
        })
    }

    /// The outputs depend on the trades only: at a candle close they are the
    /// values after the last trade.
    fn on_candle(_candle: Candle, _inputs: Vec<f64>) -> Vec<f64> {
        STATE.with_borrow(|ms| ms.outputs().to_vec())
    }
}

export!(Component);

#[cfg(test)]
mod tests {
    use super::*;
    use features::Guest as _;
    use lifecycle::Guest as _;
    use tickhost::plugin::types::Side;

    fn trades(n: usize) -> Vec<Trade> {
        let mut s = 5u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut ts = 1_741_608_000_000i64;
        (0..n)
            .map(|i| {
                ts += (next() % 700) as i64;
                let buy = next() % 2 == 0;
                Trade {
                    ts_ms: ts,
                    trade_number: i as u64,
                    price: 5000.0 + (next() % 21) as f64 * 0.5,
                    quantity: (next() % 15) as i64,
                    volume: 0.0,
                    trade_type: if buy { 2 } else { 3 },
                    aggressor: Some(if buy { Side::Buy } else { Side::Sell }),
                    is_edit: false,
                }
            })
            .collect()
    }

    #[test]
    fn outputs_are_the_native_extensions() {
        Component::restore(Vec::new()).unwrap();
        let mut native = Microstructure::default();
        for t in trades(500) {
            let got = Component::on_trade(t, Vec::new());
            native.update(&core_trade(&t).unwrap());
            assert_eq!(got, native.outputs().to_vec());
            assert_eq!(got.len(), Component::describe().outputs.len());
        }
    }

    #[test]
    fn snapshot_round_trip_and_garbage() {
        Component::restore(Vec::new()).unwrap();
        let data = trades(300);
        for t in &data[..150] {
            Component::on_trade(*t, Vec::new());
        }
        let snap = Component::snapshot();
        let a: Vec<Vec<f64>> = data[150..].iter().map(|t| Component::on_trade(*t, Vec::new())).collect();
        Component::restore(snap.clone()).unwrap();
        let b: Vec<Vec<f64>> = data[150..].iter().map(|t| Component::on_trade(*t, Vec::new())).collect();
        assert_eq!(a, b);
        let before = Component::snapshot();
        assert!(Component::restore(b"garbage".to_vec()).is_err());
        assert_eq!(Component::snapshot(), before);
        let mut nan = data[0];
        nan.price = f64::NAN;
        assert!(Component::on_trade(nan, Vec::new()).iter().all(|v| v.is_finite()));
    }
}
