//! One live plugin instance behind a slot: calls under limits, failure
//! classification, snapshots and re-instantiation after a trap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::TypedFunc;
use wasmtime::{Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, ResourceTable, WasiCtx};

use crate::abi::{WAgentSignal, WCandle, WDescription, WFeedback, WRegimeReading, WSignal, WTrade};
use crate::error::PluginError;
use crate::log::{LogPipe, LogSink};
use crate::metrics::{FallbackReason, SlotMetrics};
use crate::predict::PredictMeter;
use crate::runtime::{HostState, LoadedInner, LoadedPlugin};

pub(crate) type Floats = Arc<[f64]>;
/// One smoke-replay call: true when the answer is valid.
type SmokeCall<'a> = &'a dyn Fn(&mut Store<HostState>, &WorldFuncs, Floats) -> wasmtime::Result<bool>;
type RestoreFunc = TypedFunc<(Arc<[u8]>,), (Result<(), String>,)>;

/// Plugins see no clock: time is the event's, passed in the calls.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

fn wasi(sink: &Arc<LogSink>) -> WasiCtx {
    // Deny by default: no preopened dirs, no network, no env, no args; a
    // frozen clock and seeded randomness so replays stay deterministic.
    WasiCtx::builder()
        .stdout(LogPipe::stdout(sink))
        .stderr(LogPipe::stderr(sink))
        .wall_clock(Frozen)
        .monotonic_clock(Frozen)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a, 0x17, 0xc3, 0x88, 0x21, 0x9e, 0x40, 0x6b]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]))
        .insecure_random_seed(0x7469636b686f7374)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .build()
}

pub(crate) enum WorldFuncs {
    Features {
        on_trade: TypedFunc<(WTrade, Floats), (Vec<f64>,)>,
        on_candle: TypedFunc<(WCandle, Floats), (Vec<f64>,)>,
    },
    Strategy {
        on_candle: TypedFunc<(WCandle, WRegimeReading, Floats), (WSignal,)>,
    },
    Agent {
        on_trade: TypedFunc<(WTrade, Floats), (Option<WAgentSignal>,)>,
        on_candle: TypedFunc<(WCandle, Floats), (WAgentSignal,)>,
        on_feedback: TypedFunc<(WFeedback,), ()>,
    },
}

/// A store with an instantiated plugin and its typed exports.
pub(crate) struct Live {
    pub(crate) store: Store<HostState>,
    describe: TypedFunc<(), (WDescription,)>,
    snapshot: TypedFunc<(), (Vec<u8>,)>,
    restore: RestoreFunc,
    pub(crate) funcs: WorldFuncs,
}

/// Why creating an instance failed.
pub(crate) enum LiveError {
    Contract { export: String, message: String },
    Failed { message: String, timeout: bool },
}

fn is_timeout(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt | Trap::OutOfFuel))
}

fn message(e: &wasmtime::Error) -> String {
    // The top of the chain is often "error while executing at wasm
    // backtrace"; the causes say what happened.
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let first = text.lines().next().unwrap_or("").trim().trim_end_matches(':').to_string();
        if !first.is_empty() && !first.starts_with("error while executing at wasm backtrace") && !parts.contains(&first)
        {
            parts.push(first);
        }
    }
    if parts.is_empty() {
        parts.push(format!("{e}"));
    }
    parts.join(": ")
}

