//! Writing one immutable Parquet partition.

use crate::catalog::{now_nanos, PartitionRow};
use crate::error::Result;
use crate::tables::ViewTable;
use crate::Lake;
use arrow::array::RecordBatch;
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per row group: small enough for statistics to prune inside a partition.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Columns a partition of `table` is sorted by, for its main access path.
fn sort_columns(table: ViewTable) -> &'static [&'static str] {
    match table {
        ViewTable::LogEntries => &["time"],
        ViewTable::Measures => &["name", "time"],
        ViewTable::Spans => &["trace_id", "start_time"],
    }
}

/// Sorts a batch for its table.
pub fn sort_batch(table: ViewTable, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<SortColumn> = sort_columns(table)
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    if columns.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Writer settings of `table`: zstd, page statistics and index, bloom filter on ids.
pub fn writer_properties(table: ViewTable) -> Result<WriterProperties> {
    let schema = table.schema();
    let sorting: Vec<SortingColumn> = sort_columns(table)
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect();
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorting));
    // Times and durations: delta encoding makes sorted or clustered times nearly free.
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            arrow::datatypes::DataType::Timestamp(_, _) | arrow::datatypes::DataType::Int64
        ) {
            let col = ColumnPath::from(field.name().as_str());
            b = b
                .set_column_dictionary_enabled(col.clone(), false)
                .set_column_encoding(col, Encoding::DELTA_BINARY_PACKED);
        }
    }
    if table == ViewTable::Spans {
        // Unique per row: a dictionary only adds its indices to the ids' own bytes.
        b = b
            .set_column_dictionary_enabled("span_id".into(), false)
            .set_column_encoding("span_id".into(), Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    if schema.index_of("trace_id").is_ok() {
        b = b.set_column_bloom_filter_enabled("trace_id".into(), true);
    }
    Ok(b.build())
}

/// Encodes a sorted batch as a Parquet file.
pub fn encode(table: ViewTable, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, table.schema(), Some(writer_properties(table)?))?;
    w.write(batch)?;
    w.close()?;
    Ok(out)
}

impl Lake {
    /// Writes `batch` (already sorted) as a new partition file of `table` and returns its
    /// catalog row, not yet committed. `(min, max)` is the time envelope of its rows.
    pub(crate) async fn write_partition(
        &self,
        table: ViewTable,
        batch: &RecordBatch,
        (min, max): (i64, i64),
        block_count: usize,
    ) -> Result<PartitionRow> {
        let id = uuid::Uuid::new_v4();
        let t = chrono::DateTime::from_timestamp_nanos(min);
        let path = format!(
            "tables/{}/{}/{}.parquet",
            table.name(),
            t.format("%Y-%m-%d/%H"),
            id.simple()
        );
        let bytes = encode(table, batch)?;
        let size = bytes.len() as i64;
        self.put_durable(&path, bytes).await?;
        Ok(PartitionRow {
            partition_id: id.to_string(),
            table_name: table.name().to_owned(),
            min_time: min,
            max_time: max,
            file_path: path,
            file_size: size,
            row_count: batch.num_rows() as i64,
            block_count: block_count as i64,
            insert_time: now_nanos(),
        })
    }
}
