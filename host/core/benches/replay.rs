//! A whole replay through the engine (every stage, native), and the
//! per-trade path alone (sequencer, broker, candle builder).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickhost_core::Trade;
use tickhost_core::engine::{Engine, EngineConfig, NoObserver};
use tickhost_core::sim::{SessionGenerator, SessionSpec};

fn session() -> Vec<Trade> {
    let mut spec = SessionSpec::wdo(2024, 1, 8, 8);
    spec.trades_target = 100_000;
    SessionGenerator::new(spec).collect()
}

fn replay(c: &mut Criterion) {
    let trades = session();
    let config = EngineConfig::default();
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(trades.len() as u64));
    group.sample_size(20);
    group.bench_function("engine_session_100k_trades", |b| {
        b.iter_batched(
            || Engine::new(&config).expect("engine"),
            |mut engine| {
                for t in &trades {
                    engine.on_trade(*t, &mut NoObserver);
                }
                black_box(engine.finish(&mut NoObserver))
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
