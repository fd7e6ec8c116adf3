//! The Valkey backend: the `redis` crate (1.x) on a private current-thread
//! tokio runtime, multiplexed connections, explicit connect and response
//! timeouts (the crate's 500 ms default would cut a large XRANGE short),
//! standalone or cluster.
//!
//! A broken connection is dropped and made again on the next call, so a
//! server that restarts is picked up without restarting tickhost.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value, cmd};

use crate::{AgentPerformance, Applied, Entry, Health, Op, PatternStats, Store, StoreError, StreamId, keys};

/// Where the server is and how to log in. Credentials come from the
/// environment (`VALKEY_USERNAME`, `VALKEY_PASSWORD`) or the URL; `Debug`
/// never shows them.
#[derive(Clone)]
pub struct ValkeyConfig {
    /// `redis://host:port[/db]` (`valkey://` is accepted too); a cluster
    /// takes one or more of its nodes.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// ACL user; `None`: the default user.
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS (`rediss://`). Needs a server built with TLS.
    pub tls: bool,
    /// PEM CA that signed the server's certificate; `None`: the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for a server that authenticates
    /// clients (`tls-auth-clients yes`). The key's content is never logged.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl ValkeyConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            cluster: false,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
        }
    }

    /// Fills username and password from `VALKEY_USERNAME` / `VALKEY_PASSWORD`
    /// when they are set and not empty.
    pub fn with_env_credentials(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(u) = env("VALKEY_USERNAME").filter(|s| !s.is_empty()) {
            self.username = Some(u);
        }
        if let Some(p) = env("VALKEY_PASSWORD").filter(|s| !s.is_empty()) {
            self.password = Some(p);
        }
        self
    }

    fn connection_info(&self, url: &str) -> Result<redis::ConnectionInfo, StoreError> {
        let mut url = url.trim().to_string();
        if let Some(rest) = url.strip_prefix("valkey://") {
            url = format!("redis://{rest}");
        } else if let Some(rest) = url.strip_prefix("valkeys://") {
            url = format!("rediss://{rest}");
        }
        if self.tls
            && let Some(rest) = url.strip_prefix("redis://")
        {
            url = format!("rediss://{rest}");
        }
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| StoreError::Config(format!("store url {}: {e}", redact_url(&url))))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        Ok(info.set_redis_settings(settings))
    }
}

impl ValkeyConfig {
    /// The CA and client certificate files, read; `None` when TLS is off or
    /// uses the system's roots without a client certificate.
    fn tls_certificates(&self) -> Result<Option<redis::TlsCertificates>, StoreError> {
        if !self.tls || (self.tls_ca_file.is_none() && self.tls_cert_file.is_none()) {
            return Ok(None);
        }
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| StoreError::Io { what, path: path.clone(), source })
        };
        let root_cert = self
            .tls_ca_file
            .as_ref()
            .map(|p| read("cannot read the TLS CA file (store.tls_ca_file)", p))
            .transpose()?;
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("cannot read the TLS client certificate (store.tls_cert_file)", cert)?,
                client_key: read("cannot read the TLS client key (store.tls_key_file)", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Config(
                    "store.tls_cert_file and store.tls_key_file go together: set both or neither".into(),
                ));
            }
        };
        Ok(Some(redis::TlsCertificates { client_tls, root_cert }))
    }
}

impl fmt::Debug for ValkeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("ValkeyConfig")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// `redis://user:secret@host` -> `redis://user:<redacted>@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else { return url.to_string() };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!("{}{user}:<redacted>@{}", &url[..scheme_end + 3], &rest[at + 1..])
}

enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Feedback aggregated on write, once per decision: ZADD NX remembers the
/// decision; only a new one bumps the counters. KEYS[1] the agent's
/// decisions, KEYS[2] its performance hash (same hash tag).
const FEEDBACK_SCRIPT: &str = r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'total_decisions', 1)
redis.call('HINCRBY', KEYS[2], 'wins', tonumber(ARGV[3]))
redis.call('HINCRBYFLOAT', KEYS[2], 'total_pnl_brl', ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[2], 'total_reward', ARGV[5])
return 1
";

