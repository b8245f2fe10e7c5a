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
//! ```
//!
//! The phys offsets are GLOBAL (shard id in the high 16 bits): what a client sees in an offset
//! msgId, so a query result routes to its shard like any other offset (DESIGN §3). Keys are
//! `topic#UNIQ_KEY` and `topic#k` for each non-empty space-separated `k` of `KEYS`.

use std::collections::BTreeSet;

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
#[derive(Debug, Clone)]
pub struct IndexTable {
    pub geo: Geometry,
    pub header: IndexHeader,
    pub slots: Vec<i32>,
    /// Encoded entries from `flushed_count` on.
    pub pending: Vec<u8>,
    pub flushed_count: i32,
    /// Pages of the slot table changed since the last flush.
    pub dirty_pages: BTreeSet<u32>,
    /// Whether the header changed since the last flush.
    pub header_dirty: bool,
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
            dirty_pages: BTreeSet::new(),
            header_dirty: true,
        }
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
        self.dirty_pages.insert(slot / SLOTS_PER_PAGE);
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
