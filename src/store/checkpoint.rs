//! The checkpoint file and the abort marker. The checkpoint is shared by all shards of a broker:
//! each shard writes only its own 32-byte slot (disjoint byte ranges, so shards never clobber one
//! another); shard 0 also writes upstream's three timestamps so upstream tools can read them.
//! Runs on each shard's executor (glommio buffered file: small writes, then fdatasync).
//!
//! ```text
//! offset        size  field                              (big-endian)
//!   0             8   physicMsgTimestamp  i64  (upstream; written by shard 0)
//!   8             8   logicsMsgTimestamp  i64  (upstream; written by shard 0)
//!  16             8   indexMsgTimestamp   i64  (upstream; shard 0's index end timestamp as last
//!                                                   flushed, see index.rs)
//!  24            40   reserved (5.x puts masterFlushedOffset/confirmPhyOffset at 24/32)
//!  64 + 32*s     32   slot of shard s (s < SLOT_COUNT):
//!    +0           8     flushed_offset     u64  local commit-log offset known durable
//!    +8           8     dispatched_offset  u64  local offset below which every CQ entry is durable
//!    +16          8     last_store_timestamp i64 of the last durable record
//!    +24          4     flags  u32  bit 0 = written by a clean shutdown
//!    +28          4     crc32 of slot bytes 0..28 (an all-zero slot is therefore invalid)
//! 4096               end (one page)
//! ```

use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};

use super::io::gio_err;
use super::StoreError;

/// Size of the checkpoint file (one OS page, as upstream).
pub const CHECKPOINT_SIZE: u64 = 4096;
const SLOT_BASE: u64 = 64;
const SLOT_LEN: u64 = 32;
/// How many shards the file has room for.
pub const SLOT_COUNT: u16 = ((CHECKPOINT_SIZE - SLOT_BASE) / SLOT_LEN) as u16;
const FLAG_CLEAN: u32 = 1;

/// One shard's persisted progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardSlot {
    pub flushed_offset: u64,
    pub dispatched_offset: u64,
    pub last_store_timestamp: i64,
    pub clean: bool,
}

/// Encodes a slot (pure).
pub fn encode_slot(s: &ShardSlot) -> [u8; SLOT_LEN as usize] {
    let mut b = [0u8; SLOT_LEN as usize];
    b[0..8].copy_from_slice(&s.flushed_offset.to_be_bytes());
    b[8..16].copy_from_slice(&s.dispatched_offset.to_be_bytes());
    b[16..24].copy_from_slice(&s.last_store_timestamp.to_be_bytes());
    let flags = if s.clean { FLAG_CLEAN } else { 0 };
    b[24..28].copy_from_slice(&flags.to_be_bytes());
    let crc = crc32fast::hash(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Decodes a slot; `None` when the CRC does not match (never written, or torn).
pub fn decode_slot(b: &[u8]) -> Option<ShardSlot> {
    let b: &[u8; SLOT_LEN as usize] = b.get(..SLOT_LEN as usize)?.try_into().ok()?;
    let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let crc = u32::from_be_bytes([b[28], b[29], b[30], b[31]]);
    if crc != crc32fast::hash(&b[0..28]) {
        return None;
    }
    let flags = u32::from_be_bytes([b[24], b[25], b[26], b[27]]);
    Some(ShardSlot {
        flushed_offset: word(0),
        dispatched_offset: word(8),
        last_store_timestamp: word(16) as i64,
        clean: flags & FLAG_CLEAN != 0,
    })
}

/// A shard's handle on the shared checkpoint file.
#[derive(Debug)]
pub struct Checkpoint {
    file: BufferedFile,
    path: PathBuf,
    shard: u16,
    index_timestamp: std::cell::Cell<i64>,
}

impl Checkpoint {
    /// Opens (creating at 4096 bytes if needed) the checkpoint for `shard`.
    pub async fn open(path: &Path, shard: u16) -> Result<Self, StoreError> {
        if shard >= SLOT_COUNT {
            return Err(StoreError::Config(format!(
                "shard {shard} has no checkpoint slot in {} (max {})",
                path.display(),
                SLOT_COUNT - 1
            )));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(path)
            .await
            .map_err(gio_err("open checkpoint", path))?;
        let size = file
            .file_size()
            .await
            .map_err(gio_err("stat checkpoint", path))?;
        if size < CHECKPOINT_SIZE {
            file.truncate(CHECKPOINT_SIZE)
                .await
                .map_err(gio_err("extend checkpoint", path))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            shard,
            index_timestamp: std::cell::Cell::new(0),
        })
    }

    fn slot_pos(&self) -> u64 {
        SLOT_BASE + SLOT_LEN * u64::from(self.shard)
    }

    /// This shard's slot, `None` if never written (or torn).
    pub async fn read_slot(&self) -> Result<Option<ShardSlot>, StoreError> {
        let r = self
            .file
            .read_at(self.slot_pos(), SLOT_LEN as usize)
            .await
            .map_err(gio_err("read checkpoint", &self.path))?;
        Ok(decode_slot(&r))
    }

    /// The `indexMsgTimestamp` the next `write` records (shard 0 only writes it).
    pub fn set_index_timestamp(&self, ts: i64) {
        self.index_timestamp.set(ts);
    }

    /// Upstream's physicMsgTimestamp (offset 0), for information.
    pub async fn read_physic_timestamp(&self) -> Result<i64, StoreError> {
        let r = self
            .file
            .read_at(0, 8)
            .await
            .map_err(gio_err("read checkpoint", &self.path))?;
        Ok(r.get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i64::from_be_bytes))
    }

    /// Writes this shard's slot (and, on shard 0, upstream's timestamps), then fdatasyncs.
    pub async fn write(&self, slot: &ShardSlot) -> Result<(), StoreError> {
        let pos = self.slot_pos();
        self.file
            .write_at(encode_slot(slot).to_vec(), pos)
            .await
            .map_err(gio_err("write checkpoint", &self.path))?;
        if self.shard == 0 {
            let mut head = Vec::with_capacity(24);
            head.extend_from_slice(&slot.last_store_timestamp.to_be_bytes());
            head.extend_from_slice(&slot.last_store_timestamp.to_be_bytes());
            head.extend_from_slice(&self.index_timestamp.get().to_be_bytes());
            self.file
                .write_at(head, 0)
                .await
                .map_err(gio_err("write checkpoint", &self.path))?;
        }
        self.file
            .fdatasync()
            .await
            .map_err(gio_err("fdatasync checkpoint", &self.path))
    }
}

/// Whether the abort marker exists (the previous run did not shut down cleanly).
pub fn abort_exists(path: &Path) -> bool {
    path.exists()
}

/// Creates the (empty) abort marker and makes its existence durable.
pub fn create_abort(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| StoreError::io("create abort", path, e))?;
    f.sync_all()
        .map_err(|e| StoreError::io("sync abort", path, e))?;
    sync_parent(path)
}

