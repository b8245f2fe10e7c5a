//! Master side of replication: the HA port accept loop (handshake, hand-over of the socket to
//! the shard the slave asked for) and one shipper per connected slave shard. See the module
//! doc of `ha` for the protocol.

use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::{
    encode_answer, encode_transfer_header, io_err, HaError, Handshake, HANDSHAKE_LEN,
    STATUS_BAD_REQUEST, STATUS_OK, STATUS_SHARD_COUNT,
};
use crate::broker::BrokerShard;
use crate::constants::HA_CATCH_UP_READ_BYTES;

/// Accepts slave connections on this shard's HA listener forever.
pub async fn serve_ha_port(shard: Rc<BrokerShard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    if let Err(e) = accept_one(&shard, stream).await {
                        tracing::warn!(shard = shard.id, "HA connection refused: {e}");
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "HA accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the handshake and serves the connection here or on the shard it names.
async fn accept_one(shard: &Rc<BrokerShard>, mut stream: TcpStream) -> Result<(), HaError> {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let mut hs = [0u8; HANDSHAKE_LEN];
    glommio::timer::timeout(Duration::from_secs(10), async {
        stream
            .read_exact(&mut hs)
            .await
            .map_err(glommio::GlommioError::from)
    })
    .await
    .map_err(|e| HaError::Io {
        what: "read handshake from",
        peer: peer.clone(),
        source: e.into(),
    })?;
    let count = u16::try_from(shard.mesh.shard_count()).unwrap_or(u16::MAX);
    let h = match Handshake::decode(&hs) {
        Ok(h) => h,
        Err(reason) => {
            let _ = stream
                .write_all(&encode_answer(STATUS_BAD_REQUEST, count))
                .await;
            return Err(HaError::Protocol { peer, reason });
        }
    };
    if h.shard_count != count || h.shard >= count {
        let _ = stream
            .write_all(&encode_answer(STATUS_SHARD_COUNT, count))
            .await;
        return Err(HaError::Protocol {
            peer,
            reason: format!(
                "slave (brokerId {}) has {} shards, this master {count}",
                h.broker_id, h.shard_count
            ),
        });
    }
    let target = usize::from(h.shard);
    if target == shard.id {
        return serve_slave(shard.clone(), stream, peer, h).await;
    }
    // Hand the socket to its shard: a duplicate descriptor travels, this one is closed.
    // SAFETY: `dup` of a descriptor we own; the result is owned by the receiving shard.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(HaError::Io {
            what: "dup socket of",
            peer,
            source: std::io::Error::last_os_error(),
        });
    }
    drop(stream);
    let posted = shard
        .mesh
        .post_to(target, move |s| {
            Box::pin(async move {
                // SAFETY: `fd` is a connected TCP socket duplicated for us and owned by no one
                // else.
                let stream = unsafe { TcpStream::from_raw_fd(fd) };
                if let Err(e) = serve_slave(s.clone(), stream, peer, h).await {
                    tracing::warn!(shard = s.id, "HA connection ended: {e}");
                }
            })
        })
        .await;
    if let Err(e) = posted {
        tracing::warn!("cannot hand the HA connection to shard {target}: {e}");
    }
    Ok(())
}

