//! The on-disk (and on-wire) message record: the one place its layout is defined. PURE: no I/O,
//! no async. Used by the commit log appender (encode), recovery (check), readers (decode) and,
//! later, offline tools. Layout from spec/message-format.md §2; V1 magic, IPv4 hosts only (4.3).
//!
//! ```text
//! offset size field                 (all integers big-endian)
//!  0      4   TOTALSIZE             i32, whole record including this field
//!  4      4   MAGICCODE             0xDAA320A7 (V1)
//!  8      4   BODYCRC               crc32(BODY) & 0x7FFFFFFF
//! 12      4   QUEUEID               i32
//! 16      4   FLAG                  i32
//! 20      8   QUEUEOFFSET           i64, logical offset in the consume queue
//! 28      8   PHYSICALOFFSET        i64, GLOBAL offset: shard << 48 | local offset
//! 36      4   SYSFLAG               i32 (bits 4/5 = IPv6 hosts: rejected here)
//! 40      8   BORNTIMESTAMP         i64 ms
//! 48      4+4 BORNHOST              IPv4 octets, i32 port
//! 56      8   STORETIMESTAMP        i64 ms
//! 64      4+4 STOREHOST             IPv4 octets, i32 port
//! 72      4   RECONSUMETIMES        i32
//! 76      8   PREPAREDTXOFFSET      i64
//! 84      4   BODYLEN               i32 = B
//! 88      B   BODY
//! 88+B    1   TOPICLEN              i8 = T (1..=127)
//! 89+B    T   TOPIC                 UTF-8
//! 89+B+T  2   PROPLEN               i16 = P (0..=32767)
//! 91+B+T  P   PROPERTIES            UTF-8
//! ```
//! TOTALSIZE = 91 + B + T + P.
//!
//! End-of-file blank marker (commit log only, §2.1): `i32 remaining` (bytes left in the file,
//! including the marker) then `i32 0xCBD43194`. A TOTALSIZE of zero marks unwritten space.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Magic of a V1 record.
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// Magic of the end-of-file blank marker.
pub const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// Length of the blank marker; a file always keeps room for one.
pub const BLANK_LEN: u32 = 8;
/// Record length with empty body, topic and properties.
pub const FIXED_OVERHEAD: u32 = 91;
/// Longest topic a V1 record can carry (signed byte length).
pub const TOPIC_LEN_MAX: usize = 127;
/// Longest properties string (signed short length).
pub const PROPERTIES_LEN_MAX: usize = 32767;
/// sysFlag bits announcing IPv6 born / store hosts.
pub const SYSFLAG_HOST_V6: i32 = 0x10 | 0x20;
/// sysFlag transaction-type mask and the two types that are dispatched to consume queues.
pub const SYSFLAG_TX_MASK: i32 = 0x0C;
pub const SYSFLAG_TX_NOT: i32 = 0x00;
pub const SYSFLAG_TX_COMMIT: i32 = 0x08;

const OFF_STORE_TS: usize = 56;
const OFF_BODY_LEN: usize = 84;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("bad magic 0x{0:08X}")]
    BadMagic(u32),
    #[error("total size {0} is out of range")]
    BadTotalSize(i32),
    #[error("field {field} length {len} is out of range")]
    BadLength { field: &'static str, len: i64 },
    #[error("total size {total} does not match field lengths (computed {computed})")]
    SizeMismatch { total: u32, computed: u64 },
    #[error("body crc 0x{stored:08X} does not match computed 0x{computed:08X}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("IPv6 hosts (sysFlag 0x{0:X}) are not supported")]
    Ipv6Unsupported(i32),
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
}

/// Outcome of looking at the bytes at one commit-log position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete, structurally valid record.
    Record(RecordView<'a>),
    /// End-of-file marker: this many bytes (including the marker) end the file.
    Blank(u32),
    /// TOTALSIZE is zero: unwritten space, the end of the log.
    End,
    /// The slice is shorter than the record announces.
    Incomplete,
}

/// A decoded record borrowing the buffer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub total_size: u32,
    pub body_crc: u32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddrV4,
    pub store_timestamp: i64,
    pub store_host: SocketAddrV4,
    pub reconsume_times: i32,
    pub prepared_tx_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

impl RecordView<'_> {
    /// Transaction types NOT and COMMIT go to consume queues; PREPARED and ROLLBACK do not.
    pub fn is_dispatched(&self) -> bool {
        let tx = self.sys_flag & SYSFLAG_TX_MASK;
        tx == SYSFLAG_TX_NOT || tx == SYSFLAG_TX_COMMIT
    }
}

