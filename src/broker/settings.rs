//! The broker's runtime settings: what handlers need, derived once from `BrokerConfig` at
//! start (config field names and quirks stay in `config`). Immutable and shared by all shards.

use std::net::SocketAddrV4;
use std::path::PathBuf;

use crate::store::{RetentionConfig, StoreConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl Role {
    pub fn is_slave(self) -> bool {
        self == Role::Slave
    }
}

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: u64,
    pub role: Role,
    /// `brokerIP1:listenPort`: written into every record and advertised to nameservers.
    pub store_host: SocketAddrV4,
    /// `brokerIP2:haListenPort`.
    pub ha_addr: String,
    pub listen_port: u16,
    /// The VIP ("fast") port, `listenPort - 2`: serves everything but PULL_MESSAGE.
    pub vip_port: u16,
    pub namesrv_addrs: Vec<String>,
    pub auto_create_topic: bool,
    pub default_topic_queue_nums: u32,
    pub auto_create_group: bool,
    pub max_message_size: u32,
    pub region_id: String,
    pub trace_on: bool,
    pub long_polling: bool,
    pub short_polling_ms: u64,
    pub register_period_ms: u64,
    pub register_timeout_ms: u64,
    pub flush_offset_interval_ms: u64,
    /// `<storePathRootDir>/config`.
    pub config_dir: PathBuf,
    pub shard_count: usize,
    /// Per-shard store settings (the same for every shard).
    pub store: StoreConfig,
    /// Per-shard retention and disk-full settings (store/retention.rs).
    pub retention: RetentionConfig,
    /// `key=value` lines of every effective config key (GET_BROKER_CONFIG).
    pub config_text: String,
    pub abort_path: PathBuf,
    pub boot_timestamp_ms: i64,
    /// `bindAddress`: where the listen, VIP and HA ports are bound.
    pub bind_ip: std::net::Ipv4Addr,
    /// Replication settings.
    pub ha: crate::ha::HaSettings,
    /// `slaveReadEnable`.
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio`% of physical memory, in bytes: a consumer further behind
    /// is sent to `whichBrokerWhenConsumeSlowly` when `slaveReadEnable` (broker/suggest.rs).
    pub in_memory_max_bytes: u64,
}

impl BrokerSettings {
    pub fn broker_addr(&self) -> String {
        self.store_host.to_string()
    }
}

/// The shard count persisted in the store (`config/shardmq.json`): the first start writes the
/// configured count; later starts use the persisted one so every queue keeps its owner
/// (DESIGN.md §2). A different configured count is reported, not applied.
pub fn persisted_shard_count(
    config_dir: &std::path::Path,
    configured: usize,
) -> Result<usize, String> {
    let path = config_dir.join("shardmq.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let n = v
                .get("shardCount")
                .and_then(serde_json::Value::as_u64)
                .filter(|n| (1..=4096).contains(n))
                .ok_or_else(|| format!("{}: no valid shardCount", path.display()))?;
            let n = usize::try_from(n).map_err(|e| e.to_string())?;
            if n != configured {
                tracing::warn!(persisted = n, configured, file = %path.display(),
                    "the store was created with another shard count; keeping the persisted one");
            }
            Ok(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(config_dir)
                .map_err(|e| format!("{}: {e}", config_dir.display()))?;
            let content = serde_json::json!({ "shardCount": configured }).to_string();
            crate::broker::persist::write_with_backup(&path, &content)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(configured)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Derives the runtime settings from a loaded `BrokerConfig`.
pub fn from_config(c: &crate::config::BrokerConfig) -> Result<BrokerSettings, String> {
    use crate::config::{BrokerRole, FlushDiskType};
    let ip: std::net::Ipv4Addr = c.broker_ip1.parse().map_err(|_| {
        format!(
            "brokerIP1={} is not an IPv4 address (shardmq stores IPv4 hosts only)",
            c.broker_ip1
        )
    })?;
    let listen_port = c.netty_server.listen_port;
    let config_dir = c.store.config_dir();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let configured = usize::from(
        c.shardmq
            .effective_shard_count(u32::try_from(cores).unwrap_or(1)),
    );
    let shard_count = persisted_shard_count(&config_dir, configured)?;
    let s = &c.store;
    let mut settings = BrokerSettings {
        cluster: c.broker_cluster_name.clone(),
        broker_name: c.broker_name.clone(),
        broker_id: u64::try_from(c.broker_id).unwrap_or(0),
        role: match s.broker_role {
            BrokerRole::AsyncMaster => Role::AsyncMaster,
            BrokerRole::SyncMaster => Role::SyncMaster,
            BrokerRole::Slave => Role::Slave,
        },
        store_host: SocketAddrV4::new(ip, listen_port),
        ha_addr: c.ha_server_addr(),
        listen_port,
        vip_port: c.vip_listen_port(),
        namesrv_addrs: c.namesrv_addrs(),
        auto_create_topic: c.auto_create_topic_enable,
        default_topic_queue_nums: c.default_topic_queue_nums,
        auto_create_group: c.auto_create_subscription_group,
        max_message_size: s.max_message_size,
        region_id: c.region_id.clone(),
        trace_on: c.trace_on,
        long_polling: c.long_polling_enable,
        short_polling_ms: c.short_polling_time_mills,
        register_period_ms: u64::from(c.register_name_server_period),
        register_timeout_ms: u64::from(c.register_broker_timeout_mills),
        flush_offset_interval_ms: u64::from(c.flush_consumer_offset_interval),
        config_dir,
        shard_count,
        store: StoreConfig {
            commitlog_dir: s.store_path_commit_log.clone(),
            consume_queue_dir: s.store_path_consume_queue.clone(),
            checkpoint_path: s.store_checkpoint.clone(),
            commitlog_file_size: u64::from(s.mapped_file_size_commit_log),
            consume_queue_file_size: u64::from(s.mapped_file_size_consume_queue),
            flush_mode: match s.flush_disk_type {
                FlushDiskType::SyncFlush => crate::store::FlushMode::Sync,
                FlushDiskType::AsyncFlush => crate::store::FlushMode::Async,
            },
            flush_interval_ms: u64::from(s.flush_interval_commit_log),
            sync_flush_timeout_ms: u64::from(s.sync_flush_timeout),
            max_message_size: s.max_message_size,
            group_commit_max_bytes: usize::try_from(c.shardmq.group_commit_max_bytes)
                .unwrap_or(1 << 20),
            read_cache_bytes: usize::try_from(c.shardmq.read_cache_bytes).unwrap_or(64 << 20),
            warm_commitlog: warm_commitlog(s),
            dsync_writes: c.shardmq.dsync_group_commit,
            ship_before_write: c.shardmq.ha_ship_before_write,
            busy_timeout_ms: s.os_page_cache_busy_time_out_mills,
            index: crate::store::IndexConfig {
                dir: s.store_path_index.clone(),
                max_hash_slot_num: s.max_hash_slot_num,
                max_index_num: s.max_index_num,
                enable: s.message_index_enable,
                safe: s.message_index_safe,
            },
        },
        retention: RetentionConfig::from_config(s),
        config_text: c.print_all(),
        abort_path: s.abort_file.clone(),
        boot_timestamp_ms: crate::runtime::now_ms(),
        bind_ip: c.netty_server.bind_address.parse().map_err(|_| {
            format!(
                "bindAddress={} is not an IPv4 address",
                c.netty_server.bind_address
            )
        })?,
        ha: crate::ha::HaSettings {
            listen_port: c.ha_listen_port(),
            master_address: s.ha_master_address.clone().filter(|a| a.len() >= 6),
            heartbeat_interval: std::time::Duration::from_millis(u64::from(
                s.ha_send_heartbeat_interval.max(100),
            )),
            housekeeping_interval: std::time::Duration::from_millis(u64::from(
                s.ha_housekeeping_interval.max(1000),
            )),
            transfer_batch_size: s.ha_transfer_batch_size.clamp(4096, 16 << 20),
            slave_fallbehind_max: u64::from(s.ha_slave_fallbehind_max),
            sync_timeout: std::time::Duration::from_millis(u64::from(s.sync_flush_timeout)),
        },
        slave_read_enable: c.slave_read_enable,
        in_memory_max_bytes: slave_read_threshold(c),
    };
    slave_flush_behind_reports(&mut settings);
    Ok(settings)
}

/// `warmMapedFileEnable=true`: a SYNC_FLUSH store writes zeros into each new commit-log file
/// (fdatasync every `flushLeastPagesWhenWarmMapedFile` pages), so its group commits overwrite
/// written blocks instead of converting fallocated ones (ARCHITECTURE 46). An ASYNC_FLUSH
/// store writes through the page cache, where zeros on disk would only make the kernel read
/// pages it now creates empty: there the key is accepted and has no effect (logged).
fn warm_commitlog(s: &crate::config::MessageStoreConfig) -> Option<u64> {
    if !s.warm_maped_file_enable {
        return None;
    }
    match s.flush_disk_type {
        crate::config::FlushDiskType::SyncFlush => Some(
            u64::from(s.flush_least_pages_when_warm_maped_file)
                .saturating_mul(crate::store::io::DMA_ALIGN),
        ),
        crate::config::FlushDiskType::AsyncFlush => {
            tracing::info!(
                "warmMapedFileEnable=true has no effect with flushDiskType=ASYNC_FLUSH: \
                 commit-log files are written through the page cache"
            );
            None
        }
    }
}

/// How often a SYNC_FLUSH slave fdatasyncs what it has written (upstream's slave: its group
/// commit thread flushes every 10 ms on its own, since no put waits on it).
pub const SLAVE_SYNC_FLUSH_INTERVAL_MS: u64 = 10;

/// A SLAVE with SYNC_FLUSH stores what arrives as an ASYNC_FLUSH store does (into the page
/// cache, then reported to the master) and fdatasyncs every `SLAVE_SYNC_FLUSH_INTERVAL_MS`,
/// behind the reports, as upstream's slave does (it reports after its page-cache append).
/// Before, its reports queued behind its own fdatasyncs, one device round trip on every
/// SYNC_MASTER send (ARCHITECTURE 35).
fn slave_flush_behind_reports(s: &mut BrokerSettings) {
    if s.role == Role::Slave && s.store.flush_mode == crate::store::FlushMode::Sync {
        s.store.flush_mode = crate::store::FlushMode::Async;
        s.store.flush_interval_ms = SLAVE_SYNC_FLUSH_INTERVAL_MS;
        // Page-cache writes: zeros on disk would gain nothing (see `warm_commitlog`).
        s.store.warm_commitlog = None;
        tracing::info!(
            "SLAVE with flushDiskType=SYNC_FLUSH: what arrives is reported once in the page cache \
             and fdatasynced every {SLAVE_SYNC_FLUSH_INTERVAL_MS} ms, as upstream's slave does"
        );
    }
}

/// `accessMessageInMemoryMaxRatio`% of the host's memory (read once, here), logged when
/// `slaveReadEnable` makes it matter.
fn slave_read_threshold(c: &crate::config::BrokerConfig) -> u64 {
    use crate::broker::suggest;
    let ratio = c.store.access_message_in_memory_max_ratio;
    let memory = suggest::physical_memory_bytes();
    let bytes = suggest::in_memory_max_bytes(memory, ratio);
    if c.slave_read_enable {
        tracing::info!(
            memory = ?memory, accessMessageInMemoryMaxRatio = ratio, lag_bytes = bytes,
            "slaveReadEnable: a consumer more than {bytes} commit-log bytes behind is sent to \
             its group's whichBrokerWhenConsumeSlowly"
        );
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, Properties};
    use crate::store::FlushMode;

    /// Settings of a broker with `role` and `flush`, its store in a fresh directory.
    fn settings(role: &str, flush: &str) -> (BrokerSettings, tempfile::TempDir) {
        settings_with(role, flush, "")
    }

    fn settings_with(role: &str, flush: &str, extra: &str) -> (BrokerSettings, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let id = u8::from(role == "SLAVE");
        let text = format!(
            "brokerId={id}\nbrokerRole={role}\nflushDiskType={flush}\nbrokerIP1=127.0.0.1\n\
             storePathRootDir={}\n{extra}",
            dir.path().display()
        );
        let props = Properties::parse(text.as_bytes()).unwrap();
        let c = BrokerConfig::from_properties(&props, std::path::Path::new("test.properties"))
            .unwrap()
            .config;
        (from_config(&c).unwrap(), dir)
    }

    /// `warmMapedFileEnable` reaches the store only where direct-I/O group commits write the
    /// files (a SYNC_FLUSH master), with upstream's flush step in bytes (ARCHITECTURE 46).
    #[test]
    fn warm_files_only_for_sync_flush_masters() {
        let on = "warmMapedFileEnable=true\nflushLeastPagesWhenWarmMapedFile=16\n";
        let (s, _d) = settings_with("SYNC_MASTER", "SYNC_FLUSH", on);
        assert_eq!(s.store.warm_commitlog, Some(16 * 4096));
        let (s, _d) = settings_with("ASYNC_MASTER", "SYNC_FLUSH", "warmMapedFileEnable=true\n");
        assert_eq!(
            s.store.warm_commitlog,
            Some(4096 * 4096),
            "upstream's default pages"
        );
        for (role, flush) in [("SYNC_MASTER", "ASYNC_FLUSH"), ("SLAVE", "SYNC_FLUSH")] {
            let (s, _d) = settings_with(role, flush, on);
            assert_eq!(s.store.warm_commitlog, None, "{role} {flush}");
        }
        let (s, _d) = settings("SYNC_MASTER", "SYNC_FLUSH");
        assert_eq!(s.store.warm_commitlog, None, "off by default, as upstream");
    }

    /// O_DSYNC group commits for SYNC_FLUSH masters, SYNC_MASTER too (ARCHITECTURE 47);
    /// `dsyncGroupCommit=false` turns them off; page-cache stores have none.
    #[test]
    fn dsync_group_commits_for_sync_flush_masters() {
        for role in ["ASYNC_MASTER", "SYNC_MASTER"] {
            let (s, _d) = settings(role, "SYNC_FLUSH");
            assert!(s.store.dsync(), "{role}");
        }
        let (s, _d) = settings_with("SYNC_MASTER", "SYNC_FLUSH", "dsyncGroupCommit=false\n");
        assert!(!s.store.dsync());
        for (role, flush) in [("ASYNC_MASTER", "ASYNC_FLUSH"), ("SLAVE", "SYNC_FLUSH")] {
            let (s, _d) = settings(role, flush);
            assert!(!s.store.dsync(), "{role} {flush}");
        }
    }

    /// `haShipBeforeWrite` (ARCHITECTURE 49, 50): on unless the file says otherwise.
    #[test]
    fn shipping_before_the_write_is_the_default() {
        let (s, _d) = settings("SYNC_MASTER", "SYNC_FLUSH");
        assert!(s.store.ship_before_write);
        let (s, _d) = settings_with("SYNC_MASTER", "SYNC_FLUSH", "haShipBeforeWrite=false\n");
        assert!(!s.store.ship_before_write);
    }

    #[test]
    fn a_sync_flush_slave_fdatasyncs_behind_its_reports_and_nothing_else_changes() {
        let (s, _d) = settings("SLAVE", "SYNC_FLUSH");
        assert_eq!(s.store.flush_mode, FlushMode::Async);
        assert_eq!(s.store.flush_interval_ms, SLAVE_SYNC_FLUSH_INTERVAL_MS);
        let (s, _d) = settings("SYNC_MASTER", "SYNC_FLUSH");
        assert_eq!(s.store.flush_mode, FlushMode::Sync);
        let (s, _d) = settings("SLAVE", "ASYNC_FLUSH");
        assert_eq!(s.store.flush_mode, FlushMode::Async);
        assert_eq!(
            s.store.flush_interval_ms, 500,
            "flushIntervalCommitLog's default"
        );
    }
}
