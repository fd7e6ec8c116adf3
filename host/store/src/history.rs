//! Seeds plugins' recent-history window ([`HistoryWindow`]) from the store:
//! a thread waits for the run's first trade, reads the trades and candles
//! strictly older than it (XREVRANGE with that bound, so a store holding a
//! later run of the same day leaks nothing from the future), and hands them
//! over. The engine thread merges them at its next event and never waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tickhost_core::history::{HistoryWindow, Seed};
use tickhost_core::market::{AgentId, Candle, Price, Symbol, Trade, TradeType};

use crate::keys::{self, TickStream};
use crate::{Entry, Store, StoreError, StreamId};

/// The seeding thread; stopped (if still waiting) on drop.
#[derive(Debug)]
pub struct HistorySeeder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for HistorySeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A trade as the writer stored it in `ticks:{SYM}:*`.
pub fn trade_from_entry(e: &Entry) -> Option<Trade> {
    let f = |name: &str| e.field(name);
    Some(Trade {
        symbol: Symbol::new(f("symbol")?)?,
        ts_ms: f("timestamp_ms")?.parse().ok()?,
        trade_number: f("trade_id")?.parse().ok()?,
        price: Price::from_f64(f("price")?.parse().ok()?)?,
        quantity: f("quantity")?.parse().ok()?,
        volume: f("volume")?.parse().ok()?,
        buy_agent: AgentId(f("buyer")?.parse().ok()?),
        sell_agent: AgentId(f("seller")?.parse().ok()?),
        trade_type: TradeType::from_code(f("trade_type")?.parse().ok()?)?,
        is_edit: f("is_edit")? == "true",
    })
}

/// A candle as the writer stored it in `candles:{SYM}` (its serde fields,
/// values as strings, plus the regime fields, which are ignored here).
pub fn candle_from_entry(e: &Entry) -> Option<Candle> {
    let map: serde_json::Map<String, serde_json::Value> = e
        .fields
        .iter()
        .map(|(k, v)| {
            let value = if k == "symbol" {
                serde_json::Value::String(v.clone())
            } else {
                serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()))
            };
            (k.clone(), value)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(map)).ok()
}

/// Reads what came before `first_ms` for `symbol`: up to the window's sizes,
/// oldest first. Entries that do not parse are skipped (and logged).
pub fn read_seed(
    store: &mut dyn Store,
    symbol: &str,
    stream: TickStream,
    first_ms: i64,
    trades: usize,
    candles: usize,
) -> Result<Seed, StoreError> {
    let Some(before) = first_ms.checked_sub(1).filter(|ms| *ms >= 0) else { return Ok(Seed::default()) };
    let until = StreamId::new(before as u64, u64::MAX);
    let mut seed = Seed::default();
    let mut bad = 0usize;
    if trades > 0 {
        // Exchange corrections are stored again with is_edit; the live window
        // holds trades as first admitted, so the seed skips them too.
        // The run's own kind of stream first; a live session started by a
        // command that replays (or the reverse) still finds the other one.
        let other = match stream {
            TickStream::Realtime => TickStream::Historical,
            TickStream::Historical => TickStream::Realtime,
        };
        let mut entries = store.recent_until(&keys::ticks(symbol, stream), until, trades)?;
        if entries.is_empty() {
            entries = store.recent_until(&keys::ticks(symbol, other), until, trades)?;
        }
        for e in entries {
            match trade_from_entry(&e) {
                Some(t) if !t.is_edit && t.ts_ms < first_ms => seed.trades.push(t),
                Some(_) => {}
                None => bad += 1,
            }
        }
    }
    if candles > 0 {
        for e in store.recent_until(&keys::candles(symbol), until, candles)? {
            match candle_from_entry(&e) {
                // A bar that opened before the run but closed inside it is
                // the run's own (or a later run's): not history.
                Some(c) if c.close_ms < first_ms => seed.candles.push(c),
                Some(_) => {}
                None => bad += 1,
            }
        }
    }
    if bad > 0 {
        tracing::warn!(symbol, bad, "history seed: entries that are not trades or candles were skipped");
    }
    seed.trades.reverse();
    seed.candles.reverse();
    Ok(seed)
}

