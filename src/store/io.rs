//! The store's file plumbing on top of glommio: file naming, directory listing, DMA file
//! creation at full size, and THE one place that applies the ext4 polled-read workaround
//! (GLOMMIO-NOTES.md). Runs on the shard's executor; std::fs is used only at open time.
//!
//! Why the probe: glommio decides per device (cached per thread) whether DMA reads may use the
//! poll ring by reading offset 0 of the first DMA file opened there. An empty or sparse file
//! answers without touching the device, glommio caches "pollable", and every later read fails
//! with EOPNOTSUPP on virtio/ext4. Opening a file with real data first makes the probe hit the
//! device, which then answers "not supported", and glommio caches "no polling".

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use glommio::io::{DmaFile, OpenOptions};

use super::StoreError;

/// Alignment of DMA writes (offsets, lengths, buffers).
pub const DMA_ALIGN: u64 = 4096;
const PROBE_FILE: &str = ".dma-probe";

/// 20-digit zero-padded decimal name of a file starting at `start`.
pub fn segment_name(start: u64) -> String {
    format!("{start:020}")
}

pub fn align_down(v: u64) -> u64 {
    v / DMA_ALIGN * DMA_ALIGN
}

pub fn align_up(v: u64) -> u64 {
    v.div_ceil(DMA_ALIGN) * DMA_ALIGN
}

pub(crate) fn gio_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(glommio::GlommioError<()>) -> StoreError {
    let path = path.display().to_string();
    move |e| StoreError::Io {
        op,
        path,
        source: Arc::new(e.into()),
    }
}

