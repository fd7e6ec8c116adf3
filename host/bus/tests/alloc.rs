//! Encoding into reused buffers does not allocate per message, in either
//! format, once the buffers have grown (the publisher thread's steady state).
#![allow(unsafe_code)] // A global allocator cannot be written without it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tickhost_bus::archive::Encoder;
use tickhost_bus::json;
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::{AgentId, Price, Symbol, Trade, TradeType};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn encoding_trades_and_candles_allocates_nothing_in_steady_state() {
    let sym = Symbol::new("WDOFUT").expect("symbol");
    let trade = |n: u64| Trade {
        symbol: sym,
        ts_ms: 1_704_715_200_000 + n as i64,
        trade_number: n,
        price: Price::from_f64(5000.0 + n as f64 * 0.5).expect("price"),
        quantity: 1 + (n % 7) as i64,
        volume: 50_000.0,
        buy_agent: AgentId(1),
        sell_agent: AgentId(2),
        trade_type: TradeType::AggressorBuy,
        is_edit: n.is_multiple_of(100),
    };
    let candle = tickhost_bus::testing::sample_candle(0);
    let regime = RegimeReading { regime: Regime::Range, confidence: 0.6, adx: 20.0 };
    let names: Vec<String> = (0..130).map(|i| format!("v3_feature_{i}")).collect();
    let frame: Vec<f64> = (0..130).map(|i| i as f64 * 1.25).collect();
    let mut enc = Encoder::new();
    let mut buf = Vec::new();
    let run = |enc: &mut Encoder, buf: &mut Vec<u8>, n: u64| {
        json::encode_trade(buf, &trade(n), n, -180);
        enc.trade(buf, &trade(n), n);
        json::encode_candle(buf, &candle, &regime, &names, &frame, n, -180);
        enc.candle(buf, &candle, &regime, &frame, n);
    };
    for n in 0..100 {
        run(&mut enc, &mut buf, n);
    }
    let before = allocations();
    for n in 100..10_100 {
        run(&mut enc, &mut buf, n);
    }
    assert_eq!(allocations() - before, 0, "allocations while encoding 10k trades and 10k candles in both formats");
}
