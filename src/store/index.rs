//! `ShardIndex`: one shard's message-key index, files `storePathIndex/<shard>/<yyyyMMddHHmmssSSS>`
//! in upstream's format (index_format.rs has the bytes). It owns the index files of its shard and
//! answers QUERY_MESSAGE lookups; runs on the shard's executor.
//!
//! Decisions (ARCHITECTURE.md "Store"):
//! - Phys offsets in entries are GLOBAL (`shard << 48 | local`), so results route like msgIds.
//! - The file being filled is kept as an in-memory `IndexTable`: header, the whole slot table
//!   (`4 x maxHashSlotNum` bytes, 20 MB with upstream's defaults) and the entries added since the
//!   last flush. Adding a key is therefore pure memory work on the dispatch path (no I/O, no
//!   await). Full files keep only their header in memory; queries read their slots and entries
//!   with glommio buffered reads (page cache), never std::fs and never mmap, so a query cannot
//!   stall the shard on a page fault.
//! - Flushed with the consume queues, before the checkpoint is written: entries, fdatasync, then
//!   a slice of the dirty slot pages and the header, fdatasync. So whatever the checkpoint says
//!   is dispatched is also indexed, and an abnormal restart's commit-log re-scan re-indexes the
//!   rest (records at or below the last indexed offset are skipped, so the re-scan is
//!   idempotent).
//! - The slot table goes out lazily (`IndexTable::slot_write`): each flush writes the next
//!   1/`SLOT_SWEEP_FLUSHES` of the table's pages where dirty; when a sweep has passed every
//!   page, the slot mark (entry 0's bytes, unused by upstream) records through which entry
//!   the table on disk is complete; a clean stop writes everything. Loading replays the
//!   entries after the mark into the slots. Why: a key's slot can be anywhere in the 5 M-slot
//!   table, so a second of uniformly spread keys dirties every page of its 20 MB, and writing
//!   them all every second was ~20 MB/s of device writes beside the commit log's.
//! - A crash between a slot write and the header write can leave slots naming entries beyond
//!   the header's count; loading repairs them by following those entries' `prev` links (the
//!   entries a written slot page names were synced before it). Pages changed by replay or
//!   repair are all written at the first flush after the load.
//! - A file is created on disk (sparse, full size) at its first flush.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};

use super::commitlog::ShardStore;
use super::index_format::{
    chain_step, decode_slot_mark, encode_slot_mark, file_name, for_each_record_key_hash,
    is_file_name, key_hash, record_matches, ChainStep, Geometry, IndexEntry, IndexHeader,
    IndexTable, ENTRY_LEN, HEADER_LEN, SLOTS_PER_PAGE, SLOT_LEN,
};
use super::io::gio_err;
use super::record::{self, Decoded, SYSFLAG_TX_MASK};
use super::{global_offset, ShardId, StoreError};

/// Transaction type ROLLBACK: not indexed.
const SYSFLAG_TX_ROLLBACK: i32 = 0x0C;

/// Index settings (`storePathIndex`, `maxHashSlotNum`, `maxIndexNum`, `messageIndexEnable`,
/// `messageIndexSafe`).
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// `storePathIndex`; shard `s` uses `<dir>/<s>/`.
    pub dir: PathBuf,
    pub max_hash_slot_num: u32,
    pub max_index_num: u32,
    pub enable: bool,
    /// Abnormal recovery also re-scans from the index's own durable end.
    pub safe: bool,
}

impl IndexConfig {
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.max_hash_slot_num == 0 || self.max_index_num < 2 {
            return Err(StoreError::Config(format!(
                "maxHashSlotNum {} must be > 0 and maxIndexNum {} >= 2",
                self.max_hash_slot_num, self.max_index_num
            )));
        }
        if i32::try_from(self.max_index_num).is_err()
            || i32::try_from(self.max_hash_slot_num).is_err()
        {
            return Err(StoreError::Config(
                "maxHashSlotNum/maxIndexNum above 2^31".into(),
            ));
        }
        Ok(())
    }

    pub fn geometry(&self) -> Geometry {
        Geometry {
            slots: self.max_hash_slot_num,
            max_entries: self.max_index_num,
        }
    }
}

/// One index file: its header (durable copy) and, while being filled or not yet fully flushed,
/// its in-memory table.
#[derive(Debug)]
struct FileState {
    created_ms: i64,
    path: PathBuf,
    file: Option<Rc<BufferedFile>>,
    header: IndexHeader,
    table: Option<IndexTable>,
}

