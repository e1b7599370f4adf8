//! The ids micromegas gave live spans, shared by all threads: what a thread that did not see a
//! span created (an async task resumed on another worker, say) looks up, instead of the
//! registry's extensions (a slab access, a lock, a map insert with a heap allocation per span).
//! Each slot also keeps the ticks of its span's last exit, where the span ends, for its close.
//!
//! A fixed table of slots, open addressing with a few probes. A slot is keyed by the `Id` and
//! by the subscriber it belongs to (its [`Owner`]): `tracing` ids are only unique within one
//! subscriber, and a process may run several (tests, `with_default`). A span that finds no free
//! slot among its probes goes to the registry's extensions instead, so the table being full
//! costs speed, never data.
//!
//! Why lookups need no lock: a span is inserted by `on_new_span`, before any other hook can
//! name it, and removed by `on_close`, after every hook that names it has returned; lookups are
//! for live spans only. A slot's fields are written while the slot is claimed (`BUSY`) and
//! published by the release store of its owner, which a lookup reads with acquire before the
//! fields. A slot whose span closed becomes a tombstone, never empty again, so the probe
//! sequence of a live span is never cut short by an empty slot.

use crate::layer::SpanIds;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the table (a power of two): 48 bytes each.
const SLOTS: usize = 1 << 14;
/// Slots tried per insert and lookup.
const PROBES: usize = 8;

/// A slot never used.
const EMPTY: u64 = 0;
/// A slot being written or removed.
const BUSY: u64 = u64::MAX;
/// A slot whose span closed; free for a new span.
const TOMBSTONE: u64 = u64::MAX - 1;

/// The subscriber a span belongs to: a process-unique number given to each layer when it is
/// added to a subscriber. Never `EMPTY`, `BUSY` or `TOMBSTONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner(u64);

impl Owner {
    /// A number no other layer was given.
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

struct Slot {
    owner: AtomicU64,
    id: AtomicU64,
    span_id: AtomicU64,
    trace_lo: AtomicU64,
    trace_hi: AtomicU64,
    /// Ticks of the span's last exit, 0 if it was never exited.
    last_exit: AtomicU64,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        owner: AtomicU64::new(EMPTY),
        id: AtomicU64::new(0),
        span_id: AtomicU64::new(0),
        trace_lo: AtomicU64::new(0),
        trace_hi: AtomicU64::new(0),
        last_exit: AtomicU64::new(0),
    }
}; SLOTS];

/// The bits of an id that pick its slots. `Registry` ids are positions in a slab, with a
/// generation in the top 13 bits that changes each time a position is reused; leaving it out
/// gives a span the slots of the last span at its position, whose tombstone it reuses while
/// that cache line is still hot (a fresh random slot per span costs a cache miss). Only
/// speed depends on this: slots are matched on the whole id.
const PLACEMENT_BITS: u64 = (1 << 51) - 1;

#[inline(always)]
fn probes(owner: Owner, id: u64) -> impl Iterator<Item = &'static Slot> {
    let h = ((id & PLACEMENT_BITS) ^ owner.0.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let first = (h >> (64 - SLOTS.trailing_zeros())) as usize;
    (0..PROBES).map(move |p| &TABLE[(first + p) & (SLOTS - 1)])
}

/// Stores the ids of a new span; `false` if its probe slots are all taken (the caller keeps
/// them elsewhere).
#[inline]
pub(crate) fn insert(owner: Owner, id: u64, ids: SpanIds) -> bool {
    for slot in probes(owner, id) {
        let state = slot.owner.load(Ordering::Relaxed);
        if (state == EMPTY || state == TOMBSTONE)
            && slot
                .owner
                .compare_exchange(state, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            slot.id.store(id, Ordering::Relaxed);
            slot.span_id.store(ids.span_id, Ordering::Relaxed);
            slot.trace_lo.store(ids.trace_id as u64, Ordering::Relaxed);
            slot.trace_hi
                .store((ids.trace_id >> 64) as u64, Ordering::Relaxed);
            slot.last_exit.store(0, Ordering::Relaxed);
            slot.owner.store(owner.0, Ordering::Release);
            return true;
        }
    }
    false
}

#[inline]
fn find(owner: Owner, id: u64) -> Option<&'static Slot> {
    for slot in probes(owner, id) {
        let state = slot.owner.load(Ordering::Acquire);
        if state == owner.0 && slot.id.load(Ordering::Relaxed) == id {
            return Some(slot);
        }
        if state == EMPTY {
            return None;
        }
    }
    None
}

#[inline(always)]
fn read(slot: &Slot) -> SpanIds {
    SpanIds {
        span_id: slot.span_id.load(Ordering::Relaxed),
        trace_id: (slot.trace_hi.load(Ordering::Relaxed) as u128) << 64
            | slot.trace_lo.load(Ordering::Relaxed) as u128,
    }
}

/// The ids of a live span, if they are in the table.
#[inline]
pub(crate) fn lookup(owner: Owner, id: u64) -> Option<SpanIds> {
    find(owner, id).map(read)
}

