//! A view as a DataFusion table: the hours a query's `time` filters allow are brought up to
//! date, then their Parquet files are scanned.

use super::SqlView;
use crate::query::{time_range, LAKE_STORE_URL};
use crate::Lake;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
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
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let groups_wanted = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups_wanted];
        for (i, f) in files.into_iter().enumerate() {
            groups[i % groups_wanted].push(f);
        }
        let groups: Vec<FileGroup> = groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(FileGroup::new)
            .collect();
        let format = ParquetFormat::default();
        let source = format.file_source(Arc::clone(&self.schema).into());
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(LAKE_STORE_URL)?, source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}
