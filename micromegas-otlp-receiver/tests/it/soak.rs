//! Soak: a collector process ingests OTLP spans and native logs at a steady rate into a local
//! lake (with its background materialization) for a while: no request fails, its resident
//! memory stays flat after warm-up, and the OTLP export latency is recorded.
//!
//! CI runs a short version. The full one (10 minutes at 20 k spans/s + 50 k logs/s) is
//! `scripts/soak.sh`; settings: `MICROMEGAS_SOAK_SECS`, `MICROMEGAS_SOAK_SPANS_PER_SEC`,
//! `MICROMEGAS_SOAK_LOGS_PER_SEC`.

use crate::common::{rows, serial};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Spans per OTLP request (requests go out evenly over each second).
const SPANS_PER_REQUEST: u64 = 1000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(n: u64) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = n * SPANS_PER_REQUEST + i + 1;
            Span {
                trace_id: [[1u8; 8], (id / 8).to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: if id.is_multiple_of(8) {
                    vec![]
                } else {
                    (id - id % 8 + 8).to_be_bytes().to_vec()
                },
                name: ["GET /cart", "SELECT items", "redis GET"][(id % 3) as usize].into(),
                start_time_unix_nano: now - 1_000_000 + i * 100,
                end_time_unix_nano: now - 1_000_000 + i * 100 + 50_000,
                attributes: vec![KeyValue {
                    key: "http.route".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("/cart".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    crate::common::spans_request("soak-otlp", spans)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_without_errors_or_memory_growth() {
    let secs = setting("MICROMEGAS_SOAK_SECS", 20);
    let spans_per_sec = setting("MICROMEGAS_SOAK_SPANS_PER_SEC", 4_000);
    let logs_per_sec = setting("MICROMEGAS_SOAK_LOGS_PER_SEC", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let grpc = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{grpc}");
    let mut collector = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
        .arg("--lake")
        .arg(&lake_dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", "127.0.0.1:0", "--no-flightsql"])
        .env_remove("MICROMEGAS_LAKE")
        .spawn()
        .unwrap();
    let pid = collector.id();
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", grpc)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the collector did not start");

    // Native logs: an app's pipeline emitting at a steady rate, sent by its network sink.
    let native = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let _serial = serial();
            let sink = NetworkSink::connect(&url, NetworkOptions::default()).unwrap();
            let options = micromegas_core::Options::default().service_name("soak-native");
            let guard = micromegas_core::init(Arc::new(sink), options).unwrap();
            let started = Instant::now();
            let mut emitted = 0u64;
            while started.elapsed() < Duration::from_secs(secs) {
                let due = (started.elapsed().as_secs_f64() * logs_per_sec as f64) as u64;
                while emitted < due {
                    micromegas_core::info!("cart {} updated: {} items", emitted, emitted % 17);
                    emitted += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (emitted, guard.shutdown())
        })
    };

    // OTLP spans, requests spread evenly; latencies recorded; memory sampled every second.
    let mut client = TraceServiceClient::connect(url.clone()).await.unwrap();
    let requests_per_sec = (spans_per_sec / SPANS_PER_REQUEST).max(1);
    let interval = Duration::from_secs_f64(1.0 / requests_per_sec as f64);
    let started = Instant::now();
    let (mut latencies, mut rss, mut failures) = (Vec::new(), Vec::new(), 0);
    let mut next_sample = Duration::ZERO;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        match client.export(request(n)).await {
            Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(e) => {
                failures += 1;
                eprintln!("export failed: {e}");
            }
        }
        n += 1;
        if started.elapsed() >= next_sample {
            rss.push(rss_kib(pid));
            next_sample += Duration::from_secs(1);
        }
        let due = interval * n as u32;
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (emitted, stats) = native.await.unwrap();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(collector.wait().unwrap().success());

    assert_eq!(failures, 0);
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    latencies.sort_by(f64::total_cmp);
    // Flat memory: after the first fifth (warm-up), the resident size stays within 1.5x of
    // what it was then. "Then" is the median of the second fifth's samples: one sample can
    // fall in a dip (the allocator just returned memory), which made a flat run look grown.
    let fifth = rss.len() / 5;
    let mut warm_window = rss[fifth..2 * fifth].to_vec();
    warm_window.sort_unstable();
    let warm = warm_window[warm_window.len() / 2].max(1);
    let peak = *rss[fifth..].iter().max().unwrap();
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    let spans = rows(
        &lake,
        "SELECT COUNT(*) FROM spans WHERE service_name = 'soak-otlp'",
    )
    .await;
    let logs = rows(
        &lake,
        "SELECT COUNT(*) FROM log_entries WHERE service_name = 'soak-native'",
    )
    .await;
    assert_eq!(spans, [(n * SPANS_PER_REQUEST).to_string()]);
    assert_eq!(logs, [emitted.to_string()]);
    eprintln!(
        "soak {elapsed:.0} s: {:.0} spans/s and {:.0} logs/s, {} requests, 0 failures; export \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; collector RSS {} MiB after warm-up, \
         peak {} MiB after it",
        (n * SPANS_PER_REQUEST) as f64 / elapsed,
        emitted as f64 / elapsed,
        n,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        warm >> 10,
        peak >> 10,
    );
    // The resident size at each tenth of the run, to see a trend rather than one peak.
    let tenths: Vec<String> = (0..10)
        .map(|i| rss[i * rss.len() / 10] >> 10)
        .chain(rss.last().map(|r| r >> 10))
        .map(|m| m.to_string())
        .collect();
    eprintln!(
        "collector RSS (MiB) at each tenth of the run: {}",
        tenths.join(", ")
    );
    // The collector's own telemetry: what its pipeline held, unsent, at most and at the end.
    let pending = rows(
        &lake,
        "SELECT MAX(value), last_value(value ORDER BY time) FROM measures \
         WHERE service_name = 'micromegas-collector' AND name = 'micromegas.pending_bytes'",
    )
    .await;
    eprintln!("collector self-telemetry pending bytes (max|last): {pending:?}");
    assert!(peak <= warm + warm / 2, "resident memory grew: {rss:?}");
}
