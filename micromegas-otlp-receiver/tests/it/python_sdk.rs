//! The official OpenTelemetry Python SDK, with its OTLP/gRPC exporters, sends traces, logs and
//! metrics to a `micromegas-collector` process; everything comes back from the lake with the
//! expected values.

use crate::common::{certificates, free_port, rows, skip};

use micromegas_lake::{Lake, LakeOptions};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let ok = venv.exists()
        && Command::new(&venv)
            .args([
                "-c",
                "import opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        skip(
            "the OpenTelemetry Python SDK is required: scripts/test.sh installs it in .venv",
            "no .venv with the OpenTelemetry SDK (scripts/test.sh creates it)",
        );
        return None;
    }
    Some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc() {
    python_sdk("grpc", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http() {
    python_sdk("http", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_with_tls() {
    python_sdk("grpc", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_with_tls() {
    python_sdk("http", true).await;
}

/// The SDK sends traces, logs and metrics over `protocol` (`grpc` or `http`), over TLS when
/// `tls` (the collector then serves TLS only, FlightSQL included).
async fn python_sdk(protocol: &str, tls: bool) {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let certificates = match tls {
        true => match certificates(dir.path()) {
            Some(c) => Some(c),
            None => return,
        },
        false => None,
    };
    let (grpc_port, http_port, flight_port) = (free_port(), free_port(), free_port());
    let port = if protocol == "http" {
        http_port
    } else {
        grpc_port
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"));
    command
        .arg("--lake")
        .arg(&lake_dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc_port}")])
        .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
        .args(["--flightsql-addr", &format!("127.0.0.1:{flight_port}")])
        .env_remove("MICROMEGAS_LAKE");
    if let Some((_, cert, key)) = &certificates {
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let mut collector = command.spawn().unwrap();
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the collector did not start listening within 10 s");

    // Connections that never finish a handshake (or send plain text to a TLS server) hold
    // up no other client.
    let idle: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut sdk = Command::new(&python);
    sdk.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/send_otlp.py"
    ))
    .arg(protocol);
    match &certificates {
        Some((ca, ..)) => sdk
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("https://127.0.0.1:{port}"),
            )
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)
            // `requests` lets these override the CA that the HTTP exporter gives it.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE"),
        None => sdk.env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
    };
    let mut sdk = sdk.spawn().unwrap();
    let mut status = None;
    for _ in 0..1200 {
        if let Some(s) = sdk.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.unwrap_or_else(|| {
        let _ = sdk.kill();
        let _ = collector.kill();
        panic!("the Python SDK did not finish within 120 s")
    });
    assert!(status.success(), "the Python SDK failed to export");

    // What was acknowledged is queryable at once through the collector's FlightSQL server.
    let count = "SELECT COUNT(*) FROM spans WHERE service_name = 'py-shop'";
    match &certificates {
        Some((ca, ..)) => {
            assert_eq!(flightsql_tls_count(&python, flight_port, ca, count), 2);
            // A plain-text client is refused on every port.
            for p in [grpc_port, http_port, flight_port] {
                let plain =
                    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{p}"))
                        .unwrap()
                        .connect_timeout(Duration::from_secs(5));
                let refused = async {
                    let channel = plain.connect().await?;
                    arrow_flight::sql::client::FlightSqlServiceClient::new(channel)
                        .execute(count.to_owned(), None)
                        .await
                        .map_err(|e| e.into())
                };
                // Bounded: a client left waiting was not answered either.
                let outcome: Result<Result<_, Box<dyn std::error::Error>>, _> =
                    tokio::time::timeout(Duration::from_secs(20), refused).await;
                assert!(
                    !matches!(outcome, Ok(Ok(_))),
                    "port {p} answered a plain-text client"
                );
            }
        }
        None => assert_eq!(flightsql_count(flight_port, count).await, 2),
    }

    drop(idle);
    // SIGTERM: the collector stops accepting, answers what it accepted, and exits.
    Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status()
        .unwrap();
    let mut exited = None;
    for _ in 0..200 {
        if let Some(s) = collector.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = exited.unwrap_or_else(|| {
        let _ = collector.kill();
        panic!("the collector did not exit within 10 s of SIGTERM")
    });
    assert!(exited.success(), "collector exit status {exited}");

    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, property_get(properties, 'deployment.environment'), \
             property_get(properties, 'telemetry.sdk.language') FROM processes \
             WHERE service_name <> 'micromegas-collector'"
        )
        .await,
        ["py-shop|test|python"]
    );
    let spans = rows(
        &lake,
        "SELECT s.name, p.name, s.target, s.kind, s.status_code, s.status_message, \
         property_get(s.attributes, 'cart.items'), \
         property_get(s.attributes, 'otel.events') LIKE '%cart.validated%', \
         length(s.trace_id), s.trace_id = p.trace_id, \
         property_get(s.attributes, 'otel.scope.version') \
         FROM spans s LEFT JOIN spans p ON s.parent_span_id = p.span_id ORDER BY s.start_time",
    )
    .await;
    assert_eq!(
        spans,
        [
            "checkout||shop.checkout|INTERNAL|UNSET||3|true|32||1.4.0",
            "charge_card|checkout|shop.checkout|CLIENT|ERROR|card declined|||32|true|1.4.0",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT l.level, l.severity_number, l.msg, l.target, s.name FROM log_entries l \
             LEFT JOIN spans s ON l.span_id = s.span_id AND l.trace_id = s.trace_id \
             WHERE l.service_name = 'py-shop' ORDER BY l.time"
        )
        .await,
        [
            "ERROR|17|payment failed for order 42|shop.payments|charge_card",
            "WARN|13|retrying payment|shop.payments|checkout",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT name, unit, kind, value, property_get(properties, 'route'), \
             property_get(properties, 'item'), property_get(properties, 'otel.count'), \
             property_get(properties, 'otel.min'), property_get(properties, 'otel.max'), \
             CAST(property_get(properties, 'otel.start_time_unix_nano') AS BIGINT) \
             BETWEEN CAST(to_unixtime(now()) AS BIGINT) * 1000000000 - 600000000000 \
             AND CAST(time AS BIGINT) \
             FROM measures WHERE service_name = 'py-shop' ORDER BY name"
        )
        .await,
        [
            "checkout.latency|ms|histogram|145.0|/pay||4|5|100|true",
            "orders|{orders}|counter|3.0|/pay|||||true",
            "stock|{items}|gauge|17.0||apple||||",
        ]
    );
    // The SDK's default buckets (…, 5, 10, 25, 50, 75, 100, …) hold 5 | 15, 25 | 100; one
    // cumulative point: the median is halfway into (10, 25], the extremes are min and max.
    assert_eq!(
        rows(
            &lake,
            "SELECT histogram_quantile(0.5, properties), histogram_quantile(1.0, properties), \
             histogram_quantile(0.0, properties) FROM measures \
             WHERE service_name = 'py-shop' AND name = 'checkout.latency'"
        )
        .await,
        ["17.5|100.0|5.0"]
    );

    // The collector's own telemetry, written into the same lake as its own process.
    assert_eq!(
        rows(
            &lake,
            "SELECT property_get(properties, 'signal'), CAST(SUM(value) AS BIGINT) FROM measures \
             WHERE service_name = 'micromegas-collector' AND name = 'collector.rows' \
             GROUP BY 1 ORDER BY 1"
        )
        .await,
        ["logs|2", "metrics|3", "traces|2"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT level, msg FROM log_entries WHERE service_name = 'micromegas-collector' \
             AND msg LIKE 'collector st%' ORDER BY time"
        )
        .await,
        [
            "INFO|collector started",
            "INFO|collector stopped; requests in flight were answered"
        ]
    );
}

/// The one integer `sql` returns, asked through the collector's FlightSQL server over TLS by
/// ADBC's FlightSQL driver, trusting the CA `ca`.
fn flightsql_tls_count(
    python: &std::path::Path,
    port: u16,
    ca: &std::path::Path,
    sql: &str,
) -> i64 {
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/flightsql_tls_count.py"
        ))
        .arg(port.to_string())
        .arg(ca)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ADBC over TLS failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The one integer `sql` returns, asked through the collector's FlightSQL server.
async fn flightsql_count(port: u16, sql: &str) -> i64 {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use futures::TryStreamExt;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let column = batches[0].column(0);
    column
        .as_any()
        .downcast_ref::<micromegas_lake::arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}
