//! Broker start-up and shutdown: recovery decision (abort file), control-plane files, one
//! executor per shard, listeners, background tasks, and the clean stop on SIGTERM.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::broker::clients::ClientRegistry;
use crate::broker::groups::SubscriptionGroups;
use crate::broker::offsets::ConsumerOffsets;
use crate::broker::persist::{load_with_backup, write_off_shard};
use crate::broker::processor::BrokerService;
use crate::broker::topics::{TopicManager, TopicTable};
use crate::broker::{register, BrokerSettings, BrokerShard, ControlPlane};
use crate::constants::{GLOMMIO_IO_MEMORY_BYTES, SHARD_PREEMPT_TIMER};
use crate::net::RemotingClient;
use crate::runtime::{now_ms, Inbox, Mesh};
use crate::store::{self, ShardId, ShardStore};

/// What the control plane starts from (read before the shards start).
struct Persisted {
    /// The persisted table plus the built-in topics (built before the shards start, so every
    /// shard serves with the whole table from its first request).
    topics: TopicManager,
    groups: Option<serde_json::Value>,
    offsets: Option<serde_json::Value>,
}

fn load_persisted(dir: &Path, settings: &BrokerSettings) -> Result<Persisted, String> {
    let topics = load_with_backup(&dir.join("topics.json"))?
        .map(serde_json::from_value::<TopicTable>)
        .transpose()
        .map_err(|e| format!("{}: {e}", dir.join("topics.json").display()))?;
    Ok(Persisted {
        topics: TopicManager::new(
            topics,
            &settings.cluster,
            &settings.broker_name,
            settings.default_topic_queue_nums,
            settings.auto_create_topic,
            now_ms(),
        ),
        groups: load_with_backup(&dir.join("subscriptionGroup.json"))?,
        offsets: load_with_backup(&dir.join("consumerOffset.json"))?,
    })
}

/// Every shard binds the broker's ports with SO_REUSEPORT, which would also let a second broker
/// started on the same ports by mistake share them silently with the first (the kernel would
/// split the connections between the two processes). So before binding, the main thread asks
/// whether anything already accepts connections there and stops with "address in use" if so,
/// as upstream's broker does. A connect, not a plain bind: after a kill -9 the old process's
/// connections linger (FIN_WAIT, TIME_WAIT) with SO_REUSEPORT but not SO_REUSEADDR, which makes
/// a plain bind fail although no one listens any more.
///
/// A port counts as taken only if it keeps accepting for `PORT_BUSY_GRACE`: a process killed
/// with -9 is reaped before the kernel has torn down its io_uring (that runs later in a kernel
/// worker), and the ring's pending accept keeps the dead broker's listening socket alive, and
/// accepting into its backlog, for a moment after `wait()` has returned.
fn check_ports_free(settings: &BrokerSettings) -> Result<(), String> {
    let mut ports = vec![
        ("listenPort", settings.listen_port),
        ("VIP (listenPort - 2)", settings.vip_port),
    ];
    if !settings.role.is_slave() {
        ports.push(("HA (haListenPort)", settings.ha.listen_port));
    }
    let ip = if settings.bind_ip.is_unspecified() {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        settings.bind_ip
    };
    let deadline = std::time::Instant::now() + PORT_BUSY_GRACE;
    for (what, port) in ports {
        let addr = std::net::SocketAddr::from((ip, port));
        while std::net::TcpStream::connect_timeout(&addr, PORT_CHECK_TIMEOUT).is_ok() {
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "cannot listen on {}:{port}, the {what} port: address in use, another \
                     process accepts connections there (is another broker running?)",
                    settings.bind_ip
                ));
            }
            #[allow(clippy::disallowed_methods)] // reason: the main thread, before any shard runs
            std::thread::sleep(PORT_RECHECK_INTERVAL);
        }
    }
    Ok(())
}

