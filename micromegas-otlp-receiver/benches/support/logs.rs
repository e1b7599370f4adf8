//! The logs part of the ingest benchmark: OTLP log requests of 512 records (an HTTP service's
//! access and application logs: a message, a severity, 3 – 5 attributes, trace context on
//! most records), prost decode-only of them (the floor), their mapping into rows without the
//! write, and the durable ingest with several clients sending at once.

use super::{concurrent_run, kv, rates, resource, text, Rng, Run};
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

/// What the collector does with one request's bytes, without the write.
fn map(bytes: &[u8]) -> impl Sized {
    logs::map_protobuf(bytes).expect("map")
}

/// What the collector does with one request's bytes.
async fn ingest(lake: &micromegas_lake::Lake, bytes: &[u8]) {
    let mapped = logs::map_protobuf(bytes).expect("map");
    export::logs(lake, mapped).await.expect("ingest");
}

/// Runs the logs measures and prints their rows of the results table.
pub fn run(rt: &tokio::runtime::Runtime, root: &Path, requests: u64, runs: usize, clients: usize) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let t0 = micromegas_lake::catalog::now_nanos() as u64 - 3_600_000_000_000;
    let wire: Vec<Vec<u8>> = (0..requests)
        .map(|n| request(n, &mut rng, t0).encode_to_vec())
        .collect();
    let records = requests * RECORDS_PER_REQUEST as u64;
    let (mut decode, mut map_only) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        decode.push(Run::measure(|| {
            for w in &wire {
                let r = ExportLogsServiceRequest::decode(&w[..]).expect("decode");
                std::hint::black_box(&r);
            }
        }));
        map_only.push(Run::measure(|| {
            for w in &wire {
                std::hint::black_box(map(w));
            }
        }));
    }
    let concurrent: Vec<Run> = (0..runs)
        .map(|run| {
            let dir = root.join(format!("logs-concurrent-{run}"));
            concurrent_run(rt, &dir, &wire, clients, ingest)
        })
        .collect();
    let (floor, _) = rates(&decode, records);
    let (mapped, _) = rates(&map_only, records);
    let (_, ingest_cpu) = rates(&concurrent, records);
    let bytes: usize = wire.iter().map(Vec::len).sum();
    println!(
        "| OTLP logs: {requests} requests x {RECORDS_PER_REQUEST} records, protobuf bytes/record | {:.1} |",
        bytes as f64 / records as f64
    );
    println!("| logs: prost decode only (floor), records/s on one thread | {floor:.0} |");
    println!(
        "| logs: mapped into rows (no write), records/s on one thread | {mapped:.0} ({:.2} of decode-only) |",
        mapped / floor
    );
    println!(
        "| logs: ingest, {clients} clients at once, records per CPU second (per core) | {ingest_cpu:.0} ({:.2} of decode-only) |",
        ingest_cpu / floor
    );
}
