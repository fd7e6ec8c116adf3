pub mod bench;
mod bench_plugins;
pub mod generate;
pub mod replay;
