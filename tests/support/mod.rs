//! Test support for the process-level tests (golden replay, frame robustness, nameserver
//! pair): spawns `mqnamesrv` / `mqbroker` on free loopback ports with their own temp dir under
//! `target/test-tmp/` (HOME points there too), kills them on drop, and offers a tiny
//! synchronous remoting client over `std::net::TcpStream` built on the crate's codec.

// reason: test helpers panic on setup failures by design; they run on plain threads (no
// shard to block), so sleeping while polling is fine; each test binary uses a subset.
#![allow(clippy::unwrap_used, clippy::disallowed_methods, dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shardmq::remoting::{frame, RemotingCommand};

pub const NAMESRV_BIN: &str = env!("CARGO_BIN_EXE_mqnamesrv");
pub const BROKER_BIN: &str = env!("CARGO_BIN_EXE_mqbroker");

/// Largest frame the client accepts (the servers' own limit is 16 MiB).
const CLIENT_FRAME_MAX: usize = 64 << 20;

/// A fresh, empty directory `target/test-tmp/<name>-<pid>-<n>`.
pub fn test_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tmp")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bind_free() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    bind_free().local_addr().unwrap().port()
}

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_broker_port;
#[path = "../topic/mod.rs"]
mod topic;
// reason: only some test crates create topics this way.
#[allow(unused_imports)]
pub use topic::create_topic_fields;

