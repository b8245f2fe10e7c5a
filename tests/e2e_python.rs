//! End-to-end tests with the Python clients (rocketmq-client-python 0.5.0rc2 and rocketmq 0.4.4,
//! both wrapping the C++ client) against `mqnamesrv` + a SYNC_FLUSH master `mqbroker`.
//! Needs `scripts/setup-clients.sh` (tests fail, not skip, without it).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn python_two_groups_each_get_every_message() {
    scenario_two_groups(PYTHON, "py_groups");
}

#[test]
fn python_compressed_bodies_round_trip() {
    scenario_compressed_bodies(PYTHON, "py_big");
}

#[test]
fn python_consumer_resumes_from_committed_offset() {
    scenario_resume(PYTHON, "py_resume");
}

#[test]
fn python_kill9_during_sync_flush_sends_keeps_every_acked_message() {
    scenario_kill9(PYTHON, "py_kill9");
}

/// rocketmq 0.4.4 features: batch (SEND_MESSAGE with batch=1), async and oneway sends, and the
/// PullConsumer; then the 0.5.0rc2 push consumer and the pull consumer both see everything.
#[test]
fn python44_batch_async_oneway_and_pull_consumer() {
    let c = Cluster::start("py44", Flush::Sync);
    let topic = "py44_topic";
    let mut sent = Vec::new();
    let n = (e2e_count() / 5).max(10);
    let py44 = Programs {
        producer: (Client::Python44, "producer.py"),
        ..PYTHON
    };
    let mut start = 0;
    for mode in ["batch", "async", "oneway"] {
        let out = c.produce(
            py44,
            topic,
            start,
            n,
            &["--mode", mode, "--batch-size", "32"],
        );
        let acked = acked_indexes(&out);
        assert_eq!(
            acked.len() as u64,
            n,
            "{mode}: every send must be acknowledged (or issued)"
        );
        sent.extend(acked);
        start += n;
    }
    let expect = sent.len().to_string();
    let got = c.consume(
        PYTHON,
        topic,
        "push",
        &["--expect", &expect, "--idle-timeout", "60"],
    );
    assert_complete(
        "push",
        &check_received(&sent, &got, "k-", TAG, Some(PROP), BODY),
    );
    let out = c.dir.file("pull.jsonl");
    let (ns, o) = (c.namesrv_addr(), out.display().to_string());
    run_client_ok(
        &c,
        Client::Python44,
        "pull_consumer.py",
        &[
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--group",
            "pull",
            "--expect",
            &expect,
            "--prop",
            PROP.0,
            "--out",
            &o,
        ],
        Duration::from_secs(600),
    );
    let got = read_jsonl(&out);
    assert_complete(
        "pull",
        &check_received(&sent, &got, "k-", TAG, Some(PROP), BODY),
    );
}

/// The harness itself (no broker needed): body hashing and coverage accounting.
#[test]
fn harness_self_check() {
    assert_eq!(
        sha1_of_body("big-", 7, 20000),
        "82374b978f8c413f877f77e0ac6c9711e1665772"
    );
    let m = |i: u64| {
        serde_json::json!({"keys": format!("k-{i}"), "tags": TAG, "body_len": BODY,
            "body": format!("k-{i}|"), "props": {"seq": i.to_string(), "userProp": "v1"}})
    };
    let cov = check_received(
        &[1, 2, 3],
        &[m(1), m(1), m(3), m(9)],
        "k-",
        TAG,
        Some(PROP),
        BODY,
    );
    assert_eq!(cov.missing, vec![2]);
    assert_eq!(cov.unexpected, vec![9]);
    assert_eq!(cov.duplicates, 1);
}
