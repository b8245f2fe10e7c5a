//! Message-level wire formats that travel inside frames (message-format.md §4-§7):
//! the properties string, the SEND_BATCH_MESSAGE body, offset message ids,
//! property key names, and Java's `String.hashCode` used for tag codes.
//! Pure functions; the commit-log record format belongs to the store.
//!
//! Batch body, one mini-record per message, big-endian:
//!
//! ```text
//! offset size  field
//! 0      4     TOTALSIZE  (22 + B + P; read but not trusted, as Java does)
//! 4      4     MAGICCODE  (0, ignored)
//! 8      4     BODYCRC    (0, ignored)
//! 12     4     FLAG       i32
//! 16     4     BODYLEN    i32 (B)
//! 20     B     BODY
//! 20+B   2     PROPLEN    i16 (P)
//! 22+B   P     PROPERTIES UTF-8
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::BATCH_RECORD_FIXED_LEN;

/// Separates a property name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Separates two properties.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Reserved property keys (message-format.md §4.1).
pub mod keys {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const BUYER_ID: &str = "BUYER_ID";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
    pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
    pub const MQ2_FLAG: &str = "MQ2_FLAG";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_ON: &str = "TRACE_ON";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
    pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const TTL: &str = "TTL";
    pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
    pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const CLUSTER: &str = "CLUSTER";
    pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
    pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
}

/// What went wrong decoding a message-level structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("batch body: {reason} at offset {offset}")]
    BadBatch { offset: usize, reason: &'static str },
    #[error("offset message id {id:?}: {reason}")]
    BadMsgId { id: String, reason: &'static str },
}

// ---------------------------------------------------------------------------
// Properties

/// The valid `(key, value)` segments of a properties string, in order,
/// duplicates included. A segment counts only if it has a `\u{1}` with a
/// non-empty key before it and a non-empty value after it (the value may itself
/// contain `\u{1}`); a trailing `\u{2}` is fine.
pub fn iter_properties(s: &str) -> impl Iterator<Item = (&str, &str)> {
    // Scanned as bytes (`memchr`): both separators are ASCII, so every cut is a char boundary,
    // and no `char` pattern searcher is set up per segment.
    let b = s.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at <= b.len() {
            let start = at;
            let end = memchr::memchr(PROPERTY_SEPARATOR as u8, &b[start..])
                .map_or(b.len(), |n| start + n);
            at = end + 1;
            let Some(eq) = memchr::memchr(NAME_VALUE_SEPARATOR as u8, &b[start..end]) else {
                continue;
            };
            if eq == 0 || start + eq + 1 == end {
                continue;
            }
            return Some((s.get(start..start + eq)?, s.get(start + eq + 1..end)?));
        }
        None
    })
}

/// Parses a properties string; a duplicate key keeps its first position and
/// takes the last value (Java `HashMap.put`).
pub fn parse_properties(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in iter_properties(s) {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => v.clone_into(&mut slot.1),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    out
}

/// The value of `key` in a properties string (last occurrence wins), without
/// allocating.
pub fn get_property<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    iter_properties(s)
        .filter(|(k, _)| *k == key)
        .last()
        .map(|(_, v)| v)
}

/// The consume-queue tags code of a message: Java `String.hashCode()` of its `TAGS`
/// property, sign-extended; 0 without tags (message-format.md §5).
pub fn tags_code(properties: &str) -> i64 {
    get_property(properties, keys::TAGS).map_or(0, |t| i64::from(java_string_hash(t)))
}

/// Encodes properties as Java 4.x does: `k\u{1}v` joined by `\u{2}`, no
/// trailing separator. Entries with an empty key or value are skipped (they
/// would not survive decoding anyway).
pub fn encode_properties<K: AsRef<str>, V: AsRef<str>>(props: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in props {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k.is_empty() || v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(PROPERTY_SEPARATOR);
        }
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
    }
    out
}

// ---------------------------------------------------------------------------
// Batch body

