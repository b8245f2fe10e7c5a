//! Index tests through `ShardStore` on a real-disk directory (target/test-tmp): keys found after
//! rollover, clean restart, crash (index not flushed), lost index files (`messageIndexSafe`),
//! retention deletion, and the checkpoint's index timestamp.

use crate::store::test_util::{base_config, run, sample_record, test_dir};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::index_format::{Geometry, IndexHeader, HEADER_LEN};
use super::record::{self, Decoded};
use super::*;

fn cfg(dir: &Path) -> StoreConfig {
    let base = base_config(dir, FlushMode::Sync);
    StoreConfig {
        index: IndexConfig {
            max_hash_slot_num: 16,
            ..base.index.clone()
        },
        ..base
    }
}

/// Message `i`: KEYS "k<i> common", UNIQ_KEY "U<i>", body "body-<i>".
async fn put_keyed(s: &ShardStore, topic: &str, from: usize, n: usize) {
    for i in from..from + n {
        let props = format!("KEYS\u{1}k{i} common\u{2}UNIQ_KEY\u{1}U{i}\u{2}WAIT\u{1}true");
        let b = PutBatch {
            topic: topic.into(),
            queue_id: (i % 3) as u32,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "127.0.0.1:50000".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_tx_offset: 0,
            messages: vec![PutMessage {
                body: Bytes::from(format!("body-{i}")),
                flag: 0,
                properties: props,
                tags_code: 0,
            }],
            wait_durable: true,
        };
        s.put(b).await.unwrap();
    }
}

async fn bodies(s: &ShardStore, topic: &str, key: &str, max: usize) -> Vec<String> {
    let r = s.query_message(topic, key, max, 0, i64::MAX).await.unwrap();
    r.records
        .iter()
        .map(|rec| {
            let Ok(Decoded::Record(v)) = record::check(rec) else {
                panic!("not a record")
            };
            assert_eq!(v.topic, topic);
            String::from_utf8(v.body.to_vec()).unwrap()
        })
        .collect()
}

async fn assert_all_found(s: &ShardStore, n: usize) {
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(
            bodies(s, "T", &format!("k{i}"), 64).await,
            vec![format!("body-{i}")]
        );
        assert_eq!(
            bodies(s, "T", &format!("U{i}"), 32).await,
            vec![format!("body-{i}")]
        );
    }
    let all = bodies(s, "T", "common", 64).await;
    assert_eq!(all.len(), n, "every message under the shared key");
    assert_eq!(all[0], format!("body-{}", n - 1), "newest first");
    assert!(bodies(s, "Other", "k1", 64).await.is_empty());
    assert!(bodies(s, "T", "nope", 64).await.is_empty());
}

#[test]
fn keys_found_across_rollover_and_clean_restart() {
    let dir = test_dir("roll");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir), ShardId(1), false)
            .await
            .unwrap();
        put_keyed(&s, "T", 0, 40).await; // 120 keys, 31 per file
        assert!(s.index().file_count() >= 4);
        assert_all_found(&s, 40).await;
        let r = s.query_message("T", "k3", 64, 0, i64::MAX).await.unwrap();
        assert!(
            r.index_last_update_phyoffset >> LOCAL_OFFSET_BITS == 1,
            "global offsets"
        );
        assert!(r.index_last_update_timestamp > 0);
        // A time range after every message finds nothing.
        let later = crate::runtime::now_ms() + 3_600_000;
        let r = s
            .query_message("T", "k3", 64, later, i64::MAX)
            .await
            .unwrap();
        assert!(r.records.is_empty());
        // maxNum caps the result.
        assert_eq!(bodies(&s, "T", "common", 5).await.len(), 5);
        s.shutdown().await.unwrap();
        drop(s);

        // Files on disk: upstream's size, header counts consistent.
        let geo = Geometry {
            slots: 16,
            max_entries: 32,
        };
        let idir = dir.join("index/1");
        let mut names: Vec<_> = std::fs::read_dir(&idir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(super::index_format::is_file_name)
            })
            .collect();
        names.sort();
        assert!(names.len() >= 4);
        let mut total = 0;
        for p in &names {
            let b = std::fs::read(p).unwrap();
            assert_eq!(b.len() as u64, geo.file_size());
            let h = IndexHeader::decode(&b[..HEADER_LEN as usize]).unwrap();
            total += h.index_count - 1;
        }
        assert_eq!(total, 120);

        let s = ShardStore::open(cfg(&dir), ShardId(1), false)
            .await
            .unwrap();
        assert_all_found(&s, 40).await;
        put_keyed(&s, "T", 40, 5).await;
        assert_all_found(&s, 45).await;
        s.shutdown().await.unwrap();
    });
}

