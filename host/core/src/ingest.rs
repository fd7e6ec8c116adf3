//! Admission of raw trades into the engine: duplicates, exchange corrections
//! (edits) and out-of-order timestamps, with a counter for each.
//!
//! Every source (CSV, DLL, ZeroMQ) goes through one [`Sequencer`], so the rules
//! are the same whatever the data came from. Memory is bounded: the sequencer
//! remembers the last `window` trades, not the whole session.

use serde::Serialize;

use crate::market::{Symbol, Trade};
use crate::time::SessionClock;

/// What the sequencer decided for one trade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// A trade not seen before; process it.
    New(Trade),
    /// A correction of a trade seen before: the engine must replace
    /// `previous` with `corrected`, never count both.
    Edit { previous: Trade, corrected: Trade },
    /// An edit of a trade outside the remembered window (or never seen):
    /// accepted as a new trade so no data is lost, and counted.
    UnmatchedEdit(Trade),
    /// The same trade again (same number, same content): dropped.
    Duplicate,
    /// Older than the tolerated reordering: dropped, and counted.
    TooLate { lag_ms: i64 },
}

/// Counters of what the sequencer saw. Shown at the end of a replay and in metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestCounters {
    pub accepted: u64,
    pub duplicates: u64,
    pub edits: u64,
    pub unmatched_edits: u64,
    /// Timestamps that went backwards by at most the tolerance; the trade was
    /// kept with its time raised to the last seen time so bars stay ordered.
    pub out_of_order_clamped: u64,
    /// Timestamps that went backwards by more than the tolerance: dropped.
    pub out_of_order_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TradeKey {
    symbol: Symbol,
    /// Trade numbers are unique per session per asset: they restart each day.
    session_day: i64,
    trade_number: u64,
}

#[derive(Debug)]
pub struct Sequencer {
    clock: SessionClock,
    reorder_tolerance_ms: i64,
    /// Admitted trades by `trade_number % len`; a newer number evicts an older one.
    recent: Vec<Option<(TradeKey, Trade)>>,
    last_ts_ms: i64,
    counters: IngestCounters,
}

impl Sequencer {
    /// `window`: how many recent trades to remember for duplicate and edit
    /// detection. `reorder_tolerance_ms`: how far back a timestamp may go
    /// before the trade is dropped as too late.
    pub fn new(window: usize, reorder_tolerance_ms: i64, clock: SessionClock) -> Self {
        Self {
            clock,
            reorder_tolerance_ms: reorder_tolerance_ms.max(0),
            recent: vec![None; window.max(1)],
            last_ts_ms: i64::MIN,
            counters: IngestCounters::default(),
        }
    }

    pub fn counters(&self) -> IngestCounters {
        self.counters
    }

    pub fn admit(&mut self, mut trade: Trade) -> Admission {
        let key = self.key(&trade);
        let slot = self.slot(&key);
        if let Some((seen, previous)) = self.recent[slot]
            && seen == key
        {
            if !trade.is_edit && same_content(&previous, &trade) {
                self.counters.duplicates += 1;
                return Admission::Duplicate;
            }
            // A corrected trade keeps the time of the trade it corrects.
            let corrected = Trade { ts_ms: previous.ts_ms, is_edit: true, ..trade };
            self.recent[slot] = Some((key, corrected));
            self.counters.edits += 1;
            return Admission::Edit { previous, corrected };
        }
        if trade.ts_ms < self.last_ts_ms {
            let lag_ms = self.last_ts_ms - trade.ts_ms;
            if lag_ms > self.reorder_tolerance_ms {
                self.counters.out_of_order_dropped += 1;
                return Admission::TooLate { lag_ms };
            }
            self.counters.out_of_order_clamped += 1;
            trade.ts_ms = self.last_ts_ms;
        }
        self.last_ts_ms = trade.ts_ms;
        self.recent[slot] = Some((key, trade));
        self.counters.accepted += 1;
        if trade.is_edit {
            self.counters.unmatched_edits += 1;
            Admission::UnmatchedEdit(trade)
        } else {
            Admission::New(trade)
        }
    }

