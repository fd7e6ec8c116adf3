//! The wasmtime engine, plugin loading and the host side of the contract.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::abi::{WCandle, WDescription, WLogLevel, WTrade};
use crate::cache::{CacheStats, ComponentCache};
use crate::error::PluginError;
use crate::instance::Live;
use crate::log::LogSink;
use crate::manifest::{Manifest, World};
use crate::predict::{ModelHost, PredictMeter};
use tickhost_core::history::HistoryWindow;

/// The WIT package version this host implements.
pub const HOST_WIT_VERSION: WitVersion = WitVersion { major: 0, minor: 1, patch: 0 };
const PACKAGE: &str = "tickhost:plugin";

/// A `major.minor.patch` version of the WIT package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WitVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl WitVersion {
    pub fn parse(s: &str) -> Option<WitVersion> {
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        let v = WitVersion { major: it.next()??, minor: it.next()??, patch: it.next()?? };
        if it.next().is_some() { None } else { Some(v) }
    }

    /// Why a plugin built against `self` cannot run on this host, if it cannot.
    pub fn incompatibility(self) -> Option<String> {
        let host = HOST_WIT_VERSION;
        if self.major != host.major {
            Some(format!("major version {} differs from the host's {}", self.major, host.major))
        } else if self.minor > host.minor {
            Some(format!(
                "minor version {}.{} is newer than the host's {}.{}; upgrade tickhost",
                self.major, self.minor, host.major, host.minor
            ))
        } else {
            None
        }
    }
}

/// Engine-wide options.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeOptions {
    /// How often the epoch ticker advances; deadlines are rounded up to it.
    pub epoch_tick: Duration,
    /// Where compiled components are cached (see [`crate::cache`]); `None`
    /// compiles every load. Created if missing.
    ///
    /// Entries are native code this process runs: anyone who can write this
    /// directory can run code as tickhost. Protect it like the binary itself
    /// (owned by the service user, not writable by others, never a shared
    /// directory such as `/tmp`).
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self { epoch_tick: Duration::from_micros(100), cache_dir: None }
    }
}

/// Advances the engines' epochs on a background thread; stops on drop.
#[derive(Debug)]
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub(crate) tick: Duration,
}

impl Ticker {
    fn start(engines: Vec<Engine>, tick: Duration) -> Result<Ticker, PluginError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    for e in &engines {
                        e.increment_epoch();
                    }
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(Ticker { stop, handle: Some(handle), tick })
    }

    /// Epoch ticks covering `d` (at least 1, plus one for the partial tick).
    pub(crate) fn ticks(&self, d: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        (d.as_nanos().div_ceil(tick) as u64).saturating_add(1)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One per process: the wasmtime engines and the epoch ticker.
#[derive(Debug, Clone)]
pub struct PluginRuntime {
    engine: Engine,
    /// Same settings plus fuel metering, for plugins with `limits.fuel > 0`
    /// (metering costs every call a few percent, so others don't pay it).
    fuel_engine: Engine,
    ticker: Arc<Ticker>,
    /// Shared by clones, so their loads add up in one [`CacheStats`].
    cache: Option<Arc<ComponentCache>>,
    /// What plugins granted `predict` reach; `None`: every call is an error.
    models: Option<Arc<dyn ModelHost>>,
    /// What plugins granted `history` read; `None`: empty lists.
    history: Option<Arc<HistoryWindow>>,
}

fn engine(fuel: bool) -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    config.concurrency_support(false);
    config.max_wasm_stack(512 * 1024);
    Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

/// Host state of one plugin instance.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) log: Arc<LogSink>,
    pub(crate) predict: Arc<PredictMeter>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Where an export lives in the component.
#[derive(Clone, Debug)]
pub(crate) struct Exports {
    pub(crate) describe: ComponentExportIndex,
    pub(crate) snapshot: ComponentExportIndex,
    pub(crate) restore: ComponentExportIndex,
    /// The world's functions, in the order of [`World`]'s interface:
    /// features: on-trade, on-candle; strategy: on-candle;
    /// agent: on-trade, on-candle, on-feedback.
    pub(crate) world: Vec<ComponentExportIndex>,
}

/// What `describe()` said, validated.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub cadence: Cadence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cadence {
    PerTrade,
    PerCandle,
}

pub(crate) struct LoadedInner {
    pub(crate) manifest: Manifest,
    pub(crate) manifest_path: PathBuf,
    pub(crate) component_path: PathBuf,
    pub(crate) wit_version: WitVersion,
    pub(crate) description: Description,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) exports: Exports,
    pub(crate) engine: Engine,
    pub(crate) ticker: Arc<Ticker>,
}

/// A compiled, validated plugin, ready to be instantiated in slots. Cheap to
/// clone; each slot gets its own instance (and state).
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    pub(crate) inner: Arc<LoadedInner>,
}

