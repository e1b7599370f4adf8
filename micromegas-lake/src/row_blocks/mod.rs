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
use arrow::ipc::writer::StreamWriter;
use std::borrow::Cow;

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

/// A row block's bytes: the Arrow IPC stream of the rows' stored form (the table's stored
/// columns, ids as bytes: see [`stored`]) compressed in LZ4 blocks of [`LZ4_CHUNK`] bytes,
/// then a marker and a checksum. Row blocks are written on the collector's request path and
/// read once by materialization, so fast compression matters more there than size (the
/// Parquet partitions made from them use zstd).
///
/// Layout before the marker: the stream's length (u32 LE), then for each chunk of the stream
/// its compressed length (u32 LE) and its LZ4 block. Compressing the stream in chunks, rather
/// than each IPC buffer in an LZ4 frame of its own as Arrow does, costs one compressor table
/// per chunk instead of a frame encoder (table and buffers) per buffer, compresses the IPC
/// messages too, and keeps each chunk small enough for LZ4's 16-bit table.
fn encode(table: ViewTable, rows: &RecordBatch) -> Result<Vec<u8>> {
    let rows = stored::to_stored(table, rows)?;
    IPC_SCRATCH.with(|scratch| {
        let mut ipc = scratch.take();
        ipc.clear();
        let out = write_ipc(&mut ipc, &rows).and_then(|()| compressed(&ipc));
        if ipc.capacity() <= MAX_KEPT_SCRATCH {
            scratch.set(ipc);
        }
        out
    })
}

fn write_ipc(out: &mut Vec<u8>, rows: &RecordBatch) -> Result<()> {
    let mut w = StreamWriter::try_new(out, &rows.schema())?;
    w.write(rows)?;
    w.finish()?;
    Ok(())
}

thread_local! {
    /// The uncompressed IPC stream of the block being encoded, kept between blocks: growing
    /// a fresh buffer to a request's stream (≈ 145 KB for 512 spans) cost about 5 % of the
    /// request path's CPU time (BENCHMARKS.md §5).
    static IPC_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}
/// A scratch buffer grown past this (by an unusually large block) is not kept.
const MAX_KEPT_SCRATCH: usize = 8 << 20;

/// `ipc` in LZ4 chunks, then the marker and the checksum (see [`encode`]).
fn compressed(ipc: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(ipc.len()).map_err(|_| {
        LakeError::InvalidRows(format!(
            "a row block of {} bytes: split the rows into blocks under 4 GiB",
            ipc.len()
        ))
    })?;
    let chunks = ipc.len().div_ceil(LZ4_CHUNK);
    let bound = lz4_flex::block::get_maximum_output_size(LZ4_CHUNK) + 4;
    let mut out = Vec::with_capacity(4 + chunks * bound + CHECK_LEN);
    out.extend_from_slice(&len.to_le_bytes());
    for chunk in ipc.chunks(LZ4_CHUNK) {
        let at = out.len();
        out.resize(at + bound, 0);
        let n = lz4_flex::block::compress_into(chunk, &mut out[at + 4..])
            .map_err(|e| LakeError::InvalidRows(format!("LZ4 compression of a row block: {e}")))?;
        out[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes());
        out.truncate(at + 4 + n);
    }
    Ok(sealing::seal(out))
}

/// The marker and checksum that end a block, written around a given body. The encoder uses
/// [`sealing::seal`]; the rest is for tests and the `row_block` fuzz target, which need
/// blocks whose checksum holds around bodies of their choosing (not a stable API).
#[doc(hidden)]
pub mod sealing {
    use super::{CHECK_MAGIC, LZ4_CHECK_MAGIC};

    /// `body` (LZ4 chunks of an IPC stream) as an `MMR2` block: the marker, then the checksum
    /// of body and marker.
    pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
        body.extend_from_slice(LZ4_CHECK_MAGIC);
        let check = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(&check.to_le_bytes());
        body
    }

    /// `ipc`, an IPC stream, as an `MMR1` block (written before `MMR2`): the marker, then the
    /// checksum of the stream alone.
    pub fn seal_mmr1(mut ipc: Vec<u8>) -> Vec<u8> {
        let check = xxhash_rust::xxh3::xxh3_64(&ipc);
        ipc.extend_from_slice(CHECK_MAGIC);
        ipc.extend_from_slice(&check.to_le_bytes());
        ipc
    }

    /// `ipc` as the encoder writes it: in LZ4 chunks, sealed.
    pub fn chunked(ipc: &[u8]) -> crate::Result<Vec<u8>> {
        super::compressed(ipc)
    }
}

/// Uncompressed bytes per LZ4 chunk of a row block: under 64 KiB, so LZ4 uses its 16-bit
/// table; 32 KiB compressed about as well and faster than 64 KiB on the collector's spans.
const LZ4_CHUNK: usize = 32 << 10;