impl Live {
    fn new(plugin: &LoadedInner, sink: &Arc<LogSink>, predict: &Arc<PredictMeter>) -> Result<Live, LiveError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(plugin.manifest.limits.memory_mib as usize * 1024 * 1024)
            .trap_on_grow_failure(true)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        let state = HostState {
            wasi: wasi(sink),
            table: ResourceTable::new(),
            limits,
            log: sink.clone(),
            predict: predict.clone(),
        };
        let mut store = Store::new(&plugin.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let lifecycle = plugin.ticker.ticks(Duration::from_millis(plugin.manifest.limits.lifecycle_deadline_ms));
        store.set_epoch_deadline(lifecycle);
        if plugin.manifest.limits.fuel > 0 {
            let _ = store.set_fuel(u64::MAX / 4);
        }
        sink.new_call();
        predict.new_call();
        let instance = plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| LiveError::Failed { timeout: is_timeout(&e), message: message(&e) })?;
        let ex = &plugin.exports;
        macro_rules! typed {
            ($idx:expr, $name:expr) => {
                instance
                    .get_typed_func(&mut store, $idx)
                    .map_err(|e| LiveError::Contract { export: $name.to_string(), message: format!("{e:#}") })?
            };
        }
        let describe = typed!(&ex.describe, "lifecycle#describe");
        let snapshot = typed!(&ex.snapshot, "lifecycle#snapshot");
        let restore = typed!(&ex.restore, "lifecycle#restore");
        let funcs = match plugin.manifest.world {
            crate::manifest::World::FeatureExtension => WorldFuncs::Features {
                on_trade: typed!(&ex.world[0], "features#on-trade"),
                on_candle: typed!(&ex.world[1], "features#on-candle"),
            },
            crate::manifest::World::RegimeStrategy => {
                WorldFuncs::Strategy { on_candle: typed!(&ex.world[0], "strategy#on-candle") }
            }
            crate::manifest::World::HmarlAgent => WorldFuncs::Agent {
                on_trade: typed!(&ex.world[0], "agent#on-trade"),
                on_candle: typed!(&ex.world[1], "agent#on-candle"),
                on_feedback: typed!(&ex.world[2], "agent#on-feedback"),
            },
        };
        Ok(Live { store, describe, snapshot, restore, funcs })
    }

    fn lifecycle_deadline(&mut self, plugin: &LoadedInner) {
        let ticks = plugin.ticker.ticks(Duration::from_millis(plugin.manifest.limits.lifecycle_deadline_ms));
        self.store.set_epoch_deadline(ticks);
        if plugin.manifest.limits.fuel > 0 {
            let _ = self.store.set_fuel(u64::MAX / 4);
        }
        self.store.data().log.new_call();
        self.store.data().predict.new_call();
    }

    /// Instantiates once and calls `describe()`, for [`crate::PluginRuntime::load`].
    pub(crate) fn describe_at_load(plugin: &LoadedInner) -> Result<WDescription, PluginError> {
        let name = plugin.manifest.name.clone();
        let deadline_ms = plugin.manifest.limits.lifecycle_deadline_ms;
        let sink = LogSink::new(&name);
        let mut live = match Live::new(plugin, &sink, &Arc::new(PredictMeter::default())) {
            Ok(l) => l,
            Err(LiveError::Contract { export, message }) => {
                return Err(PluginError::Contract {
                    plugin: name,
                    path: plugin.component_path.clone(),
                    export,
                    message,
                });
            }
            Err(LiveError::Failed { timeout: true, .. }) => {
                return Err(PluginError::LoadTimeout { plugin: name, call: "instantiate", deadline_ms });
            }
            Err(LiveError::Failed { message, .. }) => return Err(PluginError::Instantiate { plugin: name, message }),
        };
        live.lifecycle_deadline(plugin);
        match live.describe.call(&mut live.store, ()) {
            Ok((d,)) => Ok(d),
            Err(e) if is_timeout(&e) => Err(PluginError::LoadTimeout { plugin: name, call: "describe", deadline_ms }),
            Err(e) => Err(PluginError::LoadCall { plugin: name, call: "describe", message: message(&e) }),
        }
    }
}

