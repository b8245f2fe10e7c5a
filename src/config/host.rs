//! What the defaults depend on outside the file: environment variables, the home and current
//! directories, the host name, the core count and the host's IPv4 address. Gathered once into
//! [`HostEnv`] so that loading is a pure function of (file, command line, `HostEnv`) and tests
//! can pin every input. Read at start-up only, before any shard runs.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The host facts that default values are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEnv {
    /// `$HOME` (Java's `user.home`): default store root `~/store`, namesrv files `~/namesrv`.
    pub home: PathBuf,
    /// The directory relative paths in the config are resolved against.
    pub cwd: PathBuf,
    /// `$ROCKETMQ_HOME`, if set (not required by shardmq).
    pub rocketmq_home: Option<PathBuf>,
    /// `$NAMESRV_ADDR`, if set: the default of `namesrvAddr`.
    pub namesrv_addr: Option<String>,
    /// Default `brokerName`.
    pub host_name: String,
    /// Available cores: thread-pool defaults and the default shard count.
    pub cores: u32,
    /// Default `brokerIP1` / `brokerIP2`.
    pub local_ipv4: Ipv4Addr,
}

impl HostEnv {
    /// Reads the real process environment (and the host's interfaces, for the IP).
    pub fn from_process() -> HostEnv {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        HostEnv {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| cwd.clone()),
            rocketmq_home: non_empty("ROCKETMQ_HOME").map(PathBuf::from),
            namesrv_addr: non_empty("NAMESRV_ADDR"),
            host_name: local_host_name().unwrap_or_else(|| "DEFAULT_BROKER".to_owned()),
            cores: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            local_ipv4: detect_local_ipv4(),
            cwd,
        }
    }

    /// Makes `path` absolute against [`HostEnv::cwd`] and drops `.` components.
    pub fn absolute(&self, path: &Path) -> PathBuf {
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        };
        joined.components().collect()
    }
}

/// The host's IPv4 address to advertise when `brokerIP1`/`brokerIP2` are not set, chosen the way
/// upstream chooses (spec/ha.md §2) among the interfaces' IPv4 addresses, minus loopback and
/// link-local (169.254/16) ones: the first that does not start with `192.168`, else the last
/// one found, else 127.0.0.1. (Upstream then tries IPv6; this function answers IPv4 only.)
pub fn detect_local_ipv4() -> Ipv4Addr {
    choose_local_ipv4(&interface_ipv4_addrs())
}

pub(crate) fn choose_local_ipv4(addrs: &[Ipv4Addr]) -> Ipv4Addr {
    let candidates: Vec<Ipv4Addr> = addrs
        .iter()
        .copied()
        .filter(|a| !a.is_loopback() && !a.is_link_local() && !a.is_unspecified())
        .collect();
    let not_private_lan = |a: &&Ipv4Addr| !(a.octets()[0] == 192 && a.octets()[1] == 168);
    candidates
        .iter()
        .find(not_private_lan)
        .or_else(|| candidates.last())
        .copied()
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

/// Every IPv4 address of every interface, in `getifaddrs` order.
fn interface_ipv4_addrs() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success it receives a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return found;
    }
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a non-null node of the list from getifaddrs, alive until
        // freeifaddrs.
        let node = unsafe { &*cursor };
        if !node.ifa_addr.is_null() {
            // SAFETY: a non-null `ifa_addr` points to a sockaddr whose family is readable.
            let family = unsafe { (*node.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in>() };
                found.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        cursor = node.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The kernel's host name (`gethostname`), if any.
fn local_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn prefers_an_address_outside_192_168() {
        let addrs = [
            ip("127.0.0.1"),
            ip("192.168.1.5"),
            ip("10.0.0.7"),
            ip("10.0.0.8"),
        ];
        assert_eq!(choose_local_ipv4(&addrs), ip("10.0.0.7"));
    }

    #[test]
    fn falls_back_to_the_last_192_168_address() {
        let addrs = [ip("127.0.0.1"), ip("192.168.1.5"), ip("192.168.2.6")];
        assert_eq!(choose_local_ipv4(&addrs), ip("192.168.2.6"));
    }

    #[test]
    fn skips_loopback_and_link_local_and_falls_back_to_localhost() {
        let addrs = [ip("127.0.0.1"), ip("169.254.3.4"), ip("127.1.2.3")];
        assert_eq!(choose_local_ipv4(&addrs), Ipv4Addr::LOCALHOST);
        assert_eq!(choose_local_ipv4(&[]), Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn detection_returns_a_usable_address() {
        let a = detect_local_ipv4();
        assert!(!a.is_link_local() && !a.is_unspecified(), "{a}");
    }

    #[test]
    fn absolute_resolves_against_cwd_and_drops_dots() {
        let env = HostEnv {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/work/run"),
            rocketmq_home: None,
            namesrv_addr: None,
            host_name: "h".into(),
            cores: 2,
            local_ipv4: Ipv4Addr::LOCALHOST,
        };
        assert_eq!(
            env.absolute(Path::new("./store-local")),
            Path::new("/work/run/store-local")
        );
        assert_eq!(env.absolute(Path::new("/data/./x")), Path::new("/data/x"));
    }
}
