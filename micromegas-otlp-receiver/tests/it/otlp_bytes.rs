//! Trace and logs requests are mapped straight from their protobuf bytes. Properties: the rows
//! are what the decoded request says (ids, names, times, kind, status, severity, body,
//! attributes as text, what has no column of its own kept under `otel.*`); every span and log
//! record is a row or counted as rejected; and bytes are refused exactly when prost refuses to
//! decode them as a request.

use micromegas_lake::arrow::array::{Array, AsArray, RecordBatch};
use micromegas_lake::arrow::datatypes::TimestampNanosecondType;
use micromegas_otlp_receiver::mapping::common::{attributes, hex, value_text};
use micromegas_otlp_receiver::mapping::logs;
use micromegas_otlp_receiver::mapping::traces::map_protobuf;
use micromegas_otlp_receiver::mapping::wire::WireError;
use micromegas_otlp_receiver::mapping::Mapped;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), len),
        1 => Just(Vec::new()),
        1 => Just(vec![0; len]),
        1 => vec(any::<u8>(), 0..20),
    ]
}

fn scalar() -> impl Strategy<Value = any_value::Value> {
    prop_oneof![
        "[a-z /é]{0,8}".prop_map(any_value::Value::StringValue),
        "[a-z]{100,140}".prop_map(any_value::Value::StringValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        vec(any::<u8>(), 0..4).prop_map(any_value::Value::BytesValue),
    ]
}

fn value() -> impl Strategy<Value = Option<AnyValue>> {
    let nested = prop_oneof![
        vec(scalar(), 0..3).prop_map(|v| any_value::Value::ArrayValue(ArrayValue {
            values: v.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
        })),
        vec(("[a-z]{1,3}", scalar()), 0..3).prop_map(|v| {
            any_value::Value::KvlistValue(KeyValueList {
                values: v
                    .into_iter()
                    .map(|(key, v)| KeyValue {
                        key,
                        value: Some(AnyValue { value: Some(v) }),
                        key_strindex: 0,
                    })
                    .collect(),
            })
        }),
    ];
    prop_oneof![
        8 => scalar().prop_map(|v| Some(AnyValue { value: Some(v) })),
        1 => nested.prop_map(|v| Some(AnyValue { value: Some(v) })),
        1 => Just(Some(AnyValue { value: None })),
        1 => Just(None),
    ]
}

fn key_value() -> impl Strategy<Value = KeyValue> {
    let key = prop_oneof![
        "[a-z.]{0,10}",
        Just("code.filepath".to_string()),
        Just("code.lineno".to_string()),
    ];
    (key, value(), prop_oneof![9 => Just(0), 1 => 1..5i32]).prop_map(|(key, value, index)| {
        KeyValue {
            key,
            value,
            key_strindex: index,
        }
    })
}

/// The W3C trace flags byte of a span or log record: none, sampled (the usual), sampled with
/// a random trace id, or anything.
fn w3c_flags() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), Just(3), 0..256u32]
}

/// `otel.trace_flags`: the W3C flags as two hex digits when they say more than "sampled".
fn trace_flags(flags: u32) -> Option<String> {
    let w3c = flags & 0xFF;
    (w3c > 1).then(|| format!("{w3c:02x}"))
}