/// How long the port check waits for a connection (loopback answers in microseconds).
const PORT_CHECK_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a port must go on accepting before the broker calls it taken (see `check_ports_free`).
const PORT_BUSY_GRACE: Duration = Duration::from_secs(3);
const PORT_RECHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Runs the broker until SIGTERM/SIGINT. Blocks the calling (non-shard) thread.
pub fn run(settings: BrokerSettings) -> Result<(), String> {
    check_ports_free(&settings)?;
    let settings = Arc::new(settings);
    std::fs::create_dir_all(&settings.config_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.config_dir.display()))?;
    let abnormal = store::abort_exists(&settings.abort_path);
    if abnormal {
        tracing::warn!(abort = %settings.abort_path.display(), "abort file found: the last run did not stop cleanly; recovering");
    }
    let mut persisted = Some(load_persisted(&settings.config_dir, &settings)?);
    // Every shard starts with the whole topic table: a request that reaches another shard
    // right after the ports open must not find "topic not exist" (seen in CI after a restart).
    let initial_topics = persisted
        .as_ref()
        .map(|p| p.topics.snapshot())
        .unwrap_or_default();
    let (mesh, inboxes) = Mesh::<BrokerShard>::new(settings.shard_count);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, String>>();
    let mut stop_senders = Vec::new();
    let mut handles = Vec::new();
    for (id, inbox) in inboxes.into_iter().enumerate() {
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        stop_senders.push(stop_tx);
        let (settings, mesh, ready) = (settings.clone(), mesh.clone(), ready_tx.clone());
        let topics = initial_topics.clone();
        // Only shard 0 owns the control plane.
        let control = if id == 0 { persisted.take() } else { None };
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("shard-{id}"))
            .io_memory(GLOMMIO_IO_MEMORY_BYTES)
            .preempt_timer(SHARD_PREEMPT_TIMER)
            .spawn(move || async move {
                match start_shard(id, settings, mesh, inbox, abnormal, control, topics).await {
                    Ok(shard) => {
                        let _ = ready.send(Ok(id));
                        let _ = stop_rx.await;
                        stop_shard(&shard).await
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        false
                    }
                }
            })
            .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..settings.shard_count {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a shard stopped during start-up".to_string()),
        }
    }
    store::create_abort(&settings.abort_path).map_err(|e| {
        format!(
            "cannot create abort file {}: {e}",
            settings.abort_path.display()
        )
    })?;
    tracing::info!(
        broker = %settings.broker_name, addr = %settings.broker_addr(), shards = settings.shard_count,
        "The broker[{}, {}] boot success. serializeType=JSON and name server is:{}",
        settings.broker_name, settings.broker_addr(), settings.namesrv_addrs.join(";")
    );
    crate::signals::wait_for_termination()?;
    tracing::info!("shutdown requested");
    for tx in stop_senders {
        let _ = tx.send(());
    }
    // Every shard's store must have stopped cleanly (every write done, nothing failed) for the
    // next start to skip crash recovery: a store that stopped after a failed write, or a shard
    // that panicked, leaves the abort file, and the next start scans and cuts the log's tail.
    let mut clean = true;
    for h in handles {
        clean &= matches!(h.join(), Ok(true));
    }
    if !clean {
        tracing::error!(
            path = %settings.abort_path.display(),
            "a shard did not stop cleanly: the abort file stays and the next start recovers as after a crash"
        );
        return Err("a shard did not stop cleanly (see the log)".to_string());
    }
    store::remove_abort(&settings.abort_path).map_err(|e| {
        format!(
            "cannot remove abort file {}: {e}",
            settings.abort_path.display()
        )
    })?;
    tracing::info!("the broker shut down cleanly");
    Ok(())
}

