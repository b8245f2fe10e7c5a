//! Master/slave replication (issue #5, DESIGN §4, spec/ha.md): the per-shard replication
//! streams on the HA port, the SYNC_MASTER wait, and (in `meta`) the slave's metadata sync.
//! Owns [`ShardHa`] (one per shard, on that shard's executor; on a slave it also holds the
//! master addresses shard 0 learns from its nameserver registration and posts to all shards).
//!
//! # Topology
//! Replication is shard to shard: slave shard i keeps one TCP connection to master shard i
//! on the master's HA port (`listenPort + 1` unless `haListenPort` is set) and receives that
//! shard's commit log byte for byte, at the same local offsets. Every master shard accepts on
//! the HA port (SO_REUSEPORT, so the kernel picks one); the accepting shard reads the
//! handshake and, when the slave asked for another shard, hands the socket (its file
//! descriptor) to that shard through the mesh. A slave's store must have the master's shard
//! count: the handshake carries both counts; a slave whose store is still empty adopts the
//! master's count (persists it in `config/shardmq.json`) and restarts itself; a non-empty
//! one with another count refuses to replicate (logged every retry).
//!
//! # Protocol (all integers big-endian)
//! Upstream's framing (spec/ha.md §4) after a small handshake naming the shard. Upstream has
//! no handshake: one stream per broker; ours carries one stream per shard, so the master must
//! learn which shard a connection is for.
//!
//! ```text
//! slave -> master, once:   handshake, 16 bytes
//! +------------------+--------------+------------+------------------+----------------+
//! | magic "SMHA" u32 | version u16  | shard u16  | shard count u16  | reserved u16=0 |
//! +------------------+--------------+------------+------------------+----------------+
//! | broker id u32 (the slave's brokerId, for logs)                                    |
//! +-----------------------------------------------------------------------------------+
//! master -> slave, once:   answer, 8 bytes
//! +------------------+--------------+-------------------------+
//! | magic "SMHA" u32 | status u16   | master shard count u16  |   status 0 = ok,
//! +------------------+--------------+-------------------------+   1 = shard count differs,
//!                                                                 2 = bad shard / version
//! then, version 2 and status 0 only: the master's epoch history (`epochs`)
//! +------------------+-------------+------------------------------------------+
//! | lineage u64      | count u32   | count x ( epoch u64 | first offset u64 ) |
//! +------------------+-------------+------------------------------------------+
//! slave -> master, repeated: offset report (upstream's)
//! +-------------------------------------------+
//! | slave's written end of this shard: i64    |   first one = where to start sending
//! +-------------------------------------------+
//! master -> slave, repeated: transfer (upstream's)
//! +-------------------------+-----------------+---------------------+
//! | local offset: i64       | size: i32       | data: size bytes    |   size 0 = heartbeat
//! +-------------------------+-----------------+---------------------+
//! ```
//! Offsets are shard-local commit-log offsets (the low 48 bits of a global physical offset);
//! the records themselves carry global offsets, identical on master and slave because slave
//! shard i stores master shard i's bytes at the same place. A transfer never crosses a
//! commit-log file and carries at most `haTransferBatchSize` bytes; the master ships written
//! bytes (in its file or page cache, perhaps not yet fdatasynced: the slave's copy overlaps
//! the master's fdatasync, ARCHITECTURE 25) and, with `haShipBeforeWrite` (the default), a
//! SYNC_FLUSH batch as soon as its write is submitted (ARCHITECTURE 49). So a master that
//! dies before such a write lands, or loses power, can come back without bytes a slave
//! holds. Before its first report a version-2 slave therefore compares the master's history
//! with its own (`epochs::reconcile`): where they part, it persists a cut marker and restarts,
//! and store recovery cuts its log back there (ARCHITECTURE 50); otherwise it adopts the
//! master's history (persisted before the first byte it appends). Differences from upstream:
//! the first report is sent at once (upstream waits `haSendHeartbeatInterval`), and a slave
//! with an empty store receives the master's log from its first byte (upstream: from the
//! start of the master's last file).
//!
//! The slave reports after each appended transfer has been written (not yet fsynced, as
//! upstream's slave reports after its page-cache append) and at least every
//! `haSendHeartbeatInterval`; the master sends a heartbeat transfer after the same interval
//! of silence, closes a connection it heard nothing from for `haHousekeepingInterval`, and one
//! whose report is beyond its own data. A report out of sequence on the slave side (transfer
//! not at the slave's write end) closes the connection; the slave reconnects (every second)
//! and resumes from its own write end.
//!
//! # SYNC_MASTER
//! After a put is durable on the master (see the store), [`ShardHa::wait_replicated`] waits
//! until some slave of that shard reported the put's end offset: at once SLAVE_NOT_AVAILABLE
//! when no slave is connected to the shard or the best one is `haSlaveFallbehindMax` behind;
//! FLUSH_SLAVE_TIMEOUT after `syncFlushTimeout` (4.3's limit). One slave is enough.