/// The slot of a live span in the table, where its exits are noted.
#[derive(Clone, Copy)]
pub(crate) struct SlotRef(&'static Slot);

impl SlotRef {
    /// Notes an exit of the span at `ticks`. Exits on several threads at once may leave the
    /// earlier of two ticks read within a few instructions of each other.
    #[inline(always)]
    pub(crate) fn exited(self, ticks: u64) {
        if ticks > self.0.last_exit.load(Ordering::Relaxed) {
            self.0.last_exit.store(ticks, Ordering::Relaxed);
        }
    }
}

/// The ids and the slot of a live span, if they are in the table.
#[inline]
pub(crate) fn lookup_slot(owner: Owner, id: u64) -> Option<(SpanIds, SlotRef)> {
    find(owner, id).map(|slot| (read(slot), SlotRef(slot)))
}

/// The ids of a span that closes and the ticks of its last exit (0 if it was never exited),
/// freeing its slot (`None` if it is not in the table). The span's exits happened before
/// its close (the registry closes a span once no handle to it is left), so its slot holds
/// the last of them.
#[inline]
pub(crate) fn take(owner: Owner, id: u64) -> Option<(SpanIds, u64)> {
    let slot = find(owner, id)?;
    let ids = read(slot);
    let last_exit = slot.last_exit.load(Ordering::Relaxed);
    slot.owner.store(TOMBSTONE, Ordering::Release);
    Some((ids, last_exit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// The table is process-wide: tests that count free slots must not run at the same time.
    fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ids(n: u64) -> SpanIds {
        SpanIds {
            span_id: n,
            trace_id: (n as u128) << 64 | (n as u128 + 1),
        }
    }

    #[test]
    fn answers_for_live_spans_of_their_own_subscriber_only() {
        let _serial = serial();
        let (a, b) = (Owner::fresh(), Owner::fresh());
        assert!(insert(a, 7, ids(1)));
        assert!(insert(b, 7, ids(2)));
        assert_eq!(lookup(a, 7), Some(ids(1)));
        assert_eq!(lookup(b, 7), Some(ids(2)));
        assert_eq!(lookup(a, 8), None);
        assert_eq!(take(a, 7), Some((ids(1), 0)));
        assert_eq!(lookup(a, 7), None);
        assert_eq!(lookup(b, 7), Some(ids(2)));
        assert_eq!(take(b, 7), Some((ids(2), 0)));
        assert_eq!(lookup(b, 7), None);
    }

    #[test]
    fn a_full_probe_sequence_refuses_and_frees_slots_are_reused() {
        let _serial = serial();
        let owner = Owner::fresh();
        // Ids sharing the first probe slot of id 1 fill its whole sequence at most.
        let first = |id: u64| probes(owner, id).next().map(|s| s as *const Slot);
        let same: Vec<u64> = (1..)
            .filter(|id| first(*id) == first(1))
            .take(PROBES + 1)
            .collect();
        let stored: Vec<u64> = same
            .iter()
            .copied()
            .filter(|id| insert(owner, *id, ids(*id)))
            .collect();
        assert!(stored.len() <= PROBES);
        assert!(stored.len() < same.len(), "a full sequence refuses");
        for id in &stored {
            assert_eq!(lookup(owner, *id), Some(ids(*id)));
        }
        let refused = *same.iter().find(|id| !stored.contains(id)).unwrap();
        assert_eq!(lookup(owner, refused), None);
        take(owner, stored[0]);
        assert!(
            insert(owner, refused, ids(refused)),
            "a tombstone is reused"
        );
        assert_eq!(lookup(owner, refused), Some(ids(refused)));
        for id in stored.iter().skip(1).chain([&refused]) {
            assert_eq!(lookup(owner, *id), Some(ids(*id)));
            assert_eq!(take(owner, *id), Some((ids(*id), 0)));
        }
    }

    #[test]
    fn a_reused_registry_position_takes_the_slot_its_previous_span_freed() {
        let _serial = serial();
        let owner = Owner::fresh();
        let id = (5 << 38) | 77;
        let next_generation = id + (1 << 51);
        let slot = |id| find(owner, id).map(|s| s as *const Slot);
        assert!(insert(owner, id, ids(1)));
        let before = slot(id);
        assert_eq!(take(owner, id), Some((ids(1), 0)));
        assert!(insert(owner, next_generation, ids(2)));
        assert_eq!(slot(next_generation), before);
        // The whole id still decides: the old generation is not found.
        assert_eq!(lookup(owner, id), None);
        assert_eq!(take(owner, next_generation), Some((ids(2), 0)));
    }

    #[test]
    fn spans_inserted_on_one_thread_are_found_on_others() {
        let _serial = serial();
        let owner = Owner::fresh();
        let base = 1 << 40;
        let stored: Vec<bool> = (0..1000).map(|i| insert(owner, base + i, ids(i))).collect();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let stored = &stored;
                s.spawn(move || {
                    for i in (t..1000).step_by(4) {
                        let found = lookup(owner, base + i);
                        assert_eq!(found, stored[i as usize].then(|| ids(i)));
                        take(owner, base + i);
                        assert_eq!(lookup(owner, base + i), None);
                    }
                });
            }
        });
    }
}
