//! Consume queues (spec/storage.md §4): per (topic, queueId), the list of the queue's messages
//! as 20-byte units. Owned by one shard; runs on its executor. The entries of an open queue are
//! kept in memory (reads never touch the files) and appended to the files by the shard's
//! periodic CQ flush; the files exist for restart and for upstream tools.
//!
//! Files: `<consume_queue_dir>/<topic>/<queueId>/<20-digit start byte>`, each
//! `consume_queue_file_size` bytes (a multiple of 20), created sparse at full size.
//!
//! ```text
//! unit (20 bytes, big-endian)
//!  0   8   physical offset  i64  GLOBAL (shard << 48 | local)
//!  8   4   size             i32  TOTALSIZE of the record
//! 12   8   tagsCode         i64
//! ```
//! Logical offset k lives at byte k*20 of the queue stream. A unit with offset < 0 or size <= 0
//! ends the queue (zeros = unwritten). Filler units `(0, 0x7FFFFFFF, 0)` pad a first file that
//! starts after offset 0; they count as below the queue's min offset.
//!
//! Invariant: entries are dense from `base`; `persisted <= base + entries.len()`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use super::io::{gio_err, list_numbered_files, segment_name};
use super::StoreError;

/// Size of one unit.
pub const CQ_UNIT: u64 = 20;
const FILLER_SIZE: u32 = 0x7FFF_FFFF;

/// One consume-queue unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    pub phys: u64,
    pub size: u32,
    pub tags_code: i64,
}

impl CqEntry {
    fn is_filler(&self) -> bool {
        self.phys == 0 && self.size == FILLER_SIZE
    }
}

/// Appends the 20-byte unit.
pub fn encode_entry(e: &CqEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.phys.to_be_bytes());
    out.extend_from_slice(&e.size.to_be_bytes());
    out.extend_from_slice(&e.tags_code.to_be_bytes());
}

/// Decodes a unit; `None` marks the end of the queue (offset < 0 or size <= 0, or short).
pub fn decode_entry(b: &[u8]) -> Option<CqEntry> {
    let b: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    let phys = i64::from_be_bytes(b[0..8].try_into().ok()?);
    let size = i32::from_be_bytes(b[8..12].try_into().ok()?);
    let tags_code = i64::from_be_bytes(b[12..20].try_into().ok()?);
    if phys < 0 || size <= 0 {
        return None;
    }
    Some(CqEntry {
        phys: phys as u64,
        size: size as u32,
        tags_code,
    })
}

/// Rounds a configured CQ file size up to a whole number of units (as upstream).
pub fn normalized_file_size(configured: u64) -> u64 {
    configured.div_ceil(CQ_UNIT).max(1) * CQ_UNIT
}

/// A pending write of queue bytes: `bytes` at byte `pos` of the file starting at `file_start`.
#[derive(Debug)]
pub struct CqWrite {
    pub file_start: u64,
    pub pos: u64,
    pub bytes: Vec<u8>,
}

/// One consume queue.
#[derive(Debug)]
pub struct ConsumeQueue {
    pub topic: String,
    pub queue_id: u32,
    dir: PathBuf,
    file_size: u64,
    /// Logical offset of `entries[0]` (a multiple of units per file when loaded from disk).
    base: u64,
    /// First logical offset that is a real message (skips fillers).
    min_offset: u64,
    entries: Vec<CqEntry>,
    /// Logical offset up to which entries were handed to a file write.
    persisted: u64,
    files: BTreeMap<u64, Rc<BufferedFile>>,
}

impl ConsumeQueue {
    pub fn new(root: &Path, topic: &str, queue_id: u32, file_size: u64) -> Self {
        Self {
            topic: topic.to_string(),
            queue_id,
            dir: root.join(topic).join(queue_id.to_string()),
            file_size: normalized_file_size(file_size),
            base: 0,
            min_offset: 0,
            entries: Vec::new(),
            persisted: 0,
            files: BTreeMap::new(),
        }
    }

