//! kill -9 loop (issue #4 item 3): a real client (ali-ons, 32 sends in flight) sends to a broker
//! that is killed with SIGKILL at a random moment and restarted on the same store, cycle after
//! cycle. Every acknowledged send (its index, queue id, queue offset and offset msg id) is
//! recorded by the client; after each restart a Rust pull reads every queue from where the last
//! check stopped, and at the end once more from 0, and asserts: every acked message is at its
//! queue offset with its body and its commit-log offset, queue offsets are consecutive (order
//! kept, no duplicate offsets), and the offsets after a restart continue those before it.
//!
//! Variants: SYNC_FLUSH (O_DSYNC group commits, and with `dsyncGroupCommit=false` a write and
//! an fdatasync), SYNC_FLUSH into warm files (`warmMapedFileEnable`), ASYNC_FLUSH (all must
//! lose nothing) and the canary (SYNC_FLUSH with `SHARDMQ_FAULTS=ack_before_durable`: acks
//! before the write) which must be caught losing acked messages; that proves the checker can
//! fail.
//!
//! `SHARDMQ_CRASH_CYCLES` (default 20) sets the cycles, `SHARDMQ_CRASH_SEED` the RNG seed
//! (printed at start). Needs `scripts/setup-clients.sh` (ali-ons).

// reason: test code; runs on plain threads, so sleeping while polling is fine.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use shardmq::store::record::{self, Decoded};

const QUEUES: u32 = 4;
const KEY_PREFIX: &str = "k-";
const BODY_SIZE: usize = 120;
/// Index space per cycle (a cycle never sends this many).
const PER_CYCLE: u64 = 10_000_000;

/// xorshift64*: a seeded RNG without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn seed() -> u64 {
    env_u64("SHARDMQ_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    })
}

/// One acknowledged send as the client reported it.
#[derive(Debug, Clone)]
struct Ack {
    i: u64,
    queue_id: u32,
    queue_offset: u64,
    /// Commit-log offset from the offset msg id (ali-ons returns the broker's offset id).
    phys: u64,
    cycle: usize,
}

/// One stored message as a pull returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    i: u64,
    phys: u64,
    body_ok: bool,
}

/// What the checker found wrong (empty = fine).
#[derive(Debug, Default)]
struct Problems {
    /// Acked but absent, or another message at its queue offset.
    missing: Vec<(usize, u64, u32, u64)>,
    /// Other violations (order, duplicates, bodies, offsets going backwards).
    other: Vec<String>,
}

impl Problems {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.other.is_empty()
    }
}

fn parse_acks(path: &std::path::Path, cycle: usize) -> Vec<Ack> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    // Only complete lines: the producer is killed, its last line may be half written.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", path.display()));
        if v["status"].as_str() != Some("SEND_OK") {
            continue; // FLUSH_DISK_TIMEOUT etc. promise nothing
        }
        let msg_id = v["msg_id"].as_str().unwrap_or_default();
        // Offset msg id: 4 bytes IP, 4 bytes port, 8 bytes commit-log offset, in hex.
        let phys = u64::from_str_radix(msg_id.get(16..32).unwrap_or("x"), 16)
            .unwrap_or_else(|_| panic!("bad offset msg id in {v}"));
        out.push(Ack {
            i: v["i"].as_u64().unwrap(),
            queue_id: u32::try_from(v["queue_id"].as_u64().unwrap()).unwrap(),
            queue_offset: v["queue_offset"].as_u64().unwrap(),
            phys,
            cycle,
        });
    }
    out
}

