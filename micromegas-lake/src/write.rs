//! The write API: raw batches become one object per write (writes made at the same time share
//! one, see `group_commit`) plus their catalog rows.

use crate::catalog::{now_nanos, BlockRow, ProcessRow, StreamRow, WriteRows};
use crate::error::Result;
use crate::group_commit::{ObjectKind, PendingWrite};
use crate::Lake;
use micromegas_core::transit::batch::Batch;

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Blocks stored by this write.
    pub blocks_written: u64,
    /// Blocks the lake already had (a retried write): left as they were.
    pub blocks_skipped: u64,
    /// Events in the blocks written.
    pub events_written: u64,
    /// Bytes of the object written (0 when nothing was new).
    pub object_bytes: u64,
}

/// The start of the key of a raw object whose bytes are in the catalog (its `object_bytes`
/// table) rather than in the object store: the small objects of a local lake with a
/// SQLite-file catalog, which commit in the same transaction as their catalog rows.
pub const IN_CATALOG: &str = "catalog:";

/// Object key of a raw object written at `time` (ns), with file extension `ext`; with
/// `in_catalog`, the key of an object whose bytes the catalog holds.
pub(crate) fn raw_object_key(time: i64, ext: &str, in_catalog: bool) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(time);
    format!(
        "{}raw/{}/{}.{ext}",
        if in_catalog { IN_CATALOG } else { "" },
        t.format("%Y-%m-%d/%H"),
        uuid::Uuid::new_v4().simple()
    )
}

impl Lake {
    /// Stores batches: their blocks go into one object (the batches' wire encoding, one after
    /// the other; writes made at the same time share an object), then their catalog rows are
    /// committed. Returns once both are durable. Blocks the lake already has are skipped (a
    /// batch whose blocks are all known is not written again), so a retried write changes
    /// nothing.
    pub async fn write_batches(&self, batches: &[Batch]) -> Result<WriteOutcome> {
        let now = now_nanos();
        let mut object = Vec::new();
        let mut rows = WriteRows::default();
        for batch in batches {
            if batch.blocks.is_empty() {
                continue;
            }
            let offset = object.len() as i64;
            object.extend_from_slice(&batch.encode());
            let len = object.len() as i64 - offset;
            let p = &batch.process;
            rows.processes.push(ProcessRow {
                process_id: p.process_id.to_string(),
                service_name: p.service_name.clone(),
                exe: p.exe.clone(),
                username: p.username.clone(),
                hostname: p.hostname.clone(),
                start_time: p.calibration.start_unix_nanos,
                tsc_frequency: p.calibration.ticks_per_second as i64,
                properties: p.properties.clone(),
                insert_time: now,
            });
            for s in &batch.streams {
                rows.streams.push(StreamRow {
                    stream_id: s.stream_id.to_string(),
                    process_id: s.process_id.to_string(),
                    kind: s.kind.as_str().to_owned(),
                    thread_id: s.thread_id as i64,
                    thread_name: s.thread_name.clone(),
                    properties: s.properties.clone(),
                    insert_time: now,
                });
            }
            for b in &batch.blocks {
                let h = &b.header;
                let kind = batch
                    .stream_of(b)
                    .map(|s| s.kind.as_str())
                    .unwrap_or_default();
                rows.blocks.push(BlockRow {
                    block_id: h.block_id.to_string(),
                    stream_id: h.stream_id.to_string(),
                    process_id: p.process_id.to_string(),
                    kind: kind.to_owned(),
                    sequence: h.sequence as i64,
                    begin_time: h.begin_unix_nanos,
                    end_time: h.end_unix_nanos.max(h.begin_unix_nanos),
                    event_count: h.event_count as i64,
                    payload_size: b.payload.len() as i64,
                    object_path: String::new(),
                    object_offset: offset,
                    object_len: len,
                    insert_time: now,
                    partition_id: None,
                    format: crate::catalog::FORMAT_TRANSIT.into(),
                });
            }
        }
        let write = PendingWrite { object, rows };
        self.commit(ObjectKind::Transit, write).await
    }

    /// Decodes one encoded batch (as the native sinks send it) and writes it.
    pub async fn write_encoded(&self, bytes: &[u8]) -> Result<WriteOutcome> {
        let batch = Batch::decode(bytes)?;
        self.write_batches(std::slice::from_ref(&batch)).await
    }
}
