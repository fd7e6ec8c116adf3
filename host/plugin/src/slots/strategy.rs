//! One strategy per regime: a plugin (optional) in front of the native
//! `RegimeStrategies`, which runs on every candle.

use std::sync::Arc;

use tickhost_core::hooks::{FeatureSchema, Strategies};
use tickhost_core::regime::Regime;
use tickhost_core::strategy::{Action, RegimeStrategies, Signal, StrategyConfig, StrategyInput};

use super::{Answer, Event, PluginSlot, Reasons, SlotPolicy, unit};
use crate::abi::{WCandle, WRegimeReading, WSignal};
use crate::error::PluginError;
use crate::instance::{PluginInstance, WorldFuncs};
use crate::manifest::World;
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::rollout::SlotControl;
use crate::runtime::LoadedPlugin;

/// The plugin (if any) for each regime.
#[derive(Debug, Clone, Default)]
pub struct RegimePlugins {
    pub trend_up: Option<LoadedPlugin>,
    pub trend_down: Option<LoadedPlugin>,
    pub range: Option<LoadedPlugin>,
    pub undefined: Option<LoadedPlugin>,
}

impl RegimePlugins {
    fn take(&mut self, r: Regime) -> Option<LoadedPlugin> {
        match r {
            Regime::TrendUp => self.trend_up.take(),
            Regime::TrendDown => self.trend_down.take(),
            Regime::Range => self.range.take(),
            Regime::Undefined => self.undefined.take(),
        }
    }
}

fn regime_index(r: Regime) -> usize {
    match r {
        Regime::TrendUp => 0,
        Regime::TrendDown => 1,
        Regime::Range => 2,
        Regime::Undefined => 3,
    }
}

#[derive(Debug)]
pub struct StrategySlots {
    native: RegimeStrategies,
    slots: [PluginSlot; 4],
    reasons: Reasons,
    policy: SlotPolicy,
}

pub(crate) fn valid(s: &WSignal) -> bool {
    let finite = s.expected_move.is_finite() && s.stop_points.is_finite() && s.target_points.is_finite();
    let levels = match s.action {
        crate::abi::WAction::Buy | crate::abi::WAction::Sell => s.stop_points > 0.0 && s.target_points > 0.0,
        crate::abi::WAction::Hold => s.stop_points >= 0.0 && s.target_points >= 0.0,
    };
    finite && unit(s.confidence) && unit(s.probability) && unit(s.direction) && s.expected_move >= 0.0 && levels
}

impl StrategySlots {
    /// `schema`: the feature frame the strategies see (v3 + extensions); the
    /// plugins' inputs resolve against it once, here.
    pub fn new(
        config: &StrategyConfig,
        schema: &FeatureSchema,
        mut plugins: RegimePlugins,
        policy: SlotPolicy,
    ) -> Result<StrategySlots, PluginError> {
        let mut slot = |r: Regime| {
            PluginSlot::new(
                &format!("strategy.{}", r.name()),
                plugins.take(r),
                World::RegimeStrategy,
                schema,
                &policy,
                Vec::new(),
                None,
            )
        };
        let slots = [slot(Regime::TrendUp)?, slot(Regime::TrendDown)?, slot(Regime::Range)?, slot(Regime::Undefined)?];
        Ok(StrategySlots { native: RegimeStrategies::new(config), slots, reasons: Reasons::default(), policy })
    }

    pub fn policy(&self) -> &SlotPolicy {
        &self.policy
    }

    /// Metrics of the four slots (trend_up, trend_down, range, undefined).
    pub fn metrics(&self) -> Vec<Arc<SlotMetrics>> {
        self.slots.iter().map(|s| s.metrics.clone()).collect()
    }

    /// The four slots' control handles, for live rollout.
    pub fn controls(&self) -> Vec<Arc<SlotControl>> {
        self.slots.iter().map(|s| s.control()).collect()
    }

    pub fn metrics_for(&self, regime: Regime) -> Arc<SlotMetrics> {
        self.slots[regime_index(regime)].metrics.clone()
    }

    /// The plugin instance of a regime (snapshot/restore for swaps).
    pub fn instance_mut(&mut self, regime: Regime) -> Option<&mut PluginInstance> {
        self.slots[regime_index(regime)].instance.as_mut()
    }

    /// `native`: the native strategy's action for this event, when slot `i`
    /// is the current regime's (the baseline a shadow is compared with).
    fn call_plugin(
        &mut self,
        i: usize,
        input: &StrategyInput<'_>,
        native: Option<Action>,
    ) -> Result<WSignal, FallbackReason> {
        let features = input.features;
        let candle = WCandle::from(input.candle);
        let reading = WRegimeReading::from(&input.regime);
        let now = input.candle.close_ms;
        self.slots[i].invoke(
            &self.policy,
            now,
            Event::Candle(candle, Some(reading)),
            |j| features.get(j).copied().unwrap_or(0.0),
            |store, funcs, inputs| match funcs {
                WorldFuncs::Strategy { on_candle } => on_candle.call(store, (candle, reading, inputs)),
                _ => Err(wasmtime::Error::msg("not a strategy plugin")),
            },
            |(signal,)| if valid(&signal) { Ok(signal) } else { Err(FallbackReason::InvalidOutput) },
            |a, b| a.action == b.action,
            |b| native.map(|n| Action::from(b.action) == n),
        )
    }
}

impl Strategies for StrategySlots {
    /// Every strategy sees every closed candle, as the native ones do (the
    /// range strategy tracks pivots whatever the regime); the answer of the
    /// current regime's strategy is the one acted on.
    fn on_candle(&mut self, input: &StrategyInput<'_>) -> Signal {
        // The native strategies run every candle: they keep pivot state, and
        // their answer is the same-event fallback.
        let native = self.native.on_candle(input);
        let current = regime_index(input.regime.regime);
        let now = input.candle.close_ms;
        let mut acted = (Answer::Native, None);
        for i in 0..self.slots.len() {
            self.slots[i].poll();
            if i != current && !self.slots[i].has_plugin() {
                continue;
            }
            let outcome = self.call_plugin(i, input, (i == current).then_some(native.action));
            let settled = self.slots[i].settle(&self.policy, now, outcome);
            if i == current {
                acted = settled;
            }
        }
        match acted {
            (Answer::Plugin, Some(s)) => Signal {
                action: s.action.into(),
                confidence: s.confidence,
                probability: s.probability,
                direction: s.direction,
                expected_move: s.expected_move,
                stop_points: s.stop_points,
                target_points: s.target_points,
                reason: self.reasons.intern(&s.reason),
                ..native
            },
            (Answer::Neutral, _) => Signal {
                action: Action::Hold,
                probability: 0.0,
                direction: 0.0,
                expected_move: 0.0,
                stop_points: 0.0,
                target_points: 0.0,
                reason: "plugin failed (fallback_on_error off)",
                ..native
            },
            _ => native,
        }
    }
}
