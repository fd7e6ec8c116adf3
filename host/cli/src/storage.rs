//! Wires the `[store]` config into a run: an outbox lane "store" observed
//! by the engine, drained by the store writer thread. Storage never stops a
//! run: a backend that cannot be opened is reported and the run goes on
//! without it.

use std::sync::Arc;
use std::time::Duration;

use tickhost_core::engine::EngineObserver;
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::outbox::Outbox;
use tickhost_store::keys::TickStream;
use tickhost_store::timetravel::{self, TimeTravelCounters, TimeTravelFeatures, TimeTravelSettings, TimeTravelWorker};
use tickhost_store::writer::{Backpressure, StoreStatus, StoreWriter, WriterConfig, WriterReport};

use crate::config::Config;

/// The engine side (an observer) and the writer of one run.
#[derive(Debug)]
pub struct StoreRun {
    outbox: Outbox,
    writer: Option<StoreWriter>,
    lane_capacity: usize,
}

impl StoreRun {
    /// Starts the writer for `config.store`; storage off (or failing to open)
    /// gives a run with an outbox that has no lane.
    pub fn start(config: &Config, schema: &FeatureSchema, stream: TickStream) -> Self {
        let mut outbox = Outbox::new();
        let sc = &config.store;
        let store = match sc.open() {
            Ok(Some(store)) => store,
            Ok(None) => return Self { outbox, writer: None, lane_capacity: 0 },
            Err(e) => {
                eprintln!("store: {e}; this run goes on without storage");
                return Self { outbox, writer: None, lane_capacity: 0 };
            }
        };
        let mut wc = WriterConfig::new(sc.journal_dir.clone());
        wc.tick_stream = stream;
        wc.maxlen = sc.maxlen;
        wc.historical_maxlen = sc.historical_maxlen;
        wc.batch = sc.batch.max(1);
        wc.journal_max_bytes = sc.journal_max_mb.saturating_mul(1 << 20);
        wc.retry = Duration::from_millis(sc.retry_ms.max(1));
        wc.shutdown_grace = Duration::from_millis(sc.shutdown_grace_ms);
        wc.spill_backlog = sc.lane_capacity / 4;
        wc.feature_names = schema.names().iter().map(|s| s.to_string()).collect();
        let lane = outbox.add_lane("store", sc.lane_capacity, schema.len());
        match StoreWriter::spawn(lane, store, wc) {
            Ok(writer) => Self { outbox, writer: Some(writer), lane_capacity: sc.lane_capacity },
            Err(e) => {
                eprintln!("store: {e}; this run goes on without storage");
                Self { outbox: Outbox::new(), writer: None, lane_capacity: 0 }
            }
        }
    }

    /// What the engine reports to.
    pub fn observer(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// For replays: hold the feed while the store lane is a quarter full, so
    /// a replay faster than the store writes everything instead of dropping.
    pub fn backpressure(&self) -> Option<Backpressure> {
        let writer = self.writer.as_ref()?;
        let (_, counters) = self.outbox.lanes().next()?;
        Some(Backpressure::new(Arc::clone(counters), Arc::clone(writer.status()), self.lane_capacity / 4))
    }

    pub fn status(&self) -> Option<Arc<StoreStatus>> {
        self.writer.as_ref().map(|w| Arc::clone(w.status()))
    }

    /// Ends the lane and waits for the writer; prints one line about it.
    pub fn finish(self) -> Option<WriterReport> {
        let dropped: u64 = self.outbox.lanes().map(|(_, c)| c.dropped()).sum();
        drop(self.outbox);
        let report = match self.writer?.join() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("store: the writer failed: {e}");
                return None;
            }
        };
        let s = &report.status;
        eprintln!(
            "store ({}): {} written, {} already there, {} refused, {} outages, {} left in the journal, {} dropped{}",
            s.backend,
            s.written,
            s.duplicates,
            s.rejected,
            s.outages,
            report.left_in_journal,
            s.journal_dropped + dropped,
            if s.last_error.is_empty() { String::new() } else { format!(" (last error: {})", s.last_error) }
        );
        Some(report)
    }
}

/// Both observers get everything, `a` first.
pub fn with<'a, A: EngineObserver>(a: &'a mut A, store: &'a mut StoreRun) -> (&'a mut A, &'a mut Outbox) {
    (a, store.observer())
}

/// The time-travel worker of a run (stopped on drop) and its counters.
#[derive(Debug)]
pub struct TimeTravelRun {
    _worker: TimeTravelWorker,
    pub counters: Arc<TimeTravelCounters>,
}

