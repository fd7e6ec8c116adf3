//! A model whose inputs do not match the engine's frame (or its own
//! recorded features, or whose output is not what the config says) is
//! refused at load with a message naming the model and what differs; the
//! set-up routes the other models and falls back for the refused one's
//! regimes.

mod common;

use common::{frames, runtime, spec};
use tickhost_core::consensus::{ModelAnswer, Models};
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::regime::Regime;
use tickhost_ml::{MlConfig, MlError, MlStatus, Model, start};

fn load_err(spec: &tickhost_ml::ModelSpec, schema: &FeatureSchema) -> String {
    match Model::load(&runtime(), spec, schema) {
        Ok(m) => panic!("{} loaded but should not have: {m:?}", spec.name),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_input_the_frame_does_not_have_is_refused_naming_it() {
    let mut s = spec("trend_up");
    s.inputs[3] = "v3_no_such_feature".into();
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("model `trend_up`") && e.contains("v3_no_such_feature"), "{e}");
    assert!(e.contains("retrain") || e.contains("fix `inputs`"), "says what to do: {e}");
}

#[test]
fn an_extension_output_the_model_needs_must_be_in_the_frame() {
    // The model's features exist in v3, but a config naming an extension
    // output resolves only when that extension runs.
    let mut s = spec("range");
    s.inputs[0] = "micro_spread".into();
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("micro_spread"), "{e}");
}

#[test]
fn inputs_in_another_order_than_the_model_was_trained_on_are_refused() {
    let mut s = spec("trend_down");
    s.inputs.swap(0, 1);
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("first differ at position 0"), "{e}");
    assert!(e.contains("v3_momentum_5") && e.contains("v3_momentum_1"), "{e}");
}

#[test]
fn a_different_number_of_inputs_is_refused() {
    let mut s = spec("trend_up");
    s.inputs.pop();
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("19") && e.contains("20"), "{e}");
}

#[test]
fn a_missing_output_or_column_is_refused() {
    let mut s = spec("trend_up");
    s.output = "label_probability".into();
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("no output `label_probability`") && e.contains("probabilities"), "{e}");
    let mut s = spec("trend_up");
    s.column = 2;
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("`column` = 2") && e.contains("2 columns"), "{e}");
    let mut s = spec("trend_up");
    s.output = "label".into();
    let e = load_err(&s, &FeatureSchema::v3());
    assert!(e.contains("not a float tensor"), "{e}");
}

#[test]
fn a_missing_file_or_a_file_that_is_not_a_model_is_refused() {
    let mut s = spec("range");
    s.path = "/no/such/model.onnx".into();
    let e = runtime();
    let err = Model::load(&e, &s, &FeatureSchema::v3()).expect_err("missing file");
    assert!(matches!(err, MlError::ModelFile { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/model.onnx") && err.to_string().contains("train_models.py"));
    let dir = tempfile::tempdir().expect("tempdir");
    s.path = dir.path().join("junk.onnx");
    std::fs::write(&s.path, b"not a model").expect("write");
    let err = Model::load(&e, &s, &FeatureSchema::v3()).expect_err("junk");
    assert!(err.to_string().contains("not a model ONNX Runtime can run"), "{err}");
}

#[test]
fn setup_routes_good_models_and_falls_back_for_a_refused_one() {
    let _ = runtime();
    let mut bad = spec("range");
    bad.inputs.swap(2, 3);
    let config = MlConfig { enabled: true, models: vec![spec("trend_up"), bad], ..MlConfig::default() };
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let mut setup = start(&config, &FeatureSchema::v3(), env.as_deref());
    let MlStatus::Active { problems, .. } = &setup.status else { panic!("{:?}", setup.status) };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(setup.degraded());
    let summary = setup.summary().expect("summary");
    assert!(summary.contains("models loaded: trend_up") && summary.contains("model `range`"), "{summary}");
    let frame = &frames(7)[100].1;
    assert!(matches!(setup.models.predict(Regime::TrendUp, frame), ModelAnswer::Up(p) if (0.0..=1.0).contains(&p)));
    assert_eq!(setup.models.predict(Regime::Range, frame), ModelAnswer::Unavailable);
    assert_eq!(setup.models.predict(Regime::TrendDown, frame), ModelAnswer::NoModel);
    assert_eq!(setup.models.predict(Regime::Undefined, frame), ModelAnswer::NoModel);
}

#[test]
fn disabled_ml_answers_no_model_everywhere_and_is_not_degraded() {
    let config = MlConfig { enabled: false, models: vec![spec("trend_up")], ..MlConfig::default() };
    let mut setup = start(&config, &FeatureSchema::v3(), Some("/no/such/lib.so"));
    assert!(matches!(setup.status, MlStatus::Disabled));
    assert!(!setup.degraded() && setup.summary().is_none());
    assert_eq!(setup.models.predict(Regime::TrendUp, &[0.0; 200]), ModelAnswer::NoModel);
}
