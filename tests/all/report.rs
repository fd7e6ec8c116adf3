use tickhost_core::report::{EquityPoint, max_drawdown, risk_adjusted_returns};

fn curve(values: &[f64]) -> Vec<EquityPoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| EquityPoint { ts_ms: i as i64, equity_brl: v, in_position: false })
        .collect()
}

#[test]
fn max_drawdown_is_the_deepest_fall_from_a_peak() {
    let (brl, pct) = max_drawdown(100.0, &curve(&[100.0, 120.0, 90.0, 130.0, 110.0]));
    assert_eq!(brl, 30.0);
    assert!((pct - 0.25).abs() < 1e-12);
    assert_eq!(max_drawdown(100.0, &curve(&[100.0, 101.0, 102.0])), (0.0, 0.0));
}

#[test]
fn sharpe_and_sortino_signs_and_flat_curves() {
    let rising = curve(&[100.0, 101.0, 101.5, 103.0, 103.2, 104.0]);
    let (sharpe, sortino) = risk_adjusted_returns(&rising, 100.0);
    assert!(sharpe > 0.0);
    assert_eq!(sortino, 0.0, "no downside: undefined, reported as 0");
    let falling = curve(&[100.0, 99.0, 99.5, 98.0, 98.2, 97.0]);
    let (sharpe, sortino) = risk_adjusted_returns(&falling, 100.0);
    assert!(sharpe < 0.0 && sortino < 0.0);
    assert_eq!(risk_adjusted_returns(&curve(&[100.0; 10]), 100.0), (0.0, 0.0));
}