/// Everything needed to encode one record.
#[derive(Debug, Clone)]
pub struct RecordFields<'a> {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddrV4,
    pub store_timestamp: i64,
    pub store_host: SocketAddrV4,
    pub reconsume_times: i32,
    pub prepared_tx_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

/// Record length for the given field lengths (u64: cannot overflow for any input).
pub fn record_len(body_len: usize, topic_len: usize, properties_len: usize) -> u64 {
    u64::from(FIXED_OVERHEAD) + body_len as u64 + topic_len as u64 + properties_len as u64
}

/// The stored body CRC: CRC-32 (IEEE) masked to 31 bits.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// Appends the encoded record to `out`. The caller has checked the limits (topic length,
/// properties length, total size); they are asserted here because breaking them would write a
/// record nobody can read back.
pub fn encode(f: &RecordFields<'_>, out: &mut Vec<u8>) {
    assert!(
        f.topic.len() <= TOPIC_LEN_MAX,
        "invariant: topic length checked by caller"
    );
    assert!(!f.topic.is_empty(), "invariant: topic checked by caller");
    assert!(
        f.properties.len() <= PROPERTIES_LEN_MAX,
        "invariant: properties checked"
    );
    let total = record_len(f.body.len(), f.topic.len(), f.properties.len());
    let total = i32::try_from(total).expect("invariant: record size checked by caller");
    let body_len = i32::try_from(f.body.len()).expect("invariant: body size checked by caller");
    let start = out.len();
    out.reserve(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&MAGIC_V1.to_be_bytes());
    out.extend_from_slice(&body_crc(f.body).to_be_bytes());
    out.extend_from_slice(&f.queue_id.to_be_bytes());
    out.extend_from_slice(&f.flag.to_be_bytes());
    out.extend_from_slice(&f.queue_offset.to_be_bytes());
    out.extend_from_slice(&f.phys_offset.to_be_bytes());
    out.extend_from_slice(&(f.sys_flag & !SYSFLAG_HOST_V6).to_be_bytes());
    out.extend_from_slice(&f.born_timestamp.to_be_bytes());
    put_host(out, f.born_host);
    out.extend_from_slice(&f.store_timestamp.to_be_bytes());
    put_host(out, f.store_host);
    out.extend_from_slice(&f.reconsume_times.to_be_bytes());
    out.extend_from_slice(&f.prepared_tx_offset.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(f.body);
    out.push(f.topic.len() as u8);
    out.extend_from_slice(f.topic.as_bytes());
    out.extend_from_slice(&(f.properties.len() as u16).to_be_bytes());
    out.extend_from_slice(f.properties.as_bytes());
    assert_eq!(
        out.len() - start,
        total as usize,
        "invariant: encoded length"
    );
}

fn put_host(out: &mut Vec<u8>, host: SocketAddrV4) {
    out.extend_from_slice(&host.ip().octets());
    out.extend_from_slice(&i32::from(host.port()).to_be_bytes());
}

/// Appends an end-of-file blank marker announcing `remaining` bytes.
pub fn encode_blank(remaining: u32, out: &mut Vec<u8>) {
    assert!(
        remaining >= BLANK_LEN,
        "invariant: a file keeps room for the blank marker"
    );
    out.extend_from_slice(&remaining.to_be_bytes());
    out.extend_from_slice(&BLANK_MAGIC.to_be_bytes());
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    be_u32(b, at) as i32
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn host_at(b: &[u8], at: usize) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    // Ports are ints on disk; anything outside u16 is a foreign writer's problem, keep low bits.
    SocketAddrV4::new(ip, be_i32(b, at + 4) as u16)
}

/// Decodes the record (or marker) at the start of `buf` without verifying the body CRC.
/// Structural checks: magic, TOTALSIZE equal to the field lengths, UTF-8 topic/properties.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, RecordError> {
    if buf.len() < 8 {
        // A zero TOTALSIZE can be recognised from 4 bytes.
        if buf.len() >= 4 && be_u32(buf, 0) == 0 {
            return Ok(Decoded::End);
        }
        return Ok(Decoded::Incomplete);
    }
    let total = be_i32(buf, 0);
    let magic = be_u32(buf, 4);
    if total == 0 {
        return Ok(Decoded::End);
    }
    if magic == BLANK_MAGIC {
        if total < BLANK_LEN as i32 {
            return Err(RecordError::BadTotalSize(total));
        }
        return Ok(Decoded::Blank(total as u32));
    }
    if magic != MAGIC_V1 {
        return Err(RecordError::BadMagic(magic));
    }
    if total < FIXED_OVERHEAD as i32 {
        return Err(RecordError::BadTotalSize(total));
    }
    let total_u = total as u32;
    if buf.len() < total_u as usize {
        return Ok(Decoded::Incomplete);
    }
    decode_fields(&buf[..total_u as usize]).map(Decoded::Record)
}