#[test]
fn crash_before_index_flush_reindexes_from_the_log() {
    let dir = test_dir("crash");
    let d2 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d2), ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 0, 12).await;
        s.shutdown().await.unwrap();
        drop(s);
        let s = ShardStore::open(cfg(&d2), ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 12, 15).await;
        // Simulated kill -9: no shutdown; the last puts' index entries were never flushed.
        drop(s);
    });
    run(move || async move {
        let s = ShardStore::open(cfg(&dir), ShardId(0), true).await.unwrap();
        assert_all_found(&s, 27).await;
        s.shutdown().await.unwrap();
        drop(s);
        // The checkpoint's indexMsgTimestamp (offset 16, written by shard 0) advanced.
        let cp = std::fs::read(dir.join("checkpoint")).unwrap();
        let ts = i64::from_be_bytes(cp[16..24].try_into().unwrap());
        assert!(ts > 1_600_000_000_000, "index timestamp {ts}");
    });
}

#[test]
fn lost_index_rebuilt_when_message_index_safe() {
    let dir = test_dir("safe");
    let d2 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d2), ShardId(2), false).await.unwrap();
        put_keyed(&s, "T", 0, 20).await;
        drop(s); // crash
    });
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    run(move || async move {
        let mut c = cfg(&dir);
        c.index.safe = true;
        let s = ShardStore::open(c, ShardId(2), true).await.unwrap();
        assert_all_found(&s, 20).await;
        s.shutdown().await.unwrap();
    });
}

#[test]
fn retention_deletes_old_index_files_and_disabled_index_is_empty() {
    let dir = test_dir("ret");
    run(move || async move {
        let s = ShardStore::open(cfg(&dir), ShardId(0), false)
            .await
            .unwrap();
        put_keyed(&s, "T", 0, 30).await;
        s.shutdown().await.unwrap();
        drop(s);
        let s = ShardStore::open(cfg(&dir), ShardId(0), false)
            .await
            .unwrap();
        let before = s.index().file_count();
        assert!(before >= 3);
        assert_eq!(s.index().delete_index_files_below(0).await.unwrap(), 0);
        let n = s.delete_index_files_below(u64::MAX).await.unwrap();
        assert_eq!(n, before - 1, "all but the newest");
        index_file(&dir, 0); // exactly one left
                             // Old keys are gone, the newest still answer.
        assert!(bodies(&s, "T", "k0", 64).await.is_empty());
        assert_eq!(
            bodies(&s, "T", "k29", 64).await,
            vec!["body-29".to_string()]
        );
        s.shutdown().await.unwrap();
        drop(s);

        let mut c = cfg(&dir.join("off"));
        c.index.enable = false;
        let s = ShardStore::open(c, ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 0, 3).await;
        assert!(bodies(&s, "T", "k1", 64).await.is_empty());
        assert_eq!(s.index().file_count(), 0);
        s.shutdown().await.unwrap();
    });
}

/// The only index file of shard `shard` under `dir`.
fn index_file(dir: &Path, shard: u16) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(format!("index/{shard}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(super::index_format::is_file_name)
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

#[test]
fn stale_header_after_crash_is_repaired_and_reindexed() {
    let dir = test_dir("stale");
    let mut c = cfg(&dir);
    c.index.max_index_num = 400; // one file
    let (c1, c2) = (c.clone(), c.clone());
    run(move || async move {
        let s = ShardStore::open(c1, ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 0, 10).await;
        s.shutdown().await.unwrap();
    });
    let f = index_file(&dir, 0);
    let old_header = std::fs::read(&f).unwrap()[..HEADER_LEN as usize].to_vec();
    run(move || async move {
        let s = ShardStore::open(c2, ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 10, 10).await;
        s.shutdown().await.unwrap();
    });
    // A crash after the entries and slots of the second run were written but before its
    // header was: slots now name entries beyond the header's count.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&old_header, 0).unwrap();
    }
    let c3 = c.clone();
    run(move || async move {
        let s = ShardStore::open(c3, ShardId(0), true).await.unwrap();
        assert_all_found(&s, 20).await;
        s.shutdown().await.unwrap();
    });
    // A header that was never written at all (crash during the first flush of a file).
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&[0u8; HEADER_LEN as usize], 0).unwrap();
    }
    run(move || async move {
        let s = ShardStore::open(c, ShardId(0), true).await.unwrap();
        assert_all_found(&s, 20).await;
        s.shutdown().await.unwrap();
    });
}

