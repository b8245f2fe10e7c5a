//! Large and small response frames on one connection, against a real broker: pull responses
//! whose record bodies are written from their own buffer (no copy into the connection's
//! gathering buffer, `net::connection::write_loop`) interleaved with small responses, all
//! pipelined on one socket. Every frame must arrive whole, in one piece, with the records in
//! queue order and byte for byte as sent.

#![allow(clippy::unwrap_used)] // reason: test code; a panic is the failure report

mod support;

use std::collections::HashMap;
use std::io::Write;

use shardmq::remoting::{frame, RemotingCommand};
use support::{pull_request, record_bodies, send_request, Client};

const TOPIC: &str = "PullFrames";
const SENT: usize = 40;
const BODY: usize = 4096;

fn body(i: usize) -> Vec<u8> {
    let mut b = format!("msg-{i:04}-").into_bytes();
    b.resize(BODY, b'a' + (i % 26) as u8);
    b
}

fn pull(offset: usize) -> RemotingCommand {
    pull_request("PullFramesGroup", TOPIC, offset as u64)
}

fn max_offset() -> RemotingCommand {
    RemotingCommand::request(30, 0)
        .with_field("topic", TOPIC)
        .with_field("queueId", "0")
}

#[test]
fn large_pull_responses_and_small_responses_share_one_connection() {
    let ns = support::start_namesrv("pullframes-ns");
    let broker = support::start_broker("pullframes-broker", &ns.addr(), "");
    let mut c = Client::connect(broker.port);
    for i in 0..SENT {
        let r = c.call(send_request(TOPIC, 0, "WAIT\u{1}true", body(i)));
        assert_eq!(r.code, 0, "send {i}: {r:?}");
    }

    // Pipelined in one write: pull (32 records, 128 KiB), small, pull (8 records, 32 KiB),
    // small, pull at the end (no record), small.
    let requests = [
        pull(0),
        max_offset(),
        pull(32),
        max_offset(),
        pull(SENT),
        max_offset(),
    ];
    let mut wire = Vec::new();
    let mut what: HashMap<i32, usize> = HashMap::new();
    for (k, mut r) in requests.into_iter().enumerate() {
        r.opaque = c.opaque();
        what.insert(r.opaque, k);
        wire.extend_from_slice(&support::encode(&r));
    }
    c.stream.write_all(&wire).unwrap();

    let mut answers: HashMap<usize, RemotingCommand> = HashMap::new();
    while answers.len() < what.len() {
        let f = support::read_frame(&mut c.stream).unwrap().unwrap();
        // Each frame is exactly one command: header and body lengths add up.
        let r = frame::decode(&f).unwrap();
        let k = *what
            .get(&r.opaque)
            .unwrap_or_else(|| panic!("unknown opaque {r:?}"));
        assert!(answers.insert(k, r).is_none(), "two answers to request {k}");
    }

    let first = &answers[&0];
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.field("nextBeginOffset"), Some("32"));
    let got = record_bodies(&first.body);
    assert_eq!(got.len(), 32);
    for (i, b) in got.iter().enumerate() {
        assert!(*b == body(i), "record {i} differs");
    }

    let second = &answers[&2];
    assert_eq!(second.code, 0, "{second:?}");
    let got = record_bodies(&second.body);
    assert_eq!(got.len(), SENT - 32);
    for (k, b) in got.iter().enumerate() {
        assert!(*b == body(32 + k), "record {} differs", 32 + k);
    }

    // PULL_NOT_FOUND (19) at the end, no body.
    let end = &answers[&4];
    assert_eq!(end.code, 19, "{end:?}");
    assert!(end.body.is_empty());

    for k in [1, 3, 5] {
        let r = &answers[&k];
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.field("offset"), Some(SENT.to_string().as_str()), "{r:?}");
    }
}
