//! `tickhost query` (time travel over the stored streams) and `tickhost
//! store` (health, cleanup).

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use tickhost_core::time::LocalTime;
use tickhost_store::keys::{self, TickStream};
use tickhost_store::query::time_travel;
use tickhost_store::{Backend, Store, StreamId};

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    /// ticks:<SYM>:realtime (what `tickhost run` writes)
    Realtime,
    /// ticks:<SYM>:historical (what replay and backtest write)
    Historical,
    Candles,
    Features,
    Signals,
    Fills,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[arg(long)]
    pub symbol: String,
    /// Start: epoch milliseconds, or `YYYY-MM-DD[ T]HH:MM[:SS[.mmm]]` (local
    /// time of engine.utc_offset_minutes; a trailing `Z` means UTC).
    #[arg(long)]
    pub from: String,
    /// End, the same way. The range is XRANGE `<from>-0` .. `<to>-0`, as the seeds' time_travel_query.
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum, default_value = "historical")]
    pub stream: StreamArg,
    /// Entries per XRANGE round trip (COUNT).
    #[arg(long, default_value_t = 10_000)]
    pub page: usize,
    /// Print only the count and the time taken.
    #[arg(long)]
    pub count: bool,
}

#[derive(Args, Debug)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Backend, nodes, memory used and key count, as JSON.
    Health,
    /// Trims the market streams to the last N days and deletes keys matching a pattern.
    Cleanup {
        /// Keep this many days of entries in ticks/candles/features/signals/fills streams.
        #[arg(long, default_value_t = 30)]
        keep_days: u64,
        /// Also delete every key matching this glob (e.g. 'hmarl:flow_state:*'), except the permanent hmarl:pattern:* keys.
        #[arg(long)]
        delete: Option<String>,
        /// Show what would go, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn open(config: &Config) -> Result<Box<dyn Store>> {
    let sc = &config.store;
    if sc.effective_backend() == Backend::Off {
        bail!("storage is off (store.enabled = false / VALKEY_ENABLED=false, or store.backend = \"off\")");
    }
    let mut store = sc.open().context("cannot open the store")?.ok_or_else(|| anyhow!("storage is off"))?;
    store.ping().with_context(|| format!("the {} store does not answer", store.backend()))?;
    Ok(store)
}

/// Epoch ms from `1704715200000`, `2024-01-08 09:00`, `2024-01-08T12:00:00.5Z`.
pub fn parse_instant(s: &str, utc_offset_minutes: i32) -> Result<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || anyhow!("{s:?} is not a time: use epoch milliseconds or YYYY-MM-DD HH:MM[:SS[.mmm]][Z]");
    let (s, offset) = match s.strip_suffix('Z') {
        Some(rest) => (rest, 0),
        None => (s, utc_offset_minutes),
    };
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00"));
    let mut d = date.split('-');
    let (year, month, day) = (d.next(), d.next(), d.next());
    let mut t = time.split(':');
    let (hour, minute, sec) = (t.next(), t.next(), t.next().unwrap_or("0"));
    let (sec, milli) = sec.split_once('.').unwrap_or((sec, "0"));
    let milli = format!("{milli:0<3}");
    let lt = LocalTime {
        year: year.and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        month: month.and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        day: day.and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        hour: hour.and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        minute: minute.and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        second: sec.parse().map_err(|_| bad())?,
        millisecond: milli[..3].parse().map_err(|_| bad())?,
    };
    lt.to_epoch_ms(offset).ok_or_else(bad)
}

pub fn query(args: QueryArgs, config: Config) -> Result<()> {
    let offset = config.engine.utc_offset_minutes;
    let from = parse_instant(&args.from, offset).context("--from")?;
    let to = parse_instant(&args.to, offset).context("--to")?;
    if to < from {
        bail!("--to ({}) is before --from ({})", args.to, args.from);
    }
    let sym = args.symbol.as_str();
    let key = match args.stream {
        StreamArg::Realtime => keys::ticks(sym, TickStream::Realtime),
        StreamArg::Historical => keys::ticks(sym, TickStream::Historical),
        StreamArg::Candles => keys::candles(sym),
        StreamArg::Features => keys::features(sym),
        StreamArg::Signals => keys::signals(sym),
        StreamArg::Fills => keys::fills(sym),
    };
    let mut store = open(&config)?;
    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_err = None;
    let n = time_travel(store.as_mut(), &key, from.max(0) as u64, to.max(0) as u64, args.page, |e| {
        if args.count || write_err.is_some() {
            return;
        }
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), e.id.to_string().into());
        for (k, v) in &e.fields {
            obj.insert(k.clone(), v.clone().into());
        }
        if let Err(err) = writeln!(out, "{}", serde_json::Value::Object(obj)) {
            write_err = Some(err);
        }
    })
    .with_context(|| format!("XRANGE {key} {}-0 {}-0", from, to))?;
    out.flush().ok();
    if let Some(e) = write_err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("cannot write to stdout");
    }
    let elapsed = started.elapsed();
    if args.count {
        println!("{n}");
    }
    eprintln!(
        "{n} entries of {key} between {} and {} in {:.1} ms ({})",
        StreamId::new(from.max(0) as u64, 0),
        StreamId::new(to.max(0) as u64, 0),
        elapsed.as_secs_f64() * 1e3,
        store.backend()
    );
    Ok(())
}

pub fn store(args: StoreArgs, config: Config) -> Result<()> {
    let mut store = open(&config)?;
    match args.command {
        StoreCommand::Health => {
            let h = store.health().context("health check")?;
            println!("{}", serde_json::to_string_pretty(&h)?);
        }
        StoreCommand::Cleanup { keep_days, delete, dry_run } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let min = StreamId::new(now.saturating_sub(keep_days * 86_400_000), 0);
            let mut trimmed = 0;
            for pattern in ["ticks:*", "candles:*", "features:*", "signals:*", "fills:*"] {
                for key in store.keys(pattern)? {
                    if dry_run {
                        let old = store.range(&key, StreamId::MIN, min, usize::MAX / 2)?.len();
                        println!("{key}: {old} entries before {min}");
                    } else {
                        let n = store.trim_before(&key, min)?;
                        trimmed += n;
                        println!("{key}: trimmed {n} entries before {min}");
                    }
                }
            }
            let mut deleted = 0;
            if let Some(pattern) = delete {
                // Patterns are permanent (domain.md): never cleaned up.
                let (permanent, keys): (Vec<String>, Vec<String>) =
                    store.keys(&pattern)?.into_iter().partition(|k| k.starts_with("hmarl:pattern:"));
                if !permanent.is_empty() {
                    println!("kept {} hmarl:pattern:* keys: patterns are permanent", permanent.len());
                }
                if dry_run {
                    for k in &keys {
                        println!("would delete {k}");
                    }
                } else {
                    deleted = store.delete(&keys)?;
                }
            }
            if !dry_run {
                println!("cleanup: {trimmed} stream entries trimmed, {deleted} keys deleted");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_as_ms_local_or_utc() {
        assert_eq!(parse_instant("1704715200000", -180).expect("ms"), 1_704_715_200_000);
        assert_eq!(parse_instant("2024-01-08T12:00:00Z", -180).expect("utc"), 1_704_715_200_000);
        assert_eq!(parse_instant("2024-01-08 09:00", -180).expect("local"), 1_704_715_200_000);
        assert_eq!(parse_instant("2024-01-08 09:00:00.5", -180).expect("ms"), 1_704_715_200_500);
        assert!(parse_instant("yesterday", -180).is_err());
    }
}
