//! Integration tests of the Profit CSV source: round trips through the writer,
//! every bad-row class under both policies, encodings and line endings, and
//! streaming of an input far larger than anything kept in memory.

use std::io::{self, BufReader, Read};

use tickhost_core::time::{B3_UTC_OFFSET_MINUTES, LocalTime};
use tickhost_core::{AgentDirectory, AgentId, Price, Symbol, Trade, TradeType};
use tickhost_feed::profit_csv::{
    BadRowKind, BadRowPolicy, CsvError, HEADER, ProfitCsvOptions, ProfitCsvReader, ProfitCsvWriter,
};

const GOOD: &str = "WINFUT,20240108,090038,10,132840.00000000,25,664200.0000,Capital,Capital,Auction,N";

fn opts(on_bad_row: BadRowPolicy) -> ProfitCsvOptions {
    ProfitCsvOptions { on_bad_row, ..ProfitCsvOptions::default() }
}

fn reader(input: &[u8], policy: BadRowPolicy) -> ProfitCsvReader<&[u8]> {
    ProfitCsvReader::new(input, "t.csv", opts(policy))
}

/// Reads everything, panicking on any error.
fn read_all(input: &[u8]) -> (Vec<Trade>, ProfitCsvReader<&[u8]>) {
    let mut r = reader(input, BadRowPolicy::Fail);
    let mut trades = Vec::new();
    while let Some(t) = r.next_trade().expect("no bad rows") {
        trades.push(t);
    }
    (trades, r)
}

fn b3_ms(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32, millisecond: u32) -> i64 {
    LocalTime { year, month, day, hour, minute, second, millisecond }
        .to_epoch_ms(B3_UTC_OFFSET_MINUTES)
        .expect("valid time")
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn random_volume(rng: &mut Rng) -> f64 {
    match rng.below(8) {
        0 => rng.below(1_000_000_000) as f64,
        1 => rng.below(100_000_000) as f64 / 10_000.0,
        2 => 0.0,
        3 => rng.pick(&[0.1 + 0.2, 1e-300, 5e-324, 1e300, f64::MAX, f64::MIN_POSITIVE, 123_456_789.123_456_79]),
        _ => loop {
            // Any positive finite f64, to prove the exact round trip.
            let v = f64::from_bits(rng.next() >> 1);
            if v.is_finite() {
                break v;
            }
        },
    }
}

fn random_trades(rng: &mut Rng, n: usize, millis: bool, edits: bool, agents: &mut AgentDirectory) -> Vec<Trade> {
    let symbols = ["WINFUT", "WDOFUT", "PETR4", "WDOH25", "X", "ABCDEFGHIJKLMNOPQRSTUVW"];
    let names: Vec<AgentId> = ["Capital", "XP Investimentos", "Itaú", "BTG Pactual", "", "Ágora-Bradesco"]
        .iter()
        .map(|n| agents.intern(n.as_bytes()))
        .collect();
    (0..n)
        .map(|_| {
            let day_ms =
                b3_ms(2000 + rng.below(40) as i32, 1 + rng.below(12) as u32, 1 + rng.below(28) as u32, 0, 0, 0, 0);
            let mut ms_of_day = rng.below(86_400_000) as i64;
            if !millis {
                ms_of_day -= ms_of_day % 1000;
            }
            let numbers = [0, 1, u64::MAX, rng.next(), rng.below(1_000_000)];
            let prices = [1, i64::MAX, 1 + rng.below(i64::MAX as u64) as i64, 5_000 * (1 + rng.below(40_000) as i64)];
            let quantities = [1, i64::MAX, 1 + rng.below(1_000) as i64];
            Trade {
                symbol: Symbol::new(rng.pick(&symbols)).expect("valid symbol"),
                ts_ms: day_ms + ms_of_day,
                trade_number: rng.pick(&numbers),
                price: Price::from_raw(rng.pick(&prices)),
                quantity: rng.pick(&quantities),
                volume: random_volume(rng),
                buy_agent: rng.pick(&names),
                sell_agent: rng.pick(&names),
                trade_type: rng.pick(&TradeType::ALL),
                is_edit: edits && rng.below(4) == 0,
            }
        })
        .collect()
}

#[test]
fn write_read_round_trip_is_exact() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (millis, edits, header) in [(false, false, true), (true, false, true), (false, true, false), (true, true, true)]
    {
        let mut agents = AgentDirectory::new();
        let trades = random_trades(&mut rng, 5_000, millis, edits, &mut agents);
        let mut w = ProfitCsvWriter::new(Vec::new()).with_millis(millis).with_edit_column(edits).with_header(header);
        for t in &trades {
            w.write_trade(t, &agents).expect("writable trade");
        }
        let csv = w.finish().expect("in-memory sink");
        let text = String::from_utf8(csv.clone()).expect("writer emits UTF-8");
        assert_eq!(text.starts_with('<'), header);
        if millis {
            assert!(
                text.lines().nth(usize::from(header)).expect("a row").split(',').nth(2).expect("time").contains('.')
            );
        }

        let (got, r) = read_all(&csv);
        assert_eq!(got.len(), trades.len());
        assert_eq!(r.stats().trades, trades.len() as u64);
        assert_eq!(r.stats().unknown_trade_types, 0);
        for (i, (g, t)) in got.iter().zip(&trades).enumerate() {
            let ctx = format!("trade {i} (millis {millis}, edits {edits})");
            assert_eq!(g.symbol, t.symbol, "{ctx}");
            assert_eq!(g.ts_ms, t.ts_ms, "{ctx}");
            assert_eq!(g.trade_number, t.trade_number, "{ctx}");
            assert_eq!(g.price, t.price, "{ctx}");
            assert_eq!(g.quantity, t.quantity, "{ctx}");
            assert_eq!(g.volume.to_bits(), t.volume.to_bits(), "{ctx}: {} vs {}", g.volume, t.volume);
            assert_eq!(r.agents().name(g.buy_agent), agents.name(t.buy_agent), "{ctx}");
            assert_eq!(r.agents().name(g.sell_agent), agents.name(t.sell_agent), "{ctx}");
            assert_eq!(g.trade_type, t.trade_type, "{ctx}");
            assert_eq!(g.is_edit, t.is_edit, "{ctx}");
        }
    }
}