/// Ends each row block: a marker and the XXH3-64 of the bytes before it, so that damaged bytes
/// are found before they are decompressed or Arrow's reader sees them (it trusts the lengths
/// it reads, and a damaged length can make it ask for terabytes, which aborts the process).
/// `MMR2`: the bytes before are the IPC stream in LZ4 chunks (see [`encode`]);
/// the checksum covers the marker too, so a damaged marker cannot pass for `MMR1`.
const LZ4_CHECK_MAGIC: &[u8; 4] = b"MMR2";
/// `MMR1`: the bytes before are an IPC stream with Arrow's LZ4 frame per buffer (blocks
/// written before `MMR2`; still read).
const CHECK_MAGIC: &[u8; 4] = b"MMR1";
const CHECK_LEN: usize = CHECK_MAGIC.len() + 8;
/// How an Arrow IPC stream ends: blocks written before the check end with it.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// The IPC stream of a row block whose check holds (or of a block written before checks).
fn checked(bytes: &[u8]) -> std::result::Result<Cow<'_, [u8]>, String> {
    let Some(split) = bytes.len().checked_sub(CHECK_LEN) else {
        return Err(format!("{} bytes", bytes.len()));
    };
    let (body, check) = bytes.split_at(split);
    let (magic, hash) = check.split_at(CHECK_MAGIC.len());
    let matches = |covered: &[u8]| {
        if hash == xxhash_rust::xxh3::xxh3_64(covered).to_le_bytes() {
            Ok(())
        } else {
            Err("its checksum does not match".to_string())
        }
    };
    match magic {
        m if m == LZ4_CHECK_MAGIC => {
            matches(&bytes[..split + CHECK_MAGIC.len()])?;
            uncompressed(body).map(Cow::Owned)
        }
        m if m == CHECK_MAGIC => matches(body).map(|()| Cow::Borrowed(body)),
        // Such a stream starts with a continuation marker too; an `MMR2` block cut short
        // before its checksum starts with its length and must not be read as one.
        _ if bytes.ends_with(&END_OF_STREAM) && bytes.starts_with(&END_OF_STREAM[..4]) => {
            Ok(Cow::Borrowed(bytes))
        }
        _ => Err("it ends with neither a checksum nor an end of stream".into()),
    }
}

/// The IPC stream of an `MMR2` body (see [`encode`]). The output grows chunk by chunk, as
/// chunks are found, so a damaged length cannot ask for more than the body can hold.
fn uncompressed(body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let Some((len, mut rest)) = body.split_first_chunk::<4>() else {
        return Err(format!("{} bytes of LZ4 chunks", body.len()));
    };
    let len = u32::from_le_bytes(*len) as usize;
    let mut out = Vec::new();
    while out.len() < len {
        let Some((clen, after)) = rest.split_first_chunk::<4>() else {
            return Err(format!("LZ4 chunks end at {} of {len} bytes", out.len()));
        };
        let clen = u32::from_le_bytes(*clen) as usize;
        let Some((block, after)) = after.split_at_checked(clen) else {
            return Err(format!("an LZ4 chunk of {clen} bytes past the end"));
        };
        let (at, n) = (out.len(), LZ4_CHUNK.min(len - out.len()));
        out.resize(at + n, 0);
        match lz4_flex::block::decompress_into(block, &mut out[at..]) {
            Ok(got) if got == n => {}
            Ok(got) => return Err(format!("an LZ4 chunk of {got} bytes, {n} expected")),
            Err(e) => return Err(format!("LZ4 chunk: {e}")),
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the LZ4 chunks", rest.len()));
    }
    Ok(out)
}

/// Decodes a row block's bytes into batches of its table's stored columns (all its columns
/// for a block written before the stored form). Damaged bytes are an
/// error naming the damage, found by the block's checksum; a damaged object must cost its own
/// blocks, not stop the materialization of every other. Blocks written before checksums are
/// decoded as they are, with any panic of Arrow's reader (an offset past a buffer, a length
/// that does not fit) caught and reported the same way.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let decoded = checked(bytes).and_then(|ipc| {
        std::panic::catch_unwind(|| decode_batches(&ipc)).unwrap_or_else(|panic| {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string());
            Err(what
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default())
        })
    });
    decoded.map_err(|e| format!("damaged row block: {e}"))
}

/// Decodes the bytes of one row block (as stored in its object, from its `object_offset`
/// for `object_len` bytes) into batches of its table's stored columns, ids as text. Damaged
/// bytes are a [`LakeError::Corrupt`] naming the damage; no input makes it panic.
///
/// ```
/// let err = micromegas_lake::row_blocks::decode_row_block(b"not a row block").unwrap_err();
/// assert!(err.to_string().contains("damaged row block"), "{err}");
/// ```
pub fn decode_row_block(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    decode(bytes).map_err(|message| LakeError::Corrupt {
        what: "row block".into(),
        message,
    })
}

fn decode_batches(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    check_framing(bytes)?;
    let reader =
        StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    reader
        .map(|batch| stored::from_stored(batch.map_err(|e| e.to_string())?))
        .collect()
}

