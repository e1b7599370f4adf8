//! The answers to FlightSQL's metadata commands: the lake's tables (with their Arrow schemas),
//! its one catalog and schema, and the server's SQL info.

use super::DoGetStream;
use crate::query::CatalogTable;
use crate::tables::ViewTable;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{CommandGetTables, SqlInfo};
use arrow_flight::{IpcMessage, SchemaAsIpc};
use futures::TryStreamExt;
use std::sync::OnceLock;
use tonic::{Response, Status};

/// The catalog the lake's tables are listed under (DataFusion's default).
pub(crate) const CATALOG: &str = "datafusion";
/// The schema the lake's tables are listed under (DataFusion's default).
pub(crate) const SCHEMA: &str = "public";
/// The type of the lake's tables (what Grafana asks for).
pub(crate) const TABLE_TYPE: &str = "BASE TABLE";
/// The type of SQL-defined views.
pub(crate) const VIEW_TYPE: &str = "VIEW";

/// Every table of the lake with its schema.
fn lake_tables() -> Vec<(&'static str, SchemaRef)> {
    CatalogTable::ALL
        .iter()
        .map(|t| (t.name(), t.schema()))
        .chain(ViewTable::ALL.iter().map(|t| (t.name(), t.schema())))
        .collect()
}

/// The `GetTables` answer: the builder applies the client's catalog, schema, name and type
/// filters. `views` are the lake's views with their schemas.
pub(crate) fn tables(
    query: CommandGetTables,
    views: &[(String, SchemaRef)],
) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    for (name, schema) in lake_tables() {
        builder.append(CATALOG, SCHEMA, name, TABLE_TYPE, &schema)?;
    }
    for (name, schema) in views {
        builder.append(CATALOG, SCHEMA, name, VIEW_TYPE, schema)?;
    }
    builder.build()
}

/// The lake's views and their schemas.
pub(crate) async fn views(lake: &crate::Lake) -> Result<Vec<(String, SchemaRef)>, Status> {
    let fail = |e: crate::LakeError| Status::unavailable(format!("cannot list the views: {e}"));
    let ctx = lake.session().await.map_err(fail)?;
    let mut out = Vec::new();
    for view in lake.views().await.map_err(fail)? {
        let provider = ctx
            .table_provider(view.name.as_str())
            .await
            .map_err(|e| Status::internal(format!("view {}: {e}", view.name)))?;
        out.push((view.name, provider.schema()));
    }
    Ok(out)
}

/// What `GetSqlInfo` reports, built once.
pub(crate) fn sql_info() -> Result<&'static SqlInfoData, Status> {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    if let Some(info) = INFO.get() {
        return Ok(info);
    }
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "micromegas");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlIdentifierCase, 1i32);
    b.append(SqlInfo::SqlQuotedIdentifierCase, 3i32);
    let info = b
        .build()
        .map_err(|e| Status::internal(format!("cannot build the SQL info: {e}")))?;
    Ok(INFO.get_or_init(|| info))
}

/// `schema` as an IPC message, the form FlightSQL carries schemas in.
pub(crate) fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: Result<IpcMessage, ArrowError> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes)
        .map_err(|e| Status::internal(format!("cannot encode a schema: {e}")))
}

/// A one-batch result as a Flight stream.
pub(crate) fn one_batch(
    batch: Result<RecordBatch, impl std::fmt::Display>,
) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(format!("cannot build the answer: {e}")))?;
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_filter_by_type_and_name() {
        let view = ("log_stats".to_owned(), std::sync::Arc::new(Schema::empty()));
        let all = tables(
            CommandGetTables {
                table_types: vec![TABLE_TYPE.to_owned()],
                include_schema: true,
                ..Default::default()
            },
            std::slice::from_ref(&view),
        )
        .unwrap();
        assert_eq!(
            all.num_rows(),
            CatalogTable::ALL.len() + ViewTable::ALL.len()
        );
        let spans = tables(
            CommandGetTables {
                table_name_filter_pattern: Some("spans".to_owned()),
                ..Default::default()
            },
            std::slice::from_ref(&view),
        )
        .unwrap();
        assert_eq!(spans.num_rows(), 1);
        let span_tables = tables(
            CommandGetTables {
                table_name_filter_pattern: Some("span%".to_owned()),
                ..Default::default()
            },
            std::slice::from_ref(&view),
        )
        .unwrap();
        assert_eq!(span_tables.num_rows(), 2, "spans and span_intervals");
        let views = tables(
            CommandGetTables {
                table_types: vec![VIEW_TYPE.to_owned()],
                ..Default::default()
            },
            std::slice::from_ref(&view),
        )
        .unwrap();
        assert_eq!(views.num_rows(), 1);
    }
}
