//! Native feature extensions: extra features computed from the trades
//! themselves, appended to the frame after the v3 features.
//!
//! [`Microstructure`] is both the engine's native extension and the logic of
//! the example WebAssembly plugin `plugins/rust/microstructure`, which is a
//! thin wrapper around it: the two give the same numbers by construction.

use serde::{Deserialize, Serialize};

use crate::hooks::FeatureExtensions;
use crate::market::{Candle, Price, Trade};
use crate::time::{B3_UTC_OFFSET_MINUTES, SessionClock};

/// Output names of [`Microstructure`], in order.
pub const MICROSTRUCTURE_OUTPUTS: [&str; 5] =
    ["ms_trade_rate", "ms_avg_trade_size", "ms_large_trade_share", "ms_vwap_distance", "ms_price_impact"];

/// Largest window [`Microstructure`] accepts, in trades.
pub const MAX_WINDOW_TRADES: usize = 1 << 16;

/// Quantities are clamped to this many contracts, so sums stay exact.
const QUANTITY_LIMIT: i64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MicrostructureConfig {
    /// Trades in the rolling window (rate, size, large share, impact).
    pub window_trades: usize,
    /// A trade of at least this many contracts is "large".
    pub large_trade_contracts: i64,
    /// For the session VWAP, which restarts at each local trading day.
    pub utc_offset_minutes: i32,
}

impl Default for MicrostructureConfig {
    fn default() -> Self {
        Self { window_trades: 50, large_trade_contracts: 10, utc_offset_minutes: B3_UTC_OFFSET_MINUTES }
    }
}

/// One trade in the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    ts_ms: i64,
    quantity: i64,
    /// |price - previous price|, raw fixed-point units (0 for a day's first trade).
    impact_raw: i64,
}

/// Microstructure features over the last `window_trades` trades of the day:
///
/// - `ms_trade_rate`: trades per second, `(n - 1) / span` of the window
///   (span at least 1 ms); 0 with fewer than two trades.
/// - `ms_avg_trade_size`: mean contracts per trade.
/// - `ms_large_trade_share`: share of the window's contracts traded in
///   trades of at least `large_trade_contracts`, in [0, 1].
/// - `ms_vwap_distance`: last trade price minus the session VWAP, in points.
/// - `ms_price_impact`: sum of |Δprice| between consecutive trades over the
///   contracts traded, points per contract.
///
/// Edits and trades without a positive quantity are ignored. Everything
/// restarts at a new local trading day. O(1) per trade, no allocation after
/// construction, sums kept in integers (exact, no drift). The outputs are a
/// function of the trades seen so far only, so `on_candle` writes the same
/// values as the last per-trade update: a plugin answering per trade and the
/// native extension answering at the close agree.
#[derive(Clone, Debug)]
pub struct Microstructure {
    config: MicrostructureConfig,
    clock: SessionClock,
    ring: Vec<Slot>,
    next: usize,
    filled: usize,
    sum_quantity: i128,
    sum_large_quantity: i128,
    sum_impact_raw: i128,
    day: Option<i64>,
    last_price: Option<Price>,
    session_pq: i128,
    session_q: i128,
}

