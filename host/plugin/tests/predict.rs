//! The `predict` capability inside the host: a plugin granted it reaches the
//! runtime's `ModelHost` (here a fixed two-class "model", since this crate
//! has no ONNX Runtime; the binary's tests run the real one), gets its
//! answer inside the event call, and the slot counts the calls. Without a
//! host, or over a limit, the guest receives an error, not a trap.

mod common;

use std::sync::Arc;

use common::*;
use tickhost_core::hooks::{FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::{Action, StrategyConfig};
use tickhost_plugin::{ModelHost, PluginRuntime, PredictStats, RegimePlugins, SlotPolicy, StrategySlots};

/// Answers `trend_up` with [1 - p, p], p = 0.8, checking the row length.
#[derive(Debug)]
struct Fixed;

impl ModelHost for Fixed {
    fn predict(&self, model: &str, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), String> {
        if model != "trend_up" {
            return Err(format!("no model `{model}`"));
        }
        if inputs.len() != 20 {
            return Err(format!("model `{model}` takes 20 inputs, got {}", inputs.len()));
        }
        out.clear();
        out.extend([0.2, 0.8]);
        Ok(())
    }
}

fn slots(runtime: &PluginRuntime, plugin: &str) -> StrategySlots {
    let loaded = runtime.load(&manifest(plugin)).unwrap_or_else(|e| panic!("load {plugin}: {e}"));
    let plugins = RegimePlugins { trend_up: Some(loaded), ..Default::default() };
    StrategySlots::new(&StrategyConfig::default(), &FeatureSchema::v3(), plugins, SlotPolicy::default()).expect("slots")
}

fn run(s: &mut StrategySlots, events: i64) -> Vec<tickhost_core::strategy::Signal> {
    let frame = v3_frame();
    (0..events).map(|i| s.on_candle(&input(&candle(i), &frame, Regime::TrendUp))).collect()
}

#[test]
fn a_granted_plugin_gets_the_hosts_answer_within_the_call_and_it_is_counted() {
    let runtime = PluginRuntime::new().expect("runtime").with_models(Arc::new(Fixed));
    let mut s = slots(&runtime, "predictor");
    for signal in run(&mut s, 3) {
        assert_eq!((signal.action, signal.probability, signal.reason), (Action::Buy, 0.8, "p_up > 0.6"));
    }
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.calls, st.plugin_ok, st.fallbacks_total), (3, 3, 0), "{st:?}");
    assert_eq!(st.predict, PredictStats { calls: 3, refused: 0, errors: 0 });
}

#[test]
fn limits_and_a_missing_host_are_errors_to_the_guest_not_traps() {
    let with_models = PluginRuntime::new().expect("runtime").with_models(Arc::new(Fixed));
    let mut s = slots(&with_models, "predictor-burst");
    assert!(run(&mut s, 2).iter().all(|sig| sig.action == Action::Hold && sig.reason == "predict refused"));
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!(st.fallbacks_total, 0, "{st:?}");
    assert_eq!(st.predict, PredictStats { calls: 8, refused: 2, errors: 0 }, "4 allowed per event, the 5th refused");

    let mut s = slots(&with_models, "predictor-wide");
    assert!(run(&mut s, 2).iter().all(|sig| sig.reason == "predict refused"));
    assert_eq!(s.metrics_for(Regime::TrendUp).snapshot().predict, PredictStats { calls: 0, refused: 2, errors: 0 });

    // The shared test runtime has no models: the plugin loads and gets an
    // error per call.
    let mut s = slots(runtime(), "predictor");
    assert!(run(&mut s, 2).iter().all(|sig| sig.reason == "predict failed"));
    let st = s.metrics_for(Regime::TrendUp).snapshot();
    assert_eq!((st.plugin_ok, st.predict.errors), (2, 2), "{st:?}");
}