/// A pattern occurrence aggregated on write, once per occurrence. KEYS[1]
/// the occurrences seen, KEYS[2] the aggregate (same hash tag). ARGV: time,
/// occurrence, outcome (1, -1, 0), points moved.
const PATTERN_SCRIPT: &str = r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'occurrences', 1)
local o = tonumber(ARGV[3])
if o > 0 then redis.call('HINCRBY', KEYS[2], 'wins', 1)
elseif o < 0 then redis.call('HINCRBY', KEYS[2], 'losses', 1)
else redis.call('HINCRBY', KEYS[2], 'flat', 1) end
redis.call('HINCRBYFLOAT', KEYS[2], 'total_move_points', ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[2], 'last_seen_ms') or '0')
if tonumber(ARGV[1]) > last then redis.call('HSET', KEYS[2], 'last_seen_ms', ARGV[1]) end
return 1
";

pub struct ValkeyStore {
    rt: tokio::runtime::Runtime,
    config: ValkeyConfig,
    conn: Option<Conn>,
}

impl fmt::Debug for ValkeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValkeyStore").field("config", &self.config).field("connected", &self.conn.is_some()).finish()
    }
}

fn unavailable(what: &str, e: &redis::RedisError) -> StoreError {
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.to_string().contains("NOAUTH") {
        return StoreError::Config(format!(
            "{what}: authentication failed ({e}); check VALKEY_USERNAME / VALKEY_PASSWORD"
        ));
    }
    StoreError::Unavailable(format!("{what}: {e}"))
}

impl ValkeyStore {
    /// Makes the client; connects on first use, so a server that is not up
    /// yet is not an error here.
    pub fn new(config: ValkeyConfig) -> Result<Self, StoreError> {
        if config.urls.is_empty() {
            return Err(StoreError::Config("no Valkey url given".into()));
        }
        for url in &config.urls {
            config.connection_info(url)?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the store's tokio runtime: {e}")))?;
        Ok(Self { rt, config, conn: None })
    }

    /// Connects now, so a bad address or password shows at start.
    pub fn connect(config: ValkeyConfig) -> Result<Self, StoreError> {
        let mut store = Self::new(config)?;
        store.ping()?;
        Ok(store)
    }

    pub fn config(&self) -> &ValkeyConfig {
        &self.config
    }

    /// A plain connection for [`crate::raw`] range reads (standalone, no TLS).
    pub fn raw_connection(&self) -> Result<crate::raw::RawConnection, StoreError> {
        if self.config.cluster || self.config.tls {
            return Err(StoreError::Config("raw range reads are for a standalone server without TLS".into()));
        }
        let info = self.config.connection_info(&self.config.urls[0])?;
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return Err(StoreError::Config("raw range reads need a TCP address".into()));
        };
        crate::raw::RawConnection::connect(
            host,
            *port,
            self.config.username.as_deref(),
            self.config.password.as_deref(),
            self.config.response_timeout,
        )
    }

