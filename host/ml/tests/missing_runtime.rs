//! Without a usable ONNX Runtime the set-up never fails: it says why, once,
//! and every regime that has a model answers "unavailable" (the engine then
//! uses the native rule and counts a fallback). Its own test binary: this
//! process must never load the real runtime.

mod common;

use common::shipped_specs;
use tickhost_core::consensus::{ModelAnswer, Models};
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::regime::Regime;
use tickhost_ml::{MlConfig, MlError, MlStatus, OnnxRuntime, start};

fn config() -> MlConfig {
    MlConfig { enabled: true, models: shipped_specs(), ..MlConfig::default() }
}

#[test]
fn a_bad_ort_dylib_path_falls_back_and_says_where_and_what_to_do() {
    let mut setup = start(&config(), &FeatureSchema::v3(), Some("/no/such/libonnxruntime.so.1.31.1"));
    let MlStatus::Fallback { reason } = &setup.status else { panic!("{:?}", setup.status) };
    assert!(matches!(reason, MlError::RuntimeMissing { .. }), "{reason}");
    let summary = setup.summary().expect("says so");
    for needle in ["ORT_DYLIB_PATH", "/no/such/libonnxruntime.so.1.31.1", "native rule", "onnxruntime==1.31.1"] {
        assert!(summary.contains(needle), "missing {needle:?} in: {summary}");
    }
    let frame = vec![0.0; FeatureSchema::v3().len()];
    for r in [Regime::TrendUp, Regime::TrendDown, Regime::Range] {
        assert_eq!(setup.models.predict(r, &frame), ModelAnswer::Unavailable, "{r:?}");
    }
    assert_eq!(setup.models.predict(Regime::Undefined, &frame), ModelAnswer::NoModel);
    assert!(setup.registry.is_none() && OnnxRuntime::loaded().is_none());
}

#[test]
fn a_file_that_is_not_the_runtime_is_refused_without_loading_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared library").expect("write");
    let setup = start(&config(), &FeatureSchema::v3(), fake.to_str());
    let MlStatus::Fallback { reason } = &setup.status else { panic!("{:?}", setup.status) };
    assert!(matches!(reason, MlError::RuntimeLoad { .. }), "{reason}");
    assert!(reason.to_string().contains(fake.to_str().expect("path")), "{reason}");
    assert!(OnnxRuntime::loaded().is_none());
}
