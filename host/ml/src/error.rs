//! Errors of the ML layer. Each says what failed, where, and what to do.

use std::path::PathBuf;

use thiserror::Error;

/// Where the runtime library path came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeSource {
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// `ml.runtime` in the config.
    Config,
    /// The `onnxruntime` wheel of the configured Python interpreter.
    Python,
}

impl std::fmt::Display for RuntimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeSource::Env => "ORT_DYLIB_PATH",
            RuntimeSource::Config => "ml.runtime",
            RuntimeSource::Python => "the python onnxruntime wheel",
        })
    }
}

const INSTALL: &str = "install it with `python3 -m pip install onnxruntime==1.31.1` (scripts/setup.sh does) or set ORT_DYLIB_PATH to the absolute path of libonnxruntime.so.1.31.1";

#[derive(Debug, Error)]
pub enum MlError {
    #[error("ONNX Runtime not found: {source_name} names {path}, which does not exist; {INSTALL}")]
    RuntimeMissing { path: PathBuf, source_name: RuntimeSource },
    #[error("ONNX Runtime not found: ORT_DYLIB_PATH and ml.runtime are unset and {why}; {INSTALL}")]
    NoRuntime { why: String },
    #[error("ONNX Runtime at {path} (from {source_name}) cannot be loaded: {message}; {INSTALL}")]
    RuntimeLoad { path: PathBuf, source_name: RuntimeSource, message: String },
    #[error("ml.models: {0}")]
    Config(String),
    #[error("model `{model}`: cannot read {path}: {message}; train it with scripts/train_models.py or fix `path`")]
    ModelFile { model: String, path: PathBuf, message: String },
    #[error("model `{model}` ({path}): {message}")]
    ModelLoad { model: String, path: PathBuf, message: String },
    #[error(
        "model `{model}` ({path}) does not match its config: {message}; retrain it (scripts/train_models.py) or fix `inputs`/`output`/`column` of ml.models"
    )]
    Schema { model: String, path: PathBuf, message: String },
    #[error("model `{model}`: inference failed: {message}")]
    Inference { model: String, message: String },
    #[error("no model named `{0}` is loaded")]
    UnknownModel(String),
    #[error("model `{model}` takes {expected} inputs, got {got}")]
    InputLength { model: String, expected: usize, got: usize },
}
