//! The OTLP trace service over gRPC (`opentelemetry.proto.collector.trace.v1.TraceService`),
//! taking each request's bytes as they arrive (after gzip and the size limit) and mapping them
//! straight into rows ([`crate::mapping::traces::map_protobuf`]), instead of decoding a
//! request message first. Bytes that are not an OTLP trace request are refused with
//! INVALID_ARGUMENT, and nothing of them is stored.

use crate::collector::Collector;
use crate::mapping::traces;
use crate::rpc_status::unavailable_retry_after;
use crate::{admission::RETRY_AFTER, export, grpc::lake_status, telemetry};
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

/// The gRPC name of the service.
pub const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
/// The path of its only method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Hands over a request's bytes; encodes the answer with prost.
#[derive(Debug, Clone, Copy, Default)]
struct BytesCodec;

/// A request message's bytes, as received.
#[derive(Debug, Clone, Copy, Default)]
struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for BytesCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Admits, maps and stores one request given as bytes; answers once the rows are durable.
pub async fn export(
    collector: &Collector,
    body: Bytes,
) -> Result<ExportTraceServiceResponse, Status> {
    let _admitted = collector
        .admit("grpc", "traces", body.len())
        .map_err(|busy| unavailable_retry_after(busy.to_string(), RETRY_AFTER))?;
    let mapped = traces::map_protobuf(&body).map_err(|e| {
        let message = format!("invalid OTLP trace request: {e}");
        telemetry::refused("grpc", "traces", "invalid", &message);
        Status::invalid_argument(message)
    })?;
    // The bytes are not needed past the mapping (see `export::store_request`).
    drop(body);
    export::traces(collector.lake(), mapped).await.map_err(|e| {
        telemetry::refused("grpc", "traces", "lake", &e.to_string());
        lake_status(e)
    })
}

struct ExportSvc(Collector);

impl tonic::server::UnaryService<Bytes> for ExportSvc {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let collector = self.0.clone();
        Box::pin(async move {
            export(&collector, request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

/// The trace service of one collector: gzip accepted (and used for answers when the client
/// accepts it), requests over the collector's size limit refused with RESOURCE_EXHAUSTED.
#[derive(Debug, Clone)]
pub struct TraceServer {
    collector: Collector,
}

impl TraceServer {
    /// The service, writing into `collector`'s lake.
    pub fn new(collector: Collector) -> Self {
        Self { collector }
    }
}

impl<B> Service<http::Request<B>> for TraceServer
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
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                Ok(
                    Status::unimplemented(format!("no such method; {SERVICE} has only Export"))
                        .into_http(),
                )
            });
        }
        let max = collector.options().max_message_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(BytesCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc.unary(ExportSvc(collector), req).await)
        })
    }
}

impl tonic::server::NamedService for TraceServer {
    const NAME: &'static str = SERVICE;
}
