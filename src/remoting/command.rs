//! `RemotingCommand`: the one value every frame decodes to and encodes from.
//!
//! Owns no I/O. The frame layout and both header encodings live in `frame.rs`,
//! `header_json.rs` and `header_binary.rs`; this file only defines the value and
//! the small helpers handlers use to read and fill `extFields`.

use bytes::Bytes;

use super::code::{LanguageCode, SerializeType};

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request is oneway (no response may be sent).
pub const FLAG_ONEWAY: i32 = 2;

/// The version we stamp on every command we create: 4.9.8's `MQVersion` ordinal.
/// Clients record it as the broker version; 409 keeps every 4.x client on its
/// well-trodden paths (see spec/remoting.md §3.3).
pub const OUR_VERSION: i32 = 409;

/// `extFields`: an ordered string map. Order is kept so that a decoded frame re-encodes to the
/// same bytes (golden tests); lookups are linear because a header carries at most a few dozen
/// fields.
///
/// Every key and value lives in one buffer, `text`, back to back; an entry is four offsets
/// into it. Decoding a header is then one growing buffer and one vector, with no string built
/// per key or value: a SEND_MESSAGE_V2 header has 12 fields, and building 24 inline strings
/// (the previous `compact_str` representation, about 18 ns each) was a third of the header's
/// decode time (`benches/codec`, ARCHITECTURE 37). A replaced value leaves its old bytes
/// behind in `text`; nothing reads them, and a command lives for one request.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    /// `[key start, key end, value start, value end]` into `text`, in insertion order.
    items: Vec<[usize; 4]>,
    /// One bit per key shape ([`key_bit`]) of every key ever inserted: an insert whose bit is
    /// clear cannot repeat a key, so it skips the linear search (false positives only search).
    seen: u64,
}

