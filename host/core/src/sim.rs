//! A deterministic synthetic B3 session: the sample data, the benchmarks'
//! input, and (later) the ProfitDLL simulator's market all come from here.
//!
//! The model is simple on purpose but has what the engine must cope with:
//! regime switches (trend up, trend down, range), aggressor imbalance that
//! follows the regime, bursts of activity, an opening and an intraday
//! auction, crosses and RLP trades, and a few exchange corrections (edits).

use std::collections::VecDeque;

use crate::market::{AgentDirectory, AgentId, Price, Symbol, Trade, TradeType};
use crate::time::{LocalTime, MS_PER_MINUTE, MS_PER_SECOND, days_from_civil};

/// SplitMix64: tiny, fast, and the same numbers on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next_f64()).ln()
    }
}

/// The market regime the generator is in (its ground truth, for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRegime {
    TrendUp,
    TrendDown,
    Range,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub symbol: Symbol,
    /// Local trading date.
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub utc_offset_minutes: i32,
    /// Local session open and close, in minutes after midnight (WDO: 09:00-17:55).
    pub open_minute: u32,
    pub close_minute: u32,
    pub tick: Price,
    /// BRL per point per contract (WDO: 10).
    pub point_value: f64,
    pub start_price: Price,
    /// Roughly how many trades the day should have.
    pub trades_target: u32,
    /// Probability that a trade is later corrected by the exchange.
    pub edit_probability: f64,
    pub seed: u64,
}

impl SessionSpec {
    /// A WDO session on the given date with sensible defaults.
    pub fn wdo(year: i32, month: u32, day: u32, seed: u64) -> Self {
        Self {
            symbol: Symbol::new("WDOFUT").expect("valid symbol"),
            year,
            month,
            day,
            utc_offset_minutes: crate::time::B3_UTC_OFFSET_MINUTES,
            open_minute: 9 * 60,
            close_minute: 17 * 60 + 55,
            tick: Price::from_raw(Price::SCALE / 2),
            point_value: 10.0,
            start_price: Price::from_raw(5_000 * Price::SCALE),
            trades_target: 20_000,
            edit_probability: 1.0 / 2_500.0,
            seed,
        }
    }
}

const AGENTS: [&str; 14] = [
    "XP",
    "BTG Pactual",
    "Itaú",
    "Genial",
    "Safra",
    "Bradesco",
    "Santander",
    "UBS",
    "Goldman Sachs",
    "Morgan Stanley",
    "JP Morgan",
    "Capital",
    "Ágora",
    "Modal",
];

/// Streams the trades of one session in exchange order (trade number order).
#[derive(Debug)]
pub struct SessionGenerator {
    spec: SessionSpec,
    rng: Rng,
    agents: AgentDirectory,
    agent_ids: Vec<AgentId>,
    now_ms: i64,
    close_ms: i64,
    open_ms: i64,
    price_ticks: i64,
    next_trade_number: u64,
    regime: SimRegime,
    regime_ends_ms: i64,
    /// Probability that a price-moving trade moves up, for the current regime.
    up_bias: f64,
    range_center_ticks: i64,
    burst_ends_ms: i64,
    mean_gap_ms: f64,
    intraday_auction_ms: i64,
    pending: VecDeque<Trade>,
    /// Trades waiting to be corrected: (emit after this many trades, corrected trade).
    scheduled_edits: VecDeque<(u32, Trade)>,
    trades_since_start: u32,
}

impl SessionGenerator {
    pub fn new(spec: SessionSpec) -> Self {
        let mut agents = AgentDirectory::new();
        let agent_ids = AGENTS.iter().map(|a| agents.intern(a.as_bytes())).collect();
        let midnight = LocalTime {
            year: spec.year,
            month: spec.month,
            day: spec.day,
            hour: 0,
            minute: 0,
            second: 0,
            millisecond: 0,
        }
        .to_epoch_ms(spec.utc_offset_minutes)
        .expect("valid session date");
        let open_ms = midnight + i64::from(spec.open_minute) * MS_PER_MINUTE;
        let close_ms = midnight + i64::from(spec.close_minute) * MS_PER_MINUTE;
        let mut rng = Rng::new(
            spec.seed ^ (days_from_civil(spec.year, spec.month, spec.day).unwrap_or(0) as u64).rotate_left(32),
        );
        let price_ticks = spec.start_price.raw() / spec.tick.raw().max(1);
        let mean_gap_ms = (close_ms - open_ms) as f64 / f64::from(spec.trades_target.max(1));
        let intraday_auction_ms = open_ms + rng.range(2 * 60, 6 * 60) * MS_PER_MINUTE;
        let mut generator = Self {
            rng,
            agents,
            agent_ids,
            now_ms: open_ms,
            close_ms,
            open_ms,
            price_ticks,
            next_trade_number: 1,
            regime: SimRegime::Range,
            regime_ends_ms: open_ms,
            up_bias: 0.5,
            range_center_ticks: price_ticks,
            burst_ends_ms: i64::MIN,
            mean_gap_ms,
            intraday_auction_ms,
            pending: VecDeque::new(),
            scheduled_edits: VecDeque::new(),
            trades_since_start: 0,
            spec,
        };
        generator.queue_auction(generator.open_ms);
        generator
    }

