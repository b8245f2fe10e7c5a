//! Which broker a pull response suggests for the consumer's next pull of that queue
//! (`suggestWhichBrokerId`; spec remoting.md §8.4, ha.md §7), and the host figure the rule
//! needs: physical memory, read once at start-up.
//!
//! The rule, as upstream 4.3 applies it on masters and slaves alike:
//! - a slave that answers PULL_RETRY_IMMEDIATELY instead of PULL_OFFSET_MOVED
//!   (`offsetCheckInSlave=false`) suggests the group's `brokerId`;
//! - else, with `slaveReadEnable=false`: 0 (the master);
//! - else the group's `whichBrokerWhenConsumeSlowly` when the consumer lags, its `brokerId`
//!   otherwise. The consumer lags when the commit-log bytes behind the last entry the read
//!   passed exceed `accessMessageInMemoryMaxRatio`% of physical memory (upstream's "no longer
//!   in the page cache"). A shard has its own commit log, so the lag is measured in the shard
//!   owning the queue (`GetResult::behind_bytes`).
//!
//! Pure, except [`physical_memory_bytes`] which reads `/proc` and `/sys` (start-up only).

use crate::broker::groups::GroupConfig;

/// The broker ids a subscription group names (`subscriptionGroup.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupIds {
    /// `brokerId`: where a consumer that keeps up reads (default 0, the master).
    pub broker_id: i64,
    /// `whichBrokerWhenConsumeSlowly`: where a lagging consumer is sent (default 1).
    pub when_slow: i64,
}

impl Default for GroupIds {
    /// A group created with defaults (what an auto-created group holds).
    fn default() -> Self {
        GroupIds {
            broker_id: 0,
            when_slow: 1,
        }
    }
}

impl From<&GroupConfig> for GroupIds {
    fn from(g: &GroupConfig) -> Self {
        GroupIds {
            broker_id: g.broker_id,
            when_slow: g.which_broker_when_consume_slowly,
        }
    }
}

/// The broker-wide part of the rule (from the properties and the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuggestRule {
    /// `slaveReadEnable`.
    pub slave_read_enable: bool,
    /// Lag in bytes above which a consumer counts as slow: `accessMessageInMemoryMaxRatio`% of
    /// physical memory.
    pub in_memory_max_bytes: u64,
}

impl SuggestRule {
    /// Whether the answer can depend on the group's ids for any read outcome other than a
    /// slave's retry (which asks for them itself): only with `slaveReadEnable`.
    pub fn needs_group(&self) -> bool {
        self.slave_read_enable
    }

    /// Upstream's `diff > memory`; a read that passed no entry never lags.
    pub fn lagging(&self, behind_bytes: Option<u64>) -> bool {
        behind_bytes.is_some_and(|b| b > self.in_memory_max_bytes)
    }

    /// The `suggestWhichBrokerId` of a pull response. `retried_on_slave`: this slave turned
    /// PULL_OFFSET_MOVED into PULL_RETRY_IMMEDIATELY.
    pub fn suggest(
        &self,
        behind_bytes: Option<u64>,
        group: GroupIds,
        retried_on_slave: bool,
    ) -> i64 {
        if retried_on_slave {
            group.broker_id
        } else if !self.slave_read_enable {
            0
        } else if self.lagging(behind_bytes) {
            group.when_slow
        } else {
            group.broker_id
        }
    }
}

/// `accessMessageInMemoryMaxRatio`% of `total` bytes of memory. Unknown memory with a ratio
/// above 0: `u64::MAX`, so no consumer is ever called slow on a guess.
pub fn in_memory_max_bytes(total: Option<u64>, ratio_percent: u32) -> u64 {
    match total {
        _ if ratio_percent == 0 => 0,
        Some(t) => u64::try_from(u128::from(t) * u128::from(ratio_percent.min(100)) / 100)
            .unwrap_or(u64::MAX),
        None => u64::MAX,
    }
}

/// Physical memory as a container-aware JVM reports it: `MemTotal` of `/proc/meminfo`, lowered
/// to the cgroup's memory limit when one is set (v2 `memory.max`, v1 `memory.limit_in_bytes`).
/// `None` (logged) when `/proc/meminfo` cannot be read. Called once at start-up.
pub fn physical_memory_bytes() -> Option<u64> {
    let path = "/proc/meminfo";
    let total = match std::fs::read_to_string(path) {
        Ok(text) => parse_mem_total(&text),
        Err(e) => {
            tracing::warn!(file = path, error = %e, "cannot read the physical memory size");
            None
        }
    };
    let Some(total) = total else {
        tracing::warn!(
            file = path,
            "no MemTotal line: consumers are never called slow (slaveReadEnable)"
        );
        return None;
    };
    let limit = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .find_map(|t| parse_cgroup_limit(&t));
    Some(limit.map_or(total, |l| l.min(total)))
}