impl FileState {
    fn header(&self) -> IndexHeader {
        self.table.as_ref().map_or(self.header, |t| t.header)
    }
}

/// Result of a key query on one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryMessageResult {
    /// Stored records, byte-identical to the commit log, newest first.
    pub records: Vec<Bytes>,
    /// End timestamp of the newest index file.
    pub index_last_update_timestamp: i64,
    /// End (global) phys offset of the newest index file.
    pub index_last_update_phyoffset: u64,
}

/// The index of one shard. See the module doc.
#[derive(Debug)]
pub struct ShardIndex {
    cfg: IndexConfig,
    geo: Geometry,
    dir: PathBuf,
    shard: ShardId,
    /// Oldest first; the last one is the file being filled.
    files: RefCell<Vec<FileState>>,
    /// Global offset of the newest record already indexed (None: nothing yet).
    indexed_through: Cell<Option<u64>>,
    /// Global end phys offset of the index as last flushed.
    durable_end: Cell<Option<u64>>,
    flushed_timestamp: Cell<i64>,
    flush_lock: glommio::sync::Semaphore,
}

impl ShardIndex {
    /// Loads this shard's index files (repairing the newest after a crash).
    pub async fn open(cfg: &IndexConfig, shard: ShardId) -> Result<ShardIndex, StoreError> {
        cfg.validate()?;
        let geo = cfg.geometry();
        let dir = cfg.dir.join(shard.0.to_string());
        // Before any file of this directory's device is opened on this executor (io.rs: the
        // ext4 polled-read probe; without it the shard's reads can hang or fail). Also creates
        // the directory. Open time: the shard serves nothing yet.
        super::io::ensure_dma_reads_work(&dir).await?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io("list dir", &dir, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_file_name(n))
            .collect();
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        // Each file's slot mark (None: none, or a short file started over).
        let mut marks: Vec<Option<i32>> = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let file = open_file(&path).await?;
            let size = file
                .file_size()
                .await
                .map_err(gio_err("stat index", &path))?;
            if size < geo.file_size() {
                // A kill -9 between creating the file and sizing it (`create_file`): nothing
                // was ever written to it. Size it and start it over.
                tracing::warn!(path = %path.display(), size, "index file shorter than its size (a crash while it was created); starting it over");
                file.truncate(geo.file_size())
                    .await
                    .map_err(gio_err("size index", &path))?;
                files.push(FileState {
                    created_ms: name.parse().unwrap_or(0),
                    path,
                    file: Some(file),
                    header: IndexHeader::fresh(0, 0),
                    table: None,
                });
                marks.push(None);
                continue;
            }
            if size != geo.file_size() {
                return Err(StoreError::Corrupt {
                    path: path.display().to_string(),
                    offset: 0,
                    reason: format!(
                        "index file size {size} does not match maxHashSlotNum/maxIndexNum ({} bytes)",
                        geo.file_size()
                    ),
                });
            }
            let head = read_exact(&file, &path, 0, HEADER_LEN as usize).await?;
            let mut header = IndexHeader::decode(&head).ok_or_else(|| StoreError::Corrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: "short index header".into(),
            })?;
            if header.index_count < 1 {
                // The header was never written (crash during the file's first flush): the
                // file holds nothing the checkpoint relies on; start it over.
                header = IndexHeader::fresh(0, 0);
            }
            let mark_bytes = read_exact(&file, &path, geo.entry_pos(0), ENTRY_LEN as usize).await?;
            files.push(FileState {
                created_ms: name.parse().unwrap_or(0),
                path,
                file: Some(file),
                header,
                table: None,
            });
            marks.push(decode_slot_mark(&mark_bytes));
        }
        let idx = ShardIndex {
            cfg: cfg.clone(),
            geo,
            dir,
            shard,
            files: RefCell::new(Vec::new()),
            indexed_through: Cell::new(None),
            durable_end: Cell::new(None),
            flushed_timestamp: Cell::new(0),
            flush_lock: glommio::sync::Semaphore::new(1),
        };
        if let Some(last) = files.last() {
            let h = last.header;
            if h.index_count > 1 || h.end_phy_offset > 0 {
                let end = u64::try_from(h.end_phy_offset).unwrap_or(0);
                idx.indexed_through.set(Some(end));
                idx.durable_end.set(Some(end));
            }
            idx.flushed_timestamp.set(h.end_timestamp);
        }
        let n = files.len();
        for (i, (f, mark)) in files.iter_mut().zip(marks).enumerate() {
            let count = f.header.index_count;
            let full = i64::from(count) >= i64::from(geo.max_entries);
            // The file being filled, and any file whose slot table on disk is behind its
            // entries (a crash before its last sweep ended).
            if (i + 1 == n && !full) || mark.is_some_and(|m| m < count) {
                f.table = Some(idx.load_table(f, mark).await?);
            }
        }
        *idx.files.borrow_mut() = files;
        Ok(idx)
    }

    /// Reads a file's slot table, replays the entries after its slot mark into it, and repairs
    /// slots a crash left pointing past the header's entry count.
    async fn load_table(&self, f: &FileState, mark: Option<i32>) -> Result<IndexTable, StoreError> {
        let file = f.file.clone().expect("invariant: loaded files are open");
        let bytes = read_exact(
            &file,
            &f.path,
            HEADER_LEN,
            (SLOT_LEN * u64::from(self.geo.slots)) as usize,
        )
        .await?;
        let mut t = IndexTable::new(self.geo, f.header);
        t.slots = IndexTable::decode_slots(&bytes, self.geo.slots);
        t.header_dirty = false;
        let count = f.header.index_count;
        if let Some(m) = mark {
            let from = m.clamp(1, count.max(1));
            self.replay_entries(&mut t, f, from, count).await?;
            if from < count {
                tracing::info!(path = %f.path.display(), from, count, "index slots replayed from entries after the slot mark");
            }
            t.slots_through = from;
            t.mark_on_disk = true;
        }
        for s in 0..self.geo.slots {
            let mut v = t.slots[s as usize];
            if (0..count).contains(&v) {
                continue;
            }
            while v >= count && v > 0 {
                let e = read_entry(&file, &f.path, self.geo, v).await?;
                v = if e.prev < v { e.prev } else { 0 };
            }
            tracing::warn!(path = %f.path.display(), slot = s, "index slot repaired after crash");
            t.slots[s as usize] = v.max(0);
            t.mark_page_dirty(s / SLOTS_PER_PAGE);
        }
        t.complete_next = t.has_dirty_pages();
        t.header_dirty = t.has_dirty_pages();
        Ok(t)
    }

    /// Sets the slots of entries `from..to` of `f` (read from disk in order, so each slot ends
    /// at its newest entry).
    async fn replay_entries(
        &self,
        t: &mut IndexTable,
        f: &FileState,
        from: i32,
        to: i32,
    ) -> Result<(), StoreError> {
        const ENTRIES_PER_READ: i32 = 1 << 16;
        let file = f.file.clone().expect("invariant: loaded files are open");
        let mut n = from;
        while n < to {
            let k = (to - n).min(ENTRIES_PER_READ);
            let at = self.geo.entry_pos(u32::try_from(n).unwrap_or(0));
            let b = read_exact(&file, &f.path, at, k as usize * ENTRY_LEN as usize).await?;
            for (i, e) in b.chunks_exact(ENTRY_LEN as usize).enumerate() {
                if let Some(e) = IndexEntry::decode(e) {
                    t.replay(n + i as i32, e.key_hash);
                }
            }
            n += k;
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enable
    }

    /// Local commit-log offset from which an abnormal recovery must re-scan so that the index
    /// catches up (`messageIndexSafe`), or None when nothing is required.
    pub fn safe_rescan_from(&self) -> Option<u64> {
        if !(self.cfg.enable && self.cfg.safe) {
            return None;
        }
        Some(
            self.durable_end
                .get()
                .map_or(0, |g| g & super::LOCAL_OFFSET_MASK),
        )
    }

    /// Indexes every record of `bytes`, a run of this shard's commit log starting at local
    /// offset `pos` (the dispatch hook: called with durable bytes, in log order).
    pub fn dispatch_bytes(&self, pos: u64, bytes: &[u8]) {
        if !self.cfg.enable {
            return;
        }
        let mut at = 0usize;
        while at < bytes.len() {
            match record::decode(&bytes[at..]) {
                Ok(Decoded::Record(r)) => {
                    let phys = global_offset(self.shard, pos + at as u64);
                    self.add_record(&r, phys);
                    at += r.total_size as usize;
                }
                // A blank marker ends the file; the rest of a chunk is never more records.
                _ => break,
            }
        }
    }

    /// Indexes one record (idempotent: records at or below the last indexed offset are
    /// skipped).
    pub fn add_record(&self, r: &record::RecordView<'_>, phys: u64) {
        if !self.cfg.enable
            || r.sys_flag & SYSFLAG_TX_MASK == SYSFLAG_TX_ROLLBACK
            || self.indexed_through.get().is_some_and(|t| phys <= t)
        {
            return;
        }
        self.indexed_through.set(Some(phys));
        let phys_i = i64::try_from(phys).unwrap_or(i64::MAX);
        let mut files = self.files.borrow_mut();
        for_each_record_key_hash(r.topic, r.properties, |hash| {
            let need_new = files
                .last()
                .and_then(|f| f.table.as_ref())
                .is_none_or(IndexTable::is_full);
            if need_new {
                let (end_phy, end_ts, last_ms) = files.last().map_or((0, 0, 0), |f| {
                    let h = f.header();
                    (h.end_phy_offset, h.end_timestamp, f.created_ms)
                });
                let ms = crate::runtime::now_ms().max(last_ms + 1);
                let path = self.dir.join(file_name(ms));
                files.push(FileState {
                    created_ms: ms,
                    path,
                    file: None,
                    header: IndexHeader::fresh(end_phy, end_ts),
                    table: Some(IndexTable::new(
                        self.geo,
                        IndexHeader::fresh(end_phy, end_ts),
                    )),
                });
            }
            let table = files
                .last_mut()
                .and_then(|f| f.table.as_mut())
                .expect("invariant: the newest file has a table with room");
            table.put(hash, phys_i, r.store_timestamp);
        });
    }

    /// Writes what changed since the last flush: entries, fdatasync, a slice of the dirty slot
    /// pages (every one when `complete`, at a clean stop) and the header, fdatasync, and when a
    /// sweep ended the slot mark, fdatasync. Full files that are completely on disk drop their
    /// in-memory table.
    pub async fn flush(&self, complete: bool) -> Result<(), StoreError> {
        let _permit = self
            .flush_lock
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::NotWritable(format!("index flush lock: {e}")))?;
        let todo: Vec<i64> = self
            .files
            .borrow()
            .iter()
            .filter(|f| f.table.as_ref().is_some_and(|t| !t.is_on_disk()))
            .map(|f| f.created_ms)
            .collect();
        for ms in todo {
            self.flush_file(ms, complete).await?;
        }
        let mut files = self.files.borrow_mut();
        let n = files.len();
        for f in files.iter_mut().take(n.saturating_sub(1)) {
            let done = f
                .table
                .as_ref()
                .is_some_and(|t| t.is_full() && t.is_on_disk());
            if done {
                if let Some(t) = f.table.take() {
                    f.header = t.header;
                }
            }
        }
        Ok(())
    }

    async fn flush_file(&self, ms: i64, complete: bool) -> Result<(), StoreError> {
        let (path, file) = {
            let files = self.files.borrow();
            let Some(f) = files.iter().find(|f| f.created_ms == ms) else {
                return Ok(());
            };
            (f.path.clone(), f.file.clone())
        };
        let file = match file {
            Some(f) => f,
            None => {
                let f = create_file(&path, self.geo.file_size()).await?;
                if let Some(st) = self
                    .files
                    .borrow_mut()
                    .iter_mut()
                    .find(|f| f.created_ms == ms)
                {
                    st.file = Some(f.clone());
                }
                f
            }
        };
        // Snapshot what to write (entries and slot pages of the same moment, so no page names
        // an entry this flush does not write); entries stay readable from memory until written.
        let (entries_at, entries, n_entries, slots, header) = {
            let mut files = self.files.borrow_mut();
            let Some(t) = files
                .iter_mut()
                .find(|f| f.created_ms == ms)
                .and_then(|f| f.table.as_mut())
            else {
                return Ok(());
            };
            let n_entries = t.pending.len() / ENTRY_LEN as usize;
            let slots = t.slot_write(complete);
            t.header_dirty = false;
            (
                self.geo
                    .entry_pos(u32::try_from(t.flushed_count).unwrap_or(0)),
                t.pending.clone(),
                n_entries,
                slots,
                t.header,
            )
        };
        // The entries are durable before any slot page or header that names them.
        if !entries.is_empty() {
            file.write_at(entries, entries_at)
                .await
                .map_err(gio_err("write index entries", &path))?;
            file.fdatasync()
                .await
                .map_err(gio_err("fdatasync index", &path))?;
        }
        for (pos, b) in slots.runs {
            file.write_at(b, pos)
                .await
                .map_err(gio_err("write index slots", &path))?;
        }
        file.write_at(header.encode().to_vec(), 0)
            .await
            .map_err(gio_err("write index header", &path))?;
        file.fdatasync()
            .await
            .map_err(gio_err("fdatasync index", &path))?;
        // The mark only once the pages it vouches for are durable.
        if let Some(through) = slots.mark {
            file.write_at(encode_slot_mark(through).to_vec(), self.geo.entry_pos(0))
                .await
                .map_err(gio_err("write index slot mark", &path))?;
            file.fdatasync()
                .await
                .map_err(gio_err("fdatasync index", &path))?;
        }
        if let Some(t) = self
            .files
            .borrow_mut()
            .iter_mut()
            .find(|f| f.created_ms == ms)
            .and_then(|f| f.table.as_mut())
        {
            t.pending.drain(..n_entries * ENTRY_LEN as usize);
            t.flushed_count += i32::try_from(n_entries).unwrap_or(0);
            if let Some(through) = slots.mark {
                t.mark_written(through);
            }
        }
        if let Ok(end) = u64::try_from(header.end_phy_offset) {
            if header.index_count > 1 {
                self.durable_end.set(Some(end));
            }
        }
        self.flushed_timestamp.set(header.end_timestamp);
        Ok(())
    }

    /// End timestamp of the index as last flushed (the checkpoint's `indexMsgTimestamp`).
    pub fn flushed_timestamp(&self) -> i64 {
        self.flushed_timestamp.get()
    }

    /// End timestamp and end (global) phys offset of the newest index file.
    pub fn last_update(&self) -> (i64, u64) {
        self.files.borrow().last().map_or((0, 0), |f| {
            let h = f.header();
            (
                h.end_timestamp,
                u64::try_from(h.end_phy_offset).unwrap_or(0),
            )
        })
    }

    /// Number of index files (on disk or about to be).
    pub fn file_count(&self) -> usize {
        self.files.borrow().len()
    }

    /// Deletes full, flushed index files whose end phys offset is below `global_phys_offset`
    /// (the retention hook: called with this shard's new commit-log min offset, global). Never
    /// deletes the file being filled. Returns how many files were deleted.
    pub async fn delete_index_files_below(
        &self,
        global_phys_offset: u64,
    ) -> Result<usize, StoreError> {
        let victims: Vec<(i64, PathBuf)> = {
            let files = self.files.borrow();
            let n = files.len();
            files
                .iter()
                .take(n.saturating_sub(1))
                .take_while(|f| {
                    f.table.is_none()
                        && u64::try_from(f.header.end_phy_offset)
                            .is_ok_and(|e| e < global_phys_offset)
                })
                .map(|f| (f.created_ms, f.path.clone()))
                .collect()
        };
        for (ms, path) in &victims {
            let st = {
                let mut files = self.files.borrow_mut();
                let i = files.iter().position(|f| f.created_ms == *ms);
                i.map(|i| files.remove(i))
            };
            // Closed first, so the unlink (on glommio's blocking thread) frees the blocks there;
            // a query still reading it keeps it open, and its blocks go once that is done.
            let mut held = None;
            if let Some(f) = st.and_then(|s| s.file) {
                match Rc::try_unwrap(f) {
                    Ok(f) => {
                        let _ = f.close().await;
                    }
                    Err(f) => held = Some(f),
                }
            }
            glommio::io::remove(path)
                .await
                .map_err(gio_err("remove index", path))?;
            if let Some(f) = held {
                glommio::spawn_local(super::io::release_unlinked(f, path.clone())).detach();
            }
            tracing::info!(path = %path.display(), "index file deleted (below the commit-log minimum)");
        }
        Ok(victims.len())
    }

    /// Global phys offsets of entries for `topic#key` stored within `[begin, end]` (ms), newest
    /// first, at most `max` (hash matches only: the caller compares the records' keys).
    pub async fn query(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let hash = key_hash(&super::index_format::index_key(topic, key));
        let slot = self.geo.slot_of(hash);
        let names: Vec<i64> = self
            .files
            .borrow()
            .iter()
            .rev()
            .map(|f| f.created_ms)
            .collect();
        for ms in names {
            // Header and slot value in one borrow, so the chain is consistent with the count.
            let snap = {
                let files = self.files.borrow();
                files.iter().find(|f| f.created_ms == ms).map(|f| {
                    let h = f.header();
                    let in_mem = f.table.as_ref().map(|t| t.slots[slot as usize]);
                    (h, in_mem, f.file.clone(), f.path.clone())
                })
            };
            let Some((header, in_mem, file, path)) = snap else {
                continue;
            };
            if header.index_count <= 1 || !header.overlaps(begin, end) {
                continue;
            }
            let mut n = match (in_mem, &file) {
                (Some(v), _) => v,
                (None, Some(f)) => {
                    let b =
                        read_exact(f, &path, self.geo.slot_pos(slot), SLOT_LEN as usize).await?;
                    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
                }
                (None, None) => 0,
            };
            while Geometry::valid_entry(n, header.index_count) && out.len() < max {
                let mem = {
                    let files = self.files.borrow();
                    files
                        .iter()
                        .find(|f| f.created_ms == ms)
                        .and_then(|f| f.table.as_ref())
                        .and_then(|t| t.pending_entry(n))
                };
                let e = match (mem, &file) {
                    (Some(e), _) => e,
                    (None, Some(f)) => read_entry(f, &path, self.geo, n).await?,
                    (None, None) => break,
                };
                match chain_step(&e, n, hash, &header, begin, end) {
                    ChainStep::Hit { next } => {
                        out.push(u64::try_from(e.phy_offset).unwrap_or(0));
                        n = next;
                    }
                    ChainStep::Skip { next } => n = next,
                    ChainStep::Stop => break,
                }
            }
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }
}

