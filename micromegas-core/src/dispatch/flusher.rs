//! The flusher thread: drains rings into blocks, keeps them within the budget, hands them to
//! the sink, and reports its own drop counters as metrics.

use super::ring::{drain_threshold, Ring, PADDING};
use super::{Dispatch, DropReason};
use crate::events;
use crate::metadata::describe_callsite;
use crate::model::{ProcessInfo, StreamInfo};
use crate::sink::{Sink, SinkError};
use crate::transit::batch::Batch;
use crate::transit::block::{Block, BlockHeader, Compression};
use crate::transit::layout::{native, FieldType};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Starts the flusher thread. It alone holds the pipeline's reference to `sink`, so the sink
/// is only ever called, and let go of, on that thread: never in the app's async code, where
/// dropping a sink that owns a tokio runtime (the network sink's) would panic.
pub(super) fn spawn(
    dispatch: Arc<Dispatch>,
    sink: Arc<dyn Sink>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("micromegas-flusher".into())
        .spawn(move || Flusher::new(dispatch, sink).run())
}

/// Hands `batch` to the sink. What the sink's work emits on this thread is not recorded (it
/// would feed itself), here as in [`flush_sink`].
fn write_to_sink(sink: &dyn Sink, batch: &Batch) -> Result<(), SinkError> {
    super::local::unrecorded(|| sink.write_batch(batch))
}

/// Asks the sink to make what it took durable, within `timeout`.
fn flush_sink(sink: &dyn Sink, timeout: Duration) {
    let _ = super::local::unrecorded(|| sink.flush(timeout));
}

/// One step of turning a ring record into a block record.
#[derive(Clone, Copy)]
enum Op {
    /// A callsite address (u64) at this offset becomes a block-local u32 id.
    Dep(usize),
    /// The absolute ticks (u64, read through `RecordInfo::ticks`) become an i32 delta.
    Ticks,
    /// These bytes are copied as they are.
    Copy(usize, usize),
}

/// How to walk and transform the records of one event type.
#[derive(Clone, Default)]
struct RecordInfo {
    known: bool,
    fixed: usize,
    has_tail: bool,
    ticks: Option<usize>,
    ops: Vec<Op>,
}

struct Table(Vec<RecordInfo>);

impl Table {
    fn of(ring: &Ring) -> Self {
        let mut t = vec![RecordInfo::default(); 256];
        for l in native::layouts_of(ring.stream.kind) {
            let info = &mut t[l.type_id as usize];
            info.known = true;
            info.fixed = l.size as usize;
            info.has_tail = l.has_tail;
            // Mirrors `EventLayout::compact`.
            for f in &l.fields {
                let off = f.offset as usize;
                let op = match f.ty {
                    FieldType::DepRef => Op::Dep(off),
                    FieldType::Ticks if info.ticks.is_none() => {
                        info.ticks = Some(off);
                        Op::Ticks
                    }
                    ty => Op::Copy(off, ty.size()),
                };
                match (info.ops.last_mut(), op) {
                    (Some(Op::Copy(o, n)), Op::Copy(off, len)) if *o + *n == off => *n += len,
                    _ => info.ops.push(op),
                }
            }
        }
        Table(t)
    }
}

/// Polling interval of the flusher while a ring is filling up.
const BUSY_POLL: Duration = Duration::from_micros(100);

struct Pending {
    batch: Batch,
    bytes: u64,
    events: u64,
    attempts: u32,
    next_attempt: Instant,
}

