//! A hand-rolled scanner for the JSON headers real clients send, in front of the serde decoder
//! of `header_json`. The header is decoded on every request, and through serde it cost 13 % of
//! the broker's CPU at 64 producers; this scanner does the common shape in one pass over the
//! bytes, with no allocation beyond the strings it returns.
//!
//! It understands exactly: one top-level object; string values with every JSON escape
//! (`\uXXXX` with surrogate pairs included); integers written plainly (`-?(0|[1-9][0-9]*)`) in
//! `i64`; `true`, `false`, `null`; JSON whitespace. Anything else (a float, a nested object or
//! array in `extFields` or an unknown key, a repeated top-level key, a wrong type, trailing
//! bytes, bad UTF-8, a malformed token) makes it answer `None`, and the caller decodes the
//! header with serde instead, so every odd header gets exactly serde's result or error.
//! `tests::same_as_serde` checks the two agree on recorded and generated headers.

use super::code::{LanguageCode, SerializeType};
use std::borrow::Cow;

use super::command::{ExtFields, RemotingCommand};

/// Decodes `header`, or `None` when it is not of the simple shape (see the module doc).
pub fn decode(header: &[u8]) -> Option<RemotingCommand> {
    // One UTF-8 check for the whole header (serde rejects bad UTF-8 anywhere too); the
    // strings are then sliced from it at ASCII delimiters, which are always char boundaries.
    let text = std::str::from_utf8(header).ok()?;
    let mut p = Parser {
        b: header,
        s: text,
        i: 0,
    };
    let mut code: Option<i32> = None;
    let mut language: Option<LanguageCode> = None;
    let mut version: Option<i32> = None;
    let mut opaque: Option<i32> = None;
    let mut flag: Option<i32> = None;
    let mut remark: Option<Option<String>> = None;
    let mut ext_fields: Option<Option<ExtFields>> = None;
    p.expect(b'{')?;
    if !p.eat(b'}') {
        loop {
            let key = p.string()?;
            p.expect(b':')?;
            match key.as_ref() {
                "code" => set_once(&mut code, p.int32()?)?,
                "language" => {
                    let v = p.opt_string()?;
                    let lang = v
                        .as_deref()
                        .map_or(LanguageCode::OTHER, LanguageCode::from_name);
                    set_once(&mut language, lang)?;
                }
                "version" => set_once(&mut version, p.opt_int32()?.unwrap_or(0))?,
                "opaque" => set_once(&mut opaque, p.opt_int32()?.unwrap_or(0))?,
                "flag" => set_once(&mut flag, p.opt_int32()?.unwrap_or(0))?,
                "remark" => set_once(&mut remark, p.opt_string()?.map(Cow::into_owned))?,
                "extFields" => set_once(&mut ext_fields, p.fields()?)?,
                // Unknown keys (fastjson's `serializeTypeCurrentRPC`): skipped, scalars only.
                _ => p.skip_scalar()?,
            }
            if p.eat(b',') {
                continue;
            }
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code?,
        language: language.unwrap_or(LanguageCode::OTHER),
        version: version.unwrap_or(0),
        opaque: opaque.unwrap_or(0),
        flag: flag.unwrap_or(0),
        remark: remark.flatten(),
        ext_fields: ext_fields.flatten(),
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// serde rejects a repeated field: leave that case to it.
fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

struct Parser<'a> {
    b: &'a [u8],
    /// `b` as text (checked once in `decode`).
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.ws();
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// A JSON string, borrowed from the input when it has no escape; the opening quote is the
    /// next token.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let plain = self.plain_run()?;
        if self.b[self.i] == b'"' {
            self.i += 1;
            return Some(Cow::Borrowed(plain));
        }
        let mut out = String::with_capacity(plain.len() + 16);
        out.push_str(plain);
        self.escapes_into(&mut out)?;
        Some(Cow::Owned(out))
    }

    /// A JSON string appended to `out`, unescaped; the opening quote is the next token.
    fn string_into(&mut self, out: &mut String) -> Option<()> {
        self.expect(b'"')?;
        out.push_str(self.plain_run()?);
        self.escapes_into(out)
    }

    /// The rest of a string from a quote or a backslash (where `plain_run` stopped): escapes
    /// (a message's properties carry `\u0001` and `\u0002` between every key and value) and
    /// the plain runs between them, copied whole, up to and past the closing quote.
    fn escapes_into(&mut self, out: &mut String) -> Option<()> {
        loop {
            let c = self.b[self.i];
            self.i += 1;
            if c == b'"' {
                return Some(());
            }
            // `\u00XY` below 0x80 (the properties' separators): the byte itself.
            if let Some(&[b'u', b'0', b'0', hi @ b'0'..=b'7', lo]) = self.b.get(self.i..self.i + 5)
            {
                if let Some(lo) = char::from(lo).to_digit(16) {
                    // `hi` is 0-7 and `lo` 0-15: below 0x80, one byte of UTF-8.
                    out.push(char::from((hi - b'0') << 4 | lo as u8));
                    self.i += 5;
                    out.push_str(self.plain_run()?);
                    continue;
                }
            }
            let e = *self.b.get(self.i)?;
            self.i += 1;
            let ch = match e {
                b'u' => self.unicode_escape()?,
                _ => super::fastjson::short_escape(e)?,
            };
            out.push(ch);
            out.push_str(self.plain_run()?);
        }
    }

    /// The text from here to the next quote or backslash (left at `self.i`); `None` at the
    /// end of input or when a control character (invalid unescaped in JSON) comes first.
    fn plain_run(&mut self) -> Option<&'a str> {
        let start = self.i;
        let rest = self.b.get(start..)?;
        // One byte loop, not `memchr2` and a second pass for control characters: the runs
        // are short (keys of one letter, values of a few bytes, property runs between
        // escapes), and a vector search's set-up cost more than its scan saved. callgrind,
        // `cargo bench --bench codec`, instructions per SEND_MESSAGE_V2 header decode:
        // 14 000 with `memchr2`, 12 900 with this loop.
        let n = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[n] < 0x20 {
            return None;
        }
        self.i = start + n;
        // Both ends are at ASCII bytes (the opening quote or an escape before, a quote or a
        // backslash after), so this slice of checked text cannot fail.
        self.s.get(start..start + n)
    }

    /// After `\u`: four hex digits, and a low surrogate's `\uXXXX` after a high one.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.b.get(self.i..self.i + 2)? != b"\\u" {
                return None;
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
        }
        char::from_u32(hi)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for d in digits {
            v = v * 16 + char::from(*d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// A plain integer, as its text (no sign `+`, no leading zero, no fraction or exponent).
    fn int_text(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || (n > 1 && self.b[digits] == b'0') {
            return None;
        }
        // serde_json reads `-0` as the float -0.0.
        if digits > start && n == 1 && self.b[digits] == b'0' {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.s.get(start..self.i)
    }

    fn int32(&mut self) -> Option<i32> {
        self.int_text()?.parse().ok()
    }

    fn opt_int32(&mut self) -> Option<Option<i32>> {
        if self.literal(b"null") {
            return Some(None);
        }
        self.int32().map(Some)
    }

    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.literal(b"null") {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A scalar's value as Java sees it in `extFields`, appended to `out`; false for null.
    fn scalar_into(&mut self, out: &mut String) -> Option<bool> {
        match self.peek()? {
            b'"' => self.string_into(out).map(|()| true),
            b't' if self.literal(b"true") => {
                out.push_str("true");
                Some(true)
            }
            b'f' if self.literal(b"false") => {
                out.push_str("false");
                Some(true)
            }
            b'n' if self.literal(b"null") => Some(false),
            b'-' | b'0'..=b'9' => {
                out.push_str(self.integer()?);
                Some(true)
            }
            _ => None,
        }
    }

    /// An integer serde reads as one (`i64`, or `u64` beyond it; larger ones it reads as a
    /// float: left to it), as its text. `int_text` admits only the canonical form, so the
    /// text is what serde prints of the number it parsed.
    fn integer(&mut self) -> Option<&'a str> {
        let t = self.int_text()?;
        (t.parse::<i64>().is_ok() || t.parse::<u64>().is_ok()).then_some(t)
    }

    /// Skips a scalar value (of a top-level key we do not read).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' if self.literal(b"true") => Some(()),
            b'f' if self.literal(b"false") => Some(()),
            b'n' if self.literal(b"null") => Some(()),
            b'-' | b'0'..=b'9' => self.integer().map(drop),
            _ => None,
        }
    }

    /// `extFields`: null or an object of scalars, in order; a repeated key keeps its first
    /// position and takes the last value, a null drops it (as `header_json` does). Keys and
    /// values are unescaped straight into the fields' buffer.
    fn fields(&mut self) -> Option<Option<ExtFields>> {
        if self.literal(b"null") {
            return Some(None);
        }
        self.expect(b'{')?;
        let mut fields = ExtFields::with_capacity(self.b.len() - self.i, 16);
        if self.eat(b'}') {
            return Some(Some(fields));
        }
        loop {
            let text = fields.text_mut();
            let key_start = text.len();
            self.string_into(text)?;
            let key_end = text.len();
            self.expect(b':')?;
            if self.scalar_into(text)? {
                let value_end = text.len();
                fields.put_ranges([key_start, key_end], Some([key_end, value_end]));
            } else {
                fields.put_ranges([key_start, key_end], None);
                fields.text_mut().truncate(key_start);
            }
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}')?;
            return Some(Some(fields));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::header_json;

    /// The serde decoder's answer, the reference.
    fn serde(h: &[u8]) -> Option<RemotingCommand> {
        header_json::decode_with_serde(h).ok()
    }

    fn check(h: &[u8]) {
        if let Some(fast) = decode(h) {
            assert_eq!(Some(fast), serde(h), "{}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn typical_headers_take_the_fast_path() {
        let send = br#"{"code":310,"extFields":{"a":"G","b":"T","c":"TBW102","d":"4","e":"1","f":"0","g":"1795528577000","h":"0","i":"KEYS\u0001k\u0002WAIT\u0001true\u0002","j":"0","k":"false","m":"false"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}"#;
        let cpp = br#"{"code":310,"language":"CPP","version":0,"opaque":3,"flag":0,"remark":"","extFields":{"a":"g","b":"t","d":4,"e":-1,"k":false}}"#;
        for h in [&send[..], &cpp[..]] {
            let fast = decode(h).expect("fast path");
            assert_eq!(Some(fast), serde(h));
        }
    }

    #[test]
    fn odd_headers_fall_back_or_agree() {
        let cases: [&[u8]; 19] = [
            // Bad UTF-8 in a string, in an extFields value and outside any string: serde's
            // error, never a fast answer.
            b"{\"code\":1,\"remark\":\"a\xffb\"}",
            b"{\"code\":1,\"extFields\":{\"k\":\"\xc3\"}}",
            b"{\"code\":1}\xe2\x82",
            br#"{"code":1,"extFields":{"f":1.5}}"#,
            br#"{"code":1,"extFields":{"o":{"z":1}}}"#,
            br#"{"code":1,"code":2}"#,
            br#"{"code":"1"}"#,
            br#"{"code":1} x"#,
            br#"{"code":1,"extFields":{"a":"1","b":"2","a":null}}"#,
            br#"{"code":1,"extFields":{"u":18446744073709551615,"big":99999999999999999999}}"#,
            br#"{"code":1,"remark":"\ud83d\ude00 \u00e9\/\b\f\n\r\t\"\\"}"#,
            br#"{"code":1,"remark":"\ud83d"}"#,
            br#"{"code":1,"remark":"bad \x escape"}"#,
            br#" { "code" : -0 , "flag" : null , "language" : null } "#,
            br#"{"code":01}"#,
            br#"{"code":2147483648}"#,
            br#"{"flag":1}"#,
            br#"{"code":1,"unknown":[1,2]}"#,
            br#"{"code":1,"extFields":{},"language":"GO","version":null}"#,
        ];
        for c in cases {
            check(c);
        }
    }

    /// Random headers from a grammar with every token the scanner knows and several it does
    /// not: whenever the scanner answers, it answers what serde does.
    #[test]
    fn same_as_serde() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let strings = [
            "\"\"",
            "\"a\"",
            "\"k\\u0001v\\u0002\"",
            "\"\\ud83d\\ude00\"",
            "\"é\"",
            "\"\\n\\\"\"",
            "\"\\ud800\"",
            "\"x\\q\"",
            // Plain runs around escapes, a raw control character after an escape (invalid),
            // and a string left open after an escape.
            "\"KEYS\\u0001k-1\\u0002TAGS\\u0001a b\"",
            "\"a\\tb\u{1}c\"",
            "\"a\\u0001bc",
            // The one-byte shortcut's edges: upper and lower case hex, 0x7F, 0x80, a NUL, a
            // shortcut cut short.
            "\"\\u007F\\u001f\\u0041\\u0000\\u0080\\u00E9x\"",
            "\"\\u00",
            "\"\\u00g1\"",
        ];
        let scalars = [
            "0", "-1", "-0", "12", "01", "1.5", "-", "true", "false", "null", "1e3", "{}", "[1]",
            "\"s\"",
        ];
        let keys = [
            "code",
            "language",
            "version",
            "opaque",
            "flag",
            "remark",
            "extFields",
            "other",
        ];
        let mut fast = 0;
        for _ in 0..20_000 {
            // Mostly headers that have their code; the other keys are mostly well typed.
            let mut h = String::from(if rnd(5) > 0 { "{\"code\":7" } else { "{" });
            for k in 0..rnd(7) {
                if k > 0 || h.len() > 1 {
                    h.push(',');
                }
                let key = keys[1 + rnd(keys.len() as u64 - 1) as usize];
                h.push_str(&format!("\"{key}\":"));
                match key {
                    "extFields" if rnd(4) > 0 => {
                        h.push('{');
                        for j in 0..rnd(5) {
                            if j > 0 {
                                h.push(',');
                            }
                            let fk = ["a", "b", "c"][rnd(3) as usize];
                            let v = if rnd(2) == 0 {
                                strings[rnd(strings.len() as u64) as usize]
                            } else {
                                scalars[rnd(scalars.len() as u64) as usize]
                            };
                            h.push_str(&format!("\"{fk}\":{v}"));
                        }
                        h.push('}');
                    }
                    "language" | "remark" if rnd(3) > 0 => {
                        h.push_str(strings[rnd(strings.len() as u64) as usize]);
                    }
                    "version" | "opaque" | "flag" if rnd(3) > 0 => h.push_str("12"),
                    _ => h.push_str(scalars[rnd(scalars.len() as u64) as usize]),
                }
                if rnd(8) == 0 {
                    h.push(' ');
                }
            }
            h.push('}');
            if rnd(20) == 0 {
                h.push('x');
            }
            if decode(h.as_bytes()).is_some() {
                fast += 1;
            }
            check(h.as_bytes());
        }
        assert!(fast > 1_000, "the fast path was taken {fast} times");
    }
}
