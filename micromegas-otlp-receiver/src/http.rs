//! OTLP/HTTP (`/v1/traces`, `/v1/logs`, `/v1/metrics`; protobuf or JSON, optionally gzip),
//! native block ingest (`/v1/native`, a transit batch as sent by the network sink) and the
//! health endpoint (`/health`). Errors follow OTLP/HTTP: 400 for bad data, 413 for a body over
//! the limit (checked after decompression), 415 for an unsupported content type or encoding,
//! 503 with `Retry-After` when the lake cannot take the data now; the body is a `Status`
//! message in the request's encoding.

use crate::admission::{Admitted, Busy};
use crate::auth::Tokens;
use crate::collector::Collector;
use crate::mapping::logs::{self, MappedLogs};
use crate::mapping::metrics::{self, MappedMetrics};
use crate::mapping::traces::{self, MappedTraces};
use crate::mapping::wire::WireError;
use crate::native::Refusal;
use crate::otlp_json::{self, Signal};
use crate::rpc_status::RpcStatus;
use crate::{export, telemetry};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use micromegas_lake::{Lake, LakeError};
use prost::Message;
use std::future::Future;
use std::io::Read;

/// Content type of native transit batches.
pub const NATIVE_CONTENT_TYPE: &str = "application/x-micromegas-transit";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A refused request: its status and message, answered in the request's encoding.
struct Reject {
    status: StatusCode,
    message: String,
    enc: Encoding,
}

impl Reject {
    fn new(status: StatusCode, message: impl Into<String>, enc: Encoding) -> Self {
        Self {
            status,
            message: message.into(),
            enc,
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.status, self.message, self.enc)
    }
}

fn error(status: StatusCode, message: impl Into<String>, enc: Encoding) -> Response {
    let body = RpcStatus {
        code: match status {
            StatusCode::BAD_REQUEST => 3,          // INVALID_ARGUMENT
            StatusCode::PAYLOAD_TOO_LARGE => 8,    // RESOURCE_EXHAUSTED
            StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
            StatusCode::UNAUTHORIZED => 16,        // UNAUTHENTICATED
            _ => 13,                               // INTERNAL
        },
        message: message.into(),
        details: Vec::new(),
    };
    let mut response = encode(&body, enc).into_response();
    *response.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn encode<T: Message + serde::Serialize>(value: &T, enc: Encoding) -> Response {
    match enc {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            value.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            json_without_nulls(value),
        )
            .into_response(),
    }
}

/// `value` as JSON, its unset fields left out as protobuf's JSON mapping writes them (a full
/// success is `{}`, not `{"partialSuccess":null}`).
fn json_without_nulls<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut json = serde_json::to_value(value).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

fn lake_error(signal: &'static str, e: LakeError, enc: Encoding) -> Response {
    telemetry::not_stored("http", signal, &e);
    lake_response(e, enc)
}

fn lake_response(e: LakeError, enc: Encoding) -> Response {
    if e.is_retryable() {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the lake cannot take the data now, retry: {e}"),
            enc,
        )
    } else {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the lake refused the data: {e}"),
            enc,
        )
    }
}

/// The decompressed body, or the error response.
fn read_body(
    headers: &HeaderMap,
    body: Bytes,
    max: usize,
    enc: Encoding,
) -> Result<Vec<u8>, Reject> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let too_large = || {
        Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {max} bytes (after decompression)"),
            enc,
        )
    };
    match encoding.as_str() {
        "identity" | "" => {
            if body.len() > max {
                return Err(too_large());
            }
            Ok(body.to_vec())
        }
        "gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&body[..]).take(max as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| {
                Reject::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid gzip body: {e}"),
                    enc,
                )
            })?;
            if out.len() > max {
                return Err(too_large());
            }
            Ok(out)
        }
        other => Err(Reject::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding '{other}'; use gzip or none"),
            enc,
        )),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn busy(b: Busy, enc: Encoding) -> Reject {
    Reject::new(StatusCode::SERVICE_UNAVAILABLE, b.to_string(), enc)
}

/// Reads an OTLP request of either encoding with `parse` and admits it into the in-flight
/// budget; a refusal is recorded in the collector's telemetry.
fn request<R>(
    c: &Collector,
    signal: &'static str,
    headers: &HeaderMap,
    body: Bytes,
    parse: impl FnOnce(&[u8], Encoding) -> Result<R, String>,
) -> Decoded<R> {
    let result = decode_request(c, signal, headers, body, parse);
    if let Err(r) = &result {
        let reason = match r.status {
            StatusCode::PAYLOAD_TOO_LARGE => Some("too_large"),
            StatusCode::SERVICE_UNAVAILABLE => None, // recorded by the admission
            _ => Some("invalid"),
        };
        if let Some(reason) = reason {
            telemetry::refused("http", signal, reason, &r.message);
        }
    }
    result
}

type Decoded<R> = Result<(R, Encoding, Admitted), Reject>;

/// A request mapped into rows by `from_bytes`: from its protobuf bytes directly, or from JSON
/// through the protobuf bytes of the same request (one mapping for both encodings).
fn rows<M>(
    bytes: &[u8],
    enc: Encoding,
    signal: Signal,
    from_bytes: fn(&[u8]) -> Result<M, WireError>,
) -> Result<M, String> {
    match enc {
        Encoding::Protobuf => from_bytes(bytes),
        Encoding::Json => {
            let protobuf = otlp_json::to_protobuf(signal, bytes).map_err(|e| e.to_string())?;
            from_bytes(&protobuf)
        }
    }
    .map_err(|e| e.to_string())
}

/// A trace request mapped into rows.
fn trace_rows(bytes: &[u8], enc: Encoding) -> Result<MappedTraces, String> {
    rows(bytes, enc, Signal::Traces, traces::map_protobuf)
}