async fn start_shard(
    id: usize,
    settings: Arc<BrokerSettings>,
    mesh: Mesh<BrokerShard>,
    inbox: Inbox<BrokerShard>,
    abnormal: bool,
    persisted: Option<Persisted>,
    topics: Arc<TopicTable>,
) -> Result<Rc<BrokerShard>, String> {
    let shard_id = ShardId(u16::try_from(id).map_err(|_| format!("shard id {id} too large"))?);
    let store = ShardStore::open(settings.store.clone(), shard_id, abnormal)
        .await
        .map_err(|e| format!("shard {id}: cannot open the store: {e}"))?;
    store.start_retention(settings.retention.clone());
    let epochs = crate::ha::epochs::open_history(
        store.shard_dir.clone(),
        store.write_end(),
        !settings.role.is_slave(),
    )
    .await
    .map_err(|e| format!("shard {id}: epoch history: {e}"))?;
    let control = persisted.map(|p| {
        RefCell::new(ControlPlane {
            topics: p.topics,
            groups: SubscriptionGroups::new(p.groups.as_ref(), settings.auto_create_group),
            offsets: p
                .offsets
                .as_ref()
                .map(ConsumerOffsets::from_json)
                .unwrap_or_default(),
            clients: ClientRegistry::default(),
            topics_persisted_counter: -1,
        })
    });
    let namesrv_clients = if id == 0 {
        settings
            .namesrv_addrs
            .iter()
            .map(|a| RemotingClient::new(a.clone(), Duration::from_secs(3)))
            .collect()
    } else {
        Vec::new()
    };
    let shard = Rc::new(BrokerShard {
        id,
        settings: settings.clone(),
        store: store.clone(),
        mesh,
        topics: RefCell::new(topics),
        control,
        pull_waiters: RefCell::new(HashMap::new()),
        conns: RefCell::new(HashMap::new()),
        stopping: Cell::new(false),
        namesrv_clients,
        ha: Rc::new(crate::ha::ShardHa::with_epochs(epochs)),
        stalls: RefCell::new(Default::default()),
        requests: Cell::new(0),
    });
    watch_stalls(&shard);
    {
        // The replication shipper of this shard wakes when its written end moves.
        let ha = Rc::downgrade(&shard.ha);
        store.set_end_listener(Box::new(move |_| {
            if let Some(ha) = ha.upgrade() {
                ha.end_moved.wake();
            }
        }));
    }
    let weak: Weak<BrokerShard> = Rc::downgrade(&shard);
    store.set_arrival_listener(Box::new(move |topic, queue_id| {
        if let Some(s) = weak.upgrade() {
            s.wake_pulls(topic, queue_id);
        }
    }));
    glommio::spawn_local(inbox.serve(shard.clone())).detach();
    let service = Rc::new(BrokerService {
        shard: shard.clone(),
    });
    for port in [settings.listen_port, settings.vip_port] {
        let addr = SocketAddr::from((settings.bind_ip, port));
        let listener = crate::net::server::bind(addr)
            .map_err(|e| format!("shard {id}: cannot listen on {addr}: {e}"))?;
        glommio::spawn_local(crate::net::server::serve(
            listener,
            service.clone(),
            shard_id.0,
        ))
        .detach();
    }
    if settings.role.is_slave() {
        glommio::spawn_local(crate::ha::run_replication(shard.clone())).detach();
        if id == 0 {
            glommio::spawn_local(crate::ha::meta::sync_periodically(shard.clone())).detach();
        }
    } else {
        let addr = SocketAddr::from((settings.bind_ip, settings.ha.listen_port));
        let listener = crate::net::server::bind(addr)
            .map_err(|e| format!("shard {id}: cannot listen on the HA port {addr}: {e}"))?;
        glommio::spawn_local(crate::ha::serve_ha_port(shard.clone(), listener)).detach();
    }
    if id == 0 {
        if shard.mesh.shard_count() > 1 {
            // Every shard started with this table already; this re-sends it to them
            // (harmless) and registers it with the nameservers at once.
            register::after_topic_change(&shard, shard.topic_snapshot());
        }
        glommio::spawn_local(register::register_periodically(shard.clone())).detach();
        glommio::spawn_local(housekeeping(shard.clone())).detach();
    }
    Ok(shard)
}

