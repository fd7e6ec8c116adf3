//! Fills the engine's extension points from the `[plugins]` config: each
//! configured plugin sits in front of its native implementation, which
//! answers on the same event whenever the plugin cannot.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tickhost_core::agents::{NativeAgents, OrderFlowAgent};
use tickhost_core::engine::{Engine, Hooks};
use tickhost_core::extensions::Microstructure;
use tickhost_core::hooks::{ExtensionChain, FeatureExtensions, FeatureSchema};
use tickhost_core::strategy::RegimeStrategies;
use tickhost_plugin::{
    AgentSlot, AgentSlots, FeatureSlot, FeatureSlots, LoadedPlugin, NativeAgent, PluginRuntime, RegimePlugins,
    SlotControl, SlotMetrics, SlotPolicy, SlotStats, StrategySlots,
};

use crate::config::Config;
use crate::ml::{MlRun, PluginModels};
use tickhost_store::keys::TickStream;

/// An engine and what must outlive it: the plugin runtime (its epoch thread
/// enforces deadlines) and the slots' metrics.
#[derive(Debug)]
pub struct EngineSetup {
    pub engine: Engine,
    /// The ONNX models behind the consensus (and plugins' `predict`).
    pub ml: MlRun,
    runtime: Option<PluginRuntime>,
    metrics: Vec<Arc<SlotMetrics>>,
    controls: Vec<Arc<SlotControl>>,
    /// The time-travel worker (TIME_TRAVEL_ENABLED) and its counters.
    pub time_travel: Option<crate::storage::TimeTravelRun>,
    /// Plugins' recent-history window (engines with plugin slots only).
    pub history: Option<crate::storage::HistoryRun>,
}

impl EngineSetup {
    /// The slots' control handles, for live rollout (register them with a
    /// `PluginManager`).
    pub fn controls(&self) -> &[Arc<SlotControl>] {
        &self.controls
    }

    /// The plugin runtime the slots' plugins were loaded with.
    pub fn runtime(&self) -> Option<&PluginRuntime> {
        self.runtime.as_ref()
    }

    /// Stats of the slots that hold a plugin.
    pub fn plugin_stats(&self) -> Vec<SlotStats> {
        self.metrics.iter().map(|m| m.snapshot()).filter(|s| s.plugin != "native").collect()
    }
}

/// A plugin whose name matches a native implementation gets that
/// implementation as its same-event fallback (and replaces it).
fn native_feature_twin(name: &str) -> Option<Box<dyn FeatureExtensions + Send>> {
    match name {
        "microstructure" => Some(Box::new(Microstructure::default())),
        _ => None,
    }
}

fn uses_plugins(config: &Config) -> bool {
    let p = &config.plugins;
    let s = &p.strategy;
    !(p.features.is_empty() && p.agents.is_empty())
        || [&s.trend_up, &s.trend_down, &s.range, &s.undefined].iter().any(|m| !m.as_os_str().is_empty())
}

/// The plugin runtime, with the artifact cache the config names (plugins
/// loaded by it get no models: `predict` answers an error).
pub fn plugin_runtime(config: &Config) -> Result<PluginRuntime> {
    let cache = &config.plugins.cache_dir;
    if cache.as_os_str().is_empty() { PluginRuntime::new() } else { PluginRuntime::with_cache(cache) }
        .with_context(|| format!("cannot start the plugin runtime (cache_dir {})", cache.display()))
}

/// The engine for a replay: native throughout unless the config puts
/// plugins in slots.
pub fn build_engine(config: &Config) -> Result<EngineSetup> {
    build(config, false, Vec::new())
}

/// [`build_engine`] with more native feature extensions after the others
/// (the frame layout is fixed here, so a source that brings features, like
/// the DLL's order book, hands them over now).
pub fn build_engine_with(config: &Config, extra: Vec<Box<dyn FeatureExtensions>>) -> Result<EngineSetup> {
    build(config, false, extra)
}

/// The engine for a long-running `tickhost run`: strategy and agent slots
/// always exist, so an operator can deploy into them while it runs. (Feature
/// extensions cannot be added live: the frame layout is fixed at start.)
pub fn build_live_engine(config: &Config) -> Result<EngineSetup> {
    build(config, true, Vec::new())
}