/// The slot table goes out a slice per flush: after a crash mid-sweep the disk holds stale
/// slots and a slot mark behind the header's count, and the open replays the entries after the
/// mark (ARCHITECTURE 15a). A file without a mark (upstream's, older shardmq's) is taken as
/// complete.
#[test]
fn lazy_slot_table_is_replayed_after_a_crash() {
    use super::index_format::{decode_slot_mark, index_key, key_hash, ENTRY_LEN, SLOTS_PER_PAGE};
    let dir = test_dir("lazyslots");
    let mut c = cfg(&dir);
    c.index.max_hash_slot_num = 64 * SLOTS_PER_PAGE; // 3 pages a flush
    c.index.max_index_num = 4000; // one file
    let geo = c.index.geometry();
    let header_and_mark = |f: &Path| {
        let b = std::fs::read(f).unwrap();
        let h = IndexHeader::decode(&b[..HEADER_LEN as usize]).unwrap();
        let at = geo.entry_pos(0) as usize;
        (
            h.index_count,
            decode_slot_mark(&b[at..at + ENTRY_LEN as usize]),
        )
    };
    let disk_slot = |f: &Path, key: &str| {
        let b = std::fs::read(f).unwrap();
        let slot = geo.slot_of(key_hash(&index_key("T", key)));
        let at = geo.slot_pos(slot) as usize;
        (
            slot / SLOTS_PER_PAGE,
            i32::from_be_bytes(b[at..at + 4].try_into().unwrap()),
        )
    };
    let c1 = c.clone();
    run(move || async move {
        let s = ShardStore::open(c1, ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 0, 20).await; // 3 keys each: k<i>, common, U<i>
        s.shutdown().await.unwrap();
    });
    let f = index_file(&dir, 0);
    assert_eq!(
        header_and_mark(&f),
        (61, Some(61)),
        "a clean stop writes every slot"
    );
    let (c2, c3) = (c.clone(), c.clone());
    run(move || async move {
        let s = ShardStore::open(c2, ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 20, 40).await;
        // One flush: entries and header, and the sweep's first slice (pages 0-2) of the slots.
        s.flush_consume_queues(false).await.unwrap();
        drop(s); // kill -9
    });
    let (count, mark) = header_and_mark(&f);
    assert_eq!((count, mark), (181, Some(61)));
    // Entries 61.. are durable, but a key whose slot page the sweep has not reached still
    // names an entry of the first run on disk.
    let stale: Vec<String> = (20..60)
        .map(|i| format!("k{i}"))
        .chain(["common".to_string()])
        .filter(|k| disk_slot(&f, k).0 >= 3)
        .collect();
    assert!(!stale.is_empty());
    for k in &stale {
        assert!(disk_slot(&f, k).1 < 61, "{k}: slot on disk is stale");
    }
    run(move || async move {
        let s = ShardStore::open(c3, ShardId(0), true).await.unwrap();
        assert_all_found(&s, 60).await;
        s.shutdown().await.unwrap();
    });
    assert_eq!(header_and_mark(&f), (181, Some(181)));
    for k in &stale {
        assert!(disk_slot(&f, k).1 >= 61, "{k}: written at the stop");
    }
    // No mark (entry 0 all zeros, as upstream leaves it): the slot table is trusted as is.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&[0u8; ENTRY_LEN as usize], geo.entry_pos(0))
            .unwrap();
    }
    run(move || async move {
        let s = ShardStore::open(c, ShardId(0), true).await.unwrap();
        assert_all_found(&s, 60).await;
        put_keyed(&s, "T", 60, 4).await;
        assert_all_found(&s, 64).await; // 64: the most one query returns
        s.shutdown().await.unwrap();
    });
    assert_eq!(header_and_mark(&f), (193, Some(193)));
}

