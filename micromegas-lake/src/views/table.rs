//! A view as a DataFusion table: the hours a query's `time` filters allow are brought up to
//! date, then their Parquet files are scanned.

use super::SqlView;
use crate::query::time_range;
use crate::Lake;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// A view of a lake, as a table.
#[derive(Debug)]
pub struct SqlViewTable {
    lake: Lake,
    view: SqlView,
    schema: SchemaRef,
}

impl SqlViewTable {
    /// `view` of `lake`, whose rows have `schema`.
    pub fn new(lake: Lake, view: SqlView, schema: SchemaRef) -> Self {
        Self { lake, view, schema }
    }
}

fn external(e: crate::LakeError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableProvider for SqlViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = time_range(filters, &["time"]);
        self.lake
            .refresh_view(&self.view, range)
            .await
            .map_err(external)?;
        let hours =
            range.map(|(a, b)| (a.div_euclid(NANOS_PER_HOUR), b.div_euclid(NANOS_PER_HOUR)));
        let files: Vec<PartitionedFile> = self
            .lake
            .catalog()
            .view_hours(&self.view.name, hours)
            .await
            .map_err(external)?
            .into_iter()
            .filter(|h| !h.file_path.is_empty())
            .map(|h| PartitionedFile::new(h.file_path, h.file_size as u64))
            .collect();
        crate::query::parquet_scan(state, Arc::clone(&self.schema), files, projection, limit).await
    }
}
