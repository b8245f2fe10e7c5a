//! What every store unit test needs: a scratch directory on a real disk (removed when the test
//! ends, kept when it panics so the files can be inspected), a glommio executor to run a test
//! body on, and a small store configuration that test modules adjust with struct update syntax.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::record::RecordFields;
use super::{FlushMode, IndexConfig, StoreConfig};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory under `target/test-tmp/`; derefs to its path.
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test dir kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh, empty scratch directory.
pub fn test_dir(name: &str) -> TestDir {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tmp")
        .join(format!("store-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TestDir(d)
}

/// Runs `f` on a fresh glommio executor and returns its output.
pub fn run<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// 64 KiB commit-log files, 50-unit consume-queue files, a tiny index, no read cache (every
/// read goes to disk unless a test says otherwise).
pub fn base_config(dir: &Path, mode: FlushMode) -> StoreConfig {
    StoreConfig {
        commitlog_dir: dir.join("commitlog"),
        consume_queue_dir: dir.join("consumequeue"),
        checkpoint_path: dir.join("checkpoint"),
        commitlog_file_size: 64 * 1024,
        consume_queue_file_size: 20 * 50,
        flush_mode: mode,
        flush_interval_ms: 20,
        sync_flush_timeout_ms: 10_000,
        max_message_size: 8192,
        group_commit_max_bytes: 1 << 20,
        read_cache_bytes: 0,
        warm_commitlog: None,
        dsync_writes: false,
        ship_before_write: false,
        busy_timeout_ms: 1000,
        index: IndexConfig {
            dir: dir.join("index"),
            max_hash_slot_num: 64,
            max_index_num: 32,
            enable: true,
            safe: false,
        },
    }
}

/// A record's fields with fixed header values (queue 3, flag 7, queue offset 42, phys offset
/// shard 1 + 4096, fixed hosts and timestamps) around the given body, topic and properties.
pub fn sample_record<'a>(body: &'a [u8], topic: &'a str, props: &'a str) -> RecordFields<'a> {
    RecordFields {
        queue_id: 3,
        flag: 7,
        queue_offset: 42,
        phys_offset: (1i64 << 48) | 4096,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "10.0.0.2:50123".parse().unwrap(),
        store_timestamp: 1_700_000_000_123,
        store_host: "10.0.0.1:10911".parse().unwrap(),
        reconsume_times: 1,
        prepared_tx_offset: 0,
        body,
        topic,
        properties: props,
    }
}
