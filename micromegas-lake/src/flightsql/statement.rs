//! Statements: planned read-only on a fresh session of the lake, executed as a stream of
//! Flight data (one batch at a time, never the whole result in memory).

use super::DoGetStream;
use crate::Lake;
use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;
use tonic::Status;

/// The SQL of a statement handle or ticket (the handle is the SQL text).
pub(crate) fn handle_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL text"))
}

/// A query error as a gRPC status: the user's mistakes are INVALID_ARGUMENT with
/// DataFusion's message, the rest INTERNAL.
fn status(e: DataFusionError) -> Status {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(..) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// Plans `sql` on a new session, refusing anything but queries.
async fn plan(lake: &Lake, sql: &str) -> Result<(SessionContext, LogicalPlan), Status> {
    let ctx = lake
        .session()
        .await
        .map_err(|e| Status::unavailable(format!("cannot open a session on the lake: {e}")))?;
    let plan = ctx.state().create_logical_plan(sql).await.map_err(status)?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| {
            Status::permission_denied(format!("the query surface is read-only: {}", e.find_root()))
        })?;
    Ok((ctx, plan))
}

/// The schema of the rows `sql` returns.
pub(crate) async fn schema(lake: &Lake, sql: &str) -> Result<Schema, Status> {
    let (_, plan) = plan(lake, sql).await?;
    Ok(plan.schema().as_arrow().clone())
}

/// Runs `sql`, streaming its results.
pub(crate) async fn execute(lake: &Lake, sql: &str) -> Result<DoGetStream, Status> {
    let (ctx, plan) = plan(lake, sql).await?;
    let df = ctx.execute_logical_plan(plan).await.map_err(status)?;
    let batches = df.execute_stream().await.map_err(status)?;
    let schema = batches.schema();
    let batches = batches.map_err(|e| FlightError::Tonic(Box::new(status(e))));
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Ok(Box::pin(stream))
}
