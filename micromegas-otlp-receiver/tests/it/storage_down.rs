//! Object store or catalog down: the collector reaches the S3 server (SeaweedFS) or the
//! PostgreSQL catalog of `scripts/services.sh` through a TCP relay of this test's own. The
//! relay is stopped while a client sends — new connections refused and open ones cut, as when
//! the server is down — then started again. Meanwhile the collector answers UNAVAILABLE
//! (retryable) and acknowledges nothing it could not store; afterwards it recovers by itself,
//! and every acknowledged request is there exactly once.

use crate::common::{free_port, fresh_database, rows, Killed};
use micromegas_lake::{Lake, LakeOptions, S3Options};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use std::process::Command;
use std::time::{Duration, Instant};

/// Which dependency goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    ObjectStore,
    Catalog,
}
const RECORDS: usize = 100;

/// A TCP relay from a loopback port to `upstream`, which can be stopped (the port refuses
/// connections and open ones are cut) and started again on the same port.
struct Relay {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16, upstream: &str) -> Self {
        let mut relay = Relay {
            port,
            upstream: upstream.to_owned(),
            task: None,
        };
        relay.resume().await;
        relay
    }

    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Stops listening and cuts every relayed connection.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn request(n: usize, service: &str) -> ExportLogsServiceRequest {
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
                    value: text(service.into()),
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
    outage(Dependency::ObjectStore, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_outage_is_retryable_and_the_collector_recovers() {
    outage(Dependency::Catalog, 12).await;
}

/// Sends `requests` requests, the dependency being unreachable for the middle third.
async fn outage(dependency: Dependency, requests: usize) {
    let service = format!("{dependency:?}-down").to_lowercase();
    let (Some(postgres), Some(s3), Some(bucket)) = (
        std::env::var("MICROMEGAS_TEST_POSTGRES").ok(),
        std::env::var("MICROMEGAS_TEST_S3_ENDPOINT").ok(),
        std::env::var("MICROMEGAS_TEST_S3_BUCKET").ok(),
    ) else {
        assert!(
            std::env::var_os("MICROMEGAS_TEST_REQUIRE_SERVICES").is_none(),
            "PostgreSQL and S3 are required: run `eval $(scripts/services.sh start)`"
        );
        eprintln!("skipped: PostgreSQL/S3 not configured (eval $(scripts/services.sh start))");
        return;
    };
    let s3_upstream = s3
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let catalog = fresh_database(&postgres, "down").await;
    let name = catalog.rsplit_once('/').unwrap().1.to_owned();
    // The catalog's host:port, as in postgres://user@127.0.0.1:54329/db.
    let pg_upstream = catalog
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .unwrap();
    let relay_port = free_port();
    // Aborting the relay's task drops its listener and its connections' tasks.
    let upstream = match dependency {
        Dependency::ObjectStore => &s3_upstream,
        Dependency::Catalog => &pg_upstream,
    };
    let mut relay = Relay::start(relay_port, upstream).await;
    let (endpoint, collector_catalog) = match dependency {
        Dependency::ObjectStore => (format!("http://127.0.0.1:{relay_port}"), catalog.clone()),
        Dependency::Catalog => (
            s3.clone(),
            catalog.replace(&pg_upstream, &format!("127.0.0.1:{relay_port}")),
        ),
    };
    let lake_url = format!("s3://{bucket}/{name}");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "micromegas"),
        ("AWS_SECRET_ACCESS_KEY", "micromegas"),
        ("AWS_REGION", "us-east-1"),
    ];
    let grpc = free_port();
    let _collector = Killed(
        Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
            .args([
                "--lake",
                &lake_url,
                "--catalog",
                &collector_catalog,
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
    while client.export(request(0, &service)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut acknowledged = vec![true];
    let mut codes = Vec::new();
    for n in 1..requests {
        if n == requests / 3 {
            relay.stop(); // the dependency is gone
        }
        if n == 2 * requests / 3 {
            relay.resume().await;
        }
        match client.export(request(n, &service)).await {
            Ok(_) => acknowledged.push(true),
            Err(status) => {
                codes.push(status.code());
                acknowledged.push(false);
            }
        }
    }
    // Refused while it was down, every refusal retryable; accepted again once it is back.
    assert!(!codes.is_empty(), "the outage was noticed");
    assert!(
        codes.iter().all(|c| *c == tonic::Code::Unavailable),
        "{codes:?}"
    );
    assert!(
        acknowledged[2 * requests / 3 + 2..].iter().all(|a| *a),
        "{acknowledged:?}"
    );

    // The client retries what was refused; then everything is there exactly once.
    for (n, ok) in acknowledged.iter().enumerate() {
        if !ok {
            client.export(request(n, &service)).await.unwrap();
        }
    }
    for (k, v) in aws {
        std::env::set_var(k, v);
    }
    let lake = Lake::open(
        &lake_url,
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
    let total = requests * RECORDS;
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), COUNT(DISTINCT msg) FROM log_entries"
        )
        .await,
        [format!("{total}|{total}")]
    );
    eprintln!(
        "{dependency:?}: {} of {requests} requests refused (UNAVAILABLE) while it was down, \
         all stored after retry",
        codes.len()
    );
    drop(relay);
}
