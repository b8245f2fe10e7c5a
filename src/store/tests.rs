//! ShardStore tests on a real-disk (ext4) directory under `target/test-tmp`, so DMA writes,
//! fdatasync and DMA reads (with the ext4 probe workaround) are exercised for real.

use crate::store::test_util::{base_config, run, test_dir};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::record::{self, Decoded};
use super::*;

const FILE_SIZE: u64 = 64 * 1024;

fn cfg(dir: &Path, mode: FlushMode) -> StoreConfig {
    base_config(dir, mode)
}

fn batch(topic: &str, qid: u32, bodies: &[&[u8]]) -> PutBatch {
    PutBatch {
        topic: topic.into(),
        queue_id: qid,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_tx_offset: 0,
        messages: bodies
            .iter()
            .map(|b| PutMessage {
                body: Bytes::copy_from_slice(b),
                flag: 0,
                properties: "TAGS\u{1}TagA\u{2}WAIT\u{1}true".into(),
                tags_code: i64::from(record::java_string_hash("TagA")),
            })
            .collect(),
        wait_durable: true,
    }
}

fn body(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("msg-{i}-").into_bytes();
    v.resize(len, b'x' + (i % 3) as u8);
    v
}

async fn put_n(
    s: &ShardStore,
    topic: &str,
    qid: u32,
    from: usize,
    n: usize,
    len: usize,
) -> Vec<PutResult> {
    let mut out = Vec::new();
    for i in from..from + n {
        let r = s.put(batch(topic, qid, &[&body(i, len)])).await.unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        out.push(r);
    }
    out
}

/// Reads the whole queue and checks bodies and queue offsets are 0..n in order.
async fn assert_queue(s: &ShardStore, topic: &str, qid: u32, n: usize, len: usize) {
    assert_eq!(s.max_offset(topic, qid), n as u64);
    let mut k = 0u64;
    while k < n as u64 {
        let r = s
            .get_messages(topic, qid, k, 32, 1 << 20, &|_| true)
            .await
            .unwrap();
        assert_eq!(r.status, GetStatus::Found, "at {k}");
        for rec in &r.records {
            let Decoded::Record(v) = record::check(rec).unwrap() else {
                panic!("not a record")
            };
            assert_eq!(v.queue_offset as u64, k);
            assert_eq!(v.body, &body(k as usize, len)[..]);
            assert_eq!(v.topic, topic);
            k += 1;
        }
        assert_eq!(r.next_begin_offset, k);
    }
}

