//! The isolated-ingest seam (tickhost_feed::ingest) over ZeroMQ: `tickhost
//! ingest` publishes trades on an XPUB socket, an engine subscribes.
//!
//! Unlike the engine's publisher this one may wait: it is a separate
//! process whose only job is to deliver. It waits for its first subscriber
//! before sending anything (the late-joiner problem: a PUB drops whatever
//! it sends before a subscription arrives), and with XPUB_NODROP a full
//! subscriber queue makes it wait instead of losing trades.

use std::time::{Duration, Instant};

use tickhost_feed::ingest::{IngestError, IngestReader, IngestRecord, IngestWriter};

use crate::archive::Encoder;
use crate::endpoint::CurveConfig;
use crate::json;
use crate::publisher::{bind_xpub, send_two};
use crate::subscriber::{TickEvent, TickSubscriber};
use crate::wire::{CONTROL_TOPIC, Format, topic_into};

/// How long a send may wait for a full subscriber before the ingest gives up.
const SEND_TIMEOUT_MS: i32 = 10_000;

fn io(what: String) -> IngestError {
    IngestError::Io(std::io::Error::other(what))
}

/// The publishing end of `tickhost ingest --publish`.
pub struct ZmqIngestWriter {
    socket: zmq::Socket,
    /// Declared between the two: dropped after the socket, before the context.
    _zap: Option<crate::zap::ZapHandler>,
    _ctx: zmq::Context,
    bound: String,
    format: Format,
    utc_offset_minutes: i32,
    encoder: Encoder,
    topic: Vec<u8>,
    payload: Vec<u8>,
    seq: u64,
    subscribers: i64,
    sub_msg: zmq::Message,
}

impl std::fmt::Debug for ZmqIngestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqIngestWriter").field("bound", &self.bound).field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl ZmqIngestWriter {
    /// Binds `endpoint` (`zmq://`, `zmq+ipc://`, `tcp://`, `ipc://`).
    pub fn bind(
        endpoint: &str,
        format: Format,
        sndhwm: i32,
        curve: &CurveConfig,
        utc_offset_minutes: i32,
    ) -> Result<Self, IngestError> {
        let endpoint = crate::endpoint::to_zmq(endpoint).map_err(io)?;
        let ctx = zmq::Context::new();
        let zap = curve.start_zap(&ctx).map_err(io)?;
        // Linger -1: the end-of-stream and the last trades are delivered before the process exits.
        let (socket, bound) = bind_xpub(&ctx, "ingest", &endpoint, sndhwm, -1, curve).map_err(|e| io(e.to_string()))?;
        // A subscriber that stops reading for this long is taken as gone (the
        // engine died): the send fails and the ingest process ends rather than
        // wait forever.
        socket.set_sndtimeo(SEND_TIMEOUT_MS).map_err(|e| io(format!("{bound}: {e}")))?;
        Ok(Self {
            socket,
            _zap: zap,
            _ctx: ctx,
            bound,
            format,
            utc_offset_minutes,
            encoder: Encoder::new(),
            topic: Vec::with_capacity(64),
            payload: Vec::with_capacity(512),
            seq: 0,
            subscribers: 0,
            sub_msg: zmq::Message::new(),
        })
    }

    /// The endpoint as bound (a `*` port resolved).
    pub fn bound(&self) -> &str {
        &self.bound
    }

    /// Waits until a subscriber's subscription has arrived, so nothing is
    /// sent into the void. `false` on timeout.
    pub fn wait_for_subscriber(&mut self, timeout: Duration) -> Result<bool, IngestError> {
        let deadline = Instant::now() + timeout;
        while self.subscribers <= 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1);
            if self.socket.poll(zmq::POLLIN, ms).map_err(|e| io(format!("poll {}: {e}", self.bound)))? > 0 {
                self.read_subscriptions();
            }
        }
        Ok(true)
    }

    fn read_subscriptions(&mut self) {
        while self.socket.recv(&mut self.sub_msg, zmq::DONTWAIT).is_ok() {
            match self.sub_msg.first() {
                Some(1) => self.subscribers += 1,
                Some(0) => self.subscribers -= 1,
                _ => {}
            }
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.seq
    }

    /// Tells the subscribers nothing follows (a replay is over).
    pub fn end_of_stream(&mut self) -> Result<(), IngestError> {
        match self.format {
            Format::Json => json::encode_end_of_stream(&mut self.payload, self.seq),
            Format::Rkyv => self.encoder.end_of_stream(&mut self.payload, self.seq),
        }
        send_two(&self.socket, CONTROL_TOPIC, &self.payload, 0).map_err(|e| io(format!("send to {}: {e}", self.bound)))
    }
}

impl IngestWriter for ZmqIngestWriter {
    fn send(&mut self, record: &IngestRecord) -> Result<(), IngestError> {
        let IngestRecord::Trade(t) = record else { return Ok(()) };
        // One sequence for the whole socket: one symbol per ingest in practice,
        // and the engine's gap check is per topic, which then is the same.
        self.seq += 1;
        topic_into(&mut self.topic, b"tick_", t.symbol.as_str());
        match self.format {
            Format::Json => json::encode_trade(&mut self.payload, t, self.seq, self.utc_offset_minutes),
            Format::Rkyv => self.encoder.trade(&mut self.payload, t, self.seq),
        }
        // Blocking send: at the HWM (NODROP) this waits for the subscriber, never drops.
        send_two(&self.socket, &self.topic, &self.payload, 0)
            .map_err(|e| io(format!("send to {}: {e}", self.bound)))?;
        if self.seq.is_multiple_of(4096) {
            self.read_subscriptions();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        Ok(())
    }
}

/// The engine's end of the seam over ZeroMQ: `Ok(None)` at end of stream.
#[derive(Debug)]
pub struct ZmqIngestReader {
    sub: TickSubscriber,
    poll_ms: i64,
}

impl ZmqIngestReader {
    pub fn new(sub: TickSubscriber, poll_ms: i64) -> Self {
        Self { sub, poll_ms }
    }

    pub fn subscriber(&self) -> &TickSubscriber {
        &self.sub
    }

    /// One poll: `Ok(Some(None))` at end of stream, `Ok(None)` when nothing came in time.
    pub fn poll(&mut self) -> Result<Option<Option<IngestRecord>>, IngestError> {
        match self.sub.recv(self.poll_ms).map_err(|e| io(e.to_string()))? {
            None => Ok(None),
            Some(TickEvent::EndOfStream) => Ok(Some(None)),
            Some(TickEvent::Trade(t)) => Ok(Some(Some(IngestRecord::Trade(t)))),
        }
    }
}

impl IngestReader for ZmqIngestReader {
    fn recv(&mut self) -> Result<Option<IngestRecord>, IngestError> {
        loop {
            if let Some(r) = self.poll()? {
                return Ok(r);
            }
        }
    }
}
