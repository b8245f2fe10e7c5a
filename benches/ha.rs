//! Send throughput and latency of SYNC_MASTER vs ASYNC_MASTER (each with one slave) vs a lone
//! master, in one run, with ratios (issue #5's goal: SYNC_MASTER costs <= 10 % throughput and
//! <= one loopback round trip of p99). Not a timed test: `cargo bench --bench ha`.
//!
//! Each setup: a nameserver and the brokers on 127.0.0.1 (free ports), SYNC_FLUSH as in the
//! seed, fresh stores under `target/ha-bench/`. All three setups run at once and the load visits
//! them in turn for `HA_BENCH_ROUNDS` rounds (default 3), so the shared machine's drift touches
//! each alike; latencies are merged per setup. Load: `mqbench` with `HA_BENCH_CONNS` producers
//! (default 16) in a closed loop on its few client threads, 100-byte bodies, for
//! `HA_BENCH_SECS` seconds (default 3) after a 1 s warm-up; `HA_BENCH_LOAD=threads` drives
//! the same sends from one OS thread per connection instead (SEND_MESSAGE with a JSON header,
//! back to back; every response must be SUCCESS), the load this bench had first. The loopback TCP
//! round trip (1-byte ping-pong) is measured in the same run, for the p99 goal, and each
//! broker's CPU (from /proc) per acknowledged message. Besides the merged figures it prints
//! the median over rounds of each round's paired ratio and p99 difference (one slow-disk round
//! cannot decide those). Every broker
//! runs `HA_BENCH_SHARDS` shards (default: half the cores, at least one; the load generator
//! shares the host, as in `scripts/bench-lib.sh`). `HA_BENCH_BIN_DIR` runs the `mqnamesrv` and
//! `mqbroker` found there instead of this build's (an A/B of two revisions, run alternately).
//! `HA_BENCH_PROPS` adds properties (space-separated `key=value`) to every broker, e.g.
//! `HA_BENCH_PROPS=warmMapedFileEnable=true`; `HA_BENCH_PROPS_<brokerRole>` (e.g.
//! `HA_BENCH_PROPS_SYNC_MASTER=dsyncGroupCommit=false`) to the brokers of that role only.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: a benchmark driver

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = p > 1030
            && p < 65000
            && [p - 2, p + 1]
                .iter()
                .all(|q| TcpListener::bind((Ipv4Addr::LOCALHOST, *q)).is_ok());
        if ok {
            return p;
        }
    }
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(exe: &str, args: &[String], dir: &Path, name: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new(exe)
        .args(args)
        .env("HOME", dir)
        .env("SHARDMQ_LOG_DIR", dir.join("logs"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        sleep(Duration::from_millis(50));
    }
}

/// `HA_BENCH_SHARDS`, or half the cores (at least one).
fn shard_count() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    env_u64("HA_BENCH_SHARDS", (cores / 2).max(1))
}

fn broker_conf(dir: &Path, name: &str, id: u32, role: &str, port: u16, ns: u16) -> PathBuf {
    let store = dir.join(name);
    let shards = shard_count();
    let conf = dir.join(format!("{name}.properties"));
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=BenchCluster\nbrokerName=bench\nbrokerId={id}\nbrokerRole={role}\n\
             flushDiskType=SYNC_FLUSH\nlistenPort={port}\nbrokerIP1=127.0.0.1\n\
             brokerIP2=127.0.0.1\nstorePathRootDir={}\nstorePathCommitLog={}\n\
             namesrvAddr=127.0.0.1:{ns}\nmapedFileSizeCommitLog=268435456\n\
             shardCount={shards}\n{extra}",
            store.display(),
            store.join("commitlog").display(),
            extra = [
                std::env::var("HA_BENCH_PROPS").unwrap_or_default(),
                std::env::var(format!("HA_BENCH_PROPS_{role}")).unwrap_or_default(),
            ]
            .join(" ")
            .split_whitespace()
            .map(|kv| format!("{kv}\n"))
            .collect::<String>()
        ),
    )
    .unwrap();
    conf
}

