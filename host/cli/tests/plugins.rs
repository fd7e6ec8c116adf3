//! Backtests with WebAssembly plugins in the engine's slots, end to end
//! through the binary. Needs the built plugins (`python3
//! scripts/build_plugins.py`, which `scripts/test.sh` runs first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tickhost_plugin::PluginIndex;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample_day() -> PathBuf {
    repo_root().join("examples/data/wdo-2024-01-08.csv")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `tickhost backtest` of the sample day with `config` (or none), from the
/// repository root, as the README shows it. Returns stdout and the report.
fn backtest(config: Option<&Path>, env: &[(&str, &str)]) -> (String, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("bt");
    let sample = sample_day();
    let mut args = vec!["backtest", sample.to_str().expect("path"), "--quiet", "--out", out_dir.to_str().expect("p")];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().expect("path")]);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.current_dir(repo_root()).args(&args).env_remove("LOG_LEVEL").env_remove("FORCE_FAST_MODE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("tickhost runs");
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let json = std::fs::read_to_string(out_dir.join("report.json")).expect("report.json");
    (text(&out.stdout), serde_json::from_str(&json).expect("json report"))
}

fn manifest(name: &str) -> String {
    let path = PluginIndex::checkout().and_then(|i| i.manifest(name)).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("utf-8 path").replace('\\', "/")
}

fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("plugins.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

fn slots(report: &Value) -> &Vec<Value> {
    report["plugin_slots"].as_array().expect("plugin_slots")
}

/// The report without what measures the machine (latencies) or names the
/// slots: what the engine decided.
fn decisions(report: &Value) -> Value {
    let mut r = report.clone();
    r.as_object_mut().expect("object").remove("plugin_slots");
    r
}

#[test]
fn every_slot_kind_runs_a_plugin_in_rust_python_and_javascript_and_reports_per_slot_stats() {
    let (stdout, report) = backtest(Some(&repo_root().join("examples/config/plugins.toml")), &[]);
    let slots = slots(&report);
    let by_plugin = |name: &str| {
        slots.iter().find(|s| s["plugin"] == name).unwrap_or_else(|| panic!("no slot runs `{name}`: {slots:#?}"))
    };
    for name in ["microstructure", "orderflow", "trend", "momentum", "mean_reversion"] {
        let s = by_plugin(name);
        let calls = s["calls"].as_u64().expect("calls");
        assert!(calls > 0, "{name} was never called: {s}");
        assert_eq!(s["plugin_ok"].as_u64(), Some(calls), "{name}: every call answered by the plugin: {s}");
        assert_eq!(s["fallbacks_total"].as_u64(), Some(0), "{name}: {s}");
        assert!(s["latency"]["p50_ns"].as_u64().expect("p50") > 0, "{name}: latency recorded: {s}");
        assert!(stdout.contains(name), "the table names {name}:\n{stdout}");
    }
    // The per-trade extension sees every admitted trade; strategies see candles.
    let trades = report["ingest"]["accepted"].as_u64().expect("accepted");
    assert_eq!(by_plugin("microstructure")["calls"].as_u64(), Some(trades));
    assert!(stdout.contains("p99 ns") && stdout.contains("fallbacks"), "{stdout}");
}

#[test]
fn rust_plugins_of_the_native_code_decide_exactly_as_the_native_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[plugins]
features = ["{micro}"]
agents = [{{ manifest = "{flow}", weight = 0.3 }}]
[plugins.strategy]
trend_up = "{trend}"
trend_down = "{trend}"
range = "{range}"
"#,
            micro = manifest("microstructure"),
            flow = manifest("orderflow"),
            trend = manifest("trend"),
            range = manifest("range"),
        ),
    );
    let (_, with_plugins) = backtest(Some(&config), &[]);
    let (_, native) = backtest(None, &[]);
    assert_eq!(slots(&with_plugins).len(), 5, "{:#?}", slots(&with_plugins));
    assert!(slots(&with_plugins).iter().all(|s| s["fallbacks_total"] == 0), "{:#?}", slots(&with_plugins));
    assert!(native["trades"].as_u64().expect("trades") > 0, "the sample day should trade");
    assert_eq!(decisions(&with_plugins), decisions(&native));
}

#[test]
fn the_same_replay_with_the_same_plugins_decides_identically_twice() {
    let config = repo_root().join("examples/config/plugins.toml");
    let (_, first) = backtest(Some(&config), &[]);
    let (_, second) = backtest(Some(&config), &[]);
    assert_eq!(decisions(&first), decisions(&second));
    let calls = |r: &Value| slots(r).iter().map(|s| (s["slot"].clone(), s["calls"].clone())).collect::<Vec<_>>();
    assert_eq!(calls(&first), calls(&second));
}

#[test]
fn force_fast_mode_runs_native_only_and_counts_it() {
    let config = repo_root().join("examples/config/plugins.toml");
    let (_, forced) = backtest(Some(&config), &[("FORCE_FAST_MODE", "true")]);
    let (_, native) = backtest(None, &[]);
    for s in slots(&forced) {
        assert_eq!(s["plugin_ok"].as_u64(), Some(0), "{s}");
        assert_eq!(s["fallbacks"]["forced_native"], s["calls"], "{s}");
    }
    // Native only: the plugins' strategies never act; the native ones do.
    assert_eq!(decisions(&forced)["round_trips"], decisions(&native)["round_trips"]);
}

#[test]
fn a_plugin_that_cannot_load_stops_the_run_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[plugins.strategy]\ntrend_up = \"no/such/plugin.toml\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tickhost"))
        .current_dir(repo_root())
        .args(["backtest", sample_day().to_str().expect("p"), "--quiet", "--config", config.to_str().expect("p")])
        .output()
        .expect("tickhost runs");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no/such/plugin.toml"), "{err}");
}
