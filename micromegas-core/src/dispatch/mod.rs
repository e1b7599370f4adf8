//! Dispatch: per-thread streams drained by one flusher OS thread into blocks for the sink.
//!
//! [`init`] starts the flusher and returns a [`Guard`]; dropping it flushes everything with a
//! bounded timeout. Each thread that emits gets its own ring per stream kind on its first
//! event. The flusher drains rings that are filling up as soon as their thread wakes it, every
//! ring every flush period (so idle threads' data is not stuck), and closed rings of exited
//! threads; it encodes and compresses blocks, keeps them within the byte budget until the sink
//! accepts them, and counts every event it has to drop.

mod flusher;
pub(crate) mod local;
mod ring;
mod samplers;

use crate::model::{ProcessInfo, Properties, StreamInfo, StreamKind};
use crate::sink::Sink;
pub use local::{unrecorded, unrecorded_thread};
use ring::Ring;
pub use samplers::register_sampler;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The thread's ring was full: the flusher could not keep up.
    RingFull = 0,
    /// Blocks not yet accepted by the sink were over the byte budget.
    BudgetExceeded = 1,
    /// The sink refused the blocks permanently.
    SinkRejected = 2,
    /// Blocks still unsent when the shutdown timeout expired.
    ShutdownTimeout = 3,
    /// Emitted from inside the formatting of another event of the same stream.
    Reentrant = 4,
    /// Ring bytes the flusher could not parse (a bug: counted once per occurrence, since the
    /// number of events in them is unknown).
    Unreadable = 5,
}

impl DropReason {
    /// All reasons.
    pub const ALL: [DropReason; 6] = [
        DropReason::RingFull,
        DropReason::BudgetExceeded,
        DropReason::SinkRejected,
        DropReason::ShutdownTimeout,
        DropReason::Reentrant,
        DropReason::Unreadable,
    ];

    /// snake_case name, used as the `reason` property of the drop metric.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RingFull => "ring_full",
            DropReason::BudgetExceeded => "budget_exceeded",
            DropReason::SinkRejected => "sink_rejected",
            DropReason::ShutdownTimeout => "shutdown_timeout",
            DropReason::Reentrant => "reentrant",
            DropReason::Unreadable => "unreadable",
        }
    }
}

/// Counters of the pipeline. For any run, `events emitted by the application + self_events ==
/// delivered_events + total_dropped()` once the guard has been dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events in blocks the sink accepted.
    pub delivered_events: u64,
    /// Blocks the sink accepted.
    pub delivered_blocks: u64,
    /// Encoded bytes the sink accepted.
    pub delivered_bytes: u64,
    /// Events dropped, by reason (indexed by `DropReason as usize`).
    pub dropped: [u64; 6],
    /// Events the pipeline emitted about itself (drop metrics).
    pub self_events: u64,
    /// Encoded bytes waiting for the sink.
    pub pending_bytes: u64,
}

impl Stats {
    /// Events dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }
    /// Events dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// Settings of [`init`].
#[derive(Clone)]
pub struct Options {
    /// `service.name` of the process; default `unknown_service:<exe>`.
    pub service_name: Option<String>,
    /// Properties of the process.
    pub properties: Properties,
    /// Bytes of encoded blocks kept while the sink has not accepted them (default 64 MiB).
    pub budget_bytes: usize,
    /// Longest time an event waits in an idle thread's ring (default 1 s).
    pub flush_period: Duration,
    /// Longest time dropping the guard waits for the final flush (default 5 s).
    pub shutdown_timeout: Duration,
    /// Initial size of each thread's ring per stream kind, a power of two (default 256 KiB).
    pub ring_bytes: usize,
    /// Largest ring (default 8 MiB). A thread gets a ring twice as large, up to this size,
    /// when its ring is three quarters full when it checks (every 1 MiB at most), or when it
    /// wakes the flusher twice within 1 ms (half a ring or 1 MiB apart). The ring absorbs the
    /// flusher's scheduling latency, and a larger one wakes it less often: at 20 M events/s,
    /// 8 MiB is about 25 ms.
    pub max_ring_bytes: usize,
    /// Largest event section of a block before compression (default 256 KiB).
    pub max_block_bytes: usize,
    /// Flush from a panic hook before the process dies (default true).
    pub panic_hook: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            service_name: None,
            properties: Vec::new(),
            budget_bytes: 64 << 20,
            flush_period: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            ring_bytes: 256 << 10,
            max_ring_bytes: 8 << 20,
            max_block_bytes: 256 << 10,
            panic_hook: true,
        }
    }
}