fn property<'a>(props: &'a str, name: &str) -> Option<&'a str> {
    props
        .split('\u{2}')
        .filter_map(|kv| kv.split_once('\u{1}'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn expected_body(i: u64) -> Vec<u8> {
    let mut b = format!("{KEY_PREFIX}{i}|").into_bytes();
    if b.len() < BODY_SIZE {
        b.resize(BODY_SIZE, b'x');
    }
    b
}

/// Pulls one queue from `from` to its end with PULL_MESSAGE (no suspend); returns the stored
/// messages by queue offset, or a violation.
fn pull_queue(
    broker: &str,
    topic: &str,
    qid: u32,
    from: u64,
) -> Result<BTreeMap<u64, Stored>, String> {
    let mut out = BTreeMap::new();
    let mut next = from;
    let q = qid.to_string();
    loop {
        let off = next.to_string();
        let ext = [
            ("consumerGroup", "crash_checker"),
            ("topic", topic),
            ("queueId", q.as_str()),
            ("queueOffset", off.as_str()),
            ("maxMsgNums", "800"),
            ("sysFlag", "4"),
            ("commitOffset", "0"),
            ("suspendTimeoutMillis", "0"),
            ("subscription", "*"),
            ("subVersion", "0"),
        ];
        let mut tries = 0;
        let r = loop {
            match request(broker, 11, &ext, &[]) {
                Ok(r) => break r,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("pull {topic}:{qid}@{next}: {e}; retrying");
                    sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(format!("pull {topic}:{qid}@{next}: {e}")),
            }
        };
        let max: u64 = r
            .ext
            .get("maxOffset")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match r.code {
            0 => {}
            19 if max == next => return Ok(out),
            _ => {
                return Err(format!(
                    "queue {qid}: pull at {next} answered code {} ({:?}), max offset {max}: \
                     the log lost records that were there before",
                    r.code, r.remark
                ))
            }
        }
        let mut buf = &r.body[..];
        while !buf.is_empty() {
            let v = match record::check(buf) {
                Ok(Decoded::Record(v)) => v,
                other => return Err(format!("queue {qid}@{next}: bad record in pull: {other:?}")),
            };
            let qo = u64::try_from(v.queue_offset).unwrap();
            if qo != next || v.queue_id != qid as i32 {
                return Err(format!(
                    "queue {qid}: expected queue offset {next}, got record {}:{qo} \
                     (order broken or duplicate offset)",
                    v.queue_id
                ));
            }
            let i: u64 = property(v.properties, "seq")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("queue {qid}@{qo}: no seq property"))?;
            out.insert(
                qo,
                Stored {
                    i,
                    phys: u64::try_from(v.phys_offset).unwrap(),
                    body_ok: v.body == expected_body(i).as_slice(),
                },
            );
            next += 1;
            buf = &buf[v.total_size as usize..];
        }
        let nb: u64 = r.ext["nextBeginOffset"].parse().unwrap();
        assert_eq!(nb, next, "nextBeginOffset of queue {qid}");
    }
}

/// Checks the acks of some cycles against what is stored (queue -> offset -> message).
fn check_acks(acks: &[Ack], stored: &HashMap<u32, BTreeMap<u64, Stored>>, p: &mut Problems) {
    for a in acks {
        match stored.get(&a.queue_id).and_then(|q| q.get(&a.queue_offset)) {
            Some(s) if s.i == a.i => {
                if !s.body_ok {
                    p.other.push(format!("message {} has a wrong body", a.i));
                }
                if s.phys != a.phys {
                    p.other.push(format!(
                        "message {}: commit-log offset {} but acked as {}",
                        a.i, s.phys, a.phys
                    ));
                }
            }
            _ => p.missing.push((a.cycle, a.i, a.queue_id, a.queue_offset)),
        }
    }
}

/// Offsets after a restart continue those before: per queue, every ack of a cycle lies above
/// every ack of an earlier cycle.
fn check_continuation(acks: &[Ack], p: &mut Problems) {
    let mut top: HashMap<u32, (usize, u64)> = HashMap::new();
    let mut by_cycle: BTreeMap<usize, Vec<&Ack>> = BTreeMap::new();
    for a in acks {
        by_cycle.entry(a.cycle).or_default().push(a);
    }
    for (cycle, list) in by_cycle {
        for a in &list {
            if let Some(&(c0, hi)) = top.get(&a.queue_id) {
                if a.queue_offset <= hi {
                    p.other.push(format!(
                        "cycle {cycle}: message {} got queue offset {}:{} at or below cycle {c0}'s {hi}",
                        a.i, a.queue_id, a.queue_offset
                    ));
                }
            }
        }
        for a in &list {
            let e = top.entry(a.queue_id).or_insert((cycle, a.queue_offset));
            if a.queue_offset >= e.1 {
                *e = (cycle, a.queue_offset);
            }
        }
    }
}

struct Variant {
    name: &'static str,
    flush: Flush,
    faults: &'static str,
    /// Upper bound of the random wait (after the first ack) before the kill.
    max_kill_ms: u64,
    /// More broker properties.
    extra: &'static str,
}

struct Outcome {
    cycles: usize,
    acked: usize,
    problems: Problems,
    /// Cycles in which acked messages were lost.
    lossy_cycles: Vec<usize>,
    recovery_ms: Vec<u64>,
}

fn run_loop(v: &Variant, cycles: usize, stop_at_first_loss: bool) -> Outcome {
    let seed = seed();
    eprintln!(
        "crash loop {}: seed {seed} (SHARDMQ_CRASH_SEED={seed} repeats it), {cycles} cycles",
        v.name
    );
    let mut rng = Rng(seed);
    let env: Vec<(&str, &str)> = if v.faults.is_empty() {
        vec![]
    } else {
        vec![("SHARDMQ_FAULTS", v.faults)]
    };
    // flushIntervalCommitLog is long on purpose in ASYNC mode: kill -9 must not depend on it.
    let props = format!("flushIntervalCommitLog=5000\n{}", v.extra);
    let mut c = Cluster::start_with(v.name, v.flush, &props, &env);
    let topic = format!("{}_topic", v.name);
    c.create_topic(&topic, QUEUES);
    // The topic table is written to disk periodically (flushConsumerOffsetInterval), not on
    // create: wait until it is, or the first kill forgets the topic (not what is tested here).
    let topics_json = c.dir.path.join("store/config/topics.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&topics_json)
        .unwrap_or_default()
        .contains(&topic)
    {
        assert!(
            Instant::now() < deadline,
            "topic never reached {topics_json:?}"
        );
        sleep(Duration::from_millis(50));
    }
    let mut acks: Vec<Ack> = Vec::new();
    let mut verified: HashMap<u32, u64> = (0..QUEUES).map(|q| (q, 0)).collect();
    let mut stored_all: HashMap<u32, BTreeMap<u64, Stored>> = HashMap::new();
    let mut problems = Problems::default();
    let mut lossy_cycles = Vec::new();
    let mut recovery_ms = Vec::new();
    let mut done = 0;
    for cycle in 0..cycles {
        let out = c.dir.file(&format!("acks-{cycle}.jsonl"));
        let start = (cycle as u64 * PER_CYCLE).to_string();
        let (ns, o) = (c.namesrv_addr(), out.display().to_string());
        let count = (PER_CYCLE - 1).to_string();
        let body = BODY_SIZE.to_string();
        let producer = spawn_client(
            &c.dir,
            Client::Node,
            "producer.js",
            &[
                "--namesrv",
                &ns,
                "--topic",
                &topic,
                "--count",
                &count,
                "--start",
                &start,
                "--key-prefix",
                KEY_PREFIX,
                "--body-size",
                &body,
                "--inflight",
                "32",
                "--out",
                &o,
            ],
        );
        // Kill only once sends flow, so that the kill lands with sends in flight.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count_complete_lines(&out) < 1 {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no send acknowledged within 30 s\n{}",
                c.logs()
            );
            c.broker.assert_running();
            sleep(Duration::from_millis(5));
        }
        sleep(Duration::from_millis(rng.below(v.max_kill_ms)));
        c.kill9_broker();
        // Acks already on the wire land in the file; then the producer goes too.
        sleep(Duration::from_millis(100));
        producer.kill();
        let new = parse_acks(&out, cycle);
        let t0 = Instant::now();
        c.start_broker();
        let restart = t0.elapsed().as_millis() as u64;
        recovery_ms.push(restart);
        // Check this cycle's acks against what the restarted broker serves.
        let mut stored: HashMap<u32, BTreeMap<u64, Stored>> = HashMap::new();
        for q in 0..QUEUES {
            match pull_queue(&c.broker_addr(), &topic, q, verified[&q]) {
                Ok(m) => {
                    let end = m.keys().next_back().map_or(verified[&q], |k| k + 1);
                    verified.insert(q, end);
                    stored.insert(q, m);
                }
                Err(e) => problems.other.push(format!("cycle {cycle}: {e}")),
            }
        }
        let before = problems.missing.len();
        check_acks(&new, &stored, &mut problems);
        let lost = problems.missing.len() - before;
        eprintln!(
            "cycle {cycle}: {} acked, {lost} lost, restart {restart} ms",
            new.len()
        );
        if lost > 0 {
            lossy_cycles.push(cycle);
        }
        for (q, m) in stored {
            stored_all.entry(q).or_default().extend(m);
        }
        acks.extend(new);
        done = cycle + 1;
        if stop_at_first_loss && lost > 0 {
            break;
        }
    }
    // Final: everything once more from 0, against every ack of every cycle.
    let mut all: HashMap<u32, BTreeMap<u64, Stored>> = HashMap::new();
    for q in 0..QUEUES {
        match pull_queue(&c.broker_addr(), &topic, q, 0) {
            Ok(m) => {
                if let Some(prev) = stored_all.get(&q) {
                    for (k, s) in prev {
                        if m.get(k) != Some(s) {
                            problems
                                .other
                                .push(format!("queue {q}@{k}: changed since it was first checked"));
                        }
                    }
                }
                all.insert(q, m);
            }
            Err(e) => problems.other.push(format!("final: {e}")),
        }
    }
    let mut final_problems = Problems::default();
    check_acks(&acks, &all, &mut final_problems);
    for m in final_problems.missing {
        if !problems.missing.contains(&m) {
            problems.other.push(format!("final check: lost {m:?}"));
        }
    }
    problems.other.extend(final_problems.other);
    check_continuation(&acks, &mut problems);
    let _ = c.stop_broker();
    Outcome {
        cycles: done,
        acked: acks.len(),
        problems,
        lossy_cycles,
        recovery_ms,
    }
}

