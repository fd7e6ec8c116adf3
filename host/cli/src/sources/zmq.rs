//! `tickhost run --feed zmq://host:port` (or `zmq+ipc:///path`): the engine
//! on trades from a ZeroMQ publisher: `tickhost ingest --publish` (another
//! process on this machine over ipc, or another machine over tcp), another
//! engine's ticks/history socket, or the seeds' Python feeder (JSON).
//!
//! A feed thread owns the SUB socket, decodes, and pushes trades into the
//! engine's ring; the engine thread never touches the socket. Gaps (late
//! join, a publisher dropping at its high-water mark) are counted and logged
//! with their range; the engine keeps trading on what arrives. An end-of-
//! stream message from the publisher ends the run with its report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tickhost_bus::{TickEvent, TickSubscriber, TradeChannel};
use tickhost_core::Trade;
use tickhost_store::keys::TickStream;

use crate::bus::BusRun;
use crate::commands::run::RunArgs;
use crate::config::Config;
use crate::render;
use crate::slots::build_engine;
use crate::storage::StoreRun;

/// Messages a SUB queues before the publisher's high-water mark applies.
const RCVHWM: i32 = 100_000;

pub fn run(args: &RunArgs, url: &str, config: Config) -> Result<()> {
    let mut setup = build_engine(&config)?;
    let mut sub = TickSubscriber::connect(
        url,
        &["tick_", "history_"],
        RCVHWM,
        &config.bus.curve,
        config.engine.utc_offset_minutes,
    )
    .with_context(|| format!("cannot subscribe to {url}"))?;
    eprintln!("zmq feed: subscribed to tick_* and history_* on {}", sub.endpoint());
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Realtime);
    let mut bus = BusRun::start(&config, setup.engine.schema(), TradeChannel::Ticks);

    let stop = Arc::new(AtomicBool::new(false));
    let (mut producer, mut consumer) = rtrb::RingBuffer::<Trade>::new(config.source.ring_capacity.max(1024));
    let feed = {
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("feed-zmq".into())
            .spawn(move || -> Result<TickSubscriber> {
                while !stop.load(Ordering::Relaxed) {
                    match sub.recv(100)? {
                        None => {}
                        Some(TickEvent::EndOfStream) => break,
                        Some(TickEvent::Trade(mut t)) => loop {
                            // Backpressure, never loss here: a full ring makes
                            // this thread wait; the SUB queue absorbs meanwhile.
                            match producer.push(t) {
                                Ok(()) => break,
                                Err(rtrb::PushError::Full(back)) => {
                                    if stop.load(Ordering::Relaxed) {
                                        return Ok(sub);
                                    }
                                    t = back;
                                    thread::yield_now();
                                }
                            }
                        },
                    }
                }
                Ok(sub)
            })
            .context("cannot start the zmq feed thread")?
    };

    let idle_exit = (args.idle_exit > 0.0).then(|| Duration::from_secs_f64(args.idle_exit));
    let started = Instant::now();
    let mut last_event = Instant::now();
    let mut trades = 0u64;
    let mut empty = 0u32;
    let engine = &mut setup.engine;
    let mut observers = (store.observer(), bus.observer());
    loop {
        match consumer.pop() {
            Ok(t) => {
                engine.on_trade(t, &mut observers);
                trades += 1;
                last_event = Instant::now();
                empty = 0;
                if args.max_trades > 0 && trades >= args.max_trades {
                    break;
                }
            }
            Err(_) if consumer.is_abandoned() => {
                while let Ok(t) = consumer.pop() {
                    engine.on_trade(t, &mut observers);
                    trades += 1;
                }
                break;
            }
            Err(_) => {
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
    stop.store(true, Ordering::Relaxed);
    let report = engine.finish(&mut observers);
    let sub = feed.join().map_err(|_| anyhow!("the zmq feed thread panicked"))??;
    store.finish();
    bus.finish();

    let c = sub.counters();
    eprintln!(
        "zmq feed {}: {} messages ({} rkyv, {} json), {} trades to the engine in {:.1} s; {} refused; end of stream {}",
        sub.endpoint(),
        c.messages,
        c.rkyv,
        c.json,
        trades,
        started.elapsed().as_secs_f64(),
        c.bad,
        if c.end_of_stream { "received" } else { "not received" }
    );
    if c.gaps > 0 || c.missed_before_join > 0 {
        eprintln!(
            "zmq feed gaps: {} mid-stream ({} messages missing), {} sent before this engine subscribed; the engine traded on what arrived",
            c.gaps, c.missing, c.missed_before_join
        );
        for g in sub.gaps() {
            eprintln!("  {g}");
        }
    }
    for bad in &sub.first_bad {
        eprintln!("  refused: {bad}");
    }
    let i = &report.ingest;
    println!(
        "ingested {} trades: {} duplicates dropped, {} edits applied, {} reordered, {} too late",
        i.accepted, i.duplicates, i.edits, i.out_of_order_clamped, i.out_of_order_dropped
    );
    print!("{}", render::table(&report, config.engine.utc_offset_minutes));
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).context("report does not serialise")?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    Ok(())
}
