//! Startup recovery of one shard (spec/storage.md §7, adapted to per-shard logs): open the
//! commit-log files, load this shard's consume queues, scan the log from the checkpoint, stop
//! at the first invalid or zero record, cut the tail (logically and on disk), re-dispatch
//! records the consume queues lack, and drop CQ entries that point beyond the log end.
//!
//! Scan start: after a clean shutdown (`abnormal == false` and a clean slot) the checkpoint's
//! flushed offset itself (nothing to re-dispatch); otherwise the start of the file holding
//! `min(dispatched_offset, flushed_offset)` of the slot, or the first file without a slot. If
//! re-dispatch finds a consume queue missing entries older than the scan start (CQ files lost
//! or lagging), the scan is repeated once from the first file.
//! A record ends the log when it fails `record::check` (magic, lengths, body CRC), is not at
//! its own physical offset, or has a NUL in its topic or properties (the unchecksummed tail
//! torn: see `tail_plausible`).
//! Runs once per shard at open, on the shard's executor, before any put.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::checkpoint::Checkpoint;
use glommio::io::DmaFile;

use super::commitlog::{write_cq_units, Queue, Segment};
use super::consume_queue::{ConsumeQueue, CqEntry, CqWrite};
use super::index::ShardIndex;
use super::io::{
    align_down, align_up, ensure_dma_reads_work, gio_err, list_dirs, list_numbered_files, open_dma,
    DMA_ALIGN,
};
use super::record::{self, Decoded};
use super::{global_offset, ShardId, StoreConfig, StoreError};

/// Bytes read per DMA read while scanning.
const SCAN_WINDOW: u64 = 1 << 20;

/// A pending cut of this shard's log, in its commit-log directory: the local offset (decimal
/// text) a replicating slave found its log parts from its master's (`ha::epochs`). Recovery
/// ends the log there (or at the record boundary below it) whatever the checkpoint says; the
/// store removes the file once the cut and the checkpoint that follows it are on disk.
pub const CUT_MARKER_FILE: &str = "ha-cut";

pub fn cut_marker_path(shard_dir: &Path) -> PathBuf {
    shard_dir.join(CUT_MARKER_FILE)
}

/// The cut marker's offset, if there is one (a marker that does not parse stops the open:
/// ignoring it would keep bytes the master does not have).
fn read_cut_marker(shard_dir: &Path) -> Result<Option<(u64, PathBuf)>, StoreError> {
    let path = cut_marker_path(shard_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(at) => Ok(Some((at, path))),
            Err(e) => Err(StoreError::Corrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: format!("cut marker `{}` is not an offset: {e}", text.trim()),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read cut marker", &path, e)),
    }
}

pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    pub end: u64,
    pub tail: Option<(u64, Vec<u8>)>,
    pub queues: HashMap<(String, u32), Queue>,
    pub checkpoint: Checkpoint,
    pub shard_dir: PathBuf,
    pub last_store_timestamp: i64,
    /// The cut marker this recovery honoured: removed once the checkpoint is written.
    pub cut_marker: Option<PathBuf>,
    /// Commit-log bytes scanned (0 after a clean stop: the checkpoint says where the log ends).
    pub scanned_bytes: u64,
}

type Queues = HashMap<(String, u32), Queue>;

