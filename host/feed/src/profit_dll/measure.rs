//! Measurements of the ProfitDLL path through a simulator library, shared by
//! `tickhost bench` and the Criterion bench: sustained callbacks per second
//! (a storm, the engine thread as fast as it goes) and callback-to-engine
//! latency (the simulator stamps each trade at the callback; the engine
//! thread reads the stamp when it gets the trade).

use std::path::Path;
use std::time::{Duration, Instant};

use tickhost_core::engine::{Engine, EngineConfig, NoObserver};

use super::{
    DllConfig, DllError, DllFeed, DllStream, FeedCounters, SimulatorHandle, StreamItem, configure_simulator,
    probe_elapsed_ns,
};

#[derive(Debug, Clone, Copy)]
pub struct DllFigures {
    pub storm_trades: u64,
    pub callbacks_per_s: f64,
    pub spilled: u64,
    pub latency_samples: usize,
    pub offered_per_s: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

fn feed(
    library: &Path,
    settings: &str,
    utc_offset_minutes: i32,
) -> Result<(SimulatorHandle, DllFeed, DllStream), DllError> {
    let handle = configure_simulator(library, settings)?;
    let cfg =
        DllConfig { library: library.to_path_buf(), price_book: false, utc_offset_minutes, ..DllConfig::default() };
    let (feed, stream, _orders) = DllFeed::start(cfg)?;
    feed.wait_ready(Duration::from_secs(10))?;
    Ok((handle, feed, stream))
}

/// Runs both measurements; `storm_target` is the simulator's trades target
/// (about 3x as many trades come out).
pub fn measure(
    library: &Path,
    utc_offset_minutes: i32,
    engine_config: &EngineConfig,
    storm_target: u32,
) -> Result<DllFigures, DllError> {
    let (storm_trades, callbacks_per_s, spilled) = sustained(library, utc_offset_minutes, engine_config, storm_target)?;
    let (samples, offered_per_s) = latency(library, utc_offset_minutes, engine_config)?;
    let pct = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    Ok(DllFigures {
        storm_trades,
        callbacks_per_s,
        spilled,
        latency_samples: samples.len(),
        offered_per_s,
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
        p999_ns: pct(0.999),
    })
}

/// A storm through the engine: (trades, trades per second, events spilled).
pub fn sustained(
    library: &Path,
    utc_offset_minutes: i32,
    engine_config: &EngineConfig,
    storm_target: u32,
) -> Result<(u64, f64, u64), DllError> {
    // Sustained: the simulator calls back as fast as it can; the engine thread
    // runs the engine on every trade.
    let settings = format!("speed=0;trades={storm_target};book_every=0;daily_every=0");
    let (_sim, dll, mut stream) = feed(library, &settings, utc_offset_minutes)?;
    let mut engine = Engine::new(engine_config).map_err(|e| DllError::Config(e.to_string()))?;
    let (mut n, mut first, mut last) = (0u64, None, Instant::now());
    let mut idle_since = Instant::now();
    loop {
        match stream.poll() {
            Some(StreamItem::Trade(t)) => {
                engine.on_trade(t, &mut NoObserver);
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                idle_since = last;
                n += 1;
            }
            Some(_) => {}
            None if idle_since.elapsed() > Duration::from_millis(300) => break,
            None => std::thread::yield_now(),
        }
    }
    let spilled = FeedCounters::get(&dll.counters().spilled);
    dll.stop();
    let callbacks_per_s = n as f64 / last.duration_since(first.unwrap_or(last)).as_secs_f64().max(1e-9);
    Ok((n, callbacks_per_s, spilled))
}

/// Callback-to-engine latencies, sorted, ns; and the offered rate per second.
pub fn latency(
    library: &Path,
    utc_offset_minutes: i32,
    engine_config: &EngineConfig,
) -> Result<(Vec<u64>, f64), DllError> {
    // Latency at a steady pace (~5k trades/s, a busy real session is ~100/s).
    let (_sim, dll, mut stream) =
        feed(library, "speed=8000;trades=20000;probe=1;book_every=0;daily_every=0", utc_offset_minutes)?;
    let mut engine = Engine::new(engine_config).map_err(|e| DllError::Config(e.to_string()))?;
    let mut samples: Vec<u64> = Vec::with_capacity(64 * 1024);
    let started = Instant::now();
    let mut idle_since = Instant::now();
    loop {
        match stream.poll() {
            Some(StreamItem::Trade(t)) => {
                samples.push(probe_elapsed_ns(t.volume));
                engine.on_trade(t, &mut NoObserver);
                idle_since = Instant::now();
            }
            Some(_) => {}
            None if idle_since.elapsed() > Duration::from_millis(300) && !samples.is_empty() => break,
            None => std::thread::yield_now(),
        }
    }
    let offered = samples.len() as f64 / (started.elapsed().saturating_sub(Duration::from_millis(300))).as_secs_f64();
    dll.stop();
    samples.sort_unstable();
    Ok((samples, offered))
}
