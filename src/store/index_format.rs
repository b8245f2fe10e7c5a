//! The index file format (spec/storage.md §5), byte for byte upstream's: pure encode/decode,
//! key hashing and slot/entry arithmetic, plus `IndexTable`, the in-memory state machine of
//! one file that is being filled. No I/O here; `index.rs` moves these bytes to and from disk.
//!
//! ```text
//! file = header (40 B) | slot table (slots x 4 B) | entries (max_entries x 20 B)   big-endian
//!
//! header:  0  8  begin_timestamp   i64  store time of the first entry (ms)
//!          8  8  end_timestamp     i64  store time of the last entry (ms)
//!         16  8  begin_phy_offset  i64  GLOBAL phys offset (shard << 48 | local) of the first
//!         24  8  end_phy_offset    i64  GLOBAL phys offset of the last entry
//!         32  4  hash_slot_count   i32  number of non-empty slots
//!         36  4  index_count       i32  next entry number; starts at 1 (entry 0 is never used)
//! slot s (at 40 + 4*s):            i32  number of the newest entry of bucket s, 0 = empty
//! entry n (at 40 + 4*slots + 20*n):
//!          0  4  key_hash          i32  abs(Java String.hashCode(key)), MIN_VALUE -> 0
//!          4  8  phy_offset        i64  GLOBAL phys offset of the record
//!         12  4  time_diff         i32  (store_ts - begin_timestamp) / 1000, SECONDS, >= 0
//!         16  4  prev              i32  previous entry of the same bucket, 0 = end of chain
//!
//! shardmq's slot mark, in the bytes of entry 0 (which upstream never writes or reads: a slot
//! or prev of 0 means "none"):
//!          0  4  magic             "SMQs"
//!          4  4  slots_through     i32  the slot table on disk is complete through entry
//!                                       slots_through - 1 (see `SlotWrite`)
//!          8  4  crc               u32  CRC32 of bytes 0..8
//!         12  8  zero
//! ```
//!
//! The phys offsets are GLOBAL (shard id in the high 16 bits): what a client sees in an offset
//! msgId, so a query result routes to its shard like any other offset (DESIGN §3). Keys are
//! `topic#UNIQ_KEY` and `topic#k` for each non-empty space-separated `k` of `KEYS`.

use crate::remoting::message::{get_property, java_string_hash, keys};

pub const HEADER_LEN: u64 = 40;
pub const SLOT_LEN: u64 = 4;
pub const ENTRY_LEN: u64 = 20;
/// Upstream's `maxMsgsNumBatch`: most results one query returns.
pub const MAX_QUERY_RESULTS: usize = 64;
/// Upstream's `defaultQueryMaxNum`, used for unique-key queries.
pub const UNIQUE_QUERY_MAX: usize = 32;
/// Slots per page of the slot table (dirty tracking granularity).
pub const SLOTS_PER_PAGE: u32 = 1024;
/// Flushes (one a second, with the consume queues) over which the slot table's dirty pages
/// are written once: a 5 M-slot table (20 MB) goes out ~650 KB a flush, not all at once.
pub const SLOT_SWEEP_FLUSHES: u32 = 30;
const SLOT_MARK_MAGIC: [u8; 4] = *b"SMQs";

