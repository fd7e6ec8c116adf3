//! The SUB side: trades from another tickhost (rkyv or JSON) or from the
//! seeds' Python publisher (JSON with no header, topic `tick_<SYM>`).
//!
//! ZeroMQ does not retransmit: a subscriber that joins late misses what was
//! sent before its subscription reached the publisher, and a publisher at its
//! high-water mark drops. Both show up here as gaps: in the per-topic
//! sequence numbers of a tickhost publisher, and in the per-symbol trade
//! numbers (`trade_id`, consecutive per session per asset) of the Python one.
//! Gaps are counted and logged with the missing range; the feed goes on.

use std::collections::HashMap;

use tickhost_core::{AgentDirectory, Symbol, Trade};

use crate::archive::{Headed, read_tick};
use crate::endpoint::{CurveConfig, Role};
use crate::json::{JsonTick, decode_tick};
use crate::wire::{CONTROL_TOPIC, MAGIC, WireError};

/// Missing ranges kept for the report (all are counted).
const KEPT_GAPS: usize = 32;

/// A run of messages that never arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The topic (`tick_WDOFUT`) or symbol it was seen on.
    pub stream: String,
    /// What is missing: sequence numbers of a tickhost publisher, trade
    /// numbers of a Python one.
    pub unit: &'static str,
    pub first: u64,
    pub last: u64,
    /// Before the first message received (joined late) rather than mid-stream.
    pub before_join: bool,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {}..={} missing ({}){}",
            self.stream,
            self.unit,
            self.first,
            self.last,
            self.last - self.first + 1,
            if self.before_join { ", sent before this subscriber joined" } else { "" }
        )
    }
}

/// Counters of a subscriber.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubCounters {
    pub messages: u64,
    pub trades: u64,
    pub rkyv: u64,
    pub json: u64,
    /// Payloads refused (a clear reason is logged for the first ones).
    pub bad: u64,
    /// Gaps mid-stream and messages missing in them.
    pub gaps: u64,
    pub missing: u64,
    /// Messages sent before this subscriber's first one (late join).
    pub missed_before_join: u64,
    pub end_of_stream: bool,
}

/// Tracks continuity per stream.
#[derive(Debug, Default)]
pub struct GapTracker {
    last: HashMap<Box<[u8]>, u64>,
    pub kept: Vec<Gap>,
}

impl GapTracker {
    /// Records `n` seen on `stream`; returns a gap if numbers were skipped.
    /// Numbers that go back (a restarted publisher, an edit) reset the stream.
    pub fn observe(&mut self, stream: &[u8], n: u64, unit: &'static str, c: &mut SubCounters) -> Option<Gap> {
        let gap = match self.last.get_mut(stream) {
            Some(last) => {
                let g = (n > *last + 1).then(|| (*last + 1, n - 1, false));
                if n > *last || n + 1 < *last {
                    *last = n;
                }
                g
            }
            None => {
                self.last.insert(stream.into(), n);
                (n > 1).then(|| (1, n - 1, true))
            }
        }?;
        let (first, last, before_join) = gap;
        let missing = last - first + 1;
        if before_join {
            c.missed_before_join += missing;
        } else {
            c.gaps += 1;
            c.missing += missing;
        }
        let gap = Gap { stream: String::from_utf8_lossy(stream).into_owned(), unit, first, last, before_join };
        if self.kept.len() < KEPT_GAPS {
            self.kept.push(gap.clone());
        }
        Some(gap)
    }
}

/// What [`TickSubscriber::recv`] got.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TickEvent {
    Trade(Trade),
    /// The publisher said it has nothing more (a replaying ingest is done).
    EndOfStream,
}

#[derive(Debug, thiserror::Error)]
pub enum SubError {
    #[error("ZeroMQ SUB {endpoint}: {source}")]
    Zmq { endpoint: String, source: zmq::Error },
    #[error("{0}")]
    Config(String),
}

/// A SUB socket connected to one publisher.
pub struct TickSubscriber {
    socket: zmq::Socket,
    _ctx: zmq::Context,
    endpoint: String,
    topic: zmq::Message,
    body: zmq::Message,
    agents: AgentDirectory,
    utc_offset_minutes: i32,
    gaps: GapTracker,
    counters: SubCounters,
    /// First bad payloads, for the report.
    pub first_bad: Vec<String>,
    /// Python publishers: trade numbers per symbol.
    symbol_key: Vec<u8>,
}

