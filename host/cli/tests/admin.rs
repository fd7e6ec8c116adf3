//! `tickhost run` with its admin API, driven by `tickhost plugins` as an
//! operator would: list, shadow, canary, promote, rollback, refusals, and
//! shutdown. Needs the built plugins (`python3 scripts/build_plugins.py`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tickhost_plugin::PluginIndex;

const TOKEN: &str = "test-token-5f2a9c";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample_day() -> PathBuf {
    repo_root().join("examples/data/wdo-2024-01-08.csv")
}

fn manifest(name: &str) -> String {
    let path = PluginIndex::checkout().and_then(|i| i.manifest(name)).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("utf-8 path").to_string()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `tickhost` command without the caller's settings that would change it.
fn tickhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickhost"));
    cmd.current_dir(repo_root())
        .env_remove("LOG_LEVEL")
        .env_remove("FORCE_FAST_MODE")
        .env_remove("TICKHOST_CONFIG")
        .env_remove("TICKHOST_ADMIN")
        .env_remove("TICKHOST_ADMIN_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    cmd
}

/// Collects a child's pipe on a thread, so a chatty child never blocks.
fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let sink = Arc::new(Mutex::new(String::new()));
    let out = Arc::clone(&sink);
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.lock().expect("sink").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    sink
}

/// A running `tickhost run`; killed and reaped on drop, so a failing test
/// never leaves it behind.
struct Engine {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Engine {
    /// Paced so the feed outlasts the test (about 95 s for the sample day);
    /// the test ends it early with `POST /shutdown`.
    fn start() -> Engine {
        Self::start_with(&["--pace", "200"])
    }

    /// `tickhost run <sample day> --linger --quiet <extra>`, once healthy.
    fn start_with(extra: &[&str]) -> Engine {
        let port = free_port();
        let mut child = tickhost()
            .args(["run", sample_day().to_str().expect("path"), "--linger", "--quiet"])
            .args(extra)
            .env("TICKHOST__ADMIN__BIND", format!("127.0.0.1:{port}"))
            .env("TICKHOST_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tickhost run starts");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let engine = Engine { child, port, stdout, stderr };
        engine.wait_for_health();
        engine
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        format!(
            "--- engine stdout:\n{}\n--- engine stderr:\n{}",
            self.stdout.lock().expect("stdout"),
            self.stderr.lock().expect("stderr")
        )
    }

    fn wait_for_health(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = http(self.port, "GET", "/health", None) {
                assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["status"], "ok", "{body}");
                return;
            }
            assert!(Instant::now() < deadline, "the admin API did not come up within 60 s\n{}", self.logs());
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `tickhost plugins <args>` against this engine, with the token (as a
    /// user who exported it) or without.
    fn plugins(&self, args: &[&str], with_token: bool) -> Output {
        let mut cmd = tickhost();
        cmd.arg("plugins").args(args).env("TICKHOST_ADMIN", self.url());
        if with_token {
            cmd.env("TICKHOST_ADMIN_TOKEN", TOKEN);
        }
        cmd.output().expect("tickhost plugins runs")
    }

    /// Like [`Self::plugins`] with the token, and it must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.plugins(args, true);
        assert!(
            out.status.success(),
            "tickhost plugins {args:?}: exit {:?}\nstdout:\n{}\nstderr:\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.logs()
        );
        text(&out.stdout)
    }

    /// Like [`Self::plugins`] with the token, and it must fail: its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.plugins(args, true);
        assert!(!out.status.success(), "tickhost plugins {args:?} should fail\nstdout:\n{}", text(&out.stdout));
        text(&out.stderr)
    }

    fn status(&self, slot: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", slot, "--json"])).expect("status is JSON")
    }
}

/// A bare HTTP/1.1 request: (status, body).
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    http_with_body(port, method, path, token, "")
}

