//! The store writer: a thread that drains the engine's outbox lane
//! (`Outbox::add_lane("store", ...)`), turns records into the keys of
//! domain.md and writes them in batched pipelines.
//!
//! The engine never waits for it. When the store is down (or slower than
//! the engine, so the lane would fill and drop), batches go to the on-disk
//! [`Journal`] and every later batch follows them there, so per-stream order
//! holds; the journal is sent once the store answers again. Entry ids are a
//! function of the records (`<ts_ms>-<seq>` per stream), so a batch sent
//! twice (an outage mid-pipeline) is stored once: the server refuses an id
//! at or below a stream's last one and the writer counts it a duplicate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;
use tickhost_core::broker::{Fill, RoundTrip};
use tickhost_core::engine::Decision;
use tickhost_core::market::{Candle, Trade};
use tickhost_core::outbox::{OutboxReader, OutboxRecord};
use tickhost_core::regime::RegimeReading;

use crate::journal::Journal;
use crate::keys::{self, TickStream};
use crate::{Applied, Op, Store, StoreError, StreamId};

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub tick_stream: TickStream,
    /// MAXLEN (approximate) of the market streams; 0 = untrimmed.
    pub maxlen: u64,
    /// MAXLEN of `ticks:*:historical`.
    pub historical_maxlen: u64,
    /// Ops per pipeline.
    pub batch: usize,
    pub journal_dir: PathBuf,
    pub journal_max_bytes: u64,
    /// Between reconnect attempts while the store is down.
    pub retry: Duration,
    /// At the end of a run with a journal still waiting: how long to keep
    /// retrying before leaving it on disk for the next start.
    pub shutdown_grace: Duration,
    /// Records waiting in the lane above which the writer stops writing
    /// directly and spills to the journal (the store is behind).
    pub spill_backlog: usize,
    /// Names of the candle frame's values (`features:{SYM}` fields).
    pub feature_names: Vec<String>,
}

impl WriterConfig {
    pub fn new(journal_dir: PathBuf) -> Self {
        Self {
            tick_stream: TickStream::Realtime,
            maxlen: 100_000,
            historical_maxlen: 1_000_000,
            batch: 1000,
            journal_dir,
            journal_max_bytes: 1 << 30,
            retry: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
            spill_backlog: 32_768,
            feature_names: Vec::new(),
        }
    }
}

pub const STATE_UP: u8 = 0;
pub const STATE_DOWN: u8 = 1;
pub const STATE_DONE: u8 = 2;

/// Live counters, shared with /health and /metrics.
#[derive(Debug, Default)]
pub struct StoreStatus {
    pub backend: Mutex<&'static str>,
    state: AtomicU8,
    written: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    journal_ops: AtomicU64,
    journal_bytes: AtomicU64,
    journal_dropped: AtomicU64,
    lane_backlog: AtomicU64,
    lane_dropped: AtomicU64,
    /// Records taken from the lane so far (for [`Backpressure`]).
    popped: AtomicU64,
    outages: AtomicU64,
    last_error: Mutex<String>,
}

/// For a replay, where the source can wait and nothing should be dropped:
/// the feed thread (never the engine) holds back while the store lane is
/// more than `limit` records behind. A live feed does not use it: the
/// market does not wait, and a full lane drops and counts.
#[derive(Clone, Debug)]
pub struct Backpressure {
    pushed: Arc<tickhost_core::outbox::LaneCounters>,
    status: Arc<StoreStatus>,
    limit: u64,
}

impl Backpressure {
    pub fn new(pushed: Arc<tickhost_core::outbox::LaneCounters>, status: Arc<StoreStatus>, limit: usize) -> Self {
        Self { pushed, status, limit: limit as u64 }
    }

    /// The lane is too far behind: wait before handing the engine more.
    pub fn should_wait(&self) -> bool {
        let popped = self.status.popped.load(Ordering::Relaxed);
        let done = self.status.state.load(Ordering::Relaxed) == STATE_DONE;
        !done && self.pushed.pushed().saturating_sub(popped) > self.limit
    }
}

/// A copy of [`StoreStatus`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    pub backend: &'static str,
    pub state: &'static str,
    pub written: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub journal_ops: u64,
    pub journal_bytes: u64,
    pub journal_dropped: u64,
    pub lane_backlog: u64,
    pub lane_dropped: u64,
    /// Records accepted by the engine not yet in the store (lane + journal).
    pub lag: u64,
    pub outages: u64,
    pub last_error: String,
}

