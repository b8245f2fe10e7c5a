//! The broker's configuration: every key of upstream's `BrokerConfig` (the fields of
//! [`BrokerConfig`] itself, spec/properties.md §3.1) plus the nested `NettyServerConfig`,
//! `NettyClientConfig`, `MessageStoreConfig` and shardmq's own section; loading with
//! validation and upstream's post-processing (§1.3); `-p` / `-m` printing.
//!
//! Loading is strict about values and lenient about keys: an unknown key is a warning naming
//! key and file, a bad value is a [`ConfigError::BadValue`] naming file, line, key and value.
//! Runs once at start-up, before any shard exists.
//!
//! Post-processing, in upstream's order:
//! 1. `listenPort` defaults to 10911 (set before the file is applied);
//! 2. `-n` overrides `namesrvAddr`; every entry must be `host:port`;
//! 3. store paths: relative ones are made absolute against the current directory; the commit
//!    log defaults to `<root>/commitlog` (4.9 rule); the four keys upstream ignores are honoured
//!    (see `store.rs`) and otherwise derived from the root;
//! 4. `SYNC_MASTER` / `ASYNC_MASTER` force `brokerId = 0`; `SLAVE` with `brokerId <= 0` is an
//!    error; `enableDLegerCommitLog=true` sets `brokerId = -1`;
//! 5. `haListenPort = listenPort + 1` unless the file sets it (upstream 4.x always overwrites
//!    it; honouring an explicit value is a deliberate extension, as in 5.1.1+); the VIP port
//!    `listenPort - 2` and the HA port must be valid ports;
//! 6. the consume-queue file size is rounded up to a multiple of 20 bytes.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::load::{resolve_conf_path, Loader};
use super::netty::{
    NettyClientConfig, NettyServerConfig, NETTY_CLIENT_FIELDS, NETTY_SERVER_FIELDS,
};
use super::properties::Properties;
use super::shardmq::{AddressServerConfig, ShardmqConfig, ADDRESS_SERVER_FIELDS, SHARDMQ_FIELDS};
use super::store::{
    BrokerRole, MessageStoreConfig, CQ_UNIT_SIZE, HONOURED_PATH_KEYS, STORE_FIELDS,
};
use super::value::{self, apply_in, config_section, render_table, Note};
use super::HostEnv;

/// Upstream's broker listen port (set before the file is applied; the class default 8888 is
/// never seen).
pub const DEFAULT_BROKER_LISTEN_PORT: u16 = 10911;

