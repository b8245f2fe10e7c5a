//! Mutation fuzzing of the running processes with the requests real clients send.
//!
//! Every request Java 4.3.1's client, `mqadmin`, broker and slave sent in the recordings
//! (`../shared/golden/java-4.3.1`) is a seed. Each round takes a seed and changes it the way a
//! buggy or hostile peer might: another request code (every code the servers know, and some
//! they do not), header fields deleted or given odd values (empty, signs, `i32`/`i64`
//! boundaries and beyond, floats, hex, huge and non-ASCII strings, message properties with
//! stray separators or bad `DELAY`/`WAIT` values), bodies truncated, bit-flipped, replaced by
//! random bytes or by another request's body, JSON bodies given values of other types and
//! shapes; one in ten goes with the binary (ROCKETMQ) header codec instead of JSON. The
//! frames themselves stay well formed, so:
//! - the server never closes the connection, and answers every request that is not oneway
//!   (pulls excepted: a pull may be held for its suspend time), with any code;
//! - `mqbroker` and `mqnamesrv` stay up and keep answering a health request between batches;
//! - afterwards a message sent through the mangled broker is pulled back intact, and neither
//!   log holds a panic.
//!
//! Then the same for the bytes on the wire (a frame with flipped bytes, on a connection of
//! its own: closed or answered, never a dead server) and for the HA port (random bytes, bad
//! handshakes, a handshake followed by absurd offset reports).
//!
//! Deterministic: seed `SHARDMQ_FUZZ_SEED` (default fixed, printed); rounds per target
//! `SHARDMQ_FUZZ_ROUNDS` (default 2500). A failure prints the seed and the mutated request.

// reason: test code panics on failures by design, and runs on plain threads (no shard to
// block), so sleeping while polling is fine.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod recordings;
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use bytes::Bytes;
use recordings::{command_from, load};
use shardmq::ha::{Handshake, PROTOCOL_VERSION};
use shardmq::remoting::{ExtFields, RemotingCommand, SerializeType};
use support::{
    encode, pull_request, record_bodies, send_request, start_broker, start_namesrv, AsyncConn,
    Client, Proc,
};

/// The request codes of `remoting::code` (the servers answer some of them with
/// REQUEST_CODE_NOT_SUPPORTED), minus the two that change a server's configuration
/// (UPDATE_BROKER_CONFIG 25, UPDATE_NAMESRV_CONFIG 318: a mutated one could legitimately move
/// a port), plus codes that do not exist.
const CODES: &[i32] = &[
    10, 11, 12, 14, 15, 17, 21, 26, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    45, 100, 101, 102, 103, 104, 105, 106, 200, 201, 202, 203, 204, 205, 206, 207, 208, 215, 216,
    219, 224, 300, 307, 309, 310, 319, 320, 322, 361, // known
    -1, 0, 13, 99, 999, 65535, 2147483647, // unknown
];

/// Codes whose answer may wait (long polling) or never come by design.
const MAY_HOLD: &[i32] = &[11, 361];

/// How long everything sent may take to be answered at the end of a phase.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Requests sent between two health checks.
const BATCH: usize = 100;

/// xorshift64*: a reproducible stream of pseudo-random numbers (no crate for a test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `pct` %.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn ascii(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b' ' + (self.next() % 95) as u8))
            .collect()
    }
}

/// Where a seed was sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Target {
    Namesrv,
    Broker,
    Vip,
}

struct Seed {
    target: Target,
    cmd: RemotingCommand,
}

/// Every recorded request, with the server it went to.
fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for file in [
        "producer.jsonl",
        "consumer.jsonl",
        "mqadmin.jsonl",
        "namesrv-broker.jsonl",
        "slave.jsonl",
    ] {
        for rec in load(file) {
            if rec["kind"] != "frame" || rec["dir"] != "request" {
                continue;
            }
            let peer = rec["peer"].as_str().unwrap();
            let target = if peer.ends_with("->namesrv") {
                Target::Namesrv
            } else if peer.ends_with("-vip") {
                Target::Vip
            } else if peer.ends_with("broker") {
                Target::Broker
            } else {
                continue;
            };
            let mut cmd = command_from(&rec);
            // A recorded pull waits up to 20 s for messages; the seeds should not.
            if cmd.field("suspendTimeoutMillis").is_some() {
                cmd.ext_fields
                    .get_or_insert_with(ExtFields::new)
                    .insert("suspendTimeoutMillis", "100");
            }
            out.push(Seed { target, cmd });
        }
    }
    assert!(out.len() > 150, "only {} recorded requests", out.len());
    out
}

