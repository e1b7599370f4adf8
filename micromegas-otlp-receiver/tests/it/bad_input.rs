//! Bad input on every endpoint: random bytes, truncations and bit flips of valid requests
//! (seeded, so a failure replays) sent to OTLP/HTTP (protobuf and JSON, plain and gzip),
//! native HTTP, OTLP/gRPC and native gRPC, plus gzip bombs. Every answer is one of the
//! documented ones (HTTP 200 with partial success, 400, 413; gRPC OK, INVALID_ARGUMENT,
//! RESOURCE_EXHAUSTED), never a crash, a hang or a 5xx; afterwards the collector still
//! stores good data.

use crate::common::{capture, rows, serve};
use crate::grpc::RawCodec;
use micromegas_otlp_receiver::bytes_service::{BytesSignal, Logs, Metrics, Traces};
use micromegas_otlp_receiver::CollectorOptions;
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;

const CASES: usize = 150;
const MAX_MESSAGE: usize = 1 << 20;

/// A small deterministic generator (xorshift), so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A random mutation of `valid`: random bytes, a truncation, bit flips, or a splice.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    match rng.below(4) {
        0 => (0..rng.below(512)).map(|_| rng.next() as u8).collect(),
        1 => {
            b.truncate(rng.below(b.len()));
            b
        }
        2 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            b
        }
        _ => {
            let at = rng.below(b.len());
            let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            b.splice(at..at, junk);
            b
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: text("fuzzed"),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn traces() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![3; 16],
                    span_id: vec![4; 8],
                    parent_span_id: vec![5; 8],
                    name: "op".into(),
                    kind: span::SpanKind::Client as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_000_001_000,
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: text("v"),
                        ..Default::default()
                    }],
                    status: Some(Status {
                        message: "bad".into(),
                        code: 2,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    severity_number: 13,
                    body: text("hello"),
                    trace_id: vec![3; 16],
                    span_id: vec![4; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "g".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: 1_700_000_000_000_000_000,
                            value: Some(number_data_point::Value::AsDouble(1.5)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_on_every_endpoint_get_documented_answers() {
    let served = serve(CollectorOptions {
        max_message_bytes: MAX_MESSAGE,
        ..Default::default()
    })
    .await;
    let native = tokio::task::spawn_blocking(|| {
        capture("fuzz-native", || micromegas_core::info!("native {}", 1)).encode()
    })
    .await
    .unwrap();
    let json_traces = serde_json::to_vec(&traces()).unwrap();
    let json_logs = serde_json::to_vec(&logs()).unwrap();
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/v1/traces",
            "application/x-protobuf",
            traces().encode_to_vec(),
        ),
        ("/v1/logs", "application/x-protobuf", logs().encode_to_vec()),
        (
            "/v1/metrics",
            "application/x-protobuf",
            metrics().encode_to_vec(),
        ),
        ("/v1/traces", "application/json", json_traces),
        ("/v1/logs", "application/json", json_logs),
        (
            "/v1/native",
            "application/x-micromegas-transit",
            native.clone(),
        ),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut answers = std::collections::BTreeMap::new();
    for (path, content_type, valid) in &bodies {
        for case in 0..CASES {
            let body = mutate(valid, &mut rng);
            let gz = case % 3 == 0;
            let mut req = http
                .post(format!("{}{path}", served.http))
                .header("content-type", *content_type);
            let body = if gz {
                req = req.header("content-encoding", "gzip");
                gzip(&body)
            } else {
                body
            };
            let status = req.body(body).send().await.unwrap().status().as_u16();
            assert!(
                [200, 400, 413].contains(&status),
                "{path} {content_type} case {case}: {status}"
            );
            *answers.entry(status).or_insert(0) += 1;
        }
    }
    assert!(answers.contains_key(&400), "{answers:?}");

    // gRPC: mutations that still decode as OTLP messages reach the mapping.
    let mut client = TraceServiceClient::connect(served.grpc.clone())
        .await
        .unwrap();
    let valid = traces().encode_to_vec();
    let mut reached = 0;
    for _ in 0..CASES * 3 {
        let Ok(req) = ExportTraceServiceRequest::decode(&mutate(&valid, &mut rng)[..]) else {
            continue;
        };
        reached += 1;
        if let Err(status) = client.export(req).await {
            assert!(
                [tonic::Code::InvalidArgument, tonic::Code::ResourceExhausted]
                    .contains(&status.code()),
                "{status:?}"
            );
        }
    }
    assert!(reached > 0);
    // gRPC OTLP requests are taken as bytes: every mutation reaches the collector.
    let channel = tonic::transport::Channel::from_shared(served.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    let valid_logs = logs().encode_to_vec();
    let valid_metrics = metrics().encode_to_vec();
    let mut refused = 0;
    for case in 0..CASES {
        raw.ready().await.unwrap();
        let answer = if case % 3 == 0 {
            let path = PathAndQuery::from_static(Traces::EXPORT_PATH);
            let body = mutate(&valid, &mut rng);
            let codec = RawCodec::<ExportTraceServiceResponse>::default();
            raw.unary(tonic::Request::new(body), path, codec)
                .await
                .map(|_| ())
        } else if case % 3 == 1 {
            let path = PathAndQuery::from_static(Logs::EXPORT_PATH);
            let body = mutate(&valid_logs, &mut rng);
            let codec = RawCodec::<ExportLogsServiceResponse>::default();
            raw.unary(tonic::Request::new(body), path, codec)
                .await
                .map(|_| ())
        } else {
            let path = PathAndQuery::from_static(Metrics::EXPORT_PATH);
            let body = mutate(&valid_metrics, &mut rng);
            let codec = RawCodec::<ExportMetricsServiceResponse>::default();
            raw.unary(tonic::Request::new(body), path, codec)
                .await
                .map(|_| ())
        };
        if let Err(status) = answer {
            assert!(
                [tonic::Code::InvalidArgument, tonic::Code::ResourceExhausted]
                    .contains(&status.code()),
                "{status:?}"
            );
            refused += 1;
        }
    }
    assert!(refused > 0);
    // Native gRPC: raw mutated batches.
    let url = served.grpc.clone();
    let seed = rng.next();
    tokio::task::spawn_blocking(move || {
        let sink = NetworkSink::connect(&url, NetworkOptions::default()).unwrap();
        let mut rng = Rng(seed | 1);
        for _ in 0..CASES {
            let body = mutate(&native, &mut rng);
            if let Err(status) = sink.send(bytes::Bytes::from(body)) {
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            }
        }
    })
    .await
    .unwrap();

    // Gzip bombs: 64 MiB of zeros in a few KiB, refused after at most the limit is inflated.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 200 << 10);
    let r = http
        .post(format!("{}/v1/traces", served.http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let mut zipped = TraceServiceClient::connect(served.grpc.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let mut huge = traces();
    huge.resource_spans[0].scope_spans[0].spans[0].name = "\0".repeat(64 << 20);
    let err = zipped.export(huge).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    // Still serving, and good data is stored.
    let health = http
        .get(format!("{}/health", served.http))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    client.export(traces()).await.unwrap();
    let stored = rows(
        &served.lake,
        "SELECT COUNT(*) > 0 FROM spans WHERE name = 'op' AND service_name = 'fuzzed'",
    )
    .await;
    assert_eq!(stored, ["true"]);
}
