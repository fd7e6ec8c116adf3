//! Fixed-capacity rolling-window primitives for [`super::FeatureCore`].
//!
//! Everything here lives inline in fixed arrays sized at compile time, so a
//! `FeatureCore` is one flat value: construction is the only place memory is
//! set up and `on_candle` never touches the allocator.

/// Ring capacity. Must exceed the longest window (60) by at least one so the
/// value leaving a window and the lag `close[60]` are still retained; a power
/// of two keeps the index arithmetic a mask.
pub(crate) const CAP: usize = 64;

/// Compensated sum (Neumaier's scheme, with Knuth's branch-free TwoSum for
/// the error term). Rolling windows add every value once and subtract it
/// once; plain `f64` sums would keep the rounding of each round trip
/// forever, while the compensation term carries it exactly enough that the
/// residual after a value leaves is O(eps^2), not O(eps).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        let x_part = t - self.sum;
        self.comp += (self.sum - (t - x_part)) + (x - x_part);
        self.sum = t;
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// The last [`CAP`] values of one per-candle series.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: [f64; CAP],
    count: u64,
    /// How many of the newest values equal the newest one (saturating at
    /// `CAP`). A window whose length is within this run is constant, which
    /// lets statistics return an exact mean and an exact zero variance
    /// instead of a rounding residual that a z-score would then blow up.
    run: usize,
}

impl Ring {
    pub(crate) fn new() -> Self {
        Self { buf: [0.0; CAP], count: 0, run: 0 }
    }

    #[inline]
    pub(crate) fn push(&mut self, x: f64) {
        let same = self.count > 0 && self.ago(0) == x;
        self.buf[(self.count % CAP as u64) as usize] = x;
        self.count += 1;
        self.run = if same { (self.run + 1).min(CAP) } else { 1 };
    }

    /// Values currently retained.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.count.min(CAP as u64) as usize
    }

    /// Total values ever pushed.
    #[inline]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The value `k` pushes ago (0 = newest). Callers keep `k < len()`.
    #[inline]
    pub(crate) fn ago(&self, k: usize) -> f64 {
        debug_assert!(k < self.len());
        self.buf[((self.count - 1 - k as u64) % CAP as u64) as usize]
    }

    /// `ago(k)`, clamped to the oldest value when fewer than `k + 1` exist
    /// (the documented warm-up rule for lags). Needs `k < CAP` so that,
    /// once the ring has wrapped, the clamp never triggers.
    #[inline]
    pub(crate) fn lag(&self, k: usize) -> f64 {
        debug_assert!(k < CAP && self.count > 0);
        self.ago(k.min(self.len() - 1))
    }

    /// Whether the newest `m` values are all equal.
    #[inline]
    pub(crate) fn constant_over(&self, m: usize) -> bool {
        self.run >= m
    }
}

/// A sum-only window re-derives its sums every this many window lengths.
const SUM_RESYNC_WINDOWS: usize = 8;

/// Sums of one window over a [`Ring`], kept relative to an anchor.
///
/// Why the anchor: variance from running sums is `E[d^2] - E[d]^2`, which
/// cancels catastrophically when the values sit far from zero (prices). The
/// anchor is reset to the newest value on every resync, so `d` stays of the
/// order of the window's own spread. Why the resync (O(n) each time, so O(1)
/// amortised and bounded by the window length, never the history): it
/// re-derives the sums from the retained values, so no rounding can
/// accumulate for long. Variance windows resync every `n` pushes: nearly
/// constant returns (a steady trend) have a std 1e-4 of their mean, and an
/// anchor even a few windows old then costs digits the tests can see.
/// Sum-only windows have no cancellation to fear, only drift, so they resync
/// every [`SUM_RESYNC_WINDOWS`] x `n` pushes, which takes the serial
/// re-summation off most updates.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    n: usize,
    /// Whether to keep the sum of squares (only variance users pay for it).
    squares: bool,
    anchor: f64,
    s1: Neumaier,
    s2: Neumaier,
    since_sync: usize,
}

impl Window {
    pub(crate) fn new(n: usize, squares: bool) -> Self {
        assert!((1..CAP).contains(&n), "window {n} does not fit the ring");
        Self { n, squares, anchor: 0.0, s1: Neumaier::default(), s2: Neumaier::default(), since_sync: 0 }
    }

