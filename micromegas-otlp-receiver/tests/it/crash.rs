//! Crash: the collector process is killed with SIGKILL while an OTLP client (retrying failed
//! exports, as SDKs do) and a native client (the network sink) send a million spans and logs.
//! After a restart on the same lake, everything that was acknowledged is queryable and every
//! retried item is there exactly once.

use crate::common::{free_port, rows, Killed};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OTLP_REQUESTS: usize = 250;
const SPANS_PER_REQUEST: usize = 1000;
const NATIVE_BATCHES: usize = 75;
const LOGS_PER_BATCH: usize = 10_000;
/// Clients give up (and the test fails) after this long.
const DEADLINE: Duration = Duration::from_secs(240);

fn start(lake: &Path, grpc: u16) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
        .arg("--lake")
        .arg(lake)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", "127.0.0.1:0", "--no-flightsql"])
        .env_remove("MICROMEGAS_LAKE")
        .spawn()
        .unwrap();
    Killed(child)
}

fn request(n: usize) -> ExportTraceServiceRequest {
    let base = 1_700_000_000_000_000_000u64 + (n as u64) * 1_000_000;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = (n * SPANS_PER_REQUEST + i + 1) as u64;
            Span {
                trace_id: [[0u8; 8], id.to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                name: "op".into(),
                start_time_unix_nano: base + i as u64,
                end_time_unix_nano: base + i as u64 + 500,
                ..Default::default()
            }
        })
        .collect();
    crate::common::spans_request("crash-otlp", spans)
}