/// Ships this shard's commit log to one slave shard until either side ends.
async fn serve_slave(
    shard: Rc<BrokerShard>,
    mut stream: TcpStream,
    peer: String,
    h: Handshake,
) -> Result<(), HaError> {
    // Transfers are small and follow each other while the slave's reports are in flight:
    // with Nagle's algorithm each one waited for the previous one's ACK (a slave round trip).
    let _ = stream.set_nodelay(true);
    let count = u16::try_from(shard.mesh.shard_count()).unwrap_or(u16::MAX);
    let mut answer = encode_answer(STATUS_OK, count).to_vec();
    if h.version >= 2 {
        // Set at start, before the HA port is served (`epochs::open_history`).
        let Some(history) = shard.ha.epochs.borrow().as_ref().map(|e| e.encode()) else {
            return Err(HaError::Protocol {
                peer,
                reason: "this master has no epoch history (not started as a master)".into(),
            });
        };
        answer.extend_from_slice(&history);
    }
    stream
        .write_all(&answer)
        .await
        .map_err(io_err("write answer to", &peer))?;
    let mut first = [0u8; 8];
    stream
        .read_exact(&mut first)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => HaError::Protocol {
                peer: peer.clone(),
                reason: "the slave closed the connection before its first report (it does \
                         when its log and this master's differ: it restarts to cut its copy \
                         back, or refuses a master of another lineage; its log says which)"
                    .into(),
            },
            _ => io_err("read first report from", &peer)(e),
        })?;
    let request = u64::from_be_bytes(first);
    let store = shard.store.clone();
    if request > store.ship_end() {
        return Err(HaError::Protocol {
            peer,
            reason: format!(
                "slave shard {} has data up to {request}, beyond this master's {}",
                h.shard,
                store.ship_end()
            ),
        });
    }
    tracing::info!(shard = shard.id, slave = %peer, broker_id = h.broker_id, from = request,
        "slave connected for replication");
    let ha = shard.ha.clone();
    let conn = ha.add_slave(request);
    let fd = stream.as_raw_fd();
    let (mut rd, mut wr) = stream.split();
    let settings = shard.settings.ha.clone();
    let closed = Rc::new(std::cell::Cell::new(false));
    // Reader: offset reports (the last complete 8-byte value of what arrived counts).
    let reader = {
        let (ha, closed, peer) = (ha.clone(), closed.clone(), peer.clone());
        let housekeeping = settings.housekeeping_interval;
        let store = store.clone();
        glommio::spawn_local(async move {
            let mut buf = [0u8; 8];
            loop {
                let got = glommio::timer::timeout(housekeeping, async {
                    rd.read_exact(&mut buf)
                        .await
                        .map_err(glommio::GlommioError::from)
                })
                .await;
                if let Err(e) = got {
                    tracing::info!(slave = %peer, "replication connection closed: {e}");
                    break;
                }
                let ack = u64::from_be_bytes(buf);
                if ack > store.ship_end() {
                    tracing::warn!(slave = %peer, ack, end = store.ship_end(),
                        "slave reported an offset beyond this master's data; closing");
                    break;
                }
                ha.on_ack(conn, ack);
            }
            closed.set(true);
            ha.end_moved.wake();
        })
    };
    let mut next = request;
    let mut last_write = std::time::Instant::now();
    // Bytes read from the file ahead of the transfers (catch-up), and where they start.
    let mut ahead = (0u64, Bytes::new());
    let batch = settings.transfer_batch_size as usize;
    let result: Result<(), HaError> = async {
        while !closed.get() {
            let seen = ha.end_moved.generation();
            let (at, buf) = &ahead;
            let data = if next >= *at && next < *at + buf.len() as u64 {
                let off = (next - at) as usize;
                Some(buf.slice(off..buf.len().min(off + batch)))
            } else {
                let read = store
                    .replica_read(next, settings.transfer_batch_size, HA_CATCH_UP_READ_BYTES)
                    .await?;
                read.map(|b| {
                    let first = b.slice(..b.len().min(batch));
                    if b.len() > batch {
                        ahead = (next, b);
                    }
                    first
                })
            };
            match data {
                Some(data) => {
                    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    let mut frame = Vec::with_capacity(12 + data.len());
                    frame.extend_from_slice(&encode_transfer_header(next, len));
                    frame.extend_from_slice(&data);
                    wr.write_all(&frame)
                        .await
                        .map_err(io_err("write transfer to", &peer))?;
                    next += u64::from(len);
                    last_write = std::time::Instant::now();
                    // A read from the cache and a write the socket takes at once reach no
                    // await point: give the shard back between transfers (ARCHITECTURE 44).
                    futures_lite::future::yield_now().await;
                }
                None => {
                    let idle = settings
                        .heartbeat_interval
                        .saturating_sub(last_write.elapsed());
                    if idle.is_zero() {
                        wr.write_all(&encode_transfer_header(next, 0))
                            .await
                            .map_err(io_err("write heartbeat to", &peer))?;
                        last_write = std::time::Instant::now();
                        continue;
                    }
                    let _ = glommio::timer::timeout(idle, async {
                        ha.end_moved.changed(seen).await;
                        Ok(())
                    })
                    .await;
                }
            }
        }
        Ok(())
    }
    .await;
    ha.remove_slave(conn);
    // Unblock the reader (it holds the other half of the socket).
    // SAFETY: `fd` is still open (the read half owns it until the reader ends).
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
    reader.await;
    tracing::info!(shard = shard.id, slave = %peer, "slave disconnected");
    result
}
