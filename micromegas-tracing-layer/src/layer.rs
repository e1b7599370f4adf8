//! `MicromegasLayer`: spans and events of `tracing` into micromegas streams.

use crate::callsite::metadata_id;
use crate::fields::FieldWriter;
use crate::span_stack;
use crate::span_table::{self, Owner, SlotRef};
use micromegas_core::events;
use micromegas_core::metadata::CallsiteId;
use micromegas_core::spans::{self, ThreadSpan};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The ids micromegas gives a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    /// Process-unique span id.
    pub(crate) span_id: u64,
    /// The trace: the W3C trace id given by a `traceparent` field of the root span, or else the
    /// id of the root span.
    pub(crate) trace_id: u128,
}

/// A `tracing_subscriber::Layer` recording spans (creation with fields, late fields, enter and
/// exit on each thread, close, follows-from) and events (as log entries with their fields and
/// the ids of their span and trace) into micromegas.
///
/// A root span continues a distributed trace when it has a `traceparent` field holding a W3C
/// trace context (`00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`, as received
/// in an HTTP header): the span and its descendants take that trace id, and the span's parent
/// is the remote span, so that a trace started by an OpenTelemetry service and continued here
/// is one tree in the lake.
///
/// ```
/// # let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let span = tracing::info_span!("handle", traceparent = header);
/// ```
///
/// The fields `tracing-opentelemetry` gives a meaning to mean the same in the lake's `spans`
/// table: `otel.name` replaces the span's name, `otel.kind` (`server`, `client`, `producer`,
/// `consumer`, `internal`) sets its `kind`, `otel.status_code` (`ok`, `error`, `unset`) and
/// `otel.status_description` its status. An event of level `ERROR` in a span marks the span's
/// status `ERROR`, unless `otel.status_code` is `ok`. Fields recorded later must be
/// declared when the span is created, as with any `tracing` field:
///
/// ```
/// let span = tracing::info_span!("request", otel.kind = "server", otel.status_code = tracing::field::Empty);
/// span.record("otel.status_code", "ok");
/// ```
///
/// A span begins when it is created and ends when it is last exited, as with
/// tracing-opentelemetry: a span kept after its work (by the handle of a finished task, or by
/// a struct) does not look longer than that work. A span never entered ends when it closes.
/// Each enter and exit on a thread is also kept (the lake's `span_intervals`).
///
/// It keeps no state of its own: records go to the calling thread's micromegas streams, which
/// [`micromegas_core::init`] (or [`crate::init`], or [`MicromegasLayer::builder`]) sets up.
/// It never filters through `register_callsite` or `enabled`, so it hides nothing from other
/// layers; filter it with `.with_filter(...)` like any layer.
#[derive(Debug, Default, Clone, Copy)]
pub struct MicromegasLayer {
    /// Given when the layer is added to a subscriber (`on_layer`): the key of that subscriber's
    /// spans in the shared span table. Without one, span ids live in the registry's extensions.
    owner: Option<Owner>,
}

impl MicromegasLayer {
    /// A layer writing into the already initialized micromegas pipeline.
    pub fn new() -> Self {
        Self { owner: None }
    }

    /// Configures the pipeline and the layer together.
    pub fn builder() -> crate::Builder {
        crate::Builder::default()
    }
}

impl MicromegasLayer {
    /// The ids of a live span recorded by this layer, from the shared table.
    #[inline]
    fn table_ids(&self, id: &Id) -> Option<SpanIds> {
        span_table::lookup(self.owner?, id.into_u64())
    }

    /// The ids of a live span: from the shared table, or else from the registry's extensions
    /// (where they are when the table had no room, or the layer has no owner).
    #[inline]
    fn ids_of<S>(&self, ctx: &Context<'_, S>, id: &Id) -> Option<SpanIds>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.ids_and_slot(ctx, id).map(|(ids, _)| ids)
    }

    /// The ids of a live span, as [`Self::ids_of`], and its slot in the shared table (`None`
    /// when its ids are in the registry's extensions).
    #[inline]
    fn ids_and_slot<S>(&self, ctx: &Context<'_, S>, id: &Id) -> Option<(SpanIds, Option<SlotRef>)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self
            .owner
            .and_then(|owner| span_table::lookup_slot(owner, id.into_u64()))
        {
            Some((ids, slot)) => Some((ids, Some(slot))),
            None => extension_ids(ctx, id).map(|ids| (ids, None)),
        }
    }

    /// Keeps the ids of a new span where every thread finds them.
    #[inline]
    fn share_ids<S>(&self, ctx: &Context<'_, S>, id: &Id, ids: SpanIds)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let in_table = self
            .owner
            .is_some_and(|owner| span_table::insert(owner, id.into_u64(), ids));
        if !in_table {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(ids);
            }
        }
    }

    /// The ids of the span a new span or event belongs to (the current span if `contextual`,
    /// else `explicit`): a native span begun in the current span of `tracing` (or outside
    /// any), else the top of this thread's stack of entered spans, or from the shared
    /// table when this layer recorded that span (so no per-layer filter hid it from us), else
    /// from `lookup`. `None` when there is no such span.
    #[inline]
    fn parent_of<S>(
        &self,
        ctx: &Context<'_, S>,
        contextual: bool,
        explicit: Option<&Id>,
        lookup: impl FnOnce() -> Option<SpanIds>,
    ) -> Option<SpanIds>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let direct = if contextual {
            match spans::thread_span() {
                // A native span (`span_scope!`, `async_span!`) begun in the current span of
                // `tracing`, or outside any, is the innermost: it is the parent.
                ThreadSpan::Native(span_id, trace_id) => {
                    return Some(SpanIds { span_id, trace_id });
                }
                // This layer makes each span it enters the thread's (`span_stack::push`): in
                // none, the thread is in none of its spans.
                ThreadSpan::None if self.owner.is_some() => return None,
                _ => {}
            }
            if let Some(current) = self.owner.and_then(span_stack::current) {
                return current;
            }
            ctx.current_span().id().cloned()
        } else {
            explicit.cloned()
        };
        match self.table_ids(&direct?) {
            Some(ids) => Some(ids),
            None => lookup(),
        }
    }
}

