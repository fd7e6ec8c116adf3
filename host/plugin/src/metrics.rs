//! Per-slot counters, readable from any thread while the engine runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Why the native implementation (or the neutral value) answered instead of
/// the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// The plugin trapped (unreachable, panic, stack overflow, memory cap,
    /// a capability it was not granted...).
    Trap,
    /// The call ran past its deadline (epoch interrupt) or out of fuel.
    Timeout,
    /// NaN/inf, wrong vector length, out-of-range values.
    InvalidOutput,
    /// No plugin in the slot, or it could not be instantiated.
    Missing,
    /// The circuit breaker is open.
    CircuitOpen,
    /// `force_fast_mode`: native only.
    ForcedNative,
}

impl FallbackReason {
    pub const ALL: [FallbackReason; 6] = [
        FallbackReason::Trap,
        FallbackReason::Timeout,
        FallbackReason::InvalidOutput,
        FallbackReason::Missing,
        FallbackReason::CircuitOpen,
        FallbackReason::ForcedNative,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FallbackReason::Trap => "trap",
            FallbackReason::Timeout => "timeout",
            FallbackReason::InvalidOutput => "invalid_output",
            FallbackReason::Missing => "missing",
            FallbackReason::CircuitOpen => "circuit_open",
            FallbackReason::ForcedNative => "forced_native",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const BUCKETS: usize = 64;

/// Counters of one slot. Shared as `Arc<SlotMetrics>`; written by the engine
/// thread only, read by anyone.
#[derive(Debug)]
pub struct SlotMetrics {
    slot: String,
    plugin: Mutex<String>,
    calls: AtomicU64,
    plugin_ok: AtomicU64,
    fallbacks: [AtomicU64; 6],
    reinstantiations: AtomicU64,
    restore_failures: AtomicU64,
    snapshots: AtomicU64,
    circuit_opens: AtomicU64,
    circuit_open: AtomicBool,
    log_lines: AtomicU64,
    log_lines_dropped: AtomicU64,
    predict_calls: AtomicU64,
    predict_refused: AtomicU64,
    predict_errors: AtomicU64,
    /// Plugin call latency, bucket i holds [2^i, 2^(i+1)) ns.
    latency: [AtomicU64; BUCKETS],
}

impl SlotMetrics {
    pub fn new(slot: impl Into<String>, plugin: impl Into<String>) -> Self {
        Self {
            slot: slot.into(),
            plugin: Mutex::new(plugin.into()),
            calls: AtomicU64::new(0),
            plugin_ok: AtomicU64::new(0),
            fallbacks: Default::default(),
            reinstantiations: AtomicU64::new(0),
            restore_failures: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            circuit_opens: AtomicU64::new(0),
            circuit_open: AtomicBool::new(false),
            log_lines: AtomicU64::new(0),
            log_lines_dropped: AtomicU64::new(0),
            predict_calls: AtomicU64::new(0),
            predict_refused: AtomicU64::new(0),
            predict_errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// Renames the plugin shown for this slot (after a swap).
    pub fn set_plugin(&self, name: &str) {
        if let Ok(mut p) = self.plugin.lock() {
            name.clone_into(&mut p);
        }
    }

    pub(crate) fn call(&self) {
        self.calls.fetch_add(1, Relaxed);
    }

    pub(crate) fn ok(&self) {
        self.plugin_ok.fetch_add(1, Relaxed);
    }

    pub(crate) fn fallback(&self, reason: FallbackReason) {
        self.fallbacks[reason.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn reinstantiated(&self) {
        self.reinstantiations.fetch_add(1, Relaxed);
    }

    pub(crate) fn restore_failed(&self) {
        self.restore_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot_taken(&self) {
        self.snapshots.fetch_add(1, Relaxed);
    }

    pub(crate) fn circuit(&self, open: bool) {
        if open && !self.circuit_open.swap(true, Relaxed) {
            self.circuit_opens.fetch_add(1, Relaxed);
        } else if !open {
            self.circuit_open.store(false, Relaxed);
        }
    }

    pub(crate) fn log(&self, lines: u64, dropped: u64) {
        if lines > 0 {
            self.log_lines.fetch_add(lines, Relaxed);
        }
        if dropped > 0 {
            self.log_lines_dropped.fetch_add(dropped, Relaxed);
        }
    }

    pub(crate) fn predict(&self, (calls, refused, errors): (u64, u64, u64)) {
        for (counter, n) in
            [(&self.predict_calls, calls), (&self.predict_refused, refused), (&self.predict_errors, errors)]
        {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    pub(crate) fn latency_ns(&self, ns: u64) {
        let b = (63 - ns.max(1).leading_zeros()) as usize;
        self.latency[b.min(BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// Count of one fallback reason so far.
    pub fn fallbacks(&self, reason: FallbackReason) -> u64 {
        self.fallbacks[reason.index()].load(Relaxed)
    }

    pub fn snapshot(&self) -> SlotStats {
        let buckets: Vec<u64> = self.latency.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = buckets.iter().sum();
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, &n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    // Upper edge of the bucket: a conservative estimate.
                    return if i >= 63 { u64::MAX } else { (1u64 << (i + 1)) - 1 };
                }
            }
            u64::MAX
        };
        let f = |r: FallbackReason| self.fallbacks(r);
        let fallbacks = Fallbacks {
            trap: f(FallbackReason::Trap),
            timeout: f(FallbackReason::Timeout),
            invalid_output: f(FallbackReason::InvalidOutput),
            missing: f(FallbackReason::Missing),
            circuit_open: f(FallbackReason::CircuitOpen),
            forced_native: f(FallbackReason::ForcedNative),
        };
        SlotStats {
            slot: self.slot.clone(),
            plugin: self.plugin.lock().map(|p| p.clone()).unwrap_or_default(),
            calls: self.calls.load(Relaxed),
            plugin_ok: self.plugin_ok.load(Relaxed),
            fallbacks_total: FallbackReason::ALL.iter().map(|&r| f(r)).sum(),
            fallbacks,
            reinstantiations: self.reinstantiations.load(Relaxed),
            restore_failures: self.restore_failures.load(Relaxed),
            snapshots: self.snapshots.load(Relaxed),
            circuit_opens: self.circuit_opens.load(Relaxed),
            circuit_open: self.circuit_open.load(Relaxed),
            log_lines: self.log_lines.load(Relaxed),
            log_lines_dropped: self.log_lines_dropped.load(Relaxed),
            predict: PredictStats {
                calls: self.predict_calls.load(Relaxed),
                refused: self.predict_refused.load(Relaxed),
                errors: self.predict_errors.load(Relaxed),
            },
            latency: Latency { count, p50_ns: quantile(0.5), p99_ns: quantile(0.99), log2_buckets: buckets },
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Fallbacks {
    pub trap: u64,
    pub timeout: u64,
    pub invalid_output: u64,
    pub missing: u64,
    pub circuit_open: u64,
    pub forced_native: u64,
}

impl Fallbacks {
    pub fn get(&self, reason: FallbackReason) -> u64 {
        match reason {
            FallbackReason::Trap => self.trap,
            FallbackReason::Timeout => self.timeout,
            FallbackReason::InvalidOutput => self.invalid_output,
            FallbackReason::Missing => self.missing,
            FallbackReason::CircuitOpen => self.circuit_open,
            FallbackReason::ForcedNative => self.forced_native,
        }
    }
}

/// Plugin call latency: fixed log2 buckets in ns; quantiles are bucket
/// upper edges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    /// `log2_buckets[i]` counts calls in [2^i, 2^(i+1)) ns.
    pub log2_buckets: Vec<u64>,
}

/// The slot's plugins' `predict` calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PredictStats {
    /// Answered by a model.
    pub calls: u64,
    /// Refused by a limit of the manifest (calls per event, inputs per call).
    pub refused: u64,
    /// Failed in the host: unknown model, wrong input count, no runtime.
    pub errors: u64,
}

/// A point-in-time copy of a slot's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SlotStats {
    pub slot: String,
    pub plugin: String,
    /// Events the slot answered.
    pub calls: u64,
    /// Events the plugin answered validly.
    pub plugin_ok: u64,
    pub fallbacks_total: u64,
    pub fallbacks: Fallbacks,
    pub reinstantiations: u64,
    pub restore_failures: u64,
    pub snapshots: u64,
    pub circuit_opens: u64,
    pub circuit_open: bool,
    pub log_lines: u64,
    pub log_lines_dropped: u64,
    #[serde(default)]
    pub predict: PredictStats,
    pub latency: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_log2_buckets() {
        let m = SlotMetrics::new("s", "p");
        for _ in 0..99 {
            m.latency_ns(200);
        }
        m.latency_ns(5_000);
        let s = m.snapshot();
        assert_eq!(s.latency.count, 100);
        assert_eq!(s.latency.p50_ns, 255);
        assert_eq!(s.latency.p99_ns, 255);
        m.latency_ns(5_000);
        assert_eq!(m.snapshot().latency.p99_ns, 8191);
    }
}
