//! Native regime strategies. They are the fallbacks that answer whenever a
//! plugin cannot, so they must be cheap, deterministic and never fail.

use serde::{Deserialize, Serialize};

use crate::features::v3_index;
use crate::market::{Candle, Side, Symbol};
use crate::regime::{Regime, RegimeReading};

/// What a strategy wants to do at a candle close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Buy,
    Sell,
    Hold,
}

impl Action {
    pub fn side(self) -> Option<Side> {
        match self {
            Action::Buy => Some(Side::Buy),
            Action::Sell => Some(Side::Sell),
            Action::Hold => None,
        }
    }
}

/// A strategy's output. `stop` and `target` are distances in points from the entry.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Signal {
    pub ts_ms: i64,
    pub symbol: Symbol,
    pub regime: Regime,
    pub action: Action,
    /// Regime confidence, in [0, 1].
    pub confidence: f64,
    /// Estimated probability that the trade reaches its target, in [0, 1].
    pub probability: f64,
    /// Share of the directional evidence that agrees with the action, in [0, 1].
    pub direction: f64,
    /// Expected move as a fraction of price.
    pub expected_move: f64,
    pub stop_points: f64,
    pub target_points: f64,
    /// Why the strategy held, when it did.
    pub reason: &'static str,
}

/// Gates a signal must pass to be acted on (domain.md per regime).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub confidence: f64,
    pub probability: f64,
    pub direction: f64,
    /// Minimum expected move, fraction of price (0.003 = 0.3%).
    pub expected_move: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { confidence: 0.8, probability: 0.8, direction: 0.8, expected_move: 0.8 }
    }
}

