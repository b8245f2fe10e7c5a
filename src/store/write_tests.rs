//! Write-path tests: injected write/fdatasync failures (the whole batch fails, later puts are
//! refused, earlier data is still read), a slow fdatasync (FLUSH_DISK_TIMEOUT at the deadline,
//! WAIT=false puts answered once written), the write pool reused in steady state, and rolls
//! that never wait for a file. Real-disk directory under `target/test-tmp`.

use crate::store::test_util::{base_config, run, test_dir};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::commitlog::MAX_WAITING_BATCHES;
use super::faults::Faults;
use super::record::{self, Decoded};
use super::*;

fn cfg(dir: &Path, mode: FlushMode, file_size: u64) -> StoreConfig {
    StoreConfig {
        commitlog_file_size: file_size,
        consume_queue_file_size: 20 * 1000,
        flush_interval_ms: 10,
        group_commit_max_bytes: GROUP_COMMIT_MAX_BYTES,
        ..base_config(dir, mode)
    }
}

fn one(i: usize) -> PutBatch {
    sized(i, 0)
}

/// A one-message put whose body is `body-<i>` padded to at least `len` bytes.
fn sized(i: usize, len: usize) -> PutBatch {
    let mut body = format!("body-{i}").into_bytes();
    if body.len() < len {
        body.resize(len, b'.');
    }
    PutBatch {
        topic: "T".into(),
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_tx_offset: 0,
        messages: vec![PutMessage {
            body: Bytes::from(body),
            flag: 0,
            properties: String::new(),
            tags_code: 0,
        }],
        wait_durable: true,
    }
}

/// Puts `n` concurrently (they share group-commit batches); returns their results in order.
async fn put_concurrently(
    s: &Rc<ShardStore>,
    from: usize,
    n: usize,
) -> Vec<Result<PutResult, StoreError>> {
    put_sized(s, from, n, 0).await
}

