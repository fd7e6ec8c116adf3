//! The engine's extension points. The engine calls these traits; the native
//! implementations live in this crate, and the WebAssembly host implements
//! them with a plugin in front of the native one (same-event fallback).
//! Keeping them here keeps `core` free of wasmtime.

use std::fmt;

use thiserror::Error;

use crate::broker::RoundTrip;
use crate::features::V3_FEATURE_NAMES;
use crate::market::{Candle, Trade};
use crate::strategy::{Action, Signal, StrategyInput};

/// The feature frame's layout, agreed once when an engine starts: the v3
/// features, then each extension's outputs. Plugins name the inputs they
/// need; the names resolve to indices here, once, never per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSchema {
    names: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("feature {name:?} is produced twice (by the v3 core or another extension); rename one output")]
    Duplicate { name: String },
    #[error("{who} needs feature {name:?}, which nothing produces; available: v3_* and {extensions}")]
    Missing { who: String, name: String, extensions: String },
}

impl Default for FeatureSchema {
    fn default() -> Self {
        Self::v3()
    }
}

impl FeatureSchema {
    pub fn v3() -> Self {
        Self { names: V3_FEATURE_NAMES.iter().map(|s| s.to_string()).collect() }
    }

    /// Appends an extension's outputs.
    pub fn extend(&mut self, outputs: &[String]) -> Result<(), SchemaError> {
        for name in outputs {
            if self.index_of(name).is_some() {
                return Err(SchemaError::Duplicate { name: name.clone() });
            }
            self.names.push(name.clone());
        }
        Ok(())
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Indices of `names` in this schema, for a consumer called `who`.
    pub fn resolve(&self, who: &str, names: &[String]) -> Result<Vec<usize>, SchemaError> {
        names
            .iter()
            .map(|name| {
                self.index_of(name).ok_or_else(|| SchemaError::Missing {
                    who: who.to_string(),
                    name: name.clone(),
                    extensions: self.names[V3_FEATURE_NAMES.len()..].join(", "),
                })
            })
            .collect()
    }
}

/// Feature extensions: their outputs join the frame after the v3 features.
/// Hooks are `Send` so an engine can be built on one thread and run on
/// another (an engine shard per thread).
pub trait FeatureExtensions: fmt::Debug + Send {
    /// Names of all outputs, in order. Asked once, when the engine starts.
    fn output_names(&self) -> Vec<String>;
    /// Every admitted trade, for per-trade extensions. `frame` is the last
    /// closed candle's full frame.
    fn on_trade(&mut self, _trade: &Trade, _frame: &[f64]) {}
    /// At each candle close: `v3` holds this candle's v3 features; write
    /// one value per output name into `out`.
    fn on_candle(&mut self, candle: &Candle, v3: &[f64], out: &mut [f64]);
}

/// No extensions: the frame is the v3 features alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoExtensions;

impl FeatureExtensions for NoExtensions {
    fn output_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn on_candle(&mut self, _candle: &Candle, _v3: &[f64], _out: &mut [f64]) {}
}

/// Several extensions one after another: each writes its own outputs, in
/// the order given (plugin features, then time travel, then the book...).
#[derive(Debug, Default)]
pub struct ExtensionChain {
    links: Vec<(Box<dyn FeatureExtensions>, usize)>,
}

impl ExtensionChain {
    pub fn new(parts: impl IntoIterator<Item = Box<dyn FeatureExtensions>>) -> Self {
        let links = parts
            .into_iter()
            .map(|part| {
                let len = part.output_names().len();
                (part, len)
            })
            .collect();
        Self { links }
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The chain itself, or its only link when there is one.
    pub fn into_extensions(mut self) -> Box<dyn FeatureExtensions> {
        match self.links.len() {
            0 => Box::new(NoExtensions),
            1 => self.links.pop().map(|(part, _)| part).unwrap_or_else(|| Box::new(NoExtensions)),
            _ => Box::new(self),
        }
    }
}

impl FeatureExtensions for ExtensionChain {
    fn output_names(&self) -> Vec<String> {
        self.links.iter().flat_map(|(part, _)| part.output_names()).collect()
    }

    fn on_trade(&mut self, trade: &Trade, frame: &[f64]) {
        for (part, _) in &mut self.links {
            part.on_trade(trade, frame);
        }
    }

    fn on_candle(&mut self, candle: &Candle, v3: &[f64], out: &mut [f64]) {
        let mut rest = out;
        for (part, len) in &mut self.links {
            let (mine, next) = rest.split_at_mut((*len).min(rest.len()));
            part.on_candle(candle, v3, mine);
            rest = next;
        }
    }
}

/// The strategy for each regime.
pub trait Strategies: fmt::Debug + Send {
    fn on_candle(&mut self, input: &StrategyInput<'_>) -> Signal;
}

/// What the agents agree on at a candle close.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Consensus {
    pub action: Action,
    /// Weighted share of the agents' confidence behind `action`, in [0, 1].
    pub confidence: f64,
}

impl Consensus {
    pub const NONE: Consensus = Consensus { action: Action::Hold, confidence: 0.0 };
}

/// The agents and their coordinator.
pub trait Agents: fmt::Debug + Send {
    fn on_trade(&mut self, _trade: &Trade, _frame: &[f64]) {}
    fn on_candle(&mut self, candle: &Candle, frame: &[f64]) -> Consensus;
    /// A position the agents voted for was closed.
    fn on_feedback(&mut self, _trip: &RoundTrip) {}
}
