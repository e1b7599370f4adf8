//! The tables of the lake: their names, Arrow schemas and how rows are built.

use arrow::array::{ArrayRef, MapBuilder, MapFieldNames, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use micromegas_core::model::StreamKind;
use std::sync::{Arc, OnceLock};

mod log_columns;
mod measure_columns;
mod span_columns;
mod span_intervals;
pub use log_columns::{LogColumns, LogText};
pub use measure_columns::{MeasureColumns, MeasureText};
pub use span_columns::{AttributeWriter, SpanColumns, SpanText};
pub use span_intervals::{interval_batch, IntervalRow};

/// A table materialized from raw blocks into Parquet partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewTable {
    /// `log_entries`.
    LogEntries,
    /// `measures`.
    Measures,
    /// `spans`.
    Spans,
    /// `span_intervals`: when each span was entered on a thread (written with `spans`).
    SpanIntervals,
}

impl ViewTable {
    /// Every materialized table.
    pub const ALL: [ViewTable; 4] = [
        ViewTable::LogEntries,
        ViewTable::Measures,
        ViewTable::Spans,
        ViewTable::SpanIntervals,
    ];

    /// The tables a materialization run starts from: each of the others is written by the run
    /// of [`Self::materialized_with`].
    pub fn runs() -> impl Iterator<Item = ViewTable> {
        Self::ALL
            .into_iter()
            .filter(|t| t.materialized_with() == *t)
    }

    /// The table whose materialization runs also write this one's partitions, from the same
    /// blocks and in the same catalog transaction (itself for most tables).
    pub fn materialized_with(self) -> ViewTable {
        match self {
            ViewTable::SpanIntervals => ViewTable::Spans,
            t => t,
        }
    }

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            ViewTable::LogEntries => "log_entries",
            ViewTable::Measures => "measures",
            ViewTable::Spans => "spans",
            ViewTable::SpanIntervals => "span_intervals",
        }
    }

    /// The kind of stream its rows come from.
    pub fn stream_kind(self) -> StreamKind {
        match self {
            ViewTable::LogEntries => StreamKind::Logs,
            ViewTable::Measures => StreamKind::Metrics,
            ViewTable::Spans | ViewTable::SpanIntervals => StreamKind::Spans,
        }
    }

    /// The time columns whose filters prune partitions.
    pub fn time_columns(self) -> &'static [&'static str] {
        match self {
            ViewTable::Spans => &["start_time", "end_time"],
            ViewTable::SpanIntervals => &["begin_time", "end_time"],
            _ => &["time"],
        }
    }

    /// Its Arrow schema.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<[SchemaRef; 4]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            [
                log_schema(),
                measure_schema(),
                span_schema(),
                span_intervals::schema(),
            ]
        });
        Arc::clone(&all[self as usize])
    }

    /// The columns computed from others when read, not stored in its Parquet partitions:
    /// `duration_ns` is the last of [`Self::time_columns`] minus the first (`spans`:
    /// `end_time - start_time`; `span_intervals`: `end_time - begin_time`).
    pub fn computed_columns(self) -> &'static [&'static str] {
        match self {
            ViewTable::Spans | ViewTable::SpanIntervals => &["duration_ns"],
            _ => &[],
        }
    }

    /// The schema of its Parquet partitions: [`Self::schema`] without the computed columns.
    pub fn stored_schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<[SchemaRef; 4]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            ViewTable::ALL.map(|t| {
                let schema = t.schema();
                let fields: Vec<_> = schema
                    .fields()
                    .iter()
                    .filter(|f| !t.computed_columns().contains(&f.name().as_str()))
                    .cloned()
                    .collect();
                Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
            })
        });
        Arc::clone(&all[self as usize])
    }

    /// Parses a table name.
    pub fn from_name(name: &str) -> Option<Self> {
        ViewTable::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// `Timestamp(Nanosecond, "UTC")`.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` as built by [`PropsBuilder`].
pub fn map_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn opt_text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn time(name: &str) -> Field {
    Field::new(name, time_type(), false)
}

fn log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        time("time"),
        text("process_id"),
        text("service_name"),
        text("thread_name"),
        text("level"),
        Field::new("severity_number", DataType::Int32, false),
        text("target"),
        text("msg"),
        opt_text("trace_id"),
        opt_text("span_id"),
        Field::new("properties", map_type(), false),
        text("file"),
        Field::new("line", DataType::Int32, true),
    ]))
}

fn measure_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        time("time"),
        text("process_id"),
        text("service_name"),
        text("thread_name"),
        text("name"),
        text("unit"),
        text("kind"),
        Field::new("value", DataType::Float64, false),
        text("target"),
        Field::new("properties", map_type(), false),
    ]))
}

fn span_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        opt_text("trace_id"),
        text("span_id"),
        opt_text("parent_span_id"),
        text("name"),
        text("target"),
        text("service_name"),
        text("process_id"),
        text("thread_name"),
        time("start_time"),
        time("end_time"),
        Field::new("duration_ns", DataType::Int64, false),
        text("kind"),
        text("status_code"),
        opt_text("status_message"),
        Field::new("attributes", map_type(), false),
        opt_text("level"),
        text("file"),
        Field::new("line", DataType::Int32, true),
    ]))
}

