//! SYNC_MASTER's wait for its slave, process by process (issue #5 item 3 and its proof):
//! - the slave stopped (SIGSTOP: its connection stays open, it only stops reporting): a send
//!   is answered FLUSH_SLAVE_TIMEOUT (12) after `syncFlushTimeout`, the message stored on the
//!   master (upstream 4.3 answers the same and keeps the message);
//! - the slave continued: the very next send is SEND_OK, and the message sent while it was
//!   stopped is on the slave (VIEW_MESSAGE_BY_ID on the slave, same body);
//! - the slave killed: SLAVE_NOT_AVAILABLE (11) as soon as the master saw its connection close;
//! - the slave restarted after kill -9: it resumes from its own write end, past every message
//!   it had acknowledged (its log names the offset), not from 0, and sends succeed again.
//!
//! First the slave takes the master's metadata as upstream's does (issue #5 item 4): a
//! subscription group created on the master, the master's topic, and its delay offsets (a
//! `delayOffset.json` carried over from an upstream broker: shardmq keeps and serves it).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{
    free_broker_port, free_port, ha_broker_conf, namesrv_conf, request, send_message_fields,
    Response, Server, TestDir,
};

const TOPIC: &str = "SyncWaitT";
const GROUP: &str = "sync_wait_group";
/// An upstream broker's delay offsets (level -> offset), as its `delayOffset.json` holds them.
const DELAY_OFFSETS: &str = "{\"offsetTable\":{1:17,3:4}}";
/// The master's `syncFlushTimeout` (upstream's default is 5 s; the test's requests time out at 5).
const SYNC_FLUSH_TIMEOUT_MS: u64 = 1500;

/// A server with its own file-log directory (no colours: its fields are read back).
fn server(dir: &TestDir, name: &'static str, exe: &str, conf: &Path) -> Server {
    let mut s = Server::new(
        name,
        exe,
        vec!["-c".into(), conf.display().to_string()],
        &dir.path,
    );
    s.envs.push((
        "SHARDMQ_LOG_DIR".into(),
        dir.path.join(format!("logs-{name}")).display().to_string(),
    ));
    s.spawn();
    s
}

/// The file log of `server` (all days).
fn file_log(dir: &TestDir, name: &str) -> String {
    let mut text = String::new();
    for e in fs::read_dir(dir.path.join(format!("logs-{name}")))
        .into_iter()
        .flatten()
        .flatten()
    {
        text.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
    }
    text
}

/// One send of `body` to queue 0 with a JSON header, WAIT=true.
fn try_send(addr: &str, body: &str) -> Result<Response, String> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let props = format!("KEYS\u{1}{body}\u{2}WAIT\u{1}true");
    let ext = send_message_fields("sync_wait_pg", TOPIC, "0", &ts, &props);
    request(addr, 10, &ext, body.as_bytes())
}

fn send(addr: &str, body: &str) -> Response {
    try_send(addr, body).unwrap_or_else(|e| panic!("send {body}: {e}"))
}

/// The commit-log offset in an offset message id (hex: 4 bytes address, 4 port, 8 offset).
fn msg_offset(r: &Response) -> u64 {
    let id = r.ext.get("msgId").expect("msgId in the send response");
    assert_eq!(id.len(), 32, "offset message id {id}");
    u64::from_str_radix(&id[16..], 16).unwrap()
}

