//! Retention and disk-full handling of one shard's store (spec/storage.md §13, ARCHITECTURE.md
//! "Retention and a full disk"). Owns:
//!
//! - the POLICY as pure functions: is it time to delete (`deleteWhen` hour list), which head
//!   commit-log files are expired (`fileReservedTime`, "clean immediately"), what a partition's
//!   used ratio means (`diskMaxUsedSpaceRatio`, upstream's forced-clean 0.85 and warning 0.90
//!   ratios -> [`DiskVerdict`]); unit-tested with fake clocks and usage numbers;
//! - the per-shard periodic task (`ShardStore::start_retention`): every `cleanResourceInterval`
//!   it measures the partitions (statvfs: one quick syscall per path, on the timer, never per
//!   send), raises or clears the disk-full flag that makes `put` answer
//!   [`StoreError::DiskFull`], deletes expired head commit-log files, then the consume-queue
//!   files that only point below the new minimum, and moves every queue's min offset up;
//! - the disk-full answer's remark (upstream's "service not available now, maybe disk full").
//!
//! Safety of a deletion against readers and the writer: a file is deletable only when it is not
//! the last one and lies wholly below the file holding the visible end, so neither the flusher
//! (it writes at or beyond the visible end) nor a pending batch can touch it. The file is
//! unlinked first; only then is it taken out of the segment list and the queues' min offsets
//! corrected, in one synchronous step, so a new read never looks for it. A read already in
//! flight holds its own `Rc<DmaFile>` (reader.rs clones the segment before awaiting): the
//! unlinked inode stays readable until that last handle is dropped; then the blocks are freed
//! by a truncate on the blocking pool and the fd is closed (`io::release_unlinked`: freeing a
//! 1 GiB file's blocks stalls the thread that does it for most of a second on a `discard`
//! mount). Consume-queue files are dropped from memory under the CQ
//! flush lock, so no flush can recreate a file being deleted.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::commitlog::ShardStore;
use super::{global_offset, StoreError};

/// At most this many commit-log files are deleted per round (upstream's DELETE_FILES_BATCH_MAX).
pub const DELETE_FILES_PER_ROUND_MAX: usize = 10;
/// Upstream's `rocketmq.broker.diskSpaceWarningLevelRatio` default: above it writes are refused.
pub const DISK_WARNING_RATIO_DEFAULT: f64 = 0.90;
/// Upstream's `rocketmq.broker.diskSpaceCleanForciblyRatio` default: above it unexpired files
/// are deleted too (with `cleanFileForciblyEnable`).
pub const DISK_CLEAN_FORCIBLY_RATIO_DEFAULT: f64 = 0.85;
const HOUR_MS: u64 = 3600 * 1000;

/// Retention settings (from the broker's properties; see `from_config`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// `deleteWhen`: local hours of the day at which expired files are deleted.
    pub delete_hours: Vec<u32>,
    /// `fileReservedTime` in ms.
    pub file_reserved_ms: u64,
    /// `diskMaxUsedSpaceRatio` / 100, clamped to 0.10..=0.95.
    pub disk_max_used_ratio: f64,
    /// Above it the store refuses puts (`diskSpaceWarningLevelRatio`, 0.90).
    pub disk_warning_ratio: f64,
    /// Above it files are deleted whether expired or not (`diskSpaceCleanForciblyRatio`, 0.85).
    pub disk_clean_forcibly_ratio: f64,
    /// `cleanFileForciblyEnable`.
    pub clean_forcibly_enable: bool,
    /// `cleanResourceInterval`, ms: the period of the task (disk check and deletion).
    pub clean_interval_ms: u64,
    /// `deleteCommitLogFilesInterval`, ms between two commit-log file deletions.
    pub delete_commitlog_pause_ms: u64,
    /// `deleteConsumeQueueFilesInterval`, ms between two consume-queue file deletions.
    pub delete_cq_pause_ms: u64,
    /// The index directory (only measured for the disk-full remark).
    pub index_dir: PathBuf,
}