#[test]
fn writes_profits_format() {
    let mut agents = AgentDirectory::new();
    let capital = agents.intern(b"Capital");
    let t = Trade {
        symbol: Symbol::new("WINFUT").expect("valid symbol"),
        ts_ms: b3_ms(2024, 1, 8, 9, 0, 38, 250),
        trade_number: 10,
        price: Price::from_raw(1_328_400_000),
        quantity: 25,
        volume: 664_200.0,
        buy_agent: capital,
        sell_agent: capital,
        trade_type: TradeType::Auction,
        is_edit: true,
    };
    let mut w = ProfitCsvWriter::new(Vec::new());
    w.write_trade(&t, &agents).expect("writable");
    let csv = String::from_utf8(w.finish().expect("sink")).expect("utf-8");
    assert_eq!(csv, format!("{HEADER}\n{GOOD}\n"));

    let mut w = ProfitCsvWriter::new(Vec::new()).with_millis(true).with_edit_column(true);
    w.write_trade(&t, &agents).expect("writable");
    let csv = String::from_utf8(w.finish().expect("sink")).expect("utf-8");
    assert_eq!(
        csv,
        format!(
            "{HEADER},<edit>\nWINFUT,20240108,090038.250,10,132840.00000000,25,664200.0000,Capital,Capital,Auction,N,Y\n"
        )
    );
}

