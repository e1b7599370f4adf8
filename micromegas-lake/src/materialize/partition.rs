//! Writing one immutable Parquet partition.

use crate::catalog::{now_nanos, PartitionRow};
use crate::error::{LakeError, Result};
use crate::tables::ViewTable;
use crate::Lake;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Rows per row group: small enough for statistics to prune inside a partition.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// How the rows of a partition are ordered, for its table's main access path.
enum RowOrder {
    /// By these columns (declared in the file's metadata).
    Columns(&'static [&'static str]),
    /// By a text column, then a time column (declared in the file's metadata).
    TextThenTime(&'static str, &'static str),
    /// Each trace's rows together, in start order, the traces in the order of their first
    /// start (no column order to declare).
    TracesByStart,
}

fn row_order(table: ViewTable) -> RowOrder {
    match table {
        ViewTable::LogEntries => RowOrder::Columns(&["time"]),
        ViewTable::Measures => RowOrder::TextThenTime("name", "time"),
        ViewTable::Spans => RowOrder::TracesByStart,
        ViewTable::SpanIntervals => RowOrder::Columns(&["begin_time"]),
    }
}

/// Indices that sort `batch` by `names` (those it has); `None` if it has none of them.
fn sort_indices(batch: &RecordBatch, names: &[&str]) -> Result<Option<UInt32Array>> {
    let columns: Vec<SortColumn> = names
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    if columns.is_empty() {
        return Ok(None);
    }
    Ok(Some(lexsort_to_indices(&columns, None)?))
}

/// Sorts a batch for its table.
#[cfg(test)]
pub fn sort_batch(table: ViewTable, batch: &RecordBatch) -> Result<RecordBatch> {
    match sort_order(table, batch)? {
        Some(indices) => Ok(take_record_batch(batch, &indices)?),
        None => Ok(batch.clone()),
    }
}

/// The order of `batch`'s rows for its table: the indices of all its rows, in order, or
/// `None` when the table has no order to follow.
pub(crate) fn sort_order(table: ViewTable, batch: &RecordBatch) -> Result<Option<UInt32Array>> {
    if batch.num_rows() < 2 {
        return Ok(None);
    }
    Ok(match row_order(table) {
        RowOrder::Columns(names) => sort_indices(batch, names)?,
        RowOrder::TextThenTime(text, time) => by_text_then_time(batch, text, time)?,
        RowOrder::TracesByStart => match by_trace_and_start(batch)? {
            Some(by_trace) => Some(order_traces_by_start(batch, &by_trace)?),
            None => None,
        },
    })
}

/// Indices that sort `batch` by its text column `text`, then its time column `time`, with
/// ties kept in row order.
///
/// A partition has few distinct texts (metric names) over many rows: each row gets the rank
/// of its text among them, and rows are sorted as single 128-bit keys (rank, time, row)
/// instead of through Arrow's general comparator (a dynamic call and a `memcmp` per
/// comparison). Nulls, or columns of other types, take the general sort, with the row number
/// as a last key.
fn by_text_then_time(batch: &RecordBatch, text: &str, time: &str) -> Result<Option<UInt32Array>> {
    let (Some(text_col), Some(time_col)) = (batch.column_by_name(text), batch.column_by_name(time))
    else {
        return sort_indices(batch, &[text, time]);
    };
    let times = arrow::compute::cast(time_col, &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let (Some(texts), 0, 0) = (
        text_col.as_string_opt::<i32>(),
        text_col.null_count(),
        times.null_count(),
    ) else {
        return by_columns_then_row(batch, &[text_col, time_col]);
    };
    // The id of each row's text, in order of first appearance; runs of one text are common.
    let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut row_ids = Vec::with_capacity(texts.len());
    let mut last: Option<(&str, u32)> = None;
    for value in texts.iter().flatten() {
        let id = match last {
            Some((v, id)) if v == value => id,
            _ => {
                let next = ids.len() as u32;
                let id = *ids.entry(value).or_insert(next);
                last = Some((value, id));
                id
            }
        };
        row_ids.push(id);
    }
    let mut distinct: Vec<(&str, u32)> = ids.into_iter().collect();
    distinct.sort_unstable();
    let mut rank = vec![0u32; distinct.len()];
    for (r, (_, id)) in distinct.iter().enumerate() {
        rank[*id as usize] = r as u32;
    }
    // Times as unsigned numbers in the same order (sign bit flipped).
    let mut keys: Vec<u128> = row_ids
        .iter()
        .zip(times.values().iter())
        .enumerate()
        .map(|(row, (id, at))| {
            let at = (*at as u64) ^ (1 << 63);
            u128::from(rank[*id as usize]) << 96 | u128::from(at) << 32 | row as u128
        })
        .collect();
    // Each key ends with its row, so no two are equal and the order is the stable one.
    keys.sort_unstable();
    Ok(Some(UInt32Array::from_iter_values(
        keys.into_iter().map(|k| k as u32),
    )))
}

/// Arrow's general sort of `columns`, then by row number (ties kept in row order).
fn by_columns_then_row(batch: &RecordBatch, columns: &[&ArrayRef]) -> Result<Option<UInt32Array>> {
    let row: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32));
    let columns: Vec<SortColumn> = columns
        .iter()
        .copied()
        .chain([&row])
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    Ok(Some(lexsort_to_indices(&columns, None)?))
}

