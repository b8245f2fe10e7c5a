//! The ROCKETMQ binary header (serialize type 1, spec/remoting.md §3.2), both ways.
//!
//! ```text
//! offset size  field
//! 0      2     code        i16 BE (codes above 32767 do not fit; encode truncates like Java)
//! 2      1     language    LanguageCode byte
//! 3      2     version     i16 BE
//! 5      4     opaque      i32 BE
//! 9      4     flag        i32 BE
//! 13     4     remarkLen   i32 BE (0 = no remark)
//! 17     R     remark      UTF-8
//! 17+R   4     extLen      i32 BE: byte length of the entries that follow (0 = no map)
//! 21+R   E     entries:    keyLen i16 BE, key UTF-8, valLen i32 BE, value UTF-8
//! ```
//!
//! Every declared length is checked against the bytes actually present before
//! anything is sliced or allocated, so a lying length is `Malformed`, never a
//! panic or a huge allocation. Strings are decoded like Java's `new String(..,
//! UTF_8)` (invalid sequences become U+FFFD). Entries with an empty key are
//! dropped (Java reads them as null); an empty remark decodes as `None`.

use bytes::{BufMut, Bytes, BytesMut};

use super::code::{LanguageCode, SerializeType};
use super::command::{ExtFields, RemotingCommand};
use super::frame::DecodeError;
use crate::constants::BINARY_HEADER_FIXED_LEN;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(DecodeError::Malformed(format!(
                "binary header: {what} of {n} bytes at offset {} overruns the {}-byte header",
                self.pos,
                self.b.len()
            )));
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// A length that must be non-negative.
    fn len_i32(&mut self, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| {
            DecodeError::Malformed(format!("binary header: negative {what} {n} at offset {at}"))
        })
    }
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes a binary header into a command with an empty body and
/// `serialize_type = RocketMq`.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    if header.len() < BINARY_HEADER_FIXED_LEN {
        return Err(DecodeError::Malformed(format!(
            "binary header of {} bytes is shorter than the fixed {BINARY_HEADER_FIXED_LEN}",
            header.len()
        )));
    }
    let mut c = Cursor { b: header, pos: 0 };
    let code = i32::from(c.i16("code")?);
    let [language] = c.array::<1>("language")?;
    let version = i32::from(c.i16("version")?);
    let opaque = c.i32("opaque")?;
    let flag = c.i32("flag")?;
    let remark_len = c.len_i32("remark length")?;
    let remark = c.take(remark_len, "remark")?;
    let ext_len = c.len_i32("extFields length")?;
    let ext = c.take(ext_len, "extFields")?;

    let ext_fields = if ext.is_empty() {
        None
    } else {
        let mut fields = ExtFields::with_capacity(ext.len(), 16);
        let mut m = Cursor { b: ext, pos: 0 };
        while m.pos < ext.len() {
            let at = m.pos;
            let klen = m.i16("key length")?;
            let klen = usize::try_from(klen).map_err(|_| {
                DecodeError::Malformed(format!(
                    "binary header: negative key length {klen} at extFields offset {at}"
                ))
            })?;
            let key = m.take(klen, "key")?;
            let vlen = m.len_i32("value length")?;
            let val = m.take(vlen, "value")?;
            if !key.is_empty() {
                fields.insert(String::from_utf8_lossy(key), String::from_utf8_lossy(val));
            }
        }
        // All entries dropped reads as no map, as it re-encodes.
        (!fields.is_empty()).then_some(fields)
    };

    Ok(RemotingCommand {
        code,
        language: LanguageCode(language),
        version,
        opaque,
        flag,
        remark: (!remark.is_empty()).then(|| utf8(remark)),
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

/// Appends the binary header of `cmd`. `code` and `version` are written as
/// 16-bit values (truncated, as Java's `(short)` cast does); entries whose key
/// is longer than 32767 bytes cannot be represented and are skipped.
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) {
    out.put_i16(cmd.code as i16);
    out.put_u8(cmd.language.0);
    out.put_i16(cmd.version as i16);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    let remark = cmd.remark.as_deref().unwrap_or("");
    out.put_u32(remark.len() as u32);
    out.put_slice(remark.as_bytes());
    let entries = || {
        cmd.ext_fields
            .iter()
            .flat_map(|f| f.iter())
            .filter(|(k, _)| k.len() <= i16::MAX as usize)
    };
    let ext_len: usize = entries().map(|(k, v)| 2 + k.len() + 4 + v.len()).sum();
    out.put_u32(ext_len as u32);
    for (k, v) in entries() {
        out.put_u16(k.len() as u16);
        out.put_slice(k.as_bytes());
        out.put_u32(v.len() as u32);
        out.put_slice(v.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(310, -5)
            .with_remark("héllo")
            .with_field("a", "GoldenProducerGroup")
            .with_field("i", "KEYS\u{1}k\u{2}")
            .with_field("empty", "");
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.flag = 3;
        cmd.language = LanguageCode(42);
        cmd
    }

    #[test]
    fn round_trip() {
        let cmd = sample();
        let mut out = BytesMut::new();
        encode(&cmd, &mut out);
        assert_eq!(decode(&out).unwrap(), cmd);
    }

    #[test]
    fn empty_parts_decode_as_none() {
        let mut cmd = RemotingCommand::request(1, 1)
            .with_empty_fields()
            .with_remark("");
        cmd.serialize_type = SerializeType::RocketMq;
        let mut out = BytesMut::new();
        encode(&cmd, &mut out);
        assert_eq!(out.len(), BINARY_HEADER_FIXED_LEN);
        let back = decode(&out).unwrap();
        assert_eq!(back.remark, None);
        assert_eq!(back.ext_fields, None);
    }

    #[test]
    fn every_truncation_and_length_lie_is_malformed() {
        let mut out = BytesMut::new();
        encode(&sample(), &mut out);
        for cut in 0..out.len() {
            assert!(
                matches!(decode(&out[..cut]), Err(DecodeError::Malformed(_))),
                "cut {cut}"
            );
        }
        // remarkLen = 0x7fffffff and -1
        for lie in [[0x7f, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0xff]] {
            let mut b = out.to_vec();
            b[13..17].copy_from_slice(&lie);
            let e = decode(&b).unwrap_err();
            assert!(e.to_string().contains("remark"), "{e}");
        }
        // key length negative inside the map
        let remark_len = "héllo".len();
        let map_at = 21 + remark_len;
        let mut b = out.to_vec();
        b[map_at] = 0xff;
        assert!(decode(&b).unwrap_err().to_string().contains("key length"));
    }
}
