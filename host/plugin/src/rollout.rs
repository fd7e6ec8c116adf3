//! Live rollout of a slot's plugin: the control handle shared between the
//! engine thread (which owns the slot) and the operator side (the
//! [`crate::manager::PluginManager`], the admin API, the watcher).
//!
//! The operator side never touches a running instance. It compiles and
//! validates a candidate off the engine thread, then leaves a [`Command`] in
//! the slot's inbox. The engine thread looks at the inbox between two events
//! (one atomic load per event when it is empty) and applies the command:
//! state hand-over (`snapshot` of the old instance, `restore` into the new),
//! then the swap. Nothing is dropped or repeated: the event after the swap is
//! the first the new instance sees.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tickhost_core::hooks::FeatureSchema;

use crate::abi::{WCandle, WRegimeReading, WTrade};
use crate::instance::PluginInstance;
use crate::manifest::World;
use crate::metrics::{SlotMetrics, SlotStats};
use crate::runtime::Cadence;
use crate::slots::SlotPolicy;

/// Where a deployed candidate goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    /// Replaces the active plugin (which stays warm for a rollback).
    Active,
    /// Runs beside the active plugin on the same events; its answers are
    /// compared and recorded, never acted on.
    Shadow,
    /// Like shadow, and its answer is acted on for this percentage of events
    /// (chosen from the event, so a replay picks the same ones).
    Canary(u8),
}

/// Thresholds for rolling a candidate back on its own. Judged over the
/// candidate's last `window` calls once it has made `min_calls`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Share of failed calls (trap, timeout, invalid answer) that rolls back.
    pub max_error_rate: f64,
    /// Share of calls slower than the candidate's manifest deadline (which a
    /// replay's deadline factor may have let finish) that rolls back.
    pub max_over_budget_rate: f64,
    pub window: u32,
    pub min_calls: u32,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self { max_error_rate: 0.2, max_over_budget_rate: 0.2, window: 100, min_calls: 20 }
    }
}

/// What a transition did, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub slot: String,
    /// deploy, shadow, canary, promote, rollback, auto_rollback.
    pub action: String,
    /// The plugin that answers (is acted on) after the transition.
    pub active: String,
    /// The candidate in shadow or canary after the transition, if any.
    pub candidate: Option<String>,
    /// Whether the new instance took over the old one's state.
    pub state_handed_over: bool,
    /// How long the engine thread spent on it (between two events).
    pub pause_ns: u64,
    pub note: String,
}

/// A slot as the operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotStatus {
    pub slot: String,
    pub world: String,
    pub active: String,
    pub active_version: String,
    /// Where the active plugin was loaded from (none when native).
    pub active_manifest: Option<PathBuf>,
    pub previous: Option<String>,
    pub candidate: Option<CandidateStatus>,
    pub stats: SlotStats,
    pub rollout: RolloutCounts,
    /// Engine-thread pauses of the transitions applied so far, in order.
    pub pauses_ns: Vec<u64>,
    pub last_transition: Option<Transition>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateStatus {
    pub plugin: String,
    pub version: String,
    pub manifest: PathBuf,
    pub mode: Mode,
    pub compared: u64,
    pub agreed: u64,
    /// `agreed / compared` (1 when nothing was compared yet).
    pub agreement_rate: f64,
    pub divergences: u64,
    /// The first few divergences: event time and the two answers.
    pub divergence_examples: Vec<String>,
    pub candidate_failures: u64,
    pub acted: u64,
    pub stats: SlotStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutCounts {
    pub deploys: u64,
    pub shadows: u64,
    pub canaries: u64,
    pub promotions: u64,
    pub rollbacks: u64,
    pub auto_rollbacks: u64,
    /// Candidates refused before they reached the slot (compile, contract,
    /// schema, smoke replay) or at hand-over.
    pub rejected: u64,
}

/// A request the engine thread applies between two events.
#[derive(Debug)]
pub(crate) enum Command {
    Deploy { instance: Box<PluginInstance>, input_idx: Vec<usize>, mode: Mode },
    SetCanary(u8),
    Promote,
    Rollback,
}

pub(crate) type Reply = Result<Transition, String>;

/// Recent events a candidate is smoke-tested on, recorded by the slot.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecentEvents {
    pub(crate) candles: VecDeque<RecordedCandle>,
    pub(crate) trades: VecDeque<WTrade>,
}

#[derive(Debug, Clone)]
pub(crate) struct RecordedCandle {
    pub(crate) candle: WCandle,
    /// Strategies' candles carry the regime reading; others do not.
    pub(crate) regime: Option<WRegimeReading>,
    pub(crate) frame: Vec<f64>,
}

impl RecentEvents {
    pub(crate) const CANDLES: usize = 16;
    pub(crate) const TRADES: usize = 64;

    pub(crate) fn record_trade(&mut self, trade: WTrade) {
        if self.trades.len() == Self::TRADES {
            self.trades.pop_front();
        }
        self.trades.push_back(trade);
    }

