//! With tokens configured, ingest without the right bearer token is refused on gRPC and HTTP
//! and nothing is written; with one of the tokens it is accepted.

use micromegas_lake::Lake;
use micromegas_otlp_receiver::auth::Tokens;
use micromegas_otlp_receiver::CollectorOptions;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

fn request(msg: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(msg.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn count(lake: &Lake) -> usize {
    let ctx = lake.session().await.unwrap();
    let b = ctx
        .sql("SELECT msg FROM log_entries")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    b.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_enforced_on_grpc_and_http() {
    let served = crate::common::serve(CollectorOptions {
        max_message_bytes: 1 << 20,
        tokens: Tokens::new(["s3cret".to_owned(), "other".to_owned()]),
        ..Default::default()
    })
    .await;
    let lake = served.lake;

    // gRPC: no token, wrong token → UNAUTHENTICATED; right token → stored.
    let mut client = LogsServiceClient::connect(served.grpc.clone())
        .await
        .unwrap();
    let err = client.export(request("no token")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(request("wrong"));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        client.export(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(count(&lake).await, 0, "nothing written");
    let mut right = tonic::Request::new(request("grpc ok"));
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    client.export(right).await.unwrap();

    // HTTP: 401 without or with a wrong token; accepted with another configured token.
    let http = reqwest::Client::new();
    let post = |token: Option<&str>, msg: &str| {
        let mut r = http
            .post(format!("{}/v1/logs", served.http))
            .header("content-type", "application/x-protobuf")
            .body(request(msg).encode_to_vec());
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send()
    };
    assert_eq!(post(None, "no").await.unwrap().status(), 401);
    assert_eq!(post(Some("s3cre"), "no").await.unwrap().status(), 401);
    assert_eq!(count(&lake).await, 1, "only the gRPC request with a token");
    assert_eq!(post(Some("other"), "http ok").await.unwrap().status(), 200);
    assert_eq!(count(&lake).await, 2);
    // Health needs no token.
    let health = http
        .get(format!("{}/health", served.http))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