/// Starts the setup; returns the processes, the master's port and the nameserver's port.
fn start(dir: &Path, role: &str, slave: bool) -> (Procs, u16, u16) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let ns = free_port();
    let ns_conf = dir.join("ns.properties");
    std::fs::write(
        &ns_conf,
        format!(
            "listenPort={ns}\nkvConfigPath={}\n",
            dir.join("kv.json").display()
        ),
    )
    .unwrap();
    let mut procs = Procs(Vec::new());
    // `HA_BENCH_BIN_DIR`: run other builds of the binaries (an A/B of two revisions).
    let bin_dir = std::env::var("HA_BENCH_BIN_DIR").ok();
    let bin = |name: &str, built: &str| {
        bin_dir
            .as_ref()
            .map_or(built.to_string(), |d| format!("{d}/{name}"))
    };
    let nsx = &bin("mqnamesrv", env!("CARGO_BIN_EXE_mqnamesrv"));
    let bx = &bin("mqbroker", env!("CARGO_BIN_EXE_mqbroker"));
    procs.0.push(spawn(
        nsx,
        &["-c".into(), ns_conf.display().to_string()],
        dir,
        "ns",
    ));
    wait_port(ns);
    let mp = free_port();
    let mc = broker_conf(dir, "master", 0, role, mp, ns);
    procs.0.push(spawn(
        bx,
        &["-c".into(), mc.display().to_string()],
        dir,
        "master",
    ));
    wait_port(mp);
    if slave {
        let sp = free_port();
        let sc = broker_conf(dir, "slave", 1, "SLAVE", sp, ns);
        procs.0.push(spawn(
            bx,
            &["-c".into(), sc.display().to_string()],
            dir,
            "slave",
        ));
        wait_port(sp);
        // Until the slave replicates (SYNC_MASTER answers SUCCESS, not SLAVE_NOT_AVAILABLE).
        let mut s = Sender::connect(mp);
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.send(0) != 0 {
            assert!(Instant::now() < deadline, "slave never caught on");
            sleep(Duration::from_millis(100));
        }
    }
    (procs, mp, ns)
}

struct Sender {
    s: TcpStream,
    opaque: u32,
}

impl Sender {
    fn connect(port: u16) -> Sender {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.set_nodelay(true).unwrap();
        Sender { s, opaque: 0 }
    }

    /// One SEND_MESSAGE; returns the response code.
    fn send(&mut self, queue: u32) -> i64 {
        self.opaque += 1;
        let header = format!(
            "{{\"code\":10,\"extFields\":{{\"producerGroup\":\"bench\",\"topic\":\"BenchT\",\
             \"defaultTopic\":\"TBW102\",\"defaultTopicQueueNums\":\"8\",\"queueId\":\"{queue}\",\
             \"sysFlag\":\"0\",\"bornTimestamp\":\"1700000000000\",\"flag\":\"0\",\
             \"properties\":\"TAGS\\u0001A\\u0002WAIT\\u0001true\",\"reconsumeTimes\":\"0\",\
             \"unitMode\":\"false\"}},\"flag\":0,\"language\":\"JAVA\",\"opaque\":{},\
             \"serializeTypeCurrentRPC\":\"JSON\",\"version\":275}}",
            self.opaque
        );
        let body = [b'x'; 100];
        let mut f = Vec::with_capacity(8 + header.len() + body.len());
        f.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
        f.extend_from_slice(&(header.len() as u32).to_be_bytes());
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(&body);
        self.s.write_all(&f).unwrap();
        let mut len = [0u8; 8];
        self.s.read_exact(&mut len).unwrap();
        let total = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let hlen = (u32::from_be_bytes([len[4], len[5], len[6], len[7]]) & 0xFF_FFFF) as usize;
        let mut rest = vec![0u8; total - 4];
        self.s.read_exact(&mut rest).unwrap();
        let h: serde_json::Value = serde_json::from_slice(&rest[..hlen]).unwrap();
        h["code"].as_i64().unwrap_or(-1)
    }
}

/// One measured load: every latency of the window, its length, and the CPU seconds each
/// broker (master, then slave) used in it.
struct Outcome {
    lat: Vec<Duration>,
    secs: f64,
    errors: u64,
    cpu: Vec<f64>,
}

/// CPU seconds (user + system, every thread) process `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    shardmq::bench::limits::process_cpu_us(pid).unwrap_or(0) as f64 / 1e6
}

/// `conns` closed-loop senders for 1 s of warm-up plus `secs` measured seconds; `brokers`
/// are the pids whose CPU is measured over the window.
fn load(port: u16, conns: u64, secs: u64, brokers: &[u32]) -> Outcome {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (measuring, stop) = (measuring.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut s = Sender::connect(port);
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut q = c as u32;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let code = s.send(q % 8);
                    q += 1;
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed());
                        errors += u64::from(code != 0);
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    sleep(Duration::from_secs(1));
    let cpu0: Vec<f64> = brokers.iter().map(|&p| cpu_secs(p)).collect();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    sleep(Duration::from_secs(secs));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = brokers
        .iter()
        .zip(cpu0)
        .map(|(&p, c0)| cpu_secs(p) - c0)
        .collect();
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        lat: Vec::new(),
        secs: elapsed,
        errors: 0,
        cpu,
    };
    for h in handles {
        let (l, e) = h.join().unwrap();
        out.lat.extend(l);
        out.errors += e;
    }
    out
}

