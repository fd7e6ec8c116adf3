//! The `tickhost` binary end to end: what a user types, what they get.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tickhost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.args(args).env_remove("LOG_LEVEL").env_remove("TICKHOST_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sample_day() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/wdo-2024-01-08.csv")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn backtest_of_the_shipped_sample_prints_the_report_and_writes_json_and_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("bt");
    let out = tickhost(
        &["backtest", sample_day().to_str().expect("path"), "--quiet", "--out", out_dir.to_str().expect("path")],
        &[],
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for needle in [
        "Backtest report",
        "win rate",
        "profit factor",
        "Sharpe",
        "Sortino",
        "max drawdown",
        "exposure",
        "trend_up",
        "range",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).expect("report.json"))
            .expect("json");
    let trips = json["round_trips"].as_array().expect("round_trips");
    assert_eq!(json["trades"].as_u64(), Some(trips.len() as u64));
    assert!(!trips.is_empty(), "the sample day should trade");
    assert_eq!(json["per_regime"].as_array().expect("per_regime").len(), 4);
    let svg = std::fs::read_to_string(out_dir.join("equity.svg")).expect("equity.svg");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "not an equity plot");
}

#[test]
fn gen_is_deterministic_from_its_seed_and_round_trips_through_backtest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name).to_str().expect("path").to_string();
    let generate = |out: &str, seed: &str| {
        assert_ok(&tickhost(&["gen", "--out", out, "--seed", seed, "--trades-per-day", "3000", "--days", "2"], &[]))
    };
    generate(&file("a.csv"), "1");
    generate(&file("b.csv"), "1");
    generate(&file("c.csv"), "2");
    let read = |name: &str| std::fs::read(file(name)).expect("read");
    assert_eq!(read("a.csv"), read("b.csv"));
    assert_ne!(read("a.csv"), read("c.csv"));
    let out = tickhost(&["replay", &file("a.csv"), "--quiet"], &[]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("edits applied"), "{}", text(&out.stdout));
}

fn with_bad_row(dir: &Path) -> PathBuf {
    let path = dir.join("bad.csv");
    let rows = "<ticker>,<date>,<time>,<trade_number>,<price>,<qty>,<vol>,<buy_agent>,<sell_agent>,<trade_type>,<aft>\n\
        WDOFUT,20240108,100000,1,5000.0,1,50000,XP,UBS,AggressorBuyer,N\n\
        WDOFUT,20240108,100001,2,-5000.0,1,50000,XP,UBS,AggressorBuyer,N\n\
        WDOFUT,20240108,100002,3,5000.5,1,50005,XP,UBS,AggressorSeller,N\n";
    std::fs::write(&path, rows).expect("write");
    path
}

#[test]
fn a_bad_row_fails_by_default_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = with_bad_row(dir.path());
    let out = tickhost(&["replay", path.to_str().expect("path"), "--quiet"], &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.csv:3"), "no file:line in {stderr}");
    assert!(stderr.contains("price"), "no field in {stderr}");
}

#[test]
fn with_skip_bad_rows_are_counted_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = with_bad_row(dir.path());
    let out = tickhost(&["replay", path.to_str().expect("path"), "--quiet", "--on-bad-row", "skip"], &[]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("skipped 1 bad rows"), "{stderr}");
    assert!(stderr.contains("bad.csv:3"), "{stderr}");
    assert!(text(&out.stdout).contains("replayed 2 trades"), "{}", text(&out.stdout));
}

#[test]
fn replay_writes_every_feature_frame_for_research() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = dir.path().join("frames.csv");
    let out = tickhost(
        &["replay", sample_day().to_str().expect("path"), "--quiet", "--features-out", frames.to_str().expect("path")],
        &[],
    );
    assert_ok(&out);
    let body = std::fs::read_to_string(&frames).expect("frames");
    let mut lines = body.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert!(header.contains(&"v3_adx") && header.contains(&"v3_volume_imbalance_cum") && header.contains(&"close"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 400, "one frame per candle of the day, got {}", rows.len());
    assert!(rows.iter().all(|r| r.split(',').count() == header.len()));
}

#[test]
fn environment_overrides_reach_the_engine_and_typos_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("bt");
    let sample = sample_day();
    let args = ["backtest", sample.to_str().expect("path"), "--quiet", "--json", "--out", out_dir.to_str().expect("p")];
    let out = tickhost(&args, &[("TICKHOST__ENGINE__RISK__MAX_TRADES_PER_DAY", "0")]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(json["trades"].as_u64(), Some(0));
    assert!(json["risk_refusals"]["max_trades_per_day"].as_u64().expect("count") > 0);

    let out = tickhost(&args, &[("TICKHOST__ENGINE__RISK__MAX_TRADE_PER_DAY", "0")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("max_trade_per_day"), "{}", text(&out.stderr));
}