impl std::fmt::Debug for LoadedInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest_path)
            .field("component", &self.component_path)
            .field("wit_version", &self.wit_version)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState").finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.inner.manifest.name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    pub fn manifest_path(&self) -> &Path {
        &self.inner.manifest_path
    }

    pub fn component_path(&self) -> &Path {
        &self.inner.component_path
    }

    pub fn world(&self) -> World {
        self.inner.manifest.world
    }

    pub fn description(&self) -> &Description {
        &self.inner.description
    }

    /// The WIT package version the plugin was built against.
    pub fn wit_version(&self) -> WitVersion {
        self.inner.wit_version
    }

    /// A standalone instance (what a slot holds), for swaps, smoke tests and
    /// benches.
    pub fn instantiate(&self) -> Result<crate::instance::PluginInstance, PluginError> {
        let metrics = Arc::new(crate::metrics::SlotMetrics::new(self.name(), self.name()));
        let inst = crate::instance::PluginInstance::new(self.clone(), metrics, 0, 1.0);
        match inst.live_error() {
            Some(message) => Err(PluginError::Instantiate { plugin: self.name().to_string(), message }),
            None => Ok(inst),
        }
    }
}

fn split_interface(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(match rest.split_once('@') {
        Some((iface, ver)) => (iface, Some(ver)),
        None => (rest, None),
    })
}

impl PluginRuntime {
    pub fn new() -> Result<PluginRuntime, PluginError> {
        Self::with_options(RuntimeOptions::default())
    }

    pub fn with_options(options: RuntimeOptions) -> Result<PluginRuntime, PluginError> {
        // Open the cache first: a bad `cache_dir` is a configuration error
        // worth failing start-up for, before a thread is spawned.
        let cache = options.cache_dir.map(ComponentCache::open).transpose()?.map(Arc::new);
        let engine = engine(false)?;
        let fuel_engine = engine_with_fuel()?;
        let ticker = Arc::new(Ticker::start(vec![engine.clone(), fuel_engine.clone()], options.epoch_tick)?);
        Ok(PluginRuntime { engine, fuel_engine, ticker, cache, models: None, history: None })
    }

    /// Plugins granted `predict` loaded from now on run their models on
    /// `models` (plugins loaded before keep what they had).
    pub fn with_models(mut self, models: Arc<dyn ModelHost>) -> Self {
        self.models = Some(models);
        self
    }

    /// Plugins granted `history` loaded from now on read `window` (the
    /// engine's recent trades and candles, seeded from the store). A call
    /// returns at most `limit` items, and never more than the window holds
    /// (`[store.history]` sizes, at most [`tickhost_core::history::MAX_WINDOW`]).
    pub fn with_history(mut self, window: Arc<HistoryWindow>) -> Self {
        self.history = Some(window);
        self
    }

    /// Default options plus a compiled-component cache in `dir` (created if
    /// missing). The directory must be as trusted as the binary: see
    /// [`RuntimeOptions::cache_dir`].
    pub fn with_cache(dir: impl Into<PathBuf>) -> Result<PluginRuntime, PluginError> {
        Self::with_options(RuntimeOptions { cache_dir: Some(dir.into()), ..RuntimeOptions::default() })
    }

