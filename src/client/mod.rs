//! The crate's client library (DESIGN.md §5): route lookup and cache, a producer
//! (SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE with the headers a Java 4.3 producer sends), a pull
//! consumer (PULL_MESSAGE with long polling, records decoded), and the admin calls mqbench and
//! the tools need (create topic, broker config, runtime info, max offset).
//!
//! Only the wire protocol: it runs against upstream's nameserver and broker as well as ours.
//! Everything here runs on one glommio executor (`Rc`, no locks); a program with several client
//! threads builds one [`MqClient`] per executor. Requests to one broker share one connection and
//! are matched by opaque, so any number of sends can be in flight on it.

mod admin;
mod consumer;
mod producer;
mod route;

pub use admin::{BrokerConfig, RuntimeInfo};
pub use consumer::{PullResult, PullStatus, ReceivedMessage};
pub use producer::{OutgoingMessage, SendResult};
pub use route::{MessageQueue, TopicRoute};

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::net::client::ClientError;
use crate::net::RemotingClient;
use crate::remoting::RemotingCommand;

/// Why a client call failed. Every variant names what failed.
#[derive(Debug, thiserror::Error)]
pub enum MqClientError {
    #[error("{addr}: {source}")]
    Remote { addr: String, source: ClientError },
    #[error("{what} at {addr}: response code {code} ({remark})")]
    Refused {
        what: &'static str,
        addr: String,
        code: i32,
        remark: String,
    },
    #[error("{what} from {addr}: {reason}")]
    BadResponse {
        what: &'static str,
        addr: String,
        reason: String,
    },
    #[error("no route for topic {0} (nameservers: {1})")]
    NoRoute(String, String),
    #[error("no nameserver address given")]
    NoNamesrv,
}

/// A client bound to one executor: nameserver list, route cache, one connection per broker.
#[derive(Debug)]
pub struct MqClient {
    namesrvs: Vec<String>,
    timeout: Duration,
    conns: RefCell<HashMap<String, Rc<RemotingClient>>>,
    routes: RefCell<HashMap<String, Rc<TopicRoute>>>,
}

impl MqClient {
    /// `namesrv` is upstream's list form: `host:port;host:port`.
    pub fn new(namesrv: &str, timeout: Duration) -> Result<Rc<Self>, MqClientError> {
        let namesrvs: Vec<String> = namesrv
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if namesrvs.is_empty() {
            return Err(MqClientError::NoNamesrv);
        }
        Ok(Rc::new(Self {
            namesrvs,
            timeout,
            conns: RefCell::new(HashMap::new()),
            routes: RefCell::new(HashMap::new()),
        }))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn namesrvs(&self) -> &[String] {
        &self.namesrvs
    }

    /// The (shared) connection to `addr`.
    pub fn conn(&self, addr: &str) -> Rc<RemotingClient> {
        self.conns
            .borrow_mut()
            .entry(addr.to_string())
            .or_insert_with(|| Rc::new(RemotingClient::new(addr, self.timeout)))
            .clone()
    }

    /// One request/response to `addr`.
    pub async fn call(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand, MqClientError> {
        self.call_timeout(addr, request, self.timeout).await
    }

    pub async fn call_timeout(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, MqClientError> {
        let c = self.conn(addr);
        c.call(request, timeout)
            .await
            .map_err(|source| MqClientError::Remote {
                addr: addr.to_string(),
                source,
            })
    }

    /// Calls the nameservers in order until one answers.
    pub(crate) async fn call_namesrv(
        &self,
        request: &RemotingCommand,
    ) -> Result<(String, RemotingCommand), MqClientError> {
        let mut last = None;
        for ns in &self.namesrvs {
            match self.call(ns, request.clone()).await {
                Ok(r) => return Ok((ns.clone(), r)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(MqClientError::NoNamesrv))
    }
}

pub(crate) fn remark_of(r: &RemotingCommand) -> String {
    r.remark.clone().unwrap_or_default()
}