fn cycles() -> usize {
    env_u64("SHARDMQ_CRASH_CYCLES").map_or(20, |n| n.max(1) as usize)
}

fn report(v: &Variant, o: &Outcome) {
    let mut r = o.recovery_ms.clone();
    r.sort_unstable();
    eprintln!(
        "{}: {} cycles, {} acked, {} lost in cycles {:?}, other problems {}, restart ms median {} max {}",
        v.name,
        o.cycles,
        o.acked,
        o.problems.missing.len(),
        o.lossy_cycles,
        o.problems.other.len(),
        r.get(r.len() / 2).copied().unwrap_or(0),
        r.last().copied().unwrap_or(0)
    );
    for p in o.problems.other.iter().take(10) {
        eprintln!("  {p}");
    }
}

fn assert_no_loss(v: &Variant) {
    let o = run_loop(v, cycles(), false);
    report(v, &o);
    assert!(o.acked > 0, "nothing was acknowledged");
    assert!(
        o.problems.is_empty(),
        "{}: lost {} acked messages (cycle, i, queue, offset; first 20: {:?}); other: {:#?}",
        v.name,
        o.problems.missing.len(),
        &o.problems.missing[..o.problems.missing.len().min(20)],
        &o.problems.other[..o.problems.other.len().min(20)]
    );
}

