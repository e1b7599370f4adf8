//! The network sink (feature `network`): sends the pipeline's batches to a micromegas
//! collector over gRPC (`micromegas.ingest.v1.NativeIngest/Write`, on the collector's OTLP
//! gRPC port, 4317 by default).
//!
//! The core's flusher already batches blocks (one call per flush period), keeps what was not
//! accepted within its byte budget, retries with exponential backoff and jitter, and flushes
//! on guard drop; this sink adds one reused HTTP/2 connection (re-established when lost), a
//! per-request timeout, an optional bearer token, and the mapping of gRPC errors to retry or
//! drop. A reply comes only once the collector's lake has the blocks durably; block ids make a
//! retried batch idempotent.
//!
//! ```no_run
//! use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
//! use micromegas_tracing_layer::MicromegasLayer;
//! use std::sync::Arc;
//!
//! let sink = NetworkSink::connect("http://127.0.0.1:4317", NetworkOptions::default()).unwrap();
//! let (layer, guard) = MicromegasLayer::builder()
//!     .service_name("checkout")
//!     .sink(Arc::new(sink))
//!     .build()
//!     .unwrap();
//! # drop((layer, guard));
//! ```

pub mod proto;

use micromegas_core::sink::{Sink, SinkError};
use micromegas_core::transit::batch::Batch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

/// Why the network sink could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The collector address is not a usable URL.
    #[error("invalid collector address {url:?}: {reason} (expected e.g. http://127.0.0.1:4317)")]
    Address {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bearer token cannot be sent as an HTTP header value.
    #[error("the auth token contains characters not allowed in an HTTP header")]
    Token,
    /// TLS could not be set up for an https:// collector (the CA certificate given).
    #[error("cannot set up TLS to {url}: {reason}")]
    Tls {
        /// The address given.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The sink's I/O thread could not start.
    #[error("cannot start the network sink's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Settings of a [`NetworkSink`].
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// Bearer token sent as `authorization: Bearer <token>` (the collector's `--auth-token`).
    pub token: Option<String>,
    /// Longest wait for one write, including the collector's durable lake write (10 s).
    pub request_timeout: Duration,
    /// Longest wait to establish the connection (5 s).
    pub connect_timeout: Duration,
    /// For an https:// collector: a CA certificate (PEM) trusted besides the system's, for a
    /// collector whose certificate a private CA signed.
    pub ca_certificate: Option<Vec<u8>>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            token: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            ca_certificate: None,
        }
    }
}

impl NetworkOptions {
    /// Sends `token` as a bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the per-request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Trusts the CA certificate `pem` (besides the system's) for an https:// collector.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }
}

/// A [`Sink`] sending each batch to a collector and returning once the collector has it durably.
pub struct NetworkSink {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    url: String,
    authorization: Option<MetadataValue<Ascii>>,
    warned: AtomicBool,
}

impl std::fmt::Debug for NetworkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSink")
            .field("url", &self.url)
            .finish()
    }
}

impl NetworkSink {
    /// A sink for the collector at `url` (`http://host:port`, the collector's gRPC address;
    /// `https://` for a collector serving TLS, whose certificate the system's CAs or
    /// [`NetworkOptions::ca_certificate`] must trust). Connects lazily: a collector that is
    /// not up yet is retried by the pipeline, nothing fails here.
    pub fn connect(url: &str, options: NetworkOptions) -> Result<Self, NetworkError> {
        let address = |reason: String| NetworkError::Address {
            url: url.to_string(),
            reason,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(address("the scheme must be http:// or https://".into()));
        }
        let mut endpoint =
            Endpoint::from_shared(url.to_string()).map_err(|e| address(e.to_string()))?;
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = &options.ca_certificate {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| NetworkError::Tls {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        }
        let endpoint = endpoint
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let authorization = match &options.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| NetworkError::Token)?,
            ),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("micromegas-network-sink")
            // What the HTTP/2 client emits there (its own `tracing` events) is not recorded:
            // sending it would make more of it, at every flush.
            .on_thread_start(micromegas_core::unrecorded_thread)
            .enable_all()
            .build()?;
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        Ok(Self {
            runtime,
            channel,
            url: url.to_string(),
            authorization,
            warned: AtomicBool::new(false),
        })
    }

    /// The collector address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one encoded batch and waits for the collector's reply.
    pub fn send(&self, encoded: bytes::Bytes) -> Result<proto::WriteReply, Status> {
        let mut request = Request::new(proto::WriteRequest { batch: encoded });
        if let Some(a) = &self.authorization {
            request.metadata_mut().insert("authorization", a.clone());
        }
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        self.runtime.block_on(async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("collector not reachable: {e}")))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(proto::WRITE_PATH);
            let codec =
                tonic_prost::ProstCodec::<proto::WriteRequest, proto::WriteReply>::default();
            grpc.unary(request, path, codec)
                .await
                .map(|r| r.into_inner())
        })
    }

    fn warn_once(&self, message: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "micromegas: the collector at {} refuses batches: {message}",
                self.url
            );
        }
    }
}

/// Whether a gRPC error means the same batch can never be taken (so retrying is pointless).
fn is_permanent(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::OutOfRange
            | Code::FailedPrecondition
    )
}

impl Sink for NetworkSink {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        match self.send(bytes::Bytes::from(batch.encode())) {
            Ok(_) => Ok(()),
            Err(s) if is_permanent(s.code()) => {
                let message = format!("{:?}: {}", s.code(), s.message());
                self.warn_once(&message);
                Err(SinkError::Rejected(message))
            }
            Err(s) => Err(SinkError::Retryable(format!(
                "{:?}: {}",
                s.code(),
                s.message()
            ))),
        }
    }
}