/// The same load driven by mqbench (`HA_BENCH_LOAD=mqbench`, the default): `conns` producers
/// in a closed loop on mqbench's few client threads (ARCHITECTURE 21), 1 s of warm-up, `secs`
/// measured. The latencies come from its histogram buckets (3 significant digits). Broker
/// CPU is read around the whole mqbench process and scaled to the measured window.
fn load_mqbench(ns: u16, json: &Path, conns: u64, secs: u64, brokers: &[u32]) -> Outcome {
    let cpu0: Vec<f64> = brokers.iter().map(|&p| cpu_secs(p)).collect();
    let t0 = Instant::now();
    let args = format!(
        "run -n 127.0.0.1:{ns} --closed-loop --rate 0 --producers {conns} --size 100 \
         --consumers 0 --duration {secs} --warmup 1 --skip-limits --json"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_mqbench"))
        .args(args.split_whitespace())
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mqbench failed ({status})");
    let wall = t0.elapsed().as_secs_f64();
    let r: shardmq::bench::report::BenchResult =
        serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let mut lat = Vec::new();
    for [us, n] in &r.histograms.publish {
        lat.extend(std::iter::repeat_n(Duration::from_micros(*us), *n as usize));
    }
    let secs = secs as f64;
    let cpu = brokers
        .iter()
        .zip(cpu0)
        .map(|(&p, c0)| (cpu_secs(p) - c0) * secs / wall)
        .collect();
    Outcome {
        lat,
        secs,
        errors: r.counts.errors,
        cpu,
    }
}

/// Percentile `p` of sorted latencies, microseconds.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Loopback TCP round trip (1-byte ping-pong, one connection, `n` times): sorted.
fn loopback_rtt(n: usize) -> Vec<Duration> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).is_ok() {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut b = [7u8; 1];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&b).unwrap();
        c.read_exact(&mut b).unwrap();
        lat.push(t.elapsed());
    }
    drop(c);
    echo.join().unwrap();
    lat.sort();
    lat
}

/// Median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

