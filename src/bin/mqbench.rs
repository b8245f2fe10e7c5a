//! mqbench: latency harness for any RocketMQ-compatible cluster (see README "mqbench").
//!
//! `mqbench run -n 127.0.0.1:9876 --rate 10000 --producers 4 --json out.json --plots dir`
//! `mqbench report --out dir a.json b.json ...`      (one table + overlaid percentile curves)
//! `mqbench compare --out dir --a shardmq=r1.json,r3.json --b peer=r2.json,r4.json`

#![allow(clippy::print_stdout, clippy::print_stderr)] // reason: a command-line tool

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shardmq::bench::report::{self, BenchResult};
use shardmq::bench::run::Load;
use shardmq::bench::{merge_results, plot, run_bench, workload, BenchError, Options};

#[derive(Parser, Debug)]
#[command(
    name = "mqbench",
    about = "Open-loop latency harness for RocketMQ-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a workload and report its latency, throughput and the host's limits.
    Run(Box<RunArgs>),
    /// One table (markdown) and one percentile plot of several result files.
    Report {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "mqbench report")]
        title: String,
        files: Vec<PathBuf>,
    },
    /// Side by side: two sets of runs (merged histograms per side) with ratios.
    Compare {
        #[arg(long)]
        out: PathBuf,
        /// label=file.json,file.json,...
        #[arg(long)]
        a: String,
        /// label=file.json,file.json,...
        #[arg(long)]
        b: String,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Nameserver address list, `host:port;host:port`.
    #[arg(short = 'n', long)]
    namesrv: String,
    /// Topic name (with --topics N > 1: `<topic>_<i>`).
    #[arg(long, default_value = "BenchmarkTest")]
    topic: String,
    #[arg(long, default_value_t = 1)]
    topics: u32,
    /// Queues per topic per broker (created with UPDATE_AND_CREATE_TOPIC).
    #[arg(long, default_value_t = 8)]
    queues: u32,
    #[arg(long, default_value_t = 1)]
    producers: u32,
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Producer executors (threads); producers are tasks spread over them.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Offered messages/s, all producers together (open loop). 0 with --closed-loop = unthrottled.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Closed loop: one send in flight per producer, latency from the actual send.
    #[arg(long)]
    closed_loop: bool,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages per send (SEND_BATCH_MESSAGE when > 1).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Give every message a KEYS property.
    #[arg(long)]
    keys: bool,
    /// Delay level (DELAY property), 0 = none.
    #[arg(long, default_value_t = 0)]
    delay_level: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    #[arg(long, default_value_t = 10_000)]
    max_outstanding: u32,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Seconds to wait after sending for consumers to catch up.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// OMB workload YAML; its fields override the options above.
    #[arg(long)]
    workload: Option<PathBuf>,
    /// Rate sweep: `start:step:max` or `r1,r2,...`; stops at the first rate whose p99 breaks.
    #[arg(long)]
    sweep: Option<String>,
    #[arg(long, default_value_t = 5.0)]
    p99_target_ms: f64,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    plots: Option<PathBuf>,
    #[arg(long, default_value = "run")]
    label: String,
    /// Directory for the fdatasync measurement (default: the broker's storePathRootDir when
    /// local, else target/).
    #[arg(long)]
    store_dir: Option<PathBuf>,
    /// Broker pid for CPU per message (default: the only local process named mqbroker).
    #[arg(long)]
    broker_pid: Option<u32>,
    #[arg(long)]
    skip_limits: bool,
    /// Do not create the topics (they must exist).
    #[arg(long)]
    no_create_topic: bool,
    #[arg(long)]
    quiet: bool,
}

fn parse_sweep(s: &str) -> Result<Vec<f64>, String> {
    let bad = || format!("--sweep {s:?}: want start:step:max or r1,r2,...");
    if let Some((a, rest)) = s.split_once(':') {
        let (b, c) = rest.split_once(':').ok_or_else(bad)?;
        let (start, step, max): (f64, f64, f64) = (
            a.parse().map_err(|_| bad())?,
            b.parse().map_err(|_| bad())?,
            c.parse().map_err(|_| bad())?,
        );
        if step <= 0.0 || start <= 0.0 {
            return Err(bad());
        }
        let mut v = Vec::new();
        let mut r = start;
        while r <= max + 1e-9 {
            v.push(r);
            r += step;
        }
        Ok(v)
    } else {
        s.split(',')
            .map(|x| x.trim().parse().map_err(|_| bad()))
            .collect()
    }
}

