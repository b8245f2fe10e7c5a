//! The message store settings (upstream's `MessageStoreConfig`, spec/properties.md §3.2), the
//! broker role and flush mode enums, and the four path keys upstream ignores but shardmq honours
//! (§5). Defaults are 4.9.8's; 4.3 differs where noted. Path derivation and cross-key checks
//! happen in `broker.rs`, after the whole file is applied.

use std::path::PathBuf;

use super::value::{self, config_section, ConfigValue};

/// `brokerRole`, spelled exactly as upstream's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl BrokerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }
}

impl ConfigValue for BrokerRole {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text {
            "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
            "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
            "SLAVE" => Ok(BrokerRole::Slave),
            _ => Err("expected ASYNC_MASTER, SYNC_MASTER or SLAVE".to_owned()),
        }
    }
    fn render(&self) -> String {
        self.as_str().to_owned()
    }
}

/// `flushDiskType`, spelled exactly as upstream's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    AsyncFlush,
    SyncFlush,
}

impl FlushDiskType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
        }
    }
}

impl ConfigValue for FlushDiskType {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text {
            "ASYNC_FLUSH" => Ok(FlushDiskType::AsyncFlush),
            "SYNC_FLUSH" => Ok(FlushDiskType::SyncFlush),
            _ => Err("expected ASYNC_FLUSH or SYNC_FLUSH".to_owned()),
        }
    }
    fn render(&self) -> String {
        self.as_str().to_owned()
    }
}

/// The consume-queue unit: CQ file sizes are rounded up to a multiple of it.
pub const CQ_UNIT_SIZE: u32 = 20;

/// `storePathCommitLog` is a single directory here: shardmq keeps one log per shard under it.
fn parse_commit_log_dir(text: &str) -> Result<PathBuf, String> {
    if text.contains(',') {
        return Err(
            "several comma-separated commit-log directories are not supported; \
                    give one directory (shardmq splits it per shard)"
                .to_owned(),
        );
    }
    PathBuf::parse_value(text)
}

