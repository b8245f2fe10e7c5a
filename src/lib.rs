//! shardmq: a thread-per-core, wire-compatible replacement for the Apache RocketMQ 4.x broker
//! and nameserver. See ARCHITECTURE.md for the decisions and their reasons.
//!
//! - `constants`: every limit, with compile-time checks of their relationships.
//! - `config`: `.properties` loading with `java.util.Properties` rules, every upstream key.
//! - `remoting`: the pure wire codec (frames, JSON and binary headers, codes, fastjson).
//! - `store`: the per-shard message store (commit log, consume queues, checkpoint, recovery).
//! - `runtime`: the cross-shard mesh (`submit_to`) and time.
//! - `net`: glommio TCP connections, server accept loop and client.
//! - `namesrv`: the nameserver logic (route table, broker liveness, KV config);
//!   `namesrv_service` runs it on an executor of its own.
//! - `broker`: the broker (handlers, topic/group/offset managers, registration, start-up).
//! - `client`: the client library (routes, producer, pull consumer, admin calls) of the tools.
//! - `bench`: mqbench (open/closed-loop latency harness, host limits, report, plots).
//! - `logging`, `signals`: process plumbing for the binaries.

/// mimalloc instead of glibc malloc: the request path frees 64 KiB read buffers whose frames
/// went on to the store, and glibc's free of a chunk that large consolidates the fast bins each
/// time (`malloc_consolidate` was ~6 % and malloc/free ~30 % of broker CPU at 64 producers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod bench;
pub mod broker;
pub mod client;
pub mod config;
pub mod constants;
pub mod ha;
pub mod logging;
pub mod namesrv;
pub mod namesrv_service;
pub mod net;
pub mod remoting;
pub mod runtime;
pub mod signals;
pub mod store;
