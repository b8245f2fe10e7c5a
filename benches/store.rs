//! Store benchmark (harness = false; numbers, not assertions). In one run it prints:
//! - the device's raw O_DIRECT write + fdatasync latency (p50/p99) at 4 KiB and 64 KiB, into
//!   fallocated blocks (as the store's files are: each write converts unwritten extents, so its
//!   fdatasync also writes metadata) and into written blocks (the device's best case), and its
//!   raw sequential bandwidth (4 MiB O_DIRECT writes, each followed by fdatasync) into written
//!   blocks and into fallocated blocks never written (what every commit-log write meets);
//! - the store's SYNC_FLUSH append latency (p50/p99) and appends/s at 1, 8, 64 and 1024
//!   concurrent writers with 1 KiB bodies, on one shard, into fallocated files (the default)
//!   and into warm files (`warmMapedFileEnable`: written with zeros when created), each with a
//!   group commit of write + fdatasync and of one O_DSYNC write (`dsyncGroupCommit`, the
//!   default for SYNC_FLUSH masters);
//! - the ratios against the goals (p99 at 64 writers <= 1.5 x raw fdatasync p99; throughput
//!   at least 50 % of the raw sequential bandwidth), and the throughput of 4096 writers with
//!   `groupCommitMaxBytes` at the raw probe's 4 MiB write size (the default 1 MiB caps a group
//!   commit below the size the raw bandwidth is measured with);
//! - the group-commit appender's CPU cost per record at fixed batch sizes (ns/op): encoding into
//!   the batch's chunk and staging it into a pooled aligned DMA buffer, no I/O.
//!
//! Each store phase also prints the executor thread's CPU time (user + system) per append, and
//! the closed-loop ceiling at 64 writers (64 records per raw 64 KiB write+fdatasync p50): what a
//! store costing no CPU could reach, given the device's latency.
//!
//! Run: `cargo bench --bench store [-- <dir>]`. The directory (default `target/bench-store`, or
//! `SHARDMQ_BENCH_DIR`) must be on the device to measure; it is emptied first and removed after.
//! `SHARDMQ_BENCH_SECS` (default 2) is the length of each timed phase; `SHARDMQ_BENCH_ONLY=64,1024`
//! runs only those store phases (no raw or micro phases: for perf/callgrind).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)] // reason: a benchmark program

use std::cell::RefCell;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;
use shardmq::store::faults::Faults;
use shardmq::store::record::{self, RecordFields};
use shardmq::store::write_pool::WritePool;
use shardmq::store::{
    FlushMode, PutBatch, PutMessage, ShardId, ShardStore, StoreConfig, GROUP_COMMIT_MAX_BYTES,
};

const RECORD_BODY: usize = 1024;
/// The goal figures are taken at 64 writers; 1024 shows what the group commit does when the
/// device's fdatasync latency, not the store, is what a closed loop of 64 waits on.
const WRITERS: [usize; 4] = [1, 8, 64, 1024];
/// Writers of the phase whose group commits may be as large as the raw probe's writes.
const LARGE_BATCH_WRITERS: usize = 4096;
const MICRO_BATCHES: [usize; 4] = [1, 16, 64, 512];
const RAW_FILE_BYTES: u64 = 256 << 20;
const SEQ_WRITE_BYTES: usize = 4 << 20;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Raw O_DIRECT write of `size` bytes at increasing offsets, each followed by fdatasync. Into a
/// fallocated file (`written` false: every write converts unwritten blocks, as into a fresh
/// commit-log file) or one written with zeros first (`written` true: the device's best case).
async fn raw_latency(dir: &Path, size: usize, secs: Duration, written: bool) -> Histogram<u64> {
    let path = dir.join(format!("raw-{size}"));
    let f = open_prealloc(&path).await;
    if written {
        fill_zeros(&f).await;
    }
    let mut h = hist();
    let mut pos = 0u64;
    let end = Instant::now() + secs;
    let mut buf = f.alloc_dma_buffer(size);
    buf.as_bytes_mut().fill(0x5A);
    let buf = Rc::new(buf);
    while Instant::now() < end {
        let t = Instant::now();
        f.write_rc_at(buf.clone(), pos).await.unwrap();
        f.fdatasync().await.unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        pos = (pos + size as u64) % (RAW_FILE_BYTES - size as u64);
    }
    f.close().await.unwrap();
    let _ = std::fs::remove_file(&path);
    h
}