config_section! {
    /// Everything `mqbroker` is configured with. The top-level fields are upstream's
    /// `BrokerConfig`; the other objects are nested under their own field.
    pub struct BrokerConfig(env) in BROKER_FIELDS {
        /// Install directory; default `$ROCKETMQ_HOME`. Not required by shardmq.
        "rocketmqHome" => rocketmq_home: Option<PathBuf> = env.rocketmq_home.clone();
        /// `;`-separated `host:port` nameservers; default `$NAMESRV_ADDR`; `-n` overrides.
        "namesrvAddr" => namesrv_addr: Option<String> = env.namesrv_addr.clone(),
            parse = value::parse_addr_list;
        /// Advertised client address (`brokerIP1:listenPort`); default: detected.
        "brokerIP1" => broker_ip1: String = env.local_ipv4.to_string(),
            parse = value::parse_host, trim = true;
        /// Advertised HA address (`brokerIP2:haListenPort`); default: detected.
        "brokerIP2" => broker_ip2: String = env.local_ipv4.to_string(),
            parse = value::parse_host, trim = true;
        /// Replica-set name (master and slaves share it); default: the host name.
        "brokerName" => broker_name: String = env.host_name.clone();
        "brokerClusterName" => broker_cluster_name: String = "DefaultCluster".to_owned();
        /// 0 = master, > 0 = slave (forced to 0 for master roles, -1 with DLedger).
        "brokerId" => broker_id: i64 = 0;
        /// Broker-wide permission bits (6 = read + write).
        "brokerPermission" => broker_permission: u32 = 6, parse = value::parse_permission;
        "defaultTopicQueueNums" => default_topic_queue_nums: u32 = 8;
        "autoCreateTopicEnable" => auto_create_topic_enable: bool = true;
        "clusterTopicEnable" => cluster_topic_enable: bool = true;
        "brokerTopicEnable" => broker_topic_enable: bool = true;
        "autoCreateSubscriptionGroup" => auto_create_subscription_group: bool = true;
        /// Java plug-in class names; accepted, meaningless to shardmq.
        "messageStorePlugIn" => message_store_plug_in: String = String::new();
        "msgTraceTopicName" => msg_trace_topic_name: String = "RMQ_SYS_TRACE_TOPIC".to_owned();
        "traceTopicEnable" => trace_topic_enable: bool = false;
        /// 4.9: min(cores, 4); 4.3: 1.
        "sendMessageThreadPoolNums" => send_message_thread_pool_nums: u32 = env.cores.min(4);
        "putMessageFutureThreadPoolNums" => put_message_future_thread_pool_nums: u32 =
            env.cores.min(4);
        "pullMessageThreadPoolNums" => pull_message_thread_pool_nums: u32 =
            16 + 2 * env.cores;
        "processReplyMessageThreadPoolNums" => process_reply_message_thread_pool_nums: u32 =
            16 + 2 * env.cores;
        "queryMessageThreadPoolNums" => query_message_thread_pool_nums: u32 = 8 + env.cores;
        "adminBrokerThreadPoolNums" => admin_broker_thread_pool_nums: u32 = 16;
        "clientManageThreadPoolNums" => client_manage_thread_pool_nums: u32 = 32;
        "consumerManageThreadPoolNums" => consumer_manage_thread_pool_nums: u32 = 32;
        "heartbeatThreadPoolNums" => heartbeat_thread_pool_nums: u32 = env.cores.min(32);
        /// 4.9: max(8 + 2 * cores, 4 * default send threads); 4.3: 8 + 2 * cores.
        "endTransactionThreadPoolNums" => end_transaction_thread_pool_nums: u32 =
            (8 + 2 * env.cores).max(4 * env.cores.min(4));
        /// ms between persists of consumerOffset.json.
        "flushConsumerOffsetInterval" => flush_consumer_offset_interval: u32 = 5000;
        /// Unused upstream.
        "flushConsumerOffsetHistoryInterval" => flush_consumer_offset_history_interval: u32 =
            60000;
        "rejectTransactionMessage" => reject_transaction_message: bool = false;
        "fetchNamesrvAddrByAddressServer" => fetch_namesrv_addr_by_address_server: bool = false;
        "sendThreadPoolQueueCapacity" => send_thread_pool_queue_capacity: u32 = 10000;
        "putThreadPoolQueueCapacity" => put_thread_pool_queue_capacity: u32 = 10000;
        "pullThreadPoolQueueCapacity" => pull_thread_pool_queue_capacity: u32 = 100000;
        "replyThreadPoolQueueCapacity" => reply_thread_pool_queue_capacity: u32 = 10000;
        "queryThreadPoolQueueCapacity" => query_thread_pool_queue_capacity: u32 = 20000;
        "clientManagerThreadPoolQueueCapacity" => client_manager_thread_pool_queue_capacity: u32 =
            1_000_000;
        "consumerManagerThreadPoolQueueCapacity" =>
            consumer_manager_thread_pool_queue_capacity: u32 = 1_000_000;
        "heartbeatThreadPoolQueueCapacity" => heartbeat_thread_pool_queue_capacity: u32 = 50000;
        "endTransactionPoolQueueCapacity" => end_transaction_pool_queue_capacity: u32 = 100000;
        /// Legacy filter servers: accepted, never spawned (CVE-2023-33246).
        "filterServerNums" => filter_server_nums: u32 = 0;
        "longPollingEnable" => long_polling_enable: bool = true;
        "shortPollingTimeMills" => short_polling_time_mills: u64 = 1000;
        "notifyConsumerIdsChangedEnable" => notify_consumer_ids_changed_enable: bool = true;
        "highSpeedMode" => high_speed_mode: bool = false;
        "commercialEnable" => commercial_enable: bool = true;
        "commercialTimerCount" => commercial_timer_count: u32 = 1;
        "commercialTransCount" => commercial_trans_count: u32 = 1;
        "commercialBigCount" => commercial_big_count: u32 = 1;
        "commercialBaseCount" => commercial_base_count: u32 = 1;
        "transferMsgByHeap" => transfer_msg_by_heap: bool = true;
        "maxDelayTime" => max_delay_time: u32 = 40;
        "regionId" => region_id: String = "DefaultRegion".to_owned();
        "registerBrokerTimeoutMills" => register_broker_timeout_mills: u32 = 6000;
        "slaveReadEnable" => slave_read_enable: bool = false;
        "disableConsumeIfConsumerReadSlowly" => disable_consume_if_consumer_read_slowly: bool =
            false;
        "consumerFallbehindThreshold" => consumer_fallbehind_threshold: u64 = 17_179_869_184;
        "brokerFastFailureEnable" => broker_fast_failure_enable: bool = true;
        "waitTimeMillsInSendQueue" => wait_time_mills_in_send_queue: u64 = 200;
        "waitTimeMillsInPullQueue" => wait_time_mills_in_pull_queue: u64 = 5000;
        "waitTimeMillsInHeartbeatQueue" => wait_time_mills_in_heartbeat_queue: u64 = 31000;
        "waitTimeMillsInTransactionQueue" => wait_time_mills_in_transaction_queue: u64 = 3000;
        /// Epoch ms before which sends are refused.
        "startAcceptSendRequestTimeStamp" => start_accept_send_request_time_stamp: u64 = 0;
        "traceOn" => trace_on: bool = true;
        "enableCalcFilterBitMap" => enable_calc_filter_bit_map: bool = false;
        "expectConsumerNumUseFilter" => expect_consumer_num_use_filter: u32 = 32;
        "maxErrorRateOfBloomFilter" => max_error_rate_of_bloom_filter: u32 = 20,
            parse = value::parse_percent;
        "filterDataCleanTimeSpan" => filter_data_clean_time_span: u64 = 86_400_000;
        "filterSupportRetry" => filter_support_retry: bool = false;
        "enablePropertyFilter" => enable_property_filter: bool = false;
        "compressedRegister" => compressed_register: bool = false;
        "forceRegister" => force_register: bool = true;
        /// Registration period, ms; clamped to 10000..=60000 where used, like upstream.
        "registerNameServerPeriod" => register_name_server_period: u32 = 30000;
        "transactionTimeOut" => transaction_time_out: u64 = 6000;
        "transactionCheckMax" => transaction_check_max: u32 = 15;
        "transactionCheckInterval" => transaction_check_interval: u64 = 60000;
        "aclEnable" => acl_enable: bool = false;
        "storeReplyMessageEnable" => store_reply_message_enable: bool = true;
        "enableDetailStat" => enable_detail_stat: bool = true;
        "autoDeleteUnusedStats" => auto_delete_unused_stats: bool = false;
        "isolateLogEnable" => isolate_log_enable: bool = false;
        "configBlackList" => config_black_list: String =
            "configBlackList;brokerConfigPath".to_owned();
    }
    nested {
        /// Upstream's `NettyServerConfig` (listen port 10911).
        netty_server: NettyServerConfig,
        /// Upstream's `NettyClientConfig`.
        netty_client: NettyClientConfig,
        /// Upstream's `MessageStoreConfig` (roles, flush mode, paths, HA port...).
        store: MessageStoreConfig,
        /// shardmq-only settings.
        shardmq: ShardmqConfig,
        /// `rmqAddressServerDomain` / `rmqAddressServerSubGroup`.
        address_server: AddressServerConfig,
    }
}

