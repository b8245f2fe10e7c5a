//! The result of a run (the JSON mqbench writes: every figure plus the environment), the final
//! table, and side-by-side reports (markdown) of several results with their ratios.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::hist::Summary;
use super::limits::{FsyncLimit, WakeLimit, WAKE_LATE_REPORT};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub namesrv: String,
    pub topics: Vec<String>,
    pub queues_per_topic: u32,
    pub producers: u32,
    pub consumers: u32,
    pub threads: u32,
    pub target_rate: f64,
    pub message_size: usize,
    pub batch: u32,
    pub keys: bool,
    pub delay_level: u32,
    pub warmup_s: u64,
    pub duration_s: u64,
    pub max_outstanding: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limits {
    pub fsync: Option<FsyncLimit>,
    pub loopback_rtt_us: Option<Summary>,
    /// Wake-up lateness with every core busy and the store's device writing.
    #[serde(default)]
    pub busy_device_wake: Option<WakeLimit>,
}

/// Message counts: whole run (warm-up and drain included) and the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub received: u64,
    pub window_sent: u64,
    pub window_acked: u64,
    pub window_received: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.errors += o.errors;
        self.received += o.received;
        self.window_sent += o.window_sent;
        self.window_acked += o.window_acked;
        self.window_received += o.window_received;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rates {
    pub target: f64,
    pub sent_per_s: f64,
    pub acked_per_s: f64,
    pub received_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrokerCpu {
    pub pid: u32,
    pub cpu_us: u64,
    pub messages: u64,
    pub us_per_message: f64,
    /// CPU seconds per wall second in the window (1.0 = one core busy).
    pub utilization: f64,
}

/// The broker's figures as ratios to the host's limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ratios {
    pub publish_p50_over_fdatasync_p50: Option<f64>,
    pub publish_p99_over_fdatasync_p99: Option<f64>,
    pub publish_p50_over_loopback_rtt_p50: Option<f64>,
    pub publish_p99_over_loopback_rtt_p99: Option<f64>,
    pub e2e_p50_over_loopback_rtt_p50: Option<f64>,
    /// Publish max over the busy-host probe's largest wake-up lateness.
    #[serde(default)]
    pub publish_max_over_busy_wake_late_max: Option<f64>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (a > 0 && b > 0).then(|| a as f64 / b as f64)
}

impl Ratios {
    pub fn of(r: &BenchResult) -> Self {
        let f = r.limits.fsync.as_ref().map(|f| f.write_fdatasync_4k_us);
        let t = r.limits.loopback_rtt_us;
        Self {
            publish_p50_over_fdatasync_p50: f.and_then(|f| ratio(r.publish_us.p50, f.p50)),
            publish_p99_over_fdatasync_p99: f.and_then(|f| ratio(r.publish_us.p99, f.p99)),
            publish_p50_over_loopback_rtt_p50: t.and_then(|t| ratio(r.publish_us.p50, t.p50)),
            publish_p99_over_loopback_rtt_p99: t.and_then(|t| ratio(r.publish_us.p99, t.p99)),
            e2e_p50_over_loopback_rtt_p50: t.and_then(|t| ratio(r.e2e_us.p50, t.p50)),
            publish_max_over_busy_wake_late_max: r
                .limits
                .busy_device_wake
                .as_ref()
                .and_then(|w| ratio(r.publish_us.max, w.late_us.max)),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondRow {
    pub t: u64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub received: u64,
    pub publish_p50_us: u64,
    pub publish_p99_us: u64,
    pub publish_max_us: u64,
    pub e2e_p99_us: u64,
    /// The longest event-loop stall of mqbench's executors in this second (ms, 0 = none).
    #[serde(default)]
    pub client_stall_max_ms: u64,
    /// The longest stall of the brokers' shards in this second (ms, 0 = none or unknown).
    #[serde(default)]
    pub broker_stall_max_ms: u64,
    /// The brokers' longest group-commit flush (write + fdatasync with SYNC_FLUSH) that took
    /// 5 ms or more in this second (ms, 0 = none or unknown).
    #[serde(default)]
    pub broker_flush_max_ms: u64,
    /// Percent of the host's CPU the hypervisor stole in about this second (None: unknown).
    #[serde(default)]
    pub host_steal_pct: Option<f64>,
}

/// Event-loop stalls (`runtime::lag`: a timer at least 5 ms late) in the measured window,
/// with where the stalled thread was (busy on the CPU, starved of one, or off it).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LoopStalls {
    pub count: u64,
    pub max_ms: u64,
    #[serde(default)]
    pub by_cause: crate::runtime::lag::ByCause,
}

impl LoopStalls {
    pub fn add(&mut self, o: &LoopStalls) {
        self.count += o.count;
        self.max_ms = self.max_ms.max(o.max_ms);
        self.by_cause.merge(&o.by_cause);
    }

    pub fn add_stall(&mut self, s: &crate::runtime::lag::Stall) {
        self.count += 1;
        self.max_ms = self.max_ms.max(s.lag_ms);
        self.by_cause.add(s);
    }

    /// "3 (max 40 ms: busy 0, starved 2 max 40, off-CPU 1 max 6)".
    pub fn describe(&self) -> String {
        let c = &self.by_cause;
        format!(
            "{} (max {} ms: busy {} max {}, starved {} max {}, off-CPU {} max {})",
            self.count,
            self.max_ms,
            c.busy,
            c.busy_max_ms,
            c.starved,
            c.starved_max_ms,
            c.off_cpu,
            c.off_cpu_max_ms
        )
    }
}

/// Which side stalled: a latency outlier with a broker stall of its size is the broker's, one
/// with a client stall is mqbench's (or the host's, when both stalled at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StallReport {
    /// mqbench's own executors (producers and consumer).
    pub client: LoopStalls,
    /// The brokers' shards, from their runtime info; `None` when a broker does not report
    /// them (upstream) or could not be asked.
    pub broker: Option<LoopStalls>,
    /// The brokers' group-commit flushes of 5 ms or more (the device's share of an outlier
    /// the shards' loops did not see); `None` when not reported. The cause counts are unused.
    #[serde(default)]
    pub broker_flush: Option<LoopStalls>,
    /// Percent of the host's CPU time stolen by the hypervisor over the measured window (a
    /// shared VM's neighbours): stalls and outliers in a run with much steal are the host's.
    #[serde(default)]
    pub host_steal_pct: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Curves {
    pub publish: Vec<[f64; 2]>,
    pub e2e: Vec<[f64; 2]>,
}

/// Recorded buckets `[value_us, count]` of the window's histograms (mergeable).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hists {
    pub publish: Vec<[u64; 2]>,
    pub e2e: Vec<[u64; 2]>,
    pub send_delay: Vec<[u64; 2]>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepStep {
    pub offered: f64,
    pub acked_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub ok: bool,
}

/// Everything one mqbench run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchResult {
    pub tool: String,
    pub label: String,
    /// `open-loop` (latency from the intended send time) or `closed-loop` (from the actual send).
    pub mode: String,
    pub workload: WorkloadInfo,
    pub environment: Environment,
    pub limits: Limits,
    pub counts: Counts,
    pub rate: Rates,
    pub publish_us: Summary,
    pub e2e_us: Summary,
    pub send_delay_us: Summary,
    pub broker_cpu: Option<BrokerCpu>,
    pub ratios: Ratios,
    pub percentile_curve: Curves,
    pub series: Vec<SecondRow>,
    pub histograms: Hists,
    pub first_error: Option<String>,
    pub sweep: Vec<SweepStep>,
    pub knee: Option<f64>,
    #[serde(default)]
    pub stalls: StallReport,
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn opt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}"))
}

