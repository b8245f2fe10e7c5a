//! A master that comes back shorter than its slave (its last writes lost, as a power loss or a
//! `kill -9` with `haShipBeforeWrite` can do) and then writes other messages at those offsets:
//! the slave must notice from the epoch histories, cut its log back to where both agree, and
//! converge byte for byte, consume queues included (ARCHITECTURE 50). Offsets alone cannot
//! tell: without the histories the slave resumed at its own end and kept bytes the master
//! never had again.
//!
//! A master whose store was wiped (a new lineage) is not followed: the slave keeps its copy.
//!
//! The power loss is emulated with real processes and files: the master's store is copied
//! after a clean stop, the master restarts and writes more (the slave copies it), both are
//! killed, and the master's store is put back from the copy except for what a power loss keeps
//! (its fsynced epoch history, the abort marker).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{free_broker_port, free_port, request, TestDir};

const SHARDS: u32 = 2;
const QUEUES: u32 = 4;

/// One broker process and how to start it again; killed when the test ends.
struct Node {
    conf: String,
    log: PathBuf,
    root: PathBuf,
    port: u16,
    home: PathBuf,
    child: Option<Child>,
    /// Environment of the next start (e.g. `SHARDMQ_FAULTS`).
    env: Vec<(&'static str, String)>,
}

impl Node {
    fn new(dir: &TestDir, ns: u16, name: &str, id: u32, role: &str, extra: &str) -> Node {
        let port = free_broker_port();
        let root = dir.path.join(name);
        let conf = dir.file(&format!("{name}.properties"));
        fs::write(
            &conf,
            format!(
                "brokerName=b\nbrokerId={id}\nbrokerRole={role}\nlistenPort={port}\n\
                 brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nnamesrvAddr=127.0.0.1:{ns}\n\
                 storePathRootDir={r}\nstorePathCommitLog={r}/commitlog\nshardCount={SHARDS}\n\
                 mapedFileSizeCommitLog=1048576\n\
                 diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n{extra}",
                r = root.display()
            ),
        )
        .unwrap();
        Node {
            conf: conf.display().to_string(),
            log: dir.file(&format!("{name}.log")),
            root,
            port,
            home: dir.path.clone(),
            child: None,
            env: Vec::new(),
        }
    }

