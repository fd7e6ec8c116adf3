//! `tickhost run`: the long-running engine. Replays a CSV (optionally at a
//! human pace) with every strategy and agent slot open for live rollout, and
//! serves the admin API meanwhile, so an operator can shadow, canary, promote
//! and roll back plugins while trades flow.

use anyhow::{Context, Result};
use clap::Args;
use tickhost_plugin::PluginManager;
use tickhost_store::keys::TickStream;

use super::replay::{SourceArgs, print_plugin_stats, print_source_summary};
use crate::admin::AdminServer;
use crate::bus::BusRun;
use crate::config::Config;
use crate::pipeline::{Feed, replay_csv_fed};
use crate::render;
use crate::slots::build_live_engine;
use crate::storage::StoreRun;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Trades per second fed to the engine (0 = full speed), so an operator
    /// has time to act on a replayed day.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub pace: u32,
    /// After the feed ends, print the report and keep serving the admin API
    /// until Ctrl-C or `POST /shutdown` (to read the slots' final status).
    #[arg(long)]
    pub linger: bool,
    /// Watch this directory (e.g. target/plugins) and redeploy a plugin into
    /// the slots running it when its files change (a rebuild, a copy).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<std::path::PathBuf>,
    /// With --feed dll: stop after this many trades (0 = no limit).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_trades: u64,
    /// With --feed dll: stop once no event arrived for this many seconds (0 = run until killed).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub idle_exit: f64,
    /// With --feed zmq://...: write the backtest report (JSON) here when the feed ends.
    #[arg(long, value_name = "PATH")]
    pub report: Option<std::path::PathBuf>,
}

pub fn run(args: RunArgs, mut config: Config) -> Result<()> {
    args.source.apply(&mut config);
    match &args.source.feed {
        super::replay::FeedKind::Dll => return crate::sources::dll::run(&args, config),
        super::replay::FeedKind::Ingest => return crate::sources::ingest::run(&args, config),
        super::replay::FeedKind::Zmq(url) => return crate::sources::zmq::run(&args, url, config),
        super::replay::FeedKind::Csv => {}
    }
    let mut setup = build_live_engine(&config)?;
    let runtime = setup
        .runtime()
        .context("the live engine has no plugin runtime, so plugins cannot be deployed into it")?
        .clone();
    let manager = PluginManager::new(runtime).context("cannot start the plugin manager")?;
    manager.register(setup.controls().iter().cloned());
    let _watcher = match &args.watch {
        Some(dir) => Some(
            tickhost_plugin::PluginWatcher::start(
                manager.clone(),
                dir,
                std::time::Duration::from_millis(500),
                |slot, manifest, outcome| match outcome {
                    Ok(what) => eprintln!("{slot}: {} changed on disk: {what}", manifest.display()),
                    Err(why) => eprintln!("{slot}: {} changed on disk but was refused: {why}", manifest.display()),
                },
            )
            .with_context(|| format!("cannot watch {}", dir.display()))?,
        ),
        None => None,
    };
    let admin = AdminServer::start(&config.admin, manager)?;
    eprintln!("{}", admin.banner());
    // A live session: ticks go to ticks:<SYM>:realtime.
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Realtime);
    if let Some(status) = store.status() {
        admin.attach_store(status);
    }
    let mut bus = BusRun::start(&config, setup.engine.schema(), tickhost_bus::TradeChannel::Ticks);
    if let Some(status) = bus.status() {
        admin.attach_bus(status);
    }

    // Paced like a live feed: the source does not wait for the store (a
    // full lane drops and counts, visible in /health). At full speed it is
    // a replay: the feed waits for the store rather than dropping.
    let hold = if args.pace == 0 { store.backpressure() } else { None };
    let feed = Feed { pace: args.pace, cancel: Some(admin.shutdown_flag()), hold };
    let mut both = (store.observer(), bus.observer());
    let outcome = replay_csv_fed(args.source.csv()?, &config, &mut setup.engine, &mut both, !args.source.quiet, &feed);
    store.finish();
    bus.finish();
    admin.feed_ended();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            admin.stop();
            return Err(e);
        }
    };
    print_source_summary(&outcome, args.source.csv()?);
    if outcome.cancelled {
        eprintln!(
            "the feed was stopped by POST /shutdown after {} trades; the report covers those",
            outcome.csv.trades
        );
    }
    print!("{}", render::table(&outcome.report, config.engine.utc_offset_minutes));
    print_plugin_stats(&setup.plugin_stats());

    if args.linger && !admin.shutdown_requested() {
        eprintln!(
            "the feed has ended; the admin API stays at {} for reading status: POST /shutdown or Ctrl-C to exit",
            admin.url()
        );
        admin.wait_for_shutdown();
    }
    admin.stop();
    Ok(())
}
