//! Robustness of the running processes against bad input: truncated frames, oversized
//! length words, header lengths beyond the frame, garbage, unknown codes, binary (ROCKETMQ)
//! headers, and PULL_MESSAGE on the VIP port. After every bad connection is closed by the
//! server, an existing connection and a new one still get correct answers.

// reason: test code panics on failures by design.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use shardmq::remoting::{RemotingCommand, SerializeType};
use support::{encode, Client};

const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// Bad inputs after which the server must close the connection, by name.
fn fatal_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut oversized = (16u32 * 1024 * 1024 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
    let mut header_too_long = 20u32.to_be_bytes().to_vec();
    header_too_long.extend_from_slice(&100u32.to_be_bytes());
    header_too_long.extend_from_slice(&[b'x'; 16]);
    let mut bad_json = 12u32.to_be_bytes().to_vec();
    bad_json.extend_from_slice(&8u32.to_be_bytes());
    bad_json.extend_from_slice(b"notjson!");
    let mut bad_type = 6u32.to_be_bytes().to_vec();
    bad_type.extend_from_slice(&[7, 0, 0, 2, b'{', b'}']);
    let mut negative = (-5i32).to_be_bytes().to_vec();
    negative.extend_from_slice(&[0; 8]);
    vec![
        ("oversized length word (16 MiB + 1)", oversized),
        ("header length larger than the frame", header_too_long),
        (
            "garbage (an HTTP request)",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("frame whose JSON header does not parse", bad_json),
        ("unknown serialize type 7", bad_type),
        ("negative length word", negative),
    ]
}

fn runtime_info() -> RemotingCommand {
    RemotingCommand::request(28, 0)
}

fn assert_broker_ok(c: &mut Client, when: &str) {
    let r = c.call(runtime_info());
    assert_eq!(r.code, 0, "{when}: GET_BROKER_RUNTIME_INFO answered {r:?}");
    assert!(!r.body.is_empty(), "{when}: empty runtime info body");
}

fn assert_route_ok(c: &mut Client, when: &str) {
    let r = c.call(support::route_request("TBW102", 275));
    assert_eq!(r.code, 0, "{when}: route of TBW102 answered {r:?}");
}

/// Sends `bytes` on a new connection, expects the server to close it, then checks that
/// `survivor` (opened before) and a new connection are both answered by `check`.
fn bad_then_healthy(
    port: u16,
    name: &str,
    bytes: &[u8],
    survivor: &mut Client,
    check: fn(&mut Client, &str),
) {
    let mut bad = Client::connect(port);
    bad.send_raw(bytes).unwrap();
    assert!(
        bad.closed_within(CLOSE_WITHIN),
        "port {port}: connection not closed within {CLOSE_WITHIN:?} after: {name}"
    );
    check(survivor, &format!("old connection after {name}"));
    check(
        &mut Client::connect(port),
        &format!("new connection after {name}"),
    );
}

fn truncated_then_healthy(
    port: u16,
    req: &RemotingCommand,
    survivor: &mut Client,
    check: fn(&mut Client, &str),
) {
    let whole = encode(req);
    for cut in [2usize, 6, whole.len() - 1] {
        let mut bad = Client::connect(port);
        bad.send_raw(&whole[..cut]).unwrap();
        bad.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(
            bad.closed_within(CLOSE_WITHIN),
            "port {port}: after a frame truncated at {cut} of {} bytes and our FIN, the server kept the connection",
            whole.len()
        );
        check(
            survivor,
            &format!("old connection after truncation at {cut}"),
        );
        check(
            &mut Client::connect(port),
            &format!("new connection after truncation at {cut}"),
        );
    }
}

#[test]
fn broker_survives_bad_frames() {
    let ns = support::start_namesrv("robust-ns");
    let mut broker = support::start_broker("robust-broker", &ns.addr(), "");
    for port in [broker.port, broker.vip_port()] {
        let mut survivor = Client::connect(port);
        assert_broker_ok(&mut survivor, "before any bad input");
        truncated_then_healthy(port, &runtime_info(), &mut survivor, assert_broker_ok);
        for (name, bytes) in fatal_inputs() {
            bad_then_healthy(port, name, &bytes, &mut survivor, assert_broker_ok);
        }
    }

    // Unknown request code: answered, connection kept.
    let mut c = Client::connect(broker.port);
    let r = c.call(RemotingCommand::request(9999, 0));
    assert_eq!(r.code, 3, "unknown code answered {r:?}");
    assert_eq!(
        r.remark.as_deref(),
        Some(" request type 9999 not supported")
    );
    assert_broker_ok(&mut c, "same connection after an unknown code");

    // A request with a binary (ROCKETMQ, serialize type 1) header is answered in kind.
    let mut bin = runtime_info();
    bin.serialize_type = SerializeType::RocketMq;
    let r = c.call(bin);
    assert_eq!(r.code, 0, "binary-header request answered {r:?}");
    assert_eq!(
        r.serialize_type,
        SerializeType::RocketMq,
        "answer header type"
    );
    assert!(!r.body.is_empty());
    let mut bin = RemotingCommand::request(9998, 0);
    bin.serialize_type = SerializeType::RocketMq;
    let r = c.call(bin);
    assert_eq!(
        (r.code, r.serialize_type),
        (3, SerializeType::RocketMq),
        "{r:?}"
    );

    // PULL_MESSAGE on the VIP port: REQUEST_CODE_NOT_SUPPORTED.
    let mut vip = Client::connect(broker.vip_port());
    let pull = RemotingCommand::request(11, 0)
        .with_field("consumerGroup", "G")
        .with_field("topic", "TBW102")
        .with_field("queueId", "0")
        .with_field("queueOffset", "0")
        .with_field("maxMsgNums", "32")
        .with_field("sysFlag", "0")
        .with_field("commitOffset", "0")
        .with_field("suspendTimeoutMillis", "0")
        .with_field("subVersion", "0");
    let r = vip.call(pull);
    assert_eq!(r.code, 3, "PULL_MESSAGE on the VIP port answered {r:?}");
    assert_broker_ok(&mut vip, "VIP connection after a refused pull");

    broker.proc_.assert_alive();
}

#[test]
fn namesrv_survives_bad_frames() {
    let mut ns = support::start_namesrv("robust-ns2");
    let _broker = support::start_broker("robust-broker2", &ns.addr(), "");
    assert!(
        support::wait_route(ns.port, "TBW102", Duration::from_secs(10)).is_some(),
        "broker did not register with the nameserver"
    );
    let mut survivor = Client::connect(ns.port);
    assert_route_ok(&mut survivor, "before any bad input");
    truncated_then_healthy(
        ns.port,
        &support::route_request("TBW102", 275),
        &mut survivor,
        assert_route_ok,
    );
    for (name, bytes) in fatal_inputs() {
        bad_then_healthy(ns.port, name, &bytes, &mut survivor, assert_route_ok);
    }
    let mut bin = support::route_request("TBW102", 275);
    bin.serialize_type = SerializeType::RocketMq;
    let r = survivor.call(bin);
    assert_eq!(
        (r.code, r.serialize_type),
        (0, SerializeType::RocketMq),
        "{r:?}"
    );
    assert!(!r.body.is_empty());
    ns.proc_.assert_alive();
}
