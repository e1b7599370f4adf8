//! The OTLP messages as the JSON transcoder sees them: for each message, its fields' JSON
//! names (lowerCamelCase, as OTLP/JSON writes them), protobuf tags and types. Enums take
//! their values from the generated `from_str_name`, so their names are not repeated here.

use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

/// A message's fields.
pub(super) type Fields = &'static [Field];

/// One field of a message.
pub(super) struct Field {
    /// The JSON key (lowerCamelCase).
    pub name: &'static str,
    pub tag: u32,
    pub kind: Kind,
    /// A JSON array of values (packed on the wire when the values are numbers).
    pub repeated: bool,
}

/// A field's protobuf type, and how JSON writes it.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Message(Fields),
    Text,
    /// Trace and span ids: hexadecimal text (OTLP/JSON's exception to base64).
    HexBytes,
    /// Other bytes: base64.
    Base64Bytes,
    Bool,
    /// `fixed64` (times, counts): a number or a decimal string.
    Fixed64,
    /// `sfixed64`.
    Sfixed64,
    /// `fixed32` (flags).
    Fixed32,
    /// `uint32` and `uint64` varints.
    Uint,
    /// `int64` and `int32` varints.
    Int,
    /// `sint32` (zigzag).
    Sint32,
    /// `double`: a number, a decimal string, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    Double,
    /// An enum: its number, or its name.
    Enum(fn(&str) -> Option<i32>),
}

const fn field(name: &'static str, tag: u32, kind: Kind) -> Field {
    Field {
        name,
        tag,
        kind,
        repeated: false,
    }
}

const fn repeated(name: &'static str, tag: u32, kind: Kind) -> Field {
    Field {
        name,
        tag,
        kind,
        repeated: true,
    }
}

/// `ResourceSpans`, `ResourceLogs`, `ResourceMetrics`: a resource and its `scopes`.
const fn resource(scopes: &'static str, scope: Fields) -> [Field; 3] {
    [
        field("resource", 1, Kind::Message(&RESOURCE)),
        repeated(scopes, 2, Kind::Message(scope)),
        field("schemaUrl", 3, Kind::Text),
    ]
}

/// `ScopeSpans`, `ScopeLogs`, `ScopeMetrics`: a scope and its `items`.
const fn scope(items: &'static str, item: Fields) -> [Field; 3] {
    [
        field("scope", 1, Kind::Message(&SCOPE)),
        repeated(items, 2, Kind::Message(item)),
        field("schemaUrl", 3, Kind::Text),
    ]
}

use Kind::*;

fn span_kind(name: &str) -> Option<i32> {
    SpanKind::from_str_name(name).map(|k| k as i32)
}

fn status_code(name: &str) -> Option<i32> {
    StatusCode::from_str_name(name).map(|k| k as i32)
}

fn severity(name: &str) -> Option<i32> {
    SeverityNumber::from_str_name(name).map(|k| k as i32)
}

fn temporality(name: &str) -> Option<i32> {
    AggregationTemporality::from_str_name(name).map(|k| k as i32)
}

// common.v1

static ANY_VALUE: [Field; 8] = [
    field("stringValue", 1, Text),
    field("boolValue", 2, Bool),
    field("intValue", 3, Int),
    field("doubleValue", 4, Double),
    field("arrayValue", 5, Message(&ARRAY_VALUE)),
    field("kvlistValue", 6, Message(&KEY_VALUE_LIST)),
    field("bytesValue", 7, Base64Bytes),
    field("stringValueStrindex", 8, Int),
];

static ARRAY_VALUE: [Field; 1] = [repeated("values", 1, Message(&ANY_VALUE))];

static KEY_VALUE_LIST: [Field; 1] = [repeated("values", 1, Message(&KEY_VALUE))];

static KEY_VALUE: [Field; 3] = [
    field("key", 1, Text),
    field("value", 2, Message(&ANY_VALUE)),
    field("keyStrindex", 3, Int),
];

