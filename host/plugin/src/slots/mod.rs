//! Slots: a plugin in front of a native implementation, per extension point.

pub mod agents;
pub mod features;
pub mod strategy;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tickhost_core::hooks::FeatureSchema;

use crate::breaker::{Breaker, BreakerConfig, Permit};
use crate::error::PluginError;
use crate::instance::{Floats, PluginInstance, WorldFuncs};
use crate::manifest::World;
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::runtime::HostState;
use crate::runtime::LoadedPlugin;
use wasmtime::Store;

/// How slots treat their plugins (engine config; seed switches
/// `FALLBACK_ON_ERROR` and `FORCE_FAST_MODE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlotPolicy {
    /// true: the native implementation answers a failed call. false: the
    /// failure is not masked; the slot answers the neutral value (hold,
    /// zeros, no vote), still counted.
    pub fallback_on_error: bool,
    /// Native only: plugins are never called.
    pub force_fast_mode: bool,
    pub breaker: BreakerConfig,
    /// Snapshot a plugin's state every this many successful calls (0 = only
    /// on demand); a trapped instance is restored from the last one.
    pub snapshot_every: u64,
    /// Multiplies every plugin's per-call deadline (at least 1). The deadline
    /// is wall-clock time, so on a loaded machine a preempted engine thread
    /// would turn into timeouts the plugin did not cause, and a replay would
    /// stop being reproducible. Replays raise it (`replay_deadline_factor`);
    /// a live engine on its own core keeps 1. For limits that are exactly
    /// reproducible, give the plugin a fuel budget in its manifest.
    pub deadline_factor: f64,
}

impl Default for SlotPolicy {
    fn default() -> Self {
        Self {
            fallback_on_error: true,
            force_fast_mode: false,
            breaker: BreakerConfig::default(),
            snapshot_every: 100,
            deadline_factor: 1.0,
        }
    }
}

/// What answers an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Plugin,
    Native,
    Neutral,
}

/// The plugin half of a slot: instance, breaker, input indices, metrics.
#[derive(Debug)]
pub(crate) struct PluginSlot {
    pub(crate) instance: Option<PluginInstance>,
    breaker: Breaker,
    pub(crate) metrics: Arc<SlotMetrics>,
    /// Indices of `describe().inputs` in the feature frame.
    pub(crate) input_idx: Vec<usize>,
}

impl PluginSlot {
    /// `schema`: the frame the inputs resolve against.
    pub(crate) fn new(
        slot: &str,
        plugin: Option<LoadedPlugin>,
        world: World,
        schema: &FeatureSchema,
        policy: &SlotPolicy,
    ) -> Result<PluginSlot, PluginError> {
        let name = plugin.as_ref().map_or("native", |p| p.name()).to_string();
        let metrics = Arc::new(SlotMetrics::new(slot, name));
        let mut input_idx = Vec::new();
        let instance = match plugin {
            None => None,
            Some(p) => {
                if p.world() != world {
                    return Err(PluginError::Slot {
                        plugin: p.name().to_string(),
                        slot: slot.to_string(),
                        message: format!("the slot takes a {world} plugin, but the plugin targets {}", p.world()),
                    });
                }
                input_idx = schema.resolve(p.name(), &p.description().inputs).map_err(|e| PluginError::Slot {
                    plugin: p.name().to_string(),
                    slot: slot.to_string(),
                    message: e.to_string(),
                })?;
                Some(PluginInstance::new(p, metrics.clone(), policy.snapshot_every, policy.deadline_factor))
            }
        };
        Ok(PluginSlot { instance, breaker: Breaker::new(policy.breaker), metrics, input_idx })
    }

    pub(crate) fn has_plugin(&self) -> bool {
        self.instance.is_some()
    }

    /// Whether to call the plugin for this event (counts the call).
    pub(crate) fn gate(&mut self, policy: &SlotPolicy, now_ms: i64) -> Result<(), FallbackReason> {
        self.metrics.call();
        if policy.force_fast_mode {
            return Err(FallbackReason::ForcedNative);
        }
        if self.instance.is_none() {
            return Err(FallbackReason::Missing);
        }
        match self.breaker.permit(now_ms) {
            Permit::Deny => Err(FallbackReason::CircuitOpen),
            Permit::Call | Permit::Probe => Ok(()),
        }
    }

