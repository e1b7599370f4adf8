//! The OTLP/gRPC services: traces, logs and metrics. gzip accepted; the message size
//! limit applies after decompression; invalid items are reported through `partial_success`
//! while the valid ones of the same request are kept.

use crate::auth::Tokens;
use crate::export;
use micromegas_lake::{Lake, LakeError};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// Default largest request, after decompression: 64 MiB, as the OTLP specification
/// recommends.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The OTLP services, writing into one lake.
#[derive(Debug, Clone)]
pub struct OtlpServices {
    lake: Lake,
}

fn status(e: LakeError) -> Status {
    if e.is_retryable() {
        Status::unavailable(format!("the lake cannot take the data now, retry: {e}"))
    } else {
        Status::internal(format!("the lake refused the data: {e}"))
    }
}

impl OtlpServices {
    /// Services writing into `lake`.
    pub fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The tonic router with every service, gzip accepted, `max_message_bytes` enforced,
    /// `tokens` required.
    pub fn router(self, max_message_bytes: usize, tokens: &Tokens) -> tonic::service::Routes {
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes);
        let logs = LogsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes);
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes);
        tonic::service::Routes::new(InterceptedService::new(traces, tokens.interceptor()))
            .add_service(InterceptedService::new(logs, tokens.interceptor()))
            .add_service(InterceptedService::new(metrics, tokens.interceptor()))
    }
}

#[tonic::async_trait]
impl TraceService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let reply = export::traces(&self.lake, &request.into_inner()).await;
        reply.map(Response::new).map_err(status)
    }
}

#[tonic::async_trait]
impl LogsService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let reply = export::logs(&self.lake, &request.into_inner()).await;
        reply.map(Response::new).map_err(status)
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let reply = export::metrics(&self.lake, &request.into_inner()).await;
        reply.map(Response::new).map_err(status)
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes; requests in flight finish.
pub async fn serve(
    lake: Lake,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    tokens: Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_routes(OtlpServices::new(lake).router(max_message_bytes, &tokens))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
