//! The plugin half of `tickhost bench`: what a call costs native vs Rust vs
//! Python vs JavaScript, what a slot adds to the bare component call, and
//! replay throughput with plugins per trade and per candle, all from one run.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use anyhow::{Context, Result};
use tickhost_core::engine::{Engine, Hooks, NoObserver};
use tickhost_core::extensions::Microstructure;
use tickhost_core::features::V3_FEATURE_COUNT;
use tickhost_core::hooks::{FeatureExtensions, FeatureSchema, Strategies};
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::sim::{SessionGenerator, SessionSpec, weekdays_from};
use tickhost_core::strategy::{RegimeStrategies, StrategyInput};
use tickhost_core::{Candle, Trade};
use tickhost_plugin::{
    FeatureSlot, FeatureSlots, Mode, PluginIndex, PluginManager, PluginRuntime, RegimePlugins, SlotPolicy,
    StrategySlots,
};

use crate::config::{AgentPlugin, Config};
use crate::slots::{build_engine, plugin_runtime};

/// Nanoseconds per call of `f`, over `n` calls after `n / 10` warm-up calls.
fn ns_per_call(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    started.elapsed().as_nanos() as f64 / f64::from(n.max(1))
}

fn replay_rate(engine: &mut Engine, trades: &[Trade]) -> f64 {
    let started = Instant::now();
    for t in trades {
        engine.on_trade(*t, &mut NoObserver);
    }
    black_box(engine.finish(&mut NoObserver));
    trades.len() as f64 / started.elapsed().as_secs_f64().max(1e-12) / 1e6
}

fn path_of(index: &PluginIndex, name: &str) -> Result<PathBuf> {
    index.manifest(name).context("a plugin the bench needs is not built")
}

pub fn run(plugins_dir: &Path, config: &Config, trades: &[Trade], candles: &[Candle]) -> Result<()> {
    let index = match PluginIndex::open(plugins_dir) {
        Ok(index) => index,
        Err(e) => {
            println!("\n  plugins: skipped ({e})");
            return Ok(());
        }
    };
    let runtime = plugin_runtime(config)?;
    let load = |name: &str| -> Result<_> { Ok(runtime.load(&path_of(&index, name)?)?) };
    let policy = SlotPolicy::default();
    let strategy_config = &config.engine.strategy;
    let frame = vec![0.0; V3_FEATURE_COUNT];
    let candle = candles.get(candles.len() / 2).copied().context("the bench made no candles")?;
    let input = StrategyInput {
        candle: &candle,
        features: &frame,
        regime: RegimeReading { regime: Regime::TrendUp, confidence: 0.7, adx: 30.0 },
    };

    // Per candle: one strategy decision, native vs a plugin in each language.
    let mut native = RegimeStrategies::new(strategy_config);
    let native_ns = ns_per_call(200_000, |_| {
        black_box(native.on_candle(black_box(&input)));
    });
    let mut strategy_rows = vec![("native (RegimeStrategies)".to_string(), native_ns)];
    for (name, lang, n) in [("trend", "Rust", 100_000), ("mean_reversion", "Python", 3_000), ("momentum", "JS", 3_000)]
    {
        let plugins = RegimePlugins { trend_up: Some(load(name)?), ..Default::default() };
        let mut slots = StrategySlots::new(strategy_config, &FeatureSchema::v3(), plugins, policy.clone())?;
        let ns = ns_per_call(n, |_| {
            black_box(slots.on_candle(black_box(&input)));
        });
        strategy_rows.push((format!("{lang} plugin `{name}` (slot, incl. native twin)"), ns));
    }

    // Per trade: the microstructure extension, native vs the bare component
    // call vs the same plugin through its slot.
    let mut native = Microstructure::default();
    let trade_at = |i: u32| &trades[i as usize % trades.len()];
    let native_trade_ns = ns_per_call(1_000_000, |i| native.on_trade(black_box(trade_at(i)), &frame));
    let micro = load("microstructure")?;
    let mut raw = micro.instantiate()?;
    let raw_ns = ns_per_call(300_000, |i| {
        black_box(raw.raw_feature_on_trade(trade_at(i)).ok());
    });
    let mut slot = FeatureSlots::new(vec![FeatureSlot::plugin(micro)], policy.clone())?;
    let slot_ns = ns_per_call(300_000, |i| slot.on_trade(black_box(trade_at(i)), &frame));

    // Whole replays: native, a Rust extension on every trade, Rust
    // strategies and agent on every candle.
    let mut native_engine = Engine::new(&config.engine)?;
    let native_rate = replay_rate(&mut native_engine, trades);
    let mut per_trade = config.clone();
    per_trade.plugins.features = vec![path_of(&index, "microstructure")?];
    let per_trade_rate = replay_rate(&mut build_engine(&per_trade)?.engine, trades);
    let mut per_candle = config.clone();
    let trend = path_of(&index, "trend")?;
    per_candle.plugins.strategy.trend_up = trend.clone();
    per_candle.plugins.strategy.trend_down = trend;
    per_candle.plugins.strategy.range = path_of(&index, "range")?;
    per_candle.plugins.agents = vec![AgentPlugin { manifest: path_of(&index, "orderflow")?, weight: 0.3 }];
    let per_candle_rate = replay_rate(&mut build_engine(&per_candle)?.engine, trades);

    println!();
    println!("  {:<58} {:>10} {:>9}", "plugins: one strategy decision per candle", "ns/call", "x native");
    for (what, ns) in &strategy_rows {
        println!("  {:<58} {:>10.0} {:>9.1}", what, ns, ns / native_ns.max(1e-9));
    }
    println!();
    println!("  {:<58} {:>10} {:>9}", "plugins: microstructure features per trade", "ns/call", "x native");
    for (what, ns) in [
        ("native (Microstructure)", native_trade_ns),
        ("Rust component, bare call (no slot)", raw_ns),
        ("Rust plugin through its slot", slot_ns),
    ] {
        println!("  {:<58} {:>10.0} {:>9.1}", what, ns, ns / native_trade_ns.max(1e-9));
    }
    println!();
    println!("  {:<58} {:>10} {:>9}", "plugins: replay throughput", "M/s", "x native");
    for (what, rate) in [
        ("native engine", native_rate),
        ("+ Rust feature extension on every trade", per_trade_rate),
        ("+ Rust strategies and agent on every candle", per_candle_rate),
    ] {
        println!("  {:<58} {:>10.2} {:>9.2}", what, rate, rate / native_rate.max(1e-9));
    }
    println!();
    println!(
        "  ratios: a slot costs {:.2}x the bare component call per trade; Python {:.0}x and JS {:.0}x a Rust plugin per call",
        slot_ns / raw_ns.max(1e-9),
        strategy_rows[2].1 / strategy_rows[1].1.max(1e-9),
        strategy_rows[3].1 / strategy_rows[1].1.max(1e-9),
    );
    swap_pauses(&index, &runtime, config)
}

