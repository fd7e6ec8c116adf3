//! ProfitDLL figures of `tickhost bench`, measured through the simulator
//! library loaded for real (see `tickhost_feed::profit_dll::measure`).

use std::path::Path;

use anyhow::Result;
use tickhost_feed::profit_dll::measure::measure;

use crate::config::Config;

/// Prints the figures, or why they were skipped.
pub fn run(library: &Path, config: &Config) -> Result<()> {
    if !library.exists() {
        println!("\n  ProfitDLL: skipped ({} not built: cargo build --release)", library.display());
        return Ok(());
    }
    let f = measure(library, config.engine.utc_offset_minutes, &config.engine, 400_000)?;
    println!();
    println!("  {:<58} {:>14}", "ProfitDLL (simulator library, loaded with libloading)", "result");
    println!(
        "  {:<58} {:>11.2} M/s",
        format!("callbacks -> ring -> engine, sustained ({} trades)", f.storm_trades),
        f.callbacks_per_s / 1e6
    );
    println!(
        "  {:<58} {:>11} ns",
        format!("callback -> engine latency p50 ({} trades at {:.0}/s)", f.latency_samples, f.offered_per_s),
        f.p50_ns
    );
    println!("  {:<58} {:>11} ns", "callback -> engine latency p99", f.p99_ns);
    println!("  {:<58} {:>11} ns", "callback -> engine latency p99.9", f.p999_ns);
    if f.spilled > 0 {
        println!("  (the storm overflowed the ring: {} events went through the spill queue, none lost)", f.spilled);
    }
    Ok(())
}