    fn key(&self, trade: &Trade) -> TradeKey {
        TradeKey { symbol: trade.symbol, session_day: self.clock.day(trade.ts_ms), trade_number: trade.trade_number }
    }

    fn slot(&self, key: &TradeKey) -> usize {
        (key.trade_number % self.recent.len() as u64) as usize
    }
}

fn same_content(a: &Trade, b: &Trade) -> bool {
    a.ts_ms == b.ts_ms
        && a.price == b.price
        && a.quantity == b.quantity
        && a.buy_agent == b.buy_agent
        && a.sell_agent == b.sell_agent
        && a.trade_type == b.trade_type
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{AgentId, Price, TradeType};

    fn trade(n: u64, ts: i64, price: f64) -> Trade {
        Trade {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms: ts,
            trade_number: n,
            price: Price::from_f64(price).expect("price"),
            quantity: 1,
            volume: price * 10.0,
            buy_agent: AgentId(1),
            sell_agent: AgentId(2),
            trade_type: TradeType::AggressorBuy,
            is_edit: false,
        }
    }

    #[test]
    fn duplicate_is_dropped_and_counted() {
        let mut s = Sequencer::new(16, 1000, SessionClock::default());
        assert!(matches!(s.admit(trade(1, 0, 5000.0)), Admission::New(_)));
        assert_eq!(s.admit(trade(1, 0, 5000.0)), Admission::Duplicate);
        assert_eq!(s.counters().duplicates, 1);
        assert_eq!(s.counters().accepted, 1);
    }

    #[test]
    fn edit_replaces_and_keeps_original_time() {
        let mut s = Sequencer::new(16, 1000, SessionClock::default());
        s.admit(trade(1, 100, 5000.0));
        s.admit(trade(2, 200, 5000.5));
        let mut fix = trade(1, 250, 5001.0);
        fix.is_edit = true;
        match s.admit(fix) {
            Admission::Edit { previous, corrected } => {
                assert_eq!(previous.price.as_f64(), 5000.0);
                assert_eq!(corrected.price.as_f64(), 5001.0);
                assert_eq!(corrected.ts_ms, 100);
            }
            other => panic!("expected an edit, got {other:?}"),
        }
        assert_eq!(s.counters().edits, 1);
        assert_eq!(s.counters().accepted, 2);
    }

    #[test]
    fn out_of_order_within_tolerance_is_clamped_beyond_is_dropped() {
        let mut s = Sequencer::new(16, 1000, SessionClock::default());
        s.admit(trade(1, 10_000, 5000.0));
        match s.admit(trade(2, 9_500, 5000.0)) {
            Admission::New(t) => assert_eq!(t.ts_ms, 10_000),
            other => panic!("expected clamped trade, got {other:?}"),
        }
        assert_eq!(s.admit(trade(3, 5_000, 5000.0)), Admission::TooLate { lag_ms: 5_000 });
        let c = s.counters();
        assert_eq!((c.out_of_order_clamped, c.out_of_order_dropped), (1, 1));
    }

    #[test]
    fn trade_numbers_restart_each_session() {
        let mut s = Sequencer::new(16, 1000, SessionClock::default());
        assert!(matches!(s.admit(trade(1, 0, 5000.0)), Admission::New(_)));
        let next_day = trade(1, crate::time::MS_PER_DAY, 5000.0);
        assert!(matches!(s.admit(next_day), Admission::New(_)), "day 2's trade 1 is not day 1's");
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut s = Sequencer::new(4, 0, SessionClock::default());
        for n in 0..100 {
            s.admit(trade(n, n as i64, 5000.0));
        }
        assert_eq!(s.recent.iter().flatten().count(), 4);
        // Trade 0 fell out of the window: an edit of it is accepted as new, and counted.
        let mut late_fix = trade(0, 100, 5001.0);
        late_fix.is_edit = true;
        assert!(matches!(s.admit(late_fix), Admission::UnmatchedEdit(_)));
        assert_eq!(s.counters().unmatched_edits, 1);
    }
}