/// A spawned server process; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `bin args…` with HOME = `dir`, stdout+stderr appended to `dir/<name>.log`.
    pub fn spawn(name: &str, bin: &str, args: &[&str], dir: &Path) -> Proc {
        Self::spawn_env(name, bin, args, dir, &[])
    }

    /// `spawn` with extra environment variables (e.g. `SHARDMQ_FAULTS`).
    pub fn spawn_env(
        name: &str,
        bin: &str,
        args: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .env("HOME", dir)
            .env("ROCKETMQ_HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// SIGTERM (what `mqshutdown` sends), then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not stop within {timeout:?}: {}",
                self.name,
                self.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` lines of the process log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Panics (with the log tail) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}; log tail:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }
}

impl Drop for Proc {
    /// Kills the process; its directory is removed unless the test is failing (then it is
    /// kept, with the log, for a look).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls until `127.0.0.1:port` accepts connections (or panics after `timeout`).
pub fn wait_port(proc_: &mut Proc, port: u16, timeout: Duration) {
    let end = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        proc_.assert_alive();
        assert!(
            Instant::now() < end,
            "{} did not listen on {port} within {timeout:?}; log tail:\n{}",
            proc_.name,
            proc_.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running nameserver.
pub struct Namesrv {
    pub proc_: Proc,
    pub port: u16,
}

impl Namesrv {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts `mqnamesrv -c <dir>/namesrv.properties` on a free port and waits for it.
pub fn start_namesrv(name: &str) -> Namesrv {
    let dir = test_dir(name);
    let port = free_port();
    let conf = dir.join("namesrv.properties");
    std::fs::write(&conf, format!("listenPort={port}\n")).unwrap();
    let mut proc_ = Proc::spawn(
        "mqnamesrv",
        NAMESRV_BIN,
        &["-c", conf.to_str().unwrap()],
        &dir,
    );
    wait_port(&mut proc_, port, Duration::from_secs(10));
    Namesrv { proc_, port }
}

/// A running broker.
pub struct Broker {
    pub proc_: Proc,
    pub port: u16,
    pub conf: PathBuf,
}

impl Broker {
    pub fn vip_port(&self) -> u16 {
        self.port - 2
    }
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The broker properties used by the tests (upstream keys), plus `extra` lines.
/// The disk guard is off (`diskSpace…Ratio=100`): the machines running the tests share a disk
/// that is often over upstream's 90 % refusal ratio; `tests/store_disk_full.rs` tests it on a
/// filesystem of its own.
pub fn broker_properties(dir: &Path, port: u16, namesrv_addr: &str, extra: &str) -> String {
    format!(
        "brokerClusterName=DefaultCluster\n\
         brokerName=broker-a\n\
         brokerId=0\n\
         brokerRole=ASYNC_MASTER\n\
         flushDiskType=ASYNC_FLUSH\n\
         listenPort={port}\n\
         brokerIP1=127.0.0.1\n\
         storePathRootDir={root}\n\
         storePathCommitLog={root}/commitlog\n\
         mapedFileSizeCommitLog=67108864\n\
         namesrvAddr={namesrv_addr}\n\
         autoCreateTopicEnable=true\n\
         diskSpaceWarningLevelRatio=100\n\
         diskSpaceCleanForciblyRatio=100\n\
         {extra}",
        root = dir.join("store").display(),
    )
}

/// Starts `mqbroker -c <dir>/broker.properties` (ports p, p-2, p+1) and waits until both
/// client ports accept connections.
pub fn start_broker(name: &str, namesrv_addr: &str, extra: &str) -> Broker {
    start_broker_env(name, namesrv_addr, extra, &[])
}

/// `start_broker` with extra environment variables for the broker process.
pub fn start_broker_env(
    name: &str,
    namesrv_addr: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Broker {
    let dir = test_dir(name);
    let port = free_broker_port();
    let conf = dir.join("broker.properties");
    std::fs::write(&conf, broker_properties(&dir, port, namesrv_addr, extra)).unwrap();
    let mut proc_ = Proc::spawn_env(
        "mqbroker",
        BROKER_BIN,
        &["-c", conf.to_str().unwrap()],
        &dir,
        env,
    );
    wait_port(&mut proc_, port, Duration::from_secs(20));
    wait_port(&mut proc_, port - 2, Duration::from_secs(5));
    Broker { proc_, port, conf }
}

/// Encodes one command as a whole frame.
pub fn encode(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::encode(cmd, &mut out).unwrap();
    out.to_vec()
}

/// Reads one whole frame from `s` (length word included); `Ok(None)` on a clean EOF
/// before the first byte.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = s.read(&mut head[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "EOF inside a length word",
            ));
        }
        got += n;
    }
    let l = u32::from_be_bytes(head) as usize;
    if 4 + l > CLIENT_FRAME_MAX {
        return Err(std::io::Error::other(format!("frame length {l} too large")));
    }
    let mut buf = vec![0u8; 4 + l];
    buf[..4].copy_from_slice(&head);
    s.read_exact(&mut buf[4..])?;
    match frame::check(&buf, CLIENT_FRAME_MAX) {
        Ok(Some(n)) if n == buf.len() => Ok(Some(buf)),
        other => Err(std::io::Error::other(format!(
            "bad frame from server: {other:?}"
        ))),
    }
}

/// A synchronous remoting client.
pub struct Client {
    pub stream: TcpStream,
    next_opaque: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            next_opaque: 1,
        }
    }

    pub fn opaque(&mut self) -> i32 {
        self.next_opaque += 1;
        self.next_opaque
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, cmd: &RemotingCommand) {
        self.stream.write_all(&encode(cmd)).unwrap();
    }

    /// Next frame from the server, decoded; panics on timeout/EOF/garbage.
    pub fn recv(&mut self) -> RemotingCommand {
        let f = read_frame(&mut self.stream)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
            .unwrap_or_else(|| panic!("server closed the connection instead of answering"));
        frame::decode(&f).unwrap_or_else(|e| panic!("response does not decode: {e}"))
    }

    /// Sends `cmd` (opaque assigned) and returns the response with the same opaque,
    /// skipping server-initiated requests.
    pub fn call(&mut self, mut cmd: RemotingCommand) -> RemotingCommand {
        cmd.opaque = self.opaque();
        self.send(&cmd);
        loop {
            let r = self.recv();
            if r.is_response() && r.opaque == cmd.opaque {
                return r;
            }
        }
    }

    /// True when the server closes the connection within `timeout` (EOF or reset),
    /// false when it stays open; frames received meanwhile are skipped.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// A connection whose incoming frames are read by a thread and delivered on a channel,
/// so several requests can be outstanding (long polls) while others are sent.
pub struct AsyncConn {
    pub stream: TcpStream,
    pub rx: mpsc::Receiver<Result<RemotingCommand, String>>,
}

impl AsyncConn {
    pub fn connect(port: u16) -> AsyncConn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        stream.set_nodelay(true).unwrap();
        let mut rd = stream.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || loop {
            match read_frame(&mut rd) {
                Ok(Some(f)) => {
                    let msg = frame::decode(&f).map_err(|e| format!("undecodable frame: {e}"));
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(format!("read error: {e}")));
                    return;
                }
            }
        });
        AsyncConn { stream, rx }
    }

    pub fn send(&mut self, cmd: &RemotingCommand) {
        self.stream.write_all(&encode(cmd)).unwrap();
    }

    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or gives up after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET_ROUTEINFO_BY_TOPIC (105) request for `topic` with the given header version.
pub fn route_request(topic: &str, version: i32) -> RemotingCommand {
    let mut r = RemotingCommand::request(105, 0).with_field("topic", topic);
    r.version = version;
    r
}

/// Polls the nameserver on `ns_port` until it returns a route (code 0) for `topic`.
pub fn wait_route(ns_port: u16, topic: &str, timeout: Duration) -> Option<RemotingCommand> {
    let mut c = Client::connect(ns_port);
    poll(timeout, || {
        let r = c.call(route_request(topic, 275));
        (r.code == 0).then_some(r)
    })
}

/// PULL_MESSAGE for queue 0 of `topic`, up to 32 records from `offset`: the subscription (`*`)
/// travels with the request, no suspension, no offset commit.
pub fn pull_request(group: &str, topic: &str, offset: u64) -> RemotingCommand {
    RemotingCommand::request(11, 0)
        .with_field("consumerGroup", group)
        .with_field("topic", topic)
        .with_field("queueId", "0")
        .with_field("queueOffset", offset.to_string())
        .with_field("maxMsgNums", "32")
        .with_field("sysFlag", "4") // FLAG_SUBSCRIPTION only
        .with_field("commitOffset", "0")
        .with_field("suspendTimeoutMillis", "0")
        .with_field("subscription", "*")
        .with_field("subVersion", "0")
        .with_field("expressionType", "TAG")
}

/// The bodies of the records a pull response carries, in order (each record checked whole).
pub fn record_bodies(mut body: &[u8]) -> Vec<Vec<u8>> {
    use shardmq::store::record::{self, Decoded};
    let mut out = Vec::new();
    while !body.is_empty() {
        match record::check(body).unwrap() {
            Decoded::Record(r) => {
                out.push(r.body.to_vec());
                body = &body[r.total_size as usize..];
            }
            other => panic!("pull body holds {other:?}, not a record"),
        }
    }
    out
}

/// SEND_MESSAGE_V2 (310) of `body` to `topic`/`queue_id` from producer group `PG`, with
/// `properties` (`\u{1}` between name and value, `\u{2}` between pairs) and a topic created on
/// first use with 4 queues.
pub fn send_request(
    topic: &str,
    queue_id: i32,
    properties: &str,
    body: Vec<u8>,
) -> RemotingCommand {
    RemotingCommand::request(310, 0)
        .with_field("a", "PG")
        .with_field("b", topic)
        .with_field("c", "TBW102")
        .with_field("d", "4")
        .with_field("e", queue_id.to_string())
        .with_field("f", "0")
        .with_field("g", "1700000000000")
        .with_field("h", "0")
        .with_field("i", properties)
        .with_body(body)
}
