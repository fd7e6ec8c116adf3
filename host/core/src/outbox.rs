//! The engine's outbox: what the engine produced (accepted trades, candles
//! with their feature frame, decisions, fills, round trips), handed to the
//! I/O threads (ZeroMQ publisher, store writer) through bounded
//! single-producer single-consumer rings.
//!
//! The engine thread never waits here and never allocates: records are
//! `Copy` and fixed-size, a frame's values go into a ring of `f64` sized at
//! construction, and a full lane drops the record and counts it instead of
//! blocking. Each consumer has its own lane, so a slow publisher cannot make
//! the store lose data and the other way round.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::book::TopOfBook;
use crate::broker::{Fill, RoundTrip};
use crate::engine::{Decision, EngineObserver};
use crate::market::{Candle, Symbol, Trade};
use crate::regime::RegimeReading;

/// One thing the engine produced, in the order it produced it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutboxRecord {
    /// A trade the engine accepted (duplicates and late trades are not
    /// here); an exchange correction comes again with `is_edit` set.
    Trade(Trade),
    /// A closed candle; its `frame_len` feature values are what
    /// [`OutboxReader::pop`] put in the caller's buffer.
    Candle {
        candle: Candle,
        regime: RegimeReading,
        frame_len: u16,
    },
    Decision(Decision),
    Fill(Fill),
    RoundTrip(RoundTrip),
    /// A live book's top changed (the engine does not see books: the source
    /// that keeps one reports it through [`Outbox::on_book`]).
    Book {
        symbol: Symbol,
        /// Event time of the last trade before the change (book callbacks carry none).
        ts_ms: i64,
        top: TopOfBook,
    },
}

/// Counters of one lane, shared between the engine side and metrics.
#[derive(Debug, Default)]
pub struct LaneCounters {
    pushed: AtomicU64,
    dropped: AtomicU64,
}

impl LaneCounters {
    /// Records handed to the consumer.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Records dropped because the consumer was behind and the lane full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Lane {
    name: &'static str,
    records: rtrb::Producer<OutboxRecord>,
    frames: rtrb::Producer<f64>,
    counters: Arc<LaneCounters>,
}

impl Lane {
    fn push(&mut self, record: OutboxRecord, frame: &[f64]) {
        if self.records.is_full() || self.frames.slots() < frame.len() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !frame.is_empty()
            && let Ok(chunk) = self.frames.write_chunk_uninit(frame.len())
        {
            chunk.fill_from_iter(frame.iter().copied());
        }
        // Cannot fail: the ring had room and only this thread pushes.
        let _ = self.records.push(record);
        self.counters.pushed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The engine side: an [`EngineObserver`] that copies every output into each
/// lane. Lanes are added before the run starts.
#[derive(Debug, Default)]
pub struct Outbox {
    lanes: Vec<Lane>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a lane holding up to `capacity` records and `capacity * frame_len`
    /// feature values (`frame_len`: the engine's schema length), and returns
    /// its consumer end.
    pub fn add_lane(&mut self, name: &'static str, capacity: usize, frame_len: usize) -> OutboxReader {
        let capacity = capacity.max(16);
        let (records, record_reader) = rtrb::RingBuffer::new(capacity);
        // Candles are a small share of records; a frame ring for a quarter
        // of the lane in candles is plenty and keeps memory bounded.
        let (frames, frame_reader) = rtrb::RingBuffer::new((capacity / 4).max(4) * frame_len.max(1));
        let counters = Arc::new(LaneCounters::default());
        self.lanes.push(Lane { name, records, frames, counters: Arc::clone(&counters) });
        OutboxReader { name, records: record_reader, frames: frame_reader, counters }
    }

    /// A book's new top, from the source that keeps the book.
    pub fn on_book(&mut self, symbol: Symbol, ts_ms: i64, top: &TopOfBook) {
        self.push(OutboxRecord::Book { symbol, ts_ms, top: *top }, &[]);
    }

    /// Per lane: its name and counters.
    pub fn lanes(&self) -> impl Iterator<Item = (&'static str, &Arc<LaneCounters>)> {
        self.lanes.iter().map(|l| (l.name, &l.counters))
    }

    fn push(&mut self, record: OutboxRecord, frame: &[f64]) {
        for lane in &mut self.lanes {
            lane.push(record, frame);
        }
    }
}

impl EngineObserver for Outbox {
    fn on_trade(&mut self, trade: &Trade) {
        self.push(OutboxRecord::Trade(*trade), &[]);
    }
    fn on_candle(&mut self, candle: &Candle, frame: &[f64], regime: &RegimeReading) {
        // Frames are v3 (127) plus a few extension outputs: far below u16::MAX.
        let frame = &frame[..frame.len().min(usize::from(u16::MAX))];
        let frame_len = frame.len() as u16;
        self.push(OutboxRecord::Candle { candle: *candle, regime: *regime, frame_len }, frame);
    }
    fn on_decision(&mut self, decision: &Decision) {
        self.push(OutboxRecord::Decision(*decision), &[]);
    }
    fn on_fill(&mut self, fill: &Fill) {
        self.push(OutboxRecord::Fill(*fill), &[]);
    }
    fn on_round_trip(&mut self, trip: &RoundTrip) {
        self.push(OutboxRecord::RoundTrip(*trip), &[]);
    }
}

/// The consumer end of one lane, for an I/O thread.
#[derive(Debug)]
pub struct OutboxReader {
    name: &'static str,
    records: rtrb::Consumer<OutboxRecord>,
    frames: rtrb::Consumer<f64>,
    counters: Arc<LaneCounters>,
}

impl OutboxReader {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn counters(&self) -> &Arc<LaneCounters> {
        &self.counters
    }

    /// The next record, if any. For a candle, `frame` is replaced by its
    /// feature values (the buffer is reused: no allocation once it is large
    /// enough); other records leave it alone.
    pub fn pop(&mut self, frame: &mut Vec<f64>) -> Option<OutboxRecord> {
        let record = self.records.pop().ok()?;
        if let OutboxRecord::Candle { frame_len, .. } = record {
            frame.clear();
            // The producer wrote the values before the record, so they are here.
            if let Ok(chunk) = self.frames.read_chunk(usize::from(frame_len)) {
                let (a, b) = chunk.as_slices();
                frame.extend_from_slice(a);
                frame.extend_from_slice(b);
                chunk.commit_all();
            }
        }
        Some(record)
    }

    /// The producer (the engine's outbox) is gone and everything it pushed was read.
    pub fn is_finished(&self) -> bool {
        self.records.is_abandoned() && self.records.is_empty()
    }

    /// Records waiting.
    pub fn backlog(&self) -> usize {
        self.records.slots()
    }
}
