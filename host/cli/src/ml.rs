//! The ONNX models in the binary: `[ml]` to the engine's models hook and to
//! the plugins' `predict` capability, both on the same registry.

use std::sync::{Arc, OnceLock};

use tickhost_core::engine::Engine;
use tickhost_ml::{MlSetup, MlStatus, ModelRegistry, ModelStatsSnapshot};
use tickhost_plugin::ModelHost;

use crate::config::Config;

/// The models plugins reach through `predict`. Created before the plugins
/// load (their linker captures it) and bound once the frame layout is known
/// and the registry loaded against it: the frame depends on the feature
/// extensions, which are plugins themselves.
#[derive(Debug, Default)]
pub struct PluginModels {
    registry: OnceLock<Option<Arc<ModelRegistry>>>,
}

impl PluginModels {
    fn bind(&self, setup: &MlSetup) {
        let _ = self.registry.set(setup.registry.clone());
    }
}

impl ModelHost for PluginModels {
    fn predict(&self, model: &str, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), String> {
        match self.registry.get() {
            Some(Some(registry)) => registry.predict(model, inputs, out).map_err(|e| e.to_string()),
            _ => Err(format!(
                "model `{model}` is not available: the host's models are off (ENHANCED_ML_ENABLED=false) or ONNX Runtime is missing"
            )),
        }
    }
}

/// How ML came up in this run, for the report.
#[derive(Debug)]
pub struct MlRun {
    pub setup: MlSetup,
}

impl MlRun {
    /// `disabled`, `active`, `degraded` (some model missing) or `fallback` (no runtime).
    pub fn status(&self) -> &'static str {
        match &self.setup.status {
            MlStatus::Disabled => "disabled",
            MlStatus::Fallback { .. } => "fallback",
            MlStatus::Active { problems, .. } if problems.is_empty() => "active",
            MlStatus::Active { .. } => "degraded",
        }
    }

    /// Per-model inference counters and latency so far.
    pub fn stats(&self) -> Vec<ModelStatsSnapshot> {
        self.setup.registry.as_ref().map(|r| r.stats()).unwrap_or_default()
    }

    /// For report.json: what ran, what fell back and why (no timings: the
    /// report of a replay must not depend on the machine).
    pub fn json(&self) -> serde_json::Value {
        let (runtime, problems) = match &self.setup.status {
            MlStatus::Active { runtime, problems } => (
                Some(serde_json::json!({
                    "path": runtime.located.path,
                    "source": runtime.located.source,
                    "version": runtime.version,
                })),
                problems.iter().map(|p| p.to_string()).collect(),
            ),
            MlStatus::Fallback { reason } => (None, vec![reason.to_string()]),
            MlStatus::Disabled => (None, Vec::new()),
        };
        let models: Vec<&str> = self.setup.registry.iter().flat_map(|r| r.models()).map(|m| m.name()).collect();
        serde_json::json!({ "status": self.status(), "runtime": runtime, "models": models, "problems": problems })
    }
}

/// Loads `[ml]` against the engine's frame, puts the models behind the
/// engine's consensus and binds `plugins` to the same registry. Says once,
/// on stderr, what runs and what falls back.
pub fn attach(engine: Engine, config: &Config, plugins: &PluginModels) -> (Engine, MlRun) {
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let setup = tickhost_ml::start(&config.ml, engine.schema(), env.as_deref());
    if let Some(summary) = setup.summary() {
        if setup.degraded() {
            tracing::warn!("{summary}");
        } else {
            tracing::info!("{summary}");
        }
    }
    plugins.bind(&setup);
    let engine = engine.with_models(Box::new(setup.models.clone()));
    (engine, MlRun { setup })
}
