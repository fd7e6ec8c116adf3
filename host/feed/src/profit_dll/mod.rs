//! ProfitDLL source: loads any library exporting the ProfitDLL ABI
//! (Nelogica's DLL on Windows, `libtickhost_profitdll_sim.so` on Linux),
//! logs in, subscribes, and turns its callbacks into trades and book updates.
//!
//! Threads:
//! - the DLL's own thread runs the callbacks ([`callbacks`]): copy, decode,
//!   push into a bounded SPSC ring ([`sink`]), return;
//! - the session thread ([`session`]) is the only one that calls into the
//!   DLL: initialise, subscribe, reconnect with back-off, backfill with
//!   `GetHistoryTrades`, send orders;
//! - the consumer ([`stream::DllStream`], on the engine thread) pops events,
//!   maintains the books and holds live trades back while a gap is backfilled,
//!   so the engine sees trades in exchange order.

pub mod abi;
pub mod book;
mod callbacks;
pub mod decode;
pub mod events;
mod library;
pub mod measure;
pub mod session;
pub mod sink;
pub mod stream;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Wall clock in ns modulo 2^50 (exact in an f64, wraps every ~13 days):
/// the simulator's latency probe writes it into a trade at the callback, a
/// benchmark reads it again when the engine gets the trade.
pub fn probe_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_nanos() % (1u128 << 50)) as u64
}

/// Latency from a probe stamp to now, ns (handles the wrap).
pub fn probe_elapsed_ns(stamp: f64) -> u64 {
    let m = 1u64 << 50;
    (probe_ns() + m - (stamp as u64 % m)) % m
}

/// Callbacks that arrived while no feed was installed (ignored).
pub fn late_callbacks() -> u64 {
    callbacks::LATE.load(std::sync::atomic::Ordering::Relaxed)
}

pub use events::{DailyBar, DllEvent, OfferUpdate, OrderStatus, OrderUpdate, TradeOrigin};
pub use library::{ProfitLibrary, SimulatorHandle, configure_simulator, missing_exports};
pub use session::{DllFeed, OrderRequest, OrderSender, SessionStatus};
pub use sink::{FeedCounters, SinkConfig};
pub use stream::{DllStream, StreamItem};

#[derive(Debug, Error)]
pub enum DllError {
    #[error(
        "cannot load the ProfitDLL library {path}: {reason}; check the path (and on Windows, that it is the 64-bit DLL)"
    )]
    Load { path: PathBuf, reason: String },
    #[error(
        "{path} does not export the ProfitDLL ABI: missing {missing}. Point --library at ProfitDLL or the simulator (libtickhost_profitdll_sim.so)"
    )]
    MissingExports { path: PathBuf, missing: String },
    #[error(
        "a ProfitDLL feed is already running in this process (the DLL's callbacks are process-wide): stop it first"
    )]
    AlreadyRunning,
    #[error("{call} returned {:#x} ({name})", *code as i32 as u32)]
    Call { call: &'static str, code: i64, name: &'static str },
    #[error("login refused: {0}")]
    Login(LoginFailure),
    #[error("no market-data connection within {0:?} (last state: {1})")]
    NotReady(Duration, String),
    #[error("invalid ProfitDLL configuration: {0}")]
    Config(String),
    #[error("cannot start the ProfitDLL session thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Why a login was refused (state callback type 0 or 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    InvalidLogin,
    BadPassword,
    Blocked,
    Expired,
    InvalidActivationKey,
    /// Login result 200, or another code: retried with back-off until the attempts run out.
    Internal(i32),
}

impl LoginFailure {
    /// The failure for a login-state result; `None` for success.
    pub fn from_login_result(result: i32) -> Option<Self> {
        Some(match result {
            abi::LOGIN_OK => return None,
            abi::LOGIN_INVALID => Self::InvalidLogin,
            abi::LOGIN_BAD_PASSWORD => Self::BadPassword,
            abi::LOGIN_BLOCKED => Self::Blocked,
            abi::LOGIN_EXPIRED => Self::Expired,
            other => Self::Internal(other),
        })
    }

    /// Worth trying again (a server-side error), unlike a wrong credential.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Internal(_))
    }
}