struct Merged {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    /// Broker CPU per acknowledged message, µs: master, then slave.
    cpu_us: Vec<f64>,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let conns = env_u64("HA_BENCH_CONNS", 16);
    let secs = env_u64("HA_BENCH_SECS", 3);
    let rounds = env_u64("HA_BENCH_ROUNDS", 3);
    // `threads`: one OS thread per connection, blocking sends (the load before mqbench drove
    // this bench: 16 threads on 2 cores delay the slave's CPU turn, see ARCHITECTURE 48).
    let threads_load = std::env::var("HA_BENCH_LOAD").is_ok_and(|v| v == "threads");
    println!(
        "load: {conns} {} in a closed loop, {secs} s per round, {rounds} rounds",
        if threads_load {
            "threads (one blocking connection each)"
        } else {
            "mqbench producers"
        }
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ha-bench");
    let setups = [
        (
            "lone master (ASYNC_MASTER, no slave)",
            "ASYNC_MASTER",
            false,
        ),
        ("ASYNC_MASTER + 1 slave", "ASYNC_MASTER", true),
        ("SYNC_MASTER + 1 slave", "SYNC_MASTER", true),
    ];
    // All three clusters run at once; the load visits them in turn, round after round, so a
    // drift of the shared machine or disk touches every setup alike.
    let started: Vec<(Procs, u16, u16)> = setups
        .iter()
        .map(|(_, role, slave)| start(&root.join(role).join(slave.to_string()), role, *slave))
        .collect();
    let mut outcomes: Vec<Vec<Outcome>> = setups.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, (name, _, _)) in setups.iter().enumerate() {
            // procs: nameserver, master, slave (if any).
            let brokers: Vec<u32> = started[i].0 .0.iter().skip(1).map(Child::id).collect();
            let o = if threads_load {
                load(started[i].1, conns, secs, &brokers)
            } else {
                let json = root.join(format!("mqbench-{i}-{r}.json"));
                load_mqbench(started[i].2, &json, conns, secs, &brokers)
            };
            let mut sorted = o.lat.clone();
            sorted.sort();
            println!(
                "round {r}: {name:40} {:9.0} msg/s  p50 {:7.0} us  p99 {:7.0} us  errors {}",
                sorted.len() as f64 / o.secs,
                pct(&sorted, 0.50),
                pct(&sorted, 0.99),
                o.errors
            );
            outcomes[i].push(o);
        }
    }
    drop(started);
    let rtt = loopback_rtt(20_000);
    let rtt_p50 = pct(&rtt, 0.50);
    let rtt_p99 = pct(&rtt, 0.99);
    println!("loopback TCP round trip: p50 {rtt_p50:.0} us  p99 {rtt_p99:.0} us");
    println!("shards per broker: {}", shard_count());
    // Paired per round (each round loads the three setups back to back): a round in which
    // the disk turned slow moves the merged p99 of the setup it happened to, not these.
    let per_round: Vec<Vec<(f64, f64)>> = outcomes
        .iter()
        .map(|os| {
            os.iter()
                .map(|o| {
                    let mut sorted = o.lat.clone();
                    sorted.sort();
                    (sorted.len() as f64 / o.secs, pct(&sorted, 0.99))
                })
                .collect()
        })
        .collect();
    let merged: Vec<Merged> = outcomes
        .into_iter()
        .map(|os| {
            let secs: f64 = os.iter().map(|o| o.secs).sum();
            let errors = os.iter().map(|o| o.errors).sum();
            let n: usize = os.iter().map(|o| o.lat.len()).sum();
            let brokers = os.first().map_or(0, |o| o.cpu.len());
            let cpu_us = (0..brokers)
                .map(|b| os.iter().map(|o| o.cpu[b]).sum::<f64>() * 1e6 / n.max(1) as f64)
                .collect();
            let mut all: Vec<Duration> = os.into_iter().flat_map(|o| o.lat).collect();
            all.sort();
            Merged {
                rate: all.len() as f64 / secs,
                p50_us: pct(&all, 0.50),
                p99_us: pct(&all, 0.99),
                errors,
                cpu_us,
            }
        })
        .collect();
    for ((name, _, _), m) in setups.iter().zip(&merged) {
        println!(
            "{rounds} rounds: {name:40} {:9.0} msg/s  p50 {:7.0} us  p99 {:7.0} us  errors {}  CPU/msg master {:.1} us{}",
            m.rate,
            m.p50_us,
            m.p99_us,
            m.errors,
            m.cpu_us.first().copied().unwrap_or(0.0),
            m.cpu_us
                .get(1)
                .map_or(String::new(), |c| format!(" slave {c:.1} us"))
        );
    }
    let base = &merged[0];
    for (i, name) in ["ASYNC_MASTER+slave", "SYNC_MASTER+slave"]
        .iter()
        .enumerate()
    {
        let r = &merged[i + 1];
        println!(
            "{name:20} throughput x{:.3} of lone master (goal >= 0.90 for SYNC_MASTER); p99 {:+.0} us vs lone master = {:.1} loopback round trips (p99 {rtt_p99:.0} us; goal <= 1)",
            r.rate / base.rate,
            r.p99_us - base.p99_us,
            (r.p99_us - base.p99_us) / rtt_p99.max(1.0)
        );
        let mut ratios: Vec<f64> = Vec::new();
        let mut deltas: Vec<f64> = Vec::new();
        for ((rate, p99), (base_rate, base_p99)) in per_round[i + 1].iter().zip(&per_round[0]) {
            ratios.push(rate / base_rate.max(1.0));
            deltas.push(p99 - base_p99);
        }
        let (ratio, delta) = (median(&mut ratios), median(&mut deltas));
        println!(
            "{name:20} paired by round, median of {rounds}: throughput x{ratio:.3}, p99 {delta:+.0} us = {:.1} loopback round trips (per-round p99 deltas {:+.0} .. {:+.0} us)",
            delta / rtt_p99.max(1.0),
            deltas.first().copied().unwrap_or(0.0),
            deltas.last().copied().unwrap_or(0.0)
        );
    }
    // Both setups with a slave pay the slave's CPU on this one host; only SYNC_MASTER waits
    // for it. Their difference is the price of the wait itself.
    let (a, y) = (&merged[1], &merged[2]);
    let mut waits: Vec<f64> = per_round[2]
        .iter()
        .zip(&per_round[1])
        .map(|((_, p_sync), (_, p_async))| p_sync - p_async)
        .collect();
    let wait = median(&mut waits);
    println!(
        "SYNC_MASTER vs ASYNC_MASTER (both with a slave): throughput x{:.3}, p99 {:+.0} us merged, {wait:+.0} us = {:.1} loopback round trips paired median",
        y.rate / a.rate.max(1.0),
        y.p99_us - a.p99_us,
        wait / rtt_p99.max(1.0)
    );
    let _ = std::fs::remove_dir_all(&root);
}
