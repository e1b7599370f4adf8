//! Background upkeep of a lake: materialize new blocks (so data is queryable within about a
//! period of being acknowledged), compact small partitions of past hours, apply retention.

use crate::catalog::PartitionRow;
use crate::error::{LakeError, Result};
use crate::materialize::partition::{sort_batch, stored_columns};
use crate::tables::ViewTable;
use crate::Lake;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
/// A compacted partition holds at most this many rows.
const MAX_COMPACTED_ROWS: i64 = 8_000_000;
/// Replaced partition and view files are deleted this long after they were replaced, so that
/// queries that planned with them can finish.
pub(crate) const DELETE_GRACE: Duration = Duration::from_secs(120);

/// What the background loop does.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// How often new blocks are materialized (default 1 s).
    pub period: Duration,
    /// How often past hours are compacted (default 5 min).
    pub compaction_period: Duration,
    /// Delete data older than this (default: keep everything).
    pub retention: Option<Duration>,
    /// How often retention runs (default 1 h).
    pub retention_period: Duration,
    /// Delete raw payloads this long after they were written, once every block they hold is
    /// materialized (default: keep them). Runs at the compaction period.
    pub raw_retention: Option<Duration>,
    /// How often SQL-defined views are brought up to date (default 1 min; queries on a view
    /// also bring the hours they read up to date).
    pub views_period: Duration,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(1),
            compaction_period: Duration::from_secs(300),
            retention: None,
            retention_period: Duration::from_secs(3600),
            raw_retention: None,
            views_period: Duration::from_secs(60),
        }
    }
}

/// The running loop; dropping it stops it.
#[derive(Debug)]
pub struct Maintenance {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Maintenance {
    /// Stops the loop after its current step.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
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
    /// Starts the background loop on the current tokio runtime. Errors are passed to
    /// `on_error` and the loop goes on (a storage outage delays freshness, it does not stop
    /// the loop). Each raw block that could not be read (a damaged object) is passed too, as
    /// [`LakeError::Corrupt`], once: it is set aside, not retried.
    pub fn spawn_maintenance(
        &self,
        options: MaintenanceOptions,
        on_error: impl Fn(&crate::LakeError) + Send + 'static,
    ) -> Maintenance {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let lake = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(options.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let start = tokio::time::Instant::now();
            let (mut last_compaction, mut last_retention) = (start, None::<tokio::time::Instant>);
            let mut last_views = None::<tokio::time::Instant>;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                match lake.materialize_all().await {
                    Ok(report) => {
                        for (block, reason) in &report.unreadable {
                            on_error(&LakeError::Corrupt {
                                what: format!("raw block {block} (set aside, its rows are lost)"),
                                message: reason.clone(),
                            });
                        }
                    }
                    Err(e) => on_error(&e),
                }
                if last_compaction.elapsed() >= options.compaction_period {
                    last_compaction = tokio::time::Instant::now();
                    if let Err(e) = lake.compact().await {
                        on_error(&e);
                    }
                    if let Some(age) = options.raw_retention {
                        if let Err(e) = lake.drop_materialized_raw(age).await {
                            on_error(&e);
                        }
                    }
                }
                if last_views.is_none_or(|t| t.elapsed() >= options.views_period) {
                    last_views = Some(tokio::time::Instant::now());
                    if let Err(e) = lake.refresh_views(None).await {
                        on_error(&e);
                    }
                }
                if let Some(age) = options.retention {
                    if last_retention.is_none_or(|t| t.elapsed() >= options.retention_period) {
                        last_retention = Some(tokio::time::Instant::now());
                        if let Err(e) = lake.expire(age).await {
                            on_error(&e);
                        }
                    }
                }
            }
        });
        Maintenance {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts garbage collection on the current tokio runtime: a pass (see
    /// [`crate::garbage`]) at once, then every `period`, each deleting the objects that no
    /// catalog row has referred to for `grace`. Each pass's outcome goes to `on_pass`. It runs
    /// apart from [`Lake::spawn_maintenance`], so that listing a large bucket never delays
    /// materialization; stopping the handle interrupts a pass (what it had deleted stays
    /// deleted, the rest waits for the next one).
    pub fn spawn_garbage_collection(
        &self,
        period: Duration,
        grace: Duration,
        on_pass: impl Fn(Result<crate::garbage::GarbageReport>) + Send + 'static,
    ) -> Maintenance {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let lake = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    outcome = lake.collect_garbage(grace) => on_pass(outcome),
                }
            }
        });
        Maintenance {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Merges the partitions of each table and past hour into one (up to a size), so that a
    /// long range opens few files. The replaced files are deleted after a grace period.
    pub async fn compact(&self) -> Result<CompactionReport> {
        self.compact_with_grace(DELETE_GRACE).await
    }

    /// [`Lake::compact`], deleting replaced files after `grace` (at once for zero).
    pub async fn compact_with_grace(&self, grace: Duration) -> Result<CompactionReport> {
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
                let mut chunk: Vec<PartitionRow> = Vec::new();
                let mut rows = 0;
                for p in group {
                    if rows + p.row_count > MAX_COMPACTED_ROWS && !chunk.is_empty() {
                        let chunk = std::mem::take(&mut chunk);
                        self.merge(table, chunk, grace, &mut report).await?;
                        rows = 0;
                    }
                    rows += p.row_count;
                    chunk.push(p);
                }
                self.merge(table, chunk, grace, &mut report).await?;
            }
        }
        Ok(report)
    }

    async fn merge(
        &self,
        table: ViewTable,
        parts: Vec<PartitionRow>,
        grace: Duration,
        report: &mut CompactionReport,
    ) -> Result<()> {
        if parts.len() < 2 {
            return Ok(());
        }
        let mut batches = Vec::new();
        for p in &parts {
            let bytes = self
                .store()
                .get(&Path::from(p.file_path.as_str()))
                .await?
                .bytes()
                .await?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                batches.push(stored_columns(table, &batch?)?);
            }
        }
        let merged = arrow::compute::concat_batches(&table.stored_schema(), &batches)?;
        let merged = sort_batch(table, &merged)?;
        let envelope = (
            parts.iter().map(|p| p.min_time).min().unwrap_or(0),
            parts.iter().map(|p| p.max_time).max().unwrap_or(0),
        );
        let blocks: i64 = parts.iter().map(|p| p.block_count).sum();
        let new = self
            .write_partition(table, &merged, envelope, blocks as usize)
            .await?;
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
        self.delete_later(parts.into_iter().map(|p| p.file_path).collect(), grace)
            .await;
        Ok(())
    }

    /// Deletes `files`, which no catalog row refers to any more, `grace` from now (at once
    /// for zero), so that queries that planned with them can finish. A deletion that fails,
    /// or that the process does not live to make, is left to garbage collection.
    pub(crate) async fn delete_later(&self, files: Vec<String>, grace: Duration) {
        let store = Arc::clone(self.store());
        let delete = async move {
            for f in files {
                let _ = store.delete(&Path::from(f)).await;
            }
        };
        if grace.is_zero() {
            delete.await;
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                delete.await;
            });
        }
    }
}
