//! `tickhost run` on the ProfitDLL simulator, the real binary and the real
//! library: end to end with orders through SendOrder, and a crash of the DLL
//! in-process (the engine dies with it) versus in the isolated ingest process
//! (the engine runs on, restarts it, and loses and duplicates nothing).

use std::path::PathBuf;
use std::process::{Command, Output};

fn sim_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let name = format!("{}tickhost_profitdll_sim{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [deps.join(&name), deps.parent().map(|d| d.join(&name)).unwrap_or_default()]
        .into_iter()
        .find(|p| p.exists())
        .expect("the simulator cdylib is built with this test (dev-dependency)")
}

fn run(feed: &str, sim: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.args(["run", "--feed", feed, "--library"])
        .arg(sim_path())
        .args(["--idle-exit", "1.5"])
        .env("PROFITDLL_SIM", sim)
        .env_remove("TICKHOST_CONFIG");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickhost runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `ingested N trades: D duplicates dropped, ...` -> (N, D)
fn ingested(out: &str) -> (u64, u64) {
    let line = out.lines().find(|l| l.starts_with("ingested ")).unwrap_or_else(|| panic!("no ingest line in:\n{out}"));
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    (nums[0], nums[1])
}

#[test]
fn run_feed_dll_trades_the_simulated_market_with_orders_through_send_order() {
    // The live session also stores (embedded store in a temp dir) and
    // publishes its ticks (ZeroMQ, ipc in the temp dir).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let ticks = format!("ipc://{}", path("ticks.sock"));
    let mut env: Vec<(String, String)> = [
        ("TICKHOST__DLL__LOGIN", "full".to_string()),
        ("TICKHOST__DLL__BROKER", "dll".to_string()),
        ("PROFITDLL_PASSWORD", "hunter2".to_string()),
        ("TICKHOST__STORE__EMBEDDED_PATH", path("store.jsonl")),
        ("TICKHOST__STORE__JOURNAL_DIR", path("journal")),
        ("ZMQ_ENABLED", "true".to_string()),
        ("TICKHOST__BUS__TICKS__ENDPOINT", ticks),
        ("TICKHOST__BUS__BOOK__ENDPOINT", format!("ipc://{}", path("book.sock"))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for channel in ["HISTORY", "SIGNALS", "FEATURES", "DECISIONS", "FILLS"] {
        env.push((format!("TICKHOST__BUS__{channel}__ENDPOINT"), String::new()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run("dll", "speed=20000;trades=6000", &env);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let venue = t.lines().find(|l| l.starts_with("venue (SendOrder)")).unwrap_or_else(|| panic!("{t}"));
    let nums: Vec<u64> = venue.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let (intents, fills, rejections, unexpected) = (nums[0], nums[1], nums[2], nums[3]);
    assert!(intents > 0, "the strategies traded: {t}");
    assert_eq!((fills, rejections, unexpected), (intents, 0, 0), "every order filled once: {t}");
    assert!(t.contains("round trips"), "{t}");
    assert!(!t.contains("hunter2"), "a credential was printed");
    assert!(ingested(&t).0 > 5_000, "{t}");
    let book = t.lines().find(|l| l.starts_with("book features:")).unwrap_or_else(|| panic!("{t}"));
    let nums: Vec<u64> = book.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert!(nums[0] > 0 && nums[0] > nums[1], "candle closes read the simulated book: {book}");
    let store = t.lines().find(|l| l.starts_with("store (embedded):")).unwrap_or_else(|| panic!("{t}"));
    let written: u64 = store.split(|c: char| !c.is_ascii_digit()).find_map(|w| w.parse().ok()).unwrap_or(0);
    assert!(written > 5_000, "the session's ticks, candles and decisions are stored: {store}");
    assert!(std::fs::metadata(dir.path().join("store.jsonl")).is_ok_and(|m| m.len() > 0), "{t}");
    let bus = t.lines().find(|l| l.starts_with("bus (ZeroMQ):")).unwrap_or_else(|| panic!("{t}"));
    // `... ticks json 5591 sent/0 dropped, book json 20126 sent/0 dropped`
    let published = |channel: &str| -> u64 {
        let at = bus.find(&format!("{channel} json ")).unwrap_or_else(|| panic!("no {channel} socket in: {bus}"));
        bus[at..].split(|c: char| !c.is_ascii_digit()).find_map(|w| w.parse().ok()).unwrap_or(0)
    };
    assert!(published("ticks") > 5_000, "the ticks are published: {t}");
    assert!(published("book") > 0, "the book's top is published: {t}");
}

#[test]
fn a_dll_crash_in_the_ingest_process_leaves_the_engine_running_without_loss_or_duplicates() {
    let baseline = run("ingest", "speed=20000;trades=6000", &[]);
    let base = text(&baseline);
    assert!(baseline.status.success(), "{base}");
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("crashed");
    let sim = format!("speed=20000;trades=6000;crash_at=1500;crash_once={}", marker.display());
    let crashed = run("ingest", &sim, &[]);
    let t = text(&crashed);
    assert!(crashed.status.success(), "the engine survives the DLL's crash: {t}");
    assert!(marker.exists(), "the crash was injected");
    assert!(t.contains("died 1"), "{t}");
    let (accepted, duplicates) = ingested(&t);
    assert_eq!(accepted, ingested(&base).0, "the same trades as without a crash, once each:\n{t}");
    assert!(duplicates > 0, "the restarted process re-sent trades; dropped by number: {t}");

    // The same crash with the DLL in the engine's process takes the engine down.
    let marker2 = dir.path().join("crashed-in-process");
    let sim = format!("speed=20000;trades=6000;crash_at=1500;crash_once={}", marker2.display());
    let inproc = run("dll", &sim, &[]);
    assert!(!inproc.status.success(), "abort() in the DLL ends the process hosting it");
}
