//! Thread-per-core runtime: starting shards, submitting work to another shard, time.
//!
//! One glommio executor ("shard") per core. Shards share nothing mutable: state a shard owns
//! is reached from another shard only through [`Mesh::submit_to`], which ships a `Send`
//! closure to the owner and brings its result back (Seastar's `submit_to`). The closure runs
//! on the owner with the owner's `Rc` state, so handlers never lock anything.
//!
//! Channels are `futures::channel::mpsc` (bounded: back-pressure) and `oneshot`; glommio
//! wakes a task from another thread through its foreign-waker queue (an eventfd), so no
//! executor ever blocks on a cross-shard message.

pub mod lag;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use crate::constants::MESH_CHANNEL_CAPACITY;

/// Milliseconds since the Unix epoch (wall clock): what RocketMQ puts in store timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`); the
/// servers and mqbench call it first thing in `main`. Why: mimalloc asks for huge pages on its
/// heap (`MADV_HUGEPAGE`), and the first touch of a fresh 2 MiB page zeroes all of it in one
/// fault; on this project's VMs that took 15–60 ms, on a shard's thread, in the middle of a
/// request (mqbench's busy loop stalls; profile in ARCHITECTURE 39). With 4 KiB pages the same
/// memory arrives a page at a time. The upstream JVM's answer to the same problem is
/// `-XX:+AlwaysPreTouch`. Returns the OS error if the kernel refused.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_THP_DISABLE takes plain integers and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A future that lives on one shard.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Work shipped to a shard: a `Send` closure that, on the target, receives the target's
/// state and returns a shard-local future.
pub type Job<S> = Box<dyn FnOnce(Rc<S>) -> LocalFuture<()> + Send>;

/// The sending ends of every shard's job queue, indexed by shard id. Cloned into each shard.
pub struct Mesh<S> {
    senders: Vec<mpsc::Sender<Job<S>>>,
}

impl<S> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Mesh<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("shards", &self.senders.len())
            .finish()
    }
}

/// The receiving end of one shard's job queue.
pub struct Inbox<S> {
    receiver: mpsc::Receiver<Job<S>>,
}

impl<S> std::fmt::Debug for Inbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inbox")
    }
}

/// Why a cross-shard call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("shard {0} does not exist")]
    NoSuchShard(usize),
    #[error("shard {0} is not running (its job queue is closed)")]
    ShardGone(usize),
}

impl<S: 'static> Mesh<S> {
    /// Builds the mesh for `count` shards: the shared senders and one inbox per shard.
    pub fn new(count: usize) -> (Mesh<S>, Vec<Inbox<S>>) {
        let mut senders = Vec::with_capacity(count);
        let mut inboxes = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::channel(MESH_CHANNEL_CAPACITY);
            senders.push(tx);
            inboxes.push(Inbox { receiver: rx });
        }
        (Mesh { senders }, inboxes)
    }

    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// Runs `f` on shard `target` with that shard's state and returns its result.
    /// The caller passes its own state as `local` so that a call to itself runs inline.
    pub async fn submit_to<R, F>(
        &self,
        local: &Rc<S>,
        local_id: usize,
        target: usize,
        f: F,
    ) -> Result<R, MeshError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<S>) -> LocalFuture<R> + Send + 'static,
    {
        if target == local_id {
            return Ok(f(local.clone()).await);
        }
        let sender = self
            .senders
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))?;
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            Box::pin(async move {
                let result = f(state).await;
                // The caller may have gone away (connection closed); nothing to do then.
                let _ = tx.send(result);
            })
        });
        let mut sender = sender.clone();
        sender
            .send(job)
            .await
            .map_err(|_| MeshError::ShardGone(target))?;
        rx.await.map_err(|_| MeshError::ShardGone(target))
    }

    /// Fire-and-forget variant of [`Mesh::submit_to`] (used for broadcasts).
    pub async fn post_to<F>(&self, target: usize, f: F) -> Result<(), MeshError>
    where
        F: FnOnce(Rc<S>) -> LocalFuture<()> + Send + 'static,
    {
        let sender = self
            .senders
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))?;
        let mut sender = sender.clone();
        sender
            .send(Box::new(f))
            .await
            .map_err(|_| MeshError::ShardGone(target))
    }
}

impl<S: 'static> Inbox<S> {
    /// Runs every job that arrives, each as its own task, until all senders are gone.
    pub async fn serve(mut self, state: Rc<S>) {
        while let Some(job) = self.receiver.next().await {
            glommio::spawn_local(job(state.clone())).detach();
        }
    }
}

/// Sleeps on the current shard without blocking it.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}
