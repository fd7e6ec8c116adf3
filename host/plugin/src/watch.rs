//! Deploys a plugin again when its files change on disk: a build that
//! writes `target/plugins/<name>/` (or an operator copying a new component
//! over the old one) reaches the running engine without an admin call.
//!
//! Partial writes are debounced: a changed plugin directory is only looked at
//! once nothing in it has changed for the debounce time and its files' sizes
//! are the same twice in a row. The swap itself goes through
//! [`PluginManager::deploy`], so a broken or half-copied candidate is refused
//! like any other and the running plugin stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::error::PluginError;
use crate::manager::PluginManager;
use crate::rollout::Mode;

/// Keeps the watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Total size of the files directly in `dir` (what a copy in progress changes).
fn sizes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

impl PluginWatcher {
    /// Watches `dir` (recursively) and redeploys, into the slots that run it,
    /// any plugin whose directory changed. `on_outcome` hears of each attempt.
    pub fn start(
        manager: Arc<PluginManager>,
        dir: &Path,
        debounce: Duration,
        on_outcome: impl Fn(&str, &Path, Result<String, String>) + Send + 'static,
    ) -> Result<PluginWatcher, PluginError> {
        let watch_error =
            |e: notify::Error| PluginError::Engine(format!("cannot watch {} for plugin changes: {e}", dir.display()));
        let (tx, rx) = channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && (event.kind.is_create() || event.kind.is_modify())
            {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        })
        .map_err(watch_error)?;
        watcher.watch(dir, RecursiveMode::Recursive).map_err(watch_error)?;
        std::thread::Builder::new()
            .name("plugin-watcher".into())
            .spawn(move || {
                // Plugin directory -> (last change, sizes at that time).
                let mut changed: BTreeMap<PathBuf, (Instant, u64)> = BTreeMap::new();
                loop {
                    match rx.recv_timeout(debounce / 2) {
                        Ok(path) => {
                            if let Some(dir) = path.parent().filter(|d| d.join("plugin.toml").is_file()) {
                                changed.insert(dir.to_path_buf(), (Instant::now(), sizes(dir)));
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let settled: Vec<PathBuf> = changed
                        .iter()
                        .filter(|(_, (at, _))| at.elapsed() >= debounce)
                        .map(|(d, _)| d.clone())
                        .collect();
                    for dir in settled {
                        let Some((_, size)) = changed.remove(&dir) else { continue };
                        if sizes(&dir) != size {
                            // Still being written: look again after another quiet spell.
                            changed.insert(dir.clone(), (Instant::now(), sizes(&dir)));
                            continue;
                        }
                        let manifest = dir.join("plugin.toml");
                        for slot in manager.slots_using(&manifest) {
                            let outcome = manager
                                .deploy(&slot, &manifest, Mode::Active)
                                .map(|t| format!("{} {} (pause {} µs)", t.action, t.active, t.pause_ns / 1000))
                                .map_err(|e| e.to_string());
                            match &outcome {
                                Ok(what) => tracing::info!(slot, manifest = %manifest.display(), "plugin changed on disk: {what}"),
                                Err(why) => tracing::warn!(slot, manifest = %manifest.display(), "plugin changed on disk but was refused: {why}"),
                            }
                            on_outcome(&slot, &manifest, outcome);
                        }
                    }
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the plugin watcher thread: {e}")))?;
        Ok(PluginWatcher { _watcher: watcher })
    }
}
