//! A candle with every field set, for the crate's own tests, its benches
//! and its integration tests (which cannot see `#[cfg(test)]` items).

use tickhost_core::{Candle, Symbol};

/// A one-minute WDOFUT bar opening at `open_ms`, with distinct OHLC and flow.
pub fn sample_candle(open_ms: i64) -> Candle {
    let mut c = Candle::flat(Symbol::new("WDOFUT").expect("a valid symbol"), open_ms, open_ms + 59_000, 1.0);
    c.high = 2.0;
    c.low = 0.5;
    c.close = 1.5;
    c.volume = 10.0;
    c.financial_volume = 100.0;
    c.trades = 3;
    c.buy_volume = 4.0;
    c.sell_volume = 5.0;
    c.buy_trades = 1;
    c.sell_trades = 1;
    c.max_buy_run = 1;
    c.max_sell_run = 1;
    c
}
