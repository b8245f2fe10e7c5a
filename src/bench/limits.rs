//! The host's limits, measured in the same run as the broker: raw 4 KiB O_DIRECT write +
//! fdatasync latency in the store directory, loopback TCP round trip (a tiny echo on
//! 127.0.0.1), and a process's CPU time from `/proc/<pid>/stat`. Plain std threads: these run
//! before the load, never beside it.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::hist::{new_hist, record, Summary};

/// Raw device latency of the store directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FsyncLimit {
    pub dir: String,
    /// false when the filesystem refused O_DIRECT (tmpfs): then the figure is page-cache only.
    pub o_direct: bool,
    pub write_fdatasync_4k_us: Summary,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LimitError {
    let path = path.display().to_string();
    move |source| LimitError::Io { what, path, source }
}

/// A 4 KiB buffer aligned to 4 KiB (O_DIRECT needs aligned memory).
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// `iterations` 4 KiB O_DIRECT pwrite + fdatasync at rotating offsets of a 1 MiB file in `dir`
/// (stops after `budget`).
pub fn fsync_latency(
    dir: &Path,
    iterations: u32,
    budget: Duration,
) -> Result<FsyncLimit, LimitError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let path = dir.join(format!(".mqbench-fsync-{}", std::process::id()));
    let open = |direct: bool| {
        let mut o = fs::OpenOptions::new();
        o.create(true).write(true).truncate(true);
        if direct {
            o.custom_flags(libc::O_DIRECT);
        }
        o.open(&path)
    };
    let (file, o_direct) = match open(true) {
        Ok(f) => (f, true),
        Err(_) => (open(false).map_err(io_err("open", &path))?, false),
    };
    let page = Box::new(Page([0x5A; 4096]));
    let fd = file.as_raw_fd();
    let mut h = new_hist();
    let start = Instant::now();
    let mut result = Ok(());
    for i in 0..iterations {
        let off = libc::off_t::from((i % 256) as u16) * 4096;
        let t = Instant::now();
        // SAFETY: fd is open for the whole loop; the buffer is 4096 valid, aligned bytes.
        let n = unsafe { libc::pwrite(fd, page.0.as_ptr().cast(), 4096, off) };
        // SAFETY: plain fdatasync(2) on an open descriptor.
        let s = unsafe { libc::fdatasync(fd) };
        if n != 4096 || s != 0 {
            result = Err(std::io::Error::last_os_error());
            break;
        }
        record(
            &mut h,
            u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        if start.elapsed() > budget {
            break;
        }
    }
    drop(file);
    let _ = fs::remove_file(&path);
    result.map_err(io_err("write+fdatasync", &path))?;
    Ok(FsyncLimit {
        dir: dir.display().to_string(),
        o_direct,
        write_fdatasync_4k_us: Summary::of(&h),
    })
}

/// Round trips of a 64-byte message to an echo thread on 127.0.0.1 (TCP_NODELAY).
pub fn loopback_rtt(iterations: u32, budget: Duration) -> Result<Summary, LimitError> {
    let here = Path::new("127.0.0.1:0");
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind", here))?;
    let addr = l.local_addr().map_err(io_err("local address", here))?;
    let echo = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 64];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }
    });
    let mut c = TcpStream::connect(addr).map_err(io_err("connect", here))?;
    let _ = c.set_nodelay(true);
    let mut h = new_hist();
    let mut buf = [7u8; 64];
    let start = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        c.write_all(&buf).map_err(io_err("echo write", here))?;
        c.read_exact(&mut buf).map_err(io_err("echo read", here))?;
        record(
            &mut h,
            u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        if start.elapsed() > budget {
            break;
        }
    }
    drop(c);
    let _ = echo.join();
    Ok(Summary::of(&h))
}

/// utime + stime of `pid`, in microseconds (`/proc/<pid>/stat` fields 14 and 15).
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count fields after its closing paren.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some((utime + stime) * 1_000_000 / tck.max(1))
}

/// The host's CPU time so far, all CPUs, in clock ticks: (total, stolen by the hypervisor)
/// (`/proc/stat`, first line). Steal is time a virtual CPU was ready but the hypervisor ran
/// something else: inside the guest it looks like time on the CPU that did nothing.
pub fn host_cpu_ticks() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, counted in user/nice]
    let total = f.iter().take(8).sum();
    Some((total, *f.get(7)?))
}

/// Percent of the host's CPU time stolen between two [`host_cpu_ticks`] samples.
pub fn steal_pct(from: (u64, u64), to: (u64, u64)) -> Option<f64> {
    let total = to.0.checked_sub(from.0)?;
    let steal = to.1.checked_sub(from.1)?;
    (total > 0).then(|| steal as f64 * 100.0 / total as f64)
}

/// The pid of the only running process named `name` (None when none or several).
pub fn find_process(name: &str) -> Option<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name) {
            found.push(pid);
        }
    }
    (found.len() == 1).then(|| found[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trips_are_measured() {
        let s = loopback_rtt(200, Duration::from_secs(2)).unwrap();
        assert_eq!(s.count, 200);
        assert!(s.p50 > 0 && s.is_monotonic());
    }

    #[test]
    fn fsync_on_a_real_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let r = fsync_latency(&dir, 5, Duration::from_secs(5)).unwrap();
        assert_eq!(r.write_fdatasync_4k_us.count, 5);
    }

    #[test]
    fn host_steal_is_a_share_of_the_cpu_time_between_two_samples() {
        let a = host_cpu_ticks().expect("/proc/stat");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(t.elapsed());
        }
        let b = host_cpu_ticks().expect("/proc/stat");
        assert!(b.0 > a.0 && b.1 >= a.1 && a.1 <= a.0);
        let p = steal_pct(a, b).expect("time went on");
        assert!((0.0..=100.0).contains(&p));
        assert_eq!(steal_pct((100, 10), (200, 35)), Some(25.0));
        assert_eq!(steal_pct((100, 10), (100, 10)), None);
        assert_eq!(steal_pct((200, 10), (100, 10)), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(process_cpu_us(std::process::id()).is_some());
    }
}
