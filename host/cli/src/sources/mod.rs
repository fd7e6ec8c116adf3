//! Live sources of `tickhost run` besides the CSV replay.

pub mod dll;
pub mod ingest;
pub mod zmq;
