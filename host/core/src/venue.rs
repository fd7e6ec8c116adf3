//! The execution seam: where the engine's risk-checked orders go when they
//! are not filled by the paper broker.
//!
//! With an external venue (ProfitDLL's `SendOrder`, a real broker) the engine
//! stays pure: it emits [`OrderIntent`]s through its observer (an I/O thread
//! sends them), and the venue's answers come back as [`ExecutionReport`]s
//! through the feed, like trades. [`ExternalBroker`] keeps the same position
//! rules as the paper broker (stop, target, trailing stop, session flatten),
//! but it only asks for exits: a position opens and closes when a fill says so.

use serde::Serialize;

use crate::broker::{
    BrokerConfig, BrokerEvents, ExitReason, Fill, FillKind, InstrumentConfig, Order, Position, RoundTrip,
};
use crate::market::{Price, Side, Symbol, Trade};
use crate::regime::Regime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPurpose {
    Entry,
    Exit(ExitReason),
}

/// A market order the engine wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OrderIntent {
    pub order_id: u64,
    pub ts_ms: i64,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    pub purpose: OrderPurpose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Completely filled at `price` (average).
    Filled,
    /// Refused by the venue (or never sent): nothing happened.
    Rejected,
}

/// The venue's answer to an [`OrderIntent`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ExecutionReport {
    pub order_id: u64,
    pub ts_ms: i64,
    pub status: ExecutionStatus,
    pub price: Price,
}

/// What the external broker counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VenueCounters {
    pub intents: u64,
    pub fills: u64,
    pub rejections: u64,
    /// Reports for orders this broker is not waiting for (late, duplicated).
    pub unexpected_reports: u64,
}

/// Positions managed from an external venue's fills.
#[derive(Debug, Clone)]
pub struct ExternalBroker {
    config: BrokerConfig,
    tick: Price,
    point_value: f64,
    pending_entry: Option<Order>,
    position: Option<Position>,
    /// The exit order in flight, and why it was sent.
    pending_exit: Option<(u64, ExitReason)>,
    next_order_id: u64,
    last_price: Option<Price>,
    counters: VenueCounters,
}

