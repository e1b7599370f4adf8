//! The write API: raw batches become one object per write plus their catalog rows.

use crate::catalog::{now_nanos, BlockRow, ProcessRow, StreamRow, WriteRows};
use crate::error::Result;
use crate::Lake;
use micromegas_core::transit::batch::Batch;
use std::collections::HashSet;
use std::sync::Arc;

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

/// Object key of a raw object written at `time` (ns), with file extension `ext`.
pub(crate) fn raw_object_key(time: i64, ext: &str) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(time);
    format!(
        "raw/{}/{}.{ext}",
        t.format("%Y-%m-%d/%H"),
        uuid::Uuid::new_v4().simple()
    )
}

impl Lake {
    /// Stores batches: their new blocks go into one object (the batches' wire encoding, one
    /// after the other), then their catalog rows are committed. Returns once both are durable.
    /// Blocks the lake already has are skipped, so a retried write changes nothing.
    pub async fn write_batches(&self, batches: &[Batch]) -> Result<WriteOutcome> {
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| b.blocks.iter().map(|k| k.header.block_id.to_string()))
            .collect();
        let (mut seen, mut outcome) = self.known_blocks(&ids).await?;
        let now = now_nanos();
        let mut object = Vec::new();
        let mut rows = WriteRows::default();
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        let key = raw_object_key(now, "mmtb");
        for batch in batches {
            let blocks: Vec<_> = batch
                .blocks
                .iter()
                .filter(|b| seen.insert(b.header.block_id.to_string()))
                .cloned()
                .collect();
            if blocks.is_empty() {
                continue;
            }
            let streams: Vec<_> = batch
                .streams
                .iter()
                .filter(|s| blocks.iter().any(|b| b.header.stream_id == s.stream_id))
                .cloned()
                .collect();
            let trimmed = Batch {
                process: Arc::clone(&batch.process),
                streams,
                blocks,
            };
            let offset = object.len() as i64;
            object.extend_from_slice(&trimmed.encode());
            let len = object.len() as i64 - offset;
            let p = &trimmed.process;
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
            for s in &trimmed.streams {
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
            for b in &trimmed.blocks {
                let h = &b.header;
                let kind = trimmed
                    .stream_of(b)
                    .map(|s| s.kind.as_str())
                    .unwrap_or_default();
                min_time = min_time.min(h.begin_unix_nanos);
                max_time = max_time.max(h.end_unix_nanos);
                outcome.events_written += h.event_count as u64;
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
                    object_path: key.clone(),
                    object_offset: offset,
                    object_len: len,
                    insert_time: now,
                    partition_id: None,
                    format: crate::catalog::FORMAT_TRANSIT.into(),
                });
            }
        }
        self.commit_object(key, object, (min_time, max_time), rows, outcome)
            .await
    }

    /// The blocks among `ids` the lake already has (the start of the set a write skips), and
    /// an outcome that counts them as skipped.
    pub(crate) async fn known_blocks(
        &self,
        ids: &[String],
    ) -> Result<(HashSet<String>, WriteOutcome)> {
        let existing = self.catalog().existing_blocks(ids).await?;
        let outcome = WriteOutcome {
            blocks_skipped: existing.len() as u64,
            ..Default::default()
        };
        Ok((existing, outcome))
    }

    /// Makes `object` durable under `key`, then commits `rows` (which refer to it) to the
    /// catalog; nothing is written when `rows` has no block.
    pub(crate) async fn commit_object(
        &self,
        key: String,
        object: Vec<u8>,
        (min_time, max_time): (i64, i64),
        mut rows: WriteRows,
        mut outcome: WriteOutcome,
    ) -> Result<WriteOutcome> {
        if rows.blocks.is_empty() {
            return Ok(outcome);
        }
        outcome.object_bytes = object.len() as u64;
        rows.object = Some((key.clone(), min_time, max_time, object.len() as i64));
        self.put_durable(&key, object).await?;
        outcome.blocks_written = self.catalog().insert(&rows).await?;
        outcome.blocks_skipped += rows.blocks.len() as u64 - outcome.blocks_written;
        Ok(outcome)
    }

    /// Decodes one encoded batch (as the native sinks send it) and writes it.
    pub async fn write_encoded(&self, bytes: &[u8]) -> Result<WriteOutcome> {
        let batch = Batch::decode(bytes)?;
        self.write_batches(std::slice::from_ref(&batch)).await
    }
}
