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
    /// The async span being polled on this thread, or the span another instrumentation (the
    /// `tracing` layer) entered there ([`enter_span`]), 0 if none.
    pub(crate) async_span: u64,
    /// Its trace, in two halves (low, high): the context stays 5 words.
    pub(crate) async_trace: [u64; 2],
    /// Begin ticks of the innermost scope open on this thread (begun during this poll when an
    /// async span is polled), 0 if none. With the thread, they identify the scope: see
    /// [`crate::read::scope_span_id`].
    pub(crate) scope: u64,
    /// Outside async code, begin ticks of the outermost open scope, whose id is the trace's.
    /// In a span entered with [`enter_span`] (and the scopes begun in it), [`ENTERED`]: the
    /// async span is then that span, not an async span of this crate being polled.
    pub(crate) root: u64,
}

/// The `root` of a thread's context in a span entered with [`enter_span`] (no tick count).
const ENTERED: u64 = u64::MAX;

impl Current {
    const NONE: Current = Current {
        async_span: 0,
        async_trace: [0; 2],
        scope: 0,
        root: 0,
    };

    /// True when the thread is in no native span.
    #[inline(always)]
    pub(crate) fn is_none(&self) -> bool {
        self.async_span == 0 && self.scope == 0
    }

    /// The trace of the async span.
    #[inline(always)]
    pub(crate) fn async_trace(&self) -> u128 {
        u128::from(self.async_trace[0]) | u128::from(self.async_trace[1]) << 64
    }

    /// The context of a thread in span `span_id` of trace `trace_id` (polled, or entered with
    /// [`enter_span`] when `root` is [`ENTERED`]), in none of the scopes open around it.
    #[inline(always)]
    fn in_span(span_id: u64, trace_id: u128, root: u64) -> Self {
        Current {
            async_span: span_id,
            async_trace: [trace_id as u64, (trace_id >> 64) as u64],
            scope: 0,
            root,
        }
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

/// The innermost native span of the calling thread, and its trace: the innermost open scope
/// (in the trace of the async span being polled, or else of the outermost open scope), or else
/// the async span being polled or the span entered with [`enter_span`]; `None` outside any.
/// Scopes carry no id when they run: theirs is derived as the reader derives it
/// ([`crate::read::scope_span_id`]), out of line.
#[inline]
pub fn innermost_span() -> Option<(u64, u128)> {
    innermost_of(&current())
}

/// The innermost native span of a thread in context `c` (see [`innermost_span`]).
#[inline]
fn innermost_of(c: &Current) -> Option<(u64, u128)> {
    if c.scope != 0 {
        let (scope, root) = crate::dispatch::local::scope_span_ids(c.scope, c.root);
        let trace = if c.async_span != 0 {
            c.async_trace()
        } else {
            root.into()
        };
        return (scope != 0).then_some((scope, trace));
    }
    (c.async_span != 0).then_some((c.async_span, c.async_trace()))
}

/// What the calling thread is in, for an instrumentation that enters its own spans with
/// [`enter_span`] (the `tracing` layer): it asks here first, then looks at its own spans only
/// for [`ThreadSpan::Entered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadSpan {
    /// No span at all: neither a native one nor one entered with [`enter_span`].
    None,
    /// The innermost span is one entered with [`enter_span`].
    Entered,
    /// The innermost span is native (a scope, or an async span being polled, begun inside
    /// every span entered with [`enter_span`]): its id and trace.
    Native(u64, u128),
}

/// What the calling thread is in (see [`ThreadSpan`]).
#[inline]
pub fn thread_span() -> ThreadSpan {
    let c = current();
    if c.scope == 0 {
        if c.async_span == 0 {
            return ThreadSpan::None;
        }
        if c.root == ENTERED {
            return ThreadSpan::Entered;
        }
    }
    match innermost_of(&c) {
        Some((span, trace)) => ThreadSpan::Native(span, trace),
        None => ThreadSpan::None,
    }
}

/// Id of the async span being polled on this thread (or of the span entered with
/// [`enter_span`]), 0 if none.
pub fn current_async_span() -> u64 {
    current().async_span
}

/// What the calling thread was in before [`enter_span`]; give it back to [`exit_span`].
#[derive(Debug, Clone, Copy)]
pub struct OuterSpans(Current);

/// Makes span `span_id` of trace `trace_id`, recorded by another instrumentation (the
/// `tracing` layer's spans), the calling thread's innermost span until [`exit_span`]: native
/// scopes, async spans and logs made meanwhile are its descendants, as during the poll of an
/// async span. Returns what the thread was in before.
#[inline]
pub fn enter_span(span_id: u64, trace_id: u128) -> OuterSpans {
    let entered = Current::in_span(span_id, trace_id, ENTERED);
    OuterSpans(CURRENT.with(|c| c.replace(entered)))
}

/// Puts back what the calling thread was in before the matching [`enter_span`].
#[inline]
pub fn exit_span(outer: OuterSpans) {
    CURRENT.with(|c| c.set(outer.0));
}

/// A future recorded as an async span: it begins at the first poll (its parent is the thread's
/// innermost span at that moment, see [`innermost_span`]) and ends
/// when the future completes or is dropped. Polls may happen on any thread.
pub struct InstrumentedFuture<F> {
    inner: F,
    meta: &'static SpanMetadata,
    span_id: u64,
    trace: u128,
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
            let (parent, parent_trace) = innermost_span().unwrap_or((0, 0));
            this.parent = parent;
            (this.span_id, this.trace) = events::begin_async(this.meta, parent, parent_trace);
        }
        // During the poll, the thread is in this span and in none of the scopes open around it.
        let polled = Current::in_span(this.span_id, this.trace, 0);
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
