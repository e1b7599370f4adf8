//! The ids micromegas gave live spans, per thread, so that enter, exit and close of a span the
//! thread has seen cost no registry lookup (a slab access, a lock and a map lookup each).
//!
//! The registry's extensions stay the source of truth; this cache only answers for spans that
//! this thread created or already looked up. `tracing` reuses a span's `Id` once the span is
//! closed, so a cached entry must not answer for a later span with the same `Id`: each close
//! stores a value never stored before (see [`fresh_epoch`]) in one of [`EPOCHS`] slots chosen
//! by the `Id`, an entry remembers the slot's value when it was filled, and it answers only
//! while the slot still holds that value. A close happens before the registry frees the `Id`,
//! which happens before any thread can be handed the reused `Id`, so a thread asking about the
//! new span sees the close's value or a later one, never the remembered one. Closes of other
//! spans sharing the slot only cost a cache miss. A plain store, not an atomic increment: no
//! locked instruction on the close path.

use crate::layer::SpanIds;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_core::span::Id;

/// Entries per thread (direct-mapped).
const WAYS: usize = 64;
/// Close counters, each on its own cache line so that closes on different threads rarely
/// touch the same line.
const EPOCHS: usize = 256;

#[repr(align(64))]
struct Epoch(AtomicU64);

static CLOSE_EPOCHS: [Epoch; EPOCHS] = [const { Epoch(AtomicU64::new(0)) }; EPOCHS];

#[derive(Clone, Copy)]
struct Entry {
    /// `Id::into_u64` of the span; 0 (never a valid `Id`) when empty.
    id: u64,
    epoch: u64,
    ids: SpanIds,
}

const EMPTY: Entry = Entry {
    id: 0,
    epoch: 0,
    ids: SpanIds {
        span_id: 0,
        trace_id: 0,
    },
};

thread_local! {
    static CACHE: [Cell<Entry>; WAYS] = const { [const { Cell::new(EMPTY) }; WAYS] };
}

#[inline(always)]
fn mix(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(always)]
fn way(id: u64) -> usize {
    (mix(id) >> (64 - WAYS.trailing_zeros())) as usize
}

#[inline(always)]
fn epoch(id: u64) -> &'static AtomicU64 {
    // The low bits of the product: independent of the bits `way` uses.
    &CLOSE_EPOCHS[(mix(id) as usize) & (EPOCHS - 1)].0
}

/// Remembers the ids of a live span for this thread.
#[inline]
pub(crate) fn remember(id: &Id, ids: SpanIds) {
    let id = id.into_u64();
    let entry = Entry {
        id,
        epoch: epoch(id).load(Ordering::Relaxed),
        ids,
    };
    CACHE.with(|c| c[way(id)].set(entry));
}

/// The ids of a live span, if this thread has them.
#[inline]
pub(crate) fn lookup(id: &Id) -> Option<SpanIds> {
    let id = id.into_u64();
    let e = CACHE.with(|c| c[way(id)].get());
    (e.id == id && e.epoch == epoch(id).load(Ordering::Relaxed)).then_some(e.ids)
}

/// Values handed to threads in blocks; block 0 is never handed out, so 0 (the slots' initial
/// value) is never stored.
const EPOCH_BLOCK: u64 = 1 << 32;
static NEXT_EPOCH_BLOCK: AtomicU64 = AtomicU64::new(EPOCH_BLOCK);

thread_local! {
    /// The next value this thread stores; 0 until it takes its first block.
    static NEXT_EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// A value no thread stored before: this thread's next one, from its block of 2^32 (a new
/// block, one shared increment, when the block is used up).
#[inline]
fn fresh_epoch() -> u64 {
    NEXT_EPOCH.with(|n| {
        let mut v = n.get();
        if v % EPOCH_BLOCK == 0 {
            v = NEXT_EPOCH_BLOCK.fetch_add(EPOCH_BLOCK, Ordering::Relaxed);
        }
        n.set(v + 1);
        v
    })
}

/// Records that a span is closed: no thread's entry for its `Id` answers any more.
#[inline]
pub(crate) fn closed(id: &Id) {
    let id = id.into_u64();
    epoch(id).store(fresh_epoch(), Ordering::Relaxed);
    CACHE.with(|c| {
        let slot = &c[way(id)];
        if slot.get().id == id {
            slot.set(EMPTY);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> SpanIds {
        SpanIds {
            span_id: n,
            trace_id: n as u128,
        }
    }

    #[test]
    fn answers_for_live_spans_only() {
        let a = Id::from_u64(7);
        assert_eq!(lookup(&a), None);
        remember(&a, ids(1));
        assert_eq!(lookup(&a), Some(ids(1)));
        closed(&a);
        assert_eq!(lookup(&a), None);
    }

    #[test]
    fn a_close_on_another_thread_invalidates_this_threads_entry() {
        let a = Id::from_u64(42);
        remember(&a, ids(1));
        std::thread::scope(|s| {
            s.spawn(|| closed(&Id::from_u64(42)));
        });
        // The same `Id` now names another span: the old entry must not answer for it.
        assert_eq!(lookup(&a), None);
        remember(&a, ids(2));
        assert_eq!(lookup(&a), Some(ids(2)));
    }

    #[test]
    fn epochs_are_never_repeated_across_threads() {
        let mut all: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| fresh_epoch()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert!(all.iter().all(|v| *v != 0));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn colliding_ids_do_not_answer_for_each_other() {
        // Find two ids sharing a way.
        let a = 1u64;
        let b = (2..).find(|b| way(*b) == way(a)).unwrap();
        remember(&Id::from_u64(a), ids(1));
        remember(&Id::from_u64(b), ids(2));
        assert_eq!(lookup(&Id::from_u64(a)), None);
        assert_eq!(lookup(&Id::from_u64(b)), Some(ids(2)));
    }
}