/// A plugin instance owned by a slot (or standalone, from
/// [`LoadedPlugin::instantiate`]). Re-creates itself after a trap or timeout
/// and restores its last good snapshot.
pub struct PluginInstance {
    plugin: LoadedPlugin,
    live: Option<Live>,
    live_error: Option<String>,
    last_error: Option<String>,
    sink: Arc<LogSink>,
    /// Budget and counters of `predict` calls, across re-instantiations.
    predict: Arc<PredictMeter>,
    metrics: Arc<SlotMetrics>,
    last_snapshot: Option<Arc<[u8]>>,
    ok_since_snapshot: u64,
    /// Take a snapshot every this many successful calls (0 = never
    /// automatically).
    snapshot_every: u64,
    call_ticks: u64,
    fuel: u64,
    /// Reusable buffer the inputs are gathered into.
    pub(crate) inputs: Floats,
    last_call_ns: u64,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.plugin.name())
            .field("live", &self.live.is_some())
            .field("snapshot_bytes", &self.last_snapshot.as_ref().map(|s| s.len()))
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    /// `deadline_factor` scales the manifest's per-call deadline (see
    /// [`crate::SlotPolicy::deadline_factor`]).
    pub(crate) fn new(
        plugin: LoadedPlugin,
        metrics: Arc<SlotMetrics>,
        snapshot_every: u64,
        deadline_factor: f64,
    ) -> Self {
        let sink = LogSink::new(plugin.name());
        let limits = plugin.manifest().limits;
        let deadline = Duration::from_micros(limits.deadline_us).mul_f64(deadline_factor.max(1.0));
        let call_ticks = plugin.inner.ticker.ticks(deadline);
        let n_inputs = plugin.description().inputs.len();
        let mut me = PluginInstance {
            plugin,
            live: None,
            live_error: None,
            last_error: None,
            sink,
            predict: Arc::new(PredictMeter::default()),
            metrics,
            last_snapshot: None,
            ok_since_snapshot: 0,
            snapshot_every,
            call_ticks,
            fuel: limits.fuel,
            inputs: vec![0.0; n_inputs].into(),
            last_call_ns: 0,
        };
        me.create(false);
        me
    }

    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// The plugin's log (captured stdout/stderr and `log` calls).
    pub fn log(&self) -> &Arc<LogSink> {
        &self.sink
    }

    pub(crate) fn live_error(&self) -> Option<String> {
        self.live.is_none().then(|| self.live_error.clone().unwrap_or_else(|| "not instantiated".into()))
    }

    /// The counters this instance reports into.
    pub fn metrics(&self) -> &Arc<SlotMetrics> {
        &self.metrics
    }

    /// Reports into the slot's counters from now on (a candidate promoted).
    pub(crate) fn set_metrics(&mut self, metrics: Arc<SlotMetrics>) {
        self.metrics = metrics;
    }

    /// How long the last event call took.
    pub(crate) fn last_call_ns(&self) -> u64 {
        self.last_call_ns
    }

    /// The message of the last failed call (trap or timeout), if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// The snapshot a re-instantiation would restore.
    pub fn last_snapshot(&self) -> Option<&[u8]> {
        self.last_snapshot.as_deref()
    }

    /// (Re)creates the store and instance; with `restore`, hands it the last
    /// good snapshot. A failing restore leaves a fresh instance (counted).
    fn create(&mut self, restore: bool) {
        let inner = self.plugin.inner.clone();
        match Live::new(&inner, &self.sink, &self.predict) {
            Ok(mut live) => {
                if restore && let Some(state) = self.last_snapshot.clone() {
                    live.lifecycle_deadline(&inner);
                    let restored = live.restore.call(&mut live.store, (state,));
                    if !matches!(restored, Ok((Ok(()),))) {
                        let why = match restored {
                            Ok((Err(m),)) => m,
                            Err(e) => message(&e),
                            Ok((Ok(()),)) => String::new(),
                        };
                        tracing::warn!(plugin = %self.plugin.name(), "restore() of the last snapshot failed after re-instantiation: {why}; continuing with a fresh instance");
                        self.metrics.restore_failed();
                        match Live::new(&inner, &self.sink, &self.predict) {
                            Ok(fresh) => live = fresh,
                            Err(_) => {
                                self.live = None;
                                self.live_error = Some(format!("restore failed: {why}"));
                                return;
                            }
                        }
                    }
                }
                self.live = Some(live);
                self.live_error = None;
            }
            Err(LiveError::Contract { message, .. }) | Err(LiveError::Failed { message, .. }) => {
                tracing::warn!(plugin = %self.plugin.name(), "instantiation failed: {message}");
                self.live = None;
                self.live_error = Some(message);
            }
        }
        self.account_log();
    }

    fn account_log(&self) {
        let (lines, dropped) = self.sink.take_counts();
        self.metrics.log(lines, dropped);
        self.metrics.predict(self.predict.take());
    }

    fn reinstantiate(&mut self) {
        self.live = None;
        self.metrics.reinstantiated();
        self.create(true);
    }

    /// One event call under the per-call deadline, memory cap and fuel.
    /// A trap or timeout re-creates the instance before returning.
    pub(crate) fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>, &WorldFuncs, Floats) -> wasmtime::Result<R>,
    ) -> Result<R, FallbackReason> {
        if self.live.is_none() {
            self.reinstantiate();
        }
        let Some(live) = self.live.as_mut() else {
            return Err(FallbackReason::Missing);
        };
        live.store.set_epoch_deadline(self.call_ticks);
        if self.fuel > 0 {
            let _ = live.store.set_fuel(self.fuel);
        }
        self.sink.new_call();
        self.predict.new_call();
        let t0 = Instant::now();
        let result = f(&mut live.store, &live.funcs, self.inputs.clone());
        self.last_call_ns = t0.elapsed().as_nanos() as u64;
        self.metrics.latency_ns(self.last_call_ns);
        self.account_log();
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                let reason = if is_timeout(&e) { FallbackReason::Timeout } else { FallbackReason::Trap };
                let why = message(&e);
                tracing::debug!(plugin = %self.plugin.name(), ?reason, "call failed: {why}");
                self.last_error = Some(why);
                self.reinstantiate();
                Err(reason)
            }
        }
    }

    /// After a call whose output was valid: snapshot on cadence.
    pub(crate) fn succeeded(&mut self) {
        self.ok_since_snapshot += 1;
        if self.snapshot_every > 0 && self.ok_since_snapshot >= self.snapshot_every {
            let _ = self.snapshot();
        }
    }

    /// Asks the plugin for its state (under the lifecycle deadline) and keeps
    /// it as the snapshot a re-instantiation restores.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        let inner = self.plugin.inner.clone();
        let name = self.plugin.name().to_string();
        let Some(live) = self.live.as_mut() else {
            return Err(PluginError::Call { plugin: name, message: "no live instance to snapshot".into() });
        };
        live.lifecycle_deadline(&inner);
        let r = live.snapshot.call(&mut live.store, ());
        self.account_log();
        match r {
            Ok((state,)) => {
                self.ok_since_snapshot = 0;
                self.last_snapshot = Some(state.as_slice().into());
                self.metrics.snapshot_taken();
                Ok(state)
            }
            Err(e) => {
                let why = format!("snapshot() failed: {}", message(&e));
                self.reinstantiate();
                Err(PluginError::Call { plugin: name, message: why })
            }
        }
    }

    /// Hands `state` (from `snapshot()`, possibly of another version) to the
    /// plugin. On success it becomes the snapshot restored after a trap. On
    /// failure the instance is re-created from the last good snapshot.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let inner = self.plugin.inner.clone();
        let name = self.plugin.name().to_string();
        let Some(live) = self.live.as_mut() else {
            return Err(PluginError::Call { plugin: name, message: "no live instance to restore into".into() });
        };
        live.lifecycle_deadline(&inner);
        let state: Arc<[u8]> = state.into();
        let r = live.restore.call(&mut live.store, (state.clone(),));
        self.account_log();
        match r {
            Ok((Ok(()),)) => {
                self.last_snapshot = Some(state);
                Ok(())
            }
            Ok((Err(m),)) => {
                Err(PluginError::Call { plugin: name, message: format!("restore() refused the state: {m}") })
            }
            Err(e) => {
                let why = if is_timeout(&e) {
                    format!(
                        "restore() did not return within {} ms (infinite loop?); the instance was re-created",
                        inner.manifest.limits.lifecycle_deadline_ms
                    )
                } else {
                    format!("restore() trapped: {}; the instance was re-created", message(&e))
                };
                self.reinstantiate();
                Err(PluginError::Call { plugin: name, message: why })
            }
        }
    }

    /// Replays recent events through this (throwaway) instance, as the
    /// validation of a candidate before it may enter a slot: every call must
    /// return within its deadline, without a trap, with a valid answer.
    /// Returns how many events were replayed.
    pub(crate) fn smoke(
        &mut self,
        input_idx: &[usize],
        recent: &crate::rollout::RecentEvents,
        outputs: usize,
    ) -> Result<usize, String> {
        use crate::abi::{WRegime, WRegimeReading};
        let neutral = WRegimeReading { regime: WRegime::Undefined, confidence: 0.0, adx: 0.0 };
        let cadence = self.plugin.description().cadence;
        let mut replayed = 0;
        let frames = recent.candles.iter().map(|c| (Some(c), &c.frame));
        let empty = Vec::new();
        let last_frame = recent.candles.back().map_or(&empty, |c| &c.frame);
        let trades = recent.trades.iter().map(|t| (t, last_frame));
        let gather =
            |frame: &Vec<f64>| -> Floats { input_idx.iter().map(|&i| frame.get(i).copied().unwrap_or(0.0)).collect() };
        let features_ok = |v: &[f64]| v.len() == outputs && v.iter().all(|x| x.is_finite());
        let run = |me: &mut Self, what: String, f: SmokeCall<'_>, inputs: Floats| -> Result<(), String> {
            me.inputs = inputs;
            match me.call(|store, funcs, inputs| f(store, funcs, inputs)) {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("{what}: invalid answer (NaN, out of range or wrong length)")),
                Err(reason) => Err(format!(
                    "{what}: {} ({})",
                    reason.name(),
                    me.last_error.clone().unwrap_or_else(|| "no detail".into())
                )),
            }
        };
        let per_trade = cadence == crate::runtime::Cadence::PerTrade;
        if per_trade {
            for (t, frame) in trades {
                let t = *t;
                run(
                    self,
                    format!("trade {} at {}", t.trade_number, t.ts_ms),
                    &|store, funcs, inputs| match funcs {
                        WorldFuncs::Features { on_trade, .. } => {
                            on_trade.call(store, (t, inputs)).map(|(v,)| features_ok(&v))
                        }
                        WorldFuncs::Agent { on_trade, .. } => on_trade
                            .call(store, (t, inputs))
                            .map(|(v,)| v.as_ref().is_none_or(crate::slots::agents::valid)),
                        WorldFuncs::Strategy { .. } => Ok(true),
                    },
                    gather(frame),
                )?;
                replayed += 1;
            }
        }
        for (c, frame) in frames {
            let Some(c) = c else { continue };
            let (candle, regime) = (c.candle, c.regime.unwrap_or(neutral));
            run(
                self,
                format!("candle closing at {}", candle.close_ms),
                &|store, funcs, inputs| match funcs {
                    WorldFuncs::Features { on_candle, .. } => {
                        if per_trade {
                            Ok(true)
                        } else {
                            on_candle.call(store, (candle, inputs)).map(|(v,)| features_ok(&v))
                        }
                    }
                    WorldFuncs::Strategy { on_candle } => {
                        on_candle.call(store, (candle, regime, inputs)).map(|(s,)| crate::slots::strategy::valid(&s))
                    }
                    WorldFuncs::Agent { on_candle, .. } => {
                        on_candle.call(store, (candle, inputs)).map(|(v,)| crate::slots::agents::valid(&v))
                    }
                },
                gather(frame),
            )?;
            replayed += 1;
        }
        Ok(replayed)
    }

    /// The bare component call of a feature extension's `on-trade`, with none
    /// of a slot's bookkeeping (gate, breaker, metrics, output checks): what
    /// `tickhost bench` compares the slot's per-trade cost against. Returns
    /// how many values the plugin produced.
    pub fn raw_feature_on_trade(&mut self, trade: &tickhost_core::Trade) -> Result<usize, PluginError> {
        let name = self.plugin.name();
        let Some(live) = self.live.as_mut() else {
            return Err(PluginError::Call { plugin: name.to_string(), message: "no live instance".into() });
        };
        let WorldFuncs::Features { on_trade, .. } = &live.funcs else {
            return Err(PluginError::Call { plugin: name.to_string(), message: "not a feature extension".into() });
        };
        live.store.set_epoch_deadline(self.call_ticks);
        on_trade
            .call(&mut live.store, (WTrade::from(trade), self.inputs.clone()))
            .map(|(out,)| out.len())
            .map_err(|e| PluginError::Call { plugin: name.to_string(), message: message(&e) })
    }

    /// Calls `describe()` on the live instance (under the lifecycle
    /// deadline) and validates the answer as at load.
    pub fn describe(&mut self) -> Result<crate::runtime::Description, PluginError> {
        let inner = self.plugin.inner.clone();
        let name = self.plugin.name().to_string();
        let Some(live) = self.live.as_mut() else {
            return Err(PluginError::Call { plugin: name, message: "no live instance to describe".into() });
        };
        live.lifecycle_deadline(&inner);
        let r = live.describe.call(&mut live.store, ());
        self.account_log();
        match r {
            Ok((d,)) => crate::runtime::validate_description(&inner.manifest, d),
            Err(e) => {
                let why = format!("describe() failed: {}", message(&e));
                self.reinstantiate();
                Err(PluginError::Call { plugin: name, message: why })
            }
        }
    }
}
