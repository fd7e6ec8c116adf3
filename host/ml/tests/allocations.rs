//! Steady-state inference allocates nothing on the Rust side: the input
//! tensor is refilled in place and the output is preallocated, so the
//! engine thread's per-decision path stays allocation-free (what ONNX
//! Runtime's C++ kernels do inside is outside this count). One test in its
//! own binary: the counting allocator is process-wide.

mod common;

use std::alloc::System;

use common::{frames, runtime, shipped_specs};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tickhost_core::hooks::FeatureSchema;
use tickhost_ml::ModelRegistry;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn inference_allocates_nothing_on_the_rust_side_once_warm() {
    let registry =
        ModelRegistry::load(&runtime(), &shipped_specs(), &FeatureSchema::v3()).unwrap_or_else(|e| panic!("{e}"));
    let frames: Vec<Vec<f64>> = frames(99).into_iter().map(|(_, f)| f).take(100).collect();
    let mut row = Vec::with_capacity(8);
    let inputs = vec![0.5; 20];
    for model in registry.models() {
        // Warm: first runs may initialise lazily.
        for f in &frames[..10] {
            model.predict_frame(f).unwrap_or_else(|e| panic!("{e}"));
            model.predict_row(&inputs, &mut row).unwrap_or_else(|e| panic!("{e}"));
        }
        let region = Region::new(GLOBAL);
        let mut sum = 0.0;
        for f in &frames {
            sum += model.predict_frame(f).unwrap_or_else(|e| panic!("{e}"));
            model.predict_row(&inputs, &mut row).unwrap_or_else(|e| panic!("{e}"));
        }
        let stats = region.change();
        assert!(sum > 0.0 && row.len() == 2);
        assert_eq!(
            (stats.allocations, stats.reallocations),
            (0, 0),
            "model {}: {} runs allocated {stats:?}",
            model.name(),
            2 * frames.len()
        );
    }
}
