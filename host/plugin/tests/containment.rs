//! Every hostile fixture is contained: a clear load error or a counted
//! fallback with the right reason, the slot keeps answering natively on the
//! following events, and a neighbouring good slot is undisturbed.

mod common;

use common::*;
use tickhost_core::hooks::{FeatureExtensions, FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::{RegimeStrategies, StrategyConfig};
use tickhost_plugin::{FallbackReason, FeatureSlot, FeatureSlots, RegimePlugins, SlotPolicy, StrategySlots};

/// Runs `hostile` in trend_up next to good-counter in trend_down for a few
/// candles, alternating regimes, and checks both slots. Every strategy sees
/// every candle, so each plugin is called twice per round.
fn contained(hostile: &str, reason: FallbackReason) -> StrategySlots {
    let plugins =
        RegimePlugins { trend_up: Some(load(hostile)), trend_down: Some(load("good-counter")), ..Default::default() };
    // Tests run in parallel on few cores: a preempted call must not turn a
    // trap into a timeout. 100 x the 500 µs deadline still stops the loop.
    let policy = SlotPolicy { deadline_factor: 100.0, ..SlotPolicy::default() };
    let mut s = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, policy).expect("slots");
    let mut native = RegimeStrategies::new(&StrategyConfig::default());
    let frame = v3_frame();
    let events = 3;
    for i in 0..events {
        let c = candle(2 * i);
        let expect = native.on_candle(&input(&c, &frame, Regime::TrendUp));
        let got = s.on_candle(&input(&c, &frame, Regime::TrendUp));
        assert_eq!(got, expect, "{hostile}: the native strategy answers event {i}");
        let c = candle(2 * i + 1);
        native.on_candle(&input(&c, &frame, Regime::TrendDown));
        let good = s.on_candle(&input(&c, &frame, Regime::TrendDown));
        assert_eq!(good.reason, "good-counter", "{hostile}: neighbour answers");
        assert_eq!(good.expected_move, (2 * i + 2) as f64, "{hostile}: neighbour's state intact");
    }
    let calls = 2 * events as u64;
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!(st.calls, calls);
    assert_eq!(st.fallbacks.get(reason), calls, "{hostile}: {st:?}");
    assert_eq!(st.plugin_ok, 0);
    let good = s.metrics_for(Regime::TrendDown).snapshot();
    assert_eq!((good.plugin_ok, good.fallbacks_total), (calls, 0), "{hostile}: {good:?}");
    s
}

fn last_error(s: &mut StrategySlots) -> String {
    s.instance_mut(Regime::TrendUp).and_then(|i| i.last_error().map(str::to_string)).unwrap_or_default()
}

#[test]
fn infinite_loop_times_out() {
    let mut s = contained("hostile-loop", FallbackReason::Timeout);
    assert_eq!(s.metrics_for(Regime::TrendUp).snapshot().reinstantiations, 6);
    assert!(last_error(&mut s).contains("interrupt"), "{}", last_error(&mut s));
}

#[test]
fn trap_is_a_trap() {
    let mut s = contained("hostile-trap", FallbackReason::Trap);
    assert!(last_error(&mut s).contains("unreachable"), "{}", last_error(&mut s));
}

#[test]
fn memory_bomb_hits_the_cap() {
    let mut s = contained("hostile-membomb", FallbackReason::Trap);
    let e = last_error(&mut s);
    assert!(e.contains("memory") || e.contains("grow"), "{e}");
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let mut s = contained("hostile-recursion", FallbackReason::Trap);
    // A Rust guest keeps its stack in linear memory: overflowing it is an
    // out-of-bounds access; a wasm-stack overflow reads "call stack exhausted".
    let e = last_error(&mut s);
    assert!(e.contains("stack") || e.contains("out of bounds"), "{e}");
}

#[test]
fn nan_output_is_invalid() {
    let s = contained("hostile-nan", FallbackReason::InvalidOutput);
    assert_eq!(s.metrics_for(Regime::TrendUp).snapshot().reinstantiations, 0, "a bad value is not a trap");
}

#[test]
fn history_without_the_capability_traps_with_a_clear_message() {
    let mut s = contained("hostile-history", FallbackReason::Trap);
    let e = last_error(&mut s);
    assert!(e.contains("capability `history` not granted to plugin `hostile-history`"), "{e}");
}

