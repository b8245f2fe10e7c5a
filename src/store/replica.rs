//! The replication side of `ShardStore` (master/slave HA, DESIGN §4, ARCHITECTURE.md
//! "Replication"): what a master shard ships and how a slave shard stores what arrives.
//!
//! - Master: [`ShardStore::replica_read`] returns written commit-log bytes (in the file, or
//!   the page cache in Async mode: what a `kill -9` of the master cannot lose; with SYNC_FLUSH
//!   perhaps not yet fdatasynced, so the slave's copy and the master's fdatasync overlap)
//!   starting at a local offset, never crossing a file boundary; the end-of-file blank marker
//!   is data like any other. `set_end_listener` (commitlog.rs) tells the shipper when the
//!   written end moves.
//! - Slave: [`ShardStore::replica_append`] appends raw bytes at exactly the local offset the
//!   master had them, through the same flusher (group commit, tail page, fdatasync per the
//!   slave's own flush mode) as a put; consume queues are built on the slave from the records
//!   in what arrives (a record cut by a transfer boundary is dispatched when its rest arrives).
//!   The returned receiver resolves once the bytes are written (not yet fsynced): that is
//!   when the slave reports them to the master, as upstream's slave reports after its append.

use std::cell::RefCell;

use bytes::Bytes;
use futures::channel::oneshot;

use super::commitlog::{chunk_for, open_batch, DispatchItem, Queue, ShardStore};
use super::consume_queue::{ConsumeQueue, CqEntry};
use super::reader::Upto;
use super::record::{self, Decoded};
use super::{global_offset, StoreError};

/// Bytes of a record that straddled the previous transfer, kept until the rest arrives.
#[derive(Debug, Default)]
pub(crate) struct ReplicaCarry {
    /// Local offset of `bytes[0]`.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// After an end-of-file marker: the rest of the file (up to here) is filler.
    pub skip_to: u64,
}

/// Resolves with the outcome of writing one appended transfer.
pub type AppendAck = oneshot::Receiver<Result<(), StoreError>>;

impl ShardStore {
    /// End of visible (durable per the flush mode) data, local offset.
    pub fn visible_end(&self) -> u64 {
        self.log.borrow().visible_end
    }

    /// End of the written data (`visible_end` or ahead of it by the batch being
    /// fdatasynced), local offset.
    pub fn written_end(&self) -> u64 {
        self.log.borrow().written_end
    }

    /// End of the data the HA shipper may send: `written_end`, or in Sync mode ahead of it by
    /// the batch whose write is under way (its bytes are in the read cache), local offset.
    pub fn ship_end(&self) -> u64 {
        self.log.borrow().ship_end
    }

    /// End of all appended data (written or queued for the flusher), local offset. On a
    /// slave this is where the next transfer must start.
    pub fn write_end(&self) -> u64 {
        self.log.borrow().write_pos
    }

    /// Local offset of the first byte of the oldest commit-log file.
    pub fn first_offset(&self) -> u64 {
        self.log.borrow().segments.first().map_or(0, |s| s.start)
    }

    /// Written bytes at local offset `from`, within one file: from the read cache up to
    /// `max` (fewer where the cache entry holding `from` ends: a shorter transfer, not a
    /// read of the file), else from the file up to `disk_max` (a slave catching up: one
    /// large read instead of many small ones, each a round trip to the device). `None`:
    /// nothing written there yet (or `from` is below the oldest file).
    pub async fn replica_read(
        &self,
        from: u64,
        max: u32,
        disk_max: u32,
    ) -> Result<Option<Bytes>, StoreError> {
        let (end, written, seg_end) = {
            let log = self.log.borrow();
            let Some(seg) = log.segment_for(from) else {
                return Ok(None);
            };
            (log.ship_end, log.written_end, seg.start + self.file_size())
        };
        if from >= end {
            return Ok(None);
        }
        let avail = end.min(seg_end) - from;
        let len = u32::try_from(avail.min(u64::from(max))).unwrap_or(max);
        if let Some(b) = super::reader::cached(&self.log.borrow(), from, len) {
            return Ok(Some(b));
        }
        // Not cached: from the file, which holds only what was written.
        if from >= written {
            return Ok(None);
        }
        let avail = written.min(seg_end) - from;
        let disk_max = disk_max.max(max);
        let len = u32::try_from(avail.min(u64::from(disk_max))).unwrap_or(disk_max);
        self.read_below(from, len, Upto::Written).await
    }

