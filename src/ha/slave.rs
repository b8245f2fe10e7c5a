//! Slave side of replication: one task per shard keeps the connection to the same master
//! shard, appends what arrives at the same local offsets and reports its written end. See
//! the module doc of `ha` for the protocol.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use futures::StreamExt;
use glommio::net::TcpStream;

use super::epochs::{self, Epochs, Verdict};
use super::{
    decode_answer, decode_transfer_header, io_err, HaError, Handshake, ANSWER_LEN,
    PROTOCOL_VERSION, RECONNECT_INTERVAL, STATUS_OK, STATUS_SHARD_COUNT, TRANSFER_HEADER_LEN,
};
use crate::broker::BrokerShard;
use crate::store::replica::AppendAck;

/// How often a slave shard that knows no master address yet looks again.
const ADDRESS_POLL: Duration = Duration::from_millis(20);

/// Replicates this shard from the master forever (slaves only).
pub async fn run_replication(shard: Rc<BrokerShard>) {
    let mut last_error = String::new();
    loop {
        if shard.stopping.get() {
            return;
        }
        let addr = shard
            .settings
            .ha
            .master_address
            .clone()
            .or_else(|| shard.ha.master.borrow().ha.clone());
        let Some(addr) = addr else {
            // Shard 0 learns the address from its first registration and posts it here: look
            // again soon, so a starting slave's shards do not wait a whole reconnect interval
            // (SYNC_MASTER sends to a shard without its slave answer SLAVE_NOT_AVAILABLE).
            glommio::timer::sleep(ADDRESS_POLL).await;
            continue;
        };
        match replicate_once(&shard, &addr).await {
            Ok(()) => {}
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!(shard = shard.id, master = %addr, "replication: {msg}");
                    last_error = msg;
                }
            }
        }
        shard.ha.connected.set(false);
        glommio::timer::sleep(RECONNECT_INTERVAL).await;
    }
}

