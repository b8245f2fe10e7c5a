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
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Unit tests run on mimalloc too, counting each thread's allocations
/// ([`test_alloc::allocations`]): the store's tests check what its write path allocates.
#[cfg(test)]
#[global_allocator]
static GLOBAL: test_alloc::Counting = test_alloc::Counting;

#[cfg(test)]
pub(crate) mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    fn count() {
        // `try_with`: no panic in an allocation made while the thread's locals are torn down.
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }

    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread so far.
    pub fn allocations() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }

    pub struct Counting;

    // SAFETY: every call is forwarded unchanged to mimalloc, a correct GlobalAlloc; counting
    // touches only a thread-local Cell without a destructor.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract for `alloc`, passed on.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator, i.e. from mimalloc, with `layout`.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            // SAFETY: the caller's contract for `realloc`, passed on.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

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
