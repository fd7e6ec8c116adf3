//! The risk engine: every order passes here, and nothing else can bypass it.
//! It is native code on purpose and never a plugin.
//!
//! Orders that reduce the position are always allowed, in every state: a
//! risk engine that traps a trader in a losing position is worse than none.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::market::Side;
use crate::time::{MS_PER_MINUTE, SessionClock, parse_hh_mm};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Capital the percentage limits refer to, BRL.
    pub capital_brl: f64,
    /// Largest absolute position, contracts.
    pub max_position: i64,
    pub one_position_at_a_time: bool,
    /// Entries per trading day.
    pub max_trades_per_day: u32,
    /// Realised loss in a day, fraction of capital, after which only exits are allowed.
    pub max_daily_loss_pct: f64,
    /// Peak-to-trough equity loss, fraction of the peak, after which trading halts.
    pub max_drawdown_pct: f64,
    /// Local time window for new entries, `HH:MM`.
    pub trading_start: String,
    pub trading_end: String,
    /// Orders accepted in any rolling 60 s.
    pub max_orders_per_minute: u32,
    /// Losing trades in a row that pause entries for `loss_cooldown_minutes`.
    pub max_consecutive_losses: u32,
    pub loss_cooldown_minutes: u32,
    /// ATR(14) as a fraction of price above which entries are refused.
    pub max_volatility: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            capital_brl: 20_000.0,
            max_position: 1,
            one_position_at_a_time: true,
            max_trades_per_day: 10,
            max_daily_loss_pct: 0.05,
            max_drawdown_pct: 0.10,
            trading_start: "09:05".into(),
            trading_end: "17:30".into(),
            max_orders_per_minute: 4,
            max_consecutive_losses: 3,
            loss_cooldown_minutes: 30,
            max_volatility: 0.004,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum RiskConfigError {
    #[error("risk.{field} = {value:?} is not a time of day; write it as HH:MM, e.g. \"09:05\"")]
    BadTime { field: &'static str, value: String },
    #[error("risk.{field} = {value} must be positive")]
    NotPositive { field: &'static str, value: f64 },
}

/// NautilusTrader's trading states, with the same meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradingState {
    /// Entries and exits allowed.
    Active,
    /// Exits only, until the cause clears (a new day, a cool-down).
    Reducing,
    /// Exits only, until an operator resets it.
    Halted,
}

/// Why an order was refused. Every refusal is counted by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    OutsideTradingHours,
    PositionAlreadyOpen,
    MaxPosition,
    MaxTradesPerDay,
    DailyLossLimit,
    MaxDrawdown,
    RateLimit,
    ConsecutiveLosses,
    ExtremeVolatility,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::OutsideTradingHours,
        Refusal::PositionAlreadyOpen,
        Refusal::MaxPosition,
        Refusal::MaxTradesPerDay,
        Refusal::DailyLossLimit,
        Refusal::MaxDrawdown,
        Refusal::RateLimit,
        Refusal::ConsecutiveLosses,
        Refusal::ExtremeVolatility,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::OutsideTradingHours => "outside_trading_hours",
            Refusal::PositionAlreadyOpen => "position_already_open",
            Refusal::MaxPosition => "max_position",
            Refusal::MaxTradesPerDay => "max_trades_per_day",
            Refusal::DailyLossLimit => "daily_loss_limit",
            Refusal::MaxDrawdown => "max_drawdown",
            Refusal::RateLimit => "rate_limit",
            Refusal::ConsecutiveLosses => "consecutive_losses",
            Refusal::ExtremeVolatility => "extreme_volatility",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Refusal counts, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusalCounts([u64; Refusal::ALL.len()]);

impl RefusalCounts {
    pub fn get(&self, kind: Refusal) -> u64 {
        self.0[kind as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL.iter().map(|&k| (k, self.get(k)))
    }
}

impl Serialize for RefusalCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Refusal::ALL.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k.name(), &v)?;
        }
        map.end()
    }
}

/// An order as the risk engine sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderCheck {
    pub ts_ms: i64,
    pub side: Side,
    pub quantity: i64,
    /// Signed position before the order (+ long, - short).
    pub position: i64,
    /// Current ATR(14) / price.
    pub volatility: f64,
}

impl OrderCheck {
    fn reduces_position(&self) -> bool {
        self.position != 0 && self.side.sign() != self.position.signum() && self.quantity <= self.position.abs()
    }
}

#[derive(Debug, Clone)]
pub struct RiskEngine {
    config: RiskConfig,
    clock: SessionClock,
    trading_start_ms: i64,
    trading_end_ms: i64,
    state: TradingState,
    /// Why the engine is reducing, reported as the refusal kind.
    reducing_cause: Refusal,
    cooldown_until_ms: i64,
    day: Option<i64>,
    entries_today: u32,
    realized_today_brl: f64,
    equity_brl: f64,
    peak_equity_brl: f64,
    consecutive_losses: u32,
    /// Accept times of recent orders, a ring as long as the per-minute limit.
    recent_orders: Vec<i64>,
    next_order_slot: usize,
    refusals: RefusalCounts,
    transitions: u64,
}

