//! The nameserver's configuration: upstream's `NamesrvConfig` (spec/properties.md §8) plus the
//! nested `NettyServerConfig` (listen port 9876), loaded with the same rules and validation as
//! the broker's. Runs once at start-up, before any shard exists.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::load::{resolve_conf_path, Loader};
use super::netty::{NettyServerConfig, NETTY_SERVER_FIELDS};
use super::properties::Properties;
use super::value::{apply_in, config_section, render_table, Note};
use super::HostEnv;

/// Upstream's nameserver listen port.
pub const DEFAULT_NAMESRV_LISTEN_PORT: u16 = 9876;

config_section! {
    /// Everything `mqnamesrv` is configured with.
    pub struct NamesrvConfig(env) in NAMESRV_FIELDS {
        /// Install directory; default `$ROCKETMQ_HOME`. Not required by shardmq.
        "rocketmqHome" => rocketmq_home: Option<PathBuf> = env.rocketmq_home.clone();
        /// The KV store file (remoting.md §7.7).
        "kvConfigPath" => kv_config_path: PathBuf = env.home.join("namesrv/kvConfig.json");
        /// Where UPDATE_NAMESRV_CONFIG persists the configuration; set to the `-c` file.
        "configStorePath" => config_store_path: PathBuf =
            env.home.join("namesrv/namesrv.properties");
        /// A label only.
        "productEnvName" => product_env_name: String = "center".to_owned();
        "clusterTest" => cluster_test: bool = false;
        /// Attach `orderTopicConf` (KV namespace ORDER_TOPIC_CONFIG) to route data.
        "orderMessageEnable" => order_message_enable: bool = false;
        /// Keys UPDATE_NAMESRV_CONFIG may not change (4.9).
        "configBlackList" => config_black_list: String =
            "configBlackList;configStorePath;kvConfigPath".to_owned();
    }
    nested {
        /// Upstream's `NettyServerConfig` (listen port 9876).
        netty_server: NettyServerConfig,
    }
}

/// A loaded nameserver configuration and the warnings loading produced (also logged).
#[derive(Debug, Clone)]
pub struct LoadedNamesrvConfig {
    pub config: NamesrvConfig,
    pub warnings: Vec<String>,
    /// Keys no table knows, with their values, in file order. Upstream ignores them for
    /// configuration but still lists them in GET_NAMESRV_CONFIG answers.
    pub unknown: Vec<(String, String)>,
}

impl NamesrvConfig {
    /// Upstream's defaults for this host, before any file is applied.
    pub fn defaults(env: &HostEnv) -> NamesrvConfig {
        let mut config = NamesrvConfig::with_defaults(env);
        config.netty_server.listen_port = DEFAULT_NAMESRV_LISTEN_PORT;
        config
    }

    /// `mqnamesrv [-c path]` with the real process environment.
    pub fn load(path: Option<&Path>) -> Result<LoadedNamesrvConfig, ConfigError> {
        Self::load_with(path, &HostEnv::from_process())
    }

    /// [`NamesrvConfig::load`] with an explicit environment. With a file, `configStorePath`
    /// becomes that file (absolute), as upstream does.
    pub fn load_with(
        path: Option<&Path>,
        env: &HostEnv,
    ) -> Result<LoadedNamesrvConfig, ConfigError> {
        match path {
            Some(path) => {
                let path = resolve_conf_path(path, env);
                let props = Properties::load(&path)?;
                let mut loaded = Self::from_properties_with(&props, &path, env)?;
                loaded.config.config_store_path = env.absolute(&path);
                Ok(loaded)
            }
            None => Self::from_properties_with(
                &Properties::default(),
                Path::new("<no config file>"),
                env,
            ),
        }
    }

    /// Applies already-parsed properties (named `file` in messages) with the process
    /// environment.
    pub fn from_properties(
        props: &Properties,
        file: &Path,
    ) -> Result<LoadedNamesrvConfig, ConfigError> {
        Self::from_properties_with(props, file, &HostEnv::from_process())
    }