pub mod epochs;
mod master;
pub mod meta;
mod slave;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;

pub use master::serve_ha_port;
pub use slave::run_replication;

use crate::broker::BrokerShard;

/// "SMHA".
pub const HANDSHAKE_MAGIC: u32 = 0x534D_4841;
/// Version 2 adds the master's epoch history to the answer (`epochs`); a master still serves
/// version 1 slaves (without it).
pub const PROTOCOL_VERSION: u16 = 2;
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;
pub const HANDSHAKE_LEN: usize = 16;
pub const ANSWER_LEN: usize = 8;
pub const TRANSFER_HEADER_LEN: usize = 12;
pub const STATUS_OK: u16 = 0;
pub const STATUS_SHARD_COUNT: u16 = 1;
pub const STATUS_BAD_REQUEST: u16 = 2;
/// How often a slave that is not connected retries.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// Errors of a replication connection (each ends that connection only).
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("{what} {peer}: {source}")]
    Io {
        what: &'static str,
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("protocol error with {peer}: {reason}")]
    Protocol { peer: String, reason: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Maps an I/O error of a replication connection.
pub(crate) fn io_err<'a>(
    what: &'static str,
    peer: &'a str,
) -> impl FnOnce(std::io::Error) -> HaError + 'a {
    move |source| HaError::Io {
        what,
        peer: peer.to_string(),
        source,
    }
}

/// HA settings (from the broker's properties).
#[derive(Debug, Clone)]
pub struct HaSettings {
    pub listen_port: u16,
    /// `haMasterAddress`: fixed master HA address instead of the nameserver's answer.
    pub master_address: Option<String>,
    pub heartbeat_interval: Duration,
    pub housekeeping_interval: Duration,
    pub transfer_batch_size: u32,
    pub slave_fallbehind_max: u64,
    /// SYNC_MASTER wait limit (4.3: `syncFlushTimeout`).
    pub sync_timeout: Duration,
}

/// The handshake a slave shard opens its connection with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub version: u16,
    pub shard: u16,
    pub shard_count: u16,
    pub broker_id: u32,
}

impl Handshake {
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0..4].copy_from_slice(&HANDSHAKE_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..8].copy_from_slice(&self.shard.to_be_bytes());
        b[8..10].copy_from_slice(&self.shard_count.to_be_bytes());
        b[12..16].copy_from_slice(&self.broker_id.to_be_bytes());
        b
    }

    /// `Err` names what is wrong (bad magic or version).
    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Result<Handshake, String> {
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != HANDSHAKE_MAGIC {
            return Err(format!(
                "bad handshake magic 0x{magic:08X} (not a shardmq slave? upstream Java slaves \
                 cannot replicate from shardmq)"
            ));
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if !(OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
            return Err(format!("unsupported HA protocol version {version}"));
        }
        Ok(Handshake {
            version,
            shard: u16::from_be_bytes([b[6], b[7]]),
            shard_count: u16::from_be_bytes([b[8], b[9]]),
            broker_id: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
        })
    }
}

pub fn encode_answer(status: u16, shard_count: u16) -> [u8; ANSWER_LEN] {
    let mut b = [0u8; ANSWER_LEN];
    b[0..4].copy_from_slice(&HANDSHAKE_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&status.to_be_bytes());
    b[6..8].copy_from_slice(&shard_count.to_be_bytes());
    b
}

/// (status, master shard count).
pub fn decode_answer(b: &[u8; ANSWER_LEN]) -> Result<(u16, u16), String> {
    let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if magic != HANDSHAKE_MAGIC {
        return Err(format!("bad answer magic 0x{magic:08X}"));
    }
    Ok((
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]),
    ))
}

