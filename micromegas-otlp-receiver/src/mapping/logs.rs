//! OTLP log records → `log_entries` rows, read straight from the request's protobuf bytes
//! ([`map_protobuf`]) into the table's Arrow columns, as for spans (see
//! [`super::traces`]).

use super::common::{process, span_id_text, time, trace_flags, trace_id_text, Scope};
use super::envelope::{self, Shape};
use super::values::{any_value_text, Attribute};
use super::wire::{Fields, WireError};
use super::Mapped;
use micromegas_lake::catalog::now_nanos;
use micromegas_lake::tables::{LogColumns, LogText};
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

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

/// One log record, read from its bytes, borrowed. One view is reused for every record of a
/// request, so its lists keep their room.
#[derive(Debug, Default)]
struct LogView<'a> {
    time: u64,
    observed_time: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: Vec<&'a [u8]>,
    attributes: Vec<Attribute<'a>>,
    dropped_attributes: u32,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
}

impl<'a> LogView<'a> {
    /// Reads a `LogRecord` message into this view.
    fn read(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let (mut body, mut attributes) = (
            std::mem::take(&mut self.body),
            std::mem::take(&mut self.attributes),
        );
        body.clear();
        attributes.clear();
        *self = LogView {
            body,
            attributes,
            ..Default::default()
        };
        let mut fields = Fields::new(bytes);
        while let Some((tag, v)) = fields.next_field()? {
            match tag {
                1 => self.time = v.fixed64("LogRecord.time_unix_nano")?,
                11 => self.observed_time = v.fixed64("LogRecord.observed_time_unix_nano")?,
                2 => self.severity_number = v.varint("LogRecord.severity_number")? as i32,
                3 => self.severity_text = v.text("LogRecord.severity_text")?,
                5 => self.body.push(v.bytes("LogRecord.body")?),
                6 => {
                    let kv = Attribute::read(v.bytes("LogRecord.attributes")?)?;
                    self.attributes.push(kv);
                }
                7 => {
                    self.dropped_attributes = v.varint("LogRecord.dropped_attributes_count")? as u32
                }
                8 => self.flags = v.fixed32("LogRecord.flags")?,
                9 => self.trace_id = v.bytes("LogRecord.trace_id")?,
                10 => self.span_id = v.bytes("LogRecord.span_id")?,
                12 => self.event_name = v.text("LogRecord.event_name")?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Appends a record to `out`; nothing is appended if the record is invalid.
fn append(
    out: &mut LogColumns,
    r: &LogView<'_>,
    msg: &str,
    scope: &Scope,
    pid: &str,
    svc: &str,
    received: u64,
) -> Result<(), String> {
    let (mut trace_buf, mut span_buf) = ([0; 32], [0; 32]);
    let trace_id = trace_id_text(r.trace_id, &mut trace_buf)?;
    let span_id = span_id_text(r.span_id, &mut span_buf)?;
    let (level, severity_number) = level(r.severity_number, r.severity_text);
    // A record without time nor observed time was observed by this collector, now.
    let t = match (r.time, r.observed_time) {
        (0, 0) => received,
        (0, observed) => observed,
        (t, _) => t,
    };
    let text = LogText {
        time: time(t),
        process_id: pid,
        service_name: svc,
        thread_name: "",
        level,
        severity_number,
        target: &scope.name,
        msg,
        trace_id,
        span_id,
        file: "",
        line: None,
    };
    out.append(&text, |p| {
        for kv in &r.attributes {
            kv.write(p);
        }
        if !r.severity_text.is_empty() {
            p.entry("otel.severity_text", r.severity_text);
        }
        if !r.event_name.is_empty() {
            p.entry("otel.event_name", r.event_name);
        }
        if r.time != 0 && r.observed_time != 0 && r.observed_time != r.time {
            // The row is timed by `time`; when the record was seen is kept beside it.
            let mut observed = itoa::Buffer::new();
            p.entry(
                "otel.observed_time_unix_nano",
                observed.format(r.observed_time),
            );
        }
        if let Some(flags) = trace_flags(r.flags) {
            p.entry("otel.trace_flags", &flags);
        }
        if r.dropped_attributes > 0 {
            p.entry_fmt(
                "otel.dropped_attributes_count",
                format_args!("{}", r.dropped_attributes),
            );
        }
        scope.write(p);
    });
    Ok(())
}

/// The envelope of a logs request.
const SHAPE: Shape = Shape {
    resources: "ExportLogsServiceRequest.resource_logs",
    resource: "ResourceLogs.resource",
    scopes: "ResourceLogs.scope_logs",
    resource_schema: "ResourceLogs.schema_url",
    scope: "ScopeLogs.scope",
    items: "ScopeLogs.log_records",
    scope_schema: "ScopeLogs.schema_url",
};

/// A logs request mapped from its bytes.
#[derive(Debug)]
pub struct MappedLogs {
    /// The `log_entries` rows, per resource, and what was rejected.
    pub mapped: Mapped,
    /// The request's identity: a hash of its bytes (a retried request has the same).
    pub identity: u128,
}

/// Maps an `ExportLogsServiceRequest` from its protobuf bytes: one batch of the
/// `log_entries` table per resource; invalid records are counted and skipped. Bytes that
/// prost would not decode as a request are an error, and nothing of them is kept.
pub fn map_protobuf(bytes: &[u8]) -> Result<MappedLogs, WireError> {
    let mut mapped = Mapped::new(ViewTable::LogEntries);
    let received = now_nanos().max(0) as u64;
    for r in envelope::resources(bytes, &SHAPE)? {
        let process = process(r.resource.as_ref(), r.schema_url);
        let mut columns = LogColumns::with_capacity(r.item_count());
        let mut record = LogView::default();
        for (scope, records) in &r.scopes {
            for bytes in records {
                record.read(bytes)?;
                let msg = any_value_text(&record.body)?;
                let (pid, svc) = (&process.process_id, &process.service_name);
                let appended = append(&mut columns, &record, &msg, scope, pid, svc, received);
                if let Err(e) = appended {
                    mapped.reject(e);
                }
            }
        }
        mapped.push_columns(process, columns, LogColumns::len, LogColumns::finish);
    }
    Ok(MappedLogs {
        mapped,
        identity: xxhash_rust::xxh3::xxh3_128(bytes),
    })
}

/// Maps a decoded request: one batch of the `log_entries` table per resource; invalid records are
/// counted and skipped. The request is encoded and mapped from its bytes, as by
/// [`map_protobuf`]; one nested too deeply to be read back has all its records rejected.
pub fn map(req: &ExportLogsServiceRequest) -> Mapped {
    let scopes = req.resource_logs.iter().flat_map(|r| &r.scope_logs);
    let records = scopes.map(|s| s.log_records.len()).sum();
    super::map_decoded(req, ViewTable::LogEntries, records, |b| {
        map_protobuf(b).map(|m| m.mapped)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use micromegas_lake::arrow::array::AsArray;
    use micromegas_lake::arrow::datatypes::TimestampNanosecondType;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    /// The time column of the rows of `records`.
    fn times(records: Vec<LogRecord>) -> Vec<i64> {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mapped = map_protobuf(&req.encode_to_vec()).expect("decodes").mapped;
        let batch = &mapped.groups[0].1;
        let time = batch.column_by_name("time").expect("time");
        time.as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec()
    }

    #[test]
    fn a_record_takes_its_time_else_its_observed_time_else_the_time_it_was_received() {
        let before = now_nanos();
        let got = times(vec![
            LogRecord {
                time_unix_nano: 5,
                observed_time_unix_nano: 7,
                ..Default::default()
            },
            LogRecord {
                observed_time_unix_nano: 7,
                ..Default::default()
            },
            LogRecord::default(),
        ]);
        let after = now_nanos();
        assert_eq!(got[..2], [5, 7]);
        assert!((before..=after).contains(&got[2]), "{got:?}");
    }
}