static SCOPE: [Field; 4] = [
    field("name", 1, Text),
    field("version", 2, Text),
    repeated("attributes", 3, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 4, Uint),
];

static ENTITY_REF: [Field; 4] = [
    field("schemaUrl", 1, Text),
    field("type", 2, Text),
    repeated("idKeys", 3, Text),
    repeated("descriptionKeys", 4, Text),
];

static RESOURCE: [Field; 3] = [
    repeated("attributes", 1, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 2, Uint),
    repeated("entityRefs", 3, Message(&ENTITY_REF)),
];

// trace.v1

/// `ExportTraceServiceRequest`.
pub(super) static TRACES: [Field; 1] = [repeated("resourceSpans", 1, Message(&RESOURCE_SPANS))];

static RESOURCE_SPANS: [Field; 3] = resource("scopeSpans", &SCOPE_SPANS);

static SCOPE_SPANS: [Field; 3] = scope("spans", &SPAN);

static SPAN: [Field; 16] = [
    field("traceId", 1, HexBytes),
    field("spanId", 2, HexBytes),
    field("traceState", 3, Text),
    field("parentSpanId", 4, HexBytes),
    field("flags", 16, Fixed32),
    field("name", 5, Text),
    field("kind", 6, Enum(span_kind)),
    field("startTimeUnixNano", 7, Fixed64),
    field("endTimeUnixNano", 8, Fixed64),
    repeated("attributes", 9, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 10, Uint),
    repeated("events", 11, Message(&SPAN_EVENT)),
    field("droppedEventsCount", 12, Uint),
    repeated("links", 13, Message(&SPAN_LINK)),
    field("droppedLinksCount", 14, Uint),
    field("status", 15, Message(&STATUS)),
];

static SPAN_EVENT: [Field; 4] = [
    field("timeUnixNano", 1, Fixed64),
    field("name", 2, Text),
    repeated("attributes", 3, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 4, Uint),
];

static SPAN_LINK: [Field; 6] = [
    field("traceId", 1, HexBytes),
    field("spanId", 2, HexBytes),
    field("traceState", 3, Text),
    repeated("attributes", 4, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 5, Uint),
    field("flags", 6, Fixed32),
];

static STATUS: [Field; 2] = [
    field("message", 2, Text),
    field("code", 3, Enum(status_code)),
];

// logs.v1

/// `ExportLogsServiceRequest`.
pub(super) static LOGS: [Field; 1] = [repeated("resourceLogs", 1, Message(&RESOURCE_LOGS))];

static RESOURCE_LOGS: [Field; 3] = resource("scopeLogs", &SCOPE_LOGS);

static SCOPE_LOGS: [Field; 3] = scope("logRecords", &LOG_RECORD);

static LOG_RECORD: [Field; 11] = [
    field("timeUnixNano", 1, Fixed64),
    field("observedTimeUnixNano", 11, Fixed64),
    field("severityNumber", 2, Enum(severity)),
    field("severityText", 3, Text),
    field("body", 5, Message(&ANY_VALUE)),
    repeated("attributes", 6, Message(&KEY_VALUE)),
    field("droppedAttributesCount", 7, Uint),
    field("flags", 8, Fixed32),
    field("traceId", 9, HexBytes),
    field("spanId", 10, HexBytes),
    field("eventName", 12, Text),
];

// metrics.v1

/// `ExportMetricsServiceRequest`.
pub(super) static METRICS: [Field; 1] =
    [repeated("resourceMetrics", 1, Message(&RESOURCE_METRICS))];

static RESOURCE_METRICS: [Field; 3] = resource("scopeMetrics", &SCOPE_METRICS);

static SCOPE_METRICS: [Field; 3] = scope("metrics", &METRIC);