impl RiskEngine {
    pub fn new(config: RiskConfig, clock: SessionClock) -> Result<Self, RiskConfigError> {
        let time = |field, value: &String| {
            parse_hh_mm(value).ok_or_else(|| RiskConfigError::BadTime { field, value: value.clone() })
        };
        let trading_start_ms = time("trading_start", &config.trading_start)?;
        let trading_end_ms = time("trading_end", &config.trading_end)?;
        if config.capital_brl <= 0.0 {
            return Err(RiskConfigError::NotPositive { field: "capital_brl", value: config.capital_brl });
        }
        Ok(Self {
            clock,
            trading_start_ms,
            trading_end_ms,
            state: TradingState::Active,
            reducing_cause: Refusal::DailyLossLimit,
            cooldown_until_ms: i64::MIN,
            day: None,
            entries_today: 0,
            realized_today_brl: 0.0,
            equity_brl: config.capital_brl,
            peak_equity_brl: config.capital_brl,
            consecutive_losses: 0,
            recent_orders: vec![i64::MIN; config.max_orders_per_minute.max(1) as usize],
            next_order_slot: 0,
            refusals: RefusalCounts::default(),
            transitions: 0,
            config,
        })
    }

    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    pub fn state(&self) -> TradingState {
        self.state
    }

    pub fn refusals(&self) -> RefusalCounts {
        self.refusals
    }

    pub fn state_transitions(&self) -> u64 {
        self.transitions
    }

    fn set_state(&mut self, state: TradingState) {
        if self.state != state {
            self.state = state;
            self.transitions += 1;
        }
    }

    /// Advances event time: day roll-over and cool-down expiry.
    pub fn on_time(&mut self, ts_ms: i64) {
        let day = self.clock.day(ts_ms);
        if self.day != Some(day) {
            self.day = Some(day);
            self.entries_today = 0;
            self.realized_today_brl = 0.0;
            if self.state == TradingState::Reducing {
                self.set_state(TradingState::Active);
            }
        }
        if self.state == TradingState::Reducing
            && self.reducing_cause == Refusal::ConsecutiveLosses
            && ts_ms >= self.cooldown_until_ms
        {
            self.consecutive_losses = 0;
            self.set_state(TradingState::Active);
        }
    }

    /// Checks an order; on success the order is counted against the limits.
    pub fn check(&mut self, order: &OrderCheck) -> Result<(), Refusal> {
        self.on_time(order.ts_ms);
        let verdict = self.verdict(order);
        match verdict {
            Ok(()) => {
                if !order.reduces_position() {
                    self.entries_today += 1;
                }
                self.recent_orders[self.next_order_slot] = order.ts_ms;
                self.next_order_slot = (self.next_order_slot + 1) % self.recent_orders.len();
            }
            Err(kind) => self.refusals.0[kind as usize] += 1,
        }
        verdict
    }

    fn verdict(&self, order: &OrderCheck) -> Result<(), Refusal> {
        if order.reduces_position() {
            return Ok(());
        }
        match self.state {
            TradingState::Halted => return Err(Refusal::MaxDrawdown),
            TradingState::Reducing => return Err(self.reducing_cause),
            TradingState::Active => {}
        }
        let tod = self.clock.ms_of_day(order.ts_ms);
        if tod < self.trading_start_ms || tod >= self.trading_end_ms {
            return Err(Refusal::OutsideTradingHours);
        }
        if self.config.one_position_at_a_time && order.position != 0 {
            return Err(Refusal::PositionAlreadyOpen);
        }
        if (order.position + order.side.sign() * order.quantity).abs() > self.config.max_position {
            return Err(Refusal::MaxPosition);
        }
        if self.entries_today >= self.config.max_trades_per_day {
            return Err(Refusal::MaxTradesPerDay);
        }
        // The ring holds the last N accept times: the oldest within 60 s means N in a minute.
        let oldest = self.recent_orders[self.next_order_slot];
        if oldest != i64::MIN && order.ts_ms - oldest < MS_PER_MINUTE {
            return Err(Refusal::RateLimit);
        }
        if order.volatility > self.config.max_volatility {
            return Err(Refusal::ExtremeVolatility);
        }
        Ok(())
    }

    /// A position was closed with this net result.
    pub fn on_round_trip(&mut self, ts_ms: i64, pnl_brl: f64) {
        self.on_time(ts_ms);
        self.realized_today_brl += pnl_brl;
        self.consecutive_losses = if pnl_brl < 0.0 { self.consecutive_losses + 1 } else { 0 };
        if self.state == TradingState::Active && self.consecutive_losses >= self.config.max_consecutive_losses {
            self.reducing_cause = Refusal::ConsecutiveLosses;
            self.cooldown_until_ms = ts_ms + i64::from(self.config.loss_cooldown_minutes) * MS_PER_MINUTE;
            self.set_state(TradingState::Reducing);
        }
        if self.state != TradingState::Halted
            && self.realized_today_brl <= -self.config.max_daily_loss_pct * self.config.capital_brl
        {
            self.reducing_cause = Refusal::DailyLossLimit;
            self.set_state(TradingState::Reducing);
        }
    }

    /// Marks equity (realised + unrealised) for the drawdown limit.
    pub fn on_equity(&mut self, ts_ms: i64, equity_brl: f64) {
        self.on_time(ts_ms);
        self.equity_brl = equity_brl;
        self.peak_equity_brl = self.peak_equity_brl.max(equity_brl);
        let drawdown = (self.peak_equity_brl - equity_brl) / self.peak_equity_brl;
        if drawdown >= self.config.max_drawdown_pct {
            self.set_state(TradingState::Halted);
        }
    }

    /// Operator action: leave HALTED.
    pub fn reset_halt(&mut self) {
        if self.state == TradingState::Halted {
            self.peak_equity_brl = self.equity_brl;
            self.set_state(TradingState::Active);
        }
    }
}