pub(crate) async fn recover(
    cfg: &StoreConfig,
    shard: ShardId,
    abnormal: bool,
    index: &ShardIndex,
) -> Result<Recovered, StoreError> {
    let shard_dir = cfg.commitlog_dir.join(shard.0.to_string());
    // Before any other DMA file of this shard is opened (see io.rs).
    ensure_dma_reads_work(&shard_dir).await?;
    let checkpoint = Checkpoint::open(&cfg.checkpoint_path, shard.0).await?;
    let slot = checkpoint.read_slot().await?;
    let mut segments = open_segments(&shard_dir, cfg.commitlog_file_size).await?;
    let (mut queues, disk_max) = load_queues(cfg, shard).await?;
    let fs = cfg.commitlog_file_size;
    let first = segments.first().map_or(0, |s| s.start);
    let last_end = segments.last().map_or(0, |s| s.start + fs);
    let (scan_from, mut last_ts) = match slot {
        Some(s) if !abnormal && s.clean && s.dispatched_offset == s.flushed_offset => (
            s.flushed_offset.clamp(first, last_end),
            s.last_store_timestamp,
        ),
        Some(s) => {
            let from = s
                .dispatched_offset
                .min(s.flushed_offset)
                .clamp(first, last_end);
            (align_down_to(from, fs).max(first), 0)
        }
        None => (first, 0),
    };
    // messageIndexSafe: the index, too, must be re-fed from its own durable end.
    let scan_from = match index.safe_rescan_from() {
        Some(i) if abnormal => scan_from.min(align_down_to(i, fs).max(first)),
        _ => scan_from,
    };
    let cut = read_cut_marker(&shard_dir)?;
    let scan_from = match &cut {
        Some((at, _)) => {
            tracing::warn!(
                shard = shard.0,
                cut_at = at,
                "cutting the commit log back to where this slave and its master agree"
            );
            scan_from.min(align_down_to(*at, fs).max(first))
        }
        None => scan_from,
    };
    let abnormal = abnormal || cut.is_some();
    if abnormal {
        tracing::warn!(
            shard = shard.0,
            scan_from,
            "abnormal shutdown: recovering commit log"
        );
    }
    let mut scan = Scan {
        shard,
        fs,
        cfg,
        queues: &mut queues,
        index,
        last_ts: 0,
        limit: cut.as_ref().map_or(u64::MAX, |(at, _)| *at),
    };
    let mut scanned_from = scan_from;
    let end = match scan.run(&segments, scan_from).await {
        Err(ScanError::Gap(..)) if scan_from > first => {
            scanned_from = first;
            scan.run(&segments, first).await
        }
        other => other,
    };
    let end = end.map_err(|e| e.into_store(&shard_dir))?;
    if scan.last_ts != 0 {
        last_ts = scan.last_ts;
    }
    truncate_queues(&mut queues, &disk_max, global_offset(shard, end)).await?;
    let tail = cut_log_tail(&mut segments, end, fs, cfg.warm_files(), abnormal).await?;
    for q in queues.values_mut() {
        q.reserved = q.cq.max_offset();
    }
    tracing::info!(
        shard = shard.0,
        end,
        queues = queues.len(),
        "commit log recovered"
    );
    Ok(Recovered {
        segments,
        end,
        tail,
        queues,
        checkpoint,
        shard_dir,
        last_store_timestamp: last_ts,
        cut_marker: cut.map(|(_, path)| path),
        scanned_bytes: end.saturating_sub(scanned_from),
    })
}

/// True when the file's first record would be the end of the log (its first 4 bytes, the
/// TOTALSIZE, are zero or absent): every written file starts with a record or a blank marker.
async fn holds_no_record(file: &DmaFile, size: u64) -> bool {
    if size < 4 {
        return true;
    }
    match file.read_at_aligned(0, DMA_ALIGN as usize).await {
        Ok(b) => b.get(..4).is_some_and(|h| h == [0u8; 4]),
        Err(_) => false,
    }
}

fn align_down_to(v: u64, fs: u64) -> u64 {
    v / fs * fs
}

async fn open_segments(dir: &Path, fs: u64) -> Result<Vec<Segment>, StoreError> {
    let mut segments: Vec<Segment> = Vec::new();
    let files = list_numbered_files(dir)?;
    let newest = files.last().map(|(start, _)| *start);
    for (start, path) in files {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.display().to_string(),
            offset: start,
            reason,
        };
        if start % fs != 0 {
            return Err(corrupt(format!(
                "name is not a multiple of commitlog_file_size {fs}"
            )));
        }
        if let Some(prev) = segments.last() {
            if prev.start + fs != start {
                return Err(corrupt(format!(
                    "gap after file starting at {}",
                    prev.start
                )));
            }
        }
        let file = open_dma(&path).await?;
        let size = file
            .file_size()
            .await
            .map_err(gio_err("stat commitlog", &path))?;
        if size < fs && Some(start) == newest && holds_no_record(&file, size).await {
            // A crash while the file was being created ahead of need (created, not yet
            // sized): nothing was ever written to it. It is created again when needed.
            tracing::warn!(path = %path.display(), size, expected = fs,
                "removing a commit-log file cut short while it was being created (no record in it)");
            std::fs::remove_file(&path)
                .map_err(|e| StoreError::io("remove short commitlog", &path, e))?;
            break;
        }
        if size != fs {
            return Err(corrupt(format!(
                "file length {size} != commitlog_file_size {fs}"
            )));
        }
        segments.push(Segment { start, file, path });
    }
    Ok(segments)
}

/// Loads every consume queue of this shard; also returns each queue's on-disk max offset.
async fn load_queues(
    cfg: &StoreConfig,
    shard: ShardId,
) -> Result<(Queues, HashMap<(String, u32), u64>), StoreError> {
    let mut queues = HashMap::new();
    let mut disk_max = HashMap::new();
    for (topic, tdir) in list_dirs(&cfg.consume_queue_dir)? {
        for (qname, _) in list_dirs(&tdir)? {
            let Ok(qid) = qname.parse::<u32>() else {
                continue;
            };
            let loaded = ConsumeQueue::load(
                &cfg.consume_queue_dir,
                &topic,
                qid,
                cfg.consume_queue_file_size,
                shard.0,
            )
            .await?;
            if let Some(cq) = loaded {
                disk_max.insert((topic.clone(), qid), cq.max_offset());
                queues.insert((topic.clone(), qid), Queue { cq, reserved: 0 });
            }
        }
    }
    Ok((queues, disk_max))
}

