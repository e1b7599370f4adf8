//! The catalog's tables (`processes`, `streams`, `blocks`, `partitions`) as DataFusion
//! tables, read from the catalog when a query scans them.

use crate::catalog::{BlockRow, PartitionRow, ProcessRow, StreamRow};
use crate::tables::{time_type, PropsBuilder};
use crate::Lake;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// Which catalog table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogTable {
    /// `processes`.
    Processes,
    /// `streams`.
    Streams,
    /// `blocks`.
    Blocks,
    /// `partitions`.
    Partitions,
}

impl CatalogTable {
    /// Every catalog table.
    pub const ALL: [CatalogTable; 4] = [
        CatalogTable::Processes,
        CatalogTable::Streams,
        CatalogTable::Blocks,
        CatalogTable::Partitions,
    ];

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            CatalogTable::Processes => "processes",
            CatalogTable::Streams => "streams",
            CatalogTable::Blocks => "blocks",
            CatalogTable::Partitions => "partitions",
        }
    }

    /// Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        let time = |n: &str| Field::new(n, time_type(), false);
        let props = |n: &str| Field::new(n, crate::tables::map_type(), false);
        Arc::new(Schema::new(match self {
            CatalogTable::Processes => vec![
                text("process_id"),
                text("service_name"),
                text("exe"),
                text("username"),
                text("hostname"),
                time("start_time"),
                int("tsc_frequency"),
                props("properties"),
                time("insert_time"),
            ],
            CatalogTable::Streams => vec![
                text("stream_id"),
                text("process_id"),
                text("kind"),
                int("thread_id"),
                text("thread_name"),
                props("properties"),
                time("insert_time"),
            ],
            CatalogTable::Blocks => vec![
                text("block_id"),
                text("stream_id"),
                text("process_id"),
                text("kind"),
                int("sequence"),
                time("begin_time"),
                time("end_time"),
                int("event_count"),
                int("payload_size"),
                text("object_path"),
                time("insert_time"),
                Field::new("partition_id", DataType::Utf8, true),
            ],
            CatalogTable::Partitions => vec![
                text("partition_id"),
                text("table_name"),
                time("min_time"),
                time("max_time"),
                text("file_path"),
                int("file_size"),
                int("row_count"),
                int("block_count"),
                time("insert_time"),
            ],
        }))
    }
}

/// A catalog table of a lake.
#[derive(Debug)]
pub struct LakeCatalogTable {
    lake: Lake,
    table: CatalogTable,
}

impl LakeCatalogTable {
    /// The table `table` of `lake`.
    pub fn new(lake: Lake, table: CatalogTable) -> Self {
        Self { lake, table }
    }

    async fn batch(&self) -> crate::Result<RecordBatch> {
        let schema = self.table.schema();
        let cat = self.lake.catalog();
        let columns: Vec<ArrayRef> = match self.table {
            CatalogTable::Processes => processes(&cat.processes().await?),
            CatalogTable::Streams => streams(&cat.streams().await?),
            CatalogTable::Blocks => blocks(&cat.blocks(None).await?),
            CatalogTable::Partitions => partitions(&cat.partitions_all().await?),
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

fn text<T>(rows: &[T], f: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
}

fn int<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
}

fn time<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
}

fn props<T>(rows: &[T], f: impl Fn(&T) -> &[(String, String)]) -> ArrayRef {
    let mut b = PropsBuilder::default();
    for r in rows {
        b.append(f(r).iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    b.finish()
}

fn processes(r: &[ProcessRow]) -> Vec<ArrayRef> {
    vec![
        text(r, |x| &x.process_id),
        text(r, |x| &x.service_name),
        text(r, |x| &x.exe),
        text(r, |x| &x.username),
        text(r, |x| &x.hostname),
        time(r, |x| x.start_time),
        int(r, |x| x.tsc_frequency),
        props(r, |x| &x.properties),
        time(r, |x| x.insert_time),
    ]
}

fn streams(r: &[StreamRow]) -> Vec<ArrayRef> {
    vec![
        text(r, |x| &x.stream_id),
        text(r, |x| &x.process_id),
        text(r, |x| &x.kind),
        int(r, |x| x.thread_id),
        text(r, |x| &x.thread_name),
        props(r, |x| &x.properties),
        time(r, |x| x.insert_time),
    ]
}

fn blocks(r: &[BlockRow]) -> Vec<ArrayRef> {
    vec![
        text(r, |x| &x.block_id),
        text(r, |x| &x.stream_id),
        text(r, |x| &x.process_id),
        text(r, |x| &x.kind),
        int(r, |x| x.sequence),
        time(r, |x| x.begin_time),
        time(r, |x| x.end_time),
        int(r, |x| x.event_count),
        int(r, |x| x.payload_size),
        text(r, |x| &x.object_path),
        time(r, |x| x.insert_time),
        Arc::new(StringArray::from_iter(
            r.iter().map(|x| x.partition_id.as_deref()),
        )),
    ]
}

fn partitions(r: &[PartitionRow]) -> Vec<ArrayRef> {
    vec![
        text(r, |x| &x.partition_id),
        text(r, |x| &x.table_name),
        time(r, |x| x.min_time),
        time(r, |x| x.max_time),
        text(r, |x| &x.file_path),
        int(r, |x| x.file_size),
        int(r, |x| x.row_count),
        int(r, |x| x.block_count),
        time(r, |x| x.insert_time),
    ]
}

#[async_trait]
impl TableProvider for LakeCatalogTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .batch()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        MemTable::try_new(self.table.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
