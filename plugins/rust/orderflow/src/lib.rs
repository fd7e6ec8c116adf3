//! `orderflow`: the engine's native OrderFlowSpecialist
//! (`tickhost_core::agents::OrderFlowAgent`: a majority vote of order-flow
//! sub-signals, thresholds x1.05 after a loss and x0.98 after a win) as an
//! `hmarl-agent` component, voting at each candle close.
//!
//! Inputs: `OrderFlowAgent::INPUTS` (five v3 order-flow features).
//!
//! State: the threshold multiplier ("strictness", in [0.5, 2]). The native
//! agent keeps it private, so the guest keeps the multiplier itself and
//! hands the native agent thresholds already multiplied by it (the native
//! agent multiplies its thresholds by its own strictness, which stays 1
//! here): the votes are the same, bit for bit. Snapshot: `b"TOF1"` then the
//! multiplier as an f64, little-endian (12 bytes).

use std::cell::RefCell;

use tickhost_core::agents::{OrderFlowAgent, OrderFlowConfig};
use tickhost_core::features::{V3_FEATURE_COUNT, v3_index};
use tickhost_core::strategy::Action as CoreAction;

wit_bindgen::generate!({
    world: "hmarl-agent",
    path: "../../../wit",
    additional_derives: [PartialEq],
});

use exports::tickhost::plugin::agent;
use exports::tickhost::plugin::lifecycle;
use tickhost::plugin::types::{Action, AgentSignal, Cadence, Candle, Description, Feedback, Trade};

const MAGIC: &[u8; 4] = b"TOF1";
/// The native agent's bounds on its multiplier.
const STRICTNESS: std::ops::RangeInclusive<f64> = 0.5..=2.0;

struct State {
    base: OrderFlowConfig,
    strictness: f64,
    agent: OrderFlowAgent,
    /// Where each input goes in the v3 frame the native agent reads.
    slots: [usize; OrderFlowAgent::INPUTS.len()],
    frame: Vec<f64>,
}

impl State {
    fn new(strictness: f64) -> Self {
        let base = OrderFlowConfig::default();
        let slots = OrderFlowAgent::INPUTS.map(|name| v3_index(name).expect("a v3 feature"));
        let agent = OrderFlowAgent::new(Self::scaled(&base, strictness));
        Self { base, strictness, agent, slots, frame: vec![0.0; V3_FEATURE_COUNT] }
    }

    /// `base` with every threshold multiplied by `k`, as the native agent
    /// applies its strictness.
    fn scaled(base: &OrderFlowConfig, k: f64) -> OrderFlowConfig {
        OrderFlowConfig {
            ofi_threshold: base.ofi_threshold * k,
            delta_threshold: base.delta_threshold * k,
            aggression_threshold: base.aggression_threshold * k,
            ..base.clone()
        }
    }

    fn on_candle(&mut self, inputs: &[f64]) -> AgentSignal {
        for (i, &slot) in self.slots.iter().enumerate() {
            let v = inputs.get(i).copied().unwrap_or(0.0);
            self.frame[slot] = if v.is_finite() { v } else { 0.0 };
        }
        let vote = self.agent.vote(&self.frame);
        let action = match vote.action {
            CoreAction::Buy => Action::Buy,
            CoreAction::Sell => Action::Sell,
            CoreAction::Hold => Action::Hold,
        };
        let confidence = if vote.confidence.is_finite() { vote.confidence.clamp(0.0, 1.0) } else { 0.0 };
        let reason = match action {
            Action::Hold => "order flow: no majority",
            _ => "order flow: majority of sub-signals",
        };
        AgentSignal { action, confidence, reason: reason.to_string() }
    }

    /// The native rule (`OrderFlowAgent::on_feedback`).
    fn on_feedback(&mut self, pnl_brl: f64) {
        let factor = if pnl_brl < 0.0 { self.base.after_loss } else { self.base.after_win };
        self.strictness = (self.strictness * factor).clamp(*STRICTNESS.start(), *STRICTNESS.end());
        self.agent = OrderFlowAgent::new(Self::scaled(&self.base, self.strictness));
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new(1.0));
}

fn restore_strictness(bytes: &[u8]) -> Result<f64, String> {
    if bytes.is_empty() {
        return Ok(1.0);
    }
    let rest = bytes.strip_prefix(MAGIC).ok_or("orderflow snapshot: bad magic (not a TOF1 snapshot)")?;
    let k = f64::from_le_bytes(
        rest.try_into().map_err(|_| format!("orderflow snapshot: expected 12 bytes, got {}", bytes.len()))?,
    );
    if !STRICTNESS.contains(&k) {
        return Err(format!("orderflow snapshot: multiplier {k} outside [0.5, 2]"));
    }
    Ok(k)
}

struct Component;