    /// Agent names used by the generated trades.
    pub fn agents(&self) -> &AgentDirectory {
        &self.agents
    }

    /// The regime the generator is in now (ground truth).
    pub fn regime(&self) -> SimRegime {
        self.regime
    }

    fn price(&self) -> Price {
        Price::from_raw(self.price_ticks * self.spec.tick.raw())
    }

    fn random_agent(&mut self) -> AgentId {
        let i = self.rng.range(0, self.agent_ids.len() as i64 - 1) as usize;
        self.agent_ids[i]
    }

    fn quantity(&mut self) -> i64 {
        // Mostly small lots, with the occasional block.
        if self.rng.chance(0.02) { self.rng.range(50, 300) } else { 1 + self.rng.exponential(4.0) as i64 }
    }

    fn make_trade(&mut self, ts_ms: i64, trade_type: TradeType) -> Trade {
        let quantity = self.quantity();
        let price = self.price();
        let trade = Trade {
            symbol: self.spec.symbol,
            ts_ms,
            trade_number: self.next_trade_number,
            price,
            quantity,
            volume: price.as_f64() * quantity as f64 * self.spec.point_value,
            buy_agent: self.random_agent(),
            sell_agent: self.random_agent(),
            trade_type,
            is_edit: false,
        };
        self.next_trade_number += 1;
        trade
    }

    /// An auction prints a batch of trades at one price in the same second.
    fn queue_auction(&mut self, at_ms: i64) {
        let jump = self.rng.range(-6, 6);
        self.price_ticks += jump;
        self.range_center_ticks += jump;
        for _ in 0..self.rng.range(30, 80) {
            let t = self.make_trade(at_ms, TradeType::Auction);
            self.pending.push_back(t);
        }
    }

    fn switch_regime(&mut self) {
        let choices = match self.regime {
            SimRegime::TrendUp => [SimRegime::Range, SimRegime::TrendDown],
            SimRegime::TrendDown => [SimRegime::Range, SimRegime::TrendUp],
            SimRegime::Range => [SimRegime::TrendUp, SimRegime::TrendDown],
        };
        self.regime = choices[self.rng.range(0, 1) as usize];
        self.regime_ends_ms = self.now_ms + self.rng.range(25, 80) * MS_PER_MINUTE;
        self.up_bias = match self.regime {
            SimRegime::TrendUp => self.rng.uniform(0.55, 0.62),
            SimRegime::TrendDown => self.rng.uniform(0.38, 0.45),
            SimRegime::Range => 0.5,
        };
        self.range_center_ticks = self.price_ticks;
    }

    fn next_continuous(&mut self) -> Option<Trade> {
        if self.now_ms >= self.regime_ends_ms {
            self.switch_regime();
        }
        if self.now_ms >= self.burst_ends_ms && self.rng.chance(0.002) {
            self.burst_ends_ms = self.now_ms + self.rng.range(5, 40) * MS_PER_SECOND;
        }
        // Busier at the open and the close, five times busier in a burst.
        let session_pos = (self.now_ms - self.open_ms) as f64 / (self.close_ms - self.open_ms) as f64;
        let u_shape = 0.6 + 1.6 * (session_pos - 0.5).powi(2) * 4.0 / 2.0;
        let burst = if self.now_ms < self.burst_ends_ms { 5.0 } else { 1.0 };
        let gap = self.rng.exponential(self.mean_gap_ms / (u_shape * burst));
        self.now_ms += gap.max(1.0) as i64;
        if self.now_ms >= self.intraday_auction_ms {
            self.intraday_auction_ms = i64::MAX;
            self.queue_auction(self.now_ms);
            return self.pending.pop_front();
        }
        if self.now_ms >= self.close_ms {
            return None;
        }

        let up_bias = match self.regime {
            SimRegime::Range => {
                let offset = (self.price_ticks - self.range_center_ticks) as f64;
                (0.5 - offset / 80.0).clamp(0.25, 0.75)
            }
            _ => self.up_bias,
        };
        let moves = self.rng.chance(0.3);
        let up = self.rng.chance(up_bias);
        if moves {
            self.price_ticks += if up { 1 } else { -1 };
        }
        let trade_type = match self.rng.next_f64() {
            x if x < 0.03 => TradeType::Cross,
            x if x < 0.05 => TradeType::Rlp,
            // A price move is made by an aggressor on that side; flat prints
            // lean with the regime, so order flow carries information.
            _ if moves => {
                if up {
                    TradeType::AggressorBuy
                } else {
                    TradeType::AggressorSell
                }
            }
            _ => {
                if self.rng.chance(0.5 + (up_bias - 0.5) * 0.6) {
                    TradeType::AggressorBuy
                } else {
                    TradeType::AggressorSell
                }
            }
        };
        let ts = self.now_ms;
        Some(self.make_trade(ts, trade_type))
    }