/// Checks that every message of an IPC stream, metadata and body, lies within `ipc` before
/// Arrow's reader sees it: the reader allocates a message's body from the length the message
/// states, so a damaged length would otherwise ask for up to 2^63 bytes, which aborts.
fn check_framing(ipc: &[u8]) -> std::result::Result<(), String> {
    let mut rest = ipc;
    loop {
        let Some((word, after)) = rest.split_first_chunk::<4>() else {
            return Err("the IPC stream ends without its end marker".into());
        };
        // A message starts with a continuation marker and its metadata length (streams of
        // old writers start with the length alone).
        let (len, after) = match u32::from_le_bytes(*word) {
            u32::MAX => match after.split_first_chunk::<4>() {
                Some((len, after)) => (u32::from_le_bytes(*len) as usize, after),
                None => return Err("an IPC message cut after its marker".into()),
            },
            len => (len as usize, after),
        };
        if len == 0 {
            return Ok(());
        }
        let Some((meta, after)) = after.split_at_checked(len) else {
            return Err(format!("IPC metadata of {len} bytes past the end"));
        };
        let message =
            arrow::ipc::root_as_message(meta).map_err(|e| format!("IPC message metadata: {e}"))?;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&b| b <= after.len())
            .ok_or_else(|| format!("an IPC body of {} bytes past the end", message.bodyLength()))?;
        rest = &after[body..];
    }
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

    /// A block as written before `MMR2`: IPC with Arrow's LZ4 frame per buffer, then `MMR1`
    /// and the checksum of the IPC stream.
    fn frame_block(rows: &RecordBatch) -> Vec<u8> {
        use arrow::ipc::{writer::IpcWriteOptions, CompressionType};
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .expect("options");
        let stored = stored::to_stored(ViewTable::Spans, rows).expect("stored");
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new_with_options(&mut out, &stored.schema(), options)
            .expect("writer");
        w.write(&stored).expect("write");
        w.finish().expect("finish");
        drop(w);
        sealing::seal_mmr1(out)
    }

    #[test]
    fn blocks_of_the_frame_format_still_read_and_markers_cannot_be_swapped() {
        let rows: Vec<_> = (1..=20)
            .map(|i| span(Some(TRACE), &format!("{i:016x}"), None, i))
            .collect();
        let batch = span_batch(&rows).expect("batch");
        let new = encode(ViewTable::Spans, &batch).expect("encode");
        assert!(new.ends_with(&[LZ4_CHECK_MAGIC.as_slice(), &new[new.len() - 8..]].concat()));
        let old = frame_block(&batch);
        assert_eq!(decode(&old), decode(&new));
        assert_eq!(decode(&new).map(|b| b[0].num_rows()), Ok(20));
        // The marker of one format on the bytes of the other fails the checksum.
        for (bytes, other) in [(&new, CHECK_MAGIC), (&old, LZ4_CHECK_MAGIC)] {
            let mut swapped = bytes.clone();
            let at = bytes.len() - CHECK_LEN;
            swapped[at..at + 4].copy_from_slice(other);
            let err = decode(&swapped).expect_err("swapped marker");
            assert!(err.contains("checksum does not match"), "{err}");
        }
    }

    #[test]
    fn an_lz4_length_past_what_the_chunks_hold_is_damage_not_an_allocation() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&[0x10, b'x']);
        let err = decode(&sealing::seal(bytes)).expect_err("4 GiB from 2 bytes");
        assert!(err.contains("LZ4 chunk"), "{err}");
    }

    #[test]
    fn a_message_body_past_the_stream_is_damage_before_arrow_reads_it() {
        let rows = span_batch(&[span(Some(TRACE), "0000000000000001", None, 1)]).expect("rows");
        let mut ipc = Vec::new();
        write_ipc(&mut ipc, &rows).expect("ipc");
        // A stream written before checksums, its batch's body cut short.
        let mut cut = ipc[..ipc.len() - END_OF_STREAM.len() - 64].to_vec();
        cut.extend_from_slice(&END_OF_STREAM);
        let err = decode(&cut).expect_err("cut body");
        assert!(
            err.contains("IPC body of") && err.contains("past the end"),
            "{err}"
        );
        assert_eq!(decode(&ipc).map(|b| b.len()), Ok(1));
        // The same framing holds for the IPC stream behind a checksum.
        let err = decode(&compressed(&cut).expect("compress")).expect_err("cut body");
        assert!(err.contains("past the end"), "{err}");
    }

    #[test]
    fn a_stream_of_several_chunks_comes_back() {
        let ipc: Vec<u8> = (0..3 * LZ4_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let bytes = compressed(&ipc).expect("compress");
        let body = checked(&bytes).expect("checked");
        assert_eq!(body.as_ref(), ipc.as_slice());
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
                // Cut just before the checksum too: an LZ4 block is not read as a stream
                // written before checksums, even when it ends like one.
                let err = decode(damaged).expect_err("damaged");
                assert!(err.starts_with("damaged row block: "), "{err}");
            }
        }
        let mut changed = bytes.clone();
        changed[bytes.len() / 2] ^= 1;
        let err = decode(&changed).expect_err("one bit changed");
        assert!(err.contains("checksum does not match"), "{err}");
    }
}
