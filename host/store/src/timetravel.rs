//! The three time-travel features of domain.md, computed off the engine
//! thread:
//!
//! - `tt_volume_pattern_similarity`: cosine similarity, in [0, 1], of the
//!   volume profile of the last `window_minutes` today and the mean profile
//!   of the same window on the previous `lookback_days` days;
//! - `tt_historical_momentum_percentile`: share of previous days whose
//!   momentum over that window was below today's;
//! - `tt_volatility_regime_score`: percentile of today's volatility (std of
//!   1-bar log returns over the window) in the previous days' distribution.
//!
//! The engine side ([`TimeTravelFeatures`], a [`FeatureExtensions`]) asks for
//! the history of the *next* bar's window through an atomic and reads what
//! the background thread ([`TimeTravelWorker`]) published with `try_lock`:
//! it never waits and never allocates. History not there in time (no store,
//! store down, worker behind, no previous days) gives the neutral value 0.5,
//! counted as a fallback. `percentage` (TIME_TRAVEL_PERCENTAGE) picks the
//! share of candles that use history at all, by a hash of the candle time,
//! so which candles are picked is the same on every run.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Serialize;
use tickhost_core::hooks::FeatureExtensions;
use tickhost_core::market::{Candle, Symbol};

use crate::{Store, StreamId, keys};

pub const OUTPUTS: [&str; 3] =
    ["tt_volume_pattern_similarity", "tt_historical_momentum_percentile", "tt_volatility_regime_score"];
pub const NEUTRAL: f64 = 0.5;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default)]
struct Baseline {
    /// The bar (open ms) this was computed for; `i64::MIN`: nothing yet.
    for_ms: i64,
    /// Mean share of the window's volume per bar, oldest first.
    profile: Vec<f64>,
    momenta: Vec<f64>,
    vols: Vec<f64>,
}

/// Counters shown with the run (the seeds' `time_travel_queries`,
/// `enhanced_calls`, `original_calls`, `fallback_count`).
#[derive(Debug, Default)]
pub struct TimeTravelCounters {
    pub queries: AtomicU64,
    pub enhanced: AtomicU64,
    pub original: AtomicU64,
    pub fallbacks: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub time_travel_queries: u64,
    pub enhanced_calls: u64,
    pub original_calls: u64,
    pub fallback_count: u64,
    pub store_errors: u64,
}