impl Default for RetentionConfig {
    /// Upstream's defaults.
    fn default() -> Self {
        Self {
            delete_hours: vec![4],
            file_reserved_ms: 72 * HOUR_MS,
            disk_max_used_ratio: 0.75,
            disk_warning_ratio: DISK_WARNING_RATIO_DEFAULT,
            disk_clean_forcibly_ratio: DISK_CLEAN_FORCIBLY_RATIO_DEFAULT,
            clean_forcibly_enable: true,
            clean_interval_ms: 10_000,
            delete_commitlog_pause_ms: 100,
            delete_cq_pause_ms: 100,
            index_dir: PathBuf::from("index"),
        }
    }
}

impl RetentionConfig {
    /// The settings of a loaded store config (values were validated while loading).
    pub fn from_config(s: &crate::config::MessageStoreConfig) -> Self {
        Self {
            delete_hours: parse_delete_when(&s.delete_when),
            file_reserved_ms: u64::from(s.file_reserved_time) * HOUR_MS,
            disk_max_used_ratio: f64::from(s.disk_max_used_space_ratio_clamped()) / 100.0,
            disk_warning_ratio: f64::from(s.disk_space_warning_level_ratio) / 100.0,
            disk_clean_forcibly_ratio: f64::from(s.disk_space_clean_forcibly_ratio) / 100.0,
            clean_forcibly_enable: s.clean_file_forcibly_enable,
            clean_interval_ms: u64::from(s.clean_resource_interval).max(1),
            delete_commitlog_pause_ms: u64::from(s.delete_commit_log_files_interval),
            delete_cq_pause_ms: u64::from(s.delete_consume_queue_files_interval),
            index_dir: s.store_path_index.clone(),
        }
    }
}

/// `deleteWhen` -> hours: `;`-separated integers, as upstream's `Integer.parseInt` of each
/// piece (`"04"` = 4). Pieces that are not an hour are skipped (the config loader refuses them).
pub fn parse_delete_when(text: &str) -> Vec<u32> {
    text.split(';')
        .filter_map(|h| h.trim().parse::<u32>().ok())
        .filter(|h| *h < 24)
        .collect()
}

/// Is `local_hour` one of the `deleteWhen` hours?
pub fn is_time_to_delete(hours: &[u32], local_hour: u32) -> bool {
    hours.contains(&local_hour)
}

/// One partition's numbers (statvfs, in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub total: u64,
    /// Free to root.
    pub free: u64,
    /// Available to unprivileged users.
    pub avail: u64,
}

/// Used fraction as `df` shows it: used / (used + available to unprivileged), rounded UP to a
/// whole percent (spec/storage.md §13). 0 for an empty partition description.
pub fn used_ratio(u: FsUsage) -> f64 {
    let used = u.total.saturating_sub(u.free);
    let entire = used + u.avail;
    if entire == 0 {
        return 0.0;
    }
    let percent = (u128::from(used) * 100).div_ceil(u128::from(entire));
    percent as f64 / 100.0
}

/// Measured used ratios of the store's partitions; -1 = could not be measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskRatios {
    pub commitlog: f64,
    pub consume_queue: f64,
    pub index: f64,
}

impl Default for DiskRatios {
    fn default() -> Self {
        Self {
            commitlog: -1.0,
            consume_queue: -1.0,
            index: -1.0,
        }
    }
}

/// What the disk numbers mean for this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskVerdict {
    /// Above the warning ratio: refuse puts until usage drops.
    pub full: bool,
    /// Above the forced-clean ratio: delete files even if they have not expired (when
    /// `cleanFileForciblyEnable`).
    pub clean_immediately: bool,
    /// Above `diskMaxUsedSpaceRatio` (or unmeasurable): delete expired files now, whatever
    /// the hour.
    pub space_to_delete: bool,
}

/// Upstream's rules, applied to the commit-log and the consume-queue partitions. Deviation:
/// a full consume-queue partition also refuses puts (upstream only flags it), because a CQ
/// write failing with ENOSPC would stop the store until restart; refusing sends instead lets
/// writes come back by themselves once space is freed.
pub fn judge_disk(r: &DiskRatios, cfg: &RetentionConfig) -> DiskVerdict {
    let mut v = DiskVerdict::default();
    for ratio in [r.commitlog, r.consume_queue] {
        if ratio > cfg.disk_warning_ratio {
            v.full = true;
            v.clean_immediately = true;
        } else if ratio > cfg.disk_clean_forcibly_ratio {
            v.clean_immediately = true;
        }
        if ratio < 0.0 || ratio > cfg.disk_max_used_ratio {
            v.space_to_delete = true;
        }
    }
    v
}

