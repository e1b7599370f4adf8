//! Any OTLP request body (protobuf or JSON, for each signal) that decodes must map to rows
//! without a panic (protobuf trace and logs requests, mapped from their bytes, are refused
//! exactly when prost refuses them): every span and log record either becomes a row or is counted as rejected
//! (nothing silently lost), and the rows always build the table's Arrow batch and encode as
//! its Parquet partition.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromegas_lake::materialize::encode_partition;
use micromegas_lake::ViewTable;
use micromegas_otlp_receiver::mapping::{logs, metrics, traces, Mapped};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes as the HTTP endpoint does: protobuf, or JSON when `json`.
fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    json: bool,
) -> Option<T> {
    if json {
        serde_json::from_slice(body).ok()
    } else {
        T::decode(body).ok()
    }
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
    let json = selector & 1 == 1;
    match (selector >> 1) % 3 {
        0 => {
            let decoded = decode::<ExportTraceServiceRequest>(body, json);
            // The collector maps protobuf trace requests from their bytes: it must refuse
            // exactly what prost refuses, and map what prost decodes.
            let from_bytes = (!json).then(|| traces::map_protobuf(body));
            if let Some(ours) = &from_bytes {
                assert_eq!(ours.is_ok(), decoded.is_some(), "{ours:?}");
            }
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
            if let Some(Ok(ours)) = from_bytes {
                assert_eq!(ours.mapped.row_count(), mapped.row_count());
                assert_eq!(ours.mapped.rejected, mapped.rejected);
            }
            store(&mapped);
        }
        1 => {
            let decoded = decode::<ExportLogsServiceRequest>(body, json);
            let from_bytes = (!json).then(|| logs::map_protobuf(body));
            if let Some(ours) = &from_bytes {
                assert_eq!(ours.is_ok(), decoded.is_some(), "{ours:?}");
            }
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
            if let Some(Ok(ours)) = from_bytes {
                assert_eq!(ours.mapped.row_count(), mapped.row_count());
                assert_eq!(ours.mapped.rejected, mapped.rejected);
            }
            store(&mapped);
        }
        _ => {
            let Some(req) = decode::<ExportMetricsServiceRequest>(body, json) else {
                return;
            };
            let mapped = metrics::map(&req);
            store(&mapped);
        }
    }
});