/// One message of a SEND_BATCH_MESSAGE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub flag: i32,
    /// A zero-copy slice of the request body.
    pub body: Bytes,
    /// This message's own properties string.
    pub properties: String,
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes a batch body into its messages. Records are read field by field
/// (TOTALSIZE is not trusted, as in Java); every length is checked against the
/// remaining bytes first. An empty body yields no messages.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchMessage>, MessageError> {
    let b = &body[..];
    let bad = |offset, reason| Err(MessageError::BadBatch { offset, reason });
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() {
        if b.len() - pos < BATCH_RECORD_FIXED_LEN {
            return bad(pos, "truncated record header");
        }
        let flag = be_i32(b, pos + 12).unwrap_or(0);
        let body_len = be_i32(b, pos + 16).unwrap_or(-1);
        let Ok(body_len) = usize::try_from(body_len) else {
            return bad(pos + 16, "negative body length");
        };
        let body_at = pos + 20;
        // The 2-byte properties length must follow the body.
        if body_len > b.len() - body_at || b.len() - body_at - body_len < 2 {
            return bad(pos + 16, "body length overruns the batch");
        }
        let prop_len_at = body_at + body_len;
        let prop_len = i16::from_be_bytes([b[prop_len_at], b[prop_len_at + 1]]);
        let Ok(prop_len) = usize::try_from(prop_len) else {
            return bad(prop_len_at, "negative properties length");
        };
        let prop_at = prop_len_at + 2;
        if prop_len > b.len() - prop_at {
            return bad(prop_len_at, "properties length overruns the batch");
        }
        let properties = String::from_utf8_lossy(&b[prop_at..prop_at + prop_len]).into_owned();
        out.push(BatchMessage {
            flag,
            body: body.slice(body_at..body_at + body_len),
            properties,
        });
        pos = prop_at + prop_len;
    }
    Ok(out)
}

