//! The circuit breaker, on event time.

mod common;

use common::*;
use tickhost_core::hooks::{FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::StrategyConfig;
use tickhost_plugin::{BreakerConfig, RegimePlugins, SlotPolicy, StrategySlots};

fn slots(plugin: &str, cooldown_ms: i64) -> StrategySlots {
    let policy = SlotPolicy { breaker: BreakerConfig { cooldown_ms, ..Default::default() }, ..Default::default() };
    let plugins = RegimePlugins { trend_up: Some(load(plugin)), ..Default::default() };
    StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, policy).expect("slots")
}

#[test]
fn opens_after_five_failures_stops_calling_and_probes_after_the_cooldown() {
    // Candles are a minute apart; the cool-down is 3 minutes of event time.
    let mut s = slots("good-counter", 3 * MIN);
    let frame = v3_frame();
    let m = s.metrics_for(Regime::TrendUp);
    for i in 0..5 {
        let c = trap_candle(i);
        s.on_candle(&input(&c, &frame, Regime::TrendUp));
    }
    let st = m.snapshot();
    assert_eq!((st.fallbacks.trap, st.circuit_opens), (5, 1));
    assert!(st.circuit_open);
    // Open: the plugin is not called (good candles would succeed).
    for i in 5..7 {
        let c = candle(i);
        assert_ne!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "good-counter");
    }
    let st = m.snapshot();
    assert_eq!((st.fallbacks.circuit_open, st.plugin_ok), (2, 0));
    // Cool-down over (opened at candle 4's close, 3 minutes later): probe,
    // which fails (trap candle) and re-opens.
    let c = trap_candle(7);
    s.on_candle(&input(&c, &frame, Regime::TrendUp));
    let st = m.snapshot();
    assert_eq!((st.fallbacks.trap, st.circuit_opens), (6, 1));
    assert!(st.circuit_open);
    let c = candle(8);
    assert_ne!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "good-counter");
    assert_eq!(m.snapshot().fallbacks.circuit_open, 3);
    // Another cool-down later a good probe closes it.
    let c = candle(10);
    let sig = s.on_candle(&input(&c, &frame, Regime::TrendUp));
    assert_eq!(sig.reason, "good-counter");
    let st = m.snapshot();
    assert!(!st.circuit_open);
    assert_eq!(st.plugin_ok, 1);
    let c = candle(11);
    assert_eq!(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason, "good-counter");
}

#[test]
fn replaying_the_same_events_opens_and_closes_at_the_same_events() {
    let run = || {
        let mut s = slots("good-counter", 2 * MIN);
        let frame = v3_frame();
        let mut answers = Vec::new();
        for i in 0..20 {
            let c = if i % 4 != 3 && i < 12 { trap_candle(i) } else { candle(i) };
            answers.push(s.on_candle(&input(&c, &frame, Regime::TrendUp)).reason);
        }
        (answers, s.metrics_for(Regime::TrendUp).snapshot().fallbacks)
    };
    assert_eq!(run(), run());
}

#[test]
fn a_plugin_that_always_times_out_is_stopped_quickly() {
    let mut s = slots("hostile-loop", 60 * MIN);
    let frame = v3_frame();
    let t0 = std::time::Instant::now();
    for i in 0..50 {
        let c = candle(i);
        s.on_candle(&input(&c, &frame, Regime::TrendUp));
    }
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.fallbacks.timeout, st.fallbacks.circuit_open), (5, 45));
    assert!(t0.elapsed().as_secs() < 5, "{:?}", t0.elapsed());
}
