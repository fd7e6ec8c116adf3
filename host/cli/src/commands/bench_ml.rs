//! The ML half of `tickhost bench`: batch-1 inference latency of each
//! configured model on real feature frames (p50 / p99 / max of single
//! calls, as the engine makes them), and what the models cost a replay.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use tickhost_core::engine::{Engine, EngineObserver, NoObserver};
use tickhost_core::regime::RegimeReading;
use tickhost_core::{Candle, Trade};
use tickhost_ml::MlStatus;

use crate::config::Config;

/// Every candle's frame of a replay.
#[derive(Default)]
struct Frames(Vec<Vec<f64>>);

impl EngineObserver for Frames {
    fn on_candle(&mut self, _candle: &Candle, frame: &[f64], _regime: &RegimeReading) {
        self.0.push(frame.to_vec());
    }
}

fn quantiles_us(samples: &mut [u64]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at =
        |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0) as f64 / 1e3;
    (at(0.5), at(0.99), at(1.0))
}

pub fn run(config: &Config, trades: &[Trade]) -> Result<()> {
    let mut native = Engine::new(&config.engine)?;
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let ml = tickhost_ml::start(&config.ml, native.schema(), env.as_deref());
    let registry = match (&ml.status, &ml.registry) {
        (MlStatus::Active { problems, .. }, Some(r)) if problems.is_empty() => r.clone(),
        _ => {
            let why = ml.summary().unwrap_or_else(|| "ml.enabled = false".into());
            println!("\n  ML models: skipped ({why})");
            return Ok(());
        }
    };
    let mut frames = Frames::default();
    for t in trades.iter().take(200_000) {
        native.on_trade(*t, &mut frames);
    }
    native.finish(&mut frames);
    let frames = frames.0;
    anyhow::ensure!(!frames.is_empty(), "the bench made no candles");

    println!();
    println!(
        "  {:<58} {:>10} {:>9} {:>9}",
        "ML: one batch-1 inference on the engine thread", "p50 µs", "p99 µs", "max µs"
    );
    const CALLS: usize = 20_000;
    for model in registry.models() {
        for f in frames.iter().take(200) {
            black_box(model.predict_frame(f)?);
        }
        let mut samples = Vec::with_capacity(CALLS);
        for i in 0..CALLS {
            let f = &frames[i % frames.len()];
            let t0 = Instant::now();
            black_box(model.predict_frame(black_box(f))?);
            samples.push(t0.elapsed().as_nanos() as u64);
        }
        let (p50, p99, max) = quantiles_us(&mut samples);
        let what = format!(
            "{} ({} inputs, {} KiB)",
            model.name(),
            model.inputs(),
            std::fs::metadata(&model.spec().path).map_or(0, |m| m.len() / 1024)
        );
        println!("  {what:<58} {p50:>10.1} {p99:>9.1} {max:>9.1}");
    }

    // Whole replays: the models are asked at every buy or sell.
    let replay = |engine: &mut Engine| {
        let started = Instant::now();
        for t in trades {
            engine.on_trade(*t, &mut NoObserver);
        }
        let report = engine.finish(&mut NoObserver);
        (trades.len() as f64 / started.elapsed().as_secs_f64().max(1e-12) / 1e6, report)
    };
    let (native_rate, _) = replay(&mut Engine::new(&config.engine)?);
    let mut ml_engine = Engine::new(&config.engine)?.with_models(Box::new(ml.models.clone()));
    let (ml_rate, report) = replay(&mut ml_engine);
    println!(
        "  {:<58} {:>10.2} {:>9.2}",
        format!("replay with the models ({} buys/sells informed), M/s; x native", report.models.informed),
        ml_rate,
        ml_rate / native_rate.max(1e-9)
    );
    Ok(())
}
