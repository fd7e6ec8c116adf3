//! The publisher thread: drains the engine's outbox lane "bus" and sends
//! each record to its socket, never making the engine wait.
//!
//! Sockets are XPUB with `ZMQ_XPUB_NODROP`: at the high-water mark a send
//! with `DONTWAIT` fails with EAGAIN instead of vanishing (a plain PUB drops
//! silently), so every drop is counted per socket. Sequence numbers are per
//! topic and a dropped message still takes its number, so a subscriber sees
//! the drop as a gap.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tickhost_core::outbox::{LaneCounters, OutboxReader, OutboxRecord};
use tickhost_core::strategy::Action;

use crate::archive::Encoder;
use crate::endpoint::{CurveConfig, Role};
use crate::json;
use crate::wire::{CONTROL_TOPIC, Format, topic_into};

/// One PUB socket: where it binds ("" = off) and its payload format.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    pub endpoint: String,
    pub format: Format,
}

/// The `[bus]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// ZMQ_ENABLED.
    pub enabled: bool,
    /// Outbox records between the engine and the publisher thread.
    pub lane_capacity: usize,
    /// Messages queued per subscriber before a send counts as dropped.
    pub sndhwm: i32,
    /// How long closing a socket waits to deliver what is queued.
    pub linger_ms: i32,
    pub ticks: SocketConfig,
    pub book: SocketConfig,
    pub history: SocketConfig,
    pub signals: SocketConfig,
    pub features: SocketConfig,
    pub decisions: SocketConfig,
    pub fills: SocketConfig,
    #[serde(default)]
    pub curve: CurveConfig,
}

/// Which of the sockets a record goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Ticks,
    Book,
    History,
    Signals,
    Features,
    Decisions,
    Fills,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Ticks,
        Channel::Book,
        Channel::History,
        Channel::Signals,
        Channel::Features,
        Channel::Decisions,
        Channel::Fills,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Ticks => "ticks",
            Channel::Book => "book",
            Channel::History => "history",
            Channel::Signals => "signals",
            Channel::Features => "features",
            Channel::Decisions => "decisions",
            Channel::Fills => "fills",
        }
    }
}

impl BusConfig {
    pub fn socket(&self, c: Channel) -> &SocketConfig {
        match c {
            Channel::Ticks => &self.ticks,
            Channel::Book => &self.book,
            Channel::History => &self.history,
            Channel::Signals => &self.signals,
            Channel::Features => &self.features,
            Channel::Decisions => &self.decisions,
            Channel::Fills => &self.fills,
        }
    }
}

/// Counters of one socket, read by /health and the end-of-run line.
#[derive(Debug, Default)]
pub struct SocketStatus {
    pub published: AtomicU64,
    /// Refused at the high-water mark (a subscriber too slow), counted, not sent.
    pub dropped: AtomicU64,
    /// Subscriptions seen minus unsubscriptions (per distinct topic prefix).
    pub subscriptions: AtomicI64,
}

/// Status of the publisher of one run.
#[derive(Debug)]
pub struct BusStatus {
    /// (channel, bound endpoint as libzmq reports it, format, counters).
    pub sockets: Vec<(Channel, String, Format, SocketStatus)>,
    /// Records the outbox lane dropped because this thread was behind.
    pub lane: Arc<LaneCounters>,
    pub finished: AtomicBool,
}

#[derive(Serialize)]
struct SocketSnapshot<'a> {
    name: &'static str,
    endpoint: &'a str,
    format: Format,
    published: u64,
    dropped: u64,
    subscriptions: i64,
}

impl BusStatus {
    pub fn published(&self) -> u64 {
        self.sockets.iter().map(|s| s.3.published.load(Ordering::Relaxed)).sum()
    }

    /// Dropped at a socket's high-water mark plus dropped by the outbox lane.
    pub fn dropped(&self) -> u64 {
        self.sockets.iter().map(|s| s.3.dropped.load(Ordering::Relaxed)).sum::<u64>() + self.lane.dropped()
    }