impl Default for Microstructure {
    fn default() -> Self {
        Self::new(MicrostructureConfig::default())
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"TMS1";

impl Microstructure {
    pub fn new(config: MicrostructureConfig) -> Self {
        let window = config.window_trades.clamp(1, MAX_WINDOW_TRADES);
        Self {
            clock: SessionClock { utc_offset_minutes: config.utc_offset_minutes },
            ring: vec![Slot::default(); window],
            next: 0,
            filled: 0,
            sum_quantity: 0,
            sum_large_quantity: 0,
            sum_impact_raw: 0,
            day: None,
            last_price: None,
            session_pq: 0,
            session_q: 0,
            config: MicrostructureConfig { window_trades: window, ..config },
        }
    }

    pub fn config(&self) -> &MicrostructureConfig {
        &self.config
    }

    /// Number of outputs ([`MICROSTRUCTURE_OUTPUTS`]).
    pub const fn output_count(&self) -> usize {
        MICROSTRUCTURE_OUTPUTS.len()
    }

    /// Trades currently in the window.
    pub fn window_len(&self) -> usize {
        self.filled
    }

    fn reset(&mut self) {
        self.next = 0;
        self.filled = 0;
        self.sum_quantity = 0;
        self.sum_large_quantity = 0;
        self.sum_impact_raw = 0;
        self.day = None;
        self.last_price = None;
        self.session_pq = 0;
        self.session_q = 0;
    }

    fn slot(&self, age_from_oldest: usize) -> Slot {
        let n = self.ring.len();
        self.ring[(self.next + n - self.filled + age_from_oldest) % n]
    }

    fn large(&self, quantity: i64) -> i128 {
        if quantity >= self.config.large_trade_contracts { i128::from(quantity) } else { 0 }
    }

    fn push(&mut self, slot: Slot) {
        if self.filled == self.ring.len() {
            let old = self.ring[self.next];
            self.sum_quantity -= i128::from(old.quantity);
            self.sum_large_quantity -= self.large(old.quantity);
            self.sum_impact_raw -= i128::from(old.impact_raw);
        } else {
            self.filled += 1;
        }
        self.ring[self.next] = slot;
        self.next = (self.next + 1) % self.ring.len();
        self.sum_quantity += i128::from(slot.quantity);
        self.sum_large_quantity += self.large(slot.quantity);
        self.sum_impact_raw += i128::from(slot.impact_raw);
    }

    /// Feeds one trade.
    pub fn update(&mut self, trade: &Trade) {
        if trade.is_edit || trade.quantity <= 0 {
            return;
        }
        let quantity = trade.quantity.min(QUANTITY_LIMIT);
        let day = self.clock.day(trade.ts_ms);
        if self.day != Some(day) {
            self.reset();
            self.day = Some(day);
        }
        let price = trade.price;
        let impact_raw = self.last_price.map_or(0, |p| {
            // Saturates instead of overflowing on absurd prices.
            price.raw().checked_sub(p.raw()).map_or(i64::MAX, i64::saturating_abs)
        });
        self.push(Slot { ts_ms: trade.ts_ms, quantity, impact_raw });
        self.last_price = Some(price);
        self.session_pq = self.session_pq.saturating_add(i128::from(price.raw()) * i128::from(quantity));
        self.session_q = self.session_q.saturating_add(i128::from(quantity));
    }

    /// Writes the current outputs into `out` (at most [`MICROSTRUCTURE_OUTPUTS`]
    /// values; a longer `out` keeps its tail). Always finite.
    pub fn write_outputs(&self, out: &mut [f64]) {
        let values = self.outputs();
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
    }

    /// The current outputs, in [`MICROSTRUCTURE_OUTPUTS`] order.
    pub fn outputs(&self) -> [f64; MICROSTRUCTURE_OUTPUTS.len()] {
        let n = self.filled;
        if n == 0 || self.sum_quantity <= 0 {
            return [0.0; MICROSTRUCTURE_OUTPUTS.len()];
        }
        let scale = Price::SCALE as f64;
        let sum_q = self.sum_quantity as f64;
        let rate = if n < 2 {
            0.0
        } else {
            let span_ms = self.slot(n - 1).ts_ms.saturating_sub(self.slot(0).ts_ms).max(1);
            (n - 1) as f64 * 1000.0 / span_ms as f64
        };
        let vwap_distance = match self.last_price {
            Some(last) if self.session_q > 0 => {
                let vwap = self.session_pq as f64 / self.session_q as f64 / scale;
                last.as_f64() - vwap
            }
            _ => 0.0,
        };
        let values = [
            rate,
            sum_q / n as f64,
            (self.sum_large_quantity as f64 / sum_q).clamp(0.0, 1.0),
            vwap_distance,
            self.sum_impact_raw as f64 / scale / sum_q,
        ];
        values.map(|v| if v.is_finite() { v } else { 0.0 })
    }

    /// The state as bytes (little-endian): magic, day, last price, session
    /// sums, then the window's trades oldest first. Config is not included.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 1 + 8 + 1 + 8 + 16 + 16 + 4 + self.filled * 24);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        put_option(&mut out, self.day);
        put_option(&mut out, self.last_price.map(Price::raw));
        out.extend_from_slice(&self.session_pq.to_le_bytes());
        out.extend_from_slice(&self.session_q.to_le_bytes());
        out.extend_from_slice(&(self.filled as u32).to_le_bytes());
        for i in 0..self.filled {
            let s = self.slot(i);
            for v in [s.ts_ms, s.quantity, s.impact_raw] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Restores a [`Microstructure::snapshot`]. Empty bytes give a fresh
    /// state; anything malformed is an error and leaves the state unchanged.
    /// A snapshot taken with a larger window keeps its newest trades.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            self.reset();
            return Ok(());
        }
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("microstructure snapshot: bad magic (not a TMS1 snapshot)".to_string());
        }
        let day = r.option_i64()?;
        let last_price = r.option_i64()?.map(Price::from_raw);
        let session_pq = r.i128()?;
        let session_q = r.i128()?;
        let count = r.u32()? as usize;
        if count.checked_mul(24) != Some(bytes.len() - r.pos) {
            return Err(format!(
                "microstructure snapshot: {count} trades need {} bytes, {} left",
                count.saturating_mul(24),
                bytes.len() - r.pos
            ));
        }
        if session_q < 0 {
            return Err("microstructure snapshot: negative session quantity".to_string());
        }
        let mut fresh = Self::new(self.config.clone());
        let skip = count.saturating_sub(fresh.ring.len());
        for i in 0..count {
            let (ts_ms, quantity, impact_raw) = (r.i64()?, r.i64()?, r.i64()?);
            if !(1..=QUANTITY_LIMIT).contains(&quantity) || impact_raw < 0 {
                return Err(format!("microstructure snapshot: trade {i} is out of range"));
            }
            if i >= skip {
                fresh.push(Slot { ts_ms, quantity, impact_raw });
            }
        }
        fresh.day = day;
        fresh.last_price = last_price;
        fresh.session_pq = session_pq;
        fresh.session_q = session_q;
        *self = fresh;
        Ok(())
    }
}

