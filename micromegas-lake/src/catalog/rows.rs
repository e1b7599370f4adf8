//! Rows of the catalog tables, as Rust values.

use sqlx::any::AnyRow;
use sqlx::Row;

/// A process that sent data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    /// UUID text.
    pub process_id: String,
    /// OpenTelemetry `service.name`.
    pub service_name: String,
    /// Executable.
    pub exe: String,
    /// User.
    pub username: String,
    /// Host.
    pub hostname: String,
    /// Start, ns since the Unix epoch.
    pub start_time: i64,
    /// Tick frequency (0 when the process does not use ticks, e.g. OTLP).
    pub tsc_frequency: i64,
    /// Properties (resource attributes).
    pub properties: Vec<(String, String)>,
    /// When the catalog first saw it, ns since the Unix epoch.
    pub insert_time: i64,
}

/// A stream of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    /// UUID text.
    pub stream_id: String,
    /// Owning process.
    pub process_id: String,
    /// `spans`, `logs` or `metrics`.
    pub kind: String,
    /// Process-local thread number.
    pub thread_id: i64,
    /// Thread name.
    pub thread_name: String,
    /// Properties.
    pub properties: Vec<(String, String)>,
    /// When the catalog first saw it.
    pub insert_time: i64,
}

/// One raw block and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// UUID text.
    pub block_id: String,
    /// Stream.
    pub stream_id: String,
    /// Process.
    pub process_id: String,
    /// Kind of its stream.
    pub kind: String,
    /// Position in its stream.
    pub sequence: i64,
    /// Time of the first event.
    pub begin_time: i64,
    /// Time of the last event.
    pub end_time: i64,
    /// Number of events.
    pub event_count: i64,
    /// Compressed payload size.
    pub payload_size: i64,
    /// Object holding the batch that holds the block.
    pub object_path: String,
    /// Offset of that batch in the object.
    pub object_offset: i64,
    /// Length of that batch.
    pub object_len: i64,
    /// When it was written.
    pub insert_time: i64,
    /// Partition that holds its rows, once materialized.
    pub partition_id: Option<String>,
    /// How its bytes are encoded: [`FORMAT_TRANSIT`] or [`FORMAT_ARROW`].
    pub format: String,
}

/// A block of native events: a transit batch (`MMTB`).
pub const FORMAT_TRANSIT: &str = "transit";
/// A block of rows already shaped for a table: an Arrow IPC stream.
pub const FORMAT_ARROW: &str = "arrow";

/// One immutable Parquet file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// UUID text.
    pub partition_id: String,
    /// Table it belongs to.
    pub table_name: String,
    /// Earliest time of its rows (start time for spans).
    pub min_time: i64,
    /// Latest time of its rows (end time for spans).
    pub max_time: i64,
    /// Object key of the Parquet file.
    pub file_path: String,
    /// Size in bytes.
    pub file_size: i64,
    /// Number of rows.
    pub row_count: i64,
    /// Number of raw blocks it was built from.
    pub block_count: i64,
    /// When it was written.
    pub insert_time: i64,
}

pub(super) fn props_to_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

pub(crate) fn props_from_json(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl ProcessRow {
    pub(crate) fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            process_id: r.try_get("process_id")?,
            service_name: r.try_get("service_name")?,
            exe: r.try_get("exe")?,
            username: r.try_get("username")?,
            hostname: r.try_get("hostname")?,
            start_time: r.try_get("start_time")?,
            tsc_frequency: r.try_get("tsc_frequency")?,
            properties: props_from_json(&r.try_get::<String, _>("properties")?),
            insert_time: r.try_get("insert_time")?,
        })
    }
}

impl StreamRow {
    pub(crate) fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            stream_id: r.try_get("stream_id")?,
            process_id: r.try_get("process_id")?,
            kind: r.try_get("kind")?,
            thread_id: r.try_get("thread_id")?,
            thread_name: r.try_get("thread_name")?,
            properties: props_from_json(&r.try_get::<String, _>("properties")?),
            insert_time: r.try_get("insert_time")?,
        })
    }
}

impl BlockRow {
    pub(crate) const COLUMNS: &'static str = "block_id, stream_id, process_id, kind, sequence, \
        begin_time, end_time, event_count, payload_size, object_path, object_offset, object_len, \
        insert_time, partition_id, format";

    pub(crate) fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            block_id: r.try_get("block_id")?,
            stream_id: r.try_get("stream_id")?,
            process_id: r.try_get("process_id")?,
            kind: r.try_get("kind")?,
            sequence: r.try_get("sequence")?,
            begin_time: r.try_get("begin_time")?,
            end_time: r.try_get("end_time")?,
            event_count: r.try_get("event_count")?,
            payload_size: r.try_get("payload_size")?,
            object_path: r.try_get("object_path")?,
            object_offset: r.try_get("object_offset")?,
            object_len: r.try_get("object_len")?,
            insert_time: r.try_get("insert_time")?,
            partition_id: r.try_get("partition_id")?,
            format: r.try_get("format")?,
        })
    }
}

impl PartitionRow {
    pub(crate) const COLUMNS: &'static str = "partition_id, table_name, min_time, max_time, \
        file_path, file_size, row_count, block_count, insert_time";

    pub(crate) fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            partition_id: r.try_get("partition_id")?,
            table_name: r.try_get("table_name")?,
            min_time: r.try_get("min_time")?,
            max_time: r.try_get("max_time")?,
            file_path: r.try_get("file_path")?,
            file_size: r.try_get("file_size")?,
            row_count: r.try_get("row_count")?,
            block_count: r.try_get("block_count")?,
            insert_time: r.try_get("insert_time")?,
        })
    }
}
