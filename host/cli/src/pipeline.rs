//! The replay pipeline of DESIGN.md: a feed thread parses the CSV and pushes
//! trades into a bounded SPSC ring; the engine thread (the caller's) pops and
//! runs the engine. Backpressure, never loss: a full ring makes the reader wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use tickhost_core::Trade;
use tickhost_core::engine::{Engine, EngineObserver};
use tickhost_core::report::BacktestReport;
use tickhost_feed::profit_csv::{CsvStats, ProfitCsvOptions, ProfitCsvReader};

use crate::config::Config;

/// What a replay produced.
#[derive(Debug)]
pub struct ReplayOutcome {
    pub report: BacktestReport,
    pub csv: CsvStats,
    pub elapsed: Duration,
    pub foreign_symbol_trades: u64,
    /// The feed was ended early ([`Feed::cancel`]): the report covers only
    /// the trades read until then.
    pub cancelled: bool,
}

impl ReplayOutcome {
    pub fn trades_per_second(&self) -> f64 {
        self.csv.trades as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How the feed thread hands trades to the engine.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    /// Trades per second; 0 = as fast as the engine takes them. A replayed
    /// day at full speed is over in a fraction of a second, too fast for an
    /// operator to act on. Only the feed thread waits for the pace: the
    /// engine thread never sleeps.
    pub pace: u32,
    /// Set by someone else (the admin API's shutdown) to end the feed early:
    /// the engine finishes on the trades it was given.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Set for replays with storage: the feed waits while the store lane is
    /// behind, so nothing is dropped (the engine itself never waits).
    pub hold: Option<tickhost_store::writer::Backpressure>,
}

impl Feed {
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Replays a Profit CSV through `engine` as fast as it goes.
pub fn replay_csv(
    path: &Path,
    config: &Config,
    engine: &mut Engine,
    observer: &mut impl EngineObserver,
    show_progress: bool,
) -> Result<ReplayOutcome> {
    replay_csv_fed(path, config, engine, observer, show_progress, &Feed::default())
}

/// Replays a Profit CSV through `engine`, paced and cancellable as `feed` says.
pub fn replay_csv_fed(
    path: &Path,
    config: &Config,
    engine: &mut Engine,
    observer: &mut impl EngineObserver,
    show_progress: bool,
    feed: &Feed,
) -> Result<ReplayOutcome> {
    let file_len = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?.len();
    let progress = progress_bar(file_len, show_progress);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::new(AtomicBool::new(false));
    let (mut producer, mut consumer) = rtrb::RingBuffer::<Trade>::new(config.source.ring_capacity.max(1024));
    let opts = ProfitCsvOptions {
        on_bad_row: config.source.on_bad_row.into(),
        utc_offset_minutes: config.engine.utc_offset_minutes,
    };
    let started = Instant::now();

    let reader = {
        let path: PathBuf = path.to_path_buf();
        let bytes_read = Arc::clone(&bytes_read);
        let stop = Arc::clone(&stop);
        let feed = feed.clone();
        let cancelled = Arc::clone(&cancelled);
        thread::Builder::new()
            .name("feed-csv".into())
            .spawn(move || -> Result<CsvStats> {
                let mut csv = ProfitCsvReader::open(&path, opts)?;
                let mut since_update = 0u32;
                let paced_from = Instant::now();
                let mut fed = 0u64;
                let mut fed_for_hold = 0u64;
                while let Some(mut trade) = csv.next_trade()? {
                    if let Some(hold) = &feed.hold
                        && fed_for_hold.is_multiple_of(256)
                    {
                        while hold.should_wait() && !stop.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_micros(100));
                        }
                    }
                    fed_for_hold += 1;
                    if feed.cancelled() {
                        cancelled.store(true, Ordering::Relaxed);
                        break;
                    }
                    if feed.pace > 0 {
                        // Trade n is due n/pace seconds after the start, so
                        // the pace holds on average whatever each sleep overshoots.
                        let due =
                            paced_from + Duration::from_nanos(fed.saturating_mul(1_000_000_000) / u64::from(feed.pace));
                        let now = Instant::now();
                        if due > now {
                            thread::sleep(due - now);
                        }
                        fed += 1;
                    }
                    loop {
                        match producer.push(trade) {
                            Ok(()) => break,
                            Err(rtrb::PushError::Full(back)) => {
                                if stop.load(Ordering::Relaxed) {
                                    return Err(anyhow!("engine stopped"));
                                }
                                trade = back;
                                thread::yield_now();
                            }
                        }
                    }
                    since_update += 1;
                    if since_update == 16_384 {
                        since_update = 0;
                        bytes_read.store(csv.bytes_read(), Ordering::Relaxed);
                    }
                }
                bytes_read.store(csv.bytes_read(), Ordering::Relaxed);
                Ok(csv.stats().clone())
            })
            .context("cannot start the feed thread")?
    };

    let mut popped = 0u64;
    loop {
        match consumer.pop() {
            Ok(trade) => {
                engine.on_trade(trade, observer);
                popped += 1;
                if popped.is_multiple_of(65_536) {
                    progress.set_position(bytes_read.load(Ordering::Relaxed));
                }
            }
            Err(_) if consumer.is_abandoned() => {
                // The producer is gone; drain what it pushed before leaving.
                while let Ok(trade) = consumer.pop() {
                    engine.on_trade(trade, observer);
                }
                break;
            }
            Err(_) => thread::yield_now(),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let csv = reader.join().map_err(|_| anyhow!("the feed thread panicked"))??;
    progress.finish_and_clear();
    let report = engine.finish(observer);
    Ok(ReplayOutcome {
        report,
        csv,
        elapsed: started.elapsed(),
        foreign_symbol_trades: engine.foreign_symbol_trades(),
        cancelled: cancelled.load(Ordering::Relaxed),
    })
}

fn progress_bar(len: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
