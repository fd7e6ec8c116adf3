//! The ZeroMQ transport with real processes: `tickhost ingest --publish` +
//! `tickhost run --feed zmq...` against the single-process backtest, a pyzmq
//! subscriber written like the seeds' consumers reading a run's ticks and
//! signals, and a pyzmq publisher in the seeds' format feeding the engine.
//! Ports are free ones, ipc sockets live in a temp dir.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample_day() -> PathBuf {
    repo_root().join("examples/data/wdo-2024-01-08.csv")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("addr").port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `tickhost` with storage off and none of the caller's switches.
fn tickhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.current_dir(repo_root())
        .env_remove("LOG_LEVEL")
        .env_remove("TICKHOST_CONFIG")
        .env_remove("ZMQ_ENABLED")
        .env_remove("TICKHOST_ADMIN_TOKEN")
        .env("VALKEY_ENABLED", "false");
    cmd
}

fn python() -> Command {
    let ok = Command::new("python3").args(["-c", "import zmq"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "python3 with pyzmq is needed: run scripts/setup.sh");
    let mut cmd = Command::new("python3");
    cmd.current_dir(repo_root());
    cmd
}

fn finished(child: Child, what: &str) -> Output {
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The single-process backtest's report, without the parts only it has.
fn backtest_report(dir: &Path) -> serde_json::Value {
    let out_dir = dir.join("backtest");
    let out =
        tickhost().args(["backtest", "-q", "--out"]).arg(&out_dir).arg(sample_day()).output().expect("backtest runs");
    assert!(out.status.success(), "backtest: {}", text(&out.stderr));
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).expect("report.json")).expect("json");
    let o = v.as_object_mut().expect("object");
    o.remove("plugin_slots");
    o.remove("ml");
    v
}

/// Engine first (it subscribes and waits), then the ingest process, which
/// waits for the subscription before it sends: nothing is lost.
fn two_processes(dir: &Path, endpoint: &str, format: &str) -> (serde_json::Value, String, String) {
    two_processes_with(dir, endpoint, format, &[], &[])
}

/// [`two_processes`] with extra environment for the engine and the ingest.
fn two_processes_with(
    dir: &Path,
    endpoint: &str,
    format: &str,
    engine_env: &[(&str, &str)],
    ingest_env: &[(&str, &str)],
) -> (serde_json::Value, String, String) {
    let report = dir.join(format!("zmq-{format}.json"));
    let engine = tickhost()
        .envs(engine_env.iter().copied())
        .args(["run", "-q", "--feed", endpoint, "--report"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine starts");
    let ingest = tickhost()
        .envs(ingest_env.iter().copied())
        .args(["ingest", "--format", format, "--wait-subscriber", "30", "--publish", endpoint, "--csv"])
        .arg(sample_day())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ingest starts");
    let ingest = finished(ingest, "tickhost ingest");
    let engine = finished(engine, "tickhost run --feed zmq");
    let v = serde_json::from_slice(&std::fs::read(&report).expect("engine report")).expect("json");
    (v, text(&ingest.stderr), text(&engine.stderr))
}

#[test]
fn two_processes_over_ipc_give_the_single_process_backtest_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("zmq+ipc://{}", dir.path().join("feed.sock").display());
    let (zmq, ingest_err, engine_err) = two_processes(dir.path(), &endpoint, "rkyv");
    assert!(ingest_err.contains("published 19020 trades"), "{ingest_err}");
    assert!(engine_err.contains("19021 messages (19021 rkyv, 0 json)"), "{engine_err}");
    assert!(engine_err.contains("end of stream received") && !engine_err.contains("gaps:"), "{engine_err}");
    let single = backtest_report(dir.path());
    assert_eq!(zmq, single, "the two-process run differs from the single-process backtest");
    assert!(single["trades"].as_u64().is_some_and(|n| n > 0), "the sample day trades: {single}");
}

#[test]
fn two_processes_over_tcp_in_json_give_the_same_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("zmq://127.0.0.1:{}", free_port());
    let (zmq, _, engine_err) = two_processes(dir.path(), &endpoint, "json");
    assert!(engine_err.contains("19021 messages (0 rkyv, 19021 json)"), "{engine_err}");
    assert_eq!(zmq, backtest_report(dir.path()));
}

