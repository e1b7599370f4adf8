//! Materialization: raw blocks become Parquet partitions when a query needs them (on demand,
//! for the time range it asks) or when the background loop keeps recent data fresh.

mod fetch;
pub(crate) mod otel_fields;
pub(crate) mod partition;
pub(crate) mod spans;

pub use fetch::{RawBlock, Unreadable};

/// The bytes of a partition of `table` holding `batch`'s rows, as materialization writes them:
/// sorted by the table's sort columns, then encoded as Parquet.
pub fn encode_partition(table: ViewTable, batch: &RecordBatch) -> Result<Vec<u8>> {
    let order = partition::sort_order(table, batch)?;
    partition::encode(table, batch, order.as_ref())
}

use crate::catalog::{BlockRow, FORMAT_ARROW};
use crate::error::{LakeError, Result};
use crate::tables::{
    interval_batch, span_batch, span_hex, trace_hex, LogColumns, LogText, MeasureColumns,
    MeasureText, SpanColumns, ViewTable,
};
use crate::Lake;
use arrow::array::RecordBatch;
use micromegas_core::read::{self, Event};
use object_store::ObjectStoreExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most blocks read into one partition.
const BLOCKS_PER_RUN: i64 = 4096;
/// Most events (rows) read into one run, as the catalog counts them; a block with more is
/// read alone. When many blocks wait (a backlog, a long range that a query materializes),
/// this bounds what a run holds in memory: up to about a kilobyte per row, for spans with
/// several attributes.
const EVENTS_PER_RUN: i64 = 1 << 19;

/// How many of the blocks with these event counts, in order, one run reads: those whose
/// counts add up to at most [`EVENTS_PER_RUN`], and at least one.
fn run_length(event_counts: impl IntoIterator<Item = i64>) -> usize {
    let mut events = 0i64;
    event_counts
        .into_iter()
        .take_while(|n| {
            events = events.saturating_add((*n).max(0));
            events <= EVENTS_PER_RUN
        })
        .count()
        .max(1)
}

/// The first blocks of `blocks` that one run reads (see [`run_length`]).
fn one_run(mut blocks: Vec<BlockRow>) -> Vec<BlockRow> {
    blocks.truncate(run_length(blocks.iter().map(|b| b.event_count)));
    blocks
}
/// Times a run is retried after losing a race with another node.
const CONFLICT_RETRIES: usize = 5;

/// What a materialization did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaterializeReport {
    /// Raw blocks read.
    pub blocks: u64,
    /// Rows written.
    pub rows: u64,
    /// Partitions written.
    pub partitions: u64,
    /// Blocks that could not be decoded, with the reason (they are marked done so that they
    /// do not block the others; their events are lost and counted here).
    pub unreadable: Vec<(String, String)>,
}

impl MaterializeReport {
    fn add(&mut self, other: MaterializeReport) {
        self.blocks += other.blocks;
        self.rows += other.rows;
        self.partitions += other.partitions;
        self.unreadable.extend(other.unreadable);
    }
}

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// One pass over pending blocks.
#[derive(Default)]
struct Step {
    report: MaterializeReport,
    /// Groups of blocks that another node materialized first.
    conflicts: u64,
}

