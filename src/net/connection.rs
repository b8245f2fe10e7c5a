//! One remoting connection: reader task, writer task, pending-response table.
//! Runs entirely on the shard that owns the socket.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::{SinkExt, StreamExt};
use glommio::net::TcpStream;

use crate::constants::{
    CONN_MAX_IN_FLIGHT_REQUESTS, CONN_READ_BUFFER_BYTES, CONN_WRITE_BATCH_BYTES,
    CONN_WRITE_DIRECT_BODY_BYTES, CONN_WRITE_QUEUE_FRAMES, FRAME_HEADER_RESERVE_BYTES,
    FRAME_MAX_LEN,
};
use crate::remoting::{frame, RemotingCommand};

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Unique per process: shard id in the high 16 bits, a per-shard counter below.
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Serves requests that arrive on a connection. `None` = send nothing (oneway).
pub trait Handler: 'static {
    fn handle(
        self: Rc<Self>,
        request: RemotingCommand,
        conn: Rc<Connection>,
    ) -> impl Future<Output = Option<RemotingCommand>>;

    /// Called once when the connection is gone.
    fn closed(self: Rc<Self>, _conn: &Connection) {}
}

/// Why a request sent on a connection got no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connection to {0} is closed")]
    Closed(SocketAddr),
    #[error("cannot encode the command: {0}")]
    Encode(String),
    #[error("no response from {peer} within {timeout_ms} ms (request code {code})")]
    Timeout {
        peer: SocketAddr,
        timeout_ms: u64,
        code: i32,
    },
}

type Pending = RefCell<HashMap<i32, oneshot::Sender<RemotingCommand>>>;

/// One frame on its way to the writer: its length words and header, encoded, and its body
/// as the command held it (shared, not copied: a pull response's records are written from
/// the buffer the pull filled).
#[derive(Debug)]
struct OutFrame {
    head: Bytes,
    body: Bytes,
}

/// A live connection. Cheap to share (`Rc`); dropping the last handle does not close it,
/// the reader task does when the peer goes away.
pub struct Connection {
    info: ConnInfo,
    outbox: mpsc::Sender<OutFrame>,
    pending: Pending,
    next_opaque: Cell<i32>,
    closed: Cell<bool>,
    in_flight: Cell<usize>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .finish()
    }
}

impl Connection {
    /// Starts the reader and writer tasks for `stream` on the current shard.
    pub fn start<H: Handler>(stream: TcpStream, id: u64, handler: Option<Rc<H>>) -> Rc<Connection> {
        let _ = stream.set_nodelay(true);
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let info = ConnInfo {
            id,
            peer: stream.peer_addr().unwrap_or(unknown),
            local: stream.local_addr().unwrap_or(unknown),
        };
        let (reader, writer) = stream.split();
        let (outbox, queue) = mpsc::channel(CONN_WRITE_QUEUE_FRAMES);
        let conn = Rc::new(Connection {
            info,
            outbox,
            pending: RefCell::new(HashMap::new()),
            next_opaque: Cell::new(1),
            closed: Cell::new(false),
            in_flight: Cell::new(0),
        });
        glommio::spawn_local(write_loop(writer, queue, conn.info.peer)).detach();
        glommio::spawn_local(read_loop(reader, conn.clone(), handler)).detach();
        conn
    }

    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Queues an encoded command. Waits while the write queue is full (back-pressure).
    pub async fn send(&self, cmd: &RemotingCommand) -> Result<(), CallError> {
        let mut head = BytesMut::with_capacity(FRAME_HEADER_RESERVE_BYTES);
        if let Err(e) = frame::encode_header_only(cmd, cmd.body.len(), &mut head) {
            // Only a header over 16 MiB or a body over 2 GiB gets here: a bug, not input.
            tracing::error!(peer = %self.info.peer, code = cmd.code, error = %e, "cannot encode");
            return Err(CallError::Encode(e.to_string()));
        }
        if self.closed.get() {
            return Err(CallError::Closed(self.info.peer));
        }
        let frame = OutFrame {
            head: head.freeze(),
            body: cmd.body.clone(),
        };
        self.outbox
            .clone()
            .send(frame)
            .await
            .map_err(|_| CallError::Closed(self.info.peer))
    }

