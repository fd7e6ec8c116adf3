//! `tickhost bench --store`: the store writer's entries/s end to end (engine
//! -> outbox lane -> writer -> store) for the embedded store and for a
//! valkey-server started here, and a time-travel query of 10k entries out
//! of 1M through the generic client and through the in-place decoder.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tickhost_core::Trade;
use tickhost_core::engine::Engine;
use tickhost_core::outbox::Outbox;
use tickhost_store::keys::TickStream;
use tickhost_store::raw::RawEntries;
use tickhost_store::server::ServerProcess;
use tickhost_store::writer::{Backpressure, StoreWriter, WriterConfig};
use tickhost_store::{EmbeddedStore, Op, Store, StreamId, ValkeyConfig, ValkeyStore};

use crate::config::Config;

fn write_through(
    config: &Config,
    trades: &[Trade],
    store: Box<dyn Store>,
    dir: &std::path::Path,
) -> Result<(u64, Duration, u64)> {
    let mut engine = Engine::new(&config.engine).context("engine")?;
    let mut wc = WriterConfig::new(dir.join("journal"));
    wc.tick_stream = TickStream::Historical;
    wc.historical_maxlen = 0;
    wc.feature_names = engine.schema().names().to_vec();
    let mut outbox = Outbox::new();
    let lane = outbox.add_lane("store", 65_536, engine.schema().len());
    let started = Instant::now();
    let writer = StoreWriter::spawn(lane, store, wc).context("writer")?;
    let counters = outbox.lanes().next().map(|(_, c)| std::sync::Arc::clone(c)).context("lane")?;
    let hold = Backpressure::new(counters, std::sync::Arc::clone(writer.status()), 16_384);
    for chunk in trades.chunks(256) {
        // As a replay does: the source waits, the engine never does.
        while hold.should_wait() {
            std::thread::sleep(Duration::from_micros(100));
        }
        for t in chunk {
            engine.on_trade(*t, &mut outbox);
        }
    }
    engine.finish(&mut outbox);
    let dropped = outbox.lanes().map(|(_, c)| c.dropped()).sum::<u64>();
    drop(outbox);
    let report = writer.join().context("writer")?;
    Ok((report.status.written, started.elapsed(), dropped + report.status.journal_dropped))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(config: &Config, trades: &[Trade]) -> Result<()> {
    let trades = &trades[..trades.len().min(300_000)];
    let dir = tempfile::tempdir().context("tempdir")?;
    println!();
    println!("  store ({} trades through engine -> outbox -> writer)", trades.len());
    let emb = EmbeddedStore::open(&dir.path().join("embedded.jsonl"))?;
    let (n, d, dropped) = write_through(config, trades, Box::new(emb), &dir.path().join("e"))?;
    println!(
        "  {:<58} {:>11.0} k/s  ({n} entries, {dropped} dropped)",
        "embedded store, entries written",
        n as f64 / d.as_secs_f64() / 1e3
    );
    let server = match ServerProcess::start(&dir.path().join("valkey"), &[]) {
        Ok(s) => s,
        Err(e) => {
            println!("  valkey: skipped ({e})");
            return Ok(());
        }
    };
    let store = ValkeyStore::new(ValkeyConfig::new(server.url()))?;
    let (n, d, dropped) = write_through(config, trades, Box::new(store), &dir.path().join("v"))?;
    println!(
        "  {:<58} {:>11.0} k/s  ({n} entries, {dropped} dropped)",
        "valkey, entries written (pipelines of 1000)",
        n as f64 / d.as_secs_f64() / 1e3
    );

    let mut store = ValkeyStore::new(ValkeyConfig::new(server.url()))?;
    let fields: Vec<(String, String)> = [
        ("symbol", "WDOFUT"),
        ("timestamp", "2024-01-08T12:00:00.000Z"),
        ("timestamp_ms", "1704715200000"),
        ("trade_id", "123456"),
        ("price", "5001.5"),
        ("volume", "100030"),
        ("quantity", "2"),
        ("buyer", "12"),
        ("seller", "40"),
        ("trade_type", "2"),
        ("is_edit", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut ops = Vec::with_capacity(1000);
    for i in 0..1_000_000u64 {
        ops.push(Op::XAdd { key: "bench:1m".into(), id: StreamId::new(1 + i, 0), maxlen: 0, fields: fields.clone() });
        if ops.len() == 1000 {
            store.apply(&ops)?;
            ops.clear();
        }
    }
    let (from, to) = (StreamId::new(500_001, 0), StreamId::new(510_000, 0));
    let mut generic = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let e = store.range("bench:1m", from, to, 10_000)?;
        generic.push(t.elapsed());
        anyhow::ensure!(e.len() == 10_000, "expected 10k entries, got {}", e.len());
    }
    let mut raw = store.raw_connection()?;
    let mut page = RawEntries::default();
    let mut fast = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        raw.range("bench:1m", from, to, 10_000, &mut page)?;
        fast.push(t.elapsed());
        anyhow::ensure!(page.len() == 10_000, "expected 10k entries, got {}", page.len());
    }
    let (g, f) = (median(generic), median(fast));
    println!("  {:<58} {:>11.1} ms", "time travel 10k of 1M, generic client (Value tree)", g.as_secs_f64() * 1e3);
    println!("  {:<58} {:>11.1} ms", "time travel 10k of 1M, decoded in place (raw)", f.as_secs_f64() * 1e3);
    println!("  {:<58} {:>11.1} x", "ratio", g.as_secs_f64() / f.as_secs_f64().max(1e-9));
    Ok(())
}