/// Files of `dir` whose names are 20 decimal digits, sorted by number. A missing directory is
/// empty. Other names (e.g. the probe file) are ignored.
pub fn list_numbered_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list dir", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| StoreError::io("list dir", dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = name.parse::<u64>() {
            out.push((n, ent.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// How often `release_unlinked` looks whether the reads holding a deleted file are done.
const RELEASE_POLL: std::time::Duration = std::time::Duration::from_millis(10);
/// ... and for how long at most.
const RELEASE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(60);

thread_local! {
    /// Deleted files are shortened one at a time on each shard (a shard is a thread).
    static RELEASES: Rc<glommio::sync::Semaphore> = Rc::new(glommio::sync::Semaphore::new(1));
}
/// `release_unlinked` frees a deleted file's blocks this many bytes at a time ...
pub const RELEASE_STEP_BYTES: u64 = 4 << 20;
/// ... with this pause between steps, so the device serves group commits between discards.
const RELEASE_STEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// Frees an unlinked file's blocks on the blocking pool, then closes it (ARCHITECTURE 15d).
/// Whoever drops the last reference to an unlinked inode frees its blocks in that system
/// call, and on a filesystem mounted `discard` (these machines' ext4) that includes a
/// synchronous discard of every block: 0.6-0.7 s for a 1 GiB commit-log file, measured as a
/// stall of the whole shard when glommio's close ran it there. So: wait until reads in flight
/// (which hold clones of `file`) are done, shorten the file [`RELEASE_STEP_BYTES`] at a time
/// on the blocking pool (the blocks, and their discard, go there; one discard of a whole file
/// held the device for 0.2 s per 256 MiB, and group commits waited behind it), and only then
/// close it on the shard. Errors are logged: the file is already unlinked, and closing frees
/// what is left.
pub(crate) async fn release_unlinked<F: ClosableFile>(file: Rc<F>, path: PathBuf) {
    let since = std::time::Instant::now();
    while Rc::strong_count(&file) > 1 {
        if since.elapsed() >= RELEASE_WAIT_MAX {
            // Reads are done in milliseconds; a holder this old is not a read. Its drop frees
            // the blocks wherever it happens, as before this existed.
            tracing::warn!(path = %path.display(), holders = Rc::strong_count(&file) - 1,
                "a deleted file is still held after {RELEASE_WAIT_MAX:?}; leaving it to its holders");
            return;
        }
        glommio::timer::sleep(RELEASE_POLL).await;
    }
    // One file at a time per shard: a retention round deletes up to ten.
    let one = RELEASES.with(Rc::clone);
    let shrunk = match one.acquire_permit(1).await {
        Ok(_permit) => shrink_to_zero(&file).await,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    if let Err(e) = shrunk {
        tracing::warn!(path = %path.display(), error = %e,
            "freeing the blocks of a deleted file before closing it; closing frees them");
    }
    if let Ok(f) = Rc::try_unwrap(file) {
        if let Err(e) = f.close_file().await {
            tracing::warn!(path = %path.display(), error = %e, "closing a deleted file");
        }
    }
}

/// Truncates `file` to zero length from its end, [`RELEASE_STEP_BYTES`] per blocking job.
async fn shrink_to_zero<F: ClosableFile>(file: &Rc<F>) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // By the descriptor: the path is gone (glommio's `file_size` looks it up by path).
    let mut len = glommio::executor()
        .spawn_blocking(move || {
            // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `fd` is open (held by `file`, borrowed across this job) and `st` is a
            // valid buffer for fstat to fill.
            match unsafe { libc::fstat(fd, &mut st) } {
                0 => u64::try_from(st.st_size).map_err(std::io::Error::other),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
        .await?;
    while len > 0 {
        len = (len - 1) / RELEASE_STEP_BYTES * RELEASE_STEP_BYTES;
        let to = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
        // `file` stays open (borrowed here) until the job has returned.
        glommio::executor()
            .spawn_blocking(move || {
                // SAFETY: `fd` is an open descriptor owned by `file`, which outlives this call.
                match unsafe { libc::ftruncate(fd, to) } {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            })
            .await?;
        if len > 0 {
            glommio::timer::sleep(RELEASE_STEP_PAUSE).await;
        }
    }
    Ok(())
}

/// The glommio files the store deletes while they may be open (commit log: DMA; index:
/// buffered).
pub(crate) trait ClosableFile: AsRawFd + Sized + 'static {
    async fn close_file(self) -> glommio::Result<(), ()>;
}

impl ClosableFile for DmaFile {
    async fn close_file(self) -> glommio::Result<(), ()> {
        self.close().await
    }
}

impl ClosableFile for glommio::io::BufferedFile {
    async fn close_file(self) -> glommio::Result<(), ()> {
        self.close().await
    }
}

/// Removes a file and fsyncs its directory, so the removal survives a power loss (blocking:
/// at a store's open, as recovery's other file-system calls).
pub fn remove_durably(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Sub-directories of `dir` (name, path), sorted; missing dir = none.
pub fn list_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list dir", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| StoreError::io("list dir", dir, e))?;
        let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let (true, Some(name)) = (is_dir, ent.file_name().to_str()) {
            out.push((name.to_string(), ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Makes DMA reads work on this executor for the device holding `dir` (see the module doc).
/// Must run before any other DMA file on that device is opened by this thread; idempotent.
pub async fn ensure_dma_reads_work(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
    let path = dir.join(PROBE_FILE);
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if len < DMA_ALIGN {
        let data = vec![0xA5u8; DMA_ALIGN as usize];
        std::fs::write(&path, &data).map_err(|e| StoreError::io("write probe", &path, e))?;
        let f = std::fs::File::open(&path).map_err(|e| StoreError::io("open probe", &path, e))?;
        f.sync_all()
            .map_err(|e| StoreError::io("sync probe", &path, e))?;
    }
    let f = DmaFile::open(&path)
        .await
        .map_err(gio_err("open probe", &path))?;
    let r = f.read_at_aligned(0, DMA_ALIGN as usize).await;
    let closed = f.close().await;
    r.map_err(gio_err("read probe", &path))?;
    closed.map_err(gio_err("close probe", &path))
}

/// Opens an existing commit-log file for reading and writing.
pub async fn open_dma(path: &Path) -> Result<Rc<DmaFile>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(gio_err("open commitlog", path))?;
    Ok(Rc::new(f))
}

/// Opens the commit-log file at `path` again with `O_DSYNC` (`StoreConfig::dsync_writes`) and
/// closes `file`, the handle it was created or recovered with: zeros written when a file is
/// created or recovered go through that plain handle, with an fdatasync every
/// `flush_every` bytes, not one per write.
pub async fn reopen_dsync(file: Rc<DmaFile>, path: &Path) -> Result<Rc<DmaFile>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .dma_open(path)
        .await
        .map_err(gio_err("open commitlog O_DSYNC", path))?;
    if let Ok(old) = Rc::try_unwrap(file) {
        old.close()
            .await
            .map_err(gio_err("close commitlog", path))?;
    }
    Ok(Rc::new(f))
}

/// Bytes of one zero write while warming a commit-log file (`write_zeros`): small enough that
/// a group-commit write queued behind one waits a fraction of a millisecond on this kind of
/// device (1.2-1.6 GB/s sequential), large enough that a 1 GiB file takes 4096 writes.
pub const WARM_WRITE_BYTES: usize = 256 * 1024;

/// Writes zeros over `[from, to)` of a DMA file (both aligned), one `WARM_WRITE_BYTES` write
/// at a time, with an fdatasync after every `flush_every` bytes (0: only at the end) and always
/// one at the end (ARCHITECTURE 46). The blocks stop being fallocated-but-unwritten, so a later
/// direct-I/O write over them is a plain overwrite: issued without an io-wq hand-off, and its
/// fdatasync writes no extent change. Never called on a range that holds records.
pub async fn write_zeros(
    file: &DmaFile,
    path: &Path,
    from: u64,
    to: u64,
    flush_every: u64,
) -> Result<(), StoreError> {
    debug_assert!(from.is_multiple_of(DMA_ALIGN) && to.is_multiple_of(DMA_ALIGN));
    // Even with nothing to write, the fdatasync at the end runs: a caller's punch or
    // fallocate before it must be durable too.
    let chunk = WARM_WRITE_BYTES as u64;
    let mut full = file.alloc_dma_buffer(WARM_WRITE_BYTES);
    full.as_bytes_mut().fill(0);
    let full = Rc::new(full);
    let mut pos = from;
    let mut since_sync = 0u64;
    while pos < to {
        let len = chunk.min(to - pos);
        let buf = if len == chunk {
            full.clone()
        } else {
            let mut b = file.alloc_dma_buffer(len as usize);
            b.as_bytes_mut().fill(0);
            Rc::new(b)
        };
        let n = file
            .write_rc_at(buf, pos)
            .await
            .map_err(gio_err("write zeros into commitlog", path))?;
        if n as u64 != len {
            return Err(StoreError::io(
                "write zeros into commitlog",
                path,
                std::io::Error::other(format!("short write: {n} of {len} bytes at {pos}")),
            ));
        }
        pos += len;
        since_sync += len;
        if flush_every > 0 && since_sync >= flush_every && pos < to {
            since_sync = 0;
            file.fdatasync()
                .await
                .map_err(gio_err("fdatasync commitlog", path))?;
        }
    }
    file.fdatasync()
        .await
        .map_err(gio_err("fdatasync commitlog", path))
}

/// Creates (or reopens) a commit-log file at its full size with blocks allocated, then makes
/// its directory entry durable. With `warm` (Some(flush_every), `warmMapedFileEnable`), a file
/// this call created is also written with zeros from end to end (`write_zeros`).
pub async fn create_dma_full(
    path: &Path,
    size: u64,
    warm: Option<u64>,
) -> Result<Rc<DmaFile>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(gio_err("create commitlog", path))?;
    let cur = f
        .file_size()
        .await
        .map_err(gio_err("stat commitlog", path))?;
    if cur < size {
        // fallocate; fall back to a sparse extension where the filesystem has no fallocate.
        if f.pre_allocate(size, false).await.is_err() {
            f.truncate(size)
                .await
                .map_err(gio_err("size commitlog", path))?;
        }
    }
    match warm {
        Some(flush_every) if cur < size => write_zeros(&f, path, 0, size, flush_every).await?,
        _ => f
            .fdatasync()
            .await
            .map_err(gio_err("fdatasync commitlog", path))?,
    }
    sync_parent_dir(path).await?;
    Ok(Rc::new(f))
}

/// Makes a new file's directory entry durable: fsync of the directory it is in.
pub(crate) async fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        let d = glommio::io::Directory::open(dir)
            .await
            .map_err(gio_err("open dir", dir))?;
        d.sync().await.map_err(gio_err("sync dir", dir))?;
        d.close().await.map_err(gio_err("close dir", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_alignment() {
        assert_eq!(segment_name(1_073_741_824), "00000000001073741824");
        assert_eq!(align_down(4097), 4096);
        assert_eq!(align_up(4097), 8192);
        assert_eq!(align_up(0), 0);
    }

    #[test]
    fn listing_ignores_foreign_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(segment_name(4096)), b"").unwrap();
        std::fs::write(d.path().join(segment_name(0)), b"").unwrap();
        std::fs::write(d.path().join(PROBE_FILE), b"").unwrap();
        let l = list_numbered_files(d.path()).unwrap();
        assert_eq!(l.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 4096]);
        assert!(list_numbered_files(&d.path().join("nope"))
            .unwrap()
            .is_empty());
    }
}
