//! ZeroMQ transport of tickhost: the engine's outputs published on PUB
//! (XPUB) sockets in the layout the seeds' Python consumers read
//! (reference/domain.md "ZeroMQ layout"), trades subscribed from another
//! tickhost or the Python publisher, and the isolated-ingest seam over ipc.
//!
//! - [`wire`]: topic + payload, the header of rkyv payloads, errors that say
//!   what was received and what this build reads.
//! - [`json`] / [`archive`]: the two payload formats.
//! - [`publisher`]: the thread that drains the outbox lane "bus", with
//!   high-water marks and counted drops per socket.
//! - [`subscriber`]: the SUB source with gap detection.
//! - [`ingest`]: `tickhost ingest --publish` and its reader.

pub mod archive;
pub mod endpoint;
mod ffi;
pub mod ingest;
pub mod json;
pub mod publisher;
pub mod subscriber;
#[doc(hidden)]
pub mod testing;
pub mod wire;
mod zap;

pub use endpoint::CurveConfig;
pub use publisher::{BusConfig, BusStatus, Publisher, PublisherSettings, SocketConfig, TradeChannel};
pub use subscriber::{Gap, SubCounters, TickEvent, TickSubscriber};
pub use wire::Format;
