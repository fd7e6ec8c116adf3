//! Agents: each a plugin (optional) with a native twin (optional; no vote
//! when absent), and the core's weighted-vote coordinator.

use std::sync::Arc;

use tickhost_core::agents::{OrderFlowAgent, coordinate};
use tickhost_core::broker::RoundTrip;
use tickhost_core::hooks::{Agents, Consensus, FeatureSchema};
use tickhost_core::market::{Candle, Trade};
use tickhost_core::strategy::Action;

pub use tickhost_core::agents::AgentVote;

use super::{Answer, Event, PluginSlot, SlotPolicy, unit};
use crate::abi::{WAgentSignal, WCandle, WFeedback, WTrade};
use crate::error::PluginError;
use crate::instance::{PluginInstance, WorldFuncs};
use crate::manifest::World;
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::rollout::SlotControl;
use crate::runtime::{Cadence, LoadedPlugin};

/// A native agent that answers for an agent plugin (or sits in a slot alone).
pub trait NativeAgent: std::fmt::Debug {
    fn on_trade(&mut self, _trade: &Trade, _frame: &[f64]) {}
    /// The agent's vote at a candle close (its weight is replaced by the
    /// slot's).
    fn vote(&mut self, candle: &Candle, frame: &[f64]) -> AgentVote;
    fn on_feedback(&mut self, _trip: &RoundTrip) {}
}

impl NativeAgent for OrderFlowAgent {
    fn vote(&mut self, _candle: &Candle, frame: &[f64]) -> AgentVote {
        OrderFlowAgent::vote(self, frame)
    }

    fn on_feedback(&mut self, trip: &RoundTrip) {
        OrderFlowAgent::on_feedback(self, trip.pnl_brl);
    }
}

/// What goes in one agent slot.
#[derive(Debug)]
pub struct AgentSlot {
    pub plugin: Option<LoadedPlugin>,
    pub native: Option<Box<dyn NativeAgent + Send>>,
    /// The coordinator's weight for this agent.
    pub weight: f64,
}

#[derive(Debug)]
struct State {
    slot: PluginSlot,
    native: Option<Box<dyn NativeAgent + Send>>,
    weight: f64,
    cadence: Cadence,
    /// The last per-trade opinion of the plugin (`None`: no opinion).
    last_trade_vote: Option<AgentVote>,
}

#[derive(Debug)]
pub struct AgentSlots {
    slots: Vec<State>,
    votes: Vec<AgentVote>,
    min_confidence: f64,
    policy: SlotPolicy,
}

pub(crate) fn valid(s: &WAgentSignal) -> bool {
    unit(s.confidence)
}

impl AgentSlots {
    /// `schema`: the full feature frame the agents see.
    pub fn new(
        agents: Vec<AgentSlot>,
        min_confidence: f64,
        schema: &FeatureSchema,
        policy: SlotPolicy,
    ) -> Result<AgentSlots, PluginError> {
        let mut slots = Vec::with_capacity(agents.len());
        for (k, a) in agents.into_iter().enumerate() {
            let label = a.plugin.as_ref().map_or_else(|| format!("native{k}"), |p| p.name().to_string());
            let cadence = a.plugin.as_ref().map_or(Cadence::PerCandle, |p| p.description().cadence);
            let slot = PluginSlot::new(
                &format!("agent.{label}"),
                a.plugin,
                World::HmarlAgent,
                schema,
                &policy,
                Vec::new(),
                None,
            )?;
            slots.push(State { slot, native: a.native, weight: a.weight, cadence, last_trade_vote: None });
        }
        let n = slots.len();
        Ok(AgentSlots { slots, votes: Vec::with_capacity(n), min_confidence, policy })
    }

    /// Plugin agents only, each with its weight and no native twin.
    pub fn from_plugins(
        plugins: Vec<(LoadedPlugin, f64)>,
        min_confidence: f64,
        schema: &FeatureSchema,
        policy: SlotPolicy,
    ) -> Result<AgentSlots, PluginError> {
        let agents =
            plugins.into_iter().map(|(p, weight)| AgentSlot { plugin: Some(p), native: None, weight }).collect();
        Self::new(agents, min_confidence, schema, policy)
    }

