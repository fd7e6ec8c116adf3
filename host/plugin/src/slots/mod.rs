//! Slots: a plugin in front of a native implementation, per extension point.

pub mod agents;
pub mod features;
pub mod strategy;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tickhost_core::hooks::FeatureSchema;

use crate::abi::{WCandle, WRegimeReading, WTrade};
use crate::breaker::{Breaker, BreakerConfig, Permit};
use crate::error::PluginError;
use crate::instance::{Floats, PluginInstance, WorldFuncs};
use crate::manifest::World;
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::rollout::{CallWindow, Command, Mode, Reply, RolloutPolicy, SlotControl, Transition, in_canary, retire};
use crate::runtime::LoadedPlugin;
use crate::runtime::{Cadence, HostState};
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
    /// When a candidate in shadow or canary is rolled back on its own.
    pub rollout: RolloutPolicy,
}

impl Default for SlotPolicy {
    fn default() -> Self {
        Self {
            fallback_on_error: true,
            force_fast_mode: false,
            breaker: BreakerConfig::default(),
            snapshot_every: 100,
            deadline_factor: 1.0,
            rollout: RolloutPolicy::default(),
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

/// What an event is, for the recent-events ring a candidate is smoke-tested on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Trade(WTrade),
    Candle(WCandle, Option<WRegimeReading>),
}

/// A candidate running beside the active plugin (shadow or canary).
#[derive(Debug)]
struct Candidate {
    instance: PluginInstance,
    input_idx: Vec<usize>,
    mode: Mode,
    window: CallWindow,
}

/// The plugin half of a slot: the active instance, a candidate in shadow or
/// canary, the previous version kept warm, breaker, input indices, metrics
/// and the control handle the operator side reaches it through.
#[derive(Debug)]
pub(crate) struct PluginSlot {
    pub(crate) instance: Option<PluginInstance>,
    breaker: Breaker,
    pub(crate) metrics: Arc<SlotMetrics>,
    /// Indices of `describe().inputs` in the feature frame.
    pub(crate) input_idx: Vec<usize>,
    control: Arc<SlotControl>,
    candidate: Option<Candidate>,
    /// What answered before the last deploy or promotion, kept warm for a
    /// rollback: `Some(None)` is the native implementation.
    previous: Option<Option<(PluginInstance, Vec<usize>)>>,
    /// Events seen, for the canary's choice.
    seq: u64,
}

impl PluginSlot {
    /// `schema`: the frame the inputs resolve against. `outputs` and
    /// `cadence`: what every version of a feature extension must keep.
    pub(crate) fn new(
        slot: &str,
        plugin: Option<LoadedPlugin>,
        world: World,
        schema: &FeatureSchema,
        policy: &SlotPolicy,
        outputs: Vec<String>,
        cadence: Option<Cadence>,
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
        let active = instance.as_ref().map_or(("native".to_string(), String::new(), None), |i| {
            let p = i.plugin();
            (p.name().to_string(), p.description().version.clone(), Some(p.manifest_path().to_path_buf()))
        });
        let control = SlotControl::new(
            slot,
            world,
            schema.clone(),
            outputs,
            cadence,
            policy.clone(),
            metrics.clone(),
            (&active.0, &active.1, active.2),
        );
        Ok(PluginSlot {
            instance,
            breaker: Breaker::new(policy.breaker),
            metrics,
            input_idx,
            control,
            candidate: None,
            previous: None,
            seq: 0,
        })
    }

    pub(crate) fn control(&self) -> Arc<SlotControl> {
        self.control.clone()
    }

    /// Engine thread, between two events: applies what the operator asked
    /// for. One atomic load when nothing is pending.
    pub(crate) fn poll(&mut self) {
        while let Some((command, reply)) = self.control.take() {
            let started = Instant::now();
            let outcome = self.apply(command);
            let pause_ns = started.elapsed().as_nanos() as u64;
            let outcome: Reply = outcome.map(|mut t| {
                t.pause_ns = pause_ns;
                t
            });
            self.publish(outcome.as_ref().ok());
            if let Err(why) = &outcome {
                self.control.rejected();
                tracing::warn!(slot = %self.control.name(), "plugin transition refused: {why}");
            } else if let Ok(t) = &outcome {
                tracing::info!(slot = %t.slot, action = %t.action, active = %t.active, candidate = ?t.candidate, pause_us = t.pause_ns / 1000, "plugin transition");
            }
            let _ = reply.try_send(outcome);
        }
    }

    fn name_of(instance: Option<&PluginInstance>) -> String {
        instance.map_or_else(|| "native".to_string(), |i| i.plugin().name().to_string())
    }

    fn transition(&self, action: &str, state_handed_over: bool, note: String) -> Transition {
        Transition {
            slot: self.control.name().to_string(),
            action: action.to_string(),
            active: Self::name_of(self.instance.as_ref()),
            candidate: self.candidate.as_ref().map(|c| c.instance.plugin().name().to_string()),
            state_handed_over,
            pause_ns: 0,
            note,
        }
    }

    /// Hands `from`'s state to `to`. Ok(true): handed over; Ok(false): `to`
    /// starts fresh (another plugin, which refused the state); Err: the same
    /// plugin refused its own kind of state, so the swap would lose it.
    fn hand_over(from: Option<&mut PluginInstance>, to: &mut PluginInstance) -> Result<bool, String> {
        let Some(from) = from else { return Ok(false) };
        let state = from.snapshot().map_err(|e| format!("snapshot of the running plugin failed: {e}"))?;
        match to.restore(&state) {
            Ok(()) => Ok(true),
            Err(e) if from.plugin().description().name == to.plugin().description().name => {
                Err(format!("the new version refused the running version's state: {e}"))
            }
            Err(e) => {
                tracing::info!(from = %from.plugin().name(), to = %to.plugin().name(), "another plugin refused the state ({e}); it starts fresh");
                Ok(false)
            }
        }
    }

    fn apply(&mut self, command: Command) -> Result<Transition, String> {
        match command {
            Command::Deploy { mut instance, input_idx, mode } => {
                let handed = Self::hand_over(self.instance.as_mut(), &mut instance)?;
                match mode {
                    Mode::Active => {
                        instance.set_metrics(self.metrics.clone());
                        let old = self.instance.replace(*instance);
                        let old_idx = std::mem::replace(&mut self.input_idx, input_idx);
                        if let Some(c) = self.candidate.take() {
                            retire(c.instance);
                        }
                        if let Some(Some((prev, _))) = self.previous.take() {
                            retire(prev);
                        }
                        self.previous = Some(old.map(|o| (o, old_idx)));
                        self.breaker = Breaker::new(self.control.policy.breaker);
                        self.metrics.set_plugin(&Self::name_of(self.instance.as_ref()));
                        Ok(self.transition("deploy", handed, String::new()))
                    }
                    Mode::Shadow | Mode::Canary(_) => {
                        if let Some(c) = self.candidate.take() {
                            retire(c.instance);
                        }
                        self.control.reset_candidate(instance.metrics().clone());
                        self.candidate = Some(Candidate {
                            instance: *instance,
                            input_idx,
                            mode,
                            window: CallWindow::new(self.control.policy.rollout.window),
                        });
                        let action = if mode == Mode::Shadow { "shadow" } else { "canary" };
                        Ok(self.transition(action, handed, String::new()))
                    }
                }
            }
            Command::SetCanary(percent) => {
                let Some(c) = self.candidate.as_mut() else {
                    return Err("no candidate in shadow or canary: deploy one first".into());
                };
                c.mode = if percent == 0 { Mode::Shadow } else { Mode::Canary(percent.min(100)) };
                Ok(self.transition(if percent == 0 { "shadow" } else { "canary" }, false, format!("{percent}%")))
            }
            Command::Promote => {
                let Some(mut c) = self.candidate.take() else {
                    return Err("no candidate in shadow or canary to promote".into());
                };
                // The candidate saw every event beside the active plugin: its
                // own state is current, no hand-over needed.
                c.instance.set_metrics(self.metrics.clone());
                let old = self.instance.replace(c.instance);
                let old_idx = std::mem::replace(&mut self.input_idx, c.input_idx);
                if let Some(Some((prev, _))) = self.previous.take() {
                    retire(prev);
                }
                self.previous = Some(old.map(|o| (o, old_idx)));
                self.breaker = Breaker::new(self.control.policy.breaker);
                self.metrics.set_plugin(&Self::name_of(self.instance.as_ref()));
                Ok(self.transition("promote", false, String::new()))
            }
            Command::Rollback => {
                if let Some(c) = self.candidate.take() {
                    let name = c.instance.plugin().name().to_string();
                    retire(c.instance);
                    return Ok(self.transition("rollback", false, format!("candidate {name} removed")));
                }
                let Some(previous) = self.previous.take() else {
                    return Err("nothing to roll back to: no candidate and no previous version".into());
                };
                let mut current = self.instance.take();
                let current_idx = std::mem::take(&mut self.input_idx);
                let handed = match previous {
                    // The native implementation keeps its own state.
                    None => false,
                    Some((mut prev, prev_idx)) => {
                        let handed = Self::hand_over(current.as_mut(), &mut prev).unwrap_or_else(|e| {
                            tracing::warn!(slot = %self.control.name(), "rollback: {e}; the previous version keeps its own state");
                            false
                        });
                        prev.set_metrics(self.metrics.clone());
                        self.instance = Some(prev);
                        self.input_idx = prev_idx;
                        handed
                    }
                };
                self.previous = Some(current.map(|c| (c, current_idx)));
                self.breaker = Breaker::new(self.control.policy.breaker);
                self.metrics.set_plugin(&Self::name_of(self.instance.as_ref()));
                Ok(self.transition("rollback", handed, String::new()))
            }
        }
    }

    /// Writes the slot's rollout state where the operator side reads it.
    fn publish(&self, transition: Option<&Transition>) {
        let Ok(mut st) = self.control.status.lock() else { return };
        let active = self.instance.as_ref();
        st.active = Self::name_of(active);
        st.active_version = active.map(|i| i.plugin().description().version.clone()).unwrap_or_default();
        st.active_manifest = active.map(|i| i.plugin().manifest_path().to_path_buf());
        st.previous = self.previous.as_ref().map(|p| Self::name_of(p.as_ref().map(|(p, _)| p)));
        st.candidate = self.candidate.as_ref().map(|c| crate::rollout::CandidateStatus {
            plugin: c.instance.plugin().name().to_string(),
            version: c.instance.plugin().description().version.clone(),
            manifest: c.instance.plugin().manifest_path().to_path_buf(),
            mode: c.mode,
            ..Default::default()
        });
        if let Some(t) = transition {
            let r = &mut st.rollout;
            match t.action.as_str() {
                "deploy" => r.deploys += 1,
                "shadow" => r.shadows += 1,
                "canary" => r.canaries += 1,
                "promote" => r.promotions += 1,
                "rollback" => r.rollbacks += 1,
                "auto_rollback" => r.auto_rollbacks += 1,
                _ => {}
            }
            st.pauses_ns.push(t.pause_ns);
            st.last_transition = Some(t.clone());
        }
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

    /// Gate, gather the inputs, call: the plugin's answer for this event, or
    /// why the native implementation answers instead. The call is counted.
    ///
    /// Between events it applies pending rollout commands ([`Self::poll`])
    /// and records the event for smoke tests. With a candidate in shadow or
    /// canary, the candidate is called on the same event and inputs, its
    /// answer `check`ed and compared with the active one (`same`; with the
    /// native answer, `native`, when the active plugin has none), and it is
    /// rolled back on its own when it fails or runs slow too often. A canary
    /// answers its share of events.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn invoke<R, T: std::fmt::Debug>(
        &mut self,
        policy: &SlotPolicy,
        now_ms: i64,
        event: Event,
        input: impl Fn(usize) -> f64,
        call: impl Fn(&mut Store<HostState>, &WorldFuncs, Floats) -> wasmtime::Result<R>,
        check: impl Fn(R) -> Result<T, FallbackReason>,
        same: impl Fn(&T, &T) -> bool,
        native: impl Fn(&T) -> Option<bool>,
    ) -> Result<T, FallbackReason> {
        self.poll();
        self.seq += 1;
        if let Ok(mut recent) = self.control.recent.try_lock() {
            match event {
                Event::Trade(t) => recent.record_trade(t),
                Event::Candle(c, r) => recent.record_candle(c, r, &input, self.control.schema.len()),
            }
        }
        let active = match self.gate(policy, now_ms) {
            Err(r) => Err(r),
            Ok(()) => match self.instance.as_mut() {
                None => Err(FallbackReason::Missing),
                Some(inst) => {
                    fill(inst, &self.input_idx, &input);
                    inst.call(&call).and_then(&check)
                }
            },
        };
        if policy.force_fast_mode {
            return active;
        }
        let Some(c) = self.candidate.as_mut() else { return active };
        fill(&mut c.instance, &c.input_idx, &input);
        let candidate = c.instance.call(&call).and_then(&check);
        let budget_ns = c.instance.plugin().manifest().limits.deadline_us.saturating_mul(1000);
        let over_budget = c.instance.last_call_ns() > budget_ns;
        // Against the active plugin's answer; where there is none (an empty
        // slot, or the active plugin failed), against the native answer.
        let agreed = match (&active, &candidate) {
            (Ok(a), Ok(b)) => Some(same(a, b)),
            (Err(_), Ok(b)) => native(b),
            _ => None,
        };
        self.control.candidate_call(candidate.is_err(), agreed, || match (&active, &candidate) {
            (Ok(a), Ok(b)) => format!("t={now_ms}: active {a:?} / candidate {b:?}"),
            (Err(_), Ok(b)) => format!("t={now_ms}: native answer differs from candidate {b:?}"),
            _ => String::new(),
        });
        c.window.push(candidate.is_err(), over_budget);
        if let Some(why) = c.window.breach(&self.control.policy.rollout) {
            if let Some(c) = self.candidate.take() {
                let name = c.instance.plugin().name().to_string();
                retire(c.instance);
                let t = self.transition("auto_rollback", false, format!("candidate {name}: {why}"));
                tracing::warn!(slot = %t.slot, "candidate {name} rolled back automatically: {why}");
                self.publish(Some(&t));
            }
            return active;
        }
        let acts = matches!(c.mode, Mode::Canary(p) if in_canary(p, now_ms, self.seq));
        match candidate {
            Ok(answer) if acts => {
                self.control.candidate_acted();
                Ok(answer)
            }
            _ => active,
        }
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

/// Fills `inst`'s input buffer with `get(index)` for each of its inputs.
fn fill(inst: &mut PluginInstance, idx: &[usize], get: &impl Fn(usize) -> f64) {
    match Arc::get_mut(&mut inst.inputs) {
        Some(buf) if buf.len() == idx.len() => {
            for (slot, &i) in buf.iter_mut().zip(idx) {
                *slot = get(i);
            }
        }
        _ => inst.inputs = idx.iter().map(|&i| get(i)).collect(),
    }
}

pub(crate) fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}