fn a_span() -> impl Strategy<Value = Span> {
    let ids = (id(16), id(8), id(8));
    let times = (any::<u64>(), 0..1_000_000u64, any::<bool>());
    let link_flags = prop_oneof![Just(0u32), Just(0x301), any::<u32>()];
    let rare = (
        vec(("[a-z]{0,5}", any::<u64>(), 0..3u32), 0..2),
        vec((id(16), id(8), link_flags, 0..3u32), 0..2),
        proptest::option::of((0..4i32, "[a-z]{0,5}")),
        "[a-z=,]{0,6}",
        (0..3u32, 0..3u32, 0..3u32),
    );
    (
        ids,
        times,
        "[a-zA-Z /{}]{0,12}",
        -1..7i32,
        vec(key_value(), 0..5),
        rare,
        (
            prop_oneof![Just(0u32), Just(0x100), Just(0x300)],
            w3c_flags(),
        ),
    )
        .prop_map(
            |((trace, id, parent), (start, len, backwards), name, kind, attrs, rare, flags)| {
                let (events, links, status, trace_state, dropped) = rare;
                let end = if backwards {
                    start.wrapping_sub(len)
                } else {
                    start.saturating_add(len)
                };
                Span {
                    trace_id: trace,
                    span_id: id,
                    parent_span_id: parent,
                    trace_state,
                    name,
                    kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes: attrs,
                    dropped_attributes_count: dropped.0,
                    events: events
                        .into_iter()
                        .map(|(name, t, dropped)| span::Event {
                            time_unix_nano: t,
                            name,
                            attributes: Vec::new(),
                            dropped_attributes_count: dropped,
                        })
                        .collect(),
                    dropped_events_count: dropped.1,
                    links: links
                        .into_iter()
                        .map(|(trace_id, span_id, flags, dropped)| span::Link {
                            trace_id,
                            span_id,
                            flags,
                            dropped_attributes_count: dropped,
                            ..Default::default()
                        })
                        .collect(),
                    dropped_links_count: dropped.2,
                    status: status.map(|(code, message)| Status { code, message }),
                    // Bits 8 and 9: whether the parent's place is known, and remote.
                    flags: flags.0 | flags.1,
                }
            },
        )
}

fn schema_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("https://opentelemetry.io/schemas/1.26.0".to_string()),
    ]
}

/// A scope (maybe none) and the schema URL of its list.
fn a_scope() -> impl Strategy<Value = (Option<InstrumentationScope>, String)> {
    let scope = (
        "[a-z:]{0,8}",
        prop_oneof![Just(""), Just("2.10.0")],
        vec(key_value(), 0..2),
        prop_oneof![3 => Just(0u32), 1 => 1..3u32],
    )
        .prop_map(
            |(name, version, attributes, dropped)| InstrumentationScope {
                name,
                version: version.into(),
                attributes,
                dropped_attributes_count: dropped,
            },
        );
    (proptest::option::of(scope), schema_url())
}

/// A resource (maybe none), its schema URL.
fn a_resource() -> impl Strategy<Value = (Option<Resource>, String)> {
    let resource = (
        vec(key_value(), 0..3),
        prop_oneof![3 => Just(0u32), 1 => 1..3u32],
    )
        .prop_map(|(attributes, dropped)| Resource {
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        });
    (proptest::option::of(resource), schema_url())
}

/// A process's properties: the resource's attributes, then its dropped attribute count and
/// schema URL when not empty.
fn process_properties(resource: Option<&Resource>, schema_url: &str) -> Vec<(String, String)> {
    let mut out = resource
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default();
    if let Some(n) = resource
        .map(|r| r.dropped_attributes_count)
        .filter(|n| *n > 0)
    {
        out.push(("otel.dropped_attributes_count".into(), n.to_string()));
    }
    if !schema_url.is_empty() {
        out.push(("otel.schema_url".into(), schema_url.into()));
    }
    out
}

/// What a scope gives its rows: the target, and the entries they end with.
#[derive(Debug, Clone)]
struct ScopeRows {
    target: String,
    entries: Vec<(String, String)>,
}

fn scope_rows(scope: Option<&InstrumentationScope>, schema_url: &str) -> ScopeRows {
    let mut entries = Vec::new();
    let none = InstrumentationScope::default();
    let s = scope.unwrap_or(&none);
    if !s.version.is_empty() {
        entries.push(("otel.scope.version".into(), s.version.clone()));
    }
    if !s.attributes.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = attributes(&s.attributes)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect();
        entries.push((
            "otel.scope.attributes".into(),
            serde_json::Value::Object(map).to_string(),
        ));
    }
    if s.dropped_attributes_count > 0 {
        let n = s.dropped_attributes_count.to_string();
        entries.push(("otel.scope.dropped_attributes_count".into(), n));
    }
    if !schema_url.is_empty() {
        entries.push(("otel.scope.schema_url".into(), schema_url.into()));
    }
    ScopeRows {
        target: s.name.clone(),
        entries,
    }
}