    fn ensure(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let cfg = &self.config;
        let conn = if cfg.cluster {
            let infos: Vec<redis::ConnectionInfo> =
                cfg.urls.iter().map(|u| cfg.connection_info(u)).collect::<Result<_, _>>()?;
            let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.response_timeout)
                .retries(2);
            if let Some(u) = &cfg.username {
                builder = builder.username(u);
            }
            if let Some(p) = &cfg.password {
                builder = builder.password(p);
            }
            if let Some(certs) = cfg.tls_certificates()? {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(|e| unavailable("cluster client", &e))?;
            let conn = self
                .rt
                .block_on(client.get_async_connection())
                .map_err(|e| unavailable("connecting to the Valkey cluster", &e))?;
            Conn::Cluster(conn)
        } else {
            let info = cfg.connection_info(&cfg.urls[0])?;
            let client = match cfg.tls_certificates()? {
                Some(certs) => redis::Client::build_with_tls(info, certs),
                None => redis::Client::open(info),
            }
            .map_err(|e| {
                StoreError::Config(format!(
                    "store TLS setup: {e}; check store.tls_ca_file / tls_cert_file / tls_key_file"
                ))
            })?;
            let async_cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(cfg.connect_timeout))
                .set_response_timeout(Some(cfg.response_timeout));
            let conn = self
                .rt
                .block_on(client.get_multiplexed_async_connection_with_config(&async_cfg))
                .map_err(|e| unavailable(&format!("connecting to {}", redact_url(&cfg.urls[0])), &e))?;
            Conn::Single(conn)
        };
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs one command; a connection error drops the connection.
    fn query(&mut self, what: &str, c: &Cmd) -> Result<Value, StoreError> {
        self.ensure()?;
        let Some(conn) = self.conn.as_mut() else { return Err(StoreError::Unavailable("not connected".into())) };
        match self.rt.block_on(c.query_async::<Value>(conn)) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Err(StoreError::Protocol(format!("{what}: {e}")))
            }
            Err(e) => {
                self.conn = None;
                Err(unavailable(what, &e))
            }
        }
    }

    /// Runs `cmds` as pipelines, one per routing key in a cluster (a
    /// pipeline must stay in one slot there), one in all for a single
    /// server. Per-command replies in input order; server errors stay values.
    fn pipelined(&mut self, cmds: Vec<(&str, Cmd)>) -> Result<Vec<Value>, StoreError> {
        self.ensure()?;
        let cluster = self.config.cluster;
        let Some(conn) = self.conn.as_mut() else { return Err(StoreError::Unavailable("not connected".into())) };
        let n = cmds.len();
        let mut groups: Vec<(Pipeline, Vec<usize>)> = Vec::new();
        if cluster {
            let mut by_key: HashMap<&str, usize> = HashMap::new();
            for (i, (key, c)) in cmds.into_iter().enumerate() {
                let g = *by_key.entry(key).or_insert_with(|| {
                    let mut p = redis::pipe();
                    p.ignore_errors();
                    groups.push((p, Vec::new()));
                    groups.len() - 1
                });
                groups[g].0.add_command(c);
                groups[g].1.push(i);
            }
        } else {
            let mut p = redis::pipe();
            p.ignore_errors();
            let mut idx = Vec::with_capacity(n);
            for (i, (_, c)) in cmds.into_iter().enumerate() {
                p.add_command(c);
                idx.push(i);
            }
            groups.push((p, idx));
        }
        let mut out = vec![Value::Nil; n];
        let result: Result<(), redis::RedisError> = self.rt.block_on(async {
            for (pipe, idx) in &groups {
                let replies: Vec<Value> = pipe.query_async(conn).await?;
                for (i, v) in idx.iter().zip(replies) {
                    out[*i] = v;
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.conn = None;
                Err(unavailable("pipeline", &e))
            }
        }
    }

    /// The primaries of a cluster (`CLUSTER NODES`), or the one server.
    fn nodes(&mut self) -> Result<Vec<String>, StoreError> {
        if !self.config.cluster {
            return Ok(vec![self.config.urls[0].clone()]);
        }
        let v = self.query("CLUSTER NODES", &cmd("CLUSTER").arg("NODES").clone())?;
        let text = value_string(v)?;
        let scheme = if self.config.tls { "rediss" } else { "redis" };
        Ok(text
            .lines()
            .filter(|l| l.split_whitespace().nth(2).is_some_and(|flags| flags.contains("master")))
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|addr| format!("{scheme}://{}", addr.split('@').next().unwrap_or(addr)))
            .collect())
    }

    /// Runs `f` against a direct connection to every node (SCAN, INFO).
    fn per_node<T>(
        &mut self,
        mut f: impl FnMut(&mut ValkeyStore) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if !self.config.cluster {
            return Ok(vec![f(self)?]);
        }
        let mut out = Vec::new();
        for url in self.nodes()? {
            let mut cfg = self.config.clone();
            cfg.urls = vec![url];
            cfg.cluster = false;
            let mut node = ValkeyStore::new(cfg)?;
            out.push(f(&mut node)?);
        }
        Ok(out)
    }

    fn hgetall(&mut self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        match self.query("HGETALL", &cmd("HGETALL").arg(key).clone())? {
            Value::Array(a) => {
                let mut it = a.into_iter();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((value_string(k)?, value_string(v)?));
                }
                Ok(out)
            }
            Value::Map(m) => m.into_iter().map(|(k, v)| Ok((value_string(k)?, value_string(v)?))).collect(),
            other => Err(StoreError::Protocol(format!("HGETALL {other:?}"))),
        }
    }

    fn xadd_cmd(key: &str, id: StreamId, maxlen: u64, fields: &[(String, String)]) -> Cmd {
        let mut c = cmd("XADD");
        c.arg(key);
        if maxlen > 0 {
            c.arg("MAXLEN").arg("~").arg(maxlen);
        }
        c.arg(id.to_string());
        for (k, v) in fields {
            c.arg(k).arg(v);
        }
        c
    }
}

fn value_string(v: Value) -> Result<String, StoreError> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|e| StoreError::Protocol(format!("not UTF-8: {e}"))),
        Value::SimpleString(s) => Ok(s),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(StoreError::Protocol(format!("expected a string, got {other:?}"))),
    }
}

