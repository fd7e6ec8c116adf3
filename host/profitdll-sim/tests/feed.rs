//! The ProfitDLL source against the simulator library, loaded for real with
//! libloading: every callback kind, both trade styles, missing exports,
//! each login failure, reconnect + backfill, edits, malformed strings, orders
//! and a storm of 1M trades.
//!
//! The DLL's callbacks are process-wide (one ProfitDLL per process), so the
//! tests take turns through `SERIAL`.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tickhost_core::ingest::{Admission, Sequencer};
use tickhost_core::time::SessionClock;
use tickhost_core::{Side, Symbol, Trade, TradeType};
use tickhost_feed::profit_dll::abi::PWideChar;
use tickhost_feed::profit_dll::decode::to_wide;
use tickhost_feed::profit_dll::{
    DllConfig, DllError, DllFeed, DllStream, FeedCounters, LoginFailure, LoginMode, OrderRequest, OrderStatus,
    ReconnectPolicy, SinkConfig, StreamItem, TradeCallbackStyle,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// The simulator cargo built with this test binary: `cargo test` leaves the
/// fresh cdylib beside it in target/<profile>/deps (only `cargo build` copies
/// it up to target/<profile>, where a stale one may sit).
fn sim_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let name = format!("{}tickhost_profitdll_sim{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let candidates = [deps.join(&name), deps.parent().map(|d| d.join(&name)).unwrap_or_default()];
    let found = candidates.iter().find(|p| p.exists());
    found.cloned().unwrap_or_else(|| panic!("the simulator library is not built at {}", candidates[0].display()))
}

/// The simulator, loaded once and kept: unloading it would reset the
/// configuration the tests set before the feed loads it again.
fn sim() -> &'static libloading::Library {
    static LIB: std::sync::OnceLock<libloading::Library> = std::sync::OnceLock::new();
    // SAFETY: loads our own simulator, whose initialisers only set up statics.
    LIB.get_or_init(|| unsafe { libloading::Library::new(sim_path()) }.expect("load the simulator"))
}

/// Sets the simulator's configuration through its test-only export.
fn configure(settings: &str) {
    let lib = sim();
    // SAFETY: SimConfigure has this signature (host/profitdll-sim/src/exports.rs).
    let f = unsafe { lib.get::<unsafe extern "system" fn(PWideChar) -> i32>(b"SimConfigure") }.expect("SimConfigure");
    let text = to_wide(settings);
    // SAFETY: NUL-terminated UTF-16 valid for the call.
    assert_eq!(unsafe { f(text.as_ptr()) }, 0, "SimConfigure refused {settings:?}");
}

fn generated() -> i64 {
    let lib = sim();
    // SAFETY: SimGeneratedTrades has this signature.
    let f = unsafe { lib.get::<extern "system" fn() -> i64>(b"SimGeneratedTrades") }.expect("SimGeneratedTrades");
    f()
}

fn config() -> DllConfig {
    DllConfig {
        library: sim_path(),
        reconnect: ReconnectPolicy {
            reinit_after: Duration::from_millis(200),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            max_attempts: 20,
            backfill_timeout: Duration::from_secs(20),
        },
        ..DllConfig::default()
    }
}

fn start(settings: &str, config: DllConfig) -> (DllFeed, DllStream, tickhost_feed::profit_dll::OrderSender) {
    configure(settings);
    let (feed, stream, orders) = DllFeed::start(config).expect("the feed starts");
    feed.wait_ready(Duration::from_secs(10)).expect("market data connects");
    (feed, stream, orders)
}

/// Polls until `done` says so or nothing arrives for `idle`.
fn drain(stream: &mut DllStream, idle: Duration, mut on: impl FnMut(StreamItem) -> bool) {
    let mut quiet_since = Instant::now();
    let hard_stop = Instant::now() + Duration::from_secs(120);
    loop {
        match stream.poll() {
            Some(item) => {
                quiet_since = Instant::now();
                if on(item) {
                    return;
                }
            }
            None => {
                if quiet_since.elapsed() >= idle || Instant::now() > hard_stop {
                    return;
                }
                std::thread::yield_now();
            }
        }
    }
}

fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    FeedCounters::get(c)
}

fn wdo() -> Symbol {
    Symbol::new("WDOFUT").expect("symbol")
}