#[test]
fn predict_without_the_capability_traps_with_a_clear_message() {
    let mut s = contained("hostile-predict", FallbackReason::Trap);
    let e = last_error(&mut s);
    assert!(e.contains("capability `predict` not granted to plugin `hostile-predict`"), "{e}");
}

#[test]
fn the_filesystem_is_not_there() {
    // Reading a file fails inside the plugin (no preopened dirs): the plugin
    // answers, and it never saw the file.
    let plugins = RegimePlugins { trend_up: Some(load("hostile-fs")), ..Default::default() };
    let mut s = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, SlotPolicy::default())
        .expect("slots");
    let frame = v3_frame();
    let c = candle(1);
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "fs: denied");
    let log = s.instance_mut(Regime::TrendUp).expect("instance").log().recent();
    assert!(log.iter().any(|l| l.contains("read failed as it should")), "{log:?}");
}

#[test]
fn log_flooding_is_capped_and_counted() {
    let plugins = RegimePlugins { trend_up: Some(load("hostile-flood")), ..Default::default() };
    let mut s = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, SlotPolicy::default())
        .expect("slots");
    let frame = v3_frame();
    for i in 0..2 {
        let c = candle(i);
        assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "flooded");
    }
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!(st.plugin_ok, 2);
    assert_eq!(st.log_lines, 2 * u64::from(tickhost_plugin::log::LINES_PER_CALL));
    assert_eq!(st.log_lines_dropped, 2 * 10_000 - st.log_lines);
}

#[test]
fn wrong_output_length_is_invalid_and_the_neighbour_extension_is_undisturbed() {
    let slots =
        vec![FeatureSlot::plugin(load("hostile-wrong-len")), FeatureSlot::plugin(load("good-counter-features"))];
    let mut f = FeatureSlots::new(slots, SlotPolicy::default()).expect("slots");
    assert_eq!(f.output_names(), vec!["hostile_a", "hostile_b", "gc_calls", "gc_price"]);
    let frame = v3_frame();
    let mut out = vec![f64::NAN; 4];
    for i in 1..=3 {
        let t = trade(i);
        f.on_trade(&t, &frame);
        f.on_candle(&candle(i), &frame, &mut out);
        assert_eq!(out, vec![0.0, 0.0, i as f64, t.price.as_f64()], "no native twin: zeros");
    }
    let m = f.metrics();
    let bad = m[0].snapshot();
    assert_eq!((bad.calls, bad.fallbacks.invalid_output), (3, 3));
    let good = m[1].snapshot();
    assert_eq!((good.calls, good.plugin_ok), (3, 3));
}

#[test]
fn schema_is_resolved_once_and_later_extensions_read_earlier_outputs() {
    // good-counter-features needs v3_momentum_1 only; a missing input name
    // is a clear construction error (tested through a strategy slot).
    let schema = FeatureSchema::v3();
    assert!(schema.index_of("v3_momentum_1").is_some());
    let plugins = RegimePlugins { trend_up: Some(load("good-counter")), ..Default::default() };
    let mut empty = FeatureSchema::v3();
    empty.extend(&["x".to_string()]).expect("extend");
    assert!(StrategySlots::new(&StrategyConfig::default(), &empty, plugins, SlotPolicy::default()).is_ok());
}

#[test]
fn fuel_stops_a_loop_before_the_deadline() {
    // Deterministic sandbox runs meter fuel: the loop runs out of fuel long
    // before its (10 s) deadline.
    let wasm = manifest("hostile-loop").with_file_name("hostile-loop.wasm");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugin.toml");
    let text = format!(
        "name = \"fuel-loop\"\nversion = \"0.1.0\"\nworld = \"regime-strategy\"\ncomponent = {:?}\n[limits]\ndeadline_us = 10000000\nfuel = 100000\n",
        wasm.display().to_string()
    );
    std::fs::write(&path, text).expect("write");
    let p = runtime().load(&path).expect("load");
    let plugins = RegimePlugins { trend_up: Some(p), ..Default::default() };
    let mut s = StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, SlotPolicy::default())
        .expect("slots");
    let frame = v3_frame();
    let t0 = std::time::Instant::now();
    let c = candle(1);
    s.on_candle(&input(&c, &frame, Regime::TrendUp));
    assert!(t0.elapsed().as_secs() < 5);
    assert_eq!(s.metrics_for(Regime::TrendUp).snapshot().fallbacks.timeout, 1);
    assert!(last_error(&mut s).contains("fuel"), "{}", last_error(&mut s));
}
