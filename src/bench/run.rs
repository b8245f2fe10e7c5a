//! The load: producer and consumer tasks on glommio executors, per-second statistics.
//!
//! Threads: the client shares the machine with the broker, so it uses few executors (by default
//! one for producers, one for consumers); a producer is a task, not a thread. One executor
//! keeps thousands of sends in flight on one connection (opaque matching), so more threads would
//! only add context switches on the cores the broker needs; `--threads` spreads producers over
//! more executors where cores are spare.
//!
//! Timing: one `Instant` epoch shared by every thread (producer and consumer are in the same
//! process). Open loop: send k of a producer is due at `start + k / rate` (never derived from the
//! previous send); publish latency = ack time − intended time, so a stalled broker shows up in
//! every send that should have gone out during the stall (coordinated omission corrected); the
//! send delay (actual − intended) is reported on its own. Closed loop: one send in flight per
//! producer, latency = ack − actual send (what upstream's benchmark measures), labelled so.
//! End-to-end: the intended send time (ns since the epoch) travels in the `MQBENCH_T` property;
//! latency = receipt − that time.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use super::hist::{new_hist, record};
use crate::client::{MessageQueue, MqClient, OutgoingMessage};
use crate::constants::GLOMMIO_IO_MEMORY_BYTES;
use crate::remoting::message::get_property;

/// Property carrying the intended send time (ns since the bench epoch).
pub const TIME_PROPERTY: &str = "MQBENCH_T";
/// Property carrying the run id (consumers ignore messages of other runs).
pub const RUN_PROPERTY: &str = "MQBENCH_RUN";

/// What one load phase does.
#[derive(Debug, Clone)]
pub struct Load {
    pub namesrv: String,
    pub topics: Vec<String>,
    pub producers: u32,
    pub consumers: u32,
    pub threads: u32,
    /// Messages per second, all producers together; 0 = as fast as acknowledged (closed loop).
    pub rate: f64,
    pub open_loop: bool,
    pub message_size: usize,
    pub batch: u32,
    pub keys: bool,
    pub delay_level: u32,
    pub warmup: Duration,
    pub duration: Duration,
    /// Sends in flight per producer before the open loop waits (the wait is counted as delay).
    pub max_outstanding: u32,
    pub group: String,
    pub timeout: Duration,
    pub drain: Duration,
}

/// One second of the run (by the time events happened, since the epoch).
#[derive(Debug, Default)]
pub struct Second {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub received: u64,
    pub publish: Option<Histogram<u64>>,
    pub e2e: Option<Histogram<u64>>,
    pub delay: Option<Histogram<u64>>,
    /// Event-loop stalls of this process's executors (`runtime::lag`) in this second.
    pub stalls: super::report::LoopStalls,
    /// The brokers' longest shard stall in this second (filled in after the run).
    pub broker_stall_max_ms: u64,
    /// The brokers' longest group-commit flush in this second (filled in after the run).
    pub broker_flush_max_ms: u64,
}

fn merge_into(dst: &mut Option<Histogram<u64>>, src: Option<Histogram<u64>>) {
    if let Some(s) = src {
        match dst {
            Some(d) => {
                let _ = d.add(&s);
            }
            None => *dst = Some(s),
        }
    }
}

impl Second {
    pub fn merge(&mut self, o: Second) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.errors += o.errors;
        self.received += o.received;
        merge_into(&mut self.publish, o.publish);
        merge_into(&mut self.e2e, o.e2e);
        merge_into(&mut self.delay, o.delay);
        self.stalls.add(&o.stalls);
        self.broker_stall_max_ms = self.broker_stall_max_ms.max(o.broker_stall_max_ms);
        self.broker_flush_max_ms = self.broker_flush_max_ms.max(o.broker_flush_max_ms);
    }
}

/// Per-second statistics one thread hands over (every 250 ms) to the orchestrating thread.
pub type SecondsBatch = BTreeMap<u64, Second>;

/// State shared by the client threads and the orchestrating thread: counters for the live line
/// and the stop flags (atomics), first errors (set once), and the channel the per-second
/// statistics travel on (no lock on the measuring path: each thread records into its own
/// `RefCell` and sends its batch).
#[derive(Debug)]
pub struct Shared {
    pub stats: Sender<SecondsBatch>,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    pub first_error: OnceLock<String>,
    /// Producers stop issuing.
    pub stop_send: AtomicBool,
    /// Consumers stop pulling.
    pub stop_pull: AtomicBool,
    pub setup_error: OnceLock<String>,
}

