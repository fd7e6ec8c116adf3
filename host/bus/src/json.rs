//! JSON payloads, field for field what the seeds' Python consumers read.
//!
//! Ticks carry `symbol, timestamp, trade_id, price, volume, quantity, buyer,
//! seller, trade_type, is_edit` as the seeds' `ZMQFeederWrapper` wrote them
//! from the DLL callback: `timestamp` is the DLL's local date string
//! `DD/MM/YYYY HH:mm:SS.ZZZ`, agents and trade type are the DLL's numeric
//! codes. Added fields (`timestamp_ms`, `seq`, `schema`) are ignored by those
//! consumers; `timestamp_ms` is the exact event time in UTC.
//!
//! Encoding writes into a caller's buffer with `write!`: no allocation once
//! the buffer has grown to the largest message.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;
use tickhost_core::book::TopOfBook;
use tickhost_core::broker::{Fill, RoundTrip};
use tickhost_core::engine::{Decision, Outcome};
use tickhost_core::regime::RegimeReading;
use tickhost_core::time::LocalTime;
use tickhost_core::{AgentDirectory, AgentId, Candle, Price, Symbol, Trade, TradeType};

use crate::wire::{SCHEMA_VERSION, WireError};

/// A number JSON can carry: NaN and infinities become `null`.
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:?}` keeps a decimal point on whole numbers (5000.0), so Python reads a float as the seeds' float(price) gave.
        if self.0.is_finite() { write!(f, "{:?}", self.0) } else { f.write_str("null") }
    }
}

/// The DLL's date format, local time.
struct DllDate {
    ts_ms: i64,
    utc_offset_minutes: i32,
}

impl std::fmt::Display for DllDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = LocalTime::from_epoch_ms(self.ts_ms, self.utc_offset_minutes);
        write!(
            f,
            "{:02}/{:02}/{:04} {:02}:{:02}:{:02}.{:03}",
            t.day, t.month, t.year, t.hour, t.minute, t.second, t.millisecond
        )
    }
}

/// `"timestamp":"...","timestamp_ms":N` (comma-terminated).
fn times(out: &mut Vec<u8>, ts_ms: i64, utc_offset_minutes: i32) {
    let _ = write!(out, "\"timestamp\":\"{}\",\"timestamp_ms\":{ts_ms},", DllDate { ts_ms, utc_offset_minutes });
}

fn tail(out: &mut Vec<u8>, seq: u64) {
    let _ = write!(out, "\"seq\":{seq},\"schema\":{SCHEMA_VERSION}}}");
}

/// Writes a serde value (an enum's name) without allocating.
fn value(out: &mut Vec<u8>, v: &impl serde::Serialize) {
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

pub fn encode_trade(out: &mut Vec<u8>, t: &Trade, seq: u64, utc_offset_minutes: i32) {
    out.clear();
    let _ = write!(out, "{{\"symbol\":\"{}\",", t.symbol.as_str());
    times(out, t.ts_ms, utc_offset_minutes);
    let _ = write!(
        out,
        "\"trade_id\":{},\"price\":{},\"volume\":{},\"quantity\":{},\"buyer\":{},\"seller\":{},\"trade_type\":{},\"is_edit\":{},",
        t.trade_number,
        Num(t.price.as_f64()),
        Num(t.volume),
        t.quantity,
        t.buy_agent.0,
        t.sell_agent.0,
        t.trade_type.code(),
        t.is_edit
    );
    tail(out, seq);
}

/// A closed candle with its feature frame, values keyed by `names`.
pub fn encode_candle(
    out: &mut Vec<u8>,
    c: &Candle,
    regime: &RegimeReading,
    names: &[String],
    frame: &[f64],
    seq: u64,
    utc_offset_minutes: i32,
) {
    out.clear();
    let _ = write!(out, "{{\"symbol\":\"{}\",", c.symbol.as_str());
    times(out, c.close_ms, utc_offset_minutes);
    let _ = write!(
        out,
        "\"open_ms\":{},\"open\":{},\"high\":{},\"low\":{},\"close\":{},\"volume\":{},\"financial_volume\":{},\"trades\":{},\"buy_volume\":{},\"sell_volume\":{},\"regime\":\"{}\",\"regime_confidence\":{},\"adx\":{},\"features\":{{",
        c.open_ms,
        Num(c.open),
        Num(c.high),
        Num(c.low),
        Num(c.close),
        Num(c.volume),
        Num(c.financial_volume),
        c.trades,
        Num(c.buy_volume),
        Num(c.sell_volume),
        regime.regime.name(),
        Num(regime.confidence),
        Num(regime.adx),
    );
    for (i, (name, v)) in names.iter().zip(frame).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        value(out, name);
        let _ = write!(out, ":{}", Num(*v));
    }
    out.extend_from_slice(b"},");
    tail(out, seq);
}

/// A strategy's signal and what became of it (signals and decisions sockets).
pub fn encode_decision(out: &mut Vec<u8>, d: &Decision, seq: u64, utc_offset_minutes: i32) {
    out.clear();
    let s = &d.signal;
    let _ = write!(out, "{{\"symbol\":\"{}\",", s.symbol.as_str());
    times(out, s.ts_ms, utc_offset_minutes);
    let _ = write!(out, "\"regime\":\"{}\",\"action\":", s.regime.name());
    value(out, &s.action);
    let _ = write!(
        out,
        ",\"confidence\":{},\"probability\":{},\"direction\":{},\"expected_move\":{},\"stop_points\":{},\"target_points\":{},\"reason\":",
        Num(s.confidence),
        Num(s.probability),
        Num(s.direction),
        Num(s.expected_move),
        Num(s.stop_points),
        Num(s.target_points)
    );
    value(out, &s.reason);
    match d.outcome {
        Outcome::Hold => out.extend_from_slice(b",\"outcome\":\"hold\","),
        Outcome::Refused { reason } => {
            out.extend_from_slice(b",\"outcome\":\"refused\",\"refusal\":");
            value(out, &reason);
            out.push(b',');
        }
        Outcome::Submitted { order_id } => {
            let _ = write!(out, ",\"outcome\":\"submitted\",\"order_id\":{order_id},");
        }
    }
    tail(out, seq);
}

pub fn encode_fill(out: &mut Vec<u8>, f: &Fill, seq: u64, utc_offset_minutes: i32) {
    out.clear();
    let _ = write!(out, "{{\"symbol\":\"{}\",", f.symbol.as_str());
    times(out, f.ts_ms, utc_offset_minutes);
    let _ = write!(out, "\"order_id\":{},\"side\":", f.order_id);
    value(out, &f.side);
    let _ = write!(
        out,
        ",\"quantity\":{},\"price\":{},\"fee_brl\":{},\"kind\":",
        f.quantity,
        Num(f.price.as_f64()),
        Num(f.fee_brl)
    );
    value(out, &f.kind);
    out.push(b',');
    tail(out, seq);
}

pub fn encode_round_trip(out: &mut Vec<u8>, r: &RoundTrip, seq: u64, utc_offset_minutes: i32) {
    out.clear();
    let _ = write!(out, "{{\"symbol\":\"{}\",", r.symbol.as_str());
    times(out, r.exit_ts_ms, utc_offset_minutes);
    out.extend_from_slice(b"\"side\":");
    value(out, &r.side);
    let _ = write!(
        out,
        ",\"quantity\":{},\"entry_ts_ms\":{},\"exit_ts_ms\":{},\"entry_price\":{},\"exit_price\":{},\"pnl_points\":{},\"pnl_brl\":{},\"fees_brl\":{},\"regime\":\"{}\",\"exit_reason\":",
        r.quantity,
        r.entry_ts_ms,
        r.exit_ts_ms,
        Num(r.entry_price.as_f64()),
        Num(r.exit_price.as_f64()),
        Num(r.pnl_points),
        Num(r.pnl_brl),
        Num(r.fees_brl),
        r.regime.name()
    );
    value(out, &r.exit_reason);
    out.push(b',');
    tail(out, seq);
}

/// A book's top: best prices, contracts on the best 5 levels, and what the
/// book features derive from them.
pub fn encode_book(out: &mut Vec<u8>, symbol: &Symbol, ts_ms: i64, top: &TopOfBook, seq: u64, utc_offset_minutes: i32) {
    out.clear();
    let _ = write!(out, "{{\"symbol\":\"{}\",", symbol.as_str());
    times(out, ts_ms, utc_offset_minutes);
    let _ = write!(
        out,
        "\"best_bid\":{},\"best_ask\":{},\"bid_depth_5\":{},\"ask_depth_5\":{},\"spread\":{},\"imbalance_5\":{},",
        Num(top.best_bid),
        Num(top.best_ask),
        Num(top.bid_depth),
        Num(top.ask_depth),
        Num(top.spread()),
        Num(top.imbalance())
    );
    tail(out, seq);
}

/// The end-of-stream control message (topic [`crate::wire::CONTROL_TOPIC`]).
pub fn encode_end_of_stream(out: &mut Vec<u8>, last_seq: u64) {
    out.clear();
    let _ = write!(out, "{{\"control\":\"end_of_stream\",\"last_seq\":{last_seq},\"schema\":{SCHEMA_VERSION}}}");
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stamp<'a> {
    Ms(i64),
    Seconds(f64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Agent<'a> {
    Code(i64),
    #[serde(borrow)]
    Name(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TypeField<'a> {
    Code(i64),
    #[serde(borrow)]
    Name(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

/// Every field optional so that a missing one gets a message naming it.
#[derive(Deserialize)]
struct JsonMessage<'a> {
    #[serde(borrow)]
    control: Option<Cow<'a, str>>,
    last_seq: Option<u64>,
    #[serde(borrow)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Stamp<'a>>,
    timestamp_ms: Option<i64>,
    trade_id: Option<u64>,
    price: Option<f64>,
    volume: Option<f64>,
    quantity: Option<i64>,
    #[serde(borrow)]
    buyer: Option<Agent<'a>>,
    #[serde(borrow)]
    seller: Option<Agent<'a>>,
    #[serde(borrow)]
    trade_type: Option<TypeField<'a>>,
    is_edit: Option<Flag>,
    seq: Option<u64>,
    schema: Option<u64>,
}

/// A decoded JSON message on a ticks socket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JsonTick {
    /// `seq` is there when a tickhost published it (the Python publisher has none).
    Trade {
        trade: Trade,
        seq: Option<u64>,
    },
    EndOfStream {
        last_seq: u64,
    },
}

/// Reads a tick as tickhost or the seeds' Python publisher writes it. Agent
/// names (a CSV-fed publisher) are interned in `agents`; numeric codes are
/// taken as they are.
pub fn decode_tick(
    payload: &[u8],
    utc_offset_minutes: i32,
    agents: &mut AgentDirectory,
) -> Result<JsonTick, WireError> {
    let m: JsonMessage<'_> = serde_json::from_slice(payload).map_err(|e| WireError::BadJson(e.to_string()))?;
    if let Some(v) = m.schema
        && v != u64::from(SCHEMA_VERSION)
    {
        return Err(WireError::UnsupportedJsonSchema { got: v });
    }
    if let Some(c) = m.control {
        return match c.as_ref() {
            "end_of_stream" => Ok(JsonTick::EndOfStream { last_seq: m.last_seq.unwrap_or(0) }),
            other => Err(WireError::BadField { field: "control", why: format!("unknown control message {other:?}") }),
        };
    }
    let missing = |field: &'static str| WireError::BadField { field, why: "missing".into() };
    let symbol_text = m.symbol.ok_or_else(|| missing("symbol"))?;
    let symbol = Symbol::new(&symbol_text)
        .ok_or_else(|| WireError::BadField { field: "symbol", why: format!("{symbol_text:?} is not a ticker") })?;
    let ts_ms = match (m.timestamp_ms, m.timestamp) {
        (Some(ms), _) => ms,
        (None, Some(Stamp::Ms(ms))) => ms,
        (None, Some(Stamp::Seconds(s))) => (s * 1000.0).round() as i64,
        (None, Some(Stamp::Text(text))) => parse_dll_date(&text, utc_offset_minutes).ok_or_else(|| {
            WireError::BadField { field: "timestamp", why: format!("{text:?} is not DD/MM/YYYY HH:mm:SS[.ZZZ]") }
        })?,
        (None, None) => return Err(missing("timestamp")),
    };
    let price_f = m.price.ok_or_else(|| missing("price"))?;
    let price = Price::from_f64(price_f)
        .filter(|p| p.raw() > 0)
        .ok_or_else(|| WireError::BadField { field: "price", why: format!("{price_f} is not a positive price") })?;
    let quantity = m.quantity.ok_or_else(|| missing("quantity"))?;
    if quantity <= 0 {
        return Err(WireError::BadField { field: "quantity", why: format!("{quantity} is not positive") });
    }
    let mut agent = |a: Option<Agent<'_>>| match a {
        None => AgentId::default(),
        Some(Agent::Code(c)) => AgentId(u32::try_from(c).unwrap_or(u32::MAX)),
        Some(Agent::Name(n)) => agents.intern(n.as_bytes()),
    };
    let buy_agent = agent(m.buyer);
    let sell_agent = agent(m.seller);
    let trade_type = match m.trade_type {
        None => TradeType::Unknown,
        Some(TypeField::Code(c)) => i32::try_from(c).ok().and_then(TradeType::from_code).unwrap_or(TradeType::Unknown),
        Some(TypeField::Name(n)) => TradeType::from_profit_name(n.as_bytes()).unwrap_or(TradeType::Unknown),
    };
    let is_edit = match m.is_edit {
        None => false,
        Some(Flag::Bool(b)) => b,
        Some(Flag::Int(i)) => i != 0,
    };
    let trade = Trade {
        symbol,
        ts_ms,
        trade_number: m.trade_id.ok_or_else(|| missing("trade_id"))?,
        price,
        quantity,
        volume: m.volume.unwrap_or(price.as_f64() * quantity as f64),
        buy_agent,
        sell_agent,
        trade_type,
        is_edit,
    };
    Ok(JsonTick::Trade { trade, seq: m.seq })
}

/// `DD/MM/YYYY HH:mm:SS[.ZZZ]`, local time at `utc_offset_minutes`.
pub fn parse_dll_date(text: &str, utc_offset_minutes: i32) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 19 || b[2] != b'/' || b[5] != b'/' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let millisecond = match b.get(19) {
        None => 0,
        Some(b'.') => {
            let digits = num(20..b.len())?;
            // ".5" is 500 ms, ".05" 50 ms.
            match b.len() - 20 {
                1 => digits * 100,
                2 => digits * 10,
                3 => digits,
                _ => return None,
            }
        }
        Some(_) => return None,
    };
    LocalTime {
        day: num(0..2)?,
        month: num(3..5)?,
        year: i32::try_from(num(6..10)?).ok()?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
        millisecond,
    }
    .to_epoch_ms(utc_offset_minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade() -> Trade {
        Trade {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms: 1_704_715_238_123,
            trade_number: 42,
            price: Price::from_f64(5012.5).expect("price"),
            quantity: 3,
            volume: 150_375.0,
            buy_agent: AgentId(7),
            sell_agent: AgentId(9),
            trade_type: TradeType::AggressorBuy,
            is_edit: false,
        }
    }

    #[test]
    fn a_tick_has_the_seed_fields_and_round_trips() {
        let mut buf = Vec::new();
        encode_trade(&mut buf, &trade(), 5, -180);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
        for f in [
            "symbol",
            "timestamp",
            "trade_id",
            "price",
            "volume",
            "quantity",
            "buyer",
            "seller",
            "trade_type",
            "is_edit",
        ] {
            assert!(v.get(f).is_some(), "field {f} missing in {v}");
        }
        assert_eq!(v["timestamp"], "08/01/2024 09:00:38.123");
        assert_eq!(v["price"], 5012.5);
        assert_eq!(v["trade_type"], 2);
        let mut agents = AgentDirectory::new();
        assert_eq!(decode_tick(&buf, -180, &mut agents), Ok(JsonTick::Trade { trade: trade(), seq: Some(5) }));
    }

    #[test]
    fn a_book_top_carries_prices_depths_and_what_the_features_derive() {
        let mut buf = Vec::new();
        let top = TopOfBook { best_bid: 5012.0, best_ask: 5012.5, bid_depth: 30.0, ask_depth: 10.0 };
        encode_book(&mut buf, &trade().symbol, trade().ts_ms, &top, 9, -180);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
        assert_eq!(v["symbol"], "WDOFUT", "{v}");
        assert_eq!(v["timestamp"], "08/01/2024 09:00:38.123", "{v}");
        assert_eq!((v["best_bid"].as_f64(), v["best_ask"].as_f64()), (Some(5012.0), Some(5012.5)), "{v}");
        assert_eq!((v["bid_depth_5"].as_f64(), v["ask_depth_5"].as_f64()), (Some(30.0), Some(10.0)), "{v}");
        assert_eq!((v["spread"].as_f64(), v["imbalance_5"].as_f64()), (Some(0.5), Some(0.5)), "{v}");
        assert_eq!(v["seq"], 9, "{v}");
    }

    #[test]
    fn the_python_publishers_tick_is_read_from_its_dll_date() {
        let py = br#"{"symbol":"WDOFUT","timestamp":"08/01/2024 09:00:38.123","trade_id":42,"price":5012.5,"volume":150375.0,"quantity":3,"buyer":7,"seller":9,"trade_type":2,"is_edit":0}"#;
        let mut agents = AgentDirectory::new();
        assert_eq!(decode_tick(py, -180, &mut agents), Ok(JsonTick::Trade { trade: trade(), seq: None }));
        let bad = br#"{"symbol":"WDOFUT","timestamp":"2024-01-08","trade_id":1,"price":1.0,"quantity":1}"#;
        let err = decode_tick(bad, -180, &mut agents).expect_err("bad date");
        assert!(err.to_string().contains("timestamp") && err.to_string().contains("2024-01-08"), "{err}");
        let err = decode_tick(br#"{"symbol":"WDOFUT","timestamp":1}"#, -180, &mut agents).expect_err("no price");
        assert!(err.to_string().contains("price: missing"), "{err}");
        let err = decode_tick(b"[1,2", -180, &mut agents).expect_err("not json");
        assert!(err.to_string().starts_with("JSON tick"), "{err}");
    }

    #[test]
    fn non_finite_numbers_become_null_and_control_messages_decode() {
        let mut buf = Vec::new();
        let mut c = crate::testing::sample_candle(0);
        c.high = f64::NAN;
        let regime = RegimeReading { regime: tickhost_core::regime::Regime::Range, confidence: 0.6, adx: 12.0 };
        let names = vec!["v3_a".to_string(), "v3_\"b".to_string()];
        encode_candle(&mut buf, &c, &regime, &names, &[1.0, f64::INFINITY], 9, 0);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
        assert!(v["high"].is_null() && v["features"]["v3_\"b"].is_null() && v["features"]["v3_a"] == 1.0);
        encode_end_of_stream(&mut buf, 12);
        let mut agents = AgentDirectory::new();
        assert_eq!(decode_tick(&buf, 0, &mut agents), Ok(JsonTick::EndOfStream { last_seq: 12 }));
    }
}
