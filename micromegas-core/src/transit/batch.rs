//! Batches: what a sink receives and what the collector accepts. One batch carries the
//! process, the streams its blocks belong to, and the blocks.

use super::block::Block;
use super::wire::{Reader, WireWrite};
use super::{DecodeError, FORMAT_VERSION, MAGIC};
use crate::model::{ProcessInfo, StreamInfo};
use std::sync::Arc;

/// Largest batch a decoder accepts (256 MiB).
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// The unit handed to sinks and sent over the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The process that wrote the blocks.
    pub process: Arc<ProcessInfo>,
    /// Every stream that a block of the batch belongs to.
    pub streams: Vec<Arc<StreamInfo>>,
    /// The blocks.
    pub blocks: Vec<Arc<Block>>,
}

impl Batch {
    /// Number of events in all blocks.
    pub fn event_count(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.header.event_count as u64)
            .sum()
    }

    /// The stream a block belongs to.
    pub fn stream_of(&self, block: &Block) -> Option<&Arc<StreamInfo>> {
        self.streams
            .iter()
            .find(|s| s.stream_id == block.header.stream_id)
    }

    /// Serializes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.blocks.iter().map(|b| b.encoded_len()).sum();
        let mut out = Vec::with_capacity(size + 1024);
        out.extend_from_slice(&MAGIC);
        out.put_u8(FORMAT_VERSION);
        self.process.encode(&mut out);
        out.put_u32(self.streams.len() as u32);
        for s in &self.streams {
            s.encode(&mut out);
        }
        out.put_u32(self.blocks.len() as u32);
        for b in &self.blocks {
            b.encode(&mut out);
        }
        out
    }

    /// Parses a batch. Block payloads stay compressed; decode them with
    /// [`Block::decode_payload`]. Every block must belong to a stream of the batch, and every
    /// stream to the batch's process.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(DecodeError::TooLarge {
                what: "batch",
                size: bytes.len(),
                limit: MAX_BATCH_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let magic = r.bytes(MAGIC.len(), "batch magic")?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8("batch version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let process = Arc::new(ProcessInfo::decode(&mut r)?);
        let n = r.u32("stream count")? as usize;
        let n = r.count(n, 64, "streams")?;
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let s = StreamInfo::decode(&mut r)?;
            if s.process_id != process.process_id {
                return Err(DecodeError::Invalid(format!(
                    "stream {} belongs to process {}, not to the batch's process {}",
                    s.stream_id, s.process_id, process.process_id
                )));
            }
            streams.push(Arc::new(s));
        }
        let n = r.u32("block count")? as usize;
        let n = r.count(n, 64, "blocks")?;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            let b = Block::decode(&mut r)?;
            if !streams.iter().any(|s| s.stream_id == b.header.stream_id) {
                return Err(DecodeError::Invalid(format!(
                    "block {} refers to stream {} which the batch does not describe",
                    b.header.block_id, b.header.stream_id
                )));
            }
            blocks.push(Arc::new(b));
        }
        if !r.is_empty() {
            return Err(DecodeError::Invalid(format!(
                "{} unexpected bytes after the last block",
                r.remaining()
            )));
        }
        Ok(Self {
            process,
            streams,
            blocks,
        })
    }
}

/// Copies of `batches` as if another process had written them: new process, stream and block
/// ids (one new process per process of the originals), every time moved by `shift_nanos`.
/// For tests and load simulations that need many distinct processes.
pub fn as_another_process(batches: &[Batch], shift_nanos: i64) -> Vec<Batch> {
    use std::collections::HashMap;
    let mut processes: HashMap<uuid::Uuid, Arc<ProcessInfo>> = HashMap::new();
    let mut streams: HashMap<uuid::Uuid, Arc<StreamInfo>> = HashMap::new();
    batches
        .iter()
        .map(|b| {
            let process = processes
                .entry(b.process.process_id)
                .or_insert_with(|| {
                    let mut p = (*b.process).clone();
                    p.process_id = uuid::Uuid::new_v4();
                    p.calibration.start_unix_nanos += shift_nanos;
                    Arc::new(p)
                })
                .clone();
            let batch_streams = b
                .streams
                .iter()
                .map(|s| {
                    streams
                        .entry(s.stream_id)
                        .or_insert_with(|| {
                            let mut s = (**s).clone();
                            s.stream_id = uuid::Uuid::new_v4();
                            s.process_id = process.process_id;
                            Arc::new(s)
                        })
                        .clone()
                })
                .collect();
            let blocks = b
                .blocks
                .iter()
                .map(|k| {
                    let mut k = (**k).clone();
                    k.header.block_id = uuid::Uuid::new_v4();
                    if let Some(s) = streams.get(&k.header.stream_id) {
                        k.header.stream_id = s.stream_id;
                    }
                    k.header.begin_unix_nanos += shift_nanos;
                    k.header.end_unix_nanos += shift_nanos;
                    Arc::new(k)
                })
                .collect();
            Batch {
                process,
                streams: batch_streams,
                blocks,
            }
        })
        .collect()
}
