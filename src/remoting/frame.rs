//! Remoting frame layout: splitting a byte stream into frames, and turning one
//! frame into a [`RemotingCommand`] and back. Pure: no I/O, no async; the net
//! layer owns the buffers and calls [`check`] / [`decode_bytes`] / [`encode`].
//!
//! ```text
//!  0               4               8                      8+H                       4+L
//!  +---------------+---------------+----------------------+-------------------------+
//!  | L: i32 BE     | T:u8 | H:u24  | header (H bytes)     | body (L - 4 - H bytes)  |
//!  +---------------+---------------+----------------------+-------------------------+
//! ```
//!
//! * `L` counts everything after the first word: `4 + H + body_len`; the whole frame is
//!   `4 + L` bytes and may not exceed the caller's limit (normally
//!   [`FRAME_MAX_LEN`](crate::constants::FRAME_MAX_LEN), counted with the length word).
//! * Second word, big-endian: top byte `T` = header serialize type (0 JSON, 1 ROCKETMQ),
//!   low 24 bits `H` = header length; `H <= L - 4`.
//! * The body length is implicit (`L - 4 - H`, may be 0).

use bytes::{BufMut, Bytes, BytesMut};

use super::code::SerializeType;
use super::command::RemotingCommand;
use super::{header_binary, header_json};
use crate::constants::{FRAME_PREFIX_LEN, HEADER_MAX_LEN};

/// Why bytes could not be turned into a command. `Incomplete` is an ordinary
/// outcome (wait for more bytes); every other variant means the connection
/// must be closed, as upstream does (no response is sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame incomplete: more bytes are needed")]
    Incomplete,
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unknown header serialize type {0}")]
    BadSerializeType(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Why a command could not be framed (the wire's own width limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("header of {len} bytes does not fit the 24-bit header length")]
    HeaderTooLarge { len: usize },
    #[error("frame of {len} bytes does not fit the 32-bit length word")]
    FrameTooLarge { len: usize },
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(w))
}

/// Looks at the front of `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some(n))` when a whole frame of `n` bytes (length word included) is there.
///
/// Decides as early as possible, before the frame is buffered: the length word
/// alone yields `TooLarge` (total `4 + L` above `max_len`) or `Malformed` (`L < 4`,
/// negative included); the second word yields `BadSerializeType` or `Malformed`
/// (`H > L - 4`).
pub fn check(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(l_word) = be_u32(buf, 0) else {
        return Ok(None);
    };
    let l = l_word as i32;
    if l < 4 {
        return Err(DecodeError::Malformed(format!(
            "length word {l} is below 4"
        )));
    }
    // l >= 4 and l <= i32::MAX, so this is exact on every target.
    let total = 4 + l as usize;
    if total > max_len {
        return Err(DecodeError::TooLarge {
            len: total,
            max: max_len,
        });
    }
    if let Some(second) = be_u32(buf, 4) {
        check_second_word(second, total)?;
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(total))
}

/// Validates the type/header-length word against the frame's total length and
/// returns (type, header length).
fn check_second_word(word: u32, total: usize) -> Result<(SerializeType, usize), DecodeError> {
    let t = (word >> 24) as u8;
    let h = (word & 0x00FF_FFFF) as usize;
    let st = SerializeType::from_byte(t).ok_or(DecodeError::BadSerializeType(t))?;
    if h > total - FRAME_PREFIX_LEN {
        return Err(DecodeError::Malformed(format!(
            "header length {h} exceeds the {} bytes after the prefix",
            total - FRAME_PREFIX_LEN
        )));
    }
    Ok((st, h))
}

