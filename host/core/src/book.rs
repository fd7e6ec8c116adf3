//! Book features: the top of a live order book, handed from whoever keeps
//! the book (the ProfitDLL stream) to the engine's candle close.
//!
//! The book changes many times per trade and the engine only needs its
//! state at each candle close, so the keeper publishes a conflated summary
//! into a [`BookBoard`] (one seqlock cell per symbol: the writer never
//! waits, a reader retries a torn read) and [`BookFeatures`] reads it. A
//! symbol with no book yet gives neutral values, counted as fallbacks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::hooks::FeatureExtensions;
use crate::market::{Candle, Symbol};

/// Levels summed into the depth features.
pub const BOOK_DEPTH_LEVELS: usize = 5;

/// Output names of [`BookFeatures`], in order.
pub const BOOK_OUTPUTS: [&str; 4] = ["book_spread", "book_imbalance_5", "book_bid_depth_5", "book_ask_depth_5"];

/// A torn read is retried this many times before the candle falls back;
/// the writer holds a cell for a few stores, so one retry nearly always does.
const READ_ATTEMPTS: u32 = 64;

/// The state of one book that the features need.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopOfBook {
    pub best_bid: f64,
    pub best_ask: f64,
    /// Contracts on the best [`BOOK_DEPTH_LEVELS`] levels of each side.
    pub bid_depth: f64,
    pub ask_depth: f64,
}

impl TopOfBook {
    /// (bid - ask) / (bid + ask) depth, in [-1, 1]; 0 for an empty book.
    pub fn imbalance(&self) -> f64 {
        let total = self.bid_depth + self.ask_depth;
        if total > 0.0 { (self.bid_depth - self.ask_depth) / total } else { 0.0 }
    }

    /// Ask minus bid, in points; 0 while either side is empty.
    pub fn spread(&self) -> f64 {
        if self.best_bid > 0.0 && self.best_ask > 0.0 { self.best_ask - self.best_bid } else { 0.0 }
    }
}

#[derive(Debug, Default)]
struct Cell {
    /// Even: stable; odd: being written; 0: never written.
    seq: AtomicU64,
    values: [AtomicU64; 4],
}

/// The latest [`TopOfBook`] of each of a fixed set of symbols. One writer
/// per symbol; any number of readers.
#[derive(Debug)]
pub struct BookBoard {
    symbols: Vec<Symbol>,
    cells: Vec<Cell>,
}

impl BookBoard {
    pub fn new(symbols: impl IntoIterator<Item = Symbol>) -> Arc<Self> {
        let symbols: Vec<Symbol> = symbols.into_iter().collect();
        let cells = symbols.iter().map(|_| Cell::default()).collect();
        Arc::new(Self { symbols, cells })
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    fn cell(&self, symbol: Symbol) -> Option<&Cell> {
        self.symbols.iter().position(|s| *s == symbol).map(|i| &self.cells[i])
    }

    /// Replaces `symbol`'s summary; false for a symbol the board does not hold.
    pub fn publish(&self, symbol: Symbol, top: &TopOfBook) -> bool {
        let Some(cell) = self.cell(symbol) else { return false };
        let seq = cell.seq.load(Ordering::Relaxed);
        // One writer per symbol: `seq` is even here.
        cell.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let values = [top.best_bid, top.best_ask, top.bid_depth, top.ask_depth];
        for (slot, v) in cell.values.iter().zip(values) {
            slot.store(v.to_bits(), Ordering::Relaxed);
        }
        cell.seq.store(seq.wrapping_add(2), Ordering::Release);
        true
    }

    /// `symbol`'s latest summary; None before the first publish (or if the
    /// writer kept the cell busy through every attempt).
    pub fn read(&self, symbol: Symbol) -> Option<TopOfBook> {
        let cell = self.cell(symbol)?;
        for _ in 0..READ_ATTEMPTS {
            let before = cell.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v: [f64; 4] = std::array::from_fn(|i| f64::from_bits(cell.values[i].load(Ordering::Relaxed)));
            fence(Ordering::Acquire);
            if cell.seq.load(Ordering::Relaxed) == before {
                return Some(TopOfBook { best_bid: v[0], best_ask: v[1], bid_depth: v[2], ask_depth: v[3] });
            }
        }
        None
    }
}

/// How often the candle close found a book.
#[derive(Debug, Default)]
pub struct BookFeatureCounters {
    pub served: AtomicU64,
    pub fallbacks: AtomicU64,
}

/// Feature extension: [`BOOK_OUTPUTS`] from the board at each candle close.
#[derive(Debug)]
pub struct BookFeatures {
    board: Arc<BookBoard>,
    counters: Arc<BookFeatureCounters>,
}

impl BookFeatures {
    pub fn new(board: Arc<BookBoard>) -> Self {
        Self { board, counters: Arc::default() }
    }