    /// Sends a request and waits for its response.
    pub async fn call(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, CallError> {
        let opaque = self.next_opaque.get();
        self.next_opaque.set(opaque.wrapping_add(1));
        request.opaque = opaque;
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(opaque, tx);
        let code = request.code;
        if let Err(e) = self.send(&request).await {
            self.pending.borrow_mut().remove(&opaque);
            return Err(e);
        }
        let peer = self.info.peer;
        let result = glommio::timer::timeout(timeout, async { Ok(rx.await) }).await;
        self.pending.borrow_mut().remove(&opaque);
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Closed(peer)),
            Err(_) => Err(CallError::Timeout {
                peer,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                code,
            }),
        }
    }

    /// Sends a oneway request (flag bit 1), no response expected.
    pub async fn call_oneway(&self, mut request: RemotingCommand) -> Result<(), CallError> {
        request.flag |= crate::remoting::command::FLAG_ONEWAY;
        request.opaque = self.next_opaque.get();
        self.next_opaque.set(request.opaque.wrapping_add(1));
        self.send(&request).await
    }

    fn mark_closed(&self) {
        self.closed.set(true);
        // Dropping the senders fails every waiting `call` at once.
        self.pending.borrow_mut().clear();
    }
}

/// Writes queued frames in order. Small frames are gathered into one buffer so one write
/// carries many responses; a body of [`CONN_WRITE_DIRECT_BODY_BYTES`] or more is written from
/// its own buffer right after what was gathered before it (no copy of a pull's records).
async fn write_loop(
    mut writer: WriteHalf<TcpStream>,
    mut queue: mpsc::Receiver<OutFrame>,
    peer: SocketAddr,
) {
    let mut batch = BytesMut::with_capacity(CONN_WRITE_BATCH_BYTES);
    'frames: while let Some(first) = queue.next().await {
        batch.clear();
        let mut next = Some(first);
        while let Some(f) = next.take() {
            batch.extend_from_slice(&f.head);
            if f.body.len() >= CONN_WRITE_DIRECT_BODY_BYTES {
                let mut failed = writer.write_all(&batch).await.err();
                if failed.is_none() {
                    failed = writer.write_all(&f.body).await.err();
                }
                if let Some(e) = failed {
                    tracing::debug!(%peer, error = %e, "write failed; closing connection");
                    break 'frames;
                }
                batch.clear();
            } else {
                batch.extend_from_slice(&f.body);
            }
            // Gather whatever else is ready.
            if batch.len() < CONN_WRITE_BATCH_BYTES {
                next = queue.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(e) = writer.write_all(&batch).await {
            tracing::debug!(%peer, error = %e, "write failed; closing connection");
            break;
        }
    }
    let _ = writer.close().await;
}

async fn read_loop<H: Handler>(
    mut reader: ReadHalf<TcpStream>,
    conn: Rc<Connection>,
    handler: Option<Rc<H>>,
) {
    let peer = conn.info.peer;
    let mut buf = BytesMut::with_capacity(CONN_READ_BUFFER_BYTES);
    let mut chunk = vec![0u8; CONN_READ_BUFFER_BYTES];
    'conn: loop {
        // Cut every whole frame already buffered.
        let mut dispatched = false;
        loop {
            match frame::check(&buf, FRAME_MAX_LEN) {
                Ok(Some(len)) => {
                    let bytes = buf.split_to(len).freeze();
                    if !dispatch(bytes, &conn, handler.as_ref()) {
                        break 'conn;
                    }
                    dispatched = true;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing connection");
                    break 'conn;
                }
            }
        }
        // glommio's read first tries a non-blocking recv, and after one that filled the
        // buffer it tries the same way again: no await point is reached while the socket
        // holds another 64 KiB. A client that sends faster than the shard serves would keep
        // this loop running and starve every other task of the shard: the flusher (no batch
        // written, no send answered, the batches pile up in memory) and the other connections
        // (ARCHITECTURE 44). One read's worth of requests per turn bounds the stretch.
        if dispatched {
            futures_lite::future::yield_now().await;
        }
        match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "read failed; closing connection");
                break;
            }
        }
    }
    conn.mark_closed();
    conn.outbox.clone().close_channel();
    if let Some(h) = handler {
        h.closed(&conn);
    }
}