fn put_option(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("microstructure snapshot: truncated at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn i128(&mut self) -> Result<i128, String> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    fn option_i64(&mut self) -> Result<Option<i64>, String> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.i64()?)),
            t => Err(format!("microstructure snapshot: bad option tag {t}")),
        }
    }
}

impl FeatureExtensions for Microstructure {
    fn output_names(&self) -> Vec<String> {
        MICROSTRUCTURE_OUTPUTS.iter().map(|s| s.to_string()).collect()
    }

    fn on_trade(&mut self, trade: &Trade, _frame: &[f64]) {
        self.update(trade);
    }

    fn on_candle(&mut self, _candle: &Candle, _v3: &[f64], out: &mut [f64]) {
        self.write_outputs(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{AgentId, Symbol, TradeType};

    const DAY_MS: i64 = 86_400_000;
    /// 2025-03-10 12:00 UTC = 09:00 in São Paulo.
    const T0: i64 = 1_741_608_000_000;

    fn trade(ts_ms: i64, price: f64, quantity: i64) -> Trade {
        Trade {
            symbol: Symbol::new("WDOH25").unwrap(),
            ts_ms,
            trade_number: 0,
            price: Price::from_f64(price).unwrap(),
            quantity,
            volume: price * quantity as f64 * 10.0,
            buy_agent: AgentId(1),
            sell_agent: AgentId(2),
            trade_type: TradeType::AggressorBuy,
            is_edit: false,
        }
    }

    /// The outputs recomputed from scratch over the trades of the last day.
    fn naive(trades: &[Trade], config: &MicrostructureConfig) -> [f64; 5] {
        let clock = SessionClock { utc_offset_minutes: config.utc_offset_minutes };
        let valid: Vec<&Trade> = trades.iter().filter(|t| !t.is_edit && t.quantity > 0).collect();
        let Some(last) = valid.last() else { return [0.0; 5] };
        let day: Vec<&Trade> = valid.iter().copied().filter(|t| clock.day(t.ts_ms) == clock.day(last.ts_ms)).collect();
        let start = day.len().saturating_sub(config.window_trades);
        let w = &day[start..];
        let q: f64 = w.iter().map(|t| t.quantity as f64).sum();
        let n = w.len();
        let rate = if n < 2 { 0.0 } else { (n - 1) as f64 * 1000.0 / (w[n - 1].ts_ms - w[0].ts_ms).max(1) as f64 };
        let large: f64 =
            w.iter().filter(|t| t.quantity >= config.large_trade_contracts).map(|t| t.quantity as f64).sum();
        let impact: f64 = (start..day.len())
            .map(|i| if i == 0 { 0.0 } else { (day[i].price.as_f64() - day[i - 1].price.as_f64()).abs() })
            .sum();
        let pq: f64 = day.iter().map(|t| t.price.as_f64() * t.quantity as f64).sum();
        let dq: f64 = day.iter().map(|t| t.quantity as f64).sum();
        [rate, q / n as f64, large / q, last.price.as_f64() - pq / dq, impact / q]
    }

    fn candle() -> Candle {
        Candle::flat(Symbol::new("WDOH25").unwrap(), T0, T0, 1.0)
    }

    fn assert_close(a: [f64; 5], b: [f64; 5]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{}: {x} vs {y}", MICROSTRUCTURE_OUTPUTS[i]);
        }
    }

    /// A deterministic pseudo-random stream (xorshift), no dependency.
    fn stream(count: usize, seed: u64) -> Vec<Trade> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut ts = T0;
        let mut price = 5000.0;
        (0..count)
            .map(|i| {
                ts += (next() % 900) as i64;
                if i == count / 2 {
                    ts += DAY_MS; // a new session half-way
                }
                price += ((next() % 5) as f64 - 2.0) * 0.5;
                let quantity = (next() % 25) as i64 - 2; // some zero and negative quantities
                let mut t = trade(ts, price, quantity);
                t.is_edit = next() % 50 == 0;
                t
            })
            .collect()
    }

