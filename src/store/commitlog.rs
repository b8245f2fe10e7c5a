//! `ShardStore`: one shard's commit log (appender with group commit, flusher, read cache, DMA
//! reads) and its consume queues. Runs entirely on the owning shard's executor.
//!
//! Contracts:
//! - `put` encodes into the pending batch (no I/O), wakes the flusher and waits. The flusher is
//!   the only writer: it takes the oldest pending batch (everything that arrived while the
//!   previous I/O ran, up to `group_commit_max_bytes`), issues one write per file touched
//!   (Sync mode: aligned direct I/O, then one fdatasync per file; Async mode: into the page
//!   cache, a small chunk copied into the file's shared mapping (mapped.rs), a large one with a
//!   buffered write; fdatasync by the timer). Once written (`after_write`) the batch's
//!   bytes go to the read cache and the HA shipper may send them (`written_end`); once durable
//!   (`make_visible`) they are exposed: consume-queue dispatch, arrival listener, waiters.
//!   Batches are flushed strictly in order.
//! - Sync mode: the partially filled tail page stays in memory (`Log::tail`) and is rewritten,
//!   zero padded, with the next batch; recovery therefore reads a zero TOTALSIZE as the end of
//!   the log (Async mode writes exact bytes; the file's unwritten rest reads as zeros too).
//! - Readers (reader.rs) see bytes below `visible_end` only; the HA shipper (replica.rs) reads
//!   up to `written_end`.
//! - Files are created at full size ahead of need: one file is always ready beyond the current
//!   one (created in the background when the current one is taken), so a roll never waits.
//! - Group commit allocates nothing per message in steady state: records are encoded straight
//!   into the open batch's chunk vector (recycled when the read cache is off, handed to the
//!   read cache as is otherwise; sized from the previous batch), DMA write buffers come from
//!   the shard's `WritePool`, and emptied batches are reused. A put waits on its batch's shared
//!   completion (completion.rs: no channel or timer per put); what remains per put: its result.
//!   Async mode copies each small chunk into the file's mapping (that copy is the write) and
//!   each large one into the buffer its buffered write owns; the chunk itself goes on to the
//!   read cache.
//! - An I/O error (write or fdatasync, real or injected through `faults`) fails every put of
//!   its batch and of the batches queued behind it, and the store refuses puts from then on
//!   (`StoreError::NotWritable`); reads of visible data go on.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::io::{BufferedFile, DmaFile};

use super::checkpoint::{Checkpoint, ShardSlot};
use super::completion::{BatchDone, PutOutcome, PutWait};
use super::consume_queue::{self, ConsumeQueue, CqEntry, CqWrite};
use super::faults::{Faults, FAULTS_ENV};
use super::io::{
    align_down, align_up, create_dma_full, gio_err, remove_durably, reopen_dsync, segment_name,
    DMA_ALIGN,
};
use super::mapped::MappedFile;
use super::record::{self, RecordFields, BLANK_LEN, PROPERTIES_LEN_MAX, TOPIC_LEN_MAX};
use super::write_pool::{write_pool_limit, WritePool, WritePoolStats};
use super::{
    global_offset, FlushMode, PutBatch, PutResult, PutStatus, ShardId, StoreConfig, StoreError,
    StoreStats, CQ_FLUSH_INTERVAL_MS,
};

/// One commit-log file.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub start: u64,
    pub file: Rc<DmaFile>,
    pub path: PathBuf,
}

/// Encoded bytes waiting for the flusher, all inside one segment.
#[derive(Debug)]
pub(super) struct Chunk {
    seg_start: u64,
    pos: u64,
    bytes: Vec<u8>,
}

/// What one write of a flush puts at `pos` in the file starting at `seg_start`: a chunk's
/// bytes, still in the batch's vector or already in the read cache (`ship_before_write`).
struct Piece<'a> {
    seg_start: u64,
    pos: u64,
    bytes: &'a [u8],
}

/// A chunk handed to the read cache: the same bytes as the cache entry, kept in the batch for
/// its write (when handed over before it) and for the index dispatch at `make_visible`.
#[derive(Debug)]
pub(super) struct CachedChunk {
    seg_start: u64,
    pos: u64,
    bytes: Bytes,
}

/// The consume-queue entries of one put: `entries[from..to]` of the batch, queue offsets
/// consecutive from `first_offset` (one key per put, not per message).
#[derive(Debug)]
pub(super) struct DispatchItem {
    pub(super) queue: (String, u32),
    pub(super) first_offset: u64,
    pub(super) from: usize,
    pub(super) to: usize,
}

#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) chunks: Vec<Chunk>,
    /// Shared by the puts of this batch (completion.rs): no channel or timer per put.
    pub(super) done: Rc<BatchDone>,
    /// Replicated appends (replica.rs), answered once written.
    pub(super) acks: Vec<oneshot::Sender<Result<(), StoreError>>>,
    pub(super) dispatch: Vec<DispatchItem>,
    pub(super) entries: Vec<CqEntry>,
    /// The chunks once the read cache holds them (`cache_chunks`).
    pub(super) written: Vec<CachedChunk>,
    pub(super) bytes: usize,
    pub(super) end: u64,
    pub(super) last_store_timestamp: i64,
    /// When its first record was encoded (back-pressure measures the oldest waiting batch).
    pub(super) opened: Option<Instant>,
}

impl Batch {
    /// What the flush writes, in order: the chunks, or the cache entries they became when
    /// they went to the cache before the write (one of the two lists is empty).
    fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let chunks = self
            .chunks
            .iter()
            .map(|c| (c.seg_start, c.pos, &c.bytes[..]));
        let cached = self
            .written
            .iter()
            .map(|c| (c.seg_start, c.pos, &c.bytes[..]));
        chunks.chain(cached).map(|(seg_start, pos, bytes)| Piece {
            seg_start,
            pos,
            bytes,
        })
    }
}

impl Drop for Batch {
    /// A batch dropped before it was flushed (the store went away) fails its puts; after a
    /// flush this does nothing (the done is final).
    fn drop(&mut self) {
        self.done.fail(StoreError::ShutDown);
    }
}

/// Mutable commit-log state.
#[derive(Debug)]
pub(crate) struct Log {
    pub segments: Vec<Segment>,
    pub next_segment: Option<Segment>,
    pub write_pos: u64,
    pub visible_end: u64,
    /// End of the bytes whose write completed (in the file, or in the page cache in Async
    /// mode): what a `kill -9` of this process cannot lose; `visible_end` trails it by the
    /// fdatasync in Sync mode.
    pub written_end: u64,
    /// End of the bytes the HA shipper may send (ARCHITECTURE 25, 49): `written_end`, or in
    /// Sync mode the end of the batch whose write was submitted (its bytes are in the read
    /// cache), so the slave's copy overlaps the master's write and sync.
    pub ship_end: u64,
    pub synced_end: u64,
    pub tail: Option<(u64, Vec<u8>)>,
    pub last_store_timestamp: i64,
    pub synced_store_timestamp: i64,
    pub(super) batches: VecDeque<Batch>,
    flushing: bool,
    /// The completion of the batch the flusher holds (for the timeout watchdog).
    in_flight: Option<Rc<BatchDone>>,
    pub(crate) cache: VecDeque<(u64, Bytes)>,
    cache_bytes: usize,
    /// Files written since their last fdatasync (Async mode).
    dirty: Vec<Segment>,
    /// Emptied chunk vectors kept for the next batches (no allocation per batch when the read
    /// cache is off) and emptied batches (their vectors keep their capacity).
    pub(super) spare_chunks: ChunkPool,
    pub(super) spare_batches: Vec<Batch>,
    pub(crate) not_writable: Option<String>,
    pub(crate) closed: bool,
}