    /// What the compiled-component cache did so far (all zero without one).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(|c| c.stats()).unwrap_or_default()
    }

    /// Loads `plugin.toml` and its component: compiles it (or takes it from
    /// the cache, if the runtime has one), checks its WIT version and
    /// exports, links the granted capabilities, instantiates it once and
    /// validates `describe()`. Cache trouble is logged and counted, never an
    /// error of `load`.
    pub fn load(&self, manifest_path: &Path) -> Result<LoadedPlugin, PluginError> {
        let manifest = Manifest::from_file(manifest_path)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let component_path = dir.join(&manifest.component);
        let name = manifest.name.clone();
        let bytes = std::fs::read(&component_path).map_err(|source| PluginError::ComponentIo {
            plugin: name.clone(),
            path: component_path.clone(),
            source,
        })?;
        let fuel = manifest.limits.fuel > 0;
        let engine = if fuel { self.fuel_engine.clone() } else { self.engine.clone() };
        let compile = || {
            Component::new(&engine, &bytes).map_err(|e| PluginError::Compile {
                plugin: name.clone(),
                path: component_path.clone(),
                message: format!("{e:#}"),
            })
        };
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&engine, fuel, &bytes, compile)?,
            None => compile()?,
        };
        self.load_component(manifest, manifest_path, component_path, engine, component)
    }

    fn load_component(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        component_path: PathBuf,
        engine: Engine,
        component: Component,
    ) -> Result<LoadedPlugin, PluginError> {
        let name = manifest.name.clone();
        let world = manifest.world;
        let ty = component.component_type();

        // WIT version of every tickhost export and import.
        let mut wit_version: Option<WitVersion> = None;
        let mut check_version = |item: &str| -> Result<(), PluginError> {
            let Some((_, ver)) = split_interface(item) else { return Ok(()) };
            let version_error = |plugin_version: String, why: String| PluginError::WitVersion {
                plugin: name.clone(),
                path: component_path.clone(),
                plugin_version,
                host_version: HOST_WIT_VERSION.to_string(),
                why,
            };
            let Some(ver) = ver else {
                return Err(version_error("(unversioned)".into(), format!("`{item}` carries no version")));
            };
            let Some(v) = WitVersion::parse(ver) else {
                return Err(version_error(ver.to_string(), format!("`{item}` has an unparsable version")));
            };
            if let Some(why) = v.incompatibility() {
                return Err(version_error(v.to_string(), why));
            }
            wit_version = Some(wit_version.map_or(v, |w| w.max(v)));
            Ok(())
        };
        let export_names: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
        let import_names: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
        for n in export_names.iter().chain(&import_names) {
            check_version(n)?;
        }
        let find_export = |iface: &str| -> Result<String, PluginError> {
            export_names.iter().find(|n| split_interface(n).is_some_and(|(i, _)| i == iface)).cloned().ok_or_else(
                || PluginError::MissingExport {
                    plugin: name.clone(),
                    path: component_path.clone(),
                    world: world.name().to_string(),
                    export: format!("{PACKAGE}/{iface}@{HOST_WIT_VERSION}"),
                },
            )
        };
        let lifecycle = find_export("lifecycle")?;
        let own = find_export(world.interface())?;
        let func = |iface: &str, f: &str| -> Result<ComponentExportIndex, PluginError> {
            let missing = || PluginError::MissingExport {
                plugin: name.clone(),
                path: component_path.clone(),
                world: world.name().to_string(),
                export: format!("{iface}#{f}"),
            };
            let i = component.get_export_index(None, iface).ok_or_else(missing)?;
            component.get_export_index(Some(&i), f).ok_or_else(missing)
        };
        let world_funcs: &[&str] = match world {
            World::FeatureExtension => &["on-trade", "on-candle"],
            World::RegimeStrategy => &["on-candle"],
            World::HmarlAgent => &["on-trade", "on-candle", "on-feedback"],
        };
        let exports = Exports {
            describe: func(&lifecycle, "describe")?,
            snapshot: func(&lifecycle, "snapshot")?,
            restore: func(&lifecycle, "restore")?,
            world: world_funcs.iter().map(|f| func(&own, f)).collect::<Result<_, _>>()?,
        };

        // Imports: WASI deny-by-default, tickhost capabilities as granted.
        let link_err = |e: wasmtime::Error| PluginError::Link { plugin: name.clone(), message: format!("{e:#}") };
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_err)?;
        for import in &import_names {
            if import.starts_with("wasi:") {
                continue;
            }
            let Some((iface, _)) = split_interface(import) else {
                return Err(PluginError::UnknownImport {
                    plugin: name.clone(),
                    path: component_path.clone(),
                    import: import.clone(),
                });
            };
            let caps = manifest.capabilities;
            let mut inst = linker.instance(import).map_err(link_err)?;
            let denied = |cap: &'static str| {
                let msg = format!(
                    "capability `{cap}` not granted to plugin `{name}`; grant it in [capabilities] of its plugin.toml"
                );
                move || -> wasmtime::Error { wasmtime::Error::msg(msg.clone()) }
            };
            match iface {
                "types" => {}
                "log" if caps.log => inst
                    .func_wrap(
                        "log",
                        |store: wasmtime::StoreContextMut<'_, HostState>, (level, msg): (WLogLevel, String)| {
                            let level = match level {
                                WLogLevel::Trace => "trace",
                                WLogLevel::Debug => "debug",
                                WLogLevel::Info => "info",
                                WLogLevel::Warn => "warn",
                                WLogLevel::Error => "error",
                            };
                            store.data().log.line(level, &msg);
                            Ok(())
                        },
                    )
                    .map_err(link_err)?,
                "log" => {
                    let d = denied("log");
                    inst.func_wrap(
                        "log",
                        move |_: wasmtime::StoreContextMut<'_, HostState>,
                              (_, _): (WLogLevel, String)|
                              -> wasmtime::Result<()> { Err(d()) },
                    )
                    .map_err(link_err)?
                }
                "history" if caps.history => {
                    // The window is read on the calling (engine) thread; no
                    // I/O here: the store was read beforehand, off that thread.
                    let window = self.history.clone();
                    inst.func_wrap(
                        "recent-trades",
                        move |_: wasmtime::StoreContextMut<'_, HostState>, (limit,): (u32,)| {
                            let mut out = Vec::new();
                            if let Some(w) = &window {
                                out.reserve(w.trade_capacity().min(limit as usize));
                                w.recent_trades(limit as usize, |t| out.push(WTrade::from(t)));
                            }
                            Ok((out,))
                        },
                    )
                    .map_err(link_err)?;
                    let window = self.history.clone();
                    inst.func_wrap(
                        "recent-candles",
                        move |_: wasmtime::StoreContextMut<'_, HostState>, (limit,): (u32,)| {
                            let mut out = Vec::new();
                            if let Some(w) = &window {
                                out.reserve(w.candle_capacity().min(limit as usize));
                                w.recent_candles(limit as usize, |c| out.push(WCandle::from(c)));
                            }
                            Ok((out,))
                        },
                    )
                    .map_err(link_err)?;
                }
                "history" => {
                    let d = denied("history");
                    let d2 = denied("history");
                    inst.func_wrap(
                        "recent-trades",
                        move |_: wasmtime::StoreContextMut<'_, HostState>,
                              (_,): (u32,)|
                              -> wasmtime::Result<(Vec<WTrade>,)> { Err(d()) },
                    )
                    .map_err(link_err)?;
                    inst.func_wrap(
                        "recent-candles",
                        move |_: wasmtime::StoreContextMut<'_, HostState>,
                              (_,): (u32,)|
                              -> wasmtime::Result<(Vec<WCandle>,)> { Err(d2()) },
                    )
                    .map_err(link_err)?;
                }
                "predict" if caps.predict => {
                    let models = self.models.clone();
                    let limits = manifest.limits;
                    inst.func_wrap(
                        "predict",
                        move |store: wasmtime::StoreContextMut<'_, HostState>, (model, inputs): (String, Vec<f64>)| {
                            Ok((store.data().predict.call(models.as_deref(), &limits, &model, &inputs),))
                        },
                    )
                    .map_err(link_err)?
                }
                "predict" => {
                    let d = denied("predict");
                    inst.func_wrap(
                        "predict",
                        move |_: wasmtime::StoreContextMut<'_, HostState>,
                              (_, _): (String, Vec<f64>)|
                              -> wasmtime::Result<(Result<Vec<f64>, String>,)> { Err(d()) },
                    )
                    .map_err(link_err)?
                }
                _ => {
                    return Err(PluginError::UnknownImport {
                        plugin: name.clone(),
                        path: component_path.clone(),
                        import: import.clone(),
                    });
                }
            }
        }
        let pre = linker.instantiate_pre(&component).map_err(link_err)?;

        let mut inner = LoadedInner {
            manifest,
            manifest_path: manifest_path.to_path_buf(),
            component_path,
            wit_version: wit_version.unwrap_or(HOST_WIT_VERSION),
            description: Description {
                name: String::new(),
                version: String::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                cadence: Cadence::PerCandle,
            },
            pre,
            exports,
            engine,
            ticker: self.ticker.clone(),
        };
        let raw = Live::describe_at_load(&inner)?;
        inner.description = validate_description(&inner.manifest, raw)?;
        Ok(LoadedPlugin { inner: Arc::new(inner) })
    }
}