/// Values a field is given: what a number parser, a topic check or a property reader chokes on.
fn odd_value(rng: &mut Rng, other_values: &[String]) -> String {
    const FIXED: &[&str] = &[
        "",
        "0",
        "-1",
        "1",
        "2",
        "127",
        "128",
        "255",
        "65535",
        "2147483647",
        "-2147483648",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "18446744073709551616",
        "1e9",
        "1.5",
        "NaN",
        " 1",
        "1 ",
        "+1",
        "0x10",
        "007",
        "null",
        "true",
        "false",
        "*",
        "||",
        "a || b",
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "%RETRY%",
        "%RETRY%GoldenConsumerGroup",
        "%DLQ%x",
        "DefaultCluster",
        "127.0.0.1:1",
        "127.0.0.1:99999",
        ":",
        "a/../../b",
        "日本語",
        "\u{0}",
        "\u{1}",
        "\u{2}",
        "\u{1}\u{2}\u{1}",
        "UNIQ_KEY\u{1}",
        "DELAY\u{1}99\u{2}WAIT\u{1}maybe",
        "DELAY\u{1}-3",
        "WAIT\u{1}\u{2}TAGS\u{1}\u{2}KEYS\u{1} \u{2}",
        "MAX_OFFSET\u{1}x\u{2}MIN_OFFSET\u{1}-9",
        "TRAN_MSG\u{1}true\u{2}PGROUP\u{1}",
        "{\"a\":1}",
        "[1,2]",
    ];
    match rng.below(10) {
        0 => {
            let n = 1 + rng.below(40);
            rng.ascii(n)
        }
        1 => "x".repeat(200 + rng.below(300)),
        2 if rng.chance(20) => "y".repeat(70_000),
        3 => rng.next().to_string(),
        4 => format!("-{}", rng.next() % 100_000),
        5 if !other_values.is_empty() => rng.pick(other_values).clone(),
        _ => (*rng.pick(FIXED)).to_string(),
    }
}

/// Every field name and value of the seeds: mutations take them across requests.
fn pools(seeds: &[Seed]) -> (Vec<String>, Vec<String>, Vec<Bytes>) {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut bodies = Vec::new();
    for s in seeds {
        if let Some(f) = &s.cmd.ext_fields {
            for (k, v) in f.iter() {
                keys.push(k.to_string());
                values.push(v.to_string());
            }
        }
        if !s.cmd.body.is_empty() {
            bodies.push(s.cmd.body.clone());
        }
    }
    keys.sort();
    keys.dedup();
    values.sort();
    values.dedup();
    (keys, values, bodies)
}

struct Mutator {
    rng: Rng,
    keys: Vec<String>,
    values: Vec<String>,
    bodies: Vec<Bytes>,
}