    /// The "bus" object of /health.
    pub fn json(&self) -> serde_json::Value {
        let sockets: Vec<SocketSnapshot<'_>> = self
            .sockets
            .iter()
            .map(|(c, endpoint, format, s)| SocketSnapshot {
                name: c.name(),
                endpoint,
                format: *format,
                published: s.published.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
                subscriptions: s.subscriptions.load(Ordering::Relaxed),
            })
            .collect();
        serde_json::json!({
            "enabled": true,
            "zmq_published": self.published(),
            "dropped": self.dropped(),
            "lane_dropped": self.lane.dropped(),
            "sockets": sockets,
        })
    }

    /// One line for the end of a run.
    pub fn summary(&self) -> String {
        let per: Vec<String> = self
            .sockets
            .iter()
            .filter(|s| s.3.published.load(Ordering::Relaxed) + s.3.dropped.load(Ordering::Relaxed) > 0)
            .map(|(c, _, f, s)| {
                format!(
                    "{} {} {} sent/{} dropped",
                    c.name(),
                    f,
                    s.published.load(Ordering::Relaxed),
                    s.dropped.load(Ordering::Relaxed)
                )
            })
            .collect();
        format!(
            "bus (ZeroMQ): {} published, {} dropped ({} at the outbox lane){}{}",
            self.published(),
            self.dropped(),
            self.lane.dropped(),
            if per.is_empty() { "" } else { "; " },
            per.join(", ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "ZeroMQ {what} {endpoint}: {source}; is another process bound there? Change bus.{channel}.endpoint or set ZMQ_ENABLED=false"
    )]
    Bind { what: &'static str, channel: &'static str, endpoint: String, source: zmq::Error },
    #[error("ZeroMQ socket option on {endpoint}: {source}")]
    Option { endpoint: String, source: zmq::Error },
    #[error("{0}")]
    Config(String),
    #[error("cannot start the bus publisher thread: {0}")]
    Thread(std::io::Error),
}

/// Trade records go to ticks (a live session) or history (a replay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeChannel {
    Ticks,
    History,
}

/// What the thread needs besides the config.
#[derive(Clone, Debug)]
pub struct PublisherSettings {
    pub trades_to: TradeChannel,
    pub utc_offset_minutes: i32,
    /// The engine's frame schema, for JSON feature names.
    pub feature_names: Vec<String>,
}

/// A bound XPUB socket with drop counting.
pub(crate) fn bind_xpub(
    ctx: &zmq::Context,
    channel: &'static str,
    endpoint: &str,
    sndhwm: i32,
    linger_ms: i32,
    curve: &CurveConfig,
) -> Result<(zmq::Socket, String), BusError> {
    let endpoint_owned = endpoint.to_string();
    let opt = |source| BusError::Option { endpoint: endpoint_owned.clone(), source };
    let mut s = ctx.socket(zmq::XPUB).map_err(opt)?;
    s.set_sndhwm(sndhwm).map_err(opt)?;
    s.set_linger(linger_ms).map_err(opt)?;
    crate::ffi::set_xpub_nodrop(&mut s).map_err(opt)?;
    curve.apply(&s, Role::Publisher, endpoint).map_err(BusError::Config)?;
    s.bind(endpoint).map_err(|source| BusError::Bind {
        what: "cannot bind",
        channel,
        endpoint: endpoint.to_string(),
        source,
    })?;
    let bound = s.get_last_endpoint().ok().and_then(Result::ok).unwrap_or_else(|| endpoint.to_string());
    Ok((s, bound))
}

struct Out {
    socket: zmq::Socket,
    format: Format,
    status_index: usize,
    /// Per-topic sequence numbers; looked up by the reused topic buffer, so
    /// only a new topic allocates.
    seqs: HashMap<Box<[u8]>, u64>,
}

impl Out {
    fn next_seq(&mut self, topic: &[u8]) -> u64 {
        if let Some(s) = self.seqs.get_mut(topic) {
            *s += 1;
            return *s;
        }
        self.seqs.insert(topic.into(), 1);
        1
    }
}

