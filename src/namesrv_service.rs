//! Runs the nameserver logic (`namesrv`) on a glommio executor of its own: TCP serving,
//! broker expiry scans every 10 s, and KV file persistence on the blocking pool. In the
//! combined local mode this executor is the "reserved shard" beside the broker's shards.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::constants::{GLOMMIO_IO_MEMORY_BYTES, SHARD_PREEMPT_TIMER};
use crate::namesrv::{ConnId, NameServer, NamesrvSettings};
use crate::net::{Connection, Handler};
use crate::remoting::RemotingCommand;

/// How often silent brokers are looked for (upstream: every 10 s).
const SCAN_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct NamesrvService {
    state: RefCell<NameServer>,
}

fn now_ms() -> u64 {
    u64::try_from(crate::runtime::now_ms()).unwrap_or(0)
}

impl Handler for NamesrvService {
    async fn handle(
        self: Rc<Self>,
        request: RemotingCommand,
        conn: Rc<Connection>,
    ) -> Option<RemotingCommand> {
        let response = self
            .state
            .borrow_mut()
            .handle(&request, ConnId(conn.info().id), now_ms());
        self.persist_kv().await;
        response
    }

    fn closed(self: Rc<Self>, conn: &Connection) {
        self.state
            .borrow_mut()
            .on_connection_closed(ConnId(conn.info().id));
    }
}

impl NamesrvService {
    async fn persist_kv(&self) {
        let dirty = self.state.borrow_mut().take_kv_to_persist();
        if let Some((path, content)) = dirty {
            crate::broker::persist::write_off_shard(path, content).await;
        }
    }
}

/// Starts the nameserver executor; returns its join handle. Fails if the port cannot be bound.
pub fn spawn(
    listen: SocketAddr,
    settings: NamesrvSettings,
) -> Result<glommio::ExecutorJoinHandle<()>, String> {
    let kv_path = settings.kv_config_path.clone();
    let mut server = NameServer::new(settings);
    match std::fs::read_to_string(&kv_path) {
        Ok(content) => server.load_kv(&content).map_err(|e| e.to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", kv_path.display())),
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("namesrv")
        .io_memory(GLOMMIO_IO_MEMORY_BYTES)
        .preempt_timer(SHARD_PREEMPT_TIMER)
        .spawn(move || async move {
            let listener = match crate::net::server::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot listen on {listen}: {e}")));
                    return;
                }
            };
            let service = Rc::new(NamesrvService {
                state: RefCell::new(server),
            });
            let scanner = service.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(SCAN_PERIOD).await;
                    for addr in scanner.state.borrow_mut().scan_expired(now_ms()) {
                        tracing::warn!(broker = %addr, "broker expired: no registration for 120 s");
                    }
                }
            })
            .detach();
            let _ = ready_tx.send(Ok(()));
            crate::net::server::serve(listener, service, u16::MAX).await;
        })
        .map_err(|e| format!("cannot start the nameserver executor: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the nameserver executor stopped during start-up".to_string()),
    }
}