fn value_u64(v: &Value) -> u64 {
    match v {
        Value::Int(i) => (*i).max(0) as u64,
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

/// XRANGE / XREVRANGE reply -> entries, moving the server's bytes into the
/// strings without copying them again.
fn parse_entries(v: Value) -> Result<Vec<Entry>, StoreError> {
    let Value::Array(items) = v else { return Err(StoreError::Protocol(format!("XRANGE reply {v:?}"))) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            return Err(StoreError::Protocol("XRANGE entry is not a pair".into()));
        };
        if pair.len() != 2 {
            return Err(StoreError::Protocol("XRANGE entry is not a pair".into()));
        }
        let fields_v = pair.pop().unwrap_or(Value::Nil);
        let id: StreamId = value_string(pair.pop().unwrap_or(Value::Nil))?.parse()?;
        let flat = match fields_v {
            Value::Array(f) => f,
            Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => return Err(StoreError::Protocol(format!("XRANGE fields {other:?}"))),
        };
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.push((value_string(k)?, value_string(v)?));
        }
        out.push(Entry { id, fields });
    }
    Ok(out)
}

impl Store for ValkeyStore {
    fn backend(&self) -> &'static str {
        if self.config.cluster { "valkey-cluster" } else { "valkey" }
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Applied, StoreError> {
        if ops.is_empty() {
            return Ok(Applied::default());
        }
        let mut cmds = Vec::with_capacity(ops.len());
        for op in ops {
            let c = match op {
                Op::XAdd { key, id, maxlen, fields } => Self::xadd_cmd(key, *id, *maxlen, fields),
                Op::Set { key, value, ttl_s } => {
                    let mut c = cmd("SET");
                    c.arg(key).arg(value);
                    if *ttl_s > 0 {
                        c.arg("EX").arg(*ttl_s);
                    }
                    c
                }
                Op::Feedback { agent, decision, ts_ms, pnl_brl, reward, win } => {
                    let mut c = cmd("EVAL");
                    c.arg(FEEDBACK_SCRIPT)
                        .arg(2)
                        .arg(keys::agent_decisions(agent))
                        .arg(keys::performance(agent))
                        .arg(*ts_ms)
                        .arg(decision)
                        .arg(u8::from(*win))
                        .arg(pnl_brl.to_string())
                        .arg(reward.to_string());
                    c
                }
                Op::Pattern { pattern, occurrence, ts_ms, outcome, move_points } => {
                    let mut c = cmd("EVAL");
                    c.arg(PATTERN_SCRIPT)
                        .arg(2)
                        .arg(keys::pattern_seen_key(pattern))
                        .arg(keys::pattern_key(pattern))
                        .arg(*ts_ms)
                        .arg(occurrence)
                        .arg(*outcome)
                        .arg(move_points.to_string());
                    c
                }
                Op::Publish { channel, message } => {
                    let mut c = cmd("PUBLISH");
                    c.arg(channel).arg(message);
                    c
                }
            };
            cmds.push((op.routing_key(), c));
        }
        let replies = self.pipelined(cmds)?;
        let mut applied = Applied::default();
        for (op, reply) in ops.iter().zip(replies) {
            match (op, reply) {
                (Op::XAdd { .. }, Value::ServerError(e))
                    if e.details().is_some_and(|d| d.contains("equal or smaller")) =>
                {
                    applied.duplicates += 1
                }
                (_, Value::ServerError(e)) => {
                    let msg = e.to_string();
                    if msg.contains("MOVED") || msg.contains("CLUSTERDOWN") || msg.contains("TRYAGAIN") {
                        return Err(StoreError::Unavailable(format!("cluster not ready: {msg}")));
                    }
                    if msg.contains("NOAUTH") || msg.contains("NOPERM") {
                        return Err(StoreError::Config(format!("not allowed: {msg}")));
                    }
                    tracing::warn!(key = op.routing_key(), error = %msg, "the store refused a write");
                    applied.rejected += 1;
                }
                (Op::Feedback { .. } | Op::Pattern { .. }, Value::Int(0)) => applied.duplicates += 1,
                _ => applied.written += 1,
            }
        }
        Ok(applied)
    }

    fn range(&mut self, key: &str, from: StreamId, to: StreamId, count: usize) -> Result<Vec<Entry>, StoreError> {
        let c = cmd("XRANGE").arg(key).arg(from.to_string()).arg(to.to_string()).arg("COUNT").arg(count).clone();
        parse_entries(self.query("XRANGE", &c)?)
    }

    fn recent(&mut self, key: &str, count: usize) -> Result<Vec<Entry>, StoreError> {
        let c = cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(count).clone();
        parse_entries(self.query("XREVRANGE", &c)?)
    }

