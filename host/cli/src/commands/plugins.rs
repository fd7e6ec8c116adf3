//! `tickhost plugins ...`: the operator's client of a running engine's admin
//! API (`tickhost run`). A small HTTP/1.1 client over `TcpStream` is enough
//! for a handful of JSON requests to localhost; no HTTP crate needed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tickhost_plugin::{Mode, SlotStatus, Transition};

/// Default address of the admin API (`admin.bind` of `tickhost run`).
const DEFAULT_ADMIN: &str = "http://127.0.0.1:7070";

/// Waiting to connect: the engine is local, so this only has to outlast a
/// busy machine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Waiting for the answer: a deploy compiles the plugin (seconds for a
/// Python guest) and then waits up to 10 s for the engine to apply it.
const READ_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Args, Debug)]
pub struct PluginsArgs {
    /// The engine's admin API.
    #[arg(long, global = true, env = "TICKHOST_ADMIN", default_value = DEFAULT_ADMIN, value_name = "URL")]
    pub admin: String,
    /// Bearer token of the admin API (printed by `tickhost run` unless set there).
    #[arg(long, global = true, env = "TICKHOST_ADMIN_TOKEN", hide_env_values = true, value_name = "T")]
    pub token: Option<String>,
    /// Print the engine's JSON answer as is.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Every slot: active plugin, candidate, agreement, calls, fallbacks, latency.
    List,
    /// One slot in detail.
    Status { slot: String },
    /// Replace the slot's active plugin (the old one stays warm for a rollback).
    Deploy { slot: String, manifest: PathBuf },
    /// Run a candidate beside the active plugin; its answers are compared, never acted on.
    Shadow { slot: String, manifest: PathBuf },
    /// Let the candidate answer this percentage of events.
    Canary {
        slot: String,
        #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        /// Deploy this manifest as the canary (default: change the percentage
        /// of the candidate already in shadow or canary).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Make the candidate the active plugin.
    Promote { slot: String },
    /// Remove the candidate, or go back to the previous active plugin.
    Rollback { slot: String },
}

pub fn run(args: PluginsArgs) -> Result<()> {
    let client = Client::new(&args.admin, args.token.as_deref())?;
    match &args.verb {
        Verb::List => {
            let body = client.call("GET", "/plugins", None, "list the slots")?;
            if args.json {
                println!("{body}");
                return Ok(());
            }
            let slots: Vec<SlotStatus> = parse(&body, "the slot list")?;
            print!("{}", status_table(&slots));
        }
        Verb::Status { slot } => {
            let body = client.call("GET", &format!("/plugins/{slot}"), None, &format!("read {slot}"))?;
            if args.json {
                println!("{body}");
                return Ok(());
            }
            let status: SlotStatus = parse(&body, "the slot status")?;
            print!("{}", status_table(std::slice::from_ref(&status)));
            print!("{}", status_details(&status));
        }
        Verb::Deploy { slot, manifest } => client.deploy(slot, manifest, Mode::Active, args.json)?,
        Verb::Shadow { slot, manifest } => client.deploy(slot, manifest, Mode::Shadow, args.json)?,
        Verb::Canary { slot, percent, manifest: Some(manifest) } => {
            client.deploy(slot, manifest, Mode::Canary(*percent), args.json)?;
        }
        Verb::Canary { slot, percent, manifest: None } => {
            client.transition(slot, "canary", Some(json!({ "percent": percent })), args.json)?;
        }
        Verb::Promote { slot } => client.transition(slot, "promote", None, args.json)?,
        Verb::Rollback { slot } => client.transition(slot, "rollback", None, args.json)?,
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T> {
    serde_json::from_str(body).with_context(|| {
        format!("the engine's answer is not {what} this client knows (is it another tickhost version?): {body}")
    })
}

/// The admin API of one engine.
#[derive(Debug)]
struct Client {
    /// As given, for messages.
    url: String,
    host: String,
    port: u16,
    /// A path prefix of the URL (a reverse proxy's), without trailing `/`.
    prefix: String,
    token: Option<String>,
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Client {
    fn new(url: &str, token: Option<&str>) -> Result<Client> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            anyhow!("--admin {url}: only plain http:// URLs are supported (the admin API listens on loopback)")
        })?;
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                (h, p.parse::<u16>().with_context(|| format!("--admin {url}: `{p}` is not a port"))?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            bail!("--admin {url}: no host; use e.g. {DEFAULT_ADMIN}");
        }
        let prefix = prefix.trim_end_matches('/');
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            prefix: if prefix.is_empty() { String::new() } else { format!("/{prefix}") },
            token: token.map(str::trim).filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    /// One request; the answer's body when it is a 200, else an error that
    /// says what to do. `doing`: what the request was for, for messages.
    fn call(&self, method: &str, path: &str, body: Option<&Value>, doing: &str) -> Result<String> {
        let answer = self.request(method, path, body)?;
        match answer.status {
            200 => Ok(answer.body),
            401 => bail!(
                "401 from {}: wrong or missing token: set TICKHOST_ADMIN_TOKEN (or --token) to the token `tickhost run` printed at start",
                self.url
            ),
            status => {
                let why = serde_json::from_str::<Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| answer.body.trim().to_string());
                bail!("cannot {doing}: {status} from {}: {why}", self.url)
            }
        }
    }

    fn deploy(&self, slot: &str, manifest: &Path, mode: Mode, json: bool) -> Result<()> {
        // The engine resolves paths in its own working directory, which is
        // not ours: send an absolute one.
        let absolute = std::fs::canonicalize(manifest).with_context(|| {
            format!("cannot find plugin manifest {}: give the path of the plugin's plugin.toml", manifest.display())
        })?;
        let manifest = absolute
            .to_str()
            .ok_or_else(|| anyhow!("manifest path {} is not UTF-8, which JSON cannot carry", absolute.display()))?;
        self.transition(slot, "deploy", Some(json!({ "manifest": manifest, "mode": mode })), json)
    }

    fn transition(&self, slot: &str, action: &str, body: Option<Value>, json: bool) -> Result<()> {
        let verb = match (action, body.as_ref().and_then(|b| b.get("mode"))) {
            ("deploy", Some(Value::String(m))) if m == "shadow" => "shadow".to_string(),
            ("deploy", Some(Value::Object(_))) => "deploy as canary".to_string(),
            _ => action.to_string(),
        };
        let answer =
            self.call("POST", &format!("/plugins/{slot}/{action}"), body.as_ref(), &format!("{verb} on {slot}"))?;
        if json {
            println!("{answer}");
            return Ok(());
        }
        let t: Transition = parse(&answer, "a transition")?;
        // The transition names plugins; their versions are in the status.
        let status = self
            .request("GET", &format!("/plugins/{slot}"), None)
            .ok()
            .filter(|a| a.status == 200)
            .and_then(|a| serde_json::from_str::<SlotStatus>(&a.body).ok());
        println!("{}", transition_line(&t, status.as_ref()));
        Ok(())
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        let not_there = |e: &dyn std::fmt::Display| {
            anyhow!(
                "no engine answers at {}: {e}; start one with `tickhost run <csv>`, or point --admin (TICKHOST_ADMIN) at the one running",
                self.url
            )
        };
        let addrs: Vec<_> = (self.host.as_str(), self.port).to_socket_addrs().map_err(|e| not_there(&e))?.collect();
        let mut last = None;
        let mut stream = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            return Err(match last {
                Some(e) => not_there(&e),
                None => not_there(&"the host name resolves to no address"),
            });
        };
        stream.set_read_timeout(Some(READ_TIMEOUT)).context("cannot set a socket timeout")?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT)).context("cannot set a socket timeout")?;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: tickhost/{}\r\n",
            self.prefix,
            self.port,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(payload.as_bytes()))
            .and_then(|()| stream.flush())
            .map_err(|e| anyhow!("cannot send the request to {}: {e}", self.url))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                anyhow!(
                    "{} did not answer within {} s; the engine may be stuck: see its log",
                    self.url,
                    READ_TIMEOUT.as_secs()
                )
            } else {
                anyhow!("cannot read the answer of {}: {e}", self.url)
            }
        })?;
        parse_response(&raw)
            .with_context(|| format!("{} did not answer in HTTP: is it a tickhost admin API?", self.url))
    }
}