fn a_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope =
        (a_scope(), vec(a_span(), 0..4)).prop_map(|((scope, schema_url), spans)| ScopeSpans {
            scope,
            spans,
            schema_url,
        });
    let resource =
        (a_resource(), vec(scope, 0..3)).prop_map(|((resource, schema_url), scope_spans)| {
            ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            }
        });
    vec(resource, 0..3).prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn valid_id(bytes: &[u8], len: usize, optional: bool) -> bool {
    (optional && bytes.is_empty()) || (bytes.len() == len && bytes.iter().any(|b| *b != 0))
}

fn valid(s: &Span) -> bool {
    valid_id(&s.trace_id, 16, false)
        && valid_id(&s.span_id, 8, false)
        && valid_id(&s.parent_span_id, 8, true)
        && s.end_time_unix_nano >= s.start_time_unix_nano
}

fn kind_text(kind: i32) -> &'static str {
    [
        "UNSPECIFIED",
        "INTERNAL",
        "SERVER",
        "CLIENT",
        "PRODUCER",
        "CONSUMER",
    ]
    .get(kind as usize)
    .copied()
    .unwrap_or("UNSPECIFIED")
}

fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let c = batch
        .column_by_name(column)
        .expect(column)
        .as_string::<i32>();
    (!c.is_null(row)).then(|| c.value(row).to_string())
}

fn time(batch: &RecordBatch, column: &str, row: usize) -> i64 {
    let c = batch.column_by_name(column).expect(column);
    c.as_primitive::<TimestampNanosecondType>().value(row)
}

fn row_map(batch: &RecordBatch, column: &str, row: usize) -> Vec<(String, String)> {
    let map = batch.column_by_name(column).expect(column).as_map();
    let entries = map.value(row);
    let (keys, values) = (
        entries.column(0).as_string::<i32>(),
        entries.column(1).as_string::<i32>(),
    );
    (0..entries.len())
        .map(|i| (keys.value(i).to_string(), values.value(i).to_string()))
        .collect()
}

