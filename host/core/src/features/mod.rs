//! The native v3 feature core: [`V3_FEATURE_COUNT`] features per closed
//! candle, updated incrementally in O(1) and without allocating.
//!
//! [`reference::compute_last`] recomputes the same numbers from scratch and is
//! the oracle the tests hold [`FeatureCore`] to (and the "naive" baseline of
//! the benchmark). Both follow the rules below exactly.
//!
//! # Conventions
//! - A window of `N` covers the last `N` closed candles including the current
//!   one. `x[k]` is the value `k` candles ago.
//! - `r` is the log return `ln(close_t / close_{t-1})`. The first candle has
//!   no return, so return-based windows (`momentum_vw_*`, `volatility_cc/up/
//!   down_*`) use the returns of the candles in the window that have one.
//!
//! # Warm-up (fewer candles than a window needs)
//! - Windows use the candles available: the mean, sum, max or min of the
//!   `min(N, seen)` newest values.
//! - Lags clamp to the oldest candle: `close[N]` is the first close while
//!   fewer than `N + 1` candles exist (so `momentum_N` is 0 on the first
//!   candle). `momentum_accel_N` subtracts `momentum_N` as it was at candle
//!   `max(t - N, 0)`, itself computed with the same clamp.
//! - Standard deviations of fewer than two values are 0. Sample std (n - 1)
//!   for `volatility_cc_*` and `volume_imbalance_std_*`, population std (n)
//!   for the Bollinger bands.
//! - A window whose values are all equal has a variance of exactly 0 (not a
//!   rounding residual), so z-scores and bands are exact on flat markets.
//! - Wilder smoothing (`atr_14`, the DI smoothing and `adx`) is the plain
//!   mean of the values so far up to the 14th, then `(prev * 13 + x) / 14`.
//!   True range of the first candle is `high - low`; +DM, -DM, the DI's TR
//!   and DX start at the second candle (all DI outputs are 0 on the first).
//! - EMAs are seeded with the first close, then `e += alpha * (close - e)`
//!   with `alpha = 2 / (N + 1)`.
//! - `volume_imbalance_cum` sums `buy_volume - sell_volume` over the
//!   contiguous candles of the current local trading day
//!   (`SessionClock::day(open_ms)`); it restarts whenever that day changes.
//!   Nothing else resets at a day change.
//!
//! # Guards
//! - Every ratio is 0 when its denominator is 0 or its quotient is not
//!   finite (`buy_pressure` with no volume, `avg_trade_size` with no trades,
//!   `volume_imbalance` / `trade_imbalance` with no aggressors, `zscore` with
//!   std 0, `momentum_vol_ratio_5` with volatility 0, ...). Percent changes
//!   (`momentum_pct`, `roc`, `volume_momentum`) are 0 when the base is 0.
//! - `ln(a / b)` is 0 unless both are positive and the quotient is a finite
//!   positive number.
//! - `volatility_ratio_N` = up / down, 1 when both are 0, capped at
//!   [`VOLATILITY_RATIO_CAP`] (which is also its value when only down is 0).
//! - `bb_position_20` and `price_position_*` are 0.5 when the range is 0.
//! - Inputs: non-finite candle fields read as 0, magnitudes clamp to
//!   [`INPUT_LIMIT`], negative volumes and trade counts read as 0. So every
//!   output is finite; as a last resort a non-finite output is written as 0
//!   (and is a test failure).

pub mod reference;
mod rolling;
#[cfg(test)]
mod tests;

use crate::market::Candle;
use crate::time::SessionClock;
use rolling::{Neumaier, Series, SlidingExtreme, Wilder};

/// Number of v3 features.
pub const V3_FEATURE_COUNT: usize = 127;

/// Cap on `volatility_ratio_*`, also its value when there was no down move.
pub const VOLATILITY_RATIO_CAP: f64 = 10.0;

/// Candle prices and volumes are clamped to +-this before use, so squares
/// and sums over a window stay far from overflow.
pub const INPUT_LIMIT: f64 = 1e12;

