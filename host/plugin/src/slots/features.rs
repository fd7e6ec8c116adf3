//! Feature extensions: each a plugin (optional) with a native twin (optional;
//! zeros when absent). Their outputs join the frame after the v3 features.

use std::sync::Arc;

use tickhost_core::hooks::{FeatureExtensions, FeatureSchema};
use tickhost_core::market::{Candle, Trade};

use super::{Answer, Event, PluginSlot, SlotPolicy};
use crate::abi::{WCandle, WTrade};
use crate::error::PluginError;
use crate::instance::{PluginInstance, WorldFuncs};
use crate::manifest::World;
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::rollout::SlotControl;
use crate::runtime::{Cadence, LoadedPlugin};

/// What goes in one feature-extension slot.
#[derive(Debug, Default)]
pub struct FeatureSlot {
    pub plugin: Option<LoadedPlugin>,
    /// Answers when the plugin cannot (and always runs, to keep its state).
    /// `None`: zeros.
    pub native: Option<Box<dyn FeatureExtensions + Send>>,
}

impl FeatureSlot {
    pub fn plugin(plugin: LoadedPlugin) -> Self {
        Self { plugin: Some(plugin), native: None }
    }

    pub fn native(native: Box<dyn FeatureExtensions + Send>) -> Self {
        Self { plugin: None, native: Some(native) }
    }

    pub fn with_native(mut self, native: Box<dyn FeatureExtensions + Send>) -> Self {
        self.native = Some(native);
        self
    }
}

#[derive(Debug)]
struct State {
    slot: PluginSlot,
    native: Option<Box<dyn FeatureExtensions + Send>>,
    cadence: Cadence,
    /// Range of this slot's outputs within the extension outputs.
    offset: usize,
    len: usize,
    native_out: Vec<f64>,
    /// Per-trade plugins: the outputs of the last trade, and who answers
    /// with them at the close.
    latest: Vec<f64>,
    latest_answer: Answer,
}

/// All feature-extension slots, in frame order.
#[derive(Debug)]
pub struct FeatureSlots {
    slots: Vec<State>,
    names: Vec<String>,
    v3_len: usize,
    policy: SlotPolicy,
}

/// A plugin's values, if there are `len` of them and all finite.
fn valid(values: Vec<f64>, len: usize) -> Result<Vec<f64>, FallbackReason> {
    if values.len() != len || !values.iter().all(|v| v.is_finite()) {
        return Err(FallbackReason::InvalidOutput);
    }
    Ok(values)
}

/// Two versions agree when every value matches to 1e-9 (relative).
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0))
}

impl FeatureSlots {
    /// Resolves each plugin's inputs against the v3 features and the
    /// outputs of the slots before it, once.
    pub fn new(slots: Vec<FeatureSlot>, policy: SlotPolicy) -> Result<FeatureSlots, PluginError> {
        let mut schema = FeatureSchema::v3();
        let v3_len = schema.len();
        let mut states = Vec::with_capacity(slots.len());
        let mut names = Vec::new();
        for (k, spec) in slots.into_iter().enumerate() {
            let label = spec.plugin.as_ref().map_or_else(|| format!("native{k}"), |p| p.name().to_string());
            let slot_name = format!("feature.{label}");
            let outputs = match (&spec.plugin, &spec.native) {
                (Some(p), native) => {
                    let outs = p.description().outputs.clone();
                    if let Some(n) = native {
                        let theirs = n.output_names();
                        if theirs != outs {
                            return Err(PluginError::Slot {
                                plugin: p.name().to_string(),
                                slot: slot_name,
                                message: format!(
                                    "the plugin's outputs {outs:?} differ from its native twin's {theirs:?}; they must agree to answer for each other"
                                ),
                            });
                        }
                    }
                    outs
                }
                (None, Some(n)) => n.output_names(),
                (None, None) => Vec::new(),
            };
            let cadence = spec.plugin.as_ref().map_or(Cadence::PerCandle, |p| p.description().cadence);
            let slot = PluginSlot::new(
                &slot_name,
                spec.plugin,
                World::FeatureExtension,
                &schema,
                &policy,
                outputs.clone(),
                Some(cadence),
            )?;
            schema.extend(&outputs).map_err(|e| PluginError::Slot {
                plugin: label.clone(),
                slot: slot_name.clone(),
                message: e.to_string(),
            })?;
            let len = outputs.len();
            states.push(State {
                slot,
                native: spec.native,
                cadence,
                offset: names.len(),
                len,
                native_out: vec![0.0; len],
                latest: vec![0.0; len],
                latest_answer: Answer::Native,
            });
            names.extend(outputs);
        }
        Ok(FeatureSlots { slots: states, names, v3_len, policy })
    }

