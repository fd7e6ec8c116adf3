//! The model registry: every configured model, loaded into an ONNX Runtime
//! session, its input schema checked against the engine's feature frame,
//! ready for batch-1 inference.
//!
//! Per run, nothing is allocated on the Rust side that a previous run did
//! not already allocate: the input tensor `[1, n]` is created once and
//! refilled in place, and the probability output `[1, k]` is preallocated
//! and bound through the run options, so ONNX Runtime writes into it.
//! (What ONNX Runtime allocates inside its C++ kernels is its own business:
//! `cargo bench -p tickhost-ml` counts the Rust-side allocations per run.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::{Tensor, TensorElementType, ValueType};
use tickhost_core::hooks::FeatureSchema;

use crate::config::ModelSpec;
use crate::error::MlError;
use crate::runtime::OnnxRuntime;

/// Metadata key the training script writes: the input feature names,
/// comma-separated, in column order. Checked against the config when present.
pub const FEATURE_NAMES_KEY: &str = "feature_names";

const BUCKETS: usize = 48;

/// Inference counters of one model, readable while the engine runs.
#[derive(Debug)]
pub struct ModelStats {
    calls: AtomicU64,
    errors: AtomicU64,
    /// Bucket i counts runs that took [2^i, 2^(i+1)) ns.
    latency: [AtomicU64; BUCKETS],
}

/// A copy of a model's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModelStatsSnapshot {
    pub model: String,
    pub calls: u64,
    pub errors: u64,
    /// Upper edges of the log2 latency buckets holding the quantile.
    pub p50_ns: u64,
    pub p99_ns: u64,
}

impl ModelStats {
    fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn record(&self, ns: u64, ok: bool) {
        self.calls.fetch_add(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
        let b = (63 - ns.max(1).leading_zeros()) as usize;
        self.latency[b.min(BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    fn snapshot(&self, model: &str) -> ModelStatsSnapshot {
        let buckets: Vec<u64> = self.latency.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = buckets.iter().sum();
        let quantile = |q: f64| {
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, &n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return (1u64 << (i + 1)) - 1;
                }
            }
            0
        };
        ModelStatsSnapshot {
            model: model.to_string(),
            calls: self.calls.load(Relaxed),
            errors: self.errors.load(Relaxed),
            p50_ns: if count == 0 { 0 } else { quantile(0.5) },
            p99_ns: if count == 0 { 0 } else { quantile(0.99) },
        }
    }
}

/// The session and its reused buffers. Behind a mutex because
/// `Session::run` needs `&mut` (ONNX Runtime's Run is not thread-safe) and
/// both the engine and plugins' `predict` reach the same model; in practice
/// both run on the engine thread, so the lock is never contended.
struct Run {
    session: Session,
    /// `[1, inputs]`, refilled in place every run.
    input: Tensor<f32>,
    /// Selects the probability output only, preallocated `[1, width]`.
    options: RunOptions<HasSelectedOutputs>,
}

/// One loaded model.
pub struct Model {
    spec: ModelSpec,
    /// Indices of `spec.inputs` in the engine's feature frame.
    frame_idx: Vec<usize>,
    /// Values per output row (the classes).
    width: usize,
    run: Mutex<Run>,
    stats: ModelStats,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("spec", &self.spec).field("width", &self.width).finish_non_exhaustive()
    }
}

impl Model {
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.frame_idx.len()
    }

    /// Values in one output row (the classes).
    pub fn outputs(&self) -> usize {
        self.width
    }

    pub fn stats(&self) -> ModelStatsSnapshot {
        self.stats.snapshot(&self.spec.name)
    }

