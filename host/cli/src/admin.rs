//! The admin HTTP API of `tickhost run`: slot status and live plugin rollout
//! for an operator (`tickhost plugins ...` is its client).
//!
//! Requests are served on the server's own worker threads, never the engine
//! thread: a deploy compiles on the plugin manager's compiler thread and
//! waits for the engine to apply it between two events, so it blocks one
//! worker for a while; the others keep answering status requests meanwhile.
//!
//! Every endpoint but `/health` needs `Authorization: Bearer <token>`: the
//! API swaps the strategies that trade. It listens on loopback by default.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use tickhost_plugin::{Mode, PluginError, PluginManager, Transition};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::AdminConfig;

/// Environment variable with the bearer token; wins over `admin.token`.
pub const TOKEN_ENV: &str = "TICKHOST_ADMIN_TOKEN";

/// Request bodies are a manifest path and a mode: 64 KiB is plenty and keeps
/// a careless or hostile client from making a worker buffer much.
const MAX_BODY: usize = 64 * 1024;

/// Workers: enough that deploys in flight (each blocks its worker until the
/// engine applied it) leave some to answer status and rollback.
const WORKERS: usize = 4;

/// How often an idle worker looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Where the token came from, for the start-up line (which prints the token
/// only when it was generated: otherwise the operator already has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Env,
    Config,
    Generated,
}

/// The running admin server.
pub struct AdminServer {
    url: String,
    token: String,
    source: TokenSource,
    stop: Arc<AtomicBool>,
    ctx: Arc<Ctx>,
    workers: Vec<JoinHandle<()>>,
}

/// By hand: the token never reaches a log line.
impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl AdminServer {
    /// Listens on `config.bind` (the token from `TICKHOST_ADMIN_TOKEN`, else
    /// `config.token`, else a random one) and serves `manager`'s slots.
    pub fn start(config: &AdminConfig, manager: Arc<PluginManager>) -> Result<AdminServer> {
        let (token, source) = resolve_token(std::env::var(TOKEN_ENV).ok().as_deref(), &config.token)?;
        let addrs: Vec<SocketAddr> = config
            .bind
            .to_socket_addrs()
            .with_context(|| {
                format!("admin.bind = {:?} is not an address: use host:port, e.g. 127.0.0.1:7070", config.bind)
            })?
            .collect();
        if addrs.iter().any(|a| !a.ip().is_loopback()) {
            tracing::warn!(
                bind = %config.bind,
                "the admin API listens beyond loopback: anyone who reaches it with the token can swap the engine's plugins"
            );
        }
        let server = Server::http(addrs.as_slice()).map_err(|e| {
            anyhow!(
                "cannot listen on {} for the admin API: {e}; is another `tickhost run` using it? Set admin.bind (e.g. TICKHOST__ADMIN__BIND=127.0.0.1:7071)",
                config.bind
            )
        })?;
        let local = server.server_addr().to_ip().ok_or_else(|| anyhow!("the admin API is not on a TCP address"))?;
        let url = format!("http://{local}");
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Arc::new(Ctx {
            manager,
            token: token.clone(),
            stop: Arc::clone(&stop),
            feed_ended: AtomicBool::new(false),
            store: std::sync::OnceLock::new(),
            bus: std::sync::OnceLock::new(),
        });
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let server = Arc::clone(&server);
            let ctx = Arc::clone(&ctx);
            let worker = thread::Builder::new()
                .name(format!("admin-http-{i}"))
                .spawn(move || serve(&server, &ctx))
                .context("cannot start the admin API threads")?;
            workers.push(worker);
        }
        tracing::info!(%url, "admin API listening");
        Ok(AdminServer { url, token, source, stop, ctx, workers })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The one line for stderr at start: the URL, and the token when it was
    /// made up here (nobody else knows it).
    pub fn banner(&self) -> String {
        match self.source {
            TokenSource::Generated => format!(
                "admin API at {url} (token {token}: export {TOKEN_ENV}={token} TICKHOST_ADMIN={url} for `tickhost plugins`)",
                url = self.url,
                token = self.token
            ),
            TokenSource::Env => format!("admin API at {} (token from {TOKEN_ENV})", self.url),
            TokenSource::Config => format!("admin API at {} (token from admin.token)", self.url),
        }
    }

    /// Raised by `POST /shutdown`; hand it to the feed to end a run early.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Shows the ZeroMQ publisher's counters in /health from now on.
    pub fn attach_bus(&self, status: Arc<tickhost_bus::BusStatus>) {
        let _ = self.ctx.bus.set(status);
    }

    /// Shows the store writer's status in /health from now on.
    pub fn attach_store(&self, status: Arc<tickhost_store::writer::StoreStatus>) {
        let _ = self.ctx.store.set(status);
    }

    /// The engine will see no more events, so a transition could never be
    /// applied: from now on they are refused at once (status stays readable).
    pub fn feed_ended(&self) {
        self.ctx.feed_ended.store(true, Ordering::Relaxed);
    }

    pub fn shutdown_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Blocks until `POST /shutdown` (Ctrl-C ends the process on its own).
    /// Polls: this is the thread that ran the engine, which has finished.
    pub fn wait_for_shutdown(&self) {
        while !self.shutdown_requested() {
            thread::sleep(IDLE_POLL);
        }
    }

    /// Stops serving. Workers finish the request in hand; one still waiting
    /// for a deploy is left behind after a while rather than holding the
    /// process open (it ends with the process).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(2);
        for worker in self.workers {
            while !worker.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if worker.is_finished() && worker.join().is_err() {
                tracing::warn!("an admin API thread panicked");
            }
        }
    }
}

