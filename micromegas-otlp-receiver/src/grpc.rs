//! The OTLP/gRPC services: traces, logs and metrics. gzip accepted; the message size
//! limit applies after decompression; invalid items are reported through `partial_success`
//! while the valid ones of the same request are kept.

use crate::ingest::store;
use crate::mapping::{logs, metrics, traces, Mapped};
use micromegas_lake::tables::{log_batch, measure_batch, span_batch};
use micromegas_lake::{Lake, LakeError};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
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

fn message<R>(m: &Mapped<R>) -> String {
    format!(
        "{} item(s) rejected; first: {}",
        m.rejected,
        m.first_error.as_deref().unwrap_or_default()
    )
}

impl OtlpServices {
    /// Services writing into `lake`.
    pub fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The tonic router with every service, gzip accepted, `max_message_bytes` enforced.
    pub fn router(self, max_message_bytes: usize) -> tonic::service::Routes {
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
        tonic::service::Routes::new(traces)
            .add_service(logs)
            .add_service(metrics)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let req = request.into_inner();
        let hash = xxhash_rust::xxh3::xxh3_128(&req.encode_to_vec());
        let mapped = traces::map(&req);
        store(&self.lake, &mapped, span_batch, hash)
            .await
            .map_err(status)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (mapped.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: mapped.rejected as i64,
                error_message: message(&mapped),
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let req = request.into_inner();
        let hash = xxhash_rust::xxh3::xxh3_128(&req.encode_to_vec());
        let mapped = logs::map(&req);
        store(&self.lake, &mapped, log_batch, hash)
            .await
            .map_err(status)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (mapped.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: mapped.rejected as i64,
                error_message: message(&mapped),
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let req = request.into_inner();
        let hash = xxhash_rust::xxh3::xxh3_128(&req.encode_to_vec());
        let mapped = metrics::map(&req);
        store(&self.lake, &mapped, measure_batch, hash)
            .await
            .map_err(status)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (mapped.rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: mapped.rejected as i64,
                error_message: message(&mapped),
            }),
        }))
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes; requests in flight finish.
pub async fn serve(
    lake: Lake,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_routes(OtlpServices::new(lake).router(max_message_bytes))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