/// Records this shard's event-loop stalls and logs the long ones (at most one line a second;
/// the runtime info keeps them all).
fn watch_stalls(shard: &Rc<BrokerShard>) {
    let weak = Rc::downgrade(shard);
    let id = shard.id;
    let mut last_log: Option<std::time::Instant> = None;
    let mut unlogged = 0u64;
    let counted = weak.clone();
    // Requests served, or bytes written (a slave's replication serves no requests).
    let activity = move || {
        counted
            .upgrade()
            .map_or(0, |s| s.requests.get().wrapping_add(s.store.written_end()))
    };
    crate::runtime::lag::spawn_probe(activity, move |stall| {
        let Some(s) = weak.upgrade() else { return };
        s.stalls.borrow_mut().record(stall);
        if stall.lag_ms < STALL_LOG_MS {
            return;
        }
        if last_log.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            unlogged += 1;
            return;
        }
        last_log = Some(std::time::Instant::now());
        tracing::warn!(
            shard = id,
            lag_ms = stall.lag_ms,
            cause = ?stall.cause,
            unlogged_since_last = unlogged,
            "shard event loop stalled: a timer ran {} ms late; {}",
            stall.lag_ms,
            stall.cause.explain()
        );
        unlogged = 0;
    });
}

/// Stalls at least this long are logged (the max-latency goal of issue #6 is 20 ms).
const STALL_LOG_MS: u64 = 20;

/// Shard 0's periodic work: persist offsets, groups and topics; drop silent clients.
async fn housekeeping(shard: Rc<BrokerShard>) {
    let period = Duration::from_millis(shard.settings.flush_offset_interval_ms.max(100));
    loop {
        glommio::timer::sleep(period).await;
        persist_control(&shard).await;
        if let Some(cp) = &shard.control {
            cp.borrow_mut().clients.expire(now_ms());
        }
    }
}

/// Persists the control-plane files now (on shard 0), as upstream does right after a topic
/// is created or changed, so a kill -9 right after does not lose it.
pub fn persist_soon(shard: &Rc<BrokerShard>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let posted = shard
            .mesh
            .post_to(0, |s| Box::pin(async move { persist_control(&s).await }))
            .await;
        if let Err(e) = posted {
            tracing::warn!("cannot persist the control plane: {e}");
        }
    })
    .detach();
}

async fn persist_control(shard: &Rc<BrokerShard>) {
    let Some(cp) = &shard.control else { return };
    let dir = shard.settings.config_dir.clone();
    let (offsets, groups, topics) = {
        let mut cp = cp.borrow_mut();
        let table = cp.topics.snapshot();
        // topics.json is rewritten only when the table changed since the last write.
        let topics = (table.data_version.counter != cp.topics_persisted_counter)
            .then(|| serde_json::to_value(&*table).ok())
            .flatten()
            .map(|v| crate::broker::persist::pretty_json(&v));
        if topics.is_some() {
            cp.topics_persisted_counter = table.data_version.counter;
        }
        (
            cp.offsets.take_dirty_json(),
            cp.groups.take_dirty_json(now_ms()),
            topics,
        )
    };
    // Every write is ordered now, at the snapshot (persist::write_off_shard), then awaited.
    let writes = [
        offsets.map(|json| write_off_shard(dir.join("consumerOffset.json"), json)),
        groups.map(|json| write_off_shard(dir.join("subscriptionGroup.json"), json)),
        topics.map(|json| write_off_shard(dir.join("topics.json"), json)),
    ];
    for w in writes.into_iter().flatten() {
        w.await;
    }
}

/// Stops a shard; true when its store shut down cleanly.
async fn stop_shard(shard: &Rc<BrokerShard>) -> bool {
    shard.stopping.set(true);
    if shard.id == 0 {
        register::unregister_all(shard).await;
        if let Some(cp) = &shard.control {
            // Force a final write of the offsets even if nothing changed since the last one.
            let json = cp.borrow().offsets.to_json();
            write_off_shard(shard.settings.config_dir.join("consumerOffset.json"), json).await;
        }
        persist_control(shard).await;
    }
    match shard.store.shutdown().await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(shard = shard.id, error = %e, "store shutdown failed");
            false
        }
    }
}
