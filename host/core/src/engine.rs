//! One engine shard: trades in, features, regimes, signals, risk-checked
//! orders and paper fills out. Backtests and live runs share this code; only
//! the source feeding it and the observer reading it differ.
//!
//! The per-trade path does no I/O and, once warmed up, no allocation: every
//! buffer is sized at construction and reused.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::agents::{AgentsConfig, AgentsMode, NativeAgents};
use crate::broker::{BrokerConfig, BrokerEvents, ExitReason, Fill, InstrumentConfig, PaperBroker, RoundTrip};
use crate::candles::{CandleBuilder, EditOutcome};
use crate::consensus::{self, ConsensusConfig, ConsensusConfigError, ModelAnswer, ModelCounts, Models, NoModels};
use crate::features::{FeatureCore, V3_FEATURE_COUNT, v3_index};
use crate::hooks::{Agents, FeatureExtensions, FeatureSchema, NoExtensions, SchemaError, Strategies};
use crate::ingest::{Admission, IngestCounters, Sequencer};
use crate::market::{Candle, Symbol, Trade};
use crate::regime::{RegimeConfig, RegimeDetector, RegimeReading};
use crate::report::{BacktestReport, DecisionCounts, EquityPoint, ReportBuilder, ReportContext};
use crate::risk::{OrderCheck, Refusal, RiskConfig, RiskConfigError, RiskEngine, TradingState};
use crate::strategy::{Action, RegimeStrategies, Signal, StrategyConfig, StrategyInput};
use crate::time::{MS_PER_SECOND, SessionClock, parse_hh_mm};
use crate::venue::{ExecutionReport, ExternalBroker, OrderIntent, VenueCounters};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Candle length.
    pub bar_seconds: u32,
    /// Exchange offset from UTC (B3: -180).
    pub utc_offset_minutes: i32,
    /// Recent trades remembered for duplicate and edit detection.
    pub dedup_window: usize,
    /// How far back a timestamp may go before the trade is dropped as too late.
    pub reorder_tolerance_ms: i64,
    /// Local time at which open positions are closed, `HH:MM`.
    pub flatten_at: String,
    pub instrument: InstrumentConfig,
    pub regime: RegimeConfig,
    pub strategy: StrategyConfig,
    pub agents: AgentsConfig,
    /// How a regime model's probability and the agents' vote decide a trade.
    pub consensus: ConsensusConfig,
    pub risk: RiskConfig,
    pub broker: BrokerConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            bar_seconds: 60,
            utc_offset_minutes: crate::time::B3_UTC_OFFSET_MINUTES,
            dedup_window: 1 << 16,
            reorder_tolerance_ms: 5_000,
            flatten_at: "17:50".into(),
            instrument: InstrumentConfig::default(),
            regime: RegimeConfig::default(),
            strategy: StrategyConfig::default(),
            agents: AgentsConfig::default(),
            consensus: ConsensusConfig::default(),
            risk: RiskConfig::default(),
            broker: BrokerConfig::default(),
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum EngineConfigError {
    #[error(transparent)]
    Risk(#[from] RiskConfigError),
    #[error("engine.flatten_at = {0:?} is not a time of day; write it as HH:MM")]
    BadFlattenTime(String),
    #[error("engine.bar_seconds must be at least 1")]
    BadBarLength,
    #[error("instrument.symbol = {0:?} is not a valid ticker")]
    BadSymbol(String),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Consensus(#[from] ConsensusConfigError),
}

/// What fills the engine's extension points. [`Hooks::native`] is the
/// all-native engine; the plugin host builds hooks with plugins in front.
#[derive(Debug)]
pub struct Hooks {
    pub extensions: Box<dyn FeatureExtensions>,
    pub strategies: Box<dyn Strategies>,
    pub agents: Box<dyn Agents>,
}

impl Hooks {
    pub fn native(config: &EngineConfig) -> Self {
        Self {
            extensions: Box::new(NoExtensions),
            strategies: Box::new(RegimeStrategies::new(&config.strategy)),
            agents: Box::new(NativeAgents::new(&config.agents)),
        }
    }
}

/// What happened to a strategy's signal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Hold,
    Refused { reason: Refusal },
    Submitted { order_id: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub signal: Signal,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Receives the engine's outputs as they happen (the outbox's producer side).
/// Every method has an empty default.
pub trait EngineObserver {
    /// A trade the engine accepted: new, or an exchange correction (`is_edit`).
    fn on_trade(&mut self, _trade: &Trade) {}
    fn on_candle(&mut self, _candle: &Candle, _v3: &[f64], _regime: &RegimeReading) {}
    fn on_decision(&mut self, _decision: &Decision) {}
    fn on_fill(&mut self, _fill: &Fill) {}
    fn on_round_trip(&mut self, _trip: &RoundTrip) {}
    /// An order for an external venue (never called with the paper broker):
    /// the observer hands it to the I/O thread that sends it.
    fn on_order_intent(&mut self, _intent: &OrderIntent) {}
}

/// An observer that ignores everything (benchmarks, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;
impl EngineObserver for NoObserver {}

/// Two observers, both told everything, the first first.
impl<A: EngineObserver, B: EngineObserver> EngineObserver for (A, B) {
    fn on_trade(&mut self, trade: &Trade) {
        self.0.on_trade(trade);
        self.1.on_trade(trade);
    }
    fn on_candle(&mut self, candle: &Candle, v3: &[f64], regime: &RegimeReading) {
        self.0.on_candle(candle, v3, regime);
        self.1.on_candle(candle, v3, regime);
    }
    fn on_decision(&mut self, decision: &Decision) {
        self.0.on_decision(decision);
        self.1.on_decision(decision);
    }
    fn on_fill(&mut self, fill: &Fill) {
        self.0.on_fill(fill);
        self.1.on_fill(fill);
    }
    fn on_round_trip(&mut self, trip: &RoundTrip) {
        self.0.on_round_trip(trip);
        self.1.on_round_trip(trip);
    }
    fn on_order_intent(&mut self, intent: &OrderIntent) {
        self.0.on_order_intent(intent);
        self.1.on_order_intent(intent);
    }
}

impl<T: EngineObserver + ?Sized> EngineObserver for &mut T {
    fn on_trade(&mut self, trade: &Trade) {
        (**self).on_trade(trade);
    }
    fn on_candle(&mut self, candle: &Candle, v3: &[f64], regime: &RegimeReading) {
        (**self).on_candle(candle, v3, regime);
    }
    fn on_decision(&mut self, decision: &Decision) {
        (**self).on_decision(decision);
    }
    fn on_fill(&mut self, fill: &Fill) {
        (**self).on_fill(fill);
    }
    fn on_round_trip(&mut self, trip: &RoundTrip) {
        (**self).on_round_trip(trip);
    }
    fn on_order_intent(&mut self, intent: &OrderIntent) {
        (**self).on_order_intent(intent);
    }
}

/// Where orders are filled: the paper broker (default: backtests, replays),
/// or an external venue through [`OrderIntent`]s and [`ExecutionReport`]s.
#[derive(Debug)]
enum Venue {
    Paper(PaperBroker),
    External(ExternalBroker),
}

impl Venue {
    fn position(&self) -> Option<&crate::broker::Position> {
        match self {
            Venue::Paper(b) => b.position(),
            Venue::External(b) => b.position(),
        }
    }

    fn exposure(&self) -> i64 {
        match self {
            Venue::Paper(b) => b.exposure(),
            Venue::External(b) => b.exposure(),
        }
    }

    fn config(&self) -> &BrokerConfig {
        match self {
            Venue::Paper(b) => b.config(),
            Venue::External(b) => b.config(),
        }
    }

    fn unrealized_brl(&self, price: crate::market::Price) -> f64 {
        match self {
            Venue::Paper(b) => b.unrealized_brl(price),
            Venue::External(b) => b.unrealized_brl(price),
        }
    }
}

#[derive(Debug)]
pub struct Engine {
    clock: SessionClock,
    flatten_at_ms: i64,
    symbol: Option<Symbol>,
    sequencer: Sequencer,
    candles: CandleBuilder,
    features: FeatureCore,
    schema: FeatureSchema,
    /// This candle's frame: v3 features, then extension outputs.
    frame: Vec<f64>,
    atr_ratio_index: usize,
    regime: RegimeDetector,
    extensions: Box<dyn FeatureExtensions>,
    strategies: Box<dyn Strategies>,
    agents: Box<dyn Agents>,
    agents_mode: AgentsMode,
    /// The regime classifiers; [`NoModels`] until [`Engine::with_models`].
    models: Box<dyn Models>,
    consensus: ConsensusConfig,
    model_counts: ModelCounts,
    risk: RiskEngine,
    broker: Venue,
    report: ReportBuilder,
    decisions: DecisionCounts,
    /// Few distinct reasons (static strings), so a short list beats a map.
    hold_reasons: Vec<(&'static str, u64)>,
    realized_brl: f64,
    trades_seen: u64,
    foreign_symbol_trades: u64,
    edits_after_close: u64,
    first_ts_ms: Option<i64>,
    last_ts_ms: Option<i64>,
    flattened_day: Option<i64>,
    candles_per_session: f64,
    instrument: InstrumentConfig,
}

impl Engine {
    /// An all-native engine.
    pub fn new(config: &EngineConfig) -> Result<Self, EngineConfigError> {
        Self::with_hooks(config, Hooks::native(config))
    }

    pub fn with_hooks(config: &EngineConfig, hooks: Hooks) -> Result<Self, EngineConfigError> {
        if config.bar_seconds == 0 {
            return Err(EngineConfigError::BadBarLength);
        }
        config.consensus.validate()?;
        let clock = SessionClock { utc_offset_minutes: config.utc_offset_minutes };
        let flatten_at_ms = parse_hh_mm(&config.flatten_at)
            .ok_or_else(|| EngineConfigError::BadFlattenTime(config.flatten_at.clone()))?;
        let symbol = match config.instrument.symbol.as_str() {
            "" => None,
            s => Some(Symbol::new(s).ok_or_else(|| EngineConfigError::BadSymbol(s.into()))?),
        };
        let bar_ms = i64::from(config.bar_seconds) * MS_PER_SECOND;
        let mut schema = FeatureSchema::v3();
        schema.extend(&hooks.extensions.output_names())?;
        let session_ms =
            parse_hh_mm(&config.risk.trading_end).unwrap_or(0) - parse_hh_mm(&config.risk.trading_start).unwrap_or(0);
        Ok(Self {
            clock,
            flatten_at_ms,
            symbol,
            sequencer: Sequencer::new(config.dedup_window, config.reorder_tolerance_ms, clock),
            candles: CandleBuilder::new(bar_ms, clock),
            features: FeatureCore::new(clock),
            frame: vec![0.0; schema.len()],
            schema,
            atr_ratio_index: v3_index("v3_atr_ratio_14").expect("v3 schema has atr_ratio_14"),
            regime: RegimeDetector::new(config.regime.clone()),
            extensions: hooks.extensions,
            strategies: hooks.strategies,
            agents: hooks.agents,
            agents_mode: config.agents.mode,
            models: Box::new(NoModels),
            consensus: config.consensus,
            model_counts: ModelCounts::default(),
            risk: RiskEngine::new(config.risk.clone(), clock)?,
            broker: Venue::Paper(PaperBroker::new(config.broker.clone(), &config.instrument)),
            instrument: config.instrument.clone(),
            report: ReportBuilder::new(config.risk.capital_brl),
            decisions: DecisionCounts::default(),
            hold_reasons: Vec::with_capacity(32),
            realized_brl: 0.0,
            trades_seen: 0,
            foreign_symbol_trades: 0,
            edits_after_close: 0,
            first_ts_ms: None,
            last_ts_ms: None,
            flattened_day: None,
            candles_per_session: (session_ms as f64 / bar_ms as f64).max(1.0),
        })
    }

    /// Puts regime models behind the consensus: from now on a buy or sell
    /// in a regime with a model is decided by blending the model's
    /// probability with the agents' vote (see [`crate::consensus`]).
    pub fn with_models(mut self, models: Box<dyn Models>) -> Self {
        self.models = models;
        self
    }

    /// What the models did to the decisions so far.
    pub fn model_counts(&self) -> ModelCounts {
        self.model_counts
    }

    /// The frame layout: v3 features, then extension outputs.
    pub fn schema(&self) -> &FeatureSchema {
        &self.schema
    }

    pub fn ingest_counters(&self) -> IngestCounters {
        self.sequencer.counters()
    }

    pub fn trading_state(&self) -> TradingState {
        self.risk.state()
    }

    /// Sends orders to an external venue instead of the paper broker: entries
    /// and exits go out through [`EngineObserver::on_order_intent`] and
    /// positions change on [`Engine::on_execution`]. Call before the first trade.
    pub fn use_external_venue(&mut self) {
        self.broker = Venue::External(ExternalBroker::new(self.broker.config().clone(), &self.instrument));
    }

    /// The external venue's counters (`None` with the paper broker).
    pub fn venue_counters(&self) -> Option<VenueCounters> {
        match &self.broker {
            Venue::External(b) => Some(b.counters()),
            Venue::Paper(_) => None,
        }
    }

    /// An external venue's answer to an order intent: fills open and close
    /// positions, which update risk and the report like paper fills do.
    pub fn on_execution(&mut self, report: ExecutionReport, observer: &mut impl EngineObserver) {
        if let Venue::External(b) = &mut self.broker {
            let events = b.on_report(&report);
            self.on_broker_events(events, observer);
        }
    }

    /// Trades of another symbol than this shard's, ignored.
    pub fn foreign_symbol_trades(&self) -> u64 {
        self.foreign_symbol_trades
    }

    /// Feeds one trade from any source.
    pub fn on_trade(&mut self, trade: Trade, observer: &mut impl EngineObserver) {
        self.trades_seen += 1;
        let symbol = *self.symbol.get_or_insert(trade.symbol);
        if trade.symbol != symbol {
            self.foreign_symbol_trades += 1;
            return;
        }
        match self.sequencer.admit(trade) {
            Admission::New(t) | Admission::UnmatchedEdit(t) => {
                observer.on_trade(&t);
                self.on_new_trade(&t, observer);
            }
            Admission::Edit { corrected, .. } => {
                observer.on_trade(&corrected);
                if self.candles.apply_edit(&corrected) == EditOutcome::BarAlreadyClosed {
                    self.edits_after_close += 1;
                }
            }
            Admission::Duplicate | Admission::TooLate { .. } => {}
        }
    }

    fn on_new_trade(&mut self, trade: &Trade, observer: &mut impl EngineObserver) {
        self.first_ts_ms.get_or_insert(trade.ts_ms);
        self.last_ts_ms = Some(trade.ts_ms);
        let day = self.clock.day(trade.ts_ms);
        // Day trading: nothing is carried past flatten_at or into the next session.
        if self.broker.position().is_some()
            && (self.clock.ms_of_day(trade.ts_ms) >= self.flatten_at_ms
                || self.broker.position().is_some_and(|p| self.clock.day(p.entry_ts_ms) != day))
            && self.flattened_day != Some(day)
        {
            self.flattened_day = Some(day);
            self.flatten(trade.ts_ms, ExitReason::SessionEnd, observer);
        }
        match &mut self.broker {
            Venue::Paper(b) => {
                let events = b.on_trade(trade);
                self.on_broker_events(events, observer);
            }
            Venue::External(b) => {
                if let Some(intent) = b.on_trade(trade) {
                    observer.on_order_intent(&intent);
                }
            }
        }
        self.extensions.on_trade(trade, &self.frame);
        if self.agents_mode != AgentsMode::Off {
            self.agents.on_trade(trade, &self.frame);
        }
        if let Some(candle) = self.candles.on_trade(trade) {
            self.on_candle(&candle, observer);
        }
    }

    fn flatten(&mut self, ts_ms: i64, reason: ExitReason, observer: &mut impl EngineObserver) {
        match &mut self.broker {
            Venue::Paper(b) => {
                if let Some(exit) = b.flatten(ts_ms, reason) {
                    self.on_exit(exit, observer);
                }
            }
            Venue::External(b) => {
                if let Some(intent) = b.flatten(ts_ms, reason) {
                    observer.on_order_intent(&intent);
                }
            }
        }
    }

    fn on_broker_events(&mut self, events: BrokerEvents, observer: &mut impl EngineObserver) {
        if let Some(fill) = events.entry {
            observer.on_fill(&fill);
        }
        if let Some(exit) = events.exit {
            self.on_exit(exit, observer);
        }
    }

    fn on_exit(&mut self, (fill, trip): (Fill, RoundTrip), observer: &mut impl EngineObserver) {
        observer.on_fill(&fill);
        observer.on_round_trip(&trip);
        self.risk.on_round_trip(fill.ts_ms, trip.pnl_brl);
        self.agents.on_feedback(&trip);
        self.realized_brl += trip.pnl_brl;
        self.report.on_round_trip(trip);
    }

    fn on_candle(&mut self, candle: &Candle, observer: &mut impl EngineObserver) {
        let (v3, extension_outputs) = self.frame.split_at_mut(V3_FEATURE_COUNT);
        self.features.on_candle(candle, v3);
        self.extensions.on_candle(candle, v3, extension_outputs);
        let reading = self.regime.detect(self.features.candles_seen(), &self.frame);
        observer.on_candle(candle, &self.frame, &reading);

        let close = crate::market::Price::from_f64(candle.close).unwrap_or_default();
        let equity = self.risk.config().capital_brl + self.realized_brl + self.broker.unrealized_brl(close);
        self.risk.on_equity(candle.close_ms, equity);
        let in_position = self.broker.position().is_some();
        self.report.on_candle(EquityPoint { ts_ms: candle.close_ms, equity_brl: equity, in_position }, reading.regime);
        self.decisions.candles += 1;

        let mut signal = self.strategies.on_candle(&StrategyInput { candle, features: &self.frame, regime: reading });
        let agents = (self.agents_mode != AgentsMode::Off).then(|| self.agents.on_candle(candle, &self.frame));
        if signal.action != Action::Hold {
            signal = self.decide(signal, agents);
        }
        let outcome = match signal.action.side() {
            None => {
                self.decisions.holds += 1;
                match self.hold_reasons.iter_mut().find(|(r, _)| *r == signal.reason) {
                    Some((_, n)) => *n += 1,
                    None => self.hold_reasons.push((signal.reason, 1)),
                }
                Outcome::Hold
            }
            Some(side) => {
                self.decisions.signals += 1;
                let quantity = self.broker.config().order_quantity;
                let check = OrderCheck {
                    ts_ms: candle.close_ms,
                    side,
                    quantity,
                    position: self.broker.exposure(),
                    volatility: self.frame[self.atr_ratio_index],
                };
                match self.risk.check(&check) {
                    Ok(()) => {
                        self.decisions.orders += 1;
                        let (close_ms, symbol, stop, target) =
                            (candle.close_ms, candle.symbol, signal.stop_points, signal.target_points);
                        let order_id = match &mut self.broker {
                            Venue::Paper(b) => {
                                b.submit_entry(close_ms, symbol, side, quantity, stop, target, reading.regime).id
                            }
                            Venue::External(b) => {
                                let (order, intent) =
                                    b.submit_entry(close_ms, symbol, side, quantity, stop, target, reading.regime);
                                observer.on_order_intent(&intent);
                                order.id
                            }
                        };
                        Outcome::Submitted { order_id }
                    }
                    Err(reason) => {
                        self.decisions.refused += 1;
                        Outcome::Refused { reason }
                    }
                }
            }
        };
        debug_assert!(signal.action != Action::Hold || outcome == Outcome::Hold);
        observer.on_decision(&Decision { signal, outcome });
    }

    /// A buy or sell: blended with the regime's model when it answers,
    /// else the native rule (the agents' veto).
    fn decide(&mut self, signal: Signal, agents: Option<crate::hooks::Consensus>) -> Signal {
        let answer = self.models.predict(signal.regime, &self.frame);
        match answer {
            ModelAnswer::Up(p_up) => {
                self.model_counts.informed += 1;
                let blend = consensus::blend(&self.consensus, signal.action, p_up, agents);
                if blend.act {
                    return signal;
                }
                self.model_counts.held += 1;
                return Signal {
                    action: Action::Hold,
                    reason: "model and agents' consensus below min_score",
                    ..signal
                };
            }
            ModelAnswer::Unavailable => self.model_counts.fallbacks += 1,
            ModelAnswer::NoModel => self.model_counts.no_model += 1,
        }
        if consensus::vetoed(signal.action, agents) {
            Signal { action: Action::Hold, reason: "agents' consensus opposes the signal", ..signal }
        } else {
            signal
        }
    }

    /// Ends the run: closes the last candle and any open position, and
    /// returns the report.
    pub fn finish(&mut self, observer: &mut impl EngineObserver) -> BacktestReport {
        if let Some(candle) = self.candles.flush() {
            self.on_candle(&candle, observer);
        }
        // An external venue gets the flatten order; its fill, if any, comes after the report.
        self.flatten(self.last_ts_ms.unwrap_or(0), ExitReason::EndOfData, observer);
        self.report.finish(ReportContext {
            symbol: self.symbol.map(|s| s.to_string()).unwrap_or_default(),
            first_ts_ms: self.first_ts_ms,
            last_ts_ms: self.last_ts_ms,
            trades_seen: self.trades_seen,
            candles_per_session: self.candles_per_session,
            decisions: self.decisions,
            models: self.model_counts,
            hold_reasons: self.hold_reasons.clone(),
            risk_refusals: self.risk.refusals(),
            final_trading_state: self.risk.state(),
            ingest: self.sequencer.counters(),
            edits_after_close: self.edits_after_close,
        })
    }
}
