//! Event-loop lag probe: how late a thread-per-core loop runs a timer.
//!
//! A task sleeps [`PROBE_INTERVAL`] again and again and measures how late each wake-up is.
//! A late wake-up means the loop did not come back to its timers in time: a task ran without
//! yielding, a syscall blocked the thread, or the host did not schedule the thread. A lag of
//! [`STALL_MIN`] or more is a stall, kept in a [`Stalls`] record (the last [`STALLS_KEPT`]
//! with their wall-clock time). The broker shows its shards' stalls in
//! GET_BROKER_RUNTIME_INFO and logs long ones; `mqbench` records its own executors' stalls and
//! reads the broker's, so a latency outlier in a report says which side stalled.
//!
//! A stall longer than the interval is measured whole; a shorter one only in part (by how far
//! it ran past the timer's due time). Cost: one timer per loop, checked in turns a busy loop
//! runs anyway. An idle loop would still wake 100 times a second, which cost about 1 % of a
//! core on the 2-core test VM, so after [`IDLE_AFTER`] without activity (the caller says what
//! activity is) the probe sleeps [`IDLE_INTERVAL`]: a stall is still measured whole, since
//! lateness does not depend on the interval, and the probe is back at [`PROBE_INTERVAL`] within
//! a second of new work.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the probe's timer is due.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// The probe's interval once its loop has been idle for [`IDLE_AFTER`].
pub const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// How long without activity makes a loop idle.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);
/// The smallest lag recorded as a stall (the p99.9 goal of issue #6 is 5 ms).
pub const STALL_MIN: Duration = Duration::from_millis(5);
/// Stalls kept per record (the oldest go first).
pub const STALLS_KEPT: usize = 64;

/// One stall: when the late wake-up happened (ms since the Unix epoch) and how late it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stall {
    pub at_ms: i64,
    pub lag_ms: u64,
}

/// The stalls of one loop (or of several, merged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stalls {
    /// Every stall since the start.
    pub count: u64,
    /// The longest since the start.
    pub max_ms: u64,
    /// The last [`STALLS_KEPT`], oldest first.
    pub recent: VecDeque<Stall>,
}

impl Stalls {
    pub fn record(&mut self, s: Stall) {
        self.count += 1;
        self.max_ms = self.max_ms.max(s.lag_ms);
        if self.recent.len() == STALLS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
    }

    /// Adds `other`'s stalls to these (several shards or executors seen as one).
    pub fn merge(&mut self, other: &Stalls) {
        self.count += other.count;
        self.max_ms = self.max_ms.max(other.max_ms);
        self.recent.extend(other.recent.iter().copied());
        self.recent.make_contiguous().sort_by_key(|s| s.at_ms);
    }

    /// The kept stalls that happened in `[from_ms, to_ms]`.
    pub fn between(&self, from_ms: i64, to_ms: i64) -> Vec<Stall> {
        self.recent
            .iter()
            .filter(|s| s.at_ms >= from_ms && s.at_ms <= to_ms)
            .copied()
            .collect()
    }

    /// `at_ms:lag_ms` words, oldest first (the runtime-info form).
    pub fn to_words(&self) -> String {
        let words: Vec<String> = self
            .recent
            .iter()
            .map(|s| format!("{}:{}", s.at_ms, s.lag_ms))
            .collect();
        words.join(" ")
    }

    /// Reads [`Stalls::to_words`] back; a malformed word is skipped.
    pub fn from_words(words: &str) -> Vec<Stall> {
        words
            .split_whitespace()
            .filter_map(|w| {
                let (at, lag) = w.split_once(':')?;
                Some(Stall {
                    at_ms: at.parse().ok()?,
                    lag_ms: lag.parse().ok()?,
                })
            })
            .collect()
    }
}

/// Runs the probe on the current glommio executor until the executor ends. `activity` is a
/// counter of the loop's work (it changes while the loop is busy); `on_stall` gets every stall.
pub fn spawn_probe(
    activity: impl Fn() -> u64 + 'static,
    mut on_stall: impl FnMut(Stall) + 'static,
) {
    glommio::spawn_local(async move {
        let mut seen = activity();
        let mut last_change = Instant::now();
        loop {
            let interval = if last_change.elapsed() >= IDLE_AFTER {
                IDLE_INTERVAL
            } else {
                PROBE_INTERVAL
            };
            let due = Instant::now() + interval;
            glommio::timer::sleep(interval).await;
            let now = activity();
            if now != seen {
                seen = now;
                last_change = Instant::now();
            }
            let lag = Instant::now().saturating_duration_since(due);
            if lag >= STALL_MIN {
                on_stall(Stall {
                    at_ms: super::now_ms(),
                    lag_ms: u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn a_blocked_loop_is_recorded_as_one_stall_of_its_length() {
        let seen = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let stalls = Rc::new(RefCell::new(Stalls::default()));
                let sink = stalls.clone();
                let turns = std::cell::Cell::new(0u64);
                let busy = move || {
                    turns.set(turns.get() + 1);
                    turns.get()
                };
                spawn_probe(busy, move |s| sink.borrow_mut().record(s));
                glommio::timer::sleep(Duration::from_millis(30)).await;
                let before = stalls.borrow().count;
                // Block the thread the way a bad task would.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(120));
                glommio::timer::sleep(Duration::from_millis(30)).await;
                let s = stalls.borrow().clone();
                (before, s)
            })
            .expect("executor")
            .join()
            .expect("join");
        let (before, after) = seen;
        let long: Vec<_> = after.recent.iter().filter(|s| s.lag_ms >= 100).collect();
        assert_eq!(long.len(), 1, "one stall of the block's length: {after:?}");
        assert!(long[0].lag_ms < 200, "{after:?}");
        assert!(after.count > before);
        assert!(after.max_ms >= 100);
    }

    #[test]
    fn records_keep_the_last_ones_and_merge_in_time_order() {
        let mut a = Stalls::default();
        for i in 0..(STALLS_KEPT as i64 + 3) {
            a.record(Stall {
                at_ms: 1000 + i * 10,
                lag_ms: 5 + (i as u64 % 7),
            });
        }
        assert_eq!(a.count, STALLS_KEPT as u64 + 3);
        assert_eq!(a.recent.len(), STALLS_KEPT);
        assert_eq!(a.recent.front().map(|s| s.at_ms), Some(1030));
        let mut b = Stalls::default();
        b.record(Stall {
            at_ms: 1035,
            lag_ms: 90,
        });
        a.merge(&b);
        assert_eq!(a.max_ms, 90);
        let w = a.to_words();
        let back = Stalls::from_words(&w);
        assert_eq!(back.len(), STALLS_KEPT + 1);
        assert!(back.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
        assert_eq!(a.between(1030, 1040).len(), 3);
        assert_eq!(
            Stalls::from_words("x 12:3 4: :5 7:8"),
            vec![
                Stall {
                    at_ms: 12,
                    lag_ms: 3
                },
                Stall {
                    at_ms: 7,
                    lag_ms: 8
                }
            ]
        );
    }
}