impl StoreStatus {
    pub fn snapshot(&self) -> StatusSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatusSnapshot {
            backend: *self.backend.lock().unwrap_or_else(|p| p.into_inner()),
            state: match self.state.load(Ordering::Relaxed) {
                STATE_UP => "up",
                STATE_DOWN => "down",
                _ => "done",
            },
            written: g(&self.written),
            duplicates: g(&self.duplicates),
            rejected: g(&self.rejected),
            journal_ops: g(&self.journal_ops),
            journal_bytes: g(&self.journal_bytes),
            journal_dropped: g(&self.journal_dropped),
            lane_backlog: g(&self.lane_backlog),
            lane_dropped: g(&self.lane_dropped),
            lag: g(&self.lane_backlog) + g(&self.journal_ops),
            outages: g(&self.outages),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Prometheus text exposition (0.0.4) of the counters: the state as a
    /// gauge per state (1 for the current one), `up`, and the counters.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let s = self.snapshot();
        let b = s.backend.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP tickhost_store_state The store writer's state (1 for the current one).");
        let _ = writeln!(out, "# TYPE tickhost_store_state gauge");
        for state in ["up", "down", "done"] {
            let _ = writeln!(
                out,
                "tickhost_store_state{{backend=\"{b}\",state=\"{state}\"}} {}",
                u8::from(s.state == state)
            );
        }
        let up = u8::from(s.state != "down");
        let _ = writeln!(out, "# HELP tickhost_store_up 0 while the store is unreachable (writes go to the journal).");
        let _ = writeln!(out, "# TYPE tickhost_store_up gauge\ntickhost_store_up{{backend=\"{b}\"}} {up}");
        let rows: [(&str, &str, &str, u64); 11] = [
            ("tickhost_store_written_total", "counter", "Writes the store applied.", s.written),
            (
                "tickhost_store_duplicates_total",
                "counter",
                "Writes already there (same id or feedback), not applied again.",
                s.duplicates,
            ),
            ("tickhost_store_rejected_total", "counter", "Writes the store refused (logged, not retried).", s.rejected),
            ("tickhost_store_outages_total", "counter", "Times the store became unreachable.", s.outages),
            ("tickhost_store_journal_ops", "gauge", "Writes waiting in the on-disk journal.", s.journal_ops),
            ("tickhost_store_journal_bytes", "gauge", "Size of the on-disk journal.", s.journal_bytes),
            (
                "tickhost_store_journal_dropped_total",
                "counter",
                "Writes dropped because the journal was full.",
                s.journal_dropped,
            ),
            ("tickhost_store_lane_backlog", "gauge", "Engine records waiting in the store lane.", s.lane_backlog),
            (
                "tickhost_store_lane_dropped_total",
                "counter",
                "Engine records dropped because the store lane was full.",
                s.lane_dropped,
            ),
            (
                "tickhost_store_lag",
                "gauge",
                "Records accepted by the engine not yet in the store (lane + journal).",
                s.lag,
            ),
            (
                "tickhost_store_last_error_present",
                "gauge",
                "1 when the writer has seen an error.",
                u64::from(!s.last_error.is_empty()),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{backend=\"{b}\"}} {value}");
        }
        out
    }

    fn add(&self, a: Applied) {
        self.written.fetch_add(a.written, Ordering::Relaxed);
        self.duplicates.fetch_add(a.duplicates, Ordering::Relaxed);
        self.rejected.fetch_add(a.rejected, Ordering::Relaxed);
    }

    fn set_error(&self, e: &StoreError) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
    }
}

/// Turns outbox records into ops, assigning stream ids.
#[derive(Debug)]
pub struct Converter {
    config: WriterConfig,
    last_ids: HashMap<String, StreamId>,
    /// Where ATR(14) is in the candle frame (for the range-based patterns).
    atr_index: Option<usize>,
    /// Per symbol: the last candle's patterns, waiting for the next close
    /// (their outcome). A run's last candle's patterns are not written: their
    /// outcome is unknown; a later run that sees the next bar writes them.
    pending_patterns: HashMap<String, PendingPatterns>,
}

#[derive(Debug)]
struct PendingPatterns {
    open_ms: i64,
    close: f64,
    patterns: [Option<tickhost_core::patterns::Pattern>; tickhost_core::patterns::MAX_PER_CANDLE],
}