pub fn encode_transfer_header(offset: u64, size: u32) -> [u8; TRANSFER_HEADER_LEN] {
    let mut b = [0u8; TRANSFER_HEADER_LEN];
    b[0..8].copy_from_slice(&offset.to_be_bytes());
    b[8..12].copy_from_slice(&size.to_be_bytes());
    b
}

pub fn decode_transfer_header(b: &[u8; TRANSFER_HEADER_LEN]) -> (u64, u32) {
    let mut o = [0u8; 8];
    o.copy_from_slice(&b[0..8]);
    (
        u64::from_be_bytes(o),
        u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    )
}

/// What a slave learned from its nameserver registration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MasterAddrs {
    /// The master's remoting address (metadata sync).
    pub master: Option<String>,
    /// The master's HA address (replication).
    pub ha: Option<String>,
}

/// Shard 0 of a slave got a REGISTER_BROKER answer: when it names another master than the
/// one known, every shard gets the new addresses (through the mesh). Empty values keep the
/// last known address (a master briefly gone from the nameserver usually comes back there).
pub fn on_register_answer(shard: &Rc<BrokerShard>, master: Option<&str>, ha: Option<&str>) {
    let mut next = shard.ha.master.borrow().clone();
    if let Some(m) = master.filter(|m| !m.is_empty()) {
        next.master = Some(m.to_string());
    }
    if let Some(h) = ha.filter(|h| !h.is_empty()) {
        next.ha = Some(h.to_string());
    }
    if next == *shard.ha.master.borrow() {
        return;
    }
    tracing::info!(master = ?next.master, ha = ?next.ha, "master address learned from the nameserver");
    *shard.ha.master.borrow_mut() = next.clone();
    let shard = shard.clone();
    glommio::spawn_local(async move {
        for target in 1..shard.mesh.shard_count() {
            let n = next.clone();
            let posted = shard
                .mesh
                .post_to(target, move |s| {
                    Box::pin(async move {
                        *s.ha.master.borrow_mut() = n;
                    })
                })
                .await;
            if let Err(e) = posted {
                tracing::warn!("cannot tell shard {target} the master address: {e}");
            }
        }
    })
    .detach();
}

/// Outcome of the SYNC_MASTER wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaWait {
    Replicated,
    SlaveNotAvailable,
    Timeout,
}