/// The running publisher: join it after the engine's outbox is dropped.
#[derive(Debug)]
pub struct Publisher {
    status: Arc<BusStatus>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Binds every configured socket, then starts the thread draining `lane`.
    pub fn spawn(lane: OutboxReader, config: &BusConfig, settings: PublisherSettings) -> Result<Self, BusError> {
        config.curve.check(Role::Publisher).map_err(BusError::Config)?;
        let ctx = zmq::Context::new();
        let zap = config.curve.start_zap(&ctx).map_err(BusError::Config)?;
        let mut outs: [Option<Out>; 7] = Default::default();
        let mut sockets = Vec::new();
        for (i, channel) in Channel::ALL.into_iter().enumerate() {
            let sc = config.socket(channel);
            if sc.endpoint.trim().is_empty() {
                continue;
            }
            let endpoint = crate::endpoint::to_zmq(&sc.endpoint)
                .map_err(|e| BusError::Config(format!("bus.{}.endpoint: {e}", channel.name())))?;
            let (socket, bound) =
                bind_xpub(&ctx, channel.name(), &endpoint, config.sndhwm, config.linger_ms, &config.curve)?;
            outs[i] = Some(Out { socket, format: sc.format, status_index: sockets.len(), seqs: HashMap::new() });
            sockets.push((channel, bound, sc.format, SocketStatus::default()));
        }
        let status =
            Arc::new(BusStatus { sockets, lane: Arc::clone(lane.counters()), finished: AtomicBool::new(false) });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let status = Arc::clone(&status);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bus-publisher".into())
                .spawn(move || {
                    let mut w = Worker::new(outs, settings, status);
                    w.run(lane, &stop);
                    // The context outlives the sockets: they close (with linger) first.
                    drop(w);
                    drop(zap);
                    drop(ctx);
                })
                .map_err(BusError::Thread)?
        };
        Ok(Self { status, stop, thread: Some(thread) })
    }

    pub fn status(&self) -> &Arc<BusStatus> {
        &self.status
    }

    /// Waits for the thread to drain the lane (the outbox must be dropped
    /// first, or this waits for [`Publisher::stop`]).
    pub fn join(mut self) -> Arc<BusStatus> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Arc::clone(&self.status)
    }

    /// Makes the thread leave without draining.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

struct Worker {
    outs: [Option<Out>; 7],
    settings: PublisherSettings,
    status: Arc<BusStatus>,
    topic: Vec<u8>,
    payload: Vec<u8>,
    frame: Vec<f64>,
    encoder: Encoder,
    sub_msg: zmq::Message,
}

impl Worker {
    fn new(outs: [Option<Out>; 7], settings: PublisherSettings, status: Arc<BusStatus>) -> Self {
        Self {
            outs,
            settings,
            status,
            topic: Vec::with_capacity(64),
            payload: Vec::with_capacity(4096),
            frame: Vec::with_capacity(256),
            encoder: Encoder::new(),
            sub_msg: zmq::Message::new(),
        }
    }

