//! Profit's historical tick CSV export, streamed.
//!
//! ```text
//! <ticker>,<date>,<time>,<trade_number>,<price>,<qty>,<vol>,<buy_agent>,<sell_agent>,<trade_type>,<aft>[,<edit>]
//! WINFUT,20240108,090038,10,132840.00000000,25,664200.0000,Capital,Capital,Auction,N
//! ```
//!
//! One contract's history can be tens of gigabytes, so [`ProfitCsvReader`]
//! reads one line at a time into a single reused buffer and parses the bytes
//! in place: memory stays constant and a row costs no allocation (only a
//! never-seen agent name allocates, once).
//!
//! Dates are `YYYYMMDD`, `YYYY-MM-DD` or `DD/MM/YYYY`; times `HHMMSS`,
//! `HHMMSS.mmm`, `HHMMSSmmm` or `HH:MM:SS[.mmm]`, in exchange local time. The
//! header is optional, fields may be padded with spaces, lines may end in
//! CRLF, and blank lines are skipped. The `<aft>` column is read past, not
//! interpreted. An optional 12th `<edit>` column (`Y`/`N`, `1`/`0`,
//! `true`/`false`) flags exchange corrections.

mod cache;
mod fields;
mod writer;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use tickhost_core::time::{B3_UTC_OFFSET_MINUTES, LocalTime};
use tickhost_core::{AgentDirectory, AgentId, Symbol, Trade, TradeType};

use cache::SmallCache;
use fields::{PriceError, QuantityError, split_fields};
pub use writer::ProfitCsvWriter;

/// Header line of Profit's export (without the optional `<edit>` column).
pub const HEADER: &str =
    "<ticker>,<date>,<time>,<trade_number>,<price>,<qty>,<vol>,<buy_agent>,<sell_agent>,<trade_type>,<aft>";

/// Column names, as used in [`BadRow::field`].
const FIELD_NAMES: [&str; MAX_FIELDS] = [
    "ticker",
    "date",
    "time",
    "trade_number",
    "price",
    "qty",
    "vol",
    "buy_agent",
    "sell_agent",
    "trade_type",
    "aft",
    "edit",
];
const REQUIRED_FIELDS: usize = 11;
const MAX_FIELDS: usize = 12;

/// A row is ~100 bytes. The cap keeps memory bounded when a file is not a CSV
/// at all (a binary file has no newlines for gigabytes).
const MAX_LINE_BYTES: usize = 64 * 1024;

/// How much of an offending value an error message quotes.
const MAX_QUOTED_BYTES: usize = 64;

/// Bad rows kept verbatim for the end-of-run report; the rest are only counted.
const KEPT_BAD_ROWS: usize = 10;

/// What to do with a row that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRowPolicy {
    /// Stop at the first bad row: silently dropping data is the wrong default
    /// for a backtest.
    #[default]
    Fail,
    /// Count it, keep the first few for the report, and go on.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfitCsvOptions {
    pub on_bad_row: BadRowPolicy,
    /// Offset of the file's local times from UTC (B3 by default).
    pub utc_offset_minutes: i32,
}

impl Default for ProfitCsvOptions {
    fn default() -> Self {
        Self { on_bad_row: BadRowPolicy::Fail, utc_offset_minutes: B3_UTC_OFFSET_MINUTES }
    }
}

/// Why a row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadRowKind {
    MissingField,
    TooManyFields,
    LineTooLong,
    NotANumber,
    BadDate,
    BadTime,
    NonPositivePrice,
    NonFinitePrice,
    PriceOutOfRange,
    NonPositiveQuantity,
    /// Financial volume negative, NaN or infinite.
    BadVolume,
    BadSymbol,
    BadEditFlag,
}

impl BadRowKind {
    pub const COUNT: usize = 13;

    pub const ALL: [BadRowKind; Self::COUNT] = [
        BadRowKind::MissingField,
        BadRowKind::TooManyFields,
        BadRowKind::LineTooLong,
        BadRowKind::NotANumber,
        BadRowKind::BadDate,
        BadRowKind::BadTime,
        BadRowKind::NonPositivePrice,
        BadRowKind::NonFinitePrice,
        BadRowKind::PriceOutOfRange,
        BadRowKind::NonPositiveQuantity,
        BadRowKind::BadVolume,
        BadRowKind::BadSymbol,
        BadRowKind::BadEditFlag,
    ];

