//! Single-producer single-consumer byte ring: the calling thread appends records, the flusher
//! thread drains them. No lock: positions are monotonic counters published with
//! release/acquire ordering. A record never straddles the end of the buffer: the producer
//! writes a [`PADDING`] byte and continues at the start.

use crate::model::StreamInfo;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Record type byte meaning "skip to the end of the buffer".
pub(crate) const PADDING: u8 = u8::MAX;

/// Smallest ring: four times the largest record.
pub(crate) const MIN_CAPACITY: usize = 4 * crate::events::MAX_VARIABLE_RECORD;

/// The producer wakes the flusher, and the flusher drains a ring without waiting for the
/// flush period, once it holds half the ring (at most 1 MiB). A wake is a system call in the
/// calling thread when the flusher sleeps (a few microseconds on a VM), and a drain pulls the
/// ring's cache lines to the flusher's core while the producer writes next to them: both are
/// paid per threshold, so a larger one costs the calling thread less per event (with an
/// eighth of the ring, at most 64 KiB, a 25-byte metric cost about 1 ns more). The other
/// half is the slack while the flusher wakes up; a ring found three quarters full grows.
pub(crate) fn drain_threshold(capacity: usize) -> usize {
    (capacity / 2).min(1 << 20)
}

/// A thread that wakes the flusher more often than this gets a larger ring (see
/// [`Producer::growth`]).
pub(crate) const FAST_WAKE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// How often a producer wakes the flusher.
struct WakeRate {
    /// Tick of the last wake (0: none yet).
    last: u64,
    /// Two wakes came less than [`FAST_WAKE_INTERVAL`] apart: the ring should grow.
    fast: bool,
}

impl WakeRate {
    /// Records a wake at tick `now`.
    fn note(&mut self, now: u64) {
        self.fast |= self.last != 0 && now.wrapping_sub(self.last) < fast_wake_ticks();
        self.last = now;
    }
}

fn fast_wake_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let per_second = u128::from(crate::time::ticks_per_second());
        (per_second * FAST_WAKE_INTERVAL.as_nanos() / 1_000_000_000) as u64
    })
}

#[repr(align(64))]
struct Padded<T>(T);

pub(crate) struct Ring {
    buf: Box<[UnsafeCell<u8>]>,
    mask: usize,
    /// Everything before `write` is written (producer stores, consumer loads); the producer
    /// may write up to `limit` without further checks (producer stores and loads; shutdown
    /// zeroes it to send the producer to its slow path).
    write: Padded<AtomicUsize>,
    limit: AtomicUsize,
    /// Everything before this position is consumed (consumer stores, producer loads).
    read: Padded<AtomicUsize>,
    /// Events refused because the ring was full.
    pub(crate) dropped_full: AtomicU64,
    /// The producing thread has exited; nothing more will be written.
    pub(crate) closed: AtomicBool,
    pub(crate) stream: Arc<StreamInfo>,
}

// SAFETY: the buffer is shared between exactly one producer and one consumer; the producer
// only writes bytes in [write, read + capacity) and the consumer only reads bytes in
// [read, write), and each side publishes its position with release ordering after its
// accesses and reads the other's with acquire ordering, so no byte is accessed by both at once.
unsafe impl Sync for Ring {}
// SAFETY: see above; the ring owns its buffer.
unsafe impl Send for Ring {}

