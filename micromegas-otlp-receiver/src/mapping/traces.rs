//! OTLP spans → `spans` rows.

use super::common::{attributes, attributes_json, hex, process, span_id, time, trace_id};
use super::Mapped;
use micromegas_lake::tables::SpanRow;
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use std::sync::Arc;

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

fn row(span: &Span, target: &str, pid: &Arc<str>, svc: &Arc<str>) -> Result<SpanRow, String> {
    let trace = trace_id(&span.trace_id)?.ok_or("span without trace id")?;
    let id = span_id(&span.span_id)?.ok_or("span without span id")?;
    let parent = span_id(&span.parent_span_id)?;
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!("span {id} ends before it starts"));
    }
    let mut attrs = attributes(&span.attributes);
    if !span.events.is_empty() {
        let events: Vec<serde_json::Value> = span
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "time_unix_nano": e.time_unix_nano,
                    "name": e.name,
                    "attributes": attributes_json(&e.attributes),
                })
            })
            .collect();
        attrs.push((
            "otel.events".into(),
            serde_json::Value::Array(events).to_string(),
        ));
    }
    if !span.links.is_empty() {
        let links: Vec<serde_json::Value> = span
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "trace_id": hex(&l.trace_id),
                    "span_id": hex(&l.span_id),
                    "trace_state": l.trace_state,
                    "attributes": attributes_json(&l.attributes),
                })
            })
            .collect();
        attrs.push((
            "otel.links".into(),
            serde_json::Value::Array(links).to_string(),
        ));
    }
    if !span.trace_state.is_empty() {
        attrs.push(("otel.trace_state".into(), span.trace_state.clone()));
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
            attrs.push((key.into(), n.to_string()));
        }
    }
    let status = span.status.as_ref();
    let code = match status.map(|s| StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset)) {
        Some(StatusCode::Ok) => "OK",
        Some(StatusCode::Error) => "ERROR",
        _ => "UNSET",
    };
    let file = attrs
        .iter()
        .find(|(k, _)| k == "code.filepath" || k == "code.file.path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let line = attrs
        .iter()
        .find(|(k, _)| k == "code.lineno" || k == "code.line.number")
        .and_then(|(_, v)| v.parse().ok());
    Ok(SpanRow {
        trace_id: Some(trace),
        span_id: id,
        parent_span_id: parent,
        name: span.name.clone(),
        target: target.to_owned(),
        service_name: Arc::clone(svc),
        process_id: Arc::clone(pid),
        thread_name: String::new(),
        start_time: time(span.start_time_unix_nano),
        end_time: time(span.end_time_unix_nano),
        kind: kind(span.kind).into(),
        status_code: code.into(),
        status_message: status.map(|s| s.message.clone()).filter(|m| !m.is_empty()),
        attributes: attrs,
        level: None,
        file,
        line,
    })
}

/// Maps a request: one group of rows per resource; invalid spans are counted and skipped.
pub fn map(req: &ExportTraceServiceRequest) -> Mapped<SpanRow> {
    let mut out = Mapped::new(ViewTable::Spans);
    for rs in &req.resource_spans {
        let process = process(rs.resource.as_ref());
        let pid: Arc<str> = process.process_id.as_str().into();
        let svc: Arc<str> = process.service_name.as_str().into();
        let mut rows = Vec::new();
        for ss in &rs.scope_spans {
            let target = ss
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for span in &ss.spans {
                match row(span, target, &pid, &svc) {
                    Ok(r) => rows.push(r),
                    Err(e) => out.reject(e),
                }
            }
        }
        out.push(process, rows);
    }
    out
}