    /// Reuses the oldest entry's frame buffer once the ring is full, so
    /// recording does not allocate in steady state.
    pub(crate) fn record_candle(
        &mut self,
        candle: WCandle,
        regime: Option<WRegimeReading>,
        frame: impl Fn(usize) -> f64,
        len: usize,
    ) {
        let mut entry = if self.candles.len() == Self::CANDLES {
            self.candles.pop_front().unwrap_or_else(|| RecordedCandle { candle, regime, frame: Vec::new() })
        } else {
            RecordedCandle { candle, regime, frame: Vec::with_capacity(len) }
        };
        entry.candle = candle;
        entry.regime = regime;
        entry.frame.clear();
        entry.frame.extend((0..len).map(frame));
        self.candles.push_back(entry);
    }
}

/// The shared handle of one slot.
#[derive(Debug)]
pub struct SlotControl {
    pub(crate) name: String,
    pub(crate) world: World,
    /// The frame the slot's plugins read their inputs from.
    pub(crate) schema: FeatureSchema,
    /// Feature extensions: the outputs (names, order) and cadence every
    /// version must keep, since the frame layout is fixed at start.
    pub(crate) outputs: Vec<String>,
    pub(crate) cadence: Option<Cadence>,
    pub(crate) policy: SlotPolicy,
    pending: AtomicBool,
    inbox: Mutex<VecDeque<(Command, SyncSender<Reply>)>>,
    pub(crate) recent: Mutex<RecentEvents>,
    pub(crate) status: Mutex<SlotStatus>,
    pub(crate) metrics: Arc<SlotMetrics>,
    rejected: AtomicU64,
    /// The current candidate's comparisons: compared, agreed, failed, acted.
    candidate_counts: [AtomicU64; 4],
    candidate_examples: Mutex<Vec<String>>,
    candidate_metrics: Mutex<Option<Arc<SlotMetrics>>>,
}

impl SlotControl {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        world: World,
        schema: FeatureSchema,
        outputs: Vec<String>,
        cadence: Option<Cadence>,
        policy: SlotPolicy,
        metrics: Arc<SlotMetrics>,
        active: (&str, &str, Option<PathBuf>),
    ) -> Arc<SlotControl> {
        let status = SlotStatus {
            slot: name.to_string(),
            world: world.name().to_string(),
            active: active.0.to_string(),
            active_version: active.1.to_string(),
            active_manifest: active.2,
            previous: None,
            candidate: None,
            stats: SlotStats::default(),
            rollout: RolloutCounts::default(),
            pauses_ns: Vec::new(),
            last_transition: None,
        };
        Arc::new(SlotControl {
            name: name.to_string(),
            world,
            schema,
            outputs,
            cadence,
            policy,
            pending: AtomicBool::new(false),
            inbox: Mutex::new(VecDeque::new()),
            recent: Mutex::new(RecentEvents::default()),
            status: Mutex::new(status),
            metrics,
            rejected: AtomicU64::new(0),
            candidate_counts: Default::default(),
            candidate_examples: Mutex::new(Vec::new()),
            candidate_metrics: Mutex::new(None),
        })
    }

    const EXAMPLES: usize = 8;

    /// Engine thread, when a candidate is placed: fresh comparison counters.
    pub(crate) fn reset_candidate(&self, metrics: Arc<SlotMetrics>) {
        for c in &self.candidate_counts {
            c.store(0, Relaxed);
        }
        if let Ok(mut e) = self.candidate_examples.lock() {
            e.clear();
        }
        if let Ok(mut m) = self.candidate_metrics.lock() {
            *m = Some(metrics);
        }
    }

    /// Engine thread, per candidate call. `agreed`: None when either side
    /// failed. The example is only built for the first few divergences.
    pub(crate) fn candidate_call(&self, failed: bool, agreed: Option<bool>, example: impl FnOnce() -> String) {
        if failed {
            self.candidate_counts[2].fetch_add(1, Relaxed);
        }
        let Some(agreed) = agreed else { return };
        self.candidate_counts[0].fetch_add(1, Relaxed);
        if agreed {
            self.candidate_counts[1].fetch_add(1, Relaxed);
        } else if self.candidate_counts[0].load(Relaxed) - self.candidate_counts[1].load(Relaxed)
            <= Self::EXAMPLES as u64
            && let Ok(mut e) = self.candidate_examples.try_lock()
            && e.len() < Self::EXAMPLES
        {
            e.push(example());
        }
    }

    pub(crate) fn candidate_acted(&self) {
        self.candidate_counts[3].fetch_add(1, Relaxed);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn world(&self) -> World {
        self.world
    }

    /// Leaves a command for the engine thread; the receiver gets its outcome
    /// once it is applied (at the slot's next event).
    pub(crate) fn send(&self, command: Command) -> Receiver<Reply> {
        let (tx, rx) = sync_channel(1);
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.push_back((command, tx));
            self.pending.store(true, Release);
        }
        rx
    }

    /// Engine thread: the next command, if any, without ever waiting for the
    /// lock (a busy inbox is looked at again at the next event).
    pub(crate) fn take(&self) -> Option<(Command, SyncSender<Reply>)> {
        if !self.pending.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let mut inbox = self.inbox.try_lock().ok()?;
        let next = inbox.pop_front();
        if inbox.is_empty() {
            self.pending.store(false, Release);
        }
        next
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// The manifests of the active plugin and the candidate.
    pub(crate) fn manifests(&self) -> Vec<PathBuf> {
        let Ok(st) = self.status.lock() else { return Vec::new() };
        st.active_manifest.iter().cloned().chain(st.candidate.as_ref().map(|c| c.manifest.clone())).collect()
    }

    /// The slot's status as of now.
    pub fn status(&self) -> SlotStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
        s.stats = self.metrics.snapshot();
        s.rollout.rejected = self.rejected.load(Relaxed);
        if let Some(c) = s.candidate.as_mut() {
            let [compared, agreed, failed, acted] = self.candidate_counts.each_ref().map(|a| a.load(Relaxed));
            c.compared = compared;
            c.agreed = agreed;
            c.agreement_rate = if compared == 0 { 1.0 } else { agreed as f64 / compared as f64 };
            c.divergences = compared - agreed;
            c.candidate_failures = failed;
            c.acted = acted;
            c.divergence_examples = self.candidate_examples.lock().map(|e| e.clone()).unwrap_or_default();
            if let Ok(Some(m)) = self.candidate_metrics.lock().as_deref() {
                c.stats = m.snapshot();
            }
        }
        s
    }
}