impl ExternalBroker {
    pub fn new(config: BrokerConfig, instrument: &InstrumentConfig) -> Self {
        Self {
            tick: Price::from_f64(instrument.tick_size).unwrap_or(Price::from_raw(1)),
            point_value: instrument.point_value,
            config,
            pending_entry: None,
            position: None,
            pending_exit: None,
            next_order_id: 1,
            last_price: None,
            counters: VenueCounters::default(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn counters(&self) -> VenueCounters {
        self.counters
    }

    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Signed contracts held or asked for, so risk never lets two entries race.
    pub fn exposure(&self) -> i64 {
        self.position.map_or(0, |p| p.signed_quantity()) + self.pending_entry.map_or(0, |o| o.side.sign() * o.quantity)
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        self.counters.intents += 1;
        id
    }

    #[allow(clippy::too_many_arguments)]
    pub fn submit_entry(
        &mut self,
        ts_ms: i64,
        symbol: Symbol,
        side: Side,
        quantity: i64,
        stop_points: f64,
        target_points: f64,
        regime: Regime,
    ) -> (Order, OrderIntent) {
        let id = self.next_id();
        let order = Order { id, ts_ms, symbol, side, quantity, stop_points, target_points, regime };
        self.pending_entry = Some(order);
        (order, OrderIntent { order_id: id, ts_ms, symbol, side, quantity, purpose: OrderPurpose::Entry })
    }

    fn points(&self, points: f64) -> Price {
        Price::from_f64(points).unwrap_or_default().round_to_tick(self.tick)
    }

    fn exit_intent(&mut self, ts_ms: i64, reason: ExitReason) -> Option<OrderIntent> {
        let pos = self.position?;
        if self.pending_exit.is_some() {
            return None;
        }
        let id = self.next_id();
        self.pending_exit = Some((id, reason));
        Some(OrderIntent {
            order_id: id,
            ts_ms,
            symbol: pos.symbol,
            side: pos.side.opposite(),
            quantity: pos.quantity,
            purpose: OrderPurpose::Exit(reason),
        })
    }

    /// Checks the open position against a trade; an exit to send, if one is due.
    pub fn on_trade(&mut self, trade: &Trade) -> Option<OrderIntent> {
        self.last_price = Some(trade.price);
        let (trailing, tick) = (self.config.trailing, self.tick);
        let reason = self.position.as_mut()?.exit_due(trade.price, &trailing, tick)?;
        self.exit_intent(trade.ts_ms, reason)
    }

    /// Asks to close the position (session end, end of data).
    pub fn flatten(&mut self, ts_ms: i64, reason: ExitReason) -> Option<OrderIntent> {
        self.exit_intent(ts_ms, reason)
    }

    /// Applies the venue's answer.
    pub fn on_report(&mut self, report: &ExecutionReport) -> BrokerEvents {
        let mut events = BrokerEvents::default();
        if let Some(order) = self.pending_entry.filter(|o| o.id == report.order_id) {
            self.pending_entry = None;
            if report.status == ExecutionStatus::Rejected {
                self.counters.rejections += 1;
                return events;
            }
            self.counters.fills += 1;
            let price = report.price;
            let (position, fill) = order.open(
                report.ts_ms,
                price,
                (self.points(order.stop_points), self.points(order.target_points)),
                self.config.fee_per_contract_brl,
            );
            self.position = Some(position);
            events.entry = Some(fill);
            return events;
        }
        if let Some((id, reason)) = self.pending_exit.filter(|(id, _)| *id == report.order_id) {
            self.pending_exit = None;
            if report.status == ExecutionStatus::Rejected {
                // Still in position: the next trade asks again.
                self.counters.rejections += 1;
                return events;
            }
            self.counters.fills += 1;
            let Some(pos) = self.position.take() else { return events };
            let exit_fee = self.config.fee_per_contract_brl * pos.quantity as f64;
            let pnl_points = pos.side.sign() as f64 * (report.price - pos.entry_price).as_f64() * pos.quantity as f64;
            let fees = pos.entry_fee_brl + exit_fee;
            events.exit = Some((
                Fill {
                    order_id: id,
                    ts_ms: report.ts_ms,
                    symbol: pos.symbol,
                    side: pos.side.opposite(),
                    quantity: pos.quantity,
                    price: report.price,
                    fee_brl: exit_fee,
                    kind: FillKind::Exit(reason),
                },
                RoundTrip {
                    symbol: pos.symbol,
                    side: pos.side,
                    quantity: pos.quantity,
                    entry_ts_ms: pos.entry_ts_ms,
                    exit_ts_ms: report.ts_ms,
                    entry_price: pos.entry_price,
                    exit_price: report.price,
                    pnl_points,
                    pnl_brl: pnl_points * self.point_value - fees,
                    fees_brl: fees,
                    regime: pos.regime,
                    exit_reason: reason,
                },
            ));
            return events;
        }
        self.counters.unexpected_reports += 1;
        events
    }

    pub fn unrealized_brl(&self, price: Price) -> f64 {
        self.position.map_or(0.0, |p| {
            p.side.sign() as f64 * (price - p.entry_price).as_f64() * p.quantity as f64 * self.point_value
                - p.entry_fee_brl
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{AgentId, TradeType};

    fn trade(ts: i64, price: f64) -> Trade {
        Trade {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms: ts,
            trade_number: ts as u64,
            price: Price::from_f64(price).expect("price"),
            quantity: 1,
            volume: 0.0,
            buy_agent: AgentId(0),
            sell_agent: AgentId(0),
            trade_type: TradeType::AggressorBuy,
            is_edit: false,
        }
    }

    fn filled(id: u64, ts: i64, price: f64) -> ExecutionReport {
        ExecutionReport {
            order_id: id,
            ts_ms: ts,
            status: ExecutionStatus::Filled,
            price: Price::from_f64(price).expect("price"),
        }
    }

    #[test]
    fn a_position_opens_and_closes_only_on_fills() {
        let mut b = ExternalBroker::new(BrokerConfig::default(), &InstrumentConfig::default());
        let sym = Symbol::new("WDOFUT").expect("symbol");
        let (order, intent) = b.submit_entry(0, sym, Side::Buy, 1, 5.0, 10.0, Regime::TrendUp);
        assert_eq!(intent.purpose, OrderPurpose::Entry);
        assert_eq!(b.exposure(), 1, "a pending entry counts for risk");
        assert_eq!(b.on_trade(&trade(1, 5000.0)), None);
        assert!(b.position().is_none(), "trades never fill an external order");
        let events = b.on_report(&filled(order.id, 2, 5000.0));
        assert!(events.entry.is_some() && b.position().is_some());
        // The stop is hit: one exit intent, not one per trade.
        let exit = b.on_trade(&trade(3, 4994.0)).expect("exit intent");
        assert_eq!((exit.side, exit.purpose), (Side::Sell, OrderPurpose::Exit(ExitReason::Stop)));
        assert_eq!(b.on_trade(&trade(4, 4993.0)), None);
        let events = b.on_report(&filled(exit.order_id, 5, 4993.5));
        let (_, trip) = events.exit.expect("closed");
        assert_eq!(trip.exit_price.as_f64(), 4993.5);
        assert!((trip.pnl_brl - (-6.5 * 10.0 - 2.4)).abs() < 1e-9);
        assert!(b.position().is_none());
        assert_eq!(b.on_report(&filled(99, 6, 1.0)), BrokerEvents::default());
        assert_eq!(b.counters().unexpected_reports, 1);
    }

    #[test]
    fn a_rejected_entry_leaves_no_exposure() {
        let mut b = ExternalBroker::new(BrokerConfig::default(), &InstrumentConfig::default());
        let sym = Symbol::new("WDOFUT").expect("symbol");
        let (order, _) = b.submit_entry(0, sym, Side::Sell, 1, 5.0, 10.0, Regime::Range);
        let report = ExecutionReport { status: ExecutionStatus::Rejected, ..filled(order.id, 1, 0.0) };
        assert_eq!(b.on_report(&report), BrokerEvents::default());
        assert_eq!((b.exposure(), b.counters().rejections), (0, 1));
    }
}
