use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue as Array, EntityRef, InstrumentationScope, KeyValue,
    KeyValueList as KvList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Attributes of every kind of value, nested ones included.
fn attributes() -> Vec<KeyValue> {
    use any_value::Value::*;
    vec![
        kv("s", StringValue("text \"quoted\" é".into())),
        kv("b", BoolValue(true)),
        kv("i", IntValue(-9_007_199_254_740_993)),
        kv("d", DoubleValue(0.1)),
        kv("bytes", BytesValue(vec![0, 1, 0xfe, 0xff, 7])),
        kv(
            "array",
            ArrayValue(Array {
                values: vec![
                    AnyValue {
                        value: Some(IntValue(1)),
                    },
                    AnyValue { value: None },
                    AnyValue {
                        value: Some(StringValue("x".into())),
                    },
                ],
            }),
        ),
        kv(
            "map",
            KvlistValue(KvList {
                values: vec![kv("inner", DoubleValue(-2.5)), kv("flag", BoolValue(false))],
            }),
        ),
        KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
    ]
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv(
            "service.name",
            any_value::Value::StringValue("svc".into()),
        )],
        dropped_attributes_count: 2,
        entity_refs: vec![EntityRef {
            schema_url: "https://schema".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into()],
            description_keys: vec!["a".into(), "b".into()],
        }],
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "lib".into(),
        version: "1.2".into(),
        attributes: attributes(),
        dropped_attributes_count: 1,
    })
}

fn traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        trace_state: "k=v".into(),
        parent_span_id: (9..=16).collect(),
        flags: 0x301,
        name: "GET /".into(),
        kind: 3,
        start_time_unix_nano: u64::MAX - 1,
        end_time_unix_nano: 1_700_000_000_123_456_789,
        attributes: attributes(),
        dropped_attributes_count: 3,
        events: vec![span::Event {
            time_unix_nano: 5,
            name: "ev".into(),
            attributes: attributes(),
            dropped_attributes_count: 4,
        }],
        dropped_events_count: 5,
        links: vec![span::Link {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            trace_state: "a=b".into(),
            attributes: attributes(),
            dropped_attributes_count: 6,
            flags: 1,
        }],
        dropped_links_count: 7,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![span, Span::default()],
                schema_url: "https://scope".into(),
            }],
            schema_url: "https://resource".into(),
        }],
    }
}

fn logs() -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: 11,
        observed_time_unix_nano: 12,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KvList {
                values: attributes(),
            })),
        }),
        attributes: attributes(),
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        event_name: "app.event".into(),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: vec![record, LogRecord::default()],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn exemplars() -> Vec<Exemplar> {
    vec![
        Exemplar {
            filtered_attributes: attributes(),
            time_unix_nano: 3,
            span_id: vec![1; 8],
            trace_id: vec![2; 16],
            value: Some(exemplar::Value::AsDouble(1.25)),
        },
        Exemplar {
            value: Some(exemplar::Value::AsInt(-4)),
            ..Default::default()
        },
    ]
}

fn metric(name: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        description: "what".into(),
        unit: "ms".into(),
        metadata: attributes(),
        data: Some(data),
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let point = |value| NumberDataPoint {
        attributes: attributes(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: exemplars(),
        flags: 1,
        value: Some(value),
    };
    let metrics = vec![
        metric(
            "gauge",
            metric::Data::Gauge(Gauge {
                data_points: vec![
                    point(number_data_point::Value::AsDouble(-0.5)),
                    point(number_data_point::Value::AsInt(i64::MIN)),
                ],
            }),
        ),
        metric(
            "sum",
            metric::Data::Sum(Sum {
                data_points: vec![point(number_data_point::Value::AsInt(42))],
                aggregation_temporality: 1,
                is_monotonic: true,
            }),
        ),
        metric(
            "histogram",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: attributes(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 6,
                    sum: Some(0.0),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![-1.5, 10.0],
                    exemplars: exemplars(),
                    flags: 0,
                    min: Some(-3.0),
                    max: None,
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "exponential",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: attributes(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 9,
                    sum: Some(12.5),
                    scale: -3,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![1, 0, 300],
                    }),
                    negative: Some(Buckets {
                        offset: 5,
                        bucket_counts: vec![],
                    }),
                    flags: 1,
                    exemplars: exemplars(),
                    min: Some(0.5),
                    max: Some(7.0),
                    zero_threshold: 0.001,
                }],
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "summary",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: attributes(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 4,
                    sum: 10.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 1.0,
                            value: 4.0,
                        },
                    ],
                    flags: 0,
                }],
            }),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                schema_url: "s".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The request `json` holds, decoded from what the transcoder makes of it.