    /// Position in [`BadRowKind::ALL`] and [`CsvStats::bad_rows_by_kind`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short stable name for reports and metrics.
    pub fn label(self) -> &'static str {
        match self {
            BadRowKind::MissingField => "missing_field",
            BadRowKind::TooManyFields => "too_many_fields",
            BadRowKind::LineTooLong => "line_too_long",
            BadRowKind::NotANumber => "not_a_number",
            BadRowKind::BadDate => "bad_date",
            BadRowKind::BadTime => "bad_time",
            BadRowKind::NonPositivePrice => "non_positive_price",
            BadRowKind::NonFinitePrice => "non_finite_price",
            BadRowKind::PriceOutOfRange => "price_out_of_range",
            BadRowKind::NonPositiveQuantity => "non_positive_quantity",
            BadRowKind::BadVolume => "bad_volume",
            BadRowKind::BadSymbol => "bad_symbol",
            BadRowKind::BadEditFlag => "bad_edit_flag",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            BadRowKind::MissingField => "missing field (row has too few columns)",
            BadRowKind::TooManyFields => "too many fields (expected 11 or 12 columns)",
            BadRowKind::LineTooLong => "line longer than 64 KiB",
            BadRowKind::NotANumber => "not a number",
            BadRowKind::BadDate => "not a valid date (YYYYMMDD, YYYY-MM-DD or DD/MM/YYYY)",
            BadRowKind::BadTime => "not a valid time (HHMMSS, HHMMSS.mmm, HHMMSSmmm or HH:MM:SS[.mmm])",
            BadRowKind::NonPositivePrice => "price is zero or negative",
            BadRowKind::NonFinitePrice => "price is NaN or infinite",
            BadRowKind::PriceOutOfRange => "price too large",
            BadRowKind::NonPositiveQuantity => "quantity is zero or negative",
            BadRowKind::BadVolume => "financial volume is negative, NaN or infinite",
            BadRowKind::BadSymbol => "not a ticker (1-23 printable ASCII characters)",
            BadRowKind::BadEditFlag => "not an edit flag (Y/N, 1/0, true/false)",
        }
    }
}

impl fmt::Display for BadRowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// One rejected row, located precisely enough to fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: field {field}: {kind} ({text}); use --on-bad-row skip to skip such rows")]
pub struct BadRow {
    pub source_name: String,
    /// 1-based, counting the header and blank lines.
    pub line: u64,
    /// Column name from the header, without the angle brackets; `row` when
    /// the problem is the line as a whole.
    pub field: &'static str,
    pub kind: BadRowKind,
    /// The offending value (the whole line for column-count problems),
    /// truncated and with non-printable characters escaped.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{source_name}: {source}")]
    Io { source_name: String, source: io::Error },
    #[error(transparent)]
    BadRow(BadRow),
}

/// What the reader has seen so far.
#[derive(Debug, Default, Clone)]
pub struct CsvStats {
    /// Data rows (not the header or blank lines), good and bad.
    pub rows: u64,
    pub trades: u64,
    pub bad_rows: u64,
    /// Indexed by [`BadRowKind::index`].
    pub bad_rows_by_kind: [u64; BadRowKind::COUNT],
    /// Trades whose type name Profit does not define, read as [`TradeType::Unknown`].
    pub unknown_trade_types: u64,
    /// Distinct agent names that were not UTF-8 and were decoded as Latin-1.
    pub non_utf8_agents: u64,
    /// The first few bad rows, for the end-of-run report.
    pub first_bad_rows: Vec<BadRow>,
}

impl CsvStats {
    pub fn bad_rows_of(&self, kind: BadRowKind) -> u64 {
        self.bad_rows_by_kind[kind.index()]
    }

    /// (kind, count) for every kind seen at least once.
    pub fn bad_row_counts(&self) -> impl Iterator<Item = (BadRowKind, u64)> + '_ {
        BadRowKind::ALL.iter().map(|&k| (k, self.bad_rows_of(k))).filter(|&(_, n)| n > 0)
    }
}

