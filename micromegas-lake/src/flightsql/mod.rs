//! A FlightSQL server on the lake, for Grafana's FlightSQL datasource, ADBC and pyarrow.
//!
//! It speaks what those clients call: the handshake (HTTP Basic with the token as password,
//! or a bearer token), statement execution (`GetFlightInfo` then `DoGet`, results streamed
//! batch by batch), prepared statements without parameters, `GetTables` (with Arrow schemas),
//! `GetCatalogs`, `GetDbSchemas`, `GetTableTypes` and `GetSqlInfo`. The SQL is the lake's
//! (every table and function of [`Lake::session`]) and read-only: DDL, DML (`INSERT`,
//! `COPY ... TO`) and `SET` are refused, except to a caller presenting one of the admin tokens
//! ([`FlightSqlServer::with_admin_tokens`]).
//!
//! ```no_run
//! use micromegas_lake::flightsql::{FlightSqlServer, DEFAULT_ADDR};
//! use micromegas_lake::{auth::Tokens, Lake, LakeOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let lake = Lake::open("./micromegas-lake", LakeOptions::default()).await?;
//! let listener = tokio::net::TcpListener::bind(DEFAULT_ADDR).await?;
//! let server = FlightSqlServer::new(lake, Tokens::new(["secret".to_owned()]));
//! server.serve(listener, None, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod handshake;
mod metadata;
mod statement;

use crate::auth::Tokens;
use crate::Lake;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    Ticket,
};
use futures::Stream;
use prost::Message;
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

/// The default address of the FlightSQL server.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// The FlightSQL service over one lake.
#[derive(Debug, Clone)]
pub struct FlightSqlServer {
    lake: Lake,
    tokens: Tokens,
    admin: Tokens,
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Queries only.
    Read,
    /// Any statement (an admin token was presented).
    Admin,
}

type DoGetStream =
    <FlightSqlServer as arrow_flight::flight_service_server::FlightService>::DoGetStream;

impl FlightSqlServer {
    /// Serves `lake`; with `tokens` set, every call needs one of them.
    pub fn new(lake: Lake, tokens: Tokens) -> Self {
        Self {
            lake,
            tokens,
            admin: Tokens::default(),
        }
    }

    /// Lets callers presenting one of `admin` run any statement (DDL, DML, `COPY ... TO`,
    /// `SET`); everyone else stays read-only. No admin when empty (the default).
    pub fn with_admin_tokens(mut self, admin: Tokens) -> Self {
        self.admin = admin;
        self
    }

    /// What the `Authorization` header value `header` allows; `None`: refused.
    pub(crate) fn access(&self, header: Option<&str>) -> Option<Access> {
        if !self.admin.is_open() && self.admin.accepts(header) {
            Some(Access::Admin)
        } else if self.tokens.accepts(header) {
            Some(Access::Read)
        } else {
            None
        }
    }

    /// The tonic service, to mount beside others.
    pub fn service(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
    }

    /// Serves FlightSQL on `listener` until `shutdown` completes, then finishes the calls in
    /// flight. With `tls`, only TLS connections are accepted (it should offer
    /// [`crate::tls::ALPN_H2`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<crate::tls::ServerTls>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let router = tonic::transport::Server::builder().add_service(self.service());
        crate::tls::serve_grpc(router, listener, tls, shutdown).await
    }

    /// Refuses a call without an accepted bearer token; else what it may do.
    fn check<T>(&self, request: &Request<T>) -> Result<Access, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.access(header).ok_or_else(|| {
            Status::unauthenticated(
                "missing or wrong token: send `authorization: Bearer <token>` (or do the \
                 handshake with the token as the password)",
            )
        })
    }

    /// A FlightInfo whose one endpoint's ticket is `ticket`, for results of `schema`.
    fn info(
        schema: &arrow::datatypes::Schema,
        ticket: Any,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(ticket.encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        handshake::answer(|h| self.access(Some(h)).is_some(), request.metadata())
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let access = self.check(&request)?;
        let schema = statement::schema(&self.lake, &query.query, access).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info(&schema, ticket.as_any(), request.into_inner())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let access = self.check(&request)?;
        let sql = statement::handle_sql(&query.prepared_statement_handle)?;
        let schema = statement::schema(&self.lake, sql, access).await?;
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder().schema();
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder().schema();
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder(metadata::sql_info()?).schema();
        Self::info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let access = self.check(&request)?;
        let sql = statement::handle_sql(&ticket.statement_handle)?;
        Ok(Response::new(
            statement::execute(&self.lake, sql, access).await?,
        ))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let access = self.check(&request)?;
        let sql = statement::handle_sql(&query.prepared_statement_handle)?;
        Ok(Response::new(
            statement::execute(&self.lake, sql, access).await?,
        ))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let mut builder = query.into_builder();
        builder.append(metadata::CATALOG);
        metadata::one_batch(builder.build())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let mut builder = query.into_builder();
        builder.append(metadata::CATALOG, metadata::SCHEMA);
        metadata::one_batch(builder.build())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let views = metadata::views(&self.lake).await?;
        metadata::one_batch(metadata::tables(query, &views))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let mut builder = query.into_builder();
        builder.append(metadata::TABLE_TYPE);
        builder.append(metadata::VIEW_TYPE);
        metadata::one_batch(builder.build())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        metadata::one_batch(query.into_builder(metadata::sql_info()?).build())
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<arrow_flight::sql::DoPutPreparedStatementResult, Status> {
        self.check(&request)?;
        Err(Status::unimplemented(
            "prepared statements take no parameters here: put the values in the SQL text",
        ))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let access = self.check(&request)?;
        let schema = statement::schema(&self.lake, &query.query, access).await?;
        // The handle is the SQL itself: any server over the same lake can execute it, and
        // there is nothing to keep or to close.
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema: metadata::ipc_schema(&schema)?,
            parameter_schema: metadata::ipc_schema(&arrow::datatypes::Schema::empty())?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.check(&request).map(|_| ())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
