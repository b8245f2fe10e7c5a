//! A real broker whose disk fails on purpose (`SHARDMQ_FAULTS`): the sends acknowledged before
//! the failure are SEND_OK and stay readable, the send whose batch hit the failed write or
//! fdatasync gets SYSTEM_ERROR naming the operation, every later send gets
//! SERVICE_NOT_AVAILABLE saying why, never SEND_OK again; pulls keep working.

#![allow(clippy::unwrap_used)] // reason: test code; a panic is the failure report

mod support;

use shardmq::remoting::RemotingCommand;
use shardmq::store::record::{self, Decoded};
use support::Client;

const TOPIC: &str = "FaultTopic";

fn send(i: usize) -> RemotingCommand {
    RemotingCommand::request(310, 0)
        .with_field("a", "PG")
        .with_field("b", TOPIC)
        .with_field("c", "TBW102")
        .with_field("d", "4")
        .with_field("e", "0")
        .with_field("f", "0")
        .with_field("g", "1700000000000")
        .with_field("h", "0")
        .with_field("i", "WAIT\u{1}true")
        .with_body(format!("fault-body-{i}").into_bytes())
}

fn pull(offset: u64) -> RemotingCommand {
    RemotingCommand::request(11, 0)
        .with_field("consumerGroup", "FaultGroup")
        .with_field("topic", TOPIC)
        .with_field("queueId", "0")
        .with_field("queueOffset", offset.to_string())
        .with_field("maxMsgNums", "32")
        .with_field("sysFlag", "4")
        .with_field("commitOffset", "0")
        .with_field("suspendTimeoutMillis", "0")
        .with_field("subscription", "*")
        .with_field("expressionType", "TAG")
        .with_field("subVersion", "0")
}

/// Bodies of the records of a pull response body.
fn bodies(mut body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let Decoded::Record(r) = record::check(body).unwrap() else {
            panic!("pull body is not a run of records")
        };
        out.push(String::from_utf8(r.body.to_vec()).unwrap());
        body = &body[r.total_size as usize..];
    }
    out
}

fn fault_case(name: &str, flush: &str, faults: &str, op: &str, ok: usize) {
    let ns = support::start_namesrv(&format!("{name}-ns"));
    let extra = format!("flushDiskType={flush}\nshardCount=1\n");
    let mut broker = support::start_broker_env(
        &format!("{name}-broker"),
        &ns.addr(),
        &extra,
        &[("SHARDMQ_FAULTS", faults)],
    );
    let mut c = Client::connect(broker.port);
    for i in 0..ok {
        let r = c.call(send(i));
        assert_eq!(r.code, 0, "send {i} before the fault: {r:?}");
    }
    let failed = c.call(send(ok));
    assert_eq!(failed.code, 1, "the send of the failed batch: {failed:?}");
    let remark = failed.remark.clone().unwrap_or_default();
    assert!(
        remark.contains(op) && remark.contains("commitlog") && remark.contains("injected"),
        "the remark names operation, file and error: {remark:?}"
    );
    for i in ok + 1..ok + 4 {
        let r = c.call(send(i));
        assert_eq!(r.code, 14, "send {i} after the fault: {r:?}");
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.contains("not writable") && remark.contains(op),
            "the remark says why: {remark:?}"
        );
    }
    let p = c.call(pull(0));
    assert_eq!(p.code, 0, "pull after the fault: {p:?}");
    let want: Vec<String> = (0..ok).map(|i| format!("fault-body-{i}")).collect();
    assert_eq!(bodies(&p.body), want);
    broker.proc_.assert_alive();
}

#[test]
fn sync_flush_fdatasync_failure() {
    fault_case(
        "faults-sync",
        "SYNC_FLUSH",
        "fdatasync_error_after=3",
        "fdatasync",
        3,
    );
}

#[test]
fn async_flush_write_failure() {
    fault_case(
        "faults-async",
        "ASYNC_FLUSH",
        "write_error_after=3",
        "write",
        3,
    );
}
