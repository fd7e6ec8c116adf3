//! Wires the `[bus]` config into a run: an outbox lane "bus" observed by the
//! engine, drained by the ZeroMQ publisher thread. Like storage, the bus
//! never stops a run: sockets that cannot be bound are reported and the run
//! goes on without publishing. `ZMQ_ENABLED=false` (the default) gives an
//! outbox with no lane: nothing is copied, bound or started.

use std::sync::Arc;

use tickhost_bus::{BusStatus, Publisher, PublisherSettings, TradeChannel};
use tickhost_core::hooks::FeatureSchema;
use tickhost_core::outbox::Outbox;

use crate::config::Config;

/// The engine side (an observer) and the publisher of one run.
#[derive(Debug)]
pub struct BusRun {
    outbox: Outbox,
    publisher: Option<Publisher>,
}

impl BusRun {
    pub fn start(config: &Config, schema: &FeatureSchema, trades_to: TradeChannel) -> Self {
        let mut outbox = Outbox::new();
        let bc = &config.bus;
        if !bc.enabled {
            return Self { outbox, publisher: None };
        }
        let lane = outbox.add_lane("bus", bc.lane_capacity, schema.len());
        let settings = PublisherSettings {
            trades_to,
            utc_offset_minutes: config.engine.utc_offset_minutes,
            feature_names: schema.names().iter().map(|s| s.to_string()).collect(),
        };
        match Publisher::spawn(lane, bc, settings) {
            Ok(publisher) => {
                let bound: Vec<String> = publisher
                    .status()
                    .sockets
                    .iter()
                    .map(|(c, endpoint, format, _)| format!("{} {format} {endpoint}", c.name()))
                    .collect();
                eprintln!("bus: publishing on {}", bound.join(", "));
                Self { outbox, publisher: Some(publisher) }
            }
            Err(e) => {
                eprintln!("bus: {e}; this run goes on without publishing");
                Self { outbox: Outbox::new(), publisher: None }
            }
        }
    }

    /// What the engine reports to.
    pub fn observer(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    pub fn status(&self) -> Option<Arc<BusStatus>> {
        self.publisher.as_ref().map(|p| Arc::clone(p.status()))
    }

    /// Ends the lane, lets the publisher send what is queued and the end of
    /// stream, and prints one line of counters.
    pub fn finish(self) -> Option<Arc<BusStatus>> {
        drop(self.outbox);
        let status = self.publisher?.join();
        eprintln!("{}", status.summary());
        Some(status)
    }
}
