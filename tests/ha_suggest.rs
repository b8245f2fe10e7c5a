//! Reading from a slave when the master suggests it (issue #5 item 5; spec remoting.md §8.4,
//! ha.md §7). A master with `slaveReadEnable=true` and `accessMessageInMemoryMaxRatio=0` (so any
//! lag counts as "no longer in memory", without filling 40 % of RAM) answers a lagging pull with
//! `suggestWhichBrokerId` = the group's `whichBrokerWhenConsumeSlowly`, a caught-up one with the
//! group's `brokerId`; a master without `slaveReadEnable` always answers 0. Then a real client
//! (rocketmq 0.4.4's PullConsumer, C++ core) reads the topic and follows the suggestion: the
//! slave's log shows it served that client's pulls.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{free_broker_port, free_port, read_jsonl, request, spawn_client, Client, TestDir};

const TOPIC: &str = "SuggestT";
/// The topic of the broker without `slaveReadEnable` (another name: the client reads TOPIC).
const PLAIN_TOPIC: &str = "SuggestPlain";
/// Messages per queue: more than one pull (32) returns, so a reader lags after its first pull.
const PER_QUEUE: u64 = 100;
const QUEUES: u32 = 2;

/// One process; killed when the test ends, also by a panic.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    log_dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(dir: &TestDir, name: &str, exe: &str, conf: &Path) -> Proc {
        let log = dir.file(&format!("{name}.log"));
        let out = fs::File::create(&log).unwrap();
        let log_dir = dir.path.join(format!("logs-{name}"));
        let child = Command::new(exe)
            .args(["-c", &conf.display().to_string()])
            .env("HOME", &dir.path)
            .env("SHARDMQ_LOG_DIR", &log_dir)
            .env("RUST_LOG", "info,shardmq::broker::handlers::pull=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Proc {
            name: name.to_string(),
            child,
            log,
            log_dir,
        }
    }

    /// The log file (no colours), all days.
    fn file_log(&self) -> String {
        let mut text = String::new();
        for e in fs::read_dir(&self.log_dir).into_iter().flatten().flatten() {
            text.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
        }
        text
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("----- {} -----\n{}\n", self.name, lines[from..].join("\n"))
    }
}

struct Setup {
    // Processes first: they are killed before the directory is removed.
    procs: Vec<Proc>,
    ns: u16,
    master: String,
    slave: String,
    plain: String,
    dir: TestDir,
}

impl Setup {
    fn logs(&self) -> String {
        self.procs.iter().map(Proc::tail).collect()
    }
}

fn wait_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never opened");
        sleep(Duration::from_millis(50));
    }
}

fn broker_conf(dir: &TestDir, ns: u16, name: &str, port: u16, extra: &str) -> PathBuf {
    let store = dir.path.join(name);
    let p = dir.file(&format!("{name}.properties"));
    fs::write(
        &p,
        format!(
            "listenPort={port}\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
             namesrvAddr=127.0.0.1:{ns}\nstorePathRootDir={}\nstorePathCommitLog={}/commitlog\n\
             shardCount=2\nmapedFileSizeCommitLog=1048576\nflushDiskType=ASYNC_FLUSH\n\
             diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n\
             accessMessageInMemoryMaxRatio=0\n{extra}",
            store.display(),
            store.display()
        ),
    )
    .unwrap();
    p
}

fn create_topic(addr: &str, topic: &str) {
    let q = QUEUES.to_string();
    let ext = [
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("readQueueNums", q.as_str()),
        ("writeQueueNums", q.as_str()),
        ("perm", "6"),
        ("topicFilterType", "SINGLE_TAG"),
        ("topicSysFlag", "0"),
        ("order", "false"),
    ];
    let r = request(addr, 17, &ext, &[]).unwrap();
    assert_eq!(r.code, 0, "create topic on {addr}: {:?}", r.remark);
}

fn send(addr: &str, topic: &str, q: u32, i: u64) {
    let props = format!("TAGS\u{1}TagA\u{2}seq\u{1}{i}\u{2}WAIT\u{1}true");
    let qs = q.to_string();
    let ext = [
        ("producerGroup", "suggest_p"),
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", qs.as_str()),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", props.as_str()),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ];
    let r = request(addr, 10, &ext, format!("m-{i}").as_bytes()).unwrap();
    assert_eq!(r.code, 0, "send {i} to {addr}: {:?}", r.remark);
}

