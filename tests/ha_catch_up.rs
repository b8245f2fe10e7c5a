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
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{free_broker_port, free_port, request, TestDir};

const TOPIC: &str = "CatchUpT";
const QUEUES: u32 = 4;

/// Killed when the test ends, also by a panic.
struct Proc(Child, PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn start(dir: &TestDir, name: &str, exe: &str, args: &[&str]) -> Proc {
        let log = dir.file(&format!("{name}.log"));
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(exe)
            .args(args)
            .env("HOME", &dir.path)
            .env("SHARDMQ_LOG_DIR", dir.path.join(format!("logs-{name}")))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Proc(child, log)
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.1).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn write_conf(dir: &TestDir, name: &str, body: &str) -> PathBuf {
    let p = dir.file(name);
    fs::write(&p, body).unwrap();
    p
}

fn send(addr: &str, i: u64) -> i64 {
    let props = format!("KEYS\u{1}c-{i}\u{2}WAIT\u{1}true");
    let q = (i % u64::from(QUEUES)).to_string();
    let ext = [
        ("producerGroup", "catch_up_pg"),
        ("topic", TOPIC),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", q.as_str()),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", props.as_str()),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ];
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
    let nsc = write_conf(
        &dir,
        "ns.properties",
        &format!(
            "listenPort={ns}\nkvConfigPath={}/kv.json\n",
            dir.path.display()
        ),
    );
    let broker = |name: &str, id: u32, role: &str, port: u16| {
        let store = dir.path.join(name);
        write_conf(
            &dir,
            &format!("{name}.properties"),
            &format!(
                "brokerClusterName=c\nbrokerName=b\nbrokerId={id}\nbrokerRole={role}\n\
                 flushDiskType=ASYNC_FLUSH\nlistenPort={port}\nbrokerIP1=127.0.0.1\n\
                 brokerIP2=127.0.0.1\nnamesrvAddr=127.0.0.1:{ns}\nstorePathRootDir={}\n\
                 storePathCommitLog={}/commitlog\nshardCount=1\n\
                 mapedFileSizeCommitLog=33554432\nsyncFlushTimeout=3000\n\
                 diskMaxUsedSpaceRatio=100\n\
                 diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n",
                store.display(),
                store.display()
            ),
        )
        .display()
        .to_string()
    };
    let (mc, s1c, s2c) = (
        broker("master", 0, "SYNC_MASTER", mp),
        broker("slave-1", 1, "SLAVE", s1),
        broker("slave-2", 2, "SLAVE", s2),
    );
    let (nsx, bx) = (
        env!("CARGO_BIN_EXE_mqnamesrv"),
        env!("CARGO_BIN_EXE_mqbroker"),
    );
    let _ns = Proc::start(&dir, "ns", nsx, &["-c", &nsc.display().to_string()]);
    sleep(Duration::from_millis(300));
    let master = Proc::start(&dir, "master", bx, &["-c", &mc]);
    sleep(Duration::from_millis(500));
    let slave1 = Proc::start(&dir, "slave-1", bx, &["-c", &s1c]);
    let maddr = format!("127.0.0.1:{mp}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while send(&maddr, 0) != 0 {
        assert!(
            Instant::now() < deadline,
            "no SEND_OK\n{}\n{}",
            master.tail(),
            slave1.tail()
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
    let slave2 = Proc::start(&dir, "slave-2", bx, &["-c", &s2c]);
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
            "send {sent} while slave 2 catches up ({:?} in)\n--- master\n{}\n--- slave 1\n{}\n--- slave 2\n{}",
            t0.elapsed(),
            master.tail(),
            slave1.tail(),
            slave2.tail()
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
            slave2.tail()
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