#[test]
fn writer_refuses_what_the_format_cannot_carry() {
    let mut agents = AgentDirectory::new();
    let bad = agents.intern(b"Smith, Jones & Co");
    let ok = agents.intern(b"Capital");
    let mut t = read_all(GOOD.as_bytes()).0[0];
    t.buy_agent = bad;
    t.sell_agent = ok;
    let mut w = ProfitCsvWriter::new(Vec::new()).with_header(false);
    let err = w.write_trade(&t, &agents).expect_err("comma in a name");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    t.buy_agent = AgentId(99);
    assert!(w.write_trade(&t, &agents).is_err());
    t.buy_agent = ok;
    for bad in [
        Trade { price: Price::from_raw(0), ..t },
        Trade { quantity: 0, ..t },
        Trade { volume: f64::NAN, ..t },
        Trade { volume: -1.0, ..t },
    ] {
        assert!(w.write_trade(&bad, &agents).is_err(), "{bad:?}");
    }
    assert!(w.finish().expect("sink").is_empty(), "a refused row writes nothing");
}

#[test]
fn parses_the_reference_row() {
    let input = format!("{HEADER}\n{GOOD}\n");
    let (trades, r) = read_all(input.as_bytes());
    assert_eq!(trades.len(), 1);
    let t = trades[0];
    assert_eq!(t.symbol.as_str(), "WINFUT");
    // 09:00:38 in Sao Paulo is 12:00:38 UTC.
    assert_eq!(t.ts_ms, 1_704_715_238_000);
    assert_eq!(t.trade_number, 10);
    assert_eq!(t.price, Price::from_raw(132_840 * Price::SCALE));
    assert_eq!(t.quantity, 25);
    assert_eq!(t.volume, 664_200.0);
    assert_eq!(r.agents().name(t.buy_agent), Some("Capital"));
    assert_eq!(t.buy_agent, t.sell_agent);
    assert_eq!(t.trade_type, TradeType::Auction);
    assert!(!t.is_edit);
    assert_eq!(r.stats().rows, 1);
    assert_eq!(r.bytes_read(), (HEADER.len() + GOOD.len() + 2) as u64);
}

/// `GOOD` with column `col` replaced by `value`.
fn with_field(col: usize, value: &str) -> String {
    let mut f: Vec<&str> = GOOD.split(',').collect();
    f[col] = value;
    f.join(",")
}

fn bad_row_cases() -> Vec<(String, BadRowKind, &'static str)> {
    use BadRowKind::*;
    let cases = vec![
        (GOOD.rsplit_once(',').expect("columns").0.to_owned(), MissingField, "aft"),
        ("WINFUT,20240108,090038".to_owned(), MissingField, "trade_number"),
        (format!("{GOOD},N,extra"), TooManyFields, "row"),
        (format!("{GOOD},{}", "x".repeat(70_000)), LineTooLong, "row"),
        (with_field(0, ""), BadSymbol, "ticker"),
        (with_field(0, "WIN FUT"), BadSymbol, "ticker"),
        (with_field(0, &"W".repeat(24)), BadSymbol, "ticker"),
        (with_field(1, "20240230"), BadDate, "date"),
        (with_field(1, "2024-13-01"), BadDate, "date"),
        (with_field(1, "8/1/2024"), BadDate, "date"),
        (with_field(2, "250000"), BadTime, "time"),
        (with_field(2, "09:61:00"), BadTime, "time"),
        (with_field(2, "0900"), BadTime, "time"),
        (with_field(3, "abc"), NotANumber, "trade_number"),
        (with_field(3, "-1"), NotANumber, "trade_number"),
        (with_field(4, "12x"), NotANumber, "price"),
        (with_field(4, ""), NotANumber, "price"),
        (with_field(4, "0"), NonPositivePrice, "price"),
        (with_field(4, "0.00000000"), NonPositivePrice, "price"),
        (with_field(4, "-5.5"), NonPositivePrice, "price"),
        (with_field(4, "NaN"), NonFinitePrice, "price"),
        (with_field(4, "inf"), NonFinitePrice, "price"),
        (with_field(4, "-Infinity"), NonFinitePrice, "price"),
        (with_field(4, "1e300"), PriceOutOfRange, "price"),
        (with_field(5, "2.5"), NotANumber, "qty"),
        (with_field(5, "0"), NonPositiveQuantity, "qty"),
        (with_field(5, "-3"), NonPositiveQuantity, "qty"),
        (with_field(6, "lots"), NotANumber, "vol"),
        (with_field(6, "-1.0"), BadVolume, "vol"),
        (with_field(6, "NaN"), BadVolume, "vol"),
        (with_field(6, "inf"), BadVolume, "vol"),
        (format!("{GOOD},maybe"), BadEditFlag, "edit"),
    ];
    // Every kind is exercised.
    for kind in BadRowKind::ALL {
        assert!(cases.iter().any(|c| c.1 == kind), "no case for {kind:?}");
    }
    cases
}