/// The slot mark (module doc): entry 0's bytes saying through which entry the slot table on
/// disk is complete.
pub fn encode_slot_mark(slots_through: i32) -> [u8; ENTRY_LEN as usize] {
    let mut b = [0u8; ENTRY_LEN as usize];
    b[0..4].copy_from_slice(&SLOT_MARK_MAGIC);
    b[4..8].copy_from_slice(&slots_through.to_be_bytes());
    let crc = crc32fast::hash(&b[0..8]);
    b[8..12].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The slot mark in entry 0's bytes, or None (a file written before marks, or by upstream:
/// its slot table was written with every flush, so it is complete through its header's
/// count).
pub fn decode_slot_mark(b: &[u8]) -> Option<i32> {
    let b = b.get(..12)?;
    if b[0..4] != SLOT_MARK_MAGIC || crc32fast::hash(&b[0..8]).to_be_bytes() != b[8..12] {
        return None;
    }
    Some(i32::from_be_bytes([b[4], b[5], b[6], b[7]]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexHeader {
    pub begin_timestamp: i64,
    pub end_timestamp: i64,
    pub begin_phy_offset: i64,
    pub end_phy_offset: i64,
    pub hash_slot_count: i32,
    pub index_count: i32,
}

impl IndexHeader {
    /// A fresh file's header; a successor starts from its predecessor's end values.
    pub fn fresh(prev_end_phy: i64, prev_end_ts: i64) -> Self {
        IndexHeader {
            begin_timestamp: prev_end_ts,
            end_timestamp: prev_end_ts,
            begin_phy_offset: prev_end_phy,
            end_phy_offset: prev_end_phy,
            hash_slot_count: 0,
            index_count: 1,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    /// `None` if `b` is shorter than a header.
    pub fn decode(b: &[u8]) -> Option<Self> {
        Some(IndexHeader {
            begin_timestamp: i64::from_be_bytes(b.get(0..8)?.try_into().ok()?),
            end_timestamp: i64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
            begin_phy_offset: i64::from_be_bytes(b.get(16..24)?.try_into().ok()?),
            end_phy_offset: i64::from_be_bytes(b.get(24..32)?.try_into().ok()?),
            hash_slot_count: i32::from_be_bytes(b.get(32..36)?.try_into().ok()?),
            index_count: i32::from_be_bytes(b.get(36..40)?.try_into().ok()?),
        })
    }

    /// Upstream's overlap test of a query range with this file's time range.
    pub fn overlaps(&self, begin: i64, end: i64) -> bool {
        let (b, e) = (self.begin_timestamp, self.end_timestamp);
        (begin < b && end > e) || (begin >= b && begin <= e) || (end >= b && end <= e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key_hash: i32,
    pub phy_offset: i64,
    pub time_diff: i32,
    pub prev: i32,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN as usize] {
        let mut b = [0u8; ENTRY_LEN as usize];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        Some(IndexEntry {
            key_hash: i32::from_be_bytes(b.get(0..4)?.try_into().ok()?),
            phy_offset: i64::from_be_bytes(b.get(4..12)?.try_into().ok()?),
            time_diff: i32::from_be_bytes(b.get(12..16)?.try_into().ok()?),
            prev: i32::from_be_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
}

/// Geometry of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub slots: u32,
    pub max_entries: u32,
}

impl Geometry {
    pub fn file_size(&self) -> u64 {
        HEADER_LEN + SLOT_LEN * u64::from(self.slots) + ENTRY_LEN * u64::from(self.max_entries)
    }

    pub fn slot_pos(&self, slot: u32) -> u64 {
        HEADER_LEN + SLOT_LEN * u64::from(slot)
    }

    pub fn entry_pos(&self, n: u32) -> u64 {
        HEADER_LEN + SLOT_LEN * u64::from(self.slots) + ENTRY_LEN * u64::from(n)
    }

    pub fn slot_of(&self, key_hash: i32) -> u32 {
        // key_hash >= 0 by construction; slots > 0 (checked by the config).
        key_hash.unsigned_abs() % self.slots.max(1)
    }

    /// A slot/prev value that names a written entry (`1..count`).
    pub fn valid_entry(n: i32, count: i32) -> bool {
        n > 0 && n < count
    }
}

/// `abs(String.hashCode(key))` as upstream; `Integer.MIN_VALUE` maps to 0.
pub fn key_hash(key: &str) -> i32 {
    let h = java_string_hash(key);
    if h == i32::MIN {
        0
    } else {
        h.abs()
    }
}

/// `String.hashCode()` of `prefix` followed by `s`, given `h` = the hash of `prefix`.
fn java_hash_extend(h: i32, s: &str) -> i32 {
    let step = |h: i32, c: i32| h.wrapping_mul(31).wrapping_add(c);
    if s.is_ascii() {
        s.bytes().fold(h, |h, b| step(h, i32::from(b)))
    } else {
        s.encode_utf16().fold(h, |h, c| step(h, i32::from(c)))
    }
}

/// `key_hash(index_key(topic, key))` without building the string.
fn index_key_hash(topic_hash: i32, key: &str) -> i32 {
    let h = java_hash_extend(topic_hash, key);
    if h == i32::MIN {
        0
    } else {
        h.abs()
    }
}

/// Calls `f` with the hash of every key `record_keys` returns, in the same order, from one
/// pass over the properties and with no allocation (the per-message path of the index).
pub fn for_each_record_key_hash(topic: &str, properties: &str, mut f: impl FnMut(i32)) {
    // The last non-empty value of each key wins, as get_property.
    let (mut uniq, mut keys) = (None, None);
    for (k, v) in crate::remoting::message::iter_properties(properties) {
        match k {
            keys::UNIQ_KEY => uniq = Some(v),
            keys::KEYS => keys = Some(v),
            _ => {}
        }
    }
    if uniq.is_none() && keys.is_none() {
        return;
    }
    let topic_hash = java_hash_extend(java_string_hash(topic), "#");
    if let Some(u) = uniq {
        f(index_key_hash(topic_hash, u));
    }
    if let Some(ks) = keys {
        for k in ks.split(' ').filter(|k| !k.is_empty()) {
            f(index_key_hash(topic_hash, k));
        }
    }
}

/// `topic#key`.
pub fn index_key(topic: &str, key: &str) -> String {
    format!("{topic}#{key}")
}

/// Keys a record is indexed under: `topic#UNIQ_KEY`, then `topic#k` for every non-empty `k` of
/// `KEYS` split on single spaces (duplicates kept, as upstream).
pub fn record_keys(topic: &str, properties: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = get_property(properties, keys::UNIQ_KEY) {
        out.push(index_key(topic, u));
    }
    if let Some(ks) = get_property(properties, keys::KEYS) {
        out.extend(
            ks.split(' ')
                .filter(|k| !k.is_empty())
                .map(|k| index_key(topic, k)),
        );
    }
    out
}

/// Whether a record with these properties matches a query key (collision filter).
pub fn record_matches(properties: &str, key: &str) -> bool {
    get_property(properties, keys::UNIQ_KEY) == Some(key)
        || get_property(properties, keys::KEYS).is_some_and(|ks| ks.split(' ').any(|k| k == key))
}

/// Seconds since `begin` (0 if `begin <= 0`), clamped to `[0, i32::MAX]`.
pub fn time_diff(store_ts: i64, begin: i64) -> i32 {
    if begin <= 0 {
        return 0;
    }
    i32::try_from(((store_ts - begin) / 1000).max(0)).unwrap_or(i32::MAX)
}

/// The in-memory state of the file being filled: header, the whole slot table, and the
/// entries not yet written to disk (entry numbers `flushed_count..header.index_count`).
/// Entries below `flushed_count` live only on disk.
///
/// The slot table reaches the disk lazily (`slot_write`): entries and header are flushed every
/// time, dirty slot pages a slice per flush, and the slot mark says through which entry the
/// table on disk is complete; a restart replays the entries after the mark into the slots.
#[derive(Debug, Clone)]
pub struct IndexTable {
    pub geo: Geometry,
    pub header: IndexHeader,
    pub slots: Vec<i32>,
    /// Encoded entries from `flushed_count` on.
    pub pending: Vec<u8>,
    pub flushed_count: i32,
    /// Pages of the slot table changed since they were last written (a bit per page).
    dirty: Vec<u64>,
    dirty_count: u32,
    /// Whether the header changed since the last flush.
    pub header_dirty: bool,
    /// The slot mark on disk (or, while `mark_on_disk` is false, the one to write: a fresh
    /// file's all-zero slots are complete through entry 0, a file loaded without a mark
    /// through its count).
    pub slots_through: i32,
    pub mark_on_disk: bool,
    /// The next flush writes every dirty page and a mark through the count (set at load when
    /// replay or repair changed slots: a second crash must not find those pages stale).
    pub complete_next: bool,
    /// The sweep writing the dirty pages: next page, and the entry count when it began.
    sweep_next: u32,
    sweep_from: i32,
}

/// What one flush writes of the slot table: runs of adjacent pages (file position, bytes),
/// then, once those are durable, the slot mark.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SlotWrite {
    pub runs: Vec<(u64, Vec<u8>)>,
    pub mark: Option<i32>,
}

impl IndexTable {
    /// A new, empty table.
    pub fn new(geo: Geometry, header: IndexHeader) -> Self {
        IndexTable {
            geo,
            header,
            slots: vec![0; geo.slots as usize],
            pending: Vec::new(),
            flushed_count: header.index_count,
            dirty: vec![0; geo.slots.div_ceil(SLOTS_PER_PAGE).div_ceil(64) as usize],
            dirty_count: 0,
            header_dirty: true,
            slots_through: header.index_count,
            mark_on_disk: false,
            complete_next: false,
            sweep_next: 0,
            sweep_from: header.index_count,
        }
    }

    /// Pages of the slot table.
    pub fn page_count(&self) -> u32 {
        self.geo.slots.div_ceil(SLOTS_PER_PAGE)
    }

    pub fn mark_page_dirty(&mut self, p: u32) {
        let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
        if self.dirty[w] & bit == 0 {
            self.dirty[w] |= bit;
            self.dirty_count += 1;
        }
    }

    pub fn has_dirty_pages(&self) -> bool {
        self.dirty_count > 0
    }

    /// Nothing of this table is left to write: entries, header, slots and a mark through the
    /// count are all on disk (a full file in this state drops its table).
    pub fn is_on_disk(&self) -> bool {
        self.pending.is_empty()
            && !self.header_dirty
            && !self.has_dirty_pages()
            && self.mark_on_disk
            && self.slots_through >= self.header.index_count
    }

    /// Sets the slot of entry `n`'s key (replay of entries after the slot mark at load).
    pub fn replay(&mut self, n: i32, key_hash: i32) {
        let slot = self.geo.slot_of(key_hash);
        if self.slots[slot as usize] != n {
            self.slots[slot as usize] = n;
            self.mark_page_dirty(slot / SLOTS_PER_PAGE);
        }
    }

    /// Encodes and clears the dirty pages in `[from, to)`; adjacent pages become one run.
    fn take_dirty_runs(&mut self, from: u32, to: u32) -> Vec<(u64, Vec<u8>)> {
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for p in from..to {
            let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
            if self.dirty[w] & bit == 0 {
                continue;
            }
            self.dirty[w] &= !bit;
            self.dirty_count -= 1;
            let (pos, bytes) = self.slot_page(p);
            match runs.last_mut() {
                Some((at, run)) if *at + run.len() as u64 == pos => run.extend(bytes),
                _ => runs.push((pos, bytes)),
            }
        }
        runs
    }

    /// What this flush writes of the slot table. `complete` (a clean stop): every dirty page,
    /// and a mark through the current count. Otherwise the sweep's next
    /// `ceil(pages / SLOT_SWEEP_FLUSHES)` pages; when the sweep has passed the last page, a
    /// mark through the count at which it began (every page on disk then holds its state from
    /// that moment or later: written by the sweep, or unchanged since it was written), and
    /// the next sweep begins. With no dirty page at all, the table on disk is complete through
    /// the current count. The caller writes the runs, syncs, and only then writes the mark,
    /// and calls `mark_written` once that is durable.
    pub fn slot_write(&mut self, complete: bool) -> SlotWrite {
        let count = self.header.index_count;
        let pages = self.page_count();
        let mut w = SlotWrite::default();
        let complete = complete || std::mem::take(&mut self.complete_next);
        if complete || !self.has_dirty_pages() {
            w.runs = self.take_dirty_runs(0, pages);
            self.sweep_next = 0;
            self.sweep_from = count;
            if !self.mark_on_disk || self.slots_through < count {
                w.mark = Some(count);
            }
            return w;
        }
        let to = (self.sweep_next + pages.div_ceil(SLOT_SWEEP_FLUSHES)).min(pages);
        w.runs = self.take_dirty_runs(self.sweep_next, to);
        self.sweep_next = to;
        if to == pages {
            let through = if self.has_dirty_pages() {
                self.sweep_from
            } else {
                count
            };
            if !self.mark_on_disk || self.slots_through < through {
                w.mark = Some(through);
            }
            self.sweep_next = 0;
            self.sweep_from = count;
        } else if !self.mark_on_disk {
            // A file's first flush: its mark (fresh: nothing; loaded: what was found) goes out
            // at once, so a crash before the sweep ends never leaves a file without one.
            w.mark = Some(self.slots_through);
        }
        w
    }

    /// The slot mark `through` is durable.
    pub fn mark_written(&mut self, through: i32) {
        self.slots_through = through;
        self.mark_on_disk = true;
    }

    /// `indexCount >= maxIndexNum` (entry 0 is unused, so a file holds `max - 1` entries).
    pub fn is_full(&self) -> bool {
        i64::from(self.header.index_count) >= i64::from(self.geo.max_entries)
    }

    /// Adds one key. The caller checks `is_full` first.
    pub fn put(&mut self, key_hash: i32, phy: i64, store_ts: i64) {
        assert!(!self.is_full(), "invariant: put into a table with room");
        let n = self.header.index_count;
        if n <= 1 {
            self.header.begin_phy_offset = phy;
            self.header.begin_timestamp = store_ts;
        }
        let slot = self.geo.slot_of(key_hash);
        let old = self.slots[slot as usize];
        let prev = if Geometry::valid_entry(old, n) {
            old
        } else {
            self.header.hash_slot_count += 1;
            0
        };
        let entry = IndexEntry {
            key_hash,
            phy_offset: phy,
            time_diff: time_diff(store_ts, self.header.begin_timestamp),
            prev,
        };
        self.pending.extend_from_slice(&entry.encode());
        self.slots[slot as usize] = n;
        self.mark_page_dirty(slot / SLOTS_PER_PAGE);
        self.header.index_count = n + 1;
        self.header.end_phy_offset = phy;
        self.header.end_timestamp = store_ts;
        self.header_dirty = true;
    }

    /// Entry `n` if it is still in memory.
    pub fn pending_entry(&self, n: i32) -> Option<IndexEntry> {
        let i = usize::try_from(n.checked_sub(self.flushed_count)?).ok()?;
        let at = i * ENTRY_LEN as usize;
        IndexEntry::decode(self.pending.get(at..at + ENTRY_LEN as usize)?)
    }

    /// Encoded bytes of slot page `p` and their file position.
    pub fn slot_page(&self, p: u32) -> (u64, Vec<u8>) {
        let from = (p * SLOTS_PER_PAGE) as usize;
        let to = (from + SLOTS_PER_PAGE as usize).min(self.slots.len());
        let mut b = Vec::with_capacity((to - from) * SLOT_LEN as usize);
        for v in &self.slots[from..to] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        (self.geo.slot_pos(p * SLOTS_PER_PAGE), b)
    }

    /// Decodes a slot table read from disk.
    pub fn decode_slots(b: &[u8], slots: u32) -> Vec<i32> {
        let mut v: Vec<i32> = b
            .chunks_exact(SLOT_LEN as usize)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        v.resize(slots as usize, 0);
        v
    }
}

/// Decision for one step of a bucket-chain walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStep {
    /// Keep this entry's offset, go on with `next`.
    Hit { next: i32 },
    /// Not ours (other hash or outside the range), go on with `next`.
    Skip { next: i32 },
    /// End of the chain.
    Stop,
}

/// Upstream's chain rules: keep entries of equal hash inside `[begin, end]`; stop when `prev` is
/// not a valid entry, does not point back (upstream: points to itself), or the entry is older
/// than `begin`. Entries are appended in order, so a good chain's `prev` is always an earlier
/// entry; requiring that (not only "not itself") ends every walk within `index_count` steps,
/// also over a damaged file whose entries point at each other, which upstream's rule follows
/// forever.
pub fn chain_step(
    e: &IndexEntry,
    n: i32,
    hash: i32,
    header: &IndexHeader,
    begin: i64,
    end: i64,
) -> ChainStep {
    let t = header.begin_timestamp + i64::from(e.time_diff) * 1000;
    let in_range = t >= begin && t <= end;
    let next_ok = Geometry::valid_entry(e.prev, header.index_count) && e.prev < n;
    let hit = e.key_hash == hash && in_range;
    match (hit, next_ok && t >= begin) {
        (true, true) => ChainStep::Hit { next: e.prev },
        (true, false) => ChainStep::Hit { next: 0 },
        (false, true) => ChainStep::Skip { next: e.prev },
        (false, false) => ChainStep::Stop,
    }
}

/// File name: creation time `yyyyMMddHHmmssSSS` in the local time zone (as upstream).
pub fn file_name(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let t = libc::time_t::try_from(secs).unwrap_or(0);
    // SAFETY: an all-zero `tm` is a valid value (plain integers and a nullable pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return format!("{ms:017}");
    }
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        millis
    )
}

/// Whether `name` looks like an index file name (17 decimal digits).
pub fn is_file_name(name: &str) -> bool {
    name.len() == 17 && name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            slots: 8,
            max_entries: 5,
        }
    }

    #[test]
    fn sizes_match_upstream_defaults() {
        let g = Geometry {
            slots: 5_000_000,
            max_entries: 20_000_000,
        };
        assert_eq!(g.file_size(), 420_000_040);
        assert_eq!(g.slot_pos(0), 40);
        assert_eq!(g.entry_pos(1), 40 + 20_000_000 + 20);
    }

    #[test]
    fn hash_is_java_abs_hashcode() {
        // "hello".hashCode() == 99162322; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(key_hash("hello"), 99_162_322);
        assert_eq!(key_hash("polygenelubricants"), 0);
        assert!(key_hash("GoldenTopic#golden-key-1") >= 0);
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    }

    #[test]
    fn header_and_entry_round_trip() {
        let h = IndexHeader {
            begin_timestamp: 1,
            end_timestamp: 2,
            begin_phy_offset: 3,
            end_phy_offset: (1 << 48) | 4,
            hash_slot_count: 5,
            index_count: 6,
        };
        let b = h.encode();
        assert_eq!(&b[36..40], &[0, 0, 0, 6]);
        assert_eq!(IndexHeader::decode(&b), Some(h));
        assert_eq!(IndexHeader::decode(&b[..39]), None);
        let e = IndexEntry {
            key_hash: 7,
            phy_offset: 8,
            time_diff: 9,
            prev: 10,
        };
        assert_eq!(IndexEntry::decode(&e.encode()), Some(e));
    }

    #[test]
    fn keys_of_a_record() {
        let props = "KEYS\u{1}a  b\u{2}UNIQ_KEY\u{1}U1\u{2}TAGS\u{1}t";
        assert_eq!(record_keys("T", props), vec!["T#U1", "T#a", "T#b"]);
        assert!(record_matches(props, "b"));
        assert!(record_matches(props, "U1"));
        assert!(!record_matches(props, "a b"));
        assert!(record_keys("T", "TAGS\u{1}x").is_empty());
    }

    #[test]
    fn streamed_key_hashes_equal_the_hashes_of_the_keys() {
        let cases = [
            ("T", "KEYS\u{1}a  b\u{2}UNIQ_KEY\u{1}U1\u{2}TAGS\u{1}t"),
            ("T", "TAGS\u{1}x"),
            ("T", ""),
            (
                "Topic",
                "UNIQ_KEY\u{1}7F0000010000000000000000000000AB\u{2}WAIT\u{1}true",
            ),
            // Last value wins; empty values are skipped.
            (
                "T",
                "KEYS\u{1}x\u{2}KEYS\u{1}y z\u{2}UNIQ_KEY\u{1}\u{2}KEYS",
            ),
            // Non-ASCII: UTF-16 units, as Java.
            ("主题", "KEYS\u{1}键 \u{1F600}\u{2}UNIQ_KEY\u{1}é"),
        ];
        for (topic, props) in cases {
            let want: Vec<i32> = record_keys(topic, props)
                .iter()
                .map(|k| key_hash(k))
                .collect();
            let mut got = Vec::new();
            for_each_record_key_hash(topic, props, |h| got.push(h));
            assert_eq!(got, want, "{topic} {props:?}");
        }
    }

    #[test]
    fn table_chains_buckets_and_fills() {
        let mut t = IndexTable::new(geo(), IndexHeader::fresh(0, 0));
        // Same bucket (hash 1 and 9 with 8 slots).
        t.put(1, 100, 10_000);
        t.put(9, 200, 12_500);
        t.put(1, 300, 15_000);
        assert_eq!(t.header.index_count, 4);
        assert_eq!(t.header.hash_slot_count, 1);
        assert_eq!(t.header.begin_timestamp, 10_000);
        assert_eq!(t.header.end_phy_offset, 300);
        assert_eq!(t.slots[1], 3);
        let e3 = t.pending_entry(3).unwrap();
        assert_eq!((e3.prev, e3.time_diff), (2, 5));
        assert_eq!(t.pending_entry(2).unwrap().prev, 1);
        assert_eq!(t.pending_entry(1).unwrap().prev, 0);
        assert!(!t.is_full());
        t.put(2, 400, 15_000);
        assert!(t.is_full());
        // Walk bucket 1 for hash 1 over all time.
        let mut n = t.slots[1];
        let mut hits = Vec::new();
        while n != 0 {
            let e = t.pending_entry(n).unwrap();
            match chain_step(&e, n, 1, &t.header, 0, i64::MAX) {
                ChainStep::Hit { next } => {
                    hits.push(e.phy_offset);
                    n = next;
                }
                ChainStep::Skip { next } => n = next,
                ChainStep::Stop => break,
            }
        }
        assert_eq!(hits, vec![300, 100]);
        let (pos, bytes) = t.slot_page(0);
        assert_eq!(pos, 40);
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 3]);
        assert_eq!(IndexTable::decode_slots(&bytes, 8), t.slots);
    }

    #[test]
    fn slot_marks_round_trip_and_refuse_damage() {
        for v in [1, 61, i32::MAX] {
            assert_eq!(decode_slot_mark(&encode_slot_mark(v)), Some(v));
        }
        // Upstream's (and older shardmq's) entry 0: zeros, no mark.
        assert_eq!(decode_slot_mark(&[0u8; ENTRY_LEN as usize]), None);
        let mut b = encode_slot_mark(61);
        b[5] ^= 1;
        assert_eq!(decode_slot_mark(&b), None, "count changed under its CRC");
        assert_eq!(decode_slot_mark(&b[..8]), None, "short");
    }

    /// A key hashing to slot page `p` (slot `p * SLOTS_PER_PAGE + k`).
    fn hash_in_page(p: u32, k: u32) -> i32 {
        (p * SLOTS_PER_PAGE + k) as i32
    }

    #[test]
    fn slot_sweep_writes_a_slice_per_flush_and_marks_what_it_covered() {
        let pages = 60; // 2 pages a flush
        let geo = Geometry {
            slots: pages * SLOTS_PER_PAGE,
            max_entries: 1000,
        };
        let mut t = IndexTable::new(geo, IndexHeader::fresh(0, 0));
        let page_of = |pos: u64| ((pos - HEADER_LEN) / SLOT_LEN) as u32 / SLOTS_PER_PAGE;
        let pages_of = |w: &SlotWrite| -> Vec<u32> {
            w.runs
                .iter()
                .flat_map(|(pos, b)| {
                    let first = page_of(*pos);
                    let n = b.len() as u32 / (SLOTS_PER_PAGE * SLOT_LEN as u32);
                    first..first + n
                })
                .collect()
        };
        // `n` flushes: the pages they wrote and the marks they asked for.
        let flushes = |t: &mut IndexTable, n: usize| {
            let (mut written, mut marks) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let w = t.slot_write(false);
                written.extend(pages_of(&w));
                marks.extend(w.mark);
            }
            (written, marks)
        };
        for p in [0, 1, 10, 59] {
            t.put(hash_in_page(p, 7), 100 + i64::from(p), 1_000);
        }
        // First flush of a fresh file: the first slice, and at once the mark of its all-zero
        // slot table (complete through nothing).
        let w = t.slot_write(false);
        assert_eq!(pages_of(&w), vec![0, 1], "adjacent pages, one run");
        assert_eq!(w.runs.len(), 1);
        assert_eq!(w.mark, Some(1));
        t.mark_written(1);
        let (written, marks) = flushes(&mut t, 29);
        assert_eq!(written, vec![10, 59]);
        // The sweep ended with nothing dirty: complete through the current count.
        assert_eq!(marks, vec![5]);
        t.mark_written(5);
        assert!(!t.has_dirty_pages());

        // A page changed behind the cursor during a sweep keeps the mark at the sweep's start.
        t.put(hash_in_page(50, 1), 500, 2_000); // entry 5
        for _ in 0..2 {
            assert_eq!(pages_of(&t.slot_write(false)), Vec::<u32>::new());
        }
        // The cursor is at page 4: page 3 is behind it, page 40 ahead.
        t.put(hash_in_page(3, 2), 600, 2_000);
        t.put(hash_in_page(40, 2), 700, 2_000);
        let (written, marks) = flushes(&mut t, 28);
        assert_eq!(written, vec![40, 50]);
        assert!(
            marks.is_empty(),
            "page 3 still dirty: only the sweep's start (5) is vouched for, and that is on disk"
        );
        // The next sweep began at count 8: page 3 goes out, and a key lands behind the cursor.
        assert!(pages_of(&t.slot_write(false)).is_empty());
        assert_eq!(pages_of(&t.slot_write(false)), vec![3]);
        t.put(hash_in_page(1, 3), 800, 2_000); // entry 8
        let (_, marks) = flushes(&mut t, 28);
        assert_eq!(
            marks,
            vec![8],
            "through the sweep's start, not the count (9)"
        );
        t.mark_written(8);
        // A clean stop writes what is left and marks the count.
        let w = t.slot_write(true);
        assert_eq!(pages_of(&w), vec![1]);
        assert_eq!(w.mark, Some(9));
        t.mark_written(9);
        assert!(!t.has_dirty_pages());
        assert_eq!(t.slot_write(false), SlotWrite::default(), "nothing left");
    }

    #[test]
    fn time_filter_and_overlap() {
        let h = IndexHeader {
            begin_timestamp: 10_000,
            end_timestamp: 20_000,
            index_count: 3,
            ..IndexHeader::default()
        };
        let e = IndexEntry {
            key_hash: 1,
            phy_offset: 0,
            time_diff: 5,
            prev: 1,
        };
        assert_eq!(
            chain_step(&e, 2, 1, &h, 0, 14_000),
            ChainStep::Skip { next: 1 }
        );
        assert_eq!(chain_step(&e, 2, 1, &h, 16_000, 30_000), ChainStep::Stop);
        assert_eq!(
            chain_step(&e, 2, 1, &h, 0, 15_000),
            ChainStep::Hit { next: 1 }
        );
        // A damaged chain pointing forward (1 -> 2 -> 1 would loop) ends there.
        let forward = IndexEntry { prev: 2, ..e };
        assert_eq!(chain_step(&forward, 1, 7, &h, 0, 30_000), ChainStep::Stop);
        assert_eq!(
            chain_step(&forward, 1, 1, &h, 0, 30_000),
            ChainStep::Hit { next: 0 }
        );
        assert!(h.overlaps(0, i64::MAX));
        assert!(h.overlaps(15_000, 16_000));
        assert!(!h.overlaps(21_000, 30_000));
        assert_eq!(time_diff(5_000, 0), 0);
        assert_eq!(time_diff(500, 1_000), 0);
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(1_700_000_000_123).len(), 17);
        assert!(file_name(1_700_000_000_123).ends_with("123"));
        assert!(is_file_name("20240131120000123"));
        assert!(!is_file_name("2024013112000012"));
    }
}