#[test]
fn every_callback_kind_arrives_decoded_and_orders_fill() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = DllConfig { login: LoginMode::Full, offer_book: true, ..config() };
    let (feed, mut stream, mut orders) = start("speed=0;trades=3000;daily_every=500", cfg);
    let mut trades: Vec<Trade> = Vec::new();
    let mut updates = Vec::new();
    let mut sent = false;
    drain(&mut stream, Duration::from_millis(500), |item| {
        match item {
            StreamItem::Trade(t) => {
                trades.push(t);
                if trades.len() == 500 && !sent {
                    sent = true;
                    let order =
                        OrderRequest { order_id: 42, symbol: wdo(), side: Side::Buy, quantity: 2, limit_price: None };
                    orders.send(order).expect("order ring has room");
                }
            }
            StreamItem::Order { order_id, update } => updates.push((order_id, update)),
            StreamItem::OrderRefused { order_id, code } => panic!("order {order_id} refused with {code:#x}"),
            StreamItem::Book { .. } => {}
        }
        false
    });
    assert!(trades.len() >= 2500, "got {} trades", trades.len());
    assert!(trades.iter().all(|t| t.symbol == wdo()));
    let types: Vec<TradeType> = trades.iter().map(|t| t.trade_type).collect();
    for ty in [TradeType::Auction, TradeType::AggressorBuy, TradeType::AggressorSell, TradeType::Cross] {
        assert!(types.contains(&ty), "no {ty:?} trade");
    }
    // The date decodes to the configured session (2024-01-08, B3 time).
    let day = SessionClock::default().day(trades[0].ts_ms);
    assert_eq!(day, tickhost_core::time::days_from_civil(2024, 1, 8).expect("date"));
    let book = stream.price_book(wdo()).expect("book");
    let (bid, ask) = (book.best_bid().expect("bid"), book.best_ask().expect("ask"));
    assert!(bid.price < ask.price, "crossed book: {bid:?} / {ask:?}");
    assert_eq!(book.bids.len(), 5);
    let offers = stream.offer_book(wdo()).expect("offer book");
    assert_eq!(offers.bids.len(), 3);
    let c = stream.counters();
    assert!(c.daily_bars >= 5 && c.tiny_books > 0 && c.book_updates > 100, "{c:?}");
    assert_eq!(c.book_errors, 0, "every book action fits the book");
    let daily = stream.last_daily().expect("daily bar");
    assert!(daily.high >= daily.low && daily.trades > 0);
    // The order: accepted (New), then filled at the next trade, tagged with the engine's id.
    let statuses: Vec<OrderStatus> = updates.iter().map(|(_, u)| u.status).collect();
    assert_eq!(statuses, vec![OrderStatus::New, OrderStatus::Filled], "{updates:?}");
    assert!(updates.iter().all(|(id, u)| *id == Some(42) && u.side == Some(Side::Buy)));
    assert_eq!(updates[1].1.traded_quantity, 2);
    let status = feed.status();
    assert_eq!(status.orders_sent, 1);
    assert_eq!(status.routing, Some(5));
    feed.stop();
    // Everything the feed delivered was taken, then the stream ends.
    drain(&mut stream, Duration::from_millis(50), |_| false);
    assert!(stream.is_finished());
}