config_section! {
    /// The message store. Paths are absolute after loading (relative ones are resolved against
    /// the current directory).
    pub struct MessageStoreConfig(env) in STORE_FIELDS {
        /// Store root: consume queues, index, checkpoint, abort, lock and `config/` by default.
        "storePathRootDir" => store_path_root_dir: PathBuf = env.home.join("store");
        /// Commit-log directory; default `<root>/commitlog` (4.9 rule; 4.3 used
        /// `~/store/commitlog` whatever the root).
        "storePathCommitLog" => store_path_commit_log: PathBuf = env.home.join("store/commitlog"),
            parse = parse_commit_log_dir;
        "storePathDLedgerCommitLog" => store_path_d_ledger_commit_log: Option<String> = None;
        "readOnlyCommitLogStorePaths" => read_only_commit_log_store_paths: Option<String> = None;
        /// Commit-log file size, bytes. Also read from the 4.0-4.5.1 spelling
        /// `mapedFileSizeCommitLog` (this spelling wins when both are present).
        "mappedFileSizeCommitLog" => mapped_file_size_commit_log: u32 = 1_073_741_824,
            parse = value::parse_positive;
        /// Consume-queue file size in bytes, rounded up to a multiple of 20 after loading. Also
        /// read from `mapedFileSizeConsumeQueue`.
        "mappedFileSizeConsumeQueue" => mapped_file_size_consume_queue: u32 = 6_000_000,
            parse = value::parse_positive;
        "enableConsumeQueueExt" => enable_consume_queue_ext: bool = false;
        "mappedFileSizeConsumeQueueExt" => mapped_file_size_consume_queue_ext: u32 = 50_331_648;
        "bitMapLengthConsumeQueueExt" => bit_map_length_consume_queue_ext: u32 = 64;
        /// ASYNC_FLUSH: ms between fdatasyncs of the commit log.
        "flushIntervalCommitLog" => flush_interval_commit_log: u32 = 500;
        "commitIntervalCommitLog" => commit_interval_commit_log: u32 = 200;
        /// 4.3: false.
        "useReentrantLockWhenPutMessage" => use_reentrant_lock_when_put_message: bool = true;
        /// 4.3: false.
        "flushCommitLogTimed" => flush_commit_log_timed: bool = true;
        "flushIntervalConsumeQueue" => flush_interval_consume_queue: u32 = 1000;
        "cleanResourceInterval" => clean_resource_interval: u32 = 10000;
        "deleteCommitLogFilesInterval" => delete_commit_log_files_interval: u32 = 100;
        "deleteConsumeQueueFilesInterval" => delete_consume_queue_files_interval: u32 = 100;
        "destroyMapedFileIntervalForcibly" => destroy_maped_file_interval_forcibly: u32 = 120000;
        "redeleteHangedFileInterval" => redelete_hanged_file_interval: u32 = 120000;
        /// Hours of the day (`;`-separated) at which expired files are deleted.
        "deleteWhen" => delete_when: String = "04".to_owned(), parse = value::parse_hours;
        /// Disk-use percentage that triggers deletion; the store clamps it to 10..=95.
        "diskMaxUsedSpaceRatio" => disk_max_used_space_ratio: u32 = 75,
            parse = value::parse_percent;
        /// Hours a commit-log file is kept.
        "fileReservedTime" => file_reserved_time: u32 = 72;
        /// Unused upstream (sic).
        "putMsgIndexHightWater" => put_msg_index_hight_water: u32 = 600000;
        /// Bytes; limits the body in 4.9.4+, the whole record up to 4.9.3 (incl. 4.3).
        "maxMessageSize" => max_message_size: u32 = 4_194_304, parse = value::parse_positive;
        "checkCRCOnRecover" => check_crc_on_recover: bool = true;
        "flushCommitLogLeastPages" => flush_commit_log_least_pages: u32 = 4;
        "commitCommitLogLeastPages" => commit_commit_log_least_pages: u32 = 4;
        "flushLeastPagesWhenWarmMapedFile" => flush_least_pages_when_warm_maped_file: u32 = 4096;
        "flushConsumeQueueLeastPages" => flush_consume_queue_least_pages: u32 = 2;
        "flushCommitLogThoroughInterval" => flush_commit_log_thorough_interval: u32 = 10000;
        "commitCommitLogThoroughInterval" => commit_commit_log_thorough_interval: u32 = 200;
        "flushConsumeQueueThoroughInterval" => flush_consume_queue_thorough_interval: u32 = 60000;
        "maxTransferBytesOnMessageInMemory" => max_transfer_bytes_on_message_in_memory: u32 =
            262144;
        "maxTransferCountOnMessageInMemory" => max_transfer_count_on_message_in_memory: u32 = 32;
        "maxTransferBytesOnMessageInDisk" => max_transfer_bytes_on_message_in_disk: u32 = 65536;
        "maxTransferCountOnMessageInDisk" => max_transfer_count_on_message_in_disk: u32 = 8;
        "accessMessageInMemoryMaxRatio" => access_message_in_memory_max_ratio: u32 = 40,
            parse = value::parse_percent;
        "messageIndexEnable" => message_index_enable: bool = true;
        "maxHashSlotNum" => max_hash_slot_num: u32 = 5_000_000;
        "maxIndexNum" => max_index_num: u32 = 20_000_000;
        "maxMsgsNumBatch" => max_msgs_num_batch: u32 = 64;
        "messageIndexSafe" => message_index_safe: bool = false;
        /// HA port. Upstream 4.x always overwrites it with `listenPort + 1`; shardmq does too
        /// unless the file sets it explicitly (a deliberate extension, as 5.1.1+ does).
        "haListenPort" => ha_listen_port: u16 = 10912, parse = value::parse_port;
        "haSendHeartbeatInterval" => ha_send_heartbeat_interval: u32 = 5000;
        "haHousekeepingInterval" => ha_housekeeping_interval: u32 = 20000;
        "haTransferBatchSize" => ha_transfer_batch_size: u32 = 32768;
        /// Slave only: a fixed master HA address, overriding the one from the nameserver.
        "haMasterAddress" => ha_master_address: Option<String> = None,
            parse = value::parse_optional_host_port, trim = true;
        "haSlaveFallbehindMax" => ha_slave_fallbehind_max: u32 = 268_435_456;
        "brokerRole" => broker_role: BrokerRole = BrokerRole::AsyncMaster;
        "flushDiskType" => flush_disk_type: FlushDiskType = FlushDiskType::AsyncFlush;
        /// SYNC_FLUSH wait limit, ms (and the SYNC_MASTER wait up to 4.9.2, incl. 4.3).
        "syncFlushTimeout" => sync_flush_timeout: u32 = 5000;
        /// SYNC_MASTER wait limit, ms (4.9.3+).
        "slaveTimeout" => slave_timeout: u32 = 3000;
        "messageDelayLevel" => message_delay_level: String =
            "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".to_owned(),
            parse = value::parse_delay_levels;
        "flushDelayOffsetInterval" => flush_delay_offset_interval: u64 = 10000;
        "cleanFileForciblyEnable" => clean_file_forcibly_enable: bool = true;
        /// Percent of disk use above which the store refuses writes. Upstream 4.x reads it from
        /// the JVM property `rocketmq.broker.diskSpaceWarningLevelRatio` (0.90); 5.x made it
        /// this key. shardmq has no JVM, so the key is how an operator sets it.
        "diskSpaceWarningLevelRatio" => disk_space_warning_level_ratio: u32 = 90,
            parse = value::parse_percent;
        /// Percent of disk use above which unexpired files are deleted too (with
        /// `cleanFileForciblyEnable`); upstream 4.x: JVM property
        /// `rocketmq.broker.diskSpaceCleanForciblyRatio` (0.85).
        "diskSpaceCleanForciblyRatio" => disk_space_clean_forcibly_ratio: u32 = 85,
            parse = value::parse_percent;
        "warmMapedFileEnable" => warm_maped_file_enable: bool = false;
        "offsetCheckInSlave" => offset_check_in_slave: bool = false;
        "debugLockEnable" => debug_lock_enable: bool = false;
        "duplicationEnable" => duplication_enable: bool = false;
        "diskFallRecorded" => disk_fall_recorded: bool = true;
        "osPageCacheBusyTimeOutMills" => os_page_cache_busy_time_out_mills: u64 = 1000;
        "defaultQueryMaxNum" => default_query_max_num: u32 = 32;
        "transientStorePoolEnable" => transient_store_pool_enable: bool = false;
        "transientStorePoolSize" => transient_store_pool_size: u32 = 5;
        "fastFailIfNoBufferInStorePool" => fast_fail_if_no_buffer_in_store_pool: bool = false;
        /// DLedger (Raft) commit log: accepted for compatibility, not implemented by shardmq.
        "enableDLegerCommitLog" => enable_d_leger_commit_log: bool = false;
        "dLegerGroup" => d_leger_group: Option<String> = None;
        "dLegerPeers" => d_leger_peers: Option<String> = None;
        "dLegerSelfId" => d_leger_self_id: Option<String> = None;
        "preferredLeaderId" => preferred_leader_id: Option<String> = None;
        /// Upstream's field is `isEnableBatchPush`; the key is `enableBatchPush`.
        "enableBatchPush" => enable_batch_push: bool = false;
        "enableScheduleMessageStats" => enable_schedule_message_stats: bool = true;
        "enableLmq" => enable_lmq: bool = false;
        "enableMultiDispatch" => enable_multi_dispatch: bool = false;
        "maxLmqConsumeQueueNum" => max_lmq_consume_queue_num: u32 = 20000;
        "enableScheduleAsyncDeliver" => enable_schedule_async_deliver: bool = false;
        "scheduleAsyncDeliverMaxPendingLimit" => schedule_async_deliver_max_pending_limit: u32 =
            2000;
        "scheduleAsyncDeliverMaxResendNum2Blocked" =>
            schedule_async_deliver_max_resend_num2_blocked: u32 = 3;
        // Not keys upstream (it derives them from the root and ignores these lines); shardmq
        // honours them because that is what the operator who wrote them meant (§5).
        /// Consume-queue directory; default `<root>/consumequeue`.
        "storePathConsumeQueue" => store_path_consume_queue: PathBuf =
            env.home.join("store/consumequeue");
        /// Index directory; default `<root>/index`.
        "storePathIndex" => store_path_index: PathBuf = env.home.join("store/index");
        /// Checkpoint file; default `<root>/checkpoint`.
        "storeCheckpoint" => store_checkpoint: PathBuf = env.home.join("store/checkpoint");
        /// Abort-marker file; default `<root>/abort`.
        "abortFile" => abort_file: PathBuf = env.home.join("store/abort");
    }
}

