//! The `log_entries` table built one record at a time straight into its Arrow columns: the
//! collector appends OTLP log records read from their bytes, and [`super::log_batch`] appends
//! [`super::LogRow`]s through the same code.

use super::span_columns::AttributeWriter;
use super::{PropsBuilder, ViewTable};
use arrow::array::{
    ArrayBuilder, ArrayRef, Int32Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use std::sync::Arc;

/// The text and numbers of one log entry, borrowed (ids as lowercase hex).
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, Copy)]
pub struct LogText<'a> {
    pub time: i64,
    pub process_id: &'a str,
    pub service_name: &'a str,
    pub thread_name: &'a str,
    pub level: &'a str,
    pub severity_number: i32,
    pub target: &'a str,
    pub msg: &'a str,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub file: &'a str,
    pub line: Option<i32>,
}

/// Builds a `log_entries` batch column by column.
pub struct LogColumns {
    time: TimestampNanosecondBuilder,
    process_id: StringBuilder,
    service_name: StringBuilder,
    thread_name: StringBuilder,
    level: StringBuilder,
    severity_number: Int32Builder,
    target: StringBuilder,
    msg: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    properties: PropsBuilder,
    file: StringBuilder,
    line: Int32Builder,
}

impl LogColumns {
    /// Columns with room for `rows` entries (text grows as needed).
    pub fn with_capacity(rows: usize) -> Self {
        let text = |bytes| StringBuilder::with_capacity(rows, rows * bytes);
        Self {
            time: TimestampNanosecondBuilder::with_capacity(rows),
            process_id: text(36),
            service_name: text(16),
            thread_name: text(0),
            level: text(5),
            severity_number: Int32Builder::with_capacity(rows),
            target: text(16),
            msg: text(48),
            trace_id: text(32),
            span_id: text(16),
            // Most items have a few attributes.
            properties: PropsBuilder::with_capacity(rows, rows * 4),
            file: text(0),
            line: Int32Builder::with_capacity(rows),
        }
    }

    /// Appends one entry; `properties` writes its property map.
    pub fn append(&mut self, e: &LogText<'_>, properties: impl FnOnce(&mut AttributeWriter<'_>)) {
        self.time.append_value(e.time);
        self.process_id.append_value(e.process_id);
        self.service_name.append_value(e.service_name);
        self.thread_name.append_value(e.thread_name);
        self.level.append_value(e.level);
        self.severity_number.append_value(e.severity_number);
        self.target.append_value(e.target);
        self.msg.append_value(e.msg);
        self.trace_id.append_option(e.trace_id);
        self.span_id.append_option(e.span_id);
        properties(&mut AttributeWriter::new(&mut self.properties));
        self.properties.end_map();
        self.file.append_value(e.file);
        self.line.append_option(e.line);
    }

    /// Number of entries appended.
    pub fn len(&self) -> usize {
        ArrayBuilder::len(&self.time)
    }

    /// True if no entry was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch.
    pub fn finish(mut self) -> arrow::error::Result<RecordBatch> {
        let text = |b: &mut StringBuilder| -> ArrayRef { Arc::new(b.finish()) };
        RecordBatch::try_new(
            ViewTable::LogEntries.schema(),
            vec![
                Arc::new(self.time.finish().with_timezone("UTC")),
                text(&mut self.process_id),
                text(&mut self.service_name),
                text(&mut self.thread_name),
                text(&mut self.level),
                Arc::new(self.severity_number.finish()),
                text(&mut self.target),
                text(&mut self.msg),
                text(&mut self.trace_id),
                text(&mut self.span_id),
                self.properties.finish(),
                text(&mut self.file),
                Arc::new(self.line.finish()),
            ],
        )
    }
}