/// Builds a `Map<Utf8, Utf8>` column.
pub struct PropsBuilder(MapBuilder<StringBuilder, StringBuilder>);

impl Default for PropsBuilder {
    fn default() -> Self {
        Self::with_capacity(0, 0)
    }
}

impl PropsBuilder {
    /// A builder with room for `maps` maps of `entries` entries in all (text grows as needed).
    pub fn with_capacity(maps: usize, entries: usize) -> Self {
        Self(MapBuilder::with_capacity(
            Some(MapFieldNames {
                entry: "entries".into(),
                key: "keys".into(),
                value: "values".into(),
            }),
            StringBuilder::with_capacity(entries, entries * 12),
            StringBuilder::with_capacity(entries, entries * 12),
            maps,
        ))
    }

    /// Appends one map.
    pub fn append<'a>(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (k, v) in entries {
            self.entry(k, v);
        }
        self.end_map();
    }

    /// Adds an entry to the map being built.
    pub fn entry(&mut self, key: &str, value: &str) {
        self.0.keys().append_value(key);
        self.0.values().append_value(value);
    }

    /// Adds an entry whose value is formatted in place.
    pub fn entry_fmt(&mut self, key: &str, value: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        self.0.keys().append_value(key);
        let values = self.0.values();
        // Writing into a builder cannot fail.
        let _ = values.write_fmt(value);
        values.append_value("");
    }

    /// Ends the map being built (the entries added since the last end).
    pub fn end_map(&mut self) {
        // Cannot fail: keys and values were appended in pairs.
        let _ = self.0.append(true);
    }

    /// The column.
    pub fn finish(mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// Lowercase hex of a 128-bit trace id, `None` for 0.
pub fn trace_hex(id: u128) -> Option<String> {
    (id != 0).then(|| format!("{id:032x}"))
}

/// Lowercase hex of a 64-bit span id, `None` for 0.
pub fn span_hex(id: u64) -> Option<String> {
    (id != 0).then(|| format!("{id:016x}"))
}

/// One `log_entries` row.
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub time: i64,
    pub process_id: Arc<str>,
    pub service_name: Arc<str>,
    pub thread_name: Arc<str>,
    pub level: &'static str,
    pub severity_number: i32,
    pub target: String,
    pub msg: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub properties: Vec<(String, String)>,
    pub file: String,
    pub line: Option<i32>,
}

/// One `measures` row.
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureRow {
    pub time: i64,
    pub process_id: Arc<str>,
    pub service_name: Arc<str>,
    pub thread_name: Arc<str>,
    pub name: String,
    pub unit: String,
    pub kind: String,
    pub value: f64,
    pub target: String,
    pub properties: Vec<(String, String)>,
}

/// One `spans` row.
#[allow(missing_docs)] // fields are the columns of the schema, same names
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub trace_id: Option<String>,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub target: String,
    pub service_name: Arc<str>,
    pub process_id: Arc<str>,
    pub thread_name: String,
    pub start_time: i64,
    pub end_time: i64,
    pub kind: String,
    pub status_code: String,
    pub status_message: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub level: Option<String>,
    pub file: String,
    pub line: Option<i32>,
}

/// Builds a `log_entries` batch.
pub fn log_batch(rows: &[LogRow]) -> arrow::error::Result<RecordBatch> {
    let mut columns = LogColumns::with_capacity(rows.len());
    for x in rows {
        let text = LogText {
            time: x.time,
            process_id: &x.process_id,
            service_name: &x.service_name,
            thread_name: &x.thread_name,
            level: x.level,
            severity_number: x.severity_number,
            target: &x.target,
            msg: &x.msg,
            trace_id: x.trace_id.as_deref(),
            span_id: x.span_id.as_deref(),
            file: &x.file,
            line: x.line,
        };
        columns.append(&text, |p| p.entries(&x.properties));
    }
    columns.finish()
}

/// Builds a `measures` batch.
pub fn measure_batch(rows: &[MeasureRow]) -> arrow::error::Result<RecordBatch> {
    let mut columns = MeasureColumns::with_capacity(rows.len());
    for x in rows {
        let text = MeasureText {
            time: x.time,
            process_id: &x.process_id,
            service_name: &x.service_name,
            thread_name: &x.thread_name,
            name: &x.name,
            unit: &x.unit,
            kind: &x.kind,
            value: x.value,
            target: &x.target,
        };
        columns.append(&text, |p| p.entries(&x.properties));
    }
    columns.finish()
}

/// Builds a `spans` batch.
pub fn span_batch(rows: &[SpanRow]) -> arrow::error::Result<RecordBatch> {
    let mut columns = SpanColumns::with_capacity(rows.len());
    for x in rows {
        let text = SpanText {
            trace_id: x.trace_id.as_deref(),
            span_id: &x.span_id,
            parent_span_id: x.parent_span_id.as_deref(),
            name: &x.name,
            target: &x.target,
            service_name: &x.service_name,
            process_id: &x.process_id,
            thread_name: &x.thread_name,
            start_time: x.start_time,
            end_time: x.end_time,
            kind: &x.kind,
            status_code: &x.status_code,
            status_message: x.status_message.as_deref(),
            level: x.level.as_deref(),
            file: &x.file,
            line: x.line,
        };
        columns.append(&text, |a| a.entries(&x.attributes));
    }
    columns.finish()
}
