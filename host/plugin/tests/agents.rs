//! Agent slots: plugin votes, native twins, the core coordinator.

mod common;

use common::*;
use tickhost_core::agents::{OrderFlowAgent, OrderFlowConfig};
use tickhost_core::hooks::{Agents, FeatureSchema};
use tickhost_core::strategy::Action;
use tickhost_plugin::{AgentSlot, AgentSlots, SlotPolicy};

#[test]
fn plugin_votes_and_the_native_twin_answers_a_trap() {
    let agents = vec![AgentSlot {
        plugin: Some(load("good-counter-agent")),
        native: Some(Box::new(OrderFlowAgent::new(OrderFlowConfig::default()))),
        weight: 1.0,
    }];
    let mut a = AgentSlots::new(agents, 0.3, &FeatureSchema::v3(), SlotPolicy::default()).expect("agents");
    let frame = v3_frame();
    let t = trade(1);
    a.on_trade(&t, &frame);
    assert_eq!(a.last_trade_vote(0), None, "per-candle agent: not called per trade");
    let c = candle(1); // close > open: the plugin votes buy
    let cons = a.on_candle(&c, &frame);
    assert_eq!(cons.action, Action::Buy);
    assert!((cons.confidence - 0.9).abs() < 1e-12);
    // Trap: the native order-flow agent (flat frame: hold) votes instead.
    let cons = a.on_candle(&trap_candle(2), &frame);
    assert_eq!(cons.action, Action::Hold);
    assert_eq!(a.last_votes().len(), 1);
    let st = a.metrics()[0].snapshot();
    assert_eq!((st.calls, st.plugin_ok, st.fallbacks.trap, st.reinstantiations), (2, 1, 1, 1));
}

#[test]
fn from_plugins_weighs_the_votes_and_force_fast_mode_leaves_no_vote() {
    let mut a = AgentSlots::from_plugins(
        vec![(load("good-counter-agent"), 0.6), (load("good-counter-agent"), 0.4)],
        0.3,
        &FeatureSchema::v3(),
        SlotPolicy::default(),
    )
    .expect("agents");
    let frame = v3_frame();
    let down = tickhost_core::Candle { close: 4000.0, ..candle(1) };
    assert_eq!(a.on_candle(&down, &frame).action, Action::Sell);
    assert_eq!(a.last_votes().iter().map(|v| v.weight).collect::<Vec<_>>(), vec![0.6, 0.4]);

    let mut fast = AgentSlots::from_plugins(
        vec![(load("good-counter-agent"), 1.0)],
        0.3,
        &FeatureSchema::v3(),
        SlotPolicy { force_fast_mode: true, ..Default::default() },
    )
    .expect("agents");
    assert_eq!(fast.on_candle(&candle(1), &frame).action, Action::Hold);
    assert!(fast.last_votes().is_empty(), "no native twin: no vote");
    assert_eq!(fast.metrics()[0].snapshot().fallbacks.forced_native, 1);
}
