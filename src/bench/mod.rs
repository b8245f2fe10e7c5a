//! mqbench: a latency harness for any RocketMQ-compatible cluster (DESIGN.md §5, issue #6).
//!
//! - `run`: producer/consumer tasks on glommio executors, open or closed loop, per-second stats.
//! - `hist`: HdrHistogram (µs) helpers and summaries (merged, never averaged).
//! - `limits`: the host's limits (O_DIRECT 4 KiB write+fdatasync, loopback RTT, /proc CPU).
//! - `env`: the environment of a result (CPU, kernel, filesystem, device, flush mode, role, rev).
//! - `report`: the result (JSON), the final table, side-by-side reports of several results.
//! - `plot`: SVG plots (percentile curve, latency over time, throughput over time).
//! - `workload`: OMB-style YAML workload files.
//!
//! [`run_bench`] is the whole measurement: host limits first (nothing else running), then the
//! load phase(s) with a live line per second, then the result.
//!
//! The orchestration here runs on the tool's main thread, never on a glommio executor, so it
//! sleeps with `std::thread::sleep`.
#![allow(clippy::disallowed_methods)]

pub mod env;
pub mod hist;
pub mod limits;
pub mod plot;
pub mod report;
pub mod run;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use crate::client::MqClient;
use crate::constants::GLOMMIO_IO_MEMORY_BYTES;
use hist::{from_buckets, new_hist, to_buckets, Summary};
use report::{
    BenchResult, BrokerCpu, Counts, Hists, Limits, Rates, Ratios, SecondRow, SweepStep,
    WorkloadInfo,
};
use run::{Load, Shared};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("setup: {0}")]
    Setup(String),
    #[error("{0}")]
    Limit(#[from] limits::LimitError),
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("read {path}: {reason}")]
    Read { path: String, reason: String },
}

/// Everything a run is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub load: Load,
    pub queues: u32,
    pub create_topics: bool,
    pub label: String,
    pub store_dir: Option<PathBuf>,
    pub broker_pid: Option<u32>,
    pub skip_limits: bool,
    /// Rate sweep: offered rates to step through; stops at the first whose p99 breaks.
    pub sweep: Vec<f64>,
    pub p99_target_ms: f64,
    pub quiet: bool,
}

/// What the setup executor learned about the cluster.
#[derive(Debug, Default)]
struct ClusterInfo {
    masters: Vec<String>,
    flush_mode: String,
    role: String,
    version: String,
    store_root: String,
}

/// Runs `f` on a short-lived glommio executor and returns its value.
fn on_executor<T: Send + 'static, F, Fut>(name: &str, f: F) -> Result<T, BenchError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(GLOMMIO_IO_MEMORY_BYTES)
        .spawn(f)
        .map_err(|e| BenchError::Setup(format!("cannot start executor {name}: {e}")))?
        .join()
        .map_err(|e| BenchError::Setup(format!("executor {name}: {e}")))
}

fn setup_cluster(o: &Options) -> Result<ClusterInfo, BenchError> {
    let (ns, topics, queues, create, timeout) = (
        o.load.namesrv.clone(),
        o.load.topics.clone(),
        o.queues,
        o.create_topics,
        o.load.timeout,
    );
    on_executor("mqbench-setup", move || async move {
        let c = MqClient::new(&ns, timeout).map_err(|e| e.to_string())?;
        let mut info = ClusterInfo::default();
        for t in &topics {
            let r = if create {
                c.ensure_topic(t, queues, Duration::from_secs(30)).await
            } else {
                c.fetch_route(t).await
            }
            .map_err(|e| format!("topic {t}: {e}"))?;
            for (_, a) in r.masters {
                if !info.masters.contains(&a) {
                    info.masters.push(a);
                }
            }
        }
        if let Some(a) = info.masters.first() {
            if let Ok(cfg) = c.broker_config(a).await {
                info.flush_mode = cfg.get("flushDiskType").unwrap_or_default().to_string();
                info.role = cfg.get("brokerRole").unwrap_or_default().to_string();
                info.store_root = cfg.get("storePathRootDir").unwrap_or_default().to_string();
            }
            if let Ok(rt) = c.runtime_info(a).await {
                info.version = rt.get("brokerVersionDesc").unwrap_or_default().to_string();
            }
        }
        Ok::<_, String>(info)
    })?
    .map_err(BenchError::Setup)
}

