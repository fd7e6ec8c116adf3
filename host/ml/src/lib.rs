//! tickhost-ml: ONNX models for the engine, through ONNX Runtime (`ort`).
//!
//! - [`runtime`]: finds `libonnxruntime.so` (ORT_DYLIB_PATH, `ml.runtime`,
//!   then the python `onnxruntime` wheel) and loads it at run time
//!   (`ort`'s `load-dynamic`: nothing is downloaded or linked at build time).
//! - [`registry`]: the configured models, their input schema checked against
//!   the engine's feature frame at load, batch-1 inference with reused
//!   buffers, per-model latency counters.
//! - [`setup`]: `[ml]` to the engine's `Models` hook, never failing:
//!   a missing runtime or model is said once and its regimes fall back to
//!   the native rule (the agents' veto), counted in the report.
//!
//! # Where inference runs: on the engine thread
//!
//! A regime model is asked only when a strategy proposes a buy or a sell, at
//! a candle close, and its answer decides that very candle's order. The tree
//! ensembles we ship take 3-4 µs a run at batch 1 (p50; p99 4-6 µs;
//! `tickhost bench`, `cargo bench -p tickhost-ml`), allocate nothing on the
//! Rust side once warm (`tests/allocations.rs`), and run about a hundred
//! times per session of ~530 candles (95 on the sample day), against a 60 s
//! bar: a replay with the models runs at ~0.85x the native engine's speed.
//! Running them on another thread would buy nothing but a hand-off per call,
//! and would make a replay's decisions depend on thread timing (a late
//! answer must either wait, which is the same as running inline, or be
//! dropped, which makes backtests irreproducible). So inference runs inline,
//! with ONNX Runtime's own thread pools off (`intra_threads = inter_threads
//! = 1`, no spinning): no thread competes with the engine for its core. A
//! model much slower than these (a deep network at milliseconds) would
//! belong off the engine thread, answering the next candle: that is not
//! built, because no model needs it.
//!
//! Plugins reach the same registry through the `predict` capability (the
//! binary implements `tickhost_plugin::ModelHost` with it), also inline on
//! the engine thread, under per-call limits set in the plugin's manifest.

pub mod config;
pub mod error;
pub mod registry;
pub mod runtime;
pub mod setup;

pub use config::{MlConfig, ModelSpec};
pub use error::{MlError, RuntimeSource};
pub use registry::{FEATURE_NAMES_KEY, Model, ModelRegistry, ModelStatsSnapshot};
pub use runtime::{Located, OnnxRuntime, locate};
pub use setup::{MlSetup, MlStatus, OnnxModels, start};
