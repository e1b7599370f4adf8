//! OTLP log records → `log_entries` rows.

use super::common::{attributes, process, span_id, time, trace_id, value_text};
use super::Mapped;
use micromegas_lake::tables::LogRow;
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::sync::Arc;

/// Level name of an OpenTelemetry severity number (1–24); 0 (unspecified) falls back to the
/// severity text, then INFO.
fn level(number: i32, text: &str) -> (&'static str, i32) {
    match number {
        1..=4 => ("TRACE", number),
        5..=8 => ("DEBUG", number),
        9..=12 => ("INFO", number),
        13..=16 => ("WARN", number),
        17..=20 => ("ERROR", number),
        21..=24 => ("FATAL", number),
        _ => match text.to_ascii_uppercase().as_str() {
            "TRACE" => ("TRACE", 1),
            "DEBUG" => ("DEBUG", 5),
            "WARN" | "WARNING" => ("WARN", 13),
            "ERROR" => ("ERROR", 17),
            "FATAL" | "CRITICAL" => ("FATAL", 21),
            _ => ("INFO", 9),
        },
    }
}

fn row(r: &LogRecord, target: &str, pid: &Arc<str>, svc: &Arc<str>) -> Result<LogRow, String> {
    let (level, severity_number) = level(r.severity_number, &r.severity_text);
    let mut props = attributes(&r.attributes);
    if !r.severity_text.is_empty() {
        props.push(("otel.severity_text".into(), r.severity_text.clone()));
    }
    if !r.event_name.is_empty() {
        props.push(("otel.event_name".into(), r.event_name.clone()));
    }
    if r.dropped_attributes_count > 0 {
        props.push((
            "otel.dropped_attributes_count".into(),
            r.dropped_attributes_count.to_string(),
        ));
    }
    let t = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    Ok(LogRow {
        time: time(t),
        process_id: Arc::clone(pid),
        service_name: Arc::clone(svc),
        thread_name: Arc::from(""),
        level,
        severity_number,
        target: target.to_owned(),
        msg: value_text(r.body.as_ref()),
        trace_id: trace_id(&r.trace_id)?,
        span_id: span_id(&r.span_id)?,
        properties: props,
        file: String::new(),
        line: None,
    })
}

/// Maps a request: one group of rows per resource; invalid records are counted and skipped.
pub fn map(req: &ExportLogsServiceRequest) -> Mapped<Vec<LogRow>> {
    let mut out = Mapped::new(ViewTable::LogEntries);
    for rl in &req.resource_logs {
        let process = process(rl.resource.as_ref());
        let pid: Arc<str> = process.process_id.as_str().into();
        let svc: Arc<str> = process.service_name.as_str().into();
        let mut rows = Vec::new();
        for sl in &rl.scope_logs {
            let target = sl
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for r in &sl.log_records {
                match row(r, target, &pid, &svc) {
                    Ok(row) => rows.push(row),
                    Err(e) => out.reject(e),
                }
            }
        }
        out.push(process, rows);
    }
    out
}