impl Options {
    /// Sets the service name.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }
    /// Adds a process property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
    /// Sets the byte budget.
    pub fn budget_bytes(mut self, bytes: usize) -> Self {
        self.budget_bytes = bytes;
        self
    }
    /// Sets the flush period.
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period;
        self
    }
    /// Sets the shutdown timeout.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
    /// Sets the initial ring size per thread and kind.
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }
    /// Sets the largest ring size per thread and kind (set it to `ring_bytes` to never grow).
    pub fn max_ring_bytes(mut self, bytes: usize) -> Self {
        self.max_ring_bytes = bytes;
        self
    }
    /// Installs the panic hook or not.
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }
}

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A previous guard is still alive.
    #[error("micromegas is already initialized in this process; drop the previous guard first")]
    AlreadyInitialized,
    /// The flusher thread could not start.
    #[error("cannot start the micromegas flusher thread: {0}")]
    Thread(#[from] std::io::Error),
}

#[derive(Default)]
struct Control {
    flush_requested: u64,
    flush_done: u64,
    shutdown: bool,
    finished: bool,
}

pub(crate) struct Dispatch {
    process: Arc<ProcessInfo>,
    options: Options,
    rings: Mutex<Vec<Arc<Ring>>>,
    flusher: OnceLock<Thread>,
    stopped: AtomicBool,
    /// The shutdown timeout expired: the flusher counts what is left as dropped and stops.
    abandoned: AtomicBool,
    dropped: [AtomicU64; 6],
    delivered_events: AtomicU64,
    delivered_blocks: AtomicU64,
    delivered_bytes: AtomicU64,
    self_events: AtomicU64,
    pending_bytes: AtomicU64,
    control: Mutex<Control>,
    control_changed: Condvar,
}

static CURRENT: Mutex<Option<Arc<Dispatch>>> = Mutex::new(None);
/// True while a dispatch is installed; lets threads skip the lock when there is none.
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub(crate) fn current() -> Option<Arc<Dispatch>> {
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    CURRENT.lock().ok()?.clone()
}

impl Dispatch {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn wake_flusher(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }

    pub(crate) fn count_drop(&self, reason: DropReason, events: u64) {
        self.dropped[reason as usize].fetch_add(events, Ordering::Relaxed);
    }

    pub(crate) fn new_ring(
        &self,
        kind: StreamKind,
        thread_id: u64,
        thread_name: &str,
    ) -> Arc<Ring> {
        let stream = Arc::new(StreamInfo {
            stream_id: Uuid::new_v4(),
            process_id: self.process.process_id,
            kind,
            thread_id,
            thread_name: thread_name.to_owned(),
            layouts: crate::transit::layout::native::block_layouts_of(kind),
            properties: Vec::new(),
        });
        self.register_ring(stream, self.options.ring_bytes)
    }

    /// A new ring for an existing stream (to grow it), or for a new one. Rings are drained in
    /// registration order, so a stream's records stay in order across its rings.
    pub(crate) fn register_ring(&self, stream: Arc<StreamInfo>, capacity: usize) -> Arc<Ring> {
        let ring = Arc::new(Ring::new(capacity, stream));
        if let Ok(mut rings) = self.rings.lock() {
            rings.push(ring.clone());
        }
        ring
    }

    pub(crate) fn max_ring_bytes(&self) -> usize {
        self.options.max_ring_bytes.max(self.options.ring_bytes)
    }

    fn stats(&self) -> Stats {
        let mut dropped = [0u64; 6];
        for (d, a) in dropped.iter_mut().zip(&self.dropped) {
            *d = a.load(Ordering::Relaxed);
        }
        if let Ok(rings) = self.rings.lock() {
            dropped[DropReason::RingFull as usize] += rings
                .iter()
                .map(|r| r.dropped_full.load(Ordering::Relaxed))
                .sum::<u64>();
        }
        Stats {
            delivered_events: self.delivered_events.load(Ordering::Relaxed),
            delivered_blocks: self.delivered_blocks.load(Ordering::Relaxed),
            delivered_bytes: self.delivered_bytes.load(Ordering::Relaxed),
            dropped,
            self_events: self.self_events.load(Ordering::Relaxed),
            pending_bytes: self.pending_bytes.load(Ordering::Relaxed),
        }
    }