fn decoded<T: Message + Default>(signal: Signal, json: &str) -> T {
    let bytes = to_protobuf(signal, json.as_bytes()).unwrap_or_else(|e| panic!("{e}: {json}"));
    T::decode(bytes.as_slice()).expect("the transcoder writes valid protobuf")
}

/// Whatever the reference JSON writer (opentelemetry-proto's serde) writes comes back as the
/// same request.
fn round_trip<T>(signal: Signal, request: &T)
where
    T: Message + Default + PartialEq + std::fmt::Debug + serde::Serialize,
{
    let json = serde_json::to_string(request).expect("serializable");
    assert_eq!(&decoded::<T>(signal, &json), request, "{json}");
}

#[test]
fn every_field_of_every_signal_comes_back() {
    round_trip(Signal::Traces, &traces());
    round_trip(Signal::Logs, &logs());
    round_trip(Signal::Metrics, &metrics());
}

fn double_attribute(json_value: &str) -> f64 {
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[
            {{"key":"d","value":{{"doubleValue":{json_value}}}}}]}}]}}]}}]}}"#
    );
    let request: ExportTraceServiceRequest = decoded(Signal::Traces, &json);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    match span.attributes[0]
        .value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(any_value::Value::DoubleValue(d)) => *d,
        other => panic!("not a double: {other:?}"),
    }
}

#[test]
fn doubles_json_numbers_cannot_hold_are_named() {
    assert!(double_attribute(r#""NaN""#).is_nan());
    assert_eq!(double_attribute(r#""Infinity""#), f64::INFINITY);
    assert_eq!(double_attribute(r#""-Infinity""#), f64::NEG_INFINITY);
    assert_eq!(double_attribute(r#""1.5""#), 1.5);
    assert_eq!(double_attribute("2"), 2.0);
    assert_eq!(double_attribute("-1e300"), -1e300);
    // Read exactly (serde_json's `float_roundtrip`), not to the nearest few ulps.
    assert_eq!(
        double_attribute("-1.8403988531227397e-221"),
        -1.8403988531227397e-221
    );

    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"g","gauge":{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"-Infinity"}]}},
        {"name":"h","histogram":{"dataPoints":[{"count":"1","sum":"Infinity",
            "bucketCounts":["0","1"],"explicitBounds":["-Infinity"],"min":"NaN"}]}},
        {"name":"s","summary":{"dataPoints":[{"sum":"NaN",
            "quantileValues":[{"quantile":"0.5","value":"Infinity"}]}]}}]}]}]}"#;
    let request: ExportMetricsServiceRequest = decoded(Signal::Metrics, json);
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let Some(metric::Data::Gauge(g)) = &metrics[0].data else {
        panic!("gauge: {:?}", metrics[0])
    };
    let values: Vec<f64> = g
        .data_points
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            _ => panic!("no double: {p:?}"),
        })
        .collect();
    assert!(values[0].is_nan());
    assert_eq!(values[1], f64::NEG_INFINITY);
    let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
        panic!("histogram: {:?}", metrics[1])
    };
    let p = &h.data_points[0];
    assert_eq!(p.sum, Some(f64::INFINITY));
    assert_eq!(p.explicit_bounds, [f64::NEG_INFINITY]);
    assert_eq!(p.bucket_counts, [0, 1]);
    assert!(p.min.is_some_and(f64::is_nan));
    let Some(metric::Data::Summary(s)) = &metrics[2].data else {
        panic!("summary: {:?}", metrics[2])
    };
    assert!(s.data_points[0].sum.is_nan());
    assert_eq!(
        s.data_points[0].quantile_values[0],
        ValueAtQuantile {
            quantile: 0.5,
            value: f64::INFINITY
        }
    );
}

#[test]
fn enum_names_snake_case_keys_unknown_keys_and_nulls() {
    let json = r#"{"resourceSpans":[{"futureField":{"x":[1,2]},"scopeSpans":[{"spans":[
        {"kind":"SPAN_KIND_CONSUMER","status":{"code":"STATUS_CODE_ERROR","message":null},
         "start_time_unix_nano":"5","parent_span_id":"0102030405060708","traceId":null,
         "name":"n","newThing":true}]}]}]}"#;
    let request: ExportTraceServiceRequest = decoded(Signal::Traces, json);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, 5);
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(span.start_time_unix_nano, 5);
    assert_eq!(span.parent_span_id, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(span.trace_id.is_empty());
    assert_eq!(span.name, "n");

    let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"severityNumber":"SEVERITY_NUMBER_WARN","timeUnixNano":1.7e18,
         "body":{"bytesValue":"AQI"}}]}]}]}"#;
    let request: ExportLogsServiceRequest = decoded(Signal::Logs, json);
    let record = &request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.severity_number, 13);
    assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(
        record.body,
        Some(AnyValue {
            value: Some(any_value::Value::BytesValue(vec![1, 2]))
        })
    );
}

