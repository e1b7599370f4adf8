//! Helpers shared by the collector's integration tests.

use micromegas_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use micromegas_lake::Lake;

/// Runs `sql` on the lake; rows as `|`-separated text (NULL as empty).
pub async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = lake.session().await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = f.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// Tests that start the process-wide micromegas pipeline take turns.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A collector on a memory lake, serving gRPC and HTTP on free loopback ports until the test
/// ends.
pub struct Served {
    pub lake: Lake,
    pub collector: micromegas_otlp_receiver::Collector,
    /// `http://127.0.0.1:PORT` of the gRPC server.
    pub grpc: String,
    /// `http://127.0.0.1:PORT` of the HTTP server.
    pub http: String,
}

pub async fn serve(options: micromegas_otlp_receiver::CollectorOptions) -> Served {
    let lake = Lake::open("memory://", micromegas_lake::LakeOptions::default())
        .await
        .unwrap();
    let collector = micromegas_otlp_receiver::Collector::new(lake.clone(), options);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        collector.clone(),
        grpc,
        None,
        std::future::pending(),
    ));
    tokio::spawn(micromegas_otlp_receiver::http::serve(
        collector.clone(),
        http,
        None,
        std::future::pending(),
    ));
    Served {
        lake,
        collector,
        grpc: format!("http://{grpc_addr}"),
        http: format!("http://{http_addr}"),
    }
}

/// Runs `work` with the process-wide pipeline capturing into memory (tests take turns) and
/// returns the batches it made.
pub fn capture_all(
    service: &str,
    work: impl FnOnce(),
) -> Vec<micromegas_core::transit::batch::Batch> {
    let _serial = serial();
    let sink = std::sync::Arc::new(micromegas_core::sink::MemorySink::new());
    let options = micromegas_core::Options::default().service_name(service);
    let guard = micromegas_core::init(sink.clone(), options).unwrap();
    work();
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    sink.batches()
}

/// [`capture_all`] for work small enough to make one batch.
pub fn capture(service: &str, work: impl FnOnce()) -> micromegas_core::transit::batch::Batch {
    let mut batches = capture_all(service, work);
    assert_eq!(batches.len(), 1);
    batches.remove(0)
}

#[path = "../../../micromegas-lake/tests/it/ports.rs"]
mod ports;
pub use ports::free_port;

/// Waits (`seconds` at most) until something listens on the loopback `port`.
pub async fn wait_for_port(port: u16, seconds: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {seconds} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `micromegas-collector` on the lake `lake` (a directory or a URL), gRPC on the loopback
/// `grpc` port, HTTP on any free port, no FlightSQL, no self-telemetry (add arguments before
/// spawning it).
pub fn collector_command(lake: impl AsRef<std::ffi::OsStr>, grpc: u16) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_micromegas-collector"));
    command
        .arg("--lake")
        .arg(lake)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--no-flightsql",
            "--no-self-telemetry",
        ])
        .env_remove("MICROMEGAS_LAKE")
        .env_remove("MICROMEGAS_CATALOG");
    command
}

/// A child process killed when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test that cannot run here says so and returns, unless the test script requires every
/// service (`MICROMEGAS_TEST_REQUIRE_SERVICES`): then it fails, saying what is `required`.
pub fn skip(required: &str, skipped: &str) {
    assert!(
        std::env::var_os("MICROMEGAS_TEST_REQUIRE_SERVICES").is_none(),
        "{required}"
    );
    eprintln!("skipped: {skipped}");
}

/// A new database on the test PostgreSQL server (`admin_url` names its `postgres` database),
/// so that runs never see each other's rows; returns its URL.
pub async fn fresh_database(admin_url: &str, prefix: &str) -> String {
    use sqlx::Connection;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// An OTLP trace export of `spans` from the service `service`.
pub fn spans_request(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.to_owned())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A certificate authority and a server certificate it signed for 127.0.0.1 and localhost,
/// made with the `openssl` command in `dir`: (CA certificate, server certificate, server key).
pub fn certificates(
    dir: &std::path::Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2";
    let steps = [
        format!(
            "req -x509 {ec} -subj /CN=micromegas-test-ca -addext basicConstraints=critical,CA:TRUE \
             -keyout {} -out {}",
            path("ca.key"),
            path("ca.pem")
        ),
        format!(
            "req {ec} -subj /CN=localhost -keyout {} -out {}",
            path("server.key"),
            path("server.csr")
        ),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            path("server.csr"),
            path("ca.pem"),
            path("ca.key"),
            path("ext.cnf"),
            path("server.pem")
        ),
    ];
    for step in steps {
        let made = std::process::Command::new("openssl")
            .args(step.split_whitespace())
            .stderr(std::process::Stdio::null())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            skip(
                &format!(
                    "the openssl command could not make the test certificates (openssl {step})"
                ),
                "the openssl command could not make the test certificates",
            );
            return None;
        }
    }
    Some((
        path("ca.pem").into(),
        path("server.pem").into(),
        path("server.key").into(),
    ))
}