async fn replicate_once(shard: &Rc<BrokerShard>, addr: &str) -> Result<(), HaError> {
    let sock: SocketAddr = addr.parse().map_err(|e| HaError::Protocol {
        peer: addr.to_string(),
        reason: format!("bad HA address: {e}"),
    })?;
    let mut stream = TcpStream::connect_timeout(sock, Duration::from_secs(3))
        .await
        .map_err(|e| HaError::Io {
            what: "connect to",
            peer: addr.to_string(),
            source: e.into(),
        })?;
    let _ = stream.set_nodelay(true);
    let count = u16::try_from(shard.mesh.shard_count()).unwrap_or(u16::MAX);
    let hs = Handshake {
        version: PROTOCOL_VERSION,
        shard: u16::try_from(shard.id).unwrap_or(u16::MAX),
        shard_count: count,
        broker_id: u32::try_from(shard.settings.broker_id).unwrap_or(u32::MAX),
    };
    stream
        .write_all(&hs.encode())
        .await
        .map_err(io_err("write handshake to", addr))?;
    let mut ans = [0u8; ANSWER_LEN];
    stream
        .read_exact(&mut ans)
        .await
        .map_err(io_err("read answer from", addr))?;
    let (status, master_count) = decode_answer(&ans).map_err(|reason| HaError::Protocol {
        peer: addr.to_string(),
        reason,
    })?;
    if status == STATUS_SHARD_COUNT {
        adopt_shard_count(shard, master_count).await;
        return Err(HaError::Protocol {
            peer: addr.to_string(),
            reason: format!(
                "the master has {master_count} shards, this slave {count}: a slave keeps one \
                 commit log per master shard; start this slave on an empty store (it then \
                 adopts the master's count) or with shardCount={master_count}"
            ),
        });
    }
    if status != STATUS_OK {
        return Err(HaError::Protocol {
            peer: addr.to_string(),
            reason: format!("master refused the handshake (status {status})"),
        });
    }
    let store = shard.store.clone();
    let start = store.write_end();
    let master_history = read_history(&mut stream, addr).await?;
    agree_with_master(shard, addr, start, master_history).await?;
    stream
        .write_all(&start.to_be_bytes())
        .await
        .map_err(io_err("write first report to", addr))?;
    tracing::info!(shard = shard.id, master = %addr, from = start, "replicating from the master");
    shard.ha.connected.set(true);
    let (rd, mut wr) = stream.split();
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    let (ack_tx, mut ack_rx) = mpsc::unbounded::<(u64, AppendAck)>();
    let failed = Rc::new(Cell::new(false));
    // Reporter: the written end after each append, and every heartbeat interval.
    let reporter = {
        let heartbeat = shard.settings.ha.heartbeat_interval;
        let failed = failed.clone();
        let peer = addr.to_string();
        glommio::spawn_local(async move {
            let mut reported = start;
            let mut pending: Option<(u64, AppendAck)> = None;
            loop {
                let next = match pending.take() {
                    Some(p) => Some(p),
                    None => glommio::timer::timeout(heartbeat, async { Ok(ack_rx.next().await) })
                        .await
                        .unwrap_or(Some((reported, ready_ack()))),
                };
                let Some((mut end, ack)) = next else { break };
                if !matches!(ack.await, Ok(Ok(()))) {
                    failed.set(true);
                    break;
                }
                // Coalesce what is already written behind it.
                while let Ok((e, mut a)) = ack_rx.try_recv() {
                    match a.try_recv() {
                        Ok(Some(Ok(()))) => end = e,
                        Ok(None) => {
                            pending = Some((e, a));
                            break;
                        }
                        _ => {
                            failed.set(true);
                            break;
                        }
                    }
                }
                if failed.get() {
                    break;
                }
                reported = reported.max(end);
                if wr.write_all(&reported.to_be_bytes()).await.is_err() {
                    tracing::info!(master = %peer, "cannot report to the master");
                    break;
                }
            }
            failed.set(true);
            let _ = wr.close().await;
        })
    };
    let result: Result<(), HaError> = async {
        let mut header = [0u8; TRANSFER_HEADER_LEN];
        loop {
            if failed.get() || shard.stopping.get() {
                return Err(HaError::Protocol {
                    peer: addr.to_string(),
                    reason: "replication stopped (append failed, report failed or stopping)".into(),
                });
            }
            let hk = shard.settings.ha.housekeeping_interval;
            glommio::timer::timeout(hk, async {
                rd.read_exact(&mut header)
                    .await
                    .map_err(glommio::GlommioError::from)
            })
            .await
            .map_err(|e| HaError::Io {
                what: "read transfer from",
                peer: addr.to_string(),
                source: e.into(),
            })?;
            let (offset, size) = decode_transfer_header(&header);
            let here = store.write_end();
            if offset != here {
                return Err(HaError::Protocol {
                    peer: addr.to_string(),
                    reason: format!(
                        "transfer at {offset} but this slave's shard {} ends at {here}",
                        shard.id
                    ),
                });
            }
            if size == 0 {
                continue;
            }
            if size > 64 << 20 {
                return Err(HaError::Protocol {
                    peer: addr.to_string(),
                    reason: format!("transfer of {size} bytes is too large"),
                });
            }
            let mut data = vec![0u8; size as usize];
            rd.read_exact(&mut data)
                .await
                .map_err(io_err("read transfer data from", addr))?;
            let ack = store.replica_append(offset, Bytes::from(data)).await?;
            let _ = ack_tx.unbounded_send((offset + u64::from(size), ack));
            // Neither the reads of a socket that has data nor the append reach an await point,
            // so a catch-up stream would keep this loop running: nothing written, nothing
            // reported, no client of this shard served (ARCHITECTURE 44).
            futures_lite::future::yield_now().await;
        }
    }
    .await;
    drop(ack_tx);
    drop(rd);
    reporter.await;
    result
}

