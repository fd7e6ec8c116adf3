use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use tickhost_store::keys::TickStream;

use crate::OnBadRowArg;
use crate::bus::BusRun;
use crate::config::{Config, OnBadRow};
use crate::frames::FrameWriter;
use crate::pipeline::{Feed, ReplayOutcome, replay_csv_fed};
use crate::render;
use crate::slots::build_engine;
use crate::storage::{self, StoreRun};
use tickhost_ml::MlStatus;
use tickhost_plugin::SlotStats;

use crate::ml::MlRun;
/// Where trades come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedKind {
    /// A Profit tick CSV export (the CSV argument).
    Csv,
    /// A library exporting the ProfitDLL ABI (--library; `run` only).
    Dll,
    /// The ProfitDLL in a supervised `tickhost ingest` child process (--library; `run` only).
    Ingest,
    /// A ZeroMQ publisher: another tickhost (`tickhost ingest --publish`, or
    /// an engine's ticks socket) or the seeds' Python feeder (`run` only).
    Zmq(String),
}

/// `csv`, `dll`, `ingest`, or a ZeroMQ endpoint (zmq://host:port, zmq+ipc:///path).
fn parse_feed(text: &str) -> Result<FeedKind, String> {
    match text {
        "csv" => Ok(FeedKind::Csv),
        "dll" => Ok(FeedKind::Dll),
        "ingest" => Ok(FeedKind::Ingest),
        url if url.contains("://") => tickhost_bus::endpoint::to_zmq(url).map(|_| FeedKind::Zmq(url.to_string())),
        other => {
            Err(format!("{other:?}: use csv, dll, ingest, or a ZeroMQ publisher as zmq://host:port or zmq+ipc:///path"))
        }
    }
}

