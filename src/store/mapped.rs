//! Async mode's commit-log writer for small chunks (ARCHITECTURE 41; chunks of
//! `BUFFERED_WRITE_MIN` or more take a buffered write): the file being written is mapped
//! shared and each chunk is copied into the mapping on the shard. Once the copy returns the bytes are
//! in the kernel's page cache, exactly as after a buffered `write` (a `kill -9` cannot lose
//! them; the timer's fdatasync on the file puts them on the device), but with no system call
//! and no hand-off to io_uring's worker threads, which ext4 forces for every buffered write.
//!
//! Page faults are kept off the shard: the pages ahead of the write position are faulted into
//! the page tables by the blocking pool (`MADV_POPULATE_READ`, [`POPULATE_AHEAD`] at a time in
//! [`POPULATE_STEP`] system calls, started when the writer is half way into the populated
//! window). What the shard then pays per 4 KiB page is a write-protect fault that finds the
//! page cached and its block allocated. Populating read-only and not writable keeps pages that
//! were never written clean: the fdatasync never writes zeros ahead of the data. The mapping
//! is `MADV_RANDOM`: a fault reads (for a fallocated file: allocates and zeroes) only its own
//! page, not `read_ahead_kb` around it.
//!
//! The mapping of a file the writer left is unmapped on the blocking pool (tearing down the
//! page tables of a 1 GiB file takes milliseconds).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw};

use super::StoreError;

/// Bytes faulted in ahead of the writer per populate job.
pub const POPULATE_AHEAD: usize = 8 << 20;

/// One commit-log file mapped for writing.
pub(crate) struct MappedFile {
    /// The file's first local offset (the segment's start).
    pub start: u64,
    map: Arc<MmapRaw>,
    path: PathBuf,
    /// Bytes from the file's start whose pages were populated (or are being populated).
    populated: Cell<usize>,
    /// False once populating failed (an old kernel): the shard takes the faults then.
    populate_works: Cell<bool>,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("start", &self.start)
            .field("path", &self.path)
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl MappedFile {
    /// Maps the file at `path` (created at full size) for writing from `from` (bytes into the
    /// file), with the first window ahead of `from` populated. Runs on the blocking pool.
    pub async fn open(start: u64, path: &Path, from: usize) -> Result<Rc<MappedFile>, StoreError> {
        let owned = path.to_path_buf();
        let map = glommio::executor()
            .spawn_blocking(move || map_file(&owned, from))
            .await
            .map_err(|e| StoreError::io("mmap", path, e))?;
        let populated = from.saturating_add(POPULATE_AHEAD).min(map.len());
        Ok(Rc::new(MappedFile {
            start,
            map: Arc::new(map),
            path: path.to_path_buf(),
            populated: Cell::new(populated),
            populate_works: Cell::new(true),
        }))
    }

    /// Copies `bytes` to `at` (bytes into the file). Never blocks on I/O: the pages are in the
    /// page cache or become so by a fault.
    pub fn write(self: &Rc<Self>, at: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let end = usize::try_from(at)
            .ok()
            .and_then(|a| a.checked_add(bytes.len()))
            .filter(|&e| e <= self.map.len())
            .ok_or_else(|| {
                StoreError::io(
                    "write",
                    &self.path,
                    std::io::Error::other(format!(
                        "{} bytes at {at} do not fit the mapped {} bytes",
                        bytes.len(),
                        self.map.len()
                    )),
                )
            })?;
        let at = end - bytes.len();
        // SAFETY: `at..end` lies inside the mapping (checked above), which lives as long as
        // `self.map`; the bytes are copied through raw pointers (no reference into the shared
        // mapping is formed), and a slice of ours cannot overlap a file mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(at),
                bytes.len(),
            );
        }
        self.populate_ahead(end);
        Ok(())
    }

    /// Starts populating the next window when the writer is half way into the current one.
    fn populate_ahead(self: &Rc<Self>, written_to: usize) {
        // Buffered writes of large chunks may have moved the writer past the window.
        let from = self.populated.get().max(written_to);
        if !self.populate_works.get()
            || from >= self.map.len()
            || written_to.saturating_add(POPULATE_AHEAD / 2) < from
        {
            return;
        }
        let len = POPULATE_AHEAD.min(self.map.len() - from);
        self.populated.set(from + len);
        let map = self.map.clone();
        let me = Rc::downgrade(self);
        glommio::spawn_local(async move {
            let res = glommio::executor()
                .spawn_blocking(move || populate(&map, from, len))
                .await;
            if let (Err(e), Some(me)) = (res, me.upgrade()) {
                tracing::warn!(path = %me.path.display(), error = %e,
                    "cannot populate the commit log's pages ahead of the writer; the shard takes the page faults");
                me.populate_works.set(false);
            }
        })
        .detach();
    }

    /// Unmaps on the blocking pool.
    pub fn retire(self: Rc<Self>) {
        let map = self.map.clone();
        drop(self);
        glommio::spawn_local(async move {
            glommio::executor().spawn_blocking(move || drop(map)).await;
        })
        .detach();
    }
}

