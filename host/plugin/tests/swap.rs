//! Live swap under load: a full-speed replay of over a million trades while
//! a per-trade plugin is swapped 50 times, good versions alternating with
//! broken ones. Every event is processed exactly once (the plugin's own
//! counter, handed over at each swap, equals the slot's calls), every broken
//! candidate is refused before it reaches the slot, and each swap's engine
//! pause is recorded.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use common::*;
use tickhost_core::engine::{Engine, EngineConfig, EngineObserver, Hooks};
use tickhost_core::regime::RegimeReading;
use tickhost_core::sim::{SessionGenerator, SessionSpec, weekdays_from};
use tickhost_core::{Candle, Trade};
use tickhost_plugin::{FeatureSlot, FeatureSlots, Mode, PluginManager, SlotPolicy};

const SLOT: &str = "feature.good-counter-features";
const MIN_TRADES: u64 = 1_000_000;

/// The value of `gc_calls` (the plugin's count) at each candle close.
struct Counter {
    index: usize,
    last: f64,
}

impl EngineObserver for Counter {
    fn on_candle(&mut self, _candle: &Candle, frame: &[f64], _regime: &RegimeReading) {
        self.last = frame[self.index];
    }
}

fn garbage_plugin(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("garbage.wasm"), b"\0asm\x0d\0\x01\0 this is not a component").expect("write");
    let manifest = dir.join("plugin.toml");
    std::fs::write(
        &manifest,
        "name = \"garbage\"\nversion = \"0.0.1\"\nworld = \"feature-extension\"\ncomponent = \"garbage.wasm\"\n\
         [capabilities]\nlog = true\n[limits]\ndeadline_us = 1000\nmemory_mib = 16\n",
    )
    .expect("write");
    manifest
}

/// A generated day after day, until told to stop (and at least MIN_TRADES).
fn replay(mut engine: Engine, mut counter: Counter, stop: &AtomicBool, processed: &AtomicU64) -> (u64, f64, u64) {
    let mut fed = 0u64;
    for (i, (y, m, d)) in weekdays_from(2024, 1, 8, 10_000).into_iter().enumerate() {
        let mut spec = SessionSpec::wdo(y, m, d, 100 + i as u64);
        spec.trades_target = 100_000;
        for t in SessionGenerator::new(spec) {
            let t: Trade = t;
            engine.on_trade(t, &mut counter);
            fed += 1;
            processed.store(fed, Relaxed);
        }
        if stop.load(Relaxed) && fed >= MIN_TRADES {
            break;
        }
    }
    let report = engine.finish(&mut counter);
    (fed, counter.last, report.ingest.accepted)
}

#[test]
fn fifty_swaps_under_a_full_speed_replay_lose_and_repeat_no_event_and_refuse_every_broken_version() {
    let policy = SlotPolicy { deadline_factor: 20.0, ..SlotPolicy::default() };
    let slots =
        FeatureSlots::new(vec![FeatureSlot::plugin(load("good-counter-features"))], policy).expect("feature slots");
    let manager = PluginManager::new(runtime().clone()).expect("manager");
    manager.register(slots.controls());
    let config = EngineConfig::default();
    let mut hooks = Hooks::native(&config);
    hooks.extensions = Box::new(slots);
    let engine = Engine::with_hooks(&config, hooks).expect("engine");
    let counter = Counter { index: engine.schema().index_of("gc_calls").expect("gc_calls in the frame"), last: 0.0 };

    let stop = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicU64::new(0));
    let engine_thread = {
        let (stop, processed) = (stop.clone(), processed.clone());
        std::thread::spawn(move || replay(engine, counter, &stop, &processed))
    };
    while processed.load(Relaxed) == 0 {
        std::thread::yield_now();
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = garbage_plugin(dir.path());
    // (candidate, what its refusal must mention)
    let broken: Vec<(PathBuf, &str)> = vec![
        (manifest("good-counter-features-smoke-trap"), "smoke replay"),
        (manifest("hostile-wrong-major"), "tickhost:plugin@1"),
        (manifest("hostile-missing-export"), "regime-strategy"),
        (manifest("microstructure"), "outputs"),
        (manifest("hostile-wrong-len"), "outputs"),
        (garbage.clone(), "not a valid WebAssembly component"),
    ];
    let python = manifest("good-counter-features-python");
    let mut good_swaps = 0;
    let mut python_progress = None;
    for i in 0..50 {
        if i % 2 == 0 {
            let (candidate, version) = if i == 24 {
                (python.clone(), "0.3.0-python")
            } else if i % 4 == 0 {
                (manifest("good-counter-features-v2"), "0.2.0")
            } else {
                (manifest("good-counter-features"), "0.1.0")
            };
            let before = processed.load(Relaxed);
            let t = manager
                .deploy(SLOT, &candidate, Mode::Active)
                .unwrap_or_else(|e| panic!("swap {i} to {}: {e}", candidate.display()));
            if i == 24 {
                python_progress = Some(processed.load(Relaxed) - before);
            }
            assert!(t.state_handed_over, "swap {i}: the count must be handed over: {t:?}");
            assert_eq!(manager.status(SLOT).expect("status").active_version, version, "swap {i}");
            good_swaps += 1;
        } else {
            let (candidate, why) = &broken[(i / 2) % broken.len()];
            let active_before = manager.status(SLOT).expect("status").active_version;
            let err = manager
                .deploy(SLOT, candidate, Mode::Active)
                .expect_err(&format!("swap {i}: {} must be refused", candidate.display()))
                .to_string();
            assert!(err.contains(why), "swap {i}: refusal of {} should mention {why:?}: {err}", candidate.display());
            assert_eq!(manager.status(SLOT).expect("status").active_version, active_before, "swap {i}: unchanged");
        }
    }
    stop.store(true, Relaxed);
    let (fed, count, accepted) = engine_thread.join().expect("engine thread");

    let status = manager.status(SLOT).expect("status");
    assert!(fed >= MIN_TRADES, "replayed {fed} trades");
    assert_eq!(status.stats.fallbacks_total, 0, "{:?}", status.stats);
    // Exactly once: every admitted trade reached the slot once, and the
    // plugin's own count, carried across 25 swaps, equals the slot's calls.
    assert_eq!(status.stats.calls, accepted, "every admitted trade reached the slot");
    assert_eq!(status.stats.plugin_ok, status.stats.calls);
    assert_eq!(count as u64, status.stats.calls, "the plugin's count survived every swap");
    assert_eq!(status.rollout.deploys, good_swaps);
    assert_eq!(status.rollout.rejected, 25);
    assert_eq!(status.pauses_ns.len(), good_swaps as usize, "each swap's pause is recorded");
    assert!(status.pauses_ns.iter().all(|&p| p > 0));
    let progress = python_progress.expect("the Python swap ran");
    assert!(progress > 0, "the engine kept processing while the Python guest compiled");

    let mut pauses = status.pauses_ns.clone();
    pauses.sort_unstable();
    eprintln!(
        "swap: {fed} trades, {good_swaps} swaps, 25 refused; engine pause p50 {} µs, max {} µs; {progress} trades processed during the Python deploy",
        pauses[pauses.len() / 2] / 1000,
        pauses[pauses.len() - 1] / 1000
    );
}
