//! Scale-out: two collectors and a query node share one lake on a real S3 server (SeaweedFS)
//! with a PostgreSQL catalog, both started by `scripts/services.sh`. Clients spread OTLP and
//! native traffic over both collectors, whose background loops materialize concurrently; the
//! query node sees every item exactly once; retention run from two nodes at once deletes the
//! old data once and keeps the rest.

use crate::common::{free_port, fresh_database, rows, skip, wait_for_port, Killed};
use micromegas_lake::{Lake, LakeOptions, S3Options};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REQUESTS: usize = 40;
const SPANS_PER_REQUEST: usize = 500;
const NATIVE_PROCESSES: usize = 10;
const LOGS_PER_PROCESS: usize = 2_000;
/// Requests whose spans are three hours old (retention keeps two hours).
const OLD_REQUESTS: usize = 10;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn request(n: usize, now: u64) -> ExportTraceServiceRequest {
    let age = if n < OLD_REQUESTS {
        3 * 3_600_000_000_000
    } else {
        0
    };
    let start = now - age - 60_000_000_000;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = (n * SPANS_PER_REQUEST + i + 1) as u64;
            Span {
                trace_id: [[7u8; 8], id.to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                name: "op".into(),
                start_time_unix_nano: start + i as u64 * 1000,
                end_time_unix_nano: start + i as u64 * 1000 + 500,
                ..Default::default()
            }
        })
        .collect();
    crate::common::spans_request("scale-otlp", spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_and_a_query_node_share_an_s3_lake() {
    let (Some(postgres), Some(endpoint), Some(bucket)) = (
        env("MICROMEGAS_TEST_POSTGRES"),
        env("MICROMEGAS_TEST_S3_ENDPOINT"),
        env("MICROMEGAS_TEST_S3_BUCKET"),
    ) else {
        skip(
            "PostgreSQL and S3 are required: run `eval $(scripts/services.sh start)`",
            "PostgreSQL/S3 not configured (eval $(scripts/services.sh start))",
        );
        return;
    };
    // A fresh database and prefix, so runs never see each other's data.
    let catalog = fresh_database(&postgres, "scale").await;
    let name = catalog.rsplit_once('/').unwrap().1.to_owned();
    let lake_url = format!("s3://{bucket}/{name}");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "micromegas"),
        ("AWS_SECRET_ACCESS_KEY", "micromegas"),
        ("AWS_REGION", "us-east-1"),
    ];
    let node = |args: &[&str]| -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"));
        cmd.args([
            "--lake",
            &lake_url,
            "--catalog",
            &catalog,
            "--s3-endpoint",
            &endpoint,
        ])
        .args(args)
        .envs(aws)
        .env_remove("MICROMEGAS_LAKE");
        cmd
    };

    // Two collectors; the lake is created by the first and joined by the second.
    let ports = [free_port(), free_port()];
    let mut collectors = Vec::new();
    for port in ports {
        collectors.push(Killed(
            node(&["--grpc-addr", &format!("127.0.0.1:{port}")])
                .args([
                    "--http-addr",
                    "127.0.0.1:0",
                    "--no-flightsql",
                    "--no-self-telemetry",
                ])
                .spawn()
                .unwrap(),
        ));
        wait_for_port(port, 20, "a collector").await;
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();

    // OTLP requests alternate between the collectors; some are sent to both (a retry that
    // went to another node).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut clients = Vec::new();
    for url in &urls {
        clients.push(TraceServiceClient::connect(url.clone()).await.unwrap());
    }
    for n in 0..REQUESTS {
        clients[n % 2].export(request(n, now)).await.unwrap();
        if n % 5 == 0 {
            clients[(n + 1) % 2].export(request(n, now)).await.unwrap();
        }
    }
    // Native processes, each through one collector, each batch once more through the other.
    let urls_native = urls.clone();
    tokio::task::spawn_blocking(move || {
        let sinks: Vec<NetworkSink> = urls_native
            .iter()
            .map(|u| NetworkSink::connect(u, NetworkOptions::default()).unwrap())
            .collect();
        for p in 0..NATIVE_PROCESSES {
            let batches = crate::common::capture_all(&format!("scale-native-{p}"), || {
                for i in 0..LOGS_PER_PROCESS {
                    micromegas_core::info!("process {} line {}", p, i);
                }
            });
            for b in batches {
                let bytes = bytes::Bytes::from(b.encode());
                sinks[p % 2].send(bytes.clone()).unwrap();
                sinks[(p + 1) % 2].send(bytes).unwrap();
            }
        }
    })
    .await
    .unwrap();
    // The query node.
    let options = LakeOptions {
        catalog: Some(catalog.clone()),
        s3: S3Options {
            endpoint: Some(endpoint.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    for (k, v) in aws {
        std::env::set_var(k, v);
    }
    let query = Lake::open(&lake_url, options.clone()).await.unwrap();

    // Both collectors' background loops materialize what arrived (every second), racing for
    // the same blocks: wait until no block is left unmaterialized.
    let mut pending = Vec::new();
    for _ in 0..120 {
        pending = rows(
            &query,
            "SELECT COUNT(*) FROM blocks WHERE partition_id IS NULL",
        )
        .await;
        if pending == ["0"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        pending,
        ["0"],
        "the collectors did not materialize everything"
    );
    // No lost partition (every block's partition exists), no double work (the partitions'
    // rows are the items sent, once).
    assert_eq!(
        rows(
            &query,
            "SELECT COUNT(*) FROM blocks b LEFT JOIN partitions p \
             ON b.partition_id = p.partition_id WHERE p.partition_id IS NULL"
        )
        .await,
        ["0"]
    );
    let spans = REQUESTS * SPANS_PER_REQUEST;
    let logs = NATIVE_PROCESSES * LOGS_PER_PROCESS;
    assert_eq!(
        rows(
            &query,
            "SELECT table_name, SUM(row_count) FROM partitions \
             WHERE table_name IN ('log_entries', 'spans') GROUP BY 1 ORDER BY 1"
        )
        .await,
        [format!("log_entries|{logs}"), format!("spans|{spans}")]
    );
    assert_eq!(
        rows(
            &query,
            "SELECT COUNT(*), COUNT(DISTINCT span_id) FROM spans"
        )
        .await,
        [format!("{spans}|{spans}")]
    );
    assert_eq!(
        rows(
            &query,
            "SELECT COUNT(*), COUNT(DISTINCT msg), COUNT(DISTINCT process_id) FROM log_entries"
        )
        .await,
        [format!("{logs}|{logs}|{NATIVE_PROCESSES}")]
    );

    // Retention from two nodes at once: the three-hour-old spans go, once.
    let (a, b) = (
        Lake::open(&lake_url, options.clone()).await.unwrap(),
        Lake::open(&lake_url, options.clone()).await.unwrap(),
    );
    let age = Duration::from_secs(2 * 3600);
    let (ra, rb) = tokio::join!(a.expire(age), b.expire(age));
    let deleted = ra.unwrap().objects_deleted + rb.unwrap().objects_deleted;
    assert!(deleted > 0);
    let kept = (REQUESTS - OLD_REQUESTS) * SPANS_PER_REQUEST;
    assert_eq!(
        rows(
            &query,
            "SELECT COUNT(*), COUNT(DISTINCT span_id) FROM spans"
        )
        .await,
        [format!("{kept}|{kept}")]
    );
    assert_eq!(
        rows(&query, "SELECT COUNT(*) FROM log_entries").await,
        [format!("{logs}")]
    );
    drop(collectors);
}