impl std::fmt::Debug for TickSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickSubscriber").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl TickSubscriber {
    /// Connects to `endpoint` (libzmq form, or zmq:// / zmq+ipc://) and
    /// subscribes to `prefixes` (e.g. `tick_`) and the control topic.
    pub fn connect(
        endpoint: &str,
        prefixes: &[&str],
        rcvhwm: i32,
        curve: &CurveConfig,
        utc_offset_minutes: i32,
    ) -> Result<Self, SubError> {
        let endpoint = crate::endpoint::to_zmq(endpoint).map_err(SubError::Config)?;
        let ctx = zmq::Context::new();
        let zerr = |source| SubError::Zmq { endpoint: endpoint.clone(), source };
        let socket = ctx.socket(zmq::SUB).map_err(zerr)?;
        socket.set_rcvhwm(rcvhwm).map_err(zerr)?;
        socket.set_linger(0).map_err(zerr)?;
        curve.apply(&socket, Role::Subscriber, &endpoint).map_err(SubError::Config)?;
        for p in prefixes {
            socket.set_subscribe(p.as_bytes()).map_err(zerr)?;
        }
        socket.set_subscribe(CONTROL_TOPIC).map_err(zerr)?;
        // Connecting before the publisher binds is fine: libzmq retries.
        socket.connect(&endpoint).map_err(zerr)?;
        Ok(Self {
            socket,
            _ctx: ctx,
            endpoint,
            topic: zmq::Message::new(),
            body: zmq::Message::new(),
            agents: AgentDirectory::new(),
            utc_offset_minutes,
            gaps: GapTracker::default(),
            counters: SubCounters::default(),
            first_bad: Vec::new(),
            symbol_key: Vec::with_capacity(32),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn counters(&self) -> &SubCounters {
        &self.counters
    }

    pub fn gaps(&self) -> &[Gap] {
        &self.gaps.kept
    }

    /// The next trade or end of stream; `Ok(None)` when nothing came within
    /// `timeout_ms` (-1: wait). Bad payloads are counted and skipped.
    pub fn recv(&mut self, timeout_ms: i64) -> Result<Option<TickEvent>, SubError> {
        loop {
            // Try first: under load a message is usually there, and poll costs a syscall.
            match self.socket.recv(&mut self.topic, zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) => {
                    if self.socket.poll(zmq::POLLIN, timeout_ms).map_err(|source| self.zerr(source))? == 0 {
                        return Ok(None);
                    }
                    self.socket.recv(&mut self.topic, 0).map_err(|source| self.zerr(source))?;
                }
                Err(source) => return Err(self.zerr(source)),
            }
            if !self.socket.get_rcvmore().unwrap_or(false) {
                self.bad("a one-frame message (expected topic then payload)".into());
                continue;
            }
            self.socket.recv(&mut self.body, 0).map_err(|source| self.zerr(source))?;
            // Frames past the second belong to nobody we know: drain them.
            while self.socket.get_rcvmore().unwrap_or(false) {
                let _ = self.socket.recv(&mut self.body, 0);
            }
            self.counters.messages += 1;
            match self.decode() {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => {
                    let topic = String::from_utf8_lossy(&self.topic).into_owned();
                    self.bad(format!("topic {topic:?}: {e}"));
                }
            }
        }
    }

    fn zerr(&self, source: zmq::Error) -> SubError {
        SubError::Zmq { endpoint: self.endpoint.clone(), source }
    }

    fn bad(&mut self, why: String) {
        self.counters.bad += 1;
        if self.first_bad.len() < 10 {
            tracing::warn!(endpoint = %self.endpoint, "refused a message: {why}");
            self.first_bad.push(why);
        }
    }

    fn decode(&mut self) -> Result<Option<TickEvent>, WireError> {
        let payload: &[u8] = &self.body;
        if payload.starts_with(&MAGIC) {
            self.counters.rkyv += 1;
            return match read_tick(payload)? {
                Headed::EndOfStream { .. } => {
                    self.counters.end_of_stream = true;
                    Ok(Some(TickEvent::EndOfStream))
                }
                Headed::Trade { header, trade } => {
                    let trade = trade.to_trade()?;
                    self.note_seq(header.seq);
                    self.counters.trades += 1;
                    Ok(Some(TickEvent::Trade(trade)))
                }
            };
        }
        let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first != Some(b'{') {
            return Err(crate::wire::Header::read(payload).err().unwrap_or(WireError::BadJson("empty".into())));
        }
        self.counters.json += 1;
        match decode_tick(payload, self.utc_offset_minutes, &mut self.agents)? {
            JsonTick::EndOfStream { .. } => {
                self.counters.end_of_stream = true;
                Ok(Some(TickEvent::EndOfStream))
            }
            JsonTick::Trade { trade, seq } => {
                match seq {
                    Some(seq) => self.note_seq(seq),
                    None if !trade.is_edit => self.note_trade_number(&trade.symbol, trade.trade_number),
                    None => {}
                }
                self.counters.trades += 1;
                Ok(Some(TickEvent::Trade(trade)))
            }
        }
    }

    fn note_seq(&mut self, seq: u64) {
        let topic: &[u8] = &self.topic;
        if let Some(gap) = self.gaps.observe(topic, seq, "seq", &mut self.counters) {
            log_gap(&gap);
        }
    }

    fn note_trade_number(&mut self, symbol: &Symbol, n: u64) {
        self.symbol_key.clear();
        self.symbol_key.extend_from_slice(symbol.as_str().as_bytes());
        if let Some(gap) = self.gaps.observe(&self.symbol_key, n, "trade_id", &mut self.counters) {
            log_gap(&gap);
        }
    }
}

fn log_gap(gap: &Gap) {
    if gap.before_join {
        tracing::warn!("zmq feed joined late: {gap}; trading starts from here");
    } else {
        tracing::warn!("zmq feed gap: {gap}; the engine keeps trading on what arrives");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_late_joins_and_restarts_are_told_apart() {
        let mut g = GapTracker::default();
        let mut c = SubCounters::default();
        assert_eq!(
            g.observe(b"tick_A", 5, "seq", &mut c).map(|g| (g.first, g.last, g.before_join)),
            Some((1, 4, true))
        );
        assert!(g.observe(b"tick_A", 6, "seq", &mut c).is_none());
        let gap = g.observe(b"tick_A", 10, "seq", &mut c).expect("gap");
        assert_eq!((gap.first, gap.last, gap.before_join), (7, 9, false));
        assert!(gap.to_string().contains("seq 7..=9 missing (3)"), "{gap}");
        assert!(g.observe(b"tick_B", 1, "seq", &mut c).is_none());
        // A duplicate or a slightly older number is no gap; a restart from 1 resets.
        assert!(g.observe(b"tick_A", 9, "seq", &mut c).is_none());
        assert!(g.observe(b"tick_A", 1, "seq", &mut c).is_none());
        assert!(g.observe(b"tick_A", 2, "seq", &mut c).is_none());
        assert_eq!((c.gaps, c.missing, c.missed_before_join), (1, 3, 4));
    }
}