#[test]
fn bad_rows_fail_with_file_line_and_field() {
    for (row, kind, field) in bad_row_cases() {
        let input = format!("{HEADER}\n{GOOD}\n{row}\n{}\n", with_field(3, "11"));
        let mut r = reader(input.as_bytes(), BadRowPolicy::Fail);
        assert_eq!(r.next_trade().expect("first row is good").map(|t| t.trade_number), Some(10));
        let err = r.next_trade().expect_err(&format!("row {row:.80} must fail"));
        let CsvError::BadRow(bad) = &err else { panic!("not a bad row: {err}") };
        assert_eq!((bad.kind, bad.field, bad.line), (kind, field, 3), "row {row:.80}");
        assert_eq!(bad.source_name, "t.csv");
        assert!(bad.text.chars().count() <= 65, "value quoted in full: {}", bad.text.len());
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("t.csv:3: field {field}: ")), "{msg}");
        assert!(msg.contains(kind.description()), "{msg}");
        assert!(msg.ends_with("use --on-bad-row skip to skip such rows"), "{msg}");
        assert_eq!(r.stats().bad_rows_of(kind), 1);
        // The caller may resume: the next row is still read.
        assert_eq!(r.next_trade().expect("good row after").map(|t| t.trade_number), Some(11), "row {row:.80}");
        assert!(r.next_trade().expect("end").is_none());
    }
}

#[test]
fn bad_rows_are_counted_and_skipped() {
    for (row, kind, field) in bad_row_cases() {
        let input = format!("{GOOD}\n{row}\n{}\n", with_field(3, "11"));
        let r = reader(input.as_bytes(), BadRowPolicy::Skip);
        let mut r2 = reader(input.as_bytes(), BadRowPolicy::Skip);
        let numbers: Vec<u64> = r.map(|t| t.expect("skip never errs").trade_number).collect();
        assert_eq!(numbers, [10, 11], "row {row:.80}");
        while r2.next_trade().expect("skip never errs").is_some() {}
        let s = r2.stats();
        assert_eq!((s.rows, s.trades, s.bad_rows), (3, 2, 1), "row {row:.80}");
        assert_eq!(s.bad_rows_of(kind), 1, "row {row:.80}");
        assert_eq!(s.bad_row_counts().collect::<Vec<_>>(), [(kind, 1)]);
        assert_eq!(s.first_bad_rows.len(), 1);
        assert_eq!((s.first_bad_rows[0].line, s.first_bad_rows[0].field), (2, field));
    }
}

#[test]
fn the_offending_value_is_quoted() {
    let input = with_field(4, "12x");
    let err = reader(input.as_bytes(), BadRowPolicy::Fail).next_trade().expect_err("bad price");
    assert_eq!(err.to_string(), "t.csv:1: field price: not a number (12x); use --on-bad-row skip to skip such rows");
}

