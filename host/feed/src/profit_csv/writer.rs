//! Writes trades in Profit's CSV export format, so synthetic or converted data
//! can be fed back through the same reader (tests, benchmarks, conversions).

use std::io::{self, Write};

use tickhost_core::time::{B3_UTC_OFFSET_MINUTES, LocalTime};
use tickhost_core::{AgentDirectory, AgentId, Trade};

use super::HEADER;

/// Writes the header and one row per trade.
///
/// Every [`Trade`] field round-trips through [`super::ProfitCsvReader`]
/// exactly, given [`with_millis`](Self::with_millis) for sub-second times and
/// [`with_edit_column`](Self::with_edit_column) for corrections: without them
/// milliseconds are truncated and `is_edit` is dropped, as in Profit's own
/// export. Agents round-trip by name (ids are per directory).
#[derive(Debug)]
pub struct ProfitCsvWriter<W: Write> {
    out: W,
    row: Vec<u8>,
    millis: bool,
    edit_column: bool,
    header: bool,
    header_written: bool,
    utc_offset_minutes: i32,
}

impl<W: Write> ProfitCsvWriter<W> {
    /// Seconds-resolution times, no `<edit>` column, a header line, B3 time.
    /// Wrap `w` in a `BufWriter` when it is a file: this writes once per row.
    pub fn new(w: W) -> Self {
        Self {
            out: w,
            row: Vec::with_capacity(256),
            millis: false,
            edit_column: false,
            header: true,
            header_written: false,
            utc_offset_minutes: B3_UTC_OFFSET_MINUTES,
        }
    }

    /// Writes times as `HHMMSS.mmm`.
    pub fn with_millis(mut self, on: bool) -> Self {
        self.millis = on;
        self
    }

    /// Adds the 12th `<edit>` column (`Y`/`N`).
    pub fn with_edit_column(mut self, on: bool) -> Self {
        self.edit_column = on;
        self
    }

    /// Whether to write the header line (default yes).
    pub fn with_header(mut self, on: bool) -> Self {
        self.header = on;
        self
    }

    /// The local time zone the dates and times are written in.
    pub fn with_utc_offset_minutes(mut self, minutes: i32) -> Self {
        self.utc_offset_minutes = minutes;
        self
    }

    fn write_header_once(&mut self) -> io::Result<()> {
        if self.header && !self.header_written {
            self.out.write_all(HEADER.as_bytes())?;
            if self.edit_column {
                self.out.write_all(b",<edit>")?;
            }
            self.out.write_all(b"\n")?;
        }
        self.header_written = true;
        Ok(())
    }

    /// Fails with `InvalidInput`, writing nothing, for a trade the format
    /// cannot carry (an agent id missing from `agents`, an agent name with a
    /// comma, line break or surrounding spaces, a date outside years
    /// 0-9999) or that the reader would reject as a bad row (price or
    /// quantity not positive, volume negative or not finite), so everything
    /// written reads back.
    pub fn write_trade(&mut self, t: &Trade, agents: &AgentDirectory) -> io::Result<()> {
        self.write_header_once()?;
        self.row.clear();
        format_row(&mut self.row, t, agents, self.millis, self.edit_column, self.utc_offset_minutes)?;
        self.out.write_all(&self.row)
    }

    /// Writes the header if no trade was written, flushes, and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header_once()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn agent_name(agents: &AgentDirectory, id: AgentId) -> io::Result<&str> {
    let name = agents.name(id).ok_or_else(|| invalid(format!("agent id {} is not in the directory", id.0)))?;
    if name.bytes().any(|b| matches!(b, b',' | b'\n' | b'\r')) || name.trim_ascii() != name {
        return Err(invalid(format!("agent name {name:?} cannot be written to a CSV field")));
    }
    Ok(name)
}

fn format_row(
    row: &mut Vec<u8>,
    t: &Trade,
    agents: &AgentDirectory,
    millis: bool,
    edit_column: bool,
    utc_offset_minutes: i32,
) -> io::Result<()> {
    if t.price.raw() <= 0 || t.quantity <= 0 || !t.volume.is_finite() || t.volume < 0.0 {
        return Err(invalid(format!(
            "trade {} has price {}, quantity {}, volume {}: not a valid row",
            t.trade_number, t.price, t.quantity, t.volume
        )));
    }
    let buy = agent_name(agents, t.buy_agent)?;
    let sell = agent_name(agents, t.sell_agent)?;
    let symbol = t.symbol.as_str();
    if symbol.contains(',') {
        return Err(invalid(format!("symbol {symbol:?} cannot be written to a CSV field")));
    }
    let lt = LocalTime::from_epoch_ms(t.ts_ms, utc_offset_minutes);
    if !(0..=9999).contains(&lt.year) {
        return Err(invalid(format!("timestamp {} is outside years 0-9999", t.ts_ms)));
    }
    write!(row, "{symbol},{:04}{:02}{:02},{:02}{:02}{:02}", lt.year, lt.month, lt.day, lt.hour, lt.minute, lt.second)?;
    if millis {
        write!(row, ".{:03}", lt.millisecond)?;
    }
    // Profit writes eight decimals; the last four are always zero at 1e-4 resolution.
    let raw = t.price.raw();
    let scale = tickhost_core::Price::SCALE;
    write!(row, ",{},{}.{:04}0000,{}", t.trade_number, raw / scale, raw % scale, t.quantity)?;
    // Shortest representation that parses back to the same f64; Profit's
    // `.0000` suffix is kept for whole values so files look like exports.
    let vol_start = row.len() + 1;
    write!(row, ",{}", t.volume)?;
    if !row[vol_start..].contains(&b'.') {
        row.extend_from_slice(b".0000");
    }
    write!(row, ",{buy},{sell},{},N", t.trade_type.profit_name())?;
    if edit_column {
        row.extend_from_slice(if t.is_edit { b",Y" } else { b",N" });
    }
    row.push(b'\n');
    Ok(())
}