impl Ring {
    pub(crate) fn new(capacity: usize, stream: Arc<StreamInfo>) -> Self {
        // At least four of the largest records.
        let capacity = capacity.next_power_of_two().max(MIN_CAPACITY);
        // Zeroed allocation: the OS maps pages on first touch, so an idle stream costs little.
        let bytes: Box<[u8]> = vec![0u8; capacity].into_boxed_slice();
        // SAFETY: `UnsafeCell<u8>` is `repr(transparent)` over `u8`, so the slice layouts match.
        let buf: Box<[UnsafeCell<u8>]> =
            unsafe { Box::from_raw(Box::into_raw(bytes) as *mut [UnsafeCell<u8>]) };
        Self {
            buf,
            mask: capacity - 1,
            write: Padded(AtomicUsize::new(0)),
            limit: AtomicUsize::new(0),
            read: Padded(AtomicUsize::new(0)),
            dropped_full: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            stream,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Bytes written and not yet consumed.
    pub(crate) fn used(&self) -> usize {
        self.write
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.read.0.load(Ordering::Acquire))
    }

    /// Consumer side: the readable range `[read, write)`.
    pub(crate) fn readable(&self) -> (usize, usize) {
        let write = self.write.0.load(Ordering::Acquire);
        let read = self.read.0.load(Ordering::Relaxed);
        (read, write)
    }

    /// Consumer side: the contiguous bytes from `pos` to `end` or the end of the buffer,
    /// whichever comes first.
    ///
    /// # Safety
    /// `[pos, end)` must be within the readable range returned by [`Ring::readable`].
    pub(crate) unsafe fn slice(&self, pos: usize, end: usize) -> &[u8] {
        let start = pos & self.mask;
        let len = (end - pos).min(self.capacity() - start);
        // SAFETY: the range is readable (caller contract), so the producer does not write it
        // until the consumer publishes a read position past it; the pointer comes from the
        // whole buffer, so it may cover `len` bytes.
        unsafe { std::slice::from_raw_parts(self.base().add(start) as *const u8, len) }
    }

    /// Pointer to the first byte, valid for the whole buffer (interior mutability through the
    /// `UnsafeCell`s).
    fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.buf.as_ptr())
    }

    /// Sends the producer to its slow path at its next write (used at shutdown).
    pub(crate) fn revoke(&self) {
        self.limit.store(0, Ordering::Relaxed);
    }

    /// Consumer side: releases everything before `pos` to the producer.
    pub(crate) fn consume_to(&self, pos: usize) {
        self.read.0.store(pos, Ordering::Release);
    }
}

static DETACHED_WRITE: AtomicUsize = AtomicUsize::new(0);
static DETACHED_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// The producing thread's handle on a ring, with its private copy of the positions.
pub(crate) struct Producer {
    base: *mut u8,
    mask: usize,
    /// Next write position (published to `ring.write` after each record).
    pos: usize,
    /// `ring.limit`, or a dummy zero while detached: records may be written contiguously
    /// without further checks up to this position.
    limit: *const AtomicUsize,
    /// Read position at which the flusher was last woken, to wake it once per drain.
    woken_at: usize,
    wake_rate: WakeRate,
    /// `ring.write`, or a dummy while detached, so that commit needs no branch.
    write: *const AtomicUsize,
    ring: Option<Arc<Ring>>,
    suspended: bool,
    /// Whether this CPU claims cache lines for writing ahead of the write position (see
    /// [`Producer::claim_ahead`]).
    claim_lines: bool,
}

impl Producer {
    /// A producer with no ring: every write takes the slow path, which attaches one.
    pub(crate) const fn detached() -> Self {
        Self {
            base: std::ptr::null_mut(),
            mask: 0,
            pos: 0,
            limit: &DETACHED_LIMIT,
            woken_at: usize::MAX,
            wake_rate: WakeRate {
                last: 0,
                fast: false,
            },
            write: &DETACHED_WRITE,
            ring: None,
            suspended: false,
            claim_lines: false,
        }
    }

    pub(crate) fn attach(ring: Arc<Ring>) -> Self {
        let base = ring.base();
        let write: *const AtomicUsize = &ring.write.0;
        let limit: *const AtomicUsize = &ring.limit;
        Self {
            write,
            limit,
            base,
            mask: ring.mask,
            pos: 0,
            woken_at: usize::MAX,
            wake_rate: WakeRate {
                last: 0,
                fast: false,
            },
            ring: Some(ring),
            suspended: false,
            claim_lines: prefetch::supported(),
        }
    }

    /// Asks for the cache line [`prefetch::AHEAD`] bytes past `pos` in exclusive state, so
    /// that a later record finds it ready. The flusher reads each line after it is written, so
    /// when the ring wraps around, this thread's copy of the line is shared with the flusher's
    /// core; writing it then waits for the other copy to be invalidated (a read for ownership)
    /// unless this was asked for earlier.
    #[inline(always)]
    fn claim_ahead(&self, pos: usize) {
        if self.claim_lines {
            prefetch::for_write(self.base.wrapping_add((pos + prefetch::AHEAD) & self.mask));
        }
    }