    /// Appends replicated bytes at local offset `at`, which must be this store's write end.
    /// Returns once queued for the flusher; the receiver resolves when they are written.
    ///
    /// # Errors
    /// `Corrupt` when `at` is not the write end, the data crosses a file boundary or holds a
    /// record that does not decode / continue its queue; `NotWritable`, `ShutDown`.
    pub async fn replica_append(&self, at: u64, data: Bytes) -> Result<AppendAck, StoreError> {
        if data.is_empty() {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Ok(()));
            return Ok(rx);
        }
        loop {
            let need = {
                let log = self.log.borrow();
                if let Some(reason) = &log.not_writable {
                    return Err(StoreError::NotWritable(reason.clone()));
                }
                if log.closed {
                    return Err(StoreError::ShutDown);
                }
                if at != log.write_pos {
                    return Err(self.replica_err(
                        at,
                        format!(
                            "transfer starts at {at}, local write end is {}",
                            log.write_pos
                        ),
                    ));
                }
                let seg_end = self.current_segment_end(&log);
                if at == seg_end {
                    // The previous file is complete: move to the next one.
                    if log
                        .next_segment
                        .as_ref()
                        .is_some_and(|s| s.start == seg_end)
                    {
                        None
                    } else {
                        Some(seg_end)
                    }
                } else if at + data.len() as u64 > seg_end {
                    return Err(self.replica_err(
                        at,
                        format!("{} bytes cross the file end {seg_end}", data.len()),
                    ));
                } else {
                    break;
                }
            };
            match need {
                Some(seg_end) => self.ensure_next_segment(seg_end).await?,
                None => {
                    let mut log = self.log.borrow_mut();
                    let seg_end = self.current_segment_end(&log);
                    if log.write_pos == seg_end {
                        self.roll(&mut log, seg_end);
                    }
                }
            }
        }
        let items = self.replica_dispatch(at, &data)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut log = self.log.borrow_mut();
            let seg_start = log.segments.last().map_or(0, |s| s.start);
            let end = at + data.len() as u64;
            let ts = items.1.max(log.last_store_timestamp);
            log.last_store_timestamp = ts;
            let log = &mut *log;
            let batch = open_batch(
                &mut log.batches,
                &mut log.spare_batches,
                self.cfg.group_commit_max_bytes,
            );
            let n = data.len() as u64;
            chunk_for(&mut batch.chunks, &mut log.spare_chunks, seg_start, at, n)
                .extend_from_slice(&data);
            batch.bytes += data.len();
            for it in items.0 {
                let from = batch.entries.len();
                batch.entries.push(it.entry);
                batch.dispatch.push(DispatchItem {
                    queue: it.queue,
                    first_offset: it.queue_offset,
                    from,
                    to: from + 1,
                });
            }
            batch.acks.push(tx);
            batch.end = end;
            batch.last_store_timestamp = ts;
            log.write_pos = end;
            self.update_stats(|s| {
                s.put_bytes += n;
                s.max_local_offset = end;
            });
        }
        self.notify.notify();
        self.maybe_preallocate();
        Ok(rx)
    }

    fn replica_err(&self, at: u64, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: format!("replication stream of shard {}", self.shard.0),
            offset: at,
            reason,
        }
    }

    /// Consume-queue entries of the records completed by `data` (appended at `at`), and the
    /// last store timestamp seen.
    fn replica_dispatch(
        &self,
        at: u64,
        data: &[u8],
    ) -> Result<(Vec<ReplicaItem>, i64), StoreError> {
        let mut carry = self.replica_carry.borrow_mut();
        let (at, data) = if at < carry.skip_to {
            let skip = usize::try_from(carry.skip_to - at)
                .unwrap_or(usize::MAX)
                .min(data.len());
            (at + skip as u64, &data[skip..])
        } else {
            (at, data)
        };
        if data.is_empty() {
            return Ok((Vec::new(), 0));
        }
        if carry.start + carry.bytes.len() as u64 != at {
            // A fresh stream (or after recovery): records start exactly here.
            carry.start = at;
            carry.bytes.clear();
        }
        let joined: Vec<u8>;
        let (base, buf): (u64, &[u8]) = if carry.bytes.is_empty() {
            (at, data)
        } else {
            let mut v = std::mem::take(&mut carry.bytes);
            v.extend_from_slice(data);
            joined = v;
            (carry.start, &joined)
        };
        let mut items = Vec::new();
        let mut ts = 0i64;
        let mut pos = 0usize;
        let mut queues = self.queues.borrow_mut();
        while pos < buf.len() {
            let here = base + pos as u64;
            match record::decode(&buf[pos..]) {
                Ok(Decoded::Record(r)) => {
                    let size = r.total_size as usize;
                    if r.phys_offset as u64 != global_offset(self.shard, here) {
                        return Err(self.replica_err(
                            here,
                            format!(
                                "record says physical offset {}, it is at {}",
                                r.phys_offset,
                                global_offset(self.shard, here)
                            ),
                        ));
                    }
                    ts = ts.max(r.store_timestamp);
                    if r.is_dispatched() && r.queue_id >= 0 {
                        let key = (r.topic.to_string(), r.queue_id as u32);
                        let q = queues.entry(key.clone()).or_insert_with(|| Queue {
                            cq: ConsumeQueue::new(
                                &self.cfg.consume_queue_dir,
                                r.topic,
                                r.queue_id as u32,
                                self.cfg.consume_queue_file_size,
                            ),
                            reserved: 0,
                        });
                        let qo = r.queue_offset.max(0) as u64;
                        if qo != q.reserved {
                            return Err(self.replica_err(
                                here,
                                format!(
                                    "queue {}:{} continues at {}, the record says {qo}",
                                    r.topic, r.queue_id, q.reserved
                                ),
                            ));
                        }
                        q.reserved += 1;
                        items.push(ReplicaItem {
                            queue: key,
                            queue_offset: qo,
                            entry: CqEntry {
                                phys: global_offset(self.shard, here),
                                size: r.total_size,
                                tags_code: crate::remoting::message::tags_code(r.properties),
                            },
                        });
                    }
                    pos += size;
                }
                Ok(Decoded::Blank(len)) => {
                    carry.skip_to = here + u64::from(len);
                    pos += len as usize;
                }
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::End) => {
                    return Err(
                        self.replica_err(here, "zero record size in transferred data".into())
                    )
                }
                Err(e) => return Err(self.replica_err(here, e.to_string())),
            }
        }
        let rest = buf.get(pos..).unwrap_or_default();
        carry.start = base + pos.min(buf.len()) as u64;
        carry.bytes = rest.to_vec();
        Ok((items, ts))
    }
}

