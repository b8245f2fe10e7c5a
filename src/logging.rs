//! Logging for the binaries: `tracing` to stderr and to a daily-rotated file where upstream
//! keeps its logs, `$HOME/logs/rocketmqlogs/<process>.log.<date>` (`SHARDMQ_LOG_DIR`
//! overrides the directory). Level from `RUST_LOG`, default `info`.

use std::path::PathBuf;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the file writer's background thread alive; hold it until the process exits.
#[must_use]
#[derive(Debug)]
pub struct LogGuard {
    // Only held: dropping it flushes and stops the writer thread.
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// The directory log files go to.
pub fn log_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHARDMQ_LOG_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join("logs").join("rocketmqlogs")
}

/// Installs the global subscriber once; `process` names the file (`broker`, `namesrv`).
/// A log directory that cannot be created leaves stderr logging only, with a warning.
pub fn init(process: &'static str) -> LogGuard {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_thread_names(true)
        .with_filter(filter());
    let dir = log_dir();
    let file = std::fs::create_dir_all(&dir).map(|()| {
        let appender = tracing_appender::rolling::daily(&dir, format!("{process}.log"));
        tracing_appender::non_blocking(appender)
    });
    match file {
        Ok((writer, guard)) => {
            let file_layer = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false)
                .with_thread_names(true)
                .with_filter(filter());
            let _ = tracing_subscriber::registry()
                .with(stderr)
                .with(file_layer)
                .try_init();
            LogGuard {
                _worker: Some(guard),
            }
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr).try_init();
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the log directory; logging to stderr only");
            LogGuard { _worker: None }
        }
    }
}
