//! Thread-local streams and the hot path. The calling thread only reads its thread-local
//! pointer, checks room in its ring, stores the record and publishes its position: no lock,
//! no allocation, no formatting (except `Display` fallbacks of log arguments).

use super::ring::Producer;
use super::{Dispatch, DropReason};
use crate::model::StreamKind;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) struct LocalStreams {
    producers: [Producer; 3],
    dispatch: Arc<Dispatch>,
    thread_id: u64,
    thread_name: String,
    next_span_id: u64,
    span_id_limit: u64,
}

thread_local! {
    /// Fast access to this thread's streams; null until the first event after `init`.
    static LOCAL: Cell<*mut LocalStreams> = const { Cell::new(std::ptr::null_mut()) };
    /// Owns the streams; its destructor closes them when the thread exits.
    static OWNER: RefCell<Option<OwnedLocal>> = const { RefCell::new(None) };
    /// Set while this thread works for the pipeline's sink: what it emits is not recorded.
    static UNRECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with what this thread emits meanwhile left unrecorded: neither stored nor counted
/// as dropped, as if filtered out. The flusher calls the sink this way, so that a sink whose
/// work emits events (a network client's own `tracing` events) cannot feed itself.
pub fn unrecorded<T>(f: impl FnOnce() -> T) -> T {
    /// Puts the thread back as it was, also when `f` panics.
    struct Restore {
        local: *mut LocalStreams,
        unrecorded: bool,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = UNRECORDED.try_with(|u| u.set(self.unrecorded));
            // The streams cannot have been released meanwhile: the thread was not attached
            // again while unrecorded, and only its exit releases them.
            let _ = LOCAL.try_with(|c| c.set(self.local));
        }
    }
    // With the fast pointer null, every write takes the slow path, which records nothing
    // while the flag is set.
    let _restore = Restore {
        local: LOCAL
            .try_with(|c| c.replace(std::ptr::null_mut()))
            .unwrap_or(std::ptr::null_mut()),
        unrecorded: UNRECORDED.try_with(|u| u.replace(true)).unwrap_or(false),
    };
    f()
}

/// Leaves everything the calling thread emits from now on unrecorded (see [`unrecorded`]):
/// for the threads a sink starts for its own work, such as its I/O runtime's.
pub fn unrecorded_thread() {
    let _ = UNRECORDED.try_with(|u| u.set(true));
    detach_thread();
}

/// Owns the thread's streams through a raw pointer (from `Box::into_raw`): a `Box` would
/// claim uniqueness whenever it moves, which the pointer kept in `LOCAL` must not lose.
struct OwnedLocal(*mut LocalStreams);

impl Drop for OwnedLocal {
    fn drop(&mut self) {
        // The fast pointer must not outlive the allocation.
        let _ = LOCAL.try_with(|c| c.set(std::ptr::null_mut()));
        // SAFETY: the pointer came from `Box::into_raw` in `attach_thread` and is released
        // only here, once; LOCAL no longer hands it out.
        let mut streams = unsafe { Box::from_raw(self.0) };
        for p in &mut streams.producers {
            p.close();
        }
        streams.dispatch.wake_flusher();
    }
}

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_SPAN_ID: AtomicU64 = AtomicU64::new(1);
const SPAN_ID_CHUNK: u64 = 4096;

/// Writes a fixed-size record, a type byte and `W` little-endian words, into this thread's
/// `kind` stream.
#[inline(always)]
pub(crate) fn write_words<const W: usize>(kind: StreamKind, ty: u8, words: [u64; W]) {
    // The words never leave this function, so they stay in registers: the slow path makes
    // room without them, then the record is written in place.
    for _ in 0..3 {
        if try_write_words(kind, ty, &words) {
            return;
        }
        if !make_room(kind, 1 + 8 * W) {
            return;
        }
    }
    // The room made went away each time (the ring revoked meanwhile): lost, and counted.
    count_lost(kind);
}

#[inline(always)]
fn try_write_words<const W: usize>(kind: StreamKind, ty: u8, words: &[u64; W]) -> bool {
    let local = LOCAL.with(Cell::get);
    if local.is_null() {
        return false;
    }
    // SAFETY: LOCAL is non-null only while OWNER keeps the box alive on this thread, and
    // nothing else on this thread holds a reference into it during a fixed write (no user
    // code runs).
    let p = unsafe { &mut (*local).producers[kind.index()] };
    p.try_write_words(ty, words)
}