/// How many head files (oldest first) to delete this round. `mtimes_ms` are the last-modified
/// times of the candidate files, oldest first; only candidates may be deleted (the caller
/// never offers the current file or one the writer may still touch). Stops at the first file
/// that is kept, so files are only ever removed from the head.
pub fn expired_head_count(
    mtimes_ms: &[i64],
    now_ms: i64,
    reserved_ms: u64,
    clean_immediately: bool,
    max: usize,
) -> usize {
    let reserved = i64::try_from(reserved_ms).unwrap_or(i64::MAX);
    mtimes_ms
        .iter()
        .take(max)
        .take_while(|m| clean_immediately || now_ms >= m.saturating_add(reserved))
        .count()
}

/// statvfs of `path`, or of its nearest existing ancestor (a directory the store creates
/// lazily still has a partition). A quick syscall: fine on the shard's timer.
pub fn fs_usage(path: &Path) -> std::io::Result<FsUsage> {
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that outlives the call; `st` is a valid out pointer
    // of the right type, read only after the call reported success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // 64-bit Linux: the statvfs fields are u64.
    let frsize = st.f_frsize;
    Ok(FsUsage {
        total: st.f_blocks * frsize,
        free: st.f_bfree * frsize,
        avail: st.f_bavail * frsize,
    })
}

/// Unlinks a file; one that is already gone (a CQ file whose entries were never flushed) is
/// not an error.
async fn remove_file(path: &Path, op: &'static str) -> Result<(), StoreError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e: std::io::Error = e.into();
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(StoreError::io(op, path, e))
            }
        }
    }
}

fn measured_ratio(path: &Path) -> f64 {
    fs_usage(path).map_or(-1.0, used_ratio)
}

/// The current local hour (0..=23) and wall-clock ms: the retention clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub ms: i64,
    pub local_hour: u32,
}

impl Now {
    pub fn system() -> Now {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = libc::time_t::try_from(since.as_secs()).unwrap_or(0);
        let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
        // SAFETY: both pointers are valid for the call; localtime_r is the re-entrant variant
        // and writes only into `tm`, which is read only if it reported success.
        let ok = !unsafe { libc::localtime_r(&secs, tm.as_mut_ptr()) }.is_null();
        let local_hour = if ok {
            // SAFETY: localtime_r succeeded, so `tm` is initialised.
            u32::try_from(unsafe { tm.assume_init() }.tm_hour).unwrap_or(0)
        } else {
            0
        };
        Now {
            ms: i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            local_hour,
        }
    }
}

/// The store's disk state, shared by `put` and the retention task (shard-local).
#[derive(Debug, Default)]
pub(crate) struct RetentionState {
    full: Cell<bool>,
    ratios: Cell<DiskRatios>,
    manual_rounds: Cell<u32>,
    last_cq_min_phys: Cell<u64>,
}

/// What one retention round did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoundReport {
    pub verdict: DiskVerdict,
    pub commitlog_files_deleted: usize,
    pub consume_queue_files_deleted: usize,
    /// Shard-local commit-log minimum after the round.
    pub min_local_offset: u64,
}

impl ShardStore {
    /// Starts this shard's retention task (every `clean_interval_ms`; the disk is measured at
    /// once so a store opened on a full disk refuses puts from the start).
    pub fn start_retention(self: &Rc<Self>, cfg: RetentionConfig) {
        let weak: Weak<ShardStore> = Rc::downgrade(self);
        glommio::spawn_local(async move {
            {
                let Some(s) = weak.upgrade() else { return };
                s.measure_disk(&cfg);
            }
            loop {
                glommio::timer::sleep(Duration::from_millis(cfg.clean_interval_ms)).await;
                let Some(s) = weak.upgrade() else { return };
                if s.log.borrow().closed {
                    return;
                }
                let ratios = s.measure_disk(&cfg);
                if let Err(e) = s.retention_round(&cfg, Now::system(), ratios).await {
                    tracing::warn!(shard = s.shard.0, "retention round failed: {e}");
                }
            }
        })
        .detach();
    }

