//! Object store or catalog down, or the disk full: the collector reaches the S3 server
//! (SeaweedFS) or the PostgreSQL catalog of `scripts/services.sh` through a TCP relay of this
//! test's own, which is stopped while a client sends — new connections refused and open ones
//! cut, as when the server is down — then started again; or its embedded lake lives on a small
//! tmpfs that a filler file fills up, then frees. Meanwhile the collector answers UNAVAILABLE
//! (retryable) and acknowledges nothing it could not store — at the latest when its write
//! deadline (`--write-timeout`) passes, while the write goes on; afterwards it recovers by
//! itself, and every acknowledged request is there exactly once.

use crate::common::{collector_command, free_port, fresh_database, rows, skip, Killed};
use micromegas_lake::{Lake, LakeOptions, S3Options};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Which dependency goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    ObjectStore,
    Catalog,
}
const RECORDS: usize = 100;

/// The collector's write deadline in the tests with a relay: below the catalog pool's 10 s
/// acquire timeout, so that a write waiting for a connection is answered by the deadline.
const WRITE_TIMEOUT: &str = "5s";

/// The refusals of requests sent during an outage.
#[derive(Debug, Default)]
struct Refusals {
    /// Requests refused (every one UNAVAILABLE).
    count: usize,
    /// Refusals that came from the collector's write deadline.
    by_deadline: usize,
    /// The longest time a refused request waited for its answer.
    slowest: Duration,
    /// From the end of the outage to the first request acknowledged after it.
    recovery: Duration,
}

/// A dependency of the collector that can fail and come back.
trait Outage {
    /// The dependency fails.
    async fn begin(&mut self);
    /// It is back.
    async fn end(&mut self);
}

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

impl Outage for Relay {
    async fn begin(&mut self) {
        self.stop();
    }

