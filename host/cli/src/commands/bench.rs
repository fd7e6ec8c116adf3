//! `tickhost bench`: throughput of each stage and the ratios that matter,
//! from one run on one machine. Criterion benches (cargo bench) give the
//! statistically careful per-stage numbers; this gives the overview.

use std::hint::black_box;
use std::io::{BufWriter, Cursor};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tickhost_core::candles::CandleBuilder;
use tickhost_core::engine::{Engine, NoObserver};
use tickhost_core::features::{FeatureCore, V3_FEATURE_COUNT, reference};
use tickhost_core::sim::{SessionGenerator, SessionSpec, weekdays_from};
use tickhost_core::time::{MS_PER_SECOND, SessionClock};
use tickhost_core::{AgentDirectory, Candle, Trade};
use tickhost_feed::profit_csv::{ProfitCsvOptions, ProfitCsvReader, ProfitCsvWriter};

use crate::config::Config;
use crate::pipeline::replay_csv;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Synthetic sessions to generate.
    #[arg(long, default_value_t = 10)]
    pub days: usize,
    /// Trades per session (the sample day has 20k; a busy WDO day ~300k).
    #[arg(long, default_value_t = 100_000)]
    pub trades_per_day: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where `scripts/build_plugins.py` put the plugins (its index.txt); the
    /// plugin benches are skipped when it is not there.
    #[arg(long, default_value = "target/plugins")]
    pub plugins: PathBuf,
    /// Also measure the store: writer entries/s (embedded, and Valkey on a
    /// valkey-server started here) and a 10k-of-1M time-travel query.
    #[arg(long)]
    pub store: bool,
    /// Also measure the ZeroMQ bus: msgs/s and one-way latency, JSON vs rkyv, ipc vs tcp.
    #[arg(long)]
    pub bus: bool,
    /// The ProfitDLL simulator for the DLL figures (skipped when it is not there).
    #[arg(long, default_value = "target/release/libtickhost_profitdll_sim.so")]
    pub dll_library: PathBuf,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-12)
}

fn sessions(args: &BenchArgs) -> (Vec<Trade>, AgentDirectory) {
    let mut trades = Vec::new();
    let mut agents = AgentDirectory::new();
    for (i, (y, m, d)) in weekdays_from(2024, 1, 8, args.days).into_iter().enumerate() {
        let mut spec = SessionSpec::wdo(y, m, d, args.seed + i as u64);
        spec.trades_target = args.trades_per_day;
        let session = SessionGenerator::new(spec);
        agents = session.agents().clone();
        trades.extend(session);
    }
    (trades, agents)
}

/// Closed candles of a trade stream, the way the engine builds them.
fn candles_of(trades: &[Trade], bar_ms: i64, clock: SessionClock) -> Vec<Candle> {
    let mut builder = CandleBuilder::new(bar_ms, clock);
    let mut out: Vec<Candle> = trades.iter().filter(|t| !t.is_edit).filter_map(|t| builder.on_trade(t)).collect();
    out.extend(builder.flush());
    out
}