/// A kill -9 between creating an index file and sizing it leaves it short (empty): the store
/// still opens, every key is found, and new keys are indexed.
#[test]
fn short_index_file_left_by_a_crash_opens() {
    let dir = test_dir("shortidx");
    let d2 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d2), ShardId(0), false).await.unwrap();
        put_keyed(&s, "T", 0, 12).await;
        drop(s); // kill -9
    });
    // Named after every existing file, so it is the newest, as a file being created would be.
    std::fs::write(dir.join("index/0/29991231235959999"), b"").unwrap();
    let d3 = dir.to_path_buf();
    run(move || async move {
        let s = ShardStore::open(cfg(&d3), ShardId(0), true).await.unwrap();
        assert_all_found(&s, 12).await;
        put_keyed(&s, "T", 12, 6).await;
        assert_all_found(&s, 18).await;
        s.shutdown().await.unwrap();
    });
    let size = std::fs::metadata(dir.join("index/0/29991231235959999"))
        .unwrap()
        .len();
    assert!(size > 0, "the short file was sized");
}

/// A crash leaves a slot page newer than the header (a slot names an entry past the count);
/// the open repairs the slot, and that page must reach the disk at the open's first flush: the
/// entry it named is reused by the next key, so after a second crash a stale copy of the page
/// would send a query for the older key down another key's chain.
#[test]
fn slots_repaired_at_open_are_written_before_a_second_crash() {
    use super::index::ShardIndex;
    use super::index_format::{index_key, key_hash, ENTRY_LEN, SLOTS_PER_PAGE};
    let dir = test_dir("repair2");
    let mut c = cfg(&dir).index;
    c.max_hash_slot_num = 64 * SLOTS_PER_PAGE; // the first flush's slice: pages 0-2
    c.max_index_num = 4000;
    let geo = c.geometry();
    let slot = |k: &str| geo.slot_of(key_hash(&index_key("T", k)));
    let find = |prefix: &str, ok: &dyn Fn(u32) -> bool| {
        (0..1_000_000)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| ok(slot(k)))
            .unwrap()
    };
    // A and B share a slot outside the first slice; C lands elsewhere.
    let a = find("a", &|s| s / SLOTS_PER_PAGE >= 3);
    let b = find("b", &|s| s == slot(&a));
    let cc = find("c", &|s| s != slot(&a));
    // Indexed at the offset `dispatch_bytes` is given; the record's own fields do not matter.
    let record = |key: &str| {
        let props = format!("KEYS\u{1}{key}");
        let mut out = Vec::new();
        record::encode(&sample_record(b"x", "T", &props), &mut out);
        out
    };
    let (c1, c2, c3) = (c.clone(), c.clone(), c.clone());
    let (a1, b1, a3, c4) = (a.clone(), b.clone(), a.clone(), cc.clone());
    run(move || async move {
        let idx = ShardIndex::open(&c1, ShardId(0)).await.unwrap();
        idx.dispatch_bytes(0, &record(&a1)); // entry 1
        idx.flush(true).await.unwrap();
    });
    let f = index_file(&dir, 0);
    let first = std::fs::read(&f).unwrap();
    run(move || async move {
        let idx = ShardIndex::open(&c2, ShardId(0)).await.unwrap();
        idx.dispatch_bytes(1000, &record(&b1)); // entry 2, same slot as A
        idx.flush(true).await.unwrap();
    });
    // The crash: slots and entries of the second run on disk, its header and mark not.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&first[..HEADER_LEN as usize], 0).unwrap();
        let m = geo.entry_pos(0) as usize;
        file.write_all_at(&first[m..m + ENTRY_LEN as usize], m as u64)
            .unwrap();
    }
    let c_rec = record(&cc);
    run(move || async move {
        let idx = ShardIndex::open(&c3, ShardId(0)).await.unwrap();
        idx.flush(false).await.unwrap(); // the store's flush at open
        idx.dispatch_bytes(2000, &c_rec); // entry 2 again: C, in another slot
        idx.flush(false).await.unwrap();
        // kill -9
    });
    run(move || async move {
        let idx = ShardIndex::open(&c, ShardId(0)).await.unwrap();
        let q = |k: String| {
            let idx = &idx;
            async move { idx.query("T", &k, 8, 0, i64::MAX).await.unwrap() }
        };
        assert_eq!(q(a3).await, vec![global_offset(ShardId(0), 0)], "A's slot");
        assert_eq!(q(c4).await, vec![global_offset(ShardId(0), 2000)]);
        assert!(q(b).await.is_empty(), "B never reached a header");
    });
}