impl Log {
    pub(crate) fn new(segments: Vec<Segment>, end: u64, tail: Option<(u64, Vec<u8>)>) -> Self {
        Log {
            segments,
            next_segment: None,
            write_pos: end,
            visible_end: end,
            written_end: end,
            ship_end: end,
            synced_end: end,
            tail,
            last_store_timestamp: 0,
            synced_store_timestamp: 0,
            batches: VecDeque::new(),
            flushing: false,
            in_flight: None,
            cache: VecDeque::new(),
            cache_bytes: 0,
            dirty: Vec::new(),
            spare_chunks: ChunkPool::default(),
            spare_batches: Vec::new(),
            not_writable: None,
            closed: false,
        }
    }

    pub(crate) fn segment_for(&self, local: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.start <= local);
        self.segments.get(i.checked_sub(1)?)
    }
}

/// A queue of this shard: its consume queue plus the next offset handed to a put.
#[derive(Debug)]
pub(crate) struct Queue {
    pub cq: ConsumeQueue,
    pub reserved: u64,
}

/// A level-triggered wake-up for the single flusher task.
#[derive(Debug, Default)]
pub(super) struct Notify {
    flag: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub(super) fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        futures_lite::future::poll_fn(move |cx: &mut Context<'_>| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Called with (topic, queue id) after new entries of that queue were dispatched.
pub type ArrivalListener = Box<dyn Fn(&str, u32)>;

/// Called with the shard's new visible end (local offset) after a batch became visible.
pub type EndListener = Box<dyn Fn(u64)>;

/// The per-shard store. See the module doc for the contracts.
pub struct ShardStore {
    pub(crate) cfg: StoreConfig,
    pub(crate) shard: ShardId,
    pub(crate) log: RefCell<Log>,
    pub(crate) queues: RefCell<HashMap<(String, u32), Queue>>,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) index: super::index::ShardIndex,
    pub(crate) shard_dir: PathBuf,
    stats: Cell<StoreStats>,
    /// Group-commit batches whose write plus fdatasync took [`SLOW_FLUSH`] or more (when and
    /// how long; the `Stall` cause is unused): a latency outlier of a durable send that the
    /// shard's loop did not see is usually the device's, and this says so.
    slow_flushes: RefCell<crate::runtime::lag::Stalls>,
    pub(super) notify: Rc<Notify>,
    /// Wakes the flush-timeout watchdog when puts start waiting (completion.rs).
    watch: Rc<Notify>,
    me: Weak<ShardStore>,
    listener: RefCell<Option<Rc<ArrivalListener>>>,
    /// Called with the new visible end after each batch became visible (HA shipper hook).
    end_listener: RefCell<Option<Rc<EndListener>>>,
    /// Replication: a record cut by the last transfer (replica.rs).
    pub(super) replica_carry: RefCell<super::replica::ReplicaCarry>,
    segment_lock: glommio::sync::Semaphore,
    pub(crate) cq_lock: glommio::sync::Semaphore,
    pub(crate) retention: super::retention::RetentionState,
    /// Fault points armed for this shard (tests; `SHARDMQ_FAULTS`).
    pub(crate) faults: Faults,
    /// Aligned buffers for the flusher's DMA writes (write_pool.rs).
    pool: RefCell<WritePool>,
    /// Async mode: the file being written, mapped (`write_mapped`, ARCHITECTURE 41), and the
    /// next file's mapping, prepared with the file.
    mapped: RefCell<Option<Rc<MappedFile>>>,
    next_mapped: RefCell<Option<Rc<MappedFile>>>,
    /// Async mode: the page-cache handle of the file, for chunks of [`BUFFERED_WRITE_MIN`] or
    /// more (`write_page_cache`).
    buffered: RefCell<Option<(u64, Rc<BufferedFile>)>>,
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
type GioResult<T> = glommio::Result<T, ()>;

impl ShardStore {
    /// Opens the shard's store, recovering from disk; `abnormal` = the abort marker existed.
    /// Starts the flusher and the periodic CQ/checkpoint (and Async fdatasync) tasks.
    /// The fault points come from `SHARDMQ_FAULTS` (faults.rs); a list that does not parse
    /// stops the open with an error naming the variable.
    pub async fn open(
        cfg: StoreConfig,
        shard: ShardId,
        abnormal: bool,
    ) -> Result<Rc<ShardStore>, StoreError> {
        let faults = Faults::from_env().map_err(|e| StoreError::Config(e.to_string()))?;
        if faults.any() {
            tracing::warn!(
                shard = shard.0,
                "fault points armed from {FAULTS_ENV}: {faults:?} (test only; this store WILL fail on purpose)"
            );
        }
        Self::open_with_faults(cfg, shard, abnormal, faults).await
    }

    /// `open` with explicit fault points (unit tests, benchmarks).
    pub async fn open_with_faults(
        cfg: StoreConfig,
        shard: ShardId,
        abnormal: bool,
        faults: Faults,
    ) -> Result<Rc<ShardStore>, StoreError> {
        cfg.validate()?;
        // These two lines mark where a start that never reaches "commit log recovered" stopped
        // (seen once in a local crash-loop run: one shard of a restart after kill -9 logged
        // nothing for 30 s, the other recovered at once).
        tracing::info!(shard = shard.0, abnormal, "opening the store's index");
        let index = super::index::ShardIndex::open(&cfg.index, shard).await?;
        tracing::info!(shard = shard.0, "index open; recovering the commit log");
        let mut r = super::recovery::recover(&cfg, shard, abnormal, &index).await?;
        if cfg.dsync() {
            // Only the newest file is written to; recovery cut (and zeroed) its tail through
            // the plain handle.
            if let Some(mut last) = r.segments.pop() {
                last.file = reopen_dsync(last.file, &last.path).await?;
                r.segments.push(last);
            }
        }
        let mut log = Log::new(r.segments, r.end, r.tail);
        log.last_store_timestamp = r.last_store_timestamp;
        log.synced_store_timestamp = r.last_store_timestamp;
        let min = log.segments.first().map_or(0, |s| s.start);
        let pool_limit = write_pool_limit(cfg.group_commit_max_bytes);
        let store = Rc::new_cyclic(|me| ShardStore {
            me: me.clone(),
            slow_flushes: RefCell::default(),
            stats: Cell::new(StoreStats {
                min_local_offset: min,
                max_local_offset: r.end,
                visible_local_offset: r.end,
                queue_count: r.queues.len() as u64,
                recovery_scanned_bytes: r.scanned_bytes,
                ..StoreStats::default()
            }),
            cfg,
            shard,
            log: RefCell::new(log),
            queues: RefCell::new(r.queues),
            checkpoint: r.checkpoint,
            index,
            shard_dir: r.shard_dir,
            notify: Rc::new(Notify::default()),
            watch: Rc::new(Notify::default()),
            listener: RefCell::new(None),
            end_listener: RefCell::new(None),
            replica_carry: super::replica::new_carry(),
            segment_lock: glommio::sync::Semaphore::new(1),
            cq_lock: glommio::sync::Semaphore::new(1),
            retention: super::retention::RetentionState::default(),
            faults,
            pool: RefCell::new(WritePool::new(pool_limit)),
            mapped: RefCell::new(None),
            next_mapped: RefCell::new(None),
            buffered: RefCell::new(None),
        });
        if store.log.borrow().segments.is_empty() {
            store.ensure_next_segment(r.end).await?;
            store.install_next_segment();
        }
        // Entries below the commit-log head (files deleted by retention) are not readable.
        store.correct_cq_min_offsets();
        // Not clean any more until the next shutdown.
        store.flush_consume_queues(false).await?;
        if let Some(marker) = r.cut_marker {
            // The cut and a checkpoint at or below it are on disk: the marker has done its work
            // (left in place, a later start would cut what was replicated since).
            remove_durably(&marker)?;
        }
        spawn_flusher(Rc::downgrade(&store), store.notify.clone());
        spawn_watchdog(Rc::downgrade(&store), store.watch.clone());
        spawn_periodic(Rc::downgrade(&store));
        store.maybe_preallocate();
        Ok(store)
    }

    pub(crate) fn file_size(&self) -> u64 {
        self.cfg.commitlog_file_size
    }

    pub(crate) fn update_stats(&self, f: impl FnOnce(&mut StoreStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Stores a batch. See the module doc for when it resolves.
    ///
    /// # Errors
    /// `MessageIllegal` (limits), `NotWritable` (after an I/O error), `Io` (this batch's I/O
    /// failed), `ShutDown`.
    pub async fn put(&self, mut batch: PutBatch) -> Result<PutResult, StoreError> {
        self.refuse_if_disk_full()?;
        let total = self.put_check(&batch)?;
        let (wait, result) = loop {
            let need = {
                let mut log = self.log.borrow_mut();
                if let Some(reason) = &log.not_writable {
                    return Err(StoreError::NotWritable(reason.clone()));
                }
                if log.closed {
                    return Err(StoreError::ShutDown);
                }
                // One clock read serves the busy check and the put's deadline (no await
                // between here and the put joining its batch).
                let now = Instant::now();
                self.refuse_if_busy(&log, now)?;
                let seg_end = self.current_segment_end(&log);
                if log.write_pos + total + u64::from(BLANK_LEN) > seg_end
                    && log.next_segment.is_none()
                {
                    Some(seg_end)
                } else {
                    break self.put_encode(&mut log, &mut batch, total, now);
                }
            };
            if let Some(seg_end) = need {
                self.update_stats(|s| s.roll_waits += 1);
                self.ensure_next_segment(seg_end).await?;
            }
        };
        self.notify.notify();
        self.watch.notify();
        self.maybe_preallocate();
        if self.faults.ack_before_durable {
            // CANARY (faults.rs): acknowledge before any write, so a kill -9 loses acked data.
            return Ok(result);
        }
        match wait.await? {
            PutOutcome::Done => Ok(result),
            PutOutcome::TimedOut => Ok(PutResult {
                status: PutStatus::FlushDiskTimeout,
                ..result
            }),
        }
    }

    pub(super) fn current_segment_end(&self, log: &Log) -> u64 {
        log.segments
            .last()
            .map_or(0, |s| s.start + self.file_size())
    }

    /// Validates limits; returns the batch's encoded size.
    fn put_check(&self, b: &PutBatch) -> Result<u64, StoreError> {
        if b.topic.is_empty() || b.topic.len() > TOPIC_LEN_MAX {
            return Err(StoreError::MessageIllegal(format!(
                "topic length {} not in 1..={TOPIC_LEN_MAX}",
                b.topic.len()
            )));
        }
        if b.messages.is_empty() {
            return Err(StoreError::MessageIllegal("empty batch".into()));
        }
        let file_room = self.file_size() - u64::from(BLANK_LEN);
        let mut total = 0u64;
        for (i, m) in b.messages.iter().enumerate() {
            if m.properties.len() > PROPERTIES_LEN_MAX {
                return Err(StoreError::MessageIllegal(format!(
                    "message {i}: properties length {} > {PROPERTIES_LEN_MAX}",
                    m.properties.len()
                )));
            }
            let len = record::record_len(m.body.len(), b.topic.len(), m.properties.len());
            if len > u64::from(self.cfg.max_message_size) {
                return Err(StoreError::MessageIllegal(format!(
                    "message {i}: record size {len} > maxMessageSize {}",
                    self.cfg.max_message_size
                )));
            }
            total += len;
        }
        if total > file_room {
            return Err(StoreError::MessageIllegal(format!(
                "batch size {total} does not fit in a commit-log file ({file_room} usable bytes)"
            )));
        }
        Ok(total)
    }

    /// Encodes the batch at the end of the log (rolling to the ready next file if needed),
    /// queues it for the flusher. No I/O, no await. Takes the topic out of `b` (it becomes
    /// the queue key of the dispatch entry: no copy).
    fn put_encode(
        &self,
        log: &mut Log,
        b: &mut PutBatch,
        total: u64,
        now: Instant,
    ) -> (PutWait, PutResult) {
        let seg_end = self.current_segment_end(log);
        if log.write_pos + total + u64::from(BLANK_LEN) > seg_end {
            self.roll(log, seg_end);
        }
        let seg_start = log.segments.last().map_or(0, |s| s.start);
        let store_timestamp = now_ms().max(log.last_store_timestamp);
        log.last_store_timestamp = store_timestamp;
        let dispatched = (b.sys_flag & record::SYSFLAG_TX_MASK) == record::SYSFLAG_TX_NOT
            || (b.sys_flag & record::SYSFLAG_TX_MASK) == record::SYSFLAG_TX_COMMIT;
        let key = (std::mem::take(&mut b.topic), b.queue_id);
        let n = b.messages.len() as u64;
        // One lookup (no key copy) reserves the queue offsets; a new queue copies the key once.
        let first_queue_offset = {
            let mut queues = self.queues.borrow_mut();
            let add = if dispatched { n } else { 0 };
            match queues.get_mut(&key) {
                Some(q) => {
                    let first = q.reserved;
                    q.reserved += add;
                    first
                }
                None => {
                    let cq = ConsumeQueue::new(
                        &self.cfg.consume_queue_dir,
                        &key.0,
                        key.1,
                        self.cfg.consume_queue_file_size,
                    );
                    queues.insert(key.clone(), Queue { cq, reserved: add });
                    0
                }
            }
        };
        let topic = key.0.as_str();
        let mut phys_offsets = Vec::with_capacity(b.messages.len());
        let start = log.write_pos;
        let max_bytes = self.cfg.group_commit_max_bytes;
        // Records are encoded straight into the open batch's chunk: no buffer per put.
        let Log {
            batches,
            spare_chunks,
            spare_batches,
            ..
        } = log;
        let batch = open_batch(batches, spare_batches, max_bytes);
        let entries_from = batch.entries.len();
        let buf = chunk_for(&mut batch.chunks, spare_chunks, seg_start, start, total);
        let mut pos = start;
        for (i, m) in b.messages.iter().enumerate() {
            let phys = global_offset(self.shard, pos);
            let queue_offset = if dispatched {
                first_queue_offset + i as u64
            } else {
                0
            };
            let before = buf.len();
            record::encode(
                &RecordFields {
                    queue_id: b.queue_id as i32,
                    flag: m.flag,
                    queue_offset: queue_offset as i64,
                    phys_offset: phys as i64,
                    sys_flag: b.sys_flag,
                    born_timestamp: b.born_timestamp,
                    born_host: b.born_host,
                    store_timestamp,
                    store_host: b.store_host,
                    reconsume_times: b.reconsume_times,
                    prepared_tx_offset: b.prepared_tx_offset,
                    body: &m.body,
                    topic,
                    properties: &m.properties,
                },
                buf,
            );
            let size = (buf.len() - before) as u32;
            if dispatched {
                batch.entries.push(CqEntry {
                    phys,
                    size,
                    tags_code: m.tags_code,
                });
            }
            phys_offsets.push(phys);
            pos += u64::from(size);
        }
        assert_eq!(
            pos - start,
            total,
            "invariant: encoded size equals checked size"
        );
        if dispatched {
            let to = batch.entries.len();
            batch.dispatch.push(DispatchItem {
                queue: key,
                first_offset: first_queue_offset,
                from: entries_from,
                to,
            });
        }
        let timeout = Duration::from_millis(self.cfg.sync_flush_timeout_ms.max(1));
        // Taken as the put joins its batch, so deadlines grow in batch order (the watchdog
        // relies on it).
        let wait = batch.done.join(now + timeout, b.wait_durable);
        batch.bytes += total as usize;
        batch.end = pos;
        batch.last_store_timestamp = store_timestamp;
        log.write_pos = pos;
        self.update_stats(|s| {
            s.put_count += 1;
            s.put_message_count += n;
            s.put_bytes += total;
            s.max_local_offset = pos;
        });
        let result = PutResult {
            status: PutStatus::Ok,
            first_queue_offset: if dispatched { first_queue_offset } else { 0 },
            phys_offsets,
            store_timestamp,
        };
        (wait, result)
    }

    /// Ends the current file with a blank marker and moves to the prepared next file.
    pub(super) fn roll(&self, log: &mut Log, seg_end: u64) {
        let remaining = seg_end - log.write_pos;
        let seg_start = log.segments.last().map_or(0, |s| s.start);
        if remaining > 0 {
            assert!(
                remaining >= u64::from(BLANK_LEN),
                "invariant: room for the blank marker"
            );
            let at = log.write_pos;
            let Log {
                batches,
                spare_chunks,
                spare_batches,
                ..
            } = log;
            let batch = open_batch(batches, spare_batches, self.cfg.group_commit_max_bytes);
            let buf = chunk_for(
                &mut batch.chunks,
                spare_chunks,
                seg_start,
                at,
                u64::from(BLANK_LEN),
            );
            record::encode_blank(remaining as u32, buf);
            batch.bytes += BLANK_LEN as usize;
            batch.end = seg_end;
        }
        let next = log
            .next_segment
            .take()
            .expect("invariant: roll only with a ready next file");
        assert_eq!(
            next.start, seg_end,
            "invariant: next file starts at the end of the current"
        );
        log.segments.push(next);
        log.write_pos = seg_end;
    }

    fn install_next_segment(&self) {
        let mut log = self.log.borrow_mut();
        if log.segments.is_empty() {
            if let Some(s) = log.next_segment.take() {
                log.segments.push(s);
            }
        }
    }

    /// Creates the file starting at `start` (the end of the current one) unless it exists.
    pub(super) async fn ensure_next_segment(&self, start: u64) -> Result<(), StoreError> {
        let _permit = self
            .segment_lock
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::NotWritable(format!("segment lock: {e}")))?;
        let ready = self
            .log
            .borrow()
            .next_segment
            .as_ref()
            .is_some_and(|s| s.start == start)
            || self
                .log
                .borrow()
                .segments
                .last()
                .is_some_and(|s| s.start >= start);
        if ready {
            return Ok(());
        }
        let path = self.shard_dir.join(segment_name(start));
        let mut file = create_dma_full(&path, self.file_size(), self.cfg.warm_files()).await?;
        if self.cfg.dsync() {
            file = reopen_dsync(file, &path).await?;
        }
        if self.cfg.flush_mode == FlushMode::Async {
            // Mapped and its first pages populated now, so a roll does not wait for it.
            match MappedFile::open(start, &path, 0).await {
                Ok(m) => {
                    if let Some(old) = self.next_mapped.replace(Some(m)) {
                        old.retire();
                    }
                }
                Err(e) => tracing::warn!(
                    shard = self.shard.0,
                    "mapping the next commit-log file ahead: {e} (retried at the roll)"
                ),
            }
        }
        self.log.borrow_mut().next_segment = Some(Segment { start, file, path });
        Ok(())
    }

    pub(super) fn maybe_preallocate(self: &ShardStore) {
        let log = self.log.borrow();
        let Some(cur) = log.segments.last() else {
            return;
        };
        // Always one file ahead: the next file is created as soon as the current one is
        // taken, so a roll finds it ready and never waits for a create + fallocate + fsync.
        if log.next_segment.is_some() || self.segment_lock.available() == 0 {
            return;
        }
        let start = cur.start + self.file_size();
        drop(log);
        if let Some(me) = self.me.upgrade() {
            glommio::spawn_local(async move {
                if let Err(e) = me.ensure_next_segment(start).await {
                    tracing::warn!(shard = me.shard.0, "preallocating commit-log file: {e}");
                }
            })
            .detach();
        }
    }

    /// Back-pressure (upstream's fast failure): refuses a new put while the oldest batch that
    /// waits to be written has waited `busy_timeout_ms`, or while [`MAX_WAITING_BATCHES`] wait
    /// (each holds up to `group_commit_max_bytes`: this bounds the memory of a shard that
    /// takes sends faster than its disk writes them). The batch being written is not counted:
    /// a slow fdatasync alone makes puts wait in the next batch, up to these limits.
    fn refuse_if_busy(&self, log: &Log, now: Instant) -> Result<(), StoreError> {
        let Some(oldest) = log.batches.front() else {
            return Ok(());
        };
        let waited = oldest
            .opened
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let batches = log.batches.len();
        let why = if waited_ms >= self.cfg.busy_timeout_ms {
            format!(
                "the oldest batch waiting to be written has waited over osPageCacheBusyTimeOutMills={} ms",
                self.cfg.busy_timeout_ms
            )
        } else if batches >= MAX_WAITING_BATCHES {
            format!(
                "{batches} batches of up to {} bytes wait to be written; the limit is {MAX_WAITING_BATCHES}",
                self.cfg.group_commit_max_bytes
            )
        } else {
            return Ok(());
        };
        self.update_stats(|s| s.busy_refusals += 1);
        Err(StoreError::Busy {
            waited_ms,
            batches,
            why,
        })
    }

    /// Flushes the oldest pending batch. Returns false when there was none.
    async fn flush_one(&self) -> bool {
        let started = Instant::now();
        let mut batch = {
            let mut log = self.log.borrow_mut();
            let Some(batch) = log.batches.pop_front() else {
                return false;
            };
            log.flushing = true;
            log.in_flight = Some(batch.done.clone());
            batch
        };
        self.ship_before_write(&mut batch);
        let res = self.flush_write(&batch).await;
        let res = match res {
            Ok(files) => {
                self.after_write(&mut batch);
                // Puts that did not ask for durability resolve once written.
                batch.done.written();
                for tx in batch.acks.drain(..) {
                    let _ = tx.send(Ok(()));
                }
                self.flush_sync(files, batch.end, batch.last_store_timestamp)
                    .await
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => self.make_visible(batch),
            Err(e) => self.fail_all(batch, e),
        }
        let took = started.elapsed();
        if took >= SLOW_FLUSH {
            self.slow_flushes
                .borrow_mut()
                .record(crate::runtime::lag::Stall {
                    at_ms: crate::runtime::now_ms(),
                    lag_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    cause: crate::runtime::lag::Cause::Unknown,
                });
        }
        let mut log = self.log.borrow_mut();
        log.flushing = false;
        log.in_flight = None;
        true
    }

    /// Writes the batch's chunks: Sync mode with direct I/O (`write_direct`), Async mode
    /// through the page cache (`write_buffered`). Returns the files touched.
    async fn flush_write(&self, batch: &Batch) -> Result<Vec<Segment>, StoreError> {
        let mut touched: Vec<Segment> = Vec::new();
        for c in batch.pieces() {
            let seg = self
                .log
                .borrow()
                .segments
                .iter()
                .find(|s| s.start == c.seg_start)
                .cloned()
                .expect("invariant: a chunk's file is in the segment list");
            self.faults
                .on_write()
                .map_err(|e| StoreError::io("write", &seg.path, e))?;
            if let Some(ms) = self.faults.write_delay_ms {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
            }
            match self.cfg.flush_mode {
                FlushMode::Sync => {
                    let (n, want, at) = self.write_direct(&seg, &c).await;
                    let n = n.map_err(gio_err("write", &seg.path))?;
                    check_whole_write(&seg.path, n, want, at)?;
                }
                FlushMode::Async => self.write_page_cache(&seg, &c).await?,
            }
            self.update_stats(|s| s.write_count += 1);
            if !touched.iter().any(|t| t.start == seg.start) {
                touched.push(seg);
            }
        }
        Ok(touched)
    }

    /// Sync mode: one aligned direct-I/O write of the chunk, its first page completed from the
    /// carried tail page, its last page zero padded and kept as the next tail page. Returns
    /// (outcome, bytes asked, file position).
    async fn write_direct(&self, seg: &Segment, c: &Piece<'_>) -> (GioResult<usize>, usize, u64) {
        let (buf, file_pos) = {
            let mut log = self.log.borrow_mut();
            let page = align_down(c.pos);
            let prefix = (c.pos - page) as usize;
            let len = align_up(c.pos - page + c.bytes.len() as u64) as usize;
            let mut buf = self.pool.borrow_mut().take(&seg.file, len);
            let dst = buf.as_bytes_mut();
            if prefix > 0 {
                let (tbase, tbytes) = log.tail.as_ref().expect("invariant: tail page kept");
                assert_eq!(
                    *tbase, page,
                    "invariant: tail page is the chunk's first page"
                );
                assert_eq!(
                    tbytes.len(),
                    prefix,
                    "invariant: tail page ends at the chunk"
                );
                dst[..prefix].copy_from_slice(tbytes);
            }
            dst[prefix..prefix + c.bytes.len()].copy_from_slice(c.bytes);
            dst[prefix + c.bytes.len()..].fill(0);
            let end = c.pos + c.bytes.len() as u64;
            let end_page = align_down(end);
            // The carried tail page reuses its vector (no allocation per batch).
            let mut keep = log.tail.take().map(|(_, v)| v).unwrap_or_default();
            keep.clear();
            if end != end_page {
                let from = (end_page - page) as usize;
                keep.extend_from_slice(&dst[from..prefix + c.bytes.len()]);
                log.tail = Some((end_page, keep));
            }
            (buf, page - c.seg_start)
        };
        let want = buf.len();
        let buf = Rc::new(buf);
        let written = seg.file.write_rc_at(buf.clone(), file_pos).await;
        if let Ok(b) = Rc::try_unwrap(buf) {
            self.pool.borrow_mut().give(b);
        }
        (written, want, file_pos)
    }

    /// Async mode (ARCHITECTURE 34, 41): the chunk's bytes as they are, at their position,
    /// into the kernel's page cache: once there a `kill -9` of the broker cannot lose them (the
    /// timer's fdatasync puts them on the device). No alignment, no tail page. A small chunk
    /// is copied into the file's shared mapping (no system call, no hand-off); a chunk of
    /// [`BUFFERED_WRITE_MIN`] or more takes an io_uring buffered write, whose hand-off to an
    /// io-wq worker costs less than faulting its pages in. Both reach the same page cache.
    /// Direct-I/O reads of these bytes stay correct: the kernel writes dirty pages of a range
    /// back before it reads that range directly.
    async fn write_page_cache(&self, seg: &Segment, c: &Piece<'_>) -> Result<(), StoreError> {
        if c.bytes.len() < BUFFERED_WRITE_MIN {
            return self.write_mapped(seg, c).await;
        }
        let want = c.bytes.len();
        let at = c.pos - c.seg_start;
        let file = self
            .buffered_writer(seg)
            .await
            .map_err(gio_err("open", &seg.path))?;
        // The write owns its buffer until it completes; the chunk goes on to the read cache.
        let n = file
            .write_at(c.bytes.to_vec(), at)
            .await
            .map_err(gio_err("write", &seg.path))?;
        check_whole_write(&seg.path, n, want, at)
    }

    /// The buffered (page-cache) handle of the file Async mode writes into, opened once per
    /// file; the previous file's handle closes when replaced.
    async fn buffered_writer(&self, seg: &Segment) -> GioResult<Rc<BufferedFile>> {
        if let Some((start, f)) = &*self.buffered.borrow() {
            if *start == seg.start {
                return Ok(f.clone());
            }
        }
        let f = Rc::new(
            glommio::io::OpenOptions::new()
                .write(true)
                .buffered_open(&seg.path)
                .await?,
        );
        *self.buffered.borrow_mut() = Some((seg.start, f.clone()));
        Ok(f)
    }

    /// A small chunk: copied into the file's shared mapping (mapped.rs).
    async fn write_mapped(&self, seg: &Segment, c: &Piece<'_>) -> Result<(), StoreError> {
        let current = self.mapped.borrow().clone();
        let map = match current {
            Some(m) if m.start == seg.start => m,
            _ => {
                let at = c.pos - c.seg_start;
                let prepared = self
                    .next_mapped
                    .borrow_mut()
                    .take()
                    .filter(|m| m.start == seg.start);
                let m = match prepared {
                    Some(m) => m,
                    None => {
                        let from = usize::try_from(at).unwrap_or(usize::MAX);
                        MappedFile::open(seg.start, &seg.path, from).await?
                    }
                };
                if let Some(old) = self.mapped.replace(Some(m.clone())) {
                    old.retire();
                }
                m
            }
        };
        map.write(c.pos - c.seg_start, c.bytes)
    }

    /// Sync mode: fdatasync every file written. Async mode: remember them for the timer.
    async fn flush_sync(&self, files: Vec<Segment>, end: u64, ts: i64) -> Result<(), StoreError> {
        match self.cfg.flush_mode {
            FlushMode::Sync => {
                for f in &files {
                    if let Some(ms) = self.faults.fdatasync_delay_ms {
                        glommio::timer::sleep(Duration::from_millis(ms)).await;
                    }
                    self.faults
                        .on_fdatasync()
                        .map_err(|e| StoreError::io("fdatasync", &f.path, e))?;
                    // With O_DSYNC the write that just completed was the sync: counted the
                    // same, one device flush per file per batch.
                    if !self.cfg.dsync() {
                        f.file
                            .fdatasync()
                            .await
                            .map_err(gio_err("fdatasync", &f.path))?;
                    }
                    self.update_stats(|s| s.fsync_count += 1);
                }
                let mut log = self.log.borrow_mut();
                log.synced_end = end;
                log.synced_store_timestamp = ts;
            }
            FlushMode::Async => {
                let mut log = self.log.borrow_mut();
                for f in files {
                    if !log.dirty.iter().any(|d| d.start == f.start) {
                        log.dirty.push(f);
                    }
                }
            }
        }
        Ok(())
    }

    /// Async mode timer: fdatasync the files written since the last sync.
    async fn sync_dirty(&self) -> Result<(), StoreError> {
        let (files, end, ts) = {
            let mut log = self.log.borrow_mut();
            (
                std::mem::take(&mut log.dirty),
                log.visible_end,
                log.last_store_timestamp,
            )
        };
        if files.is_empty() {
            return Ok(());
        }
        for f in &files {
            self.faults
                .on_fdatasync()
                .map_err(|e| StoreError::io("fdatasync", &f.path, e))?;
            f.file
                .fdatasync()
                .await
                .map_err(gio_err("fdatasync", &f.path))?;
            self.update_stats(|s| s.fsync_count += 1);
        }
        let mut log = self.log.borrow_mut();
        log.synced_end = log.synced_end.max(end);
        log.synced_store_timestamp = ts;
        Ok(())
    }

    /// Sync mode (ARCHITECTURE 49): before the batch's write is submitted, hand its chunks to
    /// the read cache and let the HA shipper send them, so the slave's copy and report overlap
    /// the master's write and sync (with `dsyncGroupCommit` they are one O_DSYNC write, and
    /// shipping after it made a SYNC_MASTER put wait for both in turn). Only when the cache
    /// keeps the whole batch: the shipper never reads bytes beyond `written_end` from the file.
    fn ship_before_write(&self, batch: &mut Batch) {
        if !self.cfg.ship_before_write
            || self.cfg.flush_mode != FlushMode::Sync
            || batch.bytes > self.cfg.read_cache_bytes
        {
            return;
        }
        {
            let mut log = self.log.borrow_mut();
            self.cache_chunks(&mut log, batch);
            log.ship_end = log.ship_end.max(batch.end);
        }
        self.notify_end_listener(batch.end);
    }

    /// The batch's chunks become read-cache entries (no copy): the oldest entries make room.
    fn cache_chunks(&self, log: &mut Log, batch: &mut Batch) {
        if self.cfg.read_cache_bytes == 0 {
            return;
        }
        for mut c in batch.chunks.drain(..) {
            log.spare_chunks.hint = c.bytes.len();
            // The chunk becomes the cache entry as is (no copy). A vector sized for a
            // bigger batch gives its spare room back first (in place, no copy), so
            // the cache holds about what it counts.
            if c.bytes.capacity() > 2 * c.bytes.len() + DMA_ALIGN as usize {
                c.bytes.shrink_to_fit();
            }
            let b = Bytes::from(c.bytes);
            log.cache_bytes += b.len();
            log.cache.push_back((c.pos, b.clone()));
            batch.written.push(CachedChunk {
                seg_start: c.seg_start,
                pos: c.pos,
                bytes: b,
            });
        }
        while log.cache_bytes > self.cfg.read_cache_bytes {
            let Some((_, b)) = log.cache.pop_front() else {
                break;
            };
            log.cache_bytes -= b.len();
        }
    }

    fn notify_end_listener(&self, end: u64) {
        let end_listener = self.end_listener.borrow().clone();
        if let Some(l) = end_listener {
            l(end);
        }
    }

    /// The batch's bytes are written: hand them to the read cache (no copy) unless they went
    /// before the write, and let the HA shipper send them (in Sync mode the fdatasync, if any,
    /// is still to come). Readers other than the shipper still stop at `visible_end`.
    fn after_write(&self, batch: &mut Batch) {
        let end = batch.end;
        let moved = {
            let mut log = self.log.borrow_mut();
            self.cache_chunks(&mut log, batch);
            assert!(
                end >= log.written_end,
                "invariant: written end is monotonic"
            );
            log.written_end = end;
            let moved = end > log.ship_end;
            log.ship_end = log.ship_end.max(end);
            moved
        };
        if moved {
            self.notify_end_listener(end);
        }
    }

    /// The batch is durable per the mode: expose it to readers, dispatch, notify, ack.
    fn make_visible(&self, mut batch: Batch) {
        {
            let mut log = self.log.borrow_mut();
            for c in batch.written.drain(..) {
                self.index.dispatch_bytes(c.pos, &c.bytes);
            }
            // Read cache off: the chunks are still here; their vectors are reused.
            for c in batch.chunks.drain(..) {
                self.index.dispatch_bytes(c.pos, &c.bytes);
                log.spare_chunks.hint = c.bytes.len();
                log.spare_chunks.give(c.bytes);
            }
            assert!(
                batch.end >= log.visible_end,
                "invariant: visible end is monotonic"
            );
            log.visible_end = batch.end;
        }
        let mut arrived: Vec<(String, u32)> = Vec::new();
        {
            let mut queues = self.queues.borrow_mut();
            for d in batch.dispatch.drain(..) {
                if let Some(q) = queues.get_mut(&d.queue) {
                    for (k, e) in batch.entries[d.from..d.to].iter().enumerate() {
                        q.cq.push(d.first_offset + k as u64, *e);
                    }
                    if !arrived.contains(&d.queue) {
                        arrived.push(d.queue);
                    }
                }
            }
            batch.entries.clear();
            let n = queues.len() as u64;
            self.update_stats(|s| s.queue_count = n);
        }
        let end = batch.end;
        self.update_stats(|s| s.visible_local_offset = end);
        batch.done.durable();
        {
            let mut log = self.log.borrow_mut();
            if log.spare_batches.len() < SPARES_MAX {
                batch.bytes = 0;
                batch.end = 0;
                log.spare_batches.push(batch);
            }
        }
        let listener = self.listener.borrow().clone();
        if let Some(l) = listener {
            for (topic, qid) in &arrived {
                l(topic, *qid);
            }
        }
    }

    /// An I/O error: fail this batch and everything queued behind it; refuse further puts.
    fn fail_all(&self, batch: Batch, e: StoreError) {
        tracing::error!(
            shard = self.shard.0,
            "commit-log I/O failed, store now read-only: {e}"
        );
        let rest: Vec<Batch> = {
            let mut log = self.log.borrow_mut();
            log.not_writable = Some(e.to_string());
            log.batches.drain(..).collect()
        };
        for mut b in std::iter::once(batch).chain(rest) {
            b.done.fail(e.clone());
            for tx in b.acks.drain(..) {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }

    /// Writes unwritten CQ units, fdatasyncs them, then records progress in the checkpoint.
    pub(crate) async fn flush_consume_queues(&self, clean: bool) -> Result<(), StoreError> {
        let _permit = self
            .cq_lock
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::NotWritable(format!("cq lock: {e}")))?;
        let (writes, dispatched, flushed, ts) = {
            let log = self.log.borrow();
            let mut queues = self.queues.borrow_mut();
            let mut writes: Vec<((String, u32), CqWrite)> = Vec::new();
            for (k, q) in queues.iter_mut() {
                for w in q.cq.take_unwritten() {
                    writes.push((k.clone(), w));
                }
            }
            (
                writes,
                log.visible_end,
                log.synced_end,
                log.synced_store_timestamp,
            )
        };
        write_cq_units(&self.queues, writes).await?;
        self.index.flush(clean).await?;
        self.checkpoint
            .set_index_timestamp(self.index.flushed_timestamp());
        let slot = ShardSlot {
            flushed_offset: flushed,
            dispatched_offset: dispatched.min(flushed),
            last_store_timestamp: ts,
            clean,
        };
        self.checkpoint.write(&slot).await
    }

    /// Flushes everything, writes a clean checkpoint and stops the background tasks.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.log.borrow_mut().closed = true;
        self.notify.notify();
        // The flusher drains what is pending; wait for it (bounded by the I/O it has to do).
        loop {
            let busy = {
                let log = self.log.borrow();
                log.flushing || !log.batches.is_empty()
            };
            if !busy {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        self.sync_dirty().await?;
        if let Some(reason) = self.log.borrow().not_writable.clone() {
            return Err(StoreError::NotWritable(reason));
        }
        self.flush_consume_queues(true).await
    }

    /// Called with the new written end after every batch was written (the HA shipper).
    pub fn set_end_listener(&self, f: EndListener) {
        *self.end_listener.borrow_mut() = Some(Rc::new(f));
    }

    /// Called after new entries were dispatched to a queue of this shard.
    pub fn set_arrival_listener(&self, f: ArrivalListener) {
        *self.listener.borrow_mut() = Some(Rc::new(f));
    }

    /// The slow group-commit flushes so far (see `slow_flushes`).
    pub fn slow_flushes(&self) -> crate::runtime::lag::Stalls {
        self.slow_flushes.borrow().clone()
    }

    pub fn stats(&self) -> StoreStats {
        let WritePoolStats { allocated, reused } = self.pool.borrow().stats();
        StoreStats {
            write_buffers_allocated: allocated,
            write_buffers_reused: reused,
            ..self.stats.get()
        }
    }

    /// The earliest deadline of a put still waiting (deadlines grow in batch order, so it is
    /// the first one found, oldest batch first).
    fn next_put_deadline(&self) -> Option<Instant> {
        let log = self.log.borrow();
        log.in_flight
            .iter()
            .map(|d| &**d)
            .chain(log.batches.iter().map(|b| &*b.done))
            .find_map(BatchDone::next_deadline)
    }

    fn fire_expired_puts(&self, now: Instant) {
        let dones: Vec<Rc<BatchDone>> = {
            let log = self.log.borrow();
            log.in_flight
                .iter()
                .cloned()
                .chain(log.batches.iter().map(|b| b.done.clone()))
                .take_while(|d| d.next_deadline().is_none_or(|t| t <= now))
                .collect()
        };
        for d in dones {
            d.fire_expired(now);
        }
    }

    /// The reason the store refuses puts (an I/O error), if it does.
    pub fn not_writable(&self) -> Option<String> {
        self.log.borrow().not_writable.clone()
    }
}

/// The batch new bytes go into: the newest pending one unless it reached the byte limit
/// (`groupCommitMaxBytes`), else a fresh (recycled) one.
pub(super) fn open_batch<'a>(
    batches: &'a mut VecDeque<Batch>,
    spare: &mut Vec<Batch>,
    max_bytes: usize,
) -> &'a mut Batch {
    if batches.back().is_none_or(|b| b.bytes >= max_bytes) {
        let mut b = spare.pop().unwrap_or_default();
        BatchDone::reset_if_unshared(&mut b.done);
        b.opened = Some(Instant::now());
        batches.push_back(b);
    }
    batches
        .back_mut()
        .expect("invariant: a batch was just ensured")
}

/// Chunk vectors for new batches: emptied ones kept for reuse (read cache off), and the size
/// of the last batch's chunk, which a new chunk reserves at once (batches in steady state are
/// alike), so a batch's vector does not grow by doubling and copying as puts arrive.
#[derive(Debug, Default)]
pub(crate) struct ChunkPool {
    spare: Vec<Vec<u8>>,
    pub(super) hint: usize,
}

impl ChunkPool {
    fn take(&mut self, need: usize) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.reserve(need.max(self.hint.min(SPARE_CHUNK_MAX_BYTES)));
        v
    }

    fn give(&mut self, v: Vec<u8>) {
        if self.spare.len() < SPARES_MAX && v.capacity() <= SPARE_CHUNK_MAX_BYTES {
            self.spare.push(v);
        }
    }
}

/// The chunk vector bytes at `pos` of file `seg_start` are appended to: the batch's last chunk
/// when contiguous, else a new chunk (from the pool) with room for `need` bytes.
pub(super) fn chunk_for<'a>(
    chunks: &'a mut Vec<Chunk>,
    spare: &mut ChunkPool,
    seg_start: u64,
    pos: u64,
    need: u64,
) -> &'a mut Vec<u8> {
    let contiguous = chunks
        .last()
        .is_some_and(|c| c.seg_start == seg_start && c.pos + c.bytes.len() as u64 == pos);
    if !contiguous {
        let bytes = spare.take(need as usize);
        chunks.push(Chunk {
            seg_start,
            pos,
            bytes,
        });
    }
    let c = chunks
        .last_mut()
        .expect("invariant: a chunk was just ensured");
    c.bytes.reserve(need as usize);
    &mut c.bytes
}

/// Most emptied chunk vectors / batches a shard keeps for reuse.
const SPARES_MAX: usize = 8;
/// A chunk vector larger than this is freed rather than kept.
const SPARE_CHUNK_MAX_BYTES: usize = 4 << 20;

/// Performs CQ writes (opening files as needed) and fdatasyncs the files touched.
pub(crate) async fn write_cq_units(
    queues: &RefCell<HashMap<(String, u32), Queue>>,
    writes: Vec<((String, u32), CqWrite)>,
) -> Result<(), StoreError> {
    let mut touched: Vec<(PathBuf, Rc<glommio::io::BufferedFile>)> = Vec::new();
    for (key, w) in writes {
        let (cached, path, size) = {
            let qs = queues.borrow();
            let Some(q) = qs.get(&key) else { continue };
            (
                q.cq.cached_file(w.file_start),
                q.cq.file_path(w.file_start),
                q.cq.file_size(),
            )
        };
        let file = match cached {
            Some(f) => f,
            None => {
                let f = consume_queue::open_file(&path, size).await?;
                if let Some(q) = queues.borrow_mut().get_mut(&key) {
                    q.cq.cache_file(w.file_start, f.clone());
                }
                f
            }
        };
        file.write_at(w.bytes, w.pos)
            .await
            .map_err(gio_err("write consume queue", &path))?;
        if !touched.iter().any(|(p, _)| *p == path) {
            touched.push((path, file));
        }
    }
    for (path, f) in touched {
        f.fdatasync()
            .await
            .map_err(gio_err("fdatasync consume queue", &path))?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The single writer of this shard's commit log.
/// Holds only a weak handle while idle, so dropping the store (a simulated crash) ends it.
fn spawn_flusher(weak: Weak<ShardStore>, notify: Rc<Notify>) {
    let fut: BoxFut<'static, ()> = Box::pin(async move {
        loop {
            notify.wait().await;
            let Some(store) = weak.upgrade() else { return };
            while store.flush_one().await {
                // An Async-mode flush awaits no I/O (the write is a copy into the mapping), so
                // a backlog of batches would otherwise be copied in one stretch of the loop.
                glommio::yield_if_needed().await;
            }
            if store.log.borrow().closed {
                return;
            }
        }
    });
    glommio::spawn_local(fut).detach();
}

/// The flush-timeout watchdog (completion.rs): sleeps until the earliest deadline of a waiting
/// put, wakes the puts whose deadline passed. Idle (no timer) while no put waits.
fn spawn_watchdog(weak: Weak<ShardStore>, wake: Rc<Notify>) {
    glommio::spawn_local(async move {
        loop {
            let next = {
                let Some(s) = weak.upgrade() else { return };
                s.next_put_deadline()
            };
            match next {
                None => wake.wait().await,
                Some(at) => {
                    let now = Instant::now();
                    if at > now {
                        glommio::timer::sleep(at - now).await;
                    }
                    let Some(s) = weak.upgrade() else { return };
                    s.fire_expired_puts(Instant::now());
                }
            }
        }
    })
    .detach();
}

/// A write that took fewer bytes than asked is an I/O error naming file, counts and position.
fn check_whole_write(path: &Path, n: usize, want: usize, at: u64) -> Result<(), StoreError> {
    if n == want {
        return Ok(());
    }
    Err(StoreError::io(
        "short write",
        path,
        std::io::Error::other(format!("{n} of {want} bytes at {at}")),
    ))
}

/// Async mode: chunks of at least this many bytes are written with a buffered write, smaller
/// ones copied into the mapping (ARCHITECTURE 41: per 4 KiB page the mapping's populate and
/// write fault cost more than the buffered write's hand-off to an io-wq worker, which is paid
/// per chunk).
pub const BUFFERED_WRITE_MIN: usize = 32 << 10;

/// Back-pressure: at most this many group-commit batches wait to be written behind the one
/// being written (see `refuse_if_busy`). 64 x the default 1 MiB batch bounds a shard's
/// unwritten sends to 64 MiB.
pub const MAX_WAITING_BATCHES: usize = 64;

/// A group-commit flush (write, and with SYNC_FLUSH its fdatasync) at least this long is kept
/// in the shard's slow-flush record (the same threshold as a loop stall).
pub const SLOW_FLUSH: Duration = crate::runtime::lag::STALL_MIN;

/// Async-mode fdatasync timer and the CQ/checkpoint timer.
fn spawn_periodic(weak: Weak<ShardStore>) {
    glommio::spawn_local(async move {
        let mut since_cq = 0u64;
        loop {
            let interval = {
                let Some(s) = weak.upgrade() else { return };
                match s.cfg.flush_mode {
                    FlushMode::Async => s.cfg.flush_interval_ms.clamp(1, CQ_FLUSH_INTERVAL_MS),
                    FlushMode::Sync => CQ_FLUSH_INTERVAL_MS,
                }
            };
            glommio::timer::sleep(Duration::from_millis(interval)).await;
            let Some(s) = weak.upgrade() else { return };
            if s.log.borrow().closed {
                return;
            }
            if let Err(e) = s.sync_dirty().await {
                s.fail_all(Batch::default(), e);
            }
            since_cq += interval;
            if since_cq >= CQ_FLUSH_INTERVAL_MS {
                since_cq = 0;
                if let Err(e) = s.flush_consume_queues(false).await {
                    tracing::error!(shard = s.shard.0, "consume queue flush failed: {e}");
                    s.log.borrow_mut().not_writable = Some(e.to_string());
                }
            }
        }
    })
    .detach();
}

/// The DMA alignment must divide file sizes (checked in `StoreConfig::validate`).
const _: () = assert!(DMA_ALIGN.is_power_of_two());

impl Drop for ShardStore {
    fn drop(&mut self) {
        // Wake the flusher and the watchdog so they see the store is gone and end.
        self.notify.notify();
        self.watch.notify();
    }
}
