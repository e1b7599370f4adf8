//! The `span_intervals` table: each time a span was entered on a thread, from the enter to the
//! matching exit. A span polled by an async runtime has one row per poll, on whichever thread
//! ran it, so that its busy time is `SUM(duration_ns)` and its threads are the distinct
//! `thread_name`s; its idle time is its `spans.duration_ns` minus the busy time.

use super::{text, time, ViewTable};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("span_id"),
        text("process_id"),
        text("service_name"),
        text("thread_name"),
        time("begin_time"),
        time("end_time"),
        Field::new("duration_ns", DataType::Int64, false),
    ]))
}

/// One `span_intervals` row: span `span_id` entered on `thread_name` at `begin_time` and
/// exited at `end_time` (ns since the Unix epoch).
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    pub span_id: u64,
    pub process_id: Arc<str>,
    pub service_name: Arc<str>,
    pub thread_name: Arc<str>,
    pub begin_time: i64,
    pub end_time: i64,
}

/// Builds a `span_intervals` batch.
pub fn interval_batch(rows: &[IntervalRow]) -> arrow::error::Result<RecordBatch> {
    let text = |f: fn(&IntervalRow) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let times = |f: fn(&IntervalRow) -> i64| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"),
        )
    };
    let span_ids: StringArray = rows
        .iter()
        .map(|r| Some(format!("{:016x}", r.span_id)))
        .collect();
    let durations: Int64Array = rows
        .iter()
        .map(|r| Some(r.end_time - r.begin_time))
        .collect();
    RecordBatch::try_new(
        ViewTable::SpanIntervals.schema(),
        vec![
            Arc::new(span_ids),
            text(|r| &r.process_id),
            text(|r| &r.service_name),
            text(|r| &r.thread_name),
            times(|r| r.begin_time),
            times(|r| r.end_time),
            Arc::new(durations),
        ],
    )
}
