//! `tickhost run --feed ingest`: the engine with the ProfitDLL isolated in a
//! supervised `tickhost ingest` child process. A supervisor thread starts the
//! child, reads its trades into the engine's ring, and when the child dies
//! (a DLL crash) starts a new one with `--backfill-from` the last trade the
//! engine has; the engine keeps running meanwhile, and the engine's
//! Sequencer drops what the new child sends twice (by trade number).
//!
//! The transport is ZeroMQ over ipc (host/bus, `ingest --publish`), a socket
//! in a private temp dir per child: the same seam as a two-process or
//! two-machine deployment, so one path is tested. The child waits for this
//! subscriber before sending and never drops; a child that exits is noticed
//! by its process status, after what it sent has been read.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tickhost_bus::ingest::ZmqIngestReader;
use tickhost_bus::{CurveConfig, TickSubscriber, TradeChannel};
use tickhost_core::Trade;
use tickhost_feed::ingest::IngestRecord;
use tickhost_store::keys::TickStream;

use crate::bus::BusRun;
use crate::commands::run::RunArgs;
use crate::config::Config;
use crate::render;
use crate::slots::build_engine;
use crate::storage::StoreRun;

/// The `--config` file of this process, handed to the ingest child so both
/// read the same configuration (environment overrides are inherited anyway).
pub static CONFIG_FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Restarts of the ingest process before the run gives up.
const MAX_RESTARTS: u64 = 10;

#[derive(Debug, Default)]
struct Supervision {
    stop: AtomicBool,
    /// Event time of the engine's last trade: where a restarted child backfills from.
    last_ts_ms: AtomicI64,
    starts: AtomicU64,
    crashes: AtomicU64,
    frames: AtomicU64,
    gave_up: Mutex<Option<String>>,
    child: Mutex<Option<Child>>,
}

fn spawn_child(library: Option<&std::path::Path>, sup: &Supervision, endpoint: &str) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the tickhost executable to start `tickhost ingest`")?;
    let mut cmd = Command::new(exe);
    if let Some(Some(file)) = CONFIG_FILE.get() {
        cmd.arg("--config").arg(file);
    }
    cmd.arg("ingest").stdout(Stdio::null()).stderr(Stdio::inherit()).stdin(Stdio::null());
    cmd.args(["--publish", endpoint, "--format", "rkyv", "--wait-subscriber", "30"]);
    if let Some(lib) = library {
        cmd.arg("--library").arg(lib);
    }
    let last = sup.last_ts_ms.load(Ordering::Relaxed);
    if last != i64::MIN {
        cmd.arg("--backfill-from").arg(last.to_string());
    }
    let child = cmd.spawn().context("cannot start `tickhost ingest`")?;
    *sup.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
    sup.starts.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn child_exited(sup: &Supervision) -> bool {
    match sup.child.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        Some(c) => !matches!(c.try_wait(), Ok(None)),
        None => true,
    }
}

