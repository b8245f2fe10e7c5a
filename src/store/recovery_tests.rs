//! Recovery against damaged logs (issue #4 item 3): a log of several records in two queues, with
//! consume queues and checkpoint flushed (so they are AHEAD of the damaged log), is cut at every
//! byte offset inside its last three records (zero tail, garbage tail), or gets a bad CRC in the
//! middle; recovery must end the log at the last whole record, drop the consume-queue entries
//! of the lost records, and continue offsets from there. Real disk under `target/test-tmp`.

use crate::store::test_util::{base_config, run, test_dir};
use std::path::Path;

use bytes::Bytes;

use crate::store::record::{self, Decoded};
use crate::store::{
    io, FlushMode, GetStatus, PutBatch, PutMessage, ShardId, ShardStore, StoreConfig,
    LOCAL_OFFSET_MASK,
};

const FILE_SIZE: u64 = 64 * 1024;
const SHARD: u16 = 1;
const TOPIC: &str = "R";
const RECORDS: usize = 12;
const PROPS: &str = "TAGS\u{1}T\u{2}";
const PROPS_LEN: u64 = PROPS.len() as u64;

fn cfg(dir: &Path) -> StoreConfig {
    base_config(dir, FlushMode::Sync)
}

fn body(i: usize) -> Vec<u8> {
    let mut v = format!("rec-{i}-").into_bytes();
    v.resize(24 + 9 * i, b'a' + (i % 26) as u8);
    v
}

fn put_batch(qid: u32, body: &[u8]) -> PutBatch {
    PutBatch {
        topic: TOPIC.into(),
        queue_id: qid,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_tx_offset: 0,
        messages: vec![PutMessage {
            body: Bytes::copy_from_slice(body),
            flag: 0,
            properties: PROPS.into(),
            tags_code: 84,
        }],
        wait_durable: true,
    }
}

/// One record of the base log: local offset, size, queue, queue offset.
#[derive(Debug, Clone, Copy)]
struct Rec {
    pos: u64,
    size: u64,
    qid: u32,
    qoff: u64,
}

/// Writes the base log (record i goes to queue i % 2), flushes consume queues and checkpoint,
/// then "crashes" (drops the store without shutdown).
fn build_base(dir: &Path) -> Vec<Rec> {
    let d = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d), ShardId(SHARD), false)
            .await
            .unwrap();
        let mut recs = Vec::new();
        for i in 0..RECORDS {
            let qid = (i % 2) as u32;
            let r = s.put(put_batch(qid, &body(i))).await.unwrap();
            let pos = r.phys_offsets[0] & LOCAL_OFFSET_MASK;
            let size = record::record_len(body(i).len(), TOPIC.len(), PROPS.len());
            recs.push(Rec {
                pos,
                size,
                qid,
                qoff: r.first_queue_offset,
            });
        }
        // Consume queues and checkpoint now describe every record: ahead of any cut below.
        s.flush_consume_queues(false).await.unwrap();
        drop(s);
        recs
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn poke(dir: &Path, local: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let start = local / FILE_SIZE * FILE_SIZE;
    let path = dir
        .join("commitlog")
        .join(SHARD.to_string())
        .join(io::segment_name(start));
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, local - start).unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Tail {
    /// Everything from the cut on is zero (a write that never reached the disk).
    Zero,
    /// Garbage from the cut on (a torn sector, stale bytes).
    Garbage,
}

fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Damages a copy of `base` (cut at local offset `at`), recovers it, and checks the log ends at
/// the last record whole before `at`, queues hold exactly the whole records, and a new put
/// continues right there. Returns the recovered end.
async fn recover_and_check(base: &Path, work: &Path, recs: &[Rec], at: u64, tail: Tail) -> u64 {
    let _ = std::fs::remove_dir_all(work);
    copy_dir(base, work);
    let log_end = recs.last().map_or(0, |r| r.pos + r.size);
    match tail {
        Tail::Zero => poke(work, at, &vec![0u8; (log_end.max(at) - at) as usize]),
        Tail::Garbage => {
            let n = (log_end - at + 300).min(FILE_SIZE - at % FILE_SIZE) as usize;
            poke(work, at, &garbage(n, at));
        }
    }
    let ctx = format!("cut at {at} ({tail:?})");
    let s = ShardStore::open(cfg(work), ShardId(SHARD), true)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
    let got = s.stats().max_local_offset;
    // Garbage that starts inside a record's properties and happens to be NUL-free UTF-8 is
    // indistinguishable from properties (the format's CRC covers only the body): keeping that
    // record is right too, and then the queues must hold it.
    let torn_in_props = recs
        .iter()
        .find(|r| at >= r.pos + r.size - PROPS_LEN && at < r.pos + r.size);
    let at = match (tail, torn_in_props) {
        (Tail::Garbage, Some(r)) if got == r.pos + r.size => got,
        _ => at,
    };
    let want_end = recs
        .iter()
        .rfind(|r| r.pos + r.size <= at)
        .map_or(0, |r| r.pos + r.size);
    assert_eq!(s.stats().max_local_offset, want_end, "{ctx}: recovered end");
    for qid in 0..2u32 {
        let want: Vec<(usize, &Rec)> = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.qid == qid && r.pos + r.size <= at)
            .collect();
        assert_eq!(
            s.max_offset(TOPIC, qid),
            want.len() as u64,
            "{ctx}: queue {qid} max offset"
        );
        if !want.is_empty() {
            let g = s
                .get_messages(TOPIC, qid, 0, 64, 1 << 20, &|_| true)
                .await
                .unwrap();
            assert_eq!(g.status, GetStatus::Found, "{ctx}: queue {qid}");
            assert_eq!(g.records.len(), want.len(), "{ctx}: queue {qid} records");
            for (rec, (i, r)) in g.records.iter().zip(&want) {
                let Ok(Decoded::Record(v)) = record::check(rec) else {
                    panic!("{ctx}: queue {qid}: stored record does not decode");
                };
                assert_eq!(v.queue_offset as u64, r.qoff, "{ctx}");
                assert_eq!(v.body, &body(*i)[..], "{ctx}");
            }
        }
    }
    // The log continues right after the last whole record, with the next queue offset
    // (a put costs an fdatasync: checked on every 8th cut only).
    if at % 8 != 0 && at != want_end {
        drop(s);
        return want_end;
    }
    let next_qoff = recs
        .iter()
        .filter(|r| r.qid == 0 && r.pos + r.size <= at)
        .count() as u64;
    let r = s.put(put_batch(0, b"after")).await.unwrap();
    assert_eq!(r.phys_offsets[0] & LOCAL_OFFSET_MASK, want_end, "{ctx}");
    assert_eq!(r.first_queue_offset, next_qoff, "{ctx}");
    drop(s);
    want_end
}