    /// Call right after `ring.push`.
    #[inline]
    fn update(&mut self, ring: &Ring) {
        self.since_sync += 1;
        // The first value also resyncs, so the anchor is never the
        // meaningless initial 0 (prices near 5000 would cancel against it).
        let every = if self.squares { self.n } else { SUM_RESYNC_WINDOWS * self.n };
        if self.since_sync >= every || ring.count() == 1 {
            self.resync(ring);
            return;
        }
        let d = ring.ago(0) - self.anchor;
        self.s1.add(d);
        if self.squares {
            self.s2.add(d * d);
        }
        if ring.count() > self.n as u64 {
            let o = ring.ago(self.n) - self.anchor;
            self.s1.add(-o);
            if self.squares {
                self.s2.add(-(o * o));
            }
        }
    }

    fn resync(&mut self, ring: &Ring) {
        self.since_sync = 0;
        self.anchor = ring.ago(0);
        self.s1 = Neumaier::default();
        self.s2 = Neumaier::default();
        for k in 0..self.len(ring) {
            let d = ring.ago(k) - self.anchor;
            self.s1.add(d);
            self.s2.add(d * d);
        }
    }

    /// Values in the window now: `min(n, values pushed)`.
    #[inline]
    pub(crate) fn len(&self, ring: &Ring) -> usize {
        self.n.min(ring.len())
    }

    #[inline]
    pub(crate) fn sum(&self, ring: &Ring) -> f64 {
        let m = self.len(ring);
        if m == 0 {
            0.0
        } else if ring.constant_over(m) {
            m as f64 * ring.ago(0)
        } else {
            self.anchor * m as f64 + self.s1.value()
        }
    }

    /// Mean of the window; 0 when it is empty.
    #[inline]
    pub(crate) fn mean(&self, ring: &Ring) -> f64 {
        let m = self.len(ring);
        if m == 0 {
            0.0
        } else if ring.constant_over(m) {
            ring.ago(0)
        } else {
            self.anchor + self.s1.value() / m as f64
        }
    }

    /// Sum of squared deviations from the mean; exactly 0 for a constant window.
    #[inline]
    fn sq_dev(&self, ring: &Ring) -> (f64, usize) {
        debug_assert!(self.squares, "variance of a window built without squares");
        let m = self.len(ring);
        if m < 2 || ring.constant_over(m) {
            return (0.0, m);
        }
        let s1 = self.s1.value();
        ((self.s2.value() - s1 * s1 / m as f64).max(0.0), m)
    }

    /// Population standard deviation (divide by m); 0 for fewer than 2 values.
    #[inline]
    pub(crate) fn std_pop(&self, ring: &Ring) -> f64 {
        let (ss, m) = self.sq_dev(ring);
        if m < 2 { 0.0 } else { (ss / m as f64).sqrt() }
    }

    /// Sample standard deviation (divide by m - 1); 0 for fewer than 2 values.
    #[inline]
    pub(crate) fn std_sample(&self, ring: &Ring) -> f64 {
        let (ss, m) = self.sq_dev(ring);
        if m < 2 { 0.0 } else { (ss / (m - 1) as f64).sqrt() }
    }
}

/// A per-candle series with `W` rolling windows over it.
#[derive(Debug, Clone)]
pub(crate) struct Series<const W: usize> {
    pub(crate) ring: Ring,
    wins: [Window; W],
}

impl<const W: usize> Series<W> {
    /// Sums and means only.
    pub(crate) fn new(periods: [usize; W]) -> Self {
        Self { ring: Ring::new(), wins: periods.map(|n| Window::new(n, false)) }
    }

    /// Also standard deviations.
    pub(crate) fn with_variance(periods: [usize; W]) -> Self {
        Self { ring: Ring::new(), wins: periods.map(|n| Window::new(n, true)) }
    }

    #[inline]
    pub(crate) fn push(&mut self, x: f64) {
        self.ring.push(x);
        for w in &mut self.wins {
            w.update(&self.ring);
        }
    }

    #[inline]
    pub(crate) fn sum(&self, j: usize) -> f64 {
        self.wins[j].sum(&self.ring)
    }

    #[inline]
    pub(crate) fn mean(&self, j: usize) -> f64 {
        self.wins[j].mean(&self.ring)
    }

    #[inline]
    pub(crate) fn std_pop(&self, j: usize) -> f64 {
        self.wins[j].std_pop(&self.ring)
    }

    #[inline]
    pub(crate) fn std_sample(&self, j: usize) -> f64 {
        self.wins[j].std_sample(&self.ring)
    }

    /// Newest value; 0 before any push.
    #[inline]
    pub(crate) fn last(&self) -> f64 {
        if self.ring.count() == 0 { 0.0 } else { self.ring.ago(0) }
    }

