//! Circuit breaker per slot, on event time so replays are deterministic.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Open after this many consecutive failures.
    pub consecutive_failures: u32,
    /// Calls in the error-rate window (at most 128).
    pub window: u32,
    /// Open when more than this share of the window failed (window full).
    pub max_error_rate: f64,
    /// Event-time wait before probing an open breaker, in ms.
    pub cooldown_ms: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { consecutive_failures: 5, window: 100, max_error_rate: 0.5, cooldown_ms: 60_000 }
    }
}

/// What the breaker lets a slot do for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    Call,
    /// The breaker is open and the cool-down has passed: try once.
    Probe,
    Deny,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    consecutive: u32,
    /// Last `window` outcomes, bit set = failure.
    history: u128,
    recorded: u32,
    opened_at: Option<i64>,
}

impl Breaker {
    pub fn new(mut config: BreakerConfig) -> Self {
        config.window = config.window.clamp(1, 128);
        Self { config, consecutive: 0, history: 0, recorded: 0, opened_at: None }
    }

    pub fn is_open(&self) -> bool {
        self.opened_at.is_some()
    }

    pub fn permit(&self, now_ms: i64) -> Permit {
        match self.opened_at {
            None => Permit::Call,
            Some(t) if now_ms.saturating_sub(t) >= self.config.cooldown_ms => Permit::Probe,
            Some(_) => Permit::Deny,
        }
    }

    fn push(&mut self, failed: bool) {
        let mask = if self.config.window >= 128 { u128::MAX } else { (1u128 << self.config.window) - 1 };
        self.history = ((self.history << 1) | u128::from(failed)) & mask;
        self.recorded = (self.recorded + 1).min(self.config.window);
    }

    /// Returns true if this success closed an open breaker.
    pub fn success(&mut self) -> bool {
        self.consecutive = 0;
        if self.opened_at.take().is_some() {
            self.history = 0;
            self.recorded = 0;
            return true;
        }
        self.push(false);
        false
    }

    /// Returns true if this failure opened the breaker (or re-opened it
    /// after a failed probe).
    pub fn failure(&mut self, now_ms: i64) -> bool {
        if self.opened_at.is_some() {
            self.opened_at = Some(now_ms);
            return false;
        }
        self.consecutive += 1;
        self.push(true);
        let rate_tripped = self.recorded >= self.config.window
            && f64::from(self.history.count_ones()) / f64::from(self.config.window) > self.config.max_error_rate;
        if self.consecutive >= self.config.consecutive_failures || rate_tripped {
            self.opened_at = Some(now_ms);
            self.consecutive = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_cooldown() {
        let mut b = Breaker::new(BreakerConfig { cooldown_ms: 1000, ..Default::default() });
        for t in 0..4 {
            assert!(!b.failure(t));
        }
        assert!(b.failure(4));
        assert_eq!(b.permit(500), Permit::Deny);
        assert_eq!(b.permit(1004), Permit::Probe);
        assert!(!b.failure(1004));
        assert_eq!(b.permit(1500), Permit::Deny);
        assert_eq!(b.permit(2004), Permit::Probe);
        assert!(b.success());
        assert_eq!(b.permit(2005), Permit::Call);
    }

    #[test]
    fn opens_on_error_rate() {
        let mut b = Breaker::new(BreakerConfig { window: 10, consecutive_failures: 100, ..Default::default() });
        let mut opened = false;
        for i in 0..10 {
            opened |= if i % 3 == 2 { b.success() } else { b.failure(i) };
        }
        assert!(opened, "7 failures of 10 > 50%");
    }
}
