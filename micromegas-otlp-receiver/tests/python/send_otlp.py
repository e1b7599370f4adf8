"""Sends traces, logs and metrics with the official OpenTelemetry Python SDK and its OTLP
exporters (gRPC, or HTTP/protobuf with the argument `http`) to the endpoint in
OTEL_EXPORTER_OTLP_ENDPOINT (over TLS when it is https://, trusting the CA in
OTEL_EXPORTER_OTLP_CERTIFICATE), then flushes and exits.
"""
import logging
import os
import sys

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
if len(sys.argv) > 1 and sys.argv[1] == "http":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    OPTIONS = {}
else:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    # Plain text unless the endpoint is https:// (the CA is then OTEL_EXPORTER_OTLP_CERTIFICATE).
    OPTIONS = {"insecure": not os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("https:")}
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# Every export's result: the script fails if any export did not succeed.
failures = []


def checked(exporter):
    original = exporter.export

    def export(*args, **kwargs):
        result = original(*args, **kwargs)
        if getattr(result, "name", "SUCCESS") != "SUCCESS":
            failures.append(f"{type(exporter).__name__}: {result}")
        return result

    exporter.export = export
    return exporter


resource = Resource.create({"service.name": "py-shop", "deployment.environment": "test"})

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter(**OPTIONS))))
trace.set_tracer_provider(tracer_provider)

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(checked(OTLPLogExporter(**OPTIONS))))
set_logger_provider(logger_provider)
logging.getLogger().addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
logging.getLogger().setLevel(logging.INFO)

reader = PeriodicExportingMetricReader(
    checked(OTLPMetricExporter(**OPTIONS)), export_interval_millis=60_000
)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
metrics.set_meter_provider(meter_provider)

tracer = trace.get_tracer("shop.checkout", "1.4.0")
meter = metrics.get_meter("shop.metrics")
orders = meter.create_counter("orders", unit="{orders}")
latency = meter.create_histogram("checkout.latency", unit="ms")
meter.create_observable_gauge(
    "stock", callbacks=[lambda options: [metrics.Observation(17, {"item": "apple"})]], unit="{items}"
)

with tracer.start_as_current_span("checkout", attributes={"cart.items": 3}) as root:
    root.add_event("cart.validated", {"valid": True})
    with tracer.start_as_current_span("charge_card", kind=trace.SpanKind.CLIENT) as child:
        child.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
        logging.getLogger("shop.payments").error("payment failed for order %d", 42)
    logging.getLogger("shop.payments").warning("retrying payment")
for v in (5, 15, 25, 100):
    latency.record(v, {"route": "/pay"})
orders.add(2, {"route": "/pay"})
orders.add(1, {"route": "/pay"})

# Metrics are exported once, at shutdown (cumulative: one point per series).
ok = tracer_provider.force_flush() and logger_provider.force_flush()
tracer_provider.shutdown()
logger_provider.shutdown()
meter_provider.shutdown()
if failures or not ok:
    print("export failed:", failures or "flush timed out", file=sys.stderr)
    sys.exit(1)