    #[inline]
    pub(crate) fn lag(&self, k: usize) -> f64 {
        self.ring.lag(k)
    }
}

/// Sliding maximum (or minimum) over the last `n` values: a monotonic deque
/// kept in a fixed ring. Each value enters and leaves once, so a push is
/// O(1) amortised; the deque never holds more than `n + 1 <= CAP` entries.
#[derive(Debug, Clone)]
pub(crate) struct SlidingExtreme {
    n: u64,
    is_max: bool,
    idx: [u64; CAP],
    val: [f64; CAP],
    head: usize,
    len: usize,
    pushed: u64,
}

impl SlidingExtreme {
    pub(crate) fn max(n: usize) -> Self {
        Self::new(n, true)
    }

    pub(crate) fn min(n: usize) -> Self {
        Self::new(n, false)
    }

    fn new(n: usize, is_max: bool) -> Self {
        assert!((1..CAP).contains(&n), "window {n} does not fit the deque");
        Self { n: n as u64, is_max, idx: [0; CAP], val: [0.0; CAP], head: 0, len: 0, pushed: 0 }
    }

    /// Inputs must not be NaN (the feature core sanitises them first).
    #[inline]
    pub(crate) fn push(&mut self, x: f64) {
        let t = self.pushed;
        self.pushed += 1;
        while self.len > 0 {
            let back = (self.head + self.len - 1) % CAP;
            let dominated = if self.is_max { self.val[back] <= x } else { self.val[back] >= x };
            if !dominated {
                break;
            }
            self.len -= 1;
        }
        let slot = (self.head + self.len) % CAP;
        self.idx[slot] = t;
        self.val[slot] = x;
        self.len += 1;
        while self.idx[self.head] + self.n <= t {
            self.head = (self.head + 1) % CAP;
            self.len -= 1;
        }
    }

    /// The extreme of the window; 0 before any push.
    #[inline]
    pub(crate) fn value(&self) -> f64 {
        if self.len == 0 { 0.0 } else { self.val[self.head] }
    }
}

/// Wilder smoothing with period `p`: the plain mean of the values while
/// there are at most `p` of them (so the p-th value is the classic seed),
/// then `(prev * (p - 1) + x) / p`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wilder {
    p: u64,
    count: u64,
    sum: f64,
    value: f64,
}

impl Wilder {
    pub(crate) fn new(p: u64) -> Self {
        Self { p, count: 0, sum: 0.0, value: 0.0 }
    }

    #[inline]
    pub(crate) fn update(&mut self, x: f64) -> f64 {
        self.count += 1;
        if self.count <= self.p {
            self.sum += x;
            self.value = self.sum / self.count as f64;
        } else {
            self.value = (self.value * (self.p - 1) as f64 + x) / self.p as f64;
        }
        self.value
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_extreme_matches_scan() {
        let mut state = 7u64;
        let mut xs = Vec::new();
        let mut mx = SlidingExtreme::max(10);
        let mut mn = SlidingExtreme::min(10);
        for _ in 0..1000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = ((state >> 40) % 7) as f64;
            xs.push(x);
            mx.push(x);
            mn.push(x);
            let w = &xs[xs.len().saturating_sub(10)..];
            assert_eq!(mx.value(), w.iter().copied().fold(f64::MIN, f64::max));
            assert_eq!(mn.value(), w.iter().copied().fold(f64::MAX, f64::min));
        }
    }

    #[test]
    fn window_sums_do_not_drift_and_constant_windows_are_exact() {
        let mut s = Series::with_variance([5, 60]);
        let mut xs = Vec::new();
        let mut state = 3u64;
        for i in 0..10_000u64 {
            // Values of wildly mixed magnitude, then constant stretches:
            // the sums must come back to an exactly constant window.
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let scale = 10f64.powi((state >> 60) as i32 - 8);
            let x = match (i / 300) % 3 {
                0 => 1e6 + (i % 13) as f64 * 0.1,
                1 => scale * ((state >> 11) as f64 / (1u64 << 53) as f64),
                _ => 1.0 / 3.0,
            };
            xs.push(x);
            s.push(x);
            for (j, n) in [5usize, 60].into_iter().enumerate() {
                let w = &xs[xs.len().saturating_sub(n)..];
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                assert!((s.mean(j) - mean).abs() <= 1e-12 * mean.abs() + 1e-300, "{i} {n}");
                if w.iter().all(|&v| v == w[0]) {
                    assert_eq!(s.std_sample(j), 0.0);
                    assert_eq!(s.mean(j), w[0]);
                }
            }
        }
    }
}