#[test]
fn put_get_round_trip_with_statuses() {
    let dir = test_dir("roundtrip");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir, FlushMode::Sync), ShardId(3), false)
            .await
            .unwrap();
        let res = put_n(&s, "TopicA", 1, 0, 10, 100).await;
        assert_eq!(res[0].first_queue_offset, 0);
        assert_eq!(res[9].first_queue_offset, 9);
        assert_eq!(res[0].phys_offsets[0], 3u64 << 48);
        assert_queue(&s, "TopicA", 1, 10, 100).await;
        assert_eq!(s.queues(), vec![("TopicA".to_string(), 1)]);
        assert_eq!(s.min_offset("TopicA", 1), 0);

        let g = |off: u64| s.get_messages("TopicA", 1, off, 4, 1 << 20, &|_| true);
        let r = g(10).await.unwrap();
        assert_eq!(
            (r.status, r.next_begin_offset),
            (GetStatus::OffsetOverflowOne, 10)
        );
        assert_eq!(r.status.as_str(), "OFFSET_OVERFLOW_ONE");
        let r = g(15).await.unwrap();
        assert_eq!(
            (r.status, r.next_begin_offset),
            (GetStatus::OffsetOverflowBadly, 10)
        );
        let r = g(2).await.unwrap();
        assert_eq!(
            (r.status, r.records.len(), r.next_begin_offset),
            (GetStatus::Found, 4, 6)
        );
        let r = s
            .get_messages("Nope", 0, 0, 4, 1024, &|_| true)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.next_begin_offset),
            (GetStatus::NoMessageInQueue, 0)
        );
        let r = s
            .get_messages("TopicA", 1, 0, 4, 1024, &|t| t == 5)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.next_begin_offset),
            (GetStatus::NoMatchedMessage, 10)
        );
        // max_bytes: at least one record, then stop before exceeding.
        let r = s
            .get_messages("TopicA", 1, 0, 32, 1, &|_| true)
            .await
            .unwrap();
        assert_eq!(r.records.len(), 1);
        let one = r.records[0].len() as u32;
        let r = s
            .get_messages("TopicA", 1, 0, 32, one * 3 + 1, &|_| true)
            .await
            .unwrap();
        assert_eq!(r.records.len(), 3);

        let phys = res[4].phys_offsets[0];
        let rec = s.lookup_record(phys).await.unwrap().unwrap();
        let Decoded::Record(v) = record::check(&rec).unwrap() else {
            panic!()
        };
        assert_eq!(v.phys_offset as u64, phys);
        assert_eq!(s.lookup_record(phys + 1).await.unwrap(), None);
        assert_eq!(
            s.lookup_record(phys & LOCAL_OFFSET_MASK).await.unwrap(),
            None
        ); // shard 0
        assert!(s
            .store_timestamp_at("TopicA", 1, 3)
            .await
            .unwrap()
            .is_some());
        let ts = res[6].store_timestamp;
        let found = s.search_offset_by_timestamp("TopicA", 1, ts).await.unwrap();
        assert!(found <= 6);
        assert_eq!(
            s.search_offset_by_timestamp("TopicA", 1, i64::MAX)
                .await
                .unwrap(),
            10
        );
        s.shutdown().await.unwrap();
    });
}

#[test]
fn group_commit_uses_fewer_fsyncs_than_puts() {
    let dir = test_dir("group");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir, FlushMode::Sync), ShardId(0), false)
            .await
            .unwrap();
        let before = s.stats().fsync_count;
        let mut tasks = Vec::new();
        for i in 0..64usize {
            let s2 = s.clone();
            tasks.push(glommio::spawn_local(async move {
                s2.put(batch("G", (i % 4) as u32, &[&body(i, 50)]))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.status, PutStatus::Ok);
        }
        let st = s.stats();
        assert_eq!(st.put_count, 64);
        let fsyncs = st.fsync_count - before;
        // The 64 puts are ready before the flusher runs, and a batch closes only when the
        // shard has no more ready work (or at its byte limit, far off): one write and one
        // fdatasync cover them all.
        assert_eq!(fsyncs, 1, "fsyncs for 64 puts ready at once");
        assert_eq!(st.write_count, 1, "writes for 64 puts ready at once");
        for q in 0..4 {
            assert_eq!(s.max_offset("G", q), 16);
        }
        s.shutdown().await.unwrap();
    });
}

