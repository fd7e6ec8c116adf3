pub mod bench;
mod bench_ml;
mod bench_plugins;
mod bench_store;
pub mod generate;
pub mod plugins;
pub mod query;
pub mod replay;
pub mod run;