/// The final table printed after a run.
pub fn table(r: &BenchResult) -> String {
    let mut s = String::new();
    let w = &r.workload;
    let _ = writeln!(
        s,
        "mqbench {} | {} | flush {} role {} | {} producers, {} consumers, {} B x{} | target {:.0}/s | {} s (+{} s warm-up)",
        r.label, r.mode, r.environment.flush_mode, r.environment.broker_role, w.producers,
        w.consumers, w.message_size, w.batch, w.target_rate, w.duration_s, w.warmup_s
    );
    let _ = writeln!(
        s,
        "rate: sent {:.0}/s acked {:.0}/s received {:.0}/s | counts: sent {} acked {} errors {} received {}",
        r.rate.sent_per_s, r.rate.acked_per_s, r.rate.received_per_s, r.counts.sent,
        r.counts.acked, r.counts.errors, r.counts.received
    );
    let _ = writeln!(
        s,
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
    );
    let mut row = |name: &str, x: &Summary| {
        let _ = writeln!(
            s,
            "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            ms(x.p50),
            ms(x.p90),
            ms(x.p99),
            ms(x.p999),
            ms(x.p9999),
            ms(x.max),
            x.count
        );
    };
    row("publish", &r.publish_us);
    row("end-to-end", &r.e2e_us);
    row("send delay", &r.send_delay_us);
    if let Some(f) = &r.limits.fsync {
        row(
            if f.o_direct {
                "4K O_DIRECT fdatasync"
            } else {
                "4K fdatasync (no O_DIRECT)"
            },
            &f.write_fdatasync_4k_us,
        );
    }
    if let Some(t) = &r.limits.loopback_rtt_us {
        row("loopback TCP RTT", t);
    }
    if let Some(w) = &r.limits.busy_device_wake {
        row("busy-host wake lateness", &w.late_us);
        let _ = writeln!(
            s,
            "busy host: {:.1} wake-ups ≥ {} ms late per second, steal {}, writer {:.0} MiB/s",
            w.late_5ms_per_s,
            WAKE_LATE_REPORT.as_millis(),
            w.steal_pct.map_or("-".into(), |p| format!("{p:.1} %")),
            w.write_mib_s
        );
    }
    if let Some(c) = &r.broker_cpu {
        let _ = writeln!(
            s,
            "broker CPU: {:.1} µs per message ({:.2} cores busy, pid {})",
            c.us_per_message, c.utilization, c.pid
        );
    }
    let _ =
        writeln!(
        s,
        "event-loop stalls >= 5 ms: broker {}; mqbench {}; broker flushes >= 5 ms: {}; host CPU \
         stolen by the hypervisor {}",
        r.stalls
            .broker
            .map_or("not reported".into(), |b| b.describe()),
        r.stalls.client.describe(),
        r.stalls
            .broker_flush
            .map_or("not reported".into(), |f| format!("{} (max {} ms)", f.count, f.max_ms)),
        r.stalls
            .host_steal_pct
            .map_or("unknown".into(), |p| format!("{p:.1} %"))
    );
    let q = &r.ratios;
    let _ = writeln!(
        s,
        "ratios: publish p50/fdatasync p50 {}  publish p99/fdatasync p99 {}  publish p50/RTT p50 {}  e2e p50/RTT p50 {}  publish max/busy-host wake max {}",
        opt_ratio(q.publish_p50_over_fdatasync_p50),
        opt_ratio(q.publish_p99_over_fdatasync_p99),
        opt_ratio(q.publish_p50_over_loopback_rtt_p50),
        opt_ratio(q.e2e_p50_over_loopback_rtt_p50),
        opt_ratio(q.publish_max_over_busy_wake_late_max)
    );
    if r.mode == "open-loop" && r.send_delay_us.p99 > 5_000 {
        let _ = writeln!(
            s,
            "note: send delay p99 {} ms: mqbench itself fell behind the offered rate (client CPU-starved?); the latency above includes that",
            ms(r.send_delay_us.p99)
        );
    }
    if let Some(k) = r.knee {
        let _ = writeln!(s, "sweep knee: {k:.0} msgs/s");
    }
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "first error: {e}");
    }
    s
}