enum ScanError {
    Gap(String, u64),
    Store(StoreError),
}

impl ScanError {
    fn into_store(self, dir: &Path) -> StoreError {
        match self {
            ScanError::Gap(reason, offset) => StoreError::Corrupt {
                path: dir.display().to_string(),
                offset,
                reason,
            },
            ScanError::Store(e) => e,
        }
    }
}

impl From<StoreError> for ScanError {
    fn from(e: StoreError) -> Self {
        ScanError::Store(e)
    }
}

struct Scan<'a> {
    shard: ShardId,
    fs: u64,
    cfg: &'a StoreConfig,
    queues: &'a mut Queues,
    index: &'a ShardIndex,
    last_ts: i64,
    /// The log ends at or before this local offset (a cut marker), u64::MAX: no limit.
    limit: u64,
}

/// A window of one file's bytes.
struct Window {
    start: u64,
    data: Vec<u8>,
}

impl Scan<'_> {
    /// Walks records from `from` (local); returns the end of the valid log.
    async fn run(&mut self, segments: &[Segment], from: u64) -> Result<u64, ScanError> {
        let Some(mut idx) = segments
            .iter()
            .position(|s| s.start <= from && from < s.start + self.fs)
        else {
            // `from` is the end of the last file (or there are no files).
            return Ok(from);
        };
        let mut pos = from;
        loop {
            let seg = &segments[idx];
            let seg_end = seg.start + self.fs;
            let mut win = read_window(seg, pos, SCAN_WINDOW.min(seg_end - align_down(pos))).await?;
            loop {
                if pos >= seg_end {
                    break;
                }
                let off = (pos - win.start) as usize;
                match record::check(&win.data[off..]) {
                    Ok(Decoded::Record(r)) => {
                        if pos + u64::from(r.total_size) > self.limit {
                            return Ok(pos); // at a cut marker (a record across it goes too)
                        }
                        if r.phys_offset as u64 != global_offset(self.shard, pos) {
                            return Ok(pos); // a record from an earlier life: not ours
                        }
                        if !tail_plausible(&r) {
                            return Ok(pos); // torn inside topic/properties (no CRC there)
                        }
                        let size = r.total_size;
                        let ts = r.store_timestamp;
                        self.dispatch(&r, pos)?;
                        self.index.add_record(&r, global_offset(self.shard, pos));
                        self.last_ts = ts;
                        pos += u64::from(size);
                    }
                    Ok(Decoded::Blank(rem)) => {
                        if pos + u64::from(rem) != seg_end || seg_end > self.limit {
                            return Ok(pos);
                        }
                        pos = seg_end;
                    }
                    Ok(Decoded::Incomplete) if win.start + (win.data.len() as u64) < seg_end => {
                        let want = needed_len(&win.data[off..]).max(SCAN_WINDOW);
                        let len = align_up(want).min(seg_end - align_down(pos));
                        win = read_window(seg, pos, len).await?;
                    }
                    Ok(Decoded::End | Decoded::Incomplete) | Err(_) => return Ok(pos),
                }
            }
            match segments.get(idx + 1) {
                Some(_) => {
                    idx += 1;
                    pos = segments[idx].start;
                }
                None => return Ok(pos),
            }
        }
    }

    /// Re-dispatches one valid record to its consume queue (idempotent).
    fn dispatch(&mut self, r: &record::RecordView<'_>, pos: u64) -> Result<(), ScanError> {
        if !r.is_dispatched() || r.queue_id < 0 {
            return Ok(());
        }
        let phys = global_offset(self.shard, pos);
        let key = (r.topic.to_string(), r.queue_id as u32);
        let (dir, cq_size) = (
            &self.cfg.consume_queue_dir,
            self.cfg.consume_queue_file_size,
        );
        let q = self.queues.entry(key).or_insert_with(|| Queue {
            cq: ConsumeQueue::new(dir, r.topic, r.queue_id as u32, cq_size),
            reserved: 0,
        });
        let qo = r.queue_offset.max(0) as u64;
        let max = q.cq.max_offset();
        if qo < max {
            if q.cq.entry(qo).map(|e| e.phys) == Some(phys) {
                return Ok(());
            }
            q.cq.truncate_to(qo);
        } else if qo > max {
            return Err(ScanError::Gap(
                format!("queue {}:{} lacks offsets {max}..{qo}", r.topic, r.queue_id),
                pos,
            ));
        }
        q.cq.push(
            qo,
            CqEntry {
                phys,
                size: r.total_size,
                tags_code: tags_code_of(r.properties),
            },
        );
        Ok(())
    }
}