#[derive(Args, Debug)]
pub struct SourceArgs {
    /// A Profit tick CSV export (seconds or milliseconds variant).
    pub csv: Option<PathBuf>,
    /// The data source: csv, dll, ingest, or a ZeroMQ publisher (zmq://host:port, zmq+ipc:///path; `run` only).
    #[arg(long, default_value = "csv", value_parser = parse_feed, value_name = "csv|dll|ingest|zmq://HOST:PORT|zmq+ipc://PATH")]
    pub feed: FeedKind,
    /// With --feed dll: ProfitDLL.dll or libtickhost_profitdll_sim.so (overrides dll.library).
    #[arg(long, value_name = "PATH")]
    pub library: Option<PathBuf>,
    /// What to do with a malformed or invalid row (overrides source.on_bad_row).
    #[arg(long, value_enum)]
    pub on_bad_row: Option<OnBadRowArg>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl SourceArgs {
    /// The CSV to replay; an error for a DLL feed or a missing path.
    pub(crate) fn csv(&self) -> Result<&Path> {
        match (&self.feed, &self.csv) {
            (FeedKind::Csv, Some(p)) => Ok(p),
            (FeedKind::Csv, None) => {
                anyhow::bail!("no CSV given: pass a Profit tick CSV path (or --feed dll with `run`)")
            }
            (FeedKind::Dll | FeedKind::Ingest | FeedKind::Zmq(_), _) => {
                anyhow::bail!(
                    "--feed dll, ingest and zmq://... are only for `tickhost run`; replay and backtest read a CSV"
                )
            }
        }
    }

    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(p) = self.on_bad_row {
            config.source.on_bad_row = match p {
                OnBadRowArg::Fail => OnBadRow::Fail,
                OnBadRowArg::Skip => OnBadRow::Skip,
            };
        }
    }
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Write every candle's feature frame (OHLCV, regime, v3_*) to this CSV.
    #[arg(long)]
    pub features_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Directory for report.json and equity.svg (default: out/backtest-<csv name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the JSON report on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn print_source_summary(outcome: &ReplayOutcome, path: &Path) {
    let s = &outcome.csv;
    eprintln!(
        "{}: {} rows, {} trades in {:.3} s ({:.2} M trades/s)",
        path.display(),
        s.rows,
        s.trades,
        outcome.elapsed.as_secs_f64(),
        outcome.trades_per_second() / 1e6
    );
    if s.bad_rows > 0 {
        eprintln!("skipped {} bad rows; the first ones:", s.bad_rows);
        for bad in &s.first_bad_rows {
            eprintln!("  {bad}");
        }
    }
    if s.unknown_trade_types > 0 {
        eprintln!("{} trades had an unknown trade type (kept, no aggressor side)", s.unknown_trade_types);
    }
    if s.non_utf8_agents > 0 {
        eprintln!("{} agent names were not UTF-8 and were read as Latin-1", s.non_utf8_agents);
    }
    if outcome.foreign_symbol_trades > 0 {
        eprintln!(
            "{} trades of other symbols were ignored (one symbol per engine shard)",
            outcome.foreign_symbol_trades
        );
    }
}

pub(crate) fn print_plugin_stats(stats: &[SlotStats]) {
    if stats.is_empty() {
        return;
    }
    println!(
        "\n  {:<22} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9}  fallback reasons",
        "plugin slot", "plugin", "calls", "plugin ok", "fallbacks", "p50 ns", "p99 ns"
    );
    for s in stats {
        let f = &s.fallbacks;
        let reasons: Vec<String> = [
            ("trap", f.trap),
            ("timeout", f.timeout),
            ("invalid", f.invalid_output),
            ("missing", f.missing),
            ("circuit_open", f.circuit_open),
            ("forced_native", f.forced_native),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
        println!(
            "  {:<22} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            s.slot,
            s.plugin,
            s.calls,
            s.plugin_ok,
            s.fallbacks_total,
            s.latency.p50_ns,
            s.latency.p99_ns,
            if reasons.is_empty() { "-".to_string() } else { reasons.join(" ") }
        );
    }
}

/// What the models did: where the runtime came from and each model's
/// inference latency, or why the native rule stood in for them.
pub(crate) fn print_ml(ml: &MlRun) {
    match &ml.setup.status {
        MlStatus::Disabled => println!("  ML:         off (ENHANCED_ML_ENABLED=false): the native rule decides"),
        MlStatus::Fallback { reason } => println!("  ML:         FALLBACK, the native rule decides: {reason}"),
        MlStatus::Active { runtime, problems } => {
            let models: Vec<String> = ml
                .stats()
                .iter()
                .map(|s| format!("{} {} runs (p50 {} / p99 {} µs)", s.model, s.calls, us(s.p50_ns), us(s.p99_ns)))
                .collect();
            println!(
                "  ML:         ONNX Runtime {} ({}); {}",
                runtime.version,
                runtime.located.source,
                if models.is_empty() { "no model loaded".to_string() } else { models.join(", ") }
            );
            for p in problems {
                println!("  ML:         FALLBACK for a model: {p}");
            }
        }
    }
}

/// Bucket edges in ns to µs, rounded up (they are upper bounds).
fn us(ns: u64) -> u64 {
    ns.div_ceil(1000)
}

pub fn replay(args: ReplayArgs, mut config: Config) -> Result<()> {
    args.source.apply(&mut config);
    let show = !args.source.quiet;
    let mut setup = build_engine(&config)?;
    if let Some(h) = &setup.history {
        h.prime_from_csv(args.source.csv()?, &config);
    }
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Historical);
    let mut bus = BusRun::start(&config, setup.engine.schema(), tickhost_bus::TradeChannel::History);
    let outcome = match &args.features_out {
        Some(path) => {
            let mut frames = FrameWriter::create(path, setup.engine.schema().names())?;
            let feed = Feed { hold: store.backpressure(), ..Feed::default() };
            let mut both = (storage::with(&mut frames, &mut store), bus.observer());
            let outcome = replay_csv_fed(args.source.csv()?, &config, &mut setup.engine, &mut both, show, &feed)?;
            let rows = frames.finish()?;
            eprintln!("wrote {rows} feature frames to {}", path.display());
            outcome
        }
        None => {
            let feed = Feed { hold: store.backpressure(), ..Feed::default() };
            let mut both = (store.observer(), bus.observer());
            replay_csv_fed(args.source.csv()?, &config, &mut setup.engine, &mut both, show, &feed)?
        }
    };
    store.finish();
    bus.finish();
    if let Some(tt) = &setup.time_travel {
        eprintln!("{}", tt.summary());
    }
    if let Some(h) = setup.history.as_ref().filter(|h| h.window.counters().calls > 0) {
        eprintln!("{}", h.summary());
    }
    print_source_summary(&outcome, args.source.csv()?);
    let i = &outcome.report.ingest;
    println!(
        "replayed {} trades into {} candles: {} duplicates dropped, {} edits applied, {} reordered, {} too late",
        i.accepted,
        outcome.report.decisions.candles,
        i.duplicates,
        i.edits,
        i.out_of_order_clamped,
        i.out_of_order_dropped
    );
    print_plugin_stats(&setup.plugin_stats());
    Ok(())
}

pub fn backtest(args: BacktestArgs, mut config: Config) -> Result<()> {
    args.source.apply(&mut config);
    let mut setup = build_engine(&config)?;
    if let Some(h) = &setup.history {
        h.prime_from_csv(args.source.csv()?, &config);
    }
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Historical);
    let mut bus = BusRun::start(&config, setup.engine.schema(), tickhost_bus::TradeChannel::History);
    let feed = Feed { hold: store.backpressure(), ..Feed::default() };
    let mut both = (store.observer(), bus.observer());
    let outcome = replay_csv_fed(args.source.csv()?, &config, &mut setup.engine, &mut both, !args.source.quiet, &feed)?;
    store.finish();
    bus.finish();
    if let Some(tt) = &setup.time_travel {
        eprintln!("{}", tt.summary());
    }
    if let Some(h) = setup.history.as_ref().filter(|h| h.window.counters().calls > 0) {
        eprintln!("{}", h.summary());
    }
    print_source_summary(&outcome, args.source.csv()?);
    let report = &outcome.report;
    let plugin_stats = setup.plugin_stats();
    let offset = config.engine.utc_offset_minutes;
    let out_dir = args.out.unwrap_or_else(|| {
        let stem = args
            .source
            .csv
            .as_deref()
            .and_then(|p| p.file_stem())
            .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("out").join(format!("backtest-{stem}"))
    });
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut json = serde_json::to_value(report).context("report does not serialise")?;
    json["plugin_slots"] = serde_json::to_value(&plugin_stats).context("plugin stats do not serialise")?;
    json["ml"] = setup.ml.json();
    let json = serde_json::to_string_pretty(&json).context("report does not serialise")?;
    let json_path = out_dir.join("report.json");
    std::fs::write(&json_path, &json).with_context(|| format!("cannot write {}", json_path.display()))?;
    let svg_path = out_dir.join("equity.svg");
    std::fs::write(&svg_path, render::equity_svg(report, offset))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    if args.json {
        println!("{json}");
    } else {
        print!("{}", render::table(report, offset));
        print_ml(&setup.ml);
        print_plugin_stats(&plugin_stats);
        println!("\n  report: {}\n  plot:   {}", json_path.display(), svg_path.display());
    }
    Ok(())
}
