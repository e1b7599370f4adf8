//! What all signals share: resources become processes, scopes targets (with what else they
//! say on each row), attributes become text maps, ids become lowercase hex.

use micromegas_lake::catalog::{now_nanos, ProcessRow};
use micromegas_lake::tables::AttributeWriter;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// An attribute value as text: strings as they are, scalars in their usual spelling, arrays
/// and maps as JSON, bytes as lowercase hex.
pub fn value_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => json(other).map_or_else(String::new, |j| match j {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        }),
    }
}

/// Adds an attribute to the map being built, its value as [`value_text`] spells it: strings,
/// integers and booleans written in place, other values through [`value_text`].
pub fn write_attribute(out: &mut AttributeWriter<'_>, key: &str, v: Option<&AnyValue>) {
    match v.and_then(|v| v.value.as_ref()) {
        None => out.entry(key, ""),
        Some(Value::StringValue(s)) => out.entry(key, s),
        Some(Value::IntValue(i)) => out.entry(key, itoa::Buffer::new().format(*i)),
        Some(Value::BoolValue(b)) => out.entry(key, if *b { "true" } else { "false" }),
        Some(_) => out.entry(key, &value_text(v)),
    }
}

/// How a double that is not a finite number is spelled (as in protobuf's JSON): `NaN`,
/// `Infinity` or `-Infinity`; `None` for finite numbers. JSON has no numbers for them.
pub fn non_finite_name(d: f64) -> Option<&'static str> {
    match d {
        _ if d.is_nan() => Some("NaN"),
        f64::INFINITY => Some("Infinity"),
        f64::NEG_INFINITY => Some("-Infinity"),
        _ => None,
    }
}

/// A double as the mapping writes it in text: Rust's shortest spelling that reads back the
/// same, and [`non_finite_name`] for what is not a finite number.
#[derive(Debug, Clone, Copy)]
pub struct Double(pub f64);

impl std::fmt::Display for Double {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match non_finite_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A double in JSON: a number, or [`non_finite_name`] as a string.
pub fn double_json(d: f64) -> serde_json::Value {
    match non_finite_name(d) {
        Some(name) => serde_json::Value::String(name.into()),
        None => serde_json::Value::from(d),
    }
}

/// The JSON array of `items`, or `None` if there are none.
pub fn json_array<T>(items: &[T], item: impl Fn(&T) -> serde_json::Value) -> Option<String> {
    (!items.is_empty())
        .then(|| serde_json::Value::Array(items.iter().map(item).collect()).to_string())
}

fn json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::StringValue(s) => serde_json::Value::String(s.clone()),
        Value::BoolValue(b) => serde_json::Value::Bool(*b),
        Value::IntValue(i) => serde_json::Value::from(*i),
        Value::DoubleValue(d) => double_json(*d),
        Value::BytesValue(b) => serde_json::Value::String(hex(b)),
        Value::ArrayValue(a) => serde_json::Value::Array(
            a.values
                .iter()
                .filter_map(|v| v.value.as_ref().and_then(json))
                .collect(),
        ),
        Value::KvlistValue(l) => serde_json::Value::Object(
            l.values
                .iter()
                .map(|kv| {
                    let v = kv
                        .value
                        .as_ref()
                        .and_then(|v| v.value.as_ref())
                        .and_then(json);
                    (kv.key.clone(), v.unwrap_or(serde_json::Value::Null))
                })
                .collect(),
        ),
        Value::StringValueStrindex(_) => return None,
    })
}

/// Attributes as `(key, text)` pairs, in order.
pub fn attributes(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
        .collect()
}

/// Attributes as a JSON object (for events and links kept inside a span's attributes).
pub fn attributes_json(kvs: &[KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        kvs.iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    serde_json::Value::String(value_text(kv.value.as_ref())),
                )
            })
            .collect(),
    )
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = vec![0; 2 * bytes.len()];
    micromegas_lake::hex::encode_into(bytes, &mut text);
    // Only ASCII digits were written.
    String::from_utf8(text).unwrap_or_default()
}

/// Room for the hex of the longest id (a 16-byte trace id).
pub type IdText = [u8; 32];

/// A trace id: 16 bytes, not all zero. `Ok(None)` when absent (empty).
pub fn trace_id(bytes: &[u8]) -> Result<Option<String>, String> {
    Ok(trace_id_text(bytes, &mut [0; 32])?.map(str::to_owned))
}

/// A span id: 8 bytes, not all zero. `Ok(None)` when absent (empty).
pub fn span_id(bytes: &[u8]) -> Result<Option<String>, String> {
    Ok(span_id_text(bytes, &mut [0; 32])?.map(str::to_owned))
}

/// [`trace_id`], written into `buf`.
pub fn trace_id_text<'b>(bytes: &[u8], buf: &'b mut IdText) -> Result<Option<&'b str>, String> {
    id(bytes, 16, "trace id", buf)
}

/// [`span_id`], written into `buf`.
pub fn span_id_text<'b>(bytes: &[u8], buf: &'b mut IdText) -> Result<Option<&'b str>, String> {
    id(bytes, 8, "span id", buf)
}

fn id<'b>(
    bytes: &[u8],
    len: usize,
    what: &str,
    buf: &'b mut IdText,
) -> Result<Option<&'b str>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(format!("{what} has {} bytes, expected {len}", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{what} is all zeros"));
    }
    Ok(Some(micromegas_lake::hex::encode_into(bytes, buf)))
}