/// One markdown row per result.
pub fn markdown_rows(results: &[BenchResult]) -> String {
    let mut s = String::from(
        "| run | mode | flush | role | producers | size B | target/s | acked/s | publish p50 ms | p99 | p99.9 | max | e2e p99 ms | broker CPU µs/msg | fdatasync p50 ms | RTT p50 µs | stall max ms broker/mqbench | slow flush max ms | host steal % | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} |",
            r.label,
            r.mode,
            r.environment.flush_mode,
            r.environment.broker_role,
            r.workload.producers,
            r.workload.message_size,
            r.workload.target_rate,
            r.rate.acked_per_s,
            ms(r.publish_us.p50),
            ms(r.publish_us.p99),
            ms(r.publish_us.p999),
            ms(r.publish_us.max),
            ms(r.e2e_us.p99),
            r.broker_cpu
                .as_ref()
                .map_or("-".into(), |c| format!("{:.1}", c.us_per_message)),
            r.limits
                .fsync
                .as_ref()
                .map_or("-".into(), |f| ms(f.write_fdatasync_4k_us.p50)),
            r.limits
                .loopback_rtt_us
                .map_or("-".into(), |t| t.p50.to_string()),
            r.stalls
                .broker
                .map_or("-".into(), |b| b.max_ms.to_string()),
            r.stalls.client.max_ms,
            r.stalls
                .broker_flush
                .map_or("-".into(), |f| f.max_ms.to_string()),
            r.stalls
                .host_steal_pct
                .map_or("-".into(), |p| format!("{p:.1}")),
            r.counts.errors
        );
    }
    s
}

/// Side by side: A and B (merged runs of each) with B/A and A/B ratios.
pub fn markdown_compare(a: &BenchResult, b: &BenchResult) -> String {
    let mut s = markdown_rows(&[a.clone(), b.clone()]);
    let _ = writeln!(
        s,
        "\n| figure | {} | {} | {} / {} |\n|---|---|---|---|",
        a.label, b.label, a.label, b.label
    );
    let rows: [(&str, f64, f64); 8] = [
        ("acked msgs/s", a.rate.acked_per_s, b.rate.acked_per_s),
        (
            "publish p50 µs",
            a.publish_us.p50 as f64,
            b.publish_us.p50 as f64,
        ),
        (
            "publish p99 µs",
            a.publish_us.p99 as f64,
            b.publish_us.p99 as f64,
        ),
        (
            "publish p99.9 µs",
            a.publish_us.p999 as f64,
            b.publish_us.p999 as f64,
        ),
        (
            "publish max µs",
            a.publish_us.max as f64,
            b.publish_us.max as f64,
        ),
        ("e2e p99 µs", a.e2e_us.p99 as f64, b.e2e_us.p99 as f64),
        (
            "broker CPU µs/msg",
            a.broker_cpu.as_ref().map_or(0.0, |c| c.us_per_message),
            b.broker_cpu.as_ref().map_or(0.0, |c| c.us_per_message),
        ),
        ("errors", a.counts.errors as f64, b.counts.errors as f64),
    ];
    for (name, x, y) in rows {
        let r = if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "-".into()
        };
        let _ = writeln!(s, "| {name} | {x:.1} | {y:.1} | {r} |");
    }
    s
}
