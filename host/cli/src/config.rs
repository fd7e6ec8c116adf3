//! Configuration: the embedded `config/default.toml`, an optional user file
//! merged over it, then environment overrides.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tickhost_core::engine::EngineConfig;
use tickhost_feed::profit_csv::BadRowPolicy;
use tickhost_ml::MlConfig;
use tickhost_plugin::{BreakerConfig, RolloutPolicy};

/// The defaults, compiled in so the binary runs with no file at hand.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Prefix of generic overrides: `TICKHOST__ENGINE__RISK__MAX_POSITION=2`.
const ENV_PREFIX: &str = "TICKHOST__";

/// The seed system's switches, kept with their meaning, mapped to config paths.
const SEED_SWITCHES: &[(&str, &[&str])] = &[
    ("LOG_LEVEL", &["log", "level"]),
    ("FALLBACK_ON_ERROR", &["plugins", "fallback_on_error"]),
    ("FORCE_FAST_MODE", &["plugins", "force_fast_mode"]),
    ("ENHANCED_ML_ENABLED", &["ml", "enabled"]),
    ("VALKEY_ENABLED", &["store", "enabled"]),
    ("TIME_TRAVEL_ENABLED", &["store", "time_travel", "enabled"]),
    ("TIME_TRAVEL_PERCENTAGE", &["store", "time_travel", "percentage"]),
    ("ZMQ_ENABLED", &["bus", "enabled"]),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub engine: EngineConfig,
    pub plugins: PluginsConfig,
    pub source: SourceConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    /// ONNX models (technology: where the runtime and the files are); the
    /// blend's weights are behaviour, in `[engine.consensus]`.
    pub ml: MlConfig,
    pub store: tickhost_store::StoreConfig,
    pub dll: crate::sources::dll::DllSection,
    /// ZeroMQ publishing (`[bus]`, ZMQ_ENABLED) and the zmq feed's SUB settings.
    pub bus: tickhost_bus::BusConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    Fail,
    Skip,
}

impl From<OnBadRow> for BadRowPolicy {
    fn from(value: OnBadRow) -> Self {
        match value {
            OnBadRow::Fail => BadRowPolicy::Fail,
            OnBadRow::Skip => BadRowPolicy::Skip,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    pub fallback_on_error: bool,
    pub force_fast_mode: bool,
    pub replay_deadline_factor: f64,
    pub cache_dir: PathBuf,
    pub features: Vec<PathBuf>,
    pub agents: Vec<AgentPlugin>,
    pub strategy: StrategyPlugins,
    pub breaker: BreakerConfig,
    pub rollout: RolloutPolicy,
}

/// An agent plugin and its weight in the coordinator's vote.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPlugin {
    pub manifest: PathBuf,
    pub weight: f64,
}

/// A regime-strategy manifest per regime; empty = the native strategy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyPlugins {
    pub trend_up: PathBuf,
    pub trend_down: PathBuf,
    pub range: PathBuf,
    pub undefined: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub on_bad_row: OnBadRow,
    pub ring_capacity: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
}

/// The admin HTTP API of `tickhost run` (live plugin rollout).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on. Loopback by default: the API can swap the
    /// engine's strategies, so exposing it is a deliberate choice.
    pub bind: String,
    /// Bearer token; `TICKHOST_ADMIN_TOKEN` wins over it. Both empty: a
    /// random one is made at start and printed once.
    pub token: String,
}

/// By hand so that `?config` in the logs never shows the token.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AdminConfig").field("bind", &self.bind).field("token", &token).finish()
    }
}

impl Config {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(file, std::env::vars())
    }

    pub fn load_with_env(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut table: toml::Table = DEFAULT_TOML.parse().context("the embedded default config does not parse")?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            let user: toml::Table =
                text.parse().with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            merge(&mut table, user);
        }
        for (key, value) in env {
            let path: Vec<String> = if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
                rest.split("__").map(str::to_ascii_lowercase).collect()
            } else if let Some((_, path)) = SEED_SWITCHES.iter().find(|(name, _)| *name == key) {
                path.iter().map(|s| s.to_string()).collect()
            } else {
                continue;
            };
            set_path(&mut table, &path, parse_env_value(&value)).with_context(|| format!("environment {key}"))?;
        }
        let origin = file.map_or_else(|| "the defaults".to_string(), |p| p.display().to_string());
        toml::Value::Table(table)
            .try_into::<Config>()
            .with_context(|| format!("invalid configuration (from {origin} and TICKHOST__* variables)"))
    }
}