    /// Loads `spec` and checks it: one float input `[batch, n]` with `n`
    /// = the configured inputs, every input name in `schema`, the feature
    /// names recorded in the model (if any) equal to the config's, and the
    /// configured output a float tensor whose rows have `column`.
    pub fn load(runtime: &OnnxRuntime, spec: &ModelSpec, schema: &FeatureSchema) -> Result<Model, MlError> {
        let path = &spec.path;
        let schema_err = |message: String| MlError::Schema { model: spec.name.clone(), path: path.clone(), message };
        let load_err = |message: String| MlError::ModelLoad { model: spec.name.clone(), path: path.clone(), message };
        // Absolute in the message: relative paths are taken from the working
        // directory, which is the usual surprise.
        let bytes = std::fs::read(path).map_err(|e| MlError::ModelFile {
            model: spec.name.clone(),
            path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            message: e.to_string(),
        })?;
        // The engine thread runs the model itself: no intra-op pool, no
        // spinning threads competing with it for the core.
        let builder = || -> Result<_, ort::Error> {
            Ok(Session::builder(&runtime.env)?
                .with_optimization_level(GraphOptimizationLevel::Level3)?
                .with_intra_threads(1)?
                .with_inter_threads(1)?
                .with_intra_op_spinning(false)?
                .with_inter_op_spinning(false)?)
        };
        let session = builder()
            .map_err(|e| load_err(e.to_string()))?
            .commit_from_memory(&bytes)
            .map_err(|e| load_err(format!("not a model ONNX Runtime can run: {e}")))?;

        let frame_idx =
            schema.resolve(&format!("model `{}`", spec.name), &spec.inputs).map_err(|e| schema_err(e.to_string()))?;
        let [input] = session.inputs() else {
            return Err(schema_err(format!(
                "it has {} inputs; tickhost feeds exactly one `[1, n]` tensor",
                session.inputs().len()
            )));
        };
        let n = spec.inputs.len();
        match input.dtype() {
            ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } => {
                let cols = shape.get(1).copied();
                if shape.len() != 2 || cols.is_some_and(|c| c > 0 && c as usize != n) {
                    return Err(schema_err(format!(
                        "input `{}` has shape {:?}, but the config lists {n} inputs; the model wants [batch, {}]",
                        input.name(),
                        &shape[..],
                        cols.map_or("?".into(), |c| c.to_string())
                    )));
                }
            }
            other => {
                return Err(schema_err(format!(
                    "input `{}` is {other:?}; tickhost feeds a float32 tensor [1, n] (export with FloatTensorType)",
                    input.name()
                )));
            }
        }
        if let Some(names) = session.metadata().ok().and_then(|m| m.custom(FEATURE_NAMES_KEY)) {
            let recorded: Vec<&str> = names.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if recorded != spec.inputs.iter().map(String::as_str).collect::<Vec<_>>() {
                let at = recorded.iter().zip(&spec.inputs).position(|(a, b)| a != b).unwrap_or(recorded.len().min(n));
                return Err(schema_err(format!(
                    "it was trained on {} features ({}), the config lists {n}; they first differ at position {at}: model {:?}, config {:?}",
                    recorded.len(),
                    names,
                    recorded.get(at),
                    spec.inputs.get(at)
                )));
            }
        }
        let Some(output) = session.outputs().iter().find(|o| o.name() == spec.output) else {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            return Err(schema_err(format!("it has no output `{}`; its outputs are {names:?}", spec.output)));
        };
        let width = match output.dtype() {
            ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } if shape.len() <= 2 => {
                if shape.len() == 2 {
                    shape[1]
                } else {
                    1
                }
            }
            other => {
                return Err(schema_err(format!(
                    "output `{}` is {other:?}, not a float tensor [batch, classes]; export classifiers with zipmap=False",
                    spec.output
                )));
            }
        };
        if width <= 0 {
            return Err(schema_err(format!("output `{}` has no fixed number of columns", spec.output)));
        }
        let width = width as usize;
        if spec.column >= width {
            return Err(schema_err(format!(
                "`column` = {} but output `{}` has {width} columns (0..{})",
                spec.column,
                spec.output,
                width - 1
            )));
        }
        let alloc = Allocator::default();
        let tensor_err = |e: ort::Error| load_err(format!("cannot allocate its tensors: {e}"));
        let input = Tensor::<f32>::new(&alloc, [1usize, n]).map_err(tensor_err)?;
        let prealloc = Tensor::<f32>::new(&alloc, [1usize, width]).map_err(tensor_err)?;
        let options = RunOptions::new()
            .map_err(tensor_err)?
            .with_outputs(OutputSelector::no_default().with(&spec.output).preallocate(&spec.output, prealloc));
        Ok(Model {
            spec: spec.clone(),
            frame_idx,
            width,
            run: Mutex::new(Run { session, input, options }),
            stats: ModelStats::new(),
        })
    }

    /// One batch-1 run; `fill` writes the inputs, `read` gets the output row.
    fn infer<R>(&self, fill: impl FnOnce(&mut [f32]), read: impl FnOnce(&[f32]) -> R) -> Result<R, MlError> {
        let t0 = Instant::now();
        let result = (|| {
            let mut guard = self.run.lock().unwrap_or_else(|e| e.into_inner());
            let Run { session, input, options } = &mut *guard;
            fill(input.extract_tensor_mut().1);
            let outputs = session
                .run_with_options(ort::inputs![&*input], options)
                .map_err(|e| MlError::Inference { model: self.spec.name.clone(), message: e.to_string() })?;
            let (_, row) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| MlError::Inference { model: self.spec.name.clone(), message: e.to_string() })?;
            if row.len() < self.width {
                return Err(MlError::Inference {
                    model: self.spec.name.clone(),
                    message: format!("output row has {} values, expected {}", row.len(), self.width),
                });
            }
            Ok(read(&row[..self.width]))
        })();
        self.stats.record(t0.elapsed().as_nanos() as u64, result.is_ok());
        result
    }

    /// P(up) for a feature frame: the configured column of the output.
    pub fn predict_frame(&self, frame: &[f64]) -> Result<f64, MlError> {
        let idx = &self.frame_idx;
        self.infer(
            |buf| {
                for (dst, &i) in buf.iter_mut().zip(idx) {
                    *dst = frame.get(i).copied().unwrap_or(0.0) as f32;
                }
            },
            |row| f64::from(row[self.spec.column]),
        )
    }

    /// The whole output row for `inputs` given in the model's column order
    /// (what a plugin's `predict` gets), written into `out`.
    pub fn predict_row(&self, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), MlError> {
        if inputs.len() != self.frame_idx.len() {
            return Err(MlError::InputLength {
                model: self.spec.name.clone(),
                expected: self.frame_idx.len(),
                got: inputs.len(),
            });
        }
        self.infer(
            |buf| {
                for (dst, &v) in buf.iter_mut().zip(inputs) {
                    *dst = v as f32;
                }
            },
            |row| {
                out.clear();
                out.extend(row.iter().map(|&v| f64::from(v)));
            },
        )
    }
}