/// ISO 8601 UTC with milliseconds, as the Python side prints datetimes.
pub fn iso_utc(ts_ms: i64) -> String {
    let days = ts_ms.div_euclid(86_400_000);
    let ms = ts_ms.rem_euclid(86_400_000);
    let (y, m, d) = tickhost_core::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Top-level fields of a serialisable record, values as strings (nested
/// values as JSON).
fn json_fields(v: &impl Serialize) -> Vec<(String, String)> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Converter {
    pub fn new(config: WriterConfig) -> Self {
        let atr_index = config.feature_names.iter().position(|n| n == "v3_atr_14");
        Self { config, last_ids: HashMap::new(), atr_index, pending_patterns: HashMap::new() }
    }

    /// Resolves the previous bar's patterns with this close and keeps this
    /// bar's for the next one (domain.md: patterns permanent, aggregated).
    fn patterns(&mut self, c: &Candle, frame: &[f64], out: &mut Vec<Op>) {
        let sym = c.symbol.as_str();
        if let Some(prev) = self.pending_patterns.get(sym)
            && prev.open_ms < c.open_ms
        {
            for p in prev.patterns.iter().flatten() {
                let (outcome, move_points) = tickhost_core::patterns::outcome(p.direction, prev.close, c.close);
                out.push(Op::Pattern {
                    pattern: format!("{}:{}", p.kind.name(), p.name),
                    occurrence: format!("{sym}:{}", prev.open_ms),
                    ts_ms: prev.open_ms,
                    outcome,
                    move_points,
                });
            }
        }
        let atr = self.atr_index.and_then(|i| frame.get(i).copied()).unwrap_or(f64::NAN);
        let (patterns, _) = tickhost_core::patterns::detect(c, atr);
        self.pending_patterns.insert(sym.to_string(), PendingPatterns { open_ms: c.open_ms, close: c.close, patterns });
    }

    /// The next id of `key` for an event at `ts_ms`: `<ts>-0`, or the next
    /// sequence number when the stream already has that millisecond (or a
    /// later one: corrections may carry an older time).
    pub fn next_id(&mut self, key: &str, ts_ms: i64) -> StreamId {
        let ms = ts_ms.max(0) as u64;
        let id = match self.last_ids.get(key) {
            Some(last) if last.ms >= ms => StreamId::new(last.ms, last.seq + 1),
            _ => StreamId::new(ms, u64::from(ms == 0)),
        };
        self.last_ids.insert(key.to_string(), id);
        id
    }

    fn xadd(
        &mut self,
        out: &mut Vec<Op>,
        key: String,
        ts_ms: i64,
        maxlen: u64,
        fields: Vec<(String, String)>,
    ) -> StreamId {
        let id = self.next_id(&key, ts_ms);
        out.push(Op::XAdd { key, id, maxlen, fields });
        id
    }

    pub fn push(&mut self, record: &OutboxRecord, frame: &[f64], out: &mut Vec<Op>) {
        match record {
            OutboxRecord::Trade(t) => self.trade(t, out),
            OutboxRecord::Candle { candle, regime, .. } => self.candle(candle, regime, frame, out),
            OutboxRecord::Decision(d) => self.decision(d, out),
            OutboxRecord::Fill(f) => self.fill(f, out),
            OutboxRecord::RoundTrip(r) => self.round_trip(r, out),
            // Book tops are published (ZeroMQ `book_<SYM>`), not stored: the
            // storage layout has no book stream.
            OutboxRecord::Book { .. } => {}
        }
    }

    fn trade(&mut self, t: &Trade, out: &mut Vec<Op>) {
        let sym = t.symbol.as_str();
        let (key, maxlen) = match self.config.tick_stream {
            TickStream::Realtime => (keys::ticks(sym, TickStream::Realtime), self.config.maxlen),
            TickStream::Historical => (keys::ticks(sym, TickStream::Historical), self.config.historical_maxlen),
        };
        // The field names of the ZeroMQ tick payload the Python consumers read.
        let fields = vec![
            ("symbol".into(), sym.to_string()),
            ("timestamp".into(), iso_utc(t.ts_ms)),
            ("timestamp_ms".into(), t.ts_ms.to_string()),
            ("trade_id".into(), t.trade_number.to_string()),
            ("price".into(), t.price.as_f64().to_string()),
            ("volume".into(), t.volume.to_string()),
            ("quantity".into(), t.quantity.to_string()),
            ("buyer".into(), t.buy_agent.0.to_string()),
            ("seller".into(), t.sell_agent.0.to_string()),
            ("trade_type".into(), (t.trade_type as u8).to_string()),
            ("is_edit".into(), t.is_edit.to_string()),
        ];
        self.xadd(out, key, t.ts_ms, maxlen, fields);
    }

    fn candle(&mut self, c: &Candle, regime: &RegimeReading, frame: &[f64], out: &mut Vec<Op>) {
        let sym = c.symbol.as_str();
        let mut fields = json_fields(c);
        fields.push(("regime".into(), regime.regime.name().to_string()));
        fields.push(("regime_confidence".into(), regime.confidence.to_string()));
        fields.push(("adx".into(), regime.adx.to_string()));
        self.xadd(out, keys::candles(sym), c.open_ms, self.config.maxlen, fields);
        let mut f = Vec::with_capacity(frame.len() + 2);
        f.push(("timestamp_ms".to_string(), c.open_ms.to_string()));
        f.push(("timestamp".to_string(), iso_utc(c.open_ms)));
        for (i, v) in frame.iter().enumerate() {
            let name = self.config.feature_names.get(i).cloned().unwrap_or_else(|| format!("f{i}"));
            f.push((name, v.to_string()));
        }
        self.xadd(out, keys::features(sym), c.open_ms, self.config.maxlen, f);
        // Order-flow state of the bar (domain.md: 1 h TTL).
        let delta = c.buy_volume - c.sell_volume;
        let total = c.buy_volume + c.sell_volume;
        let strength = if total > 0.0 { delta.abs() / total } else { 0.0 };
        let direction = if delta > 0.0 {
            "bullish"
        } else if delta < 0.0 {
            "bearish"
        } else {
            "neutral"
        };
        let state = serde_json::json!({
            "symbol": sym, "timestamp_ms": c.open_ms, "dominant_flow_direction": direction,
            "flow_strength": strength, "delta": delta, "buy_volume": c.buy_volume, "sell_volume": c.sell_volume,
        });
        out.push(Op::Set {
            key: keys::flow_state(sym, c.open_ms),
            value: state.to_string(),
            ttl_s: keys::ttl::FLOW_STATE,
        });
        self.patterns(c, frame, out);
    }

    fn decision(&mut self, d: &Decision, out: &mut Vec<Op>) {
        let sym = d.signal.symbol.as_str();
        let ts = d.signal.ts_ms;
        let fields = json_fields(d);
        let id = self.xadd(out, keys::signals(sym), ts, self.config.maxlen, fields.clone());
        let decision_id = format!("dec_{sym}_{id}");
        let mut with_id = fields;
        with_id.push(("decision_id".into(), decision_id.clone()));
        self.xadd(out, keys::DECISION_STREAM.into(), ts, keys::HMARL_STREAM_MAXLEN, with_id.clone());
        let json: serde_json::Map<String, serde_json::Value> =
            with_id.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        let json = serde_json::Value::Object(json).to_string();
        out.push(Op::Set { key: keys::decision(&decision_id), value: json.clone(), ttl_s: keys::ttl::DECISION });
        out.push(Op::Set { key: keys::signal(&decision_id), value: json.clone(), ttl_s: keys::ttl::SIGNAL });
        out.push(Op::Publish { channel: keys::DECISIONS_CHANNEL.into(), message: json.clone() });
        out.push(Op::Publish { channel: keys::signals_channel(sym), message: json });
    }

    fn fill(&mut self, f: &Fill, out: &mut Vec<Op>) {
        let sym = f.symbol.as_str();
        self.xadd(out, keys::fills(sym), f.ts_ms, self.config.maxlen, json_fields(f));
    }

    fn round_trip(&mut self, r: &RoundTrip, out: &mut Vec<Op>) {
        let sym = r.symbol.as_str();
        // The strategy of the regime the trade was opened in is the agent
        // the feedback is for.
        let agent = format!("{}_strategy", r.regime.name());
        let decision_id = format!("rt_{sym}_{}_{}", r.entry_ts_ms, r.exit_ts_ms);
        let win = r.pnl_brl > 0.0;
        // The seeds' reward: PnL x 10 (points here), no flow terms on a round trip.
        let reward = r.pnl_points * 10.0;
        let mut fields = json_fields(r);
        fields.push(("decision_id".into(), decision_id.clone()));
        fields.push(("agent_id".into(), agent.clone()));
        fields.push(("profitable".into(), win.to_string()));
        fields.push(("reward".into(), reward.to_string()));
        self.xadd(out, keys::FEEDBACK_STREAM.into(), r.exit_ts_ms, keys::HMARL_STREAM_MAXLEN, fields.clone());
        let json: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        let json = serde_json::Value::Object(json).to_string();
        out.push(Op::Set { key: keys::feedback(&decision_id), value: json.clone(), ttl_s: keys::ttl::FEEDBACK });
        out.push(Op::Feedback {
            agent: agent.clone(),
            decision: decision_id,
            ts_ms: r.exit_ts_ms,
            pnl_brl: r.pnl_brl,
            reward,
            win,
        });
        out.push(Op::Publish { channel: keys::feedback_channel(&agent), message: json });
    }
}

/// What the writer did over its life.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriterReport {
    pub status: StatusSnapshot,
    /// Ops still in the journal at exit (the store never came back within
    /// the grace period); they are sent at the next start.
    pub left_in_journal: u64,
}

#[derive(Debug)]
pub struct StoreWriter {
    handle: JoinHandle<Result<WriterReport, StoreError>>,
    status: Arc<StoreStatus>,
}

struct Worker {
    reader: OutboxReader,
    store: Box<dyn Store>,
    journal: Journal,
    conv: Converter,
    status: Arc<StoreStatus>,
    frame: Vec<f64>,
    down_until: Option<Instant>,
    config: WriterConfig,
}

impl Worker {
    fn publish_counters(&self) {
        let s = &self.status;
        s.journal_ops.store(self.journal.pending_ops(), Ordering::Relaxed);
        s.journal_bytes.store(self.journal.bytes(), Ordering::Relaxed);
        s.journal_dropped.store(self.journal.dropped_ops(), Ordering::Relaxed);
        s.lane_backlog.store(self.reader.backlog() as u64, Ordering::Relaxed);
        s.lane_dropped.store(self.reader.counters().dropped(), Ordering::Relaxed);
    }

    /// Pops up to one batch of records into ops.
    fn gather(&mut self, out: &mut Vec<Op>) -> usize {
        let mut n = 0;
        while out.len() < self.config.batch {
            let Some(rec) = self.reader.pop(&mut self.frame) else { break };
            self.conv.push(&rec, &self.frame, out);
            n += 1;
        }
        self.status.popped.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    fn went_down(&mut self, e: &StoreError) {
        if self.down_until.is_none() {
            self.status.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "store unavailable: spilling to the journal until it is back");
        }
        self.status.set_error(e);
        self.status.state.store(STATE_DOWN, Ordering::Relaxed);
        self.down_until = Some(Instant::now() + self.config.retry);
    }

    fn spill(&mut self, ops: &mut Vec<Op>) -> Result<(), StoreError> {
        if !ops.is_empty() && !self.journal.append(ops)? {
            tracing::error!(ops = ops.len(), "the store journal is full: dropped a batch");
        }
        ops.clear();
        Ok(())
    }

    /// Sends the journal's oldest segment. False when the store went down.
    fn drain_one_segment(&mut self) -> Result<bool, StoreError> {
        let Some(batches) = self.journal.oldest()? else { return Ok(true) };
        let mut spill = Vec::new();
        for batch in batches {
            for chunk in batch.chunks(self.config.batch.max(1)) {
                match self.store.apply(chunk) {
                    Ok(a) => self.status.add(a),
                    Err(e) => {
                        self.went_down(&e);
                        return Ok(false);
                    }
                }
                // Keep the lane moving while the backlog is sent.
                self.gather(&mut spill);
                self.spill(&mut spill)?;
                self.publish_counters();
            }
        }
        self.journal.pop_oldest()?;
        self.publish_counters();
        Ok(true)
    }

    fn try_reconnect(&mut self) -> bool {
        match self.down_until {
            None => true,
            Some(t) if Instant::now() < t => false,
            Some(_) => match self.store.ping() {
                Ok(()) => {
                    tracing::info!("store is back: sending the journal");
                    self.down_until = None;
                    self.status.state.store(STATE_UP, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    self.went_down(&e);
                    false
                }
            },
        }
    }

    fn run(mut self) -> Result<WriterReport, StoreError> {
        let mut pending: Vec<Op> = Vec::with_capacity(self.config.batch * 4);
        loop {
            let finished = self.reader.is_finished();
            let popped = self.gather(&mut pending);
            self.publish_counters();
            if pending.is_empty() && (finished || self.journal.is_empty()) {
                // Finished with a journal waiting: the grace period below deals with it.
                if finished {
                    break;
                }
                thread::sleep(Duration::from_micros(500));
                continue;
            }
            if self.down_until.is_some() || !self.journal.is_empty() {
                self.spill(&mut pending)?;
                if self.try_reconnect() {
                    self.drain_one_segment()?;
                } else if popped == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
                continue;
            }
            match self.store.apply(&pending) {
                Ok(a) => {
                    self.status.add(a);
                    pending.clear();
                    if self.reader.backlog() > self.config.spill_backlog {
                        // The store is slower than the engine: spill so the lane never fills.
                        while self.gather(&mut pending) > 0 {
                            self.spill(&mut pending)?;
                        }
                    }
                }
                Err(e) => {
                    self.went_down(&e);
                    self.spill(&mut pending)?;
                }
            }
        }
        // The engine is done; give a down store a grace period to come back.
        let deadline = Instant::now() + self.config.shutdown_grace;
        while !self.journal.is_empty() && Instant::now() < deadline {
            if self.try_reconnect() {
                self.drain_one_segment()?;
            } else {
                thread::sleep(Duration::from_millis(20));
            }
        }
        if self.journal.is_empty() && self.down_until.is_none() {
            // The run's counters (domain.md: hmarl:metrics:*, 24 h).
            let metrics = serde_json::to_string(&self.status.snapshot()).unwrap_or_default();
            let op = Op::Set { key: keys::metrics("store_writer"), value: metrics, ttl_s: keys::ttl::METRICS };
            if let Err(e) = self.store.apply(std::slice::from_ref(&op)) {
                self.status.set_error(&e);
            }
        }
        if let Err(e) = self.store.flush() {
            self.status.set_error(&e);
        }
        self.publish_counters();
        self.status.state.store(STATE_DONE, Ordering::Relaxed);
        let left = self.journal.pending_ops();
        if left > 0 {
            tracing::warn!(
                ops = left,
                dir = %self.config.journal_dir.display(),
                "the store did not come back: the journal stays on disk and is sent at the next start"
            );
        }
        Ok(WriterReport { status: self.status.snapshot(), left_in_journal: left })
    }
}

impl StoreWriter {
    /// Starts the writer thread. A journal left by an earlier run is sent first.
    pub fn spawn(reader: OutboxReader, store: Box<dyn Store>, config: WriterConfig) -> Result<Self, StoreError> {
        let journal = Journal::open(&config.journal_dir, config.journal_max_bytes)?;
        let status = Arc::new(StoreStatus::default());
        *status.backend.lock().unwrap_or_else(|p| p.into_inner()) = store.backend();
        let worker = Worker {
            reader,
            store,
            journal,
            conv: Converter::new(config.clone()),
            status: Arc::clone(&status),
            frame: Vec::new(),
            down_until: None,
            config,
        };
        let handle = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || worker.run())
            .map_err(|e| StoreError::Config(format!("cannot start the store writer thread: {e}")))?;
        Ok(Self { handle, status })
    }

    pub fn status(&self) -> &Arc<StoreStatus> {
        &self.status
    }

    /// Waits until the lane is finished (the engine's outbox dropped) and
    /// everything reached the store or the journal.
    pub fn join(self) -> Result<WriterReport, StoreError> {
        self.handle.join().map_err(|_| StoreError::Config("the store writer thread panicked".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_increasing_per_stream() {
        let mut c = Converter::new(WriterConfig::new(PathBuf::from("unused")));
        assert_eq!(c.next_id("a", 1000), StreamId::new(1000, 0));
        assert_eq!(c.next_id("a", 1000), StreamId::new(1000, 1));
        assert_eq!(c.next_id("a", 999), StreamId::new(1000, 2), "an older correction goes after");
        assert_eq!(c.next_id("a", 1001), StreamId::new(1001, 0));
        assert_eq!(c.next_id("b", 1000), StreamId::new(1000, 0));
        assert_eq!(c.next_id("c", -5), StreamId::new(0, 1), "0-0 is not a valid XADD id");
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_utc(1_704_715_200_123), "2024-01-08T12:00:00.123Z");
    }
}
