//! Backtest metrics. Pure arithmetic over round trips and the equity curve;
//! rendering (tables, plots, files) belongs to the binary.

use serde::Serialize;

use crate::broker::{ExitReason, RoundTrip};
use crate::consensus::ModelCounts;
use crate::ingest::IngestCounters;
use crate::regime::Regime;
use crate::risk::{RefusalCounts, TradingState};

/// Equity marked at a candle close.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EquityPoint {
    pub ts_ms: i64,
    pub equity_brl: f64,
    pub in_position: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TradeStats {
    pub trades: u32,
    pub wins: u32,
    pub losses: u32,
    pub win_rate: f64,
    pub pnl_points: f64,
    pub pnl_brl: f64,
}

impl TradeStats {
    fn add(&mut self, t: &RoundTrip) {
        self.trades += 1;
        if t.pnl_brl > 0.0 {
            self.wins += 1;
        } else {
            self.losses += 1;
        }
        self.pnl_points += t.pnl_points;
        self.pnl_brl += t.pnl_brl;
        self.win_rate = f64::from(self.wins) / f64::from(self.trades);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegimeStats {
    pub regime: Regime,
    /// Candles that closed in this regime.
    pub candles: u64,
    #[serde(flatten)]
    pub stats: TradeStats,
}

/// How decisions ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    pub candles: u64,
    pub holds: u64,
    pub signals: u64,
    pub orders: u64,
    pub refused: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BacktestReport {
    pub symbol: String,
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    pub capital_brl: f64,
    pub trades_seen: u64,
    #[serde(flatten)]
    pub totals: TradeStats,
    pub fees_brl: f64,
    pub gross_profit_brl: f64,
    pub gross_loss_brl: f64,
    /// Gross profit / gross loss; `None` when there was no loss.
    pub profit_factor: Option<f64>,
    pub avg_win_brl: f64,
    pub avg_loss_brl: f64,
    /// Annualised from per-candle equity returns (252 sessions of this many candles).
    pub sharpe: f64,
    pub sortino: f64,
    pub max_drawdown_brl: f64,
    pub max_drawdown_pct: f64,
    /// Share of candles with a position open.
    pub exposure: f64,
    pub per_regime: Vec<RegimeStats>,
    pub exits: Vec<(ExitReason, u32)>,
    pub decisions: DecisionCounts,
    /// How many buys and sells the regime models informed, and how many
    /// fell back to the native rule.
    pub models: ModelCounts,
    /// Why strategies held, most frequent first: the first question when a strategy does not trade.
    pub hold_reasons: Vec<(&'static str, u64)>,
    pub risk_refusals: RefusalCounts,
    pub final_trading_state: TradingState,
    pub ingest: IngestCounters,
    /// Edits of trades in an already closed candle (the candle is not rewritten).
    pub edits_after_close: u64,
    pub round_trips: Vec<RoundTrip>,
    pub equity_curve: Vec<EquityPoint>,
}

/// Accumulates what the report needs while the engine runs.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    capital_brl: f64,
    equity: Vec<EquityPoint>,
    trips: Vec<RoundTrip>,
    regime_candles: [u64; 4],
}

impl ReportBuilder {
    pub fn new(capital_brl: f64) -> Self {
        Self { capital_brl, equity: Vec::with_capacity(4096), trips: Vec::with_capacity(256), regime_candles: [0; 4] }
    }

    pub fn on_candle(&mut self, point: EquityPoint, regime: Regime) {
        self.equity.push(point);
        self.regime_candles[regime as usize] += 1;
    }

    pub fn on_round_trip(&mut self, trip: RoundTrip) {
        self.trips.push(trip);
    }

    pub fn round_trips(&self) -> &[RoundTrip] {
        &self.trips
    }

    /// Computes every metric. `candles_per_session` annualises Sharpe/Sortino.
    pub fn finish(&self, context: ReportContext) -> BacktestReport {
        let mut totals = TradeStats::default();
        let mut per_regime: Vec<RegimeStats> = Regime::ALL
            .iter()
            .map(|&regime| RegimeStats {
                regime,
                candles: self.regime_candles[regime as usize],
                stats: Default::default(),
            })
            .collect();
        let (mut gross_profit, mut gross_loss, mut fees) = (0.0, 0.0, 0.0);
        let mut exits: Vec<(ExitReason, u32)> = Vec::new();
        for t in &self.trips {
            totals.add(t);
            per_regime[t.regime as usize].stats.add(t);
            fees += t.fees_brl;
            if t.pnl_brl > 0.0 {
                gross_profit += t.pnl_brl;
            } else {
                gross_loss -= t.pnl_brl;
            }
            match exits.iter_mut().find(|(r, _)| *r == t.exit_reason) {
                Some((_, n)) => *n += 1,
                None => exits.push((t.exit_reason, 1)),
            }
        }
        let (sharpe, sortino) = risk_adjusted_returns(&self.equity, context.candles_per_session);
        let (max_dd_brl, max_dd_pct) = max_drawdown(self.capital_brl, &self.equity);
        let in_position = self.equity.iter().filter(|p| p.in_position).count();
        BacktestReport {
            symbol: context.symbol,
            first_ts_ms: context.first_ts_ms,
            last_ts_ms: context.last_ts_ms,
            capital_brl: self.capital_brl,
            trades_seen: context.trades_seen,
            profit_factor: (gross_loss > 0.0).then(|| gross_profit / gross_loss),
            avg_win_brl: if totals.wins > 0 { gross_profit / f64::from(totals.wins) } else { 0.0 },
            avg_loss_brl: if totals.losses > 0 { -gross_loss / f64::from(totals.losses) } else { 0.0 },
            totals,
            fees_brl: fees,
            gross_profit_brl: gross_profit,
            gross_loss_brl: gross_loss,
            sharpe,
            sortino,
            max_drawdown_brl: max_dd_brl,
            max_drawdown_pct: max_dd_pct,
            exposure: if self.equity.is_empty() { 0.0 } else { in_position as f64 / self.equity.len() as f64 },
            per_regime,
            exits,
            decisions: context.decisions,
            models: context.models,
            hold_reasons: {
                let mut reasons = context.hold_reasons;
                reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                reasons
            },
            risk_refusals: context.risk_refusals,
            final_trading_state: context.final_trading_state,
            ingest: context.ingest,
            edits_after_close: context.edits_after_close,
            round_trips: self.trips.clone(),
            equity_curve: self.equity.clone(),
        }
    }
}

/// What the engine knows that the builder does not.
#[derive(Debug, Clone)]
pub struct ReportContext {
    pub symbol: String,
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    pub trades_seen: u64,
    pub candles_per_session: f64,
    pub decisions: DecisionCounts,
    pub models: ModelCounts,
    pub hold_reasons: Vec<(&'static str, u64)>,
    pub risk_refusals: RefusalCounts,
    pub final_trading_state: TradingState,
    pub ingest: IngestCounters,
    pub edits_after_close: u64,
}

/// (Sharpe, Sortino), annualised, from per-candle returns of equity.
pub fn risk_adjusted_returns(equity: &[EquityPoint], candles_per_session: f64) -> (f64, f64) {
    if equity.len() < 3 {
        return (0.0, 0.0);
    }
    let returns: Vec<f64> =
        equity.windows(2).map(|w| (w[1].equity_brl - w[0].equity_brl) / w[0].equity_brl.abs().max(1e-9)).collect();
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let downside = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let annualise = (252.0 * candles_per_session).sqrt();
    let ratio = |denominator: f64| if denominator > 0.0 { mean / denominator * annualise } else { 0.0 };
    (ratio(var.sqrt()), ratio(downside))
}

/// (BRL, fraction of the peak) of the deepest peak-to-trough fall.
pub fn max_drawdown(capital_brl: f64, equity: &[EquityPoint]) -> (f64, f64) {
    let mut peak = capital_brl;
    let (mut worst_brl, mut worst_pct) = (0.0f64, 0.0f64);
    for p in equity {
        peak = peak.max(p.equity_brl);
        let dd = peak - p.equity_brl;
        worst_brl = worst_brl.max(dd);
        if peak > 0.0 {
            worst_pct = worst_pct.max(dd / peak);
        }
    }
    (worst_brl, worst_pct)
}
