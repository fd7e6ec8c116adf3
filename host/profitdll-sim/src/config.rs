//! The simulator's settings: `key=value` pairs separated by `;` or `,`-free
//! semicolons, from the `PROFITDLL_SIM` environment variable or the
//! `SimConfigure` export (tests), read at each initialisation.

use std::path::PathBuf;

/// Every setting, with its default.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Market milliseconds per wall millisecond; 0 = as fast as the host takes them.
    pub speed: f64,
    pub seed: u64,
    /// Trading date of the synthetic session, `YYYY-MM-DD`.
    pub date: (i32, u32, u32),
    /// Trades of a synthetic session.
    pub trades: u32,
    /// Replay this Profit CSV instead of synthesising.
    pub csv: Option<PathBuf>,
    /// Login state result to report (0 ok, 1 invalid, 2 bad password, 3 blocked, 4 expired, 200 internal).
    pub login: i32,
    /// Report `login` for the first N initialisations only, then 0 (a transient failure).
    pub login_fail_times: u32,
    /// Activation state result (0 valid, 1 invalid).
    pub activation: i32,
    /// Code returned by the initialisation call itself (0 = NL_OK).
    pub init_error: i32,
    /// The first N `SubscribeTicker` calls return NL_INTERNAL_ERROR.
    pub subscribe_errors: u32,
    /// `GetHistoryTrades` returns NL_INTERNAL_ERROR.
    pub history_error: bool,
    /// Disconnect market data after this many live trades (0 = never); the
    /// link comes back by itself after `outage` more trades were made.
    pub disconnect_at: u64,
    pub outage: u64,
    /// Disconnect after this many live trades and stay down until the host
    /// finalises and initialises again.
    pub drop_at: u64,
    /// Every N-th trade callback carries a malformed string (0 = never).
    pub malformed_every: u64,
    /// `abort()` after this many live trades (0 = never).
    pub crash_at: u64,
    /// With `crash_at`: crash only if this file does not exist, and create it
    /// first (a restarted process then runs on).
    pub crash_once: Option<PathBuf>,
    /// A price-book update every N trades (0 = none).
    pub book_every: u64,
    /// A daily bar every N trades (0 = none).
    pub daily_every: u64,
    /// Orders are rejected instead of filled.
    pub reject_orders: bool,
    /// Latency probe: each live trade's volume is the wall clock at the
    /// callback, in ns modulo 2^50 (exact in an f64), for benchmarks.
    pub probe: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            speed: 60.0,
            seed: 7,
            date: (2024, 1, 8),
            trades: 20_000,
            csv: None,
            login: 0,
            login_fail_times: u32::MAX,
            activation: 0,
            init_error: 0,
            subscribe_errors: 0,
            history_error: false,
            disconnect_at: 0,
            outage: 200,
            drop_at: 0,
            malformed_every: 0,
            crash_at: 0,
            crash_once: None,
            book_every: 4,
            daily_every: 1000,
            reject_orders: false,
            probe: false,
        }
    }
}

impl SimConfig {
    /// Parses `key=value;key=value`. Unknown keys and bad values are errors
    /// naming the key, so a typo in a fault never silently tests nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut c = Self::default();
        for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) =
                pair.split_once('=').ok_or_else(|| format!("PROFITDLL_SIM: {pair:?} is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            let bad = || format!("PROFITDLL_SIM: {key} = {value:?} is not a valid value");
            fn num<T: std::str::FromStr>(v: &str, bad: impl Fn() -> String) -> Result<T, String> {
                v.parse().map_err(|_| bad())
            }
            match key {
                "speed" => c.speed = num(value, bad)?,
                "seed" => c.seed = num(value, bad)?,
                "date" => {
                    let mut it = value.split('-');
                    let (y, m, d) = (it.next(), it.next(), it.next());
                    c.date = (num(y.unwrap_or(""), bad)?, num(m.unwrap_or(""), bad)?, num(d.unwrap_or(""), bad)?);
                }
                "trades" => c.trades = num(value, bad)?,
                "csv" => c.csv = Some(PathBuf::from(value)),
                "login" => c.login = num(value, bad)?,
                "login_fail_times" => c.login_fail_times = num(value, bad)?,
                "activation" => c.activation = num(value, bad)?,
                "init_error" => c.init_error = num(value, bad)?,
                "subscribe_errors" => c.subscribe_errors = num(value, bad)?,
                "history_error" => c.history_error = num::<u8>(value, bad)? != 0,
                "disconnect_at" => c.disconnect_at = num(value, bad)?,
                "outage" => c.outage = num(value, bad)?,
                "drop_at" => c.drop_at = num(value, bad)?,
                "malformed_every" => c.malformed_every = num(value, bad)?,
                "crash_at" => c.crash_at = num(value, bad)?,
                "crash_once" => c.crash_once = Some(PathBuf::from(value)),
                "book_every" => c.book_every = num(value, bad)?,
                "daily_every" => c.daily_every = num(value, bad)?,
                "reject_orders" => c.reject_orders = num::<u8>(value, bad)? != 0,
                "probe" => c.probe = num::<u8>(value, bad)? != 0,
                other => return Err(format!("PROFITDLL_SIM: unknown setting {other:?}")),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_and_names_unknown_ones() {
        let c = SimConfig::parse("speed=0; trades=1000;disconnect_at=50;date=2024-02-01").expect("parse");
        assert_eq!((c.speed, c.trades, c.disconnect_at, c.date), (0.0, 1000, 50, (2024, 2, 1)));
        assert!(SimConfig::parse("sped=0").expect_err("typo").contains("sped"));
        assert!(SimConfig::parse("trades=x").expect_err("bad").contains("trades"));
        assert_eq!(SimConfig::parse("").expect("empty"), SimConfig::default());
    }
}
