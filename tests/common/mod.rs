//! Test harness for end-to-end tests with real RocketMQ clients: owns free-port selection, the
//! temp directories, spawning/killing/restarting `mqnamesrv` and `mqbroker`, a minimal remoting
//! client (JSON header) for readiness checks and topic creation, and running the Python / Node
//! client programs of `tests/clients/` with a timeout.
//!
//! Everything here runs on plain test threads (never on a glommio shard), so blocking calls and
//! `std::thread::sleep` are fine.
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `flushDiskType` of the broker under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    Sync,
    Async,
}

impl Flush {
    pub fn as_str(self) -> &'static str {
        match self {
            Flush::Sync => "SYNC_FLUSH",
            Flush::Async => "ASYNC_FLUSH",
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under `target/test-tmp/` (a real disk, not tmpfs). Removed on drop unless
/// the test is panicking (then its path is printed so logs and data can be inspected).
pub struct TestDir {
    pub path: PathBuf,
}

static DIR_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = manifest_dir()
            .join("target")
            .join("test-tmp")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test dir under target/test-tmp");
        TestDir { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SHARDMQ_KEEP_TEST_DIRS").is_some() {
            eprintln!("test dir kept: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free loopback port (bind port 0, then release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_broker_port;
#[path = "../topic/mod.rs"]
mod topic;
#[allow(unused_imports)] // reason: each test binary uses its own part of the harness
pub use topic::{create_topic_fields, send_message_fields};

/// One spawned server process with its log file.
pub struct Server {
    pub name: &'static str,
    exe: PathBuf,
    args: Vec<String>,
    home: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Extra environment for every start (e.g. `SHARDMQ_FAULTS`).
    pub envs: Vec<(String, String)>,
}

impl Server {
    /// A server of `exe` with `args`, its log `<dir>/<name>.log` and HOME `<dir>/home`; not
    /// started yet ([`Server::spawn`]).
    pub fn new(name: &'static str, exe: &str, args: Vec<String>, dir: &Path) -> Server {
        Server {
            name,
            exe: PathBuf::from(exe),
            args,
            home: dir.join("home"),
            log: dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
            envs: Vec::new(),
        }
    }

    /// Starts the process (again, after [`Server::kill9`] or [`Server::stop`]), appending to
    /// its log.
    pub fn spawn(&mut self) {
        fs::create_dir_all(&self.home).expect("create HOME for server");
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        self.starts += 1;
        writeln!(
            log,
            "===== harness: start #{} of {} {:?}",
            self.starts, self.name, self.args
        )
        .expect("write server log");
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env("HOME", &self.home)
            .env("ROCKETMQ_HOME", &self.home)
            .env("RUST_BACKTRACE", "1")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.exe.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails the test if the process already exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("{} exited early with {st}\n{}", self.name, self.log_tail());
            }
        }
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, ...) to the running process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("server running");
        let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory is passed.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "signal {sig} to {}", self.name);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `grace` for a clean exit (SIGKILL after that). Returns the
    /// exit status when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let pid = libc::pid_t::try_from(c.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(80);
        format!(
            "----- {} ({}) last lines -----\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Properties of a broker of broker name `b` on 127.0.0.1 with one shard, its store in
/// `<dir>/<name>`, the disk guard off (the test machines' shared disk is often over upstream's
/// ratios), written to `<dir>/<name>.properties`; `extra` lines are appended.
pub fn ha_broker_conf(
    dir: &TestDir,
    name: &str,
    broker_id: u32,
    role: &str,
    port: u16,
    namesrv_port: u16,
    extra: &str,
) -> PathBuf {
    let store = dir.path.join(name);
    let path = dir.file(&format!("{name}.properties"));
    fs::write(
        &path,
        format!(
            "brokerClusterName=c\nbrokerName=b\nbrokerId={broker_id}\nbrokerRole={role}\n\
             listenPort={port}\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
             namesrvAddr=127.0.0.1:{namesrv_port}\nstorePathRootDir={}\n\
             storePathCommitLog={}/commitlog\nshardCount=1\ndiskMaxUsedSpaceRatio=100\n\
             diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n{extra}\n",
            store.display(),
            store.display()
        ),
    )
    .expect("write broker properties");
    path
}

/// A nameserver's properties on `port`, written to `<dir>/namesrv.properties`.
pub fn namesrv_conf(dir: &TestDir, port: u16) -> PathBuf {
    let path = dir.file("namesrv.properties");
    fs::write(
        &path,
        format!(
            "listenPort={port}\nkvConfigPath={}\n",
            dir.path.join("kv.json").display()
        ),
    )
    .expect("write namesrv.properties");
    path
}

/// One nameserver plus one master broker on loopback, in their own test directory.
pub struct Cluster {
    pub dir: TestDir,
    pub namesrv_port: u16,
    pub broker_port: u16,
    pub flush: Flush,
    pub namesrv: Server,
    pub broker: Server,
}

pub const CLUSTER_NAME: &str = "DefaultCluster";
pub const BROKER_NAME: &str = "broker-a";

impl Cluster {
    /// Start `mqnamesrv` and a SYNC/ASYNC_FLUSH master `mqbroker`, and wait until the broker is
    /// registered (route of TBW102 answers SUCCESS).
    pub fn start(name: &str, flush: Flush) -> Cluster {
        Cluster::start_with(name, flush, "", &[])
    }

    /// Like [`Cluster::start`], with extra broker properties (`key=value` lines) and extra
    /// broker environment variables.
    pub fn start_with(
        name: &str,
        flush: Flush,
        extra_props: &str,
        broker_env: &[(&str, &str)],
    ) -> Cluster {
        let dir = TestDir::new(name);
        let namesrv_port = free_port();
        let broker_port = free_broker_port();
        let ns_conf = dir.file("namesrv.properties");
        fs::write(
            &ns_conf,
            format!(
                "listenPort={namesrv_port}\nkvConfigPath={}\n",
                dir.path.join("namesrv").join("kvConfig.json").display()
            ),
        )
        .expect("write namesrv.properties");
        let store = dir.path.join("store");
        // The disk guard is off (ratios 100): the test machines share a disk that is often
        // over upstream's 90 % refusal ratio (tests/store_disk_full.rs tests the guard).
        let br_conf = dir.file("broker.properties");
        fs::write(
            &br_conf,
            format!(
                "brokerClusterName={CLUSTER_NAME}\nbrokerName={BROKER_NAME}\nbrokerId=0\n\
                 brokerRole=ASYNC_MASTER\nflushDiskType={}\nlistenPort={broker_port}\n\
                 brokerIP1=127.0.0.1\nstorePathRootDir={}\nstorePathCommitLog={}\n\
                 autoCreateTopicEnable=true\ndefaultTopicQueueNums=4\n\
                 namesrvAddr=127.0.0.1:{namesrv_port}\n\
                 diskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n{extra_props}",
                flush.as_str(),
                store.display(),
                store.join("commitlog").display()
            ),
        )
        .expect("write broker.properties");
        let namesrv = Server::new(
            "mqnamesrv",
            env!("CARGO_BIN_EXE_mqnamesrv"),
            vec!["-c".into(), ns_conf.display().to_string()],
            &dir.path,
        );
        let broker = Server::new(
            "mqbroker",
            env!("CARGO_BIN_EXE_mqbroker"),
            vec![
                "-c".into(),
                br_conf.display().to_string(),
                "-n".into(),
                format!("127.0.0.1:{namesrv_port}"),
            ],
            &dir.path,
        );
        let mut broker = broker;
        broker.envs = broker_env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut c = Cluster {
            dir,
            namesrv_port,
            broker_port,
            flush,
            namesrv,
            broker,
        };
        c.namesrv.spawn();
        c.wait_port(namesrv_port, "mqnamesrv");
        c.start_broker();
        c
    }

    pub fn namesrv_addr(&self) -> String {
        format!("127.0.0.1:{}", self.namesrv_port)
    }

    pub fn broker_addr(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    pub fn logs(&self) -> String {
        format!("{}\n{}", self.namesrv.log_tail(), self.broker.log_tail())
    }

    fn wait_port(&mut self, port: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while Instant::now() < deadline {
            self.namesrv.assert_running();
            if what == "mqbroker" {
                self.broker.assert_running();
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        panic!(
            "{what} did not accept TCP on 127.0.0.1:{port} within 30 s\n{}",
            self.logs()
        );
    }

    /// (Re)start the broker on the same store and wait until it is registered again.
    pub fn start_broker(&mut self) {
        self.broker.spawn();
        self.wait_port(self.broker_port, "mqbroker");
        self.wait_route("TBW102");
    }

    /// Poll GET_ROUTEINFO_BY_TOPIC until the nameserver answers SUCCESS for `topic`.
    pub fn wait_route(&mut self, topic: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            self.namesrv.assert_running();
            self.broker.assert_running();
            match request(&self.namesrv_addr(), 105, &[("topic", topic)], &[]) {
                Ok(r) if r.code == 0 => return,
                Ok(r) => last = format!("code {} remark {:?}", r.code, r.remark),
                Err(e) => last = e,
            }
            sleep(Duration::from_millis(100));
        }
        panic!(
            "route of {topic} not available within 30 s (last: {last})\n{}",
            self.logs()
        );
    }

    pub fn kill9_broker(&mut self) {
        self.broker.kill9();
    }

    pub fn restart_broker(&mut self) {
        self.broker.kill9();
        self.start_broker();
    }

    /// SIGTERM the broker; panics if it does not exit within 20 s.
    pub fn stop_broker(&mut self) -> ExitStatus {
        match self.broker.stop(Duration::from_secs(20)) {
            Some(st) => st,
            None => panic!(
                "mqbroker did not exit within 20 s of SIGTERM\n{}",
                self.logs()
            ),
        }
    }

    /// UPDATE_AND_CREATE_TOPIC (17) on the broker, then wait for the route at the nameserver.
    /// Needed for ali-ons, which never auto-creates topics.
    pub fn create_topic(&mut self, topic: &str, queues: u32) {
        let q = queues.to_string();
        let ext = create_topic_fields(topic, &q);
        let r = request(&self.broker_addr(), 17, &ext, &[])
            .unwrap_or_else(|e| panic!("UPDATE_AND_CREATE_TOPIC {topic}: {e}\n{}", self.logs()));
        assert_eq!(
            r.code, 0,
            "UPDATE_AND_CREATE_TOPIC {topic}: remark {:?}",
            r.remark
        );
        self.wait_route(topic);
    }
}

/// A decoded remoting response.
#[derive(Debug)]
pub struct Response {
    pub code: i64,
    pub remark: Option<String>,
    pub ext: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

static OPAQUE: AtomicU32 = AtomicU32::new(1);

/// Send one request with a JSON header (fresh connection, 5 s timeout) and read the response.
pub fn request(
    addr: &str,
    code: i32,
    ext: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let sock: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let opaque = OPAQUE.fetch_add(1, Ordering::SeqCst);
    let ext: serde_json::Map<String, Value> = ext
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
        .collect();
    let header = json!({"code": code, "extFields": ext, "flag": 0, "language": "JAVA",
        "opaque": opaque, "serializeTypeCurrentRPC": "JSON", "version": 275})
    .to_string();
    let hlen = u32::try_from(header.len()).map_err(|e| e.to_string())?;
    let total = 4 + hlen + u32::try_from(body.len()).map_err(|e| e.to_string())?;
    let mut frame = Vec::new();
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&hlen.to_be_bytes());
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame)
        .map_err(|e| format!("write to {addr}: {e}"))?;
    loop {
        let mut len = [0u8; 8];
        s.read_exact(&mut len)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        let total = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let word = u32::from_be_bytes([len[4], len[5], len[6], len[7]]);
        if word >> 24 != 0 {
            return Err(format!(
                "{addr} answered with serialize type {} (clients need 0)",
                word >> 24
            ));
        }
        let hlen = (word & 0x00FF_FFFF) as usize;
        if total < 4 + hlen {
            return Err(format!(
                "{addr}: bad frame lengths total {total} header {hlen}"
            ));
        }
        let mut rest = vec![0u8; total - 4];
        s.read_exact(&mut rest)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        let hdr: Value = serde_json::from_slice(&rest[..hlen])
            .map_err(|e| format!("{addr}: response header is not strict JSON: {e}"))?;
        if hdr.get("opaque").and_then(Value::as_u64) != Some(u64::from(opaque)) {
            continue; // a server->client request (e.g. code 40); not ours
        }
        let mut ext_out = BTreeMap::new();
        if let Some(m) = hdr.get("extFields").and_then(Value::as_object) {
            for (k, v) in m {
                let s = v
                    .as_str()
                    .ok_or_else(|| format!("{addr}: extFields.{k} is not a string: {v}"))?;
                ext_out.insert(k.clone(), s.to_string());
            }
        }
        return Ok(Response {
            code: hdr.get("code").and_then(Value::as_i64).unwrap_or(-1),
            remark: hdr
                .get("remark")
                .and_then(Value::as_str)
                .map(str::to_string),
            ext: ext_out,
            body: rest[hlen..].to_vec(),
        });
    }
}

/// Which real client runs a program.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    /// rocketmq-client-python 0.5.0rc2 (C++ core): producer.py, consumer.py
    Python,
    /// rocketmq 0.4.4 (C++ core): producer.py (async, batch), pull_consumer.py
    Python44,
    /// ali-ons (pure JS): producer.js, consumer.js
    Node,
}

fn clients_dir() -> PathBuf {
    std::env::var_os("SHARDMQ_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target").join("clients"))
}

impl Client {
    fn command(self, program: &str) -> Command {
        let root = manifest_dir().join("tests").join("clients");
        let (exe, script) = match self {
            Client::Python => (
                clients_dir().join("venv-rmq/bin/python"),
                root.join("python").join(program),
            ),
            Client::Python44 => (
                clients_dir().join("venv-rmq44/bin/python"),
                root.join("python").join(program),
            ),
            Client::Node => (PathBuf::from("node"), root.join("js").join(program)),
        };
        match self {
            Client::Node => {
                let lib = root.join("js/node_modules/ali-ons/package.json");
                assert!(
                    lib.exists(),
                    "ali-ons is not installed ({} missing): run scripts/setup-clients.sh",
                    lib.display()
                );
            }
            _ => assert!(
                exe.exists(),
                "{self:?} client is not installed ({} missing): run scripts/setup-clients.sh",
                exe.display()
            ),
        }
        let mut cmd = Command::new(exe);
        cmd.arg(script);
        cmd
    }
}

/// Result of a finished client program.
#[derive(Debug)]
pub struct ClientRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A client program running in the background.
pub struct ClientProc {
    pub what: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

/// Start a client program; its stdout/stderr go to files in `dir`, HOME is `dir/home` (the C++
/// library writes its logs under $HOME/logs).
pub fn spawn_client(dir: &TestDir, client: Client, program: &str, args: &[&str]) -> ClientProc {
    let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
    let stem = format!("{}-{n}", program.replace('.', "_"));
    let out = dir.file(&format!("{stem}.stdout"));
    let err = dir.file(&format!("{stem}.stderr"));
    let home = dir.path.join("home");
    fs::create_dir_all(&home).expect("create client HOME");
    let mut cmd = client.command(program);
    cmd.args(args)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            fs::File::create(&out).expect("create client stdout file"),
        ))
        .stderr(Stdio::from(
            fs::File::create(&err).expect("create client stderr file"),
        ));
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {client:?} {program}: {e}"));
    ClientProc {
        what: format!("{client:?} {program} {}", args.join(" ")),
        child,
        out,
        err,
    }
}

impl ClientProc {
    /// Wait up to `timeout`; on timeout the program is killed and the test fails.
    pub fn wait(mut self, timeout: Duration) -> ClientRun {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(50)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "client timed out after {timeout:?}: {}\nstderr:\n{}",
                        self.what,
                        fs::read_to_string(&self.err).unwrap_or_default()
                    );
                }
            }
        };
        ClientRun {
            status,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a client program to completion with a timeout.
pub fn run_client(
    dir: &TestDir,
    client: Client,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> ClientRun {
    spawn_client(dir, client, program, args).wait(timeout)
}

/// Like [`run_client`] but fails the test (with both outputs and the server logs) on a non-zero exit.
pub fn run_client_ok(
    c: &Cluster,
    client: Client,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> ClientRun {
    let r = run_client(&c.dir, client, program, args, timeout);
    assert!(
        r.status.success(),
        "{client:?} {program} {args:?} failed with {}\nstderr:\n{}\n{}",
        r.status,
        r.stderr,
        c.logs()
    );
    r
}

/// Read a JSON-lines file written by a client program (missing file = no lines).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
        })
        .collect()
}