/// Starts the seeder for `window`. `symbol`: the engine's configured symbol
/// (`None`: the first trade's). Without a store the window is told at once
/// that no seed comes.
pub fn spawn_seeder(
    window: Arc<HistoryWindow>,
    store: Option<Box<dyn Store>>,
    stream: TickStream,
    symbol: Option<Symbol>,
) -> std::io::Result<HistorySeeder> {
    let stop = Arc::new(AtomicBool::new(false));
    let Some(mut store) = store else {
        window.offer_seed(None);
        return Ok(HistorySeeder { stop, handle: None });
    };
    let flag = Arc::clone(&stop);
    let handle = thread::Builder::new().name("history-seed".into()).spawn(move || {
        let (first_symbol, first_ms) = loop {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            if let Some(first) = window.first_trade() {
                break first;
            }
            thread::sleep(Duration::from_millis(2));
        };
        let symbol = symbol.unwrap_or(first_symbol);
        let seed = read_seed(
            store.as_mut(),
            symbol.as_str(),
            stream,
            first_ms,
            window.trade_capacity(),
            window.candle_capacity(),
        );
        match seed {
            Ok(seed) => {
                tracing::debug!(
                    symbol = symbol.as_str(),
                    trades = seed.trades.len(),
                    candles = seed.candles.len(),
                    "history seed read"
                );
                window.offer_seed(Some(seed));
            }
            Err(e) => {
                tracing::warn!(error = %e, "history seed: the store did not answer; plugins see this run's history only");
                window.offer_seed(None);
            }
        }
    })?;
    Ok(HistorySeeder { stop, handle: Some(handle) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedStore;
    use crate::Op;

    fn tick(ts: i64, n: u64, edit: bool) -> Op {
        let f = |k: &str, v: String| (k.to_string(), v);
        Op::XAdd {
            key: keys::ticks("WDOFUT", TickStream::Realtime),
            id: StreamId::new(ts as u64, n),
            maxlen: 0,
            fields: vec![
                f("symbol", "WDOFUT".into()),
                f("timestamp_ms", ts.to_string()),
                f("trade_id", n.to_string()),
                f("price", "5000.5".into()),
                f("volume", "50005".into()),
                f("quantity", "1".into()),
                f("buyer", "3".into()),
                f("seller", "4".into()),
                f("trade_type", "2".into()),
                f("is_edit", edit.to_string()),
            ],
        }
    }

    #[test]
    fn the_seed_is_what_precedes_the_first_trade_oldest_first_from_either_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = EmbeddedStore::open(&dir.path().join("s.jsonl")).expect("open");
        store
            .apply(&[tick(1000, 1, false), tick(2000, 2, false), tick(2500, 3, true), tick(3000, 4, false)])
            .expect("apply");
        // Only realtime holds ticks: a replay's seed falls back to it.
        let seed = read_seed(&mut store, "WDOFUT", TickStream::Historical, 3000, 10, 10).expect("seed");
        let numbers: Vec<u64> = seed.trades.iter().map(|t| t.trade_number).collect();
        assert_eq!(numbers, [1, 2], "before the first trade, oldest first, corrections skipped");
        assert_eq!(seed.trades[0].price.as_f64(), 5000.5);
        let seed = read_seed(&mut store, "WDOFUT", TickStream::Realtime, 3000, 1, 10).expect("seed");
        assert_eq!(seed.trades.len(), 0, "the newest entry before the bound is a correction");
        assert!(read_seed(&mut store, "WDOFUT", TickStream::Realtime, 0, 10, 10).expect("seed").trades.is_empty());
    }
}