pub(crate) const MOMENTUM_PERIODS: [usize; 5] = [1, 5, 10, 20, 60];
pub(crate) const ROC_PERIODS: [usize; 3] = [5, 10, 20];
pub(crate) const ACCEL_PERIODS: [usize; 2] = [5, 10];
pub(crate) const LONG_PERIODS: [usize; 4] = [5, 10, 20, 60];
pub(crate) const SHORT_PERIODS: [usize; 3] = [5, 10, 20];
pub(crate) const UPDOWN_PERIODS: [usize; 2] = [10, 20];
pub(crate) const CONCENTRATION_PERIODS: [usize; 2] = [10, 20];
/// Where each concentration window sits among the volume sums, which are
/// kept for [`LONG_PERIODS`] (checked at compile time).
const CONCENTRATION_IN_LONG: [usize; 2] = [long_index(CONCENTRATION_PERIODS[0]), long_index(CONCENTRATION_PERIODS[1])];

const fn long_index(n: usize) -> usize {
    let mut j = 0;
    while LONG_PERIODS[j] != n {
        j += 1;
    }
    j
}
pub(crate) const PRICE_POSITION_PERIODS: [usize; 2] = [20, 50];
pub(crate) const BB_PERIOD: usize = 20;
pub(crate) const WILDER_PERIOD: usize = 14;
pub(crate) const EMA_PERIODS: [usize; 3] = [9, 20, 50];

/// Every feature name, in output order.
pub static V3_FEATURE_NAMES: [&str; V3_FEATURE_COUNT] = [
    // Momentum
    "v3_momentum_1",
    "v3_momentum_pct_1",
    "v3_momentum_vw_buy_1",
    "v3_momentum_vw_sell_1",
    "v3_momentum_vw_diff_1",
    "v3_momentum_5",
    "v3_momentum_pct_5",
    "v3_momentum_vw_buy_5",
    "v3_momentum_vw_sell_5",
    "v3_momentum_vw_diff_5",
    "v3_momentum_10",
    "v3_momentum_pct_10",
    "v3_momentum_vw_buy_10",
    "v3_momentum_vw_sell_10",
    "v3_momentum_vw_diff_10",
    "v3_momentum_20",
    "v3_momentum_pct_20",
    "v3_momentum_vw_buy_20",
    "v3_momentum_vw_sell_20",
    "v3_momentum_vw_diff_20",
    "v3_momentum_60",
    "v3_momentum_pct_60",
    "v3_momentum_vw_buy_60",
    "v3_momentum_vw_sell_60",
    "v3_momentum_vw_diff_60",
    "v3_roc_5",
    "v3_roc_10",
    "v3_roc_20",
    "v3_momentum_accel_5",
    "v3_momentum_accel_10",
    // Volatility
    "v3_volatility_hl_5",
    "v3_volatility_cc_5",
    "v3_volatility_gk_5",
    "v3_volatility_hl_10",
    "v3_volatility_cc_10",
    "v3_volatility_gk_10",
    "v3_volatility_hl_20",
    "v3_volatility_cc_20",
    "v3_volatility_gk_20",
    "v3_volatility_hl_60",
    "v3_volatility_cc_60",
    "v3_volatility_gk_60",
    "v3_volatility_imb_adj_5",
    "v3_volatility_imb_adj_10",
    "v3_volatility_imb_adj_20",
    "v3_volatility_up_10",
    "v3_volatility_down_10",
    "v3_volatility_ratio_10",
    "v3_volatility_up_20",
    "v3_volatility_down_20",
    "v3_volatility_ratio_20",
    // Volume
    "v3_volume_ma_5",
    "v3_volume_ratio_5",
    "v3_volume_momentum_5",
    "v3_volume_ma_10",
    "v3_volume_ratio_10",
    "v3_volume_momentum_10",
    "v3_volume_ma_20",
    "v3_volume_ratio_20",
    "v3_volume_momentum_20",
    "v3_volume_ma_60",
    "v3_volume_ratio_60",
    "v3_volume_momentum_60",
    "v3_buy_pressure",
    "v3_sell_pressure",
    "v3_buy_pressure_ma_5",
    "v3_sell_pressure_ma_5",
    "v3_buy_pressure_momentum_5",
    "v3_sell_pressure_momentum_5",
    "v3_buy_pressure_ma_10",
    "v3_sell_pressure_ma_10",
    "v3_buy_pressure_momentum_10",
    "v3_sell_pressure_momentum_10",
    "v3_buy_pressure_ma_20",
    "v3_sell_pressure_ma_20",
    "v3_buy_pressure_momentum_20",
    "v3_sell_pressure_momentum_20",
    "v3_avg_trade_size",
    "v3_avg_trade_size_ma_5",
    "v3_avg_trade_size_ratio_5",
    "v3_avg_trade_size_ma_10",
    "v3_avg_trade_size_ratio_10",
    "v3_avg_trade_size_ma_20",
    "v3_avg_trade_size_ratio_20",
    "v3_volume_concentration_10",
    "v3_volume_concentration_20",
    // Order flow
    "v3_volume_imbalance",
    "v3_volume_imbalance_abs",
    "v3_volume_imbalance_cum",
    "v3_volume_imbalance_ma_5",
    "v3_volume_imbalance_std_5",
    "v3_volume_imbalance_zscore_5",
    "v3_volume_imbalance_ma_10",
    "v3_volume_imbalance_std_10",
    "v3_volume_imbalance_zscore_10",
    "v3_volume_imbalance_ma_20",
    "v3_volume_imbalance_std_20",
    "v3_volume_imbalance_zscore_20",
    "v3_trade_imbalance",
    "v3_trade_imbalance_abs",
    "v3_trade_imbalance_ma_5",
    "v3_trade_imbalance_ma_10",
    "v3_trade_imbalance_ma_20",
    "v3_buy_run_length",
    "v3_sell_run_length",
    // Technical
    "v3_bb_upper_20",
    "v3_bb_lower_20",
    "v3_bb_width_20",
    "v3_bb_position_20",
    "v3_atr_14",
    "v3_atr_ratio_14",
    "v3_price_position_20",
    "v3_price_position_50",
    // Regime
    "v3_ema_9",
    "v3_ema_20",
    "v3_ema_50",
    "v3_plus_di",
    "v3_minus_di",
    "v3_di_diff",
    "v3_adx",
    "v3_trend_strength",
    "v3_trend_direction",
    "v3_ema_alignment_score",
    // Interactions
    "v3_momentum_vol_ratio_5",
    "v3_volume_volatility_5",
    "v3_buy_pressure_momentum",
    "v3_trend_volume_interaction",
];

