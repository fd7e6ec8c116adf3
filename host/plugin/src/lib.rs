//! tickhost-plugin: the WebAssembly component host.
//!
//! [`PluginRuntime`] loads a plugin (manifest + component), checks its WIT
//! version and exports, links only the capabilities it was granted and WASI
//! deny-by-default. The slots ([`StrategySlots`], [`FeatureSlots`],
//! [`AgentSlots`]) implement the engine's extension points in
//! `tickhost_core::hooks` with a plugin in front of a native implementation:
//! a trap, a deadline miss, an invalid output or a missing plugin makes the
//! native implementation answer for that very event, counted by reason.

pub mod abi;
pub mod breaker;
pub mod cache;
pub mod error;
pub mod index;
pub mod instance;
pub mod log;
pub mod manager;
pub mod manifest;
pub mod metrics;
pub mod predict;
pub mod rollout;
pub mod runtime;
pub mod slots;
pub mod watch;

pub use breaker::{Breaker, BreakerConfig};
pub use error::PluginError;
pub use index::PluginIndex;
pub use instance::PluginInstance;
pub use manager::PluginManager;
pub use manifest::{Capabilities, Limits, Manifest, World};
pub use metrics::{FallbackReason, PredictStats, SlotMetrics, SlotStats};
pub use predict::ModelHost;
pub use rollout::{CandidateStatus, Mode, RolloutCounts, RolloutPolicy, SlotControl, SlotStatus, Transition};
pub use runtime::{Cadence, Description, HOST_WIT_VERSION, LoadedPlugin, PluginRuntime, RuntimeOptions, WitVersion};
pub use slots::SlotPolicy;
pub use slots::agents::{AgentSlot, AgentSlots, AgentVote, NativeAgent};
pub use slots::features::{FeatureSlot, FeatureSlots};
pub use slots::strategy::{RegimePlugins, StrategySlots};
pub use watch::PluginWatcher;
