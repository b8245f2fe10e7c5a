//! The read side of `ShardStore`: queue offsets, `get_messages` (status rules of
//! spec/remoting.md §8.4), record lookup by global physical offset, time search. Reads see only
//! bytes below the visible end; they are served from the read cache of recent commit-log bytes,
//! else by a DMA read of the commit-log file. Runs on the owning shard's executor.

use bytes::Bytes;

use super::commitlog::{Log, ShardStore};
use super::io::gio_err;
use super::record;
use super::{split_offset, GetResult, GetStatus, StoreError, GET_SCAN_ENTRIES_MIN};

/// Which end a read stops at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upto {
    /// Durable per the flush mode: consumers, lookups, recovery checks.
    Visible,
    /// Written (in the file, or the page cache in Async mode), perhaps not yet fdatasynced:
    /// the HA shipper only.
    Written,
}

impl ShardStore {
    /// Next logical offset of a queue (0 if unknown).
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues
            .borrow()
            .get(&(topic.to_string(), queue_id))
            .map_or(0, |q| q.cq.max_offset())
    }

    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues
            .borrow()
            .get(&(topic.to_string(), queue_id))
            .map_or(0, |q| q.cq.min_offset())
    }

    /// Queues this shard has data for, sorted.
    pub fn queues(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self
            .queues
            .borrow()
            .iter()
            .filter(|(_, q)| q.cq.max_offset() > 0)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Reads `len` visible bytes at local offset `pos` (read cache, else DMA read).
    pub(crate) async fn read_local(&self, pos: u64, len: u32) -> Result<Option<Bytes>, StoreError> {
        self.read_below(pos, len, Upto::Visible).await
    }

    /// [`ShardStore::read_local`] with the limit chosen: the HA shipper reads up to the
    /// written end (`Upto::Written`), everyone else up to the visible end.
    pub(crate) async fn read_below(
        &self,
        pos: u64,
        len: u32,
        upto: Upto,
    ) -> Result<Option<Bytes>, StoreError> {
        let len64 = u64::from(len);
        let seg = {
            let log = self.log.borrow();
            let end = match upto {
                Upto::Visible => log.visible_end,
                Upto::Written => log.written_end,
            };
            if pos + len64 > end {
                return Ok(None);
            }
            if let Some(b) = cached(&log, pos, len).filter(|b| b.len() == len as usize) {
                self.update_stats(|s| s.cache_reads += 1);
                return Ok(Some(b));
            }
            match log.segment_for(pos) {
                Some(s) if pos + len64 <= s.start + self.file_size() => s.clone(),
                _ => return Ok(None),
            }
        };
        self.update_stats(|s| s.file_reads += 1);
        let r = seg
            .file
            .read_at(pos - seg.start, len as usize)
            .await
            .map_err(gio_err("read", &seg.path))?;
        if r.len() != len as usize {
            return Err(StoreError::Corrupt {
                path: seg.path.display().to_string(),
                offset: pos - seg.start,
                reason: format!("short read: {} of {len} bytes", r.len()),
            });
        }
        Ok(Some(Bytes::copy_from_slice(&r)))
    }

    /// The stored record at a global physical offset (None: not this shard's, not visible, or
    /// not a record start).
    pub async fn lookup_record(&self, global_phys: u64) -> Result<Option<Bytes>, StoreError> {
        let (shard, local) = split_offset(global_phys);
        if shard != self.shard {
            return Ok(None);
        }
        let Some(head) = self.read_local(local, 4).await? else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if size < record::FIXED_OVERHEAD || u64::from(size) > self.file_size() {
            return Ok(None);
        }
        let Some(rec) = self.read_local(local, size).await? else {
            return Ok(None);
        };
        match record::decode(&rec) {
            Ok(record::Decoded::Record(r)) if r.phys_offset as u64 == global_phys => Ok(Some(rec)),
            _ => Ok(None),
        }
    }

    /// Reads messages of a queue from a logical offset (spec remoting.md §8.4 statuses).
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_count: u32,
        max_bytes: u32,
        filter: &dyn Fn(i64) -> bool,
    ) -> Result<GetResult, StoreError> {
        let (min, max) = {
            let qs = self.queues.borrow();
            qs.get(&(topic.to_string(), queue_id))
                .map_or((0, 0), |q| (q.cq.min_offset(), q.cq.max_offset()))
        };
        let mut res = GetResult {
            status: GetStatus::NoMessageInQueue,
            next_begin_offset: 0,
            min_offset: min,
            max_offset: max,
            records: Vec::new(),
            behind_bytes: None,
        };
        if max == 0 {
            return Ok(res);
        }
        let (status, next) = if offset < min {
            (GetStatus::OffsetTooSmall, min)
        } else if offset == max {
            (GetStatus::OffsetOverflowOne, offset)
        } else if offset > max {
            (GetStatus::OffsetOverflowBadly, max)
        } else {
            (GetStatus::NoMatchedMessage, offset)
        };
        res.status = status;
        res.next_begin_offset = next;
        if status != GetStatus::NoMatchedMessage {
            return Ok(res);
        }
        let scan_max = u64::from(GET_SCAN_ENTRIES_MIN.max(max_count));
        let mut bytes = 0u64;
        let mut k = offset;
        // Local end of the last entry passed (upstream's `maxPhyOffsetPulling`, plus its size).
        let mut passed_end = None;
        while k < max && k - offset < scan_max && (res.records.len() as u32) < max_count {
            let entry = {
                let qs = self.queues.borrow();
                qs.get(&(topic.to_string(), queue_id))
                    .and_then(|q| q.cq.entry(k).copied())
            };
            let Some(e) = entry else { break };
            let (_, local) = split_offset(e.phys);
            if !filter(e.tags_code) {
                passed_end = Some(local + u64::from(e.size));
                k += 1;
                continue;
            }
            if !res.records.is_empty() && bytes + u64::from(e.size) > u64::from(max_bytes) {
                break;
            }
            let Some(rec) = self.read_local(local, e.size).await? else {
                break;
            };
            bytes += u64::from(e.size);
            res.records.push(rec);
            passed_end = Some(local + u64::from(e.size));
            k += 1;
        }
        res.next_begin_offset = k;
        let end = self.log.borrow().visible_end;
        res.behind_bytes = passed_end.map(|p: u64| end.saturating_sub(p));
        if !res.records.is_empty() {
            res.status = GetStatus::Found;
        }
        Ok(res)
    }

    /// Store timestamp of the message at a queue offset.
    pub async fn store_timestamp_at(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<Option<i64>, StoreError> {
        let entry = {
            let qs = self.queues.borrow();
            qs.get(&(topic.to_string(), queue_id))
                .and_then(|q| q.cq.entry(offset).copied())
        };
        let Some(e) = entry else { return Ok(None) };
        let Some(rec) = self.read_local(split_offset(e.phys).1, e.size).await? else {
            return Ok(None);
        };
        match record::decode(&rec) {
            Ok(record::Decoded::Record(r)) => Ok(Some(r.store_timestamp)),
            _ => Ok(None),
        }
    }

    /// First offset (in [min, max)) whose store timestamp is >= `ts_ms`; `max` if none.
    /// Binary search: store timestamps are non-decreasing per shard.
    pub async fn search_offset_by_timestamp(
        &self,
        topic: &str,
        queue_id: u32,
        ts_ms: i64,
    ) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (
            self.min_offset(topic, queue_id),
            self.max_offset(topic, queue_id),
        );
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store_timestamp_at(topic, queue_id, mid).await? {
                Some(t) if t < ts_ms => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }
}

/// Up to `max` bytes at local offset `pos` from the read-cache entry that holds `pos` (no
/// copy; fewer when the entry ends first).
pub(super) fn cached(log: &Log, pos: u64, max: u32) -> Option<Bytes> {
    let i = log.cache.partition_point(|(s, _)| *s <= pos);
    let (s, b) = log.cache.get(i.checked_sub(1)?)?;
    let off = usize::try_from(pos - s).ok()?;
    (off < b.len()).then(|| b.slice(off..b.len().min(off.saturating_add(max as usize))))
}
