//! The nameserver: route table, broker liveness and KV config, answering the nameserver
//! requests of spec/remoting.md §7 as the Java 4.x nameserver does.
//!
//! Synchronous and I/O-free: the runtime hands each decoded request to
//! [`NameServer::handle`] with the connection it came on and the current time, calls
//! [`NameServer::scan_expired`] periodically (upstream: every 10 s) and
//! [`NameServer::on_connection_closed`] when a connection ends, and writes the KV file whenever
//! [`NameServer::take_kv_to_persist`] returns content.
//!
//! Files: `route_table` (state and its rules), `handlers` (one function per request code),
//! `register_body` (what brokers send), `route_json` (what we emit), `kv_config` (KV store).

mod handlers;
pub mod kv_config;
pub mod register_body;
pub mod route_json;
pub mod route_table;

use std::path::PathBuf;

use crate::remoting::code::response;
use crate::remoting::RemotingCommand;

pub use kv_config::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
pub use route_table::{RouteTable, BROKER_EXPIRED_MS};

/// Identifies the TCP connection a request came on (the runtime numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the nameserver needs from its configuration.
#[derive(Debug, Clone, Default)]
pub struct NamesrvSettings {
    /// `kvConfigPath`: where the runtime persists the KV store.
    pub kv_config_path: PathBuf,
    /// `orderMessageEnable`: attach `orderTopicConf` (KV namespace ORDER_TOPIC_CONFIG) to routes.
    pub order_message_enable: bool,
    /// Further `key=value` pairs GET_NAMESRV_CONFIG reports after the two above (listenPort,
    /// rocketmqHome, ...), in order; the runtime fills them from the loaded properties.
    pub extra_config: Vec<(String, String)>,
}

/// Why a request failed; every variant becomes a SYSTEM_ERROR response with this text as remark.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
    /// Upstream's decoder wording (as the broker's `HeaderError`), so a tool matching on it
    /// reads the same text from both servers.
    #[error("the custom field <{field}> is null (request code {code})")]
    MissingField { code: i32, field: &'static str },
    #[error("the custom field <{field}> has an invalid value <{value}>: not a {kind} (request code {code})")]
    InvalidField {
        code: i32,
        field: &'static str,
        value: String,
        kind: &'static str,
    },
    #[error(
        "body CRC32 mismatch: header bodyCrc32={expected}, computed {computed} over {len} bytes"
    )]
    BodyCrc {
        expected: i32,
        computed: i32,
        len: usize,
    },
    #[error("cannot decode {what}: {detail}")]
    Body { what: &'static str, detail: String },
    #[error("KV config file {}: {detail}", path.display())]
    KvFile { path: PathBuf, detail: String },
}

/// The whole nameserver state. One instance, owned by the nameserver's shard.
#[derive(Debug)]
pub struct NameServer {
    settings: NamesrvSettings,
    routes: RouteTable,
    kv: KvConfig,
    kv_dirty: bool,
}

impl NameServer {
    pub fn new(cfg: NamesrvSettings) -> Self {
        Self {
            settings: cfg,
            routes: RouteTable::new(),
            kv: KvConfig::new(),
            kv_dirty: false,
        }
    }

    /// Handles one request. Returns `None` for oneway requests (they are processed but never
    /// answered) and for stray responses.
    pub fn handle(
        &mut self,
        req: &RemotingCommand,
        conn: ConnId,
        now_ms: u64,
    ) -> Option<RemotingCommand> {
        if req.is_response() {
            return None;
        }
        let resp = match handlers::dispatch(self, req, conn, now_ms) {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(
                    code = req.code,
                    opaque = req.opaque,
                    "namesrv request failed: {e}"
                );
                RemotingCommand::response_to(req, response::SYSTEM_ERROR).with_remark(e.to_string())
            }
        };
        (!req.is_oneway()).then_some(resp)
    }

    /// Evicts every broker registered over `conn`.
    pub fn on_connection_closed(&mut self, conn: ConnId) {
        for addr in self.routes.close_connection(conn) {
            tracing::info!(broker = %addr, "connection closed, broker removed from routes");
        }
    }

    /// Evicts brokers silent for more than [`BROKER_EXPIRED_MS`]; returns their addresses.
    pub fn scan_expired(&mut self, now_ms: u64) -> Vec<String> {
        let gone = self.routes.scan_expired(now_ms);
        for addr in &gone {
            tracing::warn!(broker = %addr, silent_ms = BROKER_EXPIRED_MS, "broker expired, removed");
        }
        gone
    }

    /// The KV file's path and new content if the store changed since the last call.
    pub fn take_kv_to_persist(&mut self) -> Option<(PathBuf, String)> {
        if !std::mem::take(&mut self.kv_dirty) {
            return None;
        }
        Some((
            self.settings.kv_config_path.clone(),
            self.kv.to_file_content(),
        ))
    }

    /// Replaces the KV store with the content of the KV file (read by the runtime at start).
    pub fn load_kv(&mut self, content: &str) -> Result<(), NamesrvError> {
        self.kv = KvConfig::load(content).map_err(|detail| NamesrvError::KvFile {
            path: self.settings.kv_config_path.clone(),
            detail,
        })?;
        self.kv_dirty = false;
        Ok(())
    }

    /// Read access for diagnostics and tests.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn kv(&self) -> &KvConfig {
        &self.kv
    }
}

#[cfg(test)]
mod tests;