    /// Next logical offset (the queue's max offset).
    pub fn max_offset(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    pub fn min_offset(&self) -> u64 {
        self.min_offset.min(self.max_offset())
    }

    pub fn entry(&self, offset: u64) -> Option<&CqEntry> {
        let i = offset.checked_sub(self.base)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<&CqEntry> {
        self.entries.last()
    }

    /// Appends the entry for logical `offset`, which must be the max offset.
    pub fn push(&mut self, offset: u64, e: CqEntry) {
        assert_eq!(offset, self.max_offset(), "invariant: dense CQ offsets");
        if let Some(last) = self.entries.last() {
            assert!(e.phys > last.phys, "invariant: CQ phys offsets increase");
        }
        self.entries.push(e);
    }

    /// Drops entries whose record ends beyond `log_end` (global). Returns the old max offset.
    pub fn truncate_beyond(&mut self, log_end: u64) -> u64 {
        let old = self.max_offset();
        while self
            .entries
            .last()
            .is_some_and(|e| !e.is_filler() && e.phys + u64::from(e.size) > log_end)
        {
            self.entries.pop();
        }
        self.persisted = self.persisted.min(self.max_offset());
        old
    }

    /// Drops entries from logical `offset` on (re-dispatch found a different record there).
    pub fn truncate_to(&mut self, offset: u64) {
        let keep = offset
            .saturating_sub(self.base)
            .min(self.entries.len() as u64);
        self.entries.truncate(keep as usize);
        self.persisted = self.persisted.min(self.max_offset());
    }

    /// Retention: moves the min offset up to the first entry whose physical offset is at or
    /// above `min_phys` (fillers count as below). Never moves it down.
    pub fn advance_min_to_phys(&mut self, min_phys: u64) {
        let below = self
            .entries
            .partition_point(|e| e.is_filler() || e.phys < min_phys);
        self.min_offset = self.min_offset.max(self.base + below as u64);
    }

    /// Retention: drops whole head files whose last entry points below `min_phys`, never the
    /// file holding the max offset; returns their paths (the caller unlinks them). Entries are
    /// dropped from memory and from the file cache, so no later CQ flush writes to them.
    pub fn drop_head_files_below(&mut self, min_phys: u64) -> Vec<PathBuf> {
        let per_file = self.file_size / CQ_UNIT;
        let n = usize::try_from(per_file).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        // `base` is always a file start (0, or the first file's name / 20 when loaded).
        while self.entries.len() > n {
            let last = self.entries[n - 1];
            if !(last.is_filler() || last.phys < min_phys) {
                break;
            }
            let file_start = self.base * CQ_UNIT;
            out.push(self.file_path(file_start));
            self.files.remove(&file_start);
            self.entries.drain(..n);
            self.base += per_file;
        }
        self.min_offset = self.min_offset.max(self.base);
        self.persisted = self.persisted.max(self.base);
        out
    }

    /// Takes the bytes not yet handed to a file write, split per file.
    pub fn take_unwritten(&mut self) -> Vec<CqWrite> {
        let mut out: Vec<CqWrite> = Vec::new();
        let max = self.max_offset();
        for k in self.persisted..max {
            let byte = k * CQ_UNIT;
            let file_start = byte / self.file_size * self.file_size;
            if out.last().is_none_or(|w| w.file_start != file_start) {
                out.push(CqWrite {
                    file_start,
                    pos: byte - file_start,
                    bytes: Vec::new(),
                });
            }
            if let (Some(w), Some(e)) = (out.last_mut(), self.entry(k).copied()) {
                encode_entry(&e, &mut w.bytes);
            }
        }
        self.persisted = max;
        out
    }

    /// Zero writes covering logical offsets `[from, to)` (after a truncation).
    pub fn zero_range(&self, from: u64, to: u64) -> Vec<CqWrite> {
        let mut out = Vec::new();
        let (mut byte, end) = (from * CQ_UNIT, to * CQ_UNIT);
        while byte < end {
            let file_start = byte / self.file_size * self.file_size;
            let stop = end.min(file_start + self.file_size);
            out.push(CqWrite {
                file_start,
                pos: byte - file_start,
                bytes: vec![0; (stop - byte) as usize],
            });
            byte = stop;
        }
        out
    }

    /// The open file starting at `file_start`, if cached.
    pub fn cached_file(&self, file_start: u64) -> Option<Rc<BufferedFile>> {
        self.files.get(&file_start).cloned()
    }

    /// Caches an opened file, keeping only the newest two open.
    pub fn cache_file(&mut self, file_start: u64, f: Rc<BufferedFile>) {
        self.files.insert(file_start, f);
        while self.files.len() > 2 {
            self.files.pop_first();
        }
    }

    pub fn file_path(&self, file_start: u64) -> PathBuf {
        self.dir.join(segment_name(file_start))
    }

    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Loads a queue directory. Returns `None` when it holds no entry of `shard` (empty, or
    /// another shard's queue).
    pub async fn load(
        root: &Path,
        topic: &str,
        queue_id: u32,
        file_size: u64,
        shard: u16,
    ) -> Result<Option<Self>, StoreError> {
        let mut q = Self::new(root, topic, queue_id, file_size);
        let files = list_numbered_files(&q.dir)?;
        let Some(&(first, _)) = files.first() else {
            return Ok(None);
        };
        q.base = first / CQ_UNIT;
        if first % q.file_size != 0 {
            return Err(q.corrupt(first, "file name is not a multiple of the file size"));
        }
        'files: for (i, (start, path)) in files.iter().enumerate() {
            if *start != first + i as u64 * q.file_size {
                return Err(q.corrupt(*start, "gap between consume queue files"));
            }
            let data = read_whole(path, q.file_size).await?;
            for unit in data.chunks_exact(CQ_UNIT as usize) {
                match decode_entry(unit) {
                    Some(e) => q.entries.push(e),
                    None => break 'files,
                }
            }
        }
        let fillers = q.entries.iter().take_while(|e| e.is_filler()).count();
        let Some(real) = q.entries.get(fillers) else {
            return Ok(None);
        };
        if real.phys >> 48 != u64::from(shard) {
            return Ok(None);
        }
        q.min_offset = q.base + fillers as u64;
        q.persisted = q.max_offset();
        Ok(Some(q))
    }

    fn corrupt(&self, offset: u64, reason: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.dir.display().to_string(),
            offset,
            reason: reason.to_string(),
        }
    }
}

async fn read_whole(path: &Path, file_size: u64) -> Result<Vec<u8>, StoreError> {
    let f = BufferedFile::open(path)
        .await
        .map_err(gio_err("open consume queue", path))?;
    let size = f
        .file_size()
        .await
        .map_err(gio_err("stat consume queue", path))?;
    if size > file_size {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            offset: size,
            reason: format!(
                "file length {size} does not match consume_queue_file_size {file_size}"
            ),
        });
    }
    // Shorter than a whole file: a kill -9 between creating the file and sizing it
    // (`open_file`). The missing tail reads as zeros, which end the queue there; recovery
    // re-dispatches whatever the log holds beyond it.
    if size < file_size {
        tracing::warn!(path = %path.display(), size, file_size, "consume queue file shorter than its size (a crash while it was created); reading the missing tail as empty");
    }
    let r = f
        .read_at(0, size as usize)
        .await
        .map_err(gio_err("read consume queue", path))?;
    let mut data = r.to_vec();
    data.resize(file_size as usize, 0);
    f.close()
        .await
        .map_err(gio_err("close consume queue", path))?;
    Ok(data)
}