/// Count of the complete lines of a JSON-lines file another process is still writing: a last
/// line without its newline is a record being written, not a bad one.
pub fn count_complete_lines(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .count()
}

/// What a consumer run looked like against the set of sent message indexes.
#[derive(Debug, Default)]
pub struct Coverage {
    pub expected: usize,
    pub received: usize,
    pub distinct: usize,
    pub duplicates: usize,
    pub missing: Vec<u64>,
    pub unexpected: Vec<u64>,
}

/// Index received messages by their `seq` property and check each against what the producer
/// programs send for index i: keys `<key_prefix><i>`, tag, property, body head `<key_prefix><i>|`
/// and body length.
pub fn check_received(
    expected: &[u64],
    received: &[Value],
    key_prefix: &str,
    tag: &str,
    prop: Option<(&str, &str)>,
    body_size: usize,
) -> Coverage {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for m in received {
        let seq: u64 = m["props"]["seq"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("received message without a numeric seq property: {m}"));
        assert_eq!(
            m["keys"].as_str(),
            Some(format!("{key_prefix}{seq}").as_str()),
            "keys of {m}"
        );
        assert_eq!(m["tags"].as_str(), Some(tag), "tags of {m}");
        if let Some((name, value)) = prop {
            assert_eq!(
                m["props"][name].as_str(),
                Some(value),
                "property {name} of {m}"
            );
        }
        let head = format!("{key_prefix}{seq}|");
        let want_len = body_size.max(head.len());
        assert_eq!(
            m["body_len"].as_u64(),
            Some(want_len as u64),
            "body length of {m}"
        );
        if let Some(b) = m["body"].as_str() {
            assert!(
                b.starts_with(&head),
                "body of {m} does not start with {head}"
            );
        }
        *counts.entry(seq).or_default() += 1;
    }
    let want: std::collections::HashSet<u64> = expected.iter().copied().collect();
    let mut missing: Vec<u64> = want
        .iter()
        .copied()
        .filter(|i| !counts.contains_key(i))
        .collect();
    missing.sort_unstable();
    let mut unexpected: Vec<u64> = counts
        .keys()
        .copied()
        .filter(|i| !want.contains(i))
        .collect();
    unexpected.sort_unstable();
    Coverage {
        expected: want.len(),
        received: received.len(),
        distinct: counts.len(),
        duplicates: counts.values().map(|c| c - 1).sum(),
        missing,
        unexpected,
    }
}

