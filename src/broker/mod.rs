//! The broker: one [`BrokerShard`] per core, each serving connections, owning its store
//! shard and the queues mapped to it; shard 0 also owns the control plane (topics,
//! subscription groups, consumer offsets, client registry, nameserver registration).
//!
//! Request flow: the shard that accepted a connection decodes a request and runs its handler;
//! work on a queue runs on the queue's owner shard via [`Mesh::submit_to`], control-plane work
//! on shard 0. Responses go back on the accepting shard. See ARCHITECTURE.md.

pub mod clients;
pub mod error;
pub mod groups;
pub mod handlers;
pub mod offsets;
pub mod persist;
pub mod processor;
pub mod register;
pub mod settings;
pub mod start;
pub mod suggest;
pub mod topics;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures::channel::oneshot;

use crate::net::Connection;
use crate::remoting::message::java_string_hash;
use crate::runtime::{LocalFuture, Mesh, MeshError};
use crate::store::ShardStore;

pub use error::BrokerError;
pub use settings::BrokerSettings;

use clients::ClientRegistry;
use groups::SubscriptionGroups;
use offsets::ConsumerOffsets;
use topics::{TopicManager, TopicTable};

/// Parked long-poll pulls of one shard, per (topic, queue id).
pub type PullWaiters = HashMap<(String, u32), Vec<oneshot::Sender<()>>>;

/// State only shard 0 has.
#[derive(Debug)]
pub struct ControlPlane {
    pub topics: TopicManager,
    pub groups: SubscriptionGroups,
    pub offsets: ConsumerOffsets,
    pub clients: ClientRegistry,
    /// Data version counter of the topic table last written to `topics.json`.
    pub topics_persisted_counter: i64,
}

/// Everything one shard owns.
pub struct BrokerShard {
    pub id: usize,
    pub settings: Arc<BrokerSettings>,
    pub store: Rc<ShardStore>,
    pub mesh: Mesh<BrokerShard>,
    /// Read-only replica of the topic table; shard 0 pushes every new version.
    pub topics: RefCell<Arc<TopicTable>>,
    pub control: Option<RefCell<ControlPlane>>,
    /// Parked long-poll pulls per (topic, queue id) of queues this shard owns.
    pub pull_waiters: RefCell<PullWaiters>,
    /// Live connections accepted by this shard (for broker -> client requests).
    pub conns: RefCell<HashMap<u64, Weak<Connection>>>,
    /// Set once shutdown began: new sends are refused.
    pub stopping: std::cell::Cell<bool>,
    /// Clients of every nameserver (shard 0 only; empty elsewhere).
    pub namesrv_clients: Vec<crate::net::RemotingClient>,
    /// This shard's replication state (master: connected slaves and SYNC_MASTER waits).
    pub ha: crate::ha::ShardHaRef,
    /// This shard's event-loop stalls (`runtime::lag`), shown in GET_BROKER_RUNTIME_INFO.
    pub stalls: RefCell<crate::runtime::lag::Stalls>,
    /// Requests this shard has served (wraps); with the store's end, the lag probe's sign of
    /// activity.
    pub requests: std::cell::Cell<u64>,
}

impl std::fmt::Debug for BrokerShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerShard").field("id", &self.id).finish()
    }
}

impl BrokerShard {
    /// The shard that owns queue `queue_id` of `topic`. The shard count is persisted in the
    /// store (`settings.shard_count`), so the mapping never changes under a store.
    pub fn owner_of(&self, topic: &str, queue_id: u32) -> usize {
        owner_of(topic, queue_id, self.mesh.shard_count())
    }

    /// Runs `f` on shard `target`.
    pub async fn on_shard<R, F>(self: &Rc<Self>, target: usize, f: F) -> Result<R, MeshError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<BrokerShard>) -> LocalFuture<R> + Send + 'static,
    {
        self.mesh.submit_to(self, self.id, target, f).await
    }

    /// Runs `f` with the control plane on shard 0.
    pub async fn on_control<R, F>(self: &Rc<Self>, f: F) -> Result<R, MeshError>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<BrokerShard>, &mut ControlPlane) -> R + Send + 'static,
    {
        self.on_shard(0, move |shard| {
            Box::pin(async move {
                let control = shard
                    .control
                    .as_ref()
                    .expect("invariant: shard 0 owns the control plane");
                let mut cp = control.borrow_mut();
                f(&shard, &mut cp)
            })
        })
        .await
    }

    /// Wakes every pull parked on (topic, queue id).
    pub fn wake_pulls(&self, topic: &str, queue_id: u32) {
        let waiters = self
            .pull_waiters
            .borrow_mut()
            .remove(&(topic.to_string(), queue_id));
        for w in waiters.into_iter().flatten() {
            let _ = w.send(());
        }
    }

    pub fn topic_snapshot(&self) -> Arc<TopicTable> {
        self.topics.borrow().clone()
    }
}

/// Queue -> shard mapping: a pure function of the topic, the queue id and the persisted shard
/// count. Consecutive queues of one topic land on consecutive shards.
pub fn owner_of(topic: &str, queue_id: u32, shard_count: usize) -> usize {
    if shard_count <= 1 {
        return 0;
    }
    let base = java_string_hash(topic) as u32;
    let n = u32::try_from(shard_count).unwrap_or(u32::MAX);
    usize::try_from(base.wrapping_add(queue_id) % n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::owner_of;

    #[test]
    fn queues_of_a_topic_spread_over_shards() {
        let owners: Vec<usize> = (0..4).map(|q| owner_of("TopicA", q, 2)).collect();
        assert!(owners.contains(&0));
        assert!(owners.contains(&1));
        assert!((0..8).all(|q| owner_of("T", q, 1) == 0));
    }
}
