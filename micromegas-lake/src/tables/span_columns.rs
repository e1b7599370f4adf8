//! The `spans` table built one span at a time straight into its Arrow columns: the collector
//! appends OTLP spans without making a row of owned strings first, and [`super::span_batch`]
//! appends [`super::SpanRow`]s through the same code.

use super::{PropsBuilder, ViewTable};
use arrow::array::{
    ArrayBuilder, ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use std::fmt;
use std::sync::Arc;

/// The text and numbers of one span, borrowed (ids as lowercase hex).
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, Copy)]
pub struct SpanText<'a> {
    pub trace_id: Option<&'a str>,
    pub span_id: &'a str,
    pub parent_span_id: Option<&'a str>,
    pub name: &'a str,
    pub target: &'a str,
    pub service_name: &'a str,
    pub process_id: &'a str,
    pub thread_name: &'a str,
    pub start_time: i64,
    pub end_time: i64,
    pub kind: &'a str,
    pub status_code: &'a str,
    pub status_message: Option<&'a str>,
    pub level: Option<&'a str>,
    pub file: &'a str,
    pub line: Option<i32>,
}

/// Appends the attributes of the span being added: each entry is a key and a value written
/// in place (no intermediate `String`).
pub struct AttributeWriter<'a>(&'a mut PropsBuilder);

impl<'a> AttributeWriter<'a> {
    pub(super) fn new(map: &'a mut PropsBuilder) -> Self {
        Self(map)
    }

    /// An entry whose value is already text.
    pub fn entry(&mut self, key: &str, value: &str) {
        self.0.entry(key, value);
    }

    /// An entry whose value is formatted in place.
    pub fn entry_fmt(&mut self, key: &str, value: fmt::Arguments<'_>) {
        self.0.entry_fmt(key, value);
    }

    /// Entries already as `(key, text)` pairs, in order.
    pub fn entries(&mut self, pairs: &[(String, String)]) {
        for (k, v) in pairs {
            self.0.entry(k, v);
        }
    }
}

/// Builds a `spans` batch column by column.
pub struct SpanColumns {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    name: StringBuilder,
    target: StringBuilder,
    service_name: StringBuilder,
    process_id: StringBuilder,
    thread_name: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration: Int64Builder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: PropsBuilder,
    level: StringBuilder,
    file: StringBuilder,
    line: Int32Builder,
}

impl SpanColumns {
    /// Columns with room for `rows` spans (text grows as needed).
    pub fn with_capacity(rows: usize) -> Self {
        let text = || StringBuilder::with_capacity(rows, rows * 16);
        Self {
            trace_id: text(),
            span_id: text(),
            parent_span_id: text(),
            name: text(),
            target: text(),
            service_name: text(),
            process_id: text(),
            thread_name: text(),
            start_time: TimestampNanosecondBuilder::with_capacity(rows),
            end_time: TimestampNanosecondBuilder::with_capacity(rows),
            duration: Int64Builder::with_capacity(rows),
            kind: text(),
            status_code: text(),
            status_message: text(),
            // Most items have a few attributes.
            attributes: PropsBuilder::with_capacity(rows, rows * 4),
            level: text(),
            file: text(),
            line: Int32Builder::with_capacity(rows),
        }
    }

    /// Appends one span; `attributes` writes its attribute map.
    pub fn append(&mut self, s: &SpanText<'_>, attributes: impl FnOnce(&mut AttributeWriter<'_>)) {
        self.trace_id.append_option(s.trace_id);
        self.span_id.append_value(s.span_id);
        self.parent_span_id.append_option(s.parent_span_id);
        self.name.append_value(s.name);
        self.target.append_value(s.target);
        self.service_name.append_value(s.service_name);
        self.process_id.append_value(s.process_id);
        self.thread_name.append_value(s.thread_name);
        self.start_time.append_value(s.start_time);
        self.end_time.append_value(s.end_time);
        self.duration
            .append_value(s.end_time.saturating_sub(s.start_time));
        self.kind.append_value(s.kind);
        self.status_code.append_value(s.status_code);
        self.status_message.append_option(s.status_message);
        attributes(&mut AttributeWriter(&mut self.attributes));
        self.attributes.end_map();
        self.level.append_option(s.level);
        self.file.append_value(s.file);
        self.line.append_option(s.line);
    }

    /// Number of spans appended.
    pub fn len(&self) -> usize {
        ArrayBuilder::len(&self.span_id)
    }

    /// True if no span was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch.
    pub fn finish(mut self) -> arrow::error::Result<RecordBatch> {
        let time = |mut b: TimestampNanosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let text = |b: &mut StringBuilder| -> ArrayRef { Arc::new(b.finish()) };
        RecordBatch::try_new(
            ViewTable::Spans.schema(),
            vec![
                text(&mut self.trace_id),
                text(&mut self.span_id),
                text(&mut self.parent_span_id),
                text(&mut self.name),
                text(&mut self.target),
                text(&mut self.service_name),
                text(&mut self.process_id),
                text(&mut self.thread_name),
                time(self.start_time),
                time(self.end_time),
                Arc::new(self.duration.finish()),
                text(&mut self.kind),
                text(&mut self.status_code),
                text(&mut self.status_message),
                self.attributes.finish(),
                text(&mut self.level),
                text(&mut self.file),
                Arc::new(self.line.finish()),
            ],
        )
    }
}