/// A fresh carry (no partial record).
pub(crate) fn new_carry() -> RefCell<ReplicaCarry> {
    RefCell::new(ReplicaCarry::default())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::rc::Rc;

    use bytes::Bytes;

    use crate::store::test_util::{base_config, test_dir};

    use crate::store::{
        FlushMode, GetStatus, PutBatch, PutMessage, PutResult, ShardId, ShardStore, StoreConfig,
        StoreError,
    };

    fn cfg(dir: &Path) -> StoreConfig {
        StoreConfig {
            read_cache_bytes: 1 << 20,
            warm_commitlog: None,
            ..base_config(dir, FlushMode::Sync)
        }
    }

    /// The commit-log file that starts at offset 0, wherever under `dir` the layout puts it.
    fn first_log_file(dir: &Path) -> std::path::PathBuf {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                return first_log_file(&p);
            }
            if e.file_name().to_string_lossy() == format!("{:020}", 0) {
                return p;
            }
        }
        panic!("no commit-log file under {}", dir.display());
    }

    fn batch(qid: u32, body: Vec<u8>) -> PutBatch {
        PutBatch {
            topic: "T".into(),
            queue_id: qid,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "127.0.0.1:50000".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_tx_offset: 0,
            messages: vec![PutMessage {
                body: Bytes::from(body),
                flag: 0,
                properties: "TAGS\u{1}A".into(),
                tags_code: 65,
            }],
            wait_durable: true,
        }
    }

    /// Ships a master's log to a slave in odd-sized transfers (records and file ends cut
    /// anywhere), then compares both stores queue by queue, also after the slave reopens.
    #[test]
    fn slave_rebuilds_the_masters_log_and_queues() {
        let dir = test_dir("rebuild");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let m = ShardStore::open(cfg(&dir.join("m")), ShardId(1), false)
                    .await
                    .unwrap();
                let s = ShardStore::open(cfg(&dir.join("s")), ShardId(1), false)
                    .await
                    .unwrap();
                for i in 0..300u32 {
                    let body = vec![b'a' + (i % 26) as u8; 100 + (i as usize * 37) % 900];
                    m.put(batch(i % 3, body)).await.unwrap();
                }
                assert!(m.visible_end() > 2 * 64 * 1024, "several files");
                let mut at = s.write_end();
                let mut acks = Vec::new();
                while let Some(data) = m.replica_read(at, 777, 777).await.unwrap() {
                    let n = data.len() as u64;
                    acks.push(s.replica_append(at, data).await.unwrap());
                    at += n;
                }
                for a in acks {
                    a.await.unwrap().unwrap();
                }
                // A transfer that does not start at the write end is refused.
                assert!(s
                    .replica_append(at + 1, Bytes::from_static(b"x"))
                    .await
                    .is_err());
                let all = |_: i64| true;
                for q in 0..3 {
                    assert_eq!(m.max_offset("T", q), 100);
                    // Visibility follows the slave's own flusher.
                    for _ in 0..100 {
                        if s.max_offset("T", q) == 100 {
                            break;
                        }
                        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    let a = m.get_messages("T", q, 0, 100, 1 << 24, &all).await.unwrap();
                    let b = s.get_messages("T", q, 0, 100, 1 << 24, &all).await.unwrap();
                    assert_eq!(b.status, GetStatus::Found);
                    assert_eq!(a.records, b.records);
                }
                s.shutdown().await.unwrap();
                m.shutdown().await.unwrap();
                drop(s);
                let s = ShardStore::open(cfg(&dir.join("s")), ShardId(1), false)
                    .await
                    .unwrap();
                assert_eq!(s.write_end(), m.visible_end());
                assert_eq!(s.max_offset("T", 2), 100);
                s.shutdown().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let _ = std::fs::remove_dir_all(test_dir("rebuild"));
    }
    /// Bytes the read cache holds are shipped `max` at a time, as they are; bytes it no
    /// longer holds (a slave catching up) are read from the file `disk_max` at a time, and
    /// are the bytes of the file either way.
    #[test]
    fn the_shipper_reads_the_file_in_large_pieces_and_the_cache_in_transfers() {
        for cache in [1 << 20, 0] {
            let dir = test_dir(&format!("ship-ahead-{cache}"));
            let c = StoreConfig {
                read_cache_bytes: cache,
                ..cfg(&dir)
            };
            glommio::LocalExecutorBuilder::default()
                .spawn(move || async move {
                    let m = ShardStore::open(c, ShardId(1), false).await.unwrap();
                    for i in 0..40u32 {
                        m.put(batch(0, vec![b'a' + (i % 26) as u8; 500]))
                            .await
                            .unwrap();
                    }
                    let end = m.written_end();
                    assert!(end > 4000 && end < 64 * 1024, "one file: {end}");
                    // Each put was a batch of its own: a cache entry of one record.
                    let small = m.replica_read(100, 1000, 8000).await.unwrap().unwrap();
                    if cache > 0 {
                        assert!(small.len() < 1000, "the rest of the entry: {}", small.len());
                    } else {
                        assert_eq!(small.len(), 8000);
                    }
                    let whole = m.replica_read(0, 1000, 1 << 20).await.unwrap().unwrap();
                    let whole = if cache > 0 {
                        // From the cache, entry by entry; the file holds the same bytes.
                        assert!(whole.len() < 1000);
                        let mut all = Vec::new();
                        let mut at = 0;
                        while let Some(b) = m.replica_read(at, 1000, 1000).await.unwrap() {
                            at += b.len() as u64;
                            all.extend_from_slice(&b);
                        }
                        Bytes::from(all)
                    } else {
                        whole
                    };
                    assert_eq!(whole.len() as u64, end, "up to the written end, no further");
                    assert_eq!(&whole[100..100 + small.len()], &small[..]);
                    let file = std::fs::read(first_log_file(&dir.join("commitlog"))).unwrap();
                    assert_eq!(&file[..whole.len()], &whole[..]);
                    m.shutdown().await.unwrap();
                })
                .unwrap()
                .join()
                .unwrap();
        }
    }

    /// Opens a store with `faults`, puts one 300-byte message and polls what the shipper may
    /// send for up to 1.5 s: the store, the put and the first bytes found shippable.
    async fn put_and_watch_the_shipper(
        c: StoreConfig,
        faults: &str,
    ) -> (
        Rc<ShardStore>,
        glommio::Task<Result<PutResult, StoreError>>,
        Option<Bytes>,
    ) {
        let f = crate::store::faults::Faults::parse(faults).unwrap();
        let m = ShardStore::open_with_faults(c, ShardId(1), false, f)
            .await
            .unwrap();
        let put = {
            let m = m.clone();
            glommio::spawn_local(async move { m.put(batch(0, vec![b'x'; 300])).await })
        };
        let mut shipped = None;
        for _ in 0..150 {
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            shipped = m.replica_read(0, 1 << 20, 1 << 20).await.unwrap();
            if shipped.is_some() {
                break;
            }
        }
        (m, put, shipped)
    }

    /// SYNC_FLUSH: the shipper gets a batch's bytes once they are written, while its
    /// fdatasync still runs (ARCHITECTURE 25); consumers see them only after it. From the read
    /// cache, and from the file when the cache is off.
    #[test]
    fn the_shipper_reads_written_bytes_before_their_fdatasync_ends() {
        for cache in [1 << 20, 0] {
            let dir = test_dir(&format!("ship-early-{cache}"));
            let c = StoreConfig {
                read_cache_bytes: cache,
                ..cfg(&dir)
            };
            glommio::LocalExecutorBuilder::default()
                .spawn(move || async move {
                    let (m, put, shipped) =
                        put_and_watch_the_shipper(c, "fdatasync_delay_ms=2000").await;
                    let shipped = shipped
                        .expect("written bytes shippable within 1.5 s (the fdatasync takes 2 s)");
                    assert_eq!(shipped.len() as u64, m.written_end());
                    assert_eq!(m.visible_end(), 0, "the fdatasync is still running");
                    assert_eq!(m.max_offset("T", 0), 0);
                    let r = put.await.unwrap();
                    assert_eq!(m.visible_end(), m.written_end());
                    assert_eq!(m.max_offset("T", 0), 1);
                    let all = |_: i64| true;
                    let got = m.get_messages("T", 0, 0, 1, 1 << 20, &all).await.unwrap();
                    assert_eq!(got.records.concat(), shipped.to_vec(), "{r:?}");
                    m.shutdown().await.unwrap();
                })
                .unwrap()
                .join()
                .unwrap();
            drop(dir);
        }
    }

    /// `haShipBeforeWrite` hands a batch to the shipper when its write is submitted
    /// (ARCHITECTURE 49): with the write held back 2 s, the bytes are shippable at once,
    /// nothing is written or visible yet, and what the file ends up holding is exactly what
    /// was shipped. Without a read cache, or without the setting (the default), the shipper
    /// waits for the write (it never reads unwritten file bytes).
    #[test]
    fn the_shipper_gets_a_batch_when_its_write_is_submitted() {
        for (cache, early) in [(1 << 20, true), (0, true), (1 << 20, false)] {
            let dir = test_dir(&format!("ship-at-submit-{cache}-{early}"));
            let c = StoreConfig {
                read_cache_bytes: cache,
                dsync_writes: true,
                ship_before_write: early,
                ..cfg(&dir)
            };
            let shipped = glommio::LocalExecutorBuilder::default()
                .spawn(move || async move {
                    let (m, put, shipped) =
                        put_and_watch_the_shipper(c, "write_delay_ms=2000").await;
                    if cache == 0 || !early {
                        assert!(shipped.is_none(), "nothing before the write completes");
                        assert_eq!(m.ship_end(), 0);
                    } else {
                        let shipped = shipped.expect("shippable within 1.5 s of a 2 s write");
                        assert_eq!(shipped.len() as u64, m.ship_end());
                        assert_eq!(m.written_end(), 0, "the write is still held back");
                        assert_eq!(m.visible_end(), 0);
                    }
                    let r = put.await.unwrap();
                    assert_eq!(m.visible_end(), m.written_end());
                    assert_eq!(m.ship_end(), m.written_end());
                    let shipped = m.replica_read(0, 1 << 20, 1 << 20).await.unwrap().unwrap();
                    let all = |_: i64| true;
                    let got = m.get_messages("T", 0, 0, 1, 1 << 20, &all).await.unwrap();
                    assert_eq!(got.records.concat(), shipped.to_vec(), "{r:?}");
                    m.shutdown().await.unwrap();
                    shipped
                })
                .unwrap()
                .join()
                .unwrap();
            // And the file holds them.
            let file = std::fs::read(first_log_file(&dir.join("commitlog"))).unwrap();
            assert_eq!(&file[..shipped.len()], &shipped[..]);
            drop(dir);
        }
    }
}

/// One consume-queue entry of replicated bytes, before it joins a batch's dispatch list.
#[derive(Debug)]
pub(super) struct ReplicaItem {
    queue: (String, u32),
    queue_offset: u64,
    entry: CqEntry,
}
