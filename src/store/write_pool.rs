//! The shard's pool of DMA-aligned write buffers: the flusher takes one buffer per commit-log
//! write, fills it (carried tail page + the batch's records) and hands it back once the write
//! completed, so in steady state a group commit allocates no buffer. A DMA write must be
//! exactly as long as its buffer, so buffers are kept per exact length (whole pages); the pool
//! holds at most `limit` bytes and forgets its oldest buffers beyond that. Shard-local (no
//! locks): one pool per `ShardStore`.

use glommio::io::{DmaBuffer, DmaFile};

/// Bytes of idle buffers a shard keeps at least (the limit grows with `groupCommitMaxBytes`).
pub const WRITE_POOL_MIN_BYTES: usize = 4 << 20;

/// The pool limit for a shard whose batches close at `group_commit_max_bytes`: room for two
/// full batches (the one being written and the one after), never below the minimum.
pub fn write_pool_limit(group_commit_max_bytes: usize) -> usize {
    group_commit_max_bytes
        .saturating_mul(2)
        .max(WRITE_POOL_MIN_BYTES)
}

/// Counters of a pool (tests and benchmarks check that steady state reuses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritePoolStats {
    /// Buffers allocated because none of the right length was idle.
    pub allocated: u64,
    /// Buffers handed out from the pool.
    pub reused: u64,
}

/// Idle aligned buffers, oldest first.
#[derive(Debug)]
pub struct WritePool {
    free: Vec<DmaBuffer>,
    pooled_bytes: usize,
    limit: usize,
    stats: WritePoolStats,
}

impl WritePool {
    pub fn new(limit: usize) -> Self {
        WritePool {
            free: Vec::new(),
            pooled_bytes: 0,
            limit,
            stats: WritePoolStats::default(),
        }
    }

    /// A buffer of exactly `len` bytes (a multiple of the DMA alignment); contents undefined.
    pub fn take(&mut self, file: &DmaFile, len: usize) -> DmaBuffer {
        // Newest first: the most recently used length is the likeliest to repeat.
        if let Some(i) = self.free.iter().rposition(|b| b.len() == len) {
            let b = self.free.remove(i);
            self.pooled_bytes -= len;
            self.stats.reused += 1;
            return b;
        }
        self.stats.allocated += 1;
        file.alloc_dma_buffer(len)
    }

    /// Returns a buffer after its write completed.
    pub fn give(&mut self, buf: DmaBuffer) {
        let len = buf.len();
        if len > self.limit {
            return;
        }
        while self.pooled_bytes + len > self.limit && !self.free.is_empty() {
            let old = self.free.remove(0);
            self.pooled_bytes -= old.len();
        }
        self.pooled_bytes += len;
        self.free.push(buf);
    }

    pub fn stats(&self) -> WritePoolStats {
        self.stats
    }

    pub fn pooled_bytes(&self) -> usize {
        self.pooled_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_by_length_and_stays_bounded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("write-pool-{}", std::process::id()));
        let p2 = path.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let f = DmaFile::create(&p2).await.unwrap();
                let mut pool = WritePool::new(3 * 4096);
                let a = pool.take(&f, 4096);
                let b = pool.take(&f, 8192);
                assert_eq!(pool.stats().allocated, 2);
                pool.give(a);
                pool.give(b);
                assert_eq!(pool.pooled_bytes(), 3 * 4096);
                let c = pool.take(&f, 8192);
                assert_eq!(c.len(), 8192);
                assert_eq!(pool.stats().reused, 1);
                pool.give(c);
                // Over the limit: the oldest idle buffer (4096) is forgotten.
                let d = pool.take(&f, 4096 * 2);
                let e = pool.take(&f, 4096);
                pool.give(d);
                pool.give(e);
                assert!(pool.pooled_bytes() <= 3 * 4096);
                // Larger than the whole pool: never kept.
                pool.give(pool_big(&f));
                assert!(pool.pooled_bytes() <= 3 * 4096);
                f.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let _ = std::fs::remove_file(&path);
    }

    fn pool_big(f: &DmaFile) -> DmaBuffer {
        f.alloc_dma_buffer(16 * 4096)
    }
}