/// Position of `name` (with its `v3_` prefix) in the output.
pub fn v3_index(name: &str) -> Option<usize> {
    V3_FEATURE_NAMES.iter().position(|n| *n == name)
}

/// Whether `full` is `v3_{base}` (period 0) or `v3_{base}_{period}`.
/// Lets both implementations state which feature each write is, so a test
/// build catches any drift between the write order and [`V3_FEATURE_NAMES`].
pub(crate) fn name_is(full: &str, base: &str, period: usize) -> bool {
    let Some(rest) = full.strip_prefix("v3_").and_then(|r| r.strip_prefix(base)) else {
        return false;
    };
    if period == 0 {
        rest.is_empty()
    } else {
        rest.strip_prefix('_').and_then(|p| p.parse::<usize>().ok()) == Some(period)
    }
}

/// Sequential writer over the output slice.
struct Out<'a> {
    out: &'a mut [f64],
    i: usize,
}

impl<'a> Out<'a> {
    fn new(out: &'a mut [f64]) -> Self {
        assert_eq!(out.len(), V3_FEATURE_COUNT, "output slice must hold V3_FEATURE_COUNT values");
        Self { out, i: 0 }
    }

    #[inline]
    fn put(&mut self, base: &str, period: usize, v: f64) {
        if cfg!(test) {
            let name = V3_FEATURE_NAMES[self.i];
            assert!(name_is(name, base, period), "write #{} is {base}/{period}, but the name there is {name}", self.i);
            assert!(v.is_finite(), "{name} = {v}");
        }
        self.out[self.i] = if v.is_finite() { v } else { 0.0 };
        self.i += 1;
    }

    fn finish(self) {
        debug_assert_eq!(self.i, V3_FEATURE_COUNT);
        if cfg!(test) {
            assert_eq!(self.i, V3_FEATURE_COUNT, "not every feature was written");
        }
    }
}