#[test]
fn cut_at_every_byte_of_the_last_three_records() {
    let base = test_dir("rcut-base");
    let recs = build_base(&base);
    let work = test_dir("rcut-work");
    let from = recs[RECORDS - 3].pos;
    let to = recs[RECORDS - 1].pos + recs[RECORDS - 1].size;
    let (b, w) = (base.to_path_buf(), work.to_path_buf());
    run(move || async move {
        let mut ends = std::collections::BTreeSet::new();
        for at in from..=to {
            ends.insert(recover_and_check(&b, &w, &recs, at, Tail::Zero).await);
        }
        // Garbage tails: every 5th byte, and every record boundary.
        for at in (from..=to).step_by(5).chain(recs.iter().map(|r| r.pos)) {
            recover_and_check(&b, &w, &recs, at, Tail::Garbage).await;
        }
        // Every cut ended at one of the four record boundaries.
        assert_eq!(ends.len(), 4, "{ends:?}");
    });
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn bad_crc_in_the_middle_ends_the_log_there() {
    let base = test_dir("rcrc-base");
    let recs = build_base(&base);
    let work = test_dir("rcrc-work");
    let bad = recs[4];
    // One body byte flipped: the record is whole but its body CRC no longer matches.
    let (b, w) = (base.to_path_buf(), work.to_path_buf());
    run(move || async move {
        let _ = std::fs::remove_dir_all(&w);
        copy_dir(&b, &w);
        let body_at = bad.pos + 84 + 4 + 10; // BODYLENGTH field at 84, body after it
        poke(&w, body_at, &[0xFF]);
        let s = ShardStore::open(cfg(&w), ShardId(SHARD), true)
            .await
            .unwrap();
        assert_eq!(
            s.stats().max_local_offset,
            bad.pos,
            "log ends at the bad record"
        );
        assert_eq!(s.max_offset(TOPIC, 0), 2, "records 0 and 2 in queue 0");
        assert_eq!(s.max_offset(TOPIC, 1), 2, "records 1 and 3 in queue 1");
        let r = s.put(put_batch(0, b"after")).await.unwrap();
        assert_eq!(r.phys_offsets[0] & LOCAL_OFFSET_MASK, bad.pos);
        assert_eq!(r.first_queue_offset, 2);
        s.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&work);
}

/// A replicating slave found its log parts from its master's at a local offset and left a cut
/// marker (`ha::epochs`): the next open ends the log there even after a clean stop, at the
/// record boundary below when the offset is inside a record, drops the queue entries beyond,
/// removes the marker (a later open must not cut what arrived since), and a marker that is not
/// an offset stops the open with the file's name.
#[test]
fn a_cut_marker_ends_the_log_there_once() {
    let base = test_dir("rmark-base");
    let recs = build_base(&base);
    let work = test_dir("rmark-work");
    let (b, w) = (base.to_path_buf(), work.to_path_buf());
    run(move || async move {
        let cut = recs[7];
        let marker = crate::store::cut_marker_path(&w.join("commitlog").join(SHARD.to_string()));
        for at in [cut.pos, cut.pos + 5, cut.pos + cut.size - 1] {
            let ctx = format!("marker at {at}");
            let _ = std::fs::remove_dir_all(&w);
            copy_dir(&b, &w);
            std::fs::write(&marker, format!("{at}\n")).unwrap();
            let s = ShardStore::open(cfg(&w), ShardId(SHARD), false)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(s.stats().max_local_offset, cut.pos, "{ctx}: recovered end");
            for qid in 0..2u32 {
                let kept = recs[..7].iter().filter(|r| r.qid == qid).count() as u64;
                assert_eq!(s.max_offset(TOPIC, qid), kept, "{ctx}: queue {qid}");
            }
            assert!(
                !marker.exists(),
                "{ctx}: the marker is removed once honoured"
            );
            let r = s.put(put_batch(0, b"after the cut")).await.unwrap();
            assert_eq!(r.phys_offsets[0] & LOCAL_OFFSET_MASK, cut.pos, "{ctx}");
            s.shutdown().await.unwrap();
            let s = ShardStore::open(cfg(&w), ShardId(SHARD), false)
                .await
                .unwrap();
            let after = record::record_len(b"after the cut".len(), TOPIC.len(), PROPS.len());
            assert_eq!(
                s.stats().max_local_offset,
                cut.pos + after,
                "{ctx}: not cut again"
            );
            s.shutdown().await.unwrap();
        }
        std::fs::write(&marker, "soon").unwrap();
        let e = ShardStore::open(cfg(&w), ShardId(SHARD), false)
            .await
            .expect_err("a marker that is not an offset stops the open");
        assert!(e.to_string().contains("ha-cut"), "{e}");
    });
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&work);
}

/// A kill -9 between creating a consume-queue file and sizing it leaves it shorter than a whole
/// file (empty here): the store still opens, the short file reads as holding no entries, and
/// puts continue in both the queue with a short next file and a queue whose only file is short.
#[test]
fn short_consume_queue_files_left_by_a_crash_open() {
    let dir = test_dir("rshortcq");
    let recs = build_base(&dir);
    let cq = dir.join("consumequeue").join(TOPIC);
    let file_size = cfg(&dir).consume_queue_file_size;
    std::fs::write(cq.join("0").join(io::segment_name(file_size)), b"").unwrap();
    std::fs::create_dir_all(cq.join("5")).unwrap();
    std::fs::write(cq.join("5").join(io::segment_name(0)), [0u8; 7]).unwrap();
    let d = dir.to_path_buf();
    let per_queue = (recs.len() / 2) as u64;
    run(move || async move {
        let s = ShardStore::open(cfg(&d), ShardId(SHARD), true)
            .await
            .unwrap();
        assert_eq!(s.max_offset(TOPIC, 0), per_queue);
        assert_eq!(s.max_offset(TOPIC, 1), per_queue);
        assert_eq!(s.max_offset(TOPIC, 5), 0);
        let r = s.put(put_batch(0, b"after")).await.unwrap();
        assert_eq!(r.first_queue_offset, per_queue);
        let r = s.put(put_batch(5, b"new queue")).await.unwrap();
        assert_eq!(r.first_queue_offset, 0);
        let g = s
            .get_messages(TOPIC, 0, 0, 100, 1 << 20, &|_| true)
            .await
            .unwrap();
        assert_eq!(g.status, GetStatus::Found);
        assert_eq!(g.records.len() as u64, per_queue + 1);
        s.shutdown().await.unwrap();
    });
}

/// A kill -9 while the next commit-log file was being created ahead (created, not yet sized)
/// leaves it short and empty: the store opens, removes it, keeps every record and creates it
/// again. A short newest file that holds a record is still refused (it is data, e.g. of another
/// `mapedFileSizeCommitLog`), and kept.
#[test]
fn short_newest_commit_log_file_left_by_a_crash_opens() {
    let base = test_dir("rshortcl");
    let recs = build_base(&base);
    let next = |d: &Path| {
        d.join("commitlog")
            .join(SHARD.to_string())
            .join(io::segment_name(FILE_SIZE))
    };
    for (i, short) in [vec![], vec![0u8; 8192]].into_iter().enumerate() {
        let work = test_dir(&format!("rshortcl-{i}"));
        copy_dir(&base, &work);
        std::fs::write(next(&work), &short).unwrap();
        let d = work.to_path_buf();
        let n = recs.len();
        run(move || async move {
            let s = ShardStore::open(cfg(&d), ShardId(SHARD), true)
                .await
                .unwrap();
            let g = s
                .get_messages(TOPIC, 0, 0, 100, 1 << 20, &|_| true)
                .await
                .unwrap();
            assert_eq!(g.records.len(), n / 2, "every record of queue 0 kept");
            // Fill the first file so the log rolls into the recreated one.
            let big = vec![b'z'; 8000];
            for _ in 0..10 {
                s.put(put_batch(1, &big)).await.unwrap();
            }
            assert!(s.stats().max_local_offset > FILE_SIZE, "rolled");
            s.shutdown().await.unwrap();
        });
        let len = std::fs::metadata(next(&work)).unwrap().len();
        assert_eq!(len, FILE_SIZE, "recreated at full size");
    }
    let work = test_dir("rshortcl-data");
    copy_dir(&base, &work);
    std::fs::write(next(&work), [0x40, 0, 0, 0, 1, 2, 3, 4]).unwrap();
    let d = work.to_path_buf();
    let err = run(move || async move {
        ShardStore::open(cfg(&d), ShardId(SHARD), true)
            .await
            .expect_err("a short file with a record is not removed")
    });
    assert!(err.to_string().contains("file length 8"), "{err}");
    assert!(next(&work).exists());
}
