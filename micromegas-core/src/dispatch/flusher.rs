//! The flusher thread: drains rings into blocks, keeps them within the budget, hands them to
//! the sink, and reports its own drop counters as metrics.

use super::ring::{Ring, PADDING};
use super::{Dispatch, DropReason};
use crate::metadata::describe_callsite;
use crate::sink::SinkError;
use crate::transit::batch::Batch;
use crate::transit::block::{Block, BlockHeader, Compression};
use crate::transit::layout::{native, FieldType};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(super) fn spawn(dispatch: Arc<Dispatch>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("micromegas-flusher".into())
        .spawn(move || Flusher::new(dispatch).run())
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

struct Pending {
    batch: Batch,
    bytes: u64,
    events: u64,
    attempts: u32,
    next_attempt: Instant,
}

struct Flusher {
    d: Arc<Dispatch>,
    tables: HashMap<Uuid, Table>,
    events: Vec<u8>,
    deps: Vec<u8>,
    dep_ids: HashMap<u64, u32>,
    pending: VecDeque<Pending>,
    pending_bytes: u64,
    reported_drops: [u64; 5],
    retired_ring_full: u64,
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Flusher {
    fn new(d: Arc<Dispatch>) -> Self {
        Self {
            d,
            tables: HashMap::new(),
            events: Vec::new(),
            deps: Vec::new(),
            dep_ids: HashMap::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            reported_drops: [0; 5],
            retired_ring_full: 0,
        }
    }

    fn run(mut self) {
        let period = self.d.options.flush_period;
        let mut next_periodic = Instant::now() + period;
        loop {
            let now = Instant::now();
            if now < next_periodic {
                std::thread::park_timeout(next_periodic - now);
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
            self.cycle(periodic || flush_all, true);
            if flush_all {
                self.deliver(true, Instant::now() + self.d.options.shutdown_timeout);
                let _ = self.d.sink.flush(self.d.options.shutdown_timeout);
                if let Ok(mut c) = self.d.control.lock() {
                    c.flush_done = c.flush_done.max(flush_target);
                }
                self.d.control_changed.notify_all();
            }
        }
    }

    /// Drains the rings that need it, queues the blocks, delivers what the sink takes.
    fn cycle(&mut self, drain_all: bool, report: bool) {
        let rings: Vec<Arc<Ring>> = self.d.rings.lock().map(|r| r.clone()).unwrap_or_default();
        let mut blocks = Vec::new();
        let mut streams = Vec::new();
        for ring in &rings {
            let closed = ring.closed.load(Ordering::Acquire);
            if drain_all || closed || ring.used() >= ring.capacity() / 4 {
                let before = blocks.len();
                self.drain(ring, &mut blocks);
                if blocks.len() > before {
                    streams.push(ring.stream.clone());
                }
            }
        }
        // Retire the rings of exited threads once empty.
        if let Ok(mut live) = self.d.rings.lock() {
            live.retain(|r| {
                let done = r.closed.load(Ordering::Acquire) && r.used() == 0;
                if done {
                    self.retired_ring_full += r.dropped_full.load(Ordering::Relaxed);
                    self.tables.remove(&r.stream.stream_id);
                }
                !done
            });
        }
        if self.retired_ring_full > 0 {
            self.d
                .count_drop(DropReason::RingFull, self.retired_ring_full);
            self.retired_ring_full = 0;
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
            match self.d.sink.write_batch(&front.batch) {
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
        let _ = self.d.sink.flush(remaining);
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

    /// Moves everything readable from `ring` into blocks, in their compact form.
    fn drain(&mut self, ring: &Ring, out: &mut Vec<Arc<Block>>) {
        let (start, end) = ring.readable();
        let max_block = self.d.options.max_block_bytes.max(1024);
        let table = self
            .tables
            .remove(&ring.stream.stream_id)
            .unwrap_or_else(|| Table::of(ring));
        let mut pos = start;
        while pos < end {
            if self.d.is_abandoned() {
                let (count, _) = walk(&table, ring, pos, end, |_, _| true);
                self.d.count_drop(DropReason::ShutdownTimeout, count);
                pos = end;
                break;
            }
            self.events.clear();
            self.deps.clear();
            self.dep_ids.clear();
            let mut last_dep = (u64::MAX, 0u32);
            let mut first_ticks = None;
            let mut prev_ticks = 0u64;
            let (events, deps, dep_ids) = (&mut self.events, &mut self.deps, &mut self.dep_ids);
            let (count, next) = walk(&table, ring, pos, end, |rec, info| {
                let ticks = info.ticks.map(|off| read_u64(rec, 1 + off));
                let delta = match (ticks, first_ticks) {
                    (Some(t), Some(_)) => t.wrapping_sub(prev_ticks) as i64,
                    _ => 0,
                };
                if events.len() >= max_block || i32::try_from(delta).is_err() {
                    return false; // this record starts the next block
                }
                events.push(rec[0]);
                for op in &info.ops {
                    match *op {
                        Op::Dep(off) => {
                            let addr = read_u64(rec, 1 + off);
                            if addr != last_dep.0 {
                                let next_id = dep_ids.len() as u32 + 1;
                                let id = *dep_ids.entry(addr).or_insert_with(|| {
                                    // SAFETY: DepRef fields are only written by this crate's
                                    // event functions, from `&'static` callsites.
                                    unsafe { describe_callsite(addr, next_id as u64, deps) };
                                    next_id
                                });
                                last_dep = (addr, id);
                            }
                            events.extend_from_slice(&last_dep.1.to_le_bytes());
                        }
                        Op::Ticks => events.extend_from_slice(&(delta as i32).to_le_bytes()),
                        Op::Copy(off, len) => {
                            events.extend_from_slice(&rec[1 + off..1 + off + len])
                        }
                    }
                }
                events.extend_from_slice(&rec[1 + info.fixed..]);
                if let Some(t) = ticks {
                    first_ticks.get_or_insert(t);
                    prev_ticks = t;
                }
                true
            });
            pos = next;
            if count > 0 {
                let block = self.seal(ring, count as u32, first_ticks.unwrap_or(0), prev_ticks);
                out.push(Arc::new(block));
            }
        }
        ring.consume_to(pos);
        self.tables.insert(ring.stream.stream_id, table);
    }

    fn seal(&mut self, ring: &Ring, count: u32, begin: u64, end: u64) -> Block {
        let events_len = self.events.len() as u32;
        self.events.extend_from_slice(&self.deps);
        let p = &self.d.process;
        let header = BlockHeader {
            block_id: Uuid::new_v4(),
            stream_id: ring.stream.stream_id,
            sequence: ring.next_sequence.fetch_add(1, Ordering::Relaxed),
            begin_ticks: begin,
            end_ticks: end,
            begin_unix_nanos: p.ticks_to_unix_nanos(begin),
            end_unix_nanos: p.ticks_to_unix_nanos(end),
            event_count: count,
            compression: Compression::Lz4,
            uncompressed_len: 0,
            events_len,
        };
        Block::seal(header, &self.events)
    }
}

/// Walks the records of `ring` from `pos` towards `end`, calling `on_record` with each whole
/// record; stops early, before the record, when `on_record` returns false. Returns the number
/// of records taken and the position reached.
fn walk(
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
                // readable range rather than misparse it.
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

fn backoff(attempts: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempts.min(6)).min(5_000);
    // Jitter of up to 25% from the clock's low bits, to spread retries of many processes.
    let jitter = crate::time::now() % (base / 4 + 1);
    Duration::from_millis(base - jitter)
}
