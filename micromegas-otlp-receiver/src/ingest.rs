//! Storing mapped rows: one row block per resource and table, ids derived from the request's
//! bytes so that a retried request is stored once. Returns only once the lake has it durably.

use crate::mapping::Mapped;
use micromegas_lake::row_blocks::RowBlock;
use micromegas_lake::{Lake, LakeError};

/// Writes the rows of one request. `request_hash` identifies the request's content.
pub async fn store(lake: &Lake, mapped: &Mapped, request_hash: u128) -> Result<u64, LakeError> {
    let mut blocks = Vec::with_capacity(mapped.groups.len());
    for (i, (process, rows)) in mapped.groups.iter().enumerate() {
        let salt = ((mapped.table as u128) << 64) | i as u128;
        let id = xxhash_rust::xxh3::xxh3_128(&(request_hash ^ salt).to_le_bytes());
        blocks.push(RowBlock {
            block_id: uuid::Uuid::from_u128(id),
            process: process.clone(),
            table: mapped.table,
            rows: rows.clone(),
        });
    }
    if blocks.is_empty() {
        return Ok(0);
    }
    Ok(lake.write_row_blocks(&blocks).await?.blocks_written)
}
