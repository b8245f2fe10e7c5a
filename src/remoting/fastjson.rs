//! fastjson compatibility: a lenient reader for the non-standard JSON that Java
//! RocketMQ writes, and small writer helpers that emit what fastjson emits
//! (spec/remoting.md §9). Pure functions; no I/O.
//!
//! Reader ([`parse_lenient`]) accepts standard JSON plus fastjson's quirks:
//! map keys that are bare numbers (`{0:"a"}`), JSON objects or arrays
//! (`{{"brokerName":"b","queueId":0,"topic":"t"}:{..}}`), bare identifiers, and
//! single-quoted strings; trailing commas are tolerated. It returns a
//! `serde_json::Value` where a number key becomes its text as written and an
//! object/array key becomes its compact JSON text. Input size and nesting depth
//! are bounded ([`JSON_MAX_LEN`], [`JSON_MAX_DEPTH`]); errors carry the byte position.
//!
//! Writers ([`write_str`], [`write_value`], [`write_num_key_map`],
//! [`write_obj_key_map`], ...) append to any [`JsonSink`] (`String`, `Vec<u8>`,
//! `BytesMut`). String escaping follows fastjson 1.2.x defaults: `"` `\` and
//! `\b \t \n \f \r` as two-character escapes; every other char below U+0020, U+007F..
//! U+009F, U+2028 and U+2029 as `\uXXXX` (upper-case hex); `/` and all other
//! non-ASCII text raw (UTF-8).

use bytes::BytesMut;
use serde_json::{Map, Number, Value};

use crate::constants::{JSON_MAX_DEPTH, JSON_MAX_LEN};

// ---------------------------------------------------------------------------
// Writer

/// Something JSON text can be appended to.
pub trait JsonSink {
    fn put_str(&mut self, s: &str);
}

impl JsonSink for String {
    fn put_str(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl JsonSink for Vec<u8> {
    fn put_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl JsonSink for BytesMut {
    fn put_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn write_u_escape<S: JsonSink + ?Sized>(out: &mut S, c: u32) {
    let buf = [
        b'\\',
        b'u',
        HEX_UPPER[((c >> 12) & 15) as usize],
        HEX_UPPER[((c >> 8) & 15) as usize],
        HEX_UPPER[((c >> 4) & 15) as usize],
        HEX_UPPER[(c & 15) as usize],
    ];
    if let Ok(s) = std::str::from_utf8(&buf) {
        out.put_str(s);
    }
}

/// Appends `s` as a double-quoted JSON string, escaped as fastjson does.
pub fn write_str<S: JsonSink + ?Sized>(out: &mut S, s: &str) {
    out.put_str("\"");
    let b = s.as_bytes();
    // The common case, printable ASCII with no quote or backslash, in one piece. No early exit
    // in the check: the compiler turns it into a vector loop.
    let plain = b.iter().fold(true, |ok, &c| {
        ok & (0x20..0x7F).contains(&c) & (c != b'"') & (c != b'\\')
    });
    if plain {
        out.put_str(s);
        out.put_str("\"");
        return;
    }
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Only char-leading bytes can match below: ASCII, 0xC2 (U+0080..U+00BF)
        // and 0xE2 (U+2000..U+2FFF) are lead bytes in valid UTF-8.
        let (esc_len, code) = match c {
            0x00..=0x1F | b'"' | b'\\' | 0x7F => (1, u32::from(c)),
            0xC2 if matches!(b.get(i + 1), Some(0x80..=0x9F)) => (2, u32::from(b[i + 1])),
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => {
                (3, 0x2000 + u32::from(b[i + 2]) - 0x80)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.put_str(&s[start..i]);
        match code {
            0x22 => out.put_str("\\\""),
            0x5C => out.put_str("\\\\"),
            0x08 => out.put_str("\\b"),
            0x09 => out.put_str("\\t"),
            0x0A => out.put_str("\\n"),
            0x0C => out.put_str("\\f"),
            0x0D => out.put_str("\\r"),
            _ => write_u_escape(out, code),
        }
        i += esc_len;
        start = i;
    }
    out.put_str(&s[start..]);
    out.put_str("\"");
}

/// Appends a decimal integer.
pub fn write_i64<S: JsonSink + ?Sized>(out: &mut S, n: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        out.put_str("-");
    }
    if let Ok(s) = std::str::from_utf8(&buf[pos..]) {
        out.put_str(s);
    }
}

/// Appends a double as Java's `Double.toString` spells it (`0.0`, `12.5`,
/// `1.0E7`, `1.5E-5`); NaN and infinities as `null`, like fastjson.
pub fn write_f64<S: JsonSink + ?Sized>(out: &mut S, x: f64) {
    if !x.is_finite() {
        out.put_str("null");
        return;
    }
    let a = x.abs();
    let text = if a == 0.0 || (1e-3..1e7).contains(&a) {
        let mut t = format!("{x}");
        if !t.contains('.') {
            t.push_str(".0");
        }
        t
    } else {
        let t = format!("{x:E}");
        match t.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => t,
        }
    };
    out.put_str(&text);
}

/// Appends `v` as compact fastjson text (object keys in the map's order).
pub fn write_value<S: JsonSink + ?Sized>(out: &mut S, v: &Value) {
    match v {
        Value::Null => out.put_str("null"),
        Value::Bool(true) => out.put_str("true"),
        Value::Bool(false) => out.put_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_i64(out, i);
            } else if let Some(u) = n.as_u64() {
                out.put_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                write_f64(out, f);
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.put_str("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_str(",");
                }
                write_value(out, item);
            }
            out.put_str("]");
        }
        Value::Object(map) => {
            out.put_str("{");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.put_str(",");
                }
                write_str(out, k);
                out.put_str(":");
                write_value(out, item);
            }
            out.put_str("}");
        }
    }
}