/// The process a resource stands for. Its id is derived from the resource's attributes only,
/// so every request from the same SDK instance maps to the same process, whatever schema URL
/// each signal's exporter sends. The properties are the attributes, then the resource's
/// dropped attribute count, schema URL and entity references (`otel.dropped_attributes_count`,
/// `otel.schema_url`, `otel.entity_refs` as JSON) when not empty.
pub fn process(resource: Option<&Resource>, schema_url: &str) -> ProcessRow {
    let mut attrs = resource
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default();
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let service_name = get("service.name").unwrap_or_else(|| "unknown_service".into());
    let exe = get("process.executable.path")
        .or_else(|| get("process.executable.name"))
        .unwrap_or_default();
    let username = get("process.owner").unwrap_or_default();
    let hostname = get("host.name").unwrap_or_default();
    let mut sorted = attrs.clone();
    sorted.sort();
    let mut key = String::new();
    for (k, v) in &sorted {
        key.push_str(k);
        key.push('\u{1}');
        key.push_str(v);
        key.push('\u{2}');
    }
    let id = uuid::Uuid::from_u128(xxhash_rust::xxh3::xxh3_128(key.as_bytes()));
    if let Some(dropped) = resource
        .map(|r| r.dropped_attributes_count)
        .filter(|n| *n > 0)
    {
        attrs.push(("otel.dropped_attributes_count".into(), dropped.to_string()));
    }
    if !schema_url.is_empty() {
        attrs.push(("otel.schema_url".into(), schema_url.to_owned()));
    }
    let entities = resource.and_then(|r| {
        json_array(&r.entity_refs, |e| {
            serde_json::json!({
                "type": e.r#type,
                "id_keys": e.id_keys,
                "description_keys": e.description_keys,
                "schema_url": e.schema_url,
            })
        })
    });
    if let Some(entities) = entities {
        attrs.push(("otel.entity_refs".into(), entities));
    }
    ProcessRow {
        process_id: id.to_string(),
        service_name,
        exe,
        username,
        hostname,
        start_time: now_nanos(),
        tsc_frequency: 0,
        properties: attrs,
        insert_time: 0,
    }
}

/// An instrumentation scope: its name (the rows' `target`), and what else it says, kept on
/// each of its rows as `otel.scope.version`, `otel.scope.attributes` (JSON),
/// `otel.scope.dropped_attributes_count` and `otel.scope.schema_url` when not empty.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scope {
    /// The scope's name.
    pub name: String,
    /// The entries its rows carry.
    pub entries: Vec<(&'static str, String)>,
}

impl Scope {
    /// The scope of a list of items, with the schema URL of that list.
    pub fn new(scope: Option<&InstrumentationScope>, schema_url: &str) -> Self {
        let none = InstrumentationScope::default();
        let s = scope.unwrap_or(&none);
        let mut entries = Vec::new();
        if !s.version.is_empty() {
            entries.push(("otel.scope.version", s.version.clone()));
        }
        if !s.attributes.is_empty() {
            let json = attributes_json(&s.attributes).to_string();
            entries.push(("otel.scope.attributes", json));
        }
        if s.dropped_attributes_count > 0 {
            let n = s.dropped_attributes_count.to_string();
            entries.push(("otel.scope.dropped_attributes_count", n));
        }
        if !schema_url.is_empty() {
            entries.push(("otel.scope.schema_url", schema_url.to_owned()));
        }
        Self {
            name: s.name.clone(),
            entries,
        }
    }

    /// Appends the scope's entries to a row.
    pub fn write(&self, out: &mut AttributeWriter<'_>) {
        for (key, value) in &self.entries {
            out.entry(key, value);
        }
    }
}

/// The W3C trace flags of a span or log record (the low byte of its OTLP `flags`) as two hex
/// digits, as in a `traceparent` header, when they say more than "sampled", the flag set on
/// nearly every exported span (for example the random trace id flag of W3C Trace Context
/// level 2); `None` otherwise. Kept as `otel.trace_flags`.
pub fn trace_flags(flags: u32) -> Option<String> {
    const SAMPLED: u32 = 0x01;
    let w3c = flags & 0xFF;
    (w3c & !SAMPLED != 0).then(|| format!("{w3c:02x}"))
}

/// Nanoseconds since the Unix epoch from an OTLP `fixed64` time (0 stays 0).
pub fn time(ns: u64) -> i64 {
    ns.min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::EntityRef;

    /// A process is the same whatever schema URL, dropped count and entity references come
    /// with its resource; they are kept in its properties.
    #[test]
    fn a_process_is_identified_by_its_resource_attributes_only() {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("shop".into())),
                }),
                ..Default::default()
            }],
            dropped_attributes_count: 3,
            entity_refs: vec![EntityRef {
                r#type: "service".into(),
                id_keys: vec!["service.name".into()],
                ..Default::default()
            }],
        };
        let plain = process(Some(&Resource::default()), "");
        let with_schema = process(Some(&resource), "https://opentelemetry.io/schemas/1.26.0");
        let without_schema = process(Some(&resource), "");
        assert_eq!(with_schema.process_id, without_schema.process_id);
        assert_ne!(with_schema.process_id, plain.process_id);
        assert_eq!(with_schema.service_name, "shop");
        let text = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            with_schema.properties,
            text(&[
                ("service.name", "shop"),
                ("otel.dropped_attributes_count", "3"),
                ("otel.schema_url", "https://opentelemetry.io/schemas/1.26.0"),
                (
                    "otel.entity_refs",
                    r#"[{"description_keys":[],"id_keys":["service.name"],"schema_url":"","type":"service"}]"#,
                ),
            ])
        );
        assert_eq!(
            without_schema.properties,
            text(&[
                ("service.name", "shop"),
                ("otel.dropped_attributes_count", "3"),
                (
                    "otel.entity_refs",
                    r#"[{"description_keys":[],"id_keys":["service.name"],"schema_url":"","type":"service"}]"#,
                ),
            ])
        );
    }
}