/// Encodes messages as a batch body (what a Java producer sends). Bodies over
/// `i32::MAX` bytes or properties over 32767 bytes are the caller's bug; they
/// are written with truncated length fields.
pub fn encode_batch(msgs: &[BatchMessage]) -> Bytes {
    let total: usize = msgs
        .iter()
        .map(|m| BATCH_RECORD_FIXED_LEN + m.body.len() + m.properties.len())
        .sum();
    let mut out = BytesMut::with_capacity(total);
    for m in msgs {
        let size = BATCH_RECORD_FIXED_LEN + m.body.len() + m.properties.len();
        out.put_u32(size as u32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(m.flag);
        out.put_u32(m.body.len() as u32);
        out.put_slice(&m.body);
        out.put_u16(m.properties.len() as u16);
        out.put_slice(m.properties.as_bytes());
    }
    out.freeze()
}

// ---------------------------------------------------------------------------
// Offset message id

/// `hex(ip || port as i32 || phys as i64)`, upper case, 32 characters.
pub fn encode_offset_msg_id(ip: Ipv4Addr, port: u32, phys: u64) -> String {
    let mut raw = [0u8; 16];
    raw[..4].copy_from_slice(&ip.octets());
    raw[4..8].copy_from_slice(&port.to_be_bytes());
    raw[8..].copy_from_slice(&phys.to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(32);
    for b in raw {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Parses a 32-character IPv4 offset message id (hex, any case) into the store
/// address and commit-log offset.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddrV4, u64), MessageError> {
    let bad = |reason| MessageError::BadMsgId {
        id: id.chars().take(64).collect(),
        reason,
    };
    let b = id.as_bytes();
    if b.len() != 32 {
        return Err(bad("expected 32 hex characters (IPv4 store host)"));
    }
    let mut raw = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or_else(|| bad("not hexadecimal"))?;
        let lo = hex_val(pair[1]).ok_or_else(|| bad("not hexadecimal"))?;
        raw[i] = (hi << 4) | lo;
    }
    let ip = Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]);
    let port = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    let port = u16::try_from(port).map_err(|_| bad("port does not fit 16 bits"))?;
    let phys = u64::from_be_bytes([
        raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
    ]);
    Ok((SocketAddrV4::new(ip, port), phys))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Tag codes

/// Java's `String.hashCode()` over UTF-16 code units (`h = 31*h + c`, wrapping):
/// the consume-queue tagsCode of a TAGS value and the heartbeat `codeSet` entries.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The rule `iter_properties` implements, written the obvious way.
    fn reference_pairs(s: &str) -> Vec<(&str, &str)> {
        s.split(PROPERTY_SEPARATOR)
            .filter_map(|seg| {
                let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR)?;
                (!k.is_empty() && !v.is_empty()).then_some((k, v))
            })
            .collect()
    }

    #[test]
    fn byte_scan_of_properties_agrees_with_the_rule() {
        // Every string of up to 6 symbols over an alphabet with both separators, ASCII and
        // multi-byte characters: empty keys and values, doubled and trailing separators,
        // `\u{1}` inside values.
        let alphabet = ["\u{1}", "\u{2}", "a", "é", "🦀", "K"];
        let mut checked = 0;
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut s = String::new();
                for _ in 0..len {
                    s.push_str(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let got: Vec<_> = iter_properties(&s).collect();
                assert_eq!(got, reference_pairs(&s), "{s:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, (0..=6).map(|l| 6usize.pow(l)).sum::<usize>());
    }

    #[test]
    fn properties_parse_rules() {
        let golden =
            "userProp\u{1}v1\u{2}KEYS\u{1}golden-key-1\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA";
        let p = parse_properties(golden);
        assert_eq!(
            p,
            pairs(&[
                ("userProp", "v1"),
                ("KEYS", "golden-key-1"),
                ("WAIT", "true"),
                ("TAGS", "TagA")
            ])
        );
        assert_eq!(encode_properties(&p), golden);
        // Trailing separator, empty key/value, no separator, duplicates, \1 in value.
        let s = "A\u{1}1\u{2}\u{1}x\u{2}B\u{1}\u{2}junk\u{2}A\u{1}2\u{2}C\u{1}x\u{1}y\u{2}\u{2}";
        assert_eq!(parse_properties(s), pairs(&[("A", "2"), ("C", "x\u{1}y")]));
        assert_eq!(get_property(s, "A"), Some("2"));
        assert_eq!(get_property(s, "B"), None);
        assert_eq!(parse_properties(""), Vec::<(String, String)>::new());
        assert_eq!(
            encode_properties(&[("K", ""), ("", "v"), ("T", "x")]),
            "T\u{1}x"
        );
    }

    #[test]
    fn batch_round_trip_and_bounds() {
        let msgs = vec![
            BatchMessage {
                flag: 7,
                body: Bytes::from_static(b"batch body 0"),
                properties: "TAGS\u{1}TagB".into(),
            },
            BatchMessage {
                flag: 0,
                body: Bytes::new(),
                properties: String::new(),
            },
        ];
        let enc = encode_batch(&msgs);
        assert_eq!(enc.len(), 22 + 12 + 9 + 22);
        assert_eq!(&enc[..4], &(22u32 + 12 + 9).to_be_bytes());
        assert_eq!(decode_batch(&enc).unwrap(), msgs);
        assert_eq!(decode_batch(&Bytes::new()).unwrap(), vec![]);
        for cut in 1..enc.len() {
            if cut == 22 + 12 + 9 {
                continue; // a whole first record
            }
            assert!(decode_batch(&enc.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut lie = enc.to_vec();
        lie[16..20].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert!(matches!(
            decode_batch(&Bytes::from(lie)),
            Err(MessageError::BadBatch { offset: 16, .. })
        ));
        let mut lie = enc.to_vec();
        lie[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_batch(&Bytes::from(lie)).is_err());
        let mut lie = enc.to_vec();
        lie[32] = 0xff; // properties length of record 0 negative
        assert!(decode_batch(&Bytes::from(lie)).is_err());
    }

    #[test]
    fn offset_msg_id() {
        let id = encode_offset_msg_id(Ipv4Addr::new(10, 0, 0, 1), 10911, 4096);
        assert_eq!(id, "0A00000100002A9F0000000000001000");
        assert_eq!(
            decode_offset_msg_id(&id.to_lowercase()).unwrap(),
            (SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 10911), 4096)
        );
        let (addr, off) = decode_offset_msg_id("7F000001000051E10000000000000000").unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:20961");
        assert_eq!(off, 0);
        assert!(decode_offset_msg_id("7F00").is_err());
        assert!(decode_offset_msg_id("7F000001000051E1000000000000000G").is_err());
        assert!(decode_offset_msg_id("7F000001000151E10000000000000000").is_err());
        assert!(decode_offset_msg_id("é7F000001000051E100000000000000").is_err());
    }

    #[test]
    fn java_hash() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("hello"), 99162322);
        // Wrapping and a non-BMP char (two UTF-16 units).
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }
}
