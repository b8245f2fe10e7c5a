//! Decoding of what brokers send the nameserver: the REGISTER_BROKER body in its three forms
//! and the QUERY_DATA_VERSION body (spec/remoting.md §7.1).
//!
//! * plain (`compressed` false, broker version >= 37): RegisterBrokerBody JSON
//!   `{"filterServerList":[..],"topicConfigSerializeWrapper":{"dataVersion":{..},
//!   "topicConfigTable":{name:TopicConfig}}}`;
//! * legacy (version < 37): a bare `{"dataVersion":..,"topicConfigTable":..}`;
//! * compressed: a zlib stream of big-endian length-prefixed parts:
//!
//! ```text
//!   i32 dvLen | DataVersion JSON (dvLen bytes)
//!   i32 topicCount
//!   topicCount x ( i32 len | "<name> <readQ> <writeQ> <perm> <filterType>[ <5.x extras>]" )
//!   i32 len | filter server list JSON array
//! ```
//!
//! Numbers are read leniently (JSON numbers or numeric strings; missing means 0) because
//! fastjson on the Java side is that lenient too.

use std::io::Read;

use serde_json::{Map, Value};

use super::route_table::{DataVersion, TopicConfigEntry, TopicConfigWrapper};
use super::NamesrvError;

/// Inflated register bodies larger than this are refused (a broker with 100k topics produces
/// about 20 MiB of JSON; this leaves head room while bounding a zlib bomb).
pub const MAX_INFLATED_BODY: u64 = 64 * 1024 * 1024;

/// The first broker version (3.0.11) that sends a RegisterBrokerBody rather than a bare wrapper.
pub const VERSION_REGISTER_BODY: i32 = 37;

/// Decodes a REGISTER_BROKER body. An empty body is an empty wrapper with DataVersion {0, 0}.
pub fn decode_register_body(
    body: &[u8],
    compressed: bool,
    version: i32,
) -> Result<TopicConfigWrapper, NamesrvError> {
    if body.is_empty() {
        return Ok(TopicConfigWrapper::default());
    }
    if compressed {
        return decode_compressed(body);
    }
    let root = parse_json(body, "RegisterBrokerBody")?;
    let wrapper = if version >= VERSION_REGISTER_BODY {
        match root.get("topicConfigSerializeWrapper") {
            Some(w) => w,
            None => return Ok(TopicConfigWrapper::default()),
        }
    } else {
        &root
    };
    decode_wrapper(wrapper)
}

/// Decodes a DataVersion JSON body (QUERY_DATA_VERSION request).
pub fn decode_data_version(body: &[u8]) -> Result<DataVersion, NamesrvError> {
    if body.is_empty() {
        return Err(NamesrvError::Body {
            what: "DataVersion",
            detail: "the request has no body".into(),
        });
    }
    let v = parse_json(body, "DataVersion")?;
    data_version_from(&v, "DataVersion")
}

fn parse_json(body: &[u8], what: &'static str) -> Result<Value, NamesrvError> {
    let text = std::str::from_utf8(body).map_err(|e| NamesrvError::Body {
        what,
        detail: format!("not UTF-8: {e}"),
    })?;
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        // fastjson writes non-string map keys bare; quote them and try once more.
        Err(first) => {
            serde_json::from_str(&quote_bare_keys(text)).map_err(|_| NamesrvError::Body {
                what,
                detail: format!("invalid JSON: {first}"),
            })
        }
    }
}

fn decode_wrapper(w: &Value) -> Result<TopicConfigWrapper, NamesrvError> {
    let data_version = match w.get("dataVersion") {
        Some(dv) => data_version_from(dv, "dataVersion")?,
        None => DataVersion::default(),
    };
    let mut topics = Vec::new();
    if let Some(table) = w.get("topicConfigTable") {
        let table = table.as_object().ok_or_else(|| NamesrvError::Body {
            what: "topicConfigTable",
            detail: "not a JSON object".into(),
        })?;
        for (name, cfg) in table {
            topics.push(topic_from(name, cfg)?);
        }
    }
    Ok(TopicConfigWrapper {
        data_version,
        topics,
    })
}

fn data_version_from(v: &Value, what: &'static str) -> Result<DataVersion, NamesrvError> {
    let obj = object(v, what)?;
    Ok(DataVersion {
        timestamp: int_field(obj, "timestamp", what)?,
        counter: int_field(obj, "counter", what)?,
        state_version: int_field(obj, "stateVersion", what)?,
    })
}

