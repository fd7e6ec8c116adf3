//! The transport between `tickhost ingest` (the DLL in its own process, so a
//! crash of the DLL cannot take the engine down) and the engine.
//!
//! The seam is [`IngestWriter`] / [`IngestReader`]: records in, records out,
//! in order. Today's implementation is a pipe (the child's stdout) carrying
//! fixed-size little-endian frames; the ZeroMQ ipc transport (host/bus) plugs
//! in behind the same two traits, with [`encode`] / [`decode`] as its payload.

use std::io::{self, Read, Write};

use tickhost_core::{AgentId, Price, Symbol, Trade, TradeType};

/// One frame on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IngestRecord {
    Trade(Trade),
    /// The ingest process is connected and publishing (sent after login).
    Ready,
}

/// Bytes per frame.
pub const FRAME_LEN: usize = 80;
const MAGIC: u8 = 0xD1;
const KIND_TRADE: u8 = 1;
const KIND_READY: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest transport: {0}")]
    Io(#[from] io::Error),
    #[error("ingest frame {index}: {what}; the ingest process and the engine are different versions?")]
    BadFrame { index: u64, what: &'static str },
}

/// Encodes one record into a frame.
pub fn encode(record: &IngestRecord, out: &mut [u8; FRAME_LEN]) {
    out.fill(0);
    out[0] = MAGIC;
    match record {
        IngestRecord::Ready => out[1] = KIND_READY,
        IngestRecord::Trade(t) => {
            out[1] = KIND_TRADE;
            out[2] = t.trade_type.code();
            out[3] = u8::from(t.is_edit);
            let sym = t.symbol.as_str().as_bytes();
            out[4] = sym.len() as u8;
            out[5..5 + sym.len()].copy_from_slice(sym);
            out[28..36].copy_from_slice(&t.ts_ms.to_le_bytes());
            out[36..44].copy_from_slice(&t.trade_number.to_le_bytes());
            out[44..52].copy_from_slice(&t.price.raw().to_le_bytes());
            out[52..60].copy_from_slice(&t.quantity.to_le_bytes());
            out[60..68].copy_from_slice(&t.volume.to_le_bytes());
            out[68..72].copy_from_slice(&t.buy_agent.0.to_le_bytes());
            out[72..76].copy_from_slice(&t.sell_agent.0.to_le_bytes());
        }
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    a
}

/// Decodes one frame; `what` names what is wrong with a bad one.
pub fn decode(frame: &[u8; FRAME_LEN]) -> Result<IngestRecord, &'static str> {
    if frame[0] != MAGIC {
        return Err("bad magic byte");
    }
    match frame[1] {
        KIND_READY => Ok(IngestRecord::Ready),
        KIND_TRADE => {
            let len = usize::from(frame[4]);
            let symbol = Symbol::from_bytes(frame.get(5..5 + len).ok_or("symbol length")?).ok_or("bad symbol")?;
            let trade_type = TradeType::from_code(i32::from(frame[2])).ok_or("bad trade type")?;
            Ok(IngestRecord::Trade(Trade {
                symbol,
                ts_ms: i64::from_le_bytes(le8(&frame[28..])),
                trade_number: u64::from_le_bytes(le8(&frame[36..])),
                price: Price::from_raw(i64::from_le_bytes(le8(&frame[44..]))),
                quantity: i64::from_le_bytes(le8(&frame[52..])),
                volume: f64::from_le_bytes(le8(&frame[60..])),
                buy_agent: AgentId(u32::from_le_bytes(le4(&frame[68..]))),
                sell_agent: AgentId(u32::from_le_bytes(le4(&frame[72..]))),
                trade_type,
                is_edit: frame[3] != 0,
            }))
        }
        _ => Err("unknown record kind"),
    }
}

/// The ingest process's end.
pub trait IngestWriter {
    fn send(&mut self, record: &IngestRecord) -> Result<(), IngestError>;
    fn flush(&mut self) -> Result<(), IngestError>;
}

/// The engine's end. `Ok(None)`: the ingest process is gone (end of stream).
pub trait IngestReader {
    fn recv(&mut self) -> Result<Option<IngestRecord>, IngestError>;
}

/// Frames over any byte stream (a pipe).
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    inner: W,
    frame: [u8; FRAME_LEN],
}

impl<W: Write> StreamWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, frame: [0; FRAME_LEN] }
    }
}

impl<W: Write> IngestWriter for StreamWriter<W> {
    fn send(&mut self, record: &IngestRecord) -> Result<(), IngestError> {
        encode(record, &mut self.frame);
        self.inner.write_all(&self.frame)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        self.inner.flush()?;
        Ok(())
    }
}

#[derive(Debug)]
pub struct StreamReader<R: Read> {
    inner: R,
    frame: [u8; FRAME_LEN],
    index: u64,
}

impl<R: Read> StreamReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, frame: [0; FRAME_LEN], index: 0 }
    }
}

impl<R: Read> IngestReader for StreamReader<R> {
    fn recv(&mut self) -> Result<Option<IngestRecord>, IngestError> {
        let mut filled = 0;
        while filled < FRAME_LEN {
            match self.inner.read(&mut self.frame[filled..]) {
                // A process that died mid-frame leaves a partial frame: that frame is lost with it.
                Ok(0) => return Ok(None),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.index += 1;
        decode(&self.frame).map(Some).map_err(|what| IngestError::BadFrame { index: self.index, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_round_trip_through_a_byte_stream_and_eof_ends_it() {
        let t = Trade {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms: 1_704_715_200_123,
            trade_number: 42,
            price: Price::from_f64(5012.5).expect("price"),
            quantity: 3,
            volume: 150_375.0,
            buy_agent: AgentId(7),
            sell_agent: AgentId(9),
            trade_type: TradeType::Auction,
            is_edit: true,
        };
        let mut bytes = Vec::new();
        let mut w = StreamWriter::new(&mut bytes);
        w.send(&IngestRecord::Ready).expect("send");
        w.send(&IngestRecord::Trade(t)).expect("send");
        w.flush().expect("flush");
        bytes.extend_from_slice(&[MAGIC, KIND_TRADE, 0]); // a partial frame: the writer died
        let mut r = StreamReader::new(bytes.as_slice());
        assert_eq!(r.recv().expect("ready"), Some(IngestRecord::Ready));
        assert_eq!(r.recv().expect("trade"), Some(IngestRecord::Trade(t)));
        assert_eq!(r.recv().expect("eof"), None);
        let mut bad = [0u8; FRAME_LEN];
        bad[0] = 0x00;
        assert!(StreamReader::new(&bad[..]).recv().is_err());
    }
}
