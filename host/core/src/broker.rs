//! The paper broker: fills orders against the trade stream, with slippage
//! and fees, and manages each position's stop, target and trailing stop.

use serde::{Deserialize, Serialize};

use crate::market::{Price, Side, Symbol, Trade};
use crate::regime::Regime;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentConfig {
    pub symbol: String,
    /// Minimum price increment, points (WDO 0.5).
    pub tick_size: f64,
    /// BRL per point per contract (WDO 10).
    pub point_value: f64,
}

impl Default for InstrumentConfig {
    fn default() -> Self {
        Self { symbol: "WDOFUT".into(), tick_size: 0.5, point_value: 10.0 }
    }
}

/// The trailing stop of domain.md: from +`activate_points`, the stop moves to
/// breakeven + `breakeven_offset_points`, then follows every `step_points`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrailingConfig {
    pub enabled: bool,
    pub activate_points: f64,
    pub breakeven_offset_points: f64,
    pub step_points: f64,
}

impl Default for TrailingConfig {
    fn default() -> Self {
        Self { enabled: true, activate_points: 10.0, breakeven_offset_points: 2.0, step_points: 5.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Adverse slippage on market fills, in ticks.
    pub slippage_ticks: i64,
    /// Fee per contract per side, BRL.
    pub fee_per_contract_brl: f64,
    /// Contracts per entry.
    pub order_quantity: i64,
    pub trailing: TrailingConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self { slippage_ticks: 1, fee_per_contract_brl: 1.20, order_quantity: 1, trailing: TrailingConfig::default() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    Stop,
    Target,
    TrailingStop,
    SessionEnd,
    EndOfData,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FillKind {
    Entry,
    Exit(ExitReason),
}

/// A market order to open a position, with its protective distances.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Order {
    pub id: u64,
    pub ts_ms: i64,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    pub stop_points: f64,
    pub target_points: f64,
    pub regime: Regime,
}

impl Order {
    /// The position this order opens when filled at `price` (paper or real
    /// venue alike), and its entry fill. `stop_target` are the protective
    /// distances already rounded to the tick.
    pub(crate) fn open(
        &self,
        ts_ms: i64,
        price: Price,
        (stop, target): (Price, Price),
        fee_per_contract_brl: f64,
    ) -> (Position, Fill) {
        let fee = fee_per_contract_brl * self.quantity as f64;
        let sign = self.side.sign();
        let position = Position {
            order_id: self.id,
            symbol: self.symbol,
            side: self.side,
            quantity: self.quantity,
            entry_ts_ms: ts_ms,
            entry_price: price,
            stop: Price::from_raw(price.raw() - sign * stop.raw()),
            target: Price::from_raw(price.raw() + sign * target.raw()),
            trailing: false,
            regime: self.regime,
            entry_fee_brl: fee,
        };
        let fill = Fill {
            order_id: self.id,
            ts_ms,
            symbol: self.symbol,
            side: self.side,
            quantity: self.quantity,
            price,
            fee_brl: fee,
            kind: FillKind::Entry,
        };
        (position, fill)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fill {
    pub order_id: u64,
    pub ts_ms: i64,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    pub price: Price,
    pub fee_brl: f64,
    pub kind: FillKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Position {
    pub order_id: u64,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    pub entry_ts_ms: i64,
    pub entry_price: Price,
    pub stop: Price,
    pub target: Price,
    /// Set once the trailing stop has taken over from the initial stop.
    pub trailing: bool,
    pub regime: Regime,
    pub entry_fee_brl: f64,
}

impl Position {
    /// The exit `px` triggers, if any; otherwise moves the trailing stop up
    /// (for a long; down for a short) once the gain allows.
    pub fn exit_due(&mut self, px: Price, trailing: &TrailingConfig, tick: Price) -> Option<ExitReason> {
        let sign = self.side.sign();
        // Prices signed so that "up" is "in our favour" for both sides.
        let favourable = |p: Price| sign * p.raw();
        if favourable(px) <= favourable(self.stop) {
            return Some(if self.trailing { ExitReason::TrailingStop } else { ExitReason::Stop });
        }
        if favourable(px) >= favourable(self.target) {
            return Some(ExitReason::Target);
        }
        if trailing.enabled {
            let gain = (favourable(px) - favourable(self.entry_price)) as f64 / Price::SCALE as f64;
            if gain >= trailing.activate_points {
                let steps = ((gain - trailing.activate_points) / trailing.step_points).floor();
                let lock_in = trailing.breakeven_offset_points + steps * trailing.step_points;
                let lock_in = Price::from_f64(lock_in).unwrap_or_default().round_to_tick(tick);
                let candidate = Price::from_raw(self.entry_price.raw() + sign * lock_in.raw());
                if favourable(candidate) > favourable(self.stop) {
                    self.stop = candidate;
                    self.trailing = true;
                }
            }
        }
        None
    }

    /// Signed contracts.
    pub fn signed_quantity(&self) -> i64 {
        self.side.sign() * self.quantity
    }
}

/// A closed position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RoundTrip {
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    pub entry_ts_ms: i64,
    pub exit_ts_ms: i64,
    pub entry_price: Price,
    pub exit_price: Price,
    pub pnl_points: f64,
    /// Net of fees.
    pub pnl_brl: f64,
    pub fees_brl: f64,
    pub regime: Regime,
    pub exit_reason: ExitReason,
}

/// What one call into the broker produced.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BrokerEvents {
    pub entry: Option<Fill>,
    pub exit: Option<(Fill, RoundTrip)>,
}

#[derive(Debug, Clone)]
pub struct PaperBroker {
    config: BrokerConfig,
    tick: Price,
    point_value: f64,
    pending: Option<Order>,
    position: Option<Position>,
    next_order_id: u64,
    last_price: Option<Price>,
}

impl PaperBroker {
    pub fn new(config: BrokerConfig, instrument: &InstrumentConfig) -> Self {
        Self {
            tick: Price::from_f64(instrument.tick_size).unwrap_or(Price::from_raw(1)),
            point_value: instrument.point_value,
            config,
            pending: None,
            position: None,
            next_order_id: 1,
            last_price: None,
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Signed contracts held, counting an entry already sent but not filled,
    /// so the risk engine never lets two entries race.
    pub fn exposure(&self) -> i64 {
        self.position.map_or(0, |p| p.signed_quantity()) + self.pending.map_or(0, |o| o.side.sign() * o.quantity)
    }

    /// Queues a market entry; it fills on the next trade. Returns the order id.
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
    ) -> Order {
        let order = Order { id: self.next_order_id, ts_ms, symbol, side, quantity, stop_points, target_points, regime };
        self.next_order_id += 1;
        self.pending = Some(order);
        order
    }

    fn slipped(&self, price: Price, side: Side) -> Price {
        Price::from_raw(price.raw() + side.sign() * self.config.slippage_ticks * self.tick.raw())
    }

    fn points(&self, points: f64) -> Price {
        Price::from_f64(points).unwrap_or_default().round_to_tick(self.tick)
    }

    /// Processes one market trade: fills a pending entry, then checks the
    /// open position's exits against the trade price.
    pub fn on_trade(&mut self, trade: &Trade) -> BrokerEvents {
        self.last_price = Some(trade.price);
        let mut events = BrokerEvents::default();
        if let Some(order) = self.pending.take() {
            let price = self.slipped(trade.price, order.side);
            let (position, fill) = order.open(
                trade.ts_ms,
                price,
                (self.points(order.stop_points), self.points(order.target_points)),
                self.config.fee_per_contract_brl,
            );
            self.position = Some(position);
            events.entry = Some(fill);
            // The entry trade itself does not also trigger an exit.
            return events;
        }
        events.exit = self.check_exits(trade);
        events
    }

    fn check_exits(&mut self, trade: &Trade) -> Option<(Fill, RoundTrip)> {
        let (trailing, tick) = (self.config.trailing, self.tick);
        let pos = self.position.as_mut()?;
        let (side, target) = (pos.side, pos.target);
        let reason = pos.exit_due(trade.price, &trailing, tick)?;
        // A stop is a market order once touched: it fills at the trade, which
        // may have gapped through. A target is a resting limit: its price.
        let price = if reason == ExitReason::Target { target } else { self.slipped(trade.price, side.opposite()) };
        Some(self.close(trade.ts_ms, price, reason))
    }

    fn close(&mut self, ts_ms: i64, price: Price, reason: ExitReason) -> (Fill, RoundTrip) {
        let pos = self.position.take().expect("close called with a position");
        let exit_fee = self.config.fee_per_contract_brl * pos.quantity as f64;
        let pnl_points = pos.side.sign() as f64 * (price - pos.entry_price).as_f64() * pos.quantity as f64;
        let fees = pos.entry_fee_brl + exit_fee;
        let fill = Fill {
            order_id: pos.order_id,
            ts_ms,
            symbol: pos.symbol,
            side: pos.side.opposite(),
            quantity: pos.quantity,
            price,
            fee_brl: exit_fee,
            kind: FillKind::Exit(reason),
        };
        let trip = RoundTrip {
            symbol: pos.symbol,
            side: pos.side,
            quantity: pos.quantity,
            entry_ts_ms: pos.entry_ts_ms,
            exit_ts_ms: ts_ms,
            entry_price: pos.entry_price,
            exit_price: price,
            pnl_points,
            pnl_brl: pnl_points * self.point_value - fees,
            fees_brl: fees,
            regime: pos.regime,
            exit_reason: reason,
        };
        (fill, trip)
    }

    /// Closes the position at the last traded price (session end, end of
    /// data) and cancels a pending entry.
    pub fn flatten(&mut self, ts_ms: i64, reason: ExitReason) -> Option<(Fill, RoundTrip)> {
        self.pending = None;
        let side = self.position?.side;
        let price = self.slipped(self.last_price?, side.opposite());
        Some(self.close(ts_ms, price, reason))
    }

    /// Unrealised result of the open position at `price`, BRL, before exit fees.
    pub fn unrealized_brl(&self, price: Price) -> f64 {
        self.position.map_or(0.0, |p| {
            p.side.sign() as f64 * (price - p.entry_price).as_f64() * p.quantity as f64 * self.point_value
                - p.entry_fee_brl
        })
    }
}
