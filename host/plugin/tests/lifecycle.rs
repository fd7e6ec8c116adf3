//! Loading, versions, describe(), snapshot/restore, policy switches.

mod common;

use std::time::Instant;

use common::*;
use tickhost_core::hooks::{FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::{Action, RegimeStrategies, StrategyConfig};
use tickhost_plugin::{Cadence, PluginError, RegimePlugins, SlotPolicy, StrategySlots, World};

fn slots(plugin: &str, policy: SlotPolicy) -> StrategySlots {
    let plugins = RegimePlugins { trend_up: Some(load(plugin)), ..Default::default() };
    StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, policy).expect("slots")
}

#[test]
fn a_good_plugin_loads_and_its_answer_is_used() {
    let p = load("good-counter");
    assert_eq!(p.world(), World::RegimeStrategy);
    assert_eq!(p.description().name, "good-counter");
    assert_eq!(p.description().inputs, vec!["v3_momentum_1".to_string()]);
    assert_eq!(p.description().cadence, Cadence::PerCandle);
    assert_eq!(p.wit_version().to_string(), "0.1.0");

    let mut s = slots("good-counter", SlotPolicy::default());
    let frame = frame_with_momentum(1.0);
    for i in 1..=3 {
        let c = candle(i);
        let sig = s.on_candle(&input(&c, &frame, Regime::TrendUp));
        assert_eq!(sig.reason, "good-counter");
        assert_eq!(sig.action, Action::Buy);
        assert_eq!(sig.expected_move, i as f64, "the plugin counts its calls");
        assert_eq!((sig.stop_points, sig.target_points), (5.0, 10.0));
        assert_eq!(sig.ts_ms, c.close_ms);
    }
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.calls, st.plugin_ok, st.fallbacks_total), (3, 3, 0));
    assert_eq!(st.plugin, "good-counter");
    assert!(st.latency.count == 3 && st.latency.p50_ns > 0);
    // Regimes without a plugin: the native strategies answer, counted as missing.
    let c = candle(4);
    let mut native = RegimeStrategies::new(&StrategyConfig::default());
    let frame = v3_frame();
    let expect = native.on_candle(&input(&c, &frame, Regime::Range));
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::Range)), expect);
    assert_eq!(s.metrics_for(Regime::Range).snapshot().fallbacks.missing, 1);
}

#[test]
fn an_older_minor_loads_and_another_major_is_refused_naming_both_versions() {
    let old = load("good-counter-v0");
    assert_eq!(old.wit_version().to_string(), "0.0.9");
    let mut s = slots("good-counter-v0", SlotPolicy::default());
    let c = candle(1);
    let frame = v3_frame();
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "good-counter");

    let e = load_err("hostile-wrong-major");
    assert!(matches!(e, PluginError::WitVersion { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("1.0.0") && msg.contains("0.1.0") && msg.contains("hostile-wrong-major"), "{msg}");
}

#[test]
fn a_missing_export_is_a_clear_load_error() {
    let e = load_err("hostile-missing-export");
    let msg = e.to_string();
    assert!(matches!(e, PluginError::MissingExport { .. }), "{msg}");
    assert!(msg.contains("tickhost:plugin/strategy") && msg.contains("regime-strategy"), "{msg}");
}

#[test]
fn a_loop_in_describe_is_a_clear_load_error_not_a_hang() {
    let t0 = Instant::now();
    let e = load_err("hostile-describe-loop");
    assert!(t0.elapsed().as_secs() < 10, "load took {:?}", t0.elapsed());
    let msg = e.to_string();
    assert!(matches!(e, PluginError::LoadTimeout { call: "describe", .. }), "{msg}");
    assert!(msg.contains("describe()") && msg.contains("hostile-describe-loop"), "{msg}");
}

#[test]
fn a_loop_in_restore_times_out_and_the_slot_keeps_answering() {
    let p = load("hostile-restore-loop");
    let mut inst = p.instantiate().expect("instance");
    let state = inst.snapshot().expect("snapshot");
    let t0 = Instant::now();
    let e = inst.restore(&state).expect_err("restore loops");
    assert!(t0.elapsed().as_secs() < 10);
    assert!(e.to_string().contains("restore() did not return"), "{e}");
    assert!(inst.is_live(), "re-created after the timeout");

    // In a slot: a trap-free plugin whose restore loops still answers.
    let mut s = slots("hostile-restore-loop", SlotPolicy::default());
    let frame = v3_frame();
    let c = candle(1);
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "ok");
    let inst = s.instance_mut(Regime::TrendUp).expect("instance");
    assert!(inst.restore(&0u64.to_le_bytes()).is_err());
    let c = candle(2);
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "ok");
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!(st.plugin_ok, 2);
}

