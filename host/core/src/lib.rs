//! tickhost-core: everything a backtest, a live engine and a benchmark share.
//!
//! This crate is pure on purpose: no I/O, no threads, no async, no wasmtime.
//! Sources (CSV, DLL, ZeroMQ) and sinks (Valkey, ZeroMQ, files) live in other
//! crates and talk to the engine through the plain types defined here.

pub mod agents;
pub mod book;
pub mod broker;
pub mod candles;
pub mod consensus;
pub mod engine;
pub mod extensions;
pub mod features;
pub mod history;
pub mod hooks;
pub mod ingest;
pub mod market;
pub mod outbox;
pub mod patterns;
pub mod regime;
pub mod report;
pub mod risk;
pub mod sim;
pub mod strategy;
pub mod time;
pub mod venue;

pub use market::{AgentDirectory, AgentId, BookSide, BookUpdate, Candle, Price, Side, Symbol, Trade, TradeType};
