//! Regime detection (the Python system's RegimeAnalyzer, same rules).

use serde::{Deserialize, Serialize};

use crate::features::v3_index;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    TrendUp,
    TrendDown,
    Range,
    Undefined,
}

impl Regime {
    pub const ALL: [Regime; 4] = [Regime::TrendUp, Regime::TrendDown, Regime::Range, Regime::Undefined];

    pub fn name(self) -> &'static str {
        match self {
            Regime::TrendUp => "trend_up",
            Regime::TrendDown => "trend_down",
            Regime::Range => "range",
            Regime::Undefined => "undefined",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RegimeReading {
    pub regime: Regime,
    pub confidence: f64,
    pub adx: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegimeConfig {
    /// Candles needed before any regime other than `undefined` is reported.
    pub min_candles: u64,
    pub adx_threshold: f64,
}

impl Default for RegimeConfig {
    fn default() -> Self {
        Self { min_candles: 50, adx_threshold: 25.0 }
    }
}

/// Reads ADX(14) and EMA 9/20/50 from the v3 frame; the indices are resolved
/// once here, not per candle.
#[derive(Debug, Clone)]
pub struct RegimeDetector {
    config: RegimeConfig,
    adx: usize,
    ema_9: usize,
    ema_20: usize,
    ema_50: usize,
}

impl RegimeDetector {
    pub fn new(config: RegimeConfig) -> Self {
        let idx = |name| v3_index(name).unwrap_or_else(|| panic!("v3 schema lacks {name}"));
        Self { config, adx: idx("v3_adx"), ema_9: idx("v3_ema_9"), ema_20: idx("v3_ema_20"), ema_50: idx("v3_ema_50") }
    }

    pub fn detect(&self, candles_seen: u64, v3: &[f64]) -> RegimeReading {
        let adx = v3[self.adx];
        let (e9, e20, e50) = (v3[self.ema_9], v3[self.ema_20], v3[self.ema_50]);
        let threshold = self.config.adx_threshold;
        let undefined = RegimeReading { regime: Regime::Undefined, confidence: 0.3, adx };
        if candles_seen < self.config.min_candles {
            return undefined;
        }
        let trend_confidence = (0.5 + (adx - threshold) / 75.0).min(0.8);
        if adx > threshold && e9 > e20 && e20 > e50 {
            RegimeReading { regime: Regime::TrendUp, confidence: trend_confidence, adx }
        } else if adx > threshold && e9 < e20 && e20 < e50 {
            RegimeReading { regime: Regime::TrendDown, confidence: trend_confidence, adx }
        } else if adx < threshold {
            RegimeReading { regime: Regime::Range, confidence: 0.6, adx }
        } else {
            undefined
        }
    }
}