    pub fn counters(&self) -> Arc<BookFeatureCounters> {
        Arc::clone(&self.counters)
    }
}

impl FeatureExtensions for BookFeatures {
    fn output_names(&self) -> Vec<String> {
        BOOK_OUTPUTS.iter().map(|s| s.to_string()).collect()
    }

    fn on_candle(&mut self, candle: &Candle, _v3: &[f64], out: &mut [f64]) {
        let top = match self.board.read(candle.symbol) {
            Some(top) => {
                self.counters.served.fetch_add(1, Ordering::Relaxed);
                top
            }
            None => {
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                TopOfBook::default()
            }
        };
        let values = [top.spread(), top.imbalance(), top.bid_depth, top.ask_depth];
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).expect("symbol")
    }

    #[test]
    fn a_board_returns_what_was_published_and_nothing_before() {
        let board = BookBoard::new([sym("WDOF24"), sym("WINF24")]);
        assert_eq!(board.read(sym("WDOF24")), None);
        let top = TopOfBook { best_bid: 5000.0, best_ask: 5000.5, bid_depth: 30.0, ask_depth: 10.0 };
        assert!(board.publish(sym("WDOF24"), &top));
        assert_eq!(board.read(sym("WDOF24")), Some(top));
        assert_eq!(board.read(sym("WINF24")), None);
        assert!(!board.publish(sym("PETR4"), &top), "a symbol the board does not hold");
    }

    #[test]
    fn a_reader_never_sees_a_half_written_summary() {
        let board = BookBoard::new([sym("WDOF24")]);
        let writer = {
            let board = Arc::clone(&board);
            std::thread::spawn(move || {
                for i in 1..200_000u32 {
                    let x = f64::from(i);
                    board.publish(sym("WDOF24"), &TopOfBook { best_bid: x, best_ask: x, bid_depth: x, ask_depth: x });
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() {
            if let Some(t) = board.read(sym("WDOF24")) {
                assert!(t.best_bid == t.best_ask && t.bid_depth == t.ask_depth && t.best_bid == t.bid_depth, "{t:?}");
                seen += 1;
            }
        }
        writer.join().expect("writer");
        assert!(seen > 0);
    }

    #[test]
    fn features_are_neutral_and_counted_without_a_book() {
        let board = BookBoard::new([sym("WDOF24")]);
        let mut features = BookFeatures::new(Arc::clone(&board));
        let candle = Candle::flat(sym("WDOF24"), 0, 0, 5000.0);
        let mut out = [f64::NAN; 4];
        features.on_candle(&candle, &[], &mut out);
        assert_eq!(out, [0.0; 4]);
        board.publish(
            sym("WDOF24"),
            &TopOfBook { best_bid: 5000.0, best_ask: 5001.0, bid_depth: 30.0, ask_depth: 10.0 },
        );
        features.on_candle(&candle, &[], &mut out);
        assert_eq!(out, [1.0, 0.5, 30.0, 10.0]);
        let c = features.counters();
        assert_eq!((c.served.load(Ordering::Relaxed), c.fallbacks.load(Ordering::Relaxed)), (1, 1));
    }
}