/// `env` (`TICKHOST_ADMIN_TOKEN`) if set, else the configured token, else a
/// random one.
pub fn resolve_token(env: Option<&str>, configured: &str) -> Result<(String, TokenSource)> {
    let (token, source) = match env.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => (t.to_string(), TokenSource::Env),
        None if !configured.trim().is_empty() => (configured.trim().to_string(), TokenSource::Config),
        None => (random_token(), TokenSource::Generated),
    };
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let from = if source == TokenSource::Env { TOKEN_ENV } else { "admin.token" };
        anyhow::bail!("{from} contains whitespace or control characters, which cannot travel in an HTTP header");
    }
    Ok((token, source))
}

/// 128 random bits as 32 hex characters: from the kernel, or, where there is
/// no `/dev/urandom`, from std's randomly keyed hasher.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let from_kernel = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_kernel {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            // Each RandomState gets fresh keys; the time and index only make
            // the two halves differ should the keys repeat.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented secret with the expected one in time that depends
/// only on the expected one's length, not on where they differ.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = presented.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(presented.get(i).copied().unwrap_or(0) ^ e);
    }
    std::hint::black_box(diff) == 0
}

struct Ctx {
    manager: Arc<PluginManager>,
    token: String,
    stop: Arc<AtomicBool>,
    feed_ended: AtomicBool,
    /// The store writer's status, shown by /health (state, lag, journal).
    store: std::sync::OnceLock<Arc<tickhost_store::writer::StoreStatus>>,
    /// The ZeroMQ publisher's per-socket counters, shown by /health.
    bus: std::sync::OnceLock<Arc<tickhost_bus::BusStatus>>,
}

fn serve(server: &Server, ctx: &Ctx) {
    while !ctx.stop.load(Ordering::Relaxed) {
        match server.recv_timeout(IDLE_POLL) {
            Ok(Some(request)) => handle(request, ctx),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("admin API: cannot accept a request: {e}");
                thread::sleep(IDLE_POLL);
            }
        }
    }
}

