//! Market-data sources. Each source turns external data into
//! [`tickhost_core::Trade`]s; admission rules (duplicates, edits, ordering)
//! are the core's [`tickhost_core::ingest::Sequencer`], shared by all sources.

pub mod ingest;
pub mod profit_csv;
pub mod profit_dll;
