//! Store-level retention tests on a real-disk directory under `target/test-tmp`: small
//! commit-log files, aged by a fake clock, deleted by `retention_round`; min offsets advance,
//! reads below the minimum answer OFFSET_TOO_SMALL, a reopened store agrees, a read in flight
//! survives the deletion of its file, and the disk-full flag refuses and then admits puts.

use crate::store::test_util::{base_config, run, test_dir};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::super::io::list_numbered_files;
use super::super::record;
use super::*;
use crate::store::{
    FlushMode, GetStatus, PutBatch, PutMessage, PutStatus, ShardId, ShardStore, StoreConfig,
};

const BODY: usize = 1000;

fn store_cfg(dir: &Path) -> StoreConfig {
    StoreConfig {
        consume_queue_file_size: 20 * 10,
        ..base_config(dir, FlushMode::Sync)
    }
}

fn retention_cfg(dir: &Path) -> RetentionConfig {
    RetentionConfig {
        delete_hours: vec![4],
        delete_commitlog_pause_ms: 0,
        delete_cq_pause_ms: 0,
        index_dir: dir.join("index"),
        ..RetentionConfig::default()
    }
}

fn batch(topic: &str, i: usize) -> PutBatch {
    let mut body = format!("msg-{i}-").into_bytes();
    body.resize(BODY, b'x');
    PutBatch {
        topic: topic.into(),
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

async fn put_n(s: &ShardStore, topic: &str, from: usize, n: usize) {
    for i in from..from + n {
        let r = s.put(batch(topic, i)).await.unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.first_queue_offset, i as u64);
    }
}

fn low() -> DiskRatios {
    DiskRatios {
        commitlog: 0.30,
        consume_queue: 0.30,
        index: 0.30,
    }
}

fn at(r: f64) -> DiskRatios {
    DiskRatios {
        commitlog: r,
        consume_queue: r,
        index: r,
    }
}

/// The queue offset stored in a record.
fn queue_offset_of(rec: &[u8]) -> u64 {
    match record::check(rec).unwrap() {
        record::Decoded::Record(v) => v.queue_offset as u64,
        _ => panic!("not a record"),
    }
}

async fn assert_reads_from_min(s: &ShardStore, topic: &str) -> u64 {
    let min = s.min_offset(topic, 0);
    let below = s
        .get_messages(topic, 0, 0, 8, 1 << 20, &|_| true)
        .await
        .unwrap();
    if min > 0 {
        assert_eq!(below.status, GetStatus::OffsetTooSmall);
        assert_eq!(below.next_begin_offset, min);
        assert_eq!(below.min_offset, min);
    }
    let r = s
        .get_messages(topic, 0, min, 8, 1 << 20, &|_| true)
        .await
        .unwrap();
    assert_eq!(r.status, GetStatus::Found, "read at the new min {min}");
    assert_eq!(queue_offset_of(&r.records[0]), min);
    min
}

#[test]
fn expired_files_go_min_offsets_advance_and_reads_below_are_too_small() {
    let dir = test_dir("retention-expire");
    let d = dir.to_path_buf();
    run(move || async move {
        let rc = retention_cfg(&d);
        let s = ShardStore::open(store_cfg(&d), ShardId(0), false)
            .await
            .unwrap();
        // ~58 records per 64 KiB file: 300 + 20 records are 6 files.
        put_n(&s, "TopicA", 0, 300).await;
        put_n(&s, "TopicB", 0, 20).await;
        let shard_dir = d.join("commitlog/0");
        let files_before = list_numbered_files(&shard_dir).unwrap().len();
        assert!(files_before >= 5, "{files_before} files");
        let cq_dir = d.join("consumequeue/TopicA/0");
        s.flush_consume_queues(false).await.unwrap();
        let cq_before = list_numbered_files(&cq_dir).unwrap().len();
        assert_eq!(cq_before, 30, "10 units per CQ file");

        // Not the hour, disk fine: nothing happens whatever the age.
        let now = Now::system();
        let old = Now {
            ms: now.ms + 73 * 3600 * 1000,
            local_hour: 3,
        };
        let r = s.retention_round(&rc, old, low()).await.unwrap();
        assert_eq!(r.commitlog_files_deleted, 0);
        // The hour, but the files are young: nothing.
        let young = Now {
            ms: now.ms,
            local_hour: 4,
        };
        let r = s.retention_round(&rc, young, low()).await.unwrap();
        assert_eq!(r.commitlog_files_deleted, 0);
        assert_eq!(s.min_offset("TopicA", 0), 0);

        // The hour and 73 h later: every file but the one holding the end goes.
        let expired = Now {
            ms: now.ms + 73 * 3600 * 1000,
            local_hour: 4,
        };
        let r = s.retention_round(&rc, expired, low()).await.unwrap();
        let files_after = list_numbered_files(&shard_dir).unwrap();
        // Left: the file holding the end, plus the one the writer keeps ready beyond it.
        assert!(files_after.len() <= 2, "{files_after:?}");
        assert_eq!(r.commitlog_files_deleted, files_before - files_after.len());
        assert_eq!(r.min_local_offset, files_after[0].0);
        assert_eq!(s.stats().min_local_offset, files_after[0].0);
        assert!(r.consume_queue_files_deleted > 0);
        let cq_after = list_numbered_files(&cq_dir).unwrap();
        assert!(cq_after.len() < cq_before);
        assert!(cq_after[0].0 > 0, "head CQ files were deleted");

        let min_a = assert_reads_from_min(&s, "TopicA").await;
        assert!(min_a > 0);
        // TopicB's 20 records are all in the last file: still readable from 0.
        assert_eq!(assert_reads_from_min(&s, "TopicB").await, 0);
        // Sends go on; queue offsets continue.
        put_n(&s, "TopicA", 300, 5).await;
        assert_eq!(s.max_offset("TopicA", 0), 305);
        s.shutdown().await.unwrap();
        drop(s);

        // A reopened store starts from what is left and agrees on the minimum.
        let s = ShardStore::open(store_cfg(&d), ShardId(0), false)
            .await
            .unwrap();
        assert_eq!(s.min_offset("TopicA", 0), min_a);
        assert_eq!(s.max_offset("TopicA", 0), 305);
        assert_reads_from_min(&s, "TopicA").await;
        s.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forced_clean_deletes_unexpired_files_and_spares_the_current_one() {
    let dir = test_dir("retention-forced");
    let d = dir.to_path_buf();
    run(move || async move {
        let rc = retention_cfg(&d);
        let s = ShardStore::open(store_cfg(&d), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "TopicA", 0, 200).await;
        let shard_dir = d.join("commitlog/0");
        let before = list_numbered_files(&shard_dir).unwrap().len();
        assert!(before >= 3);
        let young_not_the_hour = Now {
            ms: Now::system().ms,
            local_hour: 5,
        };
        // Over diskMaxUsedSpaceRatio only: expired files only (none are).
        let r = s
            .retention_round(&rc, young_not_the_hour, at(0.80))
            .await
            .unwrap();
        assert!(r.verdict.space_to_delete && !r.verdict.clean_immediately);
        assert_eq!(r.commitlog_files_deleted, 0);
        // Forced clean disabled: still nothing.
        let no_force = RetentionConfig {
            clean_forcibly_enable: false,
            ..rc.clone()
        };
        let r = s
            .retention_round(&no_force, young_not_the_hour, at(0.86))
            .await
            .unwrap();
        assert_eq!(r.commitlog_files_deleted, 0);
        // Over the forced-clean ratio: unexpired files go too, never the last.
        let r = s
            .retention_round(&rc, young_not_the_hour, at(0.86))
            .await
            .unwrap();
        assert!(r.verdict.clean_immediately);
        let left = list_numbered_files(&shard_dir).unwrap().len();
        assert!(left <= 2, "the current file and the ready next one stay");
        assert_eq!(r.commitlog_files_deleted, before - left);
        assert_reads_from_min(&s, "TopicA").await;
        let r = s
            .retention_round(&rc, young_not_the_hour, at(0.99))
            .await
            .unwrap();
        assert_eq!(r.commitlog_files_deleted, 0, "the current file stays");
        s.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_read_in_flight_survives_the_deletion_of_its_file() {
    let dir = test_dir("retention-inflight");
    let d = dir.to_path_buf();
    run(move || async move {
        let rc = retention_cfg(&d);
        let s: Rc<ShardStore> = ShardStore::open(store_cfg(&d), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "TopicA", 0, 150).await;
        // What reader.rs holds while its DMA read is under way: a clone of the segment.
        let held = s.log.borrow().segments[0].clone();
        let file_size = std::fs::metadata(&held.path).unwrap().len();
        // A descriptor of the test's own: it keeps the inode, and shows its length after the
        // store let go of it.
        let witness = std::fs::File::open(&held.path).unwrap();
        let now = Now {
            ms: Now::system().ms,
            local_hour: 4,
        };
        let r = s.retention_round(&rc, now, at(0.86)).await.unwrap();
        assert!(r.commitlog_files_deleted >= 1);
        assert!(!held.path.exists(), "unlinked");
        let head = held.file.read_at(0, 4).await.unwrap();
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let rec = held.file.read_at(0, size as usize).await.unwrap();
        assert_eq!(
            queue_offset_of(&rec),
            0,
            "the deleted file is still readable"
        );
        // Its blocks are not freed while the read holds it ...
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(witness.metadata().unwrap().len(), file_size);
        drop(held);
        // ... and once the read is done, the store truncates it (on the blocking pool, so the
        // blocks' discard never runs on the shard) before closing its own descriptor.
        let mut waited = 0;
        while witness.metadata().unwrap().len() != 0 {
            assert!(
                waited < 200,
                "the deleted file's blocks were not freed before its close"
            );
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            waited += 1;
        }
        s.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_refuses_puts_keeps_reads_and_recovers_by_itself() {
    let dir = test_dir("retention-full");
    let d = dir.to_path_buf();
    run(move || async move {
        let rc = retention_cfg(&d);
        let s = ShardStore::open(store_cfg(&d), ShardId(0), false)
            .await
            .unwrap();
        put_n(&s, "TopicA", 0, 3).await;
        let v = s.set_disk_ratios(&rc, at(0.91));
        assert!(v.full && s.disk_full());
        let err = s.put(batch("TopicA", 3)).await.unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }));
        assert!(
            err.to_string()
                .starts_with("service not available now, maybe disk full, CL:  0.91"),
            "{err}"
        );
        let r = s
            .get_messages("TopicA", 0, 0, 8, 1 << 20, &|_| true)
            .await
            .unwrap();
        assert_eq!(r.status, GetStatus::Found);
        assert_eq!(r.records.len(), 3);
        // Between the forced-clean and the warning ratio: puts are taken again.
        let v = s.set_disk_ratios(&rc, at(0.88));
        assert!(!v.full && !s.disk_full());
        put_n(&s, "TopicA", 3, 1).await;
        // The measured numbers of this machine's disk drive the flag the same way.
        let measured = s.measure_disk(&rc);
        assert_eq!(s.disk_full(), judge_disk(&measured, &rc).full);
        s.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
