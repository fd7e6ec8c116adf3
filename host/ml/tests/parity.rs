//! The registry's probabilities equal Python onnxruntime's on the same
//! inputs, for every shipped model, through both paths: the engine's (a
//! feature frame, gathered by name) and the plugins' (a row of inputs).
//! The reference numbers come from python3 running the same .onnx files;
//! they must be equal to the bit.

mod common;

use std::process::Command;

use common::{frames, runtime, shipped_specs};
use tickhost_core::hooks::FeatureSchema;
use tickhost_ml::ModelRegistry;

/// Python onnxruntime's `probabilities` for `rows` of `model`, with one
/// intra-op thread as the engine runs it: a multi-threaded tree ensemble
/// sums its trees in another order and differs in the last bit (~1e-7).
fn python_probabilities(model: &std::path::Path, rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("rows.json");
    std::fs::write(&input, serde_json::to_string(rows).expect("json")).expect("write rows");
    let script = "import json, sys, numpy as np, onnxruntime as ort\n\
o = ort.SessionOptions()\n\
o.intra_op_num_threads = 1\n\
o.inter_op_num_threads = 1\n\
s = ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n\
x = np.array(json.load(open(sys.argv[2])), dtype=np.float32)\n\
print(json.dumps(s.run(['probabilities'], {s.get_inputs()[0].name: x})[0].tolist()))";
    let out = Command::new("python3")
        .args(["-c", script, model.to_str().expect("path"), input.to_str().expect("path")])
        .output()
        .expect("python3 runs (scripts/setup.sh installs onnxruntime)");
    assert!(out.status.success(), "python onnxruntime failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json probabilities")
}

#[test]
fn probabilities_equal_python_onnxruntime_on_fixed_inputs() {
    let rt = runtime();
    let specs = shipped_specs();
    assert_eq!(specs.len(), 3, "trend_up, trend_down and range are shipped");
    let schema = FeatureSchema::v3();
    let registry = ModelRegistry::load(&rt, &specs, &schema).unwrap_or_else(|e| panic!("{e}"));
    // Real frames of a session the models were not trained on, plus edge
    // rows: all zeros and large values.
    let frames: Vec<Vec<f64>> = frames(4242).into_iter().map(|(_, f)| f).step_by(7).collect();
    assert!(frames.len() > 50);
    for model in registry.models() {
        let spec = model.spec();
        let idx: Vec<usize> = spec.inputs.iter().map(|n| schema.index_of(n).expect("in schema")).collect();
        let mut rows: Vec<Vec<f64>> = frames.iter().map(|f| idx.iter().map(|&i| f[i]).collect()).collect();
        rows.push(vec![0.0; idx.len()]);
        rows.push((0..idx.len()).map(|i| 1e6 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect());
        let as_f32: Vec<Vec<f32>> = rows.iter().map(|r| r.iter().map(|&v| v as f32).collect()).collect();
        let reference = python_probabilities(&spec.path, &as_f32);
        assert_eq!(reference.len(), rows.len());

        let mut out = Vec::new();
        let mut distinct = std::collections::BTreeSet::new();
        for (i, (row, want)) in rows.iter().zip(&reference).enumerate() {
            model.predict_row(row, &mut out).unwrap_or_else(|e| panic!("{e}"));
            let got: Vec<f32> = out.iter().map(|&v| v as f32).collect();
            assert_eq!(&got, want, "model {} row {i}: Rust {got:?} vs Python {want:?}", spec.name);
            distinct.insert(got[1].to_bits());
            if i < frames.len() {
                let p = model.predict_frame(&frames[i]).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(p as f32, want[spec.column], "model {} frame {i}: the engine's path", spec.name);
            }
        }
        // Not a constant model: the comparison means something.
        assert!(distinct.len() > 10, "model {} gave only {} distinct probabilities", spec.name, distinct.len());
        let stats = model.stats();
        assert_eq!(stats.calls, (rows.len() + frames.len()) as u64);
        assert_eq!(stats.errors, 0);
    }
}

#[test]
fn a_plugin_row_of_the_wrong_length_or_an_unknown_model_is_a_clear_error() {
    let rt = runtime();
    let registry = ModelRegistry::load(&rt, &shipped_specs(), &FeatureSchema::v3()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let e = registry.predict("trend_up", &[1.0, 2.0], &mut out).expect_err("2 inputs").to_string();
    assert!(e.contains("trend_up") && e.contains("20 inputs") && e.contains("got 2"), "{e}");
    let e = registry.predict("no_such", &[0.0; 20], &mut out).expect_err("unknown").to_string();
    assert!(e.contains("no_such"), "{e}");
    registry.predict("range", &[0.0; 20], &mut out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 2);
    assert!((out[0] + out[1] - 1.0).abs() < 1e-5, "class probabilities sum to 1: {out:?}");
}
