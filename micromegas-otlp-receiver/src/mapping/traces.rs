//! OTLP spans → `spans` rows, read straight from the request's protobuf bytes
//! ([`map_protobuf`]): ids are hex-encoded, and names and scalar attributes copied, from the
//! bytes into the Arrow columns, with no decoded request in between. The rare parts (span
//! events, links and status, attribute values that are not a string, integer or boolean, the
//! resource and the scope) are decoded by prost where they are met.

use super::common::{
    attributes_json, hex, json_array, process, span_id_text, time, trace_flags, trace_id_text,
    Scope,
};
use super::envelope::{self, Shape};
use super::values::Attribute;
use super::wire::{Fields, WireError};
use super::Mapped;
use micromegas_lake::tables::{SpanColumns, SpanText};
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, SpanFlags, Status,
};
use prost::Message;
use xxhash_rust::xxh3::Xxh3;

fn kind(k: i32) -> &'static str {
    match SpanKind::try_from(k).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Internal => "INTERNAL",
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Unspecified => "UNSPECIFIED",
    }
}

/// Adds `key: n` to a JSON object when `n` is not zero (the counts and flags OTLP leaves at
/// zero in the common case).
fn nonzero(mut item: serde_json::Value, key: &str, n: u32) -> serde_json::Value {
    match item.as_object_mut() {
        Some(object) if n != 0 => {
            object.insert(key.to_owned(), n.into());
        }
        _ => {}
    }
    item
}

/// The JSON text of a span's events, or `None` if it has none.
fn events_json(events: &[Event]) -> Option<String> {
    json_array(events, |e| {
        let event = serde_json::json!({
            "time_unix_nano": e.time_unix_nano,
            "name": e.name,
            "attributes": attributes_json(&e.attributes),
        });
        nonzero(
            event,
            "dropped_attributes_count",
            e.dropped_attributes_count,
        )
    })
}

/// The JSON text of a span's links, or `None` if it has none. A link's `flags` (its W3C trace
/// flags, and whether the linked span is in another process) are kept as OTLP sends them.
fn links_json(links: &[Link]) -> Option<String> {
    json_array(links, |l| {
        let link = serde_json::json!({
            "trace_id": hex(&l.trace_id),
            "span_id": hex(&l.span_id),
            "trace_state": l.trace_state,
            "attributes": attributes_json(&l.attributes),
        });
        let link = nonzero(link, "dropped_attributes_count", l.dropped_attributes_count);
        nonzero(link, "flags", l.flags)
    })
}

/// Whether a span's flags say its parent is in another process (the span continues a trace
/// received from elsewhere). The rest of the flags are its W3C trace flags ([`trace_flags`]).
fn parent_is_remote(flags: u32) -> bool {
    let known = SpanFlags::ContextHasIsRemoteMask as u32;
    let remote = SpanFlags::ContextIsRemoteMask as u32;
    flags & (known | remote) == known | remote
}

/// One span, read from its bytes: what its row needs, borrowed where it can be. One view is
/// reused for every span of a request, so its lists keep their room.
#[derive(Debug, Default)]
struct SpanView<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    attributes: Vec<Attribute<'a>>,
    events: Vec<Event>,
    links: Vec<Link>,
    status: Option<Status>,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
    flags: u32,
}

