//! `tickhost bench --bus`: ZeroMQ trade messages through the real path
//! (encode -> XPUB with NODROP -> SUB -> validate and decode to a Trade),
//! JSON vs rkyv, ipc vs tcp on 127.0.0.1: messages per second when flooding,
//! and the one-way latency p50/p99 of paced messages (sender and receiver
//! are threads of this process, so they share one clock).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tickhost_bus::ingest::ZmqIngestWriter;
use tickhost_bus::{CurveConfig, Format, TickEvent, TickSubscriber};
use tickhost_core::Trade;
use tickhost_feed::ingest::{IngestRecord, IngestWriter};

const FLOOD: usize = 200_000;
const PACED: usize = 4_000;

/// One transfer of `count` messages; `gap` between sends (zero: flood).
/// The trade number carries the send time in ns since `base`.
fn transfer(
    endpoint: &str,
    format: Format,
    sample: &Trade,
    count: usize,
    gap: Duration,
) -> Result<(Duration, Vec<u64>)> {
    let mut writer = ZmqIngestWriter::bind(endpoint, format, 100_000, &CurveConfig::default(), -180)
        .map_err(|e| anyhow!("bind {endpoint}: {e}"))?;
    let bound = writer.bound().to_string();
    let base = Instant::now();
    let receiver = std::thread::spawn(move || -> Result<Vec<u64>> {
        let mut sub = TickSubscriber::connect(&bound, &["tick_"], 1_000_000, &CurveConfig::default(), -180)
            .map_err(|e| anyhow!("{e}"))?;
        let mut latencies = Vec::with_capacity(count);
        loop {
            match sub.recv(10_000).map_err(|e| anyhow!("{e}"))? {
                Some(TickEvent::Trade(t)) => {
                    latencies.push((base.elapsed().as_nanos() as u64).saturating_sub(t.trade_number))
                }
                Some(TickEvent::EndOfStream) => return Ok(latencies),
                None => return Err(anyhow!("no message for 10 s")),
            }
        }
    });
    if !writer.wait_for_subscriber(Duration::from_secs(10))? {
        return Err(anyhow!("the bench subscriber did not connect to {endpoint}"));
    }
    let started = Instant::now();
    let mut t = *sample;
    for _ in 0..count {
        t.trade_number = base.elapsed().as_nanos() as u64;
        writer.send(&IngestRecord::Trade(t))?;
        if !gap.is_zero() {
            let due = Instant::now() + gap;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
    }
    writer.end_of_stream()?;
    let latencies = receiver.join().map_err(|_| anyhow!("the bench subscriber panicked"))??;
    if latencies.len() != count {
        return Err(anyhow!("{} of {count} messages arrived", latencies.len()));
    }
    Ok((started.elapsed(), latencies))
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1e3
}

pub fn run(trades: &[Trade]) -> Result<()> {
    let sample = *trades.first().context("no trades to send")?;
    let dir = tempfile::tempdir().context("tempdir")?;
    println!();
    println!(
        "  ZeroMQ bus: trade messages encode -> XPUB -> SUB -> decoded Trade ({FLOOD} flooded, {PACED} paced at 5k/s)"
    );
    println!("  {:<24} {:>12} {:>14} {:>14}", "transport / format", "msgs/s", "one-way p50", "one-way p99");
    for (name, endpoint) in [
        ("ipc", format!("ipc://{}", dir.path().join("bench.sock").display())),
        ("tcp 127.0.0.1", "tcp://127.0.0.1:*".to_string()),
    ] {
        for format in [Format::Rkyv, Format::Json] {
            let (elapsed, _) = transfer(&endpoint, format, &sample, FLOOD, Duration::ZERO)?;
            let (_, mut lat) = transfer(&endpoint, format, &sample, PACED, Duration::from_micros(200))?;
            lat.sort_unstable();
            println!(
                "  {:<24} {:>10.2} M {:>11.1} µs {:>11.1} µs",
                format!("{name} / {format}"),
                FLOOD as f64 / elapsed.as_secs_f64() / 1e6,
                pct(&lat, 0.50),
                pct(&lat, 0.99)
            );
        }
    }
    Ok(())
}