/// Every loaded model, by name.
#[derive(Debug)]
pub struct ModelRegistry {
    runtime: OnnxRuntime,
    models: Vec<Model>,
}

impl ModelRegistry {
    /// Loads every spec; the first failure is the error.
    pub fn load(runtime: &OnnxRuntime, specs: &[ModelSpec], schema: &FeatureSchema) -> Result<Self, MlError> {
        let models = specs.iter().map(|s| Model::load(runtime, s, schema)).collect::<Result<_, _>>()?;
        Ok(Self { runtime: runtime.clone(), models })
    }

    /// Loads what it can: the models, and the error of each that failed.
    pub fn load_each(runtime: &OnnxRuntime, specs: &[ModelSpec], schema: &FeatureSchema) -> (Self, Vec<MlError>) {
        let mut models = Vec::new();
        let mut errors = Vec::new();
        for spec in specs {
            match Model::load(runtime, spec, schema) {
                Ok(m) => models.push(m),
                Err(e) => errors.push(e),
            }
        }
        (Self { runtime: runtime.clone(), models }, errors)
    }

    pub fn runtime(&self) -> &OnnxRuntime {
        &self.runtime
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.spec.name == name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|m| m.spec.name == name)
    }

    pub fn stats(&self) -> Vec<ModelStatsSnapshot> {
        self.models.iter().map(Model::stats).collect()
    }

    /// A model's output row for `inputs`, by name (plugins' `predict`).
    pub fn predict(&self, name: &str, inputs: &[f64], out: &mut Vec<f64>) -> Result<(), MlError> {
        self.get(name).ok_or_else(|| MlError::UnknownModel(name.to_string()))?.predict_row(inputs, out)
    }
}