fn supervise(library: Option<&std::path::Path>, sup: &Supervision, mut ring: rtrb::Producer<Trade>, utc_offset: i32) {
    let mut backoff = Duration::from_millis(100);
    let give_up = |why: String| *sup.gave_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    // Private to this run: nobody else can connect to the children's sockets.
    let dir = match tempfile::Builder::new().prefix("tickhost-ingest-").tempdir() {
        Ok(d) => d,
        Err(e) => return give_up(format!("cannot create a directory for the ingest socket: {e}")),
    };
    while !sup.stop.load(Ordering::Relaxed) {
        let n = sup.starts.load(Ordering::Relaxed);
        let endpoint = format!("ipc://{}", dir.path().join(format!("ingest-{n}.sock")).display());
        // Subscribed before the child binds: libzmq connects when it appears.
        let sub = match TickSubscriber::connect(&endpoint, &["tick_"], 100_000, &CurveConfig::default(), utc_offset) {
            Ok(s) => s,
            Err(e) => return give_up(format!("cannot subscribe to the ingest process: {e}")),
        };
        if let Err(e) = spawn_child(library, sup, &endpoint) {
            return give_up(format!("{e:#}"));
        }
        let mut reader = ZmqIngestReader::new(sub, 100);
        let mut exited = false;
        loop {
            if sup.stop.load(Ordering::Relaxed) {
                break;
            }
            match reader.poll() {
                Ok(Some(Some(IngestRecord::Trade(mut t)))) => {
                    sup.frames.fetch_add(1, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    // Backpressure, never loss: a full ring makes the child wait (it never drops).
                    loop {
                        match ring.push(t) {
                            Ok(()) => break,
                            Err(rtrb::PushError::Full(back)) => {
                                if sup.stop.load(Ordering::Relaxed) {
                                    return;
                                }
                                t = back;
                                thread::yield_now();
                            }
                        }
                    }
                }
                Ok(Some(Some(IngestRecord::Ready))) => {}
                // End of stream: the child's feed is over.
                Ok(Some(None)) => break,
                Ok(None) => {
                    // Nothing for 100 ms after the child was seen gone: all it sent is read.
                    if exited {
                        break;
                    }
                    exited = child_exited(sup);
                }
                Err(e) => {
                    eprintln!("ingest: {e}; restarting the ingest process");
                    break;
                }
            }
        }
        let status = sup.child.lock().unwrap_or_else(|p| p.into_inner()).take().map(|mut c| {
            // Already dead or told to stop: reap it either way.
            let _ = c.kill();
            c.wait()
        });
        if sup.stop.load(Ordering::Relaxed) {
            return;
        }
        let crashes = sup.crashes.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!(
            "ingest process ended ({}); the engine runs on, restart {crashes} in {backoff:?}, backfilling from the last trade",
            match status {
                Some(Ok(s)) => s.to_string(),
                Some(Err(e)) => e.to_string(),
                None => "no status".into(),
            }
        );
        if crashes > MAX_RESTARTS {
            return give_up(format!("the ingest process died {crashes} times; giving up"));
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

pub fn run(args: &RunArgs, config: Config) -> Result<()> {
    if config.dll.broker == super::dll::BrokerArg::Dll {
        bail!(
            "--feed ingest carries market data only; orders through SendOrder need --feed dll (dll.broker = \"dll\")"
        );
    }
    let mut setup = build_engine(&config)?;
    // A live session: ticks to ticks:<SYM>:realtime, published as tick_<SYM>.
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Realtime);
    let mut bus = BusRun::start(&config, setup.engine.schema(), TradeChannel::Ticks);
    let engine = &mut setup.engine;
    let mut observers = (store.observer(), bus.observer());
    let sup = Arc::new(Supervision { last_ts_ms: AtomicI64::new(i64::MIN), ..Supervision::default() });
    let (producer, mut consumer) = rtrb::RingBuffer::<Trade>::new(config.source.ring_capacity.max(1024));
    let supervisor = {
        let sup = Arc::clone(&sup);
        let library = args.source.library.clone();
        let offset = config.engine.utc_offset_minutes;
        thread::Builder::new()
            .name("ingest-supervisor".into())
            .spawn(move || supervise(library.as_deref(), &sup, producer, offset))
            .context("cannot start the ingest supervisor thread")?
    };
    let idle_exit = (args.idle_exit > 0.0).then(|| Duration::from_secs_f64(args.idle_exit));
    let started = Instant::now();
    let mut last_event = Instant::now();
    let mut trades = 0u64;
    let mut empty = 0u32;
    loop {
        match consumer.pop() {
            Ok(t) => {
                engine.on_trade(t, &mut observers);
                sup.last_ts_ms.store(t.ts_ms, Ordering::Relaxed);
                trades += 1;
                last_event = Instant::now();
                empty = 0;
                if args.max_trades > 0 && trades >= args.max_trades {
                    break;
                }
            }
            Err(_) => {
                if let Some(why) = sup.gave_up.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    sup.stop.store(true, Ordering::Relaxed);
                    bail!("{why}");
                }
                // The idle clock starts once the first child is up and publishing.
                if idle_exit.is_some_and(|d| last_event.elapsed() >= d) && trades > 0 {
                    break;
                }
                empty += 1;
                if empty.is_multiple_of(256) {
                    thread::sleep(Duration::from_micros(200));
                } else {
                    thread::yield_now();
                }
            }
        }
    }
    sup.stop.store(true, Ordering::Relaxed);
    if let Some(child) = sup.child.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        // Ours to stop: the child we started.
        let _ = child.kill();
    }
    let _ = supervisor.join();
    let report = engine.finish(&mut observers);
    store.finish();
    bus.finish();
    eprintln!(
        "{} trades through `tickhost ingest` in {:.1} s; ingest processes started {}, died {}",
        trades,
        started.elapsed().as_secs_f64(),
        sup.starts.load(Ordering::Relaxed),
        sup.crashes.load(Ordering::Relaxed)
    );
    let i = &report.ingest;
    println!(
        "ingested {} trades: {} duplicates dropped, {} edits applied, {} reordered, {} too late",
        i.accepted, i.duplicates, i.edits, i.out_of_order_clamped, i.out_of_order_dropped
    );
    print!("{}", render::table(&report, config.engine.utc_offset_minutes));
    Ok(())
}