/// The row of `s`, in `batch` at `row`, says what the span says.
fn assert_row(batch: &RecordBatch, row: usize, s: &Span, scope: &ScopeRows) {
    assert_eq!(text(batch, "trace_id", row), Some(hex(&s.trace_id)));
    assert_eq!(text(batch, "span_id", row), Some(hex(&s.span_id)));
    let parent = (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id));
    assert_eq!(text(batch, "parent_span_id", row), parent);
    assert_eq!(text(batch, "name", row).as_deref(), Some(s.name.as_str()));
    assert_eq!(text(batch, "target", row), Some(scope.target.clone()));
    let capped = |t: u64| t.min(i64::MAX as u64) as i64;
    assert_eq!(
        time(batch, "start_time", row),
        capped(s.start_time_unix_nano)
    );
    assert_eq!(time(batch, "end_time", row), capped(s.end_time_unix_nano));
    assert_eq!(text(batch, "kind", row).as_deref(), Some(kind_text(s.kind)));
    let code = match s.status.as_ref().map(|s| s.code) {
        Some(1) => "OK",
        Some(2) => "ERROR",
        _ => "UNSET",
    };
    assert_eq!(text(batch, "status_code", row).as_deref(), Some(code));
    let message = s.status.as_ref().map(|s| s.message.clone());
    assert_eq!(
        text(batch, "status_message", row),
        message.filter(|m| !m.is_empty())
    );
    let attrs = row_map(batch, "attributes", row);
    let expected = attributes(&s.attributes);
    assert_eq!(&attrs[..expected.len()], &expected[..]);
    let (extra, scope_entries) = attrs[expected.len()..]
        .split_at((attrs.len() - expected.len()).saturating_sub(scope.entries.len()));
    assert_eq!(scope_entries, &scope.entries[..]);
    let extra: Vec<&str> = extra.iter().map(|(k, _)| k.as_str()).collect();
    let mut wanted = Vec::new();
    for (key, present) in [
        ("otel.events", !s.events.is_empty()),
        ("otel.links", !s.links.is_empty()),
        ("otel.trace_state", !s.trace_state.is_empty()),
        ("otel.parent_is_remote", s.flags & 0x300 == 0x300),
        ("otel.trace_flags", trace_flags(s.flags).is_some()),
        (
            "otel.dropped_attributes_count",
            s.dropped_attributes_count > 0,
        ),
        ("otel.dropped_events_count", s.dropped_events_count > 0),
        ("otel.dropped_links_count", s.dropped_links_count > 0),
    ] {
        if present {
            wanted.push(key);
        }
    }
    assert_eq!(extra, wanted);
    let extra_value = |key: &str| {
        attrs[expected.len()..]
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(extra_value("otel.trace_flags"), trace_flags(s.flags));
    // Links and events keep their counts and flags, when not zero.
    let json = |key: &str| -> Vec<serde_json::Value> {
        extra_value(key).map_or_else(Vec::new, |v| serde_json::from_str(&v).expect(key))
    };
    let nonzero = |n: u32| (n != 0).then_some(u64::from(n));
    let links = json("otel.links");
    assert_eq!(links.len(), s.links.len());
    for (j, l) in links.iter().zip(&s.links) {
        assert_eq!(j["flags"].as_u64(), nonzero(l.flags));
        let dropped = j["dropped_attributes_count"].as_u64();
        assert_eq!(dropped, nonzero(l.dropped_attributes_count));
        assert_eq!(j["span_id"].as_str(), Some(hex(&l.span_id).as_str()));
    }
    let events = json("otel.events");
    assert_eq!(events.len(), s.events.len());
    for (j, e) in events.iter().zip(&s.events) {
        let dropped = j["dropped_attributes_count"].as_u64();
        assert_eq!(dropped, nonzero(e.dropped_attributes_count));
        assert_eq!(j["name"].as_str(), Some(e.name.as_str()));
    }
}

fn a_log_record() -> impl Strategy<Value = LogRecord> {
    let severity = (
        -1..26i32,
        prop_oneof![Just(""), Just("warn"), Just("ERROR"), Just("x")],
    );
    let times = (prop_oneof![Just(0u64), any::<u64>()], any::<u64>());
    let rest = (vec(key_value(), 0..5), 0..3u32, "[a-z.]{0,6}", w3c_flags());
    (id(16), id(8), severity, times, value(), rest).prop_map(
        |(trace_id, span_id, (number, text), (time, observed), body, rest)| {
            let (attributes, dropped, event_name, flags) = rest;
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number: number,
                severity_text: text.into(),
                body,
                attributes,
                dropped_attributes_count: dropped,
                flags,
                trace_id,
                span_id,
                event_name,
            }
        },
    )
}

fn a_logs_request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let scope =
        (a_scope(), vec(a_log_record(), 0..4)).prop_map(|((scope, schema_url), log_records)| {
            ScopeLogs {
                scope,
                log_records,
                schema_url,
            }
        });
    let resource =
        (a_resource(), vec(scope, 0..3)).prop_map(|((resource, schema_url), scope_logs)| {
            ResourceLogs {
                resource,
                scope_logs,
                schema_url,
            }
        });
    vec(resource, 0..3).prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

fn valid_record(r: &LogRecord) -> bool {
    valid_id(&r.trace_id, 16, true) && valid_id(&r.span_id, 8, true)
}