impl Shared {
    pub fn new(stats: Sender<SecondsBatch>) -> Self {
        Self {
            stats,
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            first_error: OnceLock::new(),
            stop_send: AtomicBool::new(false),
            stop_pull: AtomicBool::new(false),
            setup_error: OnceLock::new(),
        }
    }
}

#[derive(Default)]
struct Local {
    seconds: BTreeMap<u64, Second>,
}

impl Local {
    fn sec(&mut self, epoch: Instant, at: Instant) -> &mut Second {
        let s = at.saturating_duration_since(epoch).as_secs();
        self.seconds.entry(s).or_default()
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn hist(h: &mut Option<Histogram<u64>>) -> &mut Histogram<u64> {
    h.get_or_insert_with(new_hist)
}

async fn flusher(local: Rc<RefCell<Local>>, shared: Arc<Shared>, done: Rc<std::cell::Cell<bool>>) {
    loop {
        let last = done.get();
        let taken = std::mem::take(&mut local.borrow_mut().seconds);
        if !taken.is_empty() {
            let _ = shared.stats.send(taken);
        }
        if last {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(250)).await;
    }
}

fn note_error(shared: &Shared, e: &str) {
    let _ = shared.first_error.set(e.to_string());
}

/// A message body of `size` bytes (at least a marker).
fn body(size: usize) -> Bytes {
    let mut b = vec![b'm'; size.max(1)];
    b[0] = b'#';
    Bytes::from(b)
}

struct ProducerCtx {
    client: Rc<MqClient>,
    load: Load,
    epoch: Instant,
    start: Instant,
    shared: Arc<Shared>,
    local: Rc<RefCell<Local>>,
    run_id: String,
    body: Bytes,
    queues: Vec<MessageQueue>,
}

impl ProducerCtx {
    fn message(&self, intended: Instant, seq: u64) -> OutgoingMessage {
        let t = intended.saturating_duration_since(self.epoch).as_nanos();
        OutgoingMessage {
            body: self.body.clone(),
            tags: Some("bench".into()),
            keys: self.load.keys.then(|| format!("{}-{seq}", self.run_id)),
            delay_level: self.load.delay_level,
            user_properties: vec![
                (TIME_PROPERTY.into(), t.to_string()),
                (RUN_PROPERTY.into(), self.run_id.clone()),
            ],
        }
    }

    /// Sends one batch (or message) whose latency counts from `from`; returns when acked.
    async fn send_one(self: &Rc<Self>, mq: MessageQueue, from: Instant, seq: u64) {
        let n = u64::from(self.load.batch.max(1));
        let msgs: Vec<OutgoingMessage> = (0..n).map(|i| self.message(from, seq + i)).collect();
        let actual = Instant::now();
        {
            let mut l = self.local.borrow_mut();
            let s = l.sec(self.epoch, actual);
            s.sent += n;
            if self.load.open_loop {
                record(
                    hist(&mut s.delay),
                    us(actual.saturating_duration_since(from)),
                );
            }
        }
        self.shared.sent.fetch_add(n, Ordering::Relaxed);
        self.shared.in_flight.fetch_add(n, Ordering::Relaxed);
        let r = if n == 1 {
            self.client.send(&self.load.group, &mq, &msgs[0]).await
        } else {
            self.client.send_batch(&self.load.group, &mq, &msgs).await
        };
        let done = Instant::now();
        self.shared.in_flight.fetch_sub(n, Ordering::Relaxed);
        let mut l = self.local.borrow_mut();
        let s = l.sec(self.epoch, done);
        match r {
            Ok(_) => {
                s.acked += n;
                let lat = us(done.saturating_duration_since(from));
                let h = hist(&mut s.publish);
                let _ = h.record_n(lat.max(1), n);
                self.shared.acked.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                s.errors += n;
                self.shared.errors.fetch_add(n, Ordering::Relaxed);
                note_error(&self.shared, &e.to_string());
            }
        }
    }
}

/// One producer: `index` picks its share of the rate and its starting queue.
async fn producer(ctx: Rc<ProducerCtx>, index: u32) {
    let load = &ctx.load;
    let batch = u64::from(load.batch.max(1));
    let end = ctx.start + load.warmup + load.duration;
    let per_producer = load.rate / f64::from(load.producers.max(1));
    // Interval between sends (of one batch each).
    let interval =
        (per_producer > 0.0).then(|| Duration::from_secs_f64(batch as f64 / per_producer));
    // Stagger producers inside one interval so they do not fire together.
    let offset = interval.map_or(Duration::ZERO, |i| {
        i.mul_f64(f64::from(index) / f64::from(load.producers.max(1)))
    });
    let nq = ctx.queues.len().max(1);
    let mut q = index as usize % nq;
    let mut k: u64 = 0;
    let in_flight = Rc::new(std::cell::Cell::new(0u32));
    loop {
        if ctx.shared.stop_send.load(Ordering::Relaxed) {
            break;
        }
        let intended = match interval {
            Some(i) => ctx.start + offset + i.mul_f64(k as f64),
            None => Instant::now(),
        };
        if intended >= end {
            break;
        }
        let now = Instant::now();
        if intended > now {
            glommio::timer::sleep(intended - now).await;
        }
        let mq = ctx.queues[q].clone();
        q = (q + 1) % nq;
        let seq = (u64::from(index) << 40) | (k * batch);
        k += 1;
        if load.open_loop {
            // Back-pressure only past max_outstanding; the wait shows in latency and delay.
            while in_flight.get() >= load.max_outstanding.max(1) {
                glommio::timer::sleep(Duration::from_micros(50)).await;
            }
            in_flight.set(in_flight.get() + 1);
            let (c, f) = (ctx.clone(), in_flight.clone());
            glommio::spawn_local(async move {
                c.send_one(mq, intended, seq).await;
                f.set(f.get() - 1);
            })
            .detach();
        } else {
            // Closed loop: the clock starts when the send actually goes out.
            ctx.send_one(mq, Instant::now(), seq).await;
        }
    }
    while in_flight.get() > 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

struct ConsumerCtx {
    client: Rc<MqClient>,
    group: String,
    epoch: Instant,
    shared: Arc<Shared>,
    local: Rc<RefCell<Local>>,
    run_id: String,
}

async fn consume_queue(ctx: Rc<ConsumerCtx>, mq: MessageQueue, mut offset: i64) {
    let suspend = Duration::from_millis(400);
    while !ctx.shared.stop_pull.load(Ordering::Relaxed) {
        match ctx
            .client
            .pull(&ctx.group, &mq, offset, 32, suspend, None)
            .await
        {
            Ok(r) => {
                let now = Instant::now();
                let now_ns = now.saturating_duration_since(ctx.epoch).as_nanos();
                let mut got = 0u64;
                {
                    let mut l = ctx.local.borrow_mut();
                    let s = l.sec(ctx.epoch, now);
                    for m in &r.messages {
                        if get_property(&m.properties, RUN_PROPERTY) != Some(ctx.run_id.as_str()) {
                            continue;
                        }
                        got += 1;
                        if let Some(t) = get_property(&m.properties, TIME_PROPERTY)
                            .and_then(|t| t.parse::<u128>().ok())
                        {
                            let lat =
                                u64::try_from(now_ns.saturating_sub(t) / 1000).unwrap_or(u64::MAX);
                            record(hist(&mut s.e2e), lat);
                        }
                    }
                    s.received += got;
                }
                ctx.shared.received.fetch_add(got, Ordering::Relaxed);
                if r.next_begin_offset >= 0 {
                    offset = r.next_begin_offset;
                }
            }
            Err(e) => {
                note_error(
                    &ctx.shared,
                    &format!("pull {}#{}: {e}", mq.topic, mq.queue_id),
                );
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn set_setup_error(shared: &Shared, e: String) {
    let _ = shared.setup_error.set(e);
    shared.stop_send.store(true, Ordering::Relaxed);
    shared.stop_pull.store(true, Ordering::Relaxed);
}

/// Records this executor's event-loop stalls into its seconds (the executor is always busy
/// during a run, so the probe never takes its idle interval).
fn probe_stalls(local: &Rc<RefCell<Local>>, epoch: Instant) {
    let local = local.clone();
    let turns = std::cell::Cell::new(0u64);
    let busy = move || {
        turns.set(turns.get().wrapping_add(1));
        turns.get()
    };
    crate::runtime::lag::spawn_probe(busy, move |stall| {
        let mut l = local.borrow_mut();
        let sec = l.sec(epoch, Instant::now());
        sec.stalls.add_stall(&stall);
    });
}

/// Starts the consumer executor (if any consumers): it looks up the read queues, takes their
/// max offsets as start points, then signals `ready` and pulls until `stop_pull`.
pub fn spawn_consumers(
    load: &Load,
    epoch: Instant,
    shared: Arc<Shared>,
    run_id: String,
    ready: std::sync::mpsc::Sender<()>,
) -> Option<std::thread::JoinHandle<()>> {
    if load.consumers == 0 {
        let _ = ready.send(());
        return None;
    }
    let load = load.clone();
    let h = LocalExecutorBuilder::new(Placement::Unbound)
        .name("mqbench-consumer")
        .io_memory(GLOMMIO_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let client = match MqClient::new(&load.namesrv, load.timeout) {
                Ok(c) => c,
                Err(e) => {
                    set_setup_error(&shared, e.to_string());
                    let _ = ready.send(());
                    return;
                }
            };
            let local = Rc::new(RefCell::new(Local::default()));
            probe_stalls(&local, epoch);
            let done = Rc::new(std::cell::Cell::new(false));
            let fl = glommio::spawn_local(flusher(local.clone(), shared.clone(), done.clone()));
            let ctx = Rc::new(ConsumerCtx {
                client: client.clone(),
                group: format!("{}_consumer", load.group),
                epoch,
                shared: shared.clone(),
                local,
                run_id,
            });
            let mut tasks = Vec::new();
            let mut starts = Vec::new();
            for t in &load.topics {
                let route = match client.route(t).await {
                    Ok(r) => r,
                    Err(e) => {
                        set_setup_error(&shared, e.to_string());
                        break;
                    }
                };
                for mq in &route.read_queues {
                    match client.max_offset(mq).await {
                        Ok(o) => starts.push((mq.clone(), o)),
                        Err(e) => set_setup_error(&shared, e.to_string()),
                    }
                }
            }
            let _ = ready.send(());
            // Consumers share the queues round robin; each queue is pulled by its own task.
            for (mq, off) in starts {
                tasks.push(glommio::spawn_local(consume_queue(ctx.clone(), mq, off)));
            }
            for t in tasks {
                t.await;
            }
            done.set(true);
            fl.await;
        });
    match h {
        Ok(h) => Some(std::thread::spawn(move || {
            let _ = h.join();
        })),
        Err(e) => {
            eprintln!("mqbench: cannot start the consumer executor: {e}");
            None
        }
    }
}

/// Starts the producer executors; they begin sending at `start` and return when done.
pub fn spawn_producers(
    load: &Load,
    epoch: Instant,
    start: Instant,
    shared: &Arc<Shared>,
    run_id: &str,
) -> Vec<std::thread::JoinHandle<()>> {
    let threads = load.threads.clamp(1, load.producers.max(1));
    let mut out = Vec::new();
    for t in 0..threads {
        let (load, sh, run_id) = (load.clone(), shared.clone(), run_id.to_string());
        let h = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("mqbench-producer-{t}"))
            .io_memory(GLOMMIO_IO_MEMORY_BYTES)
            .spawn(move || async move {
                let shared = sh;
                let client = match MqClient::new(&load.namesrv, load.timeout) {
                    Ok(c) => c,
                    Err(e) => return set_setup_error(&shared, e.to_string()),
                };
                let mut queues = Vec::new();
                for topic in &load.topics {
                    match client.route(topic).await {
                        Ok(r) => queues.extend(r.write_queues.iter().cloned()),
                        Err(e) => return set_setup_error(&shared, e.to_string()),
                    }
                }
                if queues.is_empty() {
                    return set_setup_error(&shared, "no writable queue in the route".into());
                }
                let local = Rc::new(RefCell::new(Local::default()));
                probe_stalls(&local, epoch);
                let done = Rc::new(std::cell::Cell::new(false));
                let fl = glommio::spawn_local(flusher(local.clone(), shared.clone(), done.clone()));
                let ctx = Rc::new(ProducerCtx {
                    client,
                    body: body(load.message_size),
                    load: load.clone(),
                    epoch,
                    start,
                    shared: shared.clone(),
                    local,
                    run_id,
                    queues,
                });
                let mut tasks = Vec::new();
                for p in (0..load.producers).filter(|p| p % threads == t) {
                    tasks.push(glommio::spawn_local(producer(ctx.clone(), p)));
                }
                for task in tasks {
                    task.await;
                }
                done.set(true);
                fl.await;
            });
        match h {
            Ok(h) => out.push(std::thread::spawn(move || {
                let _ = h.join();
            })),
            Err(e) => set_setup_error(shared, format!("cannot start a producer executor: {e}")),
        }
    }
    out
}