    pub(crate) fn ring(&self) -> Option<&Arc<Ring>> {
        self.ring.as_ref()
    }

    /// Fast path: where `n` bytes can be written now, or `None` if the slow path must run.
    /// `fixed`: the size of the record's fixed part, which decides whether it claims the line
    /// ahead (see [`CLAIM_FROM`]).
    #[inline(always)]
    pub(crate) fn try_reserve(&mut self, n: usize, fixed: usize) -> Option<*mut u8> {
        // SAFETY: `limit` points into the ring this producer holds an `Arc` of, or to a static.
        let limit = unsafe { (*self.limit).load(Ordering::Relaxed) };
        if self.pos + n <= limit {
            if fixed >= CLAIM_FROM {
                self.claim_ahead(self.pos);
            }
            // SAFETY: `limit` never passes the end of the buffer (see `reserve_slow`), so
            // `pos & mask` + n stays inside the allocation.
            Some(unsafe { self.base.add(self.pos & self.mask) })
        } else {
            None
        }
    }

    /// Fast path for a fixed record: a type byte and `W` little-endian words. Returns false,
    /// writing nothing, when the slow path must run.
    #[inline(always)]
    pub(crate) fn try_write_words<const W: usize>(&mut self, ty: u8, words: &[u64; W]) -> bool {
        let n = 1 + 8 * W;
        let pos = self.pos;
        // SAFETY: `limit` points into the ring this producer holds an `Arc` of, or to a static.
        let limit = unsafe { (*self.limit).load(Ordering::Relaxed) };
        if pos + n > limit {
            return false;
        }
        if n >= CLAIM_FROM {
            self.claim_ahead(pos);
        }
        // SAFETY: `limit` never passes the end of the buffer (see `reserve_slow`), so the n
        // bytes at `pos & mask` are inside the allocation, and they are the producer's to write.
        unsafe {
            let dst = self.base.add(pos & self.mask);
            *dst = ty;
            for (i, w) in words.iter().enumerate() {
                std::ptr::write_unaligned(dst.add(1 + 8 * i) as *mut u64, w.to_le());
            }
        }
        self.pos = pos + n;
        // SAFETY: `write` points into the ring this producer holds an `Arc` of, or to a static.
        unsafe { (*self.write).store(pos + n, Ordering::Release) };
        true
    }

    /// Publishes `n` bytes written at the reserved position.
    #[inline(always)]
    pub(crate) fn commit(&mut self, n: usize) {
        self.pos += n;
        // SAFETY: `write` points into the ring this producer holds an `Arc` of, or to a static.
        unsafe { (*self.write).store(self.pos, Ordering::Release) };
    }

    /// Slow path: makes room for a contiguous record of `n` bytes, padding to the start of
    /// the buffer if needed. Returns `None` when the ring is full (the caller counts a drop).
    /// Calls `wake` when the ring is over [`drain_threshold`], once per flusher drain.
    pub(crate) fn reserve_slow(&mut self, n: usize, wake: impl FnOnce()) -> Option<*mut u8> {
        let ring = self.ring.as_ref()?;
        let cap = ring.capacity();
        if n > cap / 4 {
            return None;
        }
        let read = ring.read.0.load(Ordering::Acquire);
        let threshold = drain_threshold(cap);
        if self.pos - read >= threshold && self.woken_at != read {
            self.woken_at = read;
            self.wake_rate.note(crate::time::now());
            wake();
        }
        let boundary = (self.pos | self.mask) + 1;
        if self.pos + n > boundary {
            if boundary + n - read > cap {
                ring.limit.store(0, Ordering::Relaxed);
                return None;
            }
            // SAFETY: `pos` < boundary and [pos, boundary) is free (boundary - read <= cap),
            // so the padding byte is ours to write.
            unsafe { *self.base.add(self.pos & self.mask) = PADDING };
            self.pos = boundary;
            ring.write.0.store(self.pos, Ordering::Release);
        } else if self.pos + n - read > cap {
            ring.limit.store(0, Ordering::Relaxed);
            return None;
        }
        let boundary = (self.pos | self.mask) + 1;
        // Come back here after at most `threshold` more bytes, to wake the flusher again if
        // it has not drained meanwhile.
        let check_at = (read + threshold).max(self.pos + n + threshold);
        let limit = boundary.min(read + cap).min(check_at);
        ring.limit.store(limit, Ordering::Relaxed);
        // SAFETY: pos + n <= limit <= boundary, inside the buffer.
        Some(unsafe { self.base.add(self.pos & self.mask) })
    }