impl Step {
    /// Records the outcome of committing one group.
    fn record(
        &mut self,
        outcome: Result<MaterializeReport>,
        bad: Vec<(String, String)>,
    ) -> Result<()> {
        match outcome {
            Ok(r) => {
                self.report.add(r);
                self.report.unreadable.extend(bad);
                Ok(())
            }
            Err(LakeError::Conflict(_)) => {
                self.conflicts += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Lake {
    /// Materializes every block of `table` that may hold rows in `range` (all pending blocks
    /// when `None`). The tables written from the same blocks are materialized together
    /// (`spans` and `span_intervals`).
    pub async fn materialize(
        &self,
        table: ViewTable,
        range: Option<(i64, i64)>,
    ) -> Result<MaterializeReport> {
        self.materialize_observed(table, range, |_| {}).await
    }

    /// [`Lake::materialize`], calling `progress` with the running totals after each run of
    /// up to 4096 blocks (for a progress display).
    pub async fn materialize_observed(
        &self,
        table: ViewTable,
        range: Option<(i64, i64)>,
        mut progress: impl FnMut(&MaterializeReport),
    ) -> Result<MaterializeReport> {
        let _one_at_a_time = self.materialize_lock(table).lock().await;
        let mut report = MaterializeReport::default();
        let mut conflicts = 0;
        loop {
            let mut step = Step::default();
            match table.materialized_with() {
                ViewTable::Spans => self.materialize_spans(range, &mut step).await?,
                run => self.materialize_events(run, range, &mut step).await?,
            };
            let progressed = step.report.blocks > 0;
            report.add(step.report);
            progress(&report);
            if step.conflicts > 0 {
                // Another node took some of the blocks: look again for what is left.
                conflicts += 1;
                if conflicts > CONFLICT_RETRIES && !progressed {
                    return Err(LakeError::Conflict(format!(
                        "{} kept losing races with other nodes; try again",
                        table.name()
                    )));
                }
            } else if !progressed {
                return Ok(report);
            }
        }
    }

    /// Materializes every pending block of every table.
    pub async fn materialize_all(&self) -> Result<MaterializeReport> {
        let mut report = MaterializeReport::default();
        for table in ViewTable::runs() {
            report.add(self.materialize(table, None).await?);
        }
        Ok(report)
    }

    /// One run for logs or measures: pending blocks, one partition per hour they begin in.
    async fn materialize_events(
        &self,
        table: ViewTable,
        range: Option<(i64, i64)>,
        step: &mut Step,
    ) -> Result<()> {
        let kind = table.stream_kind().as_str();
        let pending = one_run(
            self.catalog()
                .pending_blocks(kind, range, BLOCKS_PER_RUN)
                .await?,
        );
        let mut by_hour: BTreeMap<i64, Vec<BlockRow>> = BTreeMap::new();
        for b in pending {
            by_hour
                .entry(b.begin_time.div_euclid(NANOS_PER_HOUR))
                .or_default()
                .push(b);
        }
        for rows in by_hour.into_values() {
            let (native, row_blocks): (Vec<BlockRow>, Vec<BlockRow>) =
                rows.iter().cloned().partition(|r| r.format != FORMAT_ARROW);
            let (blocks, unreadable) = self.read_blocks(&native).await?;
            let mut bad: Vec<(String, String)> = unreadable
                .into_iter()
                .map(|u| (u.block_id, u.reason))
                .collect();
            let native = match table {
                ViewTable::LogEntries => log_batch_of(&blocks, &mut bad)?,
                _ => measure_batch_of(&blocks, &mut bad)?,
            };
            let batch = self
                .with_row_blocks(table, native, &row_blocks, &mut bad)
                .await?;
            let ids: Vec<String> = rows.iter().map(|r| r.block_id.clone()).collect();
            let outcome = self.commit_rows((table, batch), None, ids, None).await;
            step.record(outcome, bad)?;
        }
        Ok(())
    }

    /// `native` followed by the rows of `row_blocks`, in one batch of the table's stored
    /// columns (what its partitions keep).
    async fn with_row_blocks(
        &self,
        table: ViewTable,
        native: RecordBatch,
        row_blocks: &[BlockRow],
        bad: &mut Vec<(String, String)>,
    ) -> Result<RecordBatch> {
        if row_blocks.is_empty() {
            return partition::stored_columns(table, &native);
        }
        let (batches, unreadable) = self.read_row_blocks(row_blocks).await?;
        bad.extend(unreadable);
        let read = batches.len();
        // Blocks hold the stored columns; blocks written before, all the table's columns.
        let (stored_schema, full_schema) = (table.stored_schema(), table.schema());
        let fits = |b: &RecordBatch| {
            let schema = b.schema();
            schema.fields() == stored_schema.fields() || schema.fields() == full_schema.fields()
        };
        let mut stored = batches
            .into_iter()
            .filter(|b| fits(b))
            .map(|b| partition::stored_columns(table, &b))
            .collect::<Result<Vec<_>>>()?;
        if stored.len() < read {
            // Writes check the schema, so only a damaged or foreign object gets here: report it.
            bad.push((
                "row blocks".into(),
                format!(
                    "{} batch(es) without the schema of {}",
                    read - stored.len(),
                    table.name()
                ),
            ));
        }
        stored.push(partition::stored_columns(table, &native)?);
        drop(native);
        partition::concat_by_column(&stored_schema, stored)
    }

    /// One run for spans: for each process with pending blocks, its blocks in stream order,
    /// joined with the state carried from its previous run.
    async fn materialize_spans(&self, range: Option<(i64, i64)>, step: &mut Step) -> Result<()> {
        let max = range.map_or(i64::MAX, |r| r.1);
        for process_id in self.catalog().processes_with_pending("spans", max).await? {
            let rows = one_run(
                self.catalog()
                    .pending_blocks_of_process("spans", &process_id, BLOCKS_PER_RUN)
                    .await?,
            );
            if rows.is_empty() {
                continue;
            }
            let (native, row_blocks): (Vec<BlockRow>, Vec<BlockRow>) =
                rows.iter().cloned().partition(|r| r.format != FORMAT_ARROW);
            // Rows stored as such (OTLP) need no joining: one partition per hour they begin
            // in, as for logs and measures, so that retention can drop old hours.
            let mut by_hour: BTreeMap<i64, Vec<BlockRow>> = BTreeMap::new();
            for b in row_blocks {
                by_hour
                    .entry(b.begin_time.div_euclid(NANOS_PER_HOUR))
                    .or_default()
                    .push(b);
            }
            for group in by_hour.into_values() {
                let mut bad = Vec::new();
                let batch = span_batch(&[])?;
                let batch = self
                    .with_row_blocks(ViewTable::Spans, batch, &group, &mut bad)
                    .await?;
                let ids = group.iter().map(|r| r.block_id.clone()).collect();
                let outcome = self
                    .commit_rows((ViewTable::Spans, batch), None, ids, None)
                    .await;
                step.record(outcome, bad)?;
            }
            if native.is_empty() {
                continue;
            }
            // Native span events are joined across blocks with the state carried from the
            // process's previous run; the enter/exit intervals go to their own table, in the
            // same transaction.
            let (blocks, unreadable) = self.read_blocks(&native).await?;
            let stored = self.catalog().span_carry(&process_id).await?;
            let mut carry = spans::Carry::parse(stored.as_deref());
            let mut columns = SpanColumns::with_capacity(rows_hint(&blocks) / 2);
            let joined = spans::join_spans(&mut carry, &blocks, &mut columns);
            let mut bad = joined.bad;
            bad.extend(unreadable.into_iter().map(|u| (u.block_id, u.reason)));
            let batch = columns.finish()?;
            let intervals = interval_batch(&joined.intervals)?;
            let ids: Vec<String> = native.iter().map(|r| r.block_id.clone()).collect();
            let state = carry.to_json();
            let carry = Some((process_id.as_str(), state.as_str()));
            let also = Some((ViewTable::SpanIntervals, intervals));
            let outcome = self
                .commit_rows((ViewTable::Spans, batch), also, ids, carry)
                .await;
            step.record(outcome, bad)?;
        }
        Ok(())
    }

    /// Writes the partition of `main` and that of `also` (those with rows), and commits them
    /// with their blocks (marked as materialized into `main`'s partition) in one transaction.
    async fn commit_rows(
        &self,
        main: (ViewTable, RecordBatch),
        also: Option<(ViewTable, RecordBatch)>,
        block_ids: Vec<String>,
        carry: Option<(&str, &str)>,
    ) -> Result<MaterializeReport> {
        let mut written = Vec::new();
        let mut rows = 0;
        let mut partitions = 0;
        let mut outcome = Ok(());
        for (table, batch) in std::iter::once(main).chain(also) {
            rows += batch.num_rows() as u64;
            match self.partition_of(table, &batch, block_ids.len()).await {
                Ok(p) => {
                    partitions += u64::from(p.row_count > 0);
                    written.push(p);
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if outcome.is_ok() {
            outcome = self
                .catalog()
                .commit_partition(&written[0], &written[1..], &block_ids, carry)
                .await;
        }
        if let Err(e) = outcome {
            for p in written.iter().filter(|p| !p.file_path.is_empty()) {
                let path = object_store::path::Path::from(p.file_path.as_str());
                let _ = self.store().delete(&path).await;
            }
            return Err(e);
        }
        Ok(MaterializeReport {
            blocks: block_ids.len() as u64,
            rows,
            partitions,
            unreadable: Vec::new(),
        })
    }

    /// Writes the partition of `batch`'s rows, sorted; without rows, writes nothing and
    /// returns a row for the catalog that is not stored (`row_count` 0).
    async fn partition_of(
        &self,
        table: ViewTable,
        batch: &RecordBatch,
        block_count: usize,
    ) -> Result<crate::catalog::PartitionRow> {
        if batch.num_rows() == 0 {
            return Ok(crate::catalog::PartitionRow {
                partition_id: uuid::Uuid::new_v4().to_string(),
                table_name: table.name().to_owned(),
                min_time: 0,
                max_time: 0,
                file_path: String::new(),
                file_size: 0,
                row_count: 0,
                block_count: block_count as i64,
                insert_time: 0,
            });
        }
        let order = partition::sort_order(table, batch)?;
        let envelope = crate::row_blocks::time_envelope(table, batch).unwrap_or((0, 0));
        self.write_partition(table, batch, order.as_ref(), envelope, block_count)
            .await
    }
}

/// Names shared by every row of a block.
struct BlockContext {
    process_id: Arc<str>,
    service: Arc<str>,
    thread: Arc<str>,
}

/// Decodes each block and hands its events to `each`; blocks that do not decode go to `bad`.
fn for_each_event(
    blocks: &[RawBlock],
    bad: &mut Vec<(String, String)>,
    mut each: impl FnMut(&BlockContext, Event),
) {
    for raw in blocks {
        let events = match read::decode_block(&raw.process, &raw.stream, &raw.block) {
            Ok(e) => e,
            Err(e) => {
                bad.push((raw.row.block_id.clone(), e.to_string()));
                continue;
            }
        };
        let ctx = BlockContext {
            process_id: raw.process.process_id.to_string().into(),
            service: raw.process.service_name.as_str().into(),
            thread: raw.stream.thread_name.as_str().into(),
        };
        for ev in events {
            each(&ctx, ev);
        }
    }
}

/// Rows to reserve in column builders for `blocks`: their events, as the catalog counts them
/// (bounded, as the count comes from stored rows).
fn rows_hint(blocks: &[RawBlock]) -> usize {
    const MAX_HINT: usize = 1 << 20;
    blocks
        .iter()
        .map(|b| usize::try_from(b.row.event_count).unwrap_or(0))
        .fold(0usize, usize::saturating_add)
        .min(MAX_HINT)
}

/// The `log_entries` rows of native blocks, appended to the columns as each block is decoded
/// (no row structs in between).
fn log_batch_of(blocks: &[RawBlock], bad: &mut Vec<(String, String)>) -> Result<RecordBatch> {
    let mut columns = LogColumns::with_capacity(rows_hint(blocks));
    for_each_event(blocks, bad, |ctx, ev| {
        let Event::Log(l) = ev else { return };
        let (trace_id, span_id) = (trace_hex(l.trace_id), span_hex(l.span_id));
        let text = LogText {
            time: l.time_unix_nanos,
            process_id: &ctx.process_id,
            service_name: &ctx.service,
            thread_name: &ctx.thread,
            level: l.level.as_str(),
            severity_number: l.level.severity_number(),
            target: &l.location.target,
            msg: &l.msg,
            trace_id: trace_id.as_deref(),
            span_id: span_id.as_deref(),
            file: &l.location.file,
            line: (l.location.line != 0).then_some(l.location.line as i32),
        };
        columns.append(&text, |p| p.entries(&l.properties));
    });
    Ok(columns.finish()?)
}

/// The `measures` rows of native blocks, appended to the columns as each block is decoded.
fn measure_batch_of(blocks: &[RawBlock], bad: &mut Vec<(String, String)>) -> Result<RecordBatch> {
    let mut columns = MeasureColumns::with_capacity(rows_hint(blocks));
    for_each_event(blocks, bad, |ctx, ev| {
        let Event::Measure(m) = ev else { return };
        let text = MeasureText {
            time: m.time_unix_nanos,
            process_id: &ctx.process_id,
            service_name: &ctx.service,
            thread_name: &ctx.thread,
            name: &m.location.name,
            unit: &m.unit,
            kind: &m.kind,
            value: m.value,
            target: &m.location.target,
        };
        columns.append(&text, |p| p.entries(&m.properties));
    });
    Ok(columns.finish()?)
}

#[cfg(test)]
mod tests {
    use super::{run_length, EVENTS_PER_RUN};

    #[test]
    fn a_run_reads_blocks_up_to_its_events_and_at_least_one() {
        let half = EVENTS_PER_RUN / 2;
        assert_eq!(run_length([half, half, 1]), 2);
        assert_eq!(run_length([half, half + 1, 1]), 1);
        assert_eq!(
            run_length([EVENTS_PER_RUN * 3, 1]),
            1,
            "a large block alone"
        );
        assert_eq!(run_length([10; 4096]), 4096);
        assert_eq!(
            run_length([-5, i64::MAX, 1]),
            1,
            "counts from the catalog, unchecked"
        );
    }
}