    /// Measures the partitions, records the ratios and raises/clears the disk-full flag.
    pub fn measure_disk(&self, cfg: &RetentionConfig) -> DiskRatios {
        let ratios = DiskRatios {
            commitlog: measured_ratio(&self.shard_dir),
            consume_queue: measured_ratio(&self.cfg.consume_queue_dir),
            index: measured_ratio(&cfg.index_dir),
        };
        self.set_disk_ratios(cfg, ratios);
        ratios
    }

    /// Records measured (or, in tests, invented) ratios and applies the full flag.
    pub fn set_disk_ratios(&self, cfg: &RetentionConfig, ratios: DiskRatios) -> DiskVerdict {
        let v = judge_disk(&ratios, cfg);
        let st = &self.retention;
        st.ratios.set(ratios);
        let was = st.full.replace(v.full);
        if v.full && !was {
            tracing::error!(
                shard = self.shard.0,
                commitlog = ratios.commitlog,
                consume_queue = ratios.consume_queue,
                "disk maybe full soon: refusing writes until space is freed"
            );
        } else if !v.full && was {
            tracing::info!(
                shard = self.shard.0,
                commitlog = ratios.commitlog,
                consume_queue = ratios.consume_queue,
                "disk space OK again: taking writes"
            );
        }
        v
    }

    /// True while the disk is over the warning ratio (puts are refused).
    pub fn disk_full(&self) -> bool {
        self.retention.full.get()
    }

    /// `put`'s check: the upstream "maybe disk full" refusal while the flag is up.
    pub(crate) fn refuse_if_disk_full(&self) -> Result<(), StoreError> {
        if !self.retention.full.get() {
            return Ok(());
        }
        let r = self.retention.ratios.get();
        Err(StoreError::DiskFull {
            commitlog: r.commitlog,
            consume_queue: r.consume_queue,
            index: r.index,
        })
    }

    /// Asks for deletion in the next rounds whatever the hour (upstream's manual delete, 20
    /// rounds; expiry still applies).
    pub fn request_manual_delete(&self) {
        self.retention.manual_rounds.set(20);
    }

    /// One round: delete expired commit-log files when it is time (hour, disk, manual request),
    /// then the consume-queue files that point only below the new minimum.
    pub async fn retention_round(
        &self,
        cfg: &RetentionConfig,
        now: Now,
        ratios: DiskRatios,
    ) -> Result<RoundReport, StoreError> {
        let verdict = judge_disk(&ratios, cfg);
        let manual = self.retention.manual_rounds.get();
        if manual > 0 {
            self.retention.manual_rounds.set(manual - 1);
        }
        let mut report = RoundReport {
            verdict,
            ..RoundReport::default()
        };
        if is_time_to_delete(&cfg.delete_hours, now.local_hour)
            || verdict.space_to_delete
            || manual > 0
        {
            let clean_now = cfg.clean_forcibly_enable && verdict.clean_immediately;
            report.commitlog_files_deleted = self
                .delete_expired_commitlog(now.ms, cfg.file_reserved_ms, clean_now, cfg)
                .await?;
        }
        report.consume_queue_files_deleted = self.delete_consume_queue_files(cfg).await?;
        report.min_local_offset = self.min_local_offset();
        Ok(report)
    }

    /// The first local offset still in the commit log.
    pub fn min_local_offset(&self) -> u64 {
        let log = self.log.borrow();
        log.segments.first().map_or(log.visible_end, |s| s.start)
    }

