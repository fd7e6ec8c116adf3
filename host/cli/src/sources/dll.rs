//! `tickhost run --feed dll`: the engine on a ProfitDLL feed. The DLL's
//! callbacks fill the feed's ring on the DLL's thread; this (engine) thread
//! polls it, runs the engine, and with `dll.broker = "dll"` hands the
//! engine's orders to the session thread, which calls `SendOrder`; fills come
//! back through the ring and update positions and risk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tickhost_bus::TradeChannel;
use tickhost_core::book::{BookBoard, BookFeatures};
use tickhost_core::engine::EngineObserver;
use tickhost_core::hooks::FeatureExtensions;
use tickhost_core::venue::{ExecutionReport, ExecutionStatus, OrderIntent};
use tickhost_core::{Price, Symbol};
use tickhost_feed::profit_dll::session::Phase;
use tickhost_feed::profit_dll::{
    AccountConfig, Credentials, DllConfig, DllFeed, FeedCounters, LoginMode, OrderRequest, OrderSender, OrderStatus,
    ReconnectPolicy, SinkConfig, StreamItem, TradeCallbackStyle,
};
use tickhost_store::keys::TickStream;

use crate::bus::BusRun;
use crate::commands::run::RunArgs;
use crate::config::Config;
use crate::render;
use crate::slots::build_engine_with;
use crate::storage::StoreRun;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginArg {
    Market,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeStyleArg {
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerArg {
    Paper,
    Dll,
}

/// The `[dll]` section. Credentials are not here: they come from the environment.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DllSection {
    pub library: PathBuf,
    pub login: LoginArg,
    pub tickers: Vec<String>,
    pub exchange: String,
    pub trade_callback: TradeStyleArg,
    pub price_book: bool,
    pub offer_book: bool,
    pub broker: BrokerArg,
    pub broker_id: i32,
    pub account_id: String,
    pub sub_account_id: String,
    pub ring_capacity: usize,
    pub spill_capacity: usize,
    pub full_ring_wait_us: u64,
    pub reinit_after_ms: u64,
    pub ready_timeout_ms: u64,
}

impl DllSection {
    /// The feed's configuration; `env` gives PROFITDLL_KEY / _USER / _PASSWORD.
    pub fn feed_config(
        &self,
        library: Option<&Path>,
        utc_offset_minutes: i32,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<DllConfig> {
        let library = library.map(Path::to_path_buf).unwrap_or_else(|| self.library.clone());
        if library.as_os_str().is_empty() {
            bail!("no ProfitDLL library: pass --library <path> or set dll.library (TICKHOST__DLL__LIBRARY)");
        }
        let credential = |name: &str| env(name).unwrap_or_default();
        Ok(DllConfig {
            library,
            credentials: Credentials {
                key: credential("PROFITDLL_KEY"),
                user: credential("PROFITDLL_USER"),
                password: credential("PROFITDLL_PASSWORD"),
            },
            login: match self.login {
                LoginArg::Market => LoginMode::Market,
                LoginArg::Full => LoginMode::Full,
            },
            tickers: self.tickers.clone(),
            exchange: self.exchange.clone(),
            trade_callback: match self.trade_callback {
                TradeStyleArg::V1 => TradeCallbackStyle::V1,
                TradeStyleArg::V2 => TradeCallbackStyle::V2,
            },
            price_book: self.price_book,
            offer_book: self.offer_book,
            utc_offset_minutes,
            sink: SinkConfig {
                ring_capacity: self.ring_capacity,
                spill_capacity: self.spill_capacity,
                full_ring_wait: Duration::from_micros(self.full_ring_wait_us),
            },
            reconnect: ReconnectPolicy {
                reinit_after: Duration::from_millis(self.reinit_after_ms),
                ..ReconnectPolicy::default()
            },
            account: AccountConfig {
                broker_id: self.broker_id,
                account_id: self.account_id.clone(),
                sub_account_id: self.sub_account_id.clone(),
            },
            ..DllConfig::default()
        })
    }
}

/// Hands the engine's order intents to the session thread; never blocks.
#[derive(Debug)]
struct DllOrders {
    sender: OrderSender,
    /// Intents the order ring had no room for: refused back to the engine.
    refused: Vec<u64>,
    sent: u64,
}

impl EngineObserver for DllOrders {
    fn on_order_intent(&mut self, intent: &OrderIntent) {
        let request = OrderRequest {
            order_id: intent.order_id,
            symbol: intent.symbol,
            side: intent.side,
            quantity: intent.quantity,
            limit_price: None,
        };
        match self.sender.send(request) {
            Ok(()) => self.sent += 1,
            Err(_) => self.refused.push(intent.order_id),
        }
    }
}

fn rejected(order_id: u64, ts_ms: i64) -> ExecutionReport {
    ExecutionReport { order_id, ts_ms, status: ExecutionStatus::Rejected, price: Price::default() }
}

pub fn run(args: &RunArgs, config: Config) -> Result<()> {
    let section = &config.dll;
    let feed_config = section
        .feed_config(args.source.library.as_deref(), config.engine.utc_offset_minutes, |k| std::env::var(k).ok())?;
    if section.broker == BrokerArg::Dll && section.login != LoginArg::Full {
        bail!("dll.broker = \"dll\" routes orders through SendOrder, which needs dll.login = \"full\"");
    }
    // The stream keeps the price book; its top reaches the engine as book features.
    let board = section.price_book.then(|| BookBoard::new(section.tickers.iter().filter_map(|t| Symbol::new(t))));
    let book_features = board.as_ref().map(|b| BookFeatures::new(Arc::clone(b)));
    let book_counters = book_features.as_ref().map(BookFeatures::counters);
    let extra = book_features.into_iter().map(|f| Box::new(f) as Box<dyn FeatureExtensions>).collect();
    let mut setup = build_engine_with(&config, extra)?;
    if section.broker == BrokerArg::Dll {
        setup.engine.use_external_venue();
    }
    let library = feed_config.library.clone();
    let (feed, mut stream, sender) = DllFeed::start(feed_config)
        .with_context(|| format!("cannot start the ProfitDLL feed ({})", library.display()))?;
    if let Some(board) = &board {
        stream.publish_books_to(Arc::clone(board));
    }
    feed.wait_ready(Duration::from_millis(section.ready_timeout_ms))
        .with_context(|| format!("ProfitDLL {} did not connect", library.display()))?;
    eprintln!(
        "ProfitDLL {} connected ({:?} login), subscribed {:?} on exchange {}; orders: {:?}",
        library.display(),
        section.login,
        section.tickers,
        section.exchange,
        section.broker
    );

    // A live session: ticks to ticks:<SYM>:realtime, published as tick_<SYM>.
    let mut store = StoreRun::start(&config, setup.engine.schema(), TickStream::Realtime);
    let mut bus = BusRun::start(&config, setup.engine.schema(), TradeChannel::Ticks);
    let engine = &mut setup.engine;
    let orders = DllOrders { sender, refused: Vec::with_capacity(64), sent: 0 };
    // The orders first: an intent reaches SendOrder before anything is stored.
    let mut observers = (orders, (store.observer(), bus.observer()));
    let idle_exit = (args.idle_exit > 0.0).then(|| Duration::from_secs_f64(args.idle_exit));
    let started = Instant::now();
    let mut last_event = Instant::now();
    let (mut trades, mut empty_polls, mut last_ts) = (0u64, 0u32, 0i64);
    loop {
        while let Some(id) = observers.0.refused.pop() {
            engine.on_execution(rejected(id, last_ts), &mut observers);
        }
        match stream.poll() {
            Some(item) => {
                empty_polls = 0;
                last_event = Instant::now();
                match item {
                    StreamItem::Trade(t) => {
                        last_ts = t.ts_ms;
                        engine.on_trade(t, &mut observers);
                        trades += 1;
                        if args.max_trades > 0 && trades >= args.max_trades {
                            break;
                        }
                    }
                    StreamItem::Order { order_id: Some(id), update } => {
                        let report = match update.status {
                            OrderStatus::Filled => Some(ExecutionReport {
                                order_id: id,
                                ts_ms: update.ts_ms,
                                status: ExecutionStatus::Filled,
                                price: Price::from_f64(update.avg_price).unwrap_or_default(),
                            }),
                            OrderStatus::Rejected | OrderStatus::Canceled => Some(rejected(id, update.ts_ms)),
                            _ => None,
                        };
                        if let Some(r) = report {
                            engine.on_execution(r, &mut observers);
                        }
                    }
                    StreamItem::Order { order_id: None, .. } => {}
                    // Published (`book_<SYM>`); the engine reads the book through its features.
                    StreamItem::Book { symbol, top } => observers.1.1.on_book(symbol, last_ts, &top),
                    StreamItem::OrderRefused { order_id, .. } => {
                        engine.on_execution(rejected(order_id, last_ts), &mut observers)
                    }
                }
            }
            None => {
                if stream.is_finished() {
                    break;
                }
                if idle_exit.is_some_and(|d| last_event.elapsed() >= d) {
                    break;
                }
                empty_polls += 1;
                if empty_polls % 1024 == 0 {
                    if feed.status().phase == Phase::Failed {
                        let status = feed.status();
                        bail!(
                            "the ProfitDLL session failed: {}",
                            status.last_error.unwrap_or_else(|| "no reason given".into())
                        );
                    }
                    // Nothing to do: let the other threads of this 2-core box run.
                    std::thread::sleep(Duration::from_micros(200));
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
    let report = engine.finish(&mut observers);
    drop(observers);
    store.finish();
    bus.finish();
    let elapsed = started.elapsed();
    let status = feed.status();
    let venue = engine.venue_counters();
    let counters = stream.counters();
    let fc = stream.feed_counters();
    let late = [
        ("malformed strings", FeedCounters::get(&fc.malformed_strings)),
        ("bad dates (kept)", FeedCounters::get(&fc.bad_dates)),
        ("dropped malformed", FeedCounters::get(&fc.dropped_malformed)),
        ("spilled", FeedCounters::get(&fc.spilled)),
        ("dropped (spill full)", FeedCounters::get(&fc.dropped_spill_full)),
        ("callback panics", FeedCounters::get(&fc.callback_panics)),
    ];
    feed.stop();
    eprintln!(
        "{} trades from ProfitDLL in {:.1} s ({} live, {} backfilled, {} held during backfills); {} book updates, {} daily bars",
        trades,
        elapsed.as_secs_f64(),
        counters.live_trades,
        counters.history_trades,
        counters.held_trades,
        counters.book_updates,
        counters.daily_bars
    );
    eprintln!(
        "session: {} initialisations, {} disconnects, {} backfills done, {} abandoned, {} orders sent, {} refused",
        status.initializations,
        status.disconnects,
        status.backfills_completed,
        status.backfills_abandoned,
        status.orders_sent,
        status.orders_refused
    );
    if let Some(c) = &book_counters {
        eprintln!(
            "book features: {} candles read the book, {} had none yet (neutral values)",
            c.served.load(Ordering::Relaxed),
            c.fallbacks.load(Ordering::Relaxed)
        );
    }
    let odd: Vec<String> = late.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}={n}")).collect();
    if !odd.is_empty() {
        eprintln!("feed anomalies: {}", odd.join(" "));
    }
    if let Some(v) = venue {
        eprintln!(
            "venue (SendOrder): {} intents, {} fills, {} rejections, {} unexpected reports",
            v.intents, v.fills, v.rejections, v.unexpected_reports
        );
    }
    let i = &report.ingest;
    println!(
        "ingested {} trades: {} duplicates dropped, {} edits applied, {} reordered, {} too late",
        i.accepted, i.duplicates, i.edits, i.out_of_order_clamped, i.out_of_order_dropped
    );
    print!("{}", render::table(&report, config.engine.utc_offset_minutes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_environment_and_a_library_is_required() {
        let config = Config::load_with_env(None, Vec::new()).expect("defaults");
        let env = |k: &str| (k == "PROFITDLL_PASSWORD").then(|| "s3cret".to_string());
        let err = config.dll.feed_config(None, -180, env).expect_err("no library");
        assert!(err.to_string().contains("--library"), "{err}");
        let c = config.dll.feed_config(Some(Path::new("/x/ProfitDLL.dll")), -180, env).expect("config");
        assert_eq!(c.credentials.password, "s3cret");
        assert_eq!((c.exchange.as_str(), c.tickers.clone()), ("F", vec!["WDOFUT".to_string()]));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
