//! A slave started on an empty store with another shard count than its master adopts the
//! master's count (persisted), restarts itself and replicates; SYNC_MASTER sends then succeed.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{free_broker_port, free_port, request, TestDir};

/// Kills the processes when the test ends, also by a panic.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn conf(dir: &TestDir, name: &str, body: &str) -> String {
    let p = dir.file(name);
    fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn empty_slave_adopts_the_masters_shard_count() {
    let dir = TestDir::new("ha-shards");
    let ns = free_port();
    let (mp, sp) = (free_broker_port(), free_broker_port());
    let nsc = conf(
        &dir,
        "ns.properties",
        &format!(
            "listenPort={ns}\nkvConfigPath={}/kv.json\n",
            dir.path.display()
        ),
    );
    let broker = |name: &str, id: u32, role: &str, port: u16, shards: u32| {
        let store = dir.path.join(name);
        conf(
            &dir,
            &format!("{name}.properties"),
            &format!(
                "brokerName=b\nbrokerId={id}\nbrokerRole={role}\nlistenPort={port}\n\
                 brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nnamesrvAddr=127.0.0.1:{ns}\n\
                 storePathRootDir={}\nstorePathCommitLog={}/commitlog\nshardCount={shards}\n\
                 mapedFileSizeCommitLog=1048576\n\
                 diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n",
                store.display(),
                store.display()
            ),
        )
    };
    let (mc, sc) = (
        broker("master", 0, "SYNC_MASTER", mp, 2),
        broker("slave", 1, "SLAVE", sp, 1),
    );
    let spawn = |exe: &str, c: &str, log: &str| {
        let log = fs::File::create(dir.file(log)).unwrap();
        Command::new(exe)
            .args(["-c", c])
            .env("HOME", &dir.path)
            .env("SHARDMQ_LOG_DIR", dir.path.join("logs"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    let mut procs = Procs(vec![spawn(env!("CARGO_BIN_EXE_mqnamesrv"), &nsc, "ns.log")]);
    sleep(Duration::from_millis(300));
    procs
        .0
        .push(spawn(env!("CARGO_BIN_EXE_mqbroker"), &mc, "master.log"));
    sleep(Duration::from_millis(500));
    procs
        .0
        .push(spawn(env!("CARGO_BIN_EXE_mqbroker"), &sc, "slave.log"));
    let master = format!("127.0.0.1:{mp}");
    let props = "TAGS\u{1}A\u{2}WAIT\u{1}true";
    let ext = [
        ("producerGroup", "pg"),
        ("topic", "ShardsT"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", "-1"),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", props),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ];
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut ok = 0;
    // Every queue (both master shards) must be acknowledged: both slave shards replicate.
    for q in 0..4u32 {
        let qs = q.to_string();
        let mut e = ext;
        e[4] = ("queueId", qs.as_str());
        loop {
            let code = request(&master, 10, &e, b"x").map_or(-1, |r| r.code);
            if code == 0 {
                ok += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "queue {q}: code {code}\n{}",
                fs::read_to_string(dir.file("slave.log")).unwrap_or_default()
            );
            sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(ok, 4);
    let log = fs::read_to_string(dir.file("slave.log")).unwrap();
    assert!(log.contains("adopting the master's shard count"), "{log}");
    let persisted = fs::read_to_string(dir.path.join("slave/config/shardmq.json")).unwrap();
    assert!(persisted.contains("\"shardCount\":2"), "{persisted}");
    drop(procs);
}