    /// Asks the flusher to drain everything and hand it to the sink; waits up to `timeout`.
    /// Returns true if the flush completed in time.
    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut c) = self.control.lock() else {
            return false;
        };
        if c.finished {
            return true;
        }
        c.flush_requested += 1;
        let target = c.flush_requested;
        self.wake_flusher();
        while c.flush_done < target && !c.finished {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.control_changed.wait_timeout(c, deadline - now) {
                Ok((guard, _)) => c = guard,
                Err(_) => return false,
            }
        }
        true
    }

    /// Stops the flusher after a final flush bounded by the shutdown timeout. If the timeout
    /// expires, the flusher is told to count what is left as dropped and stop, which takes a
    /// short grace period; the counters are final once this returns true.
    fn shutdown(&self) -> bool {
        let deadline = Instant::now() + self.options.shutdown_timeout;
        if let Ok(mut c) = self.control.lock() {
            c.shutdown = true;
        }
        self.wake_flusher();
        if self.wait_finished(deadline) {
            return true;
        }
        self.abandoned.store(true, Ordering::Release);
        self.wake_flusher();
        self.wait_finished(Instant::now() + SHUTDOWN_GRACE)
    }

    fn wait_finished(&self, deadline: Instant) -> bool {
        let Ok(mut c) = self.control.lock() else {
            return false;
        };
        while !c.finished {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.control_changed.wait_timeout(c, deadline - now) {
                Ok((guard, _)) => c = guard,
                Err(_) => return false,
            }
        }
        true
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }
}

/// Time the flusher gets, after the shutdown timeout, to count what it could not deliver.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Starts the pipeline: describes the process, starts the flusher thread and, unless
/// disabled, installs a panic hook that flushes. Keep the returned guard alive for as long as
/// events should be recorded; dropping it flushes with `options.shutdown_timeout`.
pub fn init(sink: Arc<dyn Sink>, options: Options) -> Result<Guard, InitError> {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if current.is_some() {
        return Err(InitError::AlreadyInitialized);
    }
    let process = Arc::new(ProcessInfo::current(
        options.service_name.as_deref(),
        options.properties.clone(),
    ));
    local::seed_span_ids(process.process_id.as_u128() as u64);
    let dispatch = Arc::new(Dispatch {
        process,
        options: options.clone(),
        rings: Mutex::new(Vec::new()),
        flusher: OnceLock::new(),
        stopped: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        dropped: Default::default(),
        delivered_events: AtomicU64::new(0),
        delivered_blocks: AtomicU64::new(0),
        delivered_bytes: AtomicU64::new(0),
        self_events: AtomicU64::new(0),
        pending_bytes: AtomicU64::new(0),
        control: Mutex::new(Control::default()),
        control_changed: Condvar::new(),
    });
    let handle = flusher::spawn(dispatch.clone(), sink)?;
    let _ = dispatch.flusher.set(handle.thread().clone());
    *current = Some(dispatch.clone());
    ACTIVE.store(true, Ordering::Release);
    drop(current);
    if options.panic_hook {
        install_panic_hook();
    }
    Ok(Guard {
        dispatch: Some(dispatch),
    })
}

/// Keeps the pipeline running; dropping it flushes (bounded by the shutdown timeout) and stops
/// the flusher. Events emitted after that are ignored until the next [`init`].
#[must_use = "dropping the guard stops the pipeline: keep it alive (`let _guard = ...`) for as \
              long as events are to be recorded"]
pub struct Guard {
    dispatch: Option<Arc<Dispatch>>,
}

impl Guard {
    /// The process being recorded.
    pub fn process(&self) -> Option<&Arc<ProcessInfo>> {
        self.dispatch.as_ref().map(|d| &d.process)
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.dispatch
            .as_ref()
            .map(|d| d.stats())
            .unwrap_or_default()
    }

    /// Drains every thread's ring and hands the blocks to the sink, waiting up to `timeout`.
    /// Returns true if everything was handed over in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.dispatch.as_ref().is_some_and(|d| d.flush(timeout))
    }

    /// Flushes, stops the flusher and returns the final counters.
    pub fn shutdown(mut self) -> Stats {
        self.stop()
    }

    fn stop(&mut self) -> Stats {
        let Some(d) = self.dispatch.take() else {
            return Stats::default();
        };
        // Stop first, then revoke every ring: producers take their slow path, see the stop,
        // and leave these rings; the final drain then collects what they wrote before.
        d.stopped.store(true, Ordering::Release);
        if let Ok(rings) = d.rings.lock() {
            for r in rings.iter() {
                r.revoke();
            }
        }
        d.shutdown();
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &d)) {
            *current = None;
            ACTIVE.store(false, Ordering::Release);
        }
        d.stats()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Counters of the running pipeline, if any.
pub fn stats() -> Option<Stats> {
    current().map(|d| d.stats())
}

/// Flushes the running pipeline, if any, waiting up to `timeout`.
pub fn flush(timeout: Duration) -> bool {
    current().is_some_and(|d| d.flush(timeout))
}

fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(d) = current() {
            crate::fatal!("panic: {}", info);
            d.flush(d.options.shutdown_timeout);
        }
        previous(info);
    }));
}