fn topic_from(key: &str, v: &Value) -> Result<TopicConfigEntry, NamesrvError> {
    let obj = object(v, "TopicConfig")?;
    let topic_name = obj
        .get("topicName")
        .and_then(Value::as_str)
        .unwrap_or(key)
        .to_string();
    Ok(TopicConfigEntry {
        topic_name,
        read_queue_nums: int32_field(obj, "readQueueNums")?,
        write_queue_nums: int32_field(obj, "writeQueueNums")?,
        perm: int32_field(obj, "perm")?,
        topic_sys_flag: int32_field(obj, "topicSysFlag")?,
    })
}

fn object<'a>(v: &'a Value, what: &'static str) -> Result<&'a Map<String, Value>, NamesrvError> {
    v.as_object().ok_or_else(|| NamesrvError::Body {
        what,
        detail: format!("expected a JSON object, got {v}"),
    })
}

fn int_field(obj: &Map<String, Value>, key: &str, what: &'static str) -> Result<i64, NamesrvError> {
    let bad = |v: &Value| NamesrvError::Body {
        what,
        detail: format!("field {key} is not an integer: {v}"),
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(&Value::String(s.clone()))),
        Some(other) => Err(bad(other)),
    }
}

fn int32_field(obj: &Map<String, Value>, key: &str) -> Result<i32, NamesrvError> {
    let v = int_field(obj, key, "TopicConfig")?;
    i32::try_from(v).map_err(|_| NamesrvError::Body {
        what: "TopicConfig",
        detail: format!("field {key} out of int range: {v}"),
    })
}

/// Quotes fastjson's bare object keys (`{0:"a"}` -> `{"0":"a"}`), leaving strings untouched.
/// Only bare tokens (numbers, identifiers) are handled; object-valued keys are not (no broker
/// body sent to a nameserver has them).
pub fn quote_bare_keys(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut expect_key = false;
    // Open containers, innermost last: true = object, false = array.
    let mut stack: Vec<bool> = Vec::new();
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else {
                in_string = b != b'"';
            }
        } else if b == b'"' {
            in_string = true;
            expect_key = false;
        } else if b == b'{' || b == b'[' {
            stack.push(b == b'{');
            expect_key = b == b'{';
        } else if b == b'}' || b == b']' {
            stack.pop();
            expect_key = false;
        } else if b == b',' {
            expect_key = stack.last() == Some(&true);
        } else if expect_key && !b.is_ascii_whitespace() {
            expect_key = false;
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || b"-_.+".contains(&bytes[i]))
            {
                i += 1;
            }
            if i > start {
                out.push('"');
                out.push_str(&text[start..i]);
                out.push('"');
                continue;
            }
            i = start;
        }
        // Copy one whole UTF-8 character.
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + len]);
        i += len;
    }
    out
}

/// Reads the compressed register body (layout in the module doc).
fn decode_compressed(body: &[u8]) -> Result<TopicConfigWrapper, NamesrvError> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED_BODY + 1)
        .read_to_end(&mut raw)
        .map_err(|e| NamesrvError::Body {
            what: "compressed RegisterBrokerBody",
            detail: format!("zlib: {e}"),
        })?;
    if raw.len() as u64 > MAX_INFLATED_BODY {
        return Err(NamesrvError::Body {
            what: "compressed RegisterBrokerBody",
            detail: format!("inflates to more than {MAX_INFLATED_BODY} bytes"),
        });
    }
    let mut cur = Cursor { buf: &raw, pos: 0 };
    let dv_bytes = cur.chunk("DataVersion")?;
    let data_version = data_version_from(&parse_json(dv_bytes, "DataVersion")?, "DataVersion")?;
    let count = cur.int("topic count")?;
    let count =
        usize::try_from(count).map_err(|_| cur.error(format!("negative topic count {count}")))?;
    let mut topics = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let at = cur.pos;
        let text = std::str::from_utf8(cur.chunk("TopicConfig")?)
            .map_err(|e| cur.error_at(at, format!("TopicConfig not UTF-8: {e}")))?;
        topics.push(compact_topic(text).ok_or_else(|| {
            cur.error_at(
                at,
                format!("TopicConfig {text:?} is not \"name r w perm type\""),
            )
        })?);
    }
    // The trailing filter-server list is legacy (always empty); its absence is tolerated.
    Ok(TopicConfigWrapper {
        data_version,
        topics,
    })
}