/// As with tracing-opentelemetry, an error event in a span marks the span failed (the lake's
/// `status_code`), unless the span has `otel.status_code = "ok"`. Out of line: events
/// of other levels pay only the level check.
#[cold]
#[inline(never)]
pub(crate) fn mark_failed(event_meta: CallsiteId, span_id: u64) {
    events::span_record(event_meta, span_id, |w| {
        w.bool(Some(events::ERROR_EVENT_FIELD), true)
    });
}

/// The ids of a span kept in the registry's extensions (the table had no room for it, or the
/// layer has no owner).
#[cold]
#[inline(never)]
fn extension_ids<S>(ctx: &Context<'_, S>, id: &Id) -> Option<SpanIds>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.span(id)?.extensions().get::<SpanIds>().copied()
}

/// Ticks of the last exit of a span whose ids are in the registry's extensions.
#[derive(Debug, Clone, Copy)]
struct LastExit(u64);

/// Notes an exit of a span whose ids are in the registry's extensions.
#[cold]
#[inline(never)]
fn extension_exited<S>(ctx: &Context<'_, S>, id: &Id, ticks: u64)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(span) = ctx.span(id) {
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<LastExit>() {
            Some(last) => last.0 = last.0.max(ticks),
            None => extensions.insert(LastExit(ticks)),
        }
    }
}

/// The ids and the ticks of the last exit (0: never exited) of a closing span whose ids are
/// in the registry's extensions.
#[cold]
#[inline(never)]
fn extension_ends<S>(ctx: &Context<'_, S>, id: &Id) -> Option<(SpanIds, u64)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    let extensions = span.extensions();
    let ids = *extensions.get::<SpanIds>()?;
    Some((ids, extensions.get::<LastExit>().map_or(0, |l| l.0)))
}

impl<S> Layer<S> for MicromegasLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.owner = Some(Owner::fresh());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // `parent()` skips the ancestors a per-layer filter hides from this layer.
        let parent = self.parent_of(&ctx, attrs.is_contextual(), attrs.parent(), || {
            let parent = ctx.span(id)?.parent()?;
            self.ids_of(&ctx, &parent.id())
        });
        let Some(meta) = metadata_id(attrs.metadata()) else {
            return;
        };
        let span_id = events::new_span_id();
        let (parent_id, trace_id) = match parent {
            Some(p) => (p.span_id, p.trace_id),
            None => crate::traceparent::remote_parent(attrs).unwrap_or((0, span_id.into())),
        };
        events::span_new(meta, span_id, parent_id, trace_id, |w| {
            attrs.record(&mut FieldWriter(w))
        });
        self.share_ids(&ctx, id, SpanIds { span_id, trace_id });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(ids) = self.ids_of(&ctx, id) else {
            return;
        };
        let Some(meta) = ctx.metadata(id).and_then(metadata_id) else {
            return;
        };
        events::span_record(meta, ids.span_id, |w| values.record(&mut FieldWriter(w)));
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if let (Some(a), Some(b)) = (self.ids_of(&ctx, id), self.ids_of(&ctx, follows)) {
            events::span_follows(a.span_id, b.span_id);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(meta) = metadata_id(event.metadata()) else {
            return;
        };
        // `event_span` skips the spans a per-layer filter hides from this layer.
        let ids = self.parent_of(&ctx, event.is_contextual(), event.parent(), || {
            ctx.event_span(event)
                .and_then(|s| self.ids_of(&ctx, &s.id()))
        });
        let (span_id, trace_id) = ids.map_or((0, 0), |i| (i.span_id, i.trace_id));
        events::log_fields(meta, span_id, trace_id, |w| {
            event.record(&mut FieldWriter(w))
        });
        if span_id != 0 && *event.metadata().level() == tracing_core::Level::ERROR {
            mark_failed(meta, span_id);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some((ids, slot)) = self.ids_and_slot(&ctx, id) {
            events::span_enter(ids.span_id);
            if let Some(owner) = self.owner {
                span_stack::push(owner, id.into_u64(), ids, slot);
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let popped = self
            .owner
            .and_then(|owner| span_stack::pop(owner, id.into_u64()));
        let Some((ids, slot)) = popped.or_else(|| self.ids_and_slot(&ctx, id)) else {
            return;
        };
        let ticks = events::span_exit(ids.span_id);
        match slot {
            Some(slot) => slot.exited(ticks),
            None => extension_exited(&ctx, id, ticks),
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // The slot is freed before the registry frees the id for reuse.
        let taken = self
            .owner
            .and_then(|owner| span_table::take(owner, id.into_u64()));
        let Some((ids, last_exit)) = taken.or_else(|| extension_ends(&ctx, &id)) else {
            return;
        };
        // A span ends at its last exit, or when it closes if it was never entered.
        match last_exit {
            0 => events::span_close(ids.span_id),
            ticks => events::span_close_ended(ids.span_id, ticks),
        }
    }
}
