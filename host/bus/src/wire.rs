//! What travels on a socket: a topic frame, then a payload in one of two
//! formats.
//!
//! - JSON: exactly what the Python consumers of the seeds parse with
//!   `orjson.loads(data)`, so no header in front of it; the sequence number
//!   and the schema version are fields (`seq`, `schema`) they ignore.
//! - rkyv: a 16-byte header, then an archive that a Rust consumer validates
//!   and reads in place, inside the received zmq message.
//!
//! Header (little-endian): magic `D1 54 48 42` (0xD1 "THB": never the first
//! byte of JSON), format, schema version, kind, reserved, sequence (u64).

use std::fmt;

/// First bytes of every headed payload.
pub const MAGIC: [u8; 4] = [0xD1, b'T', b'H', b'B'];
/// Bytes before the archive.
pub const HEADER_LEN: usize = 16;
/// Version of the payload schemas (header layout, archived types, JSON fields).
/// A consumer refuses any other; bump it when a field changes meaning.
pub const SCHEMA_VERSION: u8 = 1;
/// The topic of control messages (end of stream); SUBs of `tick_` never see it.
pub const CONTROL_TOPIC: &[u8] = b"control";

/// How a socket's payloads are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Rkyv,
}

impl Format {
    pub fn code(self) -> u8 {
        match self {
            Format::Json => 1,
            Format::Rkyv => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Format::Json),
            2 => Some(Format::Rkyv),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Rkyv => "rkyv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "rkyv" => Ok(Format::Rkyv),
            other => Err(format!("wire format {other:?}: use \"json\" or \"rkyv\"")),
        }
    }
}

/// What a payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Trade = 1,
    Candle = 2,
    Decision = 3,
    Fill = 4,
    RoundTrip = 5,
    /// The publisher has nothing more: a replaying ingest is done.
    EndOfStream = 6,
    /// A live book's top (best prices, depth of the best 5 levels).
    Book = 7,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Trade, Kind::Candle, Kind::Decision, Kind::Fill, Kind::RoundTrip, Kind::EndOfStream, Kind::Book];

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| *k as u8 == code)
    }
}

/// The fixed header of an rkyv payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    pub kind: Kind,
    pub seq: u64,
}

impl Header {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.format.code());
        out.push(SCHEMA_VERSION);
        out.push(self.kind as u8);
        out.push(0);
        out.extend_from_slice(&self.seq.to_le_bytes());
    }

    /// Reads the header of `payload`, refusing what this build cannot read.
    pub fn read(payload: &[u8]) -> Result<Header, WireError> {
        if payload.len() < HEADER_LEN || payload[..4] != MAGIC {
            return Err(WireError::NotHeaded { first: first_bytes(payload) });
        }
        let format = Format::from_code(payload[4]).ok_or(WireError::UnsupportedFormat { got: payload[4] })?;
        if payload[5] != SCHEMA_VERSION {
            return Err(WireError::UnsupportedSchema { got: payload[5], format });
        }
        let kind = Kind::from_code(payload[6]).ok_or(WireError::UnknownKind { got: payload[6] })?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&payload[8..16]);
        Ok(Header { format, kind, seq: u64::from_le_bytes(seq) })
    }
}

/// Why a payload was refused. Each names what it got and what this build reads.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error(
        "payload starts with {first}: neither a tickhost header (magic D1 54 48 42) nor a JSON object; this build reads rkyv schema {SCHEMA_VERSION} with that header, and JSON objects"
    )]
    NotHeaded { first: String },
    #[error("wire format code {got} in the header; this build reads 1 (json) and 2 (rkyv): upgrade this consumer")]
    UnsupportedFormat { got: u8 },
    #[error(
        "{format} payload of schema version {got}; this build reads schema version {SCHEMA_VERSION} only: run the same tickhost version on both ends"
    )]
    UnsupportedSchema { got: u8, format: Format },
    #[error(
        "record kind {got} in the header; this build knows kinds 1..=6 (trade, candle, decision, fill, round trip, end of stream)"
    )]
    UnknownKind { got: u8 },
    #[error("JSON schema version {got}; this build reads {SCHEMA_VERSION}")]
    UnsupportedJsonSchema { got: u64 },
    #[error("a {kind:?} payload where a trade was expected (wrong socket? trades are on the ticks/history sockets)")]
    NotATrade { kind: Kind },
    #[error("rkyv archive does not validate: {0}")]
    BadArchive(String),
    #[error("JSON tick: {0}")]
    BadJson(String),
    #[error("tick field {field}: {why}")]
    BadField { field: &'static str, why: String },
}

fn first_bytes(payload: &[u8]) -> String {
    if payload.is_empty() {
        return "nothing (an empty frame)".into();
    }
    let hex: Vec<String> = payload.iter().take(8).map(|b| format!("{b:02X}")).collect();
    format!("bytes {}", hex.join(" "))
}

/// Topic of a symbol's message on a socket, e.g. `tick_WDOFUT`: written
/// into a reused buffer.
pub fn topic_into(out: &mut Vec<u8>, prefix: &[u8], name: &str) {
    out.clear();
    out.extend_from_slice(prefix);
    out.extend_from_slice(name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_foreign_ones_are_refused_by_name() {
        let mut buf = Vec::new();
        Header { format: Format::Rkyv, kind: Kind::Trade, seq: 77 }.write(&mut buf);
        assert_eq!(buf.len(), HEADER_LEN);
        assert_eq!(Header::read(&buf), Ok(Header { format: Format::Rkyv, kind: Kind::Trade, seq: 77 }));
        let mut newer = buf.clone();
        newer[5] = SCHEMA_VERSION + 1;
        let err = Header::read(&newer).expect_err("newer schema");
        assert!(err.to_string().contains("schema version 2") && err.to_string().contains("version 1 only"), "{err}");
        let mut fmt = buf.clone();
        fmt[4] = 9;
        assert!(Header::read(&fmt).expect_err("format").to_string().contains("code 9"));
        let err = Header::read(b"hello world, not ours").expect_err("foreign");
        assert!(err.to_string().contains("68 65 6C 6C"), "{err}");
        assert!(Header::read(b"").expect_err("empty").to_string().contains("empty frame"));
    }
}
