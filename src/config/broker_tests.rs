//! Unit tests of broker loading: defaults, every kind of bad value, warnings, post-processing
//! and printing. Every test pins the environment with a fixed [`HostEnv`].

use super::*;
use crate::config::store::FlushDiskType;
use std::net::Ipv4Addr;

const FILE: &str = "conf/x.properties";

fn env() -> HostEnv {
    HostEnv {
        home: PathBuf::from("/home/mq"),
        cwd: PathBuf::from("/opt/shardmq"),
        rocketmq_home: None,
        namesrv_addr: None,
        host_name: "host1".into(),
        cores: 2,
        local_ipv4: Ipv4Addr::new(10, 0, 0, 5),
    }
}

fn load_env(text: &str, n: Option<&str>, env: &HostEnv) -> Result<LoadedBrokerConfig, ConfigError> {
    let props = Properties::parse_named(text.as_bytes(), Path::new(FILE)).unwrap();
    BrokerConfig::from_properties_with(&props, Path::new(FILE), n, env)
}

fn load(text: &str) -> Result<LoadedBrokerConfig, ConfigError> {
    load_env(text, None, &env())
}

fn config(text: &str) -> BrokerConfig {
    let loaded = load(text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.config
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn defaults_match_upstream_4_9() {
    let c = config("");
    assert_eq!(c.netty_server.listen_port, 10911);
    assert_eq!(c.vip_listen_port(), 10909);
    assert_eq!(c.ha_listen_port(), 10912);
    assert_eq!(c.broker_cluster_name, "DefaultCluster");
    assert_eq!(c.broker_name, "host1");
    assert_eq!(c.broker_ip1, "10.0.0.5");
    assert_eq!(c.broker_addr(), "10.0.0.5:10911");
    assert_eq!(c.ha_server_addr(), "10.0.0.5:10912");
    assert_eq!(c.broker_id, 0);
    assert_eq!(c.store.broker_role, BrokerRole::AsyncMaster);
    assert_eq!(c.store.flush_disk_type, FlushDiskType::AsyncFlush);
    assert_eq!(c.store.store_path_root_dir, Path::new("/home/mq/store"));
    assert_eq!(
        c.store.store_path_commit_log,
        Path::new("/home/mq/store/commitlog")
    );
    assert_eq!(
        c.store.store_path_consume_queue,
        Path::new("/home/mq/store/consumequeue")
    );
    assert_eq!(c.store.store_path_index, Path::new("/home/mq/store/index"));
    assert_eq!(
        c.store.store_checkpoint,
        Path::new("/home/mq/store/checkpoint")
    );
    assert_eq!(c.store.abort_file, Path::new("/home/mq/store/abort"));
    assert_eq!(c.store.config_dir(), Path::new("/home/mq/store/config"));
    assert_eq!(c.store.mapped_file_size_commit_log, 1 << 30);
    assert_eq!(c.store.mapped_file_size_consume_queue, 6_000_000);
    assert_eq!(c.store.max_message_size, 4 << 20);
    assert_eq!(c.store.delete_when, "04");
    assert_eq!(c.store.file_reserved_time, 72);
    assert_eq!(c.store.disk_max_used_space_ratio, 75);
    assert_eq!(c.send_message_thread_pool_nums, 2);
    assert_eq!(c.pull_message_thread_pool_nums, 20);
    assert_eq!(c.end_transaction_thread_pool_nums, 12);
    assert_eq!(c.netty_client.client_callback_executor_threads, 2);
    assert_eq!(c.shardmq.shard_count, 0);
    assert_eq!(c.shardmq.effective_shard_count(2), 2);
    assert_eq!(c.shardmq.group_commit_max_bytes, 1 << 20);
    assert_eq!(c.shardmq.read_cache_bytes, 64 << 20);
    assert_eq!(c.namesrv_addr, None);
    assert!(c.namesrv_addrs().is_empty());
    assert_eq!(c.conf_dir(), None);
}

#[test]
fn values_from_the_file_apply_to_every_section() {
    let c = config(
        "brokerName=broker-a\nlistenPort=10920\nclientWorkerThreads=7\nflushDiskType=SYNC_FLUSH\n\
         shardCount=3\nwriteBufferHighWaterMark=4096\nrmqAddressServerDomain=ns.example\n",
    );
    assert_eq!(c.broker_name, "broker-a");
    assert_eq!(c.netty_server.listen_port, 10920);
    assert_eq!(c.ha_listen_port(), 10921);
    assert_eq!(c.netty_client.client_worker_threads, 7);
    assert_eq!(c.store.flush_disk_type, FlushDiskType::SyncFlush);
    assert_eq!(c.shardmq.shard_count, 3);
    assert_eq!(c.netty_server.write_buffer_high_water_mark, 4096);
    assert_eq!(c.netty_client.write_buffer_high_water_mark, 4096);
    assert_eq!(c.address_server.rmq_address_server_domain, "ns.example");
}

#[test]
fn commit_log_and_derived_paths_follow_the_root() {
    let c = config("storePathRootDir=/data/m\n");
    assert_eq!(
        c.store.store_path_commit_log,
        Path::new("/data/m/commitlog")
    );
    assert_eq!(
        c.store.store_path_consume_queue,
        Path::new("/data/m/consumequeue")
    );
    assert_eq!(c.store.abort_file, Path::new("/data/m/abort"));
    assert_eq!(c.store.lock_file(), Path::new("/data/m/lock"));
}

#[test]
fn the_four_ignored_path_keys_are_honoured() {
    let c = config(
        "storePathRootDir=/data/m\nstorePathConsumeQueue=/ssd/cq\nstorePathIndex=/ssd/idx\n\
         storeCheckpoint=/ssd/cp\nabortFile=/ssd/abort\nstorePathCommitLog=/hdd/log\n",
    );
    assert_eq!(c.store.store_path_commit_log, Path::new("/hdd/log"));
    assert_eq!(c.store.store_path_consume_queue, Path::new("/ssd/cq"));
    assert_eq!(c.store.store_path_index, Path::new("/ssd/idx"));
    assert_eq!(c.store.store_checkpoint, Path::new("/ssd/cp"));
    assert_eq!(c.store.abort_file, Path::new("/ssd/abort"));
}

#[test]
fn strict_path_compat_derives_from_the_root_with_a_warning() {
    let loaded =
        load("deriveStorePathsFromRoot=true\nstorePathRootDir=/data/m\nstorePathIndex=/x\n")
            .unwrap();
    assert_eq!(
        loaded.config.store.store_path_index,
        Path::new("/data/m/index")
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("storePathIndex"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn relative_paths_resolve_against_the_current_directory() {
    let c = config("storePathRootDir=./store-local\nstorePathIndex=idx\n");
    assert_eq!(
        c.store.store_path_root_dir,
        Path::new("/opt/shardmq/store-local")
    );
    assert_eq!(
        c.store.store_path_commit_log,
        Path::new("/opt/shardmq/store-local/commitlog")
    );
    assert_eq!(c.store.store_path_index, Path::new("/opt/shardmq/idx"));
}

#[test]
fn old_maped_spelling_applies() {
    let c = config("mapedFileSizeCommitLog=1048576\nmapedFileSizeConsumeQueue=300000\n");
    assert_eq!(c.store.mapped_file_size_commit_log, 1_048_576);
    assert_eq!(c.store.mapped_file_size_consume_queue, 300_000);
}

#[test]
fn mapped_spelling_wins_over_maped_in_either_order() {
    for text in [
        "mapedFileSizeCommitLog=1024\nmappedFileSizeCommitLog=2048\n",
        "mappedFileSizeCommitLog=2048\nmapedFileSizeCommitLog=1024\n",
    ] {
        let loaded = load(text).unwrap();
        assert_eq!(loaded.config.store.mapped_file_size_commit_log, 2048);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("mapedFileSizeCommitLog ignored"));
    }
}

#[test]
fn a_bad_value_under_the_old_spelling_names_the_old_key() {
    let msg = error("mapedFileSizeConsumeQueue=3M\n");
    assert!(msg.contains("for mapedFileSizeConsumeQueue"), "{msg}");
}

#[test]
fn consume_queue_size_rounds_up_to_a_multiple_of_20() {
    assert_eq!(
        config("mappedFileSizeConsumeQueue=300001\n")
            .store
            .mapped_file_size_consume_queue,
        300_020
    );
    assert_eq!(
        config("mappedFileSizeConsumeQueue=1\n")
            .store
            .mapped_file_size_consume_queue,
        20
    );
}

#[test]
fn bad_values_name_file_line_key_and_value() {
    let cases = [
        (
            "brokerId=abc",
            "bad value \"abc\" for brokerId: expected a decimal integer",
        ),
        (
            "flushDiskType=FAST",
            "bad value \"FAST\" for flushDiskType: expected ASYNC_FLUSH or SYNC_FLUSH",
        ),
        (
            "listenPort=70000",
            "bad value \"70000\" for listenPort: expected a port in 1..=65535",
        ),
        (
            "mappedFileSizeCommitLog=-1",
            "bad value \"-1\" for mappedFileSizeCommitLog: expected a positive integer",
        ),
        (
            "maxMessageSize=4M",
            "bad value \"4M\" for maxMessageSize: expected a positive integer",
        ),
        (
            "fileReservedTime=-48",
            "bad value \"-48\" for fileReservedTime: expected a non-negative",
        ),
        (
            "brokerRole=slave",
            "bad value \"slave\" for brokerRole: expected ASYNC_MASTER, SYNC_MASTER or SLAVE",
        ),
        (
            "namesrvAddr=a:9876;b",
            "bad value \"a:9876;b\" for namesrvAddr: \"b\" is not host:port",
        ),
        (
            "namesrvAddr=",
            "bad value \"\" for namesrvAddr: expected host:port",
        ),
        (
            "autoCreateTopicEnable=yes",
            "bad value \"yes\" for autoCreateTopicEnable: expected true",
        ),
        (
            "deleteWhen=4am",
            "bad value \"4am\" for deleteWhen: expected hours",
        ),
        (
            "brokerPermission=8",
            "bad value \"8\" for brokerPermission: expected permission bits",
        ),
        (
            "brokerIP1=",
            "bad value \"\" for brokerIP1: expected an IP address or host name",
        ),
        (
            "storePathCommitLog=/a,/b",
            "bad value \"/a,/b\" for storePathCommitLog: several",
        ),
        (
            "haMasterAddress=master",
            "bad value \"master\" for haMasterAddress",
        ),
        (
            "diskMaxUsedSpaceRatio=101",
            "bad value \"101\" for diskMaxUsedSpaceRatio: expected a percentage",
        ),
    ];
    for (line, expected) in cases {
        let msg = error(&format!("# comment\nbrokerName=b\n{line}\n"));
        let expected = format!("{FILE}:3: {expected}");
        assert!(
            msg.starts_with(&expected),
            "got {msg:?}, expected {expected:?}"
        );
    }
}

#[test]
fn vip_and_ha_ports_must_be_ports() {
    let msg = error("listenPort=2\n");
    assert_eq!(
        msg,
        format!("{FILE}:1: bad value \"2\" for listenPort: the VIP port listenPort-2 must be at least 1")
    );
    let msg = error("\nlistenPort=65535\n");
    assert_eq!(
        msg,
        format!("{FILE}:2: bad value \"65535\" for listenPort: the HA port listenPort+1 must be at most 65535")
    );
    assert_eq!(config("listenPort=3\n").vip_listen_port(), 1);
    assert_eq!(config("listenPort=65534\n").ha_listen_port(), 65535);
}

#[test]
fn trailing_blanks_on_numbers_enums_and_booleans_are_trimmed_with_a_warning() {
    let loaded =
        load("listenPort=10920 \nbrokerRole=SLAVE\t\nbrokerId=1\nslaveReadEnable=true \n").unwrap();
    let c = &loaded.config;
    assert_eq!(c.netty_server.listen_port, 10920);
    assert_eq!(c.store.broker_role, BrokerRole::Slave);
    assert!(c.slave_read_enable);
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].starts_with(&format!("{FILE}:1: value \"10920 \" of listenPort")));
    assert!(loaded.warnings[1].contains("brokerRole"));
}

#[test]
fn trailing_blanks_on_strings_are_kept_with_a_warning() {
    let loaded = load("brokerName=broker-a \n").unwrap();
    assert_eq!(loaded.config.broker_name, "broker-a ");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("kept verbatim"));
}

#[test]
fn unknown_key_is_a_warning_naming_key_and_file() {
    let loaded = load("brokerName=a\nfooBar=1\nbrokername=x\n").unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0],
        format!("{FILE}:2: unknown key fooBar in {FILE} (ignored)")
    );
    assert!(loaded.warnings[1].contains("brokername"));
    assert_eq!(
        loaded.unknown,
        [
            ("fooBar".to_owned(), "1".to_owned()),
            ("brokername".to_owned(), "x".to_owned())
        ]
    );
}

