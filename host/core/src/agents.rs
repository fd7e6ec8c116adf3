//! Native agents and their coordinator: the fallbacks for agent plugins, and
//! the whole agent layer when no plugin is loaded.
//!
//! This is the "simple version" of the Python FlowAwareCoordinator: fixed
//! weights and a weighted vote. The full HMARL loop comes later.

use serde::{Deserialize, Serialize};

use crate::broker::RoundTrip;
use crate::features::v3_index;
use crate::hooks::{Agents, Consensus};
use crate::market::Candle;
use crate::strategy::Action;

/// One agent's opinion at a candle close.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AgentVote {
    pub action: Action,
    /// [0, 1]
    pub confidence: f64,
    /// The coordinator's weight for this agent.
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderFlowConfig {
    /// |order-flow imbalance| that counts as a signal.
    pub ofi_threshold: f64,
    /// |cumulative delta| in contracts that counts as a signal.
    pub delta_threshold: f64,
    /// Share of aggressive volume on one side that counts as aggression.
    pub aggression_threshold: f64,
    /// Threshold multipliers after a losing / winning trade.
    pub after_loss: f64,
    pub after_win: f64,
    /// The coordinator's weight for this agent.
    pub weight: f64,
}

impl Default for OrderFlowConfig {
    fn default() -> Self {
        Self {
            ofi_threshold: 0.3,
            delta_threshold: 1000.0,
            aggression_threshold: 0.6,
            after_loss: 1.05,
            after_win: 0.98,
            weight: 0.3,
        }
    }
}

/// The OrderFlowSpecialist: a majority vote of order-flow sub-signals
/// (imbalance over 1 and 5 candles, cumulative delta, aggression), with
/// thresholds that tighten after losses and relax after wins.
#[derive(Debug, Clone)]
pub struct OrderFlowAgent {
    config: OrderFlowConfig,
    /// Multiplies every threshold; adapted by feedback, kept within [0.5, 2].
    strictness: f64,
    imbalance: usize,
    imbalance_ma_5: usize,
    imbalance_cum: usize,
    buy_pressure: usize,
    sell_pressure: usize,
}

impl OrderFlowAgent {
    /// The v3 features this agent reads.
    pub const INPUTS: [&'static str; 5] = [
        "v3_volume_imbalance",
        "v3_volume_imbalance_ma_5",
        "v3_volume_imbalance_cum",
        "v3_buy_pressure",
        "v3_sell_pressure",
    ];

    pub fn new(config: OrderFlowConfig) -> Self {
        let idx = |name| v3_index(name).unwrap_or_else(|| panic!("v3 schema lacks {name}"));
        Self {
            config,
            strictness: 1.0,
            imbalance: idx(Self::INPUTS[0]),
            imbalance_ma_5: idx(Self::INPUTS[1]),
            imbalance_cum: idx(Self::INPUTS[2]),
            buy_pressure: idx(Self::INPUTS[3]),
            sell_pressure: idx(Self::INPUTS[4]),
        }
    }

    pub fn strictness(&self) -> f64 {
        self.strictness
    }

    /// Votes from a v3 frame.
    pub fn vote(&self, frame: &[f64]) -> AgentVote {
        let c = &self.config;
        let k = self.strictness;
        let side = |x: f64, threshold: f64| {
            if x > threshold {
                1i32
            } else if x < -threshold {
                -1
            } else {
                0
            }
        };
        let aggression = {
            let (buy, sell) = (frame[self.buy_pressure], frame[self.sell_pressure]);
            let t = (c.aggression_threshold * k).min(1.0);
            i32::from(buy > t) - i32::from(sell > t)
        };
        let subs = [
            side(frame[self.imbalance], c.ofi_threshold * k),
            side(frame[self.imbalance_ma_5], c.ofi_threshold * k),
            side(frame[self.imbalance_cum], c.delta_threshold * k),
            aggression,
        ];
        let buys = subs.iter().filter(|&&s| s > 0).count();
        let sells = subs.iter().filter(|&&s| s < 0).count();
        let (action, agreeing) = match buys.cmp(&sells) {
            std::cmp::Ordering::Greater if buys >= 2 => (Action::Buy, buys),
            std::cmp::Ordering::Less if sells >= 2 => (Action::Sell, sells),
            _ => (Action::Hold, 0),
        };
        AgentVote { action, confidence: agreeing as f64 / subs.len() as f64, weight: c.weight }
    }

    pub fn on_feedback(&mut self, pnl_brl: f64) {
        let factor = if pnl_brl < 0.0 { self.config.after_loss } else { self.config.after_win };
        self.strictness = (self.strictness * factor).clamp(0.5, 2.0);
    }
}

