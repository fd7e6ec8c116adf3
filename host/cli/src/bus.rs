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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn zmq_enabled_switches_publishing_and_off_adds_no_lane() {
        let off = Config::load_with_env(None, env(&[])).expect("defaults");
        assert!(!off.bus.enabled, "opt-in, as the seeds roll it out");
        let schema = FeatureSchema::v3();
        let mut run = BusRun::start(&off, &schema, TradeChannel::History);
        assert_eq!(run.observer().lanes().count(), 0, "ZMQ_ENABLED=false: nothing copied, bound or started");
        assert!(run.status().is_none() && run.finish().is_none());

        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = |n: &str| format!("ipc://{}", dir.path().join(n).display());
        let mut pairs = vec![("ZMQ_ENABLED".to_string(), "true".to_string())];
        for s in ["TICKS", "BOOK", "HISTORY", "SIGNALS", "FEATURES", "DECISIONS", "FILLS"] {
            pairs.push((format!("TICKHOST__BUS__{s}__ENDPOINT"), ipc(s)));
        }
        pairs.push(("TICKHOST__BUS__FILLS__ENDPOINT".into(), String::new()));
        let on = Config::load_with_env(None, pairs).expect("config");
        assert!(on.bus.enabled && on.bus.fills.endpoint.is_empty());
        let run = BusRun::start(&on, &schema, TradeChannel::History);
        let status = run.status().expect("publishing");
        assert_eq!(status.sockets.len(), 6, "fills is off");
        assert!(run.finish().is_some());
    }
}