/// Status line, headers, body (identity or chunked).
fn parse_response(raw: &[u8]) -> Result<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(n) if n <= rest.len() => rest[..n].to_vec(),
            Some(n) => bail!("the body ended after {} of {n} bytes", rest.len()),
            None => rest.to_vec(),
        }
    };
    Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("unterminated chunk size"))?;
        let size_text = std::str::from_utf8(&rest[..eol]).context("chunk size is not text")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size {
            bail!("a chunk ended early");
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// Nanoseconds as microseconds, with a decimal while they are few.
fn micros(ns: u64) -> String {
    if ns < 10_000 { format!("{:.1}", ns as f64 / 1000.0) } else { format!("{}", ns / 1000) }
}

fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Active => "active".into(),
        Mode::Shadow => "shadow".into(),
        Mode::Canary(p) => format!("canary {p}%"),
    }
}

fn with_version(name: &str, version: &str) -> String {
    if version.is_empty() || name == "native" { name.to_string() } else { format!("{name} {version}") }
}

/// `strategy.trend_up: promote -> active trend 0.2.0 (paused the engine 41 µs)`.
fn transition_line(t: &Transition, status: Option<&SlotStatus>) -> String {
    let active_version = status.filter(|s| s.active == t.active).map(|s| s.active_version.as_str()).unwrap_or("");
    let mut line = format!("{}: {} -> active {}", t.slot, t.action, with_version(&t.active, active_version));
    if let Some(candidate) = &t.candidate {
        let known = status.and_then(|s| s.candidate.as_ref()).filter(|c| &c.plugin == candidate);
        match known {
            Some(c) => {
                line.push_str(&format!(", candidate {} in {}", with_version(&c.plugin, &c.version), mode_text(c.mode)))
            }
            None => line.push_str(&format!(", candidate {candidate}")),
        }
    }
    line.push_str(&format!(" (paused the engine {} µs", micros(t.pause_ns)));
    if t.state_handed_over {
        line.push_str(", state handed over");
    }
    line.push(')');
    // A canary's note is its percentage, already in the line.
    if !t.note.is_empty() && (t.action != "canary" || !t.note.ends_with('%')) {
        line.push_str(&format!(": {}", t.note));
    }
    line
}

