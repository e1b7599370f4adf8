//! The gRPC server: OTLP traces, logs and metrics, and native blocks. gzip accepted; the
//! message size limit applies after decompression; invalid items are reported through
//! `partial_success` while the valid ones of the same request are kept; over the in-flight
//! budget a request is refused with UNAVAILABLE and `RetryInfo`.

use crate::admission::RETRY_AFTER;
use crate::bytes_service::{BytesServer, Logs, Metrics, Traces};
use crate::collector::Collector;
use crate::native::NativeIngestServer;
use crate::rpc_status::unavailable_retry_after;
use micromegas_lake::LakeError;
use tonic::service::interceptor::InterceptedService;
use tonic::Status;

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
        let tokens = self.collector.options().tokens.clone();
        let native = NativeIngestServer::new(self.collector.clone());
        // OTLP requests are taken as bytes (see `bytes_service`).
        let traces = BytesServer::<Traces>::new(self.collector.clone());
        let logs = BytesServer::<Logs>::new(self.collector.clone());
        let metrics = BytesServer::<Metrics>::new(self.collector);
        tonic::service::Routes::new(InterceptedService::new(traces, tokens.interceptor()))
            .add_service(InterceptedService::new(logs, tokens.interceptor()))
            .add_service(InterceptedService::new(metrics, tokens.interceptor()))
            .add_service(InterceptedService::new(native, tokens.interceptor()))
    }
}

/// Serves gRPC (OTLP and native blocks) on `listener` until `shutdown` completes; requests in
/// flight finish. With `tls`, only TLS connections are accepted (it should offer
/// [`micromegas_lake::tls::ALPN_H2`], which gRPC clients require).
pub async fn serve(
    collector: Collector,
    listener: tokio::net::TcpListener,
    tls: Option<micromegas_lake::tls::ServerTls>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let router =
        tonic::transport::Server::builder().add_routes(OtlpServices::new(collector).router());
    micromegas_lake::tls::serve_grpc(router, listener, tls, shutdown).await
}
