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
use tickhost_store::writer::{StoreStatus, StoreWriter, WriterConfig, WriterReport};

use crate::config::Config;

/// The engine side (an observer) and the writer of one run.
#[derive(Debug)]
pub struct StoreRun {
    outbox: Outbox,
    writer: Option<StoreWriter>,
}

impl StoreRun {
    /// Starts the writer for `config.store`; storage off (or failing to open)
    /// gives a run with an outbox that has no lane.
    pub fn start(config: &Config, schema: &FeatureSchema, stream: TickStream) -> Self {
        let mut outbox = Outbox::new();
        let sc = &config.store;
        let store = match sc.open() {
            Ok(Some(store)) => store,
            Ok(None) => return Self { outbox, writer: None },
            Err(e) => {
                eprintln!("store: {e}; this run goes on without storage");
                return Self { outbox, writer: None };
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
            Ok(writer) => Self { outbox, writer: Some(writer) },
            Err(e) => {
                eprintln!("store: {e}; this run goes on without storage");
                Self { outbox: Outbox::new(), writer: None }
            }
        }
    }

    /// What the engine reports to.
    pub fn observer(&mut self) -> &mut Outbox {
        &mut self.outbox
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