    pub fn metrics(&self) -> Vec<Arc<SlotMetrics>> {
        self.slots.iter().map(|s| s.slot.metrics.clone()).collect()
    }

    /// The slots' control handles, for live rollout.
    pub fn controls(&self) -> Vec<Arc<SlotControl>> {
        self.slots.iter().map(|s| s.slot.control()).collect()
    }

    /// The plugin instance of slot `i` (snapshot/restore for swaps).
    pub fn instance_mut(&mut self, i: usize) -> Option<&mut PluginInstance> {
        self.slots.get_mut(i).and_then(|s| s.slot.instance.as_mut())
    }
}

impl FeatureExtensions for FeatureSlots {
    fn output_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn on_trade(&mut self, trade: &Trade, frame: &[f64]) {
        let policy = &self.policy;
        for s in &mut self.slots {
            if let Some(n) = s.native.as_mut() {
                n.on_trade(trade, frame);
            }
            s.slot.poll();
            if s.cadence != Cadence::PerTrade || !s.slot.has_plugin() {
                continue;
            }
            let now = trade.ts_ms;
            let wt = WTrade::from(trade);
            let len = s.len;
            let outcome = s.slot.invoke(
                policy,
                now,
                Event::Trade(wt),
                |j| frame.get(j).copied().unwrap_or(0.0),
                |store, funcs, inputs| match funcs {
                    WorldFuncs::Features { on_trade, .. } => on_trade.call(store, (wt, inputs)),
                    _ => Err(wasmtime::Error::msg("not a feature extension")),
                },
                |(out,)| valid(out, len),
                |a, b| same(a, b),
                |_| None,
            );
            let outcome = outcome.map(|values| s.latest.copy_from_slice(&values));
            s.latest_answer = s.slot.record(policy, now, outcome);
        }
    }

    fn on_candle(&mut self, candle: &Candle, v3: &[f64], out: &mut [f64]) {
        let policy = &self.policy;
        let v3_len = self.v3_len;
        for s in &mut self.slots {
            if let Some(n) = s.native.as_mut() {
                n.on_candle(candle, v3, &mut s.native_out);
            }
            s.slot.poll();
            let answer = if s.cadence == Cadence::PerTrade && s.slot.has_plugin() {
                s.latest_answer
            } else if !s.slot.has_plugin() {
                Answer::Native
            } else {
                let now = candle.close_ms;
                let done: &[f64] = out;
                let input =
                    |j: usize| if j < v3_len { v3.get(j) } else { done.get(j - v3_len) }.copied().unwrap_or(0.0);
                let wc = WCandle::from(candle);
                let len = s.len;
                let (has_native, native_out) = (s.native.is_some(), &s.native_out);
                let outcome = s.slot.invoke(
                    policy,
                    now,
                    Event::Candle(wc, None),
                    input,
                    |store, funcs, inputs| match funcs {
                        WorldFuncs::Features { on_candle, .. } => on_candle.call(store, (wc, inputs)),
                        _ => Err(wasmtime::Error::msg("not a feature extension")),
                    },
                    |(out,)| valid(out, len),
                    |a, b| same(a, b),
                    |b| has_native.then(|| same(b, native_out)),
                );
                let outcome = outcome.map(|values| s.latest.copy_from_slice(&values));
                s.slot.record(policy, now, outcome)
            };
            let end = (s.offset + s.len).min(out.len());
            let Some(region) = out.get_mut(s.offset..end) else { continue };
            let k = region.len();
            match answer {
                Answer::Plugin => region.copy_from_slice(&s.latest[..k]),
                Answer::Native if s.native.is_some() => region.copy_from_slice(&s.native_out[..k]),
                Answer::Native | Answer::Neutral => region.fill(0.0),
            }
        }
    }
}