#[test]
fn a_group_commit_closes_at_its_byte_limit() {
    let dir = test_dir("group-limit");
    run(move || async move {
        let mut c = cfg(&dir, FlushMode::Sync);
        c.commitlog_file_size = 1 << 20; // no roll: one write per batch
        c.group_commit_max_bytes = 8192;
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        let before = s.stats();
        let puts = 48u64;
        let tasks: Vec<_> = (0..puts as usize)
            .map(|i| {
                let s2 = s.clone();
                glommio::spawn_local(async move {
                    s2.put(batch("L", 0, &[&body(i, 900)])).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.status, PutStatus::Ok);
        }
        let st = s.stats();
        let writes = st.write_count - before.write_count;
        let bytes = st.put_bytes - before.put_bytes;
        let record = bytes / puts;
        // All puts are ready at once, so only the limit closes a batch: no batch holds more
        // than the limit (at least `fewest` writes), and every batch but the last is closed
        // by the record that would not fit (at most `most`).
        let fewest = bytes.div_ceil(8192);
        let most = bytes.div_ceil(8192 - record);
        assert!(
            (fewest..=most).contains(&writes),
            "{writes} writes for {bytes} bytes in records of {record}: wanted {fewest}..={most}"
        );
        assert_eq!(
            st.fsync_count - before.fsync_count,
            writes,
            "one fdatasync per write"
        );
        assert_eq!(s.max_offset("L", 0), puts);
        s.shutdown().await.unwrap();
    });
}

/// A consumer reading what was just written is served by the read cache, not the disk; a
/// read behind the cache goes to the file (and gets the same bytes).
#[test]
fn recent_records_are_read_from_the_cache_and_older_ones_from_the_file() {
    for mode in [FlushMode::Sync, FlushMode::Async] {
        let dir = test_dir(&format!("read-cache-{mode:?}"));
        run(move || async move {
            let mut c = cfg(&dir, mode);
            c.commitlog_file_size = 1 << 20;
            c.read_cache_bytes = 64 * 1024;
            let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
            // 200 records of ~1 KiB: the cache keeps the newest ~64 of them.
            put_n(&s, "C", 0, 0, 200, 900).await;
            let before = s.stats();
            let recent = s
                .get_messages("C", 0, 190, 10, 1 << 20, &|_| true)
                .await
                .unwrap();
            assert_eq!(recent.records.len(), 10);
            let after = s.stats();
            assert_eq!(
                after.file_reads, before.file_reads,
                "{mode:?}: a recent read hit the disk"
            );
            assert_eq!(after.cache_reads - before.cache_reads, 10, "{mode:?}");
            // The oldest records left the cache: they come from the file, intact.
            let before = s.stats();
            assert_queue(&s, "C", 0, 200, 900).await;
            let after = s.stats();
            assert!(
                after.file_reads - before.file_reads >= 100,
                "{mode:?}: {} file reads for 200 records, a 64 KiB cache",
                after.file_reads - before.file_reads
            );
            assert!(after.cache_reads > before.cache_reads, "{mode:?}");
            s.shutdown().await.unwrap();
        });
    }
}

/// Allocations a group commit may make beyond its puts' results (measured: ~20-30).
const BATCH_ALLOCATIONS_MAX: u64 = 48;

/// Two sets of puts, concurrently (each within futures' join_all's unboxed size).
async fn put_halves(
    s: &ShardStore,
    a: Vec<PutBatch>,
    b: Vec<PutBatch>,
) -> (
    Vec<Result<PutResult, StoreError>>,
    Vec<Result<PutResult, StoreError>>,
) {
    let a: Vec<_> = a.into_iter().map(|x| s.put(x)).collect();
    let b: Vec<_> = b.into_iter().map(|x| s.put(x)).collect();
    futures::future::join(futures::future::join_all(a), futures::future::join_all(b)).await
}

/// What a put allocates once the store is warm (files preallocated, write buffers pooled,
/// batches recycled), counted on the shard's thread over rounds of 60 concurrent puts whose
/// batches the test built beforehand: one allocation per put (its result, `phys_offsets`)
/// and a bounded number per group commit, none per record written.
#[test]
fn steady_state_allocations_are_one_per_put_and_a_few_per_batch() {
    let dir = test_dir("alloc");
    run(move || async move {
        let mut c = cfg(&dir, FlushMode::Sync);
        c.commitlog_file_size = 8 << 20;
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        // Two halves of 30: futures' join_all boxes each future of a larger set.
        let half = |n: usize| -> Vec<PutBatch> {
            (0..30)
                .map(|i| batch("A", (i % 4) as u32, &[&body(n * 30 + i, 200)]))
                .collect()
        };
        for r in 0..20 {
            let (a, b) = put_halves(&s, half(2 * r), half(2 * r + 1)).await;
            assert!(a.iter().chain(&b).all(|p| p.is_ok()));
        }
        let rounds = 50;
        let mut halves: Vec<(Vec<PutBatch>, Vec<PutBatch>)> = (20..20 + rounds)
            .map(|r| (half(2 * r), half(2 * r + 1)))
            .collect();
        let mut results = Vec::with_capacity(rounds * 60);
        let writes_before = s.stats().write_count;
        let before = crate::test_alloc::allocations();
        for (a, b) in halves.drain(..) {
            let (ra, rb) = put_halves(&s, a, b).await;
            results.extend(ra);
            results.extend(rb);
        }
        let allocated = crate::test_alloc::allocations() - before;
        let writes = s.stats().write_count - writes_before;
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status == PutStatus::Ok)));
        // The test's own, per round: the two vectors of futures and join_all's two boxes.
        // Each put: its result. Each batch: its completion, its I/O (glommio's sources for
        // the write and the fdatasync) and the list of queues it reached.
        let store = allocated - 4 * rounds as u64;
        let puts = results.len() as u64;
        let per_batch = store.saturating_sub(puts) as f64 / writes.max(1) as f64;
        eprintln!(
            "steady state: {allocated} allocations for {puts} puts in {writes} batches: \
             {:.2} per put, {per_batch:.1} per batch beyond one per put",
            store as f64 / puts as f64
        );
        assert!(
            store <= puts + BATCH_ALLOCATIONS_MAX * writes,
            "{store} allocations for {puts} puts in {writes} batches: more than one per put \
             and {BATCH_ALLOCATIONS_MAX} per batch"
        );
        s.shutdown().await.unwrap();
    });
}

