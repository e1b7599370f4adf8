//! Span scopes for synchronous code and instrumented futures for async code.

use crate::events;
use crate::metadata::SpanMetadata;
use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Ends its scope when dropped. Not `Send`: a scope begins and ends on the same thread; use
/// [`InstrumentedFuture`] for code that crosses `.await`.
#[must_use = "the scope ends when the guard is dropped"]
pub struct ScopeGuard {
    meta: &'static SpanMetadata,
    _not_send: PhantomData<*const ()>,
}

impl ScopeGuard {
    /// Begins a scope.
    #[inline(always)]
    pub fn new(meta: &'static SpanMetadata) -> Self {
        events::begin_scope(meta);
        Self {
            meta,
            _not_send: PhantomData,
        }
    }
}

impl Drop for ScopeGuard {
    #[inline(always)]
    fn drop(&mut self) {
        events::end_scope(self.meta);
    }
}

thread_local! {
    /// The async span being polled on this thread and its trace, (0, 0) if none.
    static CURRENT_ASYNC: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The async span being polled on this thread and its trace, (0, 0) if none.
#[inline(always)]
pub(crate) fn current_async() -> (u64, u64) {
    CURRENT_ASYNC.with(Cell::get)
}

/// Id of the async span being polled on this thread, 0 if none.
pub fn current_async_span() -> u64 {
    CURRENT_ASYNC.with(Cell::get).0
}

/// A future recorded as an async span: it begins at the first poll (its parent is the async
/// span being polled at that moment) and ends when the future completes or is dropped. Polls
/// may happen on any thread.
pub struct InstrumentedFuture<F> {
    inner: F,
    meta: &'static SpanMetadata,
    span_id: u64,
    trace: u64,
    parent: u64,
    ended: bool,
}

impl<F> InstrumentedFuture<F> {
    /// Wraps `inner`.
    pub fn new(inner: F, meta: &'static SpanMetadata) -> Self {
        Self {
            inner,
            meta,
            span_id: 0,
            trace: 0,
            parent: 0,
            ended: false,
        }
    }

    /// The span id, 0 before the first poll.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }
}

struct RestoreCurrent((u64, u64));

impl Drop for RestoreCurrent {
    fn drop(&mut self) {
        CURRENT_ASYNC.with(|c| c.set(self.0));
    }
}

impl<F: Future> Future for InstrumentedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is never moved out of `self`: it is only polled in place below, and
        // the other fields are plain data that are not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.span_id == 0 {
            let (parent, parent_trace) = CURRENT_ASYNC.with(Cell::get);
            this.parent = parent;
            (this.span_id, this.trace) = events::begin_async(this.meta, parent, parent_trace);
        }
        let current = (this.span_id, this.trace);
        let _restore = RestoreCurrent(CURRENT_ASYNC.with(|c| c.replace(current)));
        // SAFETY: `this.inner` stays where it is for as long as `self` is pinned (see above).
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let out = inner.poll(cx);
        if out.is_ready() && !this.ended {
            this.ended = true;
            events::end_async(this.meta, this.span_id, this.parent);
        }
        out
    }
}

impl<F> Drop for InstrumentedFuture<F> {
    fn drop(&mut self) {
        if self.span_id != 0 && !self.ended {
            events::end_async(self.meta, self.span_id, self.parent);
        }
    }
}
