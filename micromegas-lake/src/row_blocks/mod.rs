//! Row blocks: rows already shaped for a table (for example OTLP spans, log records and data
//! points mapped by the collector), stored raw like native blocks — durable, grouped into one
//! object per write, idempotent by block id — and materialized into the same partitions, so
//! one query sees native and OTLP data together.

use crate::catalog::{now_nanos, BlockRow, ProcessRow, StreamRow, WriteRows, FORMAT_ARROW};
use crate::error::{LakeError, Result};
use crate::group_commit::{ObjectKind, PendingWrite};
use crate::tables::ViewTable;
use crate::write::WriteOutcome;
use crate::Lake;
use arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;

mod stored;

/// Rows of one table from one process.
#[derive(Debug, Clone)]
pub struct RowBlock {
    /// Unique id; a block written twice is stored once.
    pub block_id: uuid::Uuid,
    /// The process (for OTLP: the resource) the rows belong to.
    pub process: ProcessRow,
    /// The table the rows are for.
    pub table: ViewTable,
    /// The rows, with exactly the table's schema.
    pub rows: RecordBatch,
}

/// The stream that holds a process's row blocks of one table.
pub fn row_stream_id(process_id: &str, table: ViewTable) -> String {
    let base = uuid::Uuid::parse_str(process_id).map_or(0, |u| u.as_u128());
    uuid::Uuid::from_u128(base ^ ((0x726f_7773 << 8) | (table as u128 + 1))).to_string()
}

/// `(min, max)` of a table's time columns over a batch (first column's min, last's max).
pub(crate) fn time_envelope(table: ViewTable, batch: &RecordBatch) -> Option<(i64, i64)> {
    let cols = table.time_columns();
    let column = |name: &str| {
        batch
            .column_by_name(name)?
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .cloned()
    };
    let min = arrow::compute::min(&column(cols[0])?)?;
    let max = arrow::compute::max(&column(cols[cols.len() - 1])?)?;
    Some((min, max))
}

/// Arrow IPC with LZ4 frames of the rows' stored form (the table's stored columns, ids as
/// bytes: see [`stored`]), then a checksum. Row blocks are written on the
/// collector's request path and read once by materialization, so fast compression matters
/// more there than size (the Parquet partitions made from them use zstd).
fn encode(table: ViewTable, rows: &RecordBatch) -> Result<Vec<u8>> {
    let options =
        IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
    let rows = stored::to_stored(table, rows)?;
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new_with_options(&mut out, &rows.schema(), options)?;
    w.write(&rows)?;
    w.finish()?;
    drop(w);
    let check = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(CHECK_MAGIC);
    out.extend_from_slice(&check.to_le_bytes());
    Ok(out)
}

/// Ends each row block: a marker and the XXH3-64 of the bytes before it, so that damaged bytes
/// are found before Arrow's reader sees them (it trusts the lengths it reads, and a damaged
/// length can make it ask for terabytes, which aborts the process).
const CHECK_MAGIC: &[u8; 4] = b"MMR1";
const CHECK_LEN: usize = CHECK_MAGIC.len() + 8;
/// How an Arrow IPC stream ends: blocks written before the check end with it.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// The IPC stream of a row block whose check holds (or of a block written before checks).
fn checked(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    let Some(split) = bytes.len().checked_sub(CHECK_LEN) else {
        return Err(format!("{} bytes", bytes.len()));
    };
    let (ipc, check) = bytes.split_at(split);
    if let Some(hash) = check.strip_prefix(CHECK_MAGIC.as_slice()) {
        let expected = xxhash_rust::xxh3::xxh3_64(ipc).to_le_bytes();
        return if hash == expected {
            Ok(ipc)
        } else {
            Err("its checksum does not match".into())
        };
    }
    if bytes.ends_with(&END_OF_STREAM) {
        return Ok(bytes);
    }
    Err("it ends with neither a checksum nor an end of stream".into())
}

/// Decodes a row block's bytes into batches of its table's stored columns (all its columns
/// for a block written before the stored form). Damaged bytes are an
/// error naming the damage, found by the block's checksum; a damaged object must cost its own
/// blocks, not stop the materialization of every other. Blocks written before checksums are
/// decoded as they are, with any panic of Arrow's reader (an offset past a buffer, a length
/// that does not fit) caught and reported the same way.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let decoded = checked(bytes).and_then(|ipc| {
        std::panic::catch_unwind(|| decode_batches(ipc)).unwrap_or_else(|panic| {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string());
            Err(what
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default())
        })
    });
    decoded.map_err(|e| format!("damaged row block: {e}"))
}