#[test]
fn v2_trades_decode_through_translate_trade_and_edits_replace() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = DllConfig { trade_callback: TradeCallbackStyle::V2, price_book: false, ..config() };
    let (feed, mut stream, _orders) = start("speed=0;trades=20000", cfg);
    let mut seq = Sequencer::new(1 << 16, 5_000, SessionClock::default());
    let (mut new, mut edits) = (0u64, 0u64);
    drain(&mut stream, Duration::from_millis(500), |item| {
        if let StreamItem::Trade(t) = item {
            match seq.admit(t) {
                Admission::New(_) => new += 1,
                Admission::Edit { previous, corrected } => {
                    assert_eq!(previous.trade_number, corrected.trade_number);
                    edits += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        false
    });
    let c = feed.counters();
    assert!(counter(&c.v2_trades) > 15_000, "{}", counter(&c.v2_trades));
    assert_eq!(counter(&c.translate_failures), 0);
    assert!(edits > 0 && counter(&c.edits) == edits, "TC_IS_EDIT trades are corrections ({edits})");
    assert_eq!(new + edits, generated() as u64, "every trade the market made arrived once");
    feed.stop();
}

#[test]
fn a_library_without_the_abi_is_refused_naming_every_missing_export() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let libc = PathBuf::from("libc.so.6");
    let err = DllFeed::start(DllConfig { library: libc, ..config() }).expect_err("libc is no ProfitDLL");
    let text = err.to_string();
    assert!(matches!(err, DllError::MissingExports { .. }), "{text}");
    for name in tickhost_feed::profit_dll::abi::REQUIRED_EXPORTS {
        assert!(text.contains(name), "{name} not named in: {text}");
    }
    let err = DllFeed::start(DllConfig { library: "/nonexistent/ProfitDLL.so".into(), ..config() })
        .expect_err("no such file");
    assert!(err.to_string().contains("/nonexistent/ProfitDLL.so"), "{err}");
    // Futures are "F": "BMF" is refused before the DLL is even loaded.
    let err = DllFeed::start(DllConfig { exchange: "BMF".into(), ..config() }).expect_err("BMF");
    assert!(matches!(err, DllError::Config(_)) && err.to_string().contains("\"F\""), "{err}");
    // A second feed in the same process is refused (callbacks are process-wide).
    configure("speed=0;trades=100");
    let (feed, _stream, _orders) = DllFeed::start(config()).expect("first feed");
    assert!(matches!(DllFeed::start(config()), Err(DllError::AlreadyRunning)));
    feed.stop();
}

#[test]
fn each_login_failure_is_reported_by_name_and_transient_ones_are_retried() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cases = [
        ("login=1", LoginFailure::InvalidLogin),
        ("login=2", LoginFailure::BadPassword),
        ("login=3", LoginFailure::Blocked),
        ("login=4", LoginFailure::Expired),
        ("activation=1", LoginFailure::InvalidActivationKey),
    ];
    for (settings, expected) in cases {
        configure(settings);
        let (feed, _stream, _orders) = DllFeed::start(config()).expect("initialisation itself succeeds");
        match feed.wait_ready(Duration::from_secs(5)) {
            Err(DllError::Login(f)) => assert_eq!(f, expected, "{settings}"),
            other => panic!("{settings}: expected {expected:?}, got {other:?}"),
        }
        assert_eq!(feed.status().initializations, 1, "{settings}: a wrong credential is not retried");
        feed.stop();
    }
    // Login state 200 (server error) twice, then success: re-initialised with back-off.
    configure("speed=0;trades=100;login=200;login_fail_times=2");
    let (feed, _stream, _orders) = DllFeed::start(config()).expect("start");
    feed.wait_ready(Duration::from_secs(10)).expect("connects on the third initialisation");
    assert_eq!(feed.status().initializations, 3);
    feed.stop();
    // An NL_* error from the initialisation call itself.
    configure("init_error=-2147483647");
    let err = DllFeed::start(config()).expect_err("initialisation fails");
    assert!(err.to_string().contains("NL_INTERNAL_ERROR"), "{err}");
    // A credential never shows in Debug output.
    let mut cfg = config();
    cfg.credentials.password = "hunter2-secret".into();
    assert!(!format!("{cfg:?}").contains("hunter2-secret"));
}

/// Runs a session to the end through a Sequencer; returns the admitted trade numbers.
fn admitted_numbers(stream: &mut DllStream) -> (Vec<u64>, tickhost_core::ingest::IngestCounters) {
    let mut seq = Sequencer::new(1 << 16, 5_000, SessionClock::default());
    let mut numbers = Vec::new();
    drain(stream, Duration::from_millis(1500), |item| {
        if let StreamItem::Trade(t) = item {
            let a = seq.admit(t);
            if let Admission::New(t) | Admission::UnmatchedEdit(t) = a {
                numbers.push(t.trade_number);
            }
        }
        false
    });
    (numbers, seq.counters())
}

fn assert_complete(numbers: &[u64]) {
    let max = numbers.iter().copied().max().unwrap_or(0);
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), numbers.len(), "a trade number was admitted twice");
    let missing: Vec<u64> = (1..=max).filter(|n| sorted.binary_search(n).is_err()).collect();
    assert!(
        missing.is_empty(),
        "{} trade numbers missing, the first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Admitted in exchange order: the held live trades came after the backfill.
    let disorder = numbers.windows(2).position(|w| w[0] >= w[1]);
    assert_eq!(disorder.map(|i| &numbers[i..(i + 2)]), None, "trades out of order");
}

#[test]
fn a_disconnect_is_backfilled_without_gaps_or_duplicates() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (feed, mut stream, _orders) = start("speed=0;trades=6000;disconnect_at=1500;outage=400", config());
    let (numbers, ingest) = admitted_numbers(&mut stream);
    let status = feed.status();
    assert!(status.disconnects >= 3, "{status:?}");
    assert_eq!(status.backfills_completed, status.disconnects, "{status:?}");
    assert!(stream.counters().history_trades > 0);
    assert!(ingest.duplicates > 0, "the history overlaps what was seen; duplicates are dropped by number");
    assert!(numbers.len() > 4_000, "{}", numbers.len());
    assert_complete(&numbers);
    feed.stop();
}