/// Opens (creating sparse at full size) one CQ file.
pub async fn open_file(path: &Path, file_size: u64) -> Result<Rc<BufferedFile>, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(gio_err("open consume queue", path))?;
    let size = f
        .file_size()
        .await
        .map_err(gio_err("stat consume queue", path))?;
    if size < file_size {
        f.truncate(file_size)
            .await
            .map_err(gio_err("size consume queue", path))?;
    }
    Ok(Rc::new(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(phys: u64) -> CqEntry {
        CqEntry {
            phys,
            size: 100,
            tags_code: -5,
        }
    }

    #[test]
    fn unit_layout_and_end_marker() {
        let mut b = Vec::new();
        encode_entry(
            &CqEntry {
                phys: (2 << 48) | 4096,
                size: 150,
                tags_code: -1,
            },
            &mut b,
        );
        assert_eq!(
            hex::encode(&b),
            "0002000000001000".to_string() + "00000096" + "ffffffffffffffff"
        );
        assert_eq!(b.len(), 20);
        assert_eq!(decode_entry(&b).unwrap().tags_code, -1);
        assert_eq!(decode_entry(&[0u8; 20]), None);
        assert_eq!(normalized_file_size(300_000), 300_000);
        assert_eq!(normalized_file_size(1001), 1020);
    }

    #[test]
    fn unwritten_bytes_split_per_file() {
        let mut q = ConsumeQueue::new(Path::new("/x"), "T", 0, 60); // 3 units per file
        for k in 0..5 {
            q.push(k, e(k * 100 + 1));
        }
        let w = q.take_unwritten();
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].file_start, w[0].pos, w[0].bytes.len()), (0, 0, 60));
        assert_eq!((w[1].file_start, w[1].pos, w[1].bytes.len()), (60, 0, 40));
        assert!(q.take_unwritten().is_empty());
        q.push(5, e(600));
        let w = q.take_unwritten();
        assert_eq!((w[0].file_start, w[0].pos), (60, 40));
        assert_eq!(q.truncate_beyond(450), 6);
        assert_eq!(q.max_offset(), 4);
        let z = q.zero_range(4, 6);
        assert_eq!((z[0].file_start, z[0].pos, z[0].bytes.len()), (60, 20, 40));
    }

    #[test]
    fn retention_drops_whole_head_files_and_moves_the_min() {
        let mut q = ConsumeQueue::new(Path::new("/x"), "T", 0, 60); // 3 units per file
        for k in 0..8 {
            q.push(k, e(k * 100 + 100));
        }
        let _ = q.take_unwritten();
        q.advance_min_to_phys(250);
        assert_eq!(
            q.min_offset(),
            2,
            "first entry at or above 250 is offset 2 (phys 300)"
        );
        // File 0 ends with phys 300 (not below 350), nothing dropped yet.
        assert!(q.drop_head_files_below(300).is_empty());
        let dropped = q.drop_head_files_below(650);
        assert_eq!(
            dropped,
            vec![
                PathBuf::from("/x/T/0").join(segment_name(0)),
                PathBuf::from("/x/T/0").join(segment_name(60))
            ]
        );
        assert_eq!(q.min_offset(), 6);
        assert_eq!(q.max_offset(), 8);
        assert_eq!(q.entry(6).map(|x| x.phys), Some(700));
        assert_eq!(q.entry(5), None);
        // The last file (holding the max offset) is never dropped.
        assert!(q.drop_head_files_below(10_000).is_empty());
        q.advance_min_to_phys(10_000);
        assert_eq!(
            q.min_offset(),
            8,
            "every entry below: the queue reads as empty"
        );
        // New entries keep their offsets and are written to the right file.
        q.push(8, e(10_000));
        let w = q.take_unwritten();
        assert_eq!((w[0].file_start, w[0].pos, w[0].bytes.len()), (120, 40, 20));
    }
}
