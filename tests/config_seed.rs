//! The seed install's five properties files (conf/2m-2s-sync/, byte for byte as their operator
//! wrote them, Chinese comments included) load unchanged with the values upstream would use,
//! and every file shipped under conf/ loads without a warning.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use shardmq::config::{
    BrokerConfig, BrokerRole, FlushDiskType, HostEnv, LoadedBrokerConfig, NamesrvConfig,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn env() -> HostEnv {
    HostEnv {
        home: PathBuf::from("/home/rocketmq"),
        cwd: PathBuf::from("/srv/shardmq"),
        rocketmq_home: None,
        namesrv_addr: None,
        host_name: "host1".into(),
        cores: 4,
        local_ipv4: Ipv4Addr::new(192, 168, 5, 57),
    }
}

fn load(path: &str, namesrv: Option<&str>) -> LoadedBrokerConfig {
    BrokerConfig::load_with(Some(&repo(path)), namesrv, &env())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Seed {
    file: &'static str,
    broker_name: &'static str,
    broker_id: i64,
    role: BrokerRole,
    listen_port: u16,
    data: &'static str,
    root: &'static str,
}

const SEEDS: [Seed; 5] = [
    Seed {
        file: "broker-a.properties",
        broker_name: "broker-a",
        broker_id: 0,
        role: BrokerRole::SyncMaster,
        listen_port: 10911,
        data: "/data/rocketmq-m",
        root: "/data/rocketmq-m",
    },
    Seed {
        file: "broker-a-s.properties",
        broker_name: "broker-a",
        broker_id: 1,
        role: BrokerRole::Slave,
        listen_port: 10920,
        data: "/data/rocketmq-s",
        root: "/home/rocketmq/store",
    },
    Seed {
        file: "broker-b.properties",
        broker_name: "broker-b",
        broker_id: 0,
        role: BrokerRole::SyncMaster,
        listen_port: 10911,
        data: "/data/rocketmq-m",
        root: "/data/rocketmq-m",
    },
    Seed {
        file: "broker-b-s.properties",
        broker_name: "broker-b",
        broker_id: 1,
        role: BrokerRole::Slave,
        listen_port: 10920,
        data: "/data/rocketmq-s",
        root: "/home/rocketmq/store",
    },
    Seed {
        file: "broker-c-s.properties",
        broker_name: "broker-b",
        broker_id: 2,
        role: BrokerRole::Slave,
        listen_port: 10920,
        data: "/data/rocketmq-s",
        root: "/home/rocketmq/store",
    },
];

#[test]
fn each_seed_file_loads_unchanged_with_the_expected_values() {
    for seed in &SEEDS {
        let loaded = load(&format!("conf/2m-2s-sync/{}", seed.file), None);
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            seed.file,
            loaded.warnings
        );
        let c = &loaded.config;
        let s = &c.store;
        let at = |p: &str| PathBuf::from(format!("{}/{p}", seed.data));
        assert_eq!(c.broker_cluster_name, "rocketmq_cluster", "{}", seed.file);
        assert_eq!(c.broker_name, seed.broker_name, "{}", seed.file);
        assert_eq!(c.broker_id, seed.broker_id, "{}", seed.file);
        assert_eq!(s.broker_role, seed.role, "{}", seed.file);
        assert_eq!(s.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.netty_server.listen_port, seed.listen_port);
        assert_eq!(c.vip_listen_port(), seed.listen_port - 2);
        assert_eq!(c.ha_listen_port(), seed.listen_port + 1);
        assert_eq!(
            c.namesrv_addrs(),
            ["192.168.5.57:9876", "192.168.5.58:9876"]
        );
        assert_eq!(s.delete_when, "04");
        assert_eq!(s.file_reserved_time, 48);
        assert_eq!(c.default_topic_queue_nums, 4);
        assert!(c.auto_create_topic_enable && c.auto_create_subscription_group);
        assert_eq!(s.mapped_file_size_commit_log, 1_073_741_824);
        // 300000 bytes = 15000 entries per file (the comment's "300k entries" is wrong).
        assert_eq!(s.mapped_file_size_consume_queue, 300_000);
        assert_eq!(s.disk_max_used_space_ratio, 88);
        assert_eq!(s.max_message_size, 65536);
        assert_eq!(s.store_path_root_dir, Path::new(seed.root), "{}", seed.file);
        assert_eq!(s.store_path_commit_log, at("commitlog"));
        assert_eq!(s.store_path_consume_queue, at("consumequeue"));
        assert_eq!(s.store_path_index, at("index"));
        assert_eq!(s.store_checkpoint, at("checkpoint"));
        assert_eq!(s.abort_file, at("abort"));
    }
}