    /// Fills the instance's input buffer with `get(index)` for each input.
    pub(crate) fn gather(&mut self, get: impl Fn(usize) -> f64) {
        let Some(inst) = self.instance.as_mut() else { return };
        match Arc::get_mut(&mut inst.inputs) {
            Some(buf) => {
                for (slot, &i) in buf.iter_mut().zip(&self.input_idx) {
                    *slot = get(i);
                }
            }
            None => inst.inputs = self.input_idx.iter().map(|&i| get(i)).collect(),
        }
    }

    /// Gate, gather the inputs, call: the plugin's answer for this event, or
    /// why the native implementation answers instead. The call is counted.
    pub(crate) fn invoke<R>(
        &mut self,
        policy: &SlotPolicy,
        now_ms: i64,
        input: impl Fn(usize) -> f64,
        call: impl FnOnce(&mut Store<HostState>, &WorldFuncs, Floats) -> wasmtime::Result<R>,
    ) -> Result<R, FallbackReason> {
        self.gate(policy, now_ms)?;
        self.gather(input);
        self.instance.as_mut().ok_or(FallbackReason::Missing)?.call(call)
    }

    /// [`Self::record`] for an outcome that carries the plugin's answer: who
    /// answers, and the plugin's answer when it does.
    pub(crate) fn settle<R>(
        &mut self,
        policy: &SlotPolicy,
        now_ms: i64,
        outcome: Result<R, FallbackReason>,
    ) -> (Answer, Option<R>) {
        match outcome {
            Ok(r) => (self.record(policy, now_ms, Ok(())), Some(r)),
            Err(reason) => (self.record(policy, now_ms, Err(reason)), None),
        }
    }

    /// Records an event's outcome and says who answers it.
    pub(crate) fn record(&mut self, policy: &SlotPolicy, now_ms: i64, outcome: Result<(), FallbackReason>) -> Answer {
        match outcome {
            Ok(()) => {
                self.metrics.ok();
                if self.breaker.success() {
                    self.metrics.circuit(false);
                    tracing::info!(slot = %self.metrics.slot(), "plugin answered the probe; circuit closed");
                }
                if let Some(inst) = self.instance.as_mut() {
                    inst.succeeded();
                }
                Answer::Plugin
            }
            Err(reason) => {
                self.metrics.fallback(reason);
                // (answered by a failure?, counts towards the breaker?)
                let (failure, trips) = match reason {
                    FallbackReason::ForcedNative => (false, false),
                    FallbackReason::Missing => (self.instance.is_some(), self.instance.is_some()),
                    FallbackReason::CircuitOpen => (true, false),
                    FallbackReason::Trap | FallbackReason::Timeout | FallbackReason::InvalidOutput => (true, true),
                };
                if trips && self.breaker.failure(now_ms) {
                    self.metrics.circuit(true);
                    tracing::warn!(slot = %self.metrics.slot(), ?reason, "circuit opened: the native implementation answers until a probe succeeds");
                }
                if failure && !policy.fallback_on_error { Answer::Neutral } else { Answer::Native }
            }
        }
    }
}

/// Interns a plugin's reason strings (core signals carry `&'static str`):
/// at most [`Reasons::CAP`] distinct strings per slot are kept.
#[derive(Debug, Default)]
pub(crate) struct Reasons {
    known: Vec<&'static str>,
}

impl Reasons {
    const CAP: usize = 32;

    pub(crate) fn intern(&mut self, s: &str) -> &'static str {
        if let Some(k) = self.known.iter().find(|k| **k == s) {
            return k;
        }
        if self.known.len() >= Self::CAP || s.len() > 80 {
            return "plugin signal";
        }
        let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
        self.known.push(leaked);
        leaked
    }
}

pub(crate) fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}
