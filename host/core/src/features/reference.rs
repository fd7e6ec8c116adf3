//! The slow oracle for the v3 features: every value of the last candle
//! recomputed from the whole history, by the rules in the [module
//! docs](super). Plain loops, two-pass variances, EMAs and Wilder smoothing
//! replayed from the first candle. It shares no code with
//! [`super::FeatureCore`] beyond the feature names and periods, so the two
//! agreeing is evidence, not a tautology.

use crate::market::Candle;
use crate::time::SessionClock;

use super::{
    ACCEL_PERIODS, BB_PERIOD, CONCENTRATION_PERIODS, EMA_PERIODS, INPUT_LIMIT, LONG_PERIODS, MOMENTUM_PERIODS,
    PRICE_POSITION_PERIODS, ROC_PERIODS, SHORT_PERIODS, UPDOWN_PERIODS, V3_FEATURE_COUNT, V3_FEATURE_NAMES,
    VOLATILITY_RATIO_CAP, WILDER_PERIOD, name_is,
};

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
    day: i64,
}

fn price(x: f64) -> f64 {
    if x.is_finite() { x.clamp(-INPUT_LIMIT, INPUT_LIMIT) } else { 0.0 }
}

fn qty(x: f64) -> f64 {
    if !x.is_finite() || x < 0.0 {
        return 0.0;
    }
    if x > INPUT_LIMIT { INPUT_LIMIT } else { x }
}

impl Bar {
    fn new(c: &Candle, clock: SessionClock) -> Self {
        Self {
            open: price(c.open),
            high: price(c.high),
            low: price(c.low),
            close: price(c.close),
            volume: qty(c.volume),
            buy_volume: qty(c.buy_volume),
            sell_volume: qty(c.sell_volume),
            trades: c.trades as f64,
            buy_trades: c.buy_trades as f64,
            sell_trades: c.sell_trades as f64,
            buy_run: c.max_buy_run as f64,
            sell_run: c.max_sell_run as f64,
            day: clock.day(c.open_ms),
        }
    }
}

/// a / b, or 0 when that is not a finite number.
fn div(a: f64, b: f64) -> f64 {
    let q = a / b;
    if q.is_nan() || q.is_infinite() { 0.0 } else { q }
}

fn log_return(a: f64, b: f64) -> f64 {
    if a <= 0.0 || b <= 0.0 {
        return 0.0;
    }
    let q = a / b;
    if q.is_finite() && q > 0.0 { q.ln() } else { 0.0 }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// Two-pass standard deviation with `ddof` (0 population, 1 sample); 0 for
/// fewer than two values or when all values are equal.
fn std_dev(xs: &[f64], ddof: usize) -> f64 {
    if xs.len() < 2 || xs.iter().all(|&x| x == xs[0]) {
        return 0.0;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|&x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - ddof) as f64).sqrt()
}

fn sign(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x.signum() }
}

/// Wilder's smoothing: the running mean up to the 14th value, then
/// `(prev * 13 + x) / 14`.
#[derive(Default)]
struct Smooth {
    n: usize,
    sum: f64,
    value: f64,
}

impl Smooth {
    fn step(&mut self, x: f64) {
        let p = WILDER_PERIOD;
        self.n += 1;
        if self.n <= p {
            self.sum += x;
            self.value = self.sum / self.n as f64;
        } else {
            self.value = (self.value * (p - 1) as f64 + x) / p as f64;
        }
    }
}

struct Writer<'a> {
    out: &'a mut [f64],
    next: usize,
}

impl Writer<'_> {
    fn put(&mut self, base: &str, period: usize, v: f64) {
        let name = V3_FEATURE_NAMES[self.next];
        if cfg!(test) {
            assert!(name_is(name, base, period), "reference write #{} is {base}/{period}, not {name}", self.next);
            assert!(v.is_finite(), "reference {name} = {v}");
        }
        self.out[self.next] = if v.is_finite() { v } else { 0.0 };
        self.next += 1;
    }
}