struct Flusher {
    d: Arc<Dispatch>,
    sink: Arc<dyn Sink>,
    streams: HashMap<Uuid, StreamState>,
    /// Compression output, reused across blocks.
    scratch: Vec<u8>,
    pending: VecDeque<Pending>,
    pending_bytes: u64,
    reported_drops: [u64; 6],
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Flusher {
    fn new(d: Arc<Dispatch>, sink: Arc<dyn Sink>) -> Self {
        Self {
            d,
            sink,
            streams: HashMap::new(),
            scratch: Vec::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            reported_drops: [0; 6],
        }
    }

    fn run(mut self) {
        let period = self.d.options.flush_period;
        let mut next_periodic = Instant::now() + period;
        let mut busy = false;
        loop {
            let now = Instant::now();
            if now < next_periodic {
                // While some thread is producing fast, poll often instead of waiting for its
                // wake-up call; otherwise sleep until the next periodic flush or a wake-up.
                let nap = if busy {
                    BUSY_POLL.min(next_periodic - now)
                } else {
                    next_periodic - now
                };
                std::thread::park_timeout(nap);
            }
            let (flush_target, shutdown) = match self.d.control.lock() {
                Ok(c) => (c.flush_requested, c.shutdown),
                Err(_) => (0, true),
            };
            if shutdown {
                self.finish();
                return;
            }
            let flush_all = {
                let done = self.d.control.lock().map(|c| c.flush_done).unwrap_or(0);
                flush_target > done
            };
            let periodic = Instant::now() >= next_periodic;
            if periodic {
                next_periodic = Instant::now() + period;
            }
            busy = self.cycle(periodic || flush_all, true);
            if flush_all {
                self.deliver(true, Instant::now() + self.d.options.shutdown_timeout);
                flush_sink(&*self.sink, self.d.options.shutdown_timeout);
                if let Ok(mut c) = self.d.control.lock() {
                    c.flush_done = c.flush_done.max(flush_target);
                }
                self.d.control_changed.notify_all();
            }
        }
    }

    /// Drains the rings that need it, queues the blocks, delivers what the sink takes. Returns
    /// true if a ring was drained because it was filling up.
    fn cycle(&mut self, drain_all: bool, report: bool) -> bool {
        if drain_all && report {
            // Values aggregated in memory become events now, so that this drain seals them.
            super::samplers::run_samplers();
        }
        let mut filling = false;
        let rings: Vec<Arc<Ring>> = self.d.rings.lock().map(|r| r.clone()).unwrap_or_default();
        let mut blocks = Vec::new();
        let mut streams = Vec::new();
        // A stream whose older ring (it grew) is not finished yet: its newer ring waits, so
        // that records stay in order.
        let mut waiting: Vec<Uuid> = Vec::new();
        let mut retired: Vec<*const Ring> = Vec::new();
        let last_ring_of: HashMap<Uuid, usize> = rings
            .iter()
            .enumerate()
            .map(|(i, r)| (r.stream.stream_id, i))
            .collect();
        for (i, ring) in rings.iter().enumerate() {
            let id = ring.stream.stream_id;
            if waiting.contains(&id) {
                continue;
            }
            let closed = ring.closed.load(Ordering::Acquire);
            let full_enough = ring.used() >= drain_threshold(ring.capacity());
            filling |= full_enough;
            // A stream has a newer ring when it grew: its last ring comes after this one.
            let newer = last_ring_of.get(&id).is_some_and(|&last| last > i);
            if drain_all || closed || full_enough || newer {
                let before = blocks.len();
                // Seal at a flush or when the thread is gone, not when only the ring changes.
                self.drain(ring, drain_all || (closed && !newer), &mut blocks);
                if blocks.len() > before
                    && !streams.iter().any(|s: &Arc<StreamInfo>| s.stream_id == id)
                {
                    streams.push(ring.stream.clone());
                }
            }
            // `closed` was read before the drain, so a closed ring is now empty for good.
            if closed && ring.used() == 0 {
                let open_empty = self.streams.get(&id).is_none_or(|s| s.open.count == 0);
                if newer || open_empty {
                    retired.push(Arc::as_ptr(ring));
                    self.d.count_drop(
                        DropReason::RingFull,
                        ring.dropped_full.load(Ordering::Relaxed),
                    );
                }
            } else if newer {
                waiting.push(id);
            }
        }
        if !retired.is_empty() {
            if let Ok(mut live) = self.d.rings.lock() {
                live.retain(|r| !retired.contains(&Arc::as_ptr(r)));
                // Forget a stream (its open block and block sequence) only when no ring of
                // it is left, including one registered since this cycle's snapshot.
                self.streams
                    .retain(|id, _| live.iter().any(|r| r.stream.stream_id == *id));
            }
        }
        if !blocks.is_empty() {
            self.enqueue(Batch {
                process: self.d.process.clone(),
                streams,
                blocks,
            });
        }
        self.deliver(false, Instant::now());
        if report {
            self.report_drops();
        }
        filling
    }

    fn enqueue(&mut self, batch: Batch) {
        let bytes: u64 = batch.blocks.iter().map(|b| b.encoded_len() as u64).sum();
        let events = batch.event_count();
        if self.pending_bytes + bytes > self.d.options.budget_bytes as u64 {
            self.d.count_drop(DropReason::BudgetExceeded, events);
            return;
        }
        self.pending_bytes += bytes;
        self.d
            .pending_bytes
            .store(self.pending_bytes, Ordering::Relaxed);
        self.pending.push_back(Pending {
            batch,
            bytes,
            events,
            attempts: 0,
            next_attempt: Instant::now(),
        });
    }

    /// Hands pending batches to the sink in order. With `until_empty`, retries failed ones
    /// until `deadline` instead of waiting for their backoff.
    fn deliver(&mut self, until_empty: bool, deadline: Instant) {
        while let Some(front) = self.pending.front_mut() {
            if self.d.is_abandoned() {
                return;
            }
            let now = Instant::now();
            if front.next_attempt > now {
                if !until_empty || now >= deadline {
                    return;
                }
                std::thread::sleep((front.next_attempt - now).min(deadline - now));
                continue;
            }
            match write_to_sink(&*self.sink, &front.batch) {
                Ok(()) => {
                    self.d
                        .delivered_events
                        .fetch_add(front.events, Ordering::Relaxed);
                    self.d
                        .delivered_blocks
                        .fetch_add(front.batch.blocks.len() as u64, Ordering::Relaxed);
                    self.d
                        .delivered_bytes
                        .fetch_add(front.bytes, Ordering::Relaxed);
                    self.pop_front();
                }
                Err(SinkError::Rejected(_)) => {
                    let events = front.events;
                    self.d.count_drop(DropReason::SinkRejected, events);
                    self.pop_front();
                }
                Err(SinkError::Retryable(_)) => {
                    front.attempts += 1;
                    front.next_attempt = Instant::now() + backoff(front.attempts);
                    if !until_empty || Instant::now() >= deadline {
                        return;
                    }
                }
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some(p) = self.pending.pop_front() {
            self.pending_bytes -= p.bytes;
            self.d
                .pending_bytes
                .store(self.pending_bytes, Ordering::Relaxed);
        }
    }

    /// Emits the cumulative drop counters as metrics when they change.
    fn report_drops(&mut self) {
        let stats = self.d.stats();
        for reason in DropReason::ALL {
            let total = stats.dropped(reason);
            if total != self.reported_drops[reason as usize] {
                self.reported_drops[reason as usize] = total;
                crate::imetric!("micromegas.dropped_events", "count", total, "reason" => reason.as_str());
                self.d.self_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn finish(&mut self) {
        let deadline = Instant::now() + self.d.options.shutdown_timeout;
        // Two rounds: the second carries the drop metrics the first one reported, and reports
        // none itself, so that nothing is left behind (its drops are still counted).
        for report in [true, false] {
            self.cycle(true, report);
            self.deliver(true, deadline);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        flush_sink(&*self.sink, remaining);
        while let Some(p) = self.pending.pop_front() {
            self.d.count_drop(DropReason::ShutdownTimeout, p.events);
        }
        self.pending_bytes = 0;
        self.d.pending_bytes.store(0, Ordering::Relaxed);
        if let Ok(mut c) = self.d.control.lock() {
            c.finished = true;
        }
        self.d.control_changed.notify_all();
    }

    /// Moves everything readable from `ring` into its stream's open block, in compact form,
    /// sealing blocks as they fill up, and the open block too if `seal` is set.
    fn drain(&mut self, ring: &Ring, seal: bool, out: &mut Vec<Arc<Block>>) {
        let (start, end) = ring.readable();
        let max_block = self.d.options.max_block_bytes.max(1024);
        let state = self
            .streams
            .entry(ring.stream.stream_id)
            .or_insert_with(|| StreamState::new(ring, max_block));
        let mut pos = start;
        if self.d.is_abandoned() {
            let (count, _) = walk(&self.d, &state.table, ring, pos, end, |_, _| true);
            self.d
                .count_drop(DropReason::ShutdownTimeout, count + state.open.count as u64);
            state.open.clear();
            ring.consume_to(end);
            return;
        }
        while pos < end {
            let open = &mut state.open;
            let (_, next) = walk(&self.d, &state.table, ring, pos, end, |rec, info| {
                open.push(rec, info, max_block)
            });
            pos = next;
            if pos < end {
                // The open block is full (or a tick delta does not fit): seal it, go on.
                out.push(Arc::new(state.open.seal(
                    &self.d.process,
                    ring,
                    &mut self.scratch,
                )));
            }
        }
        ring.consume_to(pos);
        if seal && state.open.count > 0 {
            out.push(Arc::new(state.open.seal(
                &self.d.process,
                ring,
                &mut self.scratch,
            )));
        }
    }
}

/// What the flusher keeps per stream: how to read its records and the block being filled.
struct StreamState {
    table: Table,
    open: OpenBlock,
}

impl StreamState {
    fn new(ring: &Ring, max_block: usize) -> Self {
        let mut open = OpenBlock::default();
        // Sized once: a block never reallocates while the flusher fills it.
        open.events
            .reserve(max_block + events::MAX_VARIABLE_RECORD + (64 << 10));
        Self {
            table: Table::of(ring),
            open,
        }
    }
}

/// A block being filled with compact records; sealed when full or at a flush.
#[derive(Default)]
struct OpenBlock {
    events: Vec<u8>,
    deps: Vec<u8>,
    dep_ids: HashMap<u64, u32>,
    /// The last dependency of each reference of a record (its first, and any later one),
    /// as (address, id): consecutive records mostly repeat them.
    last_dep: [(u64, u32); 2],
    count: u32,
    first_ticks: Option<u64>,
    prev_ticks: u64,
    /// Sequence number of the next block of the stream (survives `clear`).
    next_sequence: u64,
}

impl OpenBlock {
    fn clear(&mut self) {
        self.events.clear();
        self.deps.clear();
        self.dep_ids.clear();
        self.last_dep = [(0, 0); 2];
        self.count = 0;
        self.first_ticks = None;
        self.prev_ticks = 0;
    }

    /// Compresses the block and starts a new one.
    fn seal(&mut self, process: &ProcessInfo, ring: &Ring, scratch: &mut Vec<u8>) -> Block {
        let events_len = self.events.len() as u32;
        self.events.extend_from_slice(&self.deps);
        // A block whose records have no time of their own (spans closed after their last
        // exit, `span_close_ended`) is dated when it is cut.
        let (begin, end) = match self.first_ticks {
            Some(first) => (first, self.prev_ticks),
            None => {
                let now = crate::time::now();
                (now, now)
            }
        };
        let header = BlockHeader {
            block_id: Uuid::new_v4(),
            stream_id: ring.stream.stream_id,
            sequence: {
                self.next_sequence += 1;
                self.next_sequence - 1
            },
            begin_ticks: begin,
            end_ticks: end,
            begin_unix_nanos: process.ticks_to_unix_nanos(begin),
            end_unix_nanos: process.ticks_to_unix_nanos(end),
            event_count: self.count,
            compression: Compression::Lz4,
            uncompressed_len: 0,
            events_len,
        };
        let block = Block::seal_with(header, &self.events, scratch);
        self.clear();
        block
    }

    /// Appends the compact form of a ring record; false if it belongs in the next block.
    #[inline]
    fn push(&mut self, rec: &[u8], info: &RecordInfo, max_block: usize) -> bool {
        let ticks = info.ticks.map(|off| read_u64(rec, 1 + off));
        let delta = match (ticks, self.first_ticks) {
            (Some(t), Some(_)) => t.wrapping_sub(self.prev_ticks) as i64,
            _ => 0,
        };
        if self.count > 0 && (self.events.len() >= max_block || i32::try_from(delta).is_err()) {
            return false;
        }
        self.events.push(rec[0]);
        let mut nth_dep = 0;
        for op in &info.ops {
            match *op {
                Op::Dep(off) => {
                    let addr = read_u64(rec, 1 + off);
                    let last = &mut self.last_dep[nth_dep];
                    nth_dep = 1;
                    if addr != last.0 || last.1 == 0 {
                        let next_id = self.dep_ids.len() as u32 + 1;
                        let deps = &mut self.deps;
                        let id = *self.dep_ids.entry(addr).or_insert_with(|| {
                            // SAFETY: DepRef fields are only written by this crate's event
                            // functions, from `&'static` callsites and static texts.
                            unsafe { describe_callsite(addr, next_id as u64, deps) };
                            next_id
                        });
                        *last = (addr, id);
                    }
                    self.events.extend_from_slice(&last.1.to_le_bytes());
                }
                Op::Ticks => self.events.extend_from_slice(&(delta as i32).to_le_bytes()),
                Op::Copy(off, len) => self.events.extend_from_slice(&rec[1 + off..1 + off + len]),
            }
        }
        self.events.extend_from_slice(&rec[1 + info.fixed..]);
        if let Some(t) = ticks {
            self.first_ticks.get_or_insert(t);
            self.prev_ticks = t;
        }
        self.count += 1;
        true
    }
}

/// Walks the records of `ring` from `pos` towards `end`, calling `on_record` with each whole
/// record; stops early, before the record, when `on_record` returns false. Returns the number
/// of records taken and the position reached.
fn walk(
    d: &Dispatch,
    table: &Table,
    ring: &Ring,
    mut pos: usize,
    end: usize,
    mut on_record: impl FnMut(&[u8], &RecordInfo) -> bool,
) -> (u64, usize) {
    let mut count = 0u64;
    while pos < end {
        // SAFETY: [pos, end) is readable: `end` came from `readable` and `pos` only moves
        // forward from the read position.
        let chunk = unsafe { ring.slice(pos, end) };
        let mut used = 0usize;
        while used < chunk.len() {
            prefetch(chunk, used + PREFETCH_AHEAD);
            let rec = &chunk[used..];
            if rec[0] == PADDING {
                break;
            }
            let info = &table.0[rec[0] as usize];
            let mut size = 1 + info.fixed;
            let garbage = !info.known || rec.len() < size + if info.has_tail { 2 } else { 0 } || {
                if info.has_tail {
                    size += 2 + u16::from_le_bytes([rec[size], rec[size + 1]]) as usize;
                }
                rec.len() < size
            };
            if garbage {
                // Cannot happen with records written by this crate; skip the rest of the
                // readable range rather than misparse it, and say so.
                d.count_drop(DropReason::Unreadable, 1);
                return (count, end);
            }
            if !on_record(&rec[..size], info) {
                return (count, pos + used);
            }
            count += 1;
            used += size;
        }
        pos += used;
        if used < chunk.len() {
            // Padding: the next record is at the start of the buffer.
            pos = (pos | (ring.capacity() - 1)) + 1;
        }
    }
    (count, pos)
}

/// How far ahead of the record being parsed the flusher asks for ring bytes: the producer
/// wrote them on another core, and fetching them early hides the transfer.
const PREFETCH_AHEAD: usize = 1024;

#[inline(always)]
fn prefetch(chunk: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = chunk.get(at) {
        // SAFETY: a prefetch is only a hint; the address is inside `chunk` anyway.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                b as *const u8 as *const i8,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (chunk, at);
}

fn backoff(attempts: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempts.min(6)).min(5_000);
    // Jitter of up to 25% from the clock's low bits, to spread retries of many processes.
    let jitter = crate::time::now() % (base / 4 + 1);
    Duration::from_millis(base - jitter)
}
