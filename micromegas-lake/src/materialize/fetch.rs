//! Reading raw blocks back from their objects.

use crate::catalog::BlockRow;
use crate::error::{LakeError, Result};
use crate::Lake;
use futures::{StreamExt, TryStreamExt};
use micromegas_core::model::{ProcessInfo, StreamInfo};
use micromegas_core::transit::batch::Batch;
use micromegas_core::transit::block::Block;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::sync::Arc;

/// How many object ranges are read at once.
const PARALLEL_READS: usize = 8;

/// Where a batch lies: object key, offset, length.
pub(crate) type Range = (String, i64, i64);
/// What a block needs to be read.
type Described = (Arc<ProcessInfo>, Arc<StreamInfo>, Arc<Block>);

/// A raw block with the process and stream that describe it.
#[derive(Debug, Clone)]
pub struct RawBlock {
    /// Its catalog row.
    pub row: BlockRow,
    /// Its process.
    pub process: Arc<ProcessInfo>,
    /// Its stream.
    pub stream: Arc<StreamInfo>,
    /// The block.
    pub block: Arc<Block>,
}

/// A block whose bytes could not be read back as the catalog describes them.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The block.
    pub block_id: String,
    /// Why.
    pub reason: String,
}

impl Lake {
    /// Reads the distinct byte ranges that `rows` point to and decodes each with `decode`;
    /// a range that is missing or does not decode gets the reason instead.
    pub(crate) async fn fetch_ranges<T: Send + 'static>(
        &self,
        rows: &[BlockRow],
        decode: fn(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<Vec<(Range, std::result::Result<T, String>)>> {
        let mut ranges: Vec<Range> = rows
            .iter()
            .map(|r| (r.object_path.clone(), r.object_offset, r.object_len))
            .collect();
        ranges.sort();
        ranges.dedup();
        let store = Arc::clone(self.store());
        futures::stream::iter(ranges.into_iter().map(|key| {
            let store = Arc::clone(&store);
            async move {
                let (path, offset, len) = &key;
                let (start, end) = (*offset as u64, (*offset + *len) as u64);
                let decoded = match store
                    .get_range(&Path::from(path.as_str()), start..end)
                    .await
                {
                    Ok(bytes) => decode(&bytes),
                    Err(object_store::Error::NotFound { path, .. }) => {
                        Err(format!("object {path} is missing"))
                    }
                    Err(e) => return Err(LakeError::from(e)),
                };
                Ok((key, decoded))
            }
        }))
        .buffered(PARALLEL_READS)
        .try_collect()
        .await
    }

    /// Reads the blocks of `rows`, in the same order. Blocks that cannot be decoded are
    /// returned apart, with the reason; a failure to reach the object store is an error.
    pub async fn read_blocks(&self, rows: &[BlockRow]) -> Result<(Vec<RawBlock>, Vec<Unreadable>)> {
        let fetched = self
            .fetch_ranges(rows, |bytes| {
                Batch::decode(bytes).map_err(|e| e.to_string())
            })
            .await?;
        let mut by_block: HashMap<String, Described> = HashMap::new();
        let mut failed: HashMap<Range, String> = HashMap::new();
        for (key, batch) in fetched {
            match batch {
                Ok(batch) => {
                    for block in &batch.blocks {
                        if let Some(stream) = batch.stream_of(block) {
                            by_block.insert(
                                block.header.block_id.to_string(),
                                (
                                    Arc::clone(&batch.process),
                                    Arc::clone(stream),
                                    Arc::clone(block),
                                ),
                            );
                        }
                    }
                }
                Err(reason) => {
                    failed.insert(key, reason);
                }
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = Vec::new();
        for row in rows {
            let key = (row.object_path.clone(), row.object_offset, row.object_len);
            if let Some(reason) = failed.get(&key) {
                bad.push(Unreadable {
                    block_id: row.block_id.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            match by_block.get(&row.block_id) {
                Some((process, stream, block)) => out.push(RawBlock {
                    row: row.clone(),
                    process: Arc::clone(process),
                    stream: Arc::clone(stream),
                    block: Arc::clone(block),
                }),
                None => bad.push(Unreadable {
                    block_id: row.block_id.clone(),
                    reason: format!(
                        "block is not in {} at {}",
                        row.object_path, row.object_offset
                    ),
                }),
            }
        }
        Ok((out, bad))
    }
}
