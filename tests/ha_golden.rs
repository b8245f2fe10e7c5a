//! The slave's side of the recorded Java 4.3.1 master/slave conversation (`slave.jsonl`): the
//! metadata-sync requests a shardmq slave sends are byte for byte the Java slave's but for the
//! `version` field (codes 21 on
//! the master's VIP port, 43, 45, 201 on its main port, no header fields), and the HA stream's
//! heartbeat header is upstream's.

#![allow(clippy::unwrap_used)] // reason: test code

mod recordings;

use shardmq::remoting::frame::encode_to_bytes;
use shardmq::remoting::RemotingCommand;

#[test]
fn slave_sync_requests_match_the_java_slave() {
    let records = recordings::load("slave.jsonl");
    let mut seen = Vec::new();
    for r in &records {
        let peer = r["peer"].as_str().unwrap_or("");
        if r["kind"] != "frame" || r["dir"] != "request" || !peer.starts_with("slave->master") {
            continue;
        }
        let code = i32::try_from(r["code"].as_i64().unwrap()).unwrap();
        let opaque = i32::try_from(r["opaque"].as_i64().unwrap()).unwrap();
        let mut cmd = RemotingCommand::request(code, opaque);
        // Our requests say version 409 (4.9 level); the recording's client was 4.3.1 (275).
        assert_eq!(cmd.version, 409);
        cmd.version = 275;
        let ours = encode_to_bytes(&cmd).unwrap();
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, r["frame_hex"].as_str().unwrap(), "request {code}");
        let vip = peer.ends_with("-vip");
        seen.push((code, vip));
    }
    assert_eq!(
        seen,
        vec![(21, true), (43, false), (45, false), (201, false)],
        "the Java slave's sync round"
    );
    // The master's heartbeat transfer after 2525 bytes, as recorded.
    let hb = records
        .iter()
        .find(|r| r["kind"] == "raw" && r["len"] == 12 && r["stream_offset"] == 2549)
        .unwrap();
    let ours: String = shardmq::ha::encode_transfer_header(2525, 0)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ours, hb["hex"].as_str().unwrap());
}
