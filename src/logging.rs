//! Logging set-up for the binaries: `tracing` to stderr, level from `RUST_LOG` (default
//! `info`). Upstream writes to `~/logs/rocketmqlogs/`; run under systemd or redirect stderr
//! to get files (rotation: issue pending).

/// Installs the global subscriber once; `process` names the binary in every line.
pub fn init(process: &'static str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_thread_names(true)
        .try_init();
    tracing::debug!(process, "logging initialised");
}
