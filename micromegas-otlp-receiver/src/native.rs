//! Native block ingest over gRPC: `micromegas.ingest.v1.NativeIngest/Write`, served beside
//! the OTLP services, fed by the tracing layer's network sink. The reply comes once the
//! blocks are durable in the lake; blocks already there (a retry) are skipped.

use crate::admission::{Busy, RETRY_AFTER};
use crate::collector::Collector;
use crate::rpc_status::unavailable_retry_after;
use crate::telemetry;
use bytes::Bytes;
use micromegas_lake::LakeError;
use micromegas_tracing_layer::network::proto::{WriteReply, WriteRequest, SERVICE, WRITE_PATH};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};

/// The `NativeIngest` gRPC service.
#[derive(Debug, Clone)]
pub struct NativeIngestServer {
    collector: Collector,
}

impl NativeIngestServer {
    /// The service, writing into `collector`'s lake.
    pub fn new(collector: Collector) -> Self {
        Self { collector }
    }
}

/// Why a native batch was not written.
#[derive(Debug)]
pub enum Refusal {
    /// The in-flight budget is spent: retry later.
    Busy(Busy),
    /// The bytes are not a transit batch: never retry.
    Invalid(String),
    /// The lake did not take it.
    Lake(LakeError),
}

/// Admits and writes one encoded native batch (for either transport, as a write of the
/// collector: see [`Collector::write`]); answered once durable.
/// Records the outcome in the collector's telemetry.
pub async fn ingest(
    collector: &Collector,
    transport: &'static str,
    batch: Bytes,
) -> Result<WriteReply, Refusal> {
    let admitted = collector
        .admit(transport, "native", batch.len())
        .map_err(Refusal::Busy)?;
    let lake = collector.lake().clone();
    let write = async move { lake.write_encoded(&batch).await };
    match collector.write(admitted, write).await {
        Ok(o) => {
            telemetry::stored("native", o.events_written, 0, None);
            Ok(WriteReply {
                blocks_written: o.blocks_written,
                blocks_skipped: o.blocks_skipped,
            })
        }
        Err(LakeError::InvalidBatch(e)) => {
            let message = format!("invalid transit batch: {e}");
            telemetry::refused(transport, "native", "invalid", &message);
            Err(Refusal::Invalid(message))
        }
        Err(e) => {
            telemetry::not_stored(transport, "native", &e);
            Err(Refusal::Lake(e))
        }
    }
}

/// Writes one native batch received over gRPC.
pub async fn write(collector: &Collector, request: WriteRequest) -> Result<WriteReply, Status> {
    ingest(collector, "grpc", request.batch)
        .await
        .map_err(|r| match r {
            Refusal::Busy(b) => unavailable_retry_after(b.to_string(), RETRY_AFTER),
            Refusal::Invalid(m) => Status::invalid_argument(m),
            Refusal::Lake(e) => crate::grpc::lake_status(e),
        })
}

struct WriteSvc(Collector);

impl tonic::server::UnaryService<WriteRequest> for WriteSvc {
    type Response = WriteReply;
    type Future = BoxFuture<Response<WriteReply>, Status>;

    fn call(&mut self, request: Request<WriteRequest>) -> Self::Future {
        let collector = self.0.clone();
        Box::pin(async move {
            write(&collector, request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for NativeIngestServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let collector = self.collector.clone();
        if req.uri().path() != WRITE_PATH {
            return Box::pin(async move {
                Ok(
                    Status::unimplemented(format!("no such method; {SERVICE} has only Write"))
                        .into_http(),
                )
            });
        }
        let max = collector.options().max_message_bytes;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<WriteReply, WriteRequest>::default();
            let mut grpc =
                tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(WriteSvc(collector), req).await)
        })
    }
}

impl tonic::server::NamedService for NativeIngestServer {
    const NAME: &'static str = SERVICE;
}
