//! A second broker started on the ports of a running one must stop with "address in use" (as
//! upstream's does) instead of silently sharing them through SO_REUSEPORT, and the first broker
//! must go on serving.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // reason: test code

mod common;

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Cluster, Flush};

#[test]
fn a_second_broker_on_the_same_ports_refuses_to_start() {
    let mut c = Cluster::start("ports", Flush::Async);
    let conf = c.dir.file("broker.properties");
    let second_store = c.dir.path.join("second-store");
    let mut second = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
        .args(["-c", &conf.display().to_string()])
        .args(["-n", &c.namesrv_addr()])
        // Its own store, so only the ports collide.
        .args([
            "--set",
            &format!("storePathRootDir={}", second_store.display()),
            "--set",
            &format!("storePathCommitLog={}", second_store.join("commitlog").display()),
        ])
        .env("SHARDMQ_LOG_DIR", c.dir.path.join("second-logs"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second broker is still running on the first one's ports");
        }
        sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "second broker exited with {status}");
    let port = c.broker_port;
    assert!(
        err.contains(&format!(":{port}")) && err.contains("another broker"),
        "the error names the port and the cause: {err}"
    );
    // The first broker is untouched and still answers.
    c.broker.assert_running();
    for _ in 0..8 {
        let r = common::request(&c.broker_addr(), 28, &[], &[]).unwrap();
        assert_eq!(r.code, 0, "GET_BROKER_RUNTIME_INFO from the first broker");
    }
}