/// The master's epoch history, after an OK answer.
async fn read_history(stream: &mut TcpStream, addr: &str) -> Result<Epochs, HaError> {
    let bad = |reason: String| HaError::Protocol {
        peer: addr.to_string(),
        reason,
    };
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .await
        .map_err(io_err("read epoch history from", addr))?;
    let (lineage, n) = Epochs::decode_header(&head).map_err(bad)?;
    let mut entries = vec![0u8; 16 * n];
    stream
        .read_exact(&mut entries)
        .await
        .map_err(io_err("read epoch history from", addr))?;
    Epochs::decode_entries(lineage, &entries).map_err(bad)
}

/// Compares the master's history with this shard's log (ending at `end`): keeps going when
/// every byte here is the master's (adopting its history, persisted before the first append);
/// when they part, persists the cut and restarts the process (recovery cuts the log there:
/// a live store is not cut under its readers); another lineage is refused.
async fn agree_with_master(
    shard: &Rc<BrokerShard>,
    addr: &str,
    end: u64,
    master: Epochs,
) -> Result<(), HaError> {
    let verdict = epochs::reconcile(shard.ha.epochs.borrow().as_ref(), end, &master);
    let dir = shard.store.shard_dir.clone();
    match verdict {
        Verdict::Agree => {
            if shard.ha.epochs.borrow().as_ref() != Some(&master) {
                let path = epochs::epochs_path(&dir);
                persist(
                    path,
                    master.render(),
                    "persist the master's epoch history in",
                )
                .await?;
                *shard.ha.epochs.borrow_mut() = Some(master);
            }
            Ok(())
        }
        Verdict::Foreign(reason) => Err(HaError::Protocol {
            peer: addr.to_string(),
            reason,
        }),
        Verdict::Cut(at) => {
            persist(
                epochs::cut_path(&dir),
                format!("{at}\n"),
                "persist the cut marker",
            )
            .await?;
            tracing::warn!(shard = shard.id, master = %addr, cut_at = at, slave_end = end,
                "this slave holds bytes the master no longer has (the master lost its log's \
                 tail and restarted): restarting to cut this shard's log back to where both agree");
            restart_process();
            Err(HaError::Protocol {
                peer: addr.to_string(),
                reason: format!("must cut this shard's log back to {at} but cannot restart"),
            })
        }
    }
}

/// Writes a small state file durably off the shard; an error names the file.
async fn persist(
    path: std::path::PathBuf,
    content: String,
    what: &'static str,
) -> Result<(), HaError> {
    let shown = path.display().to_string();
    epochs::write_durably_off_shard(path, content.into_bytes())
        .await
        .map_err(|source| HaError::Io {
            what,
            peer: shown,
            source,
        })
}

fn ready_ack() -> AppendAck {
    let (tx, rx) = futures::channel::oneshot::channel();
    let _ = tx.send(Ok(()));
    rx
}

/// The master has another shard count. An empty store adopts it (persisted) and the process
/// restarts itself with the same command line; a store with data keeps its count.
async fn adopt_shard_count(shard: &Rc<BrokerShard>, master_count: u16) {
    if shard.id != 0 || master_count == 0 {
        return;
    }
    let mut empty = true;
    for target in 0..shard.mesh.shard_count() {
        let end = shard
            .on_shard(target, |s| Box::pin(async move { s.store.write_end() }))
            .await
            .unwrap_or(1);
        empty &= end == 0;
    }
    if !empty {
        return;
    }
    let path = shard.settings.config_dir.join("shardmq.json");
    let content = serde_json::json!({ "shardCount": master_count }).to_string();
    if let Err(e) = crate::broker::persist::write_with_backup(&path, &content) {
        tracing::error!(file = %path.display(), "cannot persist the master's shard count: {e}");
        return;
    }
    tracing::warn!(
        master_count,
        "this slave's store is empty: adopting the master's shard count and restarting"
    );
    let _ = crate::store::remove_abort(&shard.settings.abort_path);
    restart_process();
}

fn restart_process() {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!("cannot restart: {err}");
}