/// The record format's CRC covers only the body: a record whose last bytes (topic, properties)
/// never reached the disk still decodes. Unwritten bytes read as zeros, and no client can put a
/// NUL into a topic or a property string, so a NUL there marks a torn record.
fn tail_plausible(r: &record::RecordView<'_>) -> bool {
    !r.topic.as_bytes().contains(&0) && !r.properties.as_bytes().contains(&0)
}

/// TOTALSIZE from a record header, for sizing the next read.
fn needed_len(b: &[u8]) -> u64 {
    match b.get(..4) {
        Some(h) => u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])),
        None => 0,
    }
}

/// tagsCode re-derived from the TAGS property, as the broker computed it on send.
/// TODO(#4): delay-topic codes (delivery time) are not re-derivable here.
fn tags_code_of(properties: &str) -> i64 {
    crate::remoting::message::tags_code(properties)
}

async fn read_window(seg: &Segment, pos: u64, len: u64) -> Result<Window, StoreError> {
    let start = align_down(pos);
    let file_pos = start - seg.start;
    let r = seg
        .file
        .read_at_aligned(file_pos, align_up(len.max(1)) as usize)
        .await
        .map_err(gio_err("read commitlog", &seg.path))?;
    Ok(Window {
        start,
        data: r.to_vec(),
    })
}

/// Drops CQ entries beyond the log end and zeroes stale units on disk.
async fn truncate_queues(
    queues: &mut Queues,
    disk_max: &HashMap<(String, u32), u64>,
    log_end_global: u64,
) -> Result<(), StoreError> {
    let mut writes: Vec<((String, u32), CqWrite)> = Vec::new();
    for (k, q) in queues.iter_mut() {
        q.cq.truncate_beyond(log_end_global);
        let on_disk = disk_max.get(k).copied().unwrap_or(0);
        if q.cq.max_offset() < on_disk {
            for w in q.cq.zero_range(q.cq.max_offset(), on_disk) {
                writes.push((k.clone(), w));
            }
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let cell = std::cell::RefCell::new(std::mem::take(queues));
    let res = write_cq_units(&cell, writes).await;
    *queues = cell.into_inner();
    res
}

/// Deletes files after the one holding `end`, zeroes that file from `end` on, and returns the
/// partial tail page the appender must carry. With `warm` (Sync mode's `warmMapedFileEnable`,
/// whose files were written with zeros when created): after a clean stop nothing follows the
/// end but zeros (every write completed, its last page zero padded), so the written zeros are
/// kept; after a crash the cut tail is written with zeros again, as a new file would be.
async fn cut_log_tail(
    segments: &mut Vec<Segment>,
    end: u64,
    fs: u64,
    warm: Option<u64>,
    abnormal: bool,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let cut_from = segments.iter().take_while(|s| s.start <= end).count();
    for s in segments.drain(cut_from..) {
        std::fs::remove_file(&s.path)
            .map_err(|e| StoreError::io("remove commitlog", &s.path, e))?;
        tracing::warn!(path = %s.path.display(), "removed commit-log file beyond the log end");
    }
    let Some(seg) = segments.last().filter(|s| end < s.start + fs) else {
        return Ok(None);
    };
    let at = end - seg.start;
    if warm.is_none() || abnormal {
        zero_log_tail(seg, at, fs, warm).await?;
    }
    let page = align_down(end);
    if page == end {
        return Ok(None);
    }
    let w = read_window(seg, page, end - page).await?;
    Ok(Some((page, w.data[..(end - page) as usize].to_vec())))
}

/// Punches out everything after `at` (partial block zeroed) and re-reserves the blocks; with
/// `warm`, writes zeros over them.
async fn zero_log_tail(
    seg: &Segment,
    at: u64,
    fs: u64,
    warm: Option<u64>,
) -> Result<(), StoreError> {
    seg.file
        .deallocate(at, fs - at)
        .await
        .map_err(gio_err("zero commitlog tail", &seg.path))?;
    let _ = seg.file.pre_allocate(fs, true).await;
    match warm {
        Some(flush_every) => {
            super::io::write_zeros(&seg.file, &seg.path, align_up(at), fs, flush_every).await?
        }
        None => seg
            .file
            .fdatasync()
            .await
            .map_err(gio_err("fdatasync commitlog", &seg.path))?,
    }
    Ok(())
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