fn decode_fields(b: &[u8]) -> Result<RecordView<'_>, RecordError> {
    let total = b.len() as u32;
    let sys_flag = be_i32(b, 36);
    if sys_flag & SYSFLAG_HOST_V6 != 0 {
        return Err(RecordError::Ipv6Unsupported(sys_flag));
    }
    let body_len = be_i32(b, OFF_BODY_LEN);
    // Each length is checked against what is left, so no index below can go out of bounds.
    let body_end = checked_end(OFF_BODY_LEN + 4, i64::from(body_len), b.len(), "BODYLEN")?;
    // A body that reaches the record's end leaves no TOPICLEN byte (a torn or foreign record:
    // found by fuzzing, `tests::a_body_up_to_the_end_is_a_size_mismatch`).
    let Some(&topic_len_byte) = b.get(body_end) else {
        return Err(size_mismatch(total, b, body_len, 0, 0));
    };
    let topic_len = i64::from(topic_len_byte as i8);
    if topic_len <= 0 {
        return Err(RecordError::BadLength {
            field: "TOPICLEN",
            len: topic_len,
        });
    }
    let topic_end = checked_end(body_end + 1, topic_len, b.len(), "TOPICLEN")?;
    if topic_end + 2 > b.len() {
        return Err(size_mismatch(total, b, body_len, topic_len, 0));
    }
    let prop_len = i64::from(i16::from_be_bytes([b[topic_end], b[topic_end + 1]]));
    let prop_end = checked_end(topic_end + 2, prop_len, b.len(), "PROPLEN")?;
    if prop_end != b.len() {
        return Err(size_mismatch(total, b, body_len, topic_len, prop_len));
    }
    let topic = std::str::from_utf8(&b[body_end + 1..topic_end])
        .map_err(|_| RecordError::NotUtf8 { field: "TOPIC" })?;
    let properties =
        std::str::from_utf8(&b[topic_end + 2..prop_end]).map_err(|_| RecordError::NotUtf8 {
            field: "PROPERTIES",
        })?;
    Ok(RecordView {
        total_size: total,
        body_crc: be_u32(b, 8),
        queue_id: be_i32(b, 12),
        flag: be_i32(b, 16),
        queue_offset: be_i64(b, 20),
        phys_offset: be_i64(b, 28),
        sys_flag,
        born_timestamp: be_i64(b, 40),
        born_host: host_at(b, 48),
        store_timestamp: be_i64(b, OFF_STORE_TS),
        store_host: host_at(b, 64),
        reconsume_times: be_i32(b, 72),
        prepared_tx_offset: be_i64(b, 76),
        body: &b[OFF_BODY_LEN + 4..body_end],
        topic,
        properties,
    })
}

fn checked_end(
    start: usize,
    len: i64,
    limit: usize,
    field: &'static str,
) -> Result<usize, RecordError> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= limit);
    end.ok_or(RecordError::BadLength { field, len })
}

fn size_mismatch(total: u32, _b: &[u8], body: i32, topic: i64, props: i64) -> RecordError {
    let computed = u64::from(FIXED_OVERHEAD)
        .saturating_add(body.max(0) as u64)
        .saturating_add(topic.max(0) as u64)
        .saturating_add(props.max(0) as u64);
    RecordError::SizeMismatch { total, computed }
}

/// Decodes and also verifies the body CRC (what recovery does).
pub fn check(buf: &[u8]) -> Result<Decoded<'_>, RecordError> {
    let d = decode(buf)?;
    if let Decoded::Record(r) = &d {
        let computed = body_crc(r.body);
        if computed != r.body_crc {
            return Err(RecordError::CrcMismatch {
                stored: r.body_crc,
                computed,
            });
        }
    }
    Ok(d)
}