impl Mutator {
    fn mutate(&mut self, seed: &RemotingCommand) -> RemotingCommand {
        let rng = &mut self.rng;
        let mut cmd = seed.clone();
        if rng.chance(20) {
            cmd.code = *rng.pick(CODES);
        }
        let mut fields = cmd.ext_fields.take().unwrap_or_default();
        for _ in 0..1 + rng.below(3) {
            let n = fields.len();
            match rng.below(4) {
                0 if n > 0 => {
                    if let Some(key) = nth_key(&fields, rng.below(n)) {
                        fields.remove(&key);
                    }
                }
                1 => {
                    let key = rng.pick(&self.keys).clone();
                    let value = odd_value(rng, &self.values);
                    fields.insert(key, value);
                }
                _ if n > 0 => {
                    if let Some(key) = nth_key(&fields, rng.below(n)) {
                        fields.insert(key, odd_value(rng, &self.values));
                    }
                }
                _ => {}
            }
        }
        cmd.ext_fields = (!fields.is_empty() || rng.chance(50)).then_some(fields);
        if rng.chance(5) {
            cmd.remark = Some(odd_value(rng, &self.values));
        }
        if rng.chance(5) {
            cmd.version = rng.next() as i32;
        }
        // Some go with the binary (ROCKETMQ) header codec instead of JSON.
        if rng.chance(10) {
            cmd.serialize_type = SerializeType::RocketMq;
        }
        if rng.chance(40) {
            let body = cmd.body.to_vec();
            let json = if rng.chance(50) {
                shardmq::remoting::parse_lenient(&body).ok()
            } else {
                None
            };
            cmd.body = match rng.below(6) {
                // A JSON body (heartbeat, registration, subscription group, ...) with values
                // of other types and shapes: what a handler reading fields chokes on.
                _ if json.is_some() => {
                    let mut v = json.unwrap_or_default();
                    for _ in 0..1 + rng.below(3) {
                        mutate_json(rng, &mut v);
                    }
                    serde_json::to_vec(&v).unwrap().into()
                }
                0 => Bytes::new(),
                1 if !body.is_empty() => {
                    let cut = rng.below(body.len());
                    Bytes::copy_from_slice(&body[..cut])
                }
                2 if !body.is_empty() => {
                    let mut b = body;
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                    b.into()
                }
                3 => {
                    let n = if rng.chance(10) {
                        rng.below(300_000)
                    } else {
                        rng.below(600)
                    };
                    rng.bytes(n).into()
                }
                _ => rng.pick(&self.bodies).clone(),
            };
        }
        cmd
    }
}

/// The key of the `i`-th field, owned (the fields are changed right after).
fn nth_key(fields: &ExtFields, i: usize) -> Option<String> {
    fields.iter().nth(i).map(|(k, _)| k.to_string())
}

/// Replaces one node of `v` (reached by a random walk) by a value of another type or shape,
/// or deletes a key of an object on the way.
fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let mut node = v;
    loop {
        let len = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 || rng.chance(25) {
            break;
        }
        let i = rng.below(len);
        if let Value::Object(o) = node {
            if rng.chance(15) {
                let key = o.keys().nth(i).cloned().unwrap_or_default();
                o.shift_remove(&key);
                return;
            }
        }
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!("only containers have children"),
        };
    }
    *node = match rng.below(14) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(i64::MAX),
        5 => json!(u64::MAX),
        6 => json!(1.5e300),
        7 => json!(""),
        8 => json!("x".repeat(300)),
        9 => json!([]),
        10 => json!({}),
        11 => json!([null, 1, "a", {}]),
        12 => json!({"topic": null, "queueId": "x", "brokerName": 7}),
        _ => json!(rng.next().to_string()),
    };
}

/// One connection with the opaques of the requests it still owes an answer to.
struct Lane {
    port: u16,
    conn: AsyncConn,
    owed: HashMap<i32, String>,
    next_opaque: i32,
    /// Answers by response code, with requests codes and remarks seen (for the printout).
    codes: HashMap<i32, usize>,
    remarks: HashMap<(i32, i32), String>,
    sent: HashMap<i32, i32>,
}

impl Lane {
    fn open(port: u16) -> Lane {
        Lane {
            port,
            conn: AsyncConn::connect(port),
            owed: HashMap::new(),
            next_opaque: 1,
            codes: HashMap::new(),
            remarks: HashMap::new(),
            sent: HashMap::new(),
        }
    }