/// Indices that sort spans by trace id, then start time (missing trace ids first), with ties
/// kept in row order.
///
/// Trace ids are nearly always 32 hex digits; those are compared as two 128-bit numbers read
/// from their bytes, which orders them as their text does, instead of through Arrow's
/// general comparator (a dynamic call and a `memcmp` per comparison: a sixth of the time of a
/// materialization). Other lengths take the general sort, with the row number as a last key.
fn by_trace_and_start(batch: &RecordBatch) -> Result<Option<UInt32Array>> {
    const ID_LEN: usize = 32;
    let (Some(trace), Some(start)) = (
        batch.column_by_name("trace_id"),
        batch.column_by_name("start_time"),
    ) else {
        return sort_indices(batch, &["trace_id", "start_time"]);
    };
    let general = || by_columns_then_row(batch, &[trace, start]);
    let start = arrow::compute::cast(start, &DataType::Int64)?;
    let start = start.as_primitive::<Int64Type>();
    let (Some(trace), 0) = (trace.as_string_opt::<i32>(), start.null_count()) else {
        return general();
    };
    let mut missing: Vec<(i64, u32)> = Vec::new();
    let mut keyed: Vec<(u128, u128, i64, u32)> = Vec::with_capacity(trace.len());
    for row in 0..trace.len() {
        let at = start.value(row);
        if trace.is_null(row) {
            missing.push((at, row as u32));
            continue;
        }
        let Ok(id) = <&[u8; ID_LEN]>::try_from(trace.value(row).as_bytes()) else {
            return general();
        };
        let (high, low) = id.split_at(ID_LEN / 2);
        let word = |half: &[u8]| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(half);
            u128::from_be_bytes(bytes)
        };
        keyed.push((word(high), word(low), at, row as u32));
    }
    // Each key ends with its row, so no two are equal and the order is the stable one.
    missing.sort_unstable();
    keyed.sort_unstable();
    let rows = missing
        .into_iter()
        .map(|(_, row)| row)
        .chain(keyed.into_iter().map(|(.., row)| row));
    Ok(Some(UInt32Array::from_iter_values(rows)))
}