/// Old key spellings (4.0-4.5.1) and the key they mean now.
const ALIASES: &[(&str, &str)] = &[
    ("mapedFileSizeCommitLog", "mappedFileSizeCommitLog"),
    ("mapedFileSizeConsumeQueue", "mappedFileSizeConsumeQueue"),
];

/// The keys `-m` prints: the ones operators actually use (spec/properties.md §2).
const IMPORTANT_KEYS: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerRole",
    "flushDiskType",
    "namesrvAddr",
    "listenPort",
    "brokerIP1",
    "brokerIP2",
    "haListenPort",
    "deleteWhen",
    "fileReservedTime",
    "diskMaxUsedSpaceRatio",
    "defaultTopicQueueNums",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "storePathRootDir",
    "storePathCommitLog",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "mappedFileSizeCommitLog",
    "mappedFileSizeConsumeQueue",
    "maxMessageSize",
    "sendMessageThreadPoolNums",
    "flushIntervalCommitLog",
    "syncFlushTimeout",
    "slaveTimeout",
    "messageDelayLevel",
    "slaveReadEnable",
    "aclEnable",
    "transientStorePoolEnable",
    "enableDLegerCommitLog",
];

/// Where a `-n` value comes from, for error messages.
const NAMESRV_OPTION: &str = "command line option -n";
/// Where a `$NAMESRV_ADDR` value comes from, for error messages.
const NAMESRV_ENV: &str = "environment variable NAMESRV_ADDR";