/// p50 / p99 / max of nanosecond samples, in µs.
fn quantiles_us(samples: &mut [u64]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at =
        |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0) as f64 / 1e3;
    (at(0.5), at(0.99), at(1.0))
}

/// The engine-thread pause of a live swap of a per-trade plugin (state
/// hand-over included) while trades replay at full speed on another thread:
/// Rust to Rust, and into and out of a Python guest.
fn swap_pauses(index: &PluginIndex, runtime: &PluginRuntime, config: &Config) -> Result<()> {
    const RUST_SWAPS: usize = 100;
    const PYTHON_SWAPS: usize = 6;
    let rust = [path_of(index, "good-counter-features")?, path_of(index, "good-counter-features-v2")?];
    let python = path_of(index, "good-counter-features-python")?;
    let policy = SlotPolicy { deadline_factor: config.plugins.replay_deadline_factor, ..SlotPolicy::default() };
    let slots = FeatureSlots::new(vec![FeatureSlot::plugin(runtime.load(&rust[0])?)], policy)?;
    let slot = slots.controls().first().map(|c| c.name().to_string()).context("no slot")?;
    let manager = PluginManager::new(runtime.clone())?;
    manager.register(slots.controls());
    let mut hooks = Hooks::native(&config.engine);
    hooks.extensions = Box::new(slots);
    let mut engine = Engine::with_hooks(&config.engine, hooks)?;
    let stop = AtomicBool::new(false);
    let (mut rust_pauses, mut python_pauses) = (Vec::new(), Vec::new());
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(|| {
            // Fresh sessions, not `trades` again: replayed trades are
            // duplicates the engine drops before any slot sees them.
            for (i, (y, m, d)) in weekdays_from(2025, 1, 6, 100_000).into_iter().enumerate() {
                let mut spec = SessionSpec::wdo(y, m, d, 1_000 + i as u64);
                spec.trades_target = 100_000;
                for t in SessionGenerator::new(spec) {
                    engine.on_trade(t, &mut NoObserver);
                }
                if stop.load(Relaxed) {
                    break;
                }
            }
        });
        let result = (|| -> Result<()> {
            for i in 0..RUST_SWAPS {
                rust_pauses.push(manager.deploy(&slot, &rust[(i + 1) % 2], Mode::Active)?.pause_ns);
            }
            for i in 0..PYTHON_SWAPS {
                let to = if i % 2 == 0 { &python } else { &rust[0] };
                python_pauses.push(manager.deploy(&slot, to, Mode::Active)?.pause_ns);
            }
            Ok(())
        })();
        stop.store(true, Relaxed);
        result
    })?;
    let (r50, r99, rmax) = quantiles_us(&mut rust_pauses);
    let (p50, p99, pmax) = quantiles_us(&mut python_pauses);
    println!();
    println!(
        "  {:<58} {:>10} {:>9} {:>9}",
        "live swap: engine-thread pause (hand-over + swap)", "p50 µs", "p99 µs", "max µs"
    );
    println!(
        "  {:<58} {:>10.1} {:>9.1} {:>9.1}",
        format!("Rust -> Rust, {RUST_SWAPS} swaps under full-speed replay"),
        r50,
        r99,
        rmax
    );
    println!(
        "  {:<58} {:>10.1} {:>9.1} {:>9.1}",
        format!("into / out of Python, {PYTHON_SWAPS} swaps"),
        p50,
        p99,
        pmax
    );
    Ok(())
}
