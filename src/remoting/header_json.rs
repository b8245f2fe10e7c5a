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

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::code::{LanguageCode, SerializeType};
use super::command::{ExtFields, RemotingCommand};
use super::fastjson::{write_i64, write_str, JsonSink};
use super::frame::DecodeError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHeader {
    code: i32,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    opaque: Option<i32>,
    #[serde(default)]
    flag: Option<i32>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    ext_fields: Option<Map<String, Value>>,
}

/// Decodes a JSON header into a command with an empty body and
/// `serialize_type = Json`.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    let w: WireHeader = serde_json::from_slice(header)
        .map_err(|e| DecodeError::Malformed(format!("JSON header: {e}")))?;
    let ext_fields = w.ext_fields.map(|map| {
        ExtFields(
            map.into_iter()
                .filter_map(|(k, v)| stringify(v).map(|v| (k, v)))
                .collect(),
        )
    });
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
        ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// An `extFields` value as the string Java would see; `None` for JSON null.
fn stringify(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
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
            f.0,
            vec![
                ("queueId".to_string(), "3".to_string()),
                ("unitMode".to_string(), "false".to_string()),
                ("topic".to_string(), "t".to_string()),
            ]
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
}