/// A JSON answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(value: &impl Serialize) -> Reply {
        match serde_json::to_string(value) {
            Ok(body) => Reply { status: 200, body },
            Err(e) => Reply::error(500, format!("the answer does not serialise: {e}")),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        let body = serde_json::json!({ "error": message.into() }).to_string();
        Reply { status, body }
    }

    fn from_plugin_error(e: &PluginError) -> Reply {
        let status = match e {
            PluginError::UnknownSlot { .. } => 404,
            PluginError::Engine(_) => 503,
            _ => 422,
        };
        Reply::error(status, e.to_string())
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn handle(mut request: Request, ctx: &Ctx) {
    let url = request.url().to_string();
    let path = url.split(['?', '#']).next().unwrap_or_default();
    if path.trim_end_matches('/') == "/metrics" {
        return serve_metrics(request, ctx);
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    let reply = if segments == ["health"] {
        match method {
            Method::Get | Method::Head => {
                let mut health = match ctx.store.get() {
                    Some(store) => serde_json::json!({ "status": "ok", "store": store.snapshot() }),
                    None => serde_json::json!({ "status": "ok" }),
                };
                if let Some(bus) = ctx.bus.get() {
                    health["bus"] = bus.json();
                }
                Reply::json(&health)
            }
            _ => Reply::error(405, "use GET /health"),
        }
    } else if !authorized(&request, &ctx.token) {
        tracing::debug!(remote = ?request.remote_addr(), %method, path, "admin API: request without the right token");
        Reply::error(
            401,
            format!(
                "missing or wrong token: send `Authorization: Bearer <token>` with the token `tickhost run` printed or {TOKEN_ENV}"
            ),
        )
    } else {
        route(&mut request, &method, &segments, ctx)
    };
    let unauthorized = reply.status == 401;
    let mut response = Response::from_string(reply.body)
        .with_status_code(reply.status)
        // One Content-Length, never chunked: simple clients read to the end.
        .with_chunked_threshold(usize::MAX);
    for h in [header("Content-Type", "application/json"), header("Cache-Control", "no-store")].into_iter().flatten() {
        response.add_header(h);
    }
    if unauthorized && let Some(h) = header("WWW-Authenticate", "Bearer") {
        response.add_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!("admin API: cannot send the answer: {e}");
    }
}

/// `GET /metrics`: Prometheus text format (0.0.4). Like /health it needs no
/// token (read-only counters; the API listens on loopback by default).
fn serve_metrics(request: Request, ctx: &Ctx) {
    let (status, body, content_type) = match request.method() {
        Method::Get | Method::Head => (200, metrics_text(ctx), "text/plain; version=0.0.4; charset=utf-8"),
        _ => (405, "use GET /metrics\n".to_string(), "text/plain; charset=utf-8"),
    };
    let mut response = Response::from_string(body).with_status_code(status).with_chunked_threshold(usize::MAX);
    for h in [header("Content-Type", content_type), header("Cache-Control", "no-store")].into_iter().flatten() {
        response.add_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!("admin API: cannot send the metrics: {e}");
    }
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The store writer's counters (when the run has storage) and the plugin
/// slots' calls, fallbacks and latency.
fn metrics_text(ctx: &Ctx) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(4096);
    if let Some(store) = ctx.store.get() {
        out.push_str(&store.prometheus());
    }
    let slots = ctx.manager.list();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&tickhost_plugin::SlotStats) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &slots {
            let _ = writeln!(
                out,
                "{name}{{slot=\"{}\",plugin=\"{}\"}} {}",
                label(&s.slot),
                label(&s.active),
                value(&s.stats)
            );
        }
    };
    family("tickhost_plugin_calls_total", "counter", "Events the slot answered.", &|s| s.calls);
    family("tickhost_plugin_ok_total", "counter", "Events the plugin answered validly.", &|s| s.plugin_ok);
    family("tickhost_plugin_fallbacks_total", "counter", "Events the native implementation answered instead.", &|s| {
        s.fallbacks_total
    });
    family("tickhost_plugin_traps_total", "counter", "Plugin calls that trapped.", &|s| s.fallbacks.trap);
    family("tickhost_plugin_timeouts_total", "counter", "Plugin calls over their deadline.", &|s| s.fallbacks.timeout);
    family("tickhost_plugin_circuit_open", "gauge", "1 while the slot's circuit breaker is open.", &|s| {
        u64::from(s.circuit_open)
    });
    family("tickhost_plugin_latency_p50_ns", "gauge", "Median plugin call latency (log2 bucket bound).", &|s| {
        s.latency.p50_ns
    });
    family("tickhost_plugin_latency_p99_ns", "gauge", "p99 plugin call latency (log2 bucket bound).", &|s| {
        s.latency.p99_ns
    });
    out
}