fn is_local(addr: &str) -> bool {
    addr.starts_with("127.") || addr.starts_with("localhost")
}

/// Used share of the store's disk from which mqbench warns (upstream's default
/// `diskMaxUsedSpaceRatio`).
const DISK_USED_WARN_PERCENT: f64 = 75.0;

/// How long the busy-host probe runs: 20 periods of a CFS bandwidth throttle (100 ms), which
/// is what it shows on this project's VMs.
const BUSY_WAKE_PROBE: Duration = Duration::from_secs(2);

/// The whole measurement: limits, then the load (or the sweep), then the result.
pub fn run_bench(o: &Options) -> Result<BenchResult, BenchError> {
    let cluster = setup_cluster(o)?;
    let local = cluster.masters.iter().all(|a| is_local(a));
    let store_dir = o.store_dir.clone().unwrap_or_else(|| {
        let root = PathBuf::from(&cluster.store_root);
        if local && !cluster.store_root.is_empty() && root.is_dir() {
            root
        } else {
            PathBuf::from("target")
        }
    });
    let mut environment = env::local(&store_dir);
    environment.flush_mode = cluster.flush_mode.clone();
    environment.broker_role = cluster.role.clone();
    environment.broker_version = cluster.version.clone();
    environment.broker_addrs = cluster.masters.clone();
    if !o.quiet && environment.store_disk_used_percent >= DISK_USED_WARN_PERCENT {
        eprintln!(
            "mqbench: warning: {} is {}% full: over a broker's diskMaxUsedSpaceRatio ({DISK_USED_WARN_PERCENT} by default) retention deletes commit-log files during the run{}, and over {}% sends are refused",
            store_dir.display(),
            environment.store_disk_used_percent,
            if environment.mount_options.split(',').any(|o| o == "discard") {
                " (this filesystem is mounted `discard`: each deletion also costs device time)"
            } else {
                ""
            },
            (crate::store::retention::DISK_WARNING_RATIO_DEFAULT * 100.0).round()
        );
    }
    let broker_pid = o
        .broker_pid
        .or_else(|| local.then(|| limits::find_process("mqbroker")).flatten());
    let limits = if o.skip_limits {
        Limits::default()
    } else {
        if !o.quiet {
            eprintln!(
                "mqbench: measuring host limits (fdatasync in {}, loopback RTT, wake-ups of a busy host)",
                store_dir.display()
            );
        }
        // The busy-host probe first: the quiet probes after it give the device time to
        // settle before the load.
        let busy_device_wake = limits::busy_device_wake_lateness(&store_dir, BUSY_WAKE_PROBE)?;
        Limits {
            fsync: Some(limits::fsync_latency(
                &store_dir,
                500,
                Duration::from_secs(3),
            )?),
            loopback_rtt_us: Some(limits::loopback_rtt(5000, Duration::from_secs(1))?),
            busy_device_wake: Some(busy_device_wake),
        }
    };
    let mut sweep = Vec::new();
    let mut result = None;
    let brokers = cluster.masters.clone();
    let run_phase = |o: &Options, load: &Load, pid| phase(o, load, pid, &brokers);
    if o.sweep.is_empty() {
        result = Some(run_phase(o, &o.load, broker_pid)?);
    } else {
        for &rate in &o.sweep {
            let mut load = o.load.clone();
            load.rate = rate;
            let r = run_phase(o, &load, broker_pid)?;
            let ok = r.publish_us.p99 as f64 <= o.p99_target_ms * 1000.0
                && r.rate.acked_per_s >= 0.95 * rate
                && r.counts.errors == 0;
            sweep.push(SweepStep {
                offered: rate,
                acked_per_s: r.rate.acked_per_s,
                p50_us: r.publish_us.p50,
                p99_us: r.publish_us.p99,
                p999_us: r.publish_us.p999,
                max_us: r.publish_us.max,
                ok,
            });
            if !o.quiet {
                eprintln!(
                    "sweep: offered {rate:.0}/s acked {:.0}/s p99 {} µs {}",
                    r.rate.acked_per_s,
                    r.publish_us.p99,
                    if ok { "ok" } else { "BROKEN" }
                );
            }
            if !ok {
                result.get_or_insert(r);
                break;
            }
            result = Some(r);
        }
    }
    let mut r = result.ok_or_else(|| BenchError::Setup("no phase ran".into()))?;
    r.knee = sweep
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.offered)
        .reduce(f64::max);
    r.sweep = sweep;
    r.environment = environment;
    r.limits = limits;
    r.label.clone_from(&o.label);
    r.ratios = Ratios::of(&r);
    Ok(r)
}