/// Makes room for `n` bytes at this thread's write position in its `kind` stream (the slow
/// path of [`with_reserved`], writing nothing); `false` if there is none (a drop was counted)
/// or no pipeline is set up.
#[cold]
#[inline(never)]
fn make_room(kind: StreamKind, n: usize) -> bool {
    let mut room = false;
    with_reserved(kind, n, |_| {
        room = true;
        0
    });
    room
}

/// Counts a fixed record that found no room after the slow path made some.
#[cold]
#[inline(never)]
fn count_lost(kind: StreamKind) {
    let local = LOCAL.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if local.is_null() {
        return;
    }
    // SAFETY: see `write_words`; a shared read of the producer.
    if let Some(ring) = unsafe { (*local).producers[kind.index()].ring() } {
        ring.dropped_full.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes a variable-size record of at most `max` bytes. `fill` receives `max` writable bytes
/// and returns how many it used; `fixed` is the size of the record's fixed part (large records
/// claim the ring's cache line ahead). `fill` may run user code (`Display`); events it emits
/// into the same stream meanwhile are dropped and counted, never interleaved.
#[inline(always)]
pub(crate) fn write_variable(
    kind: StreamKind,
    max: usize,
    fixed: usize,
    fill: impl FnOnce(*mut u8) -> usize,
) {
    let local = LOCAL.with(Cell::get);
    if !local.is_null() {
        // SAFETY: as in `write_fixed`. A raw pointer, not a reference: nested writes from
        // `fill` may borrow the streams again.
        let p: *mut Producer = unsafe { std::ptr::addr_of_mut!((*local).producers[kind.index()]) };
        // SAFETY: `p` is valid (above) and no other reference to it is live.
        if let Some(dst) = unsafe { (*p).try_reserve(max, fixed) } {
            // SAFETY: same pointer; `suspend` makes any nested write to this stream take the
            // slow path, which refuses it while suspended, so `fill` cannot touch `*p`.
            let saved = unsafe { (*p).suspend() };
            let used = fill(dst);
            // SAFETY: `fill` is over; no other reference to `*p` exists.
            unsafe {
                (*p).resume(saved);
                (*p).commit(used.min(max));
            }
            return;
        }
    }
    write_variable_slow(kind, max, fill);
}

#[cold]
#[inline(never)]
fn write_variable_slow(kind: StreamKind, max: usize, fill: impl FnOnce(*mut u8) -> usize) {
    with_reserved(kind, max, fill);
}

/// Slow path shared by both writers: attaches this thread to the current dispatch and to a
/// ring for `kind` if needed, makes room, and runs `fill`; counts a drop if there is no room.
fn with_reserved(kind: StreamKind, n: usize, fill: impl FnOnce(*mut u8) -> usize) {
    let mut local = LOCAL.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if !local.is_null() {
        // SAFETY: see `write_fixed`.
        let dispatch = unsafe { &(*local).dispatch };
        // SAFETY: as above; shared reads of flags.
        let producers = unsafe { &(*local).producers };
        // A write from inside another record's `fill` (user `Display` code) into the same
        // stream is refused. Into another stream it is taken, unless the streams would have
        // to be detached: the outer write still uses them.
        if producers[kind.index()].is_suspended()
            || (dispatch.is_stopped() && producers.iter().any(Producer::is_suspended))
        {
            dispatch.count_drop(DropReason::Reentrant, 1);
            return;
        }
        if dispatch.is_stopped() {
            // A previous `init` was shut down: start over with the current one.
            detach_thread();
            local = std::ptr::null_mut();
        }
    }
    if local.is_null() {
        if UNRECORDED.try_with(Cell::get).unwrap_or(false) {
            return;
        }
        match attach_thread() {
            Some(l) => local = l,
            None => return,
        }
    }
    let idx = kind.index();
    // SAFETY: `local` is this thread's live box (attached above or checked non-null). Only raw
    // pointers are kept across `fill`, which may run user code that writes events again.
    let p: *mut Producer = unsafe { std::ptr::addr_of_mut!((*local).producers[idx]) };
    // SAFETY: as above; this reference ends before `fill` runs.
    let dispatch: Arc<Dispatch> = unsafe { (*local).dispatch.clone() };
    // SAFETY: no other reference to the producer is live here.
    let producer = unsafe { &mut *p };
    if producer.ring().is_none() {
        // SAFETY: as above, shared reads of the thread's identity.
        let (thread_id, thread_name) = unsafe { ((*local).thread_id, &(*local).thread_name) };
        let ring = dispatch.new_ring(kind, thread_id, thread_name);
        *producer = Producer::attach(ring);
    }
    if let Some(capacity) = producer.growth(dispatch.max_ring_bytes()) {
        if let Some(stream) = producer.ring().map(|r| r.stream.clone()) {
            let ring = dispatch.register_ring(stream, capacity);
            producer.close();
            *producer = Producer::attach(ring);
            dispatch.wake_flusher();
        }
    }
    match producer.reserve_slow(n, || dispatch.wake_flusher()) {
        Some(dst) => {
            let saved = producer.suspend();
            let used = fill(dst);
            // SAFETY: `fill` is over; nothing else refers to the producer.
            let producer = unsafe { &mut *p };
            producer.resume(saved);
            producer.commit(used.min(n));
        }
        None => {
            if let Some(ring) = producer.ring() {
                ring.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn attach_thread() -> Option<*mut LocalStreams> {
    let dispatch = super::current()?;
    let thread = std::thread::current();
    let boxed = Box::new(LocalStreams {
        producers: [
            Producer::detached(),
            Producer::detached(),
            Producer::detached(),
        ],
        dispatch,
        thread_id: NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed),
        thread_name: thread.name().unwrap_or("").to_owned(),
        next_span_id: 0,
        span_id_limit: 0,
    });
    let ptr: *mut LocalStreams = Box::into_raw(boxed);
    let installed = OWNER
        .try_with(|o| match o.try_borrow_mut() {
            Ok(mut slot) => {
                *slot = Some(OwnedLocal(ptr));
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false);
    if !installed {
        // The thread is exiting (its thread-locals are being destroyed): nothing to attach to.
        // SAFETY: `ptr` came from `Box::into_raw` just above and was not handed out.
        drop(unsafe { Box::from_raw(ptr) });
        return None;
    }
    LOCAL.with(|c| c.set(ptr));
    Some(ptr)
}

fn detach_thread() {
    let _ = OWNER.try_with(|o| {
        if let Ok(mut slot) = o.try_borrow_mut() {
            slot.take();
        }
    });
}

/// Starts this process's span ids at a point drawn from `seed` (the random process id), so
/// that ids (and the trace ids of root spans, derived from them) of different processes do
/// not collide in a shared lake. Only the first call has an effect: ids stay unique within
/// the process across re-initializations.
pub(crate) fn seed_span_ids(seed: u64) {
    // Below 2^62 so that the counter never wraps; never 0 (0 means "no span").
    let start = (seed & 0x3FFF_FFFF_FFFF_F000).max(SPAN_ID_CHUNK);
    let _ = NEXT_SPAN_ID.compare_exchange(1, start, Ordering::Relaxed, Ordering::Relaxed);
}

/// A fresh process-unique span id for async spans (never 0). Ids are handed out to threads in
/// chunks, so this rarely touches shared state.
pub(crate) fn next_span_id() -> u64 {
    let local = LOCAL.with(Cell::get);
    if !local.is_null() {
        // SAFETY: see `write_fixed`; no other reference is live.
        let l = unsafe { &mut *local };
        if l.next_span_id < l.span_id_limit {
            let id = l.next_span_id;
            l.next_span_id += 1;
            return id;
        }
        let start = NEXT_SPAN_ID.fetch_add(SPAN_ID_CHUNK, Ordering::Relaxed);
        l.next_span_id = start + 1;
        l.span_id_limit = start + SPAN_ID_CHUNK;
        return start;
    }
    NEXT_SPAN_ID.fetch_add(1, Ordering::Relaxed)
}

/// The span ids the reader gives the scopes of this thread that began at `scope` and `root`
/// ticks (see [`crate::read::scope_span_id`]); (0, 0) when the thread records nothing. Out of
/// line: asked by the first poll of an async span in a scope, and by other instrumentations
/// (the `tracing` layer) for what they record in a scope.
#[cold]
#[inline(never)]
pub(crate) fn scope_span_ids(scope: u64, root: u64) -> (u64, u64) {
    let local = LOCAL.with(Cell::get);
    if local.is_null() {
        return (0, 0);
    }
    // SAFETY: LOCAL is non-null only while OWNER keeps the box alive on this thread, and no
    // mutable reference into it is live meanwhile (this runs no user code while reading).
    let l = unsafe { &*local };
    let id = |ticks| crate::read::scope_span_id(&l.dispatch.process, l.thread_id, ticks);
    (id(scope), id(root))
}