/// SYNC_FLUSH as a master runs it by default: each group commit one O_DSYNC write
/// (ARCHITECTURE 47).
#[test]
fn kill9_loop_sync_flush_loses_no_acked_message() {
    assert_no_loss(&Variant {
        name: "crash_sync",
        flush: Flush::Sync,
        faults: "",
        max_kill_ms: 1500,
        extra: "",
    });
}

/// SYNC_FLUSH with a write and then an fdatasync per group commit (`dsyncGroupCommit=false`).
#[test]
fn kill9_loop_sync_flush_write_then_fdatasync_loses_no_acked_message() {
    assert_no_loss(&Variant {
        name: "crash_sync_fdatasync",
        flush: Flush::Sync,
        faults: "",
        max_kill_ms: 1500,
        extra: "dsyncGroupCommit=false\n",
    });
}

/// SYNC_FLUSH into warm files (ARCHITECTURE 46): each restart after a kill writes zeros over
/// the tail recovery cuts, and records land only in written blocks.
#[test]
fn kill9_loop_sync_flush_warm_files_loses_no_acked_message() {
    assert_no_loss(&Variant {
        name: "crash_sync_warm",
        flush: Flush::Sync,
        faults: "",
        max_kill_ms: 1500,
        // 64 MiB files: each restart writes zeros over up to a whole file's tail.
        extra: "warmMapedFileEnable=true\nmapedFileSizeCommitLog=67108864\n",
    });
}

#[test]
fn kill9_loop_async_flush_loses_no_acked_message() {
    assert_no_loss(&Variant {
        name: "crash_async",
        flush: Flush::Async,
        faults: "",
        max_kill_ms: 1500,
        extra: "",
    });
}

/// The canary: a broker that acks before writing must be caught.
#[test]
fn kill9_loop_catches_a_broker_that_acks_before_durable() {
    let v = Variant {
        name: "crash_canary",
        flush: Flush::Sync,
        faults: "ack_before_durable",
        max_kill_ms: 400,
        extra: "",
    };
    let o = run_loop(&v, cycles(), true);
    report(&v, &o);
    assert!(
        !o.lossy_cycles.is_empty(),
        "the checker did not catch the ack-before-durable canary in {} cycles ({} acked): \
         the crash test cannot fail",
        o.cycles,
        o.acked
    );
}