fn error_of(signal: Signal, json: &str) -> String {
    to_protobuf(signal, json.as_bytes())
        .map(|_| ())
        .expect_err(json)
        .to_string()
}

#[test]
fn errors_name_the_field_and_what_it_takes() {
    let spans = |span: &str| {
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{}},{span}]}}]}}]}}"#)
    };
    let cases = [
        (
            spans(r#"{"traceId":"xyz0"}"#),
            "at resourceSpans[0].scopeSpans[0].spans[1].traceId: expected hexadecimal text",
        ),
        (
            spans(r#"{"traceId":"abc"}"#),
            "spans[1].traceId: expected hexadecimal text (an even number",
        ),
        (
            spans(r#"{"kind":"SERVER"}"#),
            "spans[1].kind: expected an enum value, found the unknown name \"SERVER\"",
        ),
        (
            spans(r#"{"startTimeUnixNano":"-1"}"#),
            "spans[1].startTimeUnixNano: expected an unsigned integer (a number or a decimal \
             string), found the string \"-1\"",
        ),
        (
            spans(r#"{"attributes":[{"key":"k","value":{"intValue":"1.5"}}]}"#),
            "spans[1].attributes[0].value.intValue: expected an integer (a number or a decimal \
             string), found the string \"1.5\"",
        ),
        (
            spans(r#"{"attributes":[{"key":"k","value":{"doubleValue":"nan"}}]}"#),
            "doubleValue: expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), found \
             the string \"nan\"",
        ),
        (
            spans(r#"{"attributes":{"key":"k"}}"#),
            "spans[1].attributes: expected an array, found an object",
        ),
        (
            spans(r#"{"name":7}"#),
            "spans[1].name: expected a string, found 7",
        ),
        (
            spans(r#"{"flags":4294967296}"#),
            "spans[1].flags: expected a 32-bit unsigned integer (a number or a decimal string), \
             found 4294967296",
        ),
        (spans("[]"), "spans[1]: expected an object, found an array"),
        (r#"[1]"#.to_owned(), "at the top: expected an object"),
        (r#"{"resourceSpans":"#.to_owned(), "invalid JSON: EOF"),
    ];
    for (json, message) in cases {
        let error = error_of(Signal::Traces, &json);
        assert!(
            error.contains(message),
            "{json}\n{error}\nwanted: {message}"
        );
    }
    let error = error_of(
        Signal::Logs,
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"a b"}}]}]}]}"#,
    );
    assert!(
        error.contains("logRecords[0].body.bytesValue: expected base64 text"),
        "{error}"
    );
}

#[test]
fn snake_case_spellings_are_recognized_exactly() {
    assert!(snake_names("start_time_unix_nano", "startTimeUnixNano"));
    assert!(snake_names("name", "name"));
    assert!(!snake_names("start_time", "startTimeUnixNano"));
    assert!(!snake_names("start_time_unix_nano_", "startTimeUnixNano"));
    assert!(!snake_names("starttimeunixnano", "startTimeUnixNano"));
}

fn any_value() -> impl Strategy<Value = any_value::Value> {
    use any_value::Value::*;
    let leaf = prop_oneof![
        any::<String>().prop_map(StringValue),
        any::<bool>().prop_map(BoolValue),
        any::<i64>().prop_map(IntValue),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |d| d.is_finite())
            .prop_map(DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(BytesValue),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let value = inner.prop_map(|v| AnyValue { value: Some(v) });
        prop_oneof![
            proptest::collection::vec(value.clone(), 0..4)
                .prop_map(|values| ArrayValue(Array { values })),
            proptest::collection::vec(("[a-z._]{0,8}", value), 0..4).prop_map(|kvs| {
                KvlistValue(KvList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value: Some(value),
                            ..Default::default()
                        })
                        .collect(),
                })
            }),
        ]
    })
}

fn arbitrary_span() -> impl Strategy<Value = Span> {
    (
        proptest::collection::vec(any::<u8>(), 0..17),
        proptest::collection::vec(any::<u8>(), 0..9),
        any::<String>(),
        (any::<u64>(), any::<u64>(), any::<u32>(), 0..6i32),
        proptest::collection::vec((any::<String>(), any_value()), 0..5),
    )
        .prop_map(
            |(trace_id, span_id, name, (start, end, flags, kind), attrs)| Span {
                trace_id,
                span_id,
                name,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                flags,
                kind,
                attributes: attrs
                    .into_iter()
                    .map(|(key, value)| kv(&key, value))
                    .collect(),
                ..Default::default()
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_spans_come_back(spans in proptest::collection::vec(arbitrary_span(), 0..4)) {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        let json = serde_json::to_string(&request).expect("serializable");
        prop_assert_eq!(decoded::<ExportTraceServiceRequest>(Signal::Traces, &json), request);
    }
}
