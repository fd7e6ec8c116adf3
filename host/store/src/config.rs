//! The `[store]` config section and opening the backend it names.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::valkey::redact_url;
use crate::{EmbeddedStore, Store, StoreError, ValkeyConfig, ValkeyStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In process, persisted to `embedded_path`: no server needed.
    Embedded,
    Valkey,
    Off,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `VALKEY_ENABLED`: false switches storage off whatever the backend.
    pub enabled: bool,
    pub backend: Backend,
    /// `redis://host:port` of a server, or of one cluster node.
    pub url: String,
    /// More cluster nodes (optional: one is enough to discover the rest).
    pub cluster_urls: Vec<String>,
    pub cluster: bool,
    pub tls: bool,
    /// PEM CA of the server's certificate ("": the system's roots).
    #[serde(default)]
    pub tls_ca_file: PathBuf,
    /// PEM client certificate and key, when the server checks clients ("": none).
    #[serde(default)]
    pub tls_cert_file: PathBuf,
    #[serde(default)]
    pub tls_key_file: PathBuf,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    pub maxlen: u64,
    pub historical_maxlen: u64,
    pub batch: usize,
    pub lane_capacity: usize,
    pub embedded_path: PathBuf,
    pub journal_dir: PathBuf,
    pub journal_max_mb: u64,
    pub retry_ms: u64,
    pub shutdown_grace_ms: u64,
    pub time_travel: TimeTravelConfig,
    #[serde(default)]
    pub history: HistoryConfig,
}

/// Plugins' `history` import: how much recent history the host keeps.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Trades kept (and at most returned by one `recent-trades` call).
    pub trades: usize,
    /// Closed candles kept (and at most returned by one `recent-candles` call).
    pub candles: usize,
    /// Fill the window at start with what the store holds from before the
    /// run's first trade (read off the engine thread).
    pub seed: bool,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { trades: 4096, candles: 1024, seed: true }
    }
}

/// The seeds' switches `TIME_TRAVEL_ENABLED` and `TIME_TRAVEL_PERCENTAGE`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeTravelConfig {
    pub enabled: bool,
    /// Share of candles (0..=1) that get the history features; the others
    /// get the neutral value, as the seeds' gradual rollout did. The choice
    /// is a hash of the candle time, so a replay is reproducible.
    pub percentage: f64,
    /// Previous sessions compared against.
    pub lookback_days: u32,
    /// Window of the volume profile and momentum, minutes.
    pub window_minutes: u32,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("enabled", &self.enabled)
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .field("cluster_urls", &self.cluster_urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &(!self.tls_key_file.as_os_str().is_empty()).then_some("<set>"))
            .field("maxlen", &self.maxlen)
            .field("embedded_path", &self.embedded_path)
            .field("journal_dir", &self.journal_dir)
            .field("time_travel", &self.time_travel)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    pub fn effective_backend(&self) -> Backend {
        if self.enabled { self.backend } else { Backend::Off }
    }

    /// The Valkey client settings, credentials from `VALKEY_USERNAME` /
    /// `VALKEY_PASSWORD`.
    pub fn valkey(&self) -> ValkeyConfig {
        let mut c = ValkeyConfig::new(self.url.clone());
        c.urls.extend(self.cluster_urls.iter().cloned());
        c.cluster = self.cluster;
        c.tls = self.tls;
        let path = |p: &PathBuf| (!p.as_os_str().is_empty()).then(|| p.clone());
        c.tls_ca_file = path(&self.tls_ca_file);
        c.tls_cert_file = path(&self.tls_cert_file);
        c.tls_key_file = path(&self.tls_key_file);
        c.connect_timeout = Duration::from_millis(self.connect_timeout_ms.max(1));
        c.response_timeout = Duration::from_millis(self.response_timeout_ms.max(1));
        c.with_env_credentials(|k| std::env::var(k).ok())
    }

    /// A second handle for readers (time travel) beside the writer's: a
    /// Valkey client of its own, or a read-only snapshot of the embedded file.
    pub fn open_reader(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        Ok(match self.effective_backend() {
            Backend::Off => None,
            Backend::Embedded if !self.embedded_path.exists() => None,
            Backend::Embedded => Some(Box::new(EmbeddedStore::open_snapshot(&self.embedded_path)?)),
            Backend::Valkey => Some(Box::new(ValkeyStore::new(self.valkey())?)),
        })
    }

    /// Opens the configured backend; `None` when storage is off. Valkey is
    /// not contacted here (the writer connects, and retries while it is down).
    pub fn open(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        Ok(match self.effective_backend() {
            Backend::Off => None,
            Backend::Embedded => Some(Box::new(EmbeddedStore::open(&self.embedded_path)?)),
            Backend::Valkey => Some(Box::new(ValkeyStore::new(self.valkey())?)),
        })
    }
}
