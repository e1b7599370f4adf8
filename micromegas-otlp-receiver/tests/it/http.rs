//! OTLP/HTTP (protobuf and JSON, gzip), native block ingest and health on a real server on
//! loopback; bad input gets the documented error and the server keeps serving.

use crate::common::{capture, rows, serve};
use micromegas_otlp_receiver::{Collector, CollectorOptions};

use micromegas_lake::{Lake, LakeOptions};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn spans() -> ExportTraceServiceRequest {
    let span = |id: u8, trace: Vec<u8>| Span {
        trace_id: trace,
        span_id: vec![id; 8],
        name: format!("op{id}"),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_500,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, vec![9; 16]), span(2, vec![0; 16])],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

const JSON_LOGS: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},"scopeLogs":[{"scope":{"name":"js"},"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":13,"body":{"stringValue":"hello json"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;

fn native_batch() -> Vec<u8> {
    capture("native-app", || {
        micromegas_core::info!("native {}", 1);
        micromegas_core::info!("native {}", 2);
    })
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_native_ingest_and_errors() {
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(micromegas_otlp_receiver::http::serve(
        Collector::new(
            lake.clone(),
            CollectorOptions {
                max_message_bytes: 64 * 1024,
                ..Default::default()
            },
        ),
        listener,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let post = |path: &str, ct: &str, body: Vec<u8>, gz: bool| {
        let mut r = client
            .post(format!("{base}{path}"))
            .header("content-type", ct)
            .body(if gz { gzip(&body) } else { body });
        if gz {
            r = r.header("content-encoding", "gzip");
        }
        r.send()
    };

    // Protobuf, gzip: one valid span kept, the all-zero trace id rejected.
    let r = post(
        "/v1/traces",
        "application/x-protobuf",
        spans().encode_to_vec(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = reply.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("all zeros"));

    // JSON.
    let r = post("/v1/logs", "application/json", JSON_LOGS.into(), false)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");

    // Native blocks, twice: stored once.
    let batch = native_batch();
    let r = post(
        "/v1/native",
        micromegas_otlp_receiver::http::NATIVE_CONTENT_TYPE,
        batch.clone(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v["blocks_written"].as_u64().unwrap() > 0, "{v}");
    let r = post(
        "/v1/native",
        micromegas_otlp_receiver::http::NATIVE_CONTENT_TYPE,
        batch,
        false,
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["blocks_written"], 0, "{v}");

    // Bad input: the documented status, and the server keeps serving.
    let bad = [
        ("/v1/traces", "text/plain", b"x".to_vec(), false, 415),
        (
            "/v1/traces",
            "application/x-protobuf",
            vec![0x0a, 0xff, 0xff],
            false,
            400,
        ),
        (
            "/v1/logs",
            "application/json",
            b"{\"resourceLogs\": 7}".to_vec(),
            false,
            400,
        ),
        (
            "/v1/traces",
            "application/x-protobuf",
            vec![0; 100 * 1024],
            false,
            413,
        ),
        (
            "/v1/traces",
            "application/x-protobuf",
            vec![0; 10 << 20],
            true,
            413,
        ),
        (
            "/v1/native",
            "application/x-micromegas-transit",
            b"MMTBgarbage".to_vec(),
            false,
            400,
        ),
        ("/v1/native", "text/plain", b"x".to_vec(), false, 415),
    ];
    for (path, ct, body, gz, status) in bad {
        let r = post(path, ct, body, gz).await.unwrap();
        assert_eq!(r.status(), status, "{path} {ct} gzip={gz}");
    }
    let r = client
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(rows(&lake, "SELECT name FROM spans").await, ["op1"]);
    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, level, msg, trace_id, span_id FROM log_entries ORDER BY service_name, msg"
        )
        .await,
        [
            "json-svc|WARN|hello json|5b8efff798038103d269b633813fc60c|eee19b7ec3c1b174",
            "native-app|INFO|native 1||",
            "native-app|INFO|native 2||",
        ]
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_inflight_budget_http_answers_503_with_retry_after() {
    let served = serve(CollectorOptions {
        max_inflight_bytes: 4096,
        ..Default::default()
    })
    .await;
    let (lake, collector) = (served.lake, served.collector);
    let url = format!("{}/v1/traces", served.http);
    let post = || {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(spans().encode_to_vec())
            .send()
    };
    // The budget is taken (as by writes in flight): refused, nothing written.
    let held = collector.admit("test", "traces", 4096).unwrap();
    let busy = post().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    let body = busy.bytes().await.unwrap();
    let status = micromegas_otlp_receiver::rpc_status::RpcStatus::decode(&body[..]).unwrap();
    assert_eq!(status.code, 14);
    assert!(
        status.message.contains("--max-inflight-mib"),
        "{}",
        status.message
    );
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM spans").await, ["0"]);
    // Once the budget is free again, the same request is taken.
    drop(held);
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM spans").await, ["1"]);
}

/// What protobuf's JSON writers send, and JSON numbers cannot hold: doubles that are not
/// finite, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; enums by name; 64-bit
/// integers as strings. All of it is stored, spelled the same way in text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_doubles_json_cannot_hold_are_kept() {
    let served = serve(CollectorOptions::default()).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: String| {
        client
            .post(format!("{}{path}", served.http))
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
    };
    let resource = r#""resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-floats"}}]}"#;
    let traces = format!(
        r#"{{"resourceSpans":[{{{resource},"scopeSpans":[{{"spans":[{{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "name":"ratios","kind":"SPAN_KIND_SERVER",
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000500,
        "attributes":[{{"key":"nan","value":{{"doubleValue":"NaN"}}}},
                      {{"key":"inf","value":{{"doubleValue":"Infinity"}}}},
                      {{"key":"half","value":{{"doubleValue":"0.5"}}}},
                      {{"key":"list","value":{{"arrayValue":{{"values":[
                          {{"doubleValue":1.5}},{{"doubleValue":"-Infinity"}}]}}}}}}]}}]}}]}}]}}"#
    );
    let r = post("/v1/traces", traces).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let metrics = format!(
        r#"{{"resourceMetrics":[{{{resource},"scopeMetrics":[{{"metrics":[
        {{"name":"load","gauge":{{"dataPoints":[{{"timeUnixNano":"1700000000000000000","asDouble":"NaN"}},
                                              {{"timeUnixNano":"1700000000000000001","asDouble":"Infinity"}}]}}}},
        {{"name":"latency","histogram":{{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA",
          "dataPoints":[{{"timeUnixNano":"1700000000000000000","count":"2","sum":"Infinity",
          "bucketCounts":["1","1"],"explicitBounds":["-Infinity"],"min":"-Infinity","max":"NaN"}}]}}}}]}}]}}]}}"#
    );
    let r = post("/v1/metrics", metrics).await.unwrap();
    assert_eq!(r.status(), 200);
    let reply: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    // Nothing rejected: a full success leaves `partialSuccess` out.
    assert_eq!(reply, serde_json::json!({}));

    let lake = &served.lake;
    assert_eq!(
        rows(
            lake,
            "SELECT kind, property_get(attributes, 'nan'), property_get(attributes, 'inf'), \
             property_get(attributes, 'half'), property_get(attributes, 'list'), duration_ns \
             FROM spans"
        )
        .await,
        ["SERVER|NaN|Infinity|0.5|[1.5,\"-Infinity\"]|500"]
    );
    assert_eq!(
        rows(
            lake,
            "SELECT name, CAST(value AS VARCHAR), property_get(properties, 'otel.explicit_bounds'), \
             property_get(properties, 'otel.min'), property_get(properties, 'otel.max') \
             FROM measures ORDER BY name, time"
        )
        .await,
        [
            "latency|inf|-Infinity|-Infinity|NaN",
            "load|NaN|||",
            "load|inf|||",
        ]
    );
}