#[test]
fn skip_keeps_only_the_first_ten_bad_rows() {
    let mut input = String::new();
    for i in 0..25 {
        input.push_str(&with_field(5, "0"));
        input.push('\n');
        input.push_str(&with_field(3, &i.to_string()));
        input.push('\n');
    }
    let mut r = reader(input.as_bytes(), BadRowPolicy::Skip);
    let n = r.by_ref().inspect(|t| assert!(t.is_ok(), "skip never errs")).count();
    assert_eq!(n, 25);
    let s = r.stats();
    assert_eq!(s.bad_rows, 25);
    assert_eq!(s.bad_rows_of(BadRowKind::NonPositiveQuantity), 25);
    assert_eq!(s.first_bad_rows.len(), 10);
    assert_eq!(s.first_bad_rows.iter().map(|b| b.line).collect::<Vec<_>>(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
}

#[test]
fn unknown_trade_type_maps_to_unknown_without_aggressor() {
    let input = [
        with_field(9, "Mystery"),
        with_field(9, "aggressorbuyer"),
        with_field(9, "AggressorSeller"),
        with_field(9, ""),
    ]
    .join("\n");
    let (trades, r) = read_all(input.as_bytes());
    let types: Vec<TradeType> = trades.iter().map(|t| t.trade_type).collect();
    assert_eq!(types, [TradeType::Unknown, TradeType::AggressorBuy, TradeType::AggressorSell, TradeType::Unknown]);
    assert_eq!(trades[0].aggressor(), None);
    assert_eq!(trades[1].aggressor(), Some(tickhost_core::Side::Buy));
    assert_eq!(r.stats().unknown_trade_types, 2);
    assert_eq!(r.stats().bad_rows, 0);
}

#[test]
fn latin1_agent_names_are_decoded() {
    let mut input = Vec::new();
    for _ in 0..3 {
        input.extend_from_slice(b"PETR4,20240108,100000,1,36.5,100,3650,Ita\xfa,Ag\xf3ra,AggressorBuyer,N\n");
    }
    input.extend_from_slice("PETR4,20240108,100001,2,36.5,100,3650,Itaú,Capital,AggressorSeller,N\n".as_bytes());
    let (trades, r) = read_all(&input);
    assert_eq!(trades.len(), 4);
    assert_eq!(r.agents().name(trades[0].buy_agent), Some("Itaú"));
    assert_eq!(r.agents().name(trades[0].sell_agent), Some("Agóra"));
    assert_eq!(r.agents().name(trades[3].buy_agent), Some("Itaú"));
    // Distinct non-UTF-8 names, not rows.
    assert_eq!(r.stats().non_utf8_agents, 2);
}

#[test]
fn crlf_blank_lines_padding_and_bom() {
    let input = format!(
        "\u{feff}{HEADER}\r\n\r\n  WINFUT , 20240108 , 090038 , 10 , 132840.00000000 , 25 , 664200.0000 , Capital , Capital , Auction , N \r\n   \r\n{}\r\n{}",
        with_field(3, "11"),
        with_field(3, "x12"),
    );
    let mut r = reader(input.as_bytes(), BadRowPolicy::Fail);
    let a = r.next_trade().expect("padded row").expect("a trade");
    assert_eq!(a, read_all(GOOD.as_bytes()).0[0]);
    assert_eq!(r.agents().name(a.buy_agent), Some("Capital"));
    assert_eq!(r.next_trade().expect("crlf row").map(|t| t.trade_number), Some(11));
    // Line numbers count the header and blank lines; the last line has no newline.
    let err = r.next_trade().expect_err("bad trade number");
    assert!(err.to_string().starts_with("t.csv:6: field trade_number: not a number (x12)"), "{err}");
    assert!(r.next_trade().expect("end").is_none());
    assert_eq!(r.stats().rows, 3);
    assert_eq!(r.bytes_read(), input.len() as u64);
}

#[test]
fn header_is_optional_and_detected() {
    let plain = format!("{GOOD}\n");
    let (trades, r) = read_all(plain.as_bytes());
    assert_eq!((trades.len(), r.stats().rows), (1, 1));

    let named = format!("ticker,date,time,trade_number,price,qty,vol,buy_agent,sell_agent,trade_type,aft\n{GOOD}\n");
    let (trades, r) = read_all(named.as_bytes());
    assert_eq!((trades.len(), r.stats().rows), (1, 1));

    // A malformed first data row is reported, not mistaken for a header.
    let input = format!("{}\n{GOOD}\n", with_field(1, "2024013"));
    let err = reader(input.as_bytes(), BadRowPolicy::Fail).next_trade().expect_err("bad date");
    assert!(err.to_string().starts_with("t.csv:1: field date:"), "{err}");

    // Only the first line may be a header.
    let input = format!("{GOOD}\n{HEADER}\n");
    assert!(reader(input.as_bytes(), BadRowPolicy::Fail).nth(1).expect("second item").is_err());
}

#[test]
fn alternative_date_and_time_spellings() {
    let base = b3_ms(2024, 1, 8, 9, 0, 38, 0);
    for (date, time, ms) in [
        ("20240108", "090038", 0),
        ("2024-01-08", "090038.250", 250),
        ("08/01/2024", "090038250", 250),
        ("20240108", "09:00:38", 0),
        ("20240108", "09:00:38.007", 7),
        ("20240108", "90038", 0),
    ] {
        let row = with_field(2, time);
        let row = {
            let mut f: Vec<&str> = row.split(',').collect();
            f[1] = date;
            f.join(",")
        };
        let (trades, _) = read_all(row.as_bytes());
        assert_eq!(trades[0].ts_ms, base + ms, "{date} {time}");
    }
}

#[test]
fn utc_offset_is_configurable() {
    let utc = ProfitCsvOptions { utc_offset_minutes: 0, ..ProfitCsvOptions::default() };
    let t = ProfitCsvReader::new(GOOD.as_bytes(), "t", utc).next().expect("a row").expect("good");
    assert_eq!(t.ts_ms, read_all(GOOD.as_bytes()).0[0].ts_ms - 3 * 3_600_000);
}

#[test]
fn edit_column_values() {
    for (flag, edit) in
        [("Y", true), ("1", true), ("true", true), ("N", false), ("0", false), ("false", false), ("", false)]
    {
        let row = format!("{GOOD},{flag}");
        let (trades, _) = read_all(row.as_bytes());
        assert_eq!(trades[0].is_edit, edit, "{flag:?}");
    }
}

#[test]
fn open_names_the_file_in_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ticks.csv");
    std::fs::write(&path, format!("{HEADER}\n{GOOD}\n{}\n", with_field(5, "-1"))).expect("write");
    let mut r = ProfitCsvReader::open(&path, ProfitCsvOptions::default()).expect("open");
    assert!(r.next_trade().expect("good").is_some());
    let err = r.next_trade().expect_err("bad qty");
    assert!(err.to_string().starts_with(&format!("{}:3: field qty:", path.display())), "{err}");

    let missing = ProfitCsvReader::open(&dir.path().join("nope.csv"), ProfitCsvOptions::default());
    let Err(CsvError::Io { source_name, .. }) = missing else { panic!("opening a missing file must fail") };
    assert!(source_name.ends_with("nope.csv"));
}

#[test]
fn io_errors_end_the_stream() {
    struct Broken(bool);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::Error::other("disk on fire"));
            }
            let row = format!("{GOOD}\n");
            buf[..row.len()].copy_from_slice(row.as_bytes());
            Ok(row.len())
        }
    }
    let mut r = ProfitCsvReader::new(BufReader::new(Broken(false)), "dev", ProfitCsvOptions::default());
    assert!(r.next_trade().expect("first row").is_some());
    let err = r.next_trade().expect_err("io error");
    assert!(matches!(err, CsvError::Io { .. }));
    assert_eq!(err.to_string(), "dev: disk on fire");
    assert!(r.next_trade().expect("done").is_none());
}