impl TimeTravelRun {
    pub fn summary(&self) -> String {
        let c = self.counters.snapshot();
        format!(
            "time travel: {} candles with history, {} fell back to neutral (history not there), {} not picked (TIME_TRAVEL_PERCENTAGE), {} history queries",
            c.enhanced_calls, c.fallback_count, c.original_calls, c.time_travel_queries
        )
    }
}

/// The time-travel extension and its worker when `[store.time_travel]` is
/// enabled. With storage off the features are still there (the frame
/// layout does not depend on the store) and fall back to neutral.
pub fn time_travel(config: &Config) -> anyhow::Result<(Option<TimeTravelRun>, Option<TimeTravelFeatures>)> {
    let tt = &config.store.time_travel;
    if !tt.enabled {
        return Ok((None, None));
    }
    if !(0.0..=1.0).contains(&tt.percentage) {
        anyhow::bail!("store.time_travel.percentage (TIME_TRAVEL_PERCENTAGE) = {} is not in 0..=1", tt.percentage);
    }
    let reader = match config.store.open_reader() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("time travel: {e}; history features fall back to neutral");
            None
        }
    };
    let settings = TimeTravelSettings {
        percentage: tt.percentage,
        lookback_days: tt.lookback_days,
        window_minutes: tt.window_minutes,
        bar_ms: i64::from(config.engine.bar_seconds) * 1000,
    };
    let (features, worker, counters) =
        timetravel::start(settings, reader).map_err(|e| anyhow::anyhow!("cannot start the time-travel thread: {e}"))?;
    Ok((Some(TimeTravelRun { _worker: worker, counters }), Some(features)))
}

/// Plugins' recent-history window of a run and the thread seeding it from
/// the store ([`tickhost_store::history`]).
#[derive(Debug)]
pub struct HistoryRun {
    pub window: Arc<tickhost_core::history::HistoryWindow>,
    seeder: Option<tickhost_store::history::HistorySeeder>,
    /// How long a replay waits at start for the seed (the store's timeouts).
    seed_wait: Duration,
}

impl HistoryRun {
    /// The window `[store.history]` sizes; not seeded until [`HistoryRun::seed`].
    pub fn new(config: &Config) -> Self {
        let h = &config.store.history;
        let sc = &config.store;
        Self {
            window: Arc::new(tickhost_core::history::HistoryWindow::new(h.trades, h.candles)),
            seeder: None,
            seed_wait: Duration::from_millis(sc.connect_timeout_ms + sc.response_timeout_ms + 1000),
        }
    }

    /// Starts the seeder (storage on and `[store.history] seed`), reading
    /// the tick stream `stream`. Trouble opening the store is said once; the
    /// window then holds this run's history only.
    pub fn seed(&mut self, config: &Config, stream: TickStream) {
        let store = if config.store.history.seed {
            config.store.open_reader().unwrap_or_else(|e| {
                eprintln!("history: {e}; plugins see this run's history only");
                None
            })
        } else {
            None
        };
        let symbol = tickhost_core::Symbol::new(&config.engine.instrument.symbol);
        match tickhost_store::history::spawn_seeder(Arc::clone(&self.window), store, stream, symbol) {
            Ok(s) => self.seeder = Some(s),
            Err(e) => {
                eprintln!("history: cannot start the seeding thread: {e}; plugins see this run's history only");
                self.window.offer_seed(None);
            }
        }
    }

    /// For a replay: tells the seeder the file's first trade and waits (on
    /// this thread, before the engine sees any event) until the seed is in,
    /// so plugins see the same history on every run of the same file.
    pub fn prime_from_csv(&self, path: &std::path::Path, config: &Config) {
        let opts = tickhost_feed::profit_csv::ProfitCsvOptions {
            on_bad_row: config.source.on_bad_row.into(),
            utc_offset_minutes: config.engine.utc_offset_minutes,
        };
        let first = tickhost_feed::profit_csv::ProfitCsvReader::open(path, opts)
            .ok()
            .and_then(|mut r| r.next_trade().ok().flatten());
        let Some(first) = first else { return };
        self.window.announce(first.symbol, first.ts_ms);
        let deadline = std::time::Instant::now() + self.seed_wait;
        while !self.window.seed_settled() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !self.window.seed_settled() {
            eprintln!("history: the store did not answer in {:?}; the seed joins when it does", self.seed_wait);
        }
    }

    pub fn summary(&self) -> String {
        let c = self.window.counters();
        format!(
            "history: {} trades and {} candles from the store before the run; {} plugin calls served {} items",
            c.seeded_trades, c.seeded_candles, c.calls, c.items_served
        )
    }
}
