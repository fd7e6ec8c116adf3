//! Errors from loading and driving plugins. Each message says what failed, on
//! which plugin or file, and what to do about it.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot read plugin manifest {path}: {source}; check the path (plugin.toml next to the component)")]
    ManifestIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid plugin manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "plugin `{plugin}`: cannot read component {path}: {source}; build it first (python3 scripts/build_plugins.py) or fix `component` in the manifest"
    )]
    ComponentIo {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "plugin `{plugin}`: {path} is not a valid WebAssembly component: {message}; build it for wasm32-wasip2 (or componentize it) against wit/"
    )]
    Compile { plugin: String, path: PathBuf, message: String },
    #[error(
        "plugin `{plugin}` ({path}) does not export `{export}`, which world `{world}` requires; make the plugin target world `{world}` or fix `world` in its manifest"
    )]
    MissingExport { plugin: String, path: PathBuf, world: String, export: String },
    #[error(
        "plugin `{plugin}` ({path}) was built against WIT tickhost:plugin@{plugin_version} but this host speaks tickhost:plugin@{host_version}: {why}; rebuild the plugin against wit/ of this release"
    )]
    WitVersion { plugin: String, path: PathBuf, plugin_version: String, host_version: String, why: String },
    #[error(
        "plugin `{plugin}` ({path}) imports `{import}`, which the host does not provide; a plugin may import only WASI and tickhost:plugin/{{log,history,predict}}"
    )]
    UnknownImport { plugin: String, path: PathBuf, import: String },
    #[error(
        "plugin `{plugin}` ({path}): export `{export}` does not match the contract: {message}; rebuild the plugin against wit/ of this release"
    )]
    Contract { plugin: String, path: PathBuf, export: String, message: String },
    #[error("plugin `{plugin}`: cannot link its imports: {message}")]
    Link { plugin: String, message: String },
    #[error("plugin `{plugin}`: instantiation failed: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin `{plugin}`: {call}() failed at load: {message}")]
    LoadCall { plugin: String, call: &'static str, message: String },
    #[error(
        "plugin `{plugin}`: {call}() did not return within {deadline_ms} ms at load (infinite loop?); fix the plugin or raise [limits] lifecycle_deadline_ms"
    )]
    LoadTimeout { plugin: String, call: &'static str, deadline_ms: u64 },
    #[error("plugin `{plugin}`: describe() is invalid: {message}")]
    Describe { plugin: String, message: String },
    #[error("plugin `{plugin}` in slot `{slot}`: {message}")]
    Slot { plugin: String, slot: String, message: String },
    #[error("plugin `{plugin}`: {message}")]
    Call { plugin: String, message: String },
    #[error("plugin index {path}: {message}; build the plugins first: python3 scripts/build_plugins.py")]
    Index { path: PathBuf, message: String },
    #[error(
        "plugin cache {path}: {message}; make the directory writable by this process, set another `cache_dir`, or run without a cache"
    )]
    Cache { path: PathBuf, message: String },
    #[error("slot `{slot}`: {message}")]
    Rollout { slot: String, message: String },
    #[error("no slot named `{slot}`; the engine has: {known}")]
    UnknownSlot { slot: String, known: String },
    #[error("cannot start the wasm engine: {0}")]
    Engine(String),
}