    /// Refuses writes until [`Producer::resume`]: the fast path reads its limit from a static
    /// zero instead of the ring, and the slow path checks [`Producer::is_suspended`]. Returns
    /// the limit to restore. Only this producer's own fields change (no atomic operation): a
    /// [`Ring::revoke`] meanwhile still takes effect after the resume.
    #[inline(always)]
    pub(crate) fn suspend(&mut self) -> *const AtomicUsize {
        self.suspended = true;
        std::mem::replace(&mut self.limit, &DETACHED_LIMIT)
    }

    /// Ends a [`Producer::suspend`].
    #[inline(always)]
    pub(crate) fn resume(&mut self, limit: *const AtomicUsize) {
        self.suspended = false;
        self.limit = limit;
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// The capacity to grow to, if the ring may still grow up to `max_capacity` and either
    /// - it is at least three quarters full: the flusher lags behind this thread (above
    ///   [`drain_threshold`], at most half the ring, so that reaching the threshold, which
    ///   only wakes the flusher, is not taken for a lag); or
    /// - this thread fills its threshold faster than once per [`FAST_WAKE_INTERVAL`]: each
    ///   wake is a system call in this thread and a drain next to where it writes, paid per
    ///   threshold, so a busy thread gets a larger threshold.
    pub(crate) fn growth(&self, max_capacity: usize) -> Option<usize> {
        let ring = self.ring.as_ref()?;
        let cap = ring.capacity();
        let used = self.pos - ring.read.0.load(Ordering::Acquire);
        (cap < max_capacity && (used >= cap - cap / 4 || self.wake_rate.fast))
            .then(|| (cap * 2).min(max_capacity.next_power_of_two()))
    }

    /// Detaches from the ring, marking it closed for the flusher.
    pub(crate) fn close(&mut self) {
        if let Some(ring) = self.ring.take() {
            ring.limit.store(0, Ordering::Relaxed);
            ring.closed.store(true, Ordering::Release);
        }
        self.limit = &DETACHED_LIMIT;
    }
}

/// Records of at least this many bytes (their fixed part, for records with a tail) claim the
/// line ahead of them (see [`Producer::claim_ahead`]). A smaller record shares its line with
/// the next ones, and claiming at each costs more than the wait it saves: with a claim at
/// every record, a span scope (two records of 17 bytes) took 1.5 – 3 ns longer (BENCHMARKS
/// §1), while a `tracing` event (41 bytes and its fields) took 2 – 4 ns less.
const CLAIM_FROM: usize = 32;

/// Prefetching for write: a hint, which changes no data and never faults.
mod prefetch {
    /// How far ahead of the write position lines are claimed: a few records.
    pub(super) const AHEAD: usize = 256;

    /// Whether the CPU has an instruction to prefetch for writing: `PREFETCHW` on x86_64
    /// (CPUID leaf 0x8000_0001, ECX bit 8), read once.
    pub(super) fn supported() -> bool {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            *SUPPORTED.get_or_init(|| {
                use std::arch::x86_64::__cpuid;
                #[allow(unused_unsafe)]
                // SAFETY: CPUID exists on every x86_64 CPU; these leaves only report features.
                unsafe {
                    __cpuid(0x8000_0000).eax >= 0x8000_0001
                        && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
                }
            })
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            false
        }
    }

