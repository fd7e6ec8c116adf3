//! Consensus: whether a strategy's buy or sell is acted on. With a model for
//! the regime, the decision blends the model's probability with the agents'
//! vote (ML 0.4 / agents 0.6, as the Python system did). Without one (ML off,
//! no model for the regime, or the model cannot answer), the native rule
//! decides: the agents veto a signal they oppose.
//!
//! Pure arithmetic: the models themselves sit behind [`Models`] (ONNX
//! Runtime lives in `tickhost-ml`, never here).

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hooks::Consensus;
use crate::regime::Regime;
use crate::strategy::Action;

/// What a regime's model said at a candle close.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ModelAnswer {
    /// Probability that the price is higher at the model's horizon, in [0, 1].
    Up(f64),
    /// No model is configured for this regime (or ML is off): the native
    /// rule decides, and that is not a fallback.
    NoModel,
    /// A model should have answered but could not (runtime missing, model
    /// not loaded, inference error): the native rule decides, counted as a
    /// fallback.
    Unavailable,
}

/// The per-regime classifiers. Asked only when a strategy proposes a buy or
/// a sell, on the engine thread, with the candle's full feature frame.
pub trait Models: fmt::Debug + Send {
    fn predict(&mut self, regime: Regime, frame: &[f64]) -> ModelAnswer;
}

/// ML off: every decision is the native rule's, and none is a fallback.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoModels;

impl Models for NoModels {
    fn predict(&mut self, _regime: Regime, _frame: &[f64]) -> ModelAnswer {
        ModelAnswer::NoModel
    }
}

/// How a model's probability and the agents' vote are blended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Weight of the model's support for the signal.
    pub ml_weight: f64,
    /// Weight of the agents' support for the signal (ignored when agents are off).
    pub agents_weight: f64,
    /// A buy or sell is acted on when the blended support is at least this.
    pub min_score: f64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self { ml_weight: 0.4, agents_weight: 0.6, min_score: 0.5 }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ConsensusConfigError {
    #[error(
        "engine.consensus: ml_weight = {ml} and agents_weight = {agents} must be finite, >= 0 and not both 0; the defaults are 0.4 and 0.6"
    )]
    Weights { ml: f64, agents: f64 },
    #[error("engine.consensus.min_score = {0} must be within [0, 1] (default 0.5)")]
    MinScore(f64),
}

impl ConsensusConfig {
    pub fn validate(&self) -> Result<(), ConsensusConfigError> {
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if !ok(self.ml_weight) || !ok(self.agents_weight) || self.ml_weight + self.agents_weight <= 0.0 {
            return Err(ConsensusConfigError::Weights { ml: self.ml_weight, agents: self.agents_weight });
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(ConsensusConfigError::MinScore(self.min_score));
        }
        Ok(())
    }
}

/// A blended decision on a buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Blend {
    /// The model's support for the signal's side: P(up) for a buy, 1 - P(up) for a sell.
    pub model: f64,
    /// The agents' support: 0.5 +/- half their confidence when they agree /
    /// oppose, 0.5 when they hold or are off.
    pub agents: f64,
    /// The weighted mean of both, in [0, 1].
    pub score: f64,
    pub act: bool,
}

/// Blends `p_up` with the agents' consensus (`None`: agents off) for a
/// signal to `action` (buy or sell).
pub fn blend(config: &ConsensusConfig, action: Action, p_up: f64, agents: Option<Consensus>) -> Blend {
    let p_up = if p_up.is_finite() { p_up.clamp(0.0, 1.0) } else { 0.5 };
    let model = match action {
        Action::Sell => 1.0 - p_up,
        _ => p_up,
    };
    let (support, agents_weight) = match agents {
        None => (0.5, 0.0),
        Some(c) => {
            let confidence = c.confidence.clamp(0.0, 1.0);
            let support = match (action, c.action) {
                (Action::Buy, Action::Buy) | (Action::Sell, Action::Sell) => 0.5 + 0.5 * confidence,
                (Action::Buy, Action::Sell) | (Action::Sell, Action::Buy) => 0.5 - 0.5 * confidence,
                _ => 0.5,
            };
            (support, config.agents_weight)
        }
    };
    let total = config.ml_weight + agents_weight;
    let score = if total > 0.0 { (config.ml_weight * model + agents_weight * support) / total } else { model };
    Blend { model, agents: support, score, act: score >= config.min_score }
}

/// The native rule: the agents veto a signal whose opposite they agree on.
pub fn vetoed(action: Action, agents: Option<Consensus>) -> bool {
    agents.is_some_and(|c| matches!((action, c.action), (Action::Buy, Action::Sell) | (Action::Sell, Action::Buy)))
}