fn engine_with_fuel() -> Result<Engine, PluginError> {
    engine(true)
}

pub(crate) fn validate_description(manifest: &Manifest, d: WDescription) -> Result<Description, PluginError> {
    let err = |message: String| PluginError::Describe { plugin: manifest.name.clone(), message };
    if d.name.trim().is_empty() {
        return Err(err("`name` is empty".into()));
    }
    if let Some(i) = d.inputs.iter().position(|s| s.trim().is_empty()) {
        return Err(err(format!("input #{i} has an empty name")));
    }
    match manifest.world {
        World::FeatureExtension => {
            if d.outputs.is_empty() {
                return Err(err("a feature extension must name at least one output".into()));
            }
            if let Some(i) = d.outputs.iter().position(|s| s.trim().is_empty()) {
                return Err(err(format!("output #{i} has an empty name")));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = d.outputs.iter().find(|o| !seen.insert(o.as_str())) {
                return Err(err(format!("output {dup:?} is named twice")));
            }
        }
        World::RegimeStrategy | World::HmarlAgent => {
            if !d.outputs.is_empty() {
                return Err(err(format!(
                    "a {} plugin produces no features, but describe() names outputs {:?}",
                    manifest.world, d.outputs
                )));
            }
        }
    }
    Ok(Description {
        name: d.name,
        version: d.version,
        inputs: d.inputs,
        outputs: d.outputs,
        cadence: match d.cadence {
            crate::abi::WCadence::PerTrade => Cadence::PerTrade,
            crate::abi::WCadence::PerCandle => Cadence::PerCandle,
        },
    })
}
