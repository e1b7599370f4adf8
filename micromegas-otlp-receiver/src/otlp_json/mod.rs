//! OTLP/JSON request bodies turned into the protobuf bytes of the same request, so that both
//! encodings go through one mapping ([`crate::mapping`]).
//!
//! The rules are OTLP/JSON's (the Protobuf JSON mapping with OTLP's exceptions):
//! - keys are lowerCamelCase field names; the original snake_case names are accepted too,
//!   and unknown keys are ignored, so that senders may use fields added after this version;
//! - trace and span ids are hexadecimal text (not base64); other bytes are base64;
//! - 64-bit integers are decimal strings or numbers;
//! - doubles are numbers, decimal strings, or `"NaN"`, `"Infinity"` and `"-Infinity"`, as
//!   protobuf's JSON writers send values JSON numbers cannot hold;
//! - enums are numbers (OTLP requires them), or their protobuf names;
//! - `null` is the same as an absent field.
//!
//! ```
//! use micromegas_otlp_receiver::otlp_json::{to_protobuf, Signal};
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! use opentelemetry_proto::tonic::common::v1::any_value::Value;
//! use prost::Message;
//!
//! let body = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{
//!     "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
//!     "name": "GET /", "kind": 2, "startTimeUnixNano": "1700000000000000000",
//!     "attributes": [{"key": "ratio", "value": {"doubleValue": "NaN"}}]}]}]}]}"#;
//! let bytes = to_protobuf(Signal::Traces, body).unwrap();
//! let request = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
//! let span = &request.resource_spans[0].scope_spans[0].spans[0];
//! assert_eq!(span.span_id, [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
//! assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
//! let ratio = span.attributes[0].value.as_ref().and_then(|v| v.value.as_ref());
//! assert!(matches!(ratio, Some(Value::DoubleValue(d)) if d.is_nan()));
//!
//! // A value that is not what its field holds is an error that names the field.
//! let bad = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}"#;
//! let error = to_protobuf(Signal::Traces, bad).unwrap_err().to_string();
//! assert!(error.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"), "{error}");
//! ```

mod schema;

use base64::Engine;
use schema::{Field, Fields, Kind};
use serde_json::Value;
use std::str::FromStr;

/// The signal of a request body: which request message it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `ExportTraceServiceRequest`.
    Traces,
    /// `ExportLogsServiceRequest`.
    Logs,
    /// `ExportMetricsServiceRequest`.
    Metrics,
}

impl Signal {
    fn fields(self) -> Fields {
        match self {
            Signal::Traces => &schema::TRACES,
            Signal::Logs => &schema::LOGS,
            Signal::Metrics => &schema::METRICS,
        }
    }
}

/// Why a body is not an OTLP/JSON request.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The body is not JSON.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A field holds a value of the wrong kind.
    #[error("invalid OTLP/JSON at {path}: {message}")]
    Value {
        /// Where, from the request's top: `resourceSpans[0].scopeSpans[1].spans[2].traceId`.
        path: String,
        /// What was found, and what the field takes.
        message: String,
    },
}

/// The protobuf encoding of the OTLP/JSON request `body` of `signal`.
pub fn to_protobuf(signal: Signal, body: &[u8]) -> Result<Vec<u8>, JsonError> {
    let value: Value = serde_json::from_slice(body)?;
    let mut out = Vec::with_capacity(body.len() / 2);
    message(signal.fields(), &value, &mut out).map_err(Fail::into_error)?;
    Ok(out)
}

/// A step of the path to a bad value.
enum Step {
    Key(&'static str),
    Index(usize),
}

/// A bad value: the message, and the path to it from the innermost step out.
struct Fail {
    steps: Vec<Step>,
    message: String,
}

impl Fail {
    fn new(message: String) -> Self {
        Self {
            steps: Vec::new(),
            message,
        }
    }

