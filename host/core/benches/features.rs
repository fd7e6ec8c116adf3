//! `FeatureCore::on_candle` (incremental) against `reference::compute_last`
//! (recompute from scratch) on the same synthetic WDO-like candles.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tickhost_core::features::{FeatureCore, V3_FEATURE_COUNT, reference};
use tickhost_core::time::SessionClock;
use tickhost_core::{Candle, Symbol};

/// Random walk on the 0.5 tick grid with varied volume and order flow.
fn candles(n: usize) -> Vec<Candle> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let symbol = Symbol::new("WDOFUT").expect("valid symbol");
    let mut price = 5000.0;
    (0..n)
        .map(|i| {
            let open = price;
            let close = open + 0.5 * ((next() % 13) as f64 - 6.0);
            price = close;
            let volume = (1 + next() % 500) as f64;
            let buy_volume = (volume * (next() % 1000) as f64 / 1000.0).floor();
            let trades = 1 + (next() % 100) as u32;
            let buy_trades = (next() % u64::from(trades + 1)) as u32;
            Candle {
                symbol,
                open_ms: 1_704_715_200_000 + i as i64 * 60_000,
                close_ms: 1_704_715_200_000 + i as i64 * 60_000 + 59_000,
                open,
                high: open.max(close) + 0.5 * (next() % 4) as f64,
                low: open.min(close) - 0.5 * (next() % 4) as f64,
                close,
                volume,
                financial_volume: volume * close * 10.0,
                trades,
                buy_volume,
                sell_volume: volume - buy_volume,
                buy_trades,
                sell_trades: trades - buy_trades,
                max_buy_run: buy_trades.min(5),
                max_sell_run: (trades - buy_trades).min(5),
            }
        })
        .collect()
}

fn bench_features(c: &mut Criterion) {
    let clock = SessionClock::default();
    let data = candles(4096);
    let mut out = vec![0.0; V3_FEATURE_COUNT];

    let mut core = FeatureCore::new(clock);
    let mut i = 0usize;
    c.bench_function("features/on_candle", |b| {
        b.iter(|| {
            core.on_candle(black_box(&data[i % data.len()]), &mut out);
            i += 1;
        });
        black_box(&out);
    });

    let history = &data[..500];
    c.bench_function("features/reference_compute_last_500", |b| {
        b.iter(|| {
            reference::compute_last(black_box(history), clock, &mut out);
        });
        black_box(&out);
    });
}

criterion_group!(benches, bench_features);
criterion_main!(benches);