/// The `from=` offsets of the slave's "replicating from the master" lines, oldest first.
fn replication_starts(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("replicating from the master"))
        .filter_map(|l| {
            let rest = &l[l.find("from=")? + 5..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn sync_master_times_out_on_a_stopped_slave_and_a_restarted_slave_resumes_from_its_own_end() {
    let dir = TestDir::new("ha-sync-wait");
    let ns = free_port();
    let (mp, sp) = (free_broker_port(), free_broker_port());
    let nsc = namesrv_conf(&dir, ns);
    let extra = format!("flushDiskType=ASYNC_FLUSH\nsyncFlushTimeout={SYNC_FLUSH_TIMEOUT_MS}\nmapedFileSizeCommitLog=4194304");
    let mc = ha_broker_conf(&dir, "master", 0, "SYNC_MASTER", mp, ns, &extra);
    let sc = ha_broker_conf(&dir, "slave", 1, "SLAVE", sp, ns, &extra);
    fs::create_dir_all(dir.path.join("master/config")).unwrap();
    fs::write(
        dir.path.join("master/config/delayOffset.json"),
        DELAY_OFFSETS,
    )
    .unwrap();
    let (nsx, bx) = (
        env!("CARGO_BIN_EXE_mqnamesrv"),
        env!("CARGO_BIN_EXE_mqbroker"),
    );
    let _ns = server(&dir, "ns", nsx, &nsc);
    sleep(Duration::from_millis(300));
    let master = server(&dir, "master", bx, &mc);
    sleep(Duration::from_millis(500));
    let mut slave = server(&dir, "slave-1", bx, &sc);
    let (maddr, saddr) = (format!("127.0.0.1:{mp}"), format!("127.0.0.1:{sp}"));
    let logs = |s: &Server| format!("{}\n{}", master.log_tail(), s.log_tail());

    // The slave is connected once a send is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !try_send(&maddr, "warm-up").is_ok_and(|r| r.code == 0) {
        assert!(Instant::now() < deadline, "no SEND_OK\n{}", logs(&slave));
        sleep(Duration::from_millis(200));
    }

    // Metadata: a group made on the master, the master's topic and delay offsets reach the
    // slave by its periodic sync (every 10 s, the first 3 s after start).
    let group = format!(
        "{{\"brokerId\":0,\"consumeBroadcastEnable\":true,\"consumeEnable\":true,\
         \"consumeFromMinEnable\":true,\"groupName\":\"{GROUP}\",\
         \"notifyConsumerIdsChangedEnable\":true,\"retryMaxTimes\":7,\"retryQueueNums\":1,\
         \"whichBrokerWhenConsumeSlowly\":1}}"
    );
    let made = request(&maddr, 200, &[], group.as_bytes()).unwrap();
    assert_eq!(
        made.code, 0,
        "create the group on the master: {:?}",
        made.remark
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = |code| {
            request(&saddr, code, &[], b"")
                .ok()
                .filter(|r| r.code == 0)
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default()
        };
        let (groups, topics, delay) = (body(201), body(21), body(45));
        let synced: serde_json::Value = serde_json::from_str(&groups).unwrap_or_default();
        let g = &synced["subscriptionGroupTable"][GROUP];
        let group_synced = g["retryMaxTimes"] == 7 && g["whichBrokerWhenConsumeSlowly"] == 1;
        if group_synced && topics.contains(&format!("\"{TOPIC}\"")) && delay == DELAY_OFFSETS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slave metadata not synced: groups {groups}\ntopics {topics}\ndelay {delay}\n{}",
            logs(&slave)
        );
        sleep(Duration::from_millis(250));
    }

    // Stopped slave: FLUSH_SLAVE_TIMEOUT after syncFlushTimeout; the master kept the message.
    slave.signal(libc::SIGSTOP);
    let t = Instant::now();
    let stopped = send(&maddr, "while-stopped");
    let waited = t.elapsed();
    assert_eq!(stopped.code, 12, "FLUSH_SLAVE_TIMEOUT\n{}", logs(&slave));
    assert!(
        waited >= Duration::from_millis(SYNC_FLUSH_TIMEOUT_MS - 100),
        "answered after {waited:?}, before syncFlushTimeout"
    );
    let stopped_at = msg_offset(&stopped);
    let on_master = request(&maddr, 33, &[("offset", &stopped_at.to_string())], b"").unwrap();
    assert_eq!(on_master.code, 0, "the timed-out message is on the master");

    // Continued: the next send is acknowledged at once, and the slave holds the earlier one.
    slave.signal(libc::SIGCONT);
    let next = send(&maddr, "after-continue");
    assert_eq!(
        next.code,
        0,
        "SEND_OK once the slave reports\n{}",
        logs(&slave)
    );
    let on_slave = request(&saddr, 33, &[("offset", &stopped_at.to_string())], b"").unwrap();
    assert_eq!(
        on_slave.code, 0,
        "the slave has the message sent while it was stopped"
    );
    assert_eq!(
        on_slave.body, on_master.body,
        "the slave's record is the master's, byte for byte"
    );
    let mut last_acked = msg_offset(&next);
    for i in 0..20 {
        let r = send(&maddr, &format!("m-{i}"));
        assert_eq!(r.code, 0, "send m-{i}\n{}", logs(&slave));
        last_acked = msg_offset(&r);
    }

    // Killed: SLAVE_NOT_AVAILABLE once the master saw the connection close.
    slave.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut codes = Vec::new();
    loop {
        let code = send(&maddr, "no-slave").code;
        codes.push(code);
        if code == 11 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no SLAVE_NOT_AVAILABLE within 10 s of the slave's death: codes {codes:?}\n{}",
            master.log_tail()
        );
        sleep(Duration::from_millis(100));
    }
    // Before the master saw the close, a send could only time out waiting.
    assert!(codes.iter().all(|&c| c == 11 || c == 12), "{codes:?}");

    // Restarted after kill -9: it resumes from its own write end.
    let slave = server(&dir, "slave-2", bx, &sc);
    let deadline = Instant::now() + Duration::from_secs(30);
    while replication_starts(&file_log(&dir, "slave-2")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "slave not replicating\n{}",
            logs(&slave)
        );
        sleep(Duration::from_millis(100));
    }
    let from = replication_starts(&file_log(&dir, "slave-2"))[0];
    eprintln!(
        "timed out after {waited:?}; codes after the kill {codes:?}; resumed from {from}, last acked at {last_acked}"
    );
    assert!(
        from > last_acked,
        "the restarted slave resumed from {from}, not past its last acknowledged message at {last_acked}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while send(&maddr, "after-restart").code != 0 {
        assert!(
            Instant::now() < deadline,
            "no SEND_OK after the slave's restart\n{}",
            logs(&slave)
        );
        sleep(Duration::from_millis(200));
    }
}