    fn maybe_schedule_edit(&mut self, trade: &Trade) {
        if trade.is_edit || !self.rng.chance(self.spec.edit_probability) {
            return;
        }
        let mut corrected = *trade;
        corrected.is_edit = true;
        corrected.quantity = (trade.quantity + self.rng.range(-1, 3)).max(1);
        corrected.volume = corrected.price.as_f64() * corrected.quantity as f64 * self.spec.point_value;
        let delay = self.rng.range(1, 20) as u32;
        self.scheduled_edits.push_back((self.trades_since_start + delay, corrected));
    }
}

impl Iterator for SessionGenerator {
    type Item = Trade;

    fn next(&mut self) -> Option<Trade> {
        if let Some(&(due, corrected)) = self.scheduled_edits.front()
            && due <= self.trades_since_start
        {
            self.scheduled_edits.pop_front();
            return Some(corrected);
        }
        let trade = match self.pending.pop_front() {
            Some(t) => t,
            None => match self.next_continuous() {
                Some(t) => t,
                // Corrections of the last trades still go out after the close.
                None => return self.scheduled_edits.pop_front().map(|(_, t)| t),
            },
        };
        self.trades_since_start += 1;
        self.maybe_schedule_edit(&trade);
        Some(trade)
    }
}

/// Weekdays from a start date, for multi-day generation.
pub fn weekdays_from(year: i32, month: u32, day: u32, count: usize) -> Vec<(i32, u32, u32)> {
    let mut days = days_from_civil(year, month, day).expect("valid start date");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        // 1970-01-01 was a Thursday: (days + 3) % 7 gives Monday = 0.
        if (days + 3).rem_euclid(7) < 5 {
            out.push(crate::time::civil_from_days(days));
        }
        days += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(seed: u64) -> Vec<Trade> {
        SessionGenerator::new(SessionSpec::wdo(2024, 1, 8, seed)).collect()
    }

    #[test]
    fn same_seed_same_session_other_seed_other_session() {
        assert_eq!(day(7), day(7));
        assert_ne!(day(7), day(8));
    }

    #[test]
    fn session_has_what_the_engine_must_handle() {
        let trades = day(42);
        let spec = SessionSpec::wdo(2024, 1, 8, 42);
        assert!(trades.len() > 15_000 && trades.len() < 30_000, "{} trades", trades.len());
        let clock = crate::time::SessionClock::default();
        for t in &trades {
            let tod = clock.ms_of_day(t.ts_ms);
            assert!((9 * 3_600_000..(17 * 60 + 55) * MS_PER_MINUTE).contains(&tod), "trade outside session");
            assert_eq!(t.price.raw() % spec.tick.raw(), 0, "price off the tick grid");
            assert!(t.quantity > 0);
        }
        let count = |ty| trades.iter().filter(|t| t.trade_type == ty).count();
        assert!(count(TradeType::Auction) >= 60, "opening and intraday auctions");
        assert!(count(TradeType::Cross) > 0 && count(TradeType::Rlp) > 0);
        let buys = count(TradeType::AggressorBuy) as f64;
        let sells = count(TradeType::AggressorSell) as f64;
        assert!(buys > 0.0 && sells > 0.0);
        let edits: Vec<_> = trades.iter().filter(|t| t.is_edit).collect();
        assert!(!edits.is_empty(), "a few corrections");
        for e in edits {
            assert!(trades.iter().any(|t| !t.is_edit && t.trade_number == e.trade_number), "edit of an unknown trade");
        }
        // Trade numbers rise, except for corrections which repeat an old number.
        let originals: Vec<u64> = trades.iter().filter(|t| !t.is_edit).map(|t| t.trade_number).collect();
        assert!(originals.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn regimes_switch_during_the_day() {
        let mut g = SessionGenerator::new(SessionSpec::wdo(2024, 1, 8, 3));
        let mut seen = std::collections::HashSet::new();
        while g.next().is_some() {
            seen.insert(g.regime() as u8);
        }
        assert!(seen.len() >= 2, "only one regime in a whole day");
    }

    #[test]
    fn weekdays_skip_weekends() {
        // 2024-01-05 is a Friday.
        assert_eq!(weekdays_from(2024, 1, 5, 2), vec![(2024, 1, 5), (2024, 1, 8)]);
    }
}
