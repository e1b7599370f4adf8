//! SQL-defined views: incremental data reduction. A view is a query over one of the lake's
//! tables that groups by a time bucket named `time` (a bucket that divides an hour: a minute,
//! five minutes...). The lake computes it hour by hour, recomputes an hour when the base
//! data of that hour changes (late data), keeps its hours after the base data expires under
//! retention, and serves it as an ordinary table.
//!
//! Two are built in: `log_stats` (log entries per minute, service and level) and
//! `measure_stats` (count, sum, min, max, p50 and p99 of each metric per minute and service).
//!
//! ```
//! use micromegas_lake::{Lake, LakeOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
//! lake.create_view(
//!     "errors_per_minute",
//!     "SELECT date_bin(INTERVAL '1 minute', time) AS time, service_name, COUNT(*) AS errors \
//!      FROM log_entries WHERE severity_number >= 17 GROUP BY 1, 2",
//! )
//! .await
//! .unwrap();
//! let ctx = lake.session().await.unwrap();
//! let rows = ctx.sql("SELECT * FROM errors_per_minute").await.unwrap().collect().await.unwrap();
//! assert!(rows.iter().all(|b| b.num_rows() == 0));
//! # });
//! ```

mod refresh;
mod table;

pub use refresh::ViewRefresh;
pub use table::SqlViewTable;

use crate::catalog::ViewRow;
use crate::error::{LakeError, Result};
use crate::tables::ViewTable;
use crate::Lake;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use object_store::ObjectStoreExt;

/// A view: its name, the table it reads and its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlView {
    /// Its table name.
    pub name: String,
    /// The table it reads.
    pub base: ViewTable,
    /// Its query.
    pub sql: String,
    /// Built into the lake (cannot be dropped).
    pub builtin: bool,
}

/// The views every lake has.
pub fn builtin() -> Vec<SqlView> {
    vec![
        SqlView {
            name: "log_stats".into(),
            base: ViewTable::LogEntries,
            sql: "SELECT date_bin(INTERVAL '1 minute', time) AS time, service_name, level, \
                  COUNT(*) AS count FROM log_entries GROUP BY 1, 2, 3"
                .into(),
            builtin: true,
        },
        SqlView {
            name: "measure_stats".into(),
            base: ViewTable::Measures,
            sql: "SELECT date_bin(INTERVAL '1 minute', time) AS time, service_name, name, unit, \
                  COUNT(*) AS count, SUM(value) AS sum, MIN(value) AS min, MAX(value) AS max, \
                  approx_percentile_cont(value, 0.5) AS p50, \
                  approx_percentile_cont(value, 0.99) AS p99 \
                  FROM measures GROUP BY 1, 2, 3, 4"
                .into(),
            builtin: true,
        },
    ]
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The lake tables a plan reads.
fn tables_read(plan: &LogicalPlan) -> Vec<String> {
    let mut names = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.push(scan.table_name.table().to_owned());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names.sort();
    names.dedup();
    names
}

impl Lake {
    /// A session with the lake's base tables only (what views are computed on).
    pub(crate) async fn base_session(&self) -> Result<SessionContext> {
        let ctx = crate::query::new_context();
        self.register(&ctx)?;
        Ok(ctx)
    }

    /// Checks `sql` as a view query and returns the table it reads.
    async fn check_view(&self, name: &str, sql: &str) -> Result<ViewTable> {
        let bad = |why: String| LakeError::Config(format!("view {name}: {why}"));
        if !valid_name(name) {
            return Err(bad("a view name is lowercase letters, digits and _".into()));
        }
        let taken =
            crate::query::table_names().contains(&name) || builtin().iter().any(|v| v.name == name);
        if taken {
            return Err(bad("that name is a table of the lake".into()));
        }
        let ctx = self.base_session().await?;
        let plan = ctx.state().create_logical_plan(sql).await?;
        crate::query::read_only().verify_plan(&plan).map_err(|e| {
            bad(format!(
                "only a query can define a view ({})",
                e.find_root()
            ))
        })?;
        let base = match tables_read(&plan).as_slice() {
            [one] => ViewTable::from_name(one),
            _ => None,
        }
        .ok_or_else(|| {
            let tables: Vec<&str> = ViewTable::ALL.iter().map(|t| t.name()).collect();
            bad(format!(
                "the query must read exactly one of {}",
                tables.join(", ")
            ))
        })?;
        let time = plan
            .schema()
            .as_arrow()
            .field_with_name("time")
            .ok()
            .cloned();
        if time.is_none_or(|f| *f.data_type() != crate::tables::time_type()) {
            return Err(bad(
                "the query must return a column `time` (a time bucket such as \
                 date_bin(INTERVAL '1 minute', time) AS time)"
                    .into(),
            ));
        }
        Ok(base)
    }

    /// Defines a view (see the [module](self) documentation).
    pub async fn create_view(&self, name: &str, sql: &str) -> Result<SqlView> {
        let base = self.check_view(name, sql).await?;
        let row = ViewRow {
            name: name.to_owned(),
            base_table: base.name().to_owned(),
            sql: sql.to_owned(),
        };
        if !self.catalog().create_view(&row).await? {
            return Err(LakeError::Config(format!(
                "view {name} already exists; drop it first to change it"
            )));
        }
        Ok(SqlView {
            name: row.name,
            base,
            sql: row.sql,
            builtin: false,
        })
    }

    /// Every view: the built-in ones, then the user's.
    pub async fn views(&self) -> Result<Vec<SqlView>> {
        let mut all = builtin();
        for v in self.catalog().views().await? {
            let Some(base) = ViewTable::from_name(&v.base_table) else {
                continue;
            };
            all.push(SqlView {
                name: v.name,
                base,
                sql: v.sql,
                builtin: false,
            });
        }
        Ok(all)
    }

    /// Removes a user's view and its data.
    pub async fn drop_view(&self, name: &str) -> Result<()> {
        if builtin().iter().any(|v| v.name == name) {
            return Err(LakeError::Config(format!(
                "{name} is built in; it cannot be dropped"
            )));
        }
        let files = self
            .catalog()
            .drop_view(name)
            .await?
            .ok_or_else(|| LakeError::Config(format!("there is no view {name}")))?;
        for f in files {
            let _ = self
                .store()
                .delete(&object_store::path::Path::from(f))
                .await;
        }
        Ok(())
    }

    /// Registers every view of the lake in `ctx` (which has the base tables).
    pub(crate) async fn register_views(&self, ctx: &SessionContext) -> Result<()> {
        for view in self.views().await? {
            let plan = ctx.state().create_logical_plan(&view.sql).await?;
            let schema = std::sync::Arc::new(plan.schema().as_arrow().clone());
            let name = view.name.clone();
            ctx.register_table(
                name.as_str(),
                std::sync::Arc::new(SqlViewTable::new(self.clone(), view, schema)),
            )?;
        }
        Ok(())
    }
}