/// Java `String.hashCode()` over UTF-16 code units (wrapping 32-bit): the tagsCode of a tag.
pub use crate::remoting::message::java_string_hash;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::sample_record as sample;

    #[test]
    fn encode_matches_hand_built_bytes() {
        let props = "TAGS\u{1}a\u{2}WAIT\u{1}true";
        let f = sample(b"hello", "TopicA", props);
        let mut got = Vec::new();
        encode(&f, &mut got);

        let mut want = Vec::new();
        let total = 91 + 5 + 6 + props.len() as i32;
        want.extend_from_slice(&total.to_be_bytes());
        want.extend_from_slice(&hex::decode("DAA320A7").unwrap());
        let crc = crc32fast::hash(b"hello") & 0x7FFF_FFFF;
        want.extend_from_slice(&crc.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&hex::decode("0001000000001000").unwrap());
        want.extend_from_slice(&0i32.to_be_bytes());
        want.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        want.extend_from_slice(&[10, 0, 0, 2, 0, 0, 0xC3, 0xCB]); // port 50123
        want.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        want.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x2A, 0x9F]); // port 10911
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&0i64.to_be_bytes());
        want.extend_from_slice(&5i32.to_be_bytes());
        want.extend_from_slice(b"hello");
        want.push(6);
        want.extend_from_slice(b"TopicA");
        want.extend_from_slice(&(props.len() as i16).to_be_bytes());
        want.extend_from_slice(props.as_bytes());
        assert_eq!(hex::encode(&got), hex::encode(&want));
        assert_eq!(got.len() as u64, record_len(5, 6, props.len()));
    }

    #[test]
    fn decode_round_trips_and_checks_crc() {
        let f = sample(b"payload", "T", "");
        let mut buf = Vec::new();
        encode(&f, &mut buf);
        buf.extend_from_slice(&[0u8; 16]);
        let Decoded::Record(r) = check(&buf).unwrap() else {
            panic!("not a record")
        };
        assert_eq!(r.total_size as usize, 91 + 7 + 1);
        assert_eq!(r.body, b"payload");
        assert_eq!(r.topic, "T");
        assert_eq!(r.properties, "");
        assert_eq!(r.queue_offset, 42);
        assert_eq!(r.phys_offset, (1 << 48) | 4096);
        assert_eq!(r.store_host, "10.0.0.1:10911".parse().unwrap());
        assert!(r.is_dispatched());

        let mut bad = buf.clone();
        bad[88] ^= 1; // flip a body bit
        assert!(matches!(check(&bad), Err(RecordError::CrcMismatch { .. })));
        assert!(decode(&bad).is_ok());
    }

    #[test]
    fn decode_reports_incomplete_blank_end_and_garbage() {
        let mut buf = Vec::new();
        encode(&sample(b"x", "T", "k\u{1}v"), &mut buf);
        for cut in [0, 3, 8, 50, buf.len() - 1] {
            let d = decode(&buf[..cut]).unwrap();
            assert_eq!(d, Decoded::Incomplete, "cut at {cut}");
        }
        let mut blank = Vec::new();
        encode_blank(4000, &mut blank);
        assert_eq!(decode(&blank).unwrap(), Decoded::Blank(4000));
        assert_eq!(decode(&[0u8; 8]).unwrap(), Decoded::End);
        assert!(matches!(
            decode(&[0, 0, 0, 100, 1, 2, 3, 4]),
            Err(RecordError::BadMagic(_))
        ));
        // TOTALSIZE larger than the fields say.
        let mut lie = buf.clone();
        let t = buf.len() as i32 + 4;
        lie[..4].copy_from_slice(&t.to_be_bytes());
        lie.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode(&lie),
            Err(RecordError::SizeMismatch { .. })
        ));
        // BODYLEN lying past the end.
        let mut lie = buf.clone();
        lie[84..88].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            decode(&lie),
            Err(RecordError::BadLength {
                field: "BODYLEN",
                ..
            })
        ));
    }

    #[test]
    fn a_body_up_to_the_end_is_a_size_mismatch() {
        // BODYLEN covering every byte after it: no room for TOPICLEN. Found by the fuzzer
        // (`fuzz/`); it indexed one past the end, and a torn tail like it stopped recovery.
        let mut buf = Vec::new();
        encode(&sample(b"abc", "T", "k\u{1}v"), &mut buf);
        let rest = (buf.len() - (OFF_BODY_LEN + 4)) as i32;
        buf[OFF_BODY_LEN..OFF_BODY_LEN + 4].copy_from_slice(&rest.to_be_bytes());
        assert!(matches!(
            decode(&buf),
            Err(RecordError::SizeMismatch { .. })
        ));
        assert!(check(&buf).is_err());
    }

    #[test]
    fn decode_never_panics_on_mutations() {
        let mut buf = Vec::new();
        encode(&sample(b"abcdef", "TopicB", "a\u{1}b"), &mut buf);
        let mut seed = 0x1234_5678_u64;
        for _ in 0..5000 {
            let mut m = buf.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % m.len();
            m[i] = (seed >> 32) as u8;
            let cut = (seed >> 40) as usize % (m.len() + 1);
            let _ = check(&m[..cut]);
            let _ = check(&m);
        }
    }

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("hello world"), 1_794_106_052);
        // Non-BMP char: two UTF-16 code units (0xD83D, 0xDE00).
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
        assert_eq!(java_string_hash("中"), 0x4E2D);
    }
}
