//! The per-shard message store. Each shard (glommio executor) owns one `ShardStore`: its own
//! commit log `<commitlog_dir>/<shard>/` in upstream's record format and the consume queues of
//! the queues it owns. Every method runs on that shard's executor (Rc/RefCell inside, no borrow
//! held across an await).
//!
//! Physical offsets seen outside the store are GLOBAL: `shard << 48 | local offset` (DESIGN §3).
//!
//! Durability contract (DESIGN §3): `put` returns once its records are durable per
//! `FlushMode` (Sync: written + fdatasync by the group-commit flusher; Async: written), and only
//! then are they dispatched to consume queues, so a consumer never sees an unacknowledged record.
//! An I/O error fails every put of the batch and makes the store refuse puts until restart.
//!
//! Modules: `record` (pure record layout), `consume_queue` (20-byte units), `checkpoint`
//! (checkpoint + abort marker), `io` (glommio files, the ext4 probe), `commitlog` (appender,
//! flusher, reads), `completion` (a batch's completion shared by its puts, the flush-timeout
//! watchdog), `write_pool` (the flusher's aligned DMA buffers), `faults` (fault points),
//! `recovery` (startup scan), `retention` (file deletion, disk-full state), `index_format`
//! (pure index file layout), `index` (the per-shard key index: files, dispatch hook, queries)
//! and `replica` (master/slave replication: shipping and appending raw commit-log bytes).

pub mod checkpoint;
pub mod commitlog;
mod completion;
pub mod consume_queue;
pub mod faults;
pub mod index;
pub mod index_format;
#[cfg(test)]
mod index_tests;
pub mod io;
mod mapped;
mod reader;
pub mod record;
mod recovery;
pub mod replica;
pub mod retention;
#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;
pub mod write_pool;
#[cfg(test)]
mod write_tests;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use checkpoint::{abort_exists, create_abort, remove_abort};
pub use commitlog::{ArrivalListener, EndListener, ShardStore};
pub use index::{IndexConfig, QueryMessageResult, ShardIndex};
pub use recovery::{cut_marker_path, CUT_MARKER_FILE};
pub use retention::RetentionConfig;

/// Bits of a global physical offset that hold the shard-local offset.
pub const LOCAL_OFFSET_BITS: u32 = 48;
pub const LOCAL_OFFSET_MASK: u64 = (1 << LOCAL_OFFSET_BITS) - 1;
/// How often consume queues are written out and the checkpoint updated.
pub const CQ_FLUSH_INTERVAL_MS: u64 = 1000;
/// Group commit closes a batch once it holds this many bytes (the default of
/// `groupCommitMaxBytes`); otherwise it closes when the shard has no more ready work.
pub const GROUP_COMMIT_MAX_BYTES: usize = 1 << 20;
/// Upper bound of CQ entries one `get_messages` scans (upstream: 16000 bytes of CQ minimum).
pub const GET_SCAN_ENTRIES_MIN: u32 = 16000 / 20;

/// Store settings (from the broker's properties).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub commitlog_dir: PathBuf,
    pub consume_queue_dir: PathBuf,
    pub checkpoint_path: PathBuf,
    pub commitlog_file_size: u64,
    pub consume_queue_file_size: u64,
    pub flush_mode: FlushMode,
    pub flush_interval_ms: u64,
    pub sync_flush_timeout_ms: u64,
    /// Whole-record limit (4.3 rule).
    pub max_message_size: u32,
    pub group_commit_max_bytes: usize,
    /// A send is refused as busy when the oldest group-commit batch still waiting to be written
    /// has waited this long (upstream's `osPageCacheBusyTimeOutMills`, 1000 ms).
    pub busy_timeout_ms: u64,
    pub read_cache_bytes: usize,
    /// `warmMapedFileEnable` in Sync mode: new commit-log files (and the tail recovery cuts)
    /// are written with zeros, with an fdatasync every this many bytes (0: at the end only;
    /// upstream's `flushLeastPagesWhenWarmMapedFile` pages); None: files stay fallocated
    /// (ARCHITECTURE 32, 46).
    pub warm_commitlog: Option<u64>,
    /// Sync mode: the commit-log file being appended to is opened `O_DSYNC`, so a group
    /// commit is one direct write that completes durable (the kernel syncs in the write's
    /// completion) instead of a write, a return to the shard, then an fdatasync
    /// (ARCHITECTURE 47). Off: a master's slaves copy a batch while its fdatasync runs
    /// (ARCHITECTURE 25); on, they get it once durable.
    pub dsync_writes: bool,
    /// Sync mode: a batch's bytes are handed to the read cache and the HA shipper when its
    /// write is submitted, not when it completes (`haShipBeforeWrite`, ARCHITECTURE 49).
    pub ship_before_write: bool,
    /// The message-key index (index.rs).
    pub index: IndexConfig,
}

impl StoreConfig {
    /// `warm_commitlog` where it applies: Sync mode only (Async writes through the page cache,
    /// ARCHITECTURE 46).
    pub fn warm_files(&self) -> Option<u64> {
        self.warm_commitlog
            .filter(|_| self.flush_mode == FlushMode::Sync)
    }

    /// `dsync_writes` where it applies: Sync mode only.
    pub fn dsync(&self) -> bool {
        self.dsync_writes && self.flush_mode == FlushMode::Sync
    }