#[test]
fn a_trapped_instance_is_recreated_with_its_last_snapshot() {
    let policy = SlotPolicy { snapshot_every: 1, ..SlotPolicy::default() };
    let mut s = slots("good-counter", policy);
    let frame = v3_frame();
    for i in 1..=3 {
        let c = candle(i);
        assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).expected_move, i as f64);
    }
    // Trap: the native strategy answers that very event.
    let c = trap_candle(4);
    let mut native = RegimeStrategies::new(&StrategyConfig::default());
    for i in 1..=3 {
        let c = candle(i);
        native.on_candle(&input(&c, &frame, Regime::TrendUp));
    }
    let expect = native.on_candle(&input(&c, &frame, Regime::TrendUp));
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)), expect);
    let inst = s.instance_mut(Regime::TrendUp).expect("instance");
    assert!(inst.last_error().is_some_and(|e| e.contains("unreachable")), "{:?}", inst.last_error());
    // The new instance continues from the snapshot (3 calls).
    let c = candle(5);
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).expected_move, 4.0);
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.fallbacks.trap, st.reinstantiations, st.restore_failures), (1, 1, 0));
    assert!(st.snapshots >= 3);
}

#[test]
fn snapshot_and_restore_on_demand_carry_state_across_instances() {
    let p = load("good-counter");
    let mut a = slots("good-counter", SlotPolicy { snapshot_every: 0, ..Default::default() });
    let frame = v3_frame();
    for i in 1..=5 {
        let c = candle(i);
        a.on_candle(&input(&c, &frame, Regime::TrendUp));
    }
    let state = a.instance_mut(Regime::TrendUp).expect("instance").snapshot().expect("snapshot");
    assert_eq!(state, 5u64.to_le_bytes().to_vec());
    let mut b = p.instantiate().expect("instance");
    b.restore(&state).expect("restore");
    assert_eq!(b.snapshot().expect("snapshot"), state);
    let e = b.restore(b"bad").expect_err("refused");
    assert!(e.to_string().contains("expected 8 bytes"), "{e}");
}

#[test]
fn force_fast_mode_never_calls_the_plugin() {
    let mut s = slots("good-counter", SlotPolicy { force_fast_mode: true, ..Default::default() });
    let frame = frame_with_momentum(1.0);
    let mut native = RegimeStrategies::new(&StrategyConfig::default());
    for i in 1..=4 {
        let c = candle(i);
        let expect = native.on_candle(&input(&c, &frame, Regime::TrendUp));
        assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)), expect);
    }
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.calls, st.plugin_ok, st.fallbacks.forced_native, st.latency.count), (4, 0, 4, 0));
    let inst = s.instance_mut(Regime::TrendUp).expect("instance");
    assert_eq!(inst.snapshot().expect("snapshot"), 0u64.to_le_bytes().to_vec(), "never called");
}

#[test]
fn without_fallback_on_error_a_failure_answers_hold() {
    let mut s = slots("hostile-trap", SlotPolicy { fallback_on_error: false, ..Default::default() });
    let frame = v3_frame();
    let c = candle(1);
    let sig = s.on_candle(&input(&c, &frame, Regime::TrendUp));
    assert_eq!(sig.action, Action::Hold);
    assert_eq!(sig.reason, "plugin failed (fallback_on_error off)");
    assert_eq!((sig.ts_ms, sig.regime), (c.close_ms, Regime::TrendUp));
    assert_eq!(s.metrics_for(Regime::TrendUp).snapshot().fallbacks.trap, 1);
}

#[test]
fn manifest_errors_name_the_file_and_what_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugin.toml");
    std::fs::write(&path, "name = \"x\"\nversion = \"1\"\nworld = \"regime-strategy\"\ncomponent = \"nope.wasm\"\n")
        .expect("write");
    let e = runtime().load(&path).expect_err("no component");
    let msg = e.to_string();
    assert!(msg.contains("nope.wasm") && msg.contains("build"), "{msg}");
    std::fs::write(&path, "name = \"x\"\nworld = \"regime-strategy\"\ncomponent = \"x.wasm\"\n").expect("write");
    let msg = runtime().load(&path).expect_err("no version").to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("version"), "{msg}");
}

#[test]
fn a_plugin_in_the_wrong_slot_is_refused() {
    let p = load("good-counter-features");
    let plugins = RegimePlugins { range: Some(p), ..Default::default() };
    let e = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, SlotPolicy::default())
        .expect_err("wrong world");
    assert!(e.to_string().contains("feature-extension"), "{e}");
}
