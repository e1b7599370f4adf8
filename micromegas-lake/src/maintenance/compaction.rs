//! Compaction: the partitions of each table and past hour merged into few, so that a long
//! range opens few files, in a bounded amount of memory whatever an hour holds.

use super::DELETE_GRACE;
use crate::catalog::PartitionRow;
use crate::error::Result;
use crate::materialize::partition::{concat_by_column, sort_order, stored_columns};
use crate::tables::ViewTable;
use crate::Lake;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// The most memory, in bytes, that the rows compaction merges into one partition may take:
/// it stops reading partitions once their rows take this much, so a merge needs about this
/// plus one partition's rows, however many rows the hour holds. Each merged partition then
/// holds about this much data (one to a few million rows, depending on the table).
pub const COMPACTION_MEMORY: usize = 256 << 20;
/// A compacted partition holds at most this many rows.
const MAX_COMPACTED_ROWS: i64 = 8_000_000;

/// How a compaction pass works.
#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Replaced files are deleted this long after they were replaced, so that queries that
    /// planned with them can finish (default 2 min; zero: at once).
    pub grace: Duration,
    /// The most memory, in bytes, that the rows merged into one partition may take (default
    /// [`COMPACTION_MEMORY`]): a merge needs about this plus one partition's rows.
    pub memory: usize,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            grace: DELETE_GRACE,
            memory: COMPACTION_MEMORY,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Partitions replaced.
    pub partitions_replaced: u64,
    /// Partitions written in their place.
    pub partitions_written: u64,
}

impl Lake {
    /// Merges the partitions of each table and past hour into few, each of up to
    /// [`COMPACTION_MEMORY`] bytes of rows, so that a long range opens few files. The replaced
    /// files are deleted after a grace period.
    pub async fn compact(&self) -> Result<CompactionReport> {
        self.compact_with(CompactionOptions::default()).await
    }

    /// [`Lake::compact`], deleting replaced files after `grace` (at once for zero).
    pub async fn compact_with_grace(&self, grace: Duration) -> Result<CompactionReport> {
        let options = CompactionOptions {
            grace,
            ..Default::default()
        };
        self.compact_with(options).await
    }

    /// [`Lake::compact`] with these options.
    pub async fn compact_with(&self, options: CompactionOptions) -> Result<CompactionReport> {
        // Less than a row's worth would merge nothing.
        let memory = options.memory.max(1);
        let current_hour = crate::catalog::now_nanos().div_euclid(NANOS_PER_HOUR);
        let mut report = CompactionReport::default();
        for table in ViewTable::ALL {
            let _one_at_a_time = self.materialize_lock(table).lock().await;
            let mut by_hour: BTreeMap<i64, Vec<PartitionRow>> = BTreeMap::new();
            for p in self.catalog().partitions(table.name(), None).await? {
                let hour = p.min_time.div_euclid(NANOS_PER_HOUR);
                if hour < current_hour {
                    by_hour.entry(hour).or_default().push(p);
                }
            }
            for group in by_hour.into_values() {
                for run in self.runs_to_merge(table, group, memory) {
                    let mut rest = run.as_slice();
                    while rest.len() > 1 {
                        let grace = options.grace;
                        let read = self.merge(table, rest, memory, grace, &mut report).await?;
                        rest = &rest[read..];
                    }
                }
            }
        }
        Ok(report)
    }

    /// Splits a past hour's partitions, in their order, into the runs worth merging: each of
    /// at least two partitions, within [`MAX_COMPACTED_ROWS`] rows and, by the size of the
    /// table's rows at its last merge, `memory` bytes. So partitions that an earlier pass
    /// made full are not read again.
    fn runs_to_merge(
        &self,
        table: ViewTable,
        parts: Vec<PartitionRow>,
        memory: usize,
    ) -> Vec<Vec<PartitionRow>> {
        let width = self.row_width(table).load(Ordering::Relaxed);
        let max_rows = match width {
            0 => MAX_COMPACTED_ROWS,
            w => MAX_COMPACTED_ROWS.min(i64::try_from(memory / w).unwrap_or(i64::MAX)),
        };
        let mut runs = Vec::new();
        let mut run: Vec<PartitionRow> = Vec::new();
        let mut rows = 0;
        for p in parts {
            if rows + p.row_count > max_rows && !run.is_empty() {
                runs.push(std::mem::take(&mut run));
                rows = 0;
            }
            rows += p.row_count;
            run.push(p);
        }
        runs.push(run);
        runs.retain(|r| r.len() > 1);
        runs
    }

    /// Reads `parts` in order until their rows take `memory` bytes, and replaces those it
    /// read, if more than one, by one partition of their rows (counted in `report`). Returns
    /// how many it read (at least one).
    async fn merge(
        &self,
        table: ViewTable,
        parts: &[PartitionRow],
        memory: usize,
        grace: Duration,
        report: &mut CompactionReport,
    ) -> Result<usize> {
        let mut batches = Vec::new();
        let (mut bytes, mut rows, mut read) = (0, 0, 0);
        for p in parts {
            if bytes >= memory {
                break;
            }
            let file = self
                .store()
                .get(&Path::from(p.file_path.as_str()))
                .await?
                .bytes()
                .await?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
                let batch = stored_columns(table, &batch?)?;
                bytes += batch.get_array_memory_size();
                rows += batch.num_rows();
                batches.push(batch);
            }
            read += 1;
        }
        if let Some(width) = bytes.checked_div(rows) {
            self.row_width(table).store(width, Ordering::Relaxed);
        }
        if read < 2 {
            return Ok(read);
        }
        let parts = &parts[..read];
        let merged = concat_by_column(&table.stored_schema(), batches)?;
        let order = sort_order(table, &merged)?;
        let envelope = (
            parts.iter().map(|p| p.min_time).min().unwrap_or(0),
            parts.iter().map(|p| p.max_time).max().unwrap_or(0),
        );
        let blocks: i64 = parts.iter().map(|p| p.block_count).sum();
        let new = self
            .write_partition(table, &merged, order.as_ref(), envelope, blocks as usize)
            .await?;
        drop(merged);
        let old: Vec<String> = parts.iter().map(|p| p.partition_id.clone()).collect();
        if let Err(e) = self.catalog().replace_partitions(&old, &new).await {
            let _ = self
                .store()
                .delete(&Path::from(new.file_path.as_str()))
                .await;
            return Err(e);
        }
        report.partitions_replaced += parts.len() as u64;
        report.partitions_written += 1;
        self.delete_later(parts.iter().map(|p| p.file_path.clone()).collect(), grace)
            .await;
        Ok(read)
    }
}
