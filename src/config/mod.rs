//! Configuration: upstream's `.properties` files read with `java.util.Properties` rules, every
//! broker and nameserver key with upstream's default, strict value validation, upstream's
//! post-processing, and `-p` / `-m` printing (spec/properties.md).
//!
//! Runs on the main thread at start-up, before any shard exists (so `std::fs` is fine here);
//! the loaded config is then copied to each shard read-only.
//!
//! - `properties`: the file syntax (comments, separators, continuations, escapes).
//! - `value`: value parsing/printing and the table macro every section is declared with.
//! - `broker`, `store`, `netty`, `shardmq`: the broker's sections and its loader.
//! - `namesrv`: the nameserver's section and loader.
//! - `host`: the environment defaults depend on (`$HOME`, `$ROCKETMQ_HOME`, cores, IP).
//! - `load`: warnings and error locations shared by both loaders.

mod broker;
mod error;
mod host;
mod load;
mod namesrv;
mod netty;
mod properties;
mod shardmq;
mod store;
pub(crate) mod value;

pub use broker::{BrokerConfig, LoadedBrokerConfig, DEFAULT_BROKER_LISTEN_PORT};
pub use error::ConfigError;
pub use host::{detect_local_ipv4, HostEnv};
pub use namesrv::{LoadedNamesrvConfig, NamesrvConfig, DEFAULT_NAMESRV_LISTEN_PORT};
pub use netty::{NettyClientConfig, NettyServerConfig};
pub use properties::{Entry, Properties};
pub use shardmq::{AddressServerConfig, ShardmqConfig};
pub use store::{BrokerRole, FlushDiskType, MessageStoreConfig, CQ_UNIT_SIZE};
