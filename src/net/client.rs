//! A remoting client: one lazily (re)connected connection to one address. Used by the broker
//! to talk to nameservers, and by tools and tests.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpStream;

use super::connection::{CallError, Connection, Handler};
use crate::remoting::RemotingCommand;

/// A handler that ignores requests a server sends to us (we are a plain client).
#[derive(Debug)]
pub struct NoRequests;

impl Handler for NoRequests {
    async fn handle(
        self: Rc<Self>,
        _request: RemotingCommand,
        _conn: Rc<Connection>,
    ) -> Option<RemotingCommand> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Reconnecting client for one `host:port`.
#[derive(Debug)]
pub struct RemotingClient {
    addr: String,
    conn: RefCell<Option<Rc<Connection>>>,
    connect_timeout: Duration,
}

impl RemotingClient {
    pub fn new(addr: impl Into<String>, connect_timeout: Duration) -> Self {
        Self {
            addr: addr.into(),
            conn: RefCell::new(None),
            connect_timeout,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connection(&self) -> Result<Rc<Connection>, ClientError> {
        if let Some(c) = self.conn.borrow().as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr: SocketAddr = self.addr.parse().map_err(|e| ClientError::Connect {
            addr: self.addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")),
        })?;
        let stream = TcpStream::connect_timeout(addr, self.connect_timeout)
            .await
            .map_err(|e| ClientError::Connect {
                addr: self.addr.clone(),
                source: std::io::Error::from(e),
            })?;
        let conn = Connection::start(stream, 0, Some(Rc::new(NoRequests)));
        *self.conn.borrow_mut() = Some(conn.clone());
        Ok(conn)
    }

    pub async fn call(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let conn = self.connection().await?;
        Ok(conn.call(request, timeout).await?)
    }

    pub async fn call_oneway(&self, request: RemotingCommand) -> Result<(), ClientError> {
        let conn = self.connection().await?;
        Ok(conn.call_oneway(request).await?)
    }
}