/// A rejection before it is turned into a [`BadRow`]: skipped rows past the
/// first few must not allocate.
#[derive(Debug, Clone, Copy)]
struct RowError {
    kind: BadRowKind,
    field: &'static str,
    /// Byte range of the offending text within the line.
    span: (usize, usize),
}

fn quote(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_QUOTED_BYTES)];
    let mut s: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if cut.len() < bytes.len() {
        s.push('…');
    }
    s
}

/// Date parsing and calendar arithmetic are the costliest part of a row, and
/// a file holds few distinct dates, so the last one is remembered.
#[derive(Debug, Default)]
struct DateCache {
    key: [u8; 10],
    len: usize,
    midnight_ms: i64,
}

/// Everything row parsing mutates, apart from the line buffer it reads.
#[derive(Debug)]
struct RowParser {
    utc_offset_minutes: i32,
    agents: AgentDirectory,
    date: DateCache,
    symbols: SmallCache<Option<Symbol>>,
    agent_ids: SmallCache<AgentId>,
    trade_types: SmallCache<Option<TradeType>>,
}

impl RowParser {
    fn midnight_ms(&mut self, date: &[u8]) -> Option<i64> {
        if self.date.len != 0 && date == &self.date.key[..self.date.len] {
            return Some(self.date.midnight_ms);
        }
        let (year, month, day) = fields::parse_date(date)?;
        let midnight = LocalTime { year, month, day, hour: 0, minute: 0, second: 0, millisecond: 0 }
            .to_epoch_ms(self.utc_offset_minutes)?;
        // parse_date only accepts 8 or 10 bytes, so the key always fits.
        self.date.key[..date.len()].copy_from_slice(date);
        self.date.len = date.len();
        self.date.midnight_ms = midnight;
        Some(midnight)
    }

    fn intern_agent(&mut self, raw: &[u8], stats: &mut CsvStats) -> AgentId {
        let agents = &mut self.agents;
        self.agent_ids.get_or_insert(raw, |raw| {
            let known = agents.len();
            let id = agents.intern(raw);
            if agents.len() > known && std::str::from_utf8(raw).is_err() {
                stats.non_utf8_agents += 1;
            }
            id
        })
    }

    fn symbol(&mut self, raw: &[u8]) -> Option<Symbol> {
        self.symbols.get_or_insert(raw, Symbol::from_bytes)
    }

