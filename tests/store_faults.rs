//! A real broker whose disk fails on purpose (`SHARDMQ_FAULTS`): the sends acknowledged before
//! the failure are SEND_OK and stay readable, the send whose batch hit the failed write or
//! fdatasync gets SYSTEM_ERROR naming the operation, every later send gets
//! SERVICE_NOT_AVAILABLE saying why, never SEND_OK again; pulls keep working.

#![allow(clippy::unwrap_used)] // reason: test code; a panic is the failure report

mod support;

use shardmq::remoting::RemotingCommand;
use support::{pull_request, record_bodies, send_request, Client};

const TOPIC: &str = "FaultTopic";

fn send(i: usize) -> RemotingCommand {
    let body = format!("fault-body-{i}").into_bytes();
    send_request(TOPIC, 0, "WAIT\u{1}true", body)
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
    let p = c.call(pull_request("FaultGroup", TOPIC, 0));
    assert_eq!(p.code, 0, "pull after the fault: {p:?}");
    let want: Vec<String> = (0..ok).map(|i| format!("fault-body-{i}")).collect();
    let got: Vec<String> = record_bodies(&p.body)
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(got, want);
    broker.proc_.assert_alive();
    drop(c);

    // A stop after the failure is not a clean stop: the broker says so (exit status) and
    // leaves the abort file, so the next start recovers as after a crash (scans the log and
    // cuts its tail) instead of trusting that every write completed.
    let status = broker.proc_.terminate(std::time::Duration::from_secs(30));
    assert!(!status.success(), "a stop after a failed write exits 0");
    let dir = broker.proc_.dir.clone();
    assert!(
        dir.join("store/abort").exists(),
        "abort file removed after a failed write: {}",
        broker.proc_.log_tail(20)
    );
    // Restarted without the fault: every acknowledged send is there, in order (the failed
    // batch's record may be too: it was written, only its fdatasync was refused), and sends
    // are SEND_OK again.
    let conf = broker.conf.to_str().unwrap().to_string();
    let mut again = support::Proc::spawn(
        "mqbroker-restart",
        support::BROKER_BIN,
        &["-c", &conf],
        &dir,
    );
    support::wait_port(&mut again, broker.port, std::time::Duration::from_secs(20));
    let mut c = Client::connect(broker.port);
    let r = c.call(send(ok + 10));
    assert_eq!(r.code, 0, "send after the restart: {r:?}");
    let p = c.call(pull_request("FaultGroup", TOPIC, 0));
    assert_eq!(p.code, 0, "pull after the restart: {p:?}");
    let got: Vec<String> = record_bodies(&p.body)
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(got[..ok], want[..], "{got:?}");
    let rest: Vec<&str> = got[ok..].iter().map(String::as_str).collect();
    let failed_body = format!("fault-body-{ok}");
    let new_body = format!("fault-body-{}", ok + 10);
    assert!(
        rest == [new_body.as_str()] || rest == [failed_body.as_str(), new_body.as_str()],
        "after the acknowledged sends: {rest:?}"
    );
    again.assert_alive();
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