#[test]
fn roll_over_writes_blank_marker_and_reads_across_files() {
    let dir = test_dir("roll");
    let d2 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d2, FlushMode::Sync), ShardId(1), false)
            .await
            .unwrap();
        put_n(&s, "R", 0, 0, 200, 1000).await; // ~1.1 KB each: > 3 files of 64 KiB
        assert_queue(&s, "R", 0, 200, 1000).await;
        s.shutdown().await.unwrap();
    });
    let files = io::list_numbered_files(&dir.join("commitlog/1")).unwrap();
    assert!(files.len() >= 4, "{files:?}");
    let data = std::fs::read(&files[0].1).unwrap();
    assert_eq!(data.len() as u64, FILE_SIZE);
    // Walk file 0: records, then the blank marker that covers the rest of the file.
    let mut pos = 0usize;
    loop {
        match record::check(&data[pos..]).unwrap() {
            Decoded::Record(r) => pos += r.total_size as usize,
            Decoded::Blank(rem) => {
                assert_eq!(pos + rem as usize, data.len());
                break;
            }
            other => panic!("unexpected {other:?} at {pos}"),
        }
    }
}

/// Writes `bytes` at a local commit-log offset of shard `shard` (test-only crash simulation).
fn poke(dir: &Path, shard: u16, local: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let start = local / FILE_SIZE * FILE_SIZE;
    let path = dir
        .join("commitlog")
        .join(shard.to_string())
        .join(io::segment_name(start));
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, local - start).unwrap();
    f.sync_all().unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// An in-flight record torn after `n` bytes, written after the acknowledged end.
    TornInFlight(usize),
    /// Random garbage after the end.
    Garbage,
    /// The last acknowledged record cut after `n` bytes (e.g. lost sectors): it must go.
    CutLast(usize),
}