    /// Checks the relationships the store relies on.
    pub fn validate(&self) -> Result<(), StoreError> {
        let fs = self.commitlog_file_size;
        if fs == 0 || !fs.is_multiple_of(io::DMA_ALIGN) {
            return Err(StoreError::Config(format!(
                "commitlog_file_size {fs} must be a positive multiple of {}",
                io::DMA_ALIGN
            )));
        }
        if fs > LOCAL_OFFSET_MASK / 2 {
            return Err(StoreError::Config(format!(
                "commitlog_file_size {fs} too large"
            )));
        }
        if fs < 2 * io::DMA_ALIGN {
            return Err(StoreError::Config(format!(
                "commitlog_file_size {fs} too small"
            )));
        }
        if self.consume_queue_file_size < consume_queue::CQ_UNIT {
            return Err(StoreError::Config(format!(
                "consume_queue_file_size {} is smaller than one unit",
                self.consume_queue_file_size
            )));
        }
        self.index.validate()?;
        if self.group_commit_max_bytes == 0 {
            return Err(StoreError::Config(
                "group_commit_max_bytes must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    Sync,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// One message of a put.
#[derive(Debug, Clone)]
pub struct PutMessage {
    pub body: Bytes,
    pub flag: i32,
    pub properties: String,
    pub tags_code: i64,
}

/// A put: all messages go to one topic/queue and get consecutive queue offsets.
#[derive(Debug, Clone)]
pub struct PutBatch {
    pub topic: String,
    pub queue_id: u32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddrV4,
    pub store_host: SocketAddrV4,
    pub reconsume_times: i32,
    pub prepared_tx_offset: i64,
    pub messages: Vec<PutMessage>,
    /// false = the WAIT=false property: resolve once written, do not wait for fdatasync.
    pub wait_durable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    Ok,
    FlushDiskTimeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub status: PutStatus,
    pub first_queue_offset: u64,
    /// Global physical offsets, one per message.
    pub phys_offsets: Vec<u64>,
    pub store_timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
    OffsetFoundNull,
}

impl GetStatus {
    /// Upstream's enum name (the pull response remark).
    pub fn as_str(self) -> &'static str {
        match self {
            GetStatus::Found => "FOUND",
            GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// Raw stored records, byte-identical to the commit log.
    pub records: Vec<Bytes>,
    /// How far the reader is behind the writer, in commit-log bytes: the shard log's visible
    /// end minus the end of the last consume-queue entry this read passed (returned or
    /// filtered out). `None` when the read passed no entry. The pull handler's "consumer
    /// lags" test (`broker::suggest`, spec remoting.md §8.4).
    pub behind_bytes: Option<u64>,
}

/// Runtime counters of one shard store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub put_count: u64,
    pub put_message_count: u64,
    pub put_bytes: u64,
    /// Commit-log writes issued (one per group-commit batch and file).
    pub write_count: u64,
    /// Commit-log fdatasyncs issued.
    pub fsync_count: u64,
    pub min_local_offset: u64,
    /// End of encoded data (including not yet durable).
    pub max_local_offset: u64,
    /// End of data visible to readers (durable per the flush mode).
    pub visible_local_offset: u64,
    pub queue_count: u64,
    /// Puts that had to wait for the next commit-log file to be created (a roll that stalled;
    /// stays 0 while preallocation keeps a file ahead).
    pub roll_waits: u64,
    /// Puts refused as busy (back-pressure, `refuse_if_busy`).
    pub busy_refusals: u64,
    /// DMA write buffers allocated / reused from the shard's write pool.
    pub write_buffers_allocated: u64,
    pub write_buffers_reused: u64,
    /// Reads of pulls and lookups served from the read cache / from the file (the HA
    /// shipper's reads of the file count in `file_reads`; its hits in the cache do not).
    pub cache_reads: u64,
    pub file_reads: u64,
    /// Commit-log bytes the opening recovery scanned (0 after a clean stop).
    pub recovery_scanned_bytes: u64,
}

/// Errors of the store. Clone: one I/O failure is reported to every put of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("corrupt {path} at offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("store not writable: {0}")]
    NotWritable(String),
    #[error("message illegal: {0}")]
    MessageIllegal(String),
    #[error("store config: {0}")]
    Config(String),
    #[error("store is shut down")]
    ShutDown,
    /// Back-pressure: the batches waiting to be written are too old or too many. The text is
    /// upstream's fast-failure remark (SYSTEM_BUSY), with what exactly was over the limit.
    #[error("[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: {waited_ms}ms, size of queue: {batches} ({why})")]
    Busy {
        waited_ms: u64,
        batches: usize,
        why: String,
    },
    /// The disk is over the warning ratio (retention.rs); the text is upstream's remark, with
    /// the used ratios of the commit-log, consume-queue and index partitions (-1: unknown).
    #[error("service not available now, maybe disk full, CL: {commitlog:5.2} CQ: {consume_queue:5.2} INDEX: {index:5.2}, maybe your broker machine memory too small.")]
    DiskFull {
        commitlog: f64,
        consume_queue: f64,
        index: f64,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, e: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.display().to_string(),
            source: Arc::new(e),
        }
    }
}

/// Global physical offset of a shard-local one.
pub fn global_offset(shard: ShardId, local: u64) -> u64 {
    assert!(
        local <= LOCAL_OFFSET_MASK,
        "invariant: local offset fits 48 bits"
    );
    (u64::from(shard.0) << LOCAL_OFFSET_BITS) | local
}

/// Shard and local offset of a global physical offset.
pub fn split_offset(global: u64) -> (ShardId, u64) {
    (
        ShardId((global >> LOCAL_OFFSET_BITS) as u16),
        global & LOCAL_OFFSET_MASK,
    )
}
