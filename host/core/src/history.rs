//! The recent-history window behind plugins' `history` import: the last N
//! trades and closed candles of an engine's symbol, in preallocated rings.
//!
//! The engine thread appends to it as events happen ([`HistoryTap`], which
//! sits first among the feature extensions so every plugin called for an
//! event already sees that event), and plugin calls read it on the same
//! thread, so the lock is uncontended (a swap's smoke replay on the compiler
//! thread is the only other reader). Nothing here allocates once built.
//!
//! History from before the run comes from the store: a seeder thread (in
//! `tickhost-store`) waits for [`HistoryWindow::first_trade`], reads the
//! entries strictly older than it, and hands them over with
//! [`HistoryWindow::offer_seed`]. The engine thread merges them at its next
//! event, in front of what it appended meanwhile: it never waits for the
//! store, and the seed never holds anything from the run itself (or from
//! its future, when the store holds a later run of the same day).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::hooks::FeatureExtensions;
use crate::market::{Candle, Symbol, Trade};

/// Upper bound of a window's size (and so of what one `history` call
/// returns): a plugin asking for more gets at most this many.
pub const MAX_WINDOW: usize = 65_536;

const SEED_NONE: u8 = 0;
const SEED_READY: u8 = 1;
const SEED_DONE: u8 = 2;

#[derive(Debug, Default)]
struct Rings {
    trades: VecDeque<Trade>,
    candles: VecDeque<Candle>,
}

/// What the seeder read from the store, oldest first.
#[derive(Debug, Default)]
pub struct Seed {
    pub trades: Vec<Trade>,
    pub candles: Vec<Candle>,
}

/// Counters of a window, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryCounters {
    /// Trades and candles taken from the store before the run's first event.
    pub seeded_trades: u64,
    pub seeded_candles: u64,
    /// `history` calls answered, and the items they returned.
    pub calls: u64,
    pub items_served: u64,
}

pub struct HistoryWindow {
    trade_capacity: usize,
    candle_capacity: usize,
    rings: Mutex<Rings>,
    /// Symbol and time of the first trade the run saw (or was told about).
    first: Mutex<Option<(Symbol, i64)>>,
    announced: AtomicBool,
    seed: Mutex<Seed>,
    seed_state: AtomicU8,
    seeded_trades: AtomicU64,
    seeded_candles: AtomicU64,
    calls: AtomicU64,
    served: AtomicU64,
}

impl fmt::Debug for HistoryWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryWindow")
            .field("trade_capacity", &self.trade_capacity)
            .field("candle_capacity", &self.candle_capacity)
            .field("counters", &self.counters())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pushes at the back of a full-capacity ring without growing it.
