//! An app with MicromegasLayer sends its blocks through the network sink to a collector over
//! gRPC; a trace started by an OpenTelemetry service (OTLP) and continued by the app (its root
//! span carries the W3C `traceparent`) comes back as one tree. Retries are idempotent, a wrong
//! token is refused, a collector over its in-flight budget answers with backpressure.

use crate::common::{capture, rows, serial, serve};
use micromegas_core::sink::{Sink, SinkError};
use micromegas_lake::Lake;
use micromegas_otlp_receiver::auth::Tokens;
use micromegas_otlp_receiver::rpc_status::retry_delay;
use micromegas_otlp_receiver::{Collector, CollectorOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use micromegas_tracing_layer::MicromegasLayer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTEL_SPAN: &str = "00f067aa0ba902b7";

fn otel_root(now: u64) -> ExportTraceServiceRequest {
    let service = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("frontend".into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: (0..16)
                        .map(|i| u8::from_str_radix(&TRACE[2 * i..2 * i + 2], 16).unwrap())
                        .collect(),
                    span_id: (0..8)
                        .map(|i| u8::from_str_radix(&OTEL_SPAN[2 * i..2 * i + 2], 16).unwrap())
                        .collect(),
                    name: "GET /checkout".into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: now - 50_000_000,
                    end_time_unix_nano: now + 50_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn start(tokens: Tokens, max_inflight_bytes: usize) -> (Lake, Collector, String) {
    let served = serve(CollectorOptions {
        tokens,
        max_inflight_bytes,
        ..Default::default()
    })
    .await;
    (served.lake, served.collector, served.grpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_spans_continue_an_otel_trace_through_the_network_sink() {
    let (lake, _collector, url) = start(Tokens::new(["t0ken".to_owned()]), 64 << 20).await;
    let now = micromegas_lake::catalog::now_nanos() as u64;
    let mut otlp = TraceServiceClient::connect(url.clone()).await.unwrap();
    let mut request = tonic::Request::new(otel_root(now));
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    otlp.export(request).await.unwrap();

    // The app: a layer whose pipeline sends to the collector, on a thread of its own (the
    // guard's flush waits for the network).
    let stats = tokio::task::spawn_blocking(move || {
        let _serial = serial();
        let sink = NetworkSink::connect(&url, NetworkOptions::default().token("t0ken")).unwrap();
        let (layer, guard) = MicromegasLayer::builder()
            .service_name("shop")
            .sink(Arc::new(sink))
            .flush_period(Duration::from_millis(50))
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let traceparent = format!("00-{TRACE}-{OTEL_SPAN}-01");
            tracing::info_span!("checkout", traceparent = %traceparent, cart = 3).in_scope(|| {
                tracing::info_span!("charge_card").in_scope(|| {
                    tracing::warn!(amount = 42, "card charged after retry");
                    // The native API's spans and logs join the same tree and trace.
                    micromegas_core::span_scope!("authorize");
                    micromegas_core::info!("authorized for {}", 42);
                });
            });
        });
        guard.shutdown()
    })
    .await
    .unwrap();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");

    let tree = format!(
        "SELECT s.service_name, s.name, coalesce(p.name, '-') FROM spans s \
         LEFT JOIN spans p ON s.parent_span_id = p.span_id AND p.trace_id = s.trace_id \
         WHERE s.trace_id = '{TRACE}' ORDER BY s.start_time"
    );
    assert_eq!(
        rows(&lake, &tree).await,
        [
            "frontend|GET /checkout|-",
            "shop|checkout|GET /checkout",
            "shop|charge_card|checkout",
            "shop|authorize|charge_card"
        ]
    );
    let logs = format!(
        "SELECT l.service_name, l.msg, s.name FROM log_entries l \
         JOIN spans s ON l.span_id = s.span_id AND l.trace_id = s.trace_id \
         WHERE l.trace_id = '{TRACE}' ORDER BY l.time"
    );
    assert_eq!(
        rows(&lake, &logs).await,
        [
            "shop|card charged after retry|charge_card",
            "shop|authorized for 42|authorize"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_sink_sends_over_tls_to_a_collector_serving_tls() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = crate::common::certificates(dir.path()) else {
        return;
    };
    let lake = Lake::open("memory://", micromegas_lake::LakeOptions::default())
        .await
        .unwrap();
    let collector = Collector::new(lake.clone(), CollectorOptions::default());
    let tls = micromegas_lake::tls::ServerTls::load(&cert, &key, &[micromegas_lake::tls::ALPN_H2])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        micromegas_otlp_receiver::grpc::serve(
            collector,
            listener,
            Some(tls),
            std::future::pending(),
        )
        .await
    });
    let ca = std::fs::read(ca).unwrap();
    let stats = tokio::task::spawn_blocking(move || {
        // The CA is the test's own: without it, the system's CAs do not trust the collector.
        let probe = capture("probe", || micromegas_core::info!("probe"));
        let untrusted = format!("https://localhost:{port}");
        let sink = NetworkSink::connect(&untrusted, NetworkOptions::default()).unwrap();
        assert!(sink.write_batch(&probe).is_err());
        let _serial = serial();
        let url = format!("https://localhost:{port}");
        let sink =
            NetworkSink::connect(&url, NetworkOptions::default().ca_certificate(ca)).unwrap();
        let (layer, guard) = MicromegasLayer::builder()
            .service_name("over-tls")
            .sink(Arc::new(sink))
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..3 {
                tracing::info!(i, "sent over TLS");
            }
        });
        guard.shutdown()
    })
    .await
    .unwrap();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), MIN(msg) FROM log_entries WHERE service_name = 'over-tls'"
        )
        .await,
        ["3|sent over TLS"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_idempotent_and_refusals_are_mapped() {
    let (lake, collector, url) = start(Tokens::new(["t0ken".to_owned()]), 4096).await;
    let batch = tokio::task::spawn_blocking(|| capture("retry", || micromegas_core::info!("one")))
        .await
        .unwrap();
    let (ok, wrong, down) = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let sink =
                NetworkSink::connect(&url, NetworkOptions::default().token("t0ken")).unwrap();
            let encoded = bytes::Bytes::from(batch.encode());
            let first = sink.send(encoded.clone()).unwrap();
            let again = sink.send(encoded).unwrap();
            let wrong = NetworkSink::connect(&url, NetworkOptions::default().token("nope"))
                .unwrap()
                .write_batch(&batch);
            // Nothing listens on port 9 of loopback here: retry later.
            let down = NetworkSink::connect("http://127.0.0.1:9", NetworkOptions::default())
                .unwrap()
                .write_batch(&batch);
            ((first, again), wrong, down)
        })
        .await
        .unwrap()
    };
    let (first, again) = ok;
    assert!(first.blocks_written > 0);
    assert_eq!(
        (again.blocks_written, again.blocks_skipped),
        (0, first.blocks_written)
    );
    assert!(matches!(wrong, Err(SinkError::Rejected(m)) if m.contains("Unauthenticated")));
    assert!(matches!(down, Err(SinkError::Retryable(_))), "{down:?}");
    assert_eq!(
        rows(
            &lake,
            "SELECT msg FROM log_entries WHERE service_name = 'retry'"
        )
        .await,
        ["one"]
    );

    // Over the in-flight budget (held here), a write is refused with UNAVAILABLE + RetryInfo.
    let held = collector.admit("test", "native", 4096).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let sink = NetworkSink::connect(&url, NetworkOptions::default().token("t0ken")).unwrap();
        sink.send(bytes::Bytes::from_static(b"x")).unwrap_err()
    })
    .await
    .unwrap();
    drop(held);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("--max-inflight-mib"),
        "{status:?}"
    );
    assert_eq!(retry_delay(&status), Some(Duration::from_secs(1)));
}