#[test]
fn a_dropped_session_is_reinitialised_resubscribed_and_backfilled() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Down for good after 800 trades until the host re-initialises; the first
    // two subscriptions fail with NL_INTERNAL_ERROR and are retried.
    // V2 callbacks here, so history also comes through SetHistoryTradeCallbackV2 (TC_LAST_PACKET).
    let cfg = DllConfig { trade_callback: TradeCallbackStyle::V2, ..config() };
    let (feed, mut stream, _orders) = start("speed=3000;trades=3000;drop_at=800;subscribe_errors=2", cfg);
    let (numbers, _) = admitted_numbers(&mut stream);
    let status = feed.status();
    assert!(status.initializations >= 2, "{status:?}");
    assert_eq!(status.subscribe_errors, 2, "{status:?}");
    assert_eq!(status.backfills_completed, 1, "{status:?}");
    // At this pace live trades arrive while the history is on its way: held back, then released in order.
    assert!(stream.counters().held_trades > 0, "{:?}", stream.counters());
    assert_complete(&numbers);
    assert!(numbers.len() > 2_500, "{}", numbers.len());
    feed.stop();
}

#[test]
fn malformed_strings_are_counted_and_never_crash() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (feed, mut stream, _orders) = start("speed=0;trades=4000;malformed_every=40", config());
    let mut n = 0u64;
    drain(&mut stream, Duration::from_millis(500), |item| {
        n += u64::from(matches!(item, StreamItem::Trade(_)));
        false
    });
    let c = feed.counters();
    // Bad dates keep the trade (previous trade's time); bad tickers drop it.
    assert!(counter(&c.bad_dates) >= 40, "{}", counter(&c.bad_dates));
    assert!(counter(&c.dropped_malformed) >= 40, "{}", counter(&c.dropped_malformed));
    assert_eq!(counter(&c.callback_panics), 0);
    assert_eq!(n + counter(&c.dropped_malformed), generated() as u64);
    feed.stop();
}

#[test]
fn a_storm_of_a_million_trades_loses_nothing_in_bounded_memory() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // A small ring and a consumer that stalls now and then: the storm must
    // overflow into the spill queue, in order, and still lose nothing.
    let sink = SinkConfig { ring_capacity: 1 << 12, spill_capacity: 1 << 21, ..SinkConfig::default() };
    let cfg = DllConfig { price_book: false, sink, ..config() };
    let (feed, mut stream, _orders) = start("speed=0;trades=500000;book_every=0;daily_every=0", cfg);
    let mut seq = Sequencer::new(1 << 16, 5_000, SessionClock::default());
    let (mut trades, mut admitted) = (0u64, 0u64);
    drain(&mut stream, Duration::from_millis(1500), |item| {
        if let StreamItem::Trade(t) = item {
            trades += 1;
            admitted += u64::from(matches!(seq.admit(t), Admission::New(_) | Admission::Edit { .. }));
            if trades.is_multiple_of(200_000) {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        false
    });
    let made = generated() as u64;
    assert!(made >= 1_000_000, "the storm made {made} trades");
    let c = feed.counters();
    assert_eq!(trades, made, "every trade the DLL delivered reached the consumer");
    assert_eq!(admitted, made);
    assert_eq!(counter(&c.dropped_spill_full), 0);
    assert!(counter(&c.spilled) > 0, "the stalls overflowed the ring");
    // Bounded memory: at most ring + spill capacity were ever waiting.
    assert!(counter(&c.spill_high_water) <= 1 << 21);
    eprintln!(
        "storm: {made} trades, spilled {}, spill high water {}",
        counter(&c.spilled),
        counter(&c.spill_high_water)
    );
    feed.stop();
}

#[test]
fn a_profit_csv_replays_through_the_callbacks() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let csv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/wdo-2024-01-08.csv");
    let mut reader = tickhost_feed::profit_csv::ProfitCsvReader::open(&csv, Default::default()).expect("sample CSV");
    let mut expected = Vec::new();
    while let Some(t) = reader.next_trade().expect("row") {
        expected.push((t.trade_number, t.price, t.quantity, t.trade_type, t.ts_ms));
    }
    let (feed, mut stream, _orders) = start(&format!("speed=0;csv={}", csv.display()), config());
    let mut got = Vec::new();
    drain(&mut stream, Duration::from_millis(500), |item| {
        if let StreamItem::Trade(t) = item {
            got.push((t.trade_number, t.price, t.quantity, t.trade_type, t.ts_ms));
        }
        false
    });
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the callbacks carry the file's trades, in order, with their times");
    feed.stop();
}