/// A logs request mapped into rows.
fn log_rows(bytes: &[u8], enc: Encoding) -> Result<MappedLogs, String> {
    rows(bytes, enc, Signal::Logs, logs::map_protobuf)
}

/// A metrics request mapped into rows.
fn metric_rows(bytes: &[u8], enc: Encoding) -> Result<MappedMetrics, String> {
    rows(bytes, enc, Signal::Metrics, metrics::map_protobuf)
}

fn decode_request<R>(
    c: &Collector,
    signal: &'static str,
    headers: &HeaderMap,
    body: Bytes,
    parse: impl FnOnce(&[u8], Encoding) -> Result<R, String>,
) -> Decoded<R> {
    let enc = match content_type(headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return Err(Reject::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type '{other}'; use application/x-protobuf or \
                     application/json"
                ),
                Encoding::Protobuf,
            ))
        }
    };
    let bytes = read_body(headers, body, c.options().max_message_bytes, enc)?;
    let admitted = c
        .admit("http", signal, bytes.len())
        .map_err(|b| busy(b, enc))?;
    parse(&bytes, enc).map(|r| (r, enc, admitted)).map_err(|e| {
        Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid OTLP request: {e}"),
            enc,
        )
    })
}

/// Reads, admits and maps an OTLP request with `parse`, stores it with `store` (as a write of
/// the collector: within its deadline, holding its budget until the write ends), and answers.
async fn otlp_export<R, A, F>(
    c: Collector,
    signal: &'static str,
    headers: HeaderMap,
    body: Bytes,
    parse: impl FnOnce(&[u8], Encoding) -> Result<R, String>,
    store: impl FnOnce(Lake, R) -> F,
) -> Response
where
    A: Message + serde::Serialize + Send + 'static,
    F: Future<Output = Result<A, LakeError>> + Send + 'static,
{
    match request(&c, signal, &headers, body, parse) {
        Ok((rows, enc, admitted)) => match c.write(admitted, store(c.lake().clone(), rows)).await {
            Ok(reply) => encode(&reply, enc),
            Err(e) => lake_error(signal, e, enc),
        },
        Err(r) => r.into_response(),
    }
}

async fn traces(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> Response {
    otlp_export(c, "traces", headers, body, trace_rows, export::traces).await
}

async fn logs(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> Response {
    otlp_export(c, "logs", headers, body, log_rows, export::logs).await
}

async fn metrics(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> Response {
    otlp_export(c, "metrics", headers, body, metric_rows, export::metrics).await
}

/// What the native endpoint answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct NativeReply {
    #[prost(uint64, tag = "1")]
    blocks_written: u64,
    #[prost(uint64, tag = "2")]
    blocks_skipped: u64,
}

async fn native(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> Response {
    let enc = Encoding::Json;
    let ct = content_type(&headers);
    if ct != NATIVE_CONTENT_TYPE && ct != "application/octet-stream" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type '{ct}'; use {NATIVE_CONTENT_TYPE}"),
            enc,
        );
    }
    let bytes = match read_body(&headers, body, c.options().max_message_bytes, enc) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match crate::native::ingest(&c, "http", Bytes::from(bytes)).await {
        Ok(o) => encode(
            &NativeReply {
                blocks_written: o.blocks_written,
                blocks_skipped: o.blocks_skipped,
            },
            enc,
        ),
        Err(Refusal::Busy(b)) => busy(b, enc).into_response(),
        Err(Refusal::Invalid(m)) => error(StatusCode::BAD_REQUEST, m, enc),
        Err(Refusal::Lake(e)) => lake_response(e, enc),
    }
}

async fn health(State(c): State<Collector>) -> Response {
    match c.lake().catalog().schema_version().await {
        Ok(v) => (StatusCode::OK, format!("ok (catalog schema {v})\n")).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("catalog unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn require_token(
    State(tokens): State<Tokens>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if tokens.accepts(header) {
        next.run(request).await
    } else {
        let json = content_type(request.headers()) == "application/json";
        let enc = if json {
            Encoding::Json
        } else {
            Encoding::Protobuf
        };
        telemetry::refused(
            "http",
            "-",
            "unauthenticated",
            "missing or wrong bearer token",
        );
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
            enc,
        )
    }
}

/// The HTTP routes of `collector`: bodies limited to its maximum message size (after
/// decompression), ingest requiring one of its tokens (health does not).
pub fn router(collector: Collector) -> Router {
    let max_bytes = collector.options().max_message_bytes;
    let tokens = collector.options().tokens.clone();
    let ingest = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .route("/v1/native", post(native))
        .layer(DefaultBodyLimit::max(max_bytes))
        .route_layer(axum::middleware::from_fn_with_state(tokens, require_token));
    Router::new()
        .merge(ingest)
        .route("/health", get(health))
        .with_state(collector)
}

/// Serves HTTP on `listener` until `shutdown` completes; requests in flight finish. With
/// `tls`, only TLS connections are accepted (it should offer
/// [`micromegas_lake::tls::ALPN_HTTP1`]).
pub async fn serve(
    collector: Collector,
    listener: tokio::net::TcpListener,
    tls: Option<micromegas_lake::tls::ServerTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            axum::serve(TlsListener(tls.incoming(listener)), router(collector))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router(collector))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// The TLS connections of a listener, for axum.
struct TlsListener(micromegas_lake::tls::TlsIncoming);

impl axum::serve::Listener for TlsListener {
    type Io = micromegas_lake::tls::TlsConnection;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.accept().await {
            Some(accepted) => accepted,
            // The accepting task ends only with the listener: no connection comes any more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}