fn decode_batches(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let reader =
        StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    reader
        .map(|batch| stored::from_stored(batch.map_err(|e| e.to_string())?))
        .collect()
}

impl Lake {
    /// Stores row blocks: one object for all the new ones (shared with writes made at the same
    /// time), then their catalog rows, durably. Blocks the lake already has are skipped and
    /// not written again. Rows must have their table's schema.
    pub async fn write_row_blocks(&self, blocks: &[RowBlock]) -> Result<WriteOutcome> {
        for b in blocks {
            let expected = b.table.schema();
            if b.rows.schema().fields() != expected.fields() {
                return Err(LakeError::InvalidRows(format!(
                    "row block {} does not have the schema of {}: {:?}",
                    b.block_id,
                    b.table.name(),
                    b.rows.schema()
                )));
            }
        }
        let now = now_nanos();
        let (mut object, mut rows) = (Vec::new(), WriteRows::default());
        for b in blocks {
            let id = b.block_id.to_string();
            if b.rows.num_rows() == 0 {
                continue;
            }
            let (begin, end) = time_envelope(b.table, &b.rows).unwrap_or((now, now));
            let bytes = encode(b.table, &b.rows)?;
            let offset = object.len() as i64;
            object.extend_from_slice(&bytes);
            let kind = b.table.stream_kind().as_str().to_owned();
            let stream_id = row_stream_id(&b.process.process_id, b.table);
            rows.processes.push(ProcessRow {
                insert_time: now,
                ..b.process.clone()
            });
            rows.streams.push(StreamRow {
                stream_id: stream_id.clone(),
                process_id: b.process.process_id.clone(),
                kind: kind.clone(),
                thread_id: 0,
                thread_name: String::new(),
                properties: Vec::new(),
                insert_time: now,
            });
            rows.blocks.push(BlockRow {
                block_id: id,
                stream_id,
                process_id: b.process.process_id.clone(),
                kind,
                sequence: 0,
                begin_time: begin,
                end_time: end.max(begin),
                event_count: b.rows.num_rows() as i64,
                payload_size: bytes.len() as i64,
                object_path: String::new(),
                object_offset: offset,
                object_len: bytes.len() as i64,
                insert_time: now,
                partition_id: None,
                format: FORMAT_ARROW.into(),
            });
        }
        let write = PendingWrite { object, rows };
        self.commit(ObjectKind::Arrow, write).await
    }

    /// Reads row blocks back: every batch of the blocks that decode, and the reasons of those
    /// that do not.
    pub(crate) async fn read_row_blocks(
        &self,
        rows: &[BlockRow],
    ) -> Result<(Vec<RecordBatch>, Vec<(String, String)>)> {
        let fetched = self.fetch_ranges(rows, decode).await?;
        let mut batches = Vec::new();
        let mut bad = Vec::new();
        for ((path, offset, _), decoded) in fetched {
            match decoded {
                Ok(b) => batches.extend(b),
                Err(reason) => {
                    for r in rows
                        .iter()
                        .filter(|r| r.object_path == path && r.object_offset == offset)
                    {
                        bad.push((r.block_id.clone(), reason.clone()));
                    }
                }
            }
        }
        Ok((batches, bad))
    }
}

#[cfg(test)]
mod tests {
    use super::stored::tests::{span, TRACE};
    use super::*;
    use crate::tables::span_batch;

    fn block() -> Vec<u8> {
        let rows: Vec<_> = (1..=20)
            .map(|i| {
                let (id, parent) = (format!("{i:016x}"), format!("{:016x}", 1));
                span(Some(TRACE), &id, (i > 1).then_some(parent.as_str()), i)
            })
            .collect();
        encode(ViewTable::Spans, &span_batch(&rows).expect("batch")).expect("encode")
    }

    #[test]
    fn damaged_bytes_are_found_by_the_checksum_before_arrow_reads_them() {
        let bytes = block();
        assert_eq!(decode(&bytes).map(|b| b.len()), Ok(1));
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for at in 0..bytes.len() {
            // Cut short there, or one byte changed there.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut changed = bytes.clone();
            changed[at] ^= (seed as u8) | 1;
            for damaged in [&bytes[..at], &changed[..]] {
                match decode(damaged) {
                    // Cut just before the checksum: the whole stream, as blocks were before.
                    Ok(batches) => assert_eq!((at, batches.len()), (bytes.len() - CHECK_LEN, 1)),
                    Err(err) => assert!(err.starts_with("damaged row block: "), "{err}"),
                }
            }
        }
        let mut changed = bytes.clone();
        changed[bytes.len() / 2] ^= 1;
        let err = decode(&changed).expect_err("one bit changed");
        assert!(err.contains("checksum does not match"), "{err}");
    }
}
