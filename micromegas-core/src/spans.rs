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
    /// The thread's innermost and outermost scopes before this one (see [`Current`]).
    outer: (u64, u64),
    _not_send: PhantomData<*const ()>,
}

impl ScopeGuard {
    /// Begins a scope.
    #[inline(always)]
    pub fn new(meta: &'static SpanMetadata) -> Self {
        Self {
            meta,
            outer: events::begin_scope(meta),
            _not_send: PhantomData,
        }
    }
}

impl Drop for ScopeGuard {
    #[inline(always)]
    fn drop(&mut self) {
        events::end_scope(self.meta, self.outer);
    }
}

/// Where the calling thread is in native spans: what a log made now belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    /// The async span being polled on this thread, 0 if none.
    pub(crate) async_span: u64,
    /// Its trace.
    pub(crate) async_trace: u64,
    /// Begin ticks of the innermost scope open on this thread (begun during this poll when an
    /// async span is polled), 0 if none. With the thread, they identify the scope: see
    /// [`crate::read::scope_span_id`].
    pub(crate) scope: u64,
    /// Outside async code, begin ticks of the outermost open scope, whose id is the trace's.
    pub(crate) root: u64,
}

impl Current {
    const NONE: Current = Current {
        async_span: 0,
        async_trace: 0,
        scope: 0,
        root: 0,
    };

    /// True when the thread is in no native span.
    #[inline(always)]
    pub(crate) fn is_none(&self) -> bool {
        self.async_span == 0 && self.scope == 0
    }
}

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::NONE) };
}

/// Where the calling thread is in native spans.
#[inline(always)]
pub(crate) fn current() -> Current {
    CURRENT.with(Cell::get)
}

/// Sets the innermost and outermost scopes of the calling thread (async span unchanged).
#[inline(always)]
pub(crate) fn set_scopes((scope, root): (u64, u64)) {
    CURRENT.with(|c| {
        c.set(Current {
            scope,
            root,
            ..c.get()
        })
    });
}

/// The parent of an async span polled for the first time, and its trace: the async span being
/// polled, or else the innermost open scope (in the trace of the outermost), or none (0, 0).
#[inline]
fn parent_of_new_async() -> (u64, u64) {
    let c = current();
    if c.async_span != 0 || c.scope == 0 {
        return (c.async_span, c.async_trace);
    }
    crate::dispatch::local::scope_span_ids(c.scope, c.root)
}

/// Id of the async span being polled on this thread, 0 if none.
pub fn current_async_span() -> u64 {
    current().async_span
}

/// A future recorded as an async span: it begins at the first poll (its parent is the async
/// span being polled at that moment, or else the innermost scope open on the thread) and ends
/// when the future completes or is dropped. Polls may happen on any thread.
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

/// Puts back the thread's context of before a poll.
struct RestoreCurrent(Current);

impl Drop for RestoreCurrent {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

impl<F: Future> Future for InstrumentedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is never moved out of `self`: it is only polled in place below, and
        // the other fields are plain data that are not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.span_id == 0 {
            let (parent, parent_trace) = parent_of_new_async();
            this.parent = parent;
            (this.span_id, this.trace) = events::begin_async(this.meta, parent, parent_trace);
        }
        // During the poll, the thread is in this span and in none of the scopes open around it.
        let polled = Current {
            async_span: this.span_id,
            async_trace: this.trace,
            ..Current::NONE
        };
        let _restore = RestoreCurrent(CURRENT.with(|c| c.replace(polled)));
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
