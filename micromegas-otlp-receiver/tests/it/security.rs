//! Security of a running `micromegas-collector` with a token: every port (OTLP/gRPC, native
//! gRPC, OTLP/HTTP, native HTTP, FlightSQL) refuses calls without it or with a wrong one;
//! FlightSQL refuses statements that write or reach outside the lake unless the caller has
//! the admin token; the tokens never appear in the collector's output or in its own
//! telemetry; object keys come only from the collector's own ids, whatever names and ids
//! clients send.

use crate::common::{free_port, rows, wait_for_port};
use micromegas_core::sink::{Sink, SinkError};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::process::{Command, Stdio};

const TOKEN: &str = "tok-SECRET-7f3a";
const WRONG: &str = "wrong-SECRET-99c1";
const ADMIN: &str = "admin-SECRET-51d0";

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

/// Logs whose service name and attributes look like paths to escape the lake.
fn hostile_logs() -> ExportLogsServiceRequest {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: text(v),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", "../../../etc/passwd"),
                    attr("host.name", "/tmp/evil\0host"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    body: text("..\\..\\windows"),
                    attributes: vec![attr("file", "../../x.parquet")],
                    trace_id: b"../../../../tmp/".to_vec(),
                    span_id: b"../../x/".to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn bearer<T>(mut req: tonic::Request<T>, token: &str) -> tonic::Request<T> {
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_needs_the_token_and_secrets_stay_out_of_logs() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let (grpc, http, flight) = (free_port(), free_port(), free_port());
    let collector = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
        .arg("--lake")
        .arg(&lake_dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--flightsql-addr", &format!("127.0.0.1:{flight}")])
        .args(["--auth-token", TOKEN])
        .args(["--admin-token", ADMIN])
        .env_remove("MICROMEGAS_LAKE")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for port in [grpc, http, flight] {
        wait_for_port(port, 10, "the collector").await;
    }
    let grpc_url = format!("http://127.0.0.1:{grpc}");
    let http_url = format!("http://127.0.0.1:{http}");

    // OTLP/gRPC.
    let mut logs = LogsServiceClient::connect(grpc_url.clone()).await.unwrap();
    for req in [
        tonic::Request::new(hostile_logs()),
        bearer(tonic::Request::new(hostile_logs()), WRONG),
    ] {
        let err = logs.export(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
    // OTLP/HTTP and native over HTTP.
    let client = reqwest::Client::new();
    for (path, content_type) in [
        ("/v1/logs", "application/x-protobuf"),
        ("/v1/native", "application/x-micromegas-transit"),
    ] {
        for token in [None, Some(WRONG)] {
            let mut req = client
                .post(format!("{http_url}{path}"))
                .header("content-type", content_type)
                .body(hostile_logs().encode_to_vec());
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            assert_eq!(req.send().await.unwrap().status(), 401, "{path} {token:?}");
        }
    }
    // Native gRPC, through the network sink.
    let batch = tokio::task::spawn_blocking(|| {
        crate::common::capture("sec-native", || micromegas_core::info!("native"))
    })
    .await
    .unwrap();
    let refused = {
        let url = grpc_url.clone();
        tokio::task::spawn_blocking(move || {
            NetworkSink::connect(&url, NetworkOptions::default().token(WRONG))
                .unwrap()
                .write_batch(&batch)
        })
        .await
        .unwrap()
    };
    assert!(
        matches!(refused, Err(SinkError::Rejected(_))),
        "{refused:?}"
    );
    // FlightSQL: without a token, with a wrong one.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{flight}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flightsql = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
    let err = flightsql
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing or wrong token"), "{err}");
    flightsql.set_token(WRONG.to_owned());
    let err = flightsql
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing or wrong token"), "{err}");

    // With the token: the hostile names are stored as data, and queries work.
    let stored = logs
        .export(bearer(tonic::Request::new(hostile_logs()), TOKEN))
        .await
        .unwrap();
    assert_eq!(stored.into_inner().partial_success, None);
    flightsql.set_token(TOKEN.to_owned());
    flightsql.execute("SELECT 1".into(), None).await.unwrap();

    // Statements that write or reach outside the lake: refused with the query token, run
    // with the admin token.
    let exported = dir.path().join("exported");
    let copy = format!(
        "COPY (SELECT 1 AS x) TO '{}' STORED AS CSV",
        exported.display()
    );
    let external = "CREATE EXTERNAL TABLE passwd (line VARCHAR) STORED AS CSV \
                    LOCATION '/etc/passwd'";
    for sql in [
        copy.as_str(),
        external,
        "SET datafusion.execution.batch_size = 1",
    ] {
        let err = flightsql.execute(sql.into(), None).await.unwrap_err();
        assert!(
            err.to_string().contains("read-only") && err.to_string().contains("admin token"),
            "{sql}: {err}"
        );
    }
    assert!(!exported.exists());
    flightsql.set_token(ADMIN.to_owned());
    let info = flightsql.execute(copy.clone(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = flightsql.do_get(ticket).await.unwrap();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        batch.unwrap();
    }
    assert!(exported.exists(), "the admin's COPY wrote its file");
    flightsql.execute("SELECT 1".into(), None).await.unwrap();

    Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || collector.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("collector started"), "{said}");
    for secret in [TOKEN, WRONG, ADMIN] {
        assert!(!said.contains(secret), "{said}");
    }

    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&lake, "SELECT service_name, msg FROM log_entries WHERE service_name <> 'micromegas-collector'").await,
        ["../../../etc/passwd|..\\..\\windows"]
    );
    let own = rows(
        &lake,
        "SELECT msg, array_to_string(map_values(properties), ' ') FROM log_entries \
         WHERE service_name = 'micromegas-collector'",
    );
    let own = own.await.join("\n");
    assert!(
        own.contains("missing or wrong bearer token"),
        "refusals are logged: {own}"
    );
    for secret in [TOKEN, WRONG, ADMIN] {
        assert!(!own.contains(secret), "{own}");
    }

    // Every object in the lake has a key the lake made up.
    let mut keys = Vec::new();
    let mut todo = vec![lake_dir.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                keys.push(
                    p.strip_prefix(&lake_dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    // A local lake with its SQLite catalog keeps raw objects' bytes in the catalog.
    for path in rows(&lake, "SELECT DISTINCT object_path FROM blocks").await {
        let key = path.strip_prefix("catalog:").unwrap_or(&path);
        keys.push(key.to_owned());
    }
    assert!(keys.iter().any(|k| k.starts_with("raw/")), "{keys:?}");
    for key in &keys {
        let parts: Vec<&str> = key.split('/').collect();
        let generated = |name: &str, ext: &[&str]| {
            name.split_once('.').is_some_and(|(id, e)| {
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && ext.contains(&e)
            })
        };
        let ok = match parts.as_slice() {
            [file] => file.starts_with("catalog.sqlite"),
            ["raw", day, hour, name] => {
                day.len() == 10 && hour.len() == 2 && generated(name, &["mmtb", "arrows"])
            }
            ["tables", table, day, hour, name] => {
                ["log_entries", "measures", "spans", "span_intervals"].contains(table)
                    && day.len() == 10
                    && hour.len() == 2
                    && generated(name, &["parquet"])
            }
            _ => false,
        };
        assert!(ok, "unexpected object key {key:?}");
    }
}
