//! The incremental feature core against the naive reference, on realistic
//! generated sessions (the unit tests in core cover synthetic edge cases).

use tickhost_core::Candle;
use tickhost_core::candles::CandleBuilder;
use tickhost_core::features::{FeatureCore, V3_FEATURE_COUNT, V3_FEATURE_NAMES, reference};
use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_core::time::{MS_PER_MINUTE, SessionClock};

fn candles(days: &[(u32, u64)]) -> Vec<Candle> {
    let clock = SessionClock::default();
    let mut builder = CandleBuilder::new(MS_PER_MINUTE, clock);
    let mut out = Vec::new();
    for &(day, seed) in days {
        for t in SessionGenerator::new(SessionSpec::wdo(2024, 1, day, seed)).filter(|t| !t.is_edit) {
            out.extend(builder.on_trade(&t));
        }
    }
    out.extend(builder.flush());
    out
}

#[test]
fn every_v3_feature_matches_the_reference_across_two_sessions() {
    let clock = SessionClock::default();
    let candles = candles(&[(8, 5), (9, 6)]);
    assert!(candles.len() > 1_000);
    let mut core = FeatureCore::new(clock);
    let (mut fast, mut slow) = ([0.0; V3_FEATURE_COUNT], [0.0; V3_FEATURE_COUNT]);
    for (i, c) in candles.iter().enumerate() {
        core.on_candle(c, &mut fast);
        reference::compute_last(&candles[..=i], clock, &mut slow);
        for k in 0..V3_FEATURE_COUNT {
            let (a, b) = (fast[k], slow[k]);
            assert!(a.is_finite(), "{} is not finite at candle {i}", V3_FEATURE_NAMES[k]);
            let tolerance = 1e-9 * a.abs().max(b.abs()).max(1.0);
            assert!(
                (a - b).abs() <= tolerance,
                "{} at candle {i}: incremental {a} vs reference {b}",
                V3_FEATURE_NAMES[k]
            );
        }
    }
}
