//! The logs part of the ingest benchmark: OTLP log requests of 512 records (an HTTP service's
//! access and application logs: a message, a severity, 3 – 5 attributes, trace context on
//! most records), prost decode-only of them (the floor), their mapping into rows without the
//! write, and the durable ingest with several clients sending at once.

use super::{kv, resource, text, Rng, Signal};
use micromegas_otlp_receiver::export;
use micromegas_otlp_receiver::mapping::logs;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use std::path::Path;

const RECORDS_PER_REQUEST: usize = 512;

const ROUTES: [&str; 4] = ["/api/orders", "/api/cart", "/api/users/{id}", "/api/search"];

fn record(rng: &mut Rng, time: u64) -> LogRecord {
    let route = ROUTES[(rng.next() % 4) as usize];
    let status = if rng.next().is_multiple_of(40) {
        500
    } else {
        200
    };
    let traced = !rng.next().is_multiple_of(5);
    let (severity, body, mut attributes) = if status == 500 {
        (
            17,
            format!("request to {route} failed: upstream timeout after 3 retries"),
            vec![kv("exception.type", text("TimeoutError"))],
        )
    } else {
        (
            9,
            format!("GET {route} 200 in {} ms", 1 + rng.next() % 300),
            Vec::new(),
        )
    };
    attributes.push(kv("http.route", text(route)));
    attributes.push(kv(
        "http.response.status_code",
        any_value::Value::IntValue(status),
    ));
    attributes.push(kv(
        "user.id",
        any_value::Value::IntValue((rng.next() % 100_000) as i64),
    ));
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time + 1_000,
        severity_number: severity,
        severity_text: if severity == 17 { "ERROR" } else { "INFO" }.into(),
        body: Some(AnyValue {
            value: Some(text(&body)),
        }),
        attributes,
        trace_id: if traced {
            [rng.next(), rng.next()]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect()
        } else {
            Vec::new()
        },
        span_id: if traced {
            rng.next().to_le_bytes().to_vec()
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn request(n: u64, rng: &mut Rng, t0: u64) -> ExportLogsServiceRequest {
    let log_records = (0..RECORDS_PER_REQUEST as u64)
        .map(|i| {
            let jitter = rng.next() % 100_000;
            record(rng, t0 + (n * 512 + i) * 100_000 + jitter)
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(5),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "com.example.checkout.AccessLog".into(),
                    ..Default::default()
                }),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What the collector does with one request's bytes.
async fn ingest(lake: &micromegas_lake::Lake, bytes: &[u8]) {
    let mapped = logs::map_protobuf(bytes).expect("map");
    export::logs(lake.clone(), mapped).await.expect("ingest");
}

/// Runs the logs measures and prints their rows of the results table.
pub fn run(rt: &tokio::runtime::Runtime, root: &Path, requests: u64, runs: usize, clients: usize) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let t0 = micromegas_lake::catalog::now_nanos() as u64 - 3_600_000_000_000;
    let wire: Vec<Vec<u8>> = (0..requests)
        .map(|n| request(n, &mut rng, t0).encode_to_vec())
        .collect();
    let signal = Signal {
        name: "logs",
        items: "records",
        wire: &wire,
        per_request: RECORDS_PER_REQUEST as u64,
    };
    signal.run(
        rt,
        root,
        (runs, clients),
        |w| {
            std::hint::black_box(ExportLogsServiceRequest::decode(w).expect("decode"));
        },
        |w| {
            std::hint::black_box(logs::map_protobuf(w).expect("map"));
        },
        ingest,
    );
}