/// SEND_MESSAGE (10) of message `i` to one queue through the harness's remoting client; returns
/// the queue offset the broker acknowledged.
fn send_one(broker: &str, topic: &str, qid: u32, i: u64) -> u64 {
    let q = qid.to_string();
    let props = format!(
        "KEYS\u{1}{KEY_PREFIX}{i}\u{2}seq\u{1}{i}\u{2}TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}"
    );
    let ext = [
        ("producerGroup", "shard_count_pg"),
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "8"),
        ("queueId", q.as_str()),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", props.as_str()),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
        ("batch", "false"),
    ];
    let r = request(broker, 10, &ext, &expected_body(i)).unwrap();
    assert_eq!(r.code, 0, "send {i} to queue {qid}: {:?}", r.remark);
    assert_eq!(r.ext["queueId"], q);
    r.ext["queueOffset"].parse().unwrap()
}

fn set_shard_count(c: &Cluster, n: Option<u16>) {
    let path = c.dir.file("broker.properties");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("shardCount="))
        .map(str::to_string)
        .collect();
    if let Some(n) = n {
        lines.push(format!("shardCount={n}"));
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

fn assert_all_there(c: &Cluster, topic: &str, sent: &[(u64, u32, u64)], what: &str) {
    let mut stored = HashMap::new();
    for q in 0..8 {
        stored.insert(q, pull_queue(&c.broker_addr(), topic, q, 0).unwrap());
    }
    for &(i, q, off) in sent {
        let s = stored[&q]
            .get(&off)
            .unwrap_or_else(|| panic!("{what}: message {i} missing at {q}:{off}"));
        assert_eq!(s.i, i, "{what}: queue {q}@{off}");
        assert!(s.body_ok, "{what}: body of {i}");
    }
    let total: usize = stored.values().map(BTreeMap::len).sum();
    assert_eq!(total, sent.len(), "{what}: nothing more, nothing less");
}

/// DESIGN §2: the store's persisted shard count wins. Created with 3 shards, killed, restarted
/// configured for 2: every queue and message is found; stopped cleanly, restarted with the
/// default count: still all there, and new sends continue every queue's offsets.
#[test]
fn restart_with_another_shard_count_finds_every_queue() {
    let mut c = Cluster::start_with("shard_count", Flush::Sync, "shardCount=3\n", &[]);
    let topic = "shard_count_topic";
    c.create_topic(topic, 8);
    let mut sent = Vec::new();
    let mut i = 0;
    let mut send_round = |c: &Cluster, sent: &mut Vec<(u64, u32, u64)>, per_queue: u64| {
        for q in 0..8u32 {
            for _ in 0..per_queue {
                let off = send_one(&c.broker_addr(), topic, q, i);
                sent.push((i, q, off));
                i += 1;
            }
        }
    };
    send_round(&c, &mut sent, 5);
    // Topic config must be on disk before a kill (it is written periodically).
    let topics_json = c.dir.path.join("store/config/topics.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&topics_json)
        .unwrap_or_default()
        .contains(topic)
    {
        assert!(
            Instant::now() < deadline,
            "topic never reached {topics_json:?}"
        );
        sleep(Duration::from_millis(50));
    }
    c.kill9_broker();
    set_shard_count(&c, Some(2));
    c.start_broker();
    assert_all_there(
        &c,
        topic,
        &sent,
        "after kill -9, restarted with shardCount=2",
    );
    send_round(&c, &mut sent, 3);
    let st = c.stop_broker();
    assert!(st.success(), "clean stop: {st}");
    set_shard_count(&c, None);
    c.start_broker();
    assert_all_there(
        &c,
        topic,
        &sent,
        "after a clean stop, restarted with the default count",
    );
    let log = std::fs::read_to_string(&c.broker.log).unwrap();
    assert!(
        log.contains("keeping the persisted one"),
        "the broker should say it kept the persisted shard count"
    );
    // Offsets continue in every queue (they were 0..8 per queue so far).
    for q in 0..8u32 {
        assert_eq!(
            send_one(&c.broker_addr(), topic, q, 1_000_000 + u64::from(q)),
            8
        );
    }
    let _ = c.stop_broker();
}
