//! Broker ports for tests, shared by both harnesses (`tests/common`, `tests/support`).
//!
//! A broker uses three ports: `p` (listen), `p - 2` (VIP) and `p + 1` (HA). They are picked
//! BELOW the kernel's ephemeral range: a port taken from that range (bind to port 0) can be
//! handed out again as the local port of some client connection while the test runs, and a
//! broker restarted after kill -9 then fails to bind its VIP or HA port.
//!
//! A port is never handed out twice in one test process: a test that kills its broker leaves
//! the ports free for a moment, and a test running beside it must not take them then.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const LOW: u16 = 10_000;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Listen ports already handed out by this process.
static HANDED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32_768)
}

fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// A listen port `p` with `p - 2`, `p` and `p + 1` free right now, below the ephemeral range.
/// Different test processes start at different places (pid and time), so suites running side
/// by side rarely try the same ports.
pub fn free_broker_port() -> u16 {
    let high = ephemeral_low().saturating_sub(4).max(LOW + 1000);
    let span = u32::from(high - LOW);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(nanos)
        .wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed).wrapping_mul(104_729));
    for i in 0..2000u32 {
        // Steps of 4 keep the triples of successive tries apart.
        let p = LOW + 2 + ((seed.wrapping_add(i * 4)) % span) as u16;
        let mut handed = HANDED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed.iter().any(|&h| h.abs_diff(p) <= 3) {
            continue;
        }
        if free(p - 2) && free(p) && free(p + 1) {
            handed.push(p);
            return p;
        }
    }
    panic!("no free port triple (p-2, p, p+1) below the ephemeral range after 2000 tries");
}
