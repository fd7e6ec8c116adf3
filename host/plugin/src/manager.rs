//! The operator side of live rollout: compiles and validates candidates on
//! a compiler thread (never the engine thread: a Python guest takes seconds
//! to compile), then hands them to the slot, which swaps between two events.
//! A candidate that fails anywhere never reaches the slot; the error says
//! where and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::PluginError;
use crate::instance::PluginInstance;
use crate::metrics::SlotMetrics;
use crate::rollout::{Command, Mode, Reply, SlotControl, SlotStatus, Transition};
use crate::runtime::{LoadedPlugin, PluginRuntime};

/// How long a caller waits for the engine thread to reach the slot's next
/// event and apply a transition.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// A validated candidate, ready for a slot, and its inputs' frame indices.
type Prepared = (Box<PluginInstance>, Vec<usize>);

struct Job {
    slot: Arc<SlotControl>,
    manifest: PathBuf,
    reply: Sender<Result<Prepared, PluginError>>,
}

/// Every slot of a running engine, by name, and the compiler thread.
#[derive(Debug)]
pub struct PluginManager {
    runtime: PluginRuntime,
    slots: Mutex<BTreeMap<String, Arc<SlotControl>>>,
    jobs: Mutex<Sender<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("slot", &self.slot.name()).field("manifest", &self.manifest).finish()
    }
}

fn rollout_error(slot: &SlotControl, message: impl Into<String>) -> PluginError {
    PluginError::Rollout { slot: slot.name().to_string(), message: message.into() }
}