/// Splits one whole frame into (serialize type, header bytes range, body range).
fn split(frame: &[u8]) -> Result<(SerializeType, usize, usize), DecodeError> {
    let Some(l_word) = be_u32(frame, 0) else {
        return Err(DecodeError::Incomplete);
    };
    let l = l_word as i32;
    if l < 4 {
        return Err(DecodeError::Malformed(format!(
            "length word {l} is below 4"
        )));
    }
    let total = 4 + l as usize;
    if frame.len() < total {
        return Err(DecodeError::Incomplete);
    }
    if frame.len() > total {
        return Err(DecodeError::Malformed(format!(
            "{} bytes follow the {total}-byte frame",
            frame.len() - total
        )));
    }
    let second = be_u32(frame, 4).ok_or(DecodeError::Incomplete)?;
    let (st, h) = check_second_word(second, total)?;
    Ok((st, FRAME_PREFIX_LEN + h, total))
}

fn decode_header(st: SerializeType, header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    match st {
        SerializeType::Json => header_json::decode(header),
        SerializeType::RocketMq => header_binary::decode(header),
    }
}

/// Decodes exactly one whole frame (length word included; see [`check`]).
/// The body is copied; use [`decode_bytes`] to share it instead.
pub fn decode(frame: &[u8]) -> Result<RemotingCommand, DecodeError> {
    let (st, body_at, total) = split(frame)?;
    let mut cmd = decode_header(st, &frame[FRAME_PREFIX_LEN..body_at])?;
    cmd.body = Bytes::copy_from_slice(&frame[body_at..total]);
    Ok(cmd)
}

/// Like [`decode`], but the body is a zero-copy slice of `frame`.
pub fn decode_bytes(frame: Bytes) -> Result<RemotingCommand, DecodeError> {
    let (st, body_at, total) = split(&frame)?;
    let mut cmd = decode_header(st, &frame[FRAME_PREFIX_LEN..body_at])?;
    cmd.body = frame.slice(body_at..total);
    Ok(cmd)
}

/// Appends the whole frame of `cmd` (header per `cmd.serialize_type`, then body).
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) -> Result<(), EncodeError> {
    encode_header_only(cmd, cmd.body.len(), out)?;
    out.extend_from_slice(&cmd.body);
    Ok(())
}

/// Appends the length words and the header of `cmd`, with the length word
/// counting `body_len` bytes of body that the caller sends right after (for
/// example a pull response's records as one or several `Bytes`, without
/// copying). `cmd.body` is ignored. On error nothing is appended.
pub fn encode_header_only(
    cmd: &RemotingCommand,
    body_len: usize,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u64(0); // both words, patched below
    match cmd.serialize_type {
        SerializeType::Json => header_json::encode(cmd, out),
        SerializeType::RocketMq => header_binary::encode(cmd, out),
    }
    let h = out.len() - start - FRAME_PREFIX_LEN;
    if h > HEADER_MAX_LEN {
        out.truncate(start);
        return Err(EncodeError::HeaderTooLarge { len: h });
    }
    let l = 4usize
        .checked_add(h)
        .and_then(|x| x.checked_add(body_len))
        .filter(|&x| x <= i32::MAX as usize);
    let Some(l) = l else {
        out.truncate(start);
        return Err(EncodeError::FrameTooLarge {
            len: h.saturating_add(body_len).saturating_add(8),
        });
    };
    let l_word = (l as u32).to_be_bytes();
    let t_word = ((u32::from(cmd.serialize_type.as_byte()) << 24) | h as u32).to_be_bytes();
    out[start..start + 4].copy_from_slice(&l_word);
    out[start + 4..start + 8].copy_from_slice(&t_word);
    Ok(())
}

