//! glommio TCP for remoting frames: one [`connection`] type serves both sides.
//!
//! A connection runs two tasks on the shard that accepted (or opened) it: a reader that cuts
//! frames with `remoting::frame::check` and hands each request to the [`Handler`] as its own
//! task (so a long-polled pull never blocks the requests behind it), and a writer that drains
//! a bounded queue of encoded frames and writes them in batches. Responses to requests this
//! side sent are matched by opaque. A frame that does not decode closes the connection with a
//! log line; nothing else on the shard is affected.

pub mod client;
pub mod connection;
pub mod server;

pub use client::RemotingClient;
pub use connection::{ConnInfo, Connection, Handler};