/// Writes the whole raw file with zeros and syncs it.
async fn fill_zeros(f: &DmaFile) {
    let mut buf = f.alloc_dma_buffer(SEQ_WRITE_BYTES);
    buf.as_bytes_mut().fill(0);
    let buf = Rc::new(buf);
    for at in (0..RAW_FILE_BYTES).step_by(SEQ_WRITE_BYTES) {
        f.write_rc_at(buf.clone(), at).await.unwrap();
    }
    f.fdatasync().await.unwrap();
}

/// Raw sequential bandwidth, bytes/s: large O_DIRECT writes, each followed by fdatasync, one
/// after the other through a 256 MiB file. `fresh` false: the file is written over and over,
/// so after its first pass every write lands on written blocks (the device's best case).
/// `fresh` true: every write lands on fallocated blocks never written, as every commit-log
/// write does (ARCHITECTURE 32): at the end of the file a new one is preallocated, outside the
/// timed span.
async fn raw_bandwidth(dir: &Path, secs: Duration, fresh: bool) -> f64 {
    let path = dir.join("raw-seq");
    let mut f = open_prealloc(&path).await;
    let mut buf = f.alloc_dma_buffer(SEQ_WRITE_BYTES);
    buf.as_bytes_mut().fill(0xA5);
    let buf = Rc::new(buf);
    let mut pos = 0u64;
    let mut bytes = 0u64;
    let mut timed = Duration::ZERO;
    while timed < secs {
        let t = Instant::now();
        f.write_rc_at(buf.clone(), pos).await.unwrap();
        f.fdatasync().await.unwrap();
        timed += t.elapsed();
        bytes += SEQ_WRITE_BYTES as u64;
        pos = (pos + SEQ_WRITE_BYTES as u64) % RAW_FILE_BYTES;
        if fresh && pos == 0 {
            f.close().await.unwrap();
            std::fs::remove_file(&path).unwrap();
            f = open_prealloc(&path).await;
        }
    }
    f.close().await.unwrap();
    let _ = std::fs::remove_file(&path);
    bytes as f64 / timed.as_secs_f64()
}

async fn open_prealloc(path: &Path) -> DmaFile {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .unwrap();
    f.pre_allocate(RAW_FILE_BYTES, false).await.unwrap();
    f.fdatasync().await.unwrap();
    f
}

/// Properties of put `i`, as a Java producer sends them: a unique key (32 hex digits, which
/// the key index indexes) and WAIT.
fn properties(i: u64) -> String {
    // As `format!("UNIQ_KEY\u{1}{i:032X}\u{2}WAIT\u{1}true")`, at a fraction of the cost:
    // the writer loop is measured with the store.
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut hex = [b'0'; 32];
    for (k, d) in hex.iter_mut().rev().take(16).enumerate() {
        *d = HEX[((i >> (4 * k)) & 15) as usize];
    }
    let mut s = String::with_capacity(64);
    s.push_str("UNIQ_KEY\u{1}");
    s.push_str(std::str::from_utf8(&hex).unwrap());
    s.push_str("\u{2}WAIT\u{1}true");
    s
}

/// One put as the broker hands it to the store: the body is a slice of the request frame
/// (`Bytes`, no copy), the topic and properties are strings decoded from the header.
fn put(i: u64, body: &Bytes) -> PutBatch {
    PutBatch {
        topic: "BenchTopic".into(),
        queue_id: (i % 4) as u32,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50000),
        store_host: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10911),
        reconsume_times: 0,
        prepared_tx_offset: 0,
        messages: vec![PutMessage {
            body: body.clone(),
            flag: 0,
            properties: properties(i),
            tags_code: 0,
        }],
        wait_durable: true,
    }
}

struct StoreRun {
    hist: Histogram<u64>,
    appends_per_sec: f64,
    fsyncs: u64,
    /// CPU time (user + system) of the executor thread per append, microseconds.
    cpu_us_per_append: f64,
}