/// A CURVE key pair (public, secret), Z85, made by pyzmq.
fn curve_keypair() -> (String, String) {
    let out = python()
        .args(["-c", "import zmq; assert zmq.has('curve'); print(*(k.decode() for k in zmq.curve_keypair()))"])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "pyzmq makes a CURVE key pair: {}", text(&out.stderr));
    let keys = text(&out.stdout);
    let mut it = keys.split_whitespace().map(str::to_string);
    (it.next().expect("public"), it.next().expect("secret"))
}

#[test]
fn curve_over_tcp_carries_the_day_to_an_authorized_subscriber_and_nothing_to_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_public, server_secret) = curve_keypair();
    let (client_public, client_secret) = curve_keypair();
    let on = ("TICKHOST__BUS__CURVE__ENABLED", "true");
    let allowed = format!("[\"{client_public}\"]");
    let ingest_env = [
        on,
        ("TICKHOST__BUS__CURVE__SERVER_SECRET_KEY", server_secret.as_str()),
        ("TICKHOST__BUS__CURVE__AUTHORIZED_CLIENTS", allowed.as_str()),
    ];
    let engine_env = [
        on,
        ("TICKHOST__BUS__CURVE__SERVER_PUBLIC_KEY", server_public.as_str()),
        ("TICKHOST__BUS__CURVE__CLIENT_PUBLIC_KEY", client_public.as_str()),
        ("TICKHOST__BUS__CURVE__CLIENT_SECRET_KEY", client_secret.as_str()),
    ];
    let endpoint = format!("zmq://127.0.0.1:{}", free_port());
    let (zmq, ingest_err, engine_err) = two_processes_with(dir.path(), &endpoint, "rkyv", &engine_env, &ingest_env);
    assert!(ingest_err.contains("published 19020 trades"), "{ingest_err}");
    for secret in [&server_secret, &client_secret] {
        assert!(
            !ingest_err.contains(secret.as_str()) && !engine_err.contains(secret.as_str()),
            "a secret key was printed"
        );
    }
    assert_eq!(zmq, backtest_report(dir.path()), "CURVE changes nothing but the wire");

    // Nothing reaches a subscriber that trusts another publisher key, nor one
    // whose own key is not authorized: the handshake fails, the publisher
    // sees no subscriber and sends nothing.
    let (other_public, other_secret) = curve_keypair();
    let strangers: [[(&str, &str); 3]; 2] = [
        [
            ("TICKHOST__BUS__CURVE__SERVER_PUBLIC_KEY", other_public.as_str()),
            ("TICKHOST__BUS__CURVE__CLIENT_PUBLIC_KEY", client_public.as_str()),
            ("TICKHOST__BUS__CURVE__CLIENT_SECRET_KEY", client_secret.as_str()),
        ],
        [
            ("TICKHOST__BUS__CURVE__SERVER_PUBLIC_KEY", server_public.as_str()),
            ("TICKHOST__BUS__CURVE__CLIENT_PUBLIC_KEY", other_public.as_str()),
            ("TICKHOST__BUS__CURVE__CLIENT_SECRET_KEY", other_secret.as_str()),
        ],
    ];
    for (i, stranger) in strangers.into_iter().enumerate() {
        let port = free_port();
        let mut engine = tickhost()
            .env(on.0, on.1)
            .envs(stranger)
            .args(["run", "-q", "--feed", &format!("zmq://127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("engine starts");
        let ingest = tickhost()
            .envs(ingest_env.iter().copied())
            .args(["ingest", "--wait-subscriber", "3", "--publish", &format!("zmq://127.0.0.1:{port}"), "--csv"])
            .arg(sample_day())
            .output()
            .expect("ingest runs");
        let _ = engine.kill();
        let _ = engine.wait();
        let err = text(&ingest.stderr);
        assert!(!ingest.status.success(), "nothing may reach {stranger:?}: {err}");
        assert!(err.contains("no subscriber connected"), "{err}");
        if i == 1 {
            assert!(err.contains("refused a CURVE subscriber not in bus.curve.authorized_clients"), "{err}");
        }
    }
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("admin API");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_python_subscriber_like_the_seeds_reads_ticks_and_signals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ticks = format!("tcp://127.0.0.1:{}", free_port());
    let signals = format!("ipc://{}", dir.path().join("signals.sock").display());
    let mut sub = python()
        .args(["examples/clients/zmq_subscriber.py", "--ticks", &ticks, "--signals", &signals, "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python subscriber starts");
    let mut lines = BufReader::new(sub.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some(r#"{"ready":true}"#));

    let admin = free_port();
    let token = "bus-test-token";
    let engine = tickhost()
        .args(["run", "-q", "--pace", "10000", "--linger"])
        .arg(sample_day())
        .env("ZMQ_ENABLED", "true")
        .env("TICKHOST__ADMIN__BIND", format!("127.0.0.1:{admin}"))
        .env("TICKHOST_ADMIN_TOKEN", token)
        .env("TICKHOST__BUS__TICKS__ENDPOINT", &ticks)
        .env("TICKHOST__BUS__SIGNALS__ENDPOINT", &signals)
        .env("TICKHOST__BUS__BOOK__ENDPOINT", "")
        .env("TICKHOST__BUS__HISTORY__ENDPOINT", "")
        .env("TICKHOST__BUS__FEATURES__ENDPOINT", format!("ipc://{}", dir.path().join("f.sock").display()))
        .env("TICKHOST__BUS__FEATURES__FORMAT", "rkyv")
        .env("TICKHOST__BUS__DECISIONS__ENDPOINT", "")
        .env("TICKHOST__BUS__FILLS__ENDPOINT", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine starts");

    let summary = lines.next().and_then(Result::ok).expect("the subscriber's summary");
    let s: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
    // /health while the engine lingers: the bus counters are there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let h = http(admin, "GET /health HTTP/1.0\r\n\r\n");
        if h.contains("\"bus\"") || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    http(admin, &format!("POST /shutdown HTTP/1.0\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"));
    let engine = finished(engine, "tickhost run");
    let sub_out = sub.wait_with_output().expect("subscriber ends");
    let err = text(&engine.stderr);
    assert!(sub_out.status.success(), "subscriber: {summary}\n{}", text(&sub_out.stderr));

    let ticks_n = s["ticks"].as_u64().expect("ticks");
    let (first, last) = (s["first_seq"].as_u64().expect("first"), s["last_seq"].as_u64().expect("last"));
    // It may join after the first ticks (late joiner), but from then on it gets every one, to the end.
    assert!(ticks_n > 10_000, "{summary}");
    assert_eq!(s["gaps"], 0, "{summary}");
    assert_eq!(last - first + 1, ticks_n, "{summary}");
    assert_eq!(s["end_of_stream"], true, "{summary}");
    assert!(s["signals"].as_u64().is_some_and(|n| n > 0), "{summary}");
    let tick = &s["first_tick"];
    assert_eq!(tick["symbol"], "WDOFUT");
    assert!(tick["timestamp"].as_str().is_some_and(|t| t.starts_with("08/01/2024 ") && t.len() == 23), "{tick}");
    assert!(tick["price"].is_f64() && tick["trade_id"].is_u64() && tick["is_edit"].is_boolean(), "{tick}");

    assert!(err.contains("published, 0 dropped"), "{err}");
    assert!(err.contains(&format!("ticks json {last} sent/0 dropped")), "{err}");
    assert!(health.contains("\"zmq_published\"") && health.contains("\"ticks\""), "{health}");
}

#[test]
fn a_python_publisher_in_the_seeds_format_feeds_the_engine_and_gaps_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let report = dir.path().join("report.json");
    let engine = tickhost()
        .args(["run", "-q", "--idle-exit", "2", "--feed", &format!("zmq://127.0.0.1:{port}"), "--report"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine starts");
    let feeder = python()
        .args(["examples/clients/zmq_feeder.py", "--bind", &format!("tcp://127.0.0.1:{port}"), "--skip", "100-104"])
        .arg("--csv")
        .arg(sample_day())
        .output()
        .expect("python feeder runs");
    assert!(feeder.status.success(), "{}", text(&feeder.stderr));
    assert!(text(&feeder.stdout).contains("published 19015 ticks"), "{}", text(&feeder.stdout));
    let engine = finished(engine, "tickhost run --feed zmq");
    let err = text(&engine.stderr);
    assert!(err.contains("19015 messages (0 rkyv, 19015 json)"), "{err}");
    assert!(err.contains("1 mid-stream (5 messages missing)"), "{err}");
    assert!(err.contains("WDOFUT: trade_id 100..=104 missing (5)"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(r["trades_seen"], 19015, "{r}");
}