impl PluginManager {
    pub fn new(runtime: PluginRuntime) -> Result<Arc<PluginManager>, PluginError> {
        let (tx, rx) = channel::<Job>();
        let compiler_runtime = runtime.clone();
        std::thread::Builder::new()
            .name("plugin-compiler".into())
            .spawn(move || compile_loop(&compiler_runtime, rx))
            .map_err(|e| PluginError::Engine(format!("cannot start the plugin compiler thread: {e}")))?;
        Ok(Arc::new(PluginManager { runtime, slots: Mutex::new(BTreeMap::new()), jobs: Mutex::new(tx) }))
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Makes slots reachable by name.
    pub fn register(&self, controls: impl IntoIterator<Item = Arc<SlotControl>>) {
        if let Ok(mut slots) = self.slots.lock() {
            for c in controls {
                slots.insert(c.name().to_string(), c);
            }
        }
    }

    fn slot(&self, name: &str) -> Result<Arc<SlotControl>, PluginError> {
        let slots = self.slots.lock().map_err(|_| PluginError::Engine("slot registry poisoned".into()))?;
        slots.get(name).cloned().ok_or_else(|| PluginError::UnknownSlot {
            slot: name.to_string(),
            known: slots.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn list(&self) -> Vec<SlotStatus> {
        let slots: Vec<_> = self.slots.lock().map(|s| s.values().cloned().collect()).unwrap_or_default();
        slots.iter().map(|s| s.status()).collect()
    }

    pub fn status(&self, slot: &str) -> Result<SlotStatus, PluginError> {
        Ok(self.slot(slot)?.status())
    }

    /// Slots whose active plugin or candidate was loaded from `manifest`.
    pub fn slots_using(&self, manifest: &Path) -> Vec<String> {
        let wanted = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
        let slots: Vec<_> = self.slots.lock().map(|s| s.values().cloned().collect()).unwrap_or_default();
        slots
            .iter()
            .filter(|s| s.manifests().iter().any(|m| std::fs::canonicalize(m).unwrap_or_else(|_| m.clone()) == wanted))
            .map(|s| s.name().to_string())
            .collect()
    }

    /// Compiles and validates `manifest` for `slot` on the compiler thread,
    /// then places it (`mode`) at the slot's next event, handing the running
    /// plugin's state over. Blocks the caller (never the engine) until the
    /// engine applied it or the candidate was refused.
    pub fn deploy(&self, slot: &str, manifest: &Path, mode: Mode) -> Result<Transition, PluginError> {
        let control = self.slot(slot)?;
        if let Mode::Canary(p) = mode
            && p > 100
        {
            return Err(rollout_error(&control, format!("canary percentage {p} is over 100")));
        }
        let (tx, rx) = channel();
        let job = Job { slot: control.clone(), manifest: manifest.to_path_buf(), reply: tx };
        self.jobs
            .lock()
            .map_err(|_| PluginError::Engine("compiler queue poisoned".into()))?
            .send(job)
            .map_err(|_| PluginError::Engine("the plugin compiler thread has stopped".into()))?;
        let prepared = rx.recv().map_err(|_| PluginError::Engine("the plugin compiler thread has stopped".into()));
        let (instance, input_idx) = match prepared.and_then(|r| r) {
            Ok(p) => p,
            Err(e) => {
                control.rejected();
                tracing::warn!(slot, manifest = %manifest.display(), "candidate refused: {e}");
                return Err(e);
            }
        };
        Self::apply(&control, Command::Deploy { instance, input_idx, mode })
    }

    pub fn set_canary(&self, slot: &str, percent: u8) -> Result<Transition, PluginError> {
        let control = self.slot(slot)?;
        if percent > 100 {
            return Err(rollout_error(&control, format!("canary percentage {percent} is over 100")));
        }
        Self::apply(&control, Command::SetCanary(percent))
    }

    pub fn promote(&self, slot: &str) -> Result<Transition, PluginError> {
        Self::apply(&*self.slot(slot)?, Command::Promote)
    }

    pub fn rollback(&self, slot: &str) -> Result<Transition, PluginError> {
        Self::apply(&*self.slot(slot)?, Command::Rollback)
    }

    fn apply(control: &SlotControl, command: Command) -> Result<Transition, PluginError> {
        let rx: Receiver<Reply> = control.send(command);
        match rx.recv_timeout(APPLY_WAIT) {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(why)) => Err(rollout_error(control, why)),
            Err(_) => Err(rollout_error(
                control,
                format!(
                    "queued, not applied yet: the engine has not reached an event for this slot within {} s (is the feed running?); it applies at the next one",
                    APPLY_WAIT.as_secs()
                ),
            )),
        }
    }
}

fn compile_loop(runtime: &PluginRuntime, jobs: Receiver<Job>) {
    for job in jobs {
        let outcome = prepare(runtime, &job.slot, &job.manifest);
        let _ = job.reply.send(outcome);
    }
}

/// Compile, check the contract against the slot, smoke-replay the slot's
/// recent events on a throwaway instance, then a fresh instance to deploy.
fn prepare(runtime: &PluginRuntime, slot: &SlotControl, manifest: &Path) -> Result<Prepared, PluginError> {
    let plugin: LoadedPlugin = runtime.load(manifest)?;
    let desc = plugin.description();
    let refuse = |message: String| PluginError::Slot {
        plugin: plugin.name().to_string(),
        slot: slot.name().to_string(),
        message,
    };
    if plugin.world() != slot.world() {
        return Err(refuse(format!(
            "the slot takes a {} plugin, but the plugin targets {}",
            slot.world(),
            plugin.world()
        )));
    }
    let input_idx = slot.schema.resolve(plugin.name(), &desc.inputs).map_err(|e| refuse(e.to_string()))?;
    if let Some(cadence) = slot.cadence {
        if desc.outputs != slot.outputs {
            return Err(refuse(format!(
                "its outputs {:?} differ from the slot's {:?}; the feature frame's layout is fixed while the engine runs",
                desc.outputs, slot.outputs
            )));
        }
        if desc.cadence != cadence {
            return Err(refuse(format!("its cadence {:?} differs from the slot's {cadence:?}", desc.cadence)));
        }
    }
    let policy = &slot.policy;
    let make = |label: &str| -> Result<PluginInstance, PluginError> {
        let metrics = Arc::new(SlotMetrics::new(format!("{} {label}", slot.name()), plugin.name()));
        let inst = PluginInstance::new(plugin.clone(), metrics, policy.snapshot_every, policy.deadline_factor);
        match inst.live_error() {
            Some(message) => Err(PluginError::Instantiate { plugin: plugin.name().to_string(), message }),
            None => Ok(inst),
        }
    };
    let recent = slot.recent.lock().map(|r| r.clone()).unwrap_or_default();
    let mut smoke = make("smoke")?;
    let replayed = smoke
        .smoke(&input_idx, &recent, desc.outputs.len())
        .map_err(|e| refuse(format!("smoke replay of the slot's recent events failed at {e}")))?;
    crate::rollout::retire(smoke);
    tracing::info!(slot = %slot.name(), plugin = %plugin.name(), version = %desc.version, replayed, "candidate validated");
    Ok((Box::new(make("candidate")?), input_idx))
}