/// An env value is TOML if it parses as one (`5`, `true`, `0.3`), else a string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else { bail!("empty configuration path") };
    let mut node = table;
    for (depth, seg) in parents.iter().enumerate() {
        let entry = node.entry(seg.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("{} is a value, not a section", path[..=depth].join(".")),
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(c.engine.risk.max_trades_per_day, 10);
        assert_eq!(c.source.on_bad_row, OnBadRow::Fail);
        assert_eq!(c.admin.bind, "127.0.0.1:7070");
        assert_eq!(c.admin.token, "");
    }

    #[test]
    fn the_admin_token_never_shows_in_debug_output() {
        let c = Config::load_with_env(None, env(&[("TICKHOST__ADMIN__TOKEN", "s3cr3t-t0ken")])).expect("token");
        assert_eq!(c.admin.token, "s3cr3t-t0ken");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-t0ken") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn environment_overrides_nested_values_and_seed_switches() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("TICKHOST__ENGINE__RISK__MAX_TRADES_PER_DAY", "3"),
                ("TICKHOST__SOURCE__ON_BAD_ROW", "skip"),
                ("TICKHOST__ENGINE__STRATEGY__TREND__THRESHOLDS__DIRECTION", "0.9"),
                ("LOG_LEVEL", "debug"),
                ("FORCE_FAST_MODE", "true"),
                ("ENHANCED_ML_ENABLED", "false"),
                ("TICKHOST__ENGINE__CONSENSUS__ML_WEIGHT", "0.5"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("overrides");
        assert_eq!(c.engine.risk.max_trades_per_day, 3);
        assert_eq!(c.source.on_bad_row, OnBadRow::Skip);
        assert_eq!(c.engine.strategy.trend.thresholds.direction, 0.9);
        assert_eq!(c.log.level, "debug");
        assert!(c.plugins.force_fast_mode);
        assert!(!c.ml.enabled, "ENHANCED_ML_ENABLED=false turns the models off");
        assert_eq!(c.engine.consensus.ml_weight, 0.5);
    }

    #[test]
    fn ml_is_on_by_default_with_a_model_per_trading_regime_and_the_seed_weights() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults");
        assert!(c.ml.enabled);
        assert_eq!((c.engine.consensus.ml_weight, c.engine.consensus.agents_weight), (0.4, 0.6));
        c.ml.validate().expect("valid [ml]");
        let names: Vec<&str> = c.ml.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["trend_up", "trend_down", "range"]);
        assert!(c.ml.models.iter().all(|m| m.inputs.len() == 20 && m.path.starts_with("examples/models")));
    }

    #[test]
    fn seed_switches_turn_storage_and_time_travel_on_and_off() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(c.store.effective_backend(), tickhost_store::Backend::Embedded);
        let c = Config::load_with_env(
            None,
            env(&[("VALKEY_ENABLED", "false"), ("TIME_TRAVEL_ENABLED", "true"), ("TIME_TRAVEL_PERCENTAGE", "0.5")]),
        )
        .expect("switches");
        assert_eq!(c.store.effective_backend(), tickhost_store::Backend::Off);
        assert!(c.store.time_travel.enabled);
        assert_eq!(c.store.time_travel.percentage, 0.5);
    }

    #[test]
    fn a_password_in_the_store_url_never_shows_in_debug_output() {
        let c = Config::load_with_env(None, env(&[("TICKHOST__STORE__URL", "redis://app:pa55w0rd@127.0.0.1:6379")]))
            .expect("url");
        let shown = format!("{c:?}");
        assert!(!shown.contains("pa55w0rd") && shown.contains("app:<redacted>@"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = Config::load_with_env(None, env(&[("TICKHOST__ENGINE__RISK__MAX_TRADE_PER_DAY", "3")]))
            .expect_err("typo must be refused");
        assert!(format!("{err:#}").contains("max_trade_per_day"), "{err:#}");
    }

    #[test]
    fn a_user_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[engine.risk]\nmax_position = 2\n").expect("write");
        let c = Config::load_with_env(Some(&path), env(&[])).expect("file");
        assert_eq!(c.engine.risk.max_position, 2);
        assert_eq!(c.engine.risk.max_trades_per_day, 10);
    }
}
