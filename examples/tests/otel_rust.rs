//! The OpenTelemetry Rust SDK's OTLP/gRPC exporter (the `otel_shop` example) against a real
//! collector on loopback: traces, logs and metrics come back from SQL with exact values.

use micromegas_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_otlp_receiver::{Collector, CollectorOptions};

async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = lake.session().await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                f.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_otlp_exporter_traces_logs_and_metrics() {
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        Collector::new(lake.clone(), CollectorOptions::default()),
        listener,
        std::future::pending(),
    ));
    tokio::task::spawn_blocking(move || {
        micromegas_examples::otel_shop::run(&endpoint, "rust-shop").map_err(|e| e.to_string())
    })
    .await
    .unwrap()
    .unwrap();

    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, property_get(properties, 'deployment.environment'), \
             property_get(properties, 'telemetry.sdk.language') FROM processes"
        )
        .await,
        ["rust-shop|test|rust"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, p.name, s.target, s.kind, s.status_code, s.status_message, \
             property_get(s.attributes, 'cart.items'), \
             property_get(s.attributes, 'otel.events') LIKE '%cart.validated%', \
             length(s.trace_id), s.trace_id = p.trace_id \
             FROM spans s LEFT JOIN spans p ON s.parent_span_id = p.span_id ORDER BY s.start_time"
        )
        .await,
        [
            "checkout||shop.checkout|INTERNAL|UNSET||3|true|32|",
            "charge_card|checkout|shop.checkout|CLIENT|ERROR|card declined|||32|true",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT l.level, l.severity_number, l.msg, l.target, s.name FROM log_entries l \
             LEFT JOIN spans s ON l.span_id = s.span_id AND l.trace_id = s.trace_id ORDER BY l.time"
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
             property_get(properties, 'otel.min'), property_get(properties, 'otel.max') \
             FROM measures ORDER BY name"
        )
        .await,
        [
            "checkout.latency|ms|histogram|145.0|/pay||4|5|100",
            "orders|{orders}|counter|3.0|/pay||||",
            "stock|{items}|gauge|17.0||apple|||",
        ]
    );
}