    fn at(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    fn into_error(self) -> JsonError {
        let mut path = String::new();
        for step in self.steps.iter().rev() {
            match step {
                Step::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        if path.is_empty() {
            path.push_str("the top");
        }
        JsonError::Value {
            path,
            message: self.message,
        }
    }
}

type Checked<T> = Result<T, Fail>;

fn expected<T>(what: &str, found: &Value) -> Checked<T> {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(s) => format!("a string of {} bytes", s.len()),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    Err(Fail::new(format!("expected {what}, found {found}")))
}

/// The field named `key`: by its lowerCamelCase name, or its snake_case one.
fn find(fields: Fields, key: &str) -> Option<&'static Field> {
    fields
        .iter()
        .find(|f| f.name == key)
        .or_else(|| fields.iter().find(|f| snake_names(key, f.name)))
}

/// Whether `snake` is the snake_case spelling of the lowerCamelCase `camel`.
fn snake_names(snake: &str, camel: &str) -> bool {
    let mut camel = camel.chars();
    let mut upper_next = false;
    for c in snake.chars() {
        if c == '_' {
            upper_next = true;
            continue;
        }
        let want = if upper_next {
            c.to_ascii_uppercase()
        } else {
            c
        };
        upper_next = false;
        if camel.next() != Some(want) {
            return false;
        }
    }
    !upper_next && camel.next().is_none()
}

/// Writes the fields of the JSON object `v`, a message of `fields`.
fn message(fields: Fields, v: &Value, out: &mut Vec<u8>) -> Checked<()> {
    let object = match v {
        Value::Object(object) => object,
        // An element of a list of messages written as `null` (as some writers do for an
        // empty `AnyValue`): a message with no field set.
        Value::Null => return Ok(()),
        _ => return expected("an object", v),
    };
    for (key, value) in object {
        let Some(f) = find(fields, key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        field(f, value, out).map_err(|e| e.at(Step::Key(f.name)))?;
    }
    Ok(())
}

/// Writes a field's value (all of them, for a repeated field).
fn field(f: &Field, v: &Value, out: &mut Vec<u8>) -> Checked<()> {
    if !f.repeated {
        return single(f.tag, f.kind, v, out);
    }
    let Value::Array(items) = v else {
        return expected("an array", v);
    };
    let packed = wire_type(f.kind) != LEN;
    if packed && !items.is_empty() {
        key(out, f.tag, LEN);
        let start = out.len();
        for (i, item) in items.iter().enumerate() {
            scalar(f.kind, item, out).map_err(|e| e.at(Step::Index(i)))?;
        }
        close_len(out, start);
    } else if !packed {
        for (i, item) in items.iter().enumerate() {
            single(f.tag, f.kind, item, out).map_err(|e| e.at(Step::Index(i)))?;
        }
    }
    Ok(())
}

const UNSIGNED: &str = "an unsigned integer";
const SIGNED: &str = "an integer";
const UNSIGNED_32: &str = "a 32-bit unsigned integer";
const SIGNED_32: &str = "a 32-bit integer";

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

fn wire_type(kind: Kind) -> u8 {
    match kind {
        Kind::Message(_) | Kind::Text | Kind::HexBytes | Kind::Base64Bytes => LEN,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => I64,
        Kind::Fixed32 => I32,
        Kind::Bool | Kind::Uint | Kind::Int | Kind::Sint32 | Kind::Enum(_) => VARINT,
    }
}

/// Writes one value with its key.
fn single(tag: u32, kind: Kind, v: &Value, out: &mut Vec<u8>) -> Checked<()> {
    key(out, tag, wire_type(kind));
    scalar(kind, v, out)
}

/// Writes one value without its key (a length-delimited one with its length).
fn scalar(kind: Kind, v: &Value, out: &mut Vec<u8>) -> Checked<()> {
    match kind {
        Kind::Message(fields) => {
            let start = out.len();
            message(fields, v, out)?;
            close_len(out, start);
        }
        Kind::Text => {
            let Value::String(s) = v else {
                return expected("a string", v);
            };
            bytes(out, s.as_bytes());
        }
        Kind::HexBytes => {
            let Value::String(s) = v else {
                return expected("hexadecimal text", v);
            };
            let decoded = hex(s).ok_or_else(|| {
                Fail::new(format!(
                    "expected hexadecimal text (an even number of digits 0-9, a-f), found {s:?}"
                ))
            })?;
            bytes(out, &decoded);
        }
        Kind::Base64Bytes => {
            let Value::String(s) = v else {
                return expected("base64 text", v);
            };
            let decoded =
                base64(s).ok_or_else(|| Fail::new(format!("expected base64 text, found {s:?}")))?;
            bytes(out, &decoded);
        }
        Kind::Bool => match v {
            Value::Bool(b) => varint(out, *b as u64),
            _ => return expected("true or false", v),
        },
        Kind::Fixed64 => out.extend_from_slice(&integer::<u64>(v, UNSIGNED)?.to_le_bytes()),
        Kind::Sfixed64 => out.extend_from_slice(&integer::<i64>(v, SIGNED)?.to_le_bytes()),
        Kind::Fixed32 => out.extend_from_slice(&integer::<u32>(v, UNSIGNED_32)?.to_le_bytes()),
        Kind::Uint => varint(out, integer::<u64>(v, UNSIGNED)?),
        Kind::Int => varint(out, integer::<i64>(v, SIGNED)? as u64),
        Kind::Sint32 => {
            let n = integer::<i32>(v, SIGNED_32)?;
            varint(out, ((n << 1) ^ (n >> 31)) as u32 as u64);
        }
        Kind::Double => out.extend_from_slice(&double(v)?.to_le_bytes()),
        Kind::Enum(by_name) => {
            let n = match v {
                Value::String(name) => by_name(name).ok_or_else(|| {
                    Fail::new(format!(
                        "expected an enum value, found the unknown name {name:?}"
                    ))
                })?,
                _ => integer::<i32>(v, "an enum number or name")?,
            };
            varint(out, n as i64 as u64);
        }
    }
    Ok(())
}

/// An integer of type `T`: a JSON number (`1e3` and `5.0` are integers too), or a decimal
/// string; `what` names the type in the error.
fn integer<T: FromStr + TryFrom<i128>>(v: &Value, what: &str) -> Checked<T> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 2e19)
                    .map(|f| f as i128)
            })
            .and_then(|n| T::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.map_or_else(
        || expected(&format!("{what} (a number or a decimal string)"), v),
        Ok,
    )
}

/// A double: a JSON number, a decimal string, or one of the names of the values JSON numbers
/// cannot hold.
fn double(v: &Value) -> Checked<f64> {
    let d = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            text => text.parse().ok().filter(|d: &f64| d.is_finite()),
        },
        _ => None,
    };
    d.map_or_else(
        || expected("a number (or \"NaN\", \"Infinity\", \"-Infinity\")", v),
        Ok,
    )
}

/// The bytes of hexadecimal text, either case.
fn hex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The bytes of base64 text: standard or URL-safe alphabet, padded or not.
fn base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let unpadded = s.trim_end_matches('=');
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
        .ok()
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    varint(out, (tag as u64) << 3 | wire_type as u64);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Puts the length of what was written since `start` in front of it.
fn close_len(out: &mut Vec<u8>, start: usize) {
    let (mut prefix, mut n, mut len) = ([0u8; 10], (out.len() - start) as u64, 0);
    while n >= 0x80 {
        prefix[len] = n as u8 | 0x80;
        n >>= 7;
        len += 1;
    }
    prefix[len] = n as u8;
    out.splice(start..start, prefix[..=len].iter().copied());
}

#[cfg(test)]
mod tests;
