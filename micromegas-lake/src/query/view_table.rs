//! A materialized table (`log_entries`, `measures`, `spans`, `span_intervals`) as a DataFusion table: the
//! catalog chooses the partitions that the query's time filters allow, missing partitions
//! are materialized first, and only the chosen Parquet files are scanned.

use super::time_range::time_range;
use super::LAKE_STORE_URL;
use crate::tables::ViewTable;
use crate::Lake;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Operator;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// A materialized table of a lake.
#[derive(Debug)]
pub struct LakeViewTable {
    lake: Lake,
    table: ViewTable,
}

impl LakeViewTable {
    /// The table `table` of `lake`.
    pub fn new(lake: Lake, table: ViewTable) -> Self {
        Self { lake, table }
    }
}

fn external(e: crate::LakeError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableProvider for LakeViewTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning partitions and row groups; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = time_range(filters, self.table.time_columns());
        self.lake
            .materialize(self.table, range)
            .await
            .map_err(external)?;
        let partitions = self
            .lake
            .catalog()
            .partitions(self.table.name(), range)
            .await
            .map_err(external)?;
        let files = partitions
            .into_iter()
            .map(|p| PartitionedFile::new(p.file_path, p.file_size as u64))
            .collect();
        scan_with_computed(state, self.table, files, projection, limit).await
    }
}

/// A scan of `table`'s partitions for `projection` of its schema: the stored columns are read,
/// and the computed ones (`duration_ns`, the table's last time column minus its first) are
/// derived from them. Partitions of `spans` written when `duration_ns` was stored still have
/// it; the file's copy is not read.
async fn scan_with_computed(
    state: &dyn Session,
    table: ViewTable,
    files: Vec<PartitionedFile>,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = table.schema();
    let stored = table.stored_schema();
    let wanted: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..schema.fields().len()).collect(),
    };
    let computed = |i: &usize| {
        table
            .computed_columns()
            .contains(&schema.field(*i).name().as_str())
    };
    if files.is_empty() {
        return Ok(Arc::new(EmptyExec::new(Arc::new(schema.project(&wanted)?))));
    }
    // The stored columns to read: those wanted, in order, and the two times a duration needs.
    let times = table.time_columns();
    let (start, end) = (times[0], times[times.len() - 1]);
    let mut read: Vec<usize> = Vec::new();
    for &i in &wanted {
        let name = schema.field(i).name().as_str();
        let bounds = [start, end];
        let needs: &[&str] = if computed(&i) {
            &bounds
        } else {
            std::slice::from_ref(&name)
        };
        for n in needs {
            let at = stored.index_of(n)?;
            if !read.contains(&at) {
                read.push(at);
            }
        }
    }
    let scan = parquet_scan(state, Arc::clone(&stored), files, Some(&read), limit).await?;
    if read.len() == wanted.len() && !wanted.iter().any(computed) {
        // The scan reads exactly the wanted columns, in their order.
        return Ok(scan);
    }
    let column = |name: &str| -> Result<Arc<dyn PhysicalExpr>> {
        let at = read
            .iter()
            .position(|&j| stored.field(j).name() == name)
            .ok_or_else(|| DataFusionError::Internal(format!("{name} is not read")))?;
        Ok(Arc::new(Column::new(name, at)))
    };
    let nanos = |name: &str| -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(CastExpr::new(
            column(name)?,
            DataType::Int64,
            None,
        )))
    };
    let exprs = wanted
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            let expr: Arc<dyn PhysicalExpr> = if computed(&i) {
                Arc::new(BinaryExpr::new(nanos(end)?, Operator::Minus, nanos(start)?))
            } else {
                column(&name)?
            };
            Ok((expr, name))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
}

/// A scan of Parquet files of the lake with `schema`, spread over the session's target
/// partitions; an empty plan when there is no file.
pub(crate) async fn parquet_scan(
    state: &dyn Session,
    schema: SchemaRef,
    files: Vec<PartitionedFile>,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if files.is_empty() {
        let projected = match projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
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
    let source = format.file_source(schema.into());
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(LAKE_STORE_URL)?, source)
        .with_file_groups(groups)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    format.create_physical_plan(state, config).await
}