/// Appends a map with bare numeric keys, as fastjson writes `Map<Long, V>`:
/// `{0:..,1:..}`. `write_val` appends each value.
pub fn write_num_key_map<S, K, V, I, F>(out: &mut S, entries: I, mut write_val: F)
where
    S: JsonSink + ?Sized,
    K: Into<i64>,
    I: IntoIterator<Item = (K, V)>,
    F: FnMut(&mut S, V),
{
    out.put_str("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.put_str(",");
        }
        write_i64(out, k.into());
        out.put_str(":");
        write_val(out, v);
    }
    out.put_str("}");
}

/// Appends a map whose keys are JSON objects, as fastjson writes
/// `Map<MessageQueue, V>`: `{{..}:..,{..}:..}`. `write_key` must append a JSON
/// object (e.g. [`write_message_queue`]); `write_val` appends each value.
pub fn write_obj_key_map<S, K, V, I, FK, FV>(
    out: &mut S,
    entries: I,
    mut write_key: FK,
    mut write_val: FV,
) where
    S: JsonSink + ?Sized,
    I: IntoIterator<Item = (K, V)>,
    FK: FnMut(&mut S, K),
    FV: FnMut(&mut S, V),
{
    out.put_str("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.put_str(",");
        }
        write_key(out, k);
        out.put_str(":");
        write_val(out, v);
    }
    out.put_str("}");
}

/// Appends a `MessageQueue` object: `{"brokerName":..,"queueId":..,"topic":..}`.
pub fn write_message_queue<S: JsonSink + ?Sized>(
    out: &mut S,
    broker_name: &str,
    queue_id: i32,
    topic: &str,
) {
    out.put_str("{\"brokerName\":");
    write_str(out, broker_name);
    out.put_str(",\"queueId\":");
    write_i64(out, i64::from(queue_id));
    out.put_str(",\"topic\":");
    write_str(out, topic);
    out.put_str("}");
}

// ---------------------------------------------------------------------------
// Lenient reader

/// Where and why lenient parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fastjson text at byte {pos}: {msg}")]
pub struct JsonError {
    pub pos: usize,
    pub msg: &'static str,
}

/// Parses fastjson output (see the module doc) into a `serde_json::Value`.
pub fn parse_lenient(text: &[u8]) -> Result<Value, JsonError> {
    if text.len() > JSON_MAX_LEN {
        return Err(JsonError {
            pos: JSON_MAX_LEN,
            msg: "text longer than the JSON size limit",
        });
    }
    let mut r = Reader {
        b: text,
        pos: 0,
        depth: 0,
    };
    let v = r.value()?;
    r.skip_ws();
    if r.pos < r.b.len() {
        return r.err("trailing characters after the value");
    }
    Ok(v)
}