/// Indexes `i` of the acknowledged sends in a producer output file.
pub fn acked_indexes(path: &Path) -> Vec<u64> {
    read_jsonl(path)
        .iter()
        .map(|v| {
            v["i"]
                .as_u64()
                .unwrap_or_else(|| panic!("producer line without i: {v}"))
        })
        .collect()
}

/// Message count for the big e2e runs (`SHARDMQ_E2E_COUNT`, default 10 000).
pub fn e2e_count() -> u64 {
    std::env::var("SHARDMQ_E2E_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

/// Which producer/consumer programs a scenario uses.
#[derive(Clone, Copy, Debug)]
pub struct Programs {
    pub producer: (Client, &'static str),
    pub consumer: (Client, &'static str),
    /// The client cannot auto-create topics (ali-ons): create them with UPDATE_AND_CREATE_TOPIC.
    pub create_topics: bool,
}

pub const PYTHON: Programs = Programs {
    producer: (Client::Python, "producer.py"),
    consumer: (Client::Python, "consumer.py"),
    create_topics: false,
};

pub const NODE: Programs = Programs {
    producer: (Client::Node, "producer.js"),
    consumer: (Client::Node, "consumer.js"),
    create_topics: true,
};

pub const TAG: &str = "TagA";
pub const PROP: (&str, &str) = ("userProp", "v1");
pub const BODY: usize = 100;
const MINUTES_10: Duration = Duration::from_secs(600);

impl Cluster {
    pub fn prepare_topic(&mut self, p: Programs, topic: &str) {
        if p.create_topics {
            self.create_topic(topic, 4);
        }
    }

    /// Run the producer program for indexes start..start+count; returns the output file.
    pub fn produce(
        &self,
        p: Programs,
        topic: &str,
        start: u64,
        count: u64,
        extra: &[&str],
    ) -> PathBuf {
        let out = self.dir.file(&format!("produce-{topic}-{start}.jsonl"));
        let (ns, s, n, o) = (
            self.namesrv_addr(),
            start.to_string(),
            count.to_string(),
            out.display().to_string(),
        );
        let prop = format!("{}={}", PROP.0, PROP.1);
        let body = BODY.to_string();
        let mut args = vec![
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--count",
            &n,
            "--start",
            &s,
            "--tag",
            TAG,
            "--key-prefix",
            "k-",
            "--prop",
            &prop,
            "--body-size",
            &body,
            "--out",
            &o,
        ];
        args.extend_from_slice(extra);
        run_client_ok(self, p.producer.0, p.producer.1, &args, MINUTES_10);
        out
    }

    /// Run the consumer program; returns its received lines.
    pub fn consume(&self, p: Programs, topic: &str, group: &str, extra: &[&str]) -> Vec<Value> {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let out = self.dir.file(&format!("consume-{topic}-{group}-{n}.jsonl"));
        let (ns, o) = (self.namesrv_addr(), out.display().to_string());
        let mut args = vec![
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--group",
            group,
            "--prop",
            PROP.0,
            "--out",
            &o,
        ];
        args.extend_from_slice(extra);
        run_client_ok(self, p.consumer.0, p.consumer.1, &args, MINUTES_10);
        read_jsonl(&out)
    }
}

pub fn assert_complete(what: &str, cov: &Coverage) {
    eprintln!("{what}: {cov:?}");
    assert!(
        cov.missing.is_empty(),
        "{what}: {} of {} acknowledged messages never consumed (first: {:?})",
        cov.missing.len(),
        cov.expected,
        &cov.missing[..cov.missing.len().min(20)]
    );
}

/// N single sends with tag, keys and a property; two consumer groups each get every message.
pub fn scenario_two_groups(p: Programs, name: &str) {
    let mut c = Cluster::start(name, Flush::Sync);
    let topic = format!("{name}_topic");
    c.prepare_topic(p, &topic);
    let n = e2e_count();
    let out = c.produce(p, &topic, 0, n, &[]);
    let acked = acked_indexes(&out);
    assert_eq!(
        acked.len() as u64,
        n,
        "every sync send to a healthy broker must be acknowledged"
    );
    for v in read_jsonl(&out) {
        assert_eq!(v["status"].as_str(), Some("SEND_OK"), "send status {v}");
    }
    let expect = n.to_string();
    for group in ["g1", "g2"] {
        let got = c.consume(
            p,
            &topic,
            group,
            &["--expect", &expect, "--idle-timeout", "60"],
        );
        assert_complete(
            group,
            &check_received(&acked, &got, "k-", TAG, Some(PROP), BODY),
        );
    }
}

/// Bodies over 4 KiB are zlib-compressed by both clients (sysFlag bit 0) and must come back intact.
pub fn scenario_compressed_bodies(p: Programs, name: &str) {
    let mut c = Cluster::start(name, Flush::Sync);
    let topic = format!("{name}_big");
    c.prepare_topic(p, &topic);
    let out = c.dir.file("big.jsonl");
    let (ns, o) = (c.namesrv_addr(), out.display().to_string());
    let prop = format!("{}={}", PROP.0, PROP.1);
    run_client_ok(
        &c,
        p.producer.0,
        p.producer.1,
        &[
            "--namesrv",
            &ns,
            "--topic",
            &topic,
            "--count",
            "200",
            "--tag",
            TAG,
            "--key-prefix",
            "big-",
            "--prop",
            &prop,
            "--body-size",
            "20000",
            "--out",
            &o,
        ],
        MINUTES_10,
    );
    let acked = acked_indexes(&out);
    assert_eq!(acked.len(), 200);
    let got = c.consume(
        p,
        &topic,
        "gbig",
        &["--expect", "200", "--idle-timeout", "60"],
    );
    let cov = check_received(&acked, &got, "big-", TAG, Some(PROP), 20000);
    assert_complete("compressed", &cov);
    let want = sha1_of_body("big-", 7, 20000);
    let m7 = got
        .iter()
        .find(|m| m["props"]["seq"].as_str() == Some("7"))
        .expect("message 7");
    assert_eq!(
        m7["body_sha1"].as_str(),
        Some(want.as_str()),
        "body of message 7 changed"
    );
}

/// SHA-1 (hex) of the body the producer programs send for index i; tiny local implementation so
/// the harness needs no extra crate.
pub fn sha1_of_body(prefix: &str, i: u64, size: usize) -> String {
    let mut body = format!("{prefix}{i}|").into_bytes();
    if body.len() < size {
        body.resize(size, b'x');
    }
    sha1_hex(&body)
}

fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// A consumer stopped after 3000 messages and restarted resumes from its committed offset: every
/// message is seen at least once overall, and the second run does not start over.
pub fn scenario_resume(p: Programs, name: &str) {
    let mut c = Cluster::start(name, Flush::Sync);
    let topic = format!("{name}_topic");
    c.prepare_topic(p, &topic);
    let n = e2e_count();
    let acked = acked_indexes(&c.produce(p, &topic, 0, n, &[]));
    let stop = (n * 3 / 10).max(1).to_string();
    let first = c.consume(
        p,
        &topic,
        "resume",
        &["--stop-after", &stop, "--idle-timeout", "60"],
    );
    assert!(
        first.len() as u64 >= n * 3 / 10,
        "first run stopped early: {}",
        first.len()
    );
    let second = c.consume(p, &topic, "resume", &["--idle-timeout", "20"]);
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    let cov = check_received(&acked, &all, "k-", TAG, Some(PROP), BODY);
    assert_complete("resume", &cov);
    eprintln!(
        "resume: first run {} messages, second run {}, duplicates around the restart {}",
        first.len(),
        second.len(),
        cov.duplicates
    );
    assert!(
        cov.duplicates < first.len(),
        "the restarted consumer re-read everything ({} duplicates): offsets were not committed",
        cov.duplicates
    );
}

/// kill -9 of a SYNC_FLUSH broker in the middle of a send loop, then restart on the same store:
/// every acknowledged message is consumed afterwards.
pub fn scenario_kill9(p: Programs, name: &str) {
    let mut c = Cluster::start(name, Flush::Sync);
    let topic = format!("{name}_topic");
    c.prepare_topic(p, &topic);
    let n = e2e_count();
    let out = c.dir.file("crash-producer.jsonl");
    let (ns, cnt, o) = (c.namesrv_addr(), n.to_string(), out.display().to_string());
    let prop = format!("{}={}", PROP.0, PROP.1);
    let body = BODY.to_string();
    let producer = spawn_client(
        &c.dir,
        p.producer.0,
        p.producer.1,
        &[
            "--namesrv",
            &ns,
            "--topic",
            &topic,
            "--count",
            &cnt,
            "--tag",
            TAG,
            "--key-prefix",
            "k-",
            "--prop",
            &prop,
            "--body-size",
            &body,
            "--out",
            &o,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while (count_complete_lines(&out) as u64) < n / 4 {
        assert!(
            Instant::now() < deadline,
            "producer acknowledged < {} sends in 300 s\n{}",
            n / 4,
            c.logs()
        );
        sleep(Duration::from_millis(20));
    }
    c.kill9_broker();
    let acked_at_kill = count_complete_lines(&out);
    sleep(Duration::from_millis(500));
    c.start_broker();
    let run = producer.wait(MINUTES_10);
    eprintln!(
        "crash producer: {} / stderr: {}",
        run.status,
        run.stderr.trim()
    );
    let acked = acked_indexes(&out);
    assert!(acked.len() >= acked_at_kill, "ack file shrank");
    let got = c.consume(p, &topic, "after-crash", &["--idle-timeout", "20"]);
    let cov = check_received(&acked, &got, "k-", TAG, Some(PROP), BODY);
    eprintln!(
        "kill9: {} acked ({} before the kill), {} consumed",
        acked.len(),
        acked_at_kill,
        got.len()
    );
    assert_complete("kill9", &cov);
}