    /// Deletes expired head commit-log files (never the current one, never one at or beyond
    /// the file holding the visible end). Returns how many were deleted.
    pub async fn delete_expired_commitlog(
        &self,
        now_ms: i64,
        reserved_ms: u64,
        clean_immediately: bool,
        cfg: &RetentionConfig,
    ) -> Result<usize, StoreError> {
        let candidates: Vec<(u64, PathBuf)> = {
            let log = self.log.borrow();
            let fs = self.file_size();
            let visible_file = log.visible_end / fs * fs;
            let n = log.segments.len();
            log.segments
                .iter()
                .enumerate()
                .take_while(|(i, s)| i + 1 < n && s.start + fs <= visible_file)
                .map(|(_, s)| (s.start, s.path.clone()))
                .take(DELETE_FILES_PER_ROUND_MAX)
                .collect()
        };
        let mut mtimes = Vec::with_capacity(candidates.len());
        for (_, path) in &candidates {
            let m = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| StoreError::io("stat commitlog", path, e))?;
            let ms = m
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            mtimes.push(ms);
            if !clean_immediately && now_ms < ms.saturating_add_unsigned(reserved_ms) {
                break; // the rest is younger; no need to stat it
            }
        }
        let count = expired_head_count(
            &mtimes,
            now_ms,
            reserved_ms,
            clean_immediately,
            DELETE_FILES_PER_ROUND_MAX,
        );
        let mut deleted = 0;
        for (start, path) in candidates.into_iter().take(count) {
            if deleted > 0 && cfg.delete_commitlog_pause_ms > 0 {
                glommio::timer::sleep(Duration::from_millis(cfg.delete_commitlog_pause_ms)).await;
            }
            // Unlink first: a failure leaves everything as it was, retried next round.
            remove_file(&path, "delete commitlog").await?;
            let seg = {
                let mut log = self.log.borrow_mut();
                assert!(
                    log.segments.first().is_some_and(|s| s.start == start),
                    "invariant: commit-log files are deleted from the head only"
                );
                log.segments.remove(0)
            };
            let min = self.min_local_offset();
            self.update_stats(|s| s.min_local_offset = min);
            self.correct_cq_min_offsets();
            tracing::info!(
                shard = self.shard.0,
                file = %path.display(),
                clean_immediately,
                "deleted expired commit-log file"
            );
            deleted += 1;
            // A read in flight keeps its own handle until it is done; the blocks are freed off
            // the shard after that, then the file is closed.
            glommio::spawn_local(super::io::release_unlinked(seg.file, path)).detach();
        }
        Ok(deleted)
    }

    /// Moves every queue's min offset to its first entry at or above the commit-log minimum
    /// (synchronous: callers rely on no read seeing a removed file).
    pub(crate) fn correct_cq_min_offsets(&self) {
        let min_phys = global_offset(self.shard, self.min_local_offset());
        for q in self.queues.borrow_mut().values_mut() {
            q.cq.advance_min_to_phys(min_phys);
        }
    }

    /// Deletes head consume-queue files whose last entry points below the commit-log minimum
    /// (never a queue's last file). Runs only when the minimum moved since the last call.
    pub async fn delete_consume_queue_files(
        &self,
        cfg: &RetentionConfig,
    ) -> Result<usize, StoreError> {
        let min_phys = global_offset(self.shard, self.min_local_offset());
        if min_phys <= self.retention.last_cq_min_phys.get() {
            return Ok(0);
        }
        let keys: Vec<(String, u32)> = self.queues.borrow().keys().cloned().collect();
        let mut deleted = 0;
        for key in keys {
            let paths = {
                let _permit = self
                    .cq_lock
                    .acquire_permit(1)
                    .await
                    .map_err(|e| StoreError::NotWritable(format!("cq lock: {e}")))?;
                let paths = self
                    .queues
                    .borrow_mut()
                    .get_mut(&key)
                    .map(|q| q.cq.drop_head_files_below(min_phys))
                    .unwrap_or_default();
                for p in &paths {
                    remove_file(p, "delete consume queue").await?;
                }
                paths
            };
            for p in &paths {
                tracing::info!(shard = self.shard.0, file = %p.display(), "deleted consume-queue file");
                deleted += 1;
                if cfg.delete_cq_pause_ms > 0 {
                    glommio::timer::sleep(Duration::from_millis(cfg.delete_cq_pause_ms)).await;
                }
            }
        }
        // Index files that only point below the new minimum go with them.
        deleted += self.delete_index_files_below(min_phys).await?;
        self.retention.last_cq_min_phys.set(min_phys);
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod store_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RetentionConfig {
        RetentionConfig::default()
    }

    #[test]
    fn delete_when_is_an_hour_list() {
        assert_eq!(parse_delete_when("04"), vec![4]);
        assert_eq!(parse_delete_when("01;13"), vec![1, 13]);
        assert_eq!(parse_delete_when("04;x;25"), vec![4]);
        assert!(is_time_to_delete(&[1, 13], 13));
        assert!(!is_time_to_delete(&[1, 13], 4));
        assert!(!is_time_to_delete(&[], 4));
    }

    #[test]
    fn used_ratio_is_rounded_up_like_df() {
        // 57381888 total, 14336 used, 52671488 available: df shows 1%.
        let u = FsUsage {
            total: 57_381_888,
            free: 57_381_888 - 14_336,
            avail: 52_671_488,
        };
        assert_eq!(used_ratio(u), 0.01);
        let half = FsUsage {
            total: 200,
            free: 100,
            avail: 100,
        };
        assert_eq!(used_ratio(half), 0.5);
        // Root-reserved blocks count as not available: 90 used, 5 available = 95 %.
        let reserved = FsUsage {
            total: 100,
            free: 10,
            avail: 5,
        };
        assert_eq!(used_ratio(reserved), 0.95);
        assert_eq!(
            used_ratio(FsUsage {
                total: 0,
                free: 0,
                avail: 0
            }),
            0.0
        );
    }

    #[test]
    fn disk_ratios_map_to_upstream_states() {
        let c = cfg(); // max 0.75, forcibly 0.85, warning 0.90
        let at = |cl: f64, cq: f64| {
            judge_disk(
                &DiskRatios {
                    commitlog: cl,
                    consume_queue: cq,
                    index: cl,
                },
                &c,
            )
        };
        assert_eq!(at(0.50, 0.50), DiskVerdict::default());
        let over_max = at(0.80, 0.10);
        assert!(over_max.space_to_delete && !over_max.clean_immediately && !over_max.full);
        let forced = at(0.86, 0.10);
        assert!(forced.space_to_delete && forced.clean_immediately && !forced.full);
        let full = at(0.91, 0.10);
        assert!(full.space_to_delete && full.clean_immediately && full.full);
        assert!(at(0.10, 0.91).full, "a full CQ partition refuses puts too");
        let unknown = at(-1.0, 0.10);
        assert!(unknown.space_to_delete && !unknown.full);
        // Exactly at a ratio is not above it.
        assert_eq!(at(0.75, 0.75), DiskVerdict::default());
        assert!(!at(0.90, 0.10).full);
    }

    #[test]
    fn expired_files_are_a_head_run() {
        let h = 3600 * 1000;
        let now = 100 * h;
        // Oldest first: two expired (72 h), one young, one expired again (not reachable).
        let m = [now - 80 * h, now - 73 * h, now - 10 * h, now - 90 * h];
        let reserved = 72 * h as u64;
        assert_eq!(expired_head_count(&m, now, reserved, false, 10), 2);
        assert_eq!(expired_head_count(&m, now, reserved, true, 10), 4);
        assert_eq!(expired_head_count(&m, now, reserved, true, 3), 3);
        assert_eq!(expired_head_count(&m, now, 0, false, 10), 4);
        assert_eq!(expired_head_count(&[], now, 0, true, 10), 0);
        // Exactly at the limit counts as expired (now >= mtime + reserved).
        assert_eq!(
            expired_head_count(&[now - 72 * h], now, reserved, false, 10),
            1
        );
    }

    #[test]
    fn statvfs_of_a_missing_dir_measures_its_partition() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let a = fs_usage(here).unwrap();
        let b = fs_usage(&here.join("target/no/such/dir")).unwrap();
        assert_eq!(a.total, b.total);
        assert!(a.total > 0 && a.free <= a.total && a.avail <= a.free);
        let r = used_ratio(a);
        assert!((0.0..=1.0).contains(&r));
    }

    #[test]
    fn the_clock_gives_a_local_hour() {
        let n = Now::system();
        assert!(n.local_hour < 24);
        assert!(n.ms > 1_600_000_000_000);
    }

    #[test]
    fn disk_full_remark_is_upstreams() {
        let e = StoreError::DiskFull {
            commitlog: 0.93,
            consume_queue: 0.93,
            index: -1.0,
        };
        assert_eq!(
            e.to_string(),
            "service not available now, maybe disk full, CL:  0.93 CQ:  0.93 INDEX: -1.00, \
             maybe your broker machine memory too small."
        );
    }
}
