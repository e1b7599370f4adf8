//! The `measures` table built one data point at a time straight into its Arrow columns: the
//! collector appends OTLP data points, and [`super::measure_batch`] appends
//! [`super::MeasureRow`]s through the same code.

use super::span_columns::AttributeWriter;
use super::{PropsBuilder, ViewTable};
use arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use std::sync::Arc;

/// The text and numbers of one measure, borrowed.
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, Copy)]
pub struct MeasureText<'a> {
    pub time: i64,
    pub process_id: &'a str,
    pub service_name: &'a str,
    pub thread_name: &'a str,
    pub name: &'a str,
    pub unit: &'a str,
    pub kind: &'a str,
    pub value: f64,
    pub target: &'a str,
}

/// Builds a `measures` batch column by column.
pub struct MeasureColumns {
    time: TimestampNanosecondBuilder,
    process_id: StringBuilder,
    service_name: StringBuilder,
    thread_name: StringBuilder,
    name: StringBuilder,
    unit: StringBuilder,
    kind: StringBuilder,
    value: Float64Builder,
    target: StringBuilder,
    properties: PropsBuilder,
}

impl MeasureColumns {
    /// Columns with room for `rows` measures (text grows as needed).
    pub fn with_capacity(rows: usize) -> Self {
        let text = |bytes| StringBuilder::with_capacity(rows, rows * bytes);
        Self {
            time: TimestampNanosecondBuilder::with_capacity(rows),
            process_id: text(36),
            service_name: text(16),
            thread_name: text(0),
            name: text(24),
            unit: text(4),
            kind: text(7),
            value: Float64Builder::with_capacity(rows),
            target: text(16),
            // Most data points have a few attributes.
            properties: PropsBuilder::with_capacity(rows, rows * 4),
        }
    }

    /// Appends one measure; `properties` writes its property map.
    pub fn append(
        &mut self,
        m: &MeasureText<'_>,
        properties: impl FnOnce(&mut AttributeWriter<'_>),
    ) {
        self.time.append_value(m.time);
        self.process_id.append_value(m.process_id);
        self.service_name.append_value(m.service_name);
        self.thread_name.append_value(m.thread_name);
        self.name.append_value(m.name);
        self.unit.append_value(m.unit);
        self.kind.append_value(m.kind);
        self.value.append_value(m.value);
        self.target.append_value(m.target);
        properties(&mut AttributeWriter::new(&mut self.properties));
        self.properties.end_map();
    }

    /// Number of measures appended.
    pub fn len(&self) -> usize {
        ArrayBuilder::len(&self.time)
    }

    /// True if no measure was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch.
    pub fn finish(mut self) -> arrow::error::Result<RecordBatch> {
        let text = |b: &mut StringBuilder| -> ArrayRef { Arc::new(b.finish()) };
        RecordBatch::try_new(
            ViewTable::Measures.schema(),
            vec![
                Arc::new(self.time.finish().with_timezone("UTC")),
                text(&mut self.process_id),
                text(&mut self.service_name),
                text(&mut self.thread_name),
                text(&mut self.name),
                text(&mut self.unit),
                text(&mut self.kind),
                Arc::new(self.value.finish()),
                text(&mut self.target),
                self.properties.finish(),
            ],
        )
    }
}
