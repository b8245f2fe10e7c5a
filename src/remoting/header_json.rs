//! The JSON header (serialize type 0, spec/remoting.md §3.1), both ways.
//!
//! Decoding is tolerant of every sender we know (Java fastjson, the Go client):
//! any key order, unknown keys ignored, `language` by name (unknown -> OTHER),
//! `remark` null/absent/"" (kept as written), `extFields` absent, `{}` or with
//! number/boolean values (stringified; null values dropped). `code` is required.
//!
//! Encoding reproduces fastjson's bytes exactly, so a recorded Java frame
//! re-encodes byte for byte: keys in alphabetical order `code`, `extFields`
//! (omitted when `None`; entries in `ExtFields` order), `flag`, `language`,
//! `opaque`, `remark` (omitted when `None`), `serializeTypeCurrentRPC`, `version`;
//! strings escaped by [`fastjson::write_str`](super::fastjson::write_str).

use std::borrow::Cow;
use std::fmt;

use bytes::BytesMut;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::code::{LanguageCode, SerializeType};
use super::command::{ExtFields, RemotingCommand};
use super::fastjson::{write_i64, write_str, JsonSink};
use super::frame::DecodeError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHeader<'a> {
    code: i32,
    #[serde(default, borrow)]
    language: Option<Cow<'a, str>>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    opaque: Option<i32>,
    #[serde(default)]
    flag: Option<i32>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, deserialize_with = "ext_fields")]
    ext_fields: Option<ExtFields>,
}

/// Decodes a JSON header into a command with an empty body and
/// `serialize_type = Json`: the common shape by `header_json_fast`'s scanner, anything else
/// by serde (which also words every error).
pub fn decode(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    match super::header_json_fast::decode(header) {
        Some(cmd) => Ok(cmd),
        None => decode_with_serde(header),
    }
}

/// The fast scanner's answer next to serde's, for a differential check outside the crate (the
/// `fuzz/` target): `None` when the scanner leaves the header to serde.
#[doc(hidden)]
pub fn decode_both(
    header: &[u8],
) -> Option<(RemotingCommand, Result<RemotingCommand, DecodeError>)> {
    super::header_json_fast::decode(header).map(|fast| (fast, decode_with_serde(header)))
}

/// The serde decoder: every header, and the reference the fast scanner is tested against.
pub(crate) fn decode_with_serde(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    let w: WireHeader = serde_json::from_slice(header)
        .map_err(|e| DecodeError::Malformed(format!("JSON header: {e}")))?;
    Ok(RemotingCommand {
        code: w.code,
        language: w
            .language
            .as_deref()
            .map_or(LanguageCode::OTHER, LanguageCode::from_name),
        version: w.version.unwrap_or(0),
        opaque: w.opaque.unwrap_or(0),
        flag: w.flag.unwrap_or(0),
        remark: w.remark,
        ext_fields: w.ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// `extFields` straight into its ordered string pairs: no `serde_json::Value` map in between
/// (that detour was a fifth of the broker's CPU per message). JSON `null` -> absent.
fn ext_fields<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExtFields>, D::Error> {
    d.deserialize_option(OptionalFields)
}

struct OptionalFields;

impl<'de> Visitor<'de> for OptionalFields {
    type Value = Option<ExtFields>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an extFields object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(FieldsVisitor).map(Some)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = ExtFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an extFields object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFields, A::Error> {
        let mut fields = ExtFields::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let FieldText(value) = map.next_value()?;
            // A repeated key keeps its first position and takes the last value, as a JSON
            // object map does; a null drops it.
            match value {
                Some(v) => fields.insert(key, v),
                None => {
                    fields.remove(&key);
                }
            }
        }
        Ok(fields)
    }
}

/// An `extFields` value as the string Java would see; `None` for JSON null.
struct FieldText(Option<String>);

impl<'de> Deserialize<'de> for FieldText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldTextVisitor).map(FieldText)
    }
}

struct FieldTextVisitor;

impl<'de> Visitor<'de> for FieldTextVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an extFields value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(serde_json::Value::from(v).to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    // Objects and arrays (no known client sends them): their JSON text.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Some(v.to_string()))
    }
}

/// Appends the fastjson text of `cmd`'s header (body not included).
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) {
    write_header(cmd, out);
}

/// The header text as a `String` (tests, logs).
pub fn encode_to_string(cmd: &RemotingCommand) -> String {
    let mut s = String::with_capacity(128);
    write_header(cmd, &mut s);
    s
}

