//! Send-path rules a client sees as response codes and remarks, against real processes:
//! `maxMessageSize` (upstream 4.3 limits the whole stored record) answered MESSAGE_ILLEGAL with
//! upstream's remark, the reserved TBW102 topic refused, an illegal topic name refused, a
//! queue id beyond the topic refused, and a well-formed send acknowledged with the fields Java
//! clients dereference.

#![allow(clippy::unwrap_used)] // reason: test code; a panic is the failure report

mod support;

use shardmq::remoting::RemotingCommand;
use support::{send_request, Client};

fn send(topic: &str, queue_id: i32, body: Vec<u8>) -> RemotingCommand {
    send_request(topic, queue_id, "TAGS\u{1}TagA\u{2}WAIT\u{1}true", body)
}

#[test]
fn send_rules_are_answered_with_upstream_codes_and_remarks() {
    let ns = support::start_namesrv("sendrules-ns");
    let broker = support::start_broker("sendrules-broker", &ns.addr(), "maxMessageSize=1024\n");
    let mut c = Client::connect(broker.port);

    let ok = c.call(send("RulesTopic", 1, b"small".to_vec()));
    assert_eq!(ok.code, 0, "{ok:?}");
    for key in ["msgId", "queueId", "queueOffset", "MSG_REGION", "TRACE_ON"] {
        assert!(ok.field(key).is_some(), "send response lacks {key}: {ok:?}");
    }
    assert_eq!(ok.field("queueId"), Some("1"));
    assert_eq!(ok.field("msgId").map(str::len), Some(32));

    let big = c.call(send("RulesTopic", 1, vec![b'x'; 2000]));
    assert_eq!(big.code, 13, "oversized record: {big:?}");
    let remark = big.remark.unwrap_or_default();
    assert!(
        remark.starts_with("the message is illegal"),
        "upstream's remark expected, got {remark:?}"
    );
    assert!(
        remark.contains("1024"),
        "the remark names the limit: {remark:?}"
    );

    let reserved = c.call(send("TBW102", 0, b"x".to_vec()));
    assert_eq!(reserved.code, 1, "{reserved:?}");
    assert!(reserved.remark.unwrap_or_default().contains("TBW102"));

    let bad_name = c.call(send("bad topic!", 0, b"x".to_vec()));
    assert_eq!(bad_name.code, 1, "{bad_name:?}");

    let bad_queue = c.call(send("RulesTopic", 99, b"x".to_vec()));
    assert_eq!(bad_queue.code, 1, "{bad_queue:?}");
    assert!(bad_queue.remark.unwrap_or_default().contains("queueId[99]"));

    // The connection is still served after every refusal.
    let again = c.call(send("RulesTopic", 0, b"after".to_vec()));
    assert_eq!(again.code, 0, "{again:?}");
}
