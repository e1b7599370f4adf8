//! Reading raw blocks back from their objects.

use crate::catalog::BlockRow;
use crate::error::{LakeError, Result};
use crate::write::IN_CATALOG;
use crate::Lake;
use bytes::Bytes;
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
        futures::stream::iter(ranges.into_iter().map(|key| async move {
            let decoded = self.read_range(&key).await?.and_then(|b| decode(&b));
            Ok((key, decoded))
        }))
        .buffered(PARALLEL_READS)
        .try_collect()
        .await
    }

    /// The bytes of one range, from the object store or, for a key starting with
    /// [`IN_CATALOG`], from the catalog; a missing or short object gets the reason instead.
    async fn read_range(
        &self,
        (path, offset, len): &Range,
    ) -> Result<std::result::Result<Bytes, String>> {
        let missing = || format!("object {path} is missing");
        if path.starts_with(IN_CATALOG) {
            return Ok(
                match self.catalog().object_range(path, *offset, *len).await? {
                    Some(bytes) if bytes.len() as i64 == *len => Ok(Bytes::from(bytes)),
                    Some(bytes) => Err(format!(
                        "object {path} holds {} bytes at {offset}, its block needs {len}",
                        bytes.len()
                    )),
                    None => Err(missing()),
                },
            );
        }
        let (start, end) = (*offset as u64, (*offset + *len) as u64);
        match self
            .store()
            .get_range(&Path::from(path.as_str()), start..end)
            .await
        {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(Err(missing())),
            Err(e) => Err(LakeError::from(e)),
        }
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

#[cfg(test)]
mod tests {
    use crate::{Lake, LakeOptions};

    /// Ranges of objects whose bytes the catalog holds are read from it; a missing object and
    /// a range past the end are reported with the reason, not as an error of the read.
    #[tokio::test]
    async fn catalog_held_ranges_are_read_or_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path");
        let lake = Lake::open(path, LakeOptions::default())
            .await
            .expect("lake");
        let key = "catalog:raw/2026-12-02/14/object.arrows";
        let catalog = rusqlite::Connection::open(dir.path().join("catalog.sqlite")).expect("db");
        catalog
            .execute(
                "INSERT INTO object_bytes (object_path, bytes) VALUES (?1, ?2)",
                rusqlite::params![key, b"0123456789".as_slice()],
            )
            .expect("insert");
        let read = |path: &str, offset, len| {
            let range = (path.to_owned(), offset, len);
            let lake = &lake;
            async move { lake.read_range(&range).await.expect("read") }
        };
        assert_eq!(read(key, 2, 5).await.as_deref(), Ok(b"23456".as_slice()));
        assert_eq!(
            read(key, 8, 5).await,
            Err(format!(
                "object {key} holds 2 bytes at 8, its block needs 5"
            ))
        );
        let gone = "catalog:raw/2026-12-02/14/gone.arrows";
        assert_eq!(
            read(gone, 0, 5).await,
            Err(format!("object {gone} is missing"))
        );
        assert_eq!(
            read("raw/2026-12-02/14/gone.arrows", 0, 5).await,
            Err("object raw/2026-12-02/14/gone.arrows is missing".to_owned())
        );
    }
}