    fn send(&mut self, mut cmd: RemotingCommand, seed: u64) {
        self.next_opaque += 1;
        cmd.opaque = self.next_opaque;
        let oneway = cmd.flag & 2 != 0;
        if std::env::var_os("SHARDMQ_FUZZ_REMARKS").is_some() {
            self.sent.insert(cmd.opaque, cmd.code);
        }
        if !oneway && !MAY_HOLD.contains(&cmd.code) {
            let what = format!(
                "code {} fields {:?} body of {} bytes",
                cmd.code,
                cmd.ext_fields,
                cmd.body.len()
            );
            self.owed.insert(cmd.opaque, what);
        }
        if let Err(e) = self.conn.stream.write_all(&encode(&cmd)) {
            panic!(
                "port {}: write failed ({e}): the server closed the connection of a well-formed \
                 frame (fuzz seed {seed}); last request: {cmd:?}",
                self.port
            );
        }
    }

    /// Takes every answer already received; panics if the server closed the connection.
    fn drain(&mut self, seed: u64) {
        loop {
            match self.conn.rx.try_recv() {
                Ok(Ok(r)) => {
                    if r.is_response() {
                        self.owed.remove(&r.opaque);
                        *self.codes.entry(r.code).or_default() += 1;
                        if let Some(req) = self.sent.remove(&r.opaque) {
                            self.remarks
                                .entry((req, r.code))
                                .or_insert_with(|| r.remark.clone().unwrap_or_default());
                        }
                    }
                }
                Ok(Err(e)) => panic!("port {}: {e} (fuzz seed {seed})", self.port),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => panic!(
                    "port {}: the server closed a connection that carried only well-formed \
                     frames (fuzz seed {seed}); {} requests unanswered, e.g. {:?}",
                    self.port,
                    self.owed.len(),
                    self.owed.values().next()
                ),
            }
        }
    }

