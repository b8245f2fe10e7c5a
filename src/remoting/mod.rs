//! The pure wire codec: no I/O, no async. See spec/remoting.md.
//!
//! - `code`: request/response codes, `LanguageCode`, `SerializeType`.
//! - `command`: the `RemotingCommand` value and `ExtFields`.
//! - `frame`: frame splitting (`check`), `decode`, `encode`; `DecodeError`.
//! - `header_json` / `header_binary`: the two header encodings; `header_json_fast`: the
//!   one-pass scanner for the common JSON header shape (serde decodes the rest).
//! - `header`: typed views of request/response headers over `ExtFields`.
//! - `message`: message properties, batch bodies, offset message ids.
//! - `fastjson`: lenient reader and fastjson-style writers for JSON bodies.

pub mod code;
pub mod command;
pub mod fastjson;
pub mod frame;
pub mod header;
pub mod header_binary;
pub mod header_json;
mod header_json_fast;
pub mod message;

pub use code::{LanguageCode, SerializeType};
pub use command::{ExtFields, RemotingCommand};
pub use fastjson::{parse_lenient, JsonError};
pub use frame::{
    check, decode, decode_bytes, encode, encode_header_only, DecodeError, EncodeError,
};
pub use header::HeaderError;
pub use message::{BatchMessage, MessageError};