impl Thresholds {
    /// Which gate failed first, if any.
    fn failed_gate(&self, s: &Signal) -> Option<&'static str> {
        if s.confidence < self.confidence {
            Some("confidence below threshold")
        } else if s.probability < self.probability {
            Some("probability below threshold")
        } else if s.direction < self.direction {
            Some("direction below threshold")
        } else if s.expected_move < self.expected_move {
            Some("expected move below threshold")
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendConfig {
    pub thresholds: Thresholds,
    pub stop_points: f64,
    pub target_points: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds { confidence: 0.60, probability: 0.60, direction: 0.70, expected_move: 0.003 },
            stop_points: 5.0,
            target_points: 10.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RangeConfig {
    pub thresholds: Thresholds,
    /// How close to a level (fraction of price) counts as "at" support or resistance.
    pub level_proximity: f64,
    /// Candles scanned for pivots.
    pub lookback: usize,
    /// Bars on each side that a pivot must exceed (2 -> 5-bar pivots).
    pub pivot_wing: usize,
    pub stop_atr_multiple: f64,
    pub min_stop_points: f64,
    /// Target as a multiple of the stop.
    pub reward_risk: f64,
}

impl Default for RangeConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds { confidence: 0.60, probability: 0.55, direction: 0.50, expected_move: 0.0015 },
            level_proximity: 0.002,
            lookback: 50,
            pivot_wing: 2,
            stop_atr_multiple: 1.0,
            min_stop_points: 3.0,
            reward_risk: 1.5,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategyConfig {
    pub trend: TrendConfig,
    pub range: RangeConfig,
    /// Gates for the undefined regime (0.8 everywhere: in practice, hold).
    pub undefined: Thresholds,
}

/// Everything a strategy sees at a candle close.
#[derive(Clone, Copy, Debug)]
pub struct StrategyInput<'a> {
    pub candle: &'a Candle,
    /// The feature frame: the v3 features first, in
    /// [`crate::features::V3_FEATURE_NAMES`] order, then the outputs of the
    /// feature extensions (see [`crate::hooks::FeatureSchema`]).
    pub features: &'a [f64],
    pub regime: RegimeReading,
}

fn v3(name: &str) -> usize {
    v3_index(name).unwrap_or_else(|| panic!("v3 schema lacks {name}"))
}

fn hold(input: &StrategyInput<'_>, reason: &'static str) -> Signal {
    Signal {
        ts_ms: input.candle.close_ms,
        symbol: input.candle.symbol,
        regime: input.regime.regime,
        action: Action::Hold,
        confidence: input.regime.confidence,
        probability: 0.0,
        direction: 0.0,
        expected_move: 0.0,
        stop_points: 0.0,
        target_points: 0.0,
        reason,
    }
}

fn gate(signal: Signal, thresholds: &Thresholds) -> Signal {
    match thresholds.failed_gate(&signal) {
        Some(reason) => Signal { action: Action::Hold, reason, ..signal },
        None => signal,
    }
}

/// Follows the trend: buy in `trend_up`, sell in `trend_down`.
#[derive(Debug, Clone)]
pub struct TrendStrategy {
    config: TrendConfig,
    ema_alignment: usize,
    di_diff: usize,
    momentum_5: usize,
    momentum_20: usize,
    momentum_pct_20: usize,
    imbalance_ma_5: usize,
}

impl TrendStrategy {
    pub fn new(config: TrendConfig) -> Self {
        Self {
            config,
            ema_alignment: v3("v3_ema_alignment_score"),
            di_diff: v3("v3_di_diff"),
            momentum_5: v3("v3_momentum_5"),
            momentum_20: v3("v3_momentum_20"),
            momentum_pct_20: v3("v3_momentum_pct_20"),
            imbalance_ma_5: v3("v3_volume_imbalance_ma_5"),
        }
    }

    pub fn on_candle(&self, input: &StrategyInput<'_>) -> Signal {
        let (side, sign) = match input.regime.regime {
            Regime::TrendUp => (Action::Buy, 1.0),
            Regime::TrendDown => (Action::Sell, -1.0),
            _ => return hold(input, "not a trend regime"),
        };
        let f = input.features;
        // Five independent pieces of evidence; direction is the share that agrees.
        let votes = [
            f[self.ema_alignment] * sign > 0.0,
            f[self.di_diff] * sign > 0.0,
            f[self.momentum_5] * sign > 0.0,
            f[self.momentum_20] * sign > 0.0,
            f[self.imbalance_ma_5] * sign > 0.0,
        ];
        let direction = votes.iter().filter(|&&v| v).count() as f64 / votes.len() as f64;
        let adx_excess = ((input.regime.adx - 25.0) / 25.0).clamp(0.0, 1.0);
        let signal = Signal {
            action: side,
            probability: 0.5 + 0.25 * direction + 0.25 * adx_excess,
            direction,
            expected_move: (f[self.momentum_pct_20] * sign).max(0.0),
            stop_points: self.config.stop_points,
            target_points: self.config.target_points,
            reason: "trend follow",
            ..hold(input, "")
        };
        gate(signal, &self.config.thresholds)
    }
}

/// Fades the edges of a range: buy near support, sell near resistance, with
/// levels from pivots over the recent candles.
#[derive(Debug, Clone)]
pub struct RangeStrategy {
    config: RangeConfig,
    /// (high, low) of the last `lookback` candles, oldest first, in a ring.
    bars: Vec<(f64, f64)>,
    next: usize,
    filled: usize,
    atr_14: usize,
    bb_position_20: usize,
    volume_imbalance: usize,
    momentum_1: usize,
}

impl RangeStrategy {
    pub fn new(config: RangeConfig) -> Self {
        let lookback = config.lookback.max(2 * config.pivot_wing + 1);
        Self {
            bars: vec![(0.0, 0.0); lookback],
            next: 0,
            filled: 0,
            atr_14: v3("v3_atr_14"),
            bb_position_20: v3("v3_bb_position_20"),
            volume_imbalance: v3("v3_volume_imbalance"),
            momentum_1: v3("v3_momentum_1"),
            config: RangeConfig { lookback, ..config },
        }
    }

    fn bar(&self, i: usize) -> (f64, f64) {
        let n = self.bars.len();
        self.bars[(self.next + n - self.filled + i) % n]
    }

    /// The nearest pivot low below `price` and pivot high above it. The scan
    /// is bounded by `lookback`, so the cost per candle is constant.
    pub fn levels(&self, price: f64) -> (Option<f64>, Option<f64>) {
        let w = self.config.pivot_wing;
        let (mut support, mut resistance) = (None::<f64>, None::<f64>);
        if self.filled < 2 * w + 1 {
            return (None, None);
        }
        for i in w..self.filled - w {
            let (h, l) = self.bar(i);
            let neighbours = (i - w..=i + w).filter(|&j| j != i).map(|j| self.bar(j));
            let (mut is_high, mut is_low) = (true, true);
            for (nh, nl) in neighbours {
                is_high &= h > nh;
                is_low &= l < nl;
            }
            if is_high && h >= price {
                resistance = Some(resistance.map_or(h, |r: f64| r.min(h)));
            }
            if is_low && l <= price {
                support = Some(support.map_or(l, |s: f64| s.max(l)));
            }
        }
        (support, resistance)
    }

    pub fn on_candle(&mut self, input: &StrategyInput<'_>) -> Signal {
        let c = input.candle;
        self.bars[self.next] = (c.high, c.low);
        self.next = (self.next + 1) % self.bars.len();
        self.filled = (self.filled + 1).min(self.bars.len());
        if input.regime.regime != Regime::Range {
            return hold(input, "not a range regime");
        }
        let price = c.close;
        let (Some(support), Some(resistance)) = self.levels(price) else {
            return hold(input, "no support and resistance yet");
        };
        let f = input.features;
        let near = self.config.level_proximity;
        let (action, distance, room, votes) = if (price - support) / price <= near {
            let votes = [f[self.bb_position_20] < 0.3, f[self.volume_imbalance] > 0.0, f[self.momentum_1] > 0.0];
            (Action::Buy, (price - support) / price, (resistance - price) / price, votes)
        } else if (resistance - price) / price <= near {
            let votes = [f[self.bb_position_20] > 0.7, f[self.volume_imbalance] < 0.0, f[self.momentum_1] < 0.0];
            (Action::Sell, (resistance - price) / price, (price - support) / price, votes)
        } else {
            return hold(input, "mid-range");
        };
        let direction = (1 + votes.iter().filter(|&&v| v).count()) as f64 / (1 + votes.len()) as f64;
        let stop = (f[self.atr_14] * self.config.stop_atr_multiple).max(self.config.min_stop_points);
        let signal = Signal {
            action,
            probability: 0.5 + 0.25 * (1.0 - distance / near) + 0.25 * (direction - 0.5),
            direction,
            expected_move: room,
            stop_points: stop,
            target_points: stop * self.config.reward_risk,
            reason: "range fade",
            ..hold(input, "")
        };
        gate(signal, &self.config.thresholds)
    }
}

/// One native strategy per regime.
#[derive(Debug, Clone)]
pub struct RegimeStrategies {
    trend: TrendStrategy,
    range: RangeStrategy,
    undefined: Thresholds,
}

impl crate::hooks::Strategies for RegimeStrategies {
    fn on_candle(&mut self, input: &StrategyInput<'_>) -> Signal {
        RegimeStrategies::on_candle(self, input)
    }
}

impl RegimeStrategies {
    pub fn new(config: &StrategyConfig) -> Self {
        Self {
            trend: TrendStrategy::new(config.trend.clone()),
            range: RangeStrategy::new(config.range.clone()),
            undefined: config.undefined,
        }
    }

    pub fn on_candle(&mut self, input: &StrategyInput<'_>) -> Signal {
        // The range strategy tracks pivots on every candle, whatever the regime.
        let range = self.range.on_candle(input);
        match input.regime.regime {
            Regime::TrendUp | Regime::TrendDown => self.trend.on_candle(input),
            Regime::Range => range,
            Regime::Undefined => gate(hold(input, "undefined regime"), &self.undefined),
        }
    }
}