async fn open_file(path: &Path) -> Result<Rc<BufferedFile>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .buffered_open(path)
        .await
        .map_err(gio_err("open index", path))?;
    Ok(Rc::new(f))
}

/// Creates an index file at full (sparse) size and makes its directory entry durable.
async fn create_file(path: &Path, size: u64) -> Result<Rc<BufferedFile>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(gio_err("create index", path))?;
    f.truncate(size)
        .await
        .map_err(gio_err("size index", path))?;
    super::io::sync_parent_dir(path).await?;
    Ok(Rc::new(f))
}

async fn read_exact(
    f: &BufferedFile,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<Vec<u8>, StoreError> {
    let r = f
        .read_at(pos, len)
        .await
        .map_err(gio_err("read index", path))?;
    if r.len() != len {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            offset: pos,
            reason: format!("short read: {} of {len} bytes", r.len()),
        });
    }
    Ok(r.to_vec())
}

async fn read_entry(
    f: &BufferedFile,
    path: &Path,
    geo: Geometry,
    n: i32,
) -> Result<IndexEntry, StoreError> {
    let pos = geo.entry_pos(u32::try_from(n).unwrap_or(0));
    let b = read_exact(f, path, pos, ENTRY_LEN as usize).await?;
    IndexEntry::decode(&b).ok_or_else(|| StoreError::Corrupt {
        path: path.display().to_string(),
        offset: pos,
        reason: "short index entry".into(),
    })
}

