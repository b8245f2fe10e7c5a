//! Every decoder that reads bytes from the network or the disk, behind one target: the first
//! byte picks the decoder, the rest is its input. Each must return an error for bad input,
//! never panic, and what decodes must survive its own encoder unchanged.
//!
//! Run (nightly, from this directory): `cargo fuzz run decoders -- -max_total_time=600`.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shardmq::config::{BrokerConfig, NamesrvConfig, Properties};
use shardmq::ha::epochs::{reconcile, Epochs};
use shardmq::namesrv::register_body::decode_register_body;
use shardmq::remoting::{fastjson, frame, message};
use shardmq::store::record::{self, Decoded};

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 10 {
        // A remoting frame (length word, header length and codec byte, header, body).
        0 => {
            if let Ok(Some(n)) = frame::check(input, 16 << 20) {
                // A JSON header the fast scanner takes must read as serde reads it.
                if let Some((fast, serde)) = header_json_header(&input[..n])
                    .and_then(shardmq::remoting::header_json::decode_both)
                {
                    assert_eq!(serde.as_ref().ok(), Some(&fast), "fast scanner != serde");
                }
                if let Ok(cmd) = frame::decode(&input[..n]) {
                    let mut out = BytesMut::new();
                    if frame::encode(&cmd, &mut out).is_ok() {
                        let again = frame::decode(&out).expect("our own frame decodes");
                        assert_eq!(again, cmd, "decode(encode(cmd)) != cmd");
                    }
                }
            }
        }
        // A JSON body as fastjson writes them (heartbeats, subscription groups, configs).
        1 => {
            let _ = fastjson::parse_lenient(input);
        }
        // A REGISTER_BROKER body, plain or compressed, old or new broker version.
        2 => {
            if let Some((&flags, body)) = input.split_first() {
                let version = if flags & 2 == 0 { 37 } else { 36 };
                let _ = decode_register_body(body, flags & 1 == 1, version);
            }
        }
        // A commit-log record as read back from the disk (recovery, pulls, replication).
        3 => {
            if let Ok(Decoded::Record(r)) = record::check(input) {
                assert!(r.total_size as usize <= input.len());
            }
            let _ = record::decode(input);
        }
        // A SEND_BATCH_MESSAGE body.
        4 => {
            let body = Bytes::copy_from_slice(input);
            if let Ok(msgs) = message::decode_batch(&body) {
                let again = message::decode_batch(&message::encode_batch(&msgs))
                    .expect("our own batch decodes");
                assert_eq!(again.len(), msgs.len());
            }
        }
        // Message properties and message ids.
        5 => {
            let s = String::from_utf8_lossy(input);
            let _ = message::iter_properties(&s).count();
            let _ = message::get_property(&s, "KEYS");
            let _ = message::tags_code(&s);
            let _ = message::decode_offset_msg_id(&s);
        }
        // A properties file (operator input), and a broker's and a nameserver's whole
        // configuration loaded from it: bad values are errors naming key and file.
        6 => {
            let _ = Properties::parse(input);
        }
        9 => {
            if let Ok(props) = Properties::parse(input) {
                let file = std::path::Path::new("fuzz.properties");
                let _ = BrokerConfig::from_properties(&props, file);
                let _ = NamesrvConfig::from_properties(&props, file);
            }
        }
        // An epoch history file, and two histories reconciled.
        7 => {
            let text = String::from_utf8_lossy(input);
            if let Ok(e) = Epochs::parse(&text) {
                assert_eq!(Epochs::parse(&e.render()).as_ref(), Ok(&e));
                let _ = reconcile(Some(&e), input.len() as u64 * 977, &e);
            }
        }
        // An epoch history from the wire.
        _ => {
            if input.len() >= 12 {
                let mut head = [0u8; 12];
                head.copy_from_slice(&input[..12]);
                if let Ok((lineage, n)) = Epochs::decode_header(&head) {
                    let rest = &input[12..];
                    if rest.len() >= 16 * n {
                        if let Ok(master) = Epochs::decode_entries(lineage, &rest[..16 * n]) {
                            let slave = Epochs::decode_entries(lineage, &rest[16 * n..]).ok();
                            let _ = reconcile(slave.as_ref(), n as u64 * 4096, &master);
                        }
                    }
                }
            }
        }
    }
});

/// The header bytes of a whole frame whose header is JSON (codec byte 0).
fn header_json_header(frame: &[u8]) -> Option<&[u8]> {
    let word = frame.get(4..8)?;
    if word[0] != 0 {
        return None;
    }
    let len = usize::from(word[1]) << 16 | usize::from(word[2]) << 8 | usize::from(word[3]);
    frame.get(8..8 + len)
}