    /// Waits until every owed answer came.
    fn settle(&mut self, seed: u64) {
        let end = Instant::now() + ANSWER_TIMEOUT;
        while !self.owed.is_empty() && Instant::now() < end {
            self.drain(seed);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            self.owed.is_empty(),
            "port {}: {} requests got no answer within {ANSWER_TIMEOUT:?} (fuzz seed {seed}), e.g.:\n{}",
            self.port,
            self.owed.len(),
            self.owed.values().take(3).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

fn fuzz_seed() -> u64 {
    std::env::var("SHARDMQ_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_2026_1204)
        | 1
}

fn rounds() -> usize {
    std::env::var("SHARDMQ_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500)
}

/// The server answers a health request on a new connection, and its process runs.
fn assert_healthy(proc_: &mut Proc, port: u16, target: Target, when: &str) {
    proc_.assert_alive();
    let mut c = Client::connect(port);
    let r = match target {
        Target::Namesrv => c.call(RemotingCommand::request(106, 0)),
        Target::Broker | Target::Vip => c.call(RemotingCommand::request(28, 0)),
    };
    assert_eq!(r.code, 0, "{when}: health request answered {r:?}");
}

fn assert_no_panic(proc_: &Proc) {
    let log = std::fs::read_to_string(&proc_.log).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "{} logged a panic:\n{}",
        proc_.name,
        proc_.log_tail(40)
    );
}

#[test]
fn servers_survive_mutated_requests() {
    let seed = fuzz_seed();
    let rounds = rounds();
    eprintln!("mutation fuzz: seed {seed}, {rounds} rounds per port");
    let seeds = seeds();
    let (keys, values, bodies) = pools(&seeds);
    let mut m = Mutator {
        rng: Rng(seed),
        keys,
        values,
        bodies,
    };

    // The broker paths with the most machinery: a SYNC_FLUSH SYNC_MASTER (group commit, the
    // wait for the slave) and its slave (refused sends, reads, metadata sync).
    let mut ns = start_namesrv("fuzz-ns");
    let mut master = start_broker(
        "fuzz-master",
        &ns.addr(),
        "brokerRole=SYNC_MASTER\nflushDiskType=SYNC_FLUSH\n",
    );
    let mut slave = start_broker(
        "fuzz-slave",
        &ns.addr(),
        "brokerId=1\nbrokerRole=SLAVE\nflushDiskType=SYNC_FLUSH\n",
    );
    let ns_port = ns.port;
    let port = master.port;

    for (label, port, target) in [
        ("master", master.port, Target::Broker),
        ("master VIP", master.vip_port(), Target::Vip),
        ("slave", slave.port, Target::Broker),
        ("slave VIP", slave.vip_port(), Target::Vip),
        ("nameserver", ns_port, Target::Namesrv),
    ] {
        let proc_ = match label {
            "nameserver" => &mut ns.proc_,
            l if l.starts_with("slave") => &mut slave.proc_,
            _ => &mut master.proc_,
        };
        // Seeds of this server (the VIP port serves what the listen port does).
        let mine: Vec<&Seed> = seeds
            .iter()
            .filter(|s| (s.target == Target::Namesrv) == (target == Target::Namesrv))
            .collect();
        fuzz_port(&mut m, &mine, port, target, proc_, label, seed);
    }

    wire_bytes(
        &mut m.rng,
        &seeds,
        ns_port,
        port,
        &mut ns.proc_,
        &mut master.proc_,
    );
    ha_port(&mut m.rng, port + 1, &mut master.proc_);

    // The mangled brokers still store, replicate and serve a message whole. The topic is
    // created first: the fuzzing may have deleted TBW102 or taken its permissions, which ends
    // auto-creation (as upstream's). The slave learns it by its metadata sync (every 10 s).
    let body = b"still-whole-after-fuzzing".to_vec();
    let mut c = Client::connect(port);
    let r = c.call(create_topic("FuzzAfter"));
    assert_eq!(r.code, 0, "topic creation after fuzzing answered {r:?}");
    let sent = support::poll(ANSWER_TIMEOUT, || {
        let r = c.call(send_request("FuzzAfter", 0, "", body.clone()));
        (r.code == 0).then_some(r)
    });
    assert!(
        sent.is_some(),
        "no send succeeded on the master after fuzzing"
    );
    let r = c.call(pull_request("FuzzAfterGroup", "FuzzAfter", 0));
    assert_eq!(
        r.code, 0,
        "pull from the master after fuzzing answered {r:?}"
    );
    assert_eq!(record_bodies(&r.body), vec![body.clone()]);
    let mut c = Client::connect(slave.port);
    let mut last = None;
    let replicated = support::poll(Duration::from_secs(40), || {
        let r = c.call(pull_request("FuzzAfterGroup", "FuzzAfter", 0));
        let ok = r.code == 0 && record_bodies(&r.body) == vec![body.clone()];
        last = Some(r);
        ok.then_some(())
    });
    assert!(
        replicated.is_some(),
        "the slave does not serve the message sent after fuzzing; last answer {last:?}"
    );

    assert_healthy(&mut ns.proc_, ns_port, Target::Namesrv, "at the end");
    assert_healthy(&mut slave.proc_, slave.port, Target::Broker, "at the end");
    for p in [&ns.proc_, &master.proc_, &slave.proc_] {
        assert_no_panic(p);
    }
}

/// UPDATE_AND_CREATE_TOPIC with 4 queues, read and write.
fn create_topic(topic: &str) -> RemotingCommand {
    let mut create = RemotingCommand::request(17, 0);
    for (k, v) in support::create_topic_fields(topic, "4") {
        create = create.with_field(k, v);
    }
    create
}

/// `rounds()` mutated requests from `seeds`, pipelined on four connections to `port`, with a
/// health check every `BATCH`; then every answer owed must come.
fn fuzz_port(
    m: &mut Mutator,
    seeds: &[&Seed],
    port: u16,
    target: Target,
    proc_: &mut Proc,
    label: &str,
    seed: u64,
) {
    let rounds = rounds();
    let mut lanes: Vec<Lane> = (0..4).map(|_| Lane::open(port)).collect();
    for i in 0..rounds {
        let seed_cmd = &seeds[m.rng.below(seeds.len())].cmd;
        let cmd = m.mutate(seed_cmd);
        let lane = m.rng.below(lanes.len());
        lanes[lane].send(cmd, seed);
        if (i + 1) % BATCH == 0 {
            for l in &mut lanes {
                l.drain(seed);
            }
            assert_healthy(
                proc_,
                port,
                target,
                &format!("{label} after {} rounds", i + 1),
            );
        }
    }
    let mut codes: HashMap<i32, usize> = HashMap::new();
    let mut remarks = std::collections::BTreeMap::new();
    for l in &mut lanes {
        l.settle(seed);
        remarks.extend(l.remarks.drain());
        for (c, n) in &l.codes {
            *codes.entry(*c).or_default() += n;
        }
    }
    let mut codes: Vec<_> = codes.into_iter().collect();
    codes.sort();
    eprintln!("mutation fuzz: {label} answered every mutated request; answers by code: {codes:?}");
    for ((req, code), remark) in remarks {
        eprintln!("  request {req} -> {code}: {remark}");
    }
}

/// Frames with flipped bytes (length words, header lengths, header text), each on a connection
/// of its own: the server answers or closes; either way it stays up.
fn wire_bytes(
    rng: &mut Rng,
    seeds: &[Seed],
    ns_port: u16,
    port: u16,
    ns: &mut Proc,
    broker: &mut Proc,
) {
    let n = (rounds() / 10).max(50);
    for i in 0..n {
        let s = &seeds[rng.below(seeds.len())];
        let mut bytes = encode(&s.cmd);
        let span = bytes.len().saturating_sub(8).clamp(1, 200);
        let head = 8 + rng.below(span);
        for _ in 0..1 + rng.below(4) {
            let at = if rng.chance(30) {
                rng.below(8)
            } else {
                rng.below(head.min(bytes.len()))
            };
            bytes[at] ^= 1 << rng.below(8);
        }
        let to = if s.target == Target::Namesrv {
            ns_port
        } else {
            port
        };
        let mut c = TcpStream::connect(("127.0.0.1", to)).unwrap();
        let _ = c.write_all(&bytes);
        // An answer, a close, or silence (a length word now asking for more): all fine.
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        drop(c);
        if (i + 1) % 25 == 0 {
            assert_healthy(ns, ns_port, Target::Namesrv, "after flipped frame bytes");
            assert_healthy(broker, port, Target::Broker, "after flipped frame bytes");
        }
    }
    eprintln!("mutation fuzz: {n} frames with flipped bytes");
}

/// The HA port: random bytes, handshakes with odd fields, and a good handshake followed by
/// offset reports no slave would send (negative, beyond the end, mid-record).
fn ha_port(rng: &mut Rng, ha: u16, broker: &mut Proc) {
    let n = (rounds() / 20).max(40);
    for i in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", ha)).unwrap();
        let mut out = Vec::new();
        match rng.below(3) {
            0 => {
                let n = rng.below(64);
                out = rng.bytes(n);
            }
            1 => {
                let hs = Handshake {
                    version: *rng.pick(&[0, 1, PROTOCOL_VERSION, PROTOCOL_VERSION + 1, u16::MAX]),
                    shard: *rng.pick(&[0, 1, 7, u16::MAX]),
                    shard_count: *rng.pick(&[0, 1, 2, 1024, u16::MAX]),
                    broker_id: rng.next() as u32,
                };
                out.extend_from_slice(&hs.encode());
            }
            _ => {
                let hs = Handshake {
                    version: PROTOCOL_VERSION,
                    shard: 0,
                    shard_count: 1,
                    broker_id: 1,
                };
                out.extend_from_slice(&hs.encode());
                for _ in 0..1 + rng.below(4) {
                    let report: i64 = match rng.below(4) {
                        0 => -1 - rng.below(1000) as i64,
                        1 => i64::MAX - rng.below(10) as i64,
                        2 => rng.below(1 << 20) as i64,
                        _ => 0,
                    };
                    out.extend_from_slice(&report.to_be_bytes());
                }
                if rng.chance(30) {
                    let n = 1 + rng.below(7);
                    out.extend_from_slice(&rng.bytes(n));
                }
            }
        }
        let _ = c.write_all(&out);
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        drop(c);
        if (i + 1) % 20 == 0 {
            assert_healthy(broker, ha - 1, Target::Broker, "after HA port input");
        }
    }
    eprintln!("mutation fuzz: {n} HA connections");
}
