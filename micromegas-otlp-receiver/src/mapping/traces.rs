//! OTLP spans → `spans` rows.

use super::common::{
    attributes_json, hex, process, span_id_text, time, trace_id_text, value_text, write_attribute,
};
use super::Mapped;
use micromegas_lake::arrow::array::RecordBatch;
use micromegas_lake::tables::{SpanColumns, SpanText};
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};

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

/// The JSON array of `items`, or `None` if there are none.
fn json_array<T>(items: &[T], item: impl Fn(&T) -> serde_json::Value) -> Option<String> {
    (!items.is_empty())
        .then(|| serde_json::Value::Array(items.iter().map(item).collect()).to_string())
}

/// The JSON text of a span's events, or `None` if it has none.
fn events_json(span: &Span) -> Option<String> {
    json_array(&span.events, |e| {
        serde_json::json!({
            "time_unix_nano": e.time_unix_nano,
            "name": e.name,
            "attributes": attributes_json(&e.attributes),
        })
    })
}

/// The JSON text of a span's links, or `None` if it has none.
fn links_json(span: &Span) -> Option<String> {
    json_array(&span.links, |l| {
        serde_json::json!({
            "trace_id": hex(&l.trace_id),
            "span_id": hex(&l.span_id),
            "trace_state": l.trace_state,
            "attributes": attributes_json(&l.attributes),
        })
    })
}

/// The value of the first attribute named one of `keys`.
fn find_attribute<'a>(span: &'a Span, keys: [&str; 2]) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| keys.contains(&kv.key.as_str()))
        .and_then(|kv| kv.value.as_ref())
}

/// Appends a span to `out`; nothing is appended if the span is invalid.
fn append(
    out: &mut SpanColumns,
    span: &Span,
    target: &str,
    pid: &str,
    svc: &str,
) -> Result<(), String> {
    let (mut trace_buf, mut id_buf, mut parent_buf) = ([0; 32], [0; 32], [0; 32]);
    let trace = trace_id_text(&span.trace_id, &mut trace_buf)?.ok_or("span without trace id")?;
    let id = span_id_text(&span.span_id, &mut id_buf)?.ok_or("span without span id")?;
    let parent = span_id_text(&span.parent_span_id, &mut parent_buf)?;
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!("span {id} ends before it starts"));
    }
    let status = span.status.as_ref();
    let code = match status.map(|s| StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset)) {
        Some(StatusCode::Ok) => "OK",
        Some(StatusCode::Error) => "ERROR",
        _ => "UNSET",
    };
    let file = find_attribute(span, ["code.filepath", "code.file.path"])
        .map(|v| value_text(Some(v)))
        .unwrap_or_default();
    let line = find_attribute(span, ["code.lineno", "code.line.number"])
        .and_then(|v| value_text(Some(v)).parse().ok());
    let text = SpanText {
        trace_id: Some(trace),
        span_id: id,
        parent_span_id: parent,
        name: &span.name,
        target,
        service_name: svc,
        process_id: pid,
        thread_name: "",
        start_time: time(span.start_time_unix_nano),
        end_time: time(span.end_time_unix_nano),
        kind: kind(span.kind),
        status_code: code,
        status_message: status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()),
        level: None,
        file: &file,
        line,
    };
    out.append(&text, |a| {
        for kv in &span.attributes {
            write_attribute(a, &kv.key, kv.value.as_ref());
        }
        if let Some(events) = events_json(span) {
            a.entry("otel.events", &events);
        }
        if let Some(links) = links_json(span) {
            a.entry("otel.links", &links);
        }
        if !span.trace_state.is_empty() {
            a.entry("otel.trace_state", &span.trace_state);
        }
        for (key, n) in [
            (
                "otel.dropped_attributes_count",
                span.dropped_attributes_count,
            ),
            ("otel.dropped_events_count", span.dropped_events_count),
            ("otel.dropped_links_count", span.dropped_links_count),
        ] {
            if n > 0 {
                a.entry_fmt(key, format_args!("{n}"));
            }
        }
    });
    Ok(())
}

/// Maps a request: one batch of the `spans` table per resource, built straight from the
/// protobuf (no intermediate rows); invalid spans are counted and skipped.
pub fn map(req: &ExportTraceServiceRequest) -> Mapped<RecordBatch> {
    let mut out = Mapped::new(ViewTable::Spans);
    for rs in &req.resource_spans {
        let process = process(rs.resource.as_ref());
        let spans = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        let mut columns = SpanColumns::with_capacity(spans);
        for ss in &rs.scope_spans {
            let target = ss
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for span in &ss.spans {
                if let Err(e) = append(
                    &mut columns,
                    span,
                    target,
                    &process.process_id,
                    &process.service_name,
                ) {
                    out.reject(e);
                }
            }
        }
        if columns.is_empty() {
            continue;
        }
        let appended = columns.len();
        match columns.finish() {
            Ok(batch) => out.push(process, batch),
            // Columns appended span by span always match the schema; should building still
            // fail, the spans are reported rejected rather than lost silently.
            Err(e) => {
                for _ in 0..appended {
                    out.reject(format!("spans batch: {e}"));
                }
            }
        }
    }
    out
}