/// Combines votes: each action scores the sum of weight x confidence of the
/// agents voting for it; the best buy/sell score over the total weight is
/// the consensus confidence, and below `min_confidence` the answer is hold.
pub fn coordinate(votes: &[AgentVote], min_confidence: f64) -> Consensus {
    let total: f64 = votes.iter().map(|v| v.weight).sum();
    if total <= 0.0 {
        return Consensus::NONE;
    }
    let score = |action| votes.iter().filter(|v| v.action == action).map(|v| v.weight * v.confidence).sum::<f64>();
    let (buy, sell) = (score(Action::Buy) / total, score(Action::Sell) / total);
    let (action, confidence) = if buy > sell { (Action::Buy, buy) } else { (Action::Sell, sell) };
    if confidence < min_confidence || buy == sell {
        Consensus { action: Action::Hold, confidence: 1.0 - buy.max(sell) }
    } else {
        Consensus { action, confidence }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// `veto`: a strategy's buy or sell is held when the agents' consensus is
    /// the opposite action. `off`: agents are not consulted.
    pub mode: AgentsMode,
    /// Consensus below this confidence is hold (domain: 0.3).
    pub min_confidence: f64,
    pub order_flow: OrderFlowConfig,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self { mode: AgentsMode::Veto, min_confidence: 0.3, order_flow: OrderFlowConfig::default() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentsMode {
    Off,
    Veto,
}

/// The native agent layer: the order-flow agent and the coordinator.
#[derive(Debug, Clone)]
pub struct NativeAgents {
    order_flow: OrderFlowAgent,
    min_confidence: f64,
}

impl NativeAgents {
    pub fn new(config: &AgentsConfig) -> Self {
        Self { order_flow: OrderFlowAgent::new(config.order_flow.clone()), min_confidence: config.min_confidence }
    }
}

impl Agents for NativeAgents {
    fn on_candle(&mut self, _candle: &Candle, frame: &[f64]) -> Consensus {
        coordinate(&[self.order_flow.vote(frame)], self.min_confidence)
    }

    fn on_feedback(&mut self, trip: &RoundTrip) {
        self.order_flow.on_feedback(trip.pnl_brl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::V3_FEATURE_COUNT;

    fn frame(imb: f64, ma5: f64, cum: f64, buy: f64, sell: f64) -> Vec<f64> {
        let mut f = vec![0.0; V3_FEATURE_COUNT];
        for (name, v) in OrderFlowAgent::INPUTS.iter().zip([imb, ma5, cum, buy, sell]) {
            f[v3_index(name).expect("name")] = v;
        }
        f
    }

    #[test]
    fn majority_of_order_flow_sub_signals() {
        let a = OrderFlowAgent::new(OrderFlowConfig::default());
        let v = a.vote(&frame(0.5, 0.4, 2000.0, 0.7, 0.2));
        assert_eq!((v.action, v.confidence), (Action::Buy, 1.0));
        let v = a.vote(&frame(-0.5, -0.4, 0.0, 0.3, 0.5));
        assert_eq!((v.action, v.confidence), (Action::Sell, 0.5));
        assert_eq!(a.vote(&frame(0.5, -0.4, 0.0, 0.5, 0.5)).action, Action::Hold, "split vote");
    }

    #[test]
    fn thresholds_tighten_after_losses_and_relax_after_wins() {
        let mut a = OrderFlowAgent::new(OrderFlowConfig::default());
        a.on_feedback(-10.0);
        assert!((a.strictness() - 1.05).abs() < 1e-12);
        // 0.31 passed the 0.3 threshold; it no longer passes 0.315.
        assert_eq!(a.vote(&frame(0.31, 0.31, 0.0, 0.5, 0.5)).action, Action::Hold);
        a.on_feedback(10.0);
        assert!((a.strictness() - 1.05 * 0.98).abs() < 1e-12);
    }

    #[test]
    fn coordinator_weighs_confidence_and_holds_when_weak() {
        let vote = |action, confidence, weight| AgentVote { action, confidence, weight };
        let c = coordinate(
            &[vote(Action::Buy, 1.0, 0.3), vote(Action::Sell, 0.5, 0.25), vote(Action::Buy, 0.5, 0.25)],
            0.3,
        );
        assert_eq!(c.action, Action::Buy);
        assert!((c.confidence - (0.3 + 0.125) / 0.8).abs() < 1e-12);
        let weak = coordinate(&[vote(Action::Buy, 0.25, 0.3), vote(Action::Hold, 0.0, 0.7)], 0.3);
        assert_eq!(weak.action, Action::Hold);
        assert_eq!(coordinate(&[], 0.3), Consensus::NONE);
    }
}