impl TimeTravelCounters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            time_travel_queries: self.queries.load(Ordering::Relaxed),
            enhanced_calls: self.enhanced.load(Ordering::Relaxed),
            original_calls: self.original.load(Ordering::Relaxed),
            fallback_count: self.fallbacks.load(Ordering::Relaxed),
            store_errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Shared {
    wanted: AtomicI64,
    symbol: Mutex<Option<Symbol>>,
    baseline: Mutex<Baseline>,
    counters: Arc<TimeTravelCounters>,
    stop: AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeTravelSettings {
    pub percentage: f64,
    pub lookback_days: u32,
    pub window_minutes: u32,
    pub bar_ms: i64,
}

impl TimeTravelSettings {
    fn bars(&self) -> usize {
        ((i64::from(self.window_minutes) * 60_000 / self.bar_ms.max(1)) as usize).clamp(2, 4096)
    }
}

/// The engine side.
#[derive(Debug)]
pub struct TimeTravelFeatures {
    settings: TimeTravelSettings,
    shared: Arc<Shared>,
    volumes: Vec<f64>,
    closes: Vec<f64>,
    next: usize,
    filled: usize,
    today: Vec<f64>,
    returns: Vec<f64>,
    symbol_sent: bool,
}

/// The background side; stops and joins on drop.
#[derive(Debug)]
pub struct TimeTravelWorker {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for TimeTravelWorker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The extension and its worker, reading history from `store` (`None`: no
/// history, every selected candle falls back).
pub fn start(
    settings: TimeTravelSettings,
    store: Option<Box<dyn Store>>,
) -> std::io::Result<(TimeTravelFeatures, TimeTravelWorker, Arc<TimeTravelCounters>)> {
    let counters = Arc::new(TimeTravelCounters::default());
    let shared = Arc::new(Shared {
        wanted: AtomicI64::new(i64::MIN),
        symbol: Mutex::new(None),
        baseline: Mutex::new(Baseline { for_ms: i64::MIN, ..Baseline::default() }),
        counters: Arc::clone(&counters),
        stop: AtomicBool::new(false),
    });
    let bars = settings.bars();
    let handle = match store {
        Some(store) => {
            let shared = Arc::clone(&shared);
            Some(thread::Builder::new().name("time-travel".into()).spawn(move || work(&shared, store, settings))?)
        }
        None => None,
    };
    let features = TimeTravelFeatures {
        settings,
        shared: Arc::clone(&shared),
        volumes: vec![0.0; bars],
        closes: vec![0.0; bars],
        next: 0,
        filled: 0,
        today: vec![0.0; bars],
        returns: vec![0.0; bars],
        symbol_sent: false,
    };
    Ok((features, TimeTravelWorker { shared, handle }, counters))
}

/// Deterministic pick of a share of candles (splitmix64 of the time).
fn selected(open_ms: i64, percentage: f64) -> bool {
    if percentage >= 1.0 {
        return true;
    }
    let mut z = (open_ms as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z % 10_000) as f64) < percentage * 10_000.0
}

fn std_log_returns(closes: &[f64], out: &mut Vec<f64>) -> Option<f64> {
    out.clear();
    for w in closes.windows(2) {
        if w[0] > 0.0 && w[1] > 0.0 {
            out.push((w[1] / w[0]).ln());
        }
    }
    if out.len() < 2 {
        return None;
    }
    let n = out.len() as f64;
    let mean = out.iter().sum::<f64>() / n;
    Some((out.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
}

fn percentile(sorted_sample: &[f64], x: f64) -> f64 {
    sorted_sample.iter().filter(|v| **v < x).count() as f64 / sorted_sample.len() as f64
}

impl TimeTravelFeatures {
    fn compute(&mut self, b: &Baseline, out: &mut [f64]) -> bool {
        let n = self.filled.min(self.volumes.len());
        if n < 2 || b.profile.is_empty() {
            return false;
        }
        // Today's window, oldest first (no allocation: preallocated buffers).
        let len = self.volumes.len();
        let start = (self.next + len - n) % len;
        let mut total = 0.0;
        for i in 0..n {
            self.today[i] = self.volumes[(start + i) % len];
            total += self.today[i];
        }
        let m = n.min(b.profile.len());
        let (t, p) = (&self.today[n - m..n], &b.profile[b.profile.len() - m..]);
        let dot: f64 = t.iter().zip(p).map(|(a, b)| a * b).sum();
        let nt = t.iter().map(|a| a * a).sum::<f64>().sqrt();
        let np = p.iter().map(|a| a * a).sum::<f64>().sqrt();
        out[0] = if total > 0.0 && nt > 0.0 && np > 0.0 { (dot / (nt * np)).clamp(0.0, 1.0) } else { NEUTRAL };
        let first = self.closes[start];
        let last = self.closes[(start + n - 1) % len];
        out[1] =
            if first > 0.0 && !b.momenta.is_empty() { percentile(&b.momenta, last / first - 1.0) } else { NEUTRAL };
        for i in 0..n {
            self.today[i] = self.closes[(start + i) % len];
        }
        let mut returns = std::mem::take(&mut self.returns);
        let vol = std_log_returns(&self.today[..n], &mut returns);
        self.returns = returns;
        out[2] = match vol {
            Some(v) if !b.vols.is_empty() => percentile(&b.vols, v),
            _ => NEUTRAL,
        };
        true
    }
}

impl FeatureExtensions for TimeTravelFeatures {
    fn output_names(&self) -> Vec<String> {
        OUTPUTS.iter().map(|s| s.to_string()).collect()
    }

    fn on_candle(&mut self, candle: &Candle, _v3: &[f64], out: &mut [f64]) {
        let len = self.volumes.len();
        self.volumes[self.next] = candle.volume;
        self.closes[self.next] = candle.close;
        self.next = (self.next + 1) % len;
        self.filled = (self.filled + 1).min(len);
        if !self.symbol_sent
            && let Ok(mut s) = self.shared.symbol.try_lock()
        {
            *s = Some(candle.symbol);
            self.symbol_sent = true;
        }
        // Ask now for the next bar's history: it has a whole bar to arrive.
        self.shared.wanted.store(candle.open_ms + self.settings.bar_ms, Ordering::Release);
        out.iter_mut().for_each(|v| *v = NEUTRAL);
        let counters = Arc::clone(&self.shared.counters);
        if !selected(candle.open_ms, self.settings.percentage) {
            counters.original.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let shared = Arc::clone(&self.shared);
        let served = match shared.baseline.try_lock() {
            Ok(b) if b.for_ms == candle.open_ms => self.compute(&b, out),
            _ => false,
        };
        if served {
            counters.enhanced.fetch_add(1, Ordering::Relaxed);
        } else {
            out.iter_mut().for_each(|v| *v = NEUTRAL);
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Previous days' candles of the window ending at `bar_ms` (exclusive).
fn history(store: &mut dyn Store, key: &str, s: &TimeTravelSettings, bar_ms: i64, b: &mut Baseline) -> bool {
    let bars = s.bars();
    let window = bars as i64 * s.bar_ms;
    let mut profile = vec![0.0; bars];
    let mut days = 0usize;
    b.momenta.clear();
    b.vols.clear();
    let mut closes = Vec::with_capacity(bars);
    let mut scratch = Vec::with_capacity(bars);
    for d in 1..=i64::from(s.lookback_days) {
        let end = bar_ms - d * DAY_MS;
        let start = end - window;
        if start < 0 {
            break;
        }
        let Ok(entries) =
            store.range(key, StreamId::new(start as u64, 0), StreamId::new((end - 1) as u64, u64::MAX), bars * 2)
        else {
            return false;
        };
        if entries.len() < 2 {
            continue;
        }
        let mut day_profile = vec![0.0; bars];
        let mut total = 0.0;
        closes.clear();
        let (mut open, mut close) = (None, 0.0);
        for e in &entries {
            let Some(ts) = e.field("open_ms").and_then(|v| v.parse::<i64>().ok()) else { continue };
            let vol: f64 = e.field("volume").and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let slot = ((ts - start) / s.bar_ms.max(1)).clamp(0, bars as i64 - 1) as usize;
            day_profile[slot] += vol;
            total += vol;
            if let Some(c) = e.field("close").and_then(|v| v.parse::<f64>().ok()) {
                closes.push(c);
                close = c;
            }
            if open.is_none() {
                open = e.field("open").and_then(|v| v.parse::<f64>().ok());
            }
        }
        if total <= 0.0 {
            continue;
        }
        for (p, v) in profile.iter_mut().zip(&day_profile) {
            *p += v / total;
        }
        days += 1;
        if let Some(o) = open.filter(|o| *o > 0.0) {
            b.momenta.push(close / o - 1.0);
        }
        if let Some(v) = std_log_returns(&closes, &mut scratch) {
            b.vols.push(v);
        }
    }
    if days == 0 {
        return false;
    }
    b.profile = profile.into_iter().map(|p| p / days as f64).collect();
    b.momenta.sort_by(f64::total_cmp);
    b.vols.sort_by(f64::total_cmp);
    true
}

fn work(shared: &Shared, mut store: Box<dyn Store>, settings: TimeTravelSettings) {
    let mut done = i64::MIN;
    let mut next = Baseline::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let wanted = shared.wanted.load(Ordering::Acquire);
        let symbol = *shared.symbol.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(symbol), true) = (symbol, wanted != done) else {
            thread::sleep(Duration::from_millis(1));
            continue;
        };
        done = wanted;
        shared.counters.queries.fetch_add(1, Ordering::Relaxed);
        let key = keys::candles(symbol.as_str());
        if history(store.as_mut(), &key, &settings, wanted, &mut next) {
            next.for_ms = wanted;
            let mut b = shared.baseline.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *b, &mut next);
        } else {
            shared.counters.errors.fetch_add(u64::from(store.ping().is_err()), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentage_picks_a_stable_share_of_candles() {
        let picked = (0..10_000).filter(|i| selected(i * 60_000, 0.3)).count();
        assert!((2_700..3_300).contains(&picked), "{picked}");
        assert_eq!(selected(42, 0.3), selected(42, 0.3));
        assert!((0..1000).all(|i| selected(i, 1.0)));
        assert!((0..1000).all(|i| !selected(i, 0.0)));
    }
}
