//! The collector's own telemetry: metrics and logs about its ingest, recorded through the
//! micromegas pipeline (the collector binary writes them straight into its lake, never through
//! its own ingest endpoints). Without a pipeline (a library user that did not start one) these
//! calls cost a check and record nothing.
//!
//! Metrics: `collector.request_bytes` (per request; properties `transport`, `signal`),
//! `collector.inflight_bytes` (at each admission and at the end of each write),
//! `collector.rows` and `collector.rejected_items` (per signal),
//! `collector.refused_requests` (properties `transport`, `signal`, `reason`: `busy`,
//! `invalid`, `too_large`, `unauthenticated`, `lake`, `timeout`).

/// A request admitted.
pub fn request(transport: &'static str, signal: &'static str, bytes: usize, in_flight: usize) {
    micromegas_core::imetric!("collector.request_bytes", "bytes", bytes, "transport" => transport, "signal" => signal);
    inflight_bytes(in_flight);
}

/// Bytes of requests being written: at each admission, and once a write ended (so that the
/// gauge also falls while new requests are refused).
pub fn inflight_bytes(in_flight: usize) {
    micromegas_core::imetric!("collector.inflight_bytes", "bytes", in_flight);
}

/// Rows stored for a request, and items rejected in it (partial success).
pub fn stored(signal: &'static str, rows: u64, rejected: u64, first_error: Option<&str>) {
    micromegas_core::imetric!("collector.rows", "count", rows, "signal" => signal);
    if rejected > 0 {
        micromegas_core::imetric!("collector.rejected_items", "count", rejected, "signal" => signal);
        tracing::warn!(
            signal,
            rejected,
            first_error = first_error.unwrap_or_default(),
            "items rejected (partial success)"
        );
    }
}

/// A request the lake did not store: refused as `timeout` when its write passed the
/// collector's deadline, else as `lake`.
pub fn not_stored(
    transport: &'static str,
    signal: &'static str,
    error: &micromegas_lake::LakeError,
) {
    let reason = match error {
        micromegas_lake::LakeError::TimedOut { .. } => "timeout",
        _ => "lake",
    };
    refused(transport, signal, reason, &error.to_string());
}

/// A request refused as a whole.
pub fn refused(transport: &'static str, signal: &'static str, reason: &'static str, message: &str) {
    micromegas_core::imetric!("collector.refused_requests", "count", 1u64, "transport" => transport, "signal" => signal, "reason" => reason);
    tracing::warn!(transport, signal, reason, message, "request refused");
}
