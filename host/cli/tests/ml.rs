//! ONNX models in `tickhost backtest`, end to end through the binary with
//! the real ONNX Runtime (python3's onnxruntime wheel, which
//! scripts/setup.sh installs): the models inform decisions and the report
//! says how many; without the runtime the run falls back to the native rule
//! and says so; a plugin runs a host model through `predict`, within its
//! limits. The plugin tests need `python3 scripts/build_plugins.py` first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tickhost_plugin::PluginIndex;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Run {
    stdout: String,
    stderr: String,
    report: Value,
}

/// `tickhost backtest` of the sample day from the repository root (where
/// the default config's model paths point), as the README shows it.
fn backtest(config: Option<&Path>, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("bt");
    let sample = repo_root().join("examples/data/wdo-2024-01-08.csv");
    let mut args = vec!["backtest", sample.to_str().expect("path"), "--quiet", "--out", out_dir.to_str().expect("p")];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().expect("path")]);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.current_dir(repo_root())
        .args(&args)
        .env_remove("LOG_LEVEL")
        .env_remove("ENHANCED_ML_ENABLED")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("TICKHOST_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("tickhost runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let json = std::fs::read_to_string(out_dir.join("report.json")).expect("report.json");
    Run { stdout, stderr, report: serde_json::from_str(&json).expect("json report") }
}

fn count(report: &Value, key: &str) -> u64 {
    report["models"][key].as_u64().unwrap_or_else(|| panic!("models.{key} in {}", report["models"]))
}

#[test]
fn backtest_with_ml_enabled_uses_the_models_and_reports_the_decisions_they_informed() {
    let run = backtest(None, &[]);
    let r = &run.report;
    assert_eq!(r["ml"]["status"], "active", "{}\n{}", r["ml"], run.stderr);
    assert_eq!(r["ml"]["models"], serde_json::json!(["trend_up", "trend_down", "range"]));
    assert!(r["ml"]["runtime"]["path"].as_str().expect("path").contains("libonnxruntime"), "{}", r["ml"]);
    let informed = count(r, "informed");
    assert!(informed > 0, "the sample day has buys and sells in modelled regimes: {}", r["models"]);
    assert_eq!(count(r, "fallbacks"), 0);
    // Every buy or sell is either informed or in a regime without a model.
    let signals = r["decisions"]["signals"].as_u64().expect("signals");
    let held = count(r, "held");
    assert!(held <= informed);
    assert!(signals + held >= informed, "{}", r["models"]);
    assert!(run.stdout.contains(&format!("{informed} buys/sells informed by a model")), "{}", run.stdout);
    assert!(run.stdout.contains("ML:") && run.stdout.contains("trend_down"), "{}", run.stdout);
}

#[test]
fn without_the_runtime_the_backtest_falls_back_to_the_native_rule_and_says_so_once() {
    let missing = "/no/such/dir/libonnxruntime.so.1.31.1";
    let run = backtest(None, &[("ORT_DYLIB_PATH", missing)]);
    let r = &run.report;
    assert_eq!(r["ml"]["status"], "fallback");
    assert_eq!(count(r, "informed"), 0);
    assert!(count(r, "fallbacks") > 0, "the fallbacks are counted: {}", r["models"]);
    let said = run.stderr.matches("ONNX Runtime not found").count();
    assert_eq!(said, 1, "said once on stderr:\n{}", run.stderr);
    for needle in [missing, "ORT_DYLIB_PATH", "native rule", "pip install onnxruntime==1.31.1"] {
        assert!(run.stderr.contains(needle), "missing {needle:?} in:\n{}", run.stderr);
    }
    assert!(run.stdout.contains("FALLBACK") && run.stdout.contains("fell back to the native rule"), "{}", run.stdout);

    // The native rule is exactly what runs with ML off.
    let off = backtest(None, &[("ENHANCED_ML_ENABLED", "false")]);
    assert_eq!(off.report["ml"]["status"], "disabled");
    assert_eq!(count(&off.report, "fallbacks"), 0, "ML off is not a fallback");
    assert_eq!(count(&off.report, "no_model"), count(r, "fallbacks"));
    assert_eq!(off.report["round_trips"], r["round_trips"]);
    assert_eq!(off.report["decisions"], r["decisions"]);
}

