//! End-to-end tests with the pure JavaScript client ali-ons against `mqnamesrv` + a SYNC_FLUSH
//! master `mqbroker`. ali-ons never auto-creates topics, so each test creates its topic first
//! with UPDATE_AND_CREATE_TOPIC. Needs `scripts/setup-clients.sh` (tests fail, not skip).

mod common;

use common::*;

#[test]
fn js_two_groups_each_get_every_message() {
    scenario_two_groups(NODE, "js_groups");
}

#[test]
fn js_compressed_bodies_round_trip() {
    scenario_compressed_bodies(NODE, "js_big");
}

#[test]
fn js_consumer_resumes_from_committed_offset() {
    scenario_resume(NODE, "js_resume");
}

#[test]
fn js_kill9_during_sync_flush_sends_keeps_every_acked_message() {
    scenario_kill9(NODE, "js_kill9");
}

/// Messages produced by the Python (C++) client are consumed by ali-ons and vice versa.
#[test]
fn js_and_python_interoperate() {
    let mut c = Cluster::start("js_interop", Flush::Sync);
    let topic = "interop_topic";
    c.create_topic(topic, 4);
    let n = (e2e_count() / 10).max(10);
    let mut sent = acked_indexes(&c.produce(PYTHON, topic, 0, n, &[]));
    sent.extend(acked_indexes(&c.produce(NODE, topic, n, n, &[])));
    let expect = sent.len().to_string();
    for (p, g) in [(NODE, "js"), (PYTHON, "py")] {
        let got = c.consume(p, topic, g, &["--expect", &expect, "--idle-timeout", "60"]);
        assert_complete(g, &check_received(&sent, &got, "k-", TAG, Some(PROP), BODY));
    }
}