fn options(a: RunArgs) -> Result<(Options, Option<PathBuf>, Option<PathBuf>), String> {
    let mut a = a;
    if let Some(p) = &a.workload {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let w = workload::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        if let Some(v) = w.topics {
            a.topics = v;
        }
        if let Some(v) = w.partitions_per_topic {
            a.queues = v;
        }
        if let Some(v) = w.message_size {
            a.size = v;
        }
        if let Some(v) = w.producers_per_topic {
            a.producers = v * a.topics;
        }
        if let Some(v) = w.consumer_per_subscription {
            a.consumers = v * w.subscriptions_per_topic.unwrap_or(1).min(1);
        }
        if let Some(v) = w.producer_rate {
            a.rate = v;
        }
        if let Some(v) = w.test_duration_minutes {
            a.duration = (v * 60.0).round() as u64;
        }
        if let Some(v) = w.warmup_duration_minutes {
            a.warmup = (v * 60.0).round() as u64;
        }
        if a.label == "run" {
            if let Some(n) = w.name {
                a.label = n;
            }
        }
    }
    if a.producers == 0 {
        return Err("--producers must be at least 1".into());
    }
    if !a.closed_loop && a.rate <= 0.0 {
        return Err("open loop needs --rate > 0 (or use --closed-loop)".into());
    }
    let topics = if a.topics <= 1 {
        vec![a.topic.clone()]
    } else {
        (0..a.topics).map(|i| format!("{}_{i}", a.topic)).collect()
    };
    let sweep = a
        .sweep
        .as_deref()
        .map(parse_sweep)
        .transpose()?
        .unwrap_or_default();
    let rate = if a.closed_loop {
        a.rate.max(0.0)
    } else {
        a.rate
    };
    Ok((
        Options {
            load: Load {
                namesrv: a.namesrv,
                topics,
                producers: a.producers,
                consumers: a.consumers,
                threads: a.threads.max(1),
                rate,
                open_loop: !a.closed_loop,
                message_size: a.size,
                batch: a.batch.max(1),
                keys: a.keys,
                delay_level: a.delay_level,
                warmup: Duration::from_secs(a.warmup),
                duration: Duration::from_secs(a.duration.max(1)),
                max_outstanding: a.max_outstanding,
                group: "mqbench_producer".into(),
                timeout: Duration::from_millis(a.timeout_ms),
                drain: Duration::from_secs(a.drain),
            },
            queues: a.queues.max(1),
            create_topics: !a.no_create_topic,
            label: a.label,
            store_dir: a.store_dir,
            broker_pid: a.broker_pid,
            skip_limits: a.skip_limits,
            sweep,
            p99_target_ms: a.p99_target_ms,
            quiet: a.quiet,
        },
        a.json,
        a.plots,
    ))
}

fn read_result(p: &Path) -> Result<BenchResult, BenchError> {
    let text = std::fs::read_to_string(p).map_err(|e| BenchError::Read {
        path: p.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| BenchError::Read {
        path: p.display().to_string(),
        reason: e.to_string(),
    })
}

fn write(p: &Path, text: &str) -> Result<(), BenchError> {
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    std::fs::write(p, text).map_err(|source| BenchError::Write {
        path: p.display().to_string(),
        source,
    })
}

fn side(spec: &str) -> Result<BenchResult, String> {
    let (label, files) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: want label=file.json,file.json"))?;
    let runs: Vec<BenchResult> = files
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| read_result(Path::new(f)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut r = merge_results(&runs).ok_or_else(|| format!("{spec:?}: no result files"))?;
    r.label = format!("{label} ({} runs)", runs.len());
    Ok(r)
}

fn main_inner() -> Result<(), String> {
    match Cli::parse().cmd {
        Cmd::Run(a) => {
            let (o, json, plots) = options(*a)?;
            let r = run_bench(&o).map_err(|e| e.to_string())?;
            println!("{}", report::table(&r));
            if let Some(p) = json {
                let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
                write(&p, &text).map_err(|e| e.to_string())?;
            }
            if let Some(d) = plots {
                let label: String = r
                    .label
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                plot::plot_result(&d, &label, &r)?;
            }
            Ok(())
        }
        Cmd::Report { out, title, files } => {
            let results: Vec<BenchResult> = files
                .iter()
                .map(|f| read_result(f).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let md = format!("# {title}\n\n{}", report::markdown_rows(&results));
            write(&out.join("report.md"), &md).map_err(|e| e.to_string())?;
            plot::compare_curves(&out.join("percentiles.svg"), &title, &results)?;
            println!("{md}");
            Ok(())
        }
        Cmd::Compare { out, a, b } => {
            let (ra, rb) = (side(&a)?, side(&b)?);
            let md = format!(
                "# {} vs {}\n\n{}",
                ra.label,
                rb.label,
                report::markdown_compare(&ra, &rb)
            );
            write(&out.join("compare.md"), &md).map_err(|e| e.to_string())?;
            plot::compare_curves(
                &out.join("compare-percentiles.svg"),
                "publish latency",
                &[ra.clone(), rb.clone()],
            )?;
            plot::plot_result(&out, "a", &ra)?;
            plot::plot_result(&out, "b", &rb)?;
            println!("{md}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // mqbench measures latency: its own loops must not stall on huge-page faults either.
    if let Err(e) = shardmq::runtime::disable_transparent_huge_pages() {
        eprintln!("mqbench: cannot turn transparent huge pages off (prctl): {e}");
    }
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbench: {e}");
            ExitCode::FAILURE
        }
    }
}
