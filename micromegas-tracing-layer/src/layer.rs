//! `MicromegasLayer`: spans and events of `tracing` into micromegas streams.

use crate::callsite::metadata_id;
use crate::fields::FieldWriter;
use crate::span_cache;
use micromegas_core::events;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The ids micromegas gives a span, kept in the registry's extensions of that span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    /// Process-unique span id.
    pub span_id: u64,
    /// The trace: the W3C trace id given by a `traceparent` field of the root span, or else the
    /// id of the root span.
    pub trace_id: u128,
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
/// It keeps no state of its own: records go to the calling thread's micromegas streams, which
/// [`micromegas_core::init`] (or [`crate::init`], or [`MicromegasLayer::builder`]) sets up.
/// It never filters through `register_callsite` or `enabled`, so it hides nothing from other
/// layers; filter it with `.with_filter(...)` like any layer.
#[derive(Debug, Default, Clone, Copy)]
pub struct MicromegasLayer {
    _private: (),
}

impl MicromegasLayer {
    /// A layer writing into the already initialized micromegas pipeline.
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// Configures the pipeline and the layer together.
    pub fn builder() -> crate::Builder {
        crate::Builder::default()
    }
}

/// The ids of a live span: from this thread's cache, or else from the registry (and then
/// cached).
#[inline]
fn ids_of<S>(ctx: &Context<'_, S>, id: &Id) -> Option<SpanIds>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(ids) = span_cache::lookup(id) {
        return Some(ids);
    }
    let ids = ctx.span(id)?.extensions().get::<SpanIds>().copied()?;
    span_cache::remember(id, ids);
    Some(ids)
}

/// The ids of the span a new span or event belongs to (the current span if `contextual`, else
/// `explicit`): from this thread's cache when a micromegas layer recorded that span (so no
/// per-layer filter hid it from us), else from `lookup`. `None` when there is no such span.
#[inline]
fn cached_or<S>(
    ctx: &Context<'_, S>,
    contextual: bool,
    explicit: Option<&Id>,
    lookup: impl FnOnce() -> Option<SpanIds>,
) -> Option<SpanIds>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let direct = if contextual {
        ctx.current_span().id().cloned()
    } else {
        explicit.cloned()
    };
    direct.and_then(|id| span_cache::lookup(&id).or_else(lookup))
}

impl<S> Layer<S> for MicromegasLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // `parent()` skips the ancestors a per-layer filter hides from this layer.
        let parent = cached_or(&ctx, attrs.is_contextual(), attrs.parent(), || {
            span.parent().and_then(|p| ids_of(&ctx, &p.id()))
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
        let ids = SpanIds { span_id, trace_id };
        span.extensions_mut().insert(ids);
        span_cache::remember(id, ids);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(ids) = span.extensions().get::<SpanIds>().copied() else {
            return;
        };
        let Some(meta) = metadata_id(span.metadata()) else {
            return;
        };
        events::span_record(meta, ids.span_id, |w| values.record(&mut FieldWriter(w)));
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if let (Some(a), Some(b)) = (ids_of(&ctx, id), ids_of(&ctx, follows)) {
            events::span_follows(a.span_id, b.span_id);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(meta) = metadata_id(event.metadata()) else {
            return;
        };
        // `event_span` skips the spans a per-layer filter hides from this layer.
        let ids = cached_or(&ctx, event.is_contextual(), event.parent(), || {
            ctx.event_span(event).and_then(|s| ids_of(&ctx, &s.id()))
        });
        let (span_id, trace_id) = ids.map_or((0, 0), |i| (i.span_id, i.trace_id));
        events::log_fields(meta, span_id, trace_id, |w| {
            event.record(&mut FieldWriter(w))
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(ids) = ids_of(&ctx, id) {
            events::span_enter(ids.span_id);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(ids) = ids_of(&ctx, id) {
            events::span_exit(ids.span_id);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let ids = span_cache::lookup(&id)
            .or_else(|| ctx.span(&id)?.extensions().get::<SpanIds>().copied());
        if let Some(ids) = ids {
            events::span_close(ids.span_id);
        }
        // Before the registry frees the id for reuse.
        span_cache::closed(&id);
    }
}