    fn recent_until(&mut self, key: &str, until: StreamId, count: usize) -> Result<Vec<Entry>, StoreError> {
        let c = cmd("XREVRANGE").arg(key).arg(until.to_string()).arg("-").arg("COUNT").arg(count).clone();
        parse_entries(self.query("XREVRANGE", &c)?)
    }

    fn get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        match self.query("GET", &cmd("GET").arg(key).clone())? {
            Value::Nil => Ok(None),
            v => value_string(v).map(Some),
        }
    }

    fn pattern_stats(&mut self, kind: &str, name: &str) -> Result<Option<PatternStats>, StoreError> {
        let pairs = self.hgetall(&keys::pattern(kind, name))?;
        if pairs.is_empty() {
            return Ok(None);
        }
        let get = |f: &str| pairs.iter().find(|(k, _)| k == f).map(|(_, v)| v.as_str()).unwrap_or("0");
        Ok(Some(PatternStats {
            occurrences: get("occurrences").parse().unwrap_or(0),
            wins: get("wins").parse().unwrap_or(0),
            losses: get("losses").parse().unwrap_or(0),
            flat: get("flat").parse().unwrap_or(0),
            total_move_points: get("total_move_points").parse().unwrap_or(0.0),
            last_seen_ms: get("last_seen_ms").parse().unwrap_or(0),
        }))
    }

    fn agent_performance(&mut self, agent: &str) -> Result<Option<AgentPerformance>, StoreError> {
        Ok(performance_from(&self.hgetall(&keys::performance(agent))?))
    }

    fn keys(&mut self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let per = self.per_node(|node| {
            let mut out = Vec::new();
            let mut cursor = "0".to_string();
            loop {
                let c = cmd("SCAN").arg(&cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).clone();
                let Value::Array(mut parts) = node.query("SCAN", &c)? else {
                    return Err(StoreError::Protocol("SCAN reply".into()));
                };
                if parts.len() != 2 {
                    return Err(StoreError::Protocol("SCAN reply".into()));
                }
                if let Value::Array(ks) = parts.pop().unwrap_or(Value::Nil) {
                    for k in ks {
                        out.push(value_string(k)?);
                    }
                }
                cursor = value_string(parts.pop().unwrap_or(Value::Nil))?;
                if cursor == "0" {
                    return Ok(out);
                }
            }
        })?;
        let mut all: Vec<String> = per.into_iter().flatten().collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn delete(&mut self, names: &[String]) -> Result<u64, StoreError> {
        // One DEL per key: a multi-key DEL would cross slots in a cluster.
        let cmds = names.iter().map(|k| (keys::hash_tag(k), cmd("DEL").arg(k).clone())).collect();
        Ok(self.pipelined(cmds)?.iter().map(value_u64).sum())
    }

    fn trim_before(&mut self, key: &str, min_id: StreamId) -> Result<u64, StoreError> {
        let c = cmd("XTRIM").arg(key).arg("MINID").arg(min_id.to_string()).clone();
        Ok(value_u64(&self.query("XTRIM", &c)?))
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.query("PING", &cmd("PING"))?;
        Ok(())
    }

    fn health(&mut self) -> Result<Health, StoreError> {
        let per = self.per_node(|node| {
            let info = value_string(node.query("INFO memory", &cmd("INFO").arg("memory").clone())?)?;
            let used = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let keys = value_u64(&node.query("DBSIZE", &cmd("DBSIZE"))?);
            Ok((used, keys))
        })?;
        Ok(Health {
            backend: self.backend(),
            nodes: per.len(),
            used_memory_bytes: per.iter().map(|p| p.0).sum(),
            keys: per.iter().map(|p| p.1).sum(),
        })
    }
}

pub(crate) fn performance_from(pairs: &[(String, String)]) -> Option<AgentPerformance> {
    if pairs.is_empty() {
        return None;
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("0");
    let total: u64 = get("total_decisions").parse().unwrap_or(0);
    let wins: u64 = get("wins").parse().unwrap_or(0);
    Some(AgentPerformance {
        total_decisions: total,
        wins,
        success_rate: if total > 0 { wins as f64 / total as f64 } else { 0.0 },
        total_pnl_brl: get("total_pnl_brl").parse().unwrap_or(0.0),
        total_reward: get("total_reward").parse().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let mut c = ValkeyConfig::new("redis://app:hunter2@127.0.0.1:6379");
        c.password = Some("s3cret-pw".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("app:<redacted>@127.0.0.1:6379"), "{shown}");
    }
}