fn authorized(request: &Request, token: &str) -> bool {
    let Some(value) = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str())
    else {
        return false;
    };
    match value.trim().split_once(' ') {
        Some((scheme, presented)) if scheme.eq_ignore_ascii_case("bearer") => {
            same_secret(presented.trim().as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    manifest: PathBuf,
    #[serde(default)]
    mode: Mode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryBody {
    percent: u8,
}

fn route(request: &mut Request, method: &Method, segments: &[&str], ctx: &Ctx) -> Reply {
    let manager = &ctx.manager;
    match (method, segments) {
        (Method::Get, ["plugins"]) => Reply::json(&manager.list()),
        (Method::Get, ["plugins", slot]) => match manager.status(slot) {
            Ok(status) => Reply::json(&status),
            Err(e) => Reply::from_plugin_error(&e),
        },
        (Method::Post, ["plugins", slot, action @ ("deploy" | "canary" | "promote" | "rollback")]) => {
            transition(request, slot, action, ctx)
        }
        (Method::Post, ["shutdown"]) => {
            let remote = request.remote_addr().map_or_else(|| "-".to_string(), ToString::to_string);
            tracing::info!(remote = %remote, "admin API: shutdown requested");
            ctx.stop.store(true, Ordering::Relaxed);
            Reply::json(&serde_json::json!({ "status": "shutting down" }))
        }
        (_, ["plugins"] | ["plugins", _]) => Reply::error(405, "use GET"),
        (_, ["plugins", _, "deploy" | "canary" | "promote" | "rollback"] | ["shutdown"]) => {
            Reply::error(405, "use POST")
        }
        _ => Reply::error(
            404,
            "no such endpoint: GET /health, GET /plugins, GET /plugins/<slot>, POST /plugins/<slot>/{deploy,canary,promote,rollback}, POST /shutdown",
        ),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(request: &mut Request, what: &str) -> Result<T, Reply> {
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(Reply::error(413, format!("the body is over {} KiB", MAX_BODY / 1024)));
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Reply::error(413, format!("the body is over {} KiB", MAX_BODY / 1024)));
    }
    serde_json::from_slice(&body).map_err(|e| Reply::error(400, format!("the body is not {what}: {e}")))
}

fn transition(request: &mut Request, slot: &str, action: &str, ctx: &Ctx) -> Reply {
    let remote = request.remote_addr().map_or_else(|| "-".to_string(), ToString::to_string);
    if ctx.feed_ended.load(Ordering::Relaxed) {
        tracing::info!(remote = %remote, slot, action, "admin API: transition refused: the feed has ended");
        return Reply::error(
            409,
            "the feed has ended, so the engine sees no more events and cannot apply a transition; only status is served now: start a new `tickhost run` to deploy",
        );
    }
    let outcome: Result<Transition, PluginError> = match action {
        "deploy" => {
            let body: DeployBody = match read_json(
                request,
                r#"{"manifest": "<absolute path>", "mode": "active" | "shadow" | {"canary": N}}"#,
            ) {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            if !body.manifest.is_absolute() {
                return Reply::error(
                    400,
                    format!(
                        "manifest {} is relative: send an absolute path (the engine's working directory is not the client's)",
                        body.manifest.display()
                    ),
                );
            }
            tracing::info!(remote = %remote, slot, action, manifest = %body.manifest.display(), mode = ?body.mode, "admin API: transition requested");
            ctx.manager.deploy(slot, &body.manifest, body.mode)
        }
        "canary" => {
            let body: CanaryBody = match read_json(request, r#"{"percent": 0..100}"#) {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            tracing::info!(remote = %remote, slot, action, percent = body.percent, "admin API: transition requested");
            ctx.manager.set_canary(slot, body.percent)
        }
        "promote" => {
            tracing::info!(remote = %remote, slot, action, "admin API: transition requested");
            ctx.manager.promote(slot)
        }
        _ => {
            tracing::info!(remote = %remote, slot, action, "admin API: transition requested");
            ctx.manager.rollback(slot)
        }
    };
    match outcome {
        Ok(t) => {
            tracing::info!(slot, action = %t.action, active = %t.active, candidate = ?t.candidate, pause_ns = t.pause_ns, "admin API: transition applied");
            Reply::json(&t)
        }
        Err(e) => {
            tracing::warn!(slot, action, "admin API: transition refused: {e}");
            Reply::from_plugin_error(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_environment_then_the_config_then_chance() {
        assert_eq!(resolve_token(Some("envtok"), "conftok").unwrap(), ("envtok".into(), TokenSource::Env));
        assert_eq!(resolve_token(Some(""), "conftok").unwrap(), ("conftok".into(), TokenSource::Config));
        assert_eq!(resolve_token(None, "conftok").unwrap(), ("conftok".into(), TokenSource::Config));
        let (a, source) = resolve_token(None, "").unwrap();
        let (b, _) = resolve_token(Some("  "), "").unwrap();
        assert_eq!(source, TokenSource::Generated);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b, "two generated tokens should differ");
        assert!(resolve_token(Some("two words"), "").is_err());
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abc123", b"abc123"));
        assert!(!same_secret(b"abc124", b"abc123"));
        assert!(!same_secret(b"abc12", b"abc123"));
        assert!(!same_secret(b"abc1234", b"abc123"));
        assert!(!same_secret(b"", b"abc123"));
        assert!(same_secret(b"", b""));
    }
}