impl ShardStore {
    /// QUERY_MESSAGE on this shard: records stored under `topic#key` within `[begin, end]`
    /// (ms), newest first, at most `max`; records whose keys do not actually match (hash
    /// collisions) are dropped.
    pub async fn query_message(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<QueryMessageResult, StoreError> {
        let (ts, phy) = self.index.last_update();
        let mut res = QueryMessageResult {
            records: Vec::new(),
            index_last_update_timestamp: ts,
            index_last_update_phyoffset: phy,
        };
        for phys in self.index.query(topic, key, max, begin, end).await? {
            let Some(rec) = self.lookup_record(phys).await? else {
                continue; // deleted by retention, or beyond a cut tail
            };
            let keep = matches!(
                record::decode(&rec),
                Ok(Decoded::Record(r)) if r.topic == topic && record_matches(r.properties, key)
            );
            if keep {
                res.records.push(rec);
            }
        }
        Ok(res)
    }

    /// This shard's index.
    pub fn index(&self) -> &ShardIndex {
        &self.index
    }

    /// Retention hook: deletes this shard's full index files whose every entry points below
    /// `global_phys_offset` (this shard's new commit-log minimum, as a GLOBAL offset). The file
    /// being filled is never deleted. Returns how many files went.
    pub async fn delete_index_files_below(
        &self,
        global_phys_offset: u64,
    ) -> Result<usize, StoreError> {
        self.index
            .delete_index_files_below(global_phys_offset)
            .await
    }
}