/// Old instances are dropped here, off the engine thread: tearing down a
/// store can take milliseconds (a Python guest's memory).
pub(crate) fn retire(instance: PluginInstance) {
    static REAPER: OnceLock<Mutex<std::sync::mpsc::Sender<PluginInstance>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<PluginInstance>();
        let spawned = std::thread::Builder::new().name("plugin-reaper".into()).spawn(move || {
            for old in rx {
                drop(old);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the plugin reaper thread ({e}); old instances are dropped inline");
        }
        Mutex::new(tx)
    });
    match reaper.try_lock() {
        Ok(tx) => {
            if let Err(back) = tx.send(instance) {
                drop(back.0);
            }
        }
        Err(_) => drop(instance),
    }
}

/// Whether the canary answers this event: a hash of the event's time and
/// the slot's event count, so the same replay picks the same events.
pub(crate) fn in_canary(percent: u8, now_ms: i64, seq: u64) -> bool {
    let mut x = (now_ms as u64) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    x % 100 < u64::from(percent.min(100))
}

/// A rolling window of a candidate's last calls: failed? over budget?
#[derive(Debug)]
pub(crate) struct CallWindow {
    failed: VecDeque<(bool, bool)>,
    cap: usize,
}

impl CallWindow {
    pub(crate) fn new(cap: u32) -> Self {
        Self { failed: VecDeque::with_capacity(cap.max(1) as usize), cap: cap.max(1) as usize }
    }

    pub(crate) fn push(&mut self, failed: bool, over_budget: bool) {
        if self.failed.len() == self.cap {
            self.failed.pop_front();
        }
        self.failed.push_back((failed, over_budget));
    }

    /// Why the candidate should be rolled back, if it should.
    pub(crate) fn breach(&self, policy: &RolloutPolicy) -> Option<String> {
        let n = self.failed.len();
        if n < policy.min_calls as usize {
            return None;
        }
        let failed = self.failed.iter().filter(|(f, _)| *f).count() as f64 / n as f64;
        let slow = self.failed.iter().filter(|(_, s)| *s).count() as f64 / n as f64;
        if failed > policy.max_error_rate {
            Some(format!(
                "error rate {:.0}% over the last {n} calls > {:.0}%",
                failed * 100.0,
                policy.max_error_rate * 100.0
            ))
        } else if slow > policy.max_over_budget_rate {
            Some(format!(
                "{:.0}% of the last {n} calls over the latency budget > {:.0}%",
                slow * 100.0,
                policy.max_over_budget_rate * 100.0
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_picks_the_same_events_every_time_and_about_its_share() {
        let picks = |p| (0..10_000u64).filter(|&i| in_canary(p, 1_700_000_000_000 + i as i64 * 60_000, i)).count();
        assert_eq!(picks(25), picks(25), "deterministic");
        assert!((2_200..2_800).contains(&picks(25)), "{}", picks(25));
        assert_eq!(picks(0), 0);
        assert_eq!(picks(100), 10_000);
    }

    #[test]
    fn a_window_breaches_on_errors_or_slowness_only_after_enough_calls() {
        let policy = RolloutPolicy::default();
        let mut w = CallWindow::new(policy.window);
        for _ in 0..10 {
            w.push(true, false);
        }
        assert!(w.breach(&policy).is_none(), "too few calls to judge");
        for _ in 0..10 {
            w.push(true, false);
        }
        assert!(w.breach(&policy).is_some_and(|why| why.contains("error rate")));
        let mut w = CallWindow::new(policy.window);
        for i in 0..100 {
            w.push(false, i % 3 == 0);
        }
        assert!(w.breach(&policy).is_some_and(|why| why.contains("latency budget")));
    }
}