/// Sends every OTLP request, retrying each until it is acknowledged; counts acknowledgments.
async fn otlp_client(url: String, acked: Arc<AtomicUsize>) -> usize {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let mut client = TraceServiceClient::new(channel);
    let started = Instant::now();
    let mut retries = 0;
    for n in 0..OTLP_REQUESTS {
        let req = request(n);
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "OTLP client: collector never came back"
            );
            match client.export(req.clone()).await {
                Ok(r) => {
                    assert!(r.into_inner().partial_success.is_none());
                    acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(_) => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    retries
}

/// Native batches, each from a process of its own, with numbered log lines.
fn native_batches() -> Vec<bytes::Bytes> {
    (0..NATIVE_BATCHES)
        .flat_map(|b| {
            crate::common::capture_all(&format!("crash-native-{b}"), || {
                for i in 0..LOGS_PER_BATCH {
                    micromegas_core::info!("batch {} line {}", b, i);
                }
            })
        })
        .map(|batch| bytes::Bytes::from(batch.encode()))
        .collect()
}

/// Sends every native batch through the network sink, retrying until acknowledged, paced as
/// an app's flusher would (a batch every 50 ms) so that the kill lands mid-stream.
fn native_client(url: &str, batches: Vec<bytes::Bytes>, acked: Arc<AtomicUsize>) -> usize {
    let sink = NetworkSink::connect(url, NetworkOptions::default()).unwrap();
    let started = Instant::now();
    let mut retries = 0;
    for batch in batches {
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "native client: collector never came back"
            );
            match sink.send(batch.clone()) {
                Ok(_) => {
                    acked.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
                Err(_) => {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    retries
}

/// The OTLP requests whose spans are not all stored exactly once: `request: rows/distinct`
/// (a request's spans start `request` ms after the first request's).
async fn misstored_requests(lake: &Lake) -> Vec<String> {
    let sql = "SELECT (CAST(start_time AS BIGINT) - 1700000000000000000) / 1000000, COUNT(*), \
               COUNT(DISTINCT span_id) FROM spans WHERE service_name = 'crash-otlp' \
               GROUP BY 1 ORDER BY 1";
    misstored(rows(lake, sql).await, OTLP_REQUESTS, SPANS_PER_REQUEST)
}

/// The native batches whose lines are not all stored exactly once: `batch: rows/distinct`.
async fn misstored_batches(lake: &Lake) -> Vec<String> {
    let sql = "SELECT CAST(substr(service_name, 14) AS BIGINT), COUNT(*), COUNT(DISTINCT msg) \
               FROM log_entries WHERE service_name LIKE 'crash-native-%' GROUP BY 1 ORDER BY 1";
    misstored(rows(lake, sql).await, NATIVE_BATCHES, LOGS_PER_BATCH)
}

/// From `group|rows|distinct` lines, the groups in `0..groups` missing or not holding
/// exactly `each` distinct items once each, and any group outside that range.
fn misstored(lines: Vec<String>, groups: usize, each: usize) -> Vec<String> {
    let mut found = std::collections::BTreeMap::new();
    for line in &lines {
        let cells: Vec<&str> = line.split('|').collect();
        found.insert(cells[0].to_string(), format!("{}/{}", cells[1], cells[2]));
    }
    let expected = format!("{each}/{each}");
    let mut out: Vec<String> = (0..groups)
        .filter_map(|g| match found.remove(&g.to_string()) {
            Some(counts) if counts == expected => None,
            Some(counts) => Some(format!("{g}: {counts}")),
            None => Some(format!("{g}: missing")),
        })
        .collect();
    out.extend(
        found
            .into_iter()
            .map(|(g, c)| format!("{g} (unexpected): {c}")),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_sigkill_and_retries_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let grpc = free_port();
    let url = format!("http://127.0.0.1:{grpc}");
    let native = tokio::task::spawn_blocking(native_batches).await.unwrap();
    let native_requests = native.len();

    let mut collector = start(&lake_dir, grpc);
    let otlp_acked = Arc::new(AtomicUsize::new(0));
    let native_acked = Arc::new(AtomicUsize::new(0));
    let otlp = tokio::spawn(otlp_client(url.clone(), otlp_acked.clone()));
    let native_task = {
        let (url, acked) = (url.clone(), native_acked.clone());
        tokio::task::spawn_blocking(move || native_client(&url, native, acked))
    };

    // Kill the collector while both are sending, once some of each is acknowledged.
    let started = Instant::now();
    while otlp_acked.load(Ordering::SeqCst) < OTLP_REQUESTS / 4
        || native_acked.load(Ordering::SeqCst) < native_requests / 4
    {
        assert!(started.elapsed() < DEADLINE, "clients made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    collector.0.kill().unwrap(); // SIGKILL
    collector.0.wait().unwrap();
    let at_kill = (
        otlp_acked.load(Ordering::SeqCst),
        native_acked.load(Ordering::SeqCst),
    );
    assert!(
        at_kill.0 < OTLP_REQUESTS && at_kill.1 < native_requests,
        "{at_kill:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector = start(&lake_dir, grpc);

    let otlp_retries = otlp.await.unwrap();
    let native_retries = native_task.await.unwrap();
    assert!(
        otlp_retries > 0 && native_retries > 0,
        "the kill interrupted both clients"
    );
    Command::new("kill")
        .args(["-TERM", &collector.0.id().to_string()])
        .status()
        .unwrap();
    collector.0.wait().unwrap();

    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    // Every request's spans and every batch's lines, each exactly once (anything else is
    // named: `17: missing`, `40: 2000/1000`, or a group that should not exist).
    let requests = misstored_requests(&lake).await;
    assert!(
        requests.is_empty(),
        "killed at {at_kill:?}; OTLP requests not stored exactly once: {requests:?}"
    );
    let batches = misstored_batches(&lake).await;
    assert!(
        batches.is_empty(),
        "killed at {at_kill:?}; native batches not stored exactly once: {batches:?}"
    );
    let (total_spans, total_logs) = (
        OTLP_REQUESTS * SPANS_PER_REQUEST,
        NATIVE_BATCHES * LOGS_PER_BATCH,
    );
    // What the kill left unreferenced (an object written, its commit never made) can go
    // without touching anything acknowledged.
    let garbage = lake.collect_garbage(Duration::ZERO).await.unwrap();
    let spans = "SELECT COUNT(DISTINCT span_id) FROM spans WHERE service_name = 'crash-otlp'";
    assert_eq!(rows(&lake, spans).await, [total_spans.to_string()]);
    let logs = "SELECT COUNT(DISTINCT msg) FROM log_entries \
                WHERE service_name LIKE 'crash-native-%'";
    assert_eq!(rows(&lake, logs).await, [total_logs.to_string()]);
    eprintln!(
        "killed after {} of {OTLP_REQUESTS} OTLP requests and {} of {native_requests} native \
         batches were acknowledged; {otlp_retries} OTLP and {native_retries} native retries; \
         {} unreferenced objects deleted afterwards",
        at_kill.0, at_kill.1, garbage.objects_deleted
    );
}
