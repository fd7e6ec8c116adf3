//! ProfitDLL path through the simulator library, loaded for real:
//! sustained callbacks -> ring -> engine (Criterion, per trade), and the
//! callback-to-engine latency percentiles (printed; Criterion reports means).
//!
//! `cargo bench --workspace --bench callbacks`

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tickhost_core::engine::EngineConfig;
use tickhost_feed::profit_dll::measure::{latency, sustained};

fn sim_path() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let name = format!("{}tickhost_profitdll_sim{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [deps.join(&name), deps.parent().map(|d| d.join(&name)).unwrap_or_default()]
        .into_iter()
        .find(|p| p.exists())
        .expect("the simulator library is built with the bench")
}

fn callbacks(c: &mut Criterion) {
    let path = sim_path();
    let engine = EngineConfig::default();
    let (samples, offered) = latency(&path, -180, &engine).expect("latency run");
    let pct = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    eprintln!(
        "callback -> engine latency over {} trades at {offered:.0}/s: p50 {} ns, p99 {} ns, p99.9 {} ns",
        samples.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    let mut group = c.benchmark_group("profitdll");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("callback_to_engine_per_trade_sustained", |b| {
        b.iter_custom(|iters| {
            // One storm of ~28k trades per sample; its per-trade time scaled to `iters`.
            let (_, per_s, _) = sustained(&path, -180, &engine, 10_000).expect("storm");
            Duration::from_secs_f64(iters as f64 / per_s)
        });
    });
    group.finish();
}

criterion_group!(benches, callbacks);
criterion_main!(benches);