#[test]
fn master_roles_force_broker_id_zero() {
    let loaded = load("brokerRole=SYNC_MASTER\nbrokerId=3\n").unwrap();
    assert_eq!(loaded.config.broker_id, 0);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("brokerId=3 forced to 0"));
}

#[test]
fn a_slave_needs_a_positive_broker_id() {
    assert_eq!(
        error("brokerRole=SLAVE\nbrokerId=0\n"),
        format!("{FILE}:2: bad value \"0\" for brokerId: a broker with brokerRole=SLAVE needs brokerId >= 1")
    );
    // Without brokerId in the file the error points at brokerRole's line.
    assert!(error("\nbrokerRole=SLAVE\n")
        .starts_with(&format!("{FILE}:2: bad value \"0\" for brokerId")));
    assert_eq!(config("brokerRole=SLAVE\nbrokerId=2\n").broker_id, 2);
}

#[test]
fn dledger_sets_broker_id_minus_one_with_a_warning() {
    let loaded = load("enableDLegerCommitLog=true\n").unwrap();
    assert_eq!(loaded.config.broker_id, -1);
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn explicit_ha_port_is_honoured_but_must_not_collide() {
    assert_eq!(
        config("listenPort=10911\nhaListenPort=20000\n").ha_listen_port(),
        20000
    );
    let msg = error("listenPort=10911\nhaListenPort=10909\n");
    assert!(
        msg.starts_with(&format!(
            "{FILE}:2: bad value \"10909\" for haListenPort: collides"
        )),
        "{msg}"
    );
}

#[test]
fn namesrv_override_env_and_file_precedence() {
    let mut env = env();
    env.namesrv_addr = Some("10.1.1.1:9876".into());
    let from_env = load_env("", None, &env).unwrap().config;
    assert_eq!(from_env.namesrv_addrs(), ["10.1.1.1:9876"]);
    let from_file = load_env("namesrvAddr=a:1;b:2\n", None, &env)
        .unwrap()
        .config;
    assert_eq!(from_file.namesrv_addrs(), ["a:1", "b:2"]);
    let from_n = load_env(
        "namesrvAddr=a:1;b:2\n",
        Some("127.0.0.57:9876; 127.0.0.58:9876"),
        &env,
    )
    .unwrap()
    .config;
    assert_eq!(
        from_n.namesrv_addrs(),
        ["127.0.0.57:9876", "127.0.0.58:9876"]
    );
}

#[test]
fn bad_namesrv_from_option_or_env_names_its_source() {
    let msg = load_env("", Some("nohost"), &env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "command line option -n: bad value \"nohost\" for namesrvAddr: \"nohost\" is not host:port"
    );
    let mut env = env();
    env.namesrv_addr = Some("x:0".into());
    let msg = load_env("", None, &env).unwrap_err().to_string();
    assert!(
        msg.starts_with("environment variable NAMESRV_ADDR: bad value \"x:0\""),
        "{msg}"
    );
}

#[test]
fn rocketmq_home_from_env_gives_the_conf_dir() {
    let mut env = env();
    env.rocketmq_home = Some(PathBuf::from("/opt/rocketmq"));
    let c = load_env("", None, &env).unwrap().config;
    assert_eq!(c.conf_dir(), Some(PathBuf::from("/opt/rocketmq/conf")));
}

#[test]
fn relative_conf_path_is_found_under_rocketmq_home() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("conf")).unwrap();
    std::fs::write(
        home.path().join("conf/broker.conf"),
        "brokerName=from-home\n",
    )
    .unwrap();
    let mut env = env();
    env.cwd = cwd.path().to_path_buf();
    env.rocketmq_home = Some(home.path().to_path_buf());
    let c = BrokerConfig::load_with(Some(Path::new("conf/broker.conf")), None, &env)
        .unwrap()
        .config;
    assert_eq!(c.broker_name, "from-home");
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let err =
        BrokerConfig::load_with(Some(Path::new("/nonexistent/b.conf")), None, &env()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/b.conf"));
}

