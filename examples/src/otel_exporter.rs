//! A service instrumented with the OpenTelemetry Rust SDK and its OTLP/gRPC exporter (not with
//! micromegas): a trace with nested spans, an event and attributes, logs correlated with the
//! spans, and a counter, a gauge and a histogram, sent to any OTLP endpoint (a
//! micromegas-collector, say) and flushed.

use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// What can fail: building an exporter, or an export or flush.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sends the shop's telemetry to `endpoint` (e.g. `http://127.0.0.1:4317`) as the service
/// `service`, then flushes every provider. Must run inside a multi-threaded tokio runtime's
/// context but not on one of its worker threads (the SDK's simple processors wait for each
/// export): call it from `tokio::task::spawn_blocking`.
pub fn run(endpoint: &str, service: &str) -> Result<(), Error> {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build();
    let spans = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let logs = LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let metrics = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(spans)
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(logs)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(metrics)
        .build();

    let tracer = tracer_provider.tracer("shop.checkout");
    let logger = logger_provider.logger("shop.payments");
    let log = |severity: Severity, text: &'static str, body: String, cx: &Context| {
        let mut record = logger.create_log_record();
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(body.into());
        let sc = cx.span().span_context().clone();
        record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
        logger.emit(record);
    };

    let mut root = tracer.start("checkout");
    root.set_attribute(KeyValue::new("cart.items", 3));
    root.add_event("cart.validated", vec![KeyValue::new("valid", true)]);
    let root_cx = Context::current_with_span(root);
    {
        let mut child = tracer
            .span_builder("charge_card")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &root_cx);
        child.set_status(Status::error("card declined"));
        let child_cx = Context::current_with_span(child);
        log(
            Severity::Error,
            "ERROR",
            format!("payment failed for order {}", 42),
            &child_cx,
        );
        child_cx.span().end();
    }
    log(
        Severity::Warn,
        "WARN",
        "retrying payment".to_owned(),
        &root_cx,
    );
    root_cx.span().end();

    let meter = meter_provider.meter("shop.metrics");
    let route = [KeyValue::new("route", "/pay")];
    let orders = meter.u64_counter("orders").with_unit("{orders}").build();
    orders.add(2, &route);
    orders.add(1, &route);
    meter
        .u64_gauge("stock")
        .with_unit("{items}")
        .build()
        .record(17, &[KeyValue::new("item", "apple")]);
    let latency = meter
        .f64_histogram("checkout.latency")
        .with_unit("ms")
        .build();
    for v in [5.0, 15.0, 25.0, 100.0] {
        latency.record(v, &route);
    }

    tracer_provider.shutdown()?;
    logger_provider.shutdown()?;
    meter_provider.shutdown()?;
    Ok(())
}
