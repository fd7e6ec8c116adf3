pub mod bench;
mod bench_ml;
mod bench_plugins;
pub mod generate;
pub mod plugins;
pub mod replay;
pub mod run;