    /// Defaults, then the file; relative paths become absolute against the current directory.
    pub fn from_properties_with(
        props: &Properties,
        file: &Path,
        env: &HostEnv,
    ) -> Result<LoadedNamesrvConfig, ConfigError> {
        let mut config = NamesrvConfig::defaults(env);
        let mut loader = Loader::new(props, file);
        loader.apply_entries(&mut config, &[], NamesrvConfig::apply_key)?;
        config.kv_config_path = env.absolute(&config.kv_config_path);
        config.config_store_path = env.absolute(&config.config_store_path);
        Ok(LoadedNamesrvConfig {
            config,
            warnings: loader.warnings,
            unknown: loader.unknown,
        })
    }

    fn apply_key(&mut self, key: &str, raw: &str) -> Result<Option<Note>, String> {
        let hits = [
            apply_in(NAMESRV_FIELDS, self, key, raw)?,
            apply_in(NETTY_SERVER_FIELDS, &mut self.netty_server, key, raw)?,
        ];
        Ok(hits.into_iter().flatten().next())
    }

    /// `-p`: one `key=value` line per known key (NamesrvConfig, then NettyServerConfig).
    pub fn print_all(&self) -> String {
        let mut out = String::new();
        render_table(&mut out, NAMESRV_FIELDS, self, |_| true);
        render_table(&mut out, NETTY_SERVER_FIELDS, &self.netty_server, |_| true);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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

    fn load(text: &str) -> Result<LoadedNamesrvConfig, ConfigError> {
        let props = Properties::parse(text.as_bytes()).unwrap();
        NamesrvConfig::from_properties_with(&props, Path::new("conf/namesrv.properties"), &env())
    }

    #[test]
    fn defaults_listen_on_9876_with_files_under_home() {
        let c = load("").unwrap().config;
        assert_eq!(c.netty_server.listen_port, 9876);
        assert_eq!(
            c.kv_config_path,
            Path::new("/home/mq/namesrv/kvConfig.json")
        );
        assert_eq!(c.product_env_name, "center");
        assert!(!c.order_message_enable);
    }

    #[test]
    fn file_values_apply_and_relative_paths_resolve_against_cwd() {
        let c = load("listenPort=9877\nkvConfigPath=data/kv.json\norderMessageEnable=TRUE\n")
            .unwrap()
            .config;
        assert_eq!(c.netty_server.listen_port, 9877);
        assert_eq!(c.kv_config_path, Path::new("/opt/shardmq/data/kv.json"));
        assert!(c.order_message_enable);
    }

    #[test]
    fn bad_port_is_an_error_with_file_and_line() {
        let err = load("# x\nlistenPort=0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/namesrv.properties:2: bad value \"0\" for listenPort: \
             expected a port in 1..=65535"
        );
    }

    #[test]
    fn unknown_key_is_a_warning() {
        let loaded = load("brokerName=x\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("brokerName"));
        assert!(loaded.warnings[0].contains("conf/namesrv.properties"));
    }

    #[test]
    fn print_all_lists_namesrv_then_netty_keys() {
        let text = load("").unwrap().config.print_all();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rocketmqHome=");
        assert!(lines.contains(&"listenPort=9876"));
        let kv = lines
            .iter()
            .position(|l| l.starts_with("kvConfigPath="))
            .unwrap();
        let port = lines
            .iter()
            .position(|l| l.starts_with("listenPort="))
            .unwrap();
        assert!(kv < port);
        assert_eq!(
            lines.len(),
            NAMESRV_FIELDS.len() + NETTY_SERVER_FIELDS.len()
        );
    }

    #[test]
    fn load_with_sets_config_store_path_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namesrv.properties");
        std::fs::write(&file, "listenPort=9876\n").unwrap();
        let c = NamesrvConfig::load_with(Some(&file), &env())
            .unwrap()
            .config;
        assert_eq!(c.config_store_path, file);
    }
}
