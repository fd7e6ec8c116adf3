//! Storage for tickhost: the engine's outputs as Valkey streams and HMARL
//! keys (the layout of reference/domain.md, which existing Python consumers
//! read), written off the engine thread.
//!
//! - [`Store`]: what a backend does. [`ValkeyStore`] (standalone or cluster,
//!   the `redis` crate on a private tokio runtime) and [`EmbeddedStore`] (in
//!   process, persisted to one local file) implement it.
//! - [`writer::StoreWriter`]: a thread draining the engine's outbox lane in
//!   batched pipelines; when the store is down or behind it spills to a
//!   bounded on-disk [`journal::Journal`] and catches up later. Entry ids are
//!   deterministic, so whatever is written twice is stored once.
//! - [`query`]: time travel (XRANGE paged with COUNT); [`timetravel`]: the
//!   three history features, computed on a background thread.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod config;
pub mod embedded;
pub mod history;
pub mod journal;
pub mod keys;
pub mod query;
pub mod raw;
pub mod server;
pub mod timetravel;
pub mod valkey;
pub mod writer;

pub use config::{Backend, HistoryConfig, StoreConfig, TimeTravelConfig};
pub use embedded::EmbeddedStore;
pub use valkey::{ValkeyConfig, ValkeyStore};

/// A stream entry id, `<timestamp_ms>-<seq>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The smallest id after this one (for paging an XRANGE).
    pub fn successor(self) -> Option<Self> {
        if self.seq < u64::MAX {
            Some(Self { ms: self.ms, seq: self.seq + 1 })
        } else {
            self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 })
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::Protocol(format!("{s:?} is not a stream id (<ms>-<seq>)"));
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self { ms: ms.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

/// One stream entry as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: StreamId,
    pub fields: Vec<(String, String)>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One write. Every kind is idempotent except `Publish` (pub/sub has no
/// memory: a message re-sent after an outage reaches subscribers twice).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// XADD with an explicit id and `MAXLEN ~ maxlen` (0 = no trim). An id
    /// at or below the stream's last one was written before: a duplicate.
    XAdd {
        key: String,
        id: StreamId,
        maxlen: u64,
        fields: Vec<(String, String)>,
    },
    /// SET with an expiry in seconds (0 = none).
    Set {
        key: String,
        value: String,
        ttl_s: u64,
    },
    /// Feedback for an agent, aggregated on write into
    /// `hmarl:performance:{agent}`, at most once per `decision` (remembered in
    /// the sorted set `hmarl:agent:{agent}:decisions`). Both keys share the
    /// hash tag `{agent}`, so one script updates them atomically in a cluster.
    Feedback {
        agent: String,
        decision: String,
        ts_ms: i64,
        pnl_brl: f64,
        reward: f64,
        win: bool,
    },
    Publish {
        channel: String,
        message: String,
    },
    /// One occurrence of a tape/footprint pattern with its outcome,
    /// aggregated on write into `hmarl:pattern:{kind:name}` at most once per
    /// `occurrence` (remembered in `hmarl:pattern:{kind:name}:seen`; both
    /// keys share the hash tag). Permanent: no TTL.
    Pattern {
        /// `<kind>:<name>`, e.g. `tape:sweep` (the hash tag of both keys).
        pattern: String,
        /// `<symbol>:<candle open ms>`.
        occurrence: String,
        ts_ms: i64,
        /// +1 the next bar moved the implied way, -1 against, 0 flat.
        outcome: i8,
        /// Points moved the implied way (negative: against).
        move_points: f64,
    },
}

impl Op {
    /// Ops with the same routing key live in one cluster slot, so a
    /// pipeline per routing key is valid in a cluster.
    pub fn routing_key(&self) -> &str {
        match self {
            Op::XAdd { key, .. } | Op::Set { key, .. } => keys::hash_tag(key),
            Op::Feedback { agent, .. } => agent,
            Op::Publish { channel, .. } => channel,
            Op::Pattern { pattern, .. } => pattern,
        }
    }
}

/// What [`Store::apply`] did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: u64,
    /// Already there (same id, or the same feedback): not written again.
    pub duplicates: u64,
    /// Refused by the server for what they are (wrong type...); logged, not retried.
    pub rejected: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, o: Self) {
        self.written += o.written;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
    }
}

/// Aggregated statistics of one pattern (`hmarl:pattern:{kind:name}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternStats {
    pub occurrences: u64,
    pub wins: u64,
    pub losses: u64,
    pub flat: u64,
    pub total_move_points: f64,
    pub last_seen_ms: i64,
}

/// Memory and key count, for the health check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    pub backend: &'static str,
    pub nodes: usize,
    pub used_memory_bytes: u64,
    pub keys: u64,
}

/// Aggregated performance of one agent (`hmarl:performance:{agent}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentPerformance {
    pub total_decisions: u64,
    pub wins: u64,
    pub success_rate: f64,
    pub total_pnl_brl: f64,
    pub total_reward: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server cannot be reached or stopped answering: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The server answered something we did not expect.
    #[error("unexpected reply from the store: {0}")]
    Protocol(String),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Worth retrying once the server is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A storage backend. Calls block the calling thread (the writer's, a query
/// command's, the time-travel thread's), never the engine's.
pub trait Store: Send {
    fn backend(&self) -> &'static str;
    /// Applies `ops` in order per key; the whole batch either reached the
    /// store (`Ok`, with per-op outcomes counted) or may be retried (`Err`
    /// with [`StoreError::Unavailable`]): retrying is safe.
    fn apply(&mut self, ops: &[Op]) -> Result<Applied, StoreError>;
    /// Entries of `key` with `from <= id <= to`, at most `count` (one page).
    fn range(&mut self, key: &str, from: StreamId, to: StreamId, count: usize) -> Result<Vec<Entry>, StoreError>;
    /// The last `count` entries of `key`, newest first.
    fn recent(&mut self, key: &str, count: usize) -> Result<Vec<Entry>, StoreError>;
    /// The last `count` entries of `key` with `id <= until`, newest first
    /// (XREVRANGE key until - COUNT count).
    fn recent_until(&mut self, key: &str, until: StreamId, count: usize) -> Result<Vec<Entry>, StoreError>;
    fn get(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn agent_performance(&mut self, agent: &str) -> Result<Option<AgentPerformance>, StoreError>;
    fn pattern_stats(&mut self, kind: &str, name: &str) -> Result<Option<PatternStats>, StoreError>;
    /// Keys matching a glob `pattern` (SCAN, every node of a cluster).
    fn keys(&mut self, pattern: &str) -> Result<Vec<String>, StoreError>;
    fn delete(&mut self, keys: &[String]) -> Result<u64, StoreError>;
    /// Trims streams matching `pattern` to entries at or after `min_id`.
    fn trim_before(&mut self, key: &str, min_id: StreamId) -> Result<u64, StoreError>;
    fn ping(&mut self) -> Result<(), StoreError>;
    fn health(&mut self) -> Result<Health, StoreError>;
    /// Makes everything applied so far durable where the backend buffers (embedded file).
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