#[inline]
fn safe_div(a: f64, b: f64) -> f64 {
    let q = a / b;
    if q.is_finite() { q } else { 0.0 }
}

/// `a / b - 1`, 0 when `b` is 0 or the quotient is not finite.
#[inline]
fn pct_change(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { safe_div(a, b) - 1.0 }
}

#[inline]
fn ln_ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 {
        let q = a / b;
        if q.is_finite() && q > 0.0 { q.ln() } else { 0.0 }
    } else {
        0.0
    }
}

#[inline]
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[inline]
fn clean_price(x: f64) -> f64 {
    if x.is_finite() { x.clamp(-INPUT_LIMIT, INPUT_LIMIT) } else { 0.0 }
}

#[inline]
fn clean_qty(x: f64) -> f64 {
    if x.is_finite() { x.clamp(0.0, INPUT_LIMIT) } else { 0.0 }
}

/// The candle fields the features read, sanitised.
#[derive(Debug, Clone, Copy)]
struct Bar {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    buy_volume: f64,
    sell_volume: f64,
    trades: f64,
    buy_trades: f64,
    sell_trades: f64,
    buy_run: f64,
    sell_run: f64,
}

impl Bar {
    fn new(c: &Candle) -> Self {
        Self {
            open: clean_price(c.open),
            high: clean_price(c.high),
            low: clean_price(c.low),
            close: clean_price(c.close),
            volume: clean_qty(c.volume),
            buy_volume: clean_qty(c.buy_volume),
            sell_volume: clean_qty(c.sell_volume),
            trades: f64::from(c.trades),
            buy_trades: f64::from(c.buy_trades),
            sell_trades: f64::from(c.sell_trades),
            buy_run: f64::from(c.max_buy_run),
            sell_run: f64::from(c.max_sell_run),
        }
    }
}

/// Incremental v3 features. Feed it every closed candle in order.
#[derive(Debug, Clone)]
pub struct FeatureCore {
    clock: SessionClock,
    seen: u64,
    prev: Option<Bar>,
    /// Closes, with the Bollinger window.
    close: Series<1>,
    /// Log returns over [`LONG_PERIODS`].
    ret: Series<4>,
    /// max(r, 0)^2 and min(r, 0)^2 over [`UPDOWN_PERIODS`].
    up2: Series<2>,
    down2: Series<2>,
    /// r * buy_volume, buy_volume, r * sell_volume, sell_volume of candles
    /// that have a return, over [`MOMENTUM_PERIODS`].
    r_buy: Series<5>,
    buy_r: Series<5>,
    r_sell: Series<5>,
    sell_r: Series<5>,
    /// (high - low) / close and the Garman-Klass term, over [`LONG_PERIODS`].
    hl: Series<4>,
    gk: Series<4>,
    volume: Series<4>,
    volume_max: [SlidingExtreme; 2],
    buy_pressure: Series<3>,
    sell_pressure: Series<3>,
    avg_trade_size: Series<3>,
    imbalance: Series<3>,
    trade_imbalance: Series<3>,
    high_max: [SlidingExtreme; 2],
    low_min: [SlidingExtreme; 2],
    day: Option<i64>,
    cum_imbalance: Neumaier,
    atr: Wilder,
    plus_dm: Wilder,
    minus_dm: Wilder,
    dmi_tr: Wilder,
    adx: Wilder,
    ema: [f64; 3],
}

