//! Where the built plugins are. `scripts/build_plugins.py` writes
//! `target/plugins/index.txt`, one `<name>\t<absolute manifest path>` line per
//! plugin; tests, benches and `tickhost bench` find plugins through it rather
//! than through hard-coded paths.

use std::path::{Path, PathBuf};

use crate::error::PluginError;

/// The index of a build output directory.
#[derive(Debug, Clone)]
pub struct PluginIndex {
    path: PathBuf,
    entries: Vec<(String, PathBuf)>,
}

impl PluginIndex {
    /// The build output of this checkout: `<repo>/target/plugins`.
    pub fn checkout_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins")
    }

    /// Reads `<dir>/index.txt`.
    pub fn open(dir: &Path) -> Result<PluginIndex, PluginError> {
        let path = dir.join("index.txt");
        let text = std::fs::read_to_string(&path).map_err(|source| PluginError::Index {
            path: path.clone(),
            message: format!("cannot read it: {source}"),
        })?;
        let entries = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(name, manifest)| (name.to_string(), PathBuf::from(manifest)))
            .collect();
        Ok(PluginIndex { path, entries })
    }

    /// The index of this checkout's build output.
    pub fn checkout() -> Result<PluginIndex, PluginError> {
        Self::open(&Self::checkout_dir())
    }

    /// The manifest of the plugin called `name`.
    pub fn manifest(&self, name: &str) -> Result<PathBuf, PluginError> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone()).ok_or_else(|| PluginError::Index {
            path: self.path.clone(),
            message: format!("no plugin named `{name}` in it (built: {})", self.names().join(", ")),
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }
}