/// One row per slot.
fn status_table(slots: &[SlotStatus]) -> String {
    let mut rows = vec![[
        "slot".to_string(),
        "active".into(),
        "candidate".into(),
        "agree".into(),
        "calls".into(),
        "fallbacks".into(),
        "p99 µs".into(),
        "last pause µs".into(),
        "rollout".into(),
    ]];
    for s in slots {
        let candidate = s.candidate.as_ref();
        let counts = &s.rollout;
        let rollout: Vec<String> = [
            ("deploys", counts.deploys),
            ("shadows", counts.shadows),
            ("canaries", counts.canaries),
            ("promotions", counts.promotions),
            ("rollbacks", counts.rollbacks),
            ("auto_rollbacks", counts.auto_rollbacks),
            ("rejected", counts.rejected),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
        rows.push([
            s.slot.clone(),
            with_version(&s.active, &s.active_version),
            candidate.map_or_else(
                || "-".to_string(),
                |c| format!("{} ({})", with_version(&c.plugin, &c.version), mode_text(c.mode)),
            ),
            candidate
                .map_or_else(|| "-".to_string(), |c| format!("{:.1}% of {}", c.agreement_rate * 100.0, c.compared)),
            s.stats.calls.to_string(),
            s.stats.fallbacks_total.to_string(),
            if s.stats.latency.count == 0 { "-".into() } else { micros(s.stats.latency.p99_ns) },
            s.pauses_ns.last().map_or_else(|| "-".to_string(), |&ns| micros(ns)),
            if rollout.is_empty() { "-".into() } else { rollout.join(" ") },
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            // Text left, numbers right; the last column is not padded.
            match i {
                0..=3 => line.push_str(&format!("{cell}{}  ", " ".repeat(pad))),
                8 => line.push_str(cell),
                _ => line.push_str(&format!("{}{cell}  ", " ".repeat(pad))),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What the table leaves out for `status <slot>`.
fn status_details(s: &SlotStatus) -> String {
    let mut out = String::from("\n");
    let mut line = |label: &str, text: String| out.push_str(&format!("  {label:<16} {text}\n"));
    line("world", s.world.clone());
    line(
        "active",
        match &s.active_manifest {
            Some(m) => format!("{} ({})", with_version(&s.active, &s.active_version), m.display()),
            None => with_version(&s.active, &s.active_version),
        },
    );
    line("previous", s.previous.clone().unwrap_or_else(|| "-".into()));
    let st = &s.stats;
    let f = &st.fallbacks;
    line(
        "calls",
        format!(
            "{} (plugin ok {}, fallbacks {}: trap {} timeout {} invalid {} missing {} circuit_open {} forced_native {}; p50 {} µs, p99 {} µs)",
            st.calls,
            st.plugin_ok,
            st.fallbacks_total,
            f.trap,
            f.timeout,
            f.invalid_output,
            f.missing,
            f.circuit_open,
            f.forced_native,
            micros(st.latency.p50_ns),
            micros(st.latency.p99_ns)
        ),
    );
    match &s.candidate {
        None => line("candidate", "-".into()),
        Some(c) => {
            line(
                "candidate",
                format!("{} in {} ({})", with_version(&c.plugin, &c.version), mode_text(c.mode), c.manifest.display()),
            );
            line(
                "compared",
                format!(
                    "{} events, agreed {} ({:.1}%), diverged {}, candidate failures {}, acted on {}",
                    c.compared,
                    c.agreed,
                    c.agreement_rate * 100.0,
                    c.divergences,
                    c.candidate_failures,
                    c.acted
                ),
            );
            line(
                "candidate calls",
                format!(
                    "{} (p50 {} µs, p99 {} µs)",
                    // The slot counts calls on its own metrics; the
                    // candidate's latency histogram counts the candidate's.
                    c.stats.latency.count.max(c.stats.calls),
                    micros(c.stats.latency.p50_ns),
                    micros(c.stats.latency.p99_ns)
                ),
            );
            for (i, d) in c.divergence_examples.iter().enumerate() {
                line(if i == 0 { "divergences" } else { "" }, d.clone());
            }
        }
    }
    if !s.pauses_ns.is_empty() {
        let max = s.pauses_ns.iter().copied().max().unwrap_or(0);
        line(
            "engine pauses",
            format!(
                "{} transitions, last {} µs, max {} µs",
                s.pauses_ns.len(),
                micros(*s.pauses_ns.last().unwrap_or(&0)),
                micros(max)
            ),
        );
    }
    if let Some(t) = &s.last_transition {
        line("last transition", transition_line(t, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_parse_into_host_port_and_prefix() {
        let c = Client::new("http://127.0.0.1:7070", Some("t")).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.prefix.as_str()), ("127.0.0.1", 7070, ""));
        let c = Client::new("http://localhost/admin/", None).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.prefix.as_str()), ("localhost", 80, "/admin"));
        let c = Client::new("http://[::1]:9000", Some(" ")).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9000));
        assert!(c.token.is_none());
        assert!(Client::new("https://x:1", None).is_err());
        assert!(Client::new("http://x:notaport", None).is_err());
    }

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let a = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "{}"));
        let a =
            parse_response(b"HTTP/1.1 422 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((a.status, a.body.as_str()), (422, "{\"a\":1}"));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn a_transition_reads_as_one_line() {
        let t = Transition {
            slot: "strategy.trend_up".into(),
            action: "promote".into(),
            active: "trend".into(),
            candidate: None,
            state_handed_over: false,
            pause_ns: 41_000,
            note: String::new(),
        };
        assert_eq!(transition_line(&t, None), "strategy.trend_up: promote -> active trend (paused the engine 41 µs)");
    }
}