#[test]
fn a_model_that_does_not_match_the_frame_falls_back_for_its_regime_only_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ml.toml");
    // The shipped models, with range's inputs in another order than it was trained on.
    let text = std::fs::read_to_string(repo_root().join("examples/models/models.toml")).expect("models.toml");
    let (head, range) = text.split_once("name = \"range\"").expect("range model");
    let range = range.replacen("\"v3_momentum_1\", \"v3_momentum_5\"", "\"v3_momentum_5\", \"v3_momentum_1\"", 1);
    std::fs::write(&config, format!("{head}name = \"range\"{range}")).expect("write");
    let run = backtest(Some(&config), &[]);
    let r = &run.report;
    assert_eq!(r["ml"]["status"], "degraded");
    assert_eq!(r["ml"]["models"], serde_json::json!(["trend_up", "trend_down"]));
    assert!(
        run.stderr.contains("model `range`") && run.stderr.contains("first differ at position 0"),
        "{}",
        run.stderr
    );
    assert!(count(r, "informed") > 0 && count(r, "fallbacks") > 0, "{}", r["models"]);
}

fn manifest(name: &str) -> String {
    let path = PluginIndex::checkout().and_then(|i| i.manifest(name)).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("utf-8 path").replace('\\', "/")
}

/// A backtest with `plugin` as the trend_up strategy: the report, its
/// slot's stats, and stderr (where the plugin's log goes).
fn with_predictor(plugin: &str, env: &[(&str, &str)]) -> (Value, Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("predict.toml");
    std::fs::write(&config, format!("[plugins.strategy]\ntrend_up = \"{}\"\n", manifest(plugin))).expect("write");
    let run = backtest(Some(&config), env);
    let slots = run.report["plugin_slots"].as_array().expect("plugin_slots").clone();
    let slot = slots.into_iter().find(|s| s["plugin"] == plugin).unwrap_or_else(|| panic!("no {plugin} slot"));
    (run.report, slot, run.stderr)
}

fn hold_reasons(report: &Value) -> Vec<String> {
    report["hold_reasons"]
        .as_array()
        .expect("hold_reasons")
        .iter()
        .map(|r| r[0].as_str().expect("reason").to_string())
        .collect()
}

#[test]
fn a_plugin_runs_a_host_model_through_predict() {
    let (report, slot, _) = with_predictor("predictor", &[]);
    let calls = slot["calls"].as_u64().expect("calls");
    assert!(calls > 400, "the strategy sees every candle: {slot}");
    assert_eq!(slot["fallbacks_total"], 0, "{slot}");
    assert_eq!(slot["predict"], serde_json::json!({ "calls": calls, "refused": 0, "errors": 0 }), "{slot}");
    // Its holds carry the model's answer, never an error.
    let reasons = hold_reasons(&report);
    assert!(reasons.iter().any(|r| r == "p_up <= 0.6"), "{reasons:?}");
    assert!(!reasons.iter().any(|r| r.starts_with("predict")), "{reasons:?}");
}

#[test]
fn predict_limits_refuse_with_a_message_to_the_guest_and_are_counted() {
    let (report, slot, stderr) = with_predictor("predictor-burst", &[]);
    let calls = slot["calls"].as_u64().expect("calls");
    // 6 calls per candle, 4 allowed: the 5th is refused and the guest stops.
    assert_eq!(slot["predict"], serde_json::json!({ "calls": 4 * calls, "refused": calls, "errors": 0 }), "{slot}");
    assert!(hold_reasons(&report).iter().any(|r| r == "predict refused"), "{:?}", hold_reasons(&report));
    // The guest got the host's message (and logged it).
    assert!(stderr.contains("predict refused: call 5") && stderr.contains("predict_calls"), "{stderr}");

    let (report, slot, stderr) = with_predictor("predictor-wide", &[]);
    let calls = slot["calls"].as_u64().expect("calls");
    assert_eq!(slot["predict"], serde_json::json!({ "calls": 0, "refused": calls, "errors": 0 }), "{slot}");
    assert!(hold_reasons(&report).iter().any(|r| r == "predict refused"), "{:?}", hold_reasons(&report));
    assert!(stderr.contains("300 inputs") && stderr.contains("predict_inputs"), "{stderr}");
    assert_eq!(slot["fallbacks_total"], 0, "an error is an answer to the guest, not a trap: {slot}");
}

#[test]
fn with_ml_off_predict_answers_an_error_the_plugin_handles() {
    let (report, slot, stderr) = with_predictor("predictor", &[("ENHANCED_ML_ENABLED", "false")]);
    let calls = slot["calls"].as_u64().expect("calls");
    assert_eq!(slot["predict"], serde_json::json!({ "calls": 0, "refused": 0, "errors": calls }), "{slot}");
    assert!(hold_reasons(&report).iter().any(|r| r == "predict failed"), "{:?}", hold_reasons(&report));
    assert!(stderr.contains("model `trend_up` is not available"), "{stderr}");
}
