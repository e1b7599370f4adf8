//! Object store down: the collector's lake is on an S3 server of this test's own (SeaweedFS
//! from the venv, with the PostgreSQL catalog of `scripts/services.sh`). The S3 server is
//! killed while a client sends: the collector answers UNAVAILABLE (retryable) and
//! acknowledges nothing it could not store; when the server is back on the same data, the
//! collector recovers by itself, and every acknowledged request is there exactly once.

use crate::common::rows;
use micromegas_lake::{Lake, LakeOptions, S3Options};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUESTS: usize = 30;
const RECORDS: usize = 100;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port `p` below 30000 whose `p + 10000` is free too (SeaweedFS serves gRPC there).
fn weed_port() -> u16 {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    let mut n = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    loop {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let p = 20_000 + (n >> 33) as u16 % 10_000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 10_000) {
            return p;
        }
    }
}

/// A SeaweedFS server with S3 on `s3`, its data in `dir`.
fn weed(weed: &Path, dir: &Path, s3: u16, ports: [u16; 3]) -> Proc {
    Proc(
        Command::new(weed)
            .arg("server")
            .arg(format!("-dir={}", dir.display()))
            .args([
                "-s3",
                &format!("-s3.port={s3}"),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
            ])
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-volume.port={}", ports[1]))
            .arg(format!("-filer.port={}", ports[2]))
            .args([
                "-master.volumeSizeLimitMB=64",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Waits until the S3 server answers and the bucket exists (creating it); on failure, shows
/// the end of the server's log.
async fn bucket_ready(s3: u16, bucket: &str, log: &Path) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{s3}/{bucket}");
    let started = Instant::now();
    loop {
        if started.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "SeaweedFS did not start on {s3}; its log ends with:\n{}",
                tail.join("\n")
            );
        }
        let _ = client.put(&url).send().await;
        if let Ok(r) = client.get(&url).send().await {
            if r.text().await.is_ok_and(|t| t.contains("ListBucketResult")) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn request(n: usize) -> ExportLogsServiceRequest {
    let text = |s: String| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        })
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: text("storage-down".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..RECORDS)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + (n * RECORDS + i) as u64,
                        body: text(format!("request {n} record {i}")),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_outage_is_retryable_and_the_collector_recovers() {
    let venv_weed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/weed");
    let postgres = std::env::var("MICROMEGAS_TEST_POSTGRES").ok();
    let (Some(postgres), true) = (postgres, venv_weed.exists()) else {
        assert!(
            std::env::var_os("MICROMEGAS_TEST_REQUIRE_SERVICES").is_none(),
            "PostgreSQL and the venv's SeaweedFS are required (scripts/test.sh)"
        );
        eprintln!("skipped: needs MICROMEGAS_TEST_POSTGRES and .venv/bin/weed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("weed");
    std::fs::create_dir_all(&data).unwrap();
    let (s3, ports) = (weed_port(), [weed_port(), weed_port(), weed_port()]);
    let mut server = Some(weed(&venv_weed, &data, s3, ports));
    bucket_ready(s3, "lake", &data.with_extension("log")).await;

    let name = format!("down_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&postgres).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let catalog = format!("{}/{name}", postgres.rsplit_once('/').unwrap().0);
    let endpoint = format!("http://127.0.0.1:{s3}");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "micromegas"),
        ("AWS_SECRET_ACCESS_KEY", "micromegas"),
        ("AWS_REGION", "us-east-1"),
    ];
    let grpc = free_port();
    let _collector = Proc(
        Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
            .args([
                "--lake",
                "s3://lake/data",
                "--catalog",
                &catalog,
                "--s3-endpoint",
                &endpoint,
            ])
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--no-flightsql",
                "--no-self-telemetry",
            ])
            .envs(aws)
            .env_remove("MICROMEGAS_LAKE")
            .spawn()
            .unwrap(),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy();
    let mut client = LogsServiceClient::new(channel);
    let started = Instant::now();
    // Until the collector is up.
    while client.export(request(0)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut acknowledged = vec![true];
    let mut codes = Vec::new();
    for n in 1..REQUESTS {
        if n == REQUESTS / 3 {
            server = None; // SIGKILL: S3 is gone
        }
        if n == 2 * REQUESTS / 3 {
            server = Some(weed(&venv_weed, &data, s3, ports));
            bucket_ready(s3, "lake", &data.with_extension("log")).await;
        }
        match client.export(request(n)).await {
            Ok(_) => acknowledged.push(true),
            Err(status) => {
                codes.push(status.code());
                acknowledged.push(false);
            }
        }
    }
    // Refused while S3 was down, every refusal retryable; accepted again once it is back.
    assert!(!codes.is_empty(), "the outage was noticed");
    assert!(
        codes.iter().all(|c| *c == tonic::Code::Unavailable),
        "{codes:?}"
    );
    assert!(
        acknowledged[2 * REQUESTS / 3 + 2..].iter().all(|a| *a),
        "{acknowledged:?}"
    );

    // The client retries what was refused; then everything is there exactly once.
    for (n, ok) in acknowledged.iter().enumerate() {
        if !ok {
            client.export(request(n)).await.unwrap();
        }
    }
    for (k, v) in aws {
        std::env::set_var(k, v);
    }
    let lake = Lake::open(
        "s3://lake/data",
        LakeOptions {
            catalog: Some(catalog),
            s3: S3Options {
                endpoint: Some(endpoint),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    let total = REQUESTS * RECORDS;
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), COUNT(DISTINCT msg) FROM log_entries"
        )
        .await,
        [format!("{total}|{total}")]
    );
    eprintln!(
        "{} of {REQUESTS} requests refused (UNAVAILABLE) while S3 was down, all stored after \
         retry",
        codes.len()
    );
    drop(server);
}
