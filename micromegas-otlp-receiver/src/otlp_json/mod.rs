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

mod reader;
mod scalar;
mod schema;

use schema::{Field, Fields};
use serde::de::DeserializeSeed;

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
    let mut ctx = reader::Ctx::for_body(body.len());
    let mut json = serde_json::Deserializer::from_slice(body);
    let read = reader::Node::message(signal.fields(), &mut ctx)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    match (read, ctx.fail) {
        (_, Some((steps, message))) => Err(JsonError::Value {
            path: path_text(&steps),
            message,
        }),
        (Err(e), None) => Err(JsonError::Syntax(e)),
        (Ok(()), None) => Ok(ctx.out),
    }
}

/// A step of the path to a value.
enum Step {
    Key(&'static str),
    Index(usize),
}

/// `resourceSpans[0].scopeSpans[1].spans[2].traceId`; "the top" for no step.
fn path_text(steps: &[Step]) -> String {
    let mut path = String::new();
    for step in steps {
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
    path
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

#[cfg(test)]
mod tests;