fn build(config: &Config, live: bool, extra: Vec<Box<dyn FeatureExtensions>>) -> Result<EngineSetup> {
    let models = Arc::new(PluginModels::default());
    let (time_travel, tt_features) = crate::storage::time_travel(config)?;
    // Native extensions after the plugins' features: time travel, then the caller's.
    let mut native: Vec<Box<dyn FeatureExtensions>> = Vec::with_capacity(1 + extra.len());
    native.extend(tt_features.map(|tt| Box::new(tt) as Box<dyn FeatureExtensions>));
    native.extend(extra);
    if !live && !uses_plugins(config) {
        let extensions = ExtensionChain::new(native);
        let engine = if extensions.is_empty() {
            Engine::new(&config.engine)
        } else {
            Engine::with_hooks(
                &config.engine,
                Hooks {
                    extensions: extensions.into_extensions(),
                    strategies: Box::new(RegimeStrategies::new(&config.engine.strategy)),
                    agents: Box::new(NativeAgents::new(&config.engine.agents)),
                },
            )
        }
        .context("invalid engine configuration")?;
        let (engine, ml) = crate::ml::attach(engine, config, &models);
        return Ok(EngineSetup {
            engine,
            ml,
            runtime: None,
            metrics: Vec::new(),
            controls: Vec::new(),
            time_travel,
            history: None,
        });
    }
    let mut history = crate::storage::HistoryRun::new(config);
    let runtime = plugin_runtime(config)?.with_models(models.clone()).with_history(Arc::clone(&history.window));
    let history_granted_cell = std::cell::Cell::new(false);
    let load = |manifest: &Path| -> Result<LoadedPlugin> {
        let plugin = runtime.load(manifest).with_context(|| format!("cannot load plugin {}", manifest.display()))?;
        if plugin.manifest().capabilities.history {
            history_granted_cell.set(true);
        }
        Ok(plugin)
    };
    let optional = |manifest: &Path| -> Result<Option<LoadedPlugin>> {
        if manifest.as_os_str().is_empty() { Ok(None) } else { load(manifest).map(Some) }
    };
    let p = &config.plugins;
    let policy = SlotPolicy {
        fallback_on_error: p.fallback_on_error,
        force_fast_mode: p.force_fast_mode,
        breaker: p.breaker,
        rollout: p.rollout,
        // Every command that builds an engine today replays a file.
        deadline_factor: p.replay_deadline_factor,
        ..SlotPolicy::default()
    };

    let mut feature_slots = Vec::with_capacity(p.features.len());
    for manifest in &p.features {
        let plugin = load(manifest)?;
        let twin = native_feature_twin(plugin.name());
        let slot = FeatureSlot::plugin(plugin);
        feature_slots.push(match twin {
            Some(native) => slot.with_native(native),
            None => slot,
        });
    }
    let mut metrics = Vec::new();
    let mut controls = Vec::new();
    let mut extensions: Vec<Box<dyn FeatureExtensions>> = Vec::with_capacity(1 + native.len());
    if !feature_slots.is_empty() {
        let slots = FeatureSlots::new(feature_slots, policy.clone()).context("cannot set up the feature slots")?;
        metrics.extend(slots.metrics());
        controls.extend(slots.controls());
        extensions.push(Box::new(slots));
    }
    extensions.extend(native);
    let extensions = ExtensionChain::new(extensions).into_extensions();
    // First, so every plugin called for an event finds it in its history.
    let extensions: Box<dyn FeatureExtensions> =
        Box::new(tickhost_core::history::HistoryTap::new(Arc::clone(&history.window), extensions));
    let mut schema = FeatureSchema::v3();
    schema.extend(&extensions.output_names()).context("feature extensions disagree on output names")?;

    let s = &p.strategy;
    let regime_plugins = RegimePlugins {
        trend_up: optional(&s.trend_up)?,
        trend_down: optional(&s.trend_down)?,
        range: optional(&s.range)?,
        undefined: optional(&s.undefined)?,
    };
    let strategies = if !live
        && [&regime_plugins.trend_up, &regime_plugins.trend_down, &regime_plugins.range, &regime_plugins.undefined]
            .iter()
            .all(|p| p.is_none())
    {
        Box::new(RegimeStrategies::new(&config.engine.strategy)) as Box<dyn tickhost_core::hooks::Strategies>
    } else {
        let slots = StrategySlots::new(&config.engine.strategy, &schema, regime_plugins, policy.clone())
            .context("cannot set up the strategy slots")?;
        metrics.extend(slots.metrics());
        controls.extend(slots.controls());
        Box::new(slots)
    };

    let agents_config = &config.engine.agents;
    let agents: Box<dyn tickhost_core::hooks::Agents> = if !live && p.agents.is_empty() {
        Box::new(NativeAgents::new(agents_config))
    } else {
        let native_order_flow =
            || Box::new(OrderFlowAgent::new(agents_config.order_flow.clone())) as Box<dyn NativeAgent + Send>;
        let mut slots = Vec::with_capacity(p.agents.len() + 1);
        let mut order_flow_replaced = false;
        for agent in &p.agents {
            let plugin = load(&agent.manifest)?;
            let native = (plugin.name() == "orderflow").then(native_order_flow);
            order_flow_replaced |= native.is_some();
            slots.push(AgentSlot { plugin: Some(plugin), native, weight: agent.weight });
        }
        if !order_flow_replaced {
            slots.push(AgentSlot {
                plugin: None,
                native: Some(native_order_flow()),
                weight: agents_config.order_flow.weight,
            });
        }
        let slots = AgentSlots::new(slots, agents_config.min_confidence, &schema, policy)
            .context("cannot set up the agent slots")?;
        metrics.extend(slots.metrics());
        controls.extend(slots.controls());
        Box::new(slots)
    };

    let history_granted = history_granted_cell.get();
    let engine = Engine::with_hooks(&config.engine, Hooks { extensions, strategies, agents })
        .context("invalid engine configuration")?;
    let (engine, ml) = crate::ml::attach(engine, config, &models);
    // A live engine may get a plugin with `history` deployed later; a replay
    // reads the store only when a plugin it loaded asked for history.
    if live || history_granted {
        let stream = if live { TickStream::Realtime } else { TickStream::Historical };
        history.seed(config, stream);
    } else {
        history.window.offer_seed(None);
    }
    Ok(EngineSetup { engine, ml, runtime: Some(runtime), metrics, controls, time_travel, history: Some(history) })
}