impl FeatureCore {
    pub fn new(clock: SessionClock) -> Self {
        let w = WILDER_PERIOD as u64;
        Self {
            clock,
            seen: 0,
            prev: None,
            close: Series::with_variance([BB_PERIOD]),
            ret: Series::with_variance(LONG_PERIODS),
            up2: Series::new(UPDOWN_PERIODS),
            down2: Series::new(UPDOWN_PERIODS),
            r_buy: Series::new(MOMENTUM_PERIODS),
            buy_r: Series::new(MOMENTUM_PERIODS),
            r_sell: Series::new(MOMENTUM_PERIODS),
            sell_r: Series::new(MOMENTUM_PERIODS),
            hl: Series::new(LONG_PERIODS),
            gk: Series::new(LONG_PERIODS),
            volume: Series::new(LONG_PERIODS),
            volume_max: CONCENTRATION_PERIODS.map(SlidingExtreme::max),
            buy_pressure: Series::new(SHORT_PERIODS),
            sell_pressure: Series::new(SHORT_PERIODS),
            avg_trade_size: Series::new(SHORT_PERIODS),
            imbalance: Series::with_variance(SHORT_PERIODS),
            trade_imbalance: Series::with_variance(SHORT_PERIODS),
            high_max: PRICE_POSITION_PERIODS.map(SlidingExtreme::max),
            low_min: PRICE_POSITION_PERIODS.map(SlidingExtreme::min),
            day: None,
            cum_imbalance: Neumaier::default(),
            atr: Wilder::new(w),
            plus_dm: Wilder::new(w),
            minus_dm: Wilder::new(w),
            dmi_tr: Wilder::new(w),
            adx: Wilder::new(w),
            ema: [0.0; 3],
        }
    }