/// A loaded broker configuration and the warnings loading produced (also logged).
#[derive(Debug, Clone)]
pub struct LoadedBrokerConfig {
    pub config: BrokerConfig,
    pub warnings: Vec<String>,
    /// Keys no table knows, with their values, in file order. Upstream ignores them for
    /// configuration but still lists them in GET_BROKER_CONFIG answers.
    pub unknown: Vec<(String, String)>,
}

impl BrokerConfig {
    /// Upstream's defaults for this host, before any file is applied.
    pub fn defaults(env: &HostEnv) -> BrokerConfig {
        let mut config = BrokerConfig::with_defaults(env);
        config.netty_server.listen_port = DEFAULT_BROKER_LISTEN_PORT;
        config.derive_default_paths(env);
        config
    }

    /// `mqbroker [-c path] [-n addrs]`: reads the file (if any) and applies the command line,
    /// taking defaults from the real process environment.
    pub fn load(
        path: Option<&Path>,
        namesrv_override: Option<&str>,
    ) -> Result<LoadedBrokerConfig, ConfigError> {
        Self::load_with(path, namesrv_override, &HostEnv::from_process())
    }

    /// [`BrokerConfig::load`] plus `--set key=value` overrides applied on top of the file's
    /// entries (validated like file entries; the file itself stays unchanged).
    pub fn load_overridden(
        path: Option<&Path>,
        namesrv_override: Option<&str>,
        overrides: &[(String, String)],
    ) -> Result<LoadedBrokerConfig, ConfigError> {
        if overrides.is_empty() {
            return Self::load(path, namesrv_override);
        }
        let env = HostEnv::from_process();
        let (mut props, file) = match path {
            Some(path) => {
                let path = resolve_conf_path(path, &env);
                (Properties::load(&path)?, path)
            }
            None => (Properties::default(), PathBuf::from("<no config file>")),
        };
        for (k, v) in overrides {
            tracing::info!("command line: --set {k}={v}");
            props.set(k, v);
        }
        Self::from_properties_with(&props, &file, namesrv_override, &env)
    }

    /// [`BrokerConfig::load`] with an explicit environment.
    pub fn load_with(
        path: Option<&Path>,
        namesrv_override: Option<&str>,
        env: &HostEnv,
    ) -> Result<LoadedBrokerConfig, ConfigError> {
        match path {
            Some(path) => {
                let path = resolve_conf_path(path, env);
                let props = Properties::load(&path)?;
                Self::from_properties_with(&props, &path, namesrv_override, env)
            }
            None => Self::from_properties_with(
                &Properties::default(),
                Path::new("<no config file>"),
                namesrv_override,
                env,
            ),
        }
    }

    /// Applies already-parsed properties (named `file` in messages) with the process
    /// environment and no command-line override.
    pub fn from_properties(
        props: &Properties,
        file: &Path,
    ) -> Result<LoadedBrokerConfig, ConfigError> {
        Self::from_properties_with(props, file, None, &HostEnv::from_process())
    }

    /// The whole load: defaults, the file, `-n`, then post-processing (see the module doc).
    pub fn from_properties_with(
        props: &Properties,
        file: &Path,
        namesrv_override: Option<&str>,
        env: &HostEnv,
    ) -> Result<LoadedBrokerConfig, ConfigError> {
        let mut config = BrokerConfig::defaults(env);
        let mut loader = Loader::new(props, file);
        loader.apply_entries(&mut config, ALIASES, BrokerConfig::apply_key)?;
        config.apply_namesrv_sources(&loader, namesrv_override)?;
        config.resolve_store_paths(&mut loader, env);
        config.apply_role(&mut loader)?;
        config.apply_ports(&loader)?;
        let cq = &mut config.store.mapped_file_size_consume_queue;
        *cq = cq.div_ceil(CQ_UNIT_SIZE) * CQ_UNIT_SIZE;
        Ok(LoadedBrokerConfig {
            config,
            warnings: loader.warnings,
            unknown: loader.unknown,
        })
    }