/// The level and severity number of a record, per the OpenTelemetry severity ranges; an
/// unspecified number is read from the severity text.
fn level(r: &LogRecord) -> (&'static str, i32) {
    let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    match r.severity_number {
        n @ 1..=24 => (names[(n as usize - 1) / 4], n),
        _ => match r.severity_text.to_ascii_uppercase().as_str() {
            "WARN" => ("WARN", 13),
            "ERROR" => ("ERROR", 17),
            _ => ("INFO", 9),
        },
    }
}

/// The row of `r`, in `batch` at `row`, says what the record says.
fn assert_log_row(batch: &RecordBatch, row: usize, r: &LogRecord, scope: &ScopeRows) {
    let t = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    assert_eq!(time(batch, "time", row), t.min(i64::MAX as u64) as i64);
    let (level, number) = level(r);
    assert_eq!(text(batch, "level", row).as_deref(), Some(level));
    let numbers = batch.column_by_name("severity_number").unwrap();
    let numbers = numbers.as_primitive::<micromegas_lake::arrow::datatypes::Int32Type>();
    assert_eq!(numbers.value(row), number);
    assert_eq!(text(batch, "target", row), Some(scope.target.clone()));
    assert_eq!(text(batch, "msg", row), Some(value_text(r.body.as_ref())));
    let id = |b: &[u8]| (!b.is_empty()).then(|| hex(b));
    assert_eq!(text(batch, "trace_id", row), id(&r.trace_id));
    assert_eq!(text(batch, "span_id", row), id(&r.span_id));
    let mut expected = attributes(&r.attributes);
    if !r.severity_text.is_empty() {
        expected.push(("otel.severity_text".into(), r.severity_text.clone()));
    }
    if !r.event_name.is_empty() {
        expected.push(("otel.event_name".into(), r.event_name.clone()));
    }
    let (time, observed) = (r.time_unix_nano, r.observed_time_unix_nano);
    if time != 0 && observed != 0 && observed != time {
        let observed = observed.to_string();
        expected.push(("otel.observed_time_unix_nano".into(), observed));
    }
    if let Some(flags) = trace_flags(r.flags) {
        expected.push(("otel.trace_flags".into(), flags));
    }
    if r.dropped_attributes_count > 0 {
        let n = r.dropped_attributes_count.to_string();
        expected.push(("otel.dropped_attributes_count".into(), n));
    }
    expected.extend(scope.entries.iter().cloned());
    assert_eq!(row_map(batch, "properties", row), expected);
}

/// A random change of `valid`: a truncation, bit flips, or a splice of its own bytes.
fn mutate(valid: &[u8], choice: u8, at: usize, bits: u8) -> Vec<u8> {
    let mut b = valid.to_vec();
    if b.is_empty() {
        return vec![bits];
    }
    let at = at % b.len();
    match choice % 3 {
        0 => b.truncate(at),
        1 => b[at] ^= bits | 1,
        _ => {
            let tail = b[at..].to_vec();
            b.splice(at / 2..at / 2, tail);
        }
    }
    b
}