impl<'a> SpanView<'a> {
    /// Reads a `Span` message into this view.
    fn read(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.clear();
        *self = SpanView {
            attributes,
            ..Default::default()
        };
        let mut fields = Fields::new(bytes);
        while let Some((tag, v)) = fields.next_field()? {
            match tag {
                1 => self.trace_id = v.bytes("Span.trace_id")?,
                2 => self.span_id = v.bytes("Span.span_id")?,
                3 => self.trace_state = v.text("Span.trace_state")?,
                4 => self.parent_span_id = v.bytes("Span.parent_span_id")?,
                5 => self.name = v.text("Span.name")?,
                6 => self.kind = v.varint("Span.kind")? as i32,
                7 => self.start = v.fixed64("Span.start_time_unix_nano")?,
                8 => self.end = v.fixed64("Span.end_time_unix_nano")?,
                9 => {
                    let kv = Attribute::read(v.bytes("Span.attributes")?)?;
                    self.attributes.push(kv);
                }
                10 => self.dropped_attributes = v.varint("Span.dropped_attributes_count")? as u32,
                11 => self.events.push(Event::decode(v.bytes("Span.events")?)?),
                12 => self.dropped_events = v.varint("Span.dropped_events_count")? as u32,
                13 => self.links.push(Link::decode(v.bytes("Span.links")?)?),
                14 => self.dropped_links = v.varint("Span.dropped_links_count")? as u32,
                15 => {
                    let status = self.status.get_or_insert_default();
                    status.merge(v.bytes("Span.status")?)?;
                }
                16 => self.flags = v.fixed32("Span.flags")?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The text of the first attribute named one of `keys`.
    fn find_attribute(&self, keys: [&str; 2]) -> Option<String> {
        self.attributes
            .iter()
            .find(|kv| keys.contains(&kv.key()))
            .map(Attribute::text)
    }
}

/// Appends a span to `out`; nothing is appended if the span is invalid.
fn append(
    out: &mut SpanColumns,
    span: &SpanView<'_>,
    scope: &Scope,
    pid: &str,
    svc: &str,
) -> Result<(), String> {
    let (mut trace_buf, mut id_buf, mut parent_buf) = ([0; 32], [0; 32], [0; 32]);
    let trace = trace_id_text(span.trace_id, &mut trace_buf)?.ok_or("span without trace id")?;
    let id = span_id_text(span.span_id, &mut id_buf)?.ok_or("span without span id")?;
    let parent = span_id_text(span.parent_span_id, &mut parent_buf)?;
    if span.end < span.start {
        return Err(format!("span {id} ends before it starts"));
    }
    let status = span.status.as_ref();
    let code = match status.map(|s| StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset)) {
        Some(StatusCode::Ok) => "OK",
        Some(StatusCode::Error) => "ERROR",
        _ => "UNSET",
    };
    let file = span
        .find_attribute(["code.filepath", "code.file.path"])
        .unwrap_or_default();
    let line = span
        .find_attribute(["code.lineno", "code.line.number"])
        .and_then(|v| v.parse().ok());
    let text = SpanText {
        trace_id: Some(trace),
        span_id: id,
        parent_span_id: parent,
        name: span.name,
        target: &scope.name,
        service_name: svc,
        process_id: pid,
        thread_name: "",
        start_time: time(span.start),
        end_time: time(span.end),
        kind: kind(span.kind),
        status_code: code,
        status_message: status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()),
        level: None,
        file: &file,
        line,
    };
    out.append(&text, |a| {
        for kv in &span.attributes {
            kv.write(a);
        }
        if let Some(events) = events_json(&span.events) {
            a.entry("otel.events", &events);
        }
        if let Some(links) = links_json(&span.links) {
            a.entry("otel.links", &links);
        }
        if !span.trace_state.is_empty() {
            a.entry("otel.trace_state", span.trace_state);
        }
        if parent_is_remote(span.flags) {
            a.entry("otel.parent_is_remote", "true");
        }
        if let Some(flags) = trace_flags(span.flags) {
            a.entry("otel.trace_flags", &flags);
        }
        for (key, n) in [
            ("otel.dropped_attributes_count", span.dropped_attributes),
            ("otel.dropped_events_count", span.dropped_events),
            ("otel.dropped_links_count", span.dropped_links),
        ] {
            if n > 0 {
                a.entry_fmt(key, format_args!("{n}"));
            }
        }
        scope.write(a);
    });
    Ok(())
}

/// A trace request mapped from its bytes.
#[derive(Debug)]
pub struct MappedTraces {
    /// The `spans` rows, per resource, and what was rejected.
    pub mapped: Mapped,
    /// The request's identity: each resource, then each span's ids, times and name (a
    /// retried request has the same; two requests with the same spans are the same data).
    pub identity: u128,
}

/// The envelope of a trace request.
const SHAPE: Shape = Shape {
    resources: "ExportTraceServiceRequest.resource_spans",
    resource: "ResourceSpans.resource",
    scopes: "ResourceSpans.scope_spans",
    resource_schema: "ResourceSpans.schema_url",
    scope: "ScopeSpans.scope",
    items: "ScopeSpans.spans",
    scope_schema: "ScopeSpans.schema_url",
};

/// Maps the spans of one resource: one batch of its valid spans; invalid spans are counted.
fn resource_spans(
    r: envelope::ResourceItems<'_>,
    out: &mut Mapped,
    identity: &mut Xxh3,
) -> Result<(), WireError> {
    for bytes in &r.resource_bytes {
        identity.update(bytes);
    }
    let process = process(r.resource.as_ref(), r.schema_url);
    let mut columns = SpanColumns::with_capacity(r.item_count());
    let mut span = SpanView::default();
    for (scope, spans) in &r.scopes {
        for bytes in spans {
            span.read(bytes)?;
            identity.update(span.trace_id);
            identity.update(span.span_id);
            identity.update(&span.start.to_le_bytes());
            identity.update(&span.end.to_le_bytes());
            identity.update(span.name.as_bytes());
            let appended = append(
                &mut columns,
                &span,
                scope,
                &process.process_id,
                &process.service_name,
            );
            if let Err(e) = appended {
                out.reject(e);
            }
        }
    }
    out.push_columns(process, columns, SpanColumns::len, SpanColumns::finish);
    Ok(())
}

/// Maps an `ExportTraceServiceRequest` from its protobuf bytes: one batch of the `spans` table
/// per resource; invalid spans are counted and skipped. Bytes that prost would not decode as
/// a request are an error, and nothing of them is kept.
pub fn map_protobuf(bytes: &[u8]) -> Result<MappedTraces, WireError> {
    let mut mapped = Mapped::new(ViewTable::Spans);
    let mut identity = Xxh3::new();
    for resource in envelope::resources(bytes, &SHAPE)? {
        resource_spans(resource, &mut mapped, &mut identity)?;
    }
    Ok(MappedTraces {
        mapped,
        identity: identity.digest128(),
    })
}

/// Maps a decoded request: one batch of the `spans` table per resource; invalid spans are
/// counted and skipped. The request is encoded and mapped from its bytes, as by
/// [`map_protobuf`]; one nested too deeply to be read back has all its spans rejected.
pub fn map(req: &ExportTraceServiceRequest) -> Mapped {
    let scopes = req.resource_spans.iter().flat_map(|r| &r.scope_spans);
    let spans = scopes.map(|s| s.spans.len()).sum();
    super::map_decoded(req, ViewTable::Spans, spans, |b| {
        map_protobuf(b).map(|m| m.mapped)
    })
}
