//! Rollout of a strategy slot on a running engine thread: shadow, canary,
//! promote, rollback, comparison with the native strategy, and automatic
//! rollback of a failing candidate.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use tickhost_core::hooks::{FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::StrategyConfig;
use tickhost_plugin::{Mode, PluginManager, RegimePlugins, SlotPolicy, SlotStatus, StrategySlots};

const SLOT: &str = "strategy.trend_up";

/// Feeds trend-up candles to the slots on its own thread (the engine
/// thread), until stopped; `trap` switches to candles good-counter traps on.
struct Engine {
    stop: Arc<AtomicBool>,
    trap: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    handle: Option<JoinHandle<StrategySlots>>,
}

impl Engine {
    fn start(mut slots: StrategySlots) -> Engine {
        let (stop, trap, events) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let handle = {
            let (stop, trap, events) = (stop.clone(), trap.clone(), events.clone());
            std::thread::spawn(move || {
                let frame = frame_with_momentum(1.0);
                let mut i = 0;
                while !stop.load(Relaxed) {
                    i += 1;
                    let c = if trap.load(Relaxed) { trap_candle(i) } else { candle(i) };
                    slots.on_candle(&input(&c, &frame, Regime::TrendUp));
                    events.fetch_add(1, Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
                slots
            })
        };
        Engine { stop, trap, events, handle: Some(handle) }
    }

    fn finish(mut self) -> (StrategySlots, u64) {
        self.stop.store(true, Relaxed);
        let slots = self.handle.take().expect("running").join().expect("engine thread");
        (slots, self.events.load(Relaxed))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn setup(trend_up: Option<&str>) -> (Arc<PluginManager>, Engine) {
    let plugins = RegimePlugins { trend_up: trend_up.map(load), ..Default::default() };
    let policy = SlotPolicy { deadline_factor: 20.0, ..SlotPolicy::default() };
    let slots = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, policy).expect("slots");
    let manager = PluginManager::new(runtime().clone()).expect("manager");
    manager.register(slots.controls());
    (manager, Engine::start(slots))
}

/// Polls the slot's status until `done` holds (the engine thread is busy
/// elsewhere; this waits for events, it measures nothing).
fn wait_for(manager: &PluginManager, what: &str, done: impl Fn(&SlotStatus) -> bool) -> SlotStatus {
    let started = Instant::now();
    loop {
        let status = manager.status(SLOT).expect("status");
        if done(&status) {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "gave up waiting for {what}: {status:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count_in(slots: &mut StrategySlots) -> u64 {
    let state = slots.instance_mut(Regime::TrendUp).expect("plugin").snapshot().expect("snapshot");
    u64::from_le_bytes(state.as_slice().try_into().expect("8 bytes"))
}

#[test]
fn shadow_then_canary_then_promote_then_rollback_keeps_the_count_and_counts_each_transition() {
    let (manager, engine) = setup(Some("good-counter"));
    let t = manager.deploy(SLOT, &manifest("good-counter-v0"), Mode::Shadow).expect("shadow");
    assert_eq!((t.action.as_str(), t.active.as_str()), ("shadow", "good-counter"));
    assert_eq!(t.candidate.as_deref(), Some("good-counter-v0"));
    assert!(t.state_handed_over, "the shadow starts from the active plugin's state");

    let st = wait_for(&manager, "30 comparisons", |s| s.candidate.as_ref().is_some_and(|c| c.compared >= 30));
    let c = st.candidate.as_ref().expect("candidate");
    assert_eq!(c.mode, Mode::Shadow);
    assert_eq!((c.agreement_rate, c.divergences, c.acted, c.candidate_failures), (1.0, 0, 0, 0), "{c:#?}");
    assert!(c.stats.latency.count >= 30, "the shadow's latency is recorded: {c:#?}");

    manager.set_canary(SLOT, 50).expect("canary");
    let st = wait_for(&manager, "the canary acting", |s| s.candidate.as_ref().is_some_and(|c| c.acted >= 10));
    let c = st.candidate.as_ref().expect("candidate");
    assert_eq!(c.mode, Mode::Canary(50));
    assert!(c.acted < c.compared, "a 50% canary acts on part of the events: {c:#?}");

    let t = manager.promote(SLOT).expect("promote");
    assert_eq!((t.action.as_str(), t.active.as_str(), t.candidate.as_deref()), ("promote", "good-counter-v0", None));
    let st = manager.status(SLOT).expect("status");
    assert_eq!(st.previous.as_deref(), Some("good-counter"), "the previous version stays warm");

    let t = manager.rollback(SLOT).expect("rollback");
    assert_eq!((t.action.as_str(), t.active.as_str()), ("rollback", "good-counter"));
    assert!(t.state_handed_over);
    let err = manager.promote(SLOT).expect_err("nothing to promote").to_string();
    assert!(err.contains("no candidate"), "{err}");

    let (mut slots, events) = engine.finish();
    // One count per event, carried through shadow, promotion and rollback.
    assert_eq!(count_in(&mut slots), events);
    let st = manager.status(SLOT).expect("status");
    let r = &st.rollout;
    assert_eq!((r.shadows, r.canaries, r.promotions, r.rollbacks, r.auto_rollbacks), (1, 1, 1, 1, 0), "{r:?}");
    assert_eq!(r.rejected, 1, "the refused promotion is counted");
    assert_eq!(st.pauses_ns.len(), 4);
    assert_eq!(st.stats.fallbacks_total, 0, "{:?}", st.stats);
}

#[test]
fn a_shadow_in_an_empty_slot_is_compared_with_the_native_strategy_and_never_acted_on() {
    let (manager, engine) = setup(None);
    manager.deploy(SLOT, &manifest("good-counter"), Mode::Shadow).expect("shadow");
    let st = wait_for(&manager, "20 comparisons", |s| s.candidate.as_ref().is_some_and(|c| c.compared >= 20));
    let c = st.candidate.as_ref().expect("candidate");
    // good-counter buys on positive momentum; the native trend strategy holds
    // on a frame with nothing else in it.
    assert_eq!(c.agreed, 0, "{c:#?}");
    assert!(c.agreement_rate < 0.01);
    assert!(!c.divergence_examples.is_empty() && c.divergence_examples[0].contains("native"), "{c:#?}");
    assert_eq!(c.acted, 0, "a shadow is never acted on");
    assert_eq!(st.active, "native");
    drop(engine.finish());
}

#[test]
fn a_failing_candidate_is_rolled_back_on_its_own() {
    let (manager, engine) = setup(Some("good-counter"));
    manager.deploy(SLOT, &manifest("good-counter-v0"), Mode::Canary(10)).expect("canary");
    wait_for(&manager, "the canary running", |s| s.candidate.as_ref().is_some_and(|c| c.compared >= 5));
    engine.trap.store(true, Relaxed);
    let st = wait_for(&manager, "the automatic rollback", |s| s.rollout.auto_rollbacks == 1);
    assert!(st.candidate.is_none());
    let t = st.last_transition.as_ref().expect("transition");
    assert_eq!(t.action, "auto_rollback");
    assert!(t.note.contains("error rate"), "{t:?}");
    assert_eq!(st.active, "good-counter", "the active plugin stays");
    drop(engine.finish());
}

#[test]
fn operator_errors_name_the_slot_and_what_exists() {
    let (manager, engine) = setup(None);
    let err = manager.rollback("strategy.sideways").expect_err("unknown slot").to_string();
    assert!(err.contains("strategy.sideways") && err.contains("strategy.trend_up"), "{err}");
    let err =
        manager.deploy(SLOT, &manifest("good-counter-features"), Mode::Active).expect_err("wrong world").to_string();
    assert!(err.contains("regime-strategy") && err.contains("feature-extension"), "{err}");
    let err = manager.rollback(SLOT).expect_err("nothing to roll back").to_string();
    assert!(err.contains("nothing to roll back"), "{err}");
    drop(engine.finish());
}
