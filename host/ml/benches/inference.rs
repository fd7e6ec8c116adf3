//! Batch-1 inference of each shipped model on a real feature frame, as the
//! engine runs it (`predict_frame`: gather 20 features by index, run, read
//! P(up)), with the real ONNX Runtime (ORT_DYLIB_PATH or python3's wheel).
//! Before the timings it prints the Rust-side heap allocations per run,
//! counted by a wrapping global allocator (which makes every allocation a
//! little slower, not the runs that allocate nothing).
//!
//! cargo bench -p tickhost-ml   (or: cargo bench --workspace --bench inference)

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tickhost_core::Candle;
use tickhost_core::engine::{Engine, EngineConfig, EngineObserver};
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::regime::RegimeReading;
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_ml::{MlConfig, ModelRegistry, OnnxRuntime, locate};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn registry() -> ModelRegistry {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    #[derive(serde::Deserialize)]
    struct File {
        ml: MlConfig,
    }
    let text = std::fs::read_to_string(root.join("examples/models/models.toml")).expect("models.toml");
    let mut ml = toml::from_str::<File>(&text).expect("models.toml").ml;
    for m in &mut ml.models {
        m.path = root.join(&m.path);
    }
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let located = locate(env.as_deref(), Path::new(""), "python3").unwrap_or_else(|e| panic!("{e}"));
    let rt = OnnxRuntime::load(&located).unwrap_or_else(|e| panic!("{e}"));
    ModelRegistry::load(&rt, &ml.models, &FeatureSchema::v3()).unwrap_or_else(|e| panic!("{e}"))
}

/// The frame of the 300th candle of a synthetic session.
fn frame() -> Vec<f64> {
    struct Pick(Vec<f64>, usize);
    impl EngineObserver for Pick {
        fn on_candle(&mut self, _c: &Candle, frame: &[f64], _r: &RegimeReading) {
            self.1 += 1;
            if self.1 == 300 {
                self.0 = frame.to_vec();
            }
        }
    }
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut pick = Pick(Vec::new(), 0);
    for t in SessionGenerator::new(SessionSpec::wdo(2024, 3, 4, 11)) {
        engine.on_trade(t, &mut pick);
    }
    pick.0
}

fn inference(c: &mut Criterion) {
    let registry = registry();
    let frame = frame();
    for model in registry.models() {
        for _ in 0..100 {
            black_box(model.predict_frame(&frame).expect("predict"));
        }
        let region = Region::new(GLOBAL);
        const RUNS: usize = 1000;
        for _ in 0..RUNS {
            black_box(model.predict_frame(&frame).expect("predict"));
        }
        let stats = region.change();
        println!(
            "{}: Rust-side heap allocations per run: {:.2} ({} bytes per run)",
            model.name(),
            stats.allocations as f64 / RUNS as f64,
            stats.bytes_allocated / RUNS
        );
        c.bench_function(&format!("predict_frame/{}", model.name()), |b| {
            b.iter(|| black_box(model.predict_frame(black_box(&frame)).expect("predict")))
        });
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