async fn put_sized(
    s: &Rc<ShardStore>,
    from: usize,
    n: usize,
    len: usize,
) -> Vec<Result<PutResult, StoreError>> {
    let tasks: Vec<_> = (from..from + n)
        .map(|i| {
            let s = s.clone();
            glommio::spawn_local(async move { s.put(sized(i, len)).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await);
    }
    out
}

async fn read_bodies(s: &ShardStore, n: u64) -> Vec<String> {
    let r = s
        .get_messages("T", 0, 0, n as u32 + 10, 1 << 20, &|_| true)
        .await
        .unwrap();
    r.records
        .iter()
        .map(|rec| {
            let Decoded::Record(v) = record::check(rec).unwrap() else {
                panic!("not a record")
            };
            String::from_utf8(v.body.to_vec()).unwrap()
        })
        .collect()
}

fn fault_case(mode: FlushMode, faults: &'static str) {
    let dir = test_dir("fault");
    let c = cfg(&dir, mode, 1 << 20);
    run(move || async move {
        let f = Faults::parse(faults).unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        // Two good batches (one put each), then the faulty one with several puts in it.
        for i in 0..2 {
            s.put(one(i)).await.unwrap();
        }
        if mode == FlushMode::Async {
            // The timer's fdatasync happens in the background; writes are what can fail here.
            glommio::timer::sleep(std::time::Duration::from_millis(30)).await;
        }
        let results = put_concurrently(&s, 2, 8).await;
        for r in &results {
            let e = r.as_ref().expect_err("a put of the failed batch succeeded");
            let StoreError::Io { op, path, .. } = e else {
                panic!("expected an I/O error, got {e:?}")
            };
            assert!(["write", "fdatasync"].contains(op), "{e}");
            assert!(path.contains("commitlog"), "{e}");
            assert!(e.to_string().contains("injected"), "{e}");
        }
        // Later puts are refused with the reason.
        let later = s.put(one(100)).await.unwrap_err();
        assert!(
            matches!(&later, StoreError::NotWritable(why) if why.contains("injected")),
            "{later:?}"
        );
        assert!(s.not_writable().is_some());
        // Reads of the acknowledged data go on; nothing of the failed batch is visible.
        assert_eq!(read_bodies(&s, 2).await, vec!["body-0", "body-1"]);
        assert_eq!(s.max_offset("T", 0), 2);
        assert!(s.shutdown().await.is_err(), "shutdown reports the failure");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fdatasync_failure_fails_its_batch_then_refuses_writes_sync() {
    fault_case(FlushMode::Sync, "fdatasync_error_after=2");
}

#[test]
fn write_failure_fails_its_batch_then_refuses_writes_sync() {
    fault_case(FlushMode::Sync, "write_error_after=2");
}

#[test]
fn write_failure_fails_its_batch_then_refuses_writes_async() {
    fault_case(FlushMode::Async, "write_error_after=2");
}

#[test]
fn async_timer_fdatasync_failure_stops_writes() {
    let dir = test_dir("async-sync-fault");
    let c = cfg(&dir, FlushMode::Async, 1 << 20);
    run(move || async move {
        let f = Faults::parse("fdatasync_error_after=0").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        // Acked once written; the timer's fdatasync then fails.
        s.put(one(0)).await.unwrap();
        let mut refused = None;
        for i in 1..200 {
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            if let Err(e) = s.put(one(i)).await {
                refused = Some(e);
                break;
            }
        }
        let e = refused.expect("the store kept taking writes after a failed fdatasync");
        assert!(e.to_string().contains("fdatasync"), "{e:?}");
        assert!(!read_bodies(&s, 1).await.is_empty());
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn steady_state_reuses_buffers_and_rolls_never_wait() {
    let dir = test_dir("steady");
    // Small files so the run rolls many times.
    let c = cfg(&dir, FlushMode::Sync, 64 * 1024);
    run(move || async move {
        let s = ShardStore::open_with_faults(c, ShardId(0), false, Faults::none())
            .await
            .unwrap();
        for round in 0..40 {
            for r in put_sized(&s, round * 16, 16, 1000).await {
                r.unwrap();
            }
            // Let the background preallocation run, as idle time between bursts would.
            glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
        }
        let st = s.stats();
        assert!(st.max_local_offset > 4 * 64 * 1024, "rolled several files");
        assert_eq!(st.roll_waits, 0, "a put waited for a file: {st:?}");
        assert!(
            st.write_buffers_reused > 4 * st.write_buffers_allocated,
            "write buffers not reused: {st:?}"
        );
        assert_eq!(s.max_offset("T", 0), 640);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A slow disk: every put answers FLUSH_DISK_TIMEOUT at its deadline, not when the fdatasync
/// ends; the records still become durable and visible afterwards.
#[test]
fn slow_fdatasync_answers_flush_disk_timeout_at_the_deadline() {
    let dir = test_dir("slow-sync");
    let c = StoreConfig {
        sync_flush_timeout_ms: 60,
        ..cfg(&dir, FlushMode::Sync, 1 << 20)
    };
    run(move || async move {
        let f = Faults::parse("fdatasync_delay_ms=600").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        // The first batch (one put) holds the flusher; the next 8 queue behind it.
        let results = put_concurrently(&s, 0, 9).await;
        let took = t.elapsed();
        for r in &results {
            assert_eq!(r.as_ref().unwrap().status, PutStatus::FlushDiskTimeout);
        }
        assert!(
            took < std::time::Duration::from_millis(500),
            "timeouts answered late: {took:?}"
        );
        // Not visible yet; durable and visible once the slow fdatasyncs are done.
        assert_eq!(s.max_offset("T", 0), 0);
        for _ in 0..400 {
            if s.max_offset("T", 0) == 9 {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(s.max_offset("T", 0), 9);
        assert_eq!(read_bodies(&s, 9).await.len(), 9);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// WAIT=false puts resolve once written; durable ones of the same batch wait for fdatasync.
#[test]
fn wait_false_resolves_before_the_fdatasync() {
    let dir = test_dir("wait-false");
    let c = cfg(&dir, FlushMode::Sync, 1 << 20);
    run(move || async move {
        let f = Faults::parse("fdatasync_delay_ms=300").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        let (s1, s2) = (s.clone(), s.clone());
        let quick = glommio::spawn_local(async move {
            let r = s1
                .put(PutBatch {
                    wait_durable: false,
                    ..one(0)
                })
                .await;
            (r, t.elapsed())
        });
        let slow = glommio::spawn_local(async move { (s2.put(one(1)).await, t.elapsed()) });
        let ((rq, tq), (rs, ts)) = (quick.await, slow.await);
        assert_eq!(rq.unwrap().status, PutStatus::Ok);
        assert_eq!(rs.unwrap().status, PutStatus::Ok);
        assert!(
            tq < std::time::Duration::from_millis(250),
            "WAIT=false waited: {tq:?}"
        );
        assert!(
            ts >= std::time::Duration::from_millis(300),
            "durable put early: {ts:?}"
        );
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A slow group commit is kept with its length (what mqbench reads as the device's share of an
/// outlier); a quick one is not.
#[test]
fn a_slow_group_commit_is_recorded_with_its_length() {
    let dir = test_dir("slow-flush");
    let c = cfg(&dir, FlushMode::Sync, 1 << 20);
    run(move || async move {
        let quick = ShardStore::open_with_faults(c.clone(), ShardId(0), false, Faults::default())
            .await
            .unwrap();
        assert_eq!(quick.put(one(0)).await.unwrap().status, PutStatus::Ok);
        let fast: Vec<_> = quick.slow_flushes().recent.into_iter().collect();
        assert!(
            fast.iter().all(|s| s.lag_ms < 40),
            "a plain fdatasync recorded as 40 ms or more: {fast:?}"
        );
        quick.shutdown().await.unwrap();
        drop(quick);
        let f = Faults::parse("fdatasync_delay_ms=60").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        let before = crate::runtime::now_ms();
        assert_eq!(s.put(one(1)).await.unwrap().status, PutStatus::Ok);
        let slow = s.slow_flushes();
        let last = slow
            .recent
            .back()
            .copied()
            .expect("the 60 ms flush is kept");
        assert!(last.lag_ms >= 60, "{slow:?}");
        assert!(last.at_ms >= before, "{slow:?}");
        assert!(slow.max_ms >= 60);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Back-pressure, by age: while a slow fdatasync holds the batch being written, puts wait in
/// the next batch; once that batch has waited `busy_timeout_ms`, new puts are refused as busy
/// (upstream's fast-failure remark), the waiting ones still succeed, and the store takes puts
/// again by itself once the disk catches up.
#[test]
fn a_backlog_older_than_the_busy_timeout_refuses_new_puts_until_it_clears() {
    let dir = test_dir("busy-age");
    let c = StoreConfig {
        busy_timeout_ms: 200,
        ..cfg(&dir, FlushMode::Sync, 1 << 20)
    };
    run(move || async move {
        let f = Faults::parse("fdatasync_delay_ms=700").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let first = glommio::spawn_local(async move { s1.put(one(0)).await });
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        // The first batch is being written (its fdatasync takes 700 ms): this one waits.
        let waiting = glommio::spawn_local(async move { s2.put(one(1)).await });
        glommio::timer::sleep(std::time::Duration::from_millis(300)).await;
        let refused = s.put(one(2)).await;
        match &refused {
            Err(
                e @ StoreError::Busy {
                    waited_ms,
                    batches,
                    why,
                },
            ) => {
                assert!(*waited_ms >= 200 && *batches == 1, "{e}");
                assert!(why.contains("osPageCacheBusyTimeOutMills=200"), "{e}");
                assert!(
                    e.to_string().starts_with("[PCBUSY_CLEAN_QUEUE]broker busy"),
                    "{e}"
                );
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert_eq!(first.await.unwrap().status, PutStatus::Ok);
        assert_eq!(waiting.await.unwrap().status, PutStatus::Ok);
        // The backlog is gone: puts are taken again (this one pays its own slow fdatasync).
        assert_eq!(s.put(one(3)).await.unwrap().status, PutStatus::Ok);
        assert_eq!(s.stats().busy_refusals, 1);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Back-pressure, by size: puts arriving faster than the disk writes them fill at most
/// `MAX_WAITING_BATCHES` batches; the puts beyond are refused as busy instead of growing the
/// shard's memory, and every put that was taken succeeds.
#[test]
fn at_most_max_waiting_batches_wait_behind_a_slow_disk() {
    let dir = test_dir("busy-size");
    let c = StoreConfig {
        busy_timeout_ms: 60_000,
        group_commit_max_bytes: 4096,
        ..cfg(&dir, FlushMode::Sync, 4 << 20)
    };
    run(move || async move {
        // Each batch's fdatasync takes 20 ms: the 400 puts below all arrive before the first
        // one ends (and the 65 batches taken finish well inside the flush timeout).
        let f = Faults::parse("fdatasync_delay_ms=20").unwrap();
        let s = ShardStore::open_with_faults(c, ShardId(0), false, f)
            .await
            .unwrap();
        // ~1.1 KiB records: a 4 KiB batch closes after 4 of them.
        let puts: Vec<_> = (0..400)
            .map(|i| {
                let s = s.clone();
                glommio::spawn_local(async move { s.put(sized(i, 1000)).await })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for p in puts {
            match p.await {
                Ok(r) => {
                    assert_eq!(r.status, PutStatus::Ok);
                    ok += 1;
                }
                Err(StoreError::Busy { batches, why, .. }) => {
                    assert_eq!(batches, MAX_WAITING_BATCHES, "{why}");
                    busy += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy > 0, "400 puts never hit the limit");
        // The batches written meanwhile plus MAX_WAITING_BATCHES of 3 to 4 records.
        assert!(
            (3 * MAX_WAITING_BATCHES..=4 * (MAX_WAITING_BATCHES + 2)).contains(&ok),
            "{ok} puts taken"
        );
        assert_eq!(ok + busy, 400);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Async mode writes small chunks through the file's mapping and chunks of
/// `BUFFERED_WRITE_MIN` or more with a buffered write (ARCHITECTURE 41): both land in the same
/// page cache at their positions, so a reopen after a kill (no shutdown) reads every record, in
/// order, whichever way each was written.
#[test]
fn async_mode_small_and_large_chunks_both_reach_the_file() {
    let dir = test_dir("asyncmix");
    let d = dir.to_path_buf();
    let big = super::commitlog::BUFFERED_WRITE_MIN + 1000;
    let config = |d: &Path| StoreConfig {
        max_message_size: 1 << 20,
        ..cfg(d, FlushMode::Async, 4 << 20)
    };
    run(move || async move {
        let s = ShardStore::open(config(&d), ShardId(0), false)
            .await
            .unwrap();
        s.put(sized(0, 10)).await.unwrap();
        s.put(sized(1, big)).await.unwrap();
        s.put(sized(2, 10)).await.unwrap();
        for r in put_sized(&s, 3, 40, 4096).await {
            r.unwrap();
        }
        s.put(sized(43, 10)).await.unwrap();
        drop(s); // kill -9: no shutdown, no final fdatasync
    });
    let d = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(config(&d), ShardId(0), true)
            .await
            .unwrap();
        let bodies = read_bodies(&s, 44).await;
        assert_eq!(bodies.len(), 44);
        for (i, b) in bodies.iter().enumerate() {
            assert!(
                b.starts_with(&format!("body-{i}")),
                "record {i}: {}",
                &b[..b.len().min(20)]
            );
        }
        assert_eq!(bodies[1].len(), big);
        s.shutdown().await.unwrap();
    });
}

/// Bytes of `path` in extents that are allocated but unwritten (FIEMAP), or None when the
/// filesystem does not answer FIEMAP.
fn unwritten_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::io::AsRawFd;
    const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
    const FIEMAP_FLAG_SYNC: u32 = 1;
    const EXTENT_LAST: u32 = 0x1;
    const EXTENT_UNWRITTEN: u32 = 0x800;
    const MAX: usize = 64;
    const HEADER: usize = 32;
    const EXTENT: usize = 56;
    let f = std::fs::File::open(path).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
    let mut start = 0u64;
    let mut unwritten = 0u64;
    loop {
        // u64 words keep the buffer aligned for the kernel's struct fiemap.
        let mut words = vec![0u64; (HEADER + MAX * EXTENT) / 8];
        words[0] = start;
        words[1] = u64::MAX - start;
        // fm_flags, then fm_extent_count after fm_mapped_extents.
        words[2] = u64::from(FIEMAP_FLAG_SYNC);
        words[3] = MAX as u64;
        // SAFETY: the buffer holds a struct fiemap header and room for MAX extents, as
        // fm_extent_count says; the descriptor is open.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP, words.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mapped = u32_at(&bytes, 20) as usize;
        if mapped == 0 {
            return Some(unwritten);
        }
        for i in 0..mapped {
            let e = HEADER + i * EXTENT;
            let (logical, len, flags) = (
                u64_at(&bytes, e),
                u64_at(&bytes, e + 16),
                u32_at(&bytes, e + 40),
            );
            if flags & EXTENT_UNWRITTEN != 0 {
                unwritten += len;
            }
            start = logical + len;
            if flags & EXTENT_LAST != 0 {
                return Some(unwritten);
            }
        }
    }
}

/// Every body of queue T/0, read 1 MiB at a time.
async fn read_all_bodies(s: &ShardStore) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let r = s
            .get_messages("T", 0, out.len() as u64, 10_000, 1 << 20, &|_| true)
            .await
            .unwrap();
        if r.records.is_empty() {
            return out;
        }
        for rec in &r.records {
            let Decoded::Record(v) = record::check(rec).unwrap() else {
                panic!("not a record")
            };
            out.push(String::from_utf8(v.body.to_vec()).unwrap());
        }
    }
}

/// Asserts that no commit-log file of shard 0 has unwritten blocks.
fn assert_all_written(dir: &Path, when: &str) {
    let files = unwritten_per_file(dir).unwrap();
    assert!(
        files.iter().all(|(_, u)| *u == 0),
        "unwritten blocks {when}: {files:?}"
    );
}

/// Unwritten bytes of every commit-log file of shard 0, by file name.
fn unwritten_per_file(dir: &Path) -> Option<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (start, path) in super::io::list_numbered_files(&dir.join("commitlog/0")).unwrap() {
        out.push((super::io::segment_name(start), unwritten_bytes(&path)?));
    }
    Some(out)
}

/// `warmMapedFileEnable` in Sync mode (ARCHITECTURE 46): every commit-log file is written with
/// zeros before the flusher writes into it, so no block of it is left fallocated-but-unwritten
/// (FIEMAP): the first file, the files preallocated ahead of rolls, and, after a kill, the tail
/// recovery cuts; a clean restart keeps the zeros. Without the key the same run leaves
/// unwritten blocks (the check can fail). Every record reads back.
#[test]
fn warm_files_have_no_unwritten_blocks_before_records_land_in_them() {
    let file_size = 1 << 20;
    let config = move |d: &Path, warm: Option<u64>, dsync: bool| StoreConfig {
        warm_commitlog: warm,
        dsync_writes: dsync,
        ..cfg(d, FlushMode::Sync, file_size)
    };
    // With O_DSYNC group commits the zeros go through the plain handle the file is created
    // (or recovered) with, which is then reopened O_DSYNC: they must still be there.
    for (warm, dsync) in [
        (None, false),
        (Some(64 * 1024), false),
        (Some(64 * 1024), true),
    ] {
        let dir = test_dir("warm");
        let d = dir.to_path_buf();
        run(move || async move {
            let s = ShardStore::open(config(&d, warm, dsync), ShardId(0), false)
                .await
                .unwrap();
            for round in 0..40 {
                for r in put_sized(&s, round * 16, 16, 4000).await {
                    r.unwrap();
                }
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            }
            assert!(s.stats().max_local_offset > 2 * file_size, "rolled twice");
            drop(s); // kill -9
        });
        let Some(files) = unwritten_per_file(&dir) else {
            eprintln!("skipped: this filesystem does not answer FIEMAP");
            return;
        };
        assert!(files.len() >= 3, "{files:?}");
        match warm {
            None => assert!(
                files.iter().any(|(_, u)| *u > 0),
                "fallocated files keep unwritten blocks: {files:?}"
            ),
            Some(_) => assert_all_written(&dir, "in warm files"),
        }
        let d = dir.to_path_buf();
        run(move || async move {
            // After the kill: the tail of the last file is cut (and written with zeros again).
            let s = ShardStore::open(config(&d, warm, dsync), ShardId(0), true)
                .await
                .unwrap();
            let bodies = read_all_bodies(&s).await;
            assert_eq!(bodies.len(), 640);
            for (i, b) in bodies.iter().enumerate() {
                assert!(b.starts_with(&format!("body-{i}.")), "record {i}");
            }
            s.put(sized(640, 10)).await.unwrap();
            s.shutdown().await.unwrap();
        });
        if warm.is_some() {
            assert_all_written(&dir, "after recovery");
            let d = dir.to_path_buf();
            run(move || async move {
                // A clean restart keeps the zeros behind the end.
                let s = ShardStore::open(config(&d, warm, dsync), ShardId(0), false)
                    .await
                    .unwrap();
                assert_eq!(read_all_bodies(&s).await.len(), 641);
                s.shutdown().await.unwrap();
            });
            assert_all_written(&dir, "after a clean restart");
        }
    }
}

/// Whether the descriptor was opened `O_DSYNC` (the `flags:` line of /proc/self/fdinfo).
fn is_dsync(fd: std::os::fd::RawFd) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|v| i32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    flags & libc::O_DSYNC != 0
}

/// (newest file, next file) of the log: whether each handle is O_DSYNC.
fn written_handles_dsync(s: &ShardStore) -> (bool, Option<bool>) {
    use std::os::fd::AsRawFd;
    let log = s.log.borrow();
    let last = log.segments.last().unwrap();
    (
        is_dsync(last.file.as_raw_fd()),
        log.next_segment
            .as_ref()
            .map(|n| is_dsync(n.file.as_raw_fd())),
    )
}

/// `dsync_writes` (ARCHITECTURE 47): the file group commits write into, and the one created
/// ahead of the roll, are O_DSYNC handles, on a fresh store, after rolls and after a kill
/// (the recovered newest file is reopened); each batch still counts one sync, and every
/// record reads back. Without the key no handle is O_DSYNC (the check can fail).
#[test]
fn dsync_group_commits_write_through_o_dsync_handles() {
    let file_size = 1 << 20;
    for dsync in [false, true] {
        let dir = test_dir("dsync");
        let d = dir.to_path_buf();
        let config = move |d: &Path| StoreConfig {
            dsync_writes: dsync,
            ..cfg(d, FlushMode::Sync, file_size)
        };
        run(move || async move {
            let s = ShardStore::open(config(&d), ShardId(0), false)
                .await
                .unwrap();
            assert_eq!(written_handles_dsync(&s).0, dsync, "first file");
            for round in 0..40 {
                let before = s.stats().fsync_count;
                for r in put_sized(&s, round * 16, 16, 4000).await {
                    r.unwrap();
                }
                assert!(s.stats().fsync_count > before, "round {round} synced");
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            }
            assert!(s.stats().max_local_offset > 2 * file_size, "rolled twice");
            let (last, next) = written_handles_dsync(&s);
            assert_eq!(last, dsync, "file after rolls");
            if let Some(next) = next {
                assert_eq!(next, dsync, "file created ahead");
            }
            drop(s); // kill -9
            let s = ShardStore::open(config(&d), ShardId(0), true)
                .await
                .unwrap();
            assert_eq!(written_handles_dsync(&s).0, dsync, "recovered newest file");
            s.put(sized(640, 10)).await.unwrap();
            let bodies = read_all_bodies(&s).await;
            assert_eq!(bodies.len(), 641);
            for (i, b) in bodies.iter().take(640).enumerate() {
                assert!(b.starts_with(&format!("body-{i}.")), "record {i}");
            }
            s.shutdown().await.unwrap();
        });
    }
}