/// Spans sorted by trace, then start (`by_trace`): keeps each trace's rows together, in
/// start order, and puts the traces in the order of their earliest start (ties by trace id).
/// The partition's times then grow almost monotonically, which delta encoding stores in about
/// half the bytes of times that jump between traces, and which lets page statistics prune by
/// time. A span without a trace id is a trace of its own.
fn order_traces_by_start(batch: &RecordBatch, by_trace: &UInt32Array) -> Result<UInt32Array> {
    let (Some(trace), Some(start)) = (
        batch.column_by_name("trace_id"),
        batch.column_by_name("start_time"),
    ) else {
        return Ok(by_trace.clone());
    };
    let start = arrow::compute::cast(start, &DataType::Int64)?;
    let start = start.as_primitive::<Int64Type>();
    let trace = trace.as_string::<i32>();
    let same_trace = |a: usize, b: usize| {
        trace.is_valid(a) && trace.is_valid(b) && trace.value(a) == trace.value(b)
    };
    // Runs of one trace in `by_trace`, each with its first row's start (the run's earliest).
    let rows = by_trace.values();
    let mut runs: Vec<(i64, std::ops::Range<usize>)> = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let first = rows[at] as usize;
        let mut end = at + 1;
        while end < rows.len() && same_trace(first, rows[end] as usize) {
            end += 1;
        }
        runs.push((start.value(first), at..end));
        at = end;
    }
    // Stable: traces that start together stay in trace id order.
    runs.sort_by_key(|(first_start, _)| *first_start);
    Ok(runs
        .into_iter()
        .flat_map(|(_, run)| rows[run].iter().copied())
        .collect())
}