impl lifecycle::Guest for Component {
    fn describe() -> Description {
        Description {
            name: "orderflow".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: OrderFlowAgent::INPUTS.iter().map(|s| s.to_string()).collect(),
            outputs: Vec::new(),
            cadence: Cadence::PerCandle,
        }
    }

    fn snapshot() -> Vec<u8> {
        let k = STATE.with_borrow(|s| s.strictness);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&k.to_le_bytes());
        out
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        let k = restore_strictness(&state)?;
        STATE.set(State::new(k));
        Ok(())
    }
}

impl agent::Guest for Component {
    /// Per-candle agent: no opinion per trade.
    fn on_trade(_trade: Trade, _inputs: Vec<f64>) -> Option<AgentSignal> {
        None
    }

    fn on_candle(_candle: Candle, inputs: Vec<f64>) -> AgentSignal {
        STATE.with_borrow_mut(|s| s.on_candle(&inputs))
    }

    fn on_feedback(feedback: Feedback) {
        if feedback.pnl_brl.is_finite() {
            STATE.with_borrow_mut(|s| s.on_feedback(feedback.pnl_brl));
        }
    }
}

export!(Component);

#[cfg(test)]
mod tests {
    use super::*;
    use agent::Guest as _;
    use lifecycle::Guest as _;

    const CANDLE: Candle = Candle {
        open_ms: 0,
        close_ms: 0,
        open: 1.0,
        high: 1.0,
        low: 1.0,
        close: 1.0,
        volume: 0.0,
        financial_volume: 0.0,
        trades: 0,
        buy_volume: 0.0,
        sell_volume: 0.0,
        buy_trades: 0,
        sell_trades: 0,
    };

    fn noise(s: &mut u64) -> f64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 2_000_001) as f64 / 1_000_000.0 - 1.0
    }

    fn feedback(pnl_brl: f64) -> Feedback {
        Feedback { ts_ms: 0, action: Action::Buy, pnl_points: pnl_brl / 10.0, pnl_brl }
    }

    #[test]
    fn votes_exactly_as_the_native_agent_through_feedback() {
        Component::restore(Vec::new()).unwrap();
        let mut native = OrderFlowAgent::new(OrderFlowConfig::default());
        let mut s = 17u64;
        let mut acted = 0;
        for i in 0..3000 {
            let inputs = vec![
                0.5 * noise(&mut s),
                0.5 * noise(&mut s),
                2000.0 * noise(&mut s),
                0.5 + 0.4 * noise(&mut s),
                0.5 + 0.4 * noise(&mut s),
            ];
            let mut frame = vec![0.0; V3_FEATURE_COUNT];
            for (name, v) in OrderFlowAgent::INPUTS.iter().zip(&inputs) {
                frame[v3_index(name).unwrap()] = *v;
            }
            let want = native.vote(&frame);
            let got = Component::on_candle(CANDLE, inputs);
            let want_action = match want.action {
                CoreAction::Buy => Action::Buy,
                CoreAction::Sell => Action::Sell,
                CoreAction::Hold => Action::Hold,
            };
            assert_eq!(got.action, want_action, "candle {i}");
            assert_eq!(want.confidence, got.confidence);
            acted += usize::from(got.action != Action::Hold);
            if i % 10 == 0 {
                // Long losing and winning streaks hit both clamps.
                let pnl = if (i / 300) % 2 == 0 { -50.0 } else { 30.0 };
                native.on_feedback(pnl);
                Component::on_feedback(feedback(pnl));
                let k = restore_strictness(&Component::snapshot()).unwrap();
                assert_eq!(k, native.strictness());
            }
        }
        assert!(acted > 100);
    }

    #[test]
    fn snapshot_round_trip_and_garbage() {
        Component::restore(Vec::new()).unwrap();
        assert_eq!(restore_strictness(&Component::snapshot()), Ok(1.0));
        Component::on_feedback(feedback(-1.0));
        let snap = Component::snapshot();
        assert_eq!(restore_strictness(&snap), Ok(1.05));
        Component::restore(Vec::new()).unwrap();
        Component::restore(snap.clone()).unwrap();
        assert_eq!(Component::snapshot(), snap);
        let mut nan = MAGIC.to_vec();
        nan.extend_from_slice(&f64::NAN.to_le_bytes());
        let mut big = MAGIC.to_vec();
        big.extend_from_slice(&9.0f64.to_le_bytes());
        for garbage in [&b"TOF1"[..], b"garbage", &nan, &big] {
            assert!(Component::restore(garbage.to_vec()).is_err());
        }
        assert_eq!(Component::snapshot(), snap);
        assert_eq!(
            Component::on_trade(
                Trade {
                    ts_ms: 0,
                    trade_number: 0,
                    price: 1.0,
                    quantity: 1,
                    volume: 1.0,
                    trade_type: 1,
                    aggressor: None,
                    is_edit: false
                },
                Vec::new()
            ),
            None
        );
    }
}