impl fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLogin => f.write_str("invalid user (login state 1): check PROFITDLL_USER"),
            Self::BadPassword => f.write_str("wrong password (login state 2): check PROFITDLL_PASSWORD"),
            Self::Blocked => f.write_str("account blocked (login state 3): contact the broker"),
            Self::Expired => f.write_str("account expired (login state 4): renew the ProfitDLL subscription"),
            Self::InvalidActivationKey => {
                f.write_str("activation key refused (activation state 1): check PROFITDLL_KEY")
            }
            Self::Internal(code) => write!(f, "server error (login state {code}); retried with back-off"),
        }
    }
}

/// Activation key, user and password. Never printed: `Debug` redacts them.
#[derive(Clone, Default)]
pub struct Credentials {
    pub key: String,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("Credentials")
            .field("key", &shown(&self.key))
            .field("user", &shown(&self.user))
            .field("password", &shown(&self.password))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginMode {
    /// `DLLInitializeMarketLogin`: market data only; orders are refused.
    Market,
    /// `DLLInitializeLogin`: market data and order routing.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeCallbackStyle {
    /// The trade callback of the initialisation call (with the edit flag).
    V1,
    /// `SetTradeCallbackV2` + `TranslateTrade` (TC_IS_EDIT / TC_LAST_PACKET).
    V2,
}

/// Reconnection and backfill timing.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectPolicy {
    /// How long the market-data link may stay down before the session is
    /// torn down and initialised again (the DLL reconnects by itself first).
    pub reinit_after: Duration,
    /// First back-off between attempts; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Re-initialisations before giving up (0 = never give up).
    pub max_attempts: u32,
    /// A backfill not finished (progress 1000) in this long is abandoned:
    /// held live trades are released and the gap is counted.
    pub backfill_timeout: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            reinit_after: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_attempts: 0,
            backfill_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DllConfig {
    pub library: PathBuf,
    pub credentials: Credentials,
    pub login: LoginMode,
    pub tickers: Vec<String>,
    /// `F` for futures (not `BMF`), `B` for stocks.
    pub exchange: String,
    pub trade_callback: TradeCallbackStyle,
    pub price_book: bool,
    pub offer_book: bool,
    pub utc_offset_minutes: i32,
    pub sink: SinkConfig,
    pub reconnect: ReconnectPolicy,
    /// Live trades held while a gap is backfilled, preallocated.
    pub hold_capacity: usize,
    /// The routing account orders go to (full login only).
    pub account: AccountConfig,
    /// Backfill from this event time at the first connection (a restarted
    /// ingest process fills the gap its predecessor left).
    pub backfill_from_ms: Option<i64>,
}

/// Broker and account for `SendOrder`; the routing password is the login password.
#[derive(Clone, Debug, Default)]
pub struct AccountConfig {
    pub broker_id: i32,
    pub account_id: String,
    pub sub_account_id: String,
}

impl Default for DllConfig {
    fn default() -> Self {
        Self {
            library: PathBuf::new(),
            credentials: Credentials::default(),
            login: LoginMode::Market,
            tickers: vec!["WDOFUT".into()],
            exchange: "F".into(),
            trade_callback: TradeCallbackStyle::V1,
            price_book: true,
            offer_book: false,
            utc_offset_minutes: tickhost_core::time::B3_UTC_OFFSET_MINUTES,
            sink: SinkConfig::default(),
            reconnect: ReconnectPolicy::default(),
            hold_capacity: 1 << 16,
            account: AccountConfig::default(),
            backfill_from_ms: None,
        }
    }
}

impl DllConfig {
    pub fn validate(&self) -> Result<(), DllError> {
        if self.tickers.is_empty() {
            return Err(DllError::Config("no tickers to subscribe (dll.tickers is empty)".into()));
        }
        for t in &self.tickers {
            if tickhost_core::Symbol::new(t).is_none() {
                return Err(DllError::Config(format!("ticker {t:?} is not a valid symbol")));
            }
        }
        if self.exchange.eq_ignore_ascii_case("BMF") {
            return Err(DllError::Config(
                "exchange \"BMF\" is refused by ProfitDLL (NL_INVALID_ARGS): futures use \"F\"".into(),
            ));
        }
        Ok(())
    }
}
