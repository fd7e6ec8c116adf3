//! Integration tests of the engine's parts, one module per topic. The CLI's
//! end-to-end tests live beside the binary (host/cli/tests).

mod alloc_count;
mod broker;
mod engine;
mod features_on_sessions;
mod outbox;
mod report;
mod risk;
mod strategy;
