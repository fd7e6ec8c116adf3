use tickhost_core::broker::{Fill, FillKind};
use tickhost_core::engine::{Engine, EngineConfig, EngineObserver, NoObserver};
use tickhost_core::regime::RegimeReading;
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_core::time::LocalTime;
use tickhost_core::{AgentId, Candle, Price, Side, Symbol, Trade, TradeType};

use crate::alloc_count::allocations;

fn session(day: u32, seed: u64) -> Vec<Trade> {
    SessionGenerator::new(SessionSpec::wdo(2024, 1, day, seed)).collect()
}

fn at(hour: u32, minute: u32, second: u32) -> i64 {
    LocalTime { year: 2024, month: 1, day: 8, hour, minute, second, millisecond: 0 }.to_epoch_ms(-180).expect("time")
}

fn trade(n: u64, ts_ms: i64, price: f64, quantity: i64, trade_type: TradeType) -> Trade {
    Trade {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        ts_ms,
        trade_number: n,
        price: Price::from_f64(price).expect("price"),
        quantity,
        volume: price * quantity as f64 * 10.0,
        buy_agent: AgentId(0),
        sell_agent: AgentId(1),
        trade_type,
        is_edit: false,
    }
}

#[derive(Default)]
struct Recorder {
    candles: Vec<Candle>,
    fills: Vec<Fill>,
}

impl EngineObserver for Recorder {
    fn on_candle(&mut self, candle: &Candle, _v3: &[f64], _regime: &RegimeReading) {
        self.candles.push(*candle);
    }
    fn on_fill(&mut self, fill: &Fill) {
        self.fills.push(*fill);
    }
}

fn run(trades: &[Trade]) -> (Recorder, tickhost_core::report::BacktestReport) {
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut rec = Recorder::default();
    for t in trades {
        engine.on_trade(*t, &mut rec);
    }
    let report = engine.finish(&mut rec);
    (rec, report)
}

#[test]
fn an_edit_in_the_open_bar_replaces_the_trade_never_duplicates_it() {
    let t1 = trade(1, at(10, 0, 1), 5000.0, 5, TradeType::AggressorBuy);
    let t2 = trade(2, at(10, 0, 2), 5000.5, 1, TradeType::AggressorSell);
    let fix = Trade { quantity: 2, price: Price::from_f64(5001.0).expect("price"), is_edit: true, ..t1 };
    let next_bar = trade(3, at(10, 1, 0), 5001.0, 1, TradeType::AggressorBuy);
    let (rec, report) = run(&[t1, t2, fix, next_bar]);
    let bar = rec.candles[0];
    assert_eq!(bar.trades, 2);
    assert_eq!(bar.volume, 3.0);
    assert_eq!((bar.buy_volume, bar.sell_volume), (2.0, 1.0));
    assert_eq!((bar.open, bar.high), (5001.0, 5001.0));
    assert_eq!(report.ingest.edits, 1);
    assert_eq!(report.edits_after_close, 0);
}

#[test]
fn an_edit_after_its_bar_closed_is_counted_and_the_bar_left_alone() {
    let t1 = trade(1, at(10, 0, 1), 5000.0, 5, TradeType::AggressorBuy);
    let t2 = trade(2, at(10, 1, 1), 5000.5, 1, TradeType::AggressorSell);
    let fix = Trade { quantity: 2, is_edit: true, ..t1 };
    let (rec, report) = run(&[t1, t2, fix]);
    assert_eq!(rec.candles[0].volume, 5.0);
    assert_eq!(report.edits_after_close, 1);
}

#[test]
fn duplicates_and_foreign_symbols_are_dropped_and_counted() {
    let t1 = trade(1, at(10, 0, 1), 5000.0, 5, TradeType::AggressorBuy);
    let other = Trade { symbol: Symbol::new("WINFUT").expect("symbol"), ..t1 };
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut rec = Recorder::default();
    for t in [t1, t1, other] {
        engine.on_trade(t, &mut rec);
    }
    assert_eq!(engine.foreign_symbol_trades(), 1);
    let report = engine.finish(&mut rec);
    assert_eq!(report.ingest.duplicates, 1);
    assert_eq!(rec.candles[0].trades, 1);
}

#[test]
fn only_aggressor_types_count_as_buys_or_sells() {
    let trades = [
        trade(1, at(10, 0, 1), 5000.0, 10, TradeType::Auction),
        trade(2, at(10, 0, 2), 5000.0, 10, TradeType::Cross),
        trade(3, at(10, 0, 3), 5000.0, 10, TradeType::Rlp),
        trade(4, at(10, 0, 4), 5000.0, 3, TradeType::AggressorSell),
        trade(5, at(10, 0, 5), 5000.0, 1, TradeType::Unknown),
    ];
    let (rec, _) = run(&trades);
    let bar = rec.candles[0];
    assert_eq!((bar.buy_volume, bar.sell_volume, bar.volume), (0.0, 3.0, 34.0));
}

#[test]
fn the_same_session_gives_the_same_backtest() {
    let trades = session(8, 42);
    let (_, a) = run(&trades);
    let (_, b) = run(&trades);
    assert_eq!(a, b);
}

#[test]
fn a_session_trades_and_never_exceeds_the_position_limit() {
    let mut trades = session(8, 42);
    trades.extend(session(9, 43));
    trades.extend(session(10, 44));
    let (rec, report) = run(&trades);
    assert!(report.totals.trades > 0, "the native strategies never traded: {:?}", report.decisions);
    let mut position = 0i64;
    for f in &rec.fills {
        position += f.side.sign() * f.quantity;
        assert!(position.abs() <= 1, "position {position} after {f:?}");
        if let FillKind::Exit(_) = f.kind {
            assert_eq!(position, 0, "an exit leaves the book flat");
        }
    }
    assert_eq!(position, 0, "flat at the end");
    assert!(report.decisions.candles > 1_000);
    assert_eq!(report.totals.trades as usize, report.round_trips.len());
    assert!(report.round_trips.iter().all(|t| matches!(t.side, Side::Buy | Side::Sell)));
}

#[test]
fn the_hot_path_does_not_allocate_per_trade() {
    let warm_up = session(8, 1);
    let measured = session(9, 2);
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    for t in &warm_up {
        engine.on_trade(*t, &mut NoObserver);
    }
    let before = allocations();
    for t in &measured {
        engine.on_trade(*t, &mut NoObserver);
    }
    let made = allocations() - before;
    assert!(made <= 16, "{made} allocations over {} trades", measured.len());
}