    fn run(&mut self, mut lane: OutboxReader, stop: &AtomicBool) {
        let mut idle_rounds = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let mut n = 0;
            while n < 4096 {
                let Some(record) = lane.pop(&mut self.frame) else { break };
                self.publish(record);
                n += 1;
            }
            self.read_subscriptions();
            if n == 0 {
                if lane.is_finished() {
                    break;
                }
                idle_rounds = idle_rounds.saturating_add(1);
                // Short naps while busy, longer once quiet: this box has 2 cores.
                std::thread::sleep(if idle_rounds < 64 {
                    Duration::from_micros(50)
                } else {
                    Duration::from_micros(500)
                });
            } else {
                idle_rounds = 0;
            }
        }
        self.end_of_stream();
        self.status.finished.store(true, Ordering::Relaxed);
    }

    fn read_subscriptions(&mut self) {
        for out in self.outs.iter().flatten() {
            while out.socket.recv(&mut self.sub_msg, zmq::DONTWAIT).is_ok() {
                let delta = match self.sub_msg.first() {
                    Some(1) => 1,
                    Some(0) => -1,
                    _ => 0,
                };
                self.status.sockets[out.status_index].3.subscriptions.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }

    fn publish(&mut self, record: OutboxRecord) {
        let offset = self.settings.utc_offset_minutes;
        match record {
            OutboxRecord::Trade(t) => {
                let (channel, prefix): (usize, &[u8]) = match self.settings.trades_to {
                    TradeChannel::Ticks => (0, b"tick_"),
                    TradeChannel::History => (2, b"history_"),
                };
                topic_into(&mut self.topic, prefix, t.symbol.as_str());
                self.send(channel, |enc, out, seq, format| match format {
                    Format::Json => json::encode_trade(out, &t, seq, offset),
                    Format::Rkyv => enc.trade(out, &t, seq),
                });
            }
            OutboxRecord::Candle { candle, regime, .. } => {
                topic_into(&mut self.topic, b"feature_", candle.symbol.as_str());
                let frame = std::mem::take(&mut self.frame);
                let names = std::mem::take(&mut self.settings.feature_names);
                self.send(4, |enc, out, seq, format| match format {
                    Format::Json => json::encode_candle(out, &candle, &regime, &names, &frame, seq, offset),
                    Format::Rkyv => enc.candle(out, &candle, &regime, &frame, seq),
                });
                self.frame = frame;
                self.settings.feature_names = names;
            }
            OutboxRecord::Decision(d) => {
                let action = match d.signal.action {
                    Action::Buy => "buy",
                    Action::Sell => "sell",
                    Action::Hold => "hold",
                };
                topic_into(&mut self.topic, b"signal_", action);
                let encode = |enc: &mut Encoder, out: &mut Vec<u8>, seq: u64, format: Format| match format {
                    Format::Json => json::encode_decision(out, &d, seq, offset),
                    Format::Rkyv => enc.decision(out, &d, seq),
                };
                self.send(3, encode);
                topic_into(&mut self.topic, b"decision_", d.signal.symbol.as_str());
                self.send(5, encode);
            }
            OutboxRecord::Fill(f) => {
                topic_into(&mut self.topic, b"fill_", f.symbol.as_str());
                self.send(6, |enc, out, seq, format| match format {
                    Format::Json => json::encode_fill(out, &f, seq, offset),
                    Format::Rkyv => enc.fill(out, &f, seq),
                });
            }
            OutboxRecord::Book { symbol, ts_ms, top } => {
                topic_into(&mut self.topic, b"book_", symbol.as_str());
                self.send(1, |enc, out, seq, format| match format {
                    Format::Json => json::encode_book(out, &symbol, ts_ms, &top, seq, offset),
                    Format::Rkyv => enc.book(out, &symbol, ts_ms, &top, seq),
                });
            }
            OutboxRecord::RoundTrip(r) => {
                topic_into(&mut self.topic, b"roundtrip_", r.symbol.as_str());
                self.send(6, |enc, out, seq, format| match format {
                    Format::Json => json::encode_round_trip(out, &r, seq, offset),
                    Format::Rkyv => enc.round_trip(out, &r, seq),
                });
            }
        }
    }

    /// Encodes (only when the socket exists) and sends without waiting.
    fn send(&mut self, index: usize, encode: impl FnOnce(&mut Encoder, &mut Vec<u8>, u64, Format)) {
        let Some(out) = self.outs[index].as_mut() else { return };
        let seq = out.next_seq(&self.topic);
        encode(&mut self.encoder, &mut self.payload, seq, out.format);
        let counters = &self.status.sockets[out.status_index].3;
        match send_two(&out.socket, &self.topic, &self.payload, zmq::DONTWAIT) {
            Ok(()) => counters.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Tells tickhost subscribers of the trade socket that nothing follows.
    fn end_of_stream(&mut self) {
        let index = match self.settings.trades_to {
            TradeChannel::Ticks => 0,
            TradeChannel::History => 2,
        };
        let Some(out) = self.outs[index].as_ref() else { return };
        let last = out.seqs.values().copied().sum();
        match out.format {
            Format::Json => json::encode_end_of_stream(&mut self.payload, last),
            Format::Rkyv => self.encoder.end_of_stream(&mut self.payload, last),
        }
        // Bounded: a subscriber that stopped reading cannot hold the run's end.
        for _ in 0..100 {
            match send_two(&out.socket, CONTROL_TOPIC, &self.payload, zmq::DONTWAIT) {
                Err(zmq::Error::EAGAIN) => std::thread::sleep(Duration::from_millis(10)),
                _ => break,
            }
        }
    }
}

/// Topic then payload as one two-frame message. With XPUB_NODROP the HWM is
/// checked on the first frame only, so a message is sent whole or not at all.
pub(crate) fn send_two(socket: &zmq::Socket, topic: &[u8], payload: &[u8], flags: i32) -> Result<(), zmq::Error> {
    socket.send(topic, flags | zmq::SNDMORE)?;
    socket.send(payload, flags)
}