fn http_with_body(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

#[test]
fn an_operator_shadows_canaries_promotes_and_rolls_back_a_plugin_in_a_running_engine() {
    let trend = manifest("trend");
    let wrong_major = manifest("hostile-wrong-major");
    let engine = Engine::start();

    // The slots of a live engine, all native to begin with.
    let list = engine.ok(&["list"]);
    for slot in ["strategy.trend_up", "strategy.trend_down", "strategy.range", "strategy.undefined", "agent."] {
        assert!(list.contains(slot), "`list` lacks {slot}:\n{list}");
    }
    assert!(list.contains("native"), "{list}");

    // No token: refused, and the message says which variable to set.
    let out = engine.plugins(&["list"], false);
    assert!(!out.status.success(), "a request without the token must fail");
    let err = text(&out.stderr);
    assert!(err.contains("401") && err.contains("TICKHOST_ADMIN_TOKEN"), "{err}");
    let (code, body) = http(engine.port, "GET", "/plugins", None).expect("http");
    assert_eq!(code, 401, "{body}");
    assert!(serde_json::from_str::<Value>(&body).expect("json")["error"].is_string(), "{body}");
    let (code, _) = http(engine.port, "GET", "/plugins", Some("wrong-token")).expect("http");
    assert_eq!(code, 401);

    // Shadow: the candidate runs beside native, acted on never.
    let line = engine.ok(&["shadow", "strategy.trend_up", &trend]);
    assert!(line.starts_with("strategy.trend_up: shadow -> active native, candidate trend"), "{line}");
    let st = engine.status("strategy.trend_up");
    assert_eq!(st["active"], "native", "{st:#}");
    assert_eq!(st["candidate"]["plugin"], "trend", "{st:#}");
    assert_eq!(st["candidate"]["mode"], "shadow", "{st:#}");

    // Canary 50%: the same candidate answers half the events.
    let line = engine.ok(&["canary", "strategy.trend_up", "50"]);
    assert!(line.starts_with("strategy.trend_up: canary -> active native"), "{line}");
    assert_eq!(engine.status("strategy.trend_up")["candidate"]["mode"], serde_json::json!({"canary": 50}));

    // Promote: the candidate becomes the active plugin.
    let line = engine.ok(&["promote", "strategy.trend_up"]);
    assert!(line.starts_with("strategy.trend_up: promote -> active trend"), "{line}");
    assert!(line.contains("paused the engine"), "{line}");
    let st = engine.status("strategy.trend_up");
    assert_eq!(st["active"], "trend", "{st:#}");
    assert!(st["candidate"].is_null(), "{st:#}");

    // A second instance in shadow beside the active one: with a plugin on
    // both sides, their answers are compared on every candle. (A candidate
    // beside a native slot is called but has nothing to be compared with.)
    engine.ok(&["shadow", "strategy.trend_up", &trend]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let compared = loop {
        let st = engine.status("strategy.trend_up");
        let c = &st["candidate"];
        assert_eq!(c["mode"], "shadow", "{st:#}");
        let compared = c["compared"].as_u64().expect("compared");
        if compared > 0 || Instant::now() > deadline {
            break compared;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(compared > 0, "no comparison within 10 s\n{}", engine.logs());
    let table = engine.ok(&["status", "strategy.trend_up"]);
    assert!(table.contains("trend 0.") && table.contains("(shadow)") && table.contains("compared"), "{table}");

    // Rollback with a candidate removes the candidate.
    let line = engine.ok(&["rollback", "strategy.trend_up"]);
    assert!(line.starts_with("strategy.trend_up: rollback -> active trend"), "{line}");
    let st = engine.status("strategy.trend_up");
    assert!(st["candidate"].is_null(), "{st:#}");
    assert!(st["rollout"]["promotions"].as_u64() >= Some(1), "{st:#}");
    assert!(st["rollout"]["rollbacks"].as_u64() >= Some(1), "{st:#}");

    // A plugin built against another WIT major version never reaches the slot.
    let err = engine.refused(&["deploy", "strategy.trend_up", &wrong_major]);
    assert!(err.contains("422") && err.contains("WIT") && err.contains("tickhost:plugin@"), "{err}");
    assert_eq!(engine.status("strategy.trend_up")["active"], "trend");

    // An unknown slot: the error names the slots there are.
    let err = engine.refused(&["status", "strategy.nope"]);
    assert!(err.contains("404") && err.contains("no slot named `strategy.nope`"), "{err}");
    assert!(err.contains("strategy.trend_up"), "{err}");
    let err = engine.refused(&["promote", "nope"]);
    assert!(err.contains("no slot named `nope`"), "{err}");

    // What the API refuses before it reaches the plugin manager.
    let deploy = "/plugins/strategy.trend_up/deploy";
    let relative = r#"{"manifest": "target/plugins/trend/plugin.toml"}"#;
    let (code, body) = http_with_body(engine.port, "POST", deploy, Some(TOKEN), relative).expect("http");
    assert!(code == 400 && body.contains("absolute"), "{code} {body}");
    let huge = format!(r#"{{"manifest": "/{}"}}"#, "x".repeat(70 * 1024));
    let (code, body) = http_with_body(engine.port, "POST", deploy, Some(TOKEN), &huge).expect("http");
    assert_eq!(code, 413, "{body}");
    let (code, body) = http_with_body(engine.port, "POST", deploy, Some(TOKEN), "{not json").expect("http");
    assert_eq!(code, 400, "{body}");
    let (code, _) = http(engine.port, "GET", "/plugins/strategy.trend_up/promote", Some(TOKEN)).expect("http");
    assert_eq!(code, 405);
    let (code, _) = http(engine.port, "GET", "/nowhere", Some(TOKEN)).expect("http");
    assert_eq!(code, 404);

    // A missing manifest is caught on the client side.
    let err = engine.refused(&["shadow", "strategy.trend_up", "no/such/plugin.toml"]);
    assert!(err.contains("cannot find plugin manifest"), "{err}");

    // Shutdown ends the feed early, prints the report and exits.
    let (code, body) = http(engine.port, "POST", "/shutdown", Some(TOKEN)).expect("shutdown");
    assert_eq!(code, 200, "{body}");
    let mut engine = engine;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = engine.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tickhost run did not exit within 60 s of POST /shutdown\n{}",
            engine.logs()
        );
        thread::sleep(Duration::from_millis(100));
    };
    // Let the drain threads catch the last bytes.
    thread::sleep(Duration::from_millis(200));
    assert!(status.success(), "exit {status:?}\n{}", engine.logs());
    let stdout = engine.stdout.lock().expect("stdout").clone();
    assert!(stdout.contains("Backtest report"), "{}", engine.logs());
    let stderr = engine.stderr.lock().expect("stderr").clone();
    assert!(stderr.contains(&format!("admin API at {} (token from TICKHOST_ADMIN_TOKEN)", engine.url())), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token must never be logged:\n{stderr}");
}

/// Needs host/plugin to keep "native" as the rollback target when a plugin
/// replaces a native slot: today Promote and Deploy(Active) keep only a
/// previous *plugin* instance (`previous = old.map(..)` in slots/mod.rs), so
/// this rollback answers "nothing to roll back to".
#[test]
fn rolling_back_a_promoted_plugin_returns_the_slot_to_native() {
    let trend = manifest("trend");
    let engine = Engine::start();
    engine.ok(&["shadow", "strategy.trend_up", &trend]);
    engine.ok(&["promote", "strategy.trend_up"]);
    assert_eq!(engine.status("strategy.trend_up")["active"], "trend");
    let line = engine.ok(&["rollback", "strategy.trend_up"]);
    assert!(line.starts_with("strategy.trend_up: rollback -> active native"), "{line}");
    assert_eq!(engine.status("strategy.trend_up")["active"], "native");
}

#[test]
fn a_run_without_linger_exits_after_the_report_and_prints_a_generated_token_once() {
    let out = tickhost()
        .args(["run", sample_day().to_str().expect("path"), "--quiet"])
        .env("TICKHOST__ADMIN__BIND", "127.0.0.1:0")
        .output()
        .expect("tickhost run");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("Backtest report"), "{stdout}");
    let line = stderr.lines().find(|l| l.starts_with("admin API at http://127.0.0.1:")).expect("the admin URL line");
    let token = line.split("(token ").nth(1).and_then(|r| r.split(':').next()).expect("a generated token");
    assert_eq!(token.len(), 32, "{line}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    assert_eq!(stderr.matches(token).count(), 2, "printed once (in the token and the export hint):\n{stderr}");
}

#[test]
fn a_lingering_run_serves_status_refuses_transitions_and_exits_on_shutdown() {
    let mut engine = Engine::start_with(&[]);
    // At full speed the sample day is over in a moment; then it lingers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine.stderr.lock().expect("stderr").contains("the feed has ended") {
        assert!(Instant::now() < deadline, "no end of feed within 60 s\n{}", engine.logs());
        assert!(
            engine.child.try_wait().expect("try_wait").is_none(),
            "it exited instead of lingering\n{}",
            engine.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert!(engine.stdout.lock().expect("stdout").contains("Backtest report"), "{}", engine.logs());
    let list = engine.ok(&["list"]);
    assert!(list.contains("strategy.trend_up"), "{list}");
    let err = engine.refused(&["promote", "strategy.trend_up"]);
    assert!(err.contains("409") && err.contains("feed has ended"), "{err}");

    let (code, body) = http(engine.port, "POST", "/shutdown", Some(TOKEN)).expect("shutdown");
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = engine.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of POST /shutdown\n{}", engine.logs());
        thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit {status:?}\n{}", engine.logs());
}

#[test]
fn no_engine_at_the_address_says_how_to_start_one() {
    let port = free_port();
    let out = tickhost()
        .args(["plugins", "list", "--admin", &format!("http://127.0.0.1:{port}"), "--token", "x"])
        .output()
        .expect("tickhost plugins");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no engine answers at") && err.contains("tickhost run"), "{err}");
}
