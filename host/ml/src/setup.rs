//! From `[ml]` to the engine's [`Models`] hook, never failing: whatever is
//! missing (the runtime, a model file, a model that does not match the
//! frame) is said once, and the regimes it would have served fall back to
//! the native rule, counted by the engine.

use std::sync::Arc;

use tickhost_core::consensus::{ModelAnswer, Models};
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::regime::Regime;

use crate::config::MlConfig;
use crate::error::MlError;
use crate::registry::ModelRegistry;
use crate::runtime::{Located, OnnxRuntime, locate};

/// What a regime's decisions go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// No model configured for the regime.
    None,
    /// This model of the registry.
    Model(usize),
    /// A model was configured but is not available: fallback.
    Unavailable,
}

fn regime_index(r: Regime) -> usize {
    match r {
        Regime::TrendUp => 0,
        Regime::TrendDown => 1,
        Regime::Range => 2,
        Regime::Undefined => 3,
    }
}

/// The engine's models: per regime, a model of the registry, nothing, or
/// "unavailable" (the native rule answers, counted as a fallback).
#[derive(Debug, Clone)]
pub struct OnnxModels {
    registry: Option<Arc<ModelRegistry>>,
    routes: [Route; 4],
}

impl Models for OnnxModels {
    fn predict(&mut self, regime: Regime, frame: &[f64]) -> ModelAnswer {
        match (self.routes[regime_index(regime)], &self.registry) {
            (Route::Model(i), Some(reg)) => match reg.models()[i].predict_frame(frame) {
                Ok(p) if p.is_finite() => ModelAnswer::Up(p),
                // Counted in the model's stats; the decision falls back.
                _ => ModelAnswer::Unavailable,
            },
            (Route::None, _) => ModelAnswer::NoModel,
            _ => ModelAnswer::Unavailable,
        }
    }
}

/// How ML came up.
#[derive(Debug)]
pub enum MlStatus {
    /// `ml.enabled = false` (ENHANCED_ML_ENABLED=false).
    Disabled,
    /// The runtime is loaded; `problems` lists the models that are not.
    Active { runtime: OnnxRuntime, problems: Vec<MlError> },
    /// No runtime (or a bad `[ml]` config): every configured regime falls back.
    Fallback { reason: MlError },
}

/// The outcome of [`start`].
#[derive(Debug)]
pub struct MlSetup {
    pub status: MlStatus,
    /// The loaded models (plugins' `predict` reaches them too).
    pub registry: Option<Arc<ModelRegistry>>,
    pub models: OnnxModels,
}

impl MlSetup {
    /// One paragraph for the operator: what runs, what falls back and why.
    /// `None` when ML is disabled.
    pub fn summary(&self) -> Option<String> {
        match &self.status {
            MlStatus::Disabled => None,
            MlStatus::Fallback { reason } => Some(format!(
                "ML models unavailable, the native rule (agents' veto) decides instead, counted as fallbacks: {reason}"
            )),
            MlStatus::Active { runtime, problems } => {
                let loaded: Vec<&str> = self.registry.iter().flat_map(|r| r.models()).map(|m| m.name()).collect();
                let mut s = format!(
                    "ML: ONNX Runtime {} from {} ({}); models loaded: {}",
                    runtime.version,
                    runtime.located.source,
                    runtime.located.path.display(),
                    if loaded.is_empty() { "none".to_string() } else { loaded.join(", ") }
                );
                for p in problems {
                    s.push_str(&format!("\nML model unavailable, its regimes fall back to the native rule: {p}"));
                }
                Some(s)
            }
        }
    }

    /// True when something configured is not running (runtime or a model).
    pub fn degraded(&self) -> bool {
        match &self.status {
            MlStatus::Disabled => false,
            MlStatus::Fallback { .. } => true,
            MlStatus::Active { problems, .. } => !problems.is_empty(),
        }
    }
}

fn routes_unavailable(config: &MlConfig) -> [Route; 4] {
    let mut routes = [Route::None; 4];
    for m in &config.models {
        for &r in &m.regimes {
            routes[regime_index(r)] = Route::Unavailable;
        }
    }
    routes
}

/// Finds the runtime (`env_path`: the value of `ORT_DYLIB_PATH`), loads the
/// models against `schema` and routes each regime. Never fails.
pub fn start(config: &MlConfig, schema: &FeatureSchema, env_path: Option<&str>) -> MlSetup {
    if !config.enabled {
        return MlSetup {
            status: MlStatus::Disabled,
            registry: None,
            models: OnnxModels { registry: None, routes: [Route::None; 4] },
        };
    }
    let fallback = |reason: MlError| MlSetup {
        status: MlStatus::Fallback { reason },
        registry: None,
        models: OnnxModels { registry: None, routes: routes_unavailable(config) },
    };
    if let Err(e) = config.validate() {
        return fallback(e);
    }
    let runtime = match locate(env_path, &config.runtime, &config.python).and_then(|l: Located| OnnxRuntime::load(&l)) {
        Ok(rt) => rt,
        Err(e) => return fallback(e),
    };
    let (registry, problems) = ModelRegistry::load_each(&runtime, &config.models, schema);
    let mut routes = routes_unavailable(config);
    for m in &config.models {
        if let Some(i) = registry.index_of(&m.name) {
            for &r in &m.regimes {
                routes[regime_index(r)] = Route::Model(i);
            }
        }
    }
    let registry = Arc::new(registry);
    MlSetup {
        status: MlStatus::Active { runtime, problems },
        registry: Some(registry.clone()),
        models: OnnxModels { registry: Some(registry), routes },
    }
}