/// PULL_MESSAGE with an inline subscription and no suspension: (code, suggestWhichBrokerId,
/// nextBeginOffset).
fn pull(addr: &str, group: &str, q: u32, offset: u64, max: u32) -> (i64, String, u64) {
    pull_topic(addr, TOPIC, group, q, offset, max)
}

fn pull_topic(
    addr: &str,
    topic: &str,
    group: &str,
    q: u32,
    offset: u64,
    max: u32,
) -> (i64, String, u64) {
    let (qs, os, ms) = (q.to_string(), offset.to_string(), max.to_string());
    let ext = [
        ("consumerGroup", group),
        ("topic", topic),
        ("queueId", qs.as_str()),
        ("queueOffset", os.as_str()),
        ("maxMsgNums", ms.as_str()),
        ("sysFlag", "4"),
        ("commitOffset", "0"),
        ("suspendTimeoutMillis", "0"),
        ("subscription", "*"),
        ("subVersion", "0"),
    ];
    let r = request(addr, 11, &ext, &[]).unwrap();
    let next = r
        .ext
        .get("nextBeginOffset")
        .map_or(0, |n| n.parse().unwrap());
    let suggest = r
        .ext
        .get("suggestWhichBrokerId")
        .cloned()
        .unwrap_or_default();
    (r.code, suggest, next)
}

fn start() -> Setup {
    let dir = TestDir::new("ha-suggest");
    let ns = free_port();
    let (mp, sp, pp) = (free_broker_port(), free_broker_port(), free_broker_port());
    let nsc = dir.file("ns.properties");
    fs::write(
        &nsc,
        format!(
            "listenPort={ns}\nkvConfigPath={}/kv.json\n",
            dir.path.display()
        ),
    )
    .unwrap();
    let mc = broker_conf(
        &dir,
        ns,
        "master",
        mp,
        "brokerName=broker-a\nbrokerId=0\nbrokerRole=ASYNC_MASTER\nslaveReadEnable=true\n",
    );
    let sc = broker_conf(
        &dir,
        ns,
        "slave",
        sp,
        "brokerName=broker-a\nbrokerId=1\nbrokerRole=SLAVE\nslaveReadEnable=true\n",
    );
    let pc = broker_conf(
        &dir,
        ns,
        "plain",
        pp,
        "brokerName=broker-p\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n",
    );
    let mut s = Setup {
        procs: Vec::new(),
        ns,
        master: format!("127.0.0.1:{mp}"),
        slave: format!("127.0.0.1:{sp}"),
        plain: format!("127.0.0.1:{pp}"),
        dir,
    };
    let (nsx, bx) = (
        env!("CARGO_BIN_EXE_mqnamesrv"),
        env!("CARGO_BIN_EXE_mqbroker"),
    );
    s.procs.push(Proc::start(&s.dir, "namesrv", nsx, &nsc));
    wait_port(&format!("127.0.0.1:{ns}"));
    s.procs.push(Proc::start(&s.dir, "master", bx, &mc));
    s.procs.push(Proc::start(&s.dir, "plain", bx, &pc));
    wait_port(&s.master);
    wait_port(&s.plain);
    // Topic and messages before the slave starts: its first metadata sync (3 s after start)
    // then brings the topic, and replication brings the messages.
    for (addr, topic) in [(&s.master, TOPIC), (&s.plain, PLAIN_TOPIC)] {
        create_topic(addr, topic);
        for q in 0..QUEUES {
            for i in 0..PER_QUEUE {
                send(addr, topic, q, u64::from(q) * PER_QUEUE + i);
            }
        }
    }
    s.procs.push(Proc::start(&s.dir, "slave", bx, &sc));
    wait_port(&s.slave);
    // The slave serves every message of both queues.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = (0..QUEUES).all(|q| {
            let (code, _, next) = pull(&s.slave, "suggest_probe", q, PER_QUEUE - 1, 32);
            code == 0 && next == PER_QUEUE
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slave never caught up\n{}",
            s.logs()
        );
        sleep(Duration::from_millis(200));
    }
    s
}

