//! OTLP/HTTP (`/v1/traces`, `/v1/logs`, `/v1/metrics`; protobuf or JSON, optionally gzip),
//! native block ingest (`/v1/native`, a transit batch as sent by the network sink) and the
//! health endpoint (`/health`). Errors follow OTLP/HTTP: 400 for bad data, 413 for a body over
//! the limit (checked after decompression), 415 for an unsupported content type or encoding,
//! 503 with `Retry-After` when the lake cannot take the data now; the body is a `Status`
//! message in the request's encoding.

use crate::auth::Tokens;
use crate::export;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use micromegas_lake::{Lake, LakeError};
use prost::Message;
use std::io::Read;

/// Content type of native transit batches.
pub const NATIVE_CONTENT_TYPE: &str = "application/x-micromegas-transit";

#[derive(Clone)]
struct HttpState {
    lake: Lake,
    max_bytes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
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
            serde_json::to_vec(value).unwrap_or_default(),
        )
            .into_response(),
    }
}

fn lake_error(e: LakeError, enc: Encoding) -> Response {
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

/// Decodes an OTLP request of either encoding.
fn request<R>(headers: &HeaderMap, body: Bytes, max: usize) -> Result<(R, Encoding), Reject>
where
    R: Message + Default + serde::de::DeserializeOwned,
{
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
    let bytes = read_body(headers, body, max, enc)?;
    let decoded = match enc {
        Encoding::Protobuf => R::decode(&bytes[..]).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
    };
    decoded.map(|r| (r, enc)).map_err(|e| {
        Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid OTLP request: {e}"),
            enc,
        )
    })
}

async fn traces(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    match request(&headers, body, s.max_bytes) {
        Ok((req, enc)) => match export::traces(&s.lake, &req).await {
            Ok(reply) => encode(&reply, enc),
            Err(e) => lake_error(e, enc),
        },
        Err(r) => r.into_response(),
    }
}

async fn logs(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    match request(&headers, body, s.max_bytes) {
        Ok((req, enc)) => match export::logs(&s.lake, &req).await {
            Ok(reply) => encode(&reply, enc),
            Err(e) => lake_error(e, enc),
        },
        Err(r) => r.into_response(),
    }
}

async fn metrics(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    match request(&headers, body, s.max_bytes) {
        Ok((req, enc)) => match export::metrics(&s.lake, &req).await {
            Ok(reply) => encode(&reply, enc),
            Err(e) => lake_error(e, enc),
        },
        Err(r) => r.into_response(),
    }
}

/// What the native endpoint answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct NativeReply {
    #[prost(uint64, tag = "1")]
    blocks_written: u64,
    #[prost(uint64, tag = "2")]
    blocks_skipped: u64,
}

async fn native(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let enc = Encoding::Json;
    let ct = content_type(&headers);
    if ct != NATIVE_CONTENT_TYPE && ct != "application/octet-stream" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type '{ct}'; use {NATIVE_CONTENT_TYPE}"),
            enc,
        );
    }
    let bytes = match read_body(&headers, body, s.max_bytes, enc) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match s.lake.write_encoded(&bytes).await {
        Ok(o) => encode(
            &NativeReply {
                blocks_written: o.blocks_written,
                blocks_skipped: o.blocks_skipped,
            },
            enc,
        ),
        Err(LakeError::InvalidBatch(e)) => error(
            StatusCode::BAD_REQUEST,
            format!("invalid transit batch: {e}"),
            enc,
        ),
        Err(e) => lake_error(e, enc),
    }
}

async fn health(State(s): State<HttpState>) -> Response {
    match s.lake.catalog().schema_version().await {
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
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
            enc,
        )
    }
}

/// The HTTP routes, writing into `lake`, bodies limited to `max_bytes` (after decompression),
/// ingest requiring one of `tokens` (health does not).
pub fn router(lake: Lake, max_bytes: usize, tokens: Tokens) -> Router {
    let state = HttpState { lake, max_bytes };
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
        .with_state(state)
}

/// Serves HTTP on `listener` until `shutdown` completes; requests in flight finish.
pub async fn serve(
    lake: Lake,
    listener: tokio::net::TcpListener,
    max_bytes: usize,
    tokens: Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(lake, max_bytes, tokens))
        .with_graceful_shutdown(shutdown)
        .await
}