/// Bytes of the `MemTotal:` line of `/proc/meminfo` (given in kB).
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") | None => n.checked_mul(1024),
            Some(_) => None,
        }
    })
}

/// A cgroup memory limit in bytes; `max` (v2) or a non-number means none.
fn parse_cgroup_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn rule(slave_read_enable: bool) -> SuggestRule {
        SuggestRule {
            slave_read_enable,
            in_memory_max_bytes: in_memory_max_bytes(Some(10 * GIB), 40),
        }
    }

    #[test]
    fn master_without_slave_read_always_suggests_the_master() {
        let r = rule(false);
        let g = GroupIds {
            broker_id: 3,
            when_slow: 2,
        };
        for behind in [
            None,
            Some(0),
            Some(4 * GIB),
            Some(4 * GIB + 1),
            Some(u64::MAX),
        ] {
            assert_eq!(r.suggest(behind, g, false), 0, "{behind:?}");
        }
    }

    #[test]
    fn slave_read_sends_only_lagging_consumers_away() {
        let r = rule(true);
        assert_eq!(r.in_memory_max_bytes, 4 * GIB);
        let d = GroupIds::default();
        assert_eq!(r.suggest(Some(4 * GIB + 1), d, false), 1);
        // Exactly the limit is still "in memory" (upstream: diff > memory).
        assert_eq!(r.suggest(Some(4 * GIB), d, false), 0);
        assert_eq!(r.suggest(Some(0), d, false), 0);
        // No entry read (offset at the end, moved, empty queue): never slow.
        assert_eq!(r.suggest(None, d, false), 0);
        // The group's own ids.
        let g = GroupIds {
            broker_id: 2,
            when_slow: 3,
        };
        assert_eq!(r.suggest(Some(5 * GIB), g, false), 3);
        assert_eq!(r.suggest(Some(1), g, false), 2);
    }

    #[test]
    fn a_slave_retry_suggests_the_groups_broker_whatever_the_lag() {
        let g = GroupIds {
            broker_id: 2,
            when_slow: 3,
        };
        for r in [rule(false), rule(true)] {
            assert_eq!(r.suggest(Some(9 * GIB), g, true), 2);
            assert_eq!(r.suggest(None, g, true), 2);
        }
    }

    #[test]
    fn ratio_of_memory() {
        assert_eq!(in_memory_max_bytes(Some(1000), 40), 400);
        assert_eq!(in_memory_max_bytes(Some(1000), 0), 0);
        assert_eq!(in_memory_max_bytes(Some(1000), 100), 1000);
        assert_eq!(in_memory_max_bytes(Some(u64::MAX), 100), u64::MAX);
        assert_eq!(in_memory_max_bytes(None, 40), u64::MAX);
        // Ratio 0 (a test setting): any lag is slow, even with memory unknown.
        assert_eq!(in_memory_max_bytes(None, 0), 0);
        let r = SuggestRule {
            slave_read_enable: true,
            in_memory_max_bytes: 0,
        };
        assert!(r.lagging(Some(1)));
        assert!(!r.lagging(Some(0)));
        assert!(!r.lagging(None));
    }

    #[test]
    fn group_ids_from_config() {
        let mut g = GroupConfig::new("g");
        assert_eq!(GroupIds::from(&g), GroupIds::default());
        g.broker_id = 1;
        g.which_broker_when_consume_slowly = 2;
        assert_eq!(
            GroupIds::from(&g),
            GroupIds {
                broker_id: 1,
                when_slow: 2
            }
        );
    }

    #[test]
    fn meminfo_and_cgroup_parsing() {
        let text = "MemFree:  100 kB\nMemTotal:       16303520 kB\nBuffers: 1 kB\n";
        assert_eq!(parse_mem_total(text), Some(16_303_520 * 1024));
        assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: 5 MB\n"), None);
        assert_eq!(parse_mem_total(""), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("2147483648\n"), Some(2 * GIB));
        // The real host: some memory, at most what /proc says.
        let m = physical_memory_bytes().unwrap();
        assert!(m > 0);
    }
}
