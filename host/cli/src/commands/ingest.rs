//! `tickhost ingest`: the ProfitDLL in a process of its own. It logs in,
//! subscribes, and writes every trade to stdout as ingest frames
//! (tickhost_feed::ingest) for the engine that started it (`tickhost run
//! --feed ingest`). A crash of the DLL ends this process only; the engine
//! restarts it with `--backfill-from` set to the last trade it has.

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
}

pub fn run(args: IngestArgs, config: Config) -> Result<()> {
    let mut feed_config =
        config.dll.feed_config(args.library.as_deref(), config.engine.utc_offset_minutes, |k| std::env::var(k).ok())?;
    feed_config.backfill_from_ms = args.backfill_from;
    let library = feed_config.library.clone();
    let (feed, mut stream, _orders) =
        DllFeed::start(feed_config).with_context(|| format!("cannot start ProfitDLL {}", library.display()))?;
    feed.wait_ready(Duration::from_millis(config.dll.ready_timeout_ms))
        .with_context(|| format!("ProfitDLL {} did not connect", library.display()))?;
    let stdout = std::io::stdout();
    let mut out = StreamWriter::new(std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()));
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