    fn parse(&mut self, line: &[u8], stats: &mut CsvStats) -> Result<Trade, RowError> {
        let mut spans = [(0usize, 0usize); MAX_FIELDS];
        let Some(n) = split_fields(line, &mut spans) else {
            return Err(RowError { kind: BadRowKind::TooManyFields, field: "row", span: (0, line.len()) });
        };
        if n < REQUIRED_FIELDS {
            return Err(RowError { kind: BadRowKind::MissingField, field: FIELD_NAMES[n], span: (0, line.len()) });
        }
        // Trim each field, keeping spans relative to the line for error text.
        for span in &mut spans[..n] {
            let raw = &line[span.0..span.1];
            let lead = raw.len() - raw.trim_ascii_start().len();
            let trail = raw.len() - raw.trim_ascii_end().len();
            if lead < raw.len() {
                *span = (span.0 + lead, span.1 - trail);
            } else {
                *span = (span.0, span.0);
            }
        }
        let field = |i: usize| &line[spans[i].0..spans[i].1];
        let err = |i: usize, kind: BadRowKind| RowError { kind, field: FIELD_NAMES[i], span: spans[i] };

        let symbol = self.symbol(field(0)).ok_or_else(|| err(0, BadRowKind::BadSymbol))?;
        let midnight = self.midnight_ms(field(1)).ok_or_else(|| err(1, BadRowKind::BadDate))?;
        let time_ms = fields::parse_time(field(2)).ok_or_else(|| err(2, BadRowKind::BadTime))?;
        let trade_number = fields::parse_u64(field(3)).ok_or_else(|| err(3, BadRowKind::NotANumber))?;
        let price = fields::parse_price(field(4)).map_err(|e| {
            err(
                4,
                match e {
                    PriceError::NotANumber => BadRowKind::NotANumber,
                    PriceError::NonPositive => BadRowKind::NonPositivePrice,
                    PriceError::NonFinite => BadRowKind::NonFinitePrice,
                    PriceError::OutOfRange => BadRowKind::PriceOutOfRange,
                },
            )
        })?;
        let quantity = fields::parse_quantity(field(5)).map_err(|e| {
            err(
                5,
                match e {
                    QuantityError::NotANumber => BadRowKind::NotANumber,
                    QuantityError::NonPositive => BadRowKind::NonPositiveQuantity,
                },
            )
        })?;
        let volume = fields::parse_f64(field(6)).ok_or_else(|| err(6, BadRowKind::NotANumber))?;
        if !volume.is_finite() || volume < 0.0 {
            return Err(err(6, BadRowKind::BadVolume));
        }
        let is_edit = if n > REQUIRED_FIELDS {
            fields::parse_flag(field(11)).map_err(|_| err(11, BadRowKind::BadEditFlag))?
        } else {
            false
        };

        // Side effects only once the row is known to be good.
        let trade_type = self.trade_types.get_or_insert(field(9), TradeType::from_profit_name).unwrap_or_else(|| {
            stats.unknown_trade_types += 1;
            TradeType::Unknown
        });
        let buy_agent = self.intern_agent(field(7), stats);
        let sell_agent = self.intern_agent(field(8), stats);
        Ok(Trade {
            symbol,
            ts_ms: midnight + i64::from(time_ms),
            trade_number,
            price,
            quantity,
            volume,
            buy_agent,
            sell_agent,
            trade_type,
            is_edit,
        })
    }
}

enum LineStatus {
    Eof,
    Line,
    TooLong,
}

/// Streams [`Trade`]s out of a Profit CSV export.
pub struct ProfitCsvReader<R: BufRead> {
    reader: R,
    source_name: String,
    on_bad_row: BadRowPolicy,
    buf: Vec<u8>,
    /// Where the parsed part of `buf` starts (past a byte-order mark).
    buf_start: usize,
    line: u64,
    bytes_read: u64,
    /// No non-blank line seen yet: the next one may be a header.
    at_start: bool,
    done: bool,
    parser: RowParser,
    stats: CsvStats,
}

impl<R: BufRead> fmt::Debug for ProfitCsvReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfitCsvReader")
            .field("source_name", &self.source_name)
            .field("line", &self.line)
            .field("bytes_read", &self.bytes_read)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ProfitCsvReader<BufReader<File>> {
    pub fn open(path: &Path, opts: ProfitCsvOptions) -> Result<Self, CsvError> {
        let source_name = path.display().to_string();
        match File::open(path) {
            Ok(file) => Ok(Self::new(BufReader::with_capacity(256 * 1024, file), source_name, opts)),
            Err(source) => Err(CsvError::Io { source_name, source }),
        }
    }
}

impl<R: BufRead> ProfitCsvReader<R> {
    /// `source_name` names the input in error messages (usually the path).
    pub fn new(reader: R, source_name: impl Into<String>, opts: ProfitCsvOptions) -> Self {
        Self {
            reader,
            source_name: source_name.into(),
            on_bad_row: opts.on_bad_row,
            buf: Vec::with_capacity(256),
            buf_start: 0,
            line: 0,
            bytes_read: 0,
            at_start: true,
            done: false,
            parser: RowParser {
                utc_offset_minutes: opts.utc_offset_minutes,
                agents: AgentDirectory::new(),
                date: DateCache::default(),
                symbols: SmallCache::default(),
                agent_ids: SmallCache::default(),
                trade_types: SmallCache::default(),
            },
            stats: CsvStats::default(),
        }
    }