/// `"<topicName> <readQueueNums> <writeQueueNums> <perm> <topicFilterType>[ extras]"`.
fn compact_topic(text: &str) -> Option<TopicConfigEntry> {
    let mut parts = text.splitn(6, ' ');
    let topic_name = parts.next()?.to_string();
    let read_queue_nums = parts.next()?.parse().ok()?;
    let write_queue_nums = parts.next()?.parse().ok()?;
    let perm = parts.next()?.parse().ok()?;
    parts.next()?; // topicFilterType: not kept by the nameserver
    Some(TopicConfigEntry {
        topic_name,
        read_queue_nums,
        write_queue_nums,
        perm,
        topic_sys_flag: 0,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, detail: String) -> NamesrvError {
        self.error_at(self.pos, detail)
    }

    fn error_at(&self, offset: usize, detail: String) -> NamesrvError {
        NamesrvError::Body {
            what: "compressed RegisterBrokerBody",
            detail: format!("at inflated offset {offset}: {detail}"),
        }
    }

    fn int(&mut self, what: &str) -> Result<i32, NamesrvError> {
        let end = self.pos + 4;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(format!("truncated before the {what} length")))?;
        let v = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.pos = end;
        Ok(v)
    }

    fn chunk(&mut self, what: &str) -> Result<&'a [u8], NamesrvError> {
        let len = self.int(what)?;
        let len = usize::try_from(len)
            .map_err(|_| self.error(format!("negative {what} length {len}")))?;
        let end = self.pos.saturating_add(len);
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(format!("{what} of {len} bytes runs past the end")))?;
        self.pos = end;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress_body(dv: &str, topics: &[&str], filter: &str) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(dv.len() as i32).to_be_bytes());
        raw.extend_from_slice(dv.as_bytes());
        raw.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            raw.extend_from_slice(&(t.len() as i32).to_be_bytes());
            raw.extend_from_slice(t.as_bytes());
        }
        raw.extend_from_slice(&(filter.len() as i32).to_be_bytes());
        raw.extend_from_slice(filter.as_bytes());
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_body() {
        let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"timestamp":17},"topicConfigTable":{"T":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":1,"writeQueueNums":2}}}}"#;
        let w = decode_register_body(body, false, 275).unwrap();
        assert_eq!(w.data_version.counter, 3);
        assert_eq!(w.data_version.timestamp, 17);
        assert_eq!(
            w.topics,
            vec![TopicConfigEntry {
                topic_name: "T".into(),
                read_queue_nums: 4,
                write_queue_nums: 2,
                perm: 6,
                topic_sys_flag: 1,
            }]
        );
    }

    #[test]
    fn legacy_and_empty_bodies() {
        let body =
            br#"{"dataVersion":{"counter":1,"timestamp":2},"topicConfigTable":{"T":{"perm":"6"}}}"#;
        let w = decode_register_body(body, false, 30).unwrap();
        assert_eq!(w.topics[0].perm, 6);
        assert_eq!(w.topics[0].topic_name, "T");
        assert_eq!(
            decode_register_body(b"", true, 275).unwrap(),
            TopicConfigWrapper::default()
        );
    }

    #[test]
    fn compressed_body() {
        let body = compress_body(
            r#"{"counter":9,"timestamp":99}"#,
            &["A 4 4 6 SINGLE_TAG", "B 1 2 7 MULTI_TAG {\"+k\":\"v\"}"],
            "[]",
        );
        let w = decode_register_body(&body, true, 409).unwrap();
        assert_eq!(w.data_version.counter, 9);
        assert_eq!(w.topics.len(), 2);
        assert_eq!(w.topics[1].topic_name, "B");
        assert_eq!(w.topics[1].write_queue_nums, 2);
        assert_eq!(w.topics[1].perm, 7);
    }

    #[test]
    fn compressed_errors_name_the_offset() {
        let body = compress_body(r#"{"counter":9,"timestamp":99}"#, &["A 4"], "[]");
        let err = decode_register_body(&body, true, 409)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 36"), "{err}");
        let err = decode_register_body(b"not zlib", true, 409)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zlib"), "{err}");
    }

    #[test]
    fn bare_keys_are_quoted() {
        assert_eq!(
            quote_bare_keys(r#"{0:"a:1", 12:{"x":"{3:4}"},"k":[{-1:2},3, 4]}"#),
            r#"{"0":"a:1", "12":{"x":"{3:4}"},"k":[{"-1":2},3, 4]}"#
        );
        assert_eq!(
            quote_bare_keys(r#"{"é\"{1:2}":"ü"}"#),
            r#"{"é\"{1:2}":"ü"}"#
        );
        let dv = decode_data_version(br#"{counter:1,timestamp:2}"#).unwrap();
        assert_eq!((dv.counter, dv.timestamp), (1, 2));
        assert!(decode_data_version(b"").is_err());
        assert!(decode_data_version(b"[1]").is_err());
    }
}