/// `valid` changed by `changes`, then read by prost as an `R` and by `ours`: refused by both,
/// or read by both with each of prost's `items` a row or a rejection of ours. Gives both
/// readings when they read.
fn read_alike<R: Message + Default>(
    valid: Vec<u8>,
    changes: &[(u8, usize, u8)],
    ours: impl Fn(&[u8]) -> Result<Mapped, WireError>,
    items: impl Fn(&R) -> usize,
) -> Result<Option<(R, Mapped)>, TestCaseError> {
    let mut bytes = valid;
    for &(choice, at, bits) in changes {
        bytes = mutate(&bytes, choice, at, bits);
    }
    let ours = ours(&bytes);
    match R::decode(&bytes[..]) {
        Ok(decoded) => {
            let ours = ours.expect("bytes prost decodes are read");
            prop_assert_eq!(ours.row_count() + ours.rejected as usize, items(&decoded));
            Ok(Some((decoded, ours)))
        }
        Err(e) => {
            prop_assert!(ours.is_err(), "prost refused ({}) what was read", e);
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rows_are_what_the_request_says(req in a_request()) {
        let mapped = map_protobuf(&req.encode_to_vec()).expect("prost's encoding is read");
        let mut groups = mapped.mapped.groups.iter();
        let mut rejected = 0;
        for rs in &req.resource_spans {
            let spans = || rs.scope_spans.iter().flat_map(|ss| {
                let scope = scope_rows(ss.scope.as_ref(), &ss.schema_url);
                ss.spans.iter().map(move |s| (s, scope.clone()))
            });
            rejected += spans().filter(|(s, _)| !valid(s)).count();
            let kept: Vec<_> = spans().filter(|(s, _)| valid(s)).collect();
            if kept.is_empty() {
                continue;
            }
            let (process, batch) = groups.next().expect("a batch per resource with valid spans");
            let properties = process_properties(rs.resource.as_ref(), &rs.schema_url);
            prop_assert_eq!(&process.properties, &properties);
            prop_assert_eq!(batch.num_rows(), kept.len());
            for (row, (s, scope)) in kept.iter().enumerate() {
                assert_row(batch, row, s, scope);
            }
        }
        prop_assert!(groups.next().is_none());
        prop_assert_eq!(mapped.mapped.rejected as usize, rejected);
    }

    #[test]
    fn bytes_are_refused_exactly_when_prost_refuses_them(
        req in a_request(),
        changes in vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let read = read_alike(req.encode_to_vec(), &changes, |b| {
            map_protobuf(b).map(|m| m.mapped)
        }, |r: &ExportTraceServiceRequest| {
            r.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
        })?;
        if let Some((decoded, ours)) = read {
            let again = map_protobuf(&decoded.encode_to_vec()).expect("re-encoded");
            prop_assert_eq!(again.mapped.row_count(), ours.row_count());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn log_rows_are_what_the_request_says(req in a_logs_request()) {
        let mapped = logs::map_protobuf(&req.encode_to_vec()).expect("prost's encoding is read");
        let mut groups = mapped.mapped.groups.iter();
        let mut rejected = 0;
        for rl in &req.resource_logs {
            let records = || rl.scope_logs.iter().flat_map(|sl| {
                let scope = scope_rows(sl.scope.as_ref(), &sl.schema_url);
                sl.log_records.iter().map(move |r| (r, scope.clone()))
            });
            rejected += records().filter(|(r, _)| !valid_record(r)).count();
            let kept: Vec<_> = records().filter(|(r, _)| valid_record(r)).collect();
            if kept.is_empty() {
                continue;
            }
            let (process, batch) = groups.next().expect("a batch per resource with valid records");
            let properties = process_properties(rl.resource.as_ref(), &rl.schema_url);
            prop_assert_eq!(&process.properties, &properties);
            prop_assert_eq!(batch.num_rows(), kept.len());
            for (row, (r, scope)) in kept.iter().enumerate() {
                assert_log_row(batch, row, r, scope);
            }
        }
        prop_assert!(groups.next().is_none());
        prop_assert_eq!(mapped.mapped.rejected as usize, rejected);
    }

    #[test]
    fn logs_bytes_are_refused_exactly_when_prost_refuses_them(
        req in a_logs_request(),
        changes in vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        read_alike(req.encode_to_vec(), &changes, |b| {
            logs::map_protobuf(b).map(|m| m.mapped)
        }, |r: &ExportLogsServiceRequest| {
            r.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum()
        })?;
    }
}

#[test]
fn a_retried_request_has_the_same_identity_and_another_request_another() {
    let span = |n: u8| Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        name: "op".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    let req = |n: u8| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(n)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let identity = |n| map_protobuf(&req(n).encode_to_vec()).unwrap().identity;
    assert_eq!(identity(1), identity(1));
    assert_ne!(identity(1), identity(2));
}