fn write_header<S: JsonSink>(cmd: &RemotingCommand, out: &mut S) {
    out.put_str("{\"code\":");
    write_i64(out, i64::from(cmd.code));
    if let Some(fields) = &cmd.ext_fields {
        out.put_str(",\"extFields\":{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.put_str(",");
            }
            write_str(out, k);
            out.put_str(":");
            write_str(out, v);
        }
        out.put_str("}");
    }
    out.put_str(",\"flag\":");
    write_i64(out, i64::from(cmd.flag));
    out.put_str(",\"language\":");
    write_str(out, cmd.language.name());
    out.put_str(",\"opaque\":");
    write_i64(out, i64::from(cmd.opaque));
    if let Some(remark) = &cmd.remark {
        out.put_str(",\"remark\":");
        write_str(out, remark);
    }
    // The header is JSON, so the leaked getter says JSON.
    out.put_str(",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    write_i64(out, i64::from(cmd.version));
    out.put_str("}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::code::request;

    #[test]
    fn worked_example() {
        let cmd =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 1).with_field("topic", "T");
        let text = encode_to_string(&cmd);
        assert_eq!(
            text,
            r#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":409}"#
        );
        assert_eq!(decode(text.as_bytes()).unwrap(), cmd);
    }

    #[test]
    fn go_client_style() {
        let text = br#"{"code":10,"language":"GO","version":317,"opaque":7,"flag":0,"remark":"","extFields":{"queueId":3,"unitMode":false,"x":null,"topic":"t"}}"#;
        let cmd = decode(text).unwrap();
        assert_eq!(cmd.code, 10);
        assert_eq!(cmd.language, LanguageCode::GO);
        assert_eq!(cmd.version, 317);
        assert_eq!(cmd.opaque, 7);
        assert_eq!(cmd.remark.as_deref(), Some(""));
        let f = cmd.ext_fields.unwrap();
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![("queueId", "3"), ("unitMode", "false"), ("topic", "t"),]
        );
    }

    #[test]
    fn tolerant_and_strict_parts() {
        let cmd = decode(br#"{"flag":1,"unknown":[1,{"a":2}],"code":0,"language":"KLINGON","remark":null,"extFields":{}}"#).unwrap();
        assert_eq!(cmd.language, LanguageCode::OTHER);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext_fields, Some(ExtFields::new()));
        assert!(cmd.is_response());
        let cmd = decode(br#"{"code":3}"#).unwrap();
        assert_eq!(cmd.ext_fields, None);
        let err = decode(br#"{"flag":0}"#).unwrap_err();
        assert!(err.to_string().contains("code"), "{err}");
        assert!(matches!(
            decode(b"{\"code\":1"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(decode(b""), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn escapes_like_fastjson() {
        let cmd = RemotingCommand::request(1, 2)
            .with_remark("a\nb\"c\\d\te/f\u{7f}g")
            .with_field("i", "k\u{1}v\u{2}é");
        let text = encode_to_string(&cmd);
        assert!(
            text.contains(r#""remark":"a\nb\"c\\d\te/f\u007Fg""#),
            "{text}"
        );
        assert!(text.contains(r#""i":"k\u0001v\u0002é""#), "{text}");
        assert_eq!(decode(text.as_bytes()).unwrap(), cmd);
    }

    /// The fields as the earlier decoder (through a `serde_json` object map) saw them.
    fn via_value_map(header: &[u8]) -> Option<Vec<(String, String)>> {
        let v: serde_json::Value = serde_json::from_slice(header).unwrap();
        let map = v.get("extFields")?.as_object()?.clone();
        Some(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some((k, s)),
                    other => Some((k, other.to_string())),
                })
                .collect(),
        )
    }

    #[test]
    fn odd_values_decode_as_through_a_json_map() {
        let cases: [&[u8]; 6] = [
            br#"{"code":1,"extFields":{"f":1.5,"e":-2,"u":18446744073709551615,"b":true}}"#,
            br#"{"code":1,"extFields":{"o":{"z":1,"a":[1,"x",null]},"s":[],"t":"\u00e9\n"}}"#,
            br#"{"code":1,"extFields":{"a":"1","b":"2","a":"3"}}"#,
            br#"{"code":1,"extFields":{"a":"1","b":"2","a":null,"c":null}}"#,
            br#"{"code":1,"extFields":null}"#,
            br#"{"code":1,"extFields":{"big":1e300,"neg0":-0.0}}"#,
        ];
        for c in cases {
            let ours = decode(c).unwrap().ext_fields.map(|f| {
                f.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(ours, via_value_map(c), "{}", String::from_utf8_lossy(c));
        }
        assert!(decode(br#"{"code":1,"extFields":"x"}"#).is_err());
        assert!(decode(br#"{"code":1,"extFields":{"a":}}"#).is_err());
    }
}
