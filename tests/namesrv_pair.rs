//! Two nameservers and one broker registered with both (`namesrvAddr=a;b`), and the
//! broker's command line: `-p` / `-m` print the effective config, a bad value stops it with
//! a message naming key, value, file and line.

// reason: test code panics on failures by design.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

#[test]
fn both_nameservers_serve_the_broker_route() {
    let a = support::start_namesrv("pair-ns-a");
    let b = support::start_namesrv("pair-ns-b");
    let broker = support::start_broker("pair-broker", &format!("{};{}", a.addr(), b.addr()), "");
    for ns in [&a, &b] {
        let mut c = support::Client::connect(ns.port);
        let route = support::poll(Duration::from_secs(10), || {
            let r = c.call(support::route_request("TBW102", 409));
            (r.code == 0).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "nameserver {} has no route for TBW102; broker log:\n{}",
                ns.addr(),
                broker.proc_.log_tail(30)
            )
        });
        let v: Value = serde_json::from_slice(&route.body).unwrap_or_else(|e| {
            panic!(
                "version 409 route body is not standard JSON ({e}): {}",
                String::from_utf8_lossy(&route.body)
            )
        });
        let datas = v["brokerDatas"].as_array().unwrap();
        assert_eq!(datas.len(), 1, "{v}");
        assert_eq!(datas[0]["brokerName"], "broker-a", "{v}");
        assert_eq!(
            datas[0]["brokerAddrs"],
            serde_json::json!({ "0": broker.addr() }),
            "nameserver {}: {v}",
            ns.addr()
        );
        let queues = v["queueDatas"].as_array().unwrap();
        assert!(queues.iter().any(|q| q["brokerName"] == "broker-a"), "{v}");
    }
}

fn run_broker(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = support::test_dir("pair-cli");
    let out = Command::new(support::BROKER_BIN)
        .args(args)
        .env("HOME", &dir)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn print_config_and_bad_value() {
    let dir = support::test_dir("pair-conf");
    let port = support::free_broker_port();
    let conf = dir.join("broker.properties");
    std::fs::write(
        &conf,
        support::broker_properties(&dir, port, "127.0.0.1:9", ""),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    for flag in ["-p", "-m"] {
        let (status, text) = run_broker(&["-c", conf_s, flag]);
        assert!(
            status.success(),
            "mqbroker -c F {flag} exited {status}: {text}"
        );
        assert!(
            text.contains("brokerName="),
            "mqbroker {flag} output: {text}"
        );
        if flag == "-p" {
            assert!(
                text.contains("brokerName=broker-a"),
                "mqbroker -p output: {text}"
            );
            assert!(
                text.contains(&format!("listenPort={port}")),
                "mqbroker -p output: {text}"
            );
        }
    }

    let bad = dir.join("bad.properties");
    let mut body = support::broker_properties(&dir, port, "127.0.0.1:9", "");
    let line = body.lines().count() + 1;
    body.push_str("flushDiskType=FAST\n");
    std::fs::write(&bad, body).unwrap();
    let bad_s = bad.to_str().unwrap();
    let (status, text) = run_broker(&["-c", bad_s]);
    assert!(
        !status.success(),
        "mqbroker accepted flushDiskType=FAST: {text}"
    );
    for needle in ["flushDiskType", "\"FAST\"", &format!("{bad_s}:{line}")] {
        assert!(
            text.contains(needle),
            "error message lacks {needle:?}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
