//! Fault points of the store: the seam tests use to make the disk fail on purpose.
//!
//! A real process gets its faults from the `SHARDMQ_FAULTS` environment variable, read once when a
//! shard's store opens, and every fault that is armed is logged at WARN so a production broker
//! can never run one silently. Unit tests build a `Faults` directly.
//!
//! Syntax: comma-separated `name` or `name=value`, e.g.
//! `SHARDMQ_FAULTS=fdatasync_error_after=3,write_error_after=10`.
//!
//! | name | meaning |
//! |---|---|
//! | `fdatasync_error_after=N` | the (N+1)-th commit-log fdatasync of each shard fails with EIO |
//! | `write_error_after=N` | the (N+1)-th commit-log write of each shard fails with EIO |
//! | `fdatasync_delay_ms=N` | every commit-log fdatasync of the group commit waits N ms first (a slow disk: FLUSH_DISK_TIMEOUT) |
//! | `write_delay_ms=N` | every commit-log write waits N ms before it is submitted (a slow device write) |
//! | `ack_before_durable` | CANARY: a SYNC_FLUSH put is acknowledged as soon as it is queued, before any write; exists only so the crash test can prove it catches a broker that lies |

use std::cell::Cell;

/// Environment variable holding the fault list.
pub const FAULTS_ENV: &str = "SHARDMQ_FAULTS";

/// The armed faults of one shard store (counters are per shard).
#[derive(Debug, Default)]
pub struct Faults {
    pub fdatasync_error_after: Option<u64>,
    pub write_error_after: Option<u64>,
    pub fdatasync_delay_ms: Option<u64>,
    pub write_delay_ms: Option<u64>,
    pub ack_before_durable: bool,
    fdatasyncs: Cell<u64>,
    writes: Cell<u64>,
}

/// A fault list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FAULTS_ENV}: bad fault {item:?}: {reason}")]
pub struct FaultsError {
    pub item: String,
    pub reason: &'static str,
}

impl Faults {
    /// No fault armed.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `SHARDMQ_FAULTS`; unset or empty = no fault.
    pub fn from_env() -> Result<Self, FaultsError> {
        match std::env::var(FAULTS_ENV) {
            Ok(s) => Self::parse(&s),
            Err(_) => Ok(Self::none()),
        }
    }

    /// Parses a fault list (see the module doc).
    pub fn parse(s: &str) -> Result<Self, FaultsError> {
        let mut f = Self::none();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            };
            let count = || -> Result<u64, FaultsError> {
                value
                    .ok_or(FaultsError {
                        item: item.to_string(),
                        reason: "needs =N",
                    })?
                    .parse()
                    .map_err(|_| FaultsError {
                        item: item.to_string(),
                        reason: "N is not a non-negative integer",
                    })
            };
            match name {
                "fdatasync_error_after" => f.fdatasync_error_after = Some(count()?),
                "write_error_after" => f.write_error_after = Some(count()?),
                "fdatasync_delay_ms" => f.fdatasync_delay_ms = Some(count()?),
                "write_delay_ms" => f.write_delay_ms = Some(count()?),
                "ack_before_durable" if value.is_none() => f.ack_before_durable = true,
                _ => {
                    return Err(FaultsError {
                        item: item.to_string(),
                        reason: "unknown fault name",
                    })
                }
            }
        }
        Ok(f)
    }

    /// True when any fault is armed.
    pub fn any(&self) -> bool {
        self.fdatasync_error_after.is_some()
            || self.write_error_after.is_some()
            || self.fdatasync_delay_ms.is_some()
            || self.write_delay_ms.is_some()
            || self.ack_before_durable
    }

    /// Called before each commit-log fdatasync; `Err` = this one must fail.
    pub fn on_fdatasync(&self) -> Result<(), std::io::Error> {
        Self::tick(&self.fdatasyncs, self.fdatasync_error_after, "fdatasync")
    }

    /// Called before each commit-log write; `Err` = this one must fail.
    pub fn on_write(&self) -> Result<(), std::io::Error> {
        Self::tick(&self.writes, self.write_error_after, "write")
    }

    fn tick(counter: &Cell<u64>, after: Option<u64>, what: &str) -> Result<(), std::io::Error> {
        let n = counter.get();
        counter.set(n + 1);
        match after {
            Some(limit) if n >= limit => Err(std::io::Error::other(format!(
                "injected {what} failure ({FAULTS_ENV})"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        let f = Faults::parse(
            "fdatasync_error_after=3, write_error_after=0,ack_before_durable,fdatasync_delay_ms=7,write_delay_ms=9",
        )
        .unwrap();
        assert_eq!(f.write_delay_ms, Some(9));
        assert_eq!(f.fdatasync_error_after, Some(3));
        assert_eq!(f.fdatasync_delay_ms, Some(7));
        assert_eq!(f.write_error_after, Some(0));
        assert!(f.ack_before_durable);
        assert!(f.any());
        assert!(!Faults::parse("").unwrap().any());
    }

    #[test]
    fn rejects_bad_lists() {
        assert!(Faults::parse("fsync_please").is_err());
        assert!(Faults::parse("fdatasync_error_after").is_err());
        assert!(Faults::parse("fdatasync_error_after=x").is_err());
        assert!(Faults::parse("ack_before_durable=1").is_err());
    }

    #[test]
    fn counts_to_the_failure() {
        let f = Faults::parse("fdatasync_error_after=2").unwrap();
        assert!(f.on_fdatasync().is_ok());
        assert!(f.on_fdatasync().is_ok());
        assert!(f.on_fdatasync().is_err());
        assert!(f.on_fdatasync().is_err());
        assert!(f.on_write().is_ok());
    }
}
