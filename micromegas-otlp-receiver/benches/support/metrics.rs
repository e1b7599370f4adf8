//! The metrics part of the ingest benchmark: OTLP metrics requests as an SDK exports them
//! every interval (an HTTP service: 40 counters of 8 series each, 12 gauges of 4 series, 4
//! latency histograms of 8 series with 15 buckets; 400 data points per request), prost
//! decode-only of them (the floor), their mapping into rows without the write, and the durable
//! ingest with several clients sending at once.

use super::{kv, resource, text, Rng, Signal};
use micromegas_otlp_receiver::export;
use micromegas_otlp_receiver::mapping::metrics;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use prost::Message;
use std::path::Path;

/// Data points per request: 40 × 8 + 12 × 4 + 4 × 8.
const POINTS_PER_REQUEST: u64 = 400;
const BOUNDS: [f64; 14] = [
    5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// The attributes of series `s` of a metric.
fn series(s: u64) -> Vec<KeyValue> {
    const ROUTES: [&str; 4] = ["/api/orders", "/api/cart", "/api/users/{id}", "/api/search"];
    vec![
        kv("http.route", text(ROUTES[(s % 4) as usize])),
        kv(
            "http.request.method",
            text(if s < 4 { "GET" } else { "POST" }),
        ),
        kv(
            "http.response.status_code",
            any_value::Value::IntValue(if s.is_multiple_of(3) { 500 } else { 200 }),
        ),
    ]
}

fn number(attributes: Vec<KeyValue>, start: u64, time: u64, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn request(n: u64, rng: &mut Rng, t0: u64) -> ExportMetricsServiceRequest {
    let time = t0 + n * 10_000_000_000;
    let mut metrics = Vec::new();
    for m in 0..40 {
        let data_points = (0..8)
            .map(|s| number(series(s), t0, time, (n * 100 + rng.next() % 100) as i64))
            .collect();
        metrics.push(Metric {
            name: format!("http.server.requests.{m}"),
            unit: "{request}".into(),
            description: "Requests handled".into(),
            data: Some(Data::Sum(Sum {
                data_points,
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
    for m in 0..12 {
        let data_points = (0..4)
            .map(|s| {
                let pool = vec![kv("pool", text(["heap", "stack", "code", "other"][s]))];
                number(pool, 0, time, (rng.next() % 1_000_000_000) as i64)
            })
            .collect();
        metrics.push(Metric {
            name: format!("process.memory.{m}"),
            unit: "By".into(),
            data: Some(Data::Gauge(Gauge { data_points })),
            ..Default::default()
        });
    }
    for m in 0..4 {
        let data_points = (0..8)
            .map(|s| {
                let bucket_counts: Vec<u64> = (0..=BOUNDS.len()).map(|_| rng.next() % 50).collect();
                let count = bucket_counts.iter().sum();
                HistogramDataPoint {
                    attributes: series(s),
                    start_time_unix_nano: t0,
                    time_unix_nano: time,
                    count,
                    sum: Some((count * 120) as f64),
                    bucket_counts,
                    explicit_bounds: BOUNDS.to_vec(),
                    min: Some(1.0),
                    max: Some(9000.0),
                    ..Default::default()
                }
            })
            .collect();
        metrics.push(Metric {
            name: format!("http.server.request.duration.{m}"),
            unit: "ms".into(),
            data: Some(Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: 2,
            })),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(5),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What the collector does with one request's bytes.
async fn ingest(lake: &micromegas_lake::Lake, bytes: &[u8]) {
    let mapped = metrics::map_protobuf(bytes).expect("map");
    export::metrics(lake.clone(), mapped).await.expect("ingest");
}

/// Runs the metrics measures and prints their rows of the results table.
pub fn run(rt: &tokio::runtime::Runtime, root: &Path, requests: u64, runs: usize, clients: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = micromegas_lake::catalog::now_nanos() as u64 - 3_600_000_000_000;
    let wire: Vec<Vec<u8>> = (0..requests)
        .map(|n| request(n, &mut rng, t0).encode_to_vec())
        .collect();
    let signal = Signal {
        name: "metrics",
        items: "points",
        wire: &wire,
        per_request: POINTS_PER_REQUEST,
    };
    signal.run(
        rt,
        root,
        (runs, clients),
        |w| {
            std::hint::black_box(ExportMetricsServiceRequest::decode(w).expect("decode"));
        },
        |w| {
            std::hint::black_box(metrics::map_protobuf(w).expect("map"));
        },
        ingest,
    );
}