/// Routes one whole frame. Returns false when the connection must close.
fn dispatch<H: Handler>(bytes: Bytes, conn: &Rc<Connection>, handler: Option<&Rc<H>>) -> bool {
    let peer = conn.info.peer;
    let cmd = match frame::decode_bytes(bytes) {
        Ok(cmd) => cmd,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "undecodable frame; closing connection");
            return false;
        }
    };
    if cmd.is_response() {
        if let Some(tx) = conn.pending.borrow_mut().remove(&cmd.opaque) {
            let _ = tx.send(cmd);
        }
        return true;
    }
    let Some(handler) = handler else {
        return true;
    };
    if conn.in_flight.get() >= CONN_MAX_IN_FLIGHT_REQUESTS {
        tracing::warn!(%peer, "too many requests in flight on one connection; closing it");
        return false;
    }
    conn.in_flight.set(conn.in_flight.get() + 1);
    let conn = conn.clone();
    let handler = handler.clone();
    glommio::spawn_local(async move {
        let oneway = cmd.is_oneway();
        let response = handler.handle(cmd, conn.clone()).await;
        conn.in_flight.set(conn.in_flight.get().saturating_sub(1));
        if let (Some(resp), false) = (response, oneway) {
            let _ = conn.send(&resp).await;
        }
    })
    .detach();
    true
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

    use super::*;

    /// Counts the requests it is handed; answers none.
    struct Count(Rc<Cell<usize>>);

    impl Handler for Count {
        async fn handle(
            self: Rc<Self>,
            _r: RemotingCommand,
            _c: Rc<Connection>,
        ) -> Option<RemotingCommand> {
            self.0.set(self.0.get() + 1);
            None
        }
    }

    /// A socket whose data is all there when the read loop starts is read in full 64 KiB
    /// reads that complete at once (no await point is reached). The read loop must still give
    /// the shard back between reads (ARCHITECTURE 44): a task spawned beside it has to run
    /// while requests remain unread. Before the fix it first ran once all were served.
    #[test]
    fn the_read_loop_yields_between_reads_of_a_socket_that_has_data() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Room for the stream in the receiving socket (accepted sockets inherit it; the
        // kernel caps it at `net.core.rmem_max`, 208 KiB by default, 4 MiB here).
        socket2::SockRef::from(&listener)
            .set_recv_buffer_size(8 << 20)
            .unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Up to ~2.6 MiB of small requests (40 reads), within a quarter of what the socket
        // takes (the rest is its bookkeeping); more than one read's worth is enough to tell.
        let room = socket2::SockRef::from(&server).recv_buffer_size().unwrap() / 4;
        let mut wire = BytesMut::new();
        let mut frames = 0;
        while frames < 10_000 {
            let mut r = RemotingCommand::request(310, 0)
                .with_field("topic", "Fairness")
                .with_body(vec![b'x'; 128]);
            r.opaque = frames as i32;
            let mut one = BytesMut::new();
            frame::encode(&r, &mut one).unwrap();
            if wire.len() + one.len() > room {
                break;
            }
            wire.extend_from_slice(&one);
            frames += 1;
        }
        assert!(
            wire.len() > CONN_READ_BUFFER_BYTES,
            "the socket takes only {room} bytes"
        );
        let total = wire.len();
        let writer = std::thread::spawn(move || {
            client.write_all(&wire).unwrap();
            client
        });
        // Wait until the whole stream sits in the server's receive queue.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int through the pointer, which is valid.
            let rc = unsafe { libc::ioctl(server.as_raw_fd(), libc::FIONREAD, &mut queued) };
            assert_eq!(rc, 0, "FIONREAD");
            if usize::try_from(queued).unwrap() >= total {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{queued} of {total} bytes queued"
            );
            #[allow(clippy::disallowed_methods)] // reason: the test's thread, not a shard
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _client = writer.join().unwrap();
        let fd = server.into_raw_fd();

        let seen = crate::store::test_util::run(move || async move {
            // SAFETY: `fd` is a connected TCP socket this test owns and hands over.
            let stream = unsafe { TcpStream::from_raw_fd(fd) };
            let served = Rc::new(Cell::new(0));
            let seen = Rc::new(RefCell::new(Vec::new()));
            let probe = {
                let (served, seen) = (served.clone(), seen.clone());
                glommio::spawn_local(async move {
                    while served.get() < frames {
                        seen.borrow_mut().push(served.get());
                        futures_lite::future::yield_now().await;
                    }
                })
            };
            let _conn = Connection::start(stream, 1, Some(Rc::new(Count(served.clone()))));
            probe.await;
            let seen = seen.borrow().clone();
            seen
        });
        let between = seen.iter().filter(|&&n| n > 0 && n < frames).count();
        assert!(
            between > 0,
            "a task beside the read loop never ran while requests were left: it saw {:?}",
            seen
        );
    }
}