/// Removes the abort marker (missing is fine) and makes the removal durable.
pub fn remove_abort(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove abort", path, e)),
    }
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let d = std::fs::File::open(dir).map_err(|e| StoreError::io("open dir", dir, e))?;
    d.sync_all().map_err(|e| StoreError::io("sync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_round_trips_and_rejects_zero_and_torn() {
        let s = ShardSlot {
            flushed_offset: 123_456,
            dispatched_offset: 100_000,
            last_store_timestamp: 1_700_000_000_000,
            clean: true,
        };
        let b = encode_slot(&s);
        assert_eq!(&b[0..8], &123_456u64.to_be_bytes());
        assert_eq!(&b[24..28], &[0, 0, 0, 1]);
        assert_eq!(decode_slot(&b), Some(s));
        assert_eq!(decode_slot(&[0u8; 32]), None);
        let mut torn = b;
        torn[3] ^= 0x40;
        assert_eq!(decode_slot(&torn), None);
        assert_eq!(decode_slot(&b[..10]), None);
        assert_eq!(SLOT_COUNT, 126);
    }

    #[test]
    fn abort_marker_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("abort");
        assert!(!abort_exists(&p));
        create_abort(&p).unwrap();
        assert!(abort_exists(&p));
        remove_abort(&p).unwrap();
        assert!(!abort_exists(&p));
        remove_abort(&p).unwrap();
    }

    #[test]
    fn shards_write_disjoint_slots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let a = Checkpoint::open(&p, 0).await.unwrap();
                let b = Checkpoint::open(&p, 3).await.unwrap();
                assert_eq!(a.read_slot().await.unwrap(), None);
                let sa = ShardSlot {
                    flushed_offset: 1,
                    last_store_timestamp: 77,
                    ..Default::default()
                };
                let sb = ShardSlot {
                    flushed_offset: 2,
                    clean: true,
                    ..Default::default()
                };
                a.write(&sa).await.unwrap();
                b.write(&sb).await.unwrap();
                assert_eq!(a.read_slot().await.unwrap(), Some(sa));
                assert_eq!(b.read_slot().await.unwrap(), Some(sb));
                assert_eq!(a.read_physic_timestamp().await.unwrap(), 77);
                assert_eq!(std::fs::metadata(&p).unwrap().len(), CHECKPOINT_SIZE);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