/// One batch of `schema` holding the rows of `batches` (of that schema), concatenated column
/// by column: each column's pieces are freed as soon as it is whole (unless something else
/// holds them), so the rows are not in memory twice.
pub(crate) fn concat_by_column(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<RecordBatch> {
    let mut pieces: Vec<Vec<ArrayRef>> = vec![Vec::new(); schema.fields().len()];
    for batch in batches {
        let (_, columns, _) = batch.into_parts();
        for (column, piece) in pieces.iter_mut().zip(columns) {
            column.push(piece);
        }
    }
    let columns = pieces
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.is_empty() {
                return Ok(arrow::array::new_empty_array(field.data_type()));
            }
            let column: Vec<&dyn Array> = column.iter().map(|a| a.as_ref()).collect();
            Ok(arrow::compute::concat(&column)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Writer settings of `table`: zstd, page statistics and index, bloom filter on ids.
pub fn writer_properties(table: ViewTable) -> Result<WriterProperties> {
    let schema = table.stored_schema();
    let declared: Vec<&str> = match row_order(table) {
        RowOrder::Columns(names) => names.to_vec(),
        RowOrder::TextThenTime(text, time) => vec![text, time],
        RowOrder::TracesByStart => Vec::new(),
    };
    let sorting: Vec<SortingColumn> = declared
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
        .set_sorting_columns((!sorting.is_empty()).then_some(sorting));
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
        // Repeated within a trace, and a trace's rows are together: a repeat is stored as the
        // length of the prefix it shares with the previous value (the whole value), which
        // costs less than a dictionary index per row.
        for col in ["trace_id", "parent_span_id"] {
            b = b
                .set_column_dictionary_enabled(col.into(), false)
                .set_column_encoding(col.into(), Encoding::DELTA_BYTE_ARRAY);
        }
    }
    if schema.index_of("trace_id").is_ok() {
        b = b.set_column_bloom_filter_enabled("trace_id".into(), true);
    }
    Ok(b.build())
}

/// The columns of `batch` that a partition of `table` stores, by name: a batch of the table's
/// schema, or one read from a partition written before a column became computed.
pub fn stored_columns(table: ViewTable, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = table.stored_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                LakeError::InvalidRows(format!(
                    "a batch for {} has no column {}",
                    table.name(),
                    f.name()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Rows taken at a time when a batch is encoded in an order of its rows: a divisor of
/// [`ROW_GROUP_ROWS`], so that the row groups are the same as those of the sorted batch.
const TAKE_ROWS: usize = ROW_GROUP_ROWS / 4;

/// Encodes `batch`'s rows in the order `order` gives (the indices of all its rows; as they
/// are for `None`) as a Parquet file of the table's stored columns. The rows are taken in
/// order [`TAKE_ROWS`] at a time, so a sorted copy of the whole batch is never in memory: for
/// a large batch (compaction merges up to [`COMPACTION_MEMORY`] bytes of rows), that copy
/// would double the memory needed.
///
/// [`COMPACTION_MEMORY`]: crate::maintenance::COMPACTION_MEMORY
pub(crate) fn encode(
    table: ViewTable,
    batch: &RecordBatch,
    order: Option<&UInt32Array>,
) -> Result<Vec<u8>> {
    let batch = stored_columns(table, batch)?;
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(
        &mut out,
        table.stored_schema(),
        Some(writer_properties(table)?),
    )?;
    match order {
        None => w.write(&batch)?,
        Some(order) => {
            let mut at = 0;
            while at < order.len() {
                let n = TAKE_ROWS.min(order.len() - at);
                w.write(&take_record_batch(&batch, &order.slice(at, n))?)?;
                at += n;
            }
        }
    }
    w.close()?;
    Ok(out)
}

impl Lake {
    /// Writes `batch`'s rows, in the order `order` gives (as they are for `None`: see
    /// [`encode`]), as a new partition file of `table` and returns its catalog row,
    /// not yet committed. `(min, max)` is the time envelope of its rows.
    pub(crate) async fn write_partition(
        &self,
        table: ViewTable,
        batch: &RecordBatch,
        order: Option<&UInt32Array>,
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
        let bytes = encode(table, batch, order)?;
        let size = bytes.len() as i64;
        self.put_durable(&path, bytes, crate::durable_file::Placement::Staged)
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{measure_batch, span_batch, MeasureRow, SpanRow};
    use arrow::array::Array;
    use std::sync::Arc;

    fn span(trace: Option<&str>, id: &str, start: i64) -> SpanRow {
        SpanRow {
            trace_id: trace.map(str::to_owned),
            span_id: id.to_owned(),
            parent_span_id: None,
            name: "s".into(),
            target: "t".into(),
            service_name: Arc::from("svc"),
            process_id: Arc::from("p"),
            thread_name: String::new(),
            start_time: start,
            end_time: start + 5,
            kind: "internal".into(),
            status_code: "unset".into(),
            status_message: None,
            attributes: Vec::new(),
            level: None,
            file: String::new(),
            line: None,
        }
    }

    #[test]
    fn spans_keep_each_trace_together_with_traces_in_order_of_their_first_start() {
        let rows = [
            span(Some("bb"), "b2", 40),
            span(Some("aa"), "a1", 30),
            span(None, "n1", 35),
            span(Some("cc"), "c1", 10),
            span(Some("bb"), "b1", 20),
            span(Some("aa"), "a2", 31),
            span(Some("cc"), "c2", 50),
            span(Some("dd"), "d1", 20),
        ];
        let batch = span_batch(&rows).expect("batch");
        let sorted = sort_batch(ViewTable::Spans, &batch).expect("sort");
        let ids = sorted
            .column_by_name("span_id")
            .expect("span_id")
            .as_string::<i32>();
        let order: Vec<&str> = (0..ids.len()).map(|i| ids.value(i)).collect();
        // cc starts at 10; bb and dd at 20 (bb first by id); aa at 30; the span without a
        // trace at 35.
        assert_eq!(order, ["c1", "c2", "b1", "b2", "d1", "a1", "a2", "n1"]);
    }

    /// `(trace_id, start_time, span_id)` of each row of a sorted spans batch.
    fn trace_start_id(batch: &RecordBatch) -> Vec<(Option<String>, i64, String)> {
        let col = |name| batch.column_by_name(name).expect(name);
        let (trace, ids) = (col("trace_id").as_string::<i32>(), col("span_id"));
        let ids = ids.as_string::<i32>();
        let start = arrow::compute::cast(col("start_time"), &DataType::Int64).expect("cast");
        let start = start.as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| {
                let t = trace.is_valid(i).then(|| trace.value(i).to_owned());
                (t, start.value(i), ids.value(i).to_owned())
            })
            .collect()
    }

    proptest::proptest! {
        /// The sort of 32-digit trace ids by their bytes orders rows as Arrow's sort of the
        /// two columns does, missing trace ids first, and keeps ties in row order.
        #[test]
        fn trace_ids_sorted_by_their_bytes_as_by_arrow(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.9, 0..6u8), 0..5i64),
                0..60,
            ),
            odd_length in proptest::bool::ANY,
        ) {
            // A few traces whose ids share long prefixes, so that both halves decide.
            let trace_of = |t: u8| {
                let mut id = format!("{:032x}", u128::from(t % 3) << 64 | u128::from(t / 3));
                if odd_length && t == 5 {
                    id.push('f');
                }
                id
            };
            let spans: Vec<SpanRow> = rows
                .iter()
                .enumerate()
                .map(|(i, &(t, start))| {
                    let trace = t.map(trace_of);
                    span(trace.as_deref(), &format!("{i:03}"), start)
                })
                .collect();
            let batch = span_batch(&spans).expect("batch");
            let fast = by_trace_and_start(&batch).expect("sort");
            let general = sort_indices(&batch, &["trace_id", "start_time"]).expect("sort");
            let (fast, general) = match (fast, general) {
                (Some(f), Some(g)) => (f, g),
                (None, None) => return Ok(()),
                other => panic!("{other:?}"),
            };
            let by_fast = trace_start_id(&take_record_batch(&batch, &fast).expect("take"));
            let by_general = trace_start_id(&take_record_batch(&batch, &general).expect("take"));
            let key = |r: &(Option<String>, i64, String)| (r.0.clone(), r.1);
            proptest::prop_assert_eq!(
                by_fast.iter().map(key).collect::<Vec<_>>(),
                by_general.iter().map(key).collect::<Vec<_>>()
            );
            // Ties in row order: span ids are the row numbers, zero-padded.
            for pair in by_fast.windows(2) {
                if key(&pair[0]) == key(&pair[1]) {
                    proptest::prop_assert!(pair[0].2 < pair[1].2, "{pair:?}");
                }
            }
        }

        /// Measures sorted by the ranks of their names order rows as Arrow's sort of the name
        /// and time columns does, and keep ties in row order.
        #[test]
        fn measures_sorted_by_name_ranks_as_by_arrow(
            rows in proptest::collection::vec((0..5u8, -3..3i64), 0..60),
        ) {
            // Names that share prefixes, are prefixes of each other, are empty or not ASCII.
            let names = ["", "a", "ab", "b", "\u{e9}"];
            let measures: Vec<MeasureRow> = rows
                .iter()
                .enumerate()
                .map(|(i, &(n, time))| MeasureRow {
                    time,
                    process_id: Arc::from("p"),
                    service_name: Arc::from("svc"),
                    thread_name: Arc::from(""),
                    name: names[n as usize].to_owned(),
                    unit: String::new(),
                    kind: "gauge".into(),
                    value: i as f64,
                    target: String::new(),
                    properties: Vec::new(),
                })
                .collect();
            let batch = measure_batch(&measures).expect("batch");
            let fast = by_text_then_time(&batch, "name", "time").expect("sort");
            let general = sort_indices(&batch, &["name", "time"]).expect("sort");
            let (fast, general) = match (fast, general) {
                (Some(f), Some(g)) => (f, g),
                (None, None) => return Ok(()),
                other => panic!("{other:?}"),
            };
            let rows_of = |indices: &UInt32Array| {
                let sorted = take_record_batch(&batch, indices).expect("take");
                let col = |name| sorted.column_by_name(name).expect(name).clone();
                let (name, time, value) = (col("name"), col("time"), col("value"));
                let time = arrow::compute::cast(&time, &DataType::Int64).expect("cast");
                let (name, time) = (name.as_string::<i32>(), time.as_primitive::<Int64Type>());
                let value = value.as_primitive::<arrow::datatypes::Float64Type>();
                (0..sorted.num_rows())
                    .map(|i| (name.value(i).to_owned(), time.value(i), value.value(i)))
                    .collect::<Vec<_>>()
            };
            let (by_fast, by_general) = (rows_of(&fast), rows_of(&general));
            let key = |r: &(String, i64, f64)| (r.0.clone(), r.1);
            proptest::prop_assert_eq!(
                by_fast.iter().map(key).collect::<Vec<_>>(),
                by_general.iter().map(key).collect::<Vec<_>>()
            );
            // Ties in row order: values are the row numbers.
            for pair in by_fast.windows(2) {
                if key(&pair[0]) == key(&pair[1]) {
                    proptest::prop_assert!(pair[0].2 < pair[1].2, "{pair:?}");
                }
            }
        }
    }

    #[test]
    fn a_spans_partition_stores_no_duration_and_an_older_one_is_read_without_it() {
        let batch = span_batch(&[span(Some("aa"), "a1", 30)]).expect("batch");
        assert!(batch.column_by_name("duration_ns").is_some());
        let bytes = encode(ViewTable::Spans, &batch, None).expect("encode");
        let read = read_back(bytes);
        assert_eq!(read[0].schema(), ViewTable::Spans.stored_schema());
        // A partition written when the duration was stored: its copy is left out.
        let older = stored_columns(ViewTable::Spans, &batch).expect("stored");
        assert_eq!(older.schema(), ViewTable::Spans.stored_schema());
        assert_eq!(older.num_columns() + 1, batch.num_columns());
        let logs = crate::tables::log_batch(&[]).expect("logs");
        assert!(stored_columns(ViewTable::Spans, &logs).is_err());
    }

    /// The batches of a Parquet file's bytes.
    fn read_back(bytes: Vec<u8>) -> Vec<RecordBatch> {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(
            bytes,
        ))
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
    }

    #[test]
    fn an_intervals_partition_stores_no_duration_and_is_sorted_by_begin() {
        let row = |span_id, begin_time| crate::tables::IntervalRow {
            span_id,
            process_id: Arc::from("p"),
            service_name: Arc::from("s"),
            thread_name: Arc::from("t"),
            begin_time,
            end_time: begin_time + 5,
        };
        let batch = crate::tables::interval_batch(&[row(2, 20), row(1, 10)]).expect("batch");
        let order = sort_order(ViewTable::SpanIntervals, &batch).expect("order");
        let bytes = encode(ViewTable::SpanIntervals, &batch, order.as_ref()).expect("encode");
        let read = read_back(bytes);
        assert_eq!(read[0].schema(), ViewTable::SpanIntervals.stored_schema());
        assert!(read[0].column_by_name("duration_ns").is_none());
        let ids = read[0].column_by_name("span_id").expect("span_id");
        let ids = ids
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("text");
        assert_eq!(ids.value(0), "0000000000000001");
        assert_eq!(ids.value(1), "0000000000000002");
        let props = writer_properties(ViewTable::SpanIntervals).expect("properties");
        assert_eq!(props.sorting_columns().map(Vec::len), Some(1));
    }

    #[test]
    fn a_spans_partition_declares_no_column_order() {
        let props = writer_properties(ViewTable::Spans).expect("properties");
        assert!(props.sorting_columns().is_none());
        let logs = writer_properties(ViewTable::LogEntries).expect("properties");
        assert_eq!(logs.sorting_columns().map(Vec::len), Some(1));
    }

    /// Encoding in an order, a slice of rows at a time, writes the same file as encoding the
    /// batch sorted first.
    #[test]
    fn a_batch_encoded_in_order_is_the_file_of_the_sorted_batch() {
        let rows = 2 * TAKE_ROWS + 1000;
        let row = |i: usize| crate::tables::IntervalRow {
            span_id: (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            process_id: Arc::from("p"),
            service_name: Arc::from("s"),
            thread_name: Arc::from("t"),
            begin_time: ((i * 7919) % rows) as i64,
            end_time: ((i * 7919) % rows) as i64 + 5,
        };
        let batch =
            crate::tables::interval_batch(&(0..rows).map(row).collect::<Vec<_>>()).expect("batch");
        let table = ViewTable::SpanIntervals;
        let order = sort_order(table, &batch).expect("order").expect("an order");
        let in_order = encode(table, &batch, Some(&order)).expect("encode in order");
        let sorted =
            encode(table, &sort_batch(table, &batch).expect("sort"), None).expect("encode");
        assert!(in_order == sorted, "the two files differ");
        let read = read_back(in_order);
        let begins: Vec<i64> = read
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("begin_time").expect("begin_time");
                let c = arrow::compute::cast(c, &DataType::Int64).expect("cast");
                c.as_primitive::<Int64Type>().values().to_vec()
            })
            .collect();
        assert_eq!(begins.len(), rows);
        assert!(begins.windows(2).all(|w| w[0] <= w[1]), "not in order");
    }
}
