//! Shared by the tests: the shipped models, the real runtime, real frames.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tickhost_core::Candle;
use tickhost_core::engine::{Engine, EngineConfig, EngineObserver};
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_ml::{Located, MlConfig, ModelSpec, OnnxRuntime, locate};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models `scripts/train_models.py` made for the sample data, as its
/// `examples/models/models.toml` declares them (paths made absolute).
pub fn shipped_specs() -> Vec<ModelSpec> {
    let text = std::fs::read_to_string(repo_root().join("examples/models/models.toml")).expect("models.toml");
    #[derive(serde::Deserialize)]
    struct File {
        ml: MlConfig,
    }
    let file: File = toml::from_str(&text).expect("models.toml parses as [ml]");
    file.ml
        .models
        .into_iter()
        .map(|mut m| {
            m.path = repo_root().join(&m.path);
            m
        })
        .collect()
}

pub fn spec(name: &str) -> ModelSpec {
    shipped_specs().into_iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no shipped model {name}"))
}

/// The real runtime: ORT_DYLIB_PATH, else python3's onnxruntime wheel
/// (scripts/setup.sh installs it).
pub fn runtime() -> OnnxRuntime {
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let located: Located = locate(env.as_deref(), Path::new(""), "python3").unwrap_or_else(|e| panic!("{e}"));
    OnnxRuntime::load(&located).unwrap_or_else(|e| panic!("{e}"))
}

/// Feature frames (with their regime) of a synthetic session, from the engine.
pub fn frames(seed: u64) -> Vec<(Regime, Vec<f64>)> {
    #[derive(Default)]
    struct Frames(Vec<(Regime, Vec<f64>)>);
    impl EngineObserver for Frames {
        fn on_candle(&mut self, _c: &Candle, frame: &[f64], r: &RegimeReading) {
            self.0.push((r.regime, frame.to_vec()));
        }
    }
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut out = Frames::default();
    for t in SessionGenerator::new(SessionSpec::wdo(2024, 3, 4, seed)) {
        engine.on_trade(t, &mut out);
    }
    engine.finish(&mut out);
    out.0
}