/// A broadcast wake-up: every waiter registered before `wake` is woken.
#[derive(Debug, Default)]
pub struct Signal {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub fn wake(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Resolves once `wake` was called after `seen` was read from `generation`.
    pub async fn changed(&self, seen: u64) {
        futures_lite::future::poll_fn(|cx: &mut Context<'_>| {
            if self.generation.get() != seen {
                Poll::Ready(())
            } else {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Replication state of one shard (on that shard's executor).
#[derive(Debug, Default)]
pub struct ShardHa {
    /// Master: connected slaves of this shard, connection id -> last reported offset.
    slaves: RefCell<HashMap<u64, u64>>,
    /// Master: the largest offset any slave of this shard reported.
    max_ack: Cell<u64>,
    /// Master: SYNC_MASTER sends waiting for an offset.
    waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
    /// Master: the store's written end moved (wakes the shippers).
    pub end_moved: Signal,
    next_conn: Cell<u64>,
    /// Slave: this shard's replication connection is up.
    pub connected: Cell<bool>,
    /// Slave: the master's addresses (from the nameserver).
    pub master: RefCell<MasterAddrs>,
    /// This shard's epoch history (`epochs`): on a master, with its current epoch last; on a
    /// slave, the history of the master it copies (None: none yet).
    pub epochs: RefCell<Option<epochs::Epochs>>,
}

impl ShardHa {
    pub fn with_epochs(epochs: Option<epochs::Epochs>) -> ShardHa {
        ShardHa {
            epochs: RefCell::new(epochs),
            ..ShardHa::default()
        }
    }

    pub fn slave_count(&self) -> usize {
        self.slaves.borrow().len()
    }

    pub fn max_ack(&self) -> u64 {
        self.max_ack.get()
    }

    fn add_slave(&self, offset: u64) -> u64 {
        let id = self.next_conn.get() + 1;
        self.next_conn.set(id);
        self.slaves.borrow_mut().insert(id, offset);
        self.on_ack(id, offset);
        id
    }

    fn remove_slave(&self, id: u64) {
        self.slaves.borrow_mut().remove(&id);
    }

    /// A slave reported `offset`: complete every wait it satisfies.
    fn on_ack(&self, id: u64, offset: u64) {
        if let Some(a) = self.slaves.borrow_mut().get_mut(&id) {
            *a = offset;
        }
        if offset <= self.max_ack.get() {
            return;
        }
        self.max_ack.set(offset);
        let done: Vec<oneshot::Sender<()>> = {
            let mut w = self.waiters.borrow_mut();
            let (ready, rest): (Vec<_>, Vec<_>) = w.drain(..).partition(|(o, _)| *o <= offset);
            *w = rest;
            ready.into_iter().map(|(_, tx)| tx).collect()
        };
        for tx in done {
            let _ = tx.send(());
        }
    }

    /// SYNC_MASTER: waits until a slave of this shard holds everything below `end` (local).
    pub async fn wait_replicated(
        &self,
        end: u64,
        fallbehind_max: u64,
        timeout: Duration,
    ) -> ReplicaWait {
        if self.max_ack.get() >= end {
            return ReplicaWait::Replicated;
        }
        if self.slaves.borrow().is_empty() || end - self.max_ack.get() >= fallbehind_max {
            return ReplicaWait::SlaveNotAvailable;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push((end, tx));
        match glommio::timer::timeout(timeout, async {
            let _ = rx.await;
            Ok(())
        })
        .await
        {
            Ok(()) => ReplicaWait::Replicated,
            Err(_) => {
                self.waiters
                    .borrow_mut()
                    .retain(|(_, tx)| !tx.is_canceled());
                ReplicaWait::Timeout
            }
        }
    }
}

/// Shared reference to a shard's replication state.
pub type ShardHaRef = Rc<ShardHa>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_headers_round_trip() {
        let h = Handshake {
            version: PROTOCOL_VERSION,
            shard: 3,
            shard_count: 8,
            broker_id: 2,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], b"SMHA");
        assert_eq!(Handshake::decode(&b).unwrap(), h);
        let mut bad = b;
        bad[0] = 0;
        assert!(Handshake::decode(&bad).unwrap_err().contains("magic"));
        // A version-1 slave is still served (its answer carries no epoch history).
        let v1 = Handshake { version: 1, ..h };
        assert_eq!(Handshake::decode(&v1.encode()).unwrap(), v1);
        let v3 = Handshake { version: 3, ..h };
        assert!(Handshake::decode(&v3.encode())
            .unwrap_err()
            .contains("version 3"));
        assert_eq!(
            decode_answer(&encode_answer(STATUS_SHARD_COUNT, 4)).unwrap(),
            (STATUS_SHARD_COUNT, 4)
        );
        let t = encode_transfer_header(2525, 0);
        // Upstream's heartbeat as the golden slave capture shows it.
        assert_eq!(hex(&t), "00000000000009dd00000000");
        assert_eq!(decode_transfer_header(&t), (2525, 0));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sync_wait_needs_a_slave_and_completes_on_ack() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let ha = std::rc::Rc::new(ShardHa::default());
                let t = Duration::from_millis(50);
                assert_eq!(
                    ha.wait_replicated(100, 1 << 20, t).await,
                    ReplicaWait::SlaveNotAvailable
                );
                let id = ha.add_slave(0);
                assert_eq!(
                    ha.wait_replicated(100, 1 << 20, t).await,
                    ReplicaWait::Timeout
                );
                assert_eq!(
                    ha.wait_replicated(1 << 21, 1 << 20, t).await,
                    ReplicaWait::SlaveNotAvailable
                );
                let h2 = ha.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    h2.on_ack(id, 150);
                })
                .detach();
                assert_eq!(
                    ha.wait_replicated(120, 1 << 20, Duration::from_secs(5))
                        .await,
                    ReplicaWait::Replicated
                );
                ha.remove_slave(id);
                // What a slave acknowledged stays acknowledged.
                assert_eq!(
                    ha.wait_replicated(150, 1 << 20, t).await,
                    ReplicaWait::Replicated
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