    pub fn metrics(&self) -> Vec<Arc<SlotMetrics>> {
        self.slots.iter().map(|s| s.slot.metrics.clone()).collect()
    }

    /// The votes behind the last consensus, one per agent that voted.
    /// The agents' control handles, for live rollout.
    pub fn controls(&self) -> Vec<Arc<SlotControl>> {
        self.slots.iter().map(|s| s.slot.control()).collect()
    }

    pub fn last_votes(&self) -> &[AgentVote] {
        &self.votes
    }

    /// The last per-trade opinion of agent `i`.
    pub fn last_trade_vote(&self, i: usize) -> Option<AgentVote> {
        self.slots.get(i).and_then(|s| s.last_trade_vote)
    }

    pub fn instance_mut(&mut self, i: usize) -> Option<&mut PluginInstance> {
        self.slots.get_mut(i).and_then(|s| s.slot.instance.as_mut())
    }
}

impl Agents for AgentSlots {
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
            let outcome = s.slot.invoke(
                policy,
                now,
                Event::Trade(wt),
                |j| frame.get(j).copied().unwrap_or(0.0),
                |store, funcs, inputs| match funcs {
                    WorldFuncs::Agent { on_trade, .. } => on_trade.call(store, (wt, inputs)),
                    _ => Err(wasmtime::Error::msg("not an agent")),
                },
                |(v,)| match v {
                    Some(v) if !valid(&v) => Err(FallbackReason::InvalidOutput),
                    v => Ok(v),
                },
                |a, b| a.as_ref().map(|v| v.action) == b.as_ref().map(|v| v.action),
                |_| None,
            );
            s.last_trade_vote = match s.slot.settle(policy, now, outcome) {
                (Answer::Plugin, Some(Some(v))) => {
                    Some(AgentVote { action: v.action.into(), confidence: v.confidence, weight: s.weight })
                }
                _ => None,
            };
        }
    }

    fn on_candle(&mut self, candle: &Candle, frame: &[f64]) -> Consensus {
        let policy = &self.policy;
        self.votes.clear();
        for s in &mut self.slots {
            let native = s.native.as_mut().map(|n| AgentVote { weight: s.weight, ..n.vote(candle, frame) });
            let now = candle.close_ms;
            let wc = WCandle::from(candle);
            let outcome = s.slot.invoke(
                policy,
                now,
                Event::Candle(wc, None),
                |j| frame.get(j).copied().unwrap_or(0.0),
                |store, funcs, inputs| match funcs {
                    WorldFuncs::Agent { on_candle, .. } => on_candle.call(store, (wc, inputs)),
                    _ => Err(wasmtime::Error::msg("not an agent")),
                },
                |(v,)| if valid(&v) { Ok(v) } else { Err(FallbackReason::InvalidOutput) },
                |a, b| a.action == b.action,
                |b| native.as_ref().map(|n| n.action == Action::from(b.action)),
            );
            let vote = match s.slot.settle(policy, now, outcome) {
                (Answer::Plugin, Some(v)) => {
                    Some(AgentVote { action: v.action.into(), confidence: v.confidence, weight: s.weight })
                }
                (Answer::Neutral, _) => None,
                _ => native,
            };
            self.votes.extend(vote);
        }
        coordinate(&self.votes, self.min_confidence)
    }

    fn on_feedback(&mut self, trip: &RoundTrip) {
        let policy = &self.policy;
        let fb = WFeedback::from(trip);
        for s in &mut self.slots {
            if let Some(n) = s.native.as_mut() {
                n.on_feedback(trip);
            }
            if policy.force_fast_mode {
                continue;
            }
            if let Some(inst) = s.slot.instance.as_mut() {
                // Feedback has no answer to fall back on; a failure is
                // counted by the instance (re-instantiation) only.
                let _ = inst.call(|store, funcs, _| match funcs {
                    WorldFuncs::Agent { on_feedback, .. } => on_feedback.call(store, (fb,)),
                    _ => Err(wasmtime::Error::msg("not an agent")),
                });
            }
        }
    }
}