    /// Applies one key to every section that has it, in upstream's order (a key present in
    /// several objects, like `writeBufferHighWaterMark`, goes to each).
    fn apply_key(&mut self, key: &str, raw: &str) -> Result<Option<Note>, String> {
        let hits = [
            apply_in(BROKER_FIELDS, self, key, raw)?,
            apply_in(NETTY_SERVER_FIELDS, &mut self.netty_server, key, raw)?,
            apply_in(NETTY_CLIENT_FIELDS, &mut self.netty_client, key, raw)?,
            apply_in(STORE_FIELDS, &mut self.store, key, raw)?,
            apply_in(SHARDMQ_FIELDS, &mut self.shardmq, key, raw)?,
            apply_in(ADDRESS_SERVER_FIELDS, &mut self.address_server, key, raw)?,
        ];
        Ok(hits.into_iter().flatten().next())
    }

    /// `-n` wins over the file, which wins over `$NAMESRV_ADDR`; each source is validated and
    /// named in the error.
    fn apply_namesrv_sources(
        &mut self,
        loader: &Loader<'_>,
        namesrv_override: Option<&str>,
    ) -> Result<(), ConfigError> {
        let source = match namesrv_override {
            Some(addrs) => {
                self.namesrv_addr = Some(addrs.to_owned());
                NAMESRV_OPTION
            }
            None if loader.has("namesrvAddr") => return Ok(()), // validated when applied
            None => NAMESRV_ENV,
        };
        if let Some(addrs) = &self.namesrv_addr {
            value::check_addr_list(addrs).map_err(|reason| {
                ConfigError::bad_value("namesrvAddr", addrs, Path::new(source), 0, reason)
            })?;
        }
        Ok(())
    }

    /// Defaults of the derived store paths for the current root.
    fn derive_default_paths(&mut self, env: &HostEnv) {
        let store = &mut self.store;
        store.store_path_root_dir = env.absolute(&store.store_path_root_dir);
        let root = store.store_path_root_dir.clone();
        store.store_path_commit_log = root.join("commitlog");
        for (key, name) in HONOURED_PATH_KEYS {
            if let Some(path) = store.derived_path_mut(key) {
                *path = root.join(name);
            }
        }
    }

    /// Absolute paths; derived ones follow the root unless the file set them (§5 of the spec).
    fn resolve_store_paths(&mut self, loader: &mut Loader<'_>, env: &HostEnv) {
        let explicit: Vec<(&str, PathBuf)> = std::iter::once("storePathCommitLog")
            .chain(HONOURED_PATH_KEYS.iter().map(|(key, _)| *key))
            .filter(|key| loader.has(key))
            .filter_map(|key| Some((key, self.store.derived_path_mut(key)?.clone())))
            .collect();
        self.derive_default_paths(env);
        let root = self.store.store_path_root_dir.clone();
        let strict = self.shardmq.derive_store_paths_from_root;
        for (key, path) in explicit {
            let derived = HONOURED_PATH_KEYS.iter().find(|(k, _)| *k == key);
            match derived {
                Some((_, name)) if strict => loader.warn(format!(
                    "{}: {key} ignored (deriveStorePathsFromRoot=true): using {}",
                    loader.at(key),
                    root.join(name).display()
                )),
                _ => {
                    if let Some((_, name)) = derived {
                        tracing::info!(
                            "{}: honouring {key}={}; upstream RocketMQ ignores this key and \
                             would use {}",
                            loader.at(key),
                            path.display(),
                            root.join(name).display()
                        );
                    }
                    if let Some(slot) = self.store.derived_path_mut(key) {
                        *slot = env.absolute(&path);
                    }
                }
            }
        }
    }

    /// Upstream's role rules (§1.3 steps 4-5).
    fn apply_role(&mut self, loader: &mut Loader<'_>) -> Result<(), ConfigError> {
        let role = self.store.broker_role;
        if role.is_master() && self.broker_id != 0 {
            loader.warn(format!(
                "{}: brokerId={} forced to 0 because brokerRole={}",
                loader.at("brokerId"),
                self.broker_id,
                role.as_str()
            ));
            self.broker_id = 0;
        }
        if role == BrokerRole::Slave && self.broker_id <= 0 {
            return Err(loader.bad(
                "brokerId",
                &self.broker_id.to_string(),
                "brokerRole",
                "a broker with brokerRole=SLAVE needs brokerId >= 1".to_owned(),
            ));
        }
        if self.store.enable_d_leger_commit_log {
            loader.warn(format!(
                "{}: enableDLegerCommitLog=true: brokerId set to -1 as upstream does, but \
                 shardmq does not implement DLedger; replication is master/slave",
                loader.at("enableDLegerCommitLog")
            ));
            self.broker_id = -1;
        }
        Ok(())
    }

