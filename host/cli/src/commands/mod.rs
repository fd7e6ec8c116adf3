pub mod bench;
pub mod bench_dll;
mod bench_plugins;
pub mod generate;
pub mod ingest;
pub mod plugins;
pub mod replay;
pub mod run;
