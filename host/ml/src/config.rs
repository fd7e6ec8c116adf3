//! `[ml]`: whether models are used, where the runtime is, and the models.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tickhost_core::regime::Regime;

use crate::error::MlError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlConfig {
    /// `ENHANCED_ML_ENABLED`: false = every decision is the native rule's.
    pub enabled: bool,
    /// Path of `libonnxruntime.so.*`; "" = `ORT_DYLIB_PATH`, then the wheel
    /// of `python` (see [`crate::runtime::locate`]). `ORT_DYLIB_PATH` wins.
    pub runtime: PathBuf,
    /// Interpreter whose `onnxruntime` package is searched for the library.
    pub python: String,
    /// The models: each runs for the regimes it names.
    pub models: Vec<ModelSpec>,
}

impl Default for MlConfig {
    fn default() -> Self {
        Self { enabled: false, runtime: PathBuf::new(), python: "python3".into(), models: Vec::new() }
    }
}

/// One model: an ONNX classifier over named features of the frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// How plugins call it (`predict`) and how reports name it.
    pub name: String,
    /// The .onnx file (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Regimes whose buys and sells this model informs (may be empty: a
    /// model only plugins call).
    #[serde(default)]
    pub regimes: Vec<Regime>,
    /// Feature names, in the order of the model's input columns; each must
    /// be in the engine's frame (v3_* and the extensions' outputs).
    pub inputs: Vec<String>,
    /// The output holding the class probabilities.
    #[serde(default = "default_output")]
    pub output: String,
    /// Which column of that output is P(up).
    #[serde(default = "default_column")]
    pub column: usize,
}

fn default_output() -> String {
    "probabilities".into()
}

fn default_column() -> usize {
    1
}

impl MlConfig {
    /// Names unique, a regime claimed once, inputs given.
    pub fn validate(&self) -> Result<(), MlError> {
        let mut claimed: Vec<(Regime, &str)> = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            if m.name.is_empty() {
                return Err(MlError::Config(format!("model #{i} has an empty `name`")));
            }
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return Err(MlError::Config(format!("two models are named `{}`; names must be unique", m.name)));
            }
            if m.inputs.is_empty() {
                return Err(MlError::Config(format!("model `{}` lists no `inputs`", m.name)));
            }
            for &r in &m.regimes {
                if let Some((_, other)) = claimed.iter().find(|(c, _)| *c == r) {
                    return Err(MlError::Config(format!(
                        "regime `{}` is claimed by models `{other}` and `{}`; give each regime one model",
                        r.name(),
                        m.name
                    )));
                }
                claimed.push((r, &m.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, regimes: Vec<Regime>) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            path: "m.onnx".into(),
            regimes,
            inputs: vec!["v3_adx".into()],
            output: default_output(),
            column: 1,
        }
    }

    #[test]
    fn a_regime_has_at_most_one_model_and_names_are_unique() {
        let ok = MlConfig {
            models: vec![spec("a", vec![Regime::TrendUp]), spec("b", vec![Regime::Range])],
            ..MlConfig::default()
        };
        ok.validate().expect("valid");
        let twice =
            MlConfig { models: vec![spec("a", vec![Regime::Range]), spec("b", vec![Regime::Range])], ..ok.clone() };
        let e = twice.validate().expect_err("regime twice").to_string();
        assert!(e.contains("`range`") && e.contains("`a`") && e.contains("`b`"), "{e}");
        let dup = MlConfig { models: vec![spec("a", vec![]), spec("a", vec![])], ..ok };
        assert!(dup.validate().expect_err("same name").to_string().contains("unique"));
    }
}