/// An input synthesised row by row as it is read: never materialised, so
/// reading it through proves the reader streams.
struct SyntheticCsv {
    rows_left: u64,
    next_number: u64,
    row: Vec<u8>,
    pos: usize,
    /// Shared with the test, which cannot reach into the reader's source.
    bytes: std::rc::Rc<std::cell::Cell<u64>>,
}

impl SyntheticCsv {
    const BAD_EVERY: u64 = 100_000;

    fn new(rows: u64) -> Self {
        let mut row = Vec::new();
        row.extend_from_slice(HEADER.as_bytes());
        row.push(b'\n');
        Self { rows_left: rows, next_number: 0, row, pos: 0, bytes: Default::default() }
    }
}

impl Read for SyntheticCsv {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.row.len() {
            if self.rows_left == 0 {
                return Ok(0);
            }
            self.rows_left -= 1;
            let n = self.next_number;
            self.next_number += 1;
            self.row.clear();
            self.pos = 0;
            let (h, m, s) = (9 + n / 360_000 % 9, n / 6_000 % 60, n / 100 % 60);
            let price = 5_000.0 + (n % 400) as f64 * 0.5;
            let qty = if n % Self::BAD_EVERY == Self::BAD_EVERY - 1 { 0 } else { 1 + n % 50 };
            let side = if n.is_multiple_of(2) { "AggressorBuyer" } else { "AggressorSeller" };
            io::Write::write_fmt(
                &mut self.row,
                format_args!(
                    "WDOFUT,20240108,{h:02}{m:02}{s:02}.{:03},{n},{price:.8},{qty},{:.4},Agent{},Agent{},{side},N\r\n",
                    n % 1000,
                    price * qty as f64 * 10.0,
                    n % 97,
                    n % 89,
                ),
            )?;
        }
        let k = buf.len().min(self.row.len() - self.pos);
        buf[..k].copy_from_slice(&self.row[self.pos..self.pos + k]);
        self.pos += k;
        self.bytes.set(self.bytes.get() + k as u64);
        Ok(k)
    }
}

