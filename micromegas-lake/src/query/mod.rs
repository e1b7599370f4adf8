//! SQL on the lake: a DataFusion session with every table and function registered.

mod catalog_tables;
mod histogram_quantile;
mod time_range;
pub mod udfs;
mod view_table;

pub use catalog_tables::{CatalogTable, LakeCatalogTable};
pub use time_range::time_range;
pub(crate) use view_table::parquet_scan;
pub use view_table::LakeViewTable;

use crate::error::Result;
use crate::tables::ViewTable;
use crate::Lake;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::prelude::SessionConfig;
use std::sync::Arc;

/// The URL under which the lake's object store is registered in a session.
pub const LAKE_STORE_URL: &str = "micromegas://lake/";

/// A session configured as the lake's are, with nothing registered.
pub(crate) fn new_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    SessionContext::new_with_config(config)
}

/// What the read-only query surfaces allow: queries only (no DDL, DML, `COPY` or `SET`).
pub(crate) fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Names of every base table a session has (views come beside them).
pub fn table_names() -> Vec<&'static str> {
    CatalogTable::ALL
        .iter()
        .map(|t| t.name())
        .chain(ViewTable::ALL.iter().map(|t| t.name()))
        .collect()
}

impl Lake {
    /// A DataFusion session with the lake's tables (`processes`, `streams`, `blocks`,
    /// `partitions`, `log_entries`, `measures`, `spans`) and functions registered, and the
    /// information schema on (`SHOW TABLES`, `information_schema.columns`).
    pub async fn session(&self) -> Result<SessionContext> {
        let ctx = new_context();
        self.register(&ctx)?;
        self.register_views(&ctx).await?;
        Ok(ctx)
    }

    /// Plans `sql` (one statement) on a new session for reading only: DDL (`CREATE ...`),
    /// DML (`INSERT`, `COPY ... TO`) and statements (`SET`) are refused with
    /// [`LakeError::ReadOnly`](crate::LakeError::ReadOnly). What a service embedding the lake
    /// should run users' SQL through.
    pub async fn query(&self, sql: &str) -> Result<DataFrame> {
        let ctx = self.session().await?;
        let plan = ctx.state().create_logical_plan(sql).await?;
        read_only()
            .verify_plan(&plan)
            .map_err(|e| crate::LakeError::ReadOnly(e.find_root().to_string()))?;
        Ok(ctx.execute_logical_plan(plan).await?)
    }

    /// Plans `sql` on a fresh [`Lake::session`] with every statement allowed: DDL (including
    /// `CREATE EXTERNAL TABLE` over any file this process can read), DML, `COPY ... TO` (which
    /// writes where this process can) and `SET`. For administrators only; see [`Lake::query`]
    /// for everyone else.
    pub async fn query_as_admin(&self, sql: &str) -> Result<DataFrame> {
        Ok(self.session().await?.sql(sql).await?)
    }

    /// Registers the lake's tables, functions and object store in an existing session.
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        let url = url::Url::parse(LAKE_STORE_URL)
            .map_err(|e| crate::LakeError::Config(format!("store URL: {e}")))?;
        ctx.register_object_store(&url, Arc::clone(self.store()));
        for t in CatalogTable::ALL {
            ctx.register_table(t.name(), Arc::new(LakeCatalogTable::new(self.clone(), t)))?;
        }
        for t in ViewTable::ALL {
            ctx.register_table(t.name(), Arc::new(LakeViewTable::new(self.clone(), t)))?;
        }
        for f in udfs::all() {
            ctx.register_udf(f);
        }
        ctx.register_udaf(datafusion::logical_expr::AggregateUDF::from(
            histogram_quantile::HistogramQuantile::default(),
        ));
        Ok(())
    }
}