static METRIC: [Field; 9] = [
    field("name", 1, Text),
    field("description", 2, Text),
    field("unit", 3, Text),
    repeated("metadata", 12, Message(&KEY_VALUE)),
    field("gauge", 5, Message(&GAUGE)),
    field("sum", 7, Message(&SUM)),
    field("histogram", 9, Message(&HISTOGRAM)),
    field("exponentialHistogram", 10, Message(&EXPONENTIAL_HISTOGRAM)),
    field("summary", 11, Message(&SUMMARY)),
];

static GAUGE: [Field; 1] = [repeated("dataPoints", 1, Message(&NUMBER_POINT))];

static SUM: [Field; 3] = [
    repeated("dataPoints", 1, Message(&NUMBER_POINT)),
    field("aggregationTemporality", 2, Enum(temporality)),
    field("isMonotonic", 3, Bool),
];

static HISTOGRAM: [Field; 2] = [
    repeated("dataPoints", 1, Message(&HISTOGRAM_POINT)),
    field("aggregationTemporality", 2, Enum(temporality)),
];

static EXPONENTIAL_HISTOGRAM: [Field; 2] = [
    repeated("dataPoints", 1, Message(&EXPONENTIAL_POINT)),
    field("aggregationTemporality", 2, Enum(temporality)),
];

static SUMMARY: [Field; 1] = [repeated("dataPoints", 1, Message(&SUMMARY_POINT))];

static NUMBER_POINT: [Field; 7] = [
    repeated("attributes", 7, Message(&KEY_VALUE)),
    field("startTimeUnixNano", 2, Fixed64),
    field("timeUnixNano", 3, Fixed64),
    field("asDouble", 4, Double),
    field("asInt", 6, Sfixed64),
    repeated("exemplars", 5, Message(&EXEMPLAR)),
    field("flags", 8, Uint),
];

static HISTOGRAM_POINT: [Field; 11] = [
    repeated("attributes", 9, Message(&KEY_VALUE)),
    field("startTimeUnixNano", 2, Fixed64),
    field("timeUnixNano", 3, Fixed64),
    field("count", 4, Fixed64),
    field("sum", 5, Double),
    repeated("bucketCounts", 6, Fixed64),
    repeated("explicitBounds", 7, Double),
    repeated("exemplars", 8, Message(&EXEMPLAR)),
    field("flags", 10, Uint),
    field("min", 11, Double),
    field("max", 12, Double),
];

static EXPONENTIAL_POINT: [Field; 14] = [
    repeated("attributes", 1, Message(&KEY_VALUE)),
    field("startTimeUnixNano", 2, Fixed64),
    field("timeUnixNano", 3, Fixed64),
    field("count", 4, Fixed64),
    field("sum", 5, Double),
    field("scale", 6, Sint32),
    field("zeroCount", 7, Fixed64),
    field("positive", 8, Message(&BUCKETS)),
    field("negative", 9, Message(&BUCKETS)),
    field("flags", 10, Uint),
    repeated("exemplars", 11, Message(&EXEMPLAR)),
    field("min", 12, Double),
    field("max", 13, Double),
    field("zeroThreshold", 14, Double),
];

static BUCKETS: [Field; 2] = [
    field("offset", 1, Sint32),
    repeated("bucketCounts", 2, Uint),
];

static SUMMARY_POINT: [Field; 7] = [
    repeated("attributes", 7, Message(&KEY_VALUE)),
    field("startTimeUnixNano", 2, Fixed64),
    field("timeUnixNano", 3, Fixed64),
    field("count", 4, Fixed64),
    field("sum", 5, Double),
    repeated("quantileValues", 6, Message(&QUANTILE)),
    field("flags", 8, Uint),
];

static QUANTILE: [Field; 2] = [field("quantile", 1, Double), field("value", 2, Double)];

static EXEMPLAR: [Field; 6] = [
    repeated("filteredAttributes", 7, Message(&KEY_VALUE)),
    field("timeUnixNano", 2, Fixed64),
    field("asDouble", 3, Double),
    field("asInt", 6, Sfixed64),
    field("spanId", 4, HexBytes),
    field("traceId", 5, HexBytes),
];
