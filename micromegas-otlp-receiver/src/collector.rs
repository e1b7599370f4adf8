//! What the collector's servers share: the lake, the limits, the accepted tokens and the
//! in-flight budget that turns overload into backpressure.

use crate::admission::{Admission, Admitted, Busy};
use crate::auth::Tokens;
use crate::telemetry;
use micromegas_lake::Lake;

/// Default largest request, after decompression: 64 MiB, as the OTLP specification
/// recommends.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Default budget of request bytes being written at once: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 << 20;

/// Settings of a collector's servers.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Largest request, after decompression (bigger: gRPC RESOURCE_EXHAUSTED / HTTP 413).
    pub max_message_bytes: usize,
    /// Request bytes being written at once before new requests are refused with
    /// UNAVAILABLE + RetryInfo / 503 + Retry-After.
    pub max_inflight_bytes: usize,
    /// Bearer tokens required on ingest (none: open).
    pub tokens: Tokens,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            tokens: Tokens::default(),
        }
    }
}

/// One collector: a lake and the settings its gRPC and HTTP servers apply. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Collector {
    lake: Lake,
    options: CollectorOptions,
    admission: Admission,
}

impl Collector {
    /// A collector writing into `lake`.
    pub fn new(lake: Lake, options: CollectorOptions) -> Self {
        let admission = Admission::new(options.max_inflight_bytes);
        Self {
            lake,
            options,
            admission,
        }
    }

    /// The lake written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The settings.
    pub fn options(&self) -> &CollectorOptions {
        &self.options
    }

    /// Bytes of requests being written now.
    pub fn in_flight_bytes(&self) -> usize {
        self.admission.in_flight_bytes()
    }

    /// Admits a request of `bytes` (decoded size) or refuses it as over the budget; records
    /// either in the collector's own telemetry.
    pub fn admit(
        &self,
        transport: &'static str,
        signal: &'static str,
        bytes: usize,
    ) -> Result<Admitted, Busy> {
        let admitted = self.admission.admit(bytes);
        match &admitted {
            Ok(_) => telemetry::request(transport, signal, bytes, self.in_flight_bytes()),
            Err(busy) => telemetry::refused(transport, signal, "busy", &busy.to_string()),
        }
        admitted
    }
}