#[test]
fn streams_millions_of_rows_in_constant_memory() {
    const ROWS: u64 = 2_500_000;
    let source = SyntheticCsv::new(ROWS);
    let produced = source.bytes.clone();
    let opts = opts(BadRowPolicy::Skip);
    let mut r = ProfitCsvReader::new(BufReader::with_capacity(64 * 1024, source), "synthetic", opts);
    let (mut trades, mut last_number, mut buys) = (0u64, None, 0u64);
    while let Some(t) = r.next_trade().expect("skip never errs") {
        assert!(last_number.is_none_or(|n| t.trade_number > n));
        last_number = Some(t.trade_number);
        buys += u64::from(t.trade_type == TradeType::AggressorBuy);
        trades += 1;
        if trades % 100_000 == 1 {
            // Never more pulled from the source than the BufReader holds.
            assert!(produced.get() - r.bytes_read() <= 64 * 1024, "reader ran ahead of its buffer");
        }
    }
    let bad = ROWS / SyntheticCsv::BAD_EVERY;
    let s = r.stats();
    assert_eq!(s.rows, ROWS);
    assert_eq!(s.bad_rows, bad);
    assert_eq!(s.bad_rows_of(BadRowKind::NonPositiveQuantity), bad);
    assert_eq!(trades, ROWS - bad);
    assert_eq!(s.trades, trades);
    assert_eq!(buys, ROWS / 2);
    // Row ROWS - 1 is itself one of the bad ones.
    assert_eq!(last_number, Some(ROWS - 2));
    // Buyers and sellers share the names Agent0..Agent96.
    assert_eq!(r.agents().len(), 97);
    assert_eq!(r.bytes_read(), produced.get());
    assert!(r.bytes_read() > 90 * ROWS, "{} bytes", r.bytes_read());
}