    /// Starts the broker and waits for its "boot success" line. Not only for the port: after
    /// a kill -9 the dead broker's listening socket goes on accepting for a moment (its
    /// io_uring is torn down after the reap, see `broker::start::check_ports_free`), and a
    /// request sent into it is reset (seen in CI).
    fn start(&mut self) {
        let booted = |log: &Path| {
            fs::read_to_string(log)
                .unwrap_or_default()
                .matches("boot success")
                .count()
        };
        let before = booted(&self.log);
        let exe = env!("CARGO_BIN_EXE_mqbroker");
        self.child = Some(spawn(exe, &self.conf, &self.home, &self.log, &self.env));
        let addr = self.addr();
        let deadline = Instant::now() + Duration::from_secs(30);
        while booted(&self.log) == before || std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{addr} never opened\n{}",
                self.tail()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (what `mqshutdown` sends) and wait for the clean exit.
    fn stop(&mut self) {
        let mut c = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let st = c.wait().unwrap();
        assert!(st.success(), "{st}\n{}", self.tail());
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `exe -c conf` with HOME at `home`, its output appended to `log`.
fn spawn(exe: &str, conf: &str, home: &Path, log: &Path, env: &[(&str, String)]) -> Child {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(exe)
        .args(["-c", conf])
        .env("HOME", home)
        .env("SHARDMQ_LOG_DIR", home.join("logs"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

/// An ASYNC_MASTER with `master_extra` properties and its ASYNC_FLUSH slave (not started).
fn pair(dir: &TestDir, ns: u16, master_extra: &str) -> (Node, Node) {
    let master = Node::new(dir, ns, "master", 0, "ASYNC_MASTER", master_extra);
    let ha = format!(
        "haMasterAddress=127.0.0.1:{}\nflushDiskType=ASYNC_FLUSH\n",
        master.port + 1
    );
    let slave = Node::new(dir, ns, "slave", 1, "SLAVE", &ha);
    (master, slave)
}

/// A nameserver on a free port, killed when dropped.
struct Namesrv(Child);

impl Drop for Namesrv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_namesrv(dir: &TestDir) -> (u16, Namesrv) {
    let ns = free_port();
    let ns_conf = dir.file("ns.properties");
    let text = format!(
        "listenPort={ns}\nkvConfigPath={}/kv.json\n",
        dir.path.display()
    );
    fs::write(&ns_conf, text).unwrap();
    let exe = env!("CARGO_BIN_EXE_mqnamesrv");
    let conf = ns_conf.display().to_string();
    let child = spawn(exe, &conf, &dir.path, &dir.file("ns.log"), &[]);
    (ns, Namesrv(child))
}

/// Sends `count` messages round-robin over the queues, bodies `<tag>-<i>` padded to `size`.
fn send(master: &str, tag: &str, count: u32, size: usize) {
    for i in 0..count {
        let mut body = format!("{tag}-{i}-").into_bytes();
        body.resize(size, tag.as_bytes()[0]);
        let r = send_one(master, i % QUEUES, &body).unwrap();
        assert_eq!(r.code, 0, "send {tag}-{i}: {:?}", r.remark);
    }
}

/// One SEND_MESSAGE (10) to queue `q` of the test topic.
fn send_one(master: &str, q: u32, body: &[u8]) -> Result<common::Response, String> {
    let q = q.to_string();
    let ext = [
        ("producerGroup", "pg"),
        ("topic", "DivT"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", q.as_str()),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", "TAGS\u{1}D\u{2}"),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ];
    request(master, 10, &ext, body)
}

/// A shard's commit log as one byte string, trailing zeros (unwritten space) trimmed.
fn shard_log(root: &Path, shard: u32) -> Vec<u8> {
    let dir = root.join("commitlog").join(shard.to_string());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    files.sort();
    let mut data = Vec::new();
    for f in files {
        data.extend(fs::read(f).unwrap_or_default());
    }
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    data.truncate(end);
    data
}

/// Waits until every shard of the slave holds exactly the master's log.
fn converge(master: &Node, slave: &Node, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lens: Vec<(usize, usize, bool)> = (0..SHARDS)
            .map(|s| {
                let (m, l) = (shard_log(&master.root, s), shard_log(&slave.root, s));
                (m.len(), l.len(), m == l)
            })
            .collect();
        if lens.iter().all(|&(m, _, eq)| eq && m > 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: (master bytes, slave bytes, equal) per shard {lens:?}\n--- slave\n{}\n--- master\n{}",
            slave.tail(),
            master.tail()
        );
        sleep(Duration::from_millis(200));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Kills the master and puts its store back as `snapshot` holds it, except what a power loss
/// keeps: the fsynced epoch histories and the abort marker.
fn lose_tail(master: &mut Node, snapshot: &Path) {
    master.kill9();
    let keep: Vec<(PathBuf, Vec<u8>)> = (0..SHARDS)
        .map(|s| PathBuf::from(format!("commitlog/{s}/ha-epochs")))
        .chain([PathBuf::from("abort")])
        .filter_map(|p| fs::read(master.root.join(&p)).ok().map(|b| (p, b)))
        .collect();
    assert_eq!(
        keep.len(),
        SHARDS as usize + 1,
        "epoch histories and abort file"
    );
    fs::remove_dir_all(&master.root).unwrap();
    copy_dir(snapshot, &master.root);
    for (p, b) in &keep {
        fs::write(master.root.join(p), b).unwrap();
    }
}

/// The queue's max offset as the broker at `addr` answers GET_MAX_OFFSET (30).
fn max_offset(addr: &str, q: u32) -> u64 {
    let qs = q.to_string();
    let r = request(
        addr,
        30,
        &[("topic", "DivT"), ("queueId", qs.as_str())],
        b"",
    )
    .unwrap();
    assert_eq!(r.code, 0, "{addr} queue {q}: {:?}", r.remark);
    r.ext["offset"].parse().unwrap()
}

#[test]
fn a_slave_ahead_of_its_restarted_master_cuts_back_and_converges() {
    let dir = TestDir::new("ha-diverge");
    let (ns, namesrv) = start_namesrv(&dir);
    let (mut master, mut slave) = pair(&dir, ns, "flushDiskType=ASYNC_FLUSH\n");
    master.start();
    slave.start();

    // A: copied; then the master stops cleanly and its store is kept as it is now.
    send(&master.addr(), "A", 40, 200);
    converge(&master, &slave, "after A");
    master.stop();
    let snapshot = dir.path.join("master-snapshot");
    copy_dir(&master.root, &snapshot);

    // B: a new master life writes more; the slave copies it.
    master.start();
    send(&master.addr(), "B", 40, 200);
    converge(&master, &slave, "after B");
    let slave_ends: Vec<usize> = (0..SHARDS)
        .map(|s| shard_log(&slave.root, s).len())
        .collect();

    // Power loss of the master: B is gone from its disk, its fsynced epoch history is not.
    slave.kill9();
    lose_tail(&mut master, &snapshot);

    // C: the master's third life writes other messages over and past where B was, before the
    // slave comes back (so the slave's end is no longer beyond the master's).
    master.start();
    send(&master.addr(), "C", 80, 333);
    for s in 0..SHARDS {
        let m = shard_log(&master.root, s);
        let l = shard_log(&slave.root, s);
        assert!(
            m.len() >= slave_ends[s as usize],
            "shard {s}: master not past the slave"
        );
        assert_ne!(
            m[..l.len()],
            l[..],
            "shard {s}: the logs must differ for this test"
        );
    }
    slave.start();
    converge(&master, &slave, "after C");
    for q in 0..QUEUES {
        assert_eq!(
            max_offset(&slave.addr(), q),
            max_offset(&master.addr(), q),
            "queue {q}: the slave's consume queue must hold A and C only"
        );
    }
    let total: u64 = (0..QUEUES).map(|q| max_offset(&master.addr(), q)).sum();
    assert_eq!(total, 120, "A and C (B was lost with the master's disk)");
    let log = fs::read_to_string(&slave.log).unwrap();
    assert!(log.contains("restarting to cut"), "{log}");
    assert!(log.contains("cutting the commit log back"), "{log}");

    // The same loss while the slave stays up: it reconnects at once, ahead of the master.
    master.stop();
    fs::remove_dir_all(&snapshot).unwrap();
    copy_dir(&master.root, &snapshot);
    master.start();
    send(&master.addr(), "D", 40, 150);
    converge(&master, &slave, "after D");
    let cuts = log.matches("cutting the commit log back").count();
    lose_tail(&mut master, &snapshot);
    master.start();
    send(&master.addr(), "E", 8, 100);
    converge(&master, &slave, "after E");
    let log = fs::read_to_string(&slave.log).unwrap();
    assert!(
        log.matches("cutting the commit log back").count() > cuts,
        "the slave was ahead: it must have cut\n{log}"
    );
    for q in 0..QUEUES {
        assert_eq!(max_offset(&slave.addr(), q), max_offset(&master.addr(), q));
    }
    let total: u64 = (0..QUEUES).map(|q| max_offset(&master.addr(), q)).sum();
    assert_eq!(total, 128, "A, C and E");

    // The master's store is wiped (another lineage) and it writes past the slave's end: the
    // slave must keep its copy, replicate nothing and say why.
    slave.kill9();
    master.kill9();
    let kept: Vec<Vec<u8>> = (0..SHARDS).map(|s| shard_log(&slave.root, s)).collect();
    fs::remove_dir_all(&master.root).unwrap();
    master.start();
    send(&master.addr(), "F", 200, 400);
    for s in 0..SHARDS {
        assert!(shard_log(&master.root, s).len() > kept[s as usize].len());
    }
    slave.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(&slave.log)
        .unwrap()
        .contains("is of lineage")
    {
        assert!(
            Instant::now() < deadline,
            "no lineage refusal\n{}",
            slave.tail()
        );
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_millis(1500));
    for s in 0..SHARDS {
        assert!(
            shard_log(&slave.root, s) == kept[s as usize],
            "shard {s}: the slave's copy changed"
        );
    }
    drop(slave);
    drop(master);
    drop(namesrv);
}

/// The real case behind `haShipBeforeWrite`: a SYNC_FLUSH master ships a batch when its write
/// is submitted; killed before the write reaches the device (held here by the
/// `write_delay_ms` fault), it comes back without the batch its slave already holds. No send
/// was acknowledged; the slave, still running, must cut the batch and follow the master. With
/// `haShipBeforeWrite=false` nothing reaches the slave before the write (checked: the test then
/// fails at "nothing shipped").
#[test]
fn a_batch_shipped_before_the_masters_write_is_cut_when_the_master_dies() {
    let dir = TestDir::new("ha-ship-kill");
    let (ns, namesrv) = start_namesrv(&dir);
    let sync = "flushDiskType=SYNC_FLUSH\nhaShipBeforeWrite=true\n";
    let (mut master, mut slave) = pair(&dir, ns, sync);
    master.env = vec![("SHARDMQ_FAULTS", "write_delay_ms=3000".to_string())];
    master.start();
    slave.start();
    // Both slave shards connected before the sends.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&master.log)
        .unwrap()
        .matches("slave connected for replication")
        .count()
        < SHARDS as usize
    {
        assert!(
            Instant::now() < deadline,
            "slave never connected\n{}",
            master.tail()
        );
        sleep(Duration::from_millis(50));
    }
    // One send per queue (both shards), each held in its shard's delayed write.
    let addr = master.addr();
    let senders: Vec<_> = (0..QUEUES)
        .map(|q| {
            let addr = addr.clone();
            std::thread::spawn(move || send_one(&addr, q, b"never acknowledged").map(|r| r.code))
        })
        .collect();
    // The slave gets the batches while the master's writes are held.
    let deadline = Instant::now() + Duration::from_secs(2);
    while (0..SHARDS).any(|s| shard_log(&slave.root, s).is_empty()) {
        assert!(
            Instant::now() < deadline,
            "nothing shipped before the write\n{}",
            slave.tail()
        );
        sleep(Duration::from_millis(20));
    }
    for s in 0..SHARDS {
        assert!(
            shard_log(&master.root, s).is_empty(),
            "shard {s}: written already"
        );
    }
    master.kill9();
    for t in senders {
        let got = t.join().unwrap();
        assert!(!matches!(got, Ok(0)), "a send was acknowledged: {got:?}");
    }
    master.env.clear();
    master.start();
    send(&master.addr(), "G", 20, 150);
    converge(&master, &slave, "after the master's restart");
    let log = fs::read_to_string(&slave.log).unwrap();
    assert!(log.contains("cutting the commit log back"), "{log}");
    let total: u64 = (0..QUEUES).map(|q| max_offset(&slave.addr(), q)).sum();
    assert_eq!(total, 20, "only what the restarted master wrote");
    drop(slave);
    drop(master);
    drop(namesrv);
}
