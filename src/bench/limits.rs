//! The host's limits, measured in the same run as the broker: raw 4 KiB O_DIRECT write +
//! fdatasync latency in the store directory, loopback TCP round trip (a tiny echo on
//! 127.0.0.1), how late the host lets a thread wake while every core is busy and the device
//! writes ([`busy_device_wake_lateness`]), and a process's CPU time from `/proc/<pid>/stat`.
//! Plain std threads: these run before the load, never beside it.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// What a loaded host does to a sleeping thread (see [`busy_device_wake_lateness`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WakeLimit {
    /// How much later than asked a 1 ms sleep ended, µs.
    pub late_us: Summary,
    /// Wake-ups [`WAKE_LATE_REPORT`] or more late, per second of the probe.
    pub late_5ms_per_s: f64,
    /// Share of the host's CPU time the hypervisor took during the probe.
    pub steal_pct: Option<f64>,
    /// What the writer got through, MiB/s (64 KiB O_DIRECT + O_DSYNC writes).
    pub write_mib_s: f64,
}

/// A wake-up at least this late counts in [`WakeLimit::late_5ms_per_s`]: the smallest lateness
/// that can carry a publish p99.9 past the 5 ms issue #6 asks for.
pub const WAKE_LATE_REPORT: Duration = Duration::from_millis(5);

/// The sleeper's period in [`busy_device_wake_lateness`].
const WAKE_PERIOD: Duration = Duration::from_millis(1);

/// The writer's write size in [`busy_device_wake_lateness`], and the number of them the file
/// cycles through (16 MiB).
const WAKE_PROBE_WRITE: usize = 64 * 1024;
const WAKE_PROBE_SLOTS: usize = 256;

/// A 64 KiB buffer aligned to 4 KiB.
#[repr(C, align(4096))]
struct Block([u8; WAKE_PROBE_WRITE]);

/// A saturated run's floor: every core busy with lowest-priority spinning, one thread writing
/// 64 KiB O_DIRECT + O_DSYNC blocks in `dir`, and this thread sleeping 1 ms at a time for
/// `budget`, recording how late each wake-up came. On an idle host, or a busy one whose disk
/// is idle, a nice-0 thread wakes within tens of µs (the spinners yield to it). A virtual
/// machine whose hypervisor charges the device's emulation to the VM's CPU quota is throttled
/// instead, and every thread in it, broker and client alike, stops together (on this
/// project's VMs: 15–25 ms every 100 ms, ARCHITECTURE 38). A saturated SYNC_FLUSH run's
/// p99.9 and max cannot be better than this.
pub fn busy_device_wake_lateness(dir: &Path, budget: Duration) -> Result<WakeLimit, LimitError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let path = dir.join(format!(".mqbench-wake-{}", std::process::id()));
    let mut o = fs::OpenOptions::new();
    o.create(true).write(true).truncate(true);
    let direct = o
        .clone()
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(&path);
    let file = match direct {
        Ok(f) => f,
        // tmpfs refuses O_DIRECT: the figure is then the host's CPU alone.
        Err(_) => o
            .custom_flags(libc::O_DSYNC)
            .open(&path)
            .map_err(io_err("open", &path))?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // SAFETY: setpriority(2) with PRIO_PROCESS and a thread id changes only that
                // thread's nice value (Linux); no memory is passed.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, 19);
                }
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || -> std::io::Result<u64> {
            let block = Box::new(Block([0x5A; WAKE_PROBE_WRITE]));
            let fd = file.as_raw_fd();
            let mut written = 0u64;
            let mut slot = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let off = libc::off_t::try_from(slot * WAKE_PROBE_WRITE).unwrap_or(0);
                // SAFETY: fd is open while `file` lives (moved into this closure); the
                // buffer is WAKE_PROBE_WRITE valid bytes aligned to 4 KiB.
                let n = unsafe { libc::pwrite(fd, block.0.as_ptr().cast(), WAKE_PROBE_WRITE, off) };
                if n != WAKE_PROBE_WRITE as isize {
                    return Err(std::io::Error::last_os_error());
                }
                written += WAKE_PROBE_WRITE as u64;
                slot = (slot + 1) % WAKE_PROBE_SLOTS;
            }
            Ok(written)
        })
    };
    let ticks0 = host_cpu_ticks();
    let mut h = new_hist();
    let mut late = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        std::thread::sleep(WAKE_PERIOD);
        let over = t.elapsed().saturating_sub(WAKE_PERIOD);
        late += u64::from(over >= WAKE_LATE_REPORT);
        record(&mut h, u64::try_from(over.as_micros()).unwrap_or(u64::MAX));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ticks1 = host_cpu_ticks();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    let written = writer.join().unwrap_or(Ok(0));
    let _ = fs::remove_file(&path);
    let written = written.map_err(io_err("O_DSYNC write", &path))?;
    Ok(WakeLimit {
        late_us: Summary::of(&h),
        late_5ms_per_s: late as f64 / elapsed,
        steal_pct: ticks0.zip(ticks1).and_then(|(a, b)| steal_pct(a, b)),
        write_mib_s: written as f64 / elapsed / (1024.0 * 1024.0),
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
    fn wake_lateness_under_a_busy_host_is_measured() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let w = busy_device_wake_lateness(&dir, Duration::from_millis(300)).unwrap();
        // A 1 ms sleeper gets at most 300 turns, and at least a few even on a throttled VM.
        assert!(w.late_us.count > 10 && w.late_us.count <= 300, "{w:?}");
        assert!(w.late_us.is_monotonic());
        assert!(w.write_mib_s > 0.0, "the writer wrote nothing: {w:?}");
        assert!(w.late_5ms_per_s >= 0.0 && w.late_5ms_per_s <= 1000.0 / 5.0);
        let leftovers = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".mqbench-wake-")
            })
            .count();
        assert_eq!(leftovers, 0, "the probe's file is removed");
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(process_cpu_us(std::process::id()).is_some());
    }
}