fn pct(h: &hdrhistogram::Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn live_line(sec: u64, s: Option<&run::Second>, shared: &Shared) {
    let (acked, errs, p99, e2e99) = s.map_or((0, 0, 0, 0), |s| {
        (
            s.acked,
            s.errors,
            s.publish.as_ref().map_or(0, |h| pct(h, 0.99)),
            s.e2e.as_ref().map_or(0, |h| pct(h, 0.99)),
        )
    });
    let backlog = shared
        .acked
        .load(Ordering::Relaxed)
        .saturating_sub(shared.received.load(Ordering::Relaxed));
    eprintln!(
        "[{sec:>4}s] acked {acked:>7}/s  errors {errs:>4}  in-flight {:>5}  backlog {backlog:>6}  publish p99 {:>8.3} ms  e2e p99 {:>8.3} ms",
        shared.in_flight.load(Ordering::Relaxed),
        p99 as f64 / 1000.0,
        e2e99 as f64 / 1000.0
    );
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// What the brokers say about a run's outliers (GET_BROKER_RUNTIME_INFO): their shards' loop
/// stalls (`shardmqLoopStalls`) and slow group-commit flushes (`shardmqSlowFlushes`), each
/// merged over the brokers.
struct BrokerEvents {
    stalls: Vec<crate::runtime::lag::Stall>,
    flushes: Vec<crate::runtime::lag::Stall>,
}

/// `None` when a broker does not report them (upstream) or does not answer.
fn broker_events(o: &Options, brokers: &[String]) -> Option<BrokerEvents> {
    let (ns, timeout, brokers) = (o.load.namesrv.clone(), o.load.timeout, brokers.to_vec());
    on_executor("mqbench-stalls", move || async move {
        let c = MqClient::new(&ns, timeout).ok()?;
        let mut all = BrokerEvents {
            stalls: Vec::new(),
            flushes: Vec::new(),
        };
        for a in &brokers {
            let info = c.runtime_info(a).await.ok()?;
            let words = |key: &str| info.get(key).map(crate::runtime::lag::Stalls::from_words);
            all.stalls.extend(words("shardmqLoopStalls")?);
            all.flushes.extend(words("shardmqSlowFlushes")?);
        }
        Some(all)
    })
    .ok()
    .flatten()
}

/// One load phase at `load.rate`.
fn phase(
    o: &Options,
    load: &Load,
    broker_pid: Option<u32>,
    brokers: &[String],
) -> Result<BenchResult, BenchError> {
    let (stats_tx, stats_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared::new(stats_tx));
    let mut seconds: std::collections::BTreeMap<u64, run::Second> = Default::default();
    let collect = |seconds: &mut std::collections::BTreeMap<u64, run::Second>| {
        while let Ok(batch) = stats_rx.try_recv() {
            for (k, v) in batch {
                seconds.entry(k).or_default().merge(v);
            }
        }
    };
    let run_id = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    );
    // Producers start on a whole second of the epoch (start = epoch), after consumers are set.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The consumer computes e2e from the epoch, which must be known before it starts: fix the
    // epoch first, far enough ahead for the consumer's set-up (offsets of every queue).
    let epoch = Instant::now() + Duration::from_millis(1500);
    let epoch_wall_ms = crate::runtime::now_ms() + 1500;
    let consumer = run::spawn_consumers(load, epoch, shared.clone(), run_id.clone(), ready_tx);
    let _ = ready_rx.recv_timeout(Duration::from_secs(30));
    if let Some(e) = shared.setup_error.get() {
        shared.stop_pull.store(true, Ordering::Relaxed);
        return Err(BenchError::Setup(e.clone()));
    }
    let start = epoch.max(Instant::now() + Duration::from_millis(100));
    let producers = run::spawn_producers(load, epoch, start, &shared, &run_id);
    let warm = load.warmup.as_secs();
    let dur = load.duration.as_secs().max(1);
    let end_send = start + load.warmup + load.duration;
    let mut cpu_from = if warm == 0 {
        broker_pid.and_then(limits::process_cpu_us)
    } else {
        None
    };
    let mut cpu_to = None;
    // Hypervisor steal: per second (sampled on this thread's tick, so "about" that second) and
    // over the measured window.
    let mut steal_at = limits::host_cpu_ticks();
    let mut steal_per_sec: std::collections::BTreeMap<u64, f64> = Default::default();
    let (mut steal_from, mut steal_to) = (if warm == 0 { steal_at } else { None }, None);
    let mut sec = 1u64;
    while Instant::now() < end_send + Duration::from_millis(300) {
        sleep_until(epoch + Duration::from_millis(sec * 1000 + 300));
        let ticks = limits::host_cpu_ticks();
        if let Some(p) = steal_at
            .zip(ticks)
            .and_then(|(a, b)| limits::steal_pct(a, b))
        {
            steal_per_sec.insert(sec - 1, p);
        }
        steal_at = ticks;
        if sec == warm && warm > 0 {
            cpu_from = broker_pid.and_then(limits::process_cpu_us);
            steal_from = ticks;
        }
        if sec == warm + dur {
            cpu_to = broker_pid.and_then(limits::process_cpu_us);
            steal_to = ticks;
        }
        collect(&mut seconds);
        if !o.quiet {
            live_line(sec - 1, seconds.get(&(sec - 1)), &shared);
        }
        if shared.setup_error.get().is_some() {
            break;
        }
        sec += 1;
    }
    for p in producers {
        let _ = p.join();
    }
    // Drain: consumers catch up with everything acknowledged.
    if load.consumers > 0 {
        let deadline = Instant::now() + load.drain;
        while Instant::now() < deadline
            && shared.received.load(Ordering::Relaxed) < shared.acked.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let a last in-flight pull land, then stop.
        std::thread::sleep(Duration::from_millis(100));
    }
    shared.stop_pull.store(true, Ordering::Relaxed);
    if let Some(c) = consumer {
        let _ = c.join();
    }
    if let Some(e) = shared.setup_error.get() {
        return Err(BenchError::Setup(e.clone()));
    }
    collect(&mut seconds);
    let warm_ms = i64::try_from(warm.saturating_mul(1000)).unwrap_or(i64::MAX);
    let dur_ms = i64::try_from(dur.saturating_mul(1000)).unwrap_or(i64::MAX);
    let events = broker_events(o, brokers);
    let mut stalls = report::StallReport {
        broker: events.as_ref().map(|_| report::LoopStalls::default()),
        broker_flush: events.as_ref().map(|_| report::LoopStalls::default()),
        host_steal_pct: steal_from
            .zip(steal_to)
            .and_then(|(a, b)| limits::steal_pct(a, b)),
        ..Default::default()
    };
    // A broker event's second, counted from the epoch like every other figure of the run.
    let broker_sec = |at_ms: i64| u64::try_from((at_ms - epoch_wall_ms).div_euclid(1000)).ok();
    let in_window = |at_ms: i64| {
        at_ms >= epoch_wall_ms + warm_ms
            && at_ms < epoch_wall_ms.saturating_add(warm_ms).saturating_add(dur_ms)
    };
    if let Some(ev) = &events {
        for (list, flush) in [(&ev.stalls, false), (&ev.flushes, true)] {
            for st in list {
                let Some(sec) = broker_sec(st.at_ms) else {
                    continue;
                };
                let v = seconds.entry(sec).or_default();
                let (max, total) = if flush {
                    (&mut v.broker_flush_max_ms, stalls.broker_flush.as_mut())
                } else {
                    (&mut v.broker_stall_max_ms, stalls.broker.as_mut())
                };
                *max = (*max).max(st.lag_ms);
                if let (true, Some(t)) = (in_window(st.at_ms), total) {
                    t.add_stall(st);
                }
            }
        }
    }
    let mut publish = new_hist();
    let mut e2e = new_hist();
    let mut delay = new_hist();
    let mut counts = Counts::default();
    let mut series = Vec::new();
    for (s, v) in &seconds {
        counts.sent += v.sent;
        counts.acked += v.acked;
        counts.errors += v.errors;
        counts.received += v.received;
        let in_window = *s >= warm && *s < warm + dur;
        if in_window {
            stalls.client.add(&v.stalls);
            counts.window_acked += v.acked;
            counts.window_received += v.received;
            counts.window_sent += v.sent;
        }
        if *s >= warm {
            for (dst, src) in [
                (&mut publish, &v.publish),
                (&mut e2e, &v.e2e),
                (&mut delay, &v.delay),
            ] {
                if let Some(h) = src {
                    let _ = dst.add(h);
                }
            }
        }
        let p = v.publish.as_ref();
        series.push(SecondRow {
            t: *s,
            sent: v.sent,
            acked: v.acked,
            errors: v.errors,
            received: v.received,
            publish_p50_us: p.map_or(0, |h| pct(h, 0.5)),
            publish_p99_us: p.map_or(0, |h| pct(h, 0.99)),
            publish_max_us: p.map_or(0, |h| if h.is_empty() { 0 } else { h.max() }),
            e2e_p99_us: v.e2e.as_ref().map_or(0, |h| pct(h, 0.99)),
            client_stall_max_ms: v.stalls.max_ms,
            broker_stall_max_ms: v.broker_stall_max_ms,
            broker_flush_max_ms: v.broker_flush_max_ms,
            host_steal_pct: steal_per_sec.get(s).copied(),
        });
    }
    let d = dur as f64;
    let broker_cpu = match (broker_pid, cpu_from, cpu_to) {
        (Some(pid), Some(a), Some(b)) => Some(BrokerCpu {
            pid,
            cpu_us: b.saturating_sub(a),
            messages: counts.window_acked,
            us_per_message: if counts.window_acked > 0 {
                b.saturating_sub(a) as f64 / counts.window_acked as f64
            } else {
                0.0
            },
            utilization: b.saturating_sub(a) as f64 / (d * 1e6),
        }),
        _ => None,
    };
    let first_error = shared.first_error.get().cloned();
    let l = load;
    Ok(BenchResult {
        tool: "mqbench".into(),
        label: String::new(),
        mode: if l.open_loop {
            "open-loop"
        } else {
            "closed-loop"
        }
        .into(),
        workload: WorkloadInfo {
            namesrv: l.namesrv.clone(),
            topics: l.topics.clone(),
            queues_per_topic: o.queues,
            producers: l.producers,
            consumers: l.consumers,
            threads: l.threads,
            target_rate: l.rate,
            message_size: l.message_size,
            batch: l.batch,
            keys: l.keys,
            delay_level: l.delay_level,
            warmup_s: warm,
            duration_s: dur,
            max_outstanding: l.max_outstanding,
        },
        environment: env::Environment::default(),
        limits: Limits::default(),
        rate: Rates {
            target: l.rate,
            sent_per_s: counts.window_sent as f64 / d,
            acked_per_s: counts.window_acked as f64 / d,
            received_per_s: counts.window_received as f64 / d,
        },
        counts,
        publish_us: Summary::of(&publish),
        e2e_us: Summary::of(&e2e),
        send_delay_us: Summary::of(&delay),
        broker_cpu,
        ratios: Ratios::default(),
        percentile_curve: report::Curves {
            publish: hist::percentile_curve(&publish),
            e2e: hist::percentile_curve(&e2e),
        },
        series,
        histograms: Hists {
            publish: to_buckets(&publish),
            e2e: to_buckets(&e2e),
            send_delay: to_buckets(&delay),
        },
        first_error,
        sweep: Vec::new(),
        knee: None,
        stalls,
    })
}

/// Merges results of repeated runs of one workload (alternating runs of bench-compare):
/// histograms merged, counts and rates summed/averaged, the first run's environment kept.
pub fn merge_results(runs: &[BenchResult]) -> Option<BenchResult> {
    let mut out = runs.first()?.clone();
    if runs.len() == 1 {
        return Some(out);
    }
    let mut p = new_hist();
    let mut e = new_hist();
    let mut dl = new_hist();
    let mut counts = Counts::default();
    let (mut acked, mut recv, mut sent) = (0.0, 0.0, 0.0);
    let mut cpu: Vec<f64> = Vec::new();
    let mut stalls = report::StallReport {
        broker: runs
            .iter()
            .all(|r| r.stalls.broker.is_some())
            .then(report::LoopStalls::default),
        broker_flush: runs
            .iter()
            .all(|r| r.stalls.broker_flush.is_some())
            .then(report::LoopStalls::default),
        // Runs of equal length: the mean of their steal is the steal of all of them.
        host_steal_pct: runs
            .iter()
            .map(|r| r.stalls.host_steal_pct)
            .sum::<Option<f64>>()
            .map(|total| total / runs.len().max(1) as f64),
        ..Default::default()
    };
    for r in runs {
        stalls.client.add(&r.stalls.client);
        if let (Some(m), Some(b)) = (stalls.broker.as_mut(), r.stalls.broker.as_ref()) {
            m.add(b);
        }
        if let (Some(m), Some(b)) = (stalls.broker_flush.as_mut(), r.stalls.broker_flush.as_ref()) {
            m.add(b);
        }
        let _ = p.add(from_buckets(&r.histograms.publish));
        let _ = e.add(from_buckets(&r.histograms.e2e));
        let _ = dl.add(from_buckets(&r.histograms.send_delay));
        counts.add(&r.counts);
        acked += r.rate.acked_per_s;
        recv += r.rate.received_per_s;
        sent += r.rate.sent_per_s;
        if let Some(c) = &r.broker_cpu {
            cpu.push(c.us_per_message);
        }
    }
    let n = runs.len() as f64;
    out.counts = counts;
    out.stalls = stalls;
    out.rate.acked_per_s = acked / n;
    out.rate.received_per_s = recv / n;
    out.rate.sent_per_s = sent / n;
    out.publish_us = Summary::of(&p);
    out.e2e_us = Summary::of(&e);
    out.send_delay_us = Summary::of(&dl);
    out.percentile_curve = report::Curves {
        publish: hist::percentile_curve(&p),
        e2e: hist::percentile_curve(&e),
    };
    out.histograms = Hists {
        publish: to_buckets(&p),
        e2e: to_buckets(&e),
        send_delay: to_buckets(&dl),
    };
    if let Some(c) = out.broker_cpu.as_mut() {
        c.us_per_message = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
    }
    out.ratios = Ratios::of(&out);
    Some(out)
}