#[test]
fn lagging_consumers_are_sent_to_the_slave_and_a_real_client_follows() {
    let s = start();
    let (m, g) = (s.master.as_str(), "suggest_g");

    // 1. The rule on the wire (default group: brokerId 0, whichBrokerWhenConsumeSlowly 1).
    for q in 0..QUEUES {
        // One message of PER_QUEUE: the rest of the shard's log lies behind -> the slave.
        assert_eq!(pull(m, g, q, 0, 1), (0, "1".into(), 1), "q{q} lagging");
        // Up to the end of the queue, which is alone in its shard: caught up -> brokerId.
        assert_eq!(pull(m, g, q, PER_QUEUE - 32, 32).1, "0", "q{q} caught up");
        // Nothing read: never slow.
        assert_eq!(pull(m, g, q, PER_QUEUE, 32), (19, "0".into(), PER_QUEUE));
    }
    // The group's own ids are used.
    let body = r#"{"groupName":"suggest_custom","brokerId":1,"whichBrokerWhenConsumeSlowly":2,
        "consumeEnable":true,"consumeFromMinEnable":true,"consumeBroadcastEnable":true,
        "retryQueueNums":1,"retryMaxTimes":16,"notifyConsumerIdsChangedEnable":true}"#;
    let r = request(m, 200, &[], body.as_bytes()).unwrap();
    assert_eq!(r.code, 0, "create group: {:?}", r.remark);
    assert_eq!(pull(m, "suggest_custom", 0, 0, 1).1, "2");
    assert_eq!(pull(m, "suggest_custom", 0, PER_QUEUE - 1, 32).1, "1");
    // Without slaveReadEnable: always the master, however far behind.
    assert_eq!(
        pull_topic(&s.plain, PLAIN_TOPIC, g, 0, 0, 1),
        (0, "0".into(), 1)
    );
    assert_eq!(pull_topic(&s.plain, PLAIN_TOPIC, g, 1, 0, 1).1, "0");
    // The slave applies the same rule to its own copy of the log, and a pull beyond its data
    // is retried (20), never moved, with the group's brokerId.
    assert_eq!(pull(&s.slave, g, 0, 0, 1), (0, "1".into(), 1));
    assert_eq!(pull(&s.slave, g, 0, PER_QUEUE - 1, 32).1, "0");
    let (code, suggest, next) = pull(&s.slave, g, 0, PER_QUEUE + 50, 32);
    assert_eq!((code, suggest.as_str(), next), (20, "0", PER_QUEUE + 50));

    // 2. A real client: rocketmq 0.4.4's PullConsumer reads both queues from offset 0. Its
    // first pull of a queue goes to the master, which sends it to broker 1 (the slave).
    let out = s.dir.file("pull.jsonl");
    let (o, ns, total) = (
        out.display().to_string(),
        format!("127.0.0.1:{}", s.ns),
        (u64::from(QUEUES) * PER_QUEUE).to_string(),
    );
    let args = [
        "--namesrv",
        ns.as_str(),
        "--topic",
        TOPIC,
        "--group",
        "pull_g",
        "--expect",
        total.as_str(),
        "--max-seconds",
        "60",
        "--out",
        o.as_str(),
    ];
    let run = spawn_client(&s.dir, Client::Python44, "pull_consumer.py", &args)
        .wait(Duration::from_secs(90));
    let seqs: BTreeSet<u64> = read_jsonl(&out)
        .iter()
        .filter_map(|v| v["props"]["seq"].as_str().and_then(|x| x.parse().ok()))
        .collect();
    assert!(
        run.status.success(),
        "pull consumer: {} of {total}: {}\n{}",
        seqs.len(),
        run.stderr,
        s.logs()
    );
    assert_eq!(seqs.len() as u64, u64::from(QUEUES) * PER_QUEUE);
    // The pulls of the client's group each broker answered (its debug log lines).
    let answered = |name: &str| -> Vec<String> {
        let p = s.procs.iter().find(|p| p.name == name).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = p
                .file_log()
                .lines()
                .filter(|l| l.contains("pull answered") && l.contains("group=pull_g"))
                .map(str::to_string)
                .collect();
            if !lines.is_empty() || Instant::now() > deadline {
                return lines;
            }
            sleep(Duration::from_millis(100));
        }
    };
    let (on_master, on_slave) = (answered("master"), answered("slave"));
    // Per queue: the first pull on the master (32 of 100: lagging, suggests 1), the next one
    // (offset 32) on the slave, which serves until the client has caught up.
    for q in 0..QUEUES {
        let first = format!("queue={q} offset=0 code=0 suggest=1");
        let next = format!("queue={q} offset=32 code=0");
        assert!(
            on_master.iter().any(|l| l.contains(&first))
                && on_slave.iter().any(|l| l.contains(&next)),
            "q{q}: master answered {on_master:#?}\nslave answered {on_slave:#?}\n{}",
            s.logs()
        );
    }
}
