//! Process signals: waiting for SIGTERM/SIGINT (clean stop), and finding and signalling our
//! processes by name for `mqshutdown`. Runs on the main thread, never on a shard.

/// Blocks until SIGTERM or SIGINT arrives.
pub fn wait_for_termination() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let _ = signals.forever().next();
    Ok(())
}

/// Pids of processes whose command name is `name` (from `/proc/<pid>/comm`).
pub fn pids_named(name: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| u32::try_from(*pid).ok() != Some(me))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == name)
                .unwrap_or(false)
        })
        .collect()
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: i32) -> Result<(), String> {
    // SAFETY: kill(2) with a plain pid and signal number has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}
