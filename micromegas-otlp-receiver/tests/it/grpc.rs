//! OTLP/gRPC into the lake through a real server on loopback: traces and logs with their
//! fields, gzip, partial success for invalid items, idempotent retries.

use crate::common::rows;
use micromegas_otlp_receiver::{Collector, CollectorOptions};

use micromegas_lake::{Lake, LakeOptions};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, summary_data_point, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use tonic::codec::CompressionEncoding;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s("checkout")),
            kv("host.name", s("node-7")),
            kv("deployment.environment", s("prod")),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "checkout.http".into(),
        version: "1.2".into(),
        ..Default::default()
    })
}

pub(crate) fn traces() -> ExportTraceServiceRequest {
    let t0 = 1_700_000_000_000_000_000u64;
    let root = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![1; 8],
        name: "POST /pay".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: t0,
        end_time_unix_nano: t0 + 9_000_000,
        attributes: vec![
            kv("http.status_code", any_value::Value::IntValue(500)),
            kv("retry", any_value::Value::BoolValue(true)),
        ],
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        events: vec![span::Event {
            time_unix_nano: t0 + 1,
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("ValueError"))],
            ..Default::default()
        }],
        ..Default::default()
    };
    let child = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "SELECT".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: t0 + 1_000_000,
        end_time_unix_nano: t0 + 3_000_000,
        links: vec![span::Link {
            trace_id: vec![0xcd; 16],
            span_id: vec![3; 8],
            ..Default::default()
        }],
        ..Default::default()
    };
    let invalid = Span {
        trace_id: vec![1, 2, 3],
        span_id: vec![4; 8],
        name: "bad".into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![root, child, invalid],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub(crate) fn logs() -> ExportLogsServiceRequest {
    let t0 = 1_700_000_000_005_000_000u64;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: t0,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(s("payment failed")),
                        }),
                        attributes: vec![kv("order", any_value::Value::IntValue(42))],
                        trace_id: vec![0xab; 16],
                        span_id: vec![1; 8],
                        ..Default::default()
                    },
                    LogRecord {
                        observed_time_unix_nano: t0 + 1,
                        severity_text: "warning".into(),
                        body: Some(AnyValue {
                            value: Some(s("retrying")),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub(crate) fn metrics() -> ExportMetricsServiceRequest {
    let t = 1_700_000_000_010_000_000u64;
    let number = |v: number_data_point::Value, attrs: Vec<KeyValue>| NumberDataPoint {
        time_unix_nano: t,
        value: Some(v),
        attributes: attrs,
        ..Default::default()
    };
    let metric = |name: &str, unit: &str, data: metric::Data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    let histogram = |counts: Vec<u64>| {
        metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: t,
                count: counts.iter().sum(),
                sum: Some(12.5),
                bucket_counts: counts,
                explicit_bounds: vec![1.0, 5.0],
                min: Some(0.5),
                max: Some(7.0),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        })
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(
                        "queue.depth",
                        "{items}",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![number(
                                number_data_point::Value::AsInt(7),
                                vec![kv("queue", s("orders"))],
                            )],
                        }),
                    ),
                    metric(
                        "requests",
                        "{requests}",
                        metric::Data::Sum(Sum {
                            data_points: vec![number(
                                number_data_point::Value::AsDouble(3.0),
                                vec![],
                            )],
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        }),
                    ),
                    metric("latency", "s", histogram(vec![1, 2, 1])),
                    metric("broken", "s", histogram(vec![1])),
                    metric(
                        "rpc.duration",
                        "ms",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: t,
                                count: 10,
                                sum: 55.0,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 5.0,
                                    },
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 9.9,
                                    },
                                ],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_traces_logs_and_metrics_land_in_the_lake() {
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        Collector::new(lake.clone(), CollectorOptions::default()),
        listener,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}");
    let mut tc = TraceServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let reply = tc.export(traces()).await.unwrap().into_inner();
    let partial = reply.partial_success.expect("one span is invalid");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace id has 3 bytes"),
        "{}",
        partial.error_message
    );
    // A retry of the same request stores nothing new.
    tc.export(traces()).await.unwrap();
    let mut lc = LogsServiceClient::connect(url).await.unwrap();
    let reply = lc.export(logs()).await.unwrap().into_inner();
    assert!(reply.partial_success.is_none());

    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, hostname, property_get(properties, 'deployment.environment') FROM processes"
        )
        .await,
        ["checkout|node-7|prod"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT trace_id, span_id, parent_span_id, name, target, kind, status_code, \
             status_message, duration_ns, property_get(attributes, 'http.status_code'), \
             property_get(attributes, 'retry') FROM spans ORDER BY start_time"
        )
        .await,
        [
            "abababababababababababababababab|0101010101010101||POST /pay|checkout.http|SERVER|ERROR|boom|9000000|500|true",
            "abababababababababababababababab|0202020202020202|0101010101010101|SELECT|checkout.http|CLIENT|UNSET||2000000||",
        ]
    );
    let events = rows(
        &lake,
        "SELECT property_get(attributes, 'otel.events') FROM spans WHERE name = 'POST /pay'",
    )
    .await;
    assert!(
        events[0].contains("\"exception.type\":\"ValueError\""),
        "{events:?}"
    );
    let links = rows(
        &lake,
        "SELECT property_get(attributes, 'otel.links') FROM spans WHERE name = 'SELECT'",
    )
    .await;
    assert!(links[0].contains("cdcdcdcd"), "{links:?}");
    assert_eq!(
        rows(
            &lake,
            "SELECT level, severity_number, msg, trace_id, span_id, property_get(properties, 'order') \
             FROM log_entries ORDER BY time"
        )
        .await,
        [
            "ERROR|17|payment failed|abababababababababababababababab|0101010101010101|42",
            "WARN|13|retrying|||",
        ]
    );
    let mut mc = MetricsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let reply = mc.export(metrics()).await.unwrap().into_inner();
    let partial = reply
        .partial_success
        .expect("the broken histogram is rejected");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("1 buckets for 2 bounds"),
        "{}",
        partial.error_message
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT name, unit, kind, value, property_get(properties, 'queue'), \
             property_get(properties, 'otel.temporality'), property_get(properties, 'otel.bucket_counts'), \
             property_get(properties, 'otel.explicit_bounds'), property_get(properties, 'quantile') \
             FROM measures ORDER BY name, value"
        )
        .await,
        [
            "latency|s|histogram|12.5||cumulative|1,2,1|1,5|",
            "queue.depth|{items}|gauge|7.0|orders||||",
            "requests|{requests}|counter|3.0||delta|||",
            "rpc.duration|ms|summary|5.0|||||0.5",
            "rpc.duration|ms|summary|9.9|||||0.99",
        ]
    );
    // Quantiles of the histogram's buckets (1 in (0.5, 1], 2 in (1, 5], 1 in (5, 7]):
    // interpolated in their bucket; rows that hold no histogram are left out.
    assert_eq!(
        rows(
            &lake,
            "SELECT histogram_quantile(0.5, properties), histogram_quantile(1, properties), \
             round(histogram_quantile(0.99, properties), 6) FROM measures"
        )
        .await,
        ["3.0|7.0|6.92"]
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Sends any bytes as a request (what a broken client might); `R` is the answer.
#[derive(Debug)]
pub(crate) struct RawCodec<R>(std::marker::PhantomData<R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// [`RawCodec`] for trace requests.
pub(crate) type RawTraceCodec = RawCodec<ExportTraceServiceResponse>;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl<R: prost::Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_bytes_that_are_not_a_request_are_invalid_argument_and_nothing_is_stored() {
    use micromegas_otlp_receiver::bytes_service::{BytesSignal, Metrics, Traces};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use prost::Message;
    use tonic::codegen::http::uri::PathAndQuery;

    let served = crate::common::serve(CollectorOptions::default()).await;
    let lake = &served.lake;
    let channel = tonic::transport::Channel::from_shared(served.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let valid = traces().encode_to_vec();
    let mut not_utf8 = traces();
    not_utf8.resource_spans[0].scope_spans[0].spans[0].name = "\u{7f}".into();
    let mut not_utf8 = not_utf8.encode_to_vec();
    let at = not_utf8.iter().position(|b| *b == 0x7f).unwrap();
    not_utf8[at] = 0xff;
    for (what, body) in [
        ("truncated", valid[..valid.len() - 3].to_vec()),
        ("a name that is not UTF-8", not_utf8),
        ("a span id given as a number", {
            // ResourceSpans { ScopeSpans { Span { span_id (2): varint 5 } } }
            vec![0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x10, 0x05]
        }),
    ] {
        grpc.ready().await.unwrap();
        let path = PathAndQuery::from_static(Traces::EXPORT_PATH);
        let err = grpc
            .unary(tonic::Request::new(body), path, RawTraceCodec::default())
            .await
            .expect_err(what);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message()
                .starts_with("invalid OTLP traces request: invalid protobuf"),
            "{what}: {err:?}"
        );
    }
    assert_eq!(rows(lake, "SELECT COUNT(*) FROM spans").await, ["0"]);
    // Well-formed bytes sent the same way are stored.
    grpc.ready().await.unwrap();
    let path = PathAndQuery::from_static(Traces::EXPORT_PATH);
    let reply = grpc
        .unary(tonic::Request::new(valid), path, RawTraceCodec::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.partial_success.unwrap().rejected_spans, 1);
    assert_eq!(rows(lake, "SELECT COUNT(*) FROM spans").await, ["2"]);

    // Metrics are taken as bytes too: the same refusal, then the same bytes whole are stored.
    let valid = metrics().encode_to_vec();
    grpc.ready().await.unwrap();
    let path = PathAndQuery::from_static(Metrics::EXPORT_PATH);
    let codec = RawCodec::<ExportMetricsServiceResponse>::default();
    let body = valid[..valid.len() - 3].to_vec();
    let err = grpc
        .unary(tonic::Request::new(body), path.clone(), codec)
        .await
        .expect_err("truncated metrics");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .starts_with("invalid OTLP metrics request: invalid protobuf"),
        "{err:?}"
    );
    assert_eq!(rows(lake, "SELECT COUNT(*) FROM measures").await, ["0"]);
    grpc.ready().await.unwrap();
    let codec = RawCodec::<ExportMetricsServiceResponse>::default();
    let reply = grpc
        .unary(tonic::Request::new(valid), path, codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.partial_success.unwrap().rejected_data_points, 1);
    assert_eq!(rows(lake, "SELECT COUNT(*) FROM measures").await, ["5"]);
}
