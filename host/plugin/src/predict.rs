//! The `predict` capability: a plugin runs a model the host has loaded, by
//! name. This crate knows nothing of ONNX Runtime: the binary hands the
//! runtime a [`ModelHost`] (backed by `tickhost-ml`'s registry).
//!
//! Limits per plugin, from its manifest (`[limits]`): at most
//! `predict_calls` calls per event call, at most `predict_inputs` values per
//! call. A call over a limit is refused with an error the guest receives as
//! `err(message)` (not a trap: the plugin decides what to do without a
//! model), and counted in the slot's stats. Event calls, not wall-clock
//! time, bound the rate: a replay makes the same calls as the live run.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::manifest::Limits;

/// Models the host runs for plugins.
pub trait ModelHost: fmt::Debug + Send + Sync {
    /// Runs model `model` on `inputs` (in the model's column order) and
    /// writes its output row into `out` (cleared first). `Err` is the
    /// message the guest gets: unknown model, wrong number of inputs, no
    /// runtime, inference error.
    fn predict(&self, model: &str, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), String>;
}

/// One plugin instance's predict budget and counters (shared by its
/// successive stores, like its log).
#[derive(Debug, Default)]
pub(crate) struct PredictMeter {
    this_call: AtomicU32,
    calls: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

impl PredictMeter {
    /// Starts a new event call's budget.
    pub(crate) fn new_call(&self) {
        self.this_call.store(0, Relaxed);
    }

    /// (answered, refused by a limit, failed) since the last take.
    pub(crate) fn take(&self) -> (u64, u64, u64) {
        (self.calls.swap(0, Relaxed), self.refused.swap(0, Relaxed), self.errors.swap(0, Relaxed))
    }

    /// One `predict` call of the guest: limits, then the host's models.
    pub(crate) fn call(
        &self,
        host: Option<&dyn ModelHost>,
        limits: &Limits,
        model: &str,
        inputs: &[f64],
    ) -> Result<Vec<f64>, String> {
        let n = self.this_call.fetch_add(1, Relaxed) + 1;
        if n > limits.predict_calls {
            self.refused.fetch_add(1, Relaxed);
            return Err(format!(
                "predict refused: call {n} in this event, over the plugin's limit of {} per event ([limits] predict_calls in plugin.toml)",
                limits.predict_calls
            ));
        }
        if inputs.len() > limits.predict_inputs as usize {
            self.refused.fetch_add(1, Relaxed);
            return Err(format!(
                "predict refused: {} inputs, over the plugin's limit of {} ([limits] predict_inputs in plugin.toml)",
                inputs.len(),
                limits.predict_inputs
            ));
        }
        let Some(host) = host else {
            self.errors.fetch_add(1, Relaxed);
            return Err(format!("model `{model}` is not available: this host runs no models"));
        };
        let mut out = Vec::with_capacity(4);
        match host.predict(model, inputs, &mut out) {
            Ok(()) => {
                self.calls.fetch_add(1, Relaxed);
                Ok(out)
            }
            Err(e) => {
                self.errors.fetch_add(1, Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sum;
    impl ModelHost for Sum {
        fn predict(&self, model: &str, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), String> {
            if model != "sum" {
                return Err(format!("no model `{model}`"));
            }
            out.clear();
            out.push(inputs.iter().sum());
            Ok(())
        }
    }

    #[test]
    fn limits_per_event_and_per_call_are_refused_and_counted() {
        let limits = Limits { predict_calls: 2, predict_inputs: 3, ..Limits::default() };
        let m = PredictMeter::default();
        m.new_call();
        assert_eq!(m.call(Some(&Sum), &limits, "sum", &[1.0, 2.0]), Ok(vec![3.0]));
        let e = m.call(Some(&Sum), &limits, "sum", &[1.0; 4]).expect_err("too wide");
        assert!(e.contains("4 inputs") && e.contains("predict_inputs"), "{e}");
        let e = m.call(Some(&Sum), &limits, "sum", &[1.0]).expect_err("third call");
        assert!(e.contains("call 3") && e.contains("predict_calls"), "{e}");
        m.new_call();
        assert!(m.call(Some(&Sum), &limits, "sum", &[1.0]).is_ok(), "a new event has a new budget");
        assert!(m.call(Some(&Sum), &limits, "other", &[1.0]).expect_err("unknown").contains("other"));
        m.new_call();
        assert!(m.call(None, &limits, "sum", &[1.0]).expect_err("no host").contains("runs no models"));
        assert_eq!(m.take(), (2, 2, 2), "(answered, refused, failed)");
        assert_eq!(m.take(), (0, 0, 0));
    }
}