    /// VIP and HA ports next to `listenPort` (§1.3 steps 6-7).
    fn apply_ports(&mut self, loader: &Loader<'_>) -> Result<(), ConfigError> {
        let listen = self.netty_server.listen_port;
        let bad_listen = |reason: &str| {
            loader.bad(
                "listenPort",
                &listen.to_string(),
                "listenPort",
                reason.to_owned(),
            )
        };
        if listen < 3 {
            return Err(bad_listen("the VIP port listenPort-2 must be at least 1"));
        }
        if listen == u16::MAX {
            return Err(bad_listen("the HA port listenPort+1 must be at most 65535"));
        }
        if !loader.has("haListenPort") {
            self.store.ha_listen_port = listen + 1;
            return Ok(());
        }
        let ha = self.store.ha_listen_port;
        tracing::info!(
            "{}: honouring haListenPort={ha}; upstream 4.x would use listenPort+1={}",
            loader.at("haListenPort"),
            listen + 1
        );
        if ha == listen || ha == listen - 2 {
            return Err(loader.bad(
                "haListenPort",
                &ha.to_string(),
                "haListenPort",
                format!(
                    "collides with listenPort {listen} or the VIP port {}",
                    listen - 2
                ),
            ));
        }
        Ok(())
    }

    /// The nameserver addresses: `namesrvAddr` split on `;`, trimmed, empty entries dropped.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .as_deref()
            .map(|a| value::split_addr_list(a).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The VIP ("fast") port: `listenPort - 2` (validated to be a port when loaded).
    pub fn vip_listen_port(&self) -> u16 {
        self.netty_server.listen_port.saturating_sub(2)
    }

    /// The HA port.
    pub fn ha_listen_port(&self) -> u16 {
        self.store.ha_listen_port
    }

    /// `brokerIP1:listenPort`, the address registered with nameservers and given to clients.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.netty_server.listen_port)
    }

    /// `brokerIP2:haListenPort`, the HA address registered with nameservers.
    pub fn ha_server_addr(&self) -> String {
        format!("{}:{}", self.broker_ip2, self.store.ha_listen_port)
    }

    /// `<storePathRootDir>/config`: topics.json, consumerOffset.json, subscriptionGroup.json,
    /// delayOffset.json.
    pub fn config_dir(&self) -> PathBuf {
        self.store.config_dir()
    }

    /// `$ROCKETMQ_HOME/conf`, where upstream keeps its logging and ACL files, if the home is set.
    pub fn conf_dir(&self) -> Option<PathBuf> {
        self.rocketmq_home.as_ref().map(|home| home.join("conf"))
    }

    /// `-p`: one `key=value` line per known key, grouped like upstream (BrokerConfig,
    /// NettyServerConfig, NettyClientConfig, MessageStoreConfig), then shardmq's own keys.
    /// Unset values print as the empty string, as upstream prints `null` fields.
    pub fn print_all(&self) -> String {
        self.render(|_| true)
    }

    /// `-m`: the same lines restricted to the keys operators actually use.
    pub fn print_important(&self) -> String {
        self.render(|key| IMPORTANT_KEYS.contains(&key))
    }

    fn render(&self, filter: impl Fn(&str) -> bool) -> String {
        let mut out = String::new();
        render_table(&mut out, BROKER_FIELDS, self, &filter);
        render_table(&mut out, NETTY_SERVER_FIELDS, &self.netty_server, &filter);
        render_table(&mut out, NETTY_CLIENT_FIELDS, &self.netty_client, &filter);
        render_table(&mut out, STORE_FIELDS, &self.store, &filter);
        render_table(&mut out, SHARDMQ_FIELDS, &self.shardmq, &filter);
        out
    }
}

impl MessageStoreConfig {
    /// `<root>/config`: topics.json, consumerOffset.json, subscriptionGroup.json,
    /// delayOffset.json (upstream's layout).
    pub fn config_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("config")
    }

    /// `<root>/lock`: the file that keeps two brokers off one store.
    pub fn lock_file(&self) -> PathBuf {
        self.store_path_root_dir.join("lock")
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
