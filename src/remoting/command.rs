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

/// A key or value of `extFields`: inline up to 24 bytes (every key, and most values: queue
/// ids, timestamps, flags, short topic and group names), so decoding a header allocates only
/// for the long values (properties). Measured: the header decode was about a fifth of the
/// broker's user CPU per send, most of it allocating and freeing these strings.
pub type FieldStr = compact_str::CompactString;

/// `extFields`: an ordered string map. Order is kept so that a decoded frame
/// re-encodes to the same bytes (golden tests); lookups are linear because a
/// header carries at most a few dozen fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtFields(pub Vec<(FieldStr, FieldStr)>);

impl ExtFields {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v.as_str())
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl Into<FieldStr>, value: impl Into<FieldStr>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| same_key(k, &key)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Key equality for `extFields` lookups, compared inline: the keys are short (SEND_MESSAGE_V2
/// names its fields `a` to `n`), and `==` on strings calls `memcmp` for every candidate of
/// a linear lookup (4 % of the broker's CPU at 16 producers, measured).
#[inline]
pub fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
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
    pub fn with_field(mut self, key: impl Into<FieldStr>, value: impl Into<FieldStr>) -> Self {
        self.set_field(key, value);
        self
    }

    pub fn set_field(&mut self, key: impl Into<FieldStr>, value: impl Into<FieldStr>) {
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
    fn same_key_is_string_equality() {
        for (a, b) in [
            ("a", "a"),
            ("", ""),
            ("topic", "topic"),
            ("a", "b"),
            ("a", "ab"),
            ("ab", "a"),
            ("", "a"),
            ("queueId", "queueid"),
        ] {
            assert_eq!(same_key(a, b), a == b, "{a:?} vs {b:?}");
        }
        let mut f = ExtFields::new();
        f.insert("b", "TopicA");
        f.insert("bb", "long");
        f.insert("b", "TopicB");
        assert_eq!(f.get("b"), Some("TopicB"));
        assert_eq!(f.get("bb"), Some("long"));
        assert_eq!(f.get("c"), None);
        assert_eq!(f.len(), 2);
    }
}