    /// Next good trade; `Ok(None)` at end of input. With
    /// [`BadRowPolicy::Skip`] bad rows are counted and skipped; with
    /// [`BadRowPolicy::Fail`] the first bad row is returned as an error (a
    /// later call resumes after it). After an I/O error the reader is done.
    pub fn next_trade(&mut self) -> Result<Option<Trade>, CsvError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let status = match self.read_line() {
                Ok(status) => status,
                Err(source) => {
                    self.done = true;
                    return Err(CsvError::Io { source_name: self.source_name.clone(), source });
                }
            };
            let result = match status {
                LineStatus::Eof => {
                    self.done = true;
                    return Ok(None);
                }
                LineStatus::TooLong => {
                    self.line += 1;
                    self.buf_start = 0;
                    self.at_start = false;
                    Err(RowError { kind: BadRowKind::LineTooLong, field: "row", span: (0, self.buf.len()) })
                }
                LineStatus::Line => {
                    self.line += 1;
                    self.buf_start = if self.at_start && self.buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
                    let line = &self.buf[self.buf_start..];
                    if line.trim_ascii().is_empty() {
                        continue;
                    }
                    if std::mem::take(&mut self.at_start) && is_header(line) {
                        continue;
                    }
                    self.parser.parse(line.trim_ascii_end(), &mut self.stats)
                }
            };
            self.stats.rows += 1;
            match result {
                Ok(trade) => {
                    self.stats.trades += 1;
                    return Ok(Some(trade));
                }
                Err(e) => {
                    if let Some(bad) = self.record_bad_row(e) {
                        return Err(CsvError::BadRow(bad));
                    }
                }
            }
        }
    }

    /// Counts a bad row; returns it when the policy says to stop.
    fn record_bad_row(&mut self, e: RowError) -> Option<BadRow> {
        self.stats.bad_rows += 1;
        self.stats.bad_rows_by_kind[e.kind.index()] += 1;
        let fail = self.on_bad_row == BadRowPolicy::Fail;
        if !fail && self.stats.first_bad_rows.len() >= KEPT_BAD_ROWS {
            return None;
        }
        let text = self.buf[self.buf_start..].get(e.span.0..e.span.1).unwrap_or_default();
        let bad = BadRow {
            source_name: self.source_name.clone(),
            line: self.line,
            field: e.field,
            kind: e.kind,
            text: quote(text),
        };
        if self.stats.first_bad_rows.len() < KEPT_BAD_ROWS {
            self.stats.first_bad_rows.push(bad.clone());
        }
        fail.then_some(bad)
    }

    /// Reads one line (newline included) into `buf`, keeping at most
    /// [`MAX_LINE_BYTES`] of it; the rest of an over-long line is consumed
    /// and dropped so memory stays bounded.
    fn read_line(&mut self) -> io::Result<LineStatus> {
        self.buf.clear();
        let mut any = false;
        let mut too_long = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(avail) => avail,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            any = true;
            let (take, found) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if !too_long {
                let room = MAX_LINE_BYTES - self.buf.len();
                if take <= room {
                    self.buf.extend_from_slice(&avail[..take]);
                } else {
                    self.buf.extend_from_slice(&avail[..room]);
                    too_long = true;
                }
            }
            self.reader.consume(take);
            self.bytes_read += take as u64;
            if found {
                break;
            }
        }
        Ok(if !any {
            LineStatus::Eof
        } else if too_long {
            LineStatus::TooLong
        } else {
            LineStatus::Line
        })
    }

    /// Counters so far, including the trade-type and agent counters.
    pub fn stats(&self) -> &CsvStats {
        &self.stats
    }

    /// Names of the agents seen so far; [`Trade`] agent ids index into it.
    pub fn agents(&self) -> &AgentDirectory {
        &self.parser.agents
    }

    /// Bytes consumed from the input so far, for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }
}

/// A header is recognised by Profit's `<ticker>` style, or by a date column
/// with no digit at all (`date`, `Data`): a malformed date still has digits,
/// so a bad first data row is reported rather than mistaken for a header.
fn is_header(line: &[u8]) -> bool {
    let mut fields = line.split(|&b| b == b',');
    let first = fields.next().unwrap_or_default().trim_ascii();
    if first.starts_with(b"<") {
        return true;
    }
    match fields.next() {
        Some(date) => !date.iter().any(u8::is_ascii_digit),
        None => false,
    }
}

impl<R: BufRead> Iterator for ProfitCsvReader<R> {
    type Item = Result<Trade, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_trade().transpose()
    }
}
