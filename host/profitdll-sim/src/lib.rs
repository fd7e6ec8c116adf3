//! A ProfitDLL-compatible shared library for Linux: the same exports and
//! callbacks as Nelogica's DLL (shared/reference/profitdll-abi.md), backed by
//! a simulated B3 market (core's synthetic sessions) or a replayed Profit
//! CSV, with history requests, simulated order fills and fault injection.
//!
//! Like the real DLL, every callback runs on the library's own thread.
//! Settings come from `PROFITDLL_SIM` (see [`config::SimConfig`]) or the
//! extra export `SimConfigure`, read at each initialisation.

pub mod config;
mod exports;
pub mod market;

pub use config::SimConfig;