/// Recomputes every feature for the LAST candle of `history` from scratch
/// (re-scanning windows, and the whole history for EMAs and Wilder
/// smoothing). An empty history writes zeros.
pub fn compute_last(history: &[Candle], clock: SessionClock, out: &mut [f64]) {
    assert_eq!(out.len(), V3_FEATURE_COUNT, "output slice must hold V3_FEATURE_COUNT values");
    if history.is_empty() {
        out.fill(0.0);
        return;
    }
    let bars: Vec<Bar> = history.iter().map(|c| Bar::new(c, clock)).collect();
    let t = bars.len() - 1;
    let cur = bars[t];
    let c = cur.close;
    let mut w = Writer { out, next: 0 };

    // Candle indices of the window of n ending at t.
    let first_of = |n: usize| (t + 1).saturating_sub(n);
    let window = |n: usize| &bars[first_of(n)..];
    // Candles of that window that have a return (every one but candle 0).
    let ret_window = |n: usize| first_of(n).max(1)..t + 1;
    let ago = |k: usize| bars[t - k.min(t)];
    let ret = |i: usize| log_return(bars[i].close, bars[i - 1].close);

    // Momentum
    for n in MOMENTUM_PERIODS {
        let base = ago(n).close;
        let pct = if base == 0.0 { 0.0 } else { div(c, base) - 1.0 };
        let (mut rb, mut b, mut rs, mut s) = (0.0, 0.0, 0.0, 0.0);
        for i in ret_window(n) {
            rb += ret(i) * bars[i].buy_volume;
            b += bars[i].buy_volume;
            rs += ret(i) * bars[i].sell_volume;
            s += bars[i].sell_volume;
        }
        let (vb, vs) = (div(rb, b), div(rs, s));
        w.put("momentum", n, c - base);
        w.put("momentum_pct", n, pct);
        w.put("momentum_vw_buy", n, vb);
        w.put("momentum_vw_sell", n, vs);
        w.put("momentum_vw_diff", n, vb - vs);
    }
    for n in ROC_PERIODS {
        let base = ago(n).close;
        w.put("roc", n, 100.0 * if base == 0.0 { 0.0 } else { div(c, base) - 1.0 });
    }
    for n in ACCEL_PERIODS {
        let momentum_at = |s: usize| bars[s].close - bars[s.saturating_sub(n)].close;
        w.put("momentum_accel", n, momentum_at(t) - momentum_at(t.saturating_sub(n)));
    }

    // Volatility
    let returns = |n: usize| -> Vec<f64> { ret_window(n).map(ret).collect() };
    let cc = |n: usize| std_dev(&returns(n), 1);
    for n in LONG_PERIODS {
        let hl: Vec<f64> = window(n).iter().map(|b| div(b.high - b.low, b.close)).collect();
        let gk: Vec<f64> = window(n)
            .iter()
            .map(|b| {
                let hl = log_return(b.high, b.low);
                let co = log_return(b.close, b.open);
                0.5 * hl * hl - (2.0 * std::f64::consts::LN_2 - 1.0) * co * co
            })
            .collect();
        let g = mean(&gk);
        w.put("volatility_hl", n, mean(&hl));
        w.put("volatility_cc", n, cc(n));
        w.put("volatility_gk", n, if g > 0.0 { g.sqrt() } else { 0.0 });
    }
    let imbalance = |b: &Bar| div(b.buy_volume - b.sell_volume, b.buy_volume + b.sell_volume);
    let imbalances = |n: usize| -> Vec<f64> { window(n).iter().map(imbalance).collect() };
    for n in SHORT_PERIODS {
        w.put("volatility_imb_adj", n, cc(n) * (1.0 + mean(&imbalances(n)).abs()));
    }
    for n in UPDOWN_PERIODS {
        let rs = returns(n);
        let up = mean(&rs.iter().map(|&r| if r > 0.0 { r * r } else { 0.0 }).collect::<Vec<_>>()).sqrt();
        let down = mean(&rs.iter().map(|&r| if r < 0.0 { r * r } else { 0.0 }).collect::<Vec<_>>()).sqrt();
        let ratio = match (up == 0.0, down == 0.0) {
            (true, true) => 1.0,
            (false, true) => VOLATILITY_RATIO_CAP,
            _ => div(up, down).min(VOLATILITY_RATIO_CAP),
        };
        w.put("volatility_up", n, up);
        w.put("volatility_down", n, down);
        w.put("volatility_ratio", n, ratio);
    }

    // Volume
    let volume_ma = |n: usize| mean(&window(n).iter().map(|b| b.volume).collect::<Vec<_>>());
    for n in LONG_PERIODS {
        let ma = volume_ma(n);
        let base = ago(n).volume;
        w.put("volume_ma", n, ma);
        w.put("volume_ratio", n, div(cur.volume, ma));
        w.put("volume_momentum", n, if base == 0.0 { 0.0 } else { div(cur.volume, base) - 1.0 });
    }
    let buy_p = |b: &Bar| div(b.buy_volume, b.volume);
    let sell_p = |b: &Bar| div(b.sell_volume, b.volume);
    w.put("buy_pressure", 0, buy_p(&cur));
    w.put("sell_pressure", 0, sell_p(&cur));
    for n in SHORT_PERIODS {
        w.put("buy_pressure_ma", n, mean(&window(n).iter().map(buy_p).collect::<Vec<_>>()));
        w.put("sell_pressure_ma", n, mean(&window(n).iter().map(sell_p).collect::<Vec<_>>()));
        w.put("buy_pressure_momentum", n, buy_p(&cur) - buy_p(&ago(n)));
        w.put("sell_pressure_momentum", n, sell_p(&cur) - sell_p(&ago(n)));
    }
    let ats = |b: &Bar| div(b.volume, b.trades);
    w.put("avg_trade_size", 0, ats(&cur));
    for n in SHORT_PERIODS {
        let ma = mean(&window(n).iter().map(ats).collect::<Vec<_>>());
        w.put("avg_trade_size_ma", n, ma);
        w.put("avg_trade_size_ratio", n, div(ats(&cur), ma));
    }
    for n in CONCENTRATION_PERIODS {
        let max = window(n).iter().map(|b| b.volume).fold(0.0, f64::max);
        let sum: f64 = window(n).iter().map(|b| b.volume).sum();
        w.put("volume_concentration", n, div(max, sum));
    }

    // Order flow
    let imb = imbalance(&cur);
    w.put("volume_imbalance", 0, imb);
    w.put("volume_imbalance_abs", 0, imb.abs());
    let mut day_start = t;
    while day_start > 0 && bars[day_start - 1].day == cur.day {
        day_start -= 1;
    }
    w.put("volume_imbalance_cum", 0, bars[day_start..].iter().map(|b| b.buy_volume - b.sell_volume).sum());
    for n in SHORT_PERIODS {
        let xs = imbalances(n);
        let ma = mean(&xs);
        let sd = std_dev(&xs, 1);
        w.put("volume_imbalance_ma", n, ma);
        w.put("volume_imbalance_std", n, sd);
        w.put("volume_imbalance_zscore", n, if sd == 0.0 { 0.0 } else { div(imb - ma, sd) });
    }
    let trade_imb = |b: &Bar| div(b.buy_trades - b.sell_trades, b.buy_trades + b.sell_trades);
    w.put("trade_imbalance", 0, trade_imb(&cur));
    w.put("trade_imbalance_abs", 0, trade_imb(&cur).abs());
    for n in SHORT_PERIODS {
        w.put("trade_imbalance_ma", n, mean(&window(n).iter().map(trade_imb).collect::<Vec<_>>()));
    }
    w.put("buy_run_length", 0, cur.buy_run);
    w.put("sell_run_length", 0, cur.sell_run);

    // Technical
    let closes: Vec<f64> = window(BB_PERIOD).iter().map(|b| b.close).collect();
    let sma = mean(&closes);
    let sd = std_dev(&closes, 0);
    let (upper, lower) = (sma + 2.0 * sd, sma - 2.0 * sd);
    w.put("bb_upper", BB_PERIOD, upper);
    w.put("bb_lower", BB_PERIOD, lower);
    w.put("bb_width", BB_PERIOD, div(upper - lower, sma));
    w.put("bb_position", BB_PERIOD, if upper - lower == 0.0 { 0.5 } else { div(c - lower, upper - lower) });

    let true_range = |i: usize| {
        let b = bars[i];
        if i == 0 {
            b.high - b.low
        } else {
            let pc = bars[i - 1].close;
            (b.high - b.low).max((b.high - pc).abs()).max((b.low - pc).abs())
        }
    };
    // Wilder smoothing replayed over xs, as of its last element.
    let wilder = |xs: &[f64]| -> f64 {
        let mut s = Smooth::default();
        xs.iter().for_each(|&x| s.step(x));
        s.value
    };
    let trs: Vec<f64> = (0..=t).map(true_range).collect();
    let atr = wilder(&trs);
    w.put("atr", WILDER_PERIOD, atr);
    w.put("atr_ratio", WILDER_PERIOD, div(atr, c));
    for n in PRICE_POSITION_PERIODS {
        let hi = window(n).iter().map(|b| b.high).fold(f64::NEG_INFINITY, f64::max);
        let lo = window(n).iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
        w.put("price_position", n, if hi - lo == 0.0 { 0.5 } else { div(c - lo, hi - lo) });
    }

    // Regime
    let ema = |n: usize| {
        let alpha = 2.0 / (n as f64 + 1.0);
        let mut e = bars[0].close;
        for b in &bars[1..] {
            e += alpha * (b.close - e);
        }
        e
    };
    let [e9, e20, e50] = EMA_PERIODS.map(ema);
    w.put("ema", 9, e9);
    w.put("ema", 20, e20);
    w.put("ema", 50, e50);

    // +DM, -DM and TR from the second candle on; DX at every one of those
    // candles from the smoothing as of that candle.
    let (mut s_pdm, mut s_mdm, mut s_tr) = (Smooth::default(), Smooth::default(), Smooth::default());
    let mut dx = Vec::new();
    let (mut pdi, mut mdi) = (0.0, 0.0);
    for i in 1..=t {
        let up = bars[i].high - bars[i - 1].high;
        let down = bars[i - 1].low - bars[i].low;
        s_pdm.step(if up > down && up > 0.0 { up } else { 0.0 });
        s_mdm.step(if down > up && down > 0.0 { down } else { 0.0 });
        s_tr.step(trs[i]);
        pdi = div(100.0 * s_pdm.value, s_tr.value);
        mdi = div(100.0 * s_mdm.value, s_tr.value);
        dx.push(div(100.0 * (pdi - mdi).abs(), pdi + mdi));
    }
    let adx = wilder(&dx);
    let strength = adx / 100.0;
    let direction = if e9 > e20 && e20 > e50 {
        1.0
    } else if e9 < e20 && e20 < e50 {
        -1.0
    } else {
        0.0
    };
    w.put("plus_di", 0, pdi);
    w.put("minus_di", 0, mdi);
    w.put("di_diff", 0, pdi - mdi);
    w.put("adx", 0, adx);
    w.put("trend_strength", 0, strength);
    w.put("trend_direction", 0, direction);
    w.put("ema_alignment_score", 0, (sign(e9 - e20) + sign(e20 - e50) + sign(c - e9)) / 3.0);

    // Interactions
    let pct5 = {
        let base = ago(5).close;
        if base == 0.0 { 0.0 } else { div(c, base) - 1.0 }
    };
    let cc5 = cc(5);
    let ratio20 = div(cur.volume, volume_ma(20));
    w.put("momentum_vol_ratio", 5, if cc5 == 0.0 { 0.0 } else { div(pct5, cc5) });
    w.put("volume_volatility", 5, div(cur.volume, volume_ma(5)) * cc5);
    w.put("buy_pressure_momentum", 0, buy_p(&cur) * pct5);
    w.put("trend_volume_interaction", 0, direction * strength * ratio20);
    assert_eq!(w.next, V3_FEATURE_COUNT, "reference did not write every feature");
}
