//! `tickhost`: generate sample data, replay and backtest tick files, benchmark,
//! run the engine with live plugin rollout and drive it.

mod admin;
mod bus;
mod commands;
mod config;
mod frames;
mod ml;
mod pipeline;
mod render;
mod slots;
mod sources;
mod storage;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "tickhost", version, about = "A native engine for tick-driven trading", max_term_width = 100)]
struct Cli {
    /// TOML config merged over the built-in defaults (config/default.toml).
    #[arg(long, global = true, env = "TICKHOST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnBadRowArg {
    /// Stop at the first bad row, naming file, line and field.
    Fail,
    /// Skip bad rows, count them and list the first ones at the end.
    Skip,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write synthetic WDO sessions in the Profit CSV format, deterministic from a seed.
    Gen(commands::generate::GenArgs),
    /// Replay a Profit CSV through the engine; optionally write the feature frames.
    Replay(commands::replay::ReplayArgs),
    /// Backtest a Profit CSV: print the report, write JSON and the equity plot.
    Backtest(commands::replay::BacktestArgs),
    /// Measure throughput and print ratios (wasm vs native arrive with plugins).
    Bench(commands::bench::BenchArgs),
    /// Run the engine on a CSV (optionally paced) with the admin API open for live plugin rollout.
    Run(commands::run::RunArgs),
    /// Run the ProfitDLL in this process and publish its trades to the engine that started it (`run --feed ingest`).
    Ingest(commands::ingest::IngestArgs),
    /// Talk to a running engine's admin API: list, status, deploy, shadow, canary, promote, rollback.
    Plugins(commands::plugins::PluginsArgs),
    /// Time travel: a symbol's stored ticks (or candles, features, signals, fills) between two instants.
    Query(commands::query::QueryArgs),
    /// The store: health (memory, keys) and cleanup of old data.
    Store(commands::query::StoreArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = config::Config::load(cli.config.as_deref())?;
    sources::ingest::CONFIG_FILE.get_or_init(|| cli.config.clone());
    init_logging(&config.log)?;
    tracing::debug!(?config, "configuration loaded");
    match cli.command {
        Command::Gen(args) => commands::generate::run(args),
        Command::Replay(args) => commands::replay::replay(args, config),
        Command::Backtest(args) => commands::replay::backtest(args, config),
        Command::Bench(args) => commands::bench::run(args, config),
        Command::Run(args) => commands::run::run(args, config),
        Command::Plugins(args) => commands::plugins::run(args),
        Command::Query(args) => commands::query::query(args, config),
        Command::Store(args) => commands::query::store(args, config),
        Command::Ingest(args) => commands::ingest::run(args, config),
    }
}

fn init_logging(log: &config::LogConfig) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .map_err(|e| anyhow::anyhow!("log.level = {:?} is not a log filter: {e}", log.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.format.as_str() {
        "human" => builder.init(),
        "json" => builder.json().init(),
        other => anyhow::bail!("log.format = {other:?}: use \"human\" or \"json\""),
    }
    Ok(())
}