    #[test]
    fn matches_a_recomputation_from_scratch() {
        let config = MicrostructureConfig { window_trades: 20, ..Default::default() };
        let trades = stream(600, 7);
        let mut ms = Microstructure::new(config.clone());
        for (i, t) in trades.iter().enumerate() {
            ms.on_trade(t, &[]);
            assert_close(ms.outputs(), naive(&trades[..=i], &config));
        }
    }

    #[test]
    fn on_candle_writes_the_outputs_and_names_match() {
        let mut ms = Microstructure::default();
        assert_eq!(ms.output_names(), MICROSTRUCTURE_OUTPUTS.map(String::from).to_vec());
        let mut out = [f64::NAN; 5];
        ms.on_candle(&candle(), &[], &mut out);
        assert_eq!(out, [0.0; 5]);
        ms.on_trade(&trade(T0, 5000.0, 2), &[]);
        ms.on_trade(&trade(T0 + 500, 5001.0, 12), &[]);
        ms.on_candle(&candle(), &[], &mut out);
        // 1 trade in 0.5 s; (2 + 12) / 2; 12 of 14 large; 5001 - (10000 + 60012) / 14; 1 point / 14.
        assert_close(out, [2.0, 7.0, 12.0 / 14.0, 5001.0 - 70012.0 / 14.0, 1.0 / 14.0]);
    }

    #[test]
    fn snapshot_round_trips_and_garbage_is_an_error() {
        let trades = stream(300, 11);
        let mut a = Microstructure::default();
        for t in &trades[..200] {
            a.update(t);
        }
        let bytes = a.snapshot();
        let mut b = Microstructure::default();
        b.restore(&bytes).unwrap();
        assert_eq!(b.snapshot(), bytes);
        for t in &trades[200..] {
            a.update(t);
            b.update(t);
            assert_eq!(a.outputs(), b.outputs());
        }
        // A smaller window keeps the newest trades.
        let mut small = Microstructure::new(MicrostructureConfig { window_trades: 5, ..Default::default() });
        small.restore(&a.snapshot()).unwrap();
        assert_eq!(small.window_len(), 5);

        let before = b.snapshot();
        for garbage in [&b"x"[..], b"TMS1", b"TMS1\x02", &bytes[..bytes.len() - 1], b"nope nope nope"] {
            assert!(b.restore(garbage).is_err(), "{garbage:?}");
            assert_eq!(b.snapshot(), before, "a failed restore changes nothing");
        }
        b.restore(&[]).unwrap();
        assert_eq!(b.outputs(), [0.0; 5]);
        assert_eq!(b.window_len(), 0);
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let mut ms = Microstructure::default();
        for (ts, raw, q) in
            [(i64::MIN, i64::MIN, i64::MAX), (i64::MAX, i64::MAX, 1), (T0, 0, i64::MAX), (T0, i64::MIN, 1), (T0, 1, 1)]
        {
            let mut t = trade(T0, 1.0, 1);
            t.ts_ms = ts;
            t.price = Price::from_raw(raw);
            t.quantity = q;
            ms.update(&t);
            let out = ms.outputs();
            assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
            assert!((0.0..=1.0).contains(&out[2]));
        }
    }
}