    /// Asks for the cache line holding `p` in exclusive state. Only called when [`supported`].
    #[inline(always)]
    pub(super) fn for_write(p: *const u8) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        // SAFETY: PREFETCHW (supported, checked by the caller) is a hint: it reads nothing
        // into a register, writes no memory and does not fault, whatever the address.
        unsafe {
            std::arch::asm!(
                "prefetchw byte ptr [{}]",
                in(reg) p,
                options(nostack, preserves_flags, readonly)
            );
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StreamKind;

    fn producer(capacity: usize) -> Producer {
        let stream = Arc::new(StreamInfo {
            stream_id: uuid::Uuid::nil(),
            process_id: uuid::Uuid::nil(),
            kind: StreamKind::Logs,
            thread_id: 1,
            thread_name: String::new(),
            layouts: Vec::new(),
            properties: Vec::new(),
        });
        Producer::attach(Arc::new(Ring::new(capacity, stream)))
    }

    #[test]
    fn a_ring_grows_when_its_thread_wakes_the_flusher_twice_within_the_interval() {
        let mut p = producer(64 << 10);
        let t0 = 1_000_000;
        p.wake_rate.note(t0);
        assert_eq!(p.growth(1 << 20), None, "one wake says nothing of the rate");
        p.wake_rate.note(t0 + fast_wake_ticks() - 1);
        assert_eq!(p.growth(1 << 20), Some(128 << 10));
        // Not past the largest ring.
        assert_eq!(p.growth(64 << 10), None);
    }

    #[test]
    fn a_ring_woken_less_often_than_the_interval_keeps_its_size() {
        let mut p = producer(64 << 10);
        let mut t = 1_000_000;
        for _ in 0..5 {
            p.wake_rate.note(t);
            t += fast_wake_ticks() + 1;
        }
        assert_eq!(p.growth(1 << 20), None);
    }

    #[test]
    fn a_ring_three_quarters_full_grows_whatever_the_rate() {
        let mut p = producer(64 << 10);
        let cap = 64 << 10;
        let mut wakes = 0;
        while p.pos < cap - cap / 4 {
            let n = 1024;
            assert!(p.reserve_slow(n, || wakes += 1).is_some());
            p.commit(n);
        }
        assert_eq!(wakes, 1, "one wake per drain");
        assert_eq!(p.growth(1 << 20), Some(128 << 10));
    }

    /// Records large enough to claim the line ahead (on a CPU that can) go through the ring
    /// unchanged, wrap after wrap, while the consumer reads behind them.
    #[test]
    fn records_that_claim_lines_ahead_read_back_intact_across_wraps() {
        let mut p = producer(MIN_CAPACITY);
        assert_eq!(p.claim_lines, prefetch::supported());
        let ring = Arc::clone(p.ring().expect("attached"));
        const W: usize = 5;
        let n = 1 + 8 * W;
        assert!(n >= CLAIM_FROM);
        // Fewer under Miri, which is slow (and never claims: it runs no assembly).
        let wraps = if cfg!(miri) { 2 } else { 4 };
        let (mut written, mut read) = (0u64, 0u64);
        for _ in 0..wraps * MIN_CAPACITY / n {
            let words: [u64; W] = std::array::from_fn(|i| written * 10 + i as u64);
            if !p.try_write_words(7, &words) {
                let dst = p.reserve_slow(n, || {}).expect("the consumer keeps up");
                // SAFETY: `reserve_slow` gave `n` writable bytes at `dst`.
                unsafe {
                    *dst = 7;
                    for (i, w) in words.iter().enumerate() {
                        std::ptr::write_unaligned(dst.add(1 + 8 * i) as *mut u64, w.to_le());
                    }
                }
                p.commit(n);
            }
            written += 1;
            // The consumer: everything written so far.
            let (mut pos, end) = ring.readable();
            while pos < end {
                // SAFETY: [pos, end) is readable.
                let bytes = unsafe { ring.slice(pos, end) };
                if bytes[0] == PADDING {
                    pos = (pos | ring.mask) + 1;
                    continue;
                }
                assert_eq!(bytes[0], 7);
                for i in 0..W {
                    let at = 1 + 8 * i;
                    let word = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                    assert_eq!(word, read * 10 + i as u64);
                }
                read += 1;
                pos += n;
            }
            ring.consume_to(pos);
        }
        assert_eq!(read, written);
        assert!(p.pos > (wraps - 1) * MIN_CAPACITY, "the ring wrapped");
    }
}