    pub fn candles_seen(&self) -> u64 {
        self.seen
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.clock);
    }

    /// Called once per CLOSED candle; writes all [`V3_FEATURE_COUNT`] values
    /// into `out` (which must hold exactly that many). O(1), no allocation.
    pub fn on_candle(&mut self, candle: &Candle, out: &mut [f64]) {
        let mut o = Out::new(out);
        let b = Bar::new(candle);
        self.update(&b, candle.open_ms);
        self.write(&b, &mut o);
        o.finish();
        self.prev = Some(b);
        self.seen += 1;
    }

    fn update(&mut self, b: &Bar, open_ms: i64) {
        self.close.push(b.close);
        if let Some(p) = self.prev {
            let r = ln_ratio(b.close, p.close);
            self.ret.push(r);
            let up = r.max(0.0);
            let down = r.min(0.0);
            self.up2.push(up * up);
            self.down2.push(down * down);
            self.r_buy.push(r * b.buy_volume);
            self.buy_r.push(b.buy_volume);
            self.r_sell.push(r * b.sell_volume);
            self.sell_r.push(b.sell_volume);
        }
        self.hl.push(safe_div(b.high - b.low, b.close));
        let hl = ln_ratio(b.high, b.low);
        let co = ln_ratio(b.close, b.open);
        self.gk.push(0.5 * hl * hl - (2.0 * std::f64::consts::LN_2 - 1.0) * co * co);

        self.volume.push(b.volume);
        for m in &mut self.volume_max {
            m.push(b.volume);
        }
        self.buy_pressure.push(safe_div(b.buy_volume, b.volume));
        self.sell_pressure.push(safe_div(b.sell_volume, b.volume));
        self.avg_trade_size.push(safe_div(b.volume, b.trades));
        self.imbalance.push(safe_div(b.buy_volume - b.sell_volume, b.buy_volume + b.sell_volume));
        self.trade_imbalance.push(safe_div(b.buy_trades - b.sell_trades, b.buy_trades + b.sell_trades));

        for m in &mut self.high_max {
            m.push(b.high);
        }
        for m in &mut self.low_min {
            m.push(b.low);
        }

        let day = self.clock.day(open_ms);
        if self.day != Some(day) {
            self.day = Some(day);
            self.cum_imbalance = Neumaier::default();
        }
        self.cum_imbalance.add(b.buy_volume - b.sell_volume);

        let range = b.high - b.low;
        match self.prev {
            None => {
                self.atr.update(range);
                for (e, _) in self.ema.iter_mut().zip(EMA_PERIODS) {
                    *e = b.close;
                }
            }
            Some(p) => {
                let tr = range.max((b.high - p.close).abs()).max((b.low - p.close).abs());
                self.atr.update(tr);
                let up = b.high - p.high;
                let down = p.low - b.low;
                self.plus_dm.update(if up > down && up > 0.0 { up } else { 0.0 });
                self.minus_dm.update(if down > up && down > 0.0 { down } else { 0.0 });
                self.dmi_tr.update(tr);
                let (pdi, mdi) = self.di();
                self.adx.update(safe_div(100.0 * (pdi - mdi).abs(), pdi + mdi));
                for (e, n) in self.ema.iter_mut().zip(EMA_PERIODS) {
                    let alpha = 2.0 / (n as f64 + 1.0);
                    *e += alpha * (b.close - *e);
                }
            }
        }
    }

    fn di(&self) -> (f64, f64) {
        let tr = self.dmi_tr.value();
        (safe_div(100.0 * self.plus_dm.value(), tr), safe_div(100.0 * self.minus_dm.value(), tr))
    }

    fn write(&self, b: &Bar, o: &mut Out<'_>) {
        let close = &self.close.ring;
        let c = b.close;

        // Momentum
        let mut pct5 = 0.0;
        for (j, n) in MOMENTUM_PERIODS.into_iter().enumerate() {
            let base = close.lag(n);
            let pct = pct_change(c, base);
            if n == 5 {
                pct5 = pct;
            }
            let vw_buy = safe_div(self.r_buy.sum(j), self.buy_r.sum(j));
            let vw_sell = safe_div(self.r_sell.sum(j), self.sell_r.sum(j));
            o.put("momentum", n, c - base);
            o.put("momentum_pct", n, pct);
            o.put("momentum_vw_buy", n, vw_buy);
            o.put("momentum_vw_sell", n, vw_sell);
            o.put("momentum_vw_diff", n, vw_buy - vw_sell);
        }
        for n in ROC_PERIODS {
            o.put("roc", n, 100.0 * pct_change(c, close.lag(n)));
        }
        let oldest = close.len() - 1;
        for n in ACCEL_PERIODS {
            let k1 = n.min(oldest);
            let k2 = (k1 + n).min(oldest);
            let then = close.ago(k1);
            o.put("momentum_accel", n, (c - then) - (then - close.ago(k2)));
        }

        // Volatility
        let mut cc = [0.0; 4];
        for (j, n) in LONG_PERIODS.into_iter().enumerate() {
            cc[j] = self.ret.std_sample(j);
            o.put("volatility_hl", n, self.hl.mean(j));
            o.put("volatility_cc", n, cc[j]);
            o.put("volatility_gk", n, self.gk.mean(j).max(0.0).sqrt());
        }
        for (j, n) in SHORT_PERIODS.into_iter().enumerate() {
            o.put("volatility_imb_adj", n, cc[j] * (1.0 + self.imbalance.mean(j).abs()));
        }
        for (j, n) in UPDOWN_PERIODS.into_iter().enumerate() {
            let up = self.up2.mean(j).sqrt();
            let down = self.down2.mean(j).sqrt();
            let ratio = if up == 0.0 && down == 0.0 {
                1.0
            } else if down == 0.0 {
                VOLATILITY_RATIO_CAP
            } else {
                safe_div(up, down).min(VOLATILITY_RATIO_CAP)
            };
            o.put("volatility_up", n, up);
            o.put("volatility_down", n, down);
            o.put("volatility_ratio", n, ratio);
        }

        // Volume
        let v = b.volume;
        let mut ratio5 = 0.0;
        let mut ratio20 = 0.0;
        for (j, n) in LONG_PERIODS.into_iter().enumerate() {
            let ma = self.volume.mean(j);
            let ratio = safe_div(v, ma);
            match n {
                5 => ratio5 = ratio,
                20 => ratio20 = ratio,
                _ => {}
            }
            o.put("volume_ma", n, ma);
            o.put("volume_ratio", n, ratio);
            o.put("volume_momentum", n, pct_change(v, self.volume.lag(n)));
        }
        let bp = self.buy_pressure.last();
        let sp = self.sell_pressure.last();
        o.put("buy_pressure", 0, bp);
        o.put("sell_pressure", 0, sp);
        for (j, n) in SHORT_PERIODS.into_iter().enumerate() {
            o.put("buy_pressure_ma", n, self.buy_pressure.mean(j));
            o.put("sell_pressure_ma", n, self.sell_pressure.mean(j));
            o.put("buy_pressure_momentum", n, bp - self.buy_pressure.lag(n));
            o.put("sell_pressure_momentum", n, sp - self.sell_pressure.lag(n));
        }
        let ats = self.avg_trade_size.last();
        o.put("avg_trade_size", 0, ats);
        for (j, n) in SHORT_PERIODS.into_iter().enumerate() {
            let ma = self.avg_trade_size.mean(j);
            o.put("avg_trade_size_ma", n, ma);
            o.put("avg_trade_size_ratio", n, safe_div(ats, ma));
        }
        for ((m, n), j) in self.volume_max.iter().zip(CONCENTRATION_PERIODS).zip(CONCENTRATION_IN_LONG) {
            o.put("volume_concentration", n, safe_div(m.value(), self.volume.sum(j)));
        }

        // Order flow
        let imb = self.imbalance.last();
        o.put("volume_imbalance", 0, imb);
        o.put("volume_imbalance_abs", 0, imb.abs());
        o.put("volume_imbalance_cum", 0, self.cum_imbalance.value());
        for (j, n) in SHORT_PERIODS.into_iter().enumerate() {
            let ma = self.imbalance.mean(j);
            let sd = self.imbalance.std_sample(j);
            o.put("volume_imbalance_ma", n, ma);
            o.put("volume_imbalance_std", n, sd);
            o.put("volume_imbalance_zscore", n, if sd == 0.0 { 0.0 } else { safe_div(imb - ma, sd) });
        }
        let timb = self.trade_imbalance.last();
        o.put("trade_imbalance", 0, timb);
        o.put("trade_imbalance_abs", 0, timb.abs());
        for (j, n) in SHORT_PERIODS.into_iter().enumerate() {
            o.put("trade_imbalance_ma", n, self.trade_imbalance.mean(j));
        }
        o.put("buy_run_length", 0, b.buy_run);
        o.put("sell_run_length", 0, b.sell_run);

        // Technical
        let sma = self.close.mean(0);
        let sd = self.close.std_pop(0);
        let upper = sma + 2.0 * sd;
        let lower = sma - 2.0 * sd;
        let width = upper - lower;
        o.put("bb_upper", BB_PERIOD, upper);
        o.put("bb_lower", BB_PERIOD, lower);
        o.put("bb_width", BB_PERIOD, safe_div(width, sma));
        o.put("bb_position", BB_PERIOD, if width == 0.0 { 0.5 } else { safe_div(c - lower, width) });
        let atr = self.atr.value();
        o.put("atr", WILDER_PERIOD, atr);
        o.put("atr_ratio", WILDER_PERIOD, safe_div(atr, c));
        for ((hi, lo), n) in self.high_max.iter().zip(&self.low_min).zip(PRICE_POSITION_PERIODS) {
            let (hi, lo) = (hi.value(), lo.value());
            let range = hi - lo;
            o.put("price_position", n, if range == 0.0 { 0.5 } else { safe_div(c - lo, range) });
        }

        // Regime
        let [e9, e20, e50] = self.ema;
        o.put("ema", 9, e9);
        o.put("ema", 20, e20);
        o.put("ema", 50, e50);
        let (pdi, mdi) = if self.prev.is_some() { self.di() } else { (0.0, 0.0) };
        let adx = self.adx.value();
        let strength = adx / 100.0;
        let direction = if e9 > e20 && e20 > e50 {
            1.0
        } else if e9 < e20 && e20 < e50 {
            -1.0
        } else {
            0.0
        };
        o.put("plus_di", 0, pdi);
        o.put("minus_di", 0, mdi);
        o.put("di_diff", 0, pdi - mdi);
        o.put("adx", 0, adx);
        o.put("trend_strength", 0, strength);
        o.put("trend_direction", 0, direction);
        o.put("ema_alignment_score", 0, (sign(e9 - e20) + sign(e20 - e50) + sign(c - e9)) / 3.0);

        // Interactions
        let cc5 = cc[0];
        o.put("momentum_vol_ratio", 5, if cc5 == 0.0 { 0.0 } else { safe_div(pct5, cc5) });
        o.put("volume_volatility", 5, ratio5 * cc5);
        o.put("buy_pressure_momentum", 0, bp * pct5);
        o.put("trend_volume_interaction", 0, direction * strength * ratio20);
    }
}
