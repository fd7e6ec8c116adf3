//! `tickhost ingest`: the ProfitDLL in a process of its own. It logs in,
//! subscribes, and writes every trade to stdout as ingest frames
//! (tickhost_feed::ingest) for the engine that started it (`tickhost run
//! --feed ingest`). A crash of the DLL ends this process only; the engine
//! restarts it with `--backfill-from` set to the last trade it has.
//!
//! With `--publish ENDPOINT` the trades go out on a ZeroMQ socket instead
//! (`tickhost run --feed zmq+ipc:///path` on this machine, `zmq://host:port`
//! from another), and `--csv FILE` replays a Profit CSV instead of the DLL.
//! It waits for its first subscriber before sending, never drops (a slow
//! engine makes it wait), and ends with an end-of-stream message.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tickhost_feed::ingest::{IngestRecord, IngestWriter, StreamWriter};
use tickhost_feed::profit_dll::{DllFeed, StreamItem};

use crate::config::Config;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// ProfitDLL.dll or libtickhost_profitdll_sim.so (overrides dll.library).
    #[arg(long, value_name = "PATH")]
    pub library: Option<PathBuf>,
    /// Request the trades from this event time (ms since the epoch) at the first connection.
    #[arg(long, value_name = "MS")]
    pub backfill_from: Option<i64>,
    /// Publish on this ZeroMQ endpoint (zmq+ipc:///path, zmq://host:port) instead of writing to stdout.
    #[arg(long, value_name = "ENDPOINT")]
    pub publish: Option<String>,
    /// With --publish: replay this Profit CSV instead of running the DLL.
    #[arg(long, value_name = "PATH", requires = "publish")]
    pub csv: Option<PathBuf>,
    /// With --publish: the wire format (rkyv for tickhost engines, json for the Python consumers too).
    #[arg(long, default_value = "rkyv", value_parser = parse_format)]
    pub format: tickhost_bus::Format,
    /// With --publish: how long to wait for the first subscriber before giving up.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub wait_subscriber: f64,
}

fn parse_format(s: &str) -> Result<tickhost_bus::Format, String> {
    s.parse()
}

fn publish(args: &IngestArgs, endpoint: &str, config: &Config) -> Result<()> {
    let mut out = tickhost_bus::ingest::ZmqIngestWriter::bind(
        endpoint,
        args.format,
        config.bus.sndhwm,
        &config.bus.curve,
        config.engine.utc_offset_minutes,
    )
    .with_context(|| format!("cannot publish on {endpoint}"))?;
    eprintln!("ingest: bound {} ({}); waiting for a subscriber", out.bound(), args.format);
    if !out.wait_for_subscriber(Duration::from_secs_f64(args.wait_subscriber.max(0.0)))? {
        anyhow::bail!("no subscriber connected to {} within {} s", out.bound(), args.wait_subscriber);
    }
    if let Some(csv) = &args.csv {
        let opts = tickhost_feed::profit_csv::ProfitCsvOptions {
            on_bad_row: config.source.on_bad_row.into(),
            utc_offset_minutes: config.engine.utc_offset_minutes,
        };
        let mut reader = tickhost_feed::profit_csv::ProfitCsvReader::open(csv, opts)
            .with_context(|| format!("cannot open {}", csv.display()))?;
        while let Some(t) = reader.next_trade().with_context(|| format!("reading {}", csv.display()))? {
            out.send(&IngestRecord::Trade(t))?;
        }
    } else {
        dll_loop(args, config, &mut out)?;
    }
    out.end_of_stream()?;
    eprintln!("ingest: published {} trades on {}, then the end of stream", out.sent(), out.bound());
    Ok(())
}

pub fn run(args: IngestArgs, config: Config) -> Result<()> {
    if let Some(endpoint) = args.publish.clone() {
        return publish(&args, &endpoint, &config);
    }
    let stdout = std::io::stdout();
    let mut out = StreamWriter::new(std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()));
    dll_loop(&args, &config, &mut out)
}

fn dll_loop(args: &IngestArgs, config: &Config, out: &mut impl IngestWriter) -> Result<()> {
    let mut feed_config =
        config.dll.feed_config(args.library.as_deref(), config.engine.utc_offset_minutes, |k| std::env::var(k).ok())?;
    feed_config.backfill_from_ms = args.backfill_from;
    let library = feed_config.library.clone();
    let (feed, mut stream, _orders) =
        DllFeed::start(feed_config).with_context(|| format!("cannot start ProfitDLL {}", library.display()))?;
    feed.wait_ready(Duration::from_millis(config.dll.ready_timeout_ms))
        .with_context(|| format!("ProfitDLL {} did not connect", library.display()))?;
    out.send(&IngestRecord::Ready)?;
    out.flush()?;
    let mut pending = false;
    loop {
        match stream.poll() {
            Some(StreamItem::Trade(t)) => {
                // A closed pipe means the engine is gone: nothing left to do.
                if out.send(&IngestRecord::Trade(t)).is_err() {
                    break;
                }
                pending = true;
            }
            Some(_) => {}
            None => {
                if pending {
                    if out.flush().is_err() {
                        break;
                    }
                    pending = false;
                }
                if stream.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    let _ = std::io::stderr().flush();
    feed.stop();
    Ok(())
}
