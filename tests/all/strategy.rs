//! Regime rules and the native strategies, on hand-built feature frames.

use tickhost_core::features::{V3_FEATURE_COUNT, v3_index};
use tickhost_core::regime::{Regime, RegimeConfig, RegimeDetector, RegimeReading};
use tickhost_core::strategy::{
    Action, RangeConfig, RangeStrategy, RegimeStrategies, StrategyConfig, StrategyInput, TrendConfig, TrendStrategy,
};
use tickhost_core::{Candle, Symbol};

fn frame(values: &[(&str, f64)]) -> Vec<f64> {
    let mut v = vec![0.0; V3_FEATURE_COUNT];
    for (name, x) in values {
        v[v3_index(name).unwrap_or_else(|| panic!("no {name}"))] = *x;
    }
    v
}

fn candle(close: f64, high: f64, low: f64) -> Candle {
    Candle {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        open_ms: 0,
        close_ms: 60_000,
        open: close,
        high,
        low,
        close,
        volume: 10.0,
        financial_volume: close * 100.0,
        trades: 10,
        buy_volume: 5.0,
        sell_volume: 5.0,
        buy_trades: 5,
        sell_trades: 5,
        max_buy_run: 1,
        max_sell_run: 1,
    }
}

#[test]
fn regime_rules_follow_adx_and_ema_alignment() {
    let d = RegimeDetector::new(RegimeConfig::default());
    let f = |adx, e9, e20, e50| frame(&[("v3_adx", adx), ("v3_ema_9", e9), ("v3_ema_20", e20), ("v3_ema_50", e50)]);
    let up = d.detect(60, &f(40.0, 3.0, 2.0, 1.0));
    assert_eq!(up.regime, Regime::TrendUp);
    assert!((up.confidence - 0.7).abs() < 1e-12, "0.5 + (40-25)/75");
    assert_eq!(d.detect(60, &f(80.0, 3.0, 2.0, 1.0)).confidence, 0.8, "capped at 0.8");
    assert_eq!(d.detect(60, &f(30.0, 1.0, 2.0, 3.0)).regime, Regime::TrendDown);
    let range = d.detect(60, &f(20.0, 1.0, 2.0, 3.0));
    assert_eq!((range.regime, range.confidence), (Regime::Range, 0.6));
    let mixed = d.detect(60, &f(30.0, 2.0, 3.0, 1.0));
    assert_eq!((mixed.regime, mixed.confidence), (Regime::Undefined, 0.3));
    assert_eq!(d.detect(49, &f(40.0, 3.0, 2.0, 1.0)).regime, Regime::Undefined, "needs 50 candles");
}

fn reading(regime: Regime, confidence: f64, adx: f64) -> RegimeReading {
    RegimeReading { regime, confidence, adx }
}

#[test]
fn trend_strategy_acts_only_when_every_gate_passes() {
    let s = TrendStrategy::new(TrendConfig::default());
    let c = candle(5000.0, 5001.0, 4999.0);
    let strong = frame(&[
        ("v3_ema_alignment_score", 1.0),
        ("v3_di_diff", 10.0),
        ("v3_momentum_5", 2.0),
        ("v3_momentum_20", 8.0),
        ("v3_momentum_pct_20", 0.004),
        ("v3_volume_imbalance_ma_5", 0.2),
    ]);
    let sig =
        s.on_candle(&StrategyInput { candle: &c, features: &strong, regime: reading(Regime::TrendUp, 0.7, 40.0) });
    assert_eq!(sig.action, Action::Buy);
    assert_eq!((sig.stop_points, sig.target_points), (5.0, 10.0));
    assert_eq!(sig.direction, 1.0);

    // The same evidence in a down trend disagrees with the side: direction fails.
    let sig =
        s.on_candle(&StrategyInput { candle: &c, features: &strong, regime: reading(Regime::TrendDown, 0.7, 40.0) });
    assert_eq!((sig.action, sig.reason), (Action::Hold, "direction below threshold"));

    // Too small a move.
    let mut weak = strong.clone();
    weak[v3_index("v3_momentum_pct_20").expect("idx")] = 0.001;
    let sig = s.on_candle(&StrategyInput { candle: &c, features: &weak, regime: reading(Regime::TrendUp, 0.7, 40.0) });
    assert_eq!((sig.action, sig.reason), (Action::Hold, "expected move below threshold"));

    // Low regime confidence.
    let sig =
        s.on_candle(&StrategyInput { candle: &c, features: &strong, regime: reading(Regime::TrendUp, 0.55, 26.0) });
    assert_eq!((sig.action, sig.reason), (Action::Hold, "confidence below threshold"));
}

#[test]
fn range_strategy_finds_five_bar_pivots_and_fades_the_edges() {
    let mut s = RangeStrategy::new(RangeConfig::default());
    let v3 =
        frame(&[("v3_atr_14", 2.0), ("v3_bb_position_20", 0.1), ("v3_volume_imbalance", 0.3), ("v3_momentum_1", 0.5)]);
    let r = reading(Regime::Range, 0.6, 18.0);
    // A saw-tooth between ~4970 and ~5030 (0.2% of 5000 is 10 points, so the
    // range must be wider than 20 points to have a middle).
    let path = [5000.0, 4985.0, 4970.0, 4985.0, 5000.0, 5015.0, 5030.0, 5015.0, 5000.0, 4985.0, 4973.0, 4985.0, 5000.0];
    for p in path {
        s.on_candle(&StrategyInput { candle: &candle(p, p + 0.5, p - 0.5), features: &v3, regime: r });
    }
    let (support, resistance) = s.levels(4990.0);
    assert_eq!(support, Some(4972.5), "the nearer of the two pivot lows (4969.5, 4972.5)");
    assert_eq!(resistance, Some(5030.5));
    // Near support, with the flow turning up: buy, stop = max(ATR, 3) and target 1.5 x stop.
    let sig = s.on_candle(&StrategyInput { candle: &candle(4975.0, 4975.5, 4974.5), features: &v3, regime: r });
    assert_eq!(sig.action, Action::Buy, "{sig:?}");
    assert_eq!((sig.stop_points, sig.target_points), (3.0, 4.5));
    // Mid-range: hold.
    let sig = s.on_candle(&StrategyInput { candle: &candle(5000.0, 5000.5, 4999.5), features: &v3, regime: r });
    assert_eq!((sig.action, sig.reason), (Action::Hold, "mid-range"));
}

#[test]
fn the_undefined_regime_holds() {
    let mut s = RegimeStrategies::new(&StrategyConfig::default());
    let c = candle(5000.0, 5001.0, 4999.0);
    let v3 = frame(&[]);
    let sig = s.on_candle(&StrategyInput { candle: &c, features: &v3, regime: reading(Regime::Undefined, 0.3, 25.0) });
    assert_eq!(sig.action, Action::Hold);
}