/// What the models did to the decisions of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelCounts {
    /// Buys and sells whose decision blended a model's probability.
    pub informed: u64,
    /// Of those, the ones the blend turned into a hold.
    pub held: u64,
    /// Buys and sells decided by the native rule because the regime's model
    /// could not answer (runtime or model missing, inference error).
    pub fallbacks: u64,
    /// Buys and sells in a regime without a model (or with ML off).
    pub no_model: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(action: Action, confidence: f64) -> Option<Consensus> {
        Some(Consensus { action, confidence })
    }

    #[test]
    fn default_weights_are_ml_0_4_agents_0_6() {
        let c = ConsensusConfig::default();
        let b = blend(&c, Action::Buy, 0.8, agents(Action::Buy, 0.5));
        assert!((b.model - 0.8).abs() < 1e-12);
        assert!((b.agents - 0.75).abs() < 1e-12);
        assert!((b.score - (0.4 * 0.8 + 0.6 * 0.75)).abs() < 1e-12);
        assert!(b.act);
    }

    #[test]
    fn a_sell_is_supported_by_a_low_probability_of_up() {
        let c = ConsensusConfig::default();
        let b = blend(&c, Action::Sell, 0.1, agents(Action::Hold, 0.9));
        assert!((b.model - 0.9).abs() < 1e-12);
        assert_eq!(b.agents, 0.5);
        assert!(b.act, "0.4 * 0.9 + 0.6 * 0.5 = 0.66");
        let b = blend(&c, Action::Sell, 0.9, agents(Action::Hold, 0.9));
        assert!(!b.act, "0.4 * 0.1 + 0.3 = 0.34");
    }

    #[test]
    fn fully_opposed_agents_hold_whatever_the_model_says_and_agreeing_ones_act() {
        let c = ConsensusConfig::default();
        assert!(!blend(&c, Action::Buy, 1.0, agents(Action::Sell, 1.0)).act);
        assert!(blend(&c, Action::Buy, 0.0, agents(Action::Buy, 1.0)).act);
    }

    #[test]
    fn agents_off_leaves_the_model_alone() {
        let c = ConsensusConfig::default();
        let b = blend(&c, Action::Buy, 0.49, None);
        assert_eq!((b.score, b.act), (0.49, false));
        assert!(blend(&c, Action::Buy, 0.51, None).act);
    }

    #[test]
    fn nan_probability_is_neutral_not_a_trade_signal() {
        let c = ConsensusConfig { agents_weight: 0.0, ..ConsensusConfig::default() };
        let b = blend(&c, Action::Buy, f64::NAN, agents(Action::Buy, 1.0));
        assert_eq!(b.model, 0.5);
        assert!(b.score.is_finite());
    }

    #[test]
    fn the_native_rule_vetoes_only_the_opposite_side() {
        assert!(vetoed(Action::Buy, agents(Action::Sell, 0.4)));
        assert!(!vetoed(Action::Buy, agents(Action::Hold, 0.9)));
        assert!(!vetoed(Action::Sell, agents(Action::Sell, 0.9)));
        assert!(!vetoed(Action::Sell, None));
    }

    /// The engine, wired: a model that always says "down" (with the model
    /// alone deciding) holds every buy and lets every sell through; a model
    /// that cannot answer leaves the native rule's decisions untouched.
    #[test]
    fn the_engine_blends_when_a_model_answers_and_falls_back_when_it_cannot() {
        use crate::engine::{Engine, EngineConfig, NoObserver};
        use crate::market::Side;
        use crate::report::BacktestReport;
        use crate::sim::{SessionGenerator, SessionSpec};

        #[derive(Debug)]
        struct Says(ModelAnswer);
        impl Models for Says {
            fn predict(&mut self, regime: Regime, _frame: &[f64]) -> ModelAnswer {
                if regime == Regime::Undefined { ModelAnswer::NoModel } else { self.0 }
            }
        }
        let mut config = EngineConfig {
            consensus: ConsensusConfig { ml_weight: 1.0, agents_weight: 0.0, min_score: 0.5 },
            ..EngineConfig::default()
        };
        config.risk.max_trades_per_day = 1000;
        let run = |models: Option<ModelAnswer>| -> BacktestReport {
            let mut engine = Engine::new(&config).expect("engine");
            if let Some(answer) = models {
                engine = engine.with_models(Box::new(Says(answer)));
            }
            for seed in [3, 4] {
                for t in SessionGenerator::new(SessionSpec::wdo(2024, 1, 8 + seed as u32, seed)) {
                    engine.on_trade(t, &mut NoObserver);
                }
            }
            engine.finish(&mut NoObserver)
        };
        let native = run(None);
        assert!(native.round_trips.iter().any(|t| t.side == Side::Buy), "the sessions have buys to hold");
        let vetoed =
            native.hold_reasons.iter().find(|(r, _)| *r == "agents' consensus opposes the signal").map_or(0, |r| r.1);
        assert_eq!(native.models.no_model, native.decisions.signals + vetoed, "every buy/sell proposal is counted");

        let down = run(Some(ModelAnswer::Up(0.0)));
        assert!(down.models.informed > 0 && down.models.held > 0, "{:?}", down.models);
        assert!(down.round_trips.iter().all(|t| t.side == Side::Sell), "every buy is held");
        assert!(down.round_trips.iter().any(|t| t.side == Side::Sell));
        assert_eq!(down.models.fallbacks, 0);

        let broken = run(Some(ModelAnswer::Unavailable));
        assert_eq!(broken.models.informed, 0);
        assert_eq!(broken.models.fallbacks, native.models.no_model, "each decision fell back, counted");
        assert_eq!(broken.round_trips, native.round_trips, "the native rule decided");
    }

    #[test]
    fn bad_weights_are_refused_with_the_key() {
        let bad = ConsensusConfig { ml_weight: 0.0, agents_weight: 0.0, ..ConsensusConfig::default() };
        assert!(bad.validate().expect_err("zero weights").to_string().contains("ml_weight"));
        let bad = ConsensusConfig { min_score: 1.5, ..ConsensusConfig::default() };
        assert!(bad.validate().expect_err("min_score").to_string().contains("min_score"));
        assert_eq!(ConsensusConfig::default().validate(), Ok(()));
    }
}