/// The four path keys upstream ignores and shardmq honours, with their name under the root.
pub(crate) const HONOURED_PATH_KEYS: [(&str, &str); 4] = [
    ("storePathConsumeQueue", "consumequeue"),
    ("storePathIndex", "index"),
    ("storeCheckpoint", "checkpoint"),
    ("abortFile", "abort"),
];

impl MessageStoreConfig {
    /// The path field behind one of [`HONOURED_PATH_KEYS`] (or `storePathCommitLog`).
    pub(crate) fn derived_path_mut(&mut self, key: &str) -> Option<&mut PathBuf> {
        match key {
            "storePathCommitLog" => Some(&mut self.store_path_commit_log),
            "storePathConsumeQueue" => Some(&mut self.store_path_consume_queue),
            "storePathIndex" => Some(&mut self.store_path_index),
            "storeCheckpoint" => Some(&mut self.store_checkpoint),
            "abortFile" => Some(&mut self.abort_file),
            _ => None,
        }
    }

    /// `diskMaxUsedSpaceRatio` as the store applies it: clamped to 10..=95 like upstream.
    pub fn disk_max_used_space_ratio_clamped(&self) -> u32 {
        self.disk_max_used_space_ratio.clamp(10, 95)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_exact_upstream_spelling_only() {
        assert_eq!(BrokerRole::parse_value("SLAVE"), Ok(BrokerRole::Slave));
        assert_eq!(
            BrokerRole::parse_value("slave"),
            Err("expected ASYNC_MASTER, SYNC_MASTER or SLAVE".to_owned())
        );
        assert_eq!(
            FlushDiskType::parse_value("SYNC_FLUSH"),
            Ok(FlushDiskType::SyncFlush)
        );
        assert!(FlushDiskType::parse_value("FAST").is_err());
        assert_eq!(BrokerRole::SyncMaster.render(), "SYNC_MASTER");
        assert!(BrokerRole::SyncMaster.is_master());
        assert!(!BrokerRole::Slave.is_master());
    }

    #[test]
    fn several_commit_log_dirs_are_refused() {
        assert!(parse_commit_log_dir("/a,/b").is_err());
        assert_eq!(parse_commit_log_dir("/a"), Ok(PathBuf::from("/a")));
    }
}