fn crash_case(damage: Damage) {
    let dir = test_dir("crash");
    let d2 = dir.to_path_buf();
    let n = 30usize;
    let (last_phys, last_len, end) = {
        let d = d2.clone();
        run(move || async move {
            let s = ShardStore::open(cfg(&d, FlushMode::Sync), ShardId(2), false)
                .await
                .unwrap();
            let res = put_n(&s, "C", 0, 0, n, 700).await;
            let last = res[n - 1].phys_offsets[0];
            let rec = s.lookup_record(last).await.unwrap().unwrap();
            let end = s.stats().visible_local_offset;
            // Simulated crash: no shutdown, the store is just dropped.
            drop(s);
            (last & LOCAL_OFFSET_MASK, rec.len(), end)
        })
    };
    let expect_n = match damage {
        Damage::TornInFlight(k) => {
            let mut rec = vec![0u8; last_len];
            // A plausible next record: same bytes as the last, at the end, torn after k bytes.
            let f = std::fs::read(
                dir.join("commitlog/2")
                    .join(io::segment_name(last_phys / FILE_SIZE * FILE_SIZE)),
            )
            .unwrap();
            let off = (last_phys % FILE_SIZE) as usize;
            rec.copy_from_slice(&f[off..off + last_len]);
            if end % FILE_SIZE + k as u64 <= FILE_SIZE {
                poke(&dir, 2, end, &rec[..k]);
            }
            n
        }
        Damage::Garbage => {
            let g: Vec<u8> = (0..3000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let room = (FILE_SIZE - end % FILE_SIZE) as usize;
            poke(&dir, 2, end, &g[..g.len().min(room)]);
            n
        }
        Damage::CutLast(k) => {
            poke(&dir, 2, last_phys + k as u64, &vec![0u8; last_len - k]);
            n - 1
        }
    };
    run(move || async move {
        let s = ShardStore::open(cfg(&d2, FlushMode::Sync), ShardId(2), true)
            .await
            .unwrap();
        assert_queue(&s, "C", 0, expect_n, 700).await;
        // The log continues right after the last valid record.
        let r = s.put(batch("C", 0, &[&body(expect_n, 700)])).await.unwrap();
        assert_eq!(r.first_queue_offset, expect_n as u64);
        assert_queue(&s, "C", 0, expect_n + 1, 700).await;
        s.shutdown().await.unwrap();
        drop(s);
        // And survives a clean reopen.
        let s = ShardStore::open(cfg(&d2, FlushMode::Sync), ShardId(2), false)
            .await
            .unwrap();
        assert_queue(&s, "C", 0, expect_n + 1, 700).await;
        s.shutdown().await.unwrap();
    });
}

#[test]
fn recovery_cuts_torn_in_flight_record() {
    for k in [1, 4, 8, 20, 90, 400, 700] {
        crash_case(Damage::TornInFlight(k));
    }
}

#[test]
fn recovery_cuts_garbage_tail() {
    crash_case(Damage::Garbage);
}

#[test]
fn recovery_drops_cut_last_record_and_its_cq_entry() {
    for k in [0, 3, 50, 699] {
        crash_case(Damage::CutLast(k));
    }
}

#[test]
fn clean_reopen_continues_offsets_async_mode() {
    let dir = test_dir("clean");
    run(move || async move {
        let mut c = cfg(&dir, FlushMode::Async);
        c.read_cache_bytes = 1 << 20;
        let s = ShardStore::open(c.clone(), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "A", 5, 0, 40, 300).await;
        assert_queue(&s, "A", 5, 40, 300).await;
        glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
        assert!(s.stats().fsync_count >= 1, "async timer fdatasyncs");
        s.shutdown().await.unwrap();
        drop(s);
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        assert_queue(&s, "A", 5, 40, 300).await;
        let r = put_n(&s, "A", 5, 40, 5, 300).await;
        assert_eq!(r[0].first_queue_offset, 40);
        assert_queue(&s, "A", 5, 45, 300).await;
        s.shutdown().await.unwrap();
    });
}

/// After a clean stop the checkpoint says where the log ends: nothing is scanned. After a
/// crash the scan starts at the checkpoint's file, not at the log's start, and its end
/// becomes the next checkpoint.
#[test]
fn a_clean_reopen_scans_nothing_and_a_crash_scan_starts_at_the_checkpoint() {
    let dir = test_dir("scan");
    run(move || async move {
        let c = cfg(&dir, FlushMode::Sync);
        let file = c.commitlog_file_size;
        let s = ShardStore::open(c.clone(), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "S", 0, 0, 300, 900).await; // ~300 KB: five 64 KiB files
        let end = s.stats().max_local_offset;
        assert!(end > 4 * file, "{end}");
        s.shutdown().await.unwrap();
        drop(s);
        let s = ShardStore::open(c.clone(), ShardId(0), false)
            .await
            .unwrap();
        assert_eq!(
            s.stats().recovery_scanned_bytes,
            0,
            "a clean reopen scanned the log"
        );
        assert_queue(&s, "S", 0, 300, 900).await;
        s.shutdown().await.unwrap();
        drop(s);
        // As after kill -9 (abort file present): scan from the checkpoint's file.
        let s = ShardStore::open(c.clone(), ShardId(0), true).await.unwrap();
        let scanned = s.stats().recovery_scanned_bytes;
        assert!(
            scanned > 0 && scanned <= file,
            "a crash scan of {scanned} bytes: from the checkpoint's file, within one file of {file}"
        );
        assert_queue(&s, "S", 0, 300, 900).await;
        s.shutdown().await.unwrap();
        drop(s);
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        assert_eq!(
            s.stats().recovery_scanned_bytes,
            0,
            "the recovery's end is the checkpoint"
        );
        s.shutdown().await.unwrap();
    });
}

/// ASYNC_FLUSH acknowledges once written and fdatasyncs on its interval: with puts arriving
/// all the time for 1 s, about one fdatasync per `flushIntervalCommitLog` (100 ms here: 10),
/// not one per put (hundreds) and not none. Broad bounds: a loaded host may delay a timer,
/// which only lowers the count.
#[test]
fn async_flush_fdatasyncs_on_its_interval() {
    let dir = test_dir("async-interval");
    run(move || async move {
        let mut c = cfg(&dir, FlushMode::Async);
        c.commitlog_file_size = 4 << 20;
        c.flush_interval_ms = 100;
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        let before = s.stats();
        let t = std::time::Instant::now();
        let mut puts = 0usize;
        while t.elapsed() < std::time::Duration::from_secs(1) {
            put_n(&s, "F", 0, puts, 1, 200).await;
            puts += 1;
            glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
        }
        let fsyncs = s.stats().fsync_count - before.fsync_count;
        assert!(
            (4..=12).contains(&fsyncs),
            "{fsyncs} fdatasyncs in 1 s of {puts} puts with a 100 ms interval"
        );
        assert!(puts > 100, "{puts} puts");
        s.shutdown().await.unwrap();
    });
}

#[test]
fn consume_queues_rebuilt_when_they_lag_the_log() {
    let dir = test_dir("cqlag");
    let d2 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d2, FlushMode::Sync), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "Q", 0, 0, 120, 200).await; // 120 entries: 3 CQ files of 50
        put_n(&s, "P", 7, 0, 10, 200).await;
        s.shutdown().await.unwrap();
    });
    // Queue Q loses its last file and the tail of the second; queue P loses everything.
    let qdir = dir.join("consumequeue/Q/0");
    let files = io::list_numbered_files(&qdir).unwrap();
    assert_eq!(files.len(), 3);
    std::fs::remove_file(&files[2].1).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&files[1].1)
            .unwrap();
        f.write_all_at(&[0u8; 20 * 30], 20 * 20).unwrap();
    }
    std::fs::remove_dir_all(dir.join("consumequeue/P")).unwrap();
    let d3 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d3, FlushMode::Sync), ShardId(0), true)
            .await
            .unwrap();
        assert_queue(&s, "Q", 0, 120, 200).await;
        assert_queue(&s, "P", 7, 10, 200).await;
        s.shutdown().await.unwrap();
    });
    assert_eq!(
        io::list_numbered_files(&qdir).unwrap().len(),
        3,
        "rebuilt units written back"
    );
}

