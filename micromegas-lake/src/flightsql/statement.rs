//! Statements: planned on a fresh session of the lake (read-only unless the caller is an
//! admin), executed as a stream of Flight data (one batch at a time, never the whole result
//! in memory).

use super::{Access, DoGetStream};
use crate::{Lake, LakeError};
use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use futures::TryStreamExt;
use tonic::Status;

/// The SQL of a statement handle or ticket (the handle is the SQL text).
pub(crate) fn handle_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL text"))
}

/// A lake error as a gRPC status: the user's mistakes are INVALID_ARGUMENT with
/// DataFusion's message, writes PERMISSION_DENIED, an unreachable lake UNAVAILABLE, the rest
/// INTERNAL.
fn status(e: LakeError) -> Status {
    match &e {
        LakeError::Query(q) => query_status(q),
        LakeError::ReadOnly(_) => Status::permission_denied(format!(
            "{e} (only a caller with one of the server's admin tokens may run it)"
        )),
        e if e.is_retryable() => Status::unavailable(e.to_string()),
        e => Status::internal(e.to_string()),
    }
}

fn query_status(e: &DataFusionError) -> Status {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(..) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The plan of `sql` as `access` allows.
async fn plan(lake: &Lake, sql: &str, access: Access) -> Result<DataFrame, Status> {
    match access {
        Access::Read => lake.query(sql).await,
        Access::Admin => lake.query_as_admin(sql).await,
    }
    .map_err(status)
}

/// The schema of the rows `sql` returns.
pub(crate) async fn schema(lake: &Lake, sql: &str, access: Access) -> Result<Schema, Status> {
    let df = plan(lake, sql, access).await?;
    Ok(df.schema().as_arrow().clone())
}

/// Runs `sql`, streaming its results.
pub(crate) async fn execute(lake: &Lake, sql: &str, access: Access) -> Result<DoGetStream, Status> {
    let df = plan(lake, sql, access).await?;
    let batches = df.execute_stream().await.map_err(|e| query_status(&e))?;
    let schema = batches.schema();
    let batches = batches.map_err(|e| FlightError::Tonic(Box::new(query_status(&e))));
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Ok(Box::pin(stream))
}