pub fn run(args: BenchArgs, config: Config) -> Result<()> {
    let clock = SessionClock { utc_offset_minutes: config.engine.utc_offset_minutes };
    let bar_ms = i64::from(config.engine.bar_seconds) * MS_PER_SECOND;
    let (trades, agents) = sessions(&args);
    let n = trades.len() as u64;
    println!("tickhost bench: {} synthetic WDO sessions, {} trades, 1 engine thread", args.days, n);

    // Whole engine, trades already in memory.
    let mut engine = Engine::new(&config.engine)?;
    let started = Instant::now();
    for t in &trades {
        engine.on_trade(*t, &mut NoObserver);
    }
    let report = engine.finish(&mut NoObserver);
    let engine_time = started.elapsed();
    black_box(&report);

    // Feature core alone, per closed candle, vs the naive recompute of the session's window.
    let candles = candles_of(&trades, bar_ms, clock);
    let mut core = FeatureCore::new(clock);
    let mut out = [0.0; V3_FEATURE_COUNT];
    let started = Instant::now();
    for c in &candles {
        core.on_candle(c, &mut out);
        black_box(&out);
    }
    let core_per_candle = started.elapsed() / candles.len().max(1) as u32;

    // Naive, the Python system's update model: on every trade, recompute every
    // feature over the session so far with the open bar as the latest candle.
    // Quadratic, so it runs on the first session only.
    let first_day = trades.first().map(|t| clock.day(t.ts_ms));
    let naive_input: Vec<&Trade> =
        trades.iter().filter(|t| !t.is_edit && Some(clock.day(t.ts_ms)) == first_day).collect();
    let started = Instant::now();
    let mut builder = CandleBuilder::new(bar_ms, clock);
    let mut session: Vec<Candle> = Vec::new();
    for t in &naive_input {
        session.extend(builder.on_trade(t));
        session.extend(builder.open_bar().copied());
        reference::compute_last(&session, clock, &mut out);
        session.pop();
        black_box(&out);
    }
    let naive_trade_time = started.elapsed();

    // Naive at candle close only: the same outputs as the engine's, recomputed.
    let started = Instant::now();
    let mut day_start = 0;
    for (i, c) in candles.iter().enumerate() {
        if i > 0 && clock.day(candles[i - 1].open_ms) != clock.day(c.open_ms) {
            day_start = i;
        }
        reference::compute_last(&candles[day_start..=i], clock, &mut out);
        black_box(&out);
    }
    let naive_per_candle = started.elapsed() / candles.len().max(1) as u32;

    // CSV parsing from memory.
    let mut csv = Vec::with_capacity(trades.len() * 90);
    {
        let mut w = ProfitCsvWriter::new(BufWriter::new(&mut csv)).with_edit_column(true);
        for t in &trades {
            w.write_trade(t, &agents)?;
        }
        w.finish()?;
    }
    let started = Instant::now();
    let mut reader = ProfitCsvReader::new(Cursor::new(&csv), "bench.csv", ProfitCsvOptions::default());
    let mut parsed = 0u64;
    while let Some(t) = reader.next_trade()? {
        black_box(&t);
        parsed += 1;
    }
    let parse_time = started.elapsed();

    // File -> feed thread -> ring -> engine thread.
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let path = dir.path().join("bench.csv");
    std::fs::write(&path, &csv).with_context(|| format!("cannot write {}", path.display()))?;
    let pipeline = replay_csv(&path, &config, &mut Engine::new(&config.engine)?, &mut NoObserver, false)?;

    let engine_rate = rate(n, engine_time);
    let naive_rate = rate(naive_input.len() as u64, naive_trade_time);
    println!();
    println!("  {:<58} {:>14}", "stage", "result");
    println!("  {:<58} {:>11.2} M/s", "engine, in-memory trades (every stage, native)", engine_rate / 1e6);
    println!("  {:<58} {:>11.2} M/s", "CSV parse, in memory (rows)", rate(parsed, parse_time) / 1e6);
    println!(
        "  {:<58} {:>11.2} M/s",
        "CSV file -> feed thread -> ring -> engine thread",
        pipeline.trades_per_second() / 1e6
    );
    println!("  {:<58} {:>11} ns", "v3 features per closed candle, incremental", core_per_candle.as_nanos());
    println!(
        "  {:<58} {:>11} ns",
        "v3 features per closed candle, naive recompute of the day",
        naive_per_candle.as_nanos()
    );
    println!("  {:<58} {:>11.4} M/s", "naive: recompute the day's features on every trade", naive_rate / 1e6);
    println!();
    println!(
        "  ratios: features per candle {:.0}x faster than recomputing; engine {:.0}x the per-trade recompute",
        naive_per_candle.as_nanos() as f64 / core_per_candle.as_nanos().max(1) as f64,
        engine_rate / naive_rate.max(1e-9)
    );
    println!(
        "  the run: {} round trips, {} candles, PnL {:.2} BRL (the engine did real work)",
        report.totals.trades, report.decisions.candles, report.totals.pnl_brl
    );
    super::bench_ml::run(&config, &trades)?;
    super::bench_plugins::run(&args.plugins, &config, &trades, &candles)?;
    if args.store {
        super::bench_store::run(&config, &trades)?;
    }
    if args.bus {
        super::bench_bus::run(&trades)?;
    }
    super::bench_dll::run(&args.dll_library, &config)
}
