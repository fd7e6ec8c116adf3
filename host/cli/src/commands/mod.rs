pub mod bench;
mod bench_plugins;
pub mod generate;
pub mod plugins;
pub mod query;
pub mod replay;
pub mod run;