/// Convenience: the whole frame of `cmd` as one buffer.
pub fn encode_to_bytes(cmd: &RemotingCommand) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::with_capacity(256 + cmd.body.len());
    encode(cmd, &mut out)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::FRAME_MAX_LEN;
    use crate::remoting::code::request;

    fn route_request(st: SerializeType) -> RemotingCommand {
        let mut cmd =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 1).with_field("topic", "T");
        cmd.serialize_type = st;
        cmd
    }

    #[test]
    fn worked_example_json() {
        let mut out = BytesMut::new();
        encode(&route_request(SerializeType::Json), &mut out).unwrap();
        let text = br#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":409}"#;
        assert_eq!(text.len(), 123);
        assert_eq!(&out[..8], &[0, 0, 0, 0x7f, 0, 0, 0, 0x7b]);
        assert_eq!(&out[8..], &text[..]);
        assert_eq!(check(&out, FRAME_MAX_LEN), Ok(Some(out.len())));
        assert_eq!(decode(&out).unwrap(), route_request(SerializeType::Json));
    }

    #[test]
    fn worked_example_binary() {
        let expect = hex::decode(
            "00000025010000210069000199000000010000000000000000\
             0000000c0005746f7069630000000154",
        )
        .unwrap();
        let mut out = BytesMut::new();
        encode(&route_request(SerializeType::RocketMq), &mut out).unwrap();
        assert_eq!(&out[..], &expect[..]);
        let back = decode(&expect).unwrap();
        assert_eq!(back, route_request(SerializeType::RocketMq));
    }

    #[test]
    fn check_needs_more_and_limits() {
        let frame = encode_to_bytes(&route_request(SerializeType::Json).with_body("xyz")).unwrap();
        for cut in 0..frame.len() {
            assert_eq!(check(&frame[..cut], FRAME_MAX_LEN), Ok(None), "cut {cut}");
        }
        assert_eq!(check(&frame, FRAME_MAX_LEN), Ok(Some(frame.len())));
        let mut two = frame.to_vec();
        two.extend_from_slice(&frame);
        assert_eq!(check(&two, FRAME_MAX_LEN), Ok(Some(frame.len())));
        assert_eq!(
            check(&frame[..4], 10),
            Err(DecodeError::TooLarge {
                len: frame.len(),
                max: 10
            })
        );
        // Decided from the length word alone, before the frame arrives.
        assert!(matches!(
            check(&[0x7f, 0xff, 0xff, 0xff], FRAME_MAX_LEN),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            check(&[0xff, 0xff, 0xff, 0xff], FRAME_MAX_LEN),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            check(&[0, 0, 0, 3], FRAME_MAX_LEN),
            Err(DecodeError::Malformed(_))
        ));
        // H > L - 4
        assert!(matches!(
            check(&[0, 0, 0, 8, 0, 0, 0, 5], FRAME_MAX_LEN),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            check(&[0, 0, 0, 8, 7, 0, 0, 0], FRAME_MAX_LEN),
            Err(DecodeError::BadSerializeType(7))
        );
    }

    #[test]
    fn decode_rejects_trailing_and_short() {
        let frame = encode_to_bytes(&route_request(SerializeType::Json)).unwrap();
        assert_eq!(
            decode(&frame[..frame.len() - 1]),
            Err(DecodeError::Incomplete)
        );
        let mut long = frame.to_vec();
        long.push(0);
        assert!(matches!(decode(&long), Err(DecodeError::Malformed(_))));
        // Empty header is not a valid JSON header.
        assert!(matches!(
            decode(&[0, 0, 0, 4, 0, 0, 0, 0]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn header_only_then_body_equals_encode() {
        let cmd = route_request(SerializeType::Json).with_body(&b"0123456789"[..]);
        let mut a = BytesMut::new();
        encode_header_only(&cmd, 10, &mut a).unwrap();
        a.extend_from_slice(b"01234");
        a.extend_from_slice(b"56789");
        assert_eq!(a.freeze(), encode_to_bytes(&cmd).unwrap());
        let back = decode_bytes(encode_to_bytes(&cmd).unwrap()).unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn body_too_large_for_length_word() {
        let cmd = route_request(SerializeType::Json);
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            encode_header_only(&cmd, i32::MAX as usize, &mut out),
            Err(EncodeError::FrameTooLarge { .. })
        ));
        assert_eq!(&out[..], b"keep");
    }
}