#[test]
fn seed_files_are_the_operator_bytes_with_chinese_comments() {
    for seed in &SEEDS {
        let bytes = std::fs::read(repo(&format!("conf/2m-2s-sync/{}", seed.file))).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("#nameServer地址"), "{}", seed.file);
        assert!(
            text.contains("mapedFileSizeConsumeQueue=300000\n"),
            "{}",
            seed.file
        );
    }
}

#[test]
fn namesrv_option_overrides_the_seed_address_list() {
    let c = load(
        "conf/2m-2s-sync/broker-a.properties",
        Some("127.0.0.57:9876;127.0.0.58:9876"),
    )
    .config;
    assert_eq!(c.namesrv_addrs(), ["127.0.0.57:9876", "127.0.0.58:9876"]);
}

#[test]
fn master_and_slave_on_one_host_use_disjoint_ports() {
    let master = load("conf/2m-2s-sync/broker-a.properties", None).config;
    let slave = load("conf/2m-2s-sync/broker-a-s.properties", None).config;
    let ports = |c: &BrokerConfig| {
        [
            c.vip_listen_port(),
            c.netty_server.listen_port,
            c.ha_listen_port(),
        ]
    };
    for p in ports(&master) {
        assert!(!ports(&slave).contains(&p), "port {p} used by both");
    }
}

#[test]
fn every_shipped_broker_file_loads_without_warnings() {
    let files = [
        "conf/broker.conf",
        "conf/2m-noslave/broker-a.properties",
        "conf/2m-noslave/broker-b.properties",
        "conf/2m-2s-async/broker-a.properties",
        "conf/2m-2s-async/broker-a-s.properties",
        "conf/2m-2s-async/broker-b.properties",
        "conf/2m-2s-async/broker-b-s.properties",
        "conf/local/broker.properties",
    ];
    for file in files {
        let loaded = load(file, None);
        assert!(loaded.warnings.is_empty(), "{file}: {:?}", loaded.warnings);
        let c = &loaded.config;
        let expected_role = if file.ends_with("-s.properties") {
            BrokerRole::Slave
        } else {
            BrokerRole::AsyncMaster
        };
        assert_eq!(c.store.broker_role, expected_role, "{file}");
        assert_eq!(c.broker_cluster_name, "DefaultCluster", "{file}");
    }
}

#[test]
fn broker_conf_is_a_single_async_master() {
    let c = load("conf/broker.conf", None).config;
    assert_eq!(c.broker_name, "broker-a");
    assert_eq!(c.broker_id, 0);
    assert_eq!(c.store.flush_disk_type, FlushDiskType::AsyncFlush);
    assert_eq!(c.netty_server.listen_port, 10911);
}

#[test]
fn local_mode_file_runs_on_loopback_with_sync_flush_under_the_current_directory() {
    let c = load("conf/local/broker.properties", None).config;
    assert_eq!(c.broker_ip1, "127.0.0.1");
    assert_eq!(c.broker_addr(), "127.0.0.1:10911");
    assert_eq!(c.namesrv_addrs(), ["127.0.0.1:9876"]);
    assert_eq!(c.store.flush_disk_type, FlushDiskType::SyncFlush);
    assert!(c.auto_create_topic_enable);
    assert_eq!(
        c.store.store_path_root_dir,
        Path::new("/srv/shardmq/store-local")
    );
    assert_eq!(
        c.store.store_path_commit_log,
        Path::new("/srv/shardmq/store-local/commitlog")
    );
}

#[test]
fn shipped_namesrv_file_loads() {
    let loaded = NamesrvConfig::load_with(Some(&repo("conf/namesrv.properties")), &env()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.netty_server.listen_port, 9876);
    assert_eq!(
        loaded.config.config_store_path,
        repo("conf/namesrv.properties")
    );
}

#[test]
fn loading_with_the_real_process_environment_works() {
    let loaded =
        BrokerConfig::load(Some(&repo("conf/2m-2s-sync/broker-b-s.properties")), None).unwrap();
    assert_eq!(loaded.config.broker_id, 1);
    assert!(loaded.config.print_all().contains("brokerRole=SLAVE\n"));
}
