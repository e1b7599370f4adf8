//! Any OTLP request body (protobuf, or JSON through the protobuf bytes the collector makes of
//! it, for each signal) that decodes must map to rows without a panic (trace and logs
//! requests, mapped from their bytes, are refused exactly when prost refuses them): every span
//! and log record either becomes a row or is counted as rejected (nothing silently lost), and
//! the rows always build the table's Arrow batch and encode as its Parquet partition.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromegas_lake::materialize::encode_partition;
use micromegas_lake::ViewTable;
use micromegas_otlp_receiver::mapping::{logs, metrics, traces, Mapped};
use micromegas_otlp_receiver::otlp_json::{to_protobuf, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes `body` (protobuf bytes) as prost does.
fn decode<T: prost::Message + Default>(body: &[u8]) -> Option<T> {
    T::decode(body).ok()
}

/// Each resource has rows, and its batch encodes as a partition.
fn store(mapped: &Mapped) {
    for (process, rows) in &mapped.groups {
        assert!(!process.process_id.is_empty());
        assert!(rows.num_rows() > 0, "a resource without rows is not kept");
        encode_partition(mapped.table, rows).expect("mapped rows encode as Parquet");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = [Signal::Traces, Signal::Logs, Signal::Metrics][(selector >> 1) as usize % 3];
    // A JSON body goes through the protobuf bytes the HTTP endpoint makes of it.
    let transcoded;
    let body = if selector & 1 == 1 {
        let Ok(bytes) = to_protobuf(signal, body) else {
            return;
        };
        transcoded = bytes;
        &transcoded[..]
    } else {
        body
    };
    match signal {
        Signal::Traces => {
            let decoded = decode::<ExportTraceServiceRequest>(body);
            // The collector maps protobuf trace requests from their bytes: it must refuse
            // exactly what prost refuses, and map what prost decodes.
            let from_bytes = traces::map_protobuf(body);
            assert_eq!(from_bytes.is_ok(), decoded.is_some(), "{from_bytes:?}");
            let Some(req) = decoded else {
                return;
            };
            let sent: usize = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            let mapped = traces::map(&req);
            assert_eq!(mapped.table, ViewTable::Spans);
            assert_eq!(mapped.row_count() + mapped.rejected as usize, sent);
            if let Ok(ours) = from_bytes {
                assert_eq!(ours.mapped.row_count(), mapped.row_count());
                assert_eq!(ours.mapped.rejected, mapped.rejected);
            }
            store(&mapped);
        }
        Signal::Logs => {
            let decoded = decode::<ExportLogsServiceRequest>(body);
            let from_bytes = logs::map_protobuf(body);
            assert_eq!(from_bytes.is_ok(), decoded.is_some(), "{from_bytes:?}");
            let Some(req) = decoded else {
                return;
            };
            let sent: usize = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum();
            let mapped = logs::map(&req);
            assert_eq!(mapped.row_count() + mapped.rejected as usize, sent);
            if let Ok(ours) = from_bytes {
                assert_eq!(ours.mapped.row_count(), mapped.row_count());
                assert_eq!(ours.mapped.rejected, mapped.rejected);
            }
            store(&mapped);
        }
        Signal::Metrics => {
            let Some(req) = decode::<ExportMetricsServiceRequest>(body) else {
                return;
            };
            let mapped = metrics::map(&req);
            store(&mapped);
        }
    }
});
