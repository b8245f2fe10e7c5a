//! A slave that is far behind catches up without stalling the master's other slave or its
//! producers (issue #5 item 2): a SYNC_MASTER holds a few hundred MiB written with one slave
//! attached; a second slave starts on an empty store and copies all of it while a producer
//! keeps sending through the master. Every send in that time is acknowledged (SEND_OK: the
//! first slave kept reporting within `syncFlushTimeout`), and the new slave ends with the
//! master's queues.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{
    free_broker_port, free_port, ha_broker_conf, namesrv_conf, request, send_message_fields,
    Server, TestDir,
};

const TOPIC: &str = "CatchUpT";
const QUEUES: u32 = 4;

fn send(addr: &str, i: u64) -> i64 {
    let props = format!("KEYS\u{1}c-{i}\u{2}WAIT\u{1}true");
    let q = (i % u64::from(QUEUES)).to_string();
    let ext = send_message_fields("catch_up_pg", TOPIC, &q, "1700000000000", &props);
    request(addr, 10, &ext, format!("catch-up-{i}").as_bytes()).map_or(-1, |r| r.code)
}

/// GET_MAX_OFFSET (30) of every queue of the topic.
fn max_offsets(addr: &str) -> Vec<Option<u64>> {
    (0..QUEUES)
        .map(|q| {
            let q = q.to_string();
            request(addr, 30, &[("topic", TOPIC), ("queueId", q.as_str())], b"")
                .ok()
                .filter(|r| r.code == 0)
                .and_then(|r| r.ext.get("offset").and_then(|o| o.parse().ok()))
        })
        .collect()
}

#[test]
fn a_slave_far_behind_catches_up_while_sync_master_sends_go_on() {
    let dir = TestDir::new("ha-catch-up");
    let ns = free_port();
    let (mp, s1, s2) = (free_broker_port(), free_broker_port(), free_broker_port());
    let nsc = namesrv_conf(&dir, ns);
    let extra = "flushDiskType=ASYNC_FLUSH\nsyncFlushTimeout=3000\nmapedFileSizeCommitLog=33554432";
    let mc = ha_broker_conf(&dir, "master", 0, "SYNC_MASTER", mp, ns, extra);
    let s1c = ha_broker_conf(&dir, "slave-1", 1, "SLAVE", s1, ns, extra);
    let s2c = ha_broker_conf(&dir, "slave-2", 2, "SLAVE", s2, ns, extra);
    let (nsx, bx) = (
        env!("CARGO_BIN_EXE_mqnamesrv"),
        env!("CARGO_BIN_EXE_mqbroker"),
    );
    let start = |name: &'static str, exe: &str, conf: &PathBuf| {
        let mut s = Server::new(
            name,
            exe,
            vec!["-c".into(), conf.display().to_string()],
            &dir.path,
        );
        s.spawn();
        s
    };
    let _ns = start("ns", nsx, &nsc);
    sleep(Duration::from_millis(300));
    let master = start("master", bx, &mc);
    sleep(Duration::from_millis(500));
    let slave1 = start("slave-1", bx, &s1c);
    let maddr = format!("127.0.0.1:{mp}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while send(&maddr, 0) != 0 {
        assert!(
            Instant::now() < deadline,
            "no SEND_OK\n{}\n{}",
            master.log_tail(),
            slave1.log_tail()
        );
        sleep(Duration::from_millis(200));
    }

    // A few hundred MiB through the master (and slave 1) with mqbench: 4 KiB messages.
    let out = Command::new(env!("CARGO_BIN_EXE_mqbench"))
        .args([
            "run",
            "--namesrv",
            &format!("127.0.0.1:{ns}"),
            "--topic",
            TOPIC,
            "--queues",
            "4",
            "--producers",
            "16",
            "--size",
            "4096",
            "--closed-loop",
            "--rate",
            "0",
            "--duration",
            "4",
            "--warmup",
            "0",
            "--consumers",
            "0",
            "--skip-limits",
            "--quiet",
            "--json",
            &dir.file("fill.json").display().to_string(),
        ])
        .env("HOME", &dir.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mqbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fill: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.file("fill.json")).unwrap()).unwrap();
    let filled = fill["counts"]["acked"].as_u64().unwrap_or(0) * 4096;
    assert!(
        filled > 100 << 20,
        "only {filled} bytes of bodies to fill the log"
    );

    // The empty slave copies it all while a producer sends through the master.
    let t0 = Instant::now();
    let slave2 = start("slave-2", bx, &s2c);
    let s2addr = format!("127.0.0.1:{s2}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut sent = 0u64;
    let mut caught_up = None;
    while caught_up.is_none() || sent < 100 {
        sent += 1;
        let code = send(&maddr, sent);
        assert_eq!(
            code,
            0,
            "send {sent} while slave 2 catches up ({:?} in)\n{}\n{}\n{}",
            t0.elapsed(),
            master.log_tail(),
            slave1.log_tail(),
            slave2.log_tail()
        );
        if caught_up.is_none() && sent.is_multiple_of(20) {
            let m = max_offsets(&maddr);
            if m.iter().all(Option::is_some) && max_offsets(&s2addr) == m {
                caught_up = Some(t0.elapsed());
            }
        }
        assert!(
            Instant::now() < deadline,
            "slave 2 never caught up: master {:?}, slave 2 {:?}\n{}",
            max_offsets(&maddr),
            max_offsets(&s2addr),
            slave2.log_tail()
        );
    }
    eprintln!(
        "slave 2 copied {} MiB of bodies in {:?} while {sent} SYNC_MASTER sends were all acknowledged",
        filled >> 20,
        caught_up.unwrap_or_default()
    );
    drop(slave2);
    drop(slave1);
    drop(master);
}