/// CPU time (user + system) the calling thread has used so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage; RUSAGE_THREAD is supported on Linux.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// How a store phase's commit log is written.
#[derive(Clone, Copy)]
struct Files {
    /// `warmMapedFileEnable`: files written with zeros when created (ARCHITECTURE 46).
    warm: bool,
    /// `dsyncGroupCommit`: one O_DSYNC write per group commit (ARCHITECTURE 47).
    dsync: bool,
}

impl Files {
    const ALL: [Files; 4] = [
        Files {
            warm: false,
            dsync: false,
        },
        Files {
            warm: true,
            dsync: false,
        },
        Files {
            warm: false,
            dsync: true,
        },
        Files {
            warm: true,
            dsync: true,
        },
    ];

    fn name(self) -> String {
        let files = if self.warm { "warm" } else { "fallocated" };
        let commit = if self.dsync {
            "O_DSYNC write"
        } else {
            "write+fdatasync"
        };
        format!("{files:>10} files, {commit:>15}")
    }
}

/// `writers` closed-loop writers, each putting one 1 KiB record at a time, SYNC_FLUSH.
async fn store_run(
    dir: &Path,
    writers: usize,
    secs: Duration,
    files: Files,
    max_batch: usize,
) -> StoreRun {
    let root = dir.join(format!("store-{writers}-{}-{}", files.warm, files.dsync));
    let cfg = StoreConfig {
        commitlog_dir: root.join("commitlog"),
        consume_queue_dir: root.join("consumequeue"),
        checkpoint_path: root.join("checkpoint"),
        commitlog_file_size: 128 << 20,
        consume_queue_file_size: 20 * 300_000,
        flush_mode: FlushMode::Sync,
        flush_interval_ms: 500,
        sync_flush_timeout_ms: 5_000,
        max_message_size: 4 << 20,
        group_commit_max_bytes: max_batch,
        read_cache_bytes: 16 << 20,
        // upstream's flushLeastPagesWhenWarmMapedFile default: 4096 pages.
        warm_commitlog: files.warm.then_some(4096 * 4096),
        dsync_writes: files.dsync,
        ship_before_write: false,
        busy_timeout_ms: 1000,
        // Upstream's index geometry: every append is also indexed, as in production.
        index: shardmq::store::IndexConfig {
            dir: root.join("index"),
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            enable: true,
            safe: false,
        },
    };
    let store = ShardStore::open_with_faults(cfg, ShardId(0), false, Faults::none())
        .await
        .unwrap();
    let h = Rc::new(RefCell::new(hist()));
    let count = Rc::new(RefCell::new(0u64));
    let body = Bytes::from(vec![b'b'; RECORD_BODY]);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let end = start + secs;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, h, count, body) = (store.clone(), h.clone(), count.clone(), body.clone());
            glommio::spawn_local(async move {
                let mut i = w as u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    store.put(put(i, &body)).await.unwrap();
                    h.borrow_mut()
                        .record(t.elapsed().as_nanos() as u64)
                        .unwrap();
                    *count.borrow_mut() += 1;
                    i += writers as u64;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu0;
    let fsyncs = store.stats().fsync_count;
    store.shutdown().await.unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
    let n = *count.borrow();
    let hist = h.borrow().clone();
    StoreRun {
        hist,
        appends_per_sec: n as f64 / elapsed,
        fsyncs,
        cpu_us_per_append: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
    }
}

/// CPU cost of the appender per record at a fixed batch size: encode `batch` records into the
/// chunk vector, stage them into a pooled aligned buffer, give the buffer back.
async fn micro(dir: &Path, batch: usize) -> f64 {
    let path = dir.join("micro");
    let f = DmaFile::create(&path).await.unwrap();
    let mut pool = WritePool::new(16 << 20);
    let mut chunk: Vec<u8> = Vec::new();
    let body = vec![b'm'; RECORD_BODY];
    let rounds = (200_000 / batch).max(50);
    let mut done = 0u64;
    let start = Instant::now();
    for r in 0..rounds {
        chunk.clear();
        for i in 0..batch {
            record::encode(
                &RecordFields {
                    queue_id: 0,
                    flag: 0,
                    queue_offset: (r * batch + i) as i64,
                    phys_offset: chunk.len() as i64,
                    sys_flag: 0,
                    born_timestamp: 1_700_000_000_000,
                    born_host: "127.0.0.1:50000".parse().unwrap(),
                    store_timestamp: 1_700_000_000_001,
                    store_host: "127.0.0.1:10911".parse().unwrap(),
                    reconsume_times: 0,
                    prepared_tx_offset: 0,
                    body: &body,
                    topic: "BenchTopic",
                    properties: "WAIT\u{1}true",
                },
                &mut chunk,
            );
        }
        let len = chunk.len().div_ceil(4096) * 4096;
        let mut buf = pool.take(&f, len);
        let dst = buf.as_bytes_mut();
        dst[..chunk.len()].copy_from_slice(&chunk);
        dst[chunk.len()..].fill(0);
        black_box(buf.as_bytes()[0]);
        pool.give(buf);
        done += batch as u64;
    }
    let ns = start.elapsed().as_nanos() as f64 / done as f64;
    f.close().await.unwrap();
    let _ = std::fs::remove_file(&path);
    ns
}

/// Stored size of one bench record (1 KiB body, topic "BenchTopic", `properties`).
fn record_bytes() -> f64 {
    record::record_len(RECORD_BODY, "BenchTopic".len(), properties(0).len()) as f64
}

fn print_store_run(w: usize, r: &StoreRun, files: Files) {
    println!(
        "store SYNC_FLUSH 1 KiB, {}, {w:>4} writers: p50 {:>8.1} us  p99 {:>8.1} us  {:>9.0} appends/s  {:>7.1} MiB/s  {:.1} appends/sync  {:.2} us CPU/append  (n={})",
        files.name(),
        us(&r.hist, 0.5),
        us(&r.hist, 0.99),
        r.appends_per_sec,
        r.appends_per_sec * record_bytes() / (1 << 20) as f64,
        r.hist.len() as f64 / r.fsyncs.max(1) as f64,
        r.cpu_us_per_append,
        r.hist.len(),
    );
}

fn bench_dir() -> PathBuf {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    arg.map(PathBuf::from)
        .or_else(|| std::env::var_os("SHARDMQ_BENCH_DIR").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-store"))
}

fn main() {
    let dir = bench_dir();
    let secs = Duration::from_secs_f64(
        std::env::var("SHARDMQ_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    // SHARDMQ_BENCH_ONLY=64,1024: only these store phases (for perf/callgrind runs).
    let only: Option<Vec<usize>> = std::env::var("SHARDMQ_BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').filter_map(|w| w.trim().parse().ok()).collect());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.clone();
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move {
            println!("store bench in {} ({secs:?} per phase)", d.display());
            // Before any other DMA file on this device (GLOMMIO-NOTES: the ext4 probe).
            shardmq::store::io::ensure_dma_reads_work(&d).await.unwrap();
            if let Some(only) = only.filter(|o| !o.is_empty()) {
                // Profiling mode: the store phases asked for, nothing else.
                for w in only {
                    for f in Files::ALL {
                        let r = store_run(&d, w, secs, f, GROUP_COMMIT_MAX_BYTES).await;
                        print_store_run(w, &r, f);
                    }
                }
                return;
            }
            let raw4_fresh = raw_latency(&d, 4096, secs, false).await;
            let raw64_fresh = raw_latency(&d, 64 << 10, secs, false).await;
            let raw4 = raw_latency(&d, 4096, secs, true).await;
            let raw64 = raw_latency(&d, 64 << 10, secs, true).await;
            let bw = raw_bandwidth(&d, secs, false).await;
            let bw_fresh = raw_bandwidth(&d, secs, true).await;
            for (name, h) in [
                ("4 KiB, fallocated blocks", &raw4_fresh),
                ("64 KiB, fallocated blocks", &raw64_fresh),
                ("4 KiB, written blocks", &raw4),
                ("64 KiB, written blocks", &raw64),
            ] {
                println!(
                    "raw O_DIRECT write+fdatasync {name:>25}: p50 {:>8.1} us  p99 {:>8.1} us  (n={})",
                    us(h, 0.5),
                    us(h, 0.99),
                    h.len()
                );
            }
            println!(
                "raw sequential bandwidth ({} MiB writes + fdatasync): written blocks {:.1} MiB/s, fallocated blocks (as the store's files) {:.1} MiB/s",
                SEQ_WRITE_BYTES >> 20,
                bw / (1 << 20) as f64,
                bw_fresh / (1 << 20) as f64
            );
            // Store bytes/s as a share of both raw bandwidths.
            let share = |appends_per_sec: f64| {
                let b = appends_per_sec * record_bytes();
                format!(
                    "{:.1} % of written-blocks, {:.1} % of fallocated-blocks bandwidth",
                    100.0 * b / bw,
                    100.0 * b / bw_fresh
                )
            };
            // A closed loop of 64 writers has at most 64 records (~70 KiB) per write+fdatasync:
            // even a store costing no CPU at all is bounded by the device's latency for that.
            let ceiling64 = 64.0 / (us(&raw64_fresh, 0.5) / 1e6);
            println!(
                "closed-loop ceiling @64 (64 records per raw 64 KiB write+fdatasync p50, fallocated blocks as the store's): {ceiling64:.0} appends/s = {}",
                share(ceiling64)
            );
            let mut at64 = Vec::new();
            let mut best: Option<(f64, usize, Files)> = None;
            for w in WRITERS {
                // Every way of writing the files, one after the other.
                for f in Files::ALL {
                    let r = store_run(&d, w, secs, f, GROUP_COMMIT_MAX_BYTES).await;
                    print_store_run(w, &r, f);
                    if best.is_none_or(|(b, _, _)| r.appends_per_sec > b) {
                        best = Some((r.appends_per_sec, w, f));
                    }
                    if w == 64 {
                        at64.push((f, r));
                    }
                }
            }
            for (f, r) in at64 {
                let p99 = us(&r.hist, 0.99);
                println!("{}:", f.name().trim_start());
                println!(
                    "ratio p99@64 / raw 4 KiB p99: {:.2} (fallocated blocks)  {:.2} (written blocks);  / raw 64 KiB p99: {:.2} (fallocated)  {:.2} (written)   (goal <= 1.5)",
                    p99 / us(&raw4_fresh, 0.99),
                    p99 / us(&raw4, 0.99),
                    p99 / us(&raw64_fresh, 0.99),
                    p99 / us(&raw64, 0.99)
                );
                println!(
                    "ratio store bytes/s @64 / raw sequential bandwidth: {}",
                    share(r.appends_per_sec)
                );
                println!(
                    "ratio store appends/s @64 / closed-loop ceiling @64: {:.1} %",
                    100.0 * r.appends_per_sec / ceiling64
                );
            }
            if let Some((rate, w, f)) = best {
                println!(
                    "ratio store bytes/s, best phase ({w} writers, {}) / raw sequential bandwidth: {}   (goal >= 50 %)",
                    f.name().trim_start(),
                    share(rate)
                );
            }
            // The raw bandwidth is measured with 4 MiB writes; a group commit is at most
            // `groupCommitMaxBytes` (1 MiB by default). With enough writers and that setting at
            // 4 MiB, the store writes as large as the raw probe: what is left is its own cost.
            let mut large: Option<f64> = None;
            for f in Files::ALL {
                let r = store_run(&d, LARGE_BATCH_WRITERS, secs, f, SEQ_WRITE_BYTES).await;
                print!("groupCommitMaxBytes {} MiB: ", SEQ_WRITE_BYTES >> 20);
                print_store_run(LARGE_BATCH_WRITERS, &r, f);
                large = Some(large.map_or(r.appends_per_sec, |b: f64| b.max(r.appends_per_sec)));
            }
            if let Some(rate) = large {
                println!(
                    "ratio store bytes/s, {LARGE_BATCH_WRITERS} writers, groupCommitMaxBytes {} MiB (the raw probe's write size), best files / raw sequential bandwidth: {}",
                    SEQ_WRITE_BYTES >> 20,
                    share(rate)
                );
            }
            for b in MICRO_BATCHES {
                let ns = micro(&d, b).await;
                println!("appender (encode + stage into pooled DMA buffer), batch {b:>3}: {ns:>7.0} ns/op");
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