/// Opens and maps the whole file; populates `POPULATE_AHEAD` bytes from `from`.
fn map_file(path: &Path, from: usize) -> std::io::Result<MmapRaw> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file too large to map"))?;
    if len == 0 {
        return Err(std::io::Error::other("empty file"));
    }
    let map = MmapOptions::new().len(len).map_raw(&file)?;
    // No read-around on a fault: without this a fault (or a populate) of one page makes the
    // kernel read `read_ahead_kb` around it (8 MiB on this project's VMs: 2048 pages allocated
    // and zeroed in one go, 20-27 ms in one uninterruptible stretch).
    map.advise(Advice::Random)?;
    if from < len {
        // Best effort here; `populate_ahead` reports a failure.
        let _ = populate(&map, from, POPULATE_AHEAD.min(len - from));
    }
    Ok(map)
}

/// Bytes populated per system call: the kernel returns to user space (a preemption point)
/// between steps, so a populate never holds a CPU for long.
pub const POPULATE_STEP: usize = 256 << 10;

/// Faults `from..from + len` of the mapping into the page tables, readable, in steps.
fn populate(map: &MmapRaw, from: usize, len: usize) -> std::io::Result<()> {
    let end = from + len;
    let mut at = from;
    while at < end {
        let n = POPULATE_STEP.min(end - at);
        map.advise_range(Advice::PopulateRead, at, n)?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{run, test_dir};

    /// The `VmFlags` and `Rss` (kB) lines of this process's mapping of `path` in smaps.
    fn smaps_of(path: &Path) -> (String, u64) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let name = path.display().to_string();
        let mut lines = smaps.lines().skip_while(|l| !l.ends_with(&name)).skip(1);
        let mut rss = 0;
        for l in lines.by_ref() {
            if let Some(v) = l.strip_prefix("Rss:") {
                rss = v.trim().trim_end_matches("kB").trim().parse().expect("rss");
            }
            if let Some(v) = l.strip_prefix("VmFlags:") {
                return (v.to_string(), rss);
            }
        }
        panic!("no mapping of {name} in /proc/self/smaps");
    }

    #[test]
    fn bytes_written_through_the_mapping_are_in_the_file_and_bounds_are_checked() {
        let dir = test_dir("mapped");
        let path = dir.join("00000000000000000000");
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(64 << 20).expect("size");
        drop(f);
        let p = path.clone();
        run(move || async move {
            let m = MappedFile::open(0, &p, 0).await.expect("map");
            assert_eq!(m.map.len(), 64 << 20);
            let (flags, rss) = smaps_of(&p);
            // Random access (`rr`): no read-around; exactly the first window is populated.
            assert!(flags.split_whitespace().any(|f| f == "rr"), "{flags}");
            assert_eq!(rss, (POPULATE_AHEAD >> 10) as u64, "populated kB at open");
            m.write(4090, b"hello across a page").expect("write");
            // Half way into the window: the next window is populated in the background.
            m.write(POPULATE_AHEAD as u64 / 2 + 1, b"later")
                .expect("write");
            let mut waited = 0;
            while smaps_of(&p).1 < ((2 * POPULATE_AHEAD) >> 10) as u64 && waited < 200 {
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                waited += 1;
            }
            assert_eq!(
                smaps_of(&p).1,
                ((2 * POPULATE_AHEAD) >> 10) as u64,
                "two windows"
            );
            let err = m
                .write((64 << 20) - 2, b"abc")
                .expect_err("a write past the end is refused");
            assert!(err.to_string().contains("do not fit"), "{err}");
            m.retire();
        });
        // Read with plain file I/O: the page cache is the file.
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[4090..4090 + 19], b"hello across a page");
        let later = POPULATE_AHEAD / 2 + 1;
        assert_eq!(&bytes[later..later + 5], b"later");
        assert!(bytes[(64 << 20) - 2..].iter().all(|&b| b == 0));
    }
}
