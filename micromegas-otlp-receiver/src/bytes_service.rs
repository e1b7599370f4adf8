//! The OTLP services over gRPC (`opentelemetry.proto.collector.trace.v1.TraceService`,
//! `opentelemetry.proto.collector.logs.v1.LogsService`,
//! `opentelemetry.proto.collector.metrics.v1.MetricsService`), taking each request's bytes as
//! they arrive (after gzip and the size limit): traces and logs are mapped straight into rows
//! ([`crate::mapping::traces::map_protobuf`], [`crate::mapping::logs::map_protobuf`]) instead
//! of decoding a request message first; metrics are decoded, and identified by the hash of
//! their bytes ([`crate::mapping::metrics::map_protobuf`]). Bytes that are not a request of
//! the service are refused with INVALID_ARGUMENT, and nothing of them is stored.

use crate::collector::Collector;
use crate::mapping::wire::WireError;
use crate::mapping::{logs, metrics, traces};
use crate::rpc_status::unavailable_retry_after;
use crate::{admission::RETRY_AFTER, export, grpc::lake_status, telemetry};
use bytes::{Buf, Bytes};
use micromegas_lake::{Lake, LakeError};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

/// A signal whose requests are mapped from their bytes.
pub trait BytesSignal: Send + Sync + 'static {
    /// The gRPC name of its service.
    const SERVICE: &'static str;
    /// The path of the service's only method, `Export`.
    const EXPORT_PATH: &'static str;
    /// Its name in the collector's telemetry.
    const SIGNAL: &'static str;
    /// A request mapped into rows.
    type Mapped: Send + 'static;
    /// The answer to a request.
    type Response: prost::Message + Default + Send + 'static;
    /// Maps a request's bytes.
    fn map(body: &[u8]) -> Result<Self::Mapped, WireError>;
    /// Stores mapped rows durably.
    fn store(
        lake: Lake,
        mapped: Self::Mapped,
    ) -> impl Future<Output = Result<Self::Response, LakeError>> + Send + 'static;
}

/// OTLP traces.
#[derive(Debug, Clone, Copy)]
pub struct Traces;

impl BytesSignal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: &'static str = "traces";
    type Mapped = traces::MappedTraces;
    type Response = ExportTraceServiceResponse;

    fn map(body: &[u8]) -> Result<Self::Mapped, WireError> {
        traces::map_protobuf(body)
    }

    fn store(
        lake: Lake,
        mapped: Self::Mapped,
    ) -> impl Future<Output = Result<Self::Response, LakeError>> + Send + 'static {
        export::traces(lake, mapped)
    }
}

/// OTLP logs.
#[derive(Debug, Clone, Copy)]
pub struct Logs;

impl BytesSignal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const SIGNAL: &'static str = "logs";
    type Mapped = logs::MappedLogs;
    type Response = ExportLogsServiceResponse;

    fn map(body: &[u8]) -> Result<Self::Mapped, WireError> {
        logs::map_protobuf(body)
    }

    fn store(
        lake: Lake,
        mapped: Self::Mapped,
    ) -> impl Future<Output = Result<Self::Response, LakeError>> + Send + 'static {
        export::logs(lake, mapped)
    }
}

/// OTLP metrics.
#[derive(Debug, Clone, Copy)]
pub struct Metrics;

impl BytesSignal for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const EXPORT_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: &'static str = "metrics";
    type Mapped = metrics::MappedMetrics;
    type Response = ExportMetricsServiceResponse;

    fn map(body: &[u8]) -> Result<Self::Mapped, WireError> {
        metrics::map_protobuf(body)
    }

    fn store(
        lake: Lake,
        mapped: Self::Mapped,
    ) -> impl Future<Output = Result<Self::Response, LakeError>> + Send + 'static {
        export::metrics(lake, mapped)
    }
}

/// Hands over a request's bytes; encodes the answer with prost.
#[derive(Debug)]
struct BytesCodec<S>(PhantomData<S>);

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

impl<S: BytesSignal> Codec for BytesCodec<S> {
    type Encode = S::Response;
    type Decode = Bytes;
    type Encoder = ProstEncoder<S::Response>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Admits, maps and stores one request given as bytes; answers once the rows are durable.
pub async fn export<S: BytesSignal>(
    collector: &Collector,
    body: Bytes,
) -> Result<S::Response, Status> {
    let admitted = collector
        .admit("grpc", S::SIGNAL, body.len())
        .map_err(|busy| unavailable_retry_after(busy.to_string(), RETRY_AFTER))?;
    let mapped = S::map(&body).map_err(|e| {
        let message = format!("invalid OTLP {} request: {e}", S::SIGNAL);
        telemetry::refused("grpc", S::SIGNAL, "invalid", &message);
        Status::invalid_argument(message)
    })?;
    // The bytes are not needed past the mapping: freed before the wait for the write.
    drop(body);
    let store = S::store(collector.lake().clone(), mapped);
    collector.write(admitted, store).await.map_err(|e| {
        telemetry::not_stored("grpc", S::SIGNAL, &e);
        lake_status(e)
    })
}

struct ExportSvc<S>(Collector, PhantomData<S>);

impl<S: BytesSignal> tonic::server::UnaryService<Bytes> for ExportSvc<S> {
    type Response = S::Response;
    type Future = BoxFuture<Response<S::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let collector = self.0.clone();
        Box::pin(async move {
            export::<S>(&collector, request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

/// The service of signal `S` for one collector: gzip accepted (and used for answers when the
/// client accepts it), requests over the collector's size limit refused with
/// RESOURCE_EXHAUSTED.
#[derive(Debug)]
pub struct BytesServer<S> {
    collector: Collector,
    signal: PhantomData<S>,
}

impl<S> Clone for BytesServer<S> {
    fn clone(&self) -> Self {
        Self {
            collector: self.collector.clone(),
            signal: PhantomData,
        }
    }
}

impl<S: BytesSignal> BytesServer<S> {
    /// The service, writing into `collector`'s lake.
    pub fn new(collector: Collector) -> Self {
        Self {
            collector,
            signal: PhantomData,
        }
    }
}

impl<S, B> Service<http::Request<B>> for BytesServer<S>
where
    S: BytesSignal,
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
        if req.uri().path() != S::EXPORT_PATH {
            return Box::pin(async move {
                let message = format!("no such method; {} has only Export", S::SERVICE);
                Ok(Status::unimplemented(message).into_http())
            });
        }
        let max = collector.options().max_message_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(BytesCodec::<S>(PhantomData))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc
                .unary(ExportSvc::<S>(collector, PhantomData), req)
                .await)
        })
    }
}

impl<S: BytesSignal> tonic::server::NamedService for BytesServer<S> {
    const NAME: &'static str = S::SERVICE;
}