#[test]
fn tables_have_no_duplicate_keys_except_the_shared_netty_ones() {
    let mut keys: Vec<&str> = BROKER_FIELDS
        .iter()
        .map(|f| f.key)
        .chain(NETTY_SERVER_FIELDS.iter().map(|f| f.key))
        .chain(NETTY_CLIENT_FIELDS.iter().map(|f| f.key))
        .chain(STORE_FIELDS.iter().map(|f| f.key))
        .chain(SHARDMQ_FIELDS.iter().map(|f| f.key))
        .chain(ADDRESS_SERVER_FIELDS.iter().map(|f| f.key))
        .collect();
    keys.sort_unstable();
    let mut dups: Vec<&str> = keys
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    assert_eq!(
        dups,
        ["writeBufferHighWaterMark", "writeBufferLowWaterMark"]
    );
    for key in IMPORTANT_KEYS {
        assert!(keys.contains(key), "important key {key} is in no table");
    }
    for (old, new) in ALIASES {
        assert!(keys.contains(new) && !keys.contains(old));
    }
}

#[test]
fn print_all_is_grouped_like_upstream_and_lists_every_key_once_per_group() {
    let c = config("brokerName=broker-a\nbrokerRole=SYNC_MASTER\n");
    let text = c.print_all();
    let lines: Vec<&str> = text.lines().collect();
    let expected_len = BROKER_FIELDS.len()
        + NETTY_SERVER_FIELDS.len()
        + NETTY_CLIENT_FIELDS.len()
        + STORE_FIELDS.len()
        + SHARDMQ_FIELDS.len();
    assert_eq!(lines.len(), expected_len);
    let pos = |line: &str| lines.iter().position(|l| *l == line).unwrap_or(usize::MAX);
    assert_eq!(lines[0], "rocketmqHome=");
    assert!(pos("brokerName=broker-a") < pos("listenPort=10911"));
    assert!(pos("listenPort=10911") < pos("clientWorkerThreads=4"));
    assert!(pos("clientWorkerThreads=4") < pos("storePathRootDir=/home/mq/store"));
    assert!(pos("brokerRole=SYNC_MASTER") < pos("shardCount=0"));
    assert!(lines.contains(&"flushDiskType=ASYNC_FLUSH"));
    assert!(lines.contains(&"haMasterAddress="));
    assert!(lines.contains(&"haListenPort=10912"));
}

#[test]
fn print_important_lists_the_operator_keys() {
    let text = config("").print_important();
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), IMPORTANT_KEYS.len());
    assert!(keys.contains(&"brokerRole"));
    assert!(!keys.contains(&"clientWorkerThreads"));
}

#[test]
fn printed_config_loads_back_to_the_same_config() {
    let mut env = env();
    env.namesrv_addr = Some("127.0.0.1:9876".into());
    let original = load_env(
        "brokerRole=SLAVE\nbrokerId=2\nstorePathRootDir=/data/s\nstorePathIndex=/ssd/i\n\
         mapedFileSizeConsumeQueue=300001\nhaMasterAddress=10.0.0.1:10912\n",
        None,
        &env,
    )
    .unwrap()
    .config;
    let printed = original.print_all();
    let reloaded = load_env(&printed, None, &env).unwrap();
    assert!(reloaded.warnings.is_empty(), "{:?}", reloaded.warnings);
    assert_eq!(reloaded.config, original);
}
