//! Time bars from trades, by event time.

use crate::market::{Candle, Side, Trade};
use crate::time::SessionClock;

/// Folds trades into one bar. The builder and the test reference share it so
/// that "what a candle is" is written once.
#[derive(Debug, Clone, Copy)]
struct BarAccumulator {
    candle: Candle,
    run_side: Option<Side>,
    run_len: u32,
}

impl BarAccumulator {
    fn start(open_ms: i64, first: &Trade) -> Self {
        let p = first.price.as_f64();
        let candle = Candle::flat(first.symbol, open_ms, first.ts_ms, p);
        let mut acc = Self { candle, run_side: None, run_len: 0 };
        acc.add(first);
        acc
    }

    fn add(&mut self, t: &Trade) {
        let c = &mut self.candle;
        let p = t.price.as_f64();
        let q = t.quantity as f64;
        if c.trades > 0 {
            c.high = c.high.max(p);
            c.low = c.low.min(p);
        }
        c.close = p;
        c.close_ms = c.close_ms.max(t.ts_ms);
        c.volume += q;
        c.financial_volume += t.volume;
        c.trades += 1;
        if let Some(side) = t.aggressor() {
            if self.run_side == Some(side) {
                self.run_len += 1;
            } else {
                self.run_side = Some(side);
                self.run_len = 1;
            }
            match side {
                Side::Buy => {
                    c.buy_volume += q;
                    c.buy_trades += 1;
                    c.max_buy_run = c.max_buy_run.max(self.run_len);
                }
                Side::Sell => {
                    c.sell_volume += q;
                    c.sell_trades += 1;
                    c.max_sell_run = c.max_sell_run.max(self.run_len);
                }
            }
        }
    }
}

/// Builds the bar for a whole slice of trades at once (the obvious, slow way).
/// Used to recompute the open bar after an edit and as the tests' reference.
pub fn candle_from_trades(open_ms: i64, trades: &[Trade]) -> Option<Candle> {
    let (first, rest) = trades.split_first()?;
    let mut acc = BarAccumulator::start(open_ms, first);
    rest.iter().for_each(|t| acc.add(t));
    Some(acc.candle)
}

/// Where an edited trade was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// The trade was in the open bar, which now reflects the correction.
    AppliedToOpenBar,
    /// The trade belongs to a bar already closed (and already acted on);
    /// bars are immutable once closed, so only the trade record changes.
    BarAlreadyClosed,
}

/// Builds fixed-length bars aligned to local midnight. A bar closes when the
/// first trade of a later bar arrives (event time) or on [`CandleBuilder::close_if_due`].
#[derive(Debug)]
pub struct CandleBuilder {
    bar_ms: i64,
    clock: SessionClock,
    open: Option<BarAccumulator>,
    /// Trades of the open bar, kept so an edit can be applied exactly. The
    /// buffer is reused from bar to bar, so steady state does not allocate.
    open_trades: Vec<Trade>,
}

impl CandleBuilder {
    pub fn new(bar_ms: i64, clock: SessionClock) -> Self {
        assert!(bar_ms > 0, "bar length must be positive");
        Self { bar_ms, clock, open: None, open_trades: Vec::with_capacity(8192) }
    }

    pub fn bar_ms(&self) -> i64 {
        self.bar_ms
    }

    /// Adds a trade; returns the bar it closed, if it opened a new one.
    pub fn on_trade(&mut self, trade: &Trade) -> Option<Candle> {
        let bar_start = self.clock.bar_start(trade.ts_ms, self.bar_ms);
        match &mut self.open {
            Some(acc) if acc.candle.open_ms == bar_start => {
                acc.add(trade);
                self.open_trades.push(*trade);
                None
            }
            _ => {
                let closed = self.open.take().map(|acc| acc.candle);
                self.open = Some(BarAccumulator::start(bar_start, trade));
                self.open_trades.clear();
                self.open_trades.push(*trade);
                closed
            }
        }
    }

    /// Replaces an earlier trade with its correction.
    pub fn apply_edit(&mut self, corrected: &Trade) -> EditOutcome {
        let Some(slot) = self.open_trades.iter_mut().find(|t| t.trade_number == corrected.trade_number) else {
            return EditOutcome::BarAlreadyClosed;
        };
        *slot = Trade { ts_ms: slot.ts_ms, ..*corrected };
        if let Some(acc) = &mut self.open {
            let open_ms = acc.candle.open_ms;
            let (first, rest) = self.open_trades.split_first().expect("open bar has trades");
            let mut rebuilt = BarAccumulator::start(open_ms, first);
            rest.iter().for_each(|t| rebuilt.add(t));
            *acc = rebuilt;
        }
        EditOutcome::AppliedToOpenBar
    }

    /// Closes the open bar if event time `now_ms` is past its end (a quiet
    /// market must not hold a bar open forever).
    pub fn close_if_due(&mut self, now_ms: i64) -> Option<Candle> {
        let due = self.open.as_ref().is_some_and(|acc| now_ms >= acc.candle.open_ms + self.bar_ms);
        if due { self.flush() } else { None }
    }

    /// Closes whatever is open (end of a replay).
    pub fn flush(&mut self) -> Option<Candle> {
        self.open_trades.clear();
        self.open.take().map(|acc| acc.candle)
    }

    /// The bar being built, if any.
    pub fn open_bar(&self) -> Option<&Candle> {
        self.open.as_ref().map(|acc| &acc.candle)
    }
}
