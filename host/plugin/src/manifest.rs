//! `plugin.toml`: what a plugin is, which capabilities it is granted and its
//! limits. Runtime placement (which slot, rollout) lives in the engine config.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PluginError;

/// The world a plugin targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    FeatureExtension,
    RegimeStrategy,
    HmarlAgent,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::FeatureExtension => "feature-extension",
            World::RegimeStrategy => "regime-strategy",
            World::HmarlAgent => "hmarl-agent",
        }
    }

    /// The world's own exported interface (besides `lifecycle`).
    pub fn interface(self) -> &'static str {
        match self {
            World::FeatureExtension => "features",
            World::RegimeStrategy => "strategy",
            World::HmarlAgent => "agent",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Host imports granted to the plugin. Everything is denied by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    pub log: bool,
    pub history: bool,
    pub predict: bool,
}

/// Per-call limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Budget of one event call, in µs (epoch deadline).
    pub deadline_us: u64,
    /// Linear memory cap.
    pub memory_mib: u64,
    /// Fuel per call; 0 = off. Deterministic sandbox runs set it.
    pub fuel: u64,
    /// Budget of lifecycle calls (instantiation, describe, snapshot,
    /// restore), in ms. They run at load and on re-instantiation.
    pub lifecycle_deadline_ms: u64,
    /// `predict` calls allowed per event call (with the capability).
    pub predict_calls: u32,
    /// Values allowed in one `predict` call's inputs.
    pub predict_inputs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline_us: 500,
            memory_mib: 32,
            fuel: 0,
            lifecycle_deadline_ms: 100,
            predict_calls: 4,
            predict_inputs: 256,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: World,
    /// Path of the component, relative to the manifest.
    pub component: PathBuf,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
    /// Read by the build script only.
    #[serde(default, skip_serializing)]
    pub build: Option<toml::Table>,
}

impl Manifest {
    /// Reads and validates `plugin.toml`.
    pub fn from_file(path: &Path) -> Result<Manifest, PluginError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PluginError::ManifestIo { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, PluginError> {
        let err = |message: String| PluginError::Manifest { path: path.to_path_buf(), message };
        let manifest: Manifest = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        if manifest.name.is_empty() || !manifest.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(format!(
                "key `name` = {:?}: use a non-empty name of ASCII letters, digits, `-` and `_`",
                manifest.name
            )));
        }
        if manifest.version.is_empty() {
            return Err(err("key `version` is empty".into()));
        }
        if manifest.component.as_os_str().is_empty() {
            return Err(err("key `component` is empty: give the component's path relative to the manifest".into()));
        }
        let l = &manifest.limits;
        if l.deadline_us == 0 || l.deadline_us > 10_000_000 {
            return Err(err(format!("key `limits.deadline_us` = {}: use 1..=10000000 (µs per call)", l.deadline_us)));
        }
        if l.memory_mib == 0 || l.memory_mib > 4096 {
            return Err(err(format!("key `limits.memory_mib` = {}: use 1..=4096", l.memory_mib)));
        }
        if l.lifecycle_deadline_ms == 0 || l.lifecycle_deadline_ms > 600_000 {
            return Err(err(format!(
                "key `limits.lifecycle_deadline_ms` = {}: use 1..=600000",
                l.lifecycle_deadline_ms
            )));
        }
        if l.predict_calls > 1000 {
            return Err(err(format!(
                "key `limits.predict_calls` = {}: use 0..=1000 (calls per event)",
                l.predict_calls
            )));
        }
        if l.predict_inputs == 0 || l.predict_inputs > 65_536 {
            return Err(err(format!("key `limits.predict_inputs` = {}: use 1..=65536", l.predict_inputs)));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_manifest() {
        let text = r#"
name = "trend"
version = "0.1.0"
world = "regime-strategy"
component = "trend.wasm"
[capabilities]
log = true
[limits]
deadline_us = 500
memory_mib = 32
[build]
kind = "rust"
crate = "trend"
"#;
        let m = Manifest::parse(text, Path::new("x/plugin.toml")).expect("valid");
        assert_eq!(m.world, World::RegimeStrategy);
        assert!(m.capabilities.log && !m.capabilities.history && !m.capabilities.predict);
        assert_eq!(m.limits.fuel, 0);
        assert_eq!((m.limits.predict_calls, m.limits.predict_inputs), (4, 256), "defaults");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let text = "name = \"x\"\nversion = \"1\"\nworld = \"regime-strategy\"\ncomponent = \"x.wasm\"\n[limits]\ndeadline_ms = 3\n";
        let e = Manifest::parse(text, Path::new("dir/plugin.toml")).expect_err("unknown key").to_string();
        assert!(e.contains("dir/plugin.toml") && e.contains("deadline_ms"), "{e}");
        let text = "name = \"x\"\nversion = \"1\"\nworld = \"strategy\"\ncomponent = \"x.wasm\"\n";
        let e = Manifest::parse(text, Path::new("p.toml")).expect_err("bad world").to_string();
        assert!(e.contains("p.toml") && e.contains("world"), "{e}");
    }
}
