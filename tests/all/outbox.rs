//! The engine's outbox: every output reaches every lane in order, a full
//! lane drops and counts instead of blocking, and pushing allocates nothing.

use tickhost_core::broker::{Fill, RoundTrip};
use tickhost_core::engine::{Decision, Engine, EngineConfig, EngineObserver};
use tickhost_core::outbox::{Outbox, OutboxRecord};
use tickhost_core::regime::RegimeReading;
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_core::{Candle, Trade};

use crate::alloc_count::allocations;

/// Everything the engine told its observer, as the outbox would carry it.
#[derive(Default)]
struct Recorder {
    records: Vec<OutboxRecord>,
    frames: Vec<Vec<f64>>,
}

impl EngineObserver for Recorder {
    fn on_trade(&mut self, trade: &Trade) {
        self.records.push(OutboxRecord::Trade(*trade));
    }
    fn on_candle(&mut self, candle: &Candle, frame: &[f64], regime: &RegimeReading) {
        let frame_len = u16::try_from(frame.len()).expect("frame length");
        self.records.push(OutboxRecord::Candle { candle: *candle, regime: *regime, frame_len });
        self.frames.push(frame.to_vec());
    }
    fn on_decision(&mut self, decision: &Decision) {
        self.records.push(OutboxRecord::Decision(*decision));
    }
    fn on_fill(&mut self, fill: &Fill) {
        self.records.push(OutboxRecord::Fill(*fill));
    }
    fn on_round_trip(&mut self, trip: &RoundTrip) {
        self.records.push(OutboxRecord::RoundTrip(*trip));
    }
}

fn session(day: u32, seed: u64) -> Vec<Trade> {
    SessionGenerator::new(SessionSpec::wdo(2024, 1, day, seed)).collect()
}

#[test]
fn a_lane_large_enough_carries_every_output_in_order_with_its_frame() {
    let trades = session(8, 1);
    let config = EngineConfig::default();
    let mut engine = Engine::new(&config).expect("engine");
    let frame_len = engine.schema().len();
    let mut outbox = Outbox::new();
    let mut lane = outbox.add_lane("store", trades.len() * 2, frame_len);
    let mut small = outbox.add_lane("publisher", 64, frame_len);
    let mut recorder = Recorder::default();
    let mut both = (&mut outbox, &mut recorder);
    for t in &trades {
        engine.on_trade(*t, &mut both);
    }
    engine.finish(&mut both);

    let mut frame = Vec::new();
    let mut frames_seen = 0;
    for (i, expected) in recorder.records.iter().enumerate() {
        let got = lane.pop(&mut frame).unwrap_or_else(|| panic!("record {i} of {} missing", recorder.records.len()));
        assert_eq!(&got, expected, "record {i}");
        if let OutboxRecord::Candle { .. } = got {
            assert_eq!(frame, recorder.frames[frames_seen], "frame of candle {frames_seen}");
            frames_seen += 1;
        }
    }
    assert!(lane.pop(&mut frame).is_none(), "nothing beyond what the engine produced");
    assert_eq!(frames_seen, recorder.frames.len());
    assert!(recorder.records.iter().filter(|r| matches!(r, OutboxRecord::Trade(_))).count() > 10_000);
    assert!(recorder.frames.len() > 300, "a session has ~500 one-minute candles");
    assert_eq!(lane.counters().dropped(), 0);

    // The small lane's consumer never read: it kept the first 64 and counted the rest.
    let total = recorder.records.len() as u64;
    assert_eq!(small.counters().pushed(), 64);
    assert_eq!(small.counters().dropped(), total - 64);
    let first = small.pop(&mut frame).expect("the first record was kept");
    assert_eq!(first, recorder.records[0]);
}

#[test]
fn pushing_into_the_outbox_allocates_nothing_per_event() {
    let warm_up = session(8, 1);
    let measured = session(9, 2);
    let config = EngineConfig::default();
    let mut engine = Engine::new(&config).expect("engine");
    let mut outbox = Outbox::new();
    let frame_len = engine.schema().len();
    let mut lane = outbox.add_lane("store", 1 << 16, frame_len);
    let mut frame = Vec::with_capacity(frame_len);
    for t in &warm_up {
        engine.on_trade(*t, &mut outbox);
        while lane.pop(&mut frame).is_some() {}
    }
    let before = allocations();
    for t in &measured {
        engine.on_trade(*t, &mut outbox);
        while lane.pop(&mut frame).is_some() {}
    }
    let made = allocations() - before;
    assert!(made <= 16, "{made} allocations over {} trades", measured.len());
    assert!(lane.counters().pushed() > measured.len() as u64, "the outbox carried the session");
}