    async fn end(&mut self) {
        self.resume().await;
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

/// The host:port of a catalog URL, as in postgres://user@127.0.0.1:54329/db.
fn host_port(catalog: &str) -> String {
    catalog
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .unwrap()
}

/// A collector started before its PostgreSQL catalog answers (a database started at the same
/// time, or restarting) keeps trying it for `--catalog-wait`, saying so on stderr, and serves
/// once it answers; with `--catalog-wait 0s` it stops at the first try's error, naming the
/// catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_started_before_its_catalog_waits_for_it() {
    let Some(postgres) = std::env::var("MICROMEGAS_TEST_POSTGRES").ok() else {
        skip(
            "PostgreSQL is required: run `eval $(scripts/services.sh start)`",
            "PostgreSQL not configured (eval $(scripts/services.sh start))",
        );
        return;
    };
    let catalog = fresh_database(&postgres, "late").await;
    let pg_upstream = host_port(&catalog);
    let relay_port = free_port();
    let via = |port: u16| catalog.replace(&pg_upstream, &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();

    // Each try of the catalog's pool waits up to 10 s for a connection: a catalog that
    // answers later than that is a case for --catalog-wait. Without a wait (a port that never
    // answers), the first try's error ends it; meanwhile, another collector waits for its
    // catalog, which comes up 12 s after both started.
    let nowait_port = free_port();
    let nowait = collector_command(dir.path().join("lake-nowait"), free_port())
        .args(["--catalog", &via(nowait_port), "--catalog-wait", "0s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let nowait = tokio::task::spawn_blocking(move || nowait.wait_with_output().unwrap());
    let grpc = free_port();
    let mut collector = Killed(
        collector_command(dir.path().join("lake"), grpc)
            .args(["--catalog", &via(relay_port), "--catalog-wait", "60s"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        collector.0.try_wait().unwrap().is_none(),
        "the collector waits for its catalog"
    );
    let out = nowait.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot open catalog") && stderr.contains(&nowait_port.to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("trying again"), "{stderr}");
    let relay = Relay::start(relay_port, &pg_upstream).await;
    let mut client = client(grpc);
    let started = Instant::now();
    while client.export(request(0, "late-catalog")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the collector did not start once its catalog answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("serving {:?} after the catalog came up", started.elapsed());
    let _ = collector.0.kill();
    let _ = collector.0.wait();
    let mut stderr = String::new();
    use std::io::Read;
    collector
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("the catalog cannot be reached yet; trying again"),
        "{stderr}"
    );
    drop(relay);
    // What it acknowledged is in the lake, in that catalog.
    let lake = Lake::open(
        dir.path().join("lake").to_str().unwrap(),
        LakeOptions {
            catalog: Some(catalog),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let count = rows(
        &lake,
        "SELECT count(*) AS n FROM log_entries WHERE service_name = 'late-catalog'",
    )
    .await;
    assert_eq!(count, vec![format!("{RECORDS}")]);
}

/// Sends `requests` requests, the dependency being unreachable for the middle third.
async fn outage(dependency: Dependency, requests: usize) {
    let service = format!("{dependency:?}-down").to_lowercase();
    let (Some(postgres), Some(s3), Some(bucket)) = (
        std::env::var("MICROMEGAS_TEST_POSTGRES").ok(),
        std::env::var("MICROMEGAS_TEST_S3_ENDPOINT").ok(),
        std::env::var("MICROMEGAS_TEST_S3_BUCKET").ok(),
    ) else {
        skip(
            "PostgreSQL and S3 are required: run `eval $(scripts/services.sh start)`",
            "PostgreSQL/S3 not configured (eval $(scripts/services.sh start))",
        );
        return;
    };
    let s3_upstream = s3
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let catalog = fresh_database(&postgres, "down").await;
    let name = catalog.rsplit_once('/').unwrap().1.to_owned();
    let pg_upstream = host_port(&catalog);
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
        collector_command(&lake_url, grpc)
            .args(["--catalog", &collector_catalog, "--s3-endpoint", &endpoint])
            .args(["--write-timeout", WRITE_TIMEOUT])
            .envs(aws)
            .spawn()
            .unwrap(),
    );
    let refused = send_through(&mut relay, grpc, &service, requests).await;
    let waited = in_flight_outage(&mut relay, grpc, &service, requests).await;
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
            ..Default::default()
        },
    )
    .await
    .unwrap();
    all_stored_once(&lake, requests + 2).await;
    eprintln!(
        "{dependency:?}, ended while a write was being retried: the next request was \
         answered after {waited:?}"
    );
    eprintln!(
        "{dependency:?}: {} of {requests} requests refused (UNAVAILABLE) while it was down, \
         {} by the {WRITE_TIMEOUT} write deadline, the slowest answered after {:?}; the first \
         request acknowledged {:?} after the outage ended; all stored after retry",
        refused.count, refused.by_deadline, refused.slowest, refused.recovery
    );
    if dependency == Dependency::Catalog {
        // Waiting for a catalog connection takes up to the pool's 10 s: the deadline answers
        // first.
        assert!(refused.by_deadline > 0, "{refused:?}");
    }
    drop(relay);
}

/// Sends `requests` log exports of `RECORDS` records to the collector's gRPC `port`, `outage`
/// lasting the middle third. Checks that every refusal was UNAVAILABLE, that the collector
/// took requests again once the outage ended, and retries what was refused (as an OTLP
/// client does). Returns the refusals.
async fn send_through(
    outage: &mut impl Outage,
    port: u16,
    service: &str,
    requests: usize,
) -> Refusals {
    let mut client = client(port);
    let started = Instant::now();
    // Until the collector is up.
    while client.export(request(0, service)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut acknowledged = vec![true];
    let mut refusals = Refusals::default();
    let mut ended = None;
    for n in 1..requests {
        if n == requests / 3 {
            outage.begin().await;
        }
        if n == 2 * requests / 3 {
            outage.end().await;
            ended = Some(Instant::now());
        }
        let sent = Instant::now();
        match client.export(request(n, service)).await {
            Ok(_) => {
                acknowledged.push(true);
                if let Some(end) = ended.take() {
                    refusals.recovery = end.elapsed();
                }
            }
            Err(status) => {
                // Every refusal is retryable.
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                acknowledged.push(false);
                refusals.count += 1;
                refusals.slowest = refusals.slowest.max(sent.elapsed());
                if status.message().contains("--write-timeout") {
                    refusals.by_deadline += 1;
                }
            }
        }
    }
    // Refused while it was down; accepted again once it is back.
    assert!(refusals.count > 0, "the outage was noticed");
    assert!(
        acknowledged[2 * requests / 3 + 2..].iter().all(|a| *a),
        "{acknowledged:?}"
    );
    // The client retries what was refused.
    for (n, ok) in acknowledged.iter().enumerate() {
        if !ok {
            client.export(request(n, service)).await.unwrap();
        }
    }
    refusals
}

/// An outage that ends while the write of a request sent during it is still being retried:
/// sends request `first` during the outage, ends the outage 3 s later, then sends request
/// `first + 1` and returns how long it waited for its answer (retried until acknowledged, as
/// is `first` if it was refused).
async fn in_flight_outage(
    outage: &mut impl Outage,
    port: u16,
    service: &str,
    first: usize,
) -> Duration {
    let mut client = client(port);
    outage.begin().await;
    let stuck = {
        let (mut client, request) = (client.clone(), request(first, service));
        tokio::spawn(async move { client.export(request).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    outage.end().await;
    let sent = Instant::now();
    let mut answer = client.export(request(first + 1, service)).await;
    let waited = sent.elapsed();
    for _ in 0..10 {
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        answer = client.export(request(first + 1, service)).await;
    }
    answer.unwrap();
    if stuck.await.unwrap().is_err() {
        client.export(request(first, service)).await.unwrap();
    }
    waited
}

/// An OTLP logs client of the collector's gRPC `port`. Its deadline is well above the
/// collector's write deadline, even on a loaded machine: a request the client gives up on
/// comes back CANCELLED, not the collector's answer these tests check.
fn client(port: u16) -> LogsServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(60))
        .connect_lazy();
    LogsServiceClient::new(channel)
}

/// Every record of the `requests` requests is in the lake exactly once.
async fn all_stored_once(lake: &Lake, requests: usize) {
    let total = requests * RECORDS;
    assert_eq!(
        rows(
            lake,
            "SELECT COUNT(*), COUNT(DISTINCT msg) FROM log_entries"
        )
        .await,
        [format!("{total}|{total}")]
    );
}

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `dir`; `None` when this
    /// machine does not let the test mount (it needs root or CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills a file system with one file until it is full, and frees it.
struct Filler(PathBuf);

impl Outage for Filler {
    async fn begin(&mut self) {
        let mut file = std::fs::File::create(&self.0).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let zeros = vec![0u8; chunk];
            while file
                .write_all(&zeros)
                .and_then(|_| file.sync_data())
                .is_ok()
            {}
        }
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .unwrap()
            .write_all(&[0])
            .and_then(|_| std::fs::File::open(&self.0)?.sync_all());
        assert!(full.is_err(), "the file system is full");
    }

    async fn end(&mut self) {
        std::fs::remove_file(&self.0).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_retryable_and_the_collector_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), "32m") else {
        skip(
            "the full-disk test mounts a small tmpfs and needs root or CAP_SYS_ADMIN",
            "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)",
        );
        return;
    };
    let lake_dir = dir.path().join("lake");
    let grpc = free_port();
    let _collector = Killed(collector_command(&lake_dir, grpc).spawn().unwrap());
    let requests = 12;
    let mut filler = Filler(dir.path().join("filler"));
    let refused = send_through(&mut filler, grpc, "disk-full", requests)
        .await
        .count;
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    all_stored_once(&lake, requests).await;
    eprintln!(
        "disk full: {refused} of {requests} requests refused (UNAVAILABLE) while it was full, \
         all stored after retry"
    );
}
