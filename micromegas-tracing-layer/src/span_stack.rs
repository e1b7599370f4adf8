//! The spans this thread is in, as the layer saw them entered and exited: the current span of
//! an event or of a new span is the top of this stack, with no registry lookup (the registry's
//! answer costs a slab access with a reference count, and a walk of its own stack when a
//! per-layer filter hides spans).
//!
//! Entries carry the [`Owner`] of the layer that pushed them: a thread may be in spans of
//! several subscribers (`with_default` inside a span), and each layer only sees its own. A
//! per-layer filter needs nothing more: the layer is told of the enters and exits of the spans
//! its filter lets through only, so the top entry is the nearest visible span, as
//! `Context::event_span` would find it.
//!
//! The innermost entered span is also the thread's span for the native instrumentation
//! ([`micromegas_core::spans::enter_span`]): native scopes, async spans and logs made in it are
//! its descendants. Each entry keeps what the thread was in before it, put back at its exit.

use crate::layer::SpanIds;
use crate::span_table::{Owner, SlotRef};
use micromegas_core::spans::{self, OuterSpans};
use std::cell::RefCell;

#[derive(Clone, Copy)]
struct Entry {
    owner: Owner,
    id: u64,
    ids: SpanIds,
    /// The span's slot in the shared table, where its exits are noted (`None`: the span's
    /// ids are in the registry's extensions).
    slot: Option<SlotRef>,
    /// The native context of the thread before this entry.
    outer: OuterSpans,
}

/// What an exit finds of the span it exits: its ids and its slot in the shared table.
pub(crate) type Exited = (SpanIds, Option<SlotRef>);

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// A span was entered on this thread.
#[inline]
pub(crate) fn push(owner: Owner, id: u64, ids: SpanIds, slot: Option<SlotRef>) {
    let _ = STACK.try_with(|s| {
        let outer = spans::enter_span(ids.span_id, ids.trace_id);
        s.borrow_mut().push(Entry {
            owner,
            id,
            ids,
            slot,
            outer,
        })
    });
}

/// A span was exited on this thread: its most recent entry goes (spans may be exited out of
/// order, and the same span may be entered more than once). Returns the span's ids and slot,
/// or `None` if it was not entered here.
#[inline]
pub(crate) fn pop(owner: Owner, id: u64) -> Option<Exited> {
    STACK
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let top = s.len().checked_sub(1)?;
            if s[top].owner != owner || s[top].id != id {
                return pop_below(&mut s, owner, id);
            }
            let Entry {
                ids, slot, outer, ..
            } = s[top];
            s.truncate(top);
            spans::exit_span(outer);
            Some((ids, slot))
        })
        .ok()
        .flatten()
}

/// A span exited out of order (or not entered here): its most recent entry below the top
/// goes, and the entry above it now puts back what it put back.
#[cold]
#[inline(never)]
fn pop_below(s: &mut Vec<Entry>, owner: Owner, id: u64) -> Option<Exited> {
    let i = s.iter().rposition(|e| e.owner == owner && e.id == id)?;
    let gone = s.remove(i);
    if let Some(above) = s.get_mut(i) {
        above.outer = gone.outer;
    }
    Some((gone.ids, gone.slot))
}

/// This thread's current span for `owner`: `Some(None)` when it is in none of that layer's
/// spans, `None` when the stack cannot be read (the thread is exiting).
#[inline]
pub(crate) fn current(owner: Owner) -> Option<Option<SpanIds>> {
    STACK
        .try_with(|s| {
            let s = s.borrow();
            s.iter().rev().find(|e| e.owner == owner).map(|e| e.ids)
        })
        .ok()
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

    /// The thread's span for the native instrumentation: (span, trace).
    fn native() -> Option<(u64, u128)> {
        spans::innermost_span()
    }

    #[test]
    fn the_current_span_is_the_most_recent_entered_and_not_exited() {
        let (a, b) = (Owner::fresh(), Owner::fresh());
        assert_eq!(current(a), Some(None));
        assert_eq!(native(), None);
        push(a, 1, ids(1), None);
        push(a, 2, ids(2), None);
        assert_eq!(current(a), Some(Some(ids(2))));
        assert_eq!(native(), Some((2, 2)));
        // Another subscriber's span on top hides nothing from the first.
        push(b, 1, ids(10), None);
        assert_eq!(current(a), Some(Some(ids(2))));
        assert_eq!(current(b), Some(Some(ids(10))));
        assert_eq!(native(), Some((10, 10)));
        // Out of order: span 1 exited while 2 is still entered. The native span stays the
        // innermost, and the exits of 2 and 10 then put back what was before 1.
        assert_eq!(pop(a, 1).map(|e| e.0), Some(ids(1)));
        assert_eq!(current(a), Some(Some(ids(2))));
        assert_eq!(native(), Some((10, 10)));
        pop(a, 2);
        assert_eq!(current(a), Some(None));
        assert_eq!(native(), Some((10, 10)));
        // The same span entered twice stays current until both exits.
        push(a, 3, ids(3), None);
        push(a, 3, ids(3), None);
        pop(a, 3);
        assert_eq!(current(a), Some(Some(ids(3))));
        assert_eq!(native(), Some((3, 3)));
        pop(a, 3);
        assert_eq!(current(a), Some(None));
        assert_eq!(native(), Some((10, 10)));
        // An exit never seen entered changes nothing.
        assert!(pop(a, 99).is_none());
        assert_eq!(current(b), Some(Some(ids(10))));
        pop(b, 1);
        assert_eq!(current(b), Some(None));
        assert_eq!(native(), None);
    }
}
