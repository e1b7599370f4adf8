//! Incremental computation of views, hour by hour: an hour is computed again only when the
//! base partitions that hold its data changed (new data, late data, compaction). An hour
//! whose base data is gone, or partly gone (retention: fewer base rows than it was computed
//! from), keeps its view rows.

use super::SqlView;
use crate::catalog::ViewHourRow;
use crate::error::Result;
use crate::Lake;
use arrow::array::RecordBatch;
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use std::collections::{BTreeMap, HashMap};

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
/// Longest span of hours one base partition is counted in (guards against absurd times).
const MAX_PARTITION_HOURS: i64 = 24 * 7;

/// What a refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewRefresh {
    /// Hours computed (new or changed base data).
    pub hours_computed: u64,
    /// Rows written for them.
    pub rows: u64,
}

/// The version of an hour's base data: FNV-1a of its sorted partition ids, their number and
/// their rows (`hash-count-rows`).
fn fingerprint(ids: &mut [&str], rows: i64) -> String {
    ids.sort_unstable();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids.iter() {
        for b in id.bytes().chain(std::iter::once(b',')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}-{}-{rows}", ids.len())
}

/// The base rows a version was computed from.
fn version_rows(version: &str) -> i64 {
    version
        .rsplit('-')
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn timestamp(ns: i64) -> datafusion::logical_expr::Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

fn encode(batches: &[RecordBatch], schema: arrow::datatypes::SchemaRef) -> Result<Vec<u8>> {
    use parquet::basic::{Compression, ZstdLevel};
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    Ok(writer.into_inner()?)
}

impl Lake {
    /// Computes the hours of `view` within `range` (ns; all when `None`) whose base data
    /// changed since they were last computed.
    pub async fn refresh_view(
        &self,
        view: &SqlView,
        range: Option<(i64, i64)>,
    ) -> Result<ViewRefresh> {
        self.materialize(view.base, range).await?;
        let (first, last) = match range {
            Some((a, b)) => (a.div_euclid(NANOS_PER_HOUR), b.div_euclid(NANOS_PER_HOUR)),
            None => (i64::MIN, i64::MAX),
        };
        let partitions = self.catalog().partitions(view.base.name(), range).await?;
        let mut hours: BTreeMap<i64, (Vec<&str>, i64)> = BTreeMap::new();
        for p in partitions.iter().filter(|p| p.row_count > 0) {
            let a = p.min_time.div_euclid(NANOS_PER_HOUR).max(first);
            let b = p.max_time.div_euclid(NANOS_PER_HOUR).min(last);
            for h in a..=b.min(a + MAX_PARTITION_HOURS) {
                let hour = hours.entry(h).or_default();
                hour.0.push(&p.partition_id);
                hour.1 += p.row_count;
            }
        }
        let stored: HashMap<i64, String> = self
            .catalog()
            .view_hours(&view.name, Some((first, last)))
            .await?
            .into_iter()
            .map(|r| (r.hour, r.source_version))
            .collect();
        let mut report = ViewRefresh::default();
        for (hour, (mut ids, rows)) in hours {
            let version = fingerprint(&mut ids, rows);
            match stored.get(&hour) {
                Some(v) if *v == version => continue,
                // Fewer base rows than the hour was computed from: retention removed some
                // of them; the view keeps what it had.
                Some(v) if rows < version_rows(v) => continue,
                _ => {}
            }
            report.rows += self.compute_hour(view, hour, version).await?;
            report.hours_computed += 1;
        }
        Ok(report)
    }

    /// Refreshes every view over `range`.
    pub async fn refresh_views(&self, range: Option<(i64, i64)>) -> Result<ViewRefresh> {
        let mut total = ViewRefresh::default();
        for view in self.views().await? {
            let r = self.refresh_view(&view, range).await?;
            total.hours_computed += r.hours_computed;
            total.rows += r.rows;
        }
        Ok(total)
    }

    /// Runs the view's query on the base rows of one hour and stores the result.
    async fn compute_hour(&self, view: &SqlView, hour: i64, version: String) -> Result<u64> {
        let ctx = self.base_session().await?;
        let base = view.base.name();
        let time = view.base.time_columns()[0];
        let (start, end) = (hour * NANOS_PER_HOUR, (hour + 1) * NANOS_PER_HOUR);
        let rows_of_hour = ctx.table(base).await?.filter(
            col(time)
                .gt_eq(timestamp(start))
                .and(col(time).lt(timestamp(end))),
        )?;
        ctx.deregister_table(base)?;
        ctx.register_table(base, rows_of_hour.into_view())?;
        let df = ctx.sql(&view.sql).await?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let (file_path, file_size) = if rows == 0 {
            (String::new(), 0)
        } else {
            let bytes = encode(&batches, schema)?;
            let t = chrono::DateTime::from_timestamp_nanos(start);
            let key = format!(
                "views/{}/{}/{}.parquet",
                view.name,
                t.format("%Y-%m-%d/%H"),
                uuid::Uuid::new_v4().simple()
            );
            let size = bytes.len() as i64;
            self.put_durable(&key, bytes, crate::durable_file::Placement::Staged)
                .await?;
            (key, size)
        };
        let row = ViewHourRow {
            view_name: view.name.clone(),
            hour,
            source_version: version,
            file_path,
            file_size,
            row_count: rows as i64,
        };
        if let Some(stale) = self.catalog().put_view_hour(&row).await? {
            self.delete_later(vec![stale], crate::maintenance::DELETE_GRACE)
                .await;
        }
        Ok(rows as u64)
    }
}