fn push_bounded<T>(ring: &mut VecDeque<T>, capacity: usize, item: T) {
    if capacity == 0 {
        return;
    }
    if ring.len() == capacity {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// Puts `older` (oldest first) in front of `ring` while it has room.
fn prepend_bounded<T: Copy>(ring: &mut VecDeque<T>, capacity: usize, older: &[T]) -> u64 {
    let mut n = 0;
    for item in older.iter().rev() {
        if ring.len() >= capacity {
            break;
        }
        ring.push_front(*item);
        n += 1;
    }
    n
}

impl HistoryWindow {
    /// A window of the last `trades` trades and `candles` candles (each at
    /// most [`MAX_WINDOW`]), allocated now.
    pub fn new(trades: usize, candles: usize) -> Self {
        let (trades, candles) = (trades.min(MAX_WINDOW), candles.min(MAX_WINDOW));
        Self {
            trade_capacity: trades,
            candle_capacity: candles,
            rings: Mutex::new(Rings {
                trades: VecDeque::with_capacity(trades),
                candles: VecDeque::with_capacity(candles),
            }),
            first: Mutex::new(None),
            announced: AtomicBool::new(false),
            seed: Mutex::new(Seed { trades: Vec::with_capacity(trades), candles: Vec::with_capacity(candles) }),
            seed_state: AtomicU8::new(SEED_NONE),
            seeded_trades: AtomicU64::new(0),
            seeded_candles: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    pub fn trade_capacity(&self) -> usize {
        self.trade_capacity
    }

    pub fn candle_capacity(&self) -> usize {
        self.candle_capacity
    }

    /// Records the run's first trade (once; later calls change nothing). A
    /// replay announces its file's first trade before the engine starts.
    pub fn announce(&self, symbol: Symbol, ts_ms: i64) {
        if self.announced.load(Ordering::Acquire) {
            return;
        }
        let mut first = lock(&self.first);
        if first.is_none() {
            *first = Some((symbol, ts_ms));
        }
        self.announced.store(true, Ordering::Release);
    }

    /// The run's first trade, once known: history older than it is what a
    /// seeder may add.
    pub fn first_trade(&self) -> Option<(Symbol, i64)> {
        if !self.announced.load(Ordering::Acquire) {
            return None;
        }
        *lock(&self.first)
    }

    /// Hands over history from before the run (oldest first); `None` when
    /// there is none to give (no store, store down): the seeder is done
    /// either way. The engine thread merges it at its next event.
    pub fn offer_seed(&self, seed: Option<Seed>) {
        if let Some(seed) = seed {
            let mut slot = lock(&self.seed);
            slot.trades.clear();
            slot.candles.clear();
            slot.trades.extend(seed.trades);
            slot.candles.extend(seed.candles);
            self.seed_state.store(SEED_READY, Ordering::Release);
        } else {
            self.seed_state.store(SEED_DONE, Ordering::Release);
        }
    }

    /// The seeder finished (history merged or handed over, or none to give).
    pub fn seed_settled(&self) -> bool {
        self.seed_state.load(Ordering::Acquire) != SEED_NONE
    }

    /// Merges a seed that arrived, on the engine thread. `try_lock`: should
    /// the seeder still hold the slot, the next event tries again.
    fn merge_seed(&self, rings: &mut Rings) {
        if self.seed_state.load(Ordering::Acquire) != SEED_READY {
            return;
        }
        let Ok(mut seed) = self.seed.try_lock() else { return };
        // Only what is strictly older than everything already in the rings.
        let oldest_trade = rings.trades.front().map_or(i64::MAX, |t| t.ts_ms);
        let keep = seed.trades.iter().rposition(|t| t.ts_ms < oldest_trade).map_or(0, |i| i + 1);
        let n = prepend_bounded(&mut rings.trades, self.trade_capacity, &seed.trades[..keep]);
        self.seeded_trades.fetch_add(n, Ordering::Relaxed);
        let oldest_candle = rings.candles.front().map_or(i64::MAX, |c| c.open_ms);
        let keep = seed.candles.iter().rposition(|c| c.close_ms < oldest_candle).map_or(0, |i| i + 1);
        let n = prepend_bounded(&mut rings.candles, self.candle_capacity, &seed.candles[..keep]);
        self.seeded_candles.fetch_add(n, Ordering::Relaxed);
        // Cleared, not dropped: the engine thread frees nothing.
        seed.trades.clear();
        seed.candles.clear();
        self.seed_state.store(SEED_DONE, Ordering::Release);
    }

    /// Appends a trade the engine admitted (engine thread).
    pub fn push_trade(&self, trade: &Trade) {
        self.announce(trade.symbol, trade.ts_ms);
        let mut rings = lock(&self.rings);
        self.merge_seed(&mut rings);
        push_bounded(&mut rings.trades, self.trade_capacity, *trade);
    }

    /// Appends a closed candle (engine thread).
    pub fn push_candle(&self, candle: &Candle) {
        let mut rings = lock(&self.rings);
        self.merge_seed(&mut rings);
        push_bounded(&mut rings.candles, self.candle_capacity, *candle);
    }

    /// Calls `each` on the last `limit` trades, oldest first; returns how many.
    pub fn recent_trades(&self, limit: usize, mut each: impl FnMut(&Trade)) -> usize {
        let rings = lock(&self.rings);
        let n = limit.min(rings.trades.len());
        rings.trades.range(rings.trades.len() - n..).for_each(&mut each);
        self.count(n)
    }

    /// Calls `each` on the last `limit` closed candles, oldest first.
    pub fn recent_candles(&self, limit: usize, mut each: impl FnMut(&Candle)) -> usize {
        let rings = lock(&self.rings);
        let n = limit.min(rings.candles.len());
        rings.candles.range(rings.candles.len() - n..).for_each(&mut each);
        self.count(n)
    }

    fn count(&self, n: usize) -> usize {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    pub fn counters(&self) -> HistoryCounters {
        HistoryCounters {
            seeded_trades: self.seeded_trades.load(Ordering::Relaxed),
            seeded_candles: self.seeded_candles.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            items_served: self.served.load(Ordering::Relaxed),
        }
    }
}

/// Feeds a [`HistoryWindow`] from the engine's feature-extension calls
/// (every admitted trade, every closed candle) before passing them on to
/// the extensions it wraps.
#[derive(Debug)]
pub struct HistoryTap {
    window: std::sync::Arc<HistoryWindow>,
    inner: Box<dyn FeatureExtensions>,
}

impl HistoryTap {
    pub fn new(window: std::sync::Arc<HistoryWindow>, inner: Box<dyn FeatureExtensions>) -> Self {
        Self { window, inner }
    }
}

impl FeatureExtensions for HistoryTap {
    fn output_names(&self) -> Vec<String> {
        self.inner.output_names()
    }

    fn on_trade(&mut self, trade: &Trade, frame: &[f64]) {
        self.window.push_trade(trade);
        self.inner.on_trade(trade, frame);
    }

    fn on_candle(&mut self, candle: &Candle, v3: &[f64], out: &mut [f64]) {
        self.window.push_candle(candle);
        self.inner.on_candle(candle, v3, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{AgentId, Price, TradeType};

    fn trade(ts_ms: i64, n: u64) -> Trade {
        Trade {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms,
            trade_number: n,
            price: Price::from_f64(5000.0).expect("price"),
            quantity: 1,
            volume: 50_000.0,
            buy_agent: AgentId(1),
            sell_agent: AgentId(2),
            trade_type: TradeType::AggressorBuy,
            is_edit: false,
        }
    }

    fn numbers(w: &HistoryWindow, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        w.recent_trades(limit, |t| out.push(t.trade_number));
        out
    }

    #[test]
    fn rings_keep_the_last_n_oldest_first_and_cap_the_limit() {
        let w = HistoryWindow::new(3, 2);
        for n in 1..=5 {
            w.push_trade(&trade(1000 + n as i64, n));
        }
        assert_eq!(numbers(&w, 10), [3, 4, 5]);
        assert_eq!(numbers(&w, 2), [4, 5]);
        assert_eq!(numbers(&w, 0), Vec::<u64>::new());
        assert_eq!(w.counters().calls, 3);
        assert_eq!(HistoryWindow::new(usize::MAX, 1).trade_capacity(), MAX_WINDOW);
    }

    #[test]
    fn a_seed_goes_in_front_of_live_events_and_never_overlaps_them() {
        let w = HistoryWindow::new(5, 4);
        assert_eq!(w.first_trade(), None);
        w.push_trade(&trade(2000, 20));
        let (sym, ts) = w.first_trade().expect("announced");
        assert_eq!((sym.as_str(), ts), ("WDOFUT", 2000));
        // The seed arrives late and (wrongly) holds a trade of the run itself.
        w.offer_seed(Some(Seed { trades: vec![trade(100, 1), trade(200, 2), trade(2000, 20)], candles: vec![] }));
        assert!(w.seed_settled());
        w.push_trade(&trade(2001, 21));
        assert_eq!(numbers(&w, 10), [1, 2, 20, 21]);
        assert_eq!(w.counters().seeded_trades, 2);
        // Only once.
        w.push_trade(&trade(2002, 22));
        w.push_trade(&trade(2003, 23));
        assert_eq!(numbers(&w, 10), [2, 20, 21, 22, 23]);
    }

    #[test]
    fn no_seed_settles_too() {
        let w = HistoryWindow::new(2, 2);
        assert!(!w.seed_settled());
        w.offer_seed(None);
        assert!(w.seed_settled());
        w.push_trade(&trade(1, 1));
        assert_eq!(numbers(&w, 5), [1]);
    }
}
