//! Settings that exist only in shardmq (thread-per-core knobs), accepted in the `.properties`
//! file under camelCase keys so one file can say everything. All have defaults that need no file.

use super::value::{self, config_section};

config_section! {
    /// shardmq-only settings.
    pub struct ShardmqConfig(env) in SHARDMQ_FIELDS {
        /// Shards (executors, one per core); 0 = the number of available cores. The count a
        /// store was created with is persisted with it and wins on restart (DESIGN.md §2).
        "shardCount" => shard_count: u16 = 0;
        /// Group commit closes a batch at this many bytes (or when the shard runs out of ready
        /// work, whichever comes first).
        "groupCommitMaxBytes" => group_commit_max_bytes: u32 =
            crate::store::GROUP_COMMIT_MAX_BYTES as u32,
            parse = value::parse_positive;
        /// SYNC_FLUSH: each group commit is one direct write through an `O_DSYNC` handle, which
        /// completes durable, rather than a write followed by an fdatasync (ARCHITECTURE 47).
        "dsyncGroupCommit" => dsync_group_commit: bool = true;
        /// SYNC_FLUSH masters: a group commit's bytes go to the slaves when its write is
        /// submitted, not when it completes, so the slave's copy overlaps the write and sync
        /// (ARCHITECTURE 49). A master killed before such a write reaches the device comes
        /// back shorter than a slave that got it; the slave finds that from the epoch
        /// histories and cuts its copy back (ARCHITECTURE 50). No acknowledged message is at
        /// stake either way.
        "haShipBeforeWrite" => ha_ship_before_write: bool = true;
        /// Per-shard cache of recent commit-log data, bytes.
        "readCacheBytes" => read_cache_bytes: u64 = 64 << 20;
        /// Strict upstream compatibility for store paths: ignore `storePathConsumeQueue`,
        /// `storePathIndex`, `storeCheckpoint` and `abortFile` and derive them from
        /// `storePathRootDir`, as every upstream 4.x does (spec/properties.md §5).
        "deriveStorePathsFromRoot" => derive_store_paths_from_root: bool = false;
    }
}

impl ShardmqConfig {
    /// The shard count to start with when the store has none persisted: `shardCount`, or the
    /// number of available cores when it is 0.
    pub fn effective_shard_count(&self, cores: u32) -> u16 {
        match self.shard_count {
            0 => u16::try_from(cores.max(1)).unwrap_or(u16::MAX),
            n => n,
        }
    }
}

config_section! {
    /// Two keys upstream reads straight from the broker file (not config fields) for the HTTP
    /// address-server lookup (`fetchNamesrvAddrByAddressServer`). Not printed by `-p`.
    pub struct AddressServerConfig(env) in ADDRESS_SERVER_FIELDS {
        "rmqAddressServerDomain" => rmq_address_server_domain: String =
            "jmenv.tbsite.net".to_owned();
        "rmqAddressServerSubGroup" => rmq_address_server_sub_group: String = "nsaddr".to_owned();
    }
}