#[test]
fn illegal_messages_are_rejected() {
    let dir = test_dir("illegal");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir, FlushMode::Sync), ShardId(0), false)
            .await
            .unwrap();
        let big = vec![0u8; 9000];
        let e = s.put(batch("T", 0, &[&big])).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::MessageIllegal(m) if m.contains("maxMessageSize")),
            "{e}"
        );
        let long = "t".repeat(128);
        assert!(matches!(
            s.put(batch(&long, 0, &[b"x"])).await,
            Err(StoreError::MessageIllegal(_))
        ));
        let m = vec![0u8; 8000];
        let many: Vec<&[u8]> = (0..9).map(|_| &m[..]).collect();
        let e = s.put(batch("T", 0, &many)).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::MessageIllegal(m) if m.contains("does not fit")),
            "{e}"
        );
        // Nothing was stored, the store is still usable.
        assert_eq!(s.max_offset("T", 0), 0);
        put_n(&s, "T", 0, 0, 1, 10).await;
        s.shutdown().await.unwrap();
    });
}

#[test]
fn batch_put_and_no_wait_and_listener() {
    let dir = test_dir("batch");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir, FlushMode::Sync), ShardId(0), false)
            .await
            .unwrap();
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = seen.clone();
        s.set_arrival_listener(Box::new(move |t, q| {
            s2.borrow_mut().push((t.to_string(), q))
        }));
        let mut b = batch("B", 2, &[&body(0, 64), &body(1, 64), &body(2, 64)]);
        b.wait_durable = false;
        let r = s.put(b).await.unwrap();
        assert_eq!(r.first_queue_offset, 0);
        assert_eq!(r.phys_offsets.len(), 3);
        assert!(r.phys_offsets.windows(2).all(|w| w[0] < w[1]));
        // Visible to consumers once durable (the flusher fsyncs right after the write).
        let mut tries = 0;
        while s.max_offset("B", 2) < 3 && tries < 1000 {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            tries += 1;
        }
        assert_queue(&s, "B", 2, 3, 64).await;
        assert_eq!(seen.borrow().as_slice(), &[("B".to_string(), 2)]);
        s.shutdown().await.unwrap();
        assert!(matches!(
            s.put(batch("B", 2, &[b"x"])).await,
            Err(StoreError::ShutDown)
        ));
    });
}