/// The filter bit of a key: its length and first and last bytes, spread by a multiplicative
/// hash (the one-letter keys of SEND_MESSAGE_V2, `a` to `n`, take 13 different bits).
#[inline]
fn key_bit(key: &[u8]) -> u64 {
    let (first, last) = match key {
        [] => (0, 0),
        [f] => (*f, *f),
        [f, .., l] => (*f, *l),
    };
    let x = (key.len() as u64) | u64::from(first) << 8 | u64::from(last) << 16;
    1 << (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

impl ExtFields {
    pub const fn new() -> Self {
        Self {
            text: String::new(),
            items: Vec::new(),
            seen: 0,
        }
    }

    /// Room for `text_bytes` of keys and values and `entries` entries.
    pub fn with_capacity(text_bytes: usize, entries: usize) -> Self {
        Self {
            text: String::with_capacity(text_bytes),
            items: Vec::with_capacity(entries),
            seen: 0,
        }
    }

    fn key_of(&self, item: &[usize; 4]) -> &str {
        self.text.get(item[0]..item[1]).unwrap_or_default()
    }

    fn value_of(&self, item: &[usize; 4]) -> &str {
        self.text.get(item[2]..item[3]).unwrap_or_default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.position_with_bit(key.as_bytes(), key_bit(key.as_bytes()))
    }

    fn position_with_bit(&self, key: &[u8], bit: u64) -> Option<usize> {
        if self.seen & bit == 0 {
            return None;
        }
        let text = self.text.as_bytes();
        // Lengths first, from the offsets alone; then the bytes, compared inline: the keys are
        // short, and `==` on slices calls `memcmp` for every candidate (4 % of the broker's
        // CPU at 16 producers when it did, measured).
        self.items.iter().position(|item| {
            item[1] - item[0] == key.len()
                && text
                    .get(item[0]..item[1])
                    .is_some_and(|k| k.iter().zip(key).all(|(x, y)| x == y))
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.value_of(&self.items[i]))
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.insert_with(key.as_ref(), |text| text.push_str(value));
    }

    /// Inserts or replaces `key` with the value `write` appends to the buffer it is given
    /// (a number formatted in place, a string unescaped in place).
    pub fn insert_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        let value_end = self.text.len();
        self.text.push_str(key);
        self.put_ranges([value_end, self.text.len()], Some([start, value_end]));
    }

    /// Takes out `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.position(key) {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }

    /// The buffer keys and values are written into, for a decoder that appends a key and then
    /// its value itself and hands the two ranges to [`ExtFields::put_ranges`].
    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    /// Adds (or replaces, keeping its place) the entry whose key and value were appended to
    /// the buffer (by `insert_with`, or a decoder through [`ExtFields::text_mut`]); `None` as
    /// the value removes the key (JSON `null`), as a JSON object map does. A replaced entry's
    /// new key bytes stay behind unused. Ranges must lie in the buffer on char boundaries.
    pub(crate) fn put_ranges(&mut self, key: [usize; 2], value: Option<[usize; 2]>) {
        let Some(k) = self.text.as_bytes().get(key[0]..key[1]) else {
            return;
        };
        let bit = key_bit(k);
        match (self.position_with_bit(k, bit), value) {
            (Some(i), Some(v)) => {
                self.items[i][2] = v[0];
                self.items[i][3] = v[1];
            }
            (Some(i), None) => {
                self.items.remove(i);
            }
            (None, Some(v)) => {
                self.seen |= bit;
                self.items.push([key[0], key[1], v[0], v[1]]);
            }
            (None, None) => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items
            .iter()
            .map(|item| (self.key_of(item), self.value_of(item)))
    }
}

/// Entries compare as their ordered (key, value) pairs; left-behind bytes do not count.
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl std::fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut out = ExtFields::new();
        for (k, v) in pairs {
            out.insert(k, v);
        }
        out
    }
}

/// One remoting command, request or response (spec/remoting.md §3).
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` = the key is absent from the JSON header; `Some(empty)` = `"extFields":{}`.
    pub ext_fields: Option<ExtFields>,
    pub body: Bytes,
    /// How the header was (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A new request with our language and version, JSON header, no fields.
    pub fn request(code: i32, opaque: i32) -> Self {
        Self {
            code,
            language: LanguageCode::JAVA,
            version: OUR_VERSION,
            opaque,
            flag: 0,
            remark: None,
            ext_fields: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response to `request`: same opaque and header serialize type, flag bit 0 set.
    pub fn response_to(request: &RemotingCommand, code: i32) -> Self {
        Self {
            code,
            language: LanguageCode::JAVA,
            version: OUR_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark: None,
            ext_fields: None,
            body: Bytes::new(),
            serialize_type: request.serialize_type,
        }
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets one `extFields` entry, creating the map if needed.
    pub fn with_field(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.set_field(key, value);
        self
    }

    pub fn set_field(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        self.ext_fields
            .get_or_insert_with(ExtFields::new)
            .insert(key, value);
    }

    /// Makes `extFields` present (`{}`) even when empty; Java clients dereference it.
    pub fn with_empty_fields(mut self) -> Self {
        self.ext_fields.get_or_insert_with(ExtFields::new);
        self
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref().and_then(|f| f.get(key))
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_behave_as_an_ordered_map() {
        let mut f = ExtFields::new();
        f.insert("b", "TopicA");
        f.insert("bb", "long");
        f.insert("", "empty key");
        f.insert("b", "TopicB");
        assert_eq!(f.get("b"), Some("TopicB"));
        assert_eq!(f.get("bb"), Some("long"));
        assert_eq!(f.get(""), Some("empty key"));
        assert_eq!(f.get("c"), None);
        assert_eq!(f.get("B"), None);
        assert_eq!(f.len(), 3);
        // A replaced value keeps its key's place.
        let order: Vec<_> = f.iter().collect();
        assert_eq!(order, [("b", "TopicB"), ("bb", "long"), ("", "empty key")]);
        assert!(f.remove("bb"));
        assert!(!f.remove("bb"));
        assert_eq!(f.get("bb"), None);
        // Equal as maps in order, whatever bytes replacements left behind.
        let same: ExtFields = [("b", "TopicB"), ("", "empty key")].into_iter().collect();
        assert_eq!(f, same);
        let reordered: ExtFields = [("", "empty key"), ("b", "TopicB")].into_iter().collect();
        assert_ne!(f, reordered);
    }

    /// Many keys, every pair of which may share a filter bit: each is found, and only itself.
    #[test]
    fn lookups_are_exact_past_filter_collisions() {
        let keys: Vec<String> = (0..200)
            .map(|i| match i % 4 {
                0 => format!("k{i}"),
                1 => "x".repeat(i % 7 + 1),
                2 => format!("{}", char::from(b'a' + (i % 26) as u8)),
                _ => format!("queue{i}Id"),
            })
            .collect();
        let mut f = ExtFields::new();
        let mut want = std::collections::BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            f.insert(k, i.to_string());
            want.insert(k.clone(), i.to_string());
        }
        assert_eq!(f.len(), want.len());
        for (k, v) in &want {
            assert_eq!(f.get(k), Some(v.as_str()), "{k}");
        }
        for absent in ["k1", "xxxxxxxx", "queue0id", "A", "kk"] {
            assert_eq!(f.get(absent), None, "{absent}");
        }
    }
}
