//! One export per signal, shared by the gRPC and HTTP servers: map, store durably, answer
//! with the partial success of what was rejected.

use crate::ingest::store;
use crate::mapping::logs::MappedLogs;
use crate::mapping::metrics::MappedMetrics;
use crate::mapping::traces::MappedTraces;
use crate::mapping::Mapped;
use crate::telemetry;
use micromegas_lake::{Lake, LakeError};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

fn message(m: &Mapped) -> String {
    format!(
        "{} item(s) rejected; first: {}",
        m.rejected,
        m.first_error.as_deref().unwrap_or_default()
    )
}

/// Stores the rows of a request, records them in the collector's telemetry, and returns what
/// was rejected (count and message) for the response's partial success.
async fn store_mapped(
    lake: &Lake,
    signal: &'static str,
    mapped: &Mapped,
    identity: u128,
) -> Result<Option<(i64, String)>, LakeError> {
    store(lake, mapped, identity).await?;
    let first_error = mapped.first_error.as_deref();
    telemetry::stored(
        signal,
        mapped.row_count() as u64,
        mapped.rejected,
        first_error,
    );
    Ok((mapped.rejected > 0).then(|| (mapped.rejected as i64, message(mapped))))
}

/// Stores the spans of a request, mapped from its bytes (see [`crate::mapping::traces::map_protobuf`]).
pub async fn traces(
    lake: Lake,
    request: MappedTraces,
) -> Result<ExportTraceServiceResponse, LakeError> {
    let rejected = store_mapped(&lake, "traces", &request.mapped, request.identity).await?;
    Ok(ExportTraceServiceResponse {
        partial_success: rejected.map(|(n, error_message)| ExportTracePartialSuccess {
            rejected_spans: n,
            error_message,
        }),
    })
}

/// Stores the log records of a request, mapped from its bytes (see
/// [`crate::mapping::logs::map_protobuf`]).
pub async fn logs(lake: Lake, request: MappedLogs) -> Result<ExportLogsServiceResponse, LakeError> {
    let rejected = store_mapped(&lake, "logs", &request.mapped, request.identity).await?;
    Ok(ExportLogsServiceResponse {
        partial_success: rejected.map(|(n, error_message)| ExportLogsPartialSuccess {
            rejected_log_records: n,
            error_message,
        }),
    })
}

/// Stores the data points of a request (see [`crate::mapping::metrics::map_protobuf`]).
pub async fn metrics(
    lake: Lake,
    request: MappedMetrics,
) -> Result<ExportMetricsServiceResponse, LakeError> {
    let rejected = store_mapped(&lake, "metrics", &request.mapped, request.identity).await?;
    Ok(ExportMetricsServiceResponse {
        partial_success: rejected.map(|(n, error_message)| ExportMetricsPartialSuccess {
            rejected_data_points: n,
            error_message,
        }),
    })
}