#[test]
fn get_reports_bytes_behind_the_log_end() {
    let dir = test_dir("behind");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir, FlushMode::Sync), ShardId(0), false)
            .await
            .unwrap();
        // Queues 0 and 1 interleaved: what lies behind a reader of queue 0 includes queue 1.
        let mut phys = Vec::new();
        for i in 0..6 {
            let r = put_n(&s, "TopicB", i % 2, i as usize, 1, 100).await;
            phys.push(r[0].phys_offsets[0]);
        }
        let end = s.visible_end();
        let size = s
            .get_messages("TopicB", 0, 0, 1, 1 << 20, &|_| true)
            .await
            .unwrap()
            .records[0]
            .len() as u64;
        async fn behind_of(
            s: &ShardStore,
            off: u64,
            max: u32,
            f: &dyn Fn(i64) -> bool,
        ) -> (GetStatus, Option<u64>) {
            let r = s
                .get_messages("TopicB", 0, off, max, 1 << 20, f)
                .await
                .unwrap();
            (r.status, r.behind_bytes)
        }
        // One message of three: everything after it is behind.
        assert_eq!(
            behind_of(&s, 0, 1, &|_| true).await,
            (GetStatus::Found, Some(end - (phys[0] + size)))
        );
        // Read to the end of queue 0: only queue 1's last message lies beyond.
        assert_eq!(
            behind_of(&s, 0, 32, &|_| true).await,
            (GetStatus::Found, Some(end - (phys[4] + size)))
        );
        // Entries filtered out count as passed.
        assert_eq!(
            behind_of(&s, 1, 32, &|_| false).await,
            (GetStatus::NoMatchedMessage, Some(end - (phys[4] + size)))
        );
        // Nothing scanned: no figure.
        assert_eq!(
            behind_of(&s, 3, 32, &|_| true).await,
            (GetStatus::OffsetOverflowOne, None)
        );
        let r = s
            .get_messages("TopicB", 1, 0, 32, 1 << 20, &|_| true)
            .await
            .unwrap();
        assert_eq!(r.behind_bytes, Some(0));
        s.shutdown().await.unwrap();
    });
}