/// Parses a lenient JSON text straight into a type (via `Value`).
pub fn from_lenient<T: serde::de::DeserializeOwned>(text: &[u8]) -> Result<T, JsonError> {
    let v = parse_lenient(text)?;
    serde_json::from_value(v).map_err(|_| JsonError {
        pos: 0,
        msg: "JSON does not have the expected shape",
    })
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Reader<'_> {
    fn err<T>(&self, msg: &'static str) -> Result<T, JsonError> {
        Err(JsonError { pos: self.pos, msg })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0C) = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        self.skip_ws();
        match self.peek() {
            None => self.err("unexpected end of text"),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(q @ (b'"' | b'\'')) => Ok(Value::String(self.string(q)?)),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                match self.number()?.1 {
                    Some(n) => Ok(Value::Number(n)),
                    None => Err(JsonError {
                        pos: start,
                        msg: "number out of range",
                    }),
                }
            }
            Some(c) if is_ident_start(c) => {
                let start = self.pos;
                let ident = self.ident();
                match ident {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(JsonError {
                        pos: start,
                        msg: "unknown bare word in value position",
                    }),
                }
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > JSON_MAX_DEPTH {
            return self.err("nesting deeper than the limit");
        }
        self.pos += 1;
        Ok(())
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => break,
                None => return self.err("unterminated object"),
                _ => {}
            }
            let key = self.key()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.err("expected ':' after an object key");
            }
            self.pos += 1;
            let v = self.value()?;
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                None => return self.err("unterminated object"),
                _ => return self.err("expected ',' or '}' in an object"),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => break,
                None => return self.err("unterminated array"),
                _ => {}
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                None => return self.err("unterminated array"),
                _ => return self.err("expected ',' or ']' in an array"),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    /// A map key in any of fastjson's spellings, as a string.
    fn key(&mut self) -> Result<String, JsonError> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => self.string(q),
            Some(b'{' | b'[') => {
                let v = self.value()?;
                Ok(v.to_string())
            }
            Some(b'-' | b'0'..=b'9') => Ok(self.number()?.0.to_string()),
            Some(c) if is_ident_start(c) => Ok(self.ident().to_string()),
            None => self.err("unexpected end of text in an object key"),
            Some(_) => self.err("unexpected character in an object key"),
        }
    }

    fn ident(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_ident_start(c) || c.is_ascii_digit() {
                self.pos += 1;
            } else {
                break;
            }
        }
        // Identifier bytes are ASCII.
        std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("")
    }

    /// Scans a number; returns its text and value (`None` if not representable).
    fn number(&mut self) -> Result<(&str, Option<Number>), JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits_at = self.pos;
        self.digits();
        if self.pos == digits_at {
            return self.err("expected digits");
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            let at = self.pos;
            self.digits();
            if self.pos == at {
                return self.err("expected digits after '.'");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            is_float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let at = self.pos;
            self.digits();
            if self.pos == at {
                return self.err("expected digits in the exponent");
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("0");
        let n = if is_float {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        } else if let Ok(i) = text.parse::<i64>() {
            Some(Number::from(i))
        } else if let Ok(u) = text.parse::<u64>() {
            Some(Number::from(u))
        } else {
            // Java BigInteger; keep the magnitude approximately.
            text.parse::<f64>().ok().and_then(Number::from_f64)
        };
        Ok((text, n))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(h) = self.b.get(self.pos..self.pos + 4) else {
            return self.err("truncated \\u escape");
        };
        let mut v = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return self.err("bad hex digit in \\u escape"),
            };
            v = v * 16 + u32::from(d);
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self, quote: u8) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let run = self.pos;
            while let Some(c) = self.peek() {
                if c == quote || c == b'\\' {
                    break;
                }
                self.pos += 1;
            }
            out.extend_from_slice(&self.b[run..self.pos]);
            match self.peek() {
                None => {
                    return Err(JsonError {
                        pos: open,
                        msg: "unterminated string",
                    })
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 1;
                    let c: char = match e {
                        // fastjson also reads `\'` (single-quoted strings).
                        b'\'' => '\'',
                        b'u' => self.unicode_escape()?,
                        _ => match short_escape(e) {
                            Some(c) => c,
                            None => return self.err("unknown escape"),
                        },
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out).map_err(|_| JsonError {
            pos: open,
            msg: "string is not valid UTF-8",
        })
    }

    /// After `\u`: one code unit, or a surrogate pair; lone surrogates become U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.b.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$'
}

/// The character of a one-letter JSON escape (`\n` -> newline); `None` for `u` and unknown ones.
pub(crate) fn short_escape(e: u8) -> Option<char> {
    Some(match e {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_numeric_and_object_keys() {
        let v = parse_lenient(br#"{"brokerAddrs":{0:"127.0.0.1:20961",1:"b"},"t":{3:2,-1:5}}"#)
            .unwrap();
        assert_eq!(
            v,
            json!({"brokerAddrs":{"0":"127.0.0.1:20961","1":"b"},"t":{"3":2,"-1":5}})
        );
        let v = parse_lenient(
            br#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{"brokerOffset":1},{"brokerName":"b","queueId":1,"topic":"t"}:{"brokerOffset":2}}}"#,
        )
        .unwrap();
        let table = v["offsetTable"].as_object().unwrap();
        let keys: Vec<&String> = table.keys().collect();
        assert_eq!(
            keys,
            [
                r#"{"brokerName":"b","queueId":0,"topic":"t"}"#,
                r#"{"brokerName":"b","queueId":1,"topic":"t"}"#
            ]
        );
        assert_eq!(v["consumeTps"], json!(0.0));
    }

    #[test]
    fn quirks_and_escapes() {
        let v = parse_lenient(
            b" {'a':'it''s', b : [1, 2,], \"c\":\"\\u00e9\\ud83d\\ude00\\n\", $ref:null,} ",
        )
        .unwrap_err();
        // 'it''s' is not a valid single-quoted string: the error has a position.
        assert!(v.pos > 0);
        let v = parse_lenient(
            b" {'a':'x\\'y', b : [1, 2,], \"c\":\"\\u00e9\\ud83d\\ude00\\n\", $ref:null,} ",
        )
        .unwrap();
        assert_eq!(v, json!({"a":"x'y","b":[1,2],"c":"é😀\n","$ref":null}));
        let v = parse_lenient(br#"[1.5e3,-0,18446744073709551615,true,false,null,"\/"]"#).unwrap();
        assert_eq!(
            v,
            json!([1500.0, 0, 18446744073709551615u64, true, false, null, "/"])
        );
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(parse_lenient(b"{\"a\":}").unwrap_err().pos, 5);
        assert_eq!(parse_lenient(b"[1 2]").unwrap_err().pos, 3);
        assert_eq!(parse_lenient(b"\"abc").unwrap_err().pos, 0);
        assert!(parse_lenient(b"{} x").is_err());
        assert!(parse_lenient(b"").is_err());
        assert!(parse_lenient(b"nope").is_err());
        let deep = "[".repeat(JSON_MAX_DEPTH + 1);
        assert_eq!(
            parse_lenient(deep.as_bytes()).unwrap_err().msg,
            "nesting deeper than the limit"
        );
        let ok = format!(
            "{}{}",
            "[".repeat(JSON_MAX_DEPTH),
            "]".repeat(JSON_MAX_DEPTH)
        );
        assert!(parse_lenient(ok.as_bytes()).is_ok());
    }

    #[test]
    fn write_str_escapes() {
        let mut s = String::new();
        write_str(
            &mut s,
            "a\"\\/\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}é\u{2028}\u{2029}\u{2030}😀",
        );
        assert_eq!(
            s,
            "\"a\\\"\\\\/\\b\\t\\n\\f\\r\\u0001\\u001F\\u007F\\u0080\\u009F\u{a0}é\\u2028\\u2029\u{2030}😀\""
        );
        let back = parse_lenient(s.as_bytes()).unwrap();
        assert_eq!(
            back,
            json!("a\"\\/\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}é\u{2028}\u{2029}\u{2030}😀")
        );
    }

    #[test]
    fn numbers_and_maps() {
        let mut s = String::new();
        for x in [0.0, 12.5, 3.0, 1e7, 1.5e-5, -2.25, f64::NAN] {
            write_f64(&mut s, x);
            s.push(' ');
        }
        assert_eq!(s, "0.0 12.5 3.0 1.0E7 1.5E-5 -2.25 null ");
        let mut s = String::new();
        write_i64(&mut s, i64::MIN);
        s.push(' ');
        write_i64(&mut s, 0);
        assert_eq!(s, "-9223372036854775808 0");

        let mut s = String::new();
        write_num_key_map(&mut s, [(0i64, "a:1"), (1, "b:2")], write_str);
        assert_eq!(s, r#"{0:"a:1",1:"b:2"}"#);
        let mut s = String::new();
        write_obj_key_map(
            &mut s,
            [(0, 5i64)],
            |o, q| write_message_queue(o, "broker-a", q, "T"),
            |o, v| {
                o.put_str("{\"maxOffset\":");
                write_i64(o, v);
                o.put_str("}");
            },
        );
        assert_eq!(
            s,
            r#"{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"maxOffset":5}}"#
        );
        let v = parse_lenient(s.as_bytes()).unwrap();
        let mut again = String::new();
        write_value(&mut again, &v);
        assert_eq!(
            again,
            r#"{"{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"T\"}":{"maxOffset":5}}"#
        );
        let mut s = String::new();
        write_value(&mut s, &json!({"consumeTps":0.0,"b":[true,null,"x"]}));
        assert_eq!(s, r#"{"consumeTps":0.0,"b":[true,null,"x"]}"#);
    }
}
