//! The gRPC server: OTLP traces, logs and metrics, and native blocks. gzip accepted; the
//! message size limit applies after decompression; invalid items are reported through
//! `partial_success` while the valid ones of the same request are kept; over the in-flight
//! budget a request is refused with UNAVAILABLE and `RetryInfo`.

use crate::admission::RETRY_AFTER;
use crate::bytes_service::{BytesServer, Logs, Traces};
use crate::collector::Collector;
use crate::native::NativeIngestServer;
use crate::rpc_status::unavailable_retry_after;
use crate::{export, telemetry};
use micromegas_lake::{Lake, LakeError};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// The OTLP services, writing into one collector's lake.
#[derive(Debug, Clone)]
pub struct OtlpServices {
    collector: Collector,
}

/// The gRPC status of a failed lake write.
pub(crate) fn lake_status(e: LakeError) -> Status {
    if e.is_retryable() {
        unavailable_retry_after(
            format!("the lake cannot take the data now, retry: {e}"),
            RETRY_AFTER,
        )
    } else {
        Status::internal(format!("the lake refused the data: {e}"))
    }
}

impl OtlpServices {
    /// Services of `collector`.
    pub fn new(collector: Collector) -> Self {
        Self { collector }
    }

    /// The tonic router with every service (OTLP traces, logs, metrics, and native blocks),
    /// gzip accepted on OTLP, the message size limit and the tokens of the collector enforced.
    pub fn router(self) -> tonic::service::Routes {
        let max = self.collector.options().max_message_bytes;
        let tokens = self.collector.options().tokens.clone();
        let native = NativeIngestServer::new(self.collector.clone());
        // Traces and logs are read from their bytes (see `bytes_service`); metrics are decoded.
        let traces = BytesServer::<Traces>::new(self.collector.clone());
        let logs = BytesServer::<Logs>::new(self.collector.clone());
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        tonic::service::Routes::new(InterceptedService::new(traces, tokens.interceptor()))
            .add_service(InterceptedService::new(logs, tokens.interceptor()))
            .add_service(InterceptedService::new(metrics, tokens.interceptor()))
            .add_service(InterceptedService::new(native, tokens.interceptor()))
    }

    /// Admits, stores and answers one OTLP request.
    async fn export<R: Message, A>(
        &self,
        signal: &'static str,
        request: Request<R>,
        store: impl AsyncFnOnce(&Lake, R) -> Result<A, LakeError>,
    ) -> Result<Response<A>, Status> {
        let req = request.into_inner();
        let _admitted = self
            .collector
            .admit("grpc", signal, req.encoded_len())
            .map_err(|busy| unavailable_retry_after(busy.to_string(), RETRY_AFTER))?;
        match store(self.collector.lake(), req).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(e) => {
                telemetry::refused("grpc", signal, "lake", &e.to_string());
                Err(lake_status(e))
            }
        }
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpServices {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        OtlpServices::export(self, "metrics", request, export::metrics).await
    }
}

/// Serves gRPC (OTLP and native blocks) on `listener` until `shutdown` completes; requests in
/// flight finish.
pub async fn serve(
    collector: Collector,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_routes(OtlpServices::new(collector).router())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
